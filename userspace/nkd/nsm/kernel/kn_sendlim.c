// SPDX-License-Identifier: MIT
/*
 * TCP keeps, per socket, how long it has been sending and how much of
 * that time it was limited by the peer's receive window
 * (tcpi_busy_time, tcpi_rwnd_limited: Linux 4.10), and the peer's
 * window now (tcpi_snd_wnd: 5.4). A flow whose reader is slow is
 * rwnd-limited; one the shared bottleneck slows is cwnd-limited. Only
 * the second is a guest starved by the others.
 */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "kn_sendlim.h"

/* Sending time a sample needs: the counters tick in jiffies (1-4 ms). */
#define NK_KN_SENDLIM_US 8000u

bool nk_kn__send_peer_limited(int fd, struct nk_kn_sendlim *st)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	uint64_t busy, rwnd;

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_sndbuf_limited))
		return false;
	/* Zero window: nothing but the peer's reading opens it. */
	if (len >= offsetof(struct tcp_info, tcpi_snd_wnd) +
			    sizeof(ti.tcpi_snd_wnd) &&
	    ti.tcpi_snd_mss && ti.tcpi_snd_wnd < ti.tcpi_snd_mss)
		return true;
	busy = ti.tcpi_busy_time;
	rwnd = ti.tcpi_rwnd_limited;
	if (busy < st->busy_us || rwnd < st->rwnd_us) {
		/* Another socket's counters (a reused fd): start again. */
		st->busy_us = busy;
		st->rwnd_us = rwnd;
		st->peer = false;
		return false;
	}
	if (busy - st->busy_us >= NK_KN_SENDLIM_US) {
		st->peer = 2 * (rwnd - st->rwnd_us) > busy - st->busy_us;
		st->busy_us = busy;
		st->rwnd_us = rwnd;
	}
	return st->peer;
}
