/* SPDX-License-Identifier: MIT */
/*
 * Facts the kernel vouches for about a process on the other end of a
 * control connection (docs/config.md "Who is which guest"): its
 * credentials from SO_PEERCRED / SO_PEERGROUPS, its network namespace and
 * cgroup read through /proc while a pidfd proves the pid was not reused,
 * and the attach socket it connected to. Guests are matched on these,
 * never on a name the process claims.
 */
#ifndef NKD_PEER_H
#define NKD_PEER_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Older libc headers lack these (Linux 6.5 / 2.6.13 values). */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define NK_PEER_MAX_GROUPS 32
#define NK_PEER_CGROUP_MAX 256

struct nk_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[NK_PEER_MAX_GROUPS]; /* supplementary, from SO_PEERGROUPS */
	unsigned nr_groups;
	/* 0/0: unknown (the process could not be inspected): never matches */
	uint64_t netns_dev, netns_ino;
	char cgroup[NK_PEER_CGROUP_MAX]; /* cgroup v2 path; "" unknown */
	/*
	 * >= 0: it came through the attach= socket at attach_path (matched
	 * by path, not by index: a reload may reorder or drop guests); -1:
	 * the main socket.
	 */
	int attach;
	char attach_path[108]; /* sizeof(sun_path) */
};

/*
 * Reads the facts of the peer of a connected AF_UNIX socket. Returns 0,
 * or -errno: -ESRCH when the process exited before its facts could be
 * trusted (the connection must be refused).
 */
int nk_peer__read(int fd, struct nk_peer *out);

#endif /* NKD_PEER_H */
