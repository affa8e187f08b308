// SPDX-License-Identifier: MIT
/*
 * Reading a control peer's identity without pid-reuse races.
 *
 * SO_PEERCRED gives the pid, uid and gid the kernel recorded at connect().
 * The pid is only a number: the process may exit and the number be reused
 * while we read /proc/<pid>. So we hold a pidfd on the process first
 * (SO_PEERPIDFD names exactly the connecting process; pidfd_open on the
 * pid is the fallback for kernels before 6.5), read /proc/<pid>/ns/net and
 * /proc/<pid>/cgroup, then check that the pidfd's process is still alive:
 * if it is, the pid was never reused, so what we read was its. The
 * fallback also checks that /proc/<pid>/status shows the SO_PEERCRED uid,
 * since pidfd_open may already have caught a new process with the number.
 *
 * These are small reads of procfs, never blocking for long: done on the
 * event loop at accept.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "peer.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* "Pid:" of a pidfd's fdinfo: the pid in our namespace, -1 if exited. */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], line[128];
	pid_t pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Pid:", 4)) {
			pid = (pid_t)strtol(line + 4, NULL, 10);
			break;
		}
	fclose(f);
	return pid;
}

/* The pidfd's process has not exited (a pidfd polls readable on exit). */
static bool pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* cgroup v2 line "0::/path" of /proc/<pid>/cgroup. */
static void read_cgroup(pid_t pid, struct nk_peer *p)
{
	char path[64], buf[4096];
	char *l;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (read_small(path, buf, sizeof(buf)))
		return;
	for (l = buf; l && *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char *nl = strchr(l, '\n');
		size_t n;

		if (strncmp(l, "0::", 3))
			continue;
		l += 3;
		n = nl ? (size_t)(nl - l) : strlen(l);
		if (n && n < sizeof(p->cgroup)) {
			memcpy(p->cgroup, l, n);
			p->cgroup[n] = '\0';
		}
		return;
	}
}

static bool status_uid_is(pid_t pid, uid_t uid)
{
	char path[64], buf[4096];
	const char *u;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_small(path, buf, sizeof(buf)))
		return false;
	u = strstr(buf, "\nUid:");
	return u && strtoul(u + 5, NULL, 10) == uid;
}

int nk_peer__read(int fd, struct nk_peer *out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[NK_PEER_MAX_GROUPS];
	char path[64];
	struct stat st;
	bool fallback = false;
	int pidfd = -1, ret = 0;

	memset(out, 0, sizeof(*out));
	out->attach = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -errno;
	out->pid = cred.pid;
	out->uid = cred.uid;
	out->gid = cred.gid;
	len = sizeof(groups);
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len))
		out->nr_groups = len / sizeof(gid_t);
	memcpy(out->groups, groups, out->nr_groups * sizeof(gid_t));
	if (cred.pid <= 0)
		return 0; /* from another pid namespace: credentials only */

	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) ||
	    pidfd < 0) {
		pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
		if (pidfd < 0)
			return 0; /* no pidfds: credentials only */
		fallback = true;
	} else {
		pid_t p = pidfd_pid(pidfd);

		/* 0: no fdinfo Pid line (old kernel); trust SO_PEERCRED. */
		if (p < 0 || (p > 0 && p != cred.pid)) {
			ret = -ESRCH;
			goto out;
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)cred.pid);
	if (!stat(path, &st)) {
		out->netns_dev = st.st_dev;
		out->netns_ino = st.st_ino;
	}
	read_cgroup(cred.pid, out);
	if (fallback && !status_uid_is(cred.pid, cred.uid))
		ret = -ESRCH;
	/* Still alive after the reads: the pid was not reused under us. */
	if (!pidfd_alive(pidfd))
		ret = -ESRCH;
out:
	close(pidfd);
	return ret;
}
