// SPDX-License-Identifier: MIT
/*
 * The afxdp NSM's stack counters (xcounters.h). Frames and bytes in and
 * out are the backend's (what crossed the device); the rest is nk_ustack's.
 * Every way the stack drops a received frame is one reason of rx_drops.
 */
#include "xcounters.h"

struct fill {
	struct nk_nsm_counter *out;
	unsigned n, max;
};

static void put(struct fill *f, const char *name, const char *reason,
		const char *help, uint64_t value)
{
	if (f->n < f->max)
		f->out[f->n++] = (struct nk_nsm_counter){ .name = name,
							  .reason = reason,
							  .help = help,
							  .value = value };
}

unsigned nk_xcounters__fill(const struct nk_l2 *l2, const struct nk_ustack *st,
			    struct nk_nsm_counter *out, unsigned max)
{
	static const char rx_drops[] =
		"Received frames dropped, by reason: backend (the kernel "
		"ring, oversized), a parse failure, not_ours, martian, "
		"l4_checksum, no_memory.";
	static const char tx_drops[] =
		"Frames not sent, by reason: backend (no free frame or "
		"descriptor, send error), seq_table_full (a SYN while the "
		"sequence translation table is full).";
	struct fill f = { .out = out, .max = max };
	struct nk_ustack_stats us;
	struct nk_l2_stats ls;

	nk_l2__stats(l2, &ls);
	nk_ustack__stats(st, &us);
	put(&f, "rx_frames", NULL, "Frames received from the device.",
	    ls.rx_frames);
	put(&f, "rx_bytes", NULL, "Bytes of the frames received.", ls.rx_bytes);
	put(&f, "tx_frames", NULL, "Frames sent on the device.", ls.tx_frames);
	put(&f, "tx_bytes", NULL, "Bytes of the frames sent.", ls.tx_bytes);
	put(&f, "kicks", NULL, "Wakeup system calls to the backend.", ls.kicks);
	put(&f, "rx_delivered", NULL,
	    "Frames given to the TCP/IP stack after every check.",
	    us.rx_to_lwip);
	put(&f, "rx_drops", "backend", rx_drops, ls.rx_dropped);
	for (unsigned r = 1; r < NK_PKT_DROP__MAX; r++)
		put(&f, "rx_drops", nk_pkt_drop__name(r), rx_drops,
		    us.rx_drop[r]);
	put(&f, "rx_drops", "not_ours", rx_drops, us.rx_not_ours);
	put(&f, "rx_drops", "martian", rx_drops, us.rx_martian);
	put(&f, "rx_drops", "l4_checksum", rx_drops, us.rx_csum_bad);
	put(&f, "rx_drops", "no_memory", rx_drops, us.rx_nomem);
	put(&f, "tx_drops", "backend", tx_drops, ls.tx_dropped);
	put(&f, "tx_drops", "seq_table_full", tx_drops, us.seq_full);
	put(&f, "tcp_retransmits", NULL,
	    "TCP segments sent again (timeouts, fast retransmit, SYN, "
	    "SYN-ACK, FIN).",
	    us.tcp_retrans);
	put(&f, "tcp_syn_evicted", NULL,
	    "Half-open connections dropped for a new SYN (synq bound).",
	    us.syn_evicted);
	put(&f, "tcp_time_wait_reused", NULL,
	    "TIME_WAIT connections ended by a new SYN.", us.tw_reused);
	put(&f, "tcp_time_wait_trimmed", NULL,
	    "TIME_WAIT connections dropped beyond the bound.", us.tw_trimmed);
	put(&f, "udp_rx_dropped", NULL,
	    "Datagrams dropped because their socket's queue was full.",
	    us.udp_rx_dropped);
	put(&f, "tx_acks_coalesced", NULL,
	    "Pure ACKs superseded by a newer one before being sent.",
	    us.tx_ack_coalesced);
	put(&f, "rx_checksums_completed", NULL,
	    "Partial checksums (a veth peer's offload) completed.",
	    us.rx_csum_completed);
	return f.n;
}
