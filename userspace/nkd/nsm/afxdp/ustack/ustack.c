// SPDX-License-Identifier: MIT
/*
 * The afxdp NSM's TCP/IP engine: lwIP raw API from one poll thread.
 *
 * lwIP is used from one thread without its tcpip thread (docs/afxdp-nsm.md):
 * lwip_init() once, never tcpip_init(), so the core-locking assertions of
 * the unix port stay inactive and every lwIP call happens on the thread that
 * calls nk_ustack__poll() and the socket functions. Frames go
 *   backend rx -> checks (pkt.c) -> pbuf copy -> ethernet_input (lwIP)
 *   lwIP -> netif linkoutput -> backend tx; flushed once per poll/API call.
 */
#include "ustack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lwip_csum.h"
#include "segq.h"
#include "ackq.h"
#include "seqmod.h"

#include "lwip/init.h"
#include "lwip/etharp.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
#include "lwip/priv/tcp_priv.h"
#include "netif/ethernet.h"
#include "lwip/ethip6.h"

#define MAX_ADDRS 64u
#define UDP_MAX_PAYLOAD 65507u
#define TCP_RXQ_BYTES (1u << 20) /* far above the 64 KiB window */
#define UDP_RXQ_ENTS 1024u
#define SYNQ_DEF 64u
#define SYNQ_TOTAL_DEF 1024u
#define SEQ_MAX_DEF 65536u
#define SEQ_SWEEP_MS 1000u
#define TW_MAX_DEF 1024u
#define TW_TRIM_MS 10u

enum usock_type { US_TCP_LISTEN = 1, US_TCP, US_UDP };

struct nk_usock {
	struct nk_ustack *st;
	enum usock_type type;
	union {
		struct tcp_pcb *tcp;
		struct udp_pcb *udp;
	} pcb;
	nk_usock_cb cb;
	void *arg;
	struct nk_segq rxq;
	int err; /* pending error, positive errno */
	unsigned eof : 1; /* FIN received */
	unsigned rd_shut : 1, wr_shut : 1;
	unsigned connecting : 1, connected : 1;
	unsigned want_write : 1;
	/* event list (only while cb is set and events are pending) */
	uint32_t pending_ev;
	struct nk_usock *ev_next, **ev_pprev;
	/* listener: accept queue; child: its listener until accepted */
	struct nk_usock *acc_head, **acc_tailp, *acc_next, *listener;
	unsigned acc_n, backlog;
	/* every handle, for destroy */
	struct nk_usock *all_next, **all_pprev;
	struct nk_usock_counters cnt;
};

struct nk_ustack {
	struct nk_l2 *l2;
	uint8_t mac[6];
	uint32_t csum_mode, udp_rcvbuf, tcp_rxq_max, flags;
	nk_ustack_log_fn log;
	void *log_arg;
	struct netif nifs[MAX_ADDRS];
	unsigned nnif;
	struct nk_usock *ev_head, **ev_tailp;
	struct nk_usock *all;
	int tx_dirty;
	struct nk_seqmod *sm; /* NULL: NK_USTACK_F_NO_SEQMOD */
	uint32_t synq, synq_total;
	u32_t last_sweep; /* sys_now() of the last seqmod sweep */
	uint32_t tw_max;
	const struct tcp_pcb *tw_head; /* tcp_tw_pcbs at the last trim */
	u32_t last_tw_trim;
	struct nk_ustack_stats stats;
	struct nk_ackq ackq; /* pure ACKs held until the kick */
	uint8_t txbuf[65536]; /* flattens a chained pbuf (rare) */
};

static struct nk_ustack *the_stack; /* lwIP is one global instance */
static int lwip_inited;

static void logf_(struct nk_ustack *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void logf_(struct nk_ustack *st, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (!st->log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	st->log(st->log_arg, buf);
}

/* ---- events ---- */

static void ev_unlink(struct nk_usock *s)
{
	struct nk_ustack *st = s->st;

	if (!s->ev_pprev)
		return;
	*s->ev_pprev = s->ev_next;
	if (s->ev_next)
		s->ev_next->ev_pprev = s->ev_pprev;
	else
		st->ev_tailp = s->ev_pprev;
	s->ev_next = NULL;
	s->ev_pprev = NULL;
}

static void ev_link(struct nk_usock *s)
{
	struct nk_ustack *st = s->st;

	if (s->ev_pprev || !s->cb || !s->pending_ev)
		return;
	s->ev_next = NULL;
	s->ev_pprev = st->ev_tailp;
	*st->ev_tailp = s;
	st->ev_tailp = &s->ev_next;
}

static void ev_raise(struct nk_usock *s, uint32_t ev)
{
	s->pending_ev |= ev;
	ev_link(s);
}

/* Delivers events; a callback may close any socket, including its own. */
static void ev_dispatch(struct nk_ustack *st)
{
	unsigned rounds = 0;

	while (st->ev_head && rounds++ < 4096) {
		struct nk_usock *s = st->ev_head;
		uint32_t ev = s->pending_ev;

		ev_unlink(s);
		s->pending_ev = 0;
		s->cb(s, ev, s->arg);
	}
}

/* ---- helpers ---- */

static void ackq_emit(void *arg, const uint8_t *frame, size_t len)
{
	struct nk_ustack *st = arg;

	if (nk_l2__tx(st->l2, frame, (uint32_t)len))
		st->stats.tx_dropped++;
	else
		st->stats.tx_frames++;
}

static void flush(struct nk_ustack *st)
{
	if (st->tx_dirty) {
		st->tx_dirty = 0;
		nk_ackq__drain(&st->ackq, ackq_emit, st);
		nk_l2__flush(st->l2);
	}
}

/* After an API call: the kick, unless the owner batches them
 * (NK_USTACK_F_DEFER_FLUSH) and flushes in nk_ustack__poll/__flush. */
static void api_flush(struct nk_ustack *st)
{
	if (!(st->flags & NK_USTACK_F_DEFER_FLUSH))
		flush(st);
}

static int lwerr_to_errno(err_t e)
{
	switch (e) {
	case ERR_OK:
		return 0;
	case ERR_MEM:
	case ERR_BUF:
		return ENOBUFS;
	case ERR_TIMEOUT:
		return ETIMEDOUT;
	case ERR_RTE:
		return ENETUNREACH;
	case ERR_INPROGRESS:
		return EINPROGRESS;
	case ERR_VAL:
	case ERR_ARG:
		return EINVAL;
	case ERR_WOULDBLOCK:
		return EAGAIN;
	case ERR_USE:
		return EADDRINUSE;
	case ERR_ALREADY:
		return EALREADY;
	case ERR_ISCONN:
		return EISCONN;
	case ERR_CONN:
		return ENOTCONN;
	case ERR_IF:
		return ENETDOWN;
	case ERR_ABRT:
		return ECONNABORTED;
	case ERR_RST:
		return ECONNRESET;
	case ERR_CLSD:
		return ENOTCONN;
	default:
		return EIO;
	}
}

static struct netif *nif_by_addr(struct nk_ustack *st, uint32_t a)
{
	unsigned i;

	for (i = 0; i < st->nnif; i++)
		if (ip4_addr_get_u32(netif_ip4_addr(&st->nifs[i])) == a)
			return &st->nifs[i];
	return NULL;
}

static struct netif *nif_by_bcast(struct nk_ustack *st, uint32_t a)
{
	unsigned i;

	if (a == 0xffffffffu)
		return st->nnif ? &st->nifs[0] : NULL;
	for (i = 0; i < st->nnif; i++) {
		struct netif *n = &st->nifs[i];
		uint32_t m = ip4_addr_get_u32(netif_ip4_netmask(n));

		if (m != 0xffffffffu &&
		    (ip4_addr_get_u32(netif_ip4_addr(n)) | ~m) == a)
			return n;
	}
	return NULL;
}

/* Sources we never answer: ourselves (lwIP would loop the reply into
 * netif_loop_output, which needs tcpip_thread), loopback, this-net,
 * multicast, limited or directed broadcast. */
static int martian_src(struct nk_ustack *st, uint32_t a)
{
	uint32_t h = ntohl(a);

	if ((h >> 24) == 127 || (h >> 24) == 0 || (h >> 28) == 0xe ||
	    h == 0xffffffffu)
		return 1;
	return nif_by_addr(st, a) || nif_by_bcast(st, a);
}

/* Destinations we refuse to send to, for the same reasons. */
static int bad_dst(struct nk_ustack *st, uint32_t a)
{
	return martian_src(st, a);
}

/* ---- lwIP netif ---- */

/* ---- sequence number modulation (seqmod.h) ---- */

static void seq_mark(struct nk_seqmod *sm, const struct tcp_pcb *pcb)
{
	for (; pcb; pcb = pcb->next)
		nk_seqmod__mark(sm, ip4_addr_get_u32(ip_2_ip4(&pcb->local_ip)),
				htons(pcb->local_port),
				ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip)),
				htons(pcb->remote_port));
}

/*
 * Drops the translations of connections lwIP no longer has: the one signal
 * a packet cannot fake (a spoofed RST would otherwise end a translation).
 * TIME_WAIT pcbs keep theirs, so a late FIN is still acknowledged right.
 */
static void seq_sweep(struct nk_ustack *st)
{
	st->last_sweep = sys_now();
	nk_seqmod__sweep_begin(st->sm);
	seq_mark(st->sm, tcp_active_pcbs);
	seq_mark(st->sm, tcp_tw_pcbs);
	nk_seqmod__sweep_end(st->sm);
}

/* Outgoing: lwIP's ISN becomes an RFC 6528 one. The frame is lwIP's own
 * segment (kept for retransmission), so it is restored after the copy. */
static int seq_out(struct nk_ustack *st, uint8_t *frame, size_t len,
		   struct nk_seqmod_undo *undo)
{
	int r = nk_seqmod__out(st->sm, frame, len, 0, undo);

	if (r == NK_SEQMOD_FULL && sys_now() - st->last_sweep >= 100) {
		seq_sweep(st);
		r = nk_seqmod__out(st->sm, frame, len, 0, undo);
	}
	return r == NK_SEQMOD_FULL ? -ENOSPC : 0;
}

static err_t nif_linkoutput(struct netif *nif, struct pbuf *p)
{
	struct nk_ustack *st = nif->state;
	uint8_t *frame = p->payload;
	struct nk_seqmod_undo undo = { 0 };
	int ret;

	if (p->next) { /* not expected with LWIP_NETIF_TX_SINGLE_PBUF */
		pbuf_copy_partial(p, st->txbuf, p->tot_len, 0);
		frame = st->txbuf;
	}
	if (st->sm && seq_out(st, frame, p->tot_len, &undo)) {
		st->stats.tx_dropped++;
		return ERR_OK; /* lwIP retransmits the SYN */
	}
	st->tx_dirty = 1;
	if (!(st->flags & NK_USTACK_F_NO_ACKCOAL) &&
	    nk_ackq__out(&st->ackq, frame, p->tot_len, ackq_emit, st)) {
		nk_seqmod__undo(frame, &undo);
		return ERR_OK; /* held: sent at the kick unless superseded */
	}
	ret = nk_l2__tx(st->l2, frame, p->tot_len);
	nk_seqmod__undo(frame, &undo);
	if (ret) {
		st->stats.tx_dropped++;
		return ERR_OK; /* a lost frame: TCP retransmits */
	}
	st->stats.tx_frames++;
	return ERR_OK;
}

static err_t nif_init(struct netif *nif)
{
	struct nk_ustack *st = nif->state;

	nif->name[0] = 'n';
	nif->name[1] = 'k';
	nif->hwaddr_len = 6;
	memcpy(nif->hwaddr, st->mac, 6);
	nif->mtu = (u16_t)(nk_l2__max_frame(st->l2) - NK_ETH_HLEN);
	nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP |
		     NETIF_FLAG_ETHERNET | NETIF_FLAG_LINK_UP;
	nif->linkoutput = nif_linkoutput;
	nif->output = etharp_output;
	nif->output_ip6 = ethip6_output;
	return ERR_OK;
}

/* ---- input ---- */

static int mac_is_ours(const struct nk_ustack *st, const uint8_t *d)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	return !memcmp(d, st->mac, 6) || !memcmp(d, bcast, 6);
}

/*
 * A SYN for a 4-tuple lwIP holds in TIME_WAIT. lwIP answers it with an ACK
 * of the old connection, the peer resets that, lwIP ignores resets in
 * TIME_WAIT, and the peer's SYN retransmits (1 s, 3 s, ...) until the
 * 120 s are over. A client that reuses its port soon (any busy one: wrk,
 * ab, a proxy; the server closed first, so the client has no TIME_WAIT)
 * stalls for seconds. Linux and the BSDs accept such a SYN as a new
 * connection when its sequence number is above what the old one received
 * (RFC 1122 4.2.2.13, RFC 6191): so do we, by dropping the TIME_WAIT pcb
 * (no RST) before lwIP sees the SYN and hands it to the listener.
 */
static void tw_reuse(struct nk_ustack *st, const struct nk_pkt_info *pi,
		     const uint8_t *tcp)
{
	u16_t sport = (u16_t)(tcp[0] << 8 | tcp[1]);
	u16_t dport = (u16_t)(tcp[2] << 8 | tcp[3]);
	u32_t seq = (u32_t)tcp[4] << 24 | (u32_t)tcp[5] << 16 |
		    (u32_t)tcp[6] << 8 | tcp[7];
	struct tcp_pcb *pcb;

	/* Every TIME_WAIT pcb has a translation: a hash lookup spares the
	 * walk for (nearly) every SYN of a fresh 4-tuple. */
	if (st->sm && !nk_seqmod__has(st->sm, pi->daddr, htons(dport),
				      pi->saddr, htons(sport)))
		return;
	for (pcb = tcp_tw_pcbs; pcb; pcb = pcb->next)
		if (pcb->remote_port == sport && pcb->local_port == dport &&
		    ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip)) == pi->saddr &&
		    ip4_addr_get_u32(ip_2_ip4(&pcb->local_ip)) == pi->daddr) {
			if (TCP_SEQ_GT(seq, pcb->rcv_nxt)) {
				tcp_abort(pcb); /* TIME_WAIT: freed, no RST */
				st->stats.tw_reused++;
			}
			return;
		}
}

/*
 * At most tw_max TIME_WAIT pcbs: lwIP keeps each for 120 s in a list that
 * tcp_input walks for every segment not of an active connection (every
 * SYN) and its slow timer walks twice a second; at 5000 connections/s
 * that would be 600 000. New ones are put first, so the tail is the
 * oldest. Walked at most every TW_TRIM_MS and only when the list changed.
 */
static void tw_trim(struct nk_ustack *st)
{
	struct tcp_pcb *pcb, *next;
	uint32_t n = 0;

	if (tcp_tw_pcbs == st->tw_head ||
	    sys_now() - st->last_tw_trim < TW_TRIM_MS)
		return;
	st->last_tw_trim = sys_now();
	for (pcb = tcp_tw_pcbs; pcb && ++n < st->tw_max; pcb = pcb->next)
		;
	if (pcb) {
		for (next = pcb->next; next; next = pcb->next) {
			tcp_abort(next); /* unlinks it from pcb */
			st->stats.tw_trimmed++;
		}
	}
	st->tw_head = tcp_tw_pcbs;
}

/*
 * A SYN (no ACK, no RST) that would make a new half-open connection of a
 * listener: beyond synq half-open ones for that listener, or synq_total in
 * all, the oldest goes first (no RST: its source is likely spoofed). So a
 * SYN flood holds at most synq_total pcbs, lwIP's own walks over them stay
 * bounded, and a real client's SYN (or its retransmission) still gets a
 * pcb. The walk is over the active pcbs, as lwIP's tcp_input does for
 * every segment anyway.
 */
static void synq_admit(struct nk_ustack *st, const struct nk_pkt_info *pi,
		       const uint8_t *tcp)
{
	struct tcp_pcb_listen *l, *lsn = NULL;
	struct tcp_pcb *pcb, *old_l = NULL, *old_t = NULL, *victim;
	u16_t sport = (u16_t)(tcp[0] << 8 | tcp[1]);
	u16_t dport = (u16_t)(tcp[2] << 8 | tcp[3]);
	u32_t age_l = 0, age_t = 0;
	unsigned n_l = 0, n_t = 0;

	for (l = tcp_listen_pcbs.listen_pcbs; l; l = l->next) {
		u32_t a = ip4_addr_get_u32(ip_2_ip4(&l->local_ip));

		if (l->local_port != dport || (a && a != pi->daddr))
			continue;
		lsn = l; /* lwIP prefers an exact address to the wildcard */
		if (a)
			break;
	}
	if (!lsn)
		return; /* lwIP answers with RST; nothing is kept */
	tw_reuse(st, pi, tcp);
	for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next) {
		u32_t age;

		if (pcb->remote_port == sport && pcb->local_port == dport &&
		    ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip)) == pi->saddr &&
		    ip4_addr_get_u32(ip_2_ip4(&pcb->local_ip)) == pi->daddr)
			return; /* a SYN of a known connection: lwIP's case */
		if (pcb->state != SYN_RCVD)
			continue;
		/* new pcbs go first in the list: >= keeps the oldest */
		age = tcp_ticks - pcb->tmr;
		n_t++;
		if (!old_t || age >= age_t) {
			old_t = pcb;
			age_t = age;
		}
		if (pcb->listener == lsn) {
			n_l++;
			if (!old_l || age >= age_l) {
				old_l = pcb;
				age_l = age;
			}
		}
	}
	if (n_l >= st->synq)
		victim = old_l;
	else if (n_t >= st->synq_total)
		victim = old_t;
	else
		return;
	/* A SYN_RCVD pcb has no err callback and no nk_usock yet. */
	tcp_abandon(victim, 0);
	st->stats.syn_evicted++;
}

static void rx_frame(void *arg, uint8_t *frame, uint32_t len)
{
	struct nk_ustack *st = arg;
	struct nk_pkt_info pi;
	struct netif *nif = NULL;
	struct pbuf *p;
	int r, csum = NK_CSUM_SKIPPED;

	st->stats.rx_frames++;
	r = nk_pkt_parse(frame, len, &pi);
	if (r != NK_PKT_OK) {
		st->stats.rx_drop[r]++;
		return;
	}
	if (!mac_is_ours(st, frame)) {
		st->stats.rx_not_ours++;
		return;
	}
	if (pi.ethertype == NK_ETH_P_ARP) {
		nif = nif_by_addr(st, pi.arp_tip);
		if (!nif) {
			st->stats.rx_not_ours++;
			return;
		}
		if (martian_src(st, pi.arp_sip) && pi.arp_sip != 0) {
			st->stats.rx_martian++;
			return;
		}
	} else {
		nif = nif_by_addr(st, pi.daddr);
		if (!nif && pi.proto == NK_IPPROTO_UDP)
			nif = nif_by_bcast(st, pi.daddr);
		if (!nif) {
			st->stats.rx_not_ours++;
			return;
		}
		if (martian_src(st, pi.saddr)) {
			st->stats.rx_martian++;
			return;
		}
		if (st->csum_mode != NK_USTACK_CSUM_LWIP) {
			r = nk_pkt_l4_csum(frame, &pi,
					   st->csum_mode ==
						   NK_USTACK_CSUM_COMPLETE);
			csum = r;
			if (r == NK_CSUM_BAD) {
				st->stats.rx_csum_bad++;
				return;
			}
			if (r == NK_CSUM_COMPLETED)
				st->stats.rx_csum_completed++;
		}
		/* hand lwIP the IP packet without Ethernet padding */
		len = NK_ETH_HLEN + pi.ip_len;
		if (pi.proto == NK_IPPROTO_TCP && !pi.is_frag) {
			if ((frame[pi.l4_off + 13] & 0x16) == 0x02)
				synq_admit(st, &pi, frame + pi.l4_off);
			if (st->sm)
				nk_seqmod__in(st->sm, frame, len);
		}
	}
	p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
	if (!p) {
		st->stats.rx_nomem++;
		return;
	}
	memcpy(p->payload, frame, len);
	st->stats.rx_to_lwip++;
	/* verified (or completed) just now: lwIP need not sum it again */
	if ((csum == NK_CSUM_OK || csum == NK_CSUM_COMPLETED) && !pi.is_frag)
		nk_lwcsum__verified(p, (uint8_t *)p->payload + pi.l4_off,
				    pi.proto, pi.l4_len);
	if (nif->input(p, nif) != ERR_OK)
		pbuf_free(p);
	nk_lwcsum__clear();
}

/* ---- engine ---- */

int nk_ustack__create(const struct nk_ustack_opts *opts, struct nk_ustack **out)
{
	struct nk_ustack *st;

	*out = NULL;
	if (!opts ||
	    opts->sz <
		    offsetof(struct nk_ustack_opts, mac) + sizeof(opts->mac) ||
	    !opts->l2)
		return -EINVAL;
	if (opts->sz >= offsetof(struct nk_ustack_opts, csum_mode) + 4 &&
	    opts->csum_mode > NK_USTACK_CSUM_LWIP)
		return -EINVAL;
	if (the_stack)
		return -EBUSY;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->l2 = opts->l2;
	if (opts->mac)
		memcpy(st->mac, opts->mac, 6);
	else
		nk_l2__mac(opts->l2, st->mac);
#define OPT(f, def)                                                          \
	(opts->sz >= offsetof(struct nk_ustack_opts, f) + sizeof(opts->f) && \
			 opts->f                                             \
		 ? opts->f                                                   \
		 : (def))
	st->csum_mode = OPT(csum_mode, NK_USTACK_CSUM_COMPLETE);
	st->udp_rcvbuf = OPT(udp_rcvbuf, 256u << 10);
	st->tcp_rxq_max = OPT(tcp_rxq_max, 1024u);
	st->flags = OPT(flags, 0u);
	st->log = OPT(log, NULL);
	st->log_arg = OPT(log_arg, NULL);
	st->synq = OPT(synq, SYNQ_DEF);
	st->synq_total = OPT(synq_total, SYNQ_TOTAL_DEF);
	st->tw_max = OPT(tw_max, TW_MAX_DEF);
	if (!(st->flags & NK_USTACK_F_NO_SEQMOD)) {
		int ret = nk_seqmod__create(OPT(seq_max, SEQ_MAX_DEF), NULL,
					    &st->sm);

		if (ret) {
			free(st);
			return ret;
		}
	}
#undef OPT
	st->ev_tailp = &st->ev_head;
	if (!lwip_inited) {
		lwip_init();
		lwip_inited = 1;
	}
	logf_(st, "lwIP checksums %s",
	      nk_lwcsum__active() ? "interposed: one pass per received segment"
				  : "not interposed: lwIP verifies again");
	the_stack = st;
	*out = st;
	return 0;
}

int nk_ustack__add_addr(struct nk_ustack *st, uint32_t addr, uint32_t netmask,
			uint32_t gw)
{
	ip4_addr_t a, m, g;
	struct netif *nif;

	if (st->nnif >= MAX_ADDRS)
		return -ENOSPC;
	if (nif_by_addr(st, addr))
		return -EEXIST;
	if (!addr || martian_src(st, addr) || !ip4_addr_netmask_valid(netmask))
		return -EINVAL;
	ip4_addr_set_u32(&a, addr);
	ip4_addr_set_u32(&m, netmask);
	ip4_addr_set_u32(&g, gw);
	nif = &st->nifs[st->nnif];
	memset(nif, 0, sizeof(*nif));
	if (!netif_add(nif, &a, &m, &g, st, nif_init, ethernet_input))
		return -EINVAL;
	netif_set_up(nif);
	netif_set_link_up(nif);
	if (st->nnif == 0)
		netif_set_default(nif);
	st->nnif++;
	logf_(st, "serving %s on %s", ip4addr_ntoa(&a), nk_l2__name(st->l2));
	return 0;
}

int nk_ustack__fd(const struct nk_ustack *st)
{
	return nk_l2__fd(st->l2);
}

int nk_ustack__timeout_ms(const struct nk_ustack *st)
{
	u32_t t;

	if (st->ev_head)
		return 0;
	t = sys_timeouts_sleeptime();
	if (t == SYS_TIMEOUTS_SLEEPTIME_INFINITE)
		return -1;
	return t > 60000 ? 60000 : (int)t;
}

int nk_ustack__poll(struct nk_ustack *st, unsigned budget)
{
	int n = nk_l2__rx(st->l2, rx_frame, st, budget ? budget : 64);

	sys_check_timeouts();
	tw_trim(st);
	if (st->sm && sys_now() - st->last_sweep >= SEQ_SWEEP_MS)
		seq_sweep(st);
	ev_dispatch(st);
	flush(st);
	return n;
}

void nk_ustack__flush(struct nk_ustack *st)
{
	flush(st);
}

void nk_ustack__stats(const struct nk_ustack *st, struct nk_ustack_stats *out)
{
	*out = st->stats;
	out->rx_csum_once = nk_lwcsum__skipped();
	out->tx_ack_coalesced = st->ackq.coalesced;
	if (st->sm) {
		struct nk_seqmod_stats ss;

		nk_seqmod__stats(st->sm, &ss);
		out->seq_conns = ss.entries;
		out->seq_full = ss.full;
		out->seq_swept = ss.swept;
		out->tcp_retrans = ss.retrans;
	}
}

/* ---- sockets: common ---- */

static size_t pbuf_copy_cb(void *obj, size_t off, void *dst, size_t len)
{
	return pbuf_copy_partial(obj, dst, (u16_t)len, (u16_t)off);
}

static void pbuf_release_cb(void *obj)
{
	pbuf_free(obj);
}

static struct nk_usock *usock_new(struct nk_ustack *st, enum usock_type type,
				  nk_usock_cb cb, void *arg)
{
	struct nk_usock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->st = st;
	s->type = type;
	s->cb = cb;
	s->arg = arg;
	if (type != US_TCP_LISTEN &&
	    nk_segq__init(&s->rxq,
			  type == US_UDP ? UDP_RXQ_ENTS : st->tcp_rxq_max,
			  type == US_UDP ? st->udp_rcvbuf : TCP_RXQ_BYTES,
			  pbuf_copy_cb, pbuf_release_cb)) {
		free(s);
		return NULL;
	}
	s->acc_tailp = &s->acc_head;
	s->all_next = st->all;
	if (st->all)
		st->all->all_pprev = &s->all_next;
	s->all_pprev = &st->all;
	st->all = s;
	st->stats.sockets++;
	return s;
}

static void usock_free(struct nk_usock *s)
{
	ev_unlink(s);
	nk_segq__fini(&s->rxq);
	*s->all_pprev = s->all_next;
	if (s->all_next)
		s->all_next->all_pprev = s->all_pprev;
	s->st->stats.sockets--;
	free(s);
}

static void to_sin(struct sockaddr_in *sin, const ip_addr_t *a, u16_t port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = ip4_addr_get_u32(ip_2_ip4(a));
}

static int from_sin(const struct sockaddr_in *sin, ip_addr_t *a, u16_t *port)
{
	if (!sin || sin->sin_family != AF_INET)
		return -EAFNOSUPPORT;
	ip_addr_set_ip4_u32_val(*a, sin->sin_addr.s_addr);
	*port = ntohs(sin->sin_port);
	return 0;
}

/* A local address to bind: the wildcard or one of the engine's own. */
static int from_local_sin(struct nk_ustack *st, const struct sockaddr_in *sin,
			  ip_addr_t *a, u16_t *port)
{
	int ret = from_sin(sin, a, port);

	if (ret)
		return ret;
	if (!ip4_addr_isany_val(*ip_2_ip4(a)) &&
	    !nif_by_addr(st, ip4_addr_get_u32(ip_2_ip4(a))))
		return -EADDRNOTAVAIL;
	return 0;
}

int nk_ustack_sock_error(struct nk_usock *s)
{
	int e = s->err;

	s->err = 0;
	return -e;
}

int nk_ustack_sock_name(const struct nk_usock *s, struct sockaddr_in *local,
			struct sockaddr_in *peer)
{
	if (s->type == US_UDP) {
		struct udp_pcb *u = s->pcb.udp;

		if (local)
			to_sin(local, &u->local_ip, u->local_port);
		if (peer) {
			if (!(u->flags & UDP_FLAGS_CONNECTED))
				return -ENOTCONN;
			to_sin(peer, &u->remote_ip, u->remote_port);
		}
		return 0;
	}
	if (!s->pcb.tcp)
		return -ENOTCONN;
	if (local)
		to_sin(local, &s->pcb.tcp->local_ip, s->pcb.tcp->local_port);
	if (peer) {
		if (s->type == US_TCP_LISTEN)
			return -ENOTCONN;
		to_sin(peer, &s->pcb.tcp->remote_ip, s->pcb.tcp->remote_port);
	}
	return 0;
}

bool nk_ustack_sock_eof(const struct nk_usock *s)
{
	return s->type == US_TCP && s->eof;
}

size_t nk_ustack_sock_rx_ready(const struct nk_usock *s)
{
	if (s->type == US_TCP)
		return nk_segq__bytes(&s->rxq);
	if (s->type == US_TCP_LISTEN)
		return s->acc_n;
	if (s->type == US_UDP && nk_segq__count(&s->rxq)) {
		const struct nk_segq_ent *e =
			&s->rxq.ents[s->rxq.head & s->rxq.mask];

		return e->len;
	}
	return 0;
}

uint32_t nk_ustack_udp_pending(const struct nk_usock *s)
{
	return s->type == US_UDP ? nk_segq__count(&s->rxq) : 0;
}

void nk_ustack_sock_counters(const struct nk_usock *s,
			     struct nk_usock_counters *out)
{
	*out = s->cnt;
}

/* ---- TCP: lwIP callbacks ---- */

/*
 * Debian's lwIP is built with TCP_WND = TCP_SND_BUF = 64 KiB, window scale
 * shift 1. Measured in nkd (docs/afxdp-nsm.md): a peer sending to a guest
 * was window-limited 94 % of the time (ss: rwnd_limited), since the window
 * reopens only when the guest has read through nkd's loop. Both bounds are
 * compile-time constants only where lwIP *initialises* or *clamps* them:
 * the pcb fields (rcv_wnd, snd_buf, ssthresh) are 32-bit at run time. So
 * once a connection is established we raise them: the receive window to
 * what the negotiated scale can announce (0xFFFF << rcv_scale, 128 KiB
 * with shift 1; unchanged without scaling), kept there by recved() instead
 * of tcp_recved() (which clamps to TCP_WND); the send buffer to
 * SND_BUF_BIG, below what TCP_SND_QUEUELEN (180 pbufs) can hold.
 */
#define SND_BUF_BIG (3u * TCP_SND_BUF)

static tcpwnd_size_t rcv_wnd_max(const struct tcp_pcb *pcb)
{
	if (!(pcb->flags & TF_WND_SCALE))
		return TCP_WND_MAX(pcb);
	return (tcpwnd_size_t)0xffff << pcb->rcv_scale;
}

static void recved(struct tcp_pcb *pcb, size_t n)
{
	tcpwnd_size_t max = rcv_wnd_max(pcb);

	if (max <= TCP_WND_MAX(pcb)) {
		for (size_t left = n; left;) {
			u16_t k = (u16_t)(left > 0xffff ? 0xffff : left);

			tcp_recved(pcb, k);
			left -= k;
		}
		return;
	}
	/* tcp_recved() without its clamp to TCP_WND */
	pcb->rcv_wnd =
		n >= max - pcb->rcv_wnd ? max : pcb->rcv_wnd + (tcpwnd_size_t)n;
	if (tcp_update_rcv_ann_wnd(pcb) >= TCP_WND_UPDATE_THRESHOLD) {
		tcp_ack_now(pcb);
		tcp_output(pcb);
	}
}

static void wnd_open(struct tcp_pcb *pcb)
{
	tcpwnd_size_t max = rcv_wnd_max(pcb);

	if (max > TCP_WND_MAX(pcb)) {
		pcb->rcv_wnd += max - TCP_WND_MAX(pcb);
		if (tcp_update_rcv_ann_wnd(pcb))
			tcp_ack_now(pcb); /* sent with the next output */
	}
	if (pcb->snd_buf <= TCP_SND_BUF) {
		pcb->snd_buf += SND_BUF_BIG - TCP_SND_BUF;
		if (pcb->ssthresh < SND_BUF_BIG)
			pcb->ssthresh = SND_BUF_BIG;
	}
}

static err_t tcp_recv_cb(void *arg, struct tcp_pcb *pcb, struct pbuf *p,
			 err_t err)
{
	struct nk_usock *s = arg;

	(void)err;
	if (!p) { /* FIN */
		s->eof = 1;
		ev_raise(s, NK_USOCK_EV_READABLE);
		return ERR_OK;
	}
	if (s->rd_shut) { /* SHUT_RD: accept and discard */
		recved(pcb, p->tot_len);
		pbuf_free(p);
		return ERR_OK;
	}
	if (nk_segq__push(&s->rxq, p, p->tot_len, 0, 0))
		return ERR_MEM; /* lwIP keeps it as refused_data, retries */
	ev_raise(s, NK_USOCK_EV_READABLE);
	return ERR_OK;
}

static err_t tcp_sent_cb(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct nk_usock *s = arg;

	(void)len;
	/* wake the writer once a useful amount of space is back */
	if (s->want_write &&
	    (tcp_sndbuf(pcb) >= TCP_SND_BUF / 4 || !pcb->unsent)) {
		s->want_write = 0;
		ev_raise(s, NK_USOCK_EV_WRITABLE);
	}
	return ERR_OK;
}

static void tcp_err_cb(void *arg, err_t err)
{
	struct nk_usock *s = arg;

	s->pcb.tcp = NULL; /* lwIP freed it */
	if (s->listener) { /* never accepted: nobody owns it but us */
		struct nk_usock **pp, *l = s->listener;

		for (pp = &l->acc_head; *pp; pp = &(*pp)->acc_next)
			if (*pp == s) {
				*pp = s->acc_next;
				if (l->acc_tailp == &s->acc_next)
					l->acc_tailp = pp;
				l->acc_n--;
				break;
			}
		usock_free(s);
		return;
	}
	if (s->connecting)
		s->err = err == ERR_RST	   ? ECONNREFUSED
			 : err == ERR_ABRT ? ETIMEDOUT
					   : lwerr_to_errno(err);
	else
		s->err = lwerr_to_errno(err);
	s->connecting = 0;
	ev_raise(s, NK_USOCK_EV_ERROR | NK_USOCK_EV_READABLE |
			    NK_USOCK_EV_WRITABLE);
}

static err_t tcp_connected_cb(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct nk_usock *s = arg;

	(void)err; /* always ERR_OK in lwIP 2.1 */
	s->connecting = 0;
	s->connected = 1;
	s->want_write = 0;
	wnd_open(pcb);
	ev_raise(s, NK_USOCK_EV_CONNECTED | NK_USOCK_EV_WRITABLE);
	return ERR_OK;
}

/*
 * Back to lwIP's accounting before tcp_close(), which resets the
 * connection unless rcv_wnd == TCP_WND_MAX (its test for "everything
 * received was read"), and before lwIP's tcp_recv_null takes over.
 */
static void wnd_close(struct tcp_pcb *pcb)
{
	tcpwnd_size_t max = rcv_wnd_max(pcb), lw = TCP_WND_MAX(pcb);

	if (max > lw)
		pcb->rcv_wnd =
			pcb->rcv_wnd > max - lw ? pcb->rcv_wnd - (max - lw) : 0;
}

static void tcp_attach(struct nk_usock *s, struct tcp_pcb *pcb)
{
	s->pcb.tcp = pcb;
	tcp_arg(pcb, s);
	tcp_recv(pcb, tcp_recv_cb);
	tcp_sent(pcb, tcp_sent_cb);
	tcp_err(pcb, tcp_err_cb);
}

static void tcp_detach(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL); /* lwIP's tcp_recv_null then eats data/FIN */
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
	tcp_poll(pcb, NULL, 0);
}

static err_t tcp_accept_cb(void *arg, struct tcp_pcb *npcb, err_t err)
{
	struct nk_usock *l = arg, *s;

	if (err != ERR_OK || !npcb)
		return ERR_VAL;
	if (l->acc_n >= l->backlog) {
		l->cnt.accept_overflow++;
		return ERR_MEM; /* lwIP aborts npcb (RST) */
	}
	s = usock_new(l->st, US_TCP, NULL, NULL);
	if (!s)
		return ERR_MEM;
	s->connected = 1;
	s->listener = l;
	tcp_attach(s, npcb);
	wnd_open(npcb);
	*l->acc_tailp = s;
	l->acc_tailp = &s->acc_next;
	l->acc_n++;
	ev_raise(l, NK_USOCK_EV_READABLE);
	return ERR_OK;
}

/* ---- TCP: API ---- */

int nk_ustack_tcp_listen(struct nk_ustack *st, const struct sockaddr_in *local,
			 int backlog, nk_usock_cb cb, void *arg,
			 struct nk_usock **out)
{
	struct tcp_pcb *pcb, *lpcb;
	struct nk_usock *s;
	ip_addr_t a;
	u16_t port;
	err_t e;
	int ret;

	*out = NULL;
	ret = from_local_sin(st, local, &a, &port);
	if (ret)
		return ret;
	if (!port)
		return -EINVAL;
	pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
	if (!pcb)
		return -ENOMEM;
	e = tcp_bind(pcb, &a, port);
	if (e != ERR_OK) {
		tcp_abort(pcb);
		return -lwerr_to_errno(e);
	}
	lpcb = tcp_listen_with_backlog_and_err(pcb, 255, &e);
	if (!lpcb) {
		tcp_abort(pcb);
		return -lwerr_to_errno(e);
	}
	s = usock_new(st, US_TCP_LISTEN, cb, arg);
	if (!s) {
		tcp_close(lpcb);
		return -ENOMEM;
	}
	s->backlog = backlog > 0 ? (unsigned)backlog : 1;
	s->pcb.tcp = lpcb;
	tcp_arg(lpcb, s);
	tcp_accept(lpcb, tcp_accept_cb);
	*out = s;
	return 0;
}

int nk_ustack_tcp_accept(struct nk_usock *ls, nk_usock_cb cb, void *arg,
			 struct nk_usock **out, struct sockaddr_in *peer)
{
	struct nk_usock *s;

	*out = NULL;
	if (ls->type != US_TCP_LISTEN)
		return -EINVAL;
	s = ls->acc_head;
	if (!s)
		return -EAGAIN;
	ls->acc_head = s->acc_next;
	if (!ls->acc_head)
		ls->acc_tailp = &ls->acc_head;
	ls->acc_n--;
	s->acc_next = NULL;
	s->listener = NULL;
	s->cb = cb;
	s->arg = arg;
	ls->cnt.accepted++;
	if (peer)
		to_sin(peer, &s->pcb.tcp->remote_ip, s->pcb.tcp->remote_port);
	/* data or FIN that came before accept: report it now */
	if (nk_segq__bytes(&s->rxq) || s->eof)
		s->pending_ev |= NK_USOCK_EV_READABLE;
	s->pending_ev |= NK_USOCK_EV_WRITABLE;
	ev_link(s);
	*out = s;
	return 0;
}

int nk_ustack_tcp_connect(struct nk_ustack *st, const struct sockaddr_in *local,
			  const struct sockaddr_in *remote, nk_usock_cb cb,
			  void *arg, struct nk_usock **out)
{
	struct tcp_pcb *pcb;
	struct nk_usock *s;
	ip_addr_t la = IPADDR4_INIT(0), ra;
	u16_t lport = 0, rport;
	err_t e;
	int ret;

	*out = NULL;
	ret = from_sin(remote, &ra, &rport);
	if (ret)
		return ret;
	if (!rport || bad_dst(st, ip4_addr_get_u32(ip_2_ip4(&ra))))
		return rport ? -ENETUNREACH : -EINVAL;
	if (local) {
		ret = from_local_sin(st, local, &la, &lport);
		if (ret)
			return ret;
	}
	pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
	if (!pcb)
		return -ENOMEM;
	if (local || lport) {
		e = tcp_bind(pcb, &la, lport);
		if (e != ERR_OK) {
			tcp_abort(pcb);
			return -lwerr_to_errno(e);
		}
	}
	s = usock_new(st, US_TCP, cb, arg);
	if (!s) {
		tcp_abort(pcb);
		return -ENOMEM;
	}
	tcp_attach(s, pcb);
	s->connecting = 1;
	e = tcp_connect(pcb, &ra, rport, tcp_connected_cb);
	if (e != ERR_OK) {
		tcp_detach(pcb);
		tcp_abort(pcb);
		s->pcb.tcp = NULL;
		usock_free(s);
		return -lwerr_to_errno(e);
	}
	api_flush(st);
	*out = s;
	return 0;
}

static int tcp_state_err(struct nk_usock *s)
{
	if (s->err) {
		int e = s->err;

		s->err = 0;
		return -e;
	}
	return 0;
}

ssize_t nk_ustack_tcp_send(struct nk_usock *s, const void *buf, size_t len,
			   unsigned flags)
{
	struct tcp_pcb *pcb = s->pcb.tcp;
	size_t n;
	err_t e;
	int ret;

	if (s->type != US_TCP)
		return -EOPNOTSUPP;
	ret = tcp_state_err(s);
	if (ret)
		return ret;
	if (s->wr_shut || (!pcb && s->connected))
		return -EPIPE;
	if (!pcb)
		return -ENOTCONN;
	if (s->connecting) {
		s->want_write = 1;
		return -EAGAIN;
	}
	if (!len)
		return 0;
	n = tcp_sndbuf(pcb);
	if (n > len)
		n = len;
	if (n > 0xffff)
		n = 0xffff;
	for (;;) {
		if (!n || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN) {
			s->want_write = 1;
			s->cnt.tx_eagain++;
			/* A MORE promise we cannot keep: what is queued must go
			 * now, or it waits for lwIP's timers (or the next ACK,
			 * which never comes when nothing is in flight). */
			if (pcb->unsent) {
				tcp_output(pcb);
				api_flush(s->st);
			}
			return -EAGAIN;
		}
		e = tcp_write(pcb, buf, (u16_t)n,
			      TCP_WRITE_FLAG_COPY |
				      (flags & NK_USOCK_SEND_MORE
					       ? TCP_WRITE_FLAG_MORE
					       : 0));
		if (e == ERR_OK)
			break;
		if (e != ERR_MEM)
			return -lwerr_to_errno(e);
		n /= 2; /* queue length limit: try a smaller piece */
	}
	/* Push unless more follows; a full buffer cannot take more. */
	if (!(flags & NK_USOCK_SEND_MORE) || n < len || !tcp_sndbuf(pcb) ||
	    tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN)
		tcp_output(pcb);
	if (n < len)
		s->want_write = 1;
	s->cnt.tx_bytes += n;
	s->cnt.tx_ops++;
	api_flush(s->st);
	return (ssize_t)n;
}

ssize_t nk_ustack_tcp_recv(struct nk_usock *s, void *buf, size_t len)
{
	struct tcp_pcb *pcb = s->pcb.tcp;
	size_t n;

	if (s->type != US_TCP)
		return -EOPNOTSUPP;
	if (s->rd_shut)
		return 0;
	n = nk_segq__read(&s->rxq, buf, len);
	if (!n) {
		int ret = tcp_state_err(s);

		if (ret)
			return ret;
		if (s->eof || (!pcb && s->connected))
			return 0;
		if (!pcb)
			return -ENOTCONN;
		return len ? -EAGAIN : 0;
	}
	s->cnt.rx_bytes += n;
	s->cnt.rx_ops++;
	if (pcb) {
		recved(pcb, n); /* give the window back */
		/* a segment we refused (queue full) can come in now */
		if (pcb->refused_data)
			tcp_process_refused_data(pcb);
		api_flush(s->st);
	}
	return (ssize_t)n;
}

int nk_ustack_tcp_shutdown(struct nk_usock *s, int how)
{
	err_t e;

	if (s->type != US_TCP)
		return -EOPNOTSUPP;
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	if (!s->pcb.tcp || s->connecting)
		return -ENOTCONN;
	if (how != SHUT_WR && !s->rd_shut) {
		size_t n = nk_segq__bytes(&s->rxq);

		s->rd_shut = 1;
		nk_segq__fini(&s->rxq);
		if (n)
			recved(s->pcb.tcp, n);
	}
	if (how != SHUT_RD && !s->wr_shut) {
		s->wr_shut = 1;
		e = tcp_shutdown(s->pcb.tcp, 0, 1);
		if (e != ERR_OK)
			return -lwerr_to_errno(e);
	}
	api_flush(s->st);
	return 0;
}

int nk_ustack_tcp_close(struct nk_usock *s)
{
	struct nk_ustack *st = s->st;
	struct tcp_pcb *pcb = s->pcb.tcp;

	if (s->type == US_TCP_LISTEN) {
		while (s->acc_head) { /* never-accepted connections: reset */
			struct nk_usock *c = s->acc_head;

			s->acc_head = c->acc_next;
			if (c->pcb.tcp) {
				tcp_detach(c->pcb.tcp);
				tcp_abort(c->pcb.tcp);
			}
			usock_free(c);
		}
		if (pcb) {
			tcp_arg(pcb, NULL);
			tcp_accept(pcb, NULL);
			tcp_close(pcb);
		}
	} else if (s->type == US_TCP) {
		if (pcb) {
			tcp_detach(pcb);
			wnd_close(pcb);
			if (tcp_close(pcb) != ERR_OK)
				tcp_abort(pcb);
		}
	} else {
		return -EOPNOTSUPP;
	}
	usock_free(s);
	api_flush(st);
	return 0;
}

int nk_ustack_tcp_nodelay(struct nk_usock *s, int on)
{
	if (s->type != US_TCP || !s->pcb.tcp)
		return -ENOTCONN;
	if (on)
		tcp_nagle_disable(s->pcb.tcp);
	else
		tcp_nagle_enable(s->pcb.tcp);
	return 0;
}

/* ---- UDP ---- */

static void udp_recv_cb(void *arg, struct udp_pcb *pcb, struct pbuf *p,
			const ip_addr_t *addr, u16_t port)
{
	struct nk_usock *s = arg;

	(void)pcb;
	/* An empty datagram is one too: recv() returns 0 for it. */
	if (nk_segq__push(&s->rxq, p, p->tot_len,
			  ip4_addr_get_u32(ip_2_ip4(addr)), htons(port))) {
		s->cnt.rx_dropped++;
		s->st->stats.udp_rx_dropped++;
		pbuf_free(p);
		return;
	}
	ev_raise(s, NK_USOCK_EV_READABLE);
}

int nk_ustack_udp_bind(struct nk_ustack *st, const struct sockaddr_in *local,
		       nk_usock_cb cb, void *arg, struct nk_usock **out)
{
	struct udp_pcb *pcb;
	struct nk_usock *s;
	ip_addr_t a;
	u16_t port;
	err_t e;
	int ret;

	*out = NULL;
	ret = from_local_sin(st, local, &a, &port);
	if (ret)
		return ret;
	pcb = udp_new_ip_type(IPADDR_TYPE_V4);
	if (!pcb)
		return -ENOMEM;
	e = udp_bind(pcb, &a, port);
	if (e != ERR_OK) {
		udp_remove(pcb);
		return -lwerr_to_errno(e);
	}
	s = usock_new(st, US_UDP, cb, arg);
	if (!s) {
		udp_remove(pcb);
		return -ENOMEM;
	}
	s->pcb.udp = pcb;
	udp_recv(pcb, udp_recv_cb, s);
	*out = s;
	return 0;
}

ssize_t nk_ustack_udp_sendto(struct nk_usock *s, const void *buf, size_t len,
			     const struct sockaddr_in *dst)
{
	struct pbuf *p;
	ip_addr_t a;
	u16_t port;
	err_t e;
	int ret;

	if (s->type != US_UDP)
		return -EOPNOTSUPP;
	ret = from_sin(dst, &a, &port);
	if (ret)
		return ret;
	if (len > UDP_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (!port)
		return -EINVAL;
	if (bad_dst(s->st, ip4_addr_get_u32(ip_2_ip4(&a))))
		return -ENETUNREACH;
	p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)len, PBUF_RAM);
	if (!p)
		return -ENOBUFS;
	if (len)
		memcpy(p->payload, buf, len);
	e = udp_sendto(s->pcb.udp, p, &a, port);
	pbuf_free(p);
	api_flush(s->st);
	if (e != ERR_OK)
		return -lwerr_to_errno(e);
	s->cnt.tx_bytes += len;
	s->cnt.tx_ops++;
	return (ssize_t)len;
}

ssize_t nk_ustack_udp_recvfrom(struct nk_usock *s, void *buf, size_t len,
			       struct sockaddr_in *src)
{
	uint32_t addr = 0;
	uint16_t port = 0;
	ssize_t n;

	if (s->type != US_UDP)
		return -EOPNOTSUPP;
	n = nk_segq__pop_dgram(&s->rxq, buf, len, &addr, &port, NULL);
	if (n < 0)
		return n;
	if (src) {
		memset(src, 0, sizeof(*src));
		src->sin_family = AF_INET;
		src->sin_addr.s_addr = addr;
		src->sin_port = port;
	}
	s->cnt.rx_bytes += (uint64_t)n;
	s->cnt.rx_ops++;
	return n;
}

int nk_ustack_udp_close(struct nk_usock *s)
{
	if (s->type != US_UDP)
		return -EOPNOTSUPP;
	udp_remove(s->pcb.udp);
	usock_free(s);
	return 0;
}

void nk_ustack__destroy(struct nk_ustack *st)
{
	unsigned i;

	if (!st)
		return;
	while (st->all) {
		struct nk_usock *s = st->all;

		if (s->type == US_UDP) {
			udp_remove(s->pcb.udp);
		} else if (s->pcb.tcp) {
			if (s->type == US_TCP_LISTEN) {
				tcp_arg(s->pcb.tcp, NULL);
				tcp_accept(s->pcb.tcp, NULL);
				tcp_close(s->pcb.tcp);
			} else {
				tcp_detach(s->pcb.tcp);
				tcp_abort(s->pcb.tcp);
			}
		}
		usock_free(s);
	}
	flush(st);
	for (i = 0; i < st->nnif; i++) {
		etharp_cleanup_netif(&st->nifs[i]);
		netif_remove(&st->nifs[i]);
	}
	nk_seqmod__destroy(st->sm);
	the_stack = NULL;
	free(st);
}
