/* SPDX-License-Identifier: MIT */
/*
 * Why a kernel NSM socket's SEND waits (docs/nkd.md "Scheduler"): for its
 * own peer, whose receive window is closed (a slow reader), or for the
 * path (congestion window, the shared bottleneck). Its own file: it needs
 * <linux/tcp.h>'s struct tcp_info, which nsm_kernel.c's <netinet/tcp.h>
 * would redefine.
 */
#ifndef NKD_KN_SENDLIM_H
#define NKD_KN_SENDLIM_H

#include <stdbool.h>
#include <stdint.h>

/* Per socket: TCP_INFO's chrono counters at the last sample. */
struct nk_kn_sendlim {
	uint64_t busy_us, rwnd_us;
	bool peer; /* the answer of the last full sample */
};

/*
 * true if the TCP socket fd has spent most of its sending time since the
 * last sample (at least NK_KN_SENDLIM_US of it) limited by the peer's
 * receive window, or the peer's window is closed now. Non-blocking (one
 * getsockopt). false when the kernel does not say.
 */
bool nk_kn__send_peer_limited(int fd, struct nk_kn_sendlim *st);

#endif /* NKD_KN_SENDLIM_H */
