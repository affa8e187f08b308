// SPDX-License-Identifier: MIT
/*
 * socket() for the kernel NSM, with one twist for the ICMP echo ("ping")
 * socket (SOCK_DGRAM + IPPROTO_ICMP or IPPROTO_ICMPV6).
 *
 * The kernel lets a task create one only when its effective gid or one of
 * its supplementary gids lies in net.ipv4.ping_group_range of the socket's
 * network namespace (IPv6 uses the same sysctl). nkd runs as root, gid 0,
 * and a namespace made by `ip netns add` starts with the range "1 0"
 * (nobody); systemd's default on the host is "0 2147483647". nkd does not
 * change the sysctl: it is the operator's policy for that namespace, shared
 * with every native program in it. Instead, when the range admits some gid
 * but not nkd's, nkd takes the range's first gid as its effective gid for
 * this one socket() call, on this thread only (the raw setresgid system
 * call: glibc's setegid() would change every thread of nkd), and takes gid
 * 0 back right after. The range is read from /proc/sys while the thread is
 * in the NSM's namespace, so it is that namespace's. An empty range means
 * the operator allows no ping sockets there: the guest gets EACCES, as a
 * native program would, and nkd says why once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "netkernel/abi.h"

#include "kn_ping.h"
#include "log.h"

#define RANGE_PATH "/proc/sys/net/ipv4/ping_group_range"

static int read_range(long long *lo, long long *hi)
{
	char buf[64];
	ssize_t n;
	int fd = open(RANGE_PATH, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	if (sscanf(buf, "%lld %lld", lo, hi) != 2)
		return -EIO;
	return 0;
}

static int ping_socket_as(const char *nsm, int domain, int type, int proto)
{
	static bool told;
	long long lo, hi;
	gid_t old = getegid();
	int fd, err, dumpable = prctl(PR_GET_DUMPABLE);

	err = read_range(&lo, &hi);
	/* In a user namespace an unmapped range reads as the overflow gid,
	 * which setresgid refuses: off for nkd as well. */
	if (err || lo > hi || lo < 0 ||
	    syscall(SYS_setresgid, -1, (gid_t)lo, -1)) {
		if (!told)
			nk_warn("nsm %s: ICMP echo sockets are off in its "
				"namespace (%s: %s); guests' ping gets EACCES "
				"until the operator widens it there",
				nsm, RANGE_PATH,
				err	  ? strerror(-err)
				: lo > hi ? "empty"
					  : "no gid nkd may take");
		told = true;
		errno = EACCES;
		return -1;
	}
	fd = socket(domain, type, proto);
	err = errno;
	if (syscall(SYS_setresgid, -1, old, -1)) {
		/* nkd must not run on as another gid. */
		nk_err("nsm %s: cannot take back gid %u: %m", nsm,
		       (unsigned)old);
		abort();
	}
	/* A changed egid made nkd undumpable (/proc/self root-owned); the
	 * credentials are nkd's own again, so is the flag. */
	if (dumpable > 0)
		prctl(PR_SET_DUMPABLE, dumpable);
	errno = err;
	return fd;
}

int nk_ping__socket(const char *nsm, int domain, int type, int proto)
{
	int fd = socket(domain, type, proto);

	if (fd >= 0 || errno != EACCES || !nk_is_ping_proto(domain, proto))
		return fd;
	return ping_socket_as(nsm, domain, type, proto);
}
