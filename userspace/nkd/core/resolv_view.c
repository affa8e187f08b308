// SPDX-License-Identifier: MIT
/*
 * One name resolution per NSM (issue 9): the files its resolver reads.
 *
 * RESOLVE runs glibc's getaddrinfo() in worker threads that setns() into
 * the NSM's network namespace (resolve.c). The network namespace decides
 * where packets go, but glibc reads /etc/resolv.conf, /etc/hosts and
 * /etc/nsswitch.conf through the mount namespace, which is still nkd's. So
 * each worker thread that needs other files makes itself a private mount
 * namespace (unshare(CLONE_NEWNS) affects the calling thread only, like
 * setns) and bind-mounts them, as `ip netns exec NAME` does for a program:
 *
 *   - with netns=/run/netns/NAME and a directory /etc/netns/NAME, every
 *     file in it is bound over the one of the same name in /etc (the `ip
 *     netns exec` convention: resolv.conf, hosts, nsswitch.conf...);
 *   - resolv=PATH is bound over /etc/resolv.conf (it wins over the above).
 *
 * Without either, nothing changes: nkd's own files. glibc notices that the
 * file behind /etc/resolv.conf differs from the one it cached (it compares
 * inode and mtime on every lookup) and reloads, so several NSMs' workers in
 * one process each get their own. The lookups stay in the worker threads:
 * nothing here runs on nkd's event loop but the reading of the nameserver
 * list at start, which the shim asks for (NK_CTL_DNS_SERVERS) to send a
 * program's own DNS queries to the NSM's resolver (docs/shim.md).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "netkernel/resolvconf.h"
#include "resolv_view.h"

/* NAME of /run/netns/NAME or /var/run/netns/NAME, else NULL. */
static const char *netns_name(const char *path)
{
	static const char *const dirs[] = { "/run/netns/", "/var/run/netns/" };

	for (unsigned i = 0; i < 2; i++) {
		size_t n = strlen(dirs[i]);

		if (!strncmp(path, dirs[i], n) && path[n] &&
		    !strchr(path + n, '/') && strcmp(path + n, ".") &&
		    strcmp(path + n, ".."))
			return path + n;
	}
	return NULL;
}

static bool is_file(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode);
}

/* "nameserver ADDR" lines, as glibc reads them (at most MAXNS); none: the
 * local host, glibc's default. */
static void read_servers(struct nk_resolv_view *v)
{
	char line[512];
	FILE *f = fopen(v->effective, "re");

	v->nr_servers = 0;
	while (f && v->nr_servers < NK_RESOLV_MAX_NS &&
	       fgets(line, sizeof(line), f))
		v->nr_servers += nk_resolvconf__nameserver(
			line, &v->servers[v->nr_servers]);
	if (f)
		fclose(f);
	if (!v->nr_servers) {
		struct nk_sockaddr *a = &v->servers[v->nr_servers++];

		memset(a, 0, sizeof(*a));
		a->family = AF_INET;
		a->port = htons(53);
		inet_pton(AF_INET, "127.0.0.1", a->addr);
	}
}

int nk_resolv__view(const struct nk_nsm_conf *conf, struct nk_resolv_view *v)
{
	const char *name = conf->netns[0] ? netns_name(conf->netns) : NULL;
	struct stat st;

	memset(v, 0, sizeof(*v));
	if (name &&
	    (size_t)snprintf(v->dir, sizeof(v->dir), "/etc/netns/%s", name) <
		    sizeof(v->dir) &&
	    !stat(v->dir, &st) && S_ISDIR(st.st_mode)) {
		snprintf(v->effective, sizeof(v->effective),
			 "%.200s/resolv.conf", v->dir);
		if (!is_file(v->effective))
			strcpy(v->effective, "/etc/resolv.conf");
	} else {
		v->dir[0] = '\0';
		strcpy(v->effective, "/etc/resolv.conf");
	}
	if (conf->resolv[0]) {
		if (stat(conf->resolv, &st) || !S_ISREG(st.st_mode)) {
			int err = errno;

			nk_err("nsm %s: resolv=%s: %s", conf->name,
			       conf->resolv,
			       S_ISREG(st.st_mode) || err != 0 ? strerror(err)
							       : "not a file");
			return -ENOENT;
		}
		strcpy(v->resolv, conf->resolv);
		strcpy(v->effective, conf->resolv);
	}
	read_servers(v);
	return 0;
}

static int bind_file(const char *src, const char *dst)
{
	if (mount(src, dst, NULL, MS_BIND, NULL)) {
		int err = errno;

		nk_err("resolver: bind %s on %s: %s", src, dst, strerror(err));
		return -err;
	}
	return 0;
}

int nk_resolv__enter(const struct nk_resolv_view *v)
{
	int ret = 0;

	if (!v->dir[0] && !v->resolv[0])
		return 0;
	if (unshare(CLONE_NEWNS)) {
		ret = -errno;
		nk_err("resolver: unshare(CLONE_NEWNS): %s", strerror(-ret));
		return ret;
	}
	/* Our binds must not show in nkd's (or the host's) mounts. */
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL)) {
		ret = -errno;
		nk_err("resolver: make / a slave: %s", strerror(-ret));
		return ret;
	}
	if (v->dir[0]) {
		DIR *d = opendir(v->dir);
		struct dirent *de;

		while (d && !ret && (de = readdir(d))) {
			char src[NK_PATH_MAX + 256], dst[300];

			if (de->d_name[0] == '.' ||
			    (v->resolv[0] &&
			     !strcmp(de->d_name, "resolv.conf")))
				continue;
			snprintf(src, sizeof(src), "%s/%s", v->dir, de->d_name);
			snprintf(dst, sizeof(dst), "/etc/%s", de->d_name);
			/* Like ip netns exec: only what /etc has. */
			if (access(dst, F_OK))
				continue;
			ret = bind_file(src, dst);
		}
		if (d)
			closedir(d);
	}
	if (!ret && v->resolv[0])
		ret = bind_file(v->resolv, "/etc/resolv.conf");
	return ret;
}
