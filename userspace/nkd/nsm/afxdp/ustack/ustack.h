/* SPDX-License-Identifier: MIT */
/*
 * nk_ustack: the userspace TCP/IP engine of the afxdp NSM.
 *
 * lwIP's raw API (Debian liblwip 2.1.3) on a pluggable L2 backend (l2.h),
 * driven by ONE thread, polled: the owner calls nk_ustack__poll() when
 * nk_ustack__fd() is readable or nk_ustack__timeout_ms() has passed, and
 * calls the socket functions below from the same thread. Nothing here
 * blocks and nothing here is thread-safe. lwIP is a single global instance
 * per process, so there is at most one nk_ustack at a time (-EBUSY).
 *
 * In front of lwIP the engine validates every frame (nk_pkt_parse), keeps
 * only frames for its MAC and addresses, drops martian sources, and checks
 * TCP/UDP checksums, completing the partial checksums a veth peer sends
 * (docs/afxdp-nsm.md, "Checksums").
 *
 * Sockets: opaque struct nk_usock handles, created by listen/accept/
 * connect/udp_bind and freed by the matching close (after which the handle
 * is gone). Readiness is reported through the socket's callback with
 * NK_USOCK_EV_* bits, edge style: the callback runs from nk_ustack__poll()
 * only (never from inside lwIP and never from another nk_ustack_* call), so
 * it may call any function here, including close on any socket. After an
 * event, consume until -EAGAIN; a new event comes only when the state
 * changes again.
 *
 * Addresses are struct sockaddr_in (AF_INET; IPv6 is not served yet).
 * Return values: >= 0 on success, -errno on failure.
 */
#ifndef NK_USTACK_H
#define NK_USTACK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "l2.h"
#include "pkt.h"

struct nk_ustack;
struct nk_usock;

/* How received TCP/UDP checksums are handled (nk_ustack_opts.csum_mode). */
enum nk_ustack_csum {
	NK_USTACK_CSUM_COMPLETE =
		0, /* verify; complete partial ones (default) */
	NK_USTACK_CSUM_STRICT = 1, /* verify; drop partial ones too */
	NK_USTACK_CSUM_LWIP = 2, /* leave it to lwIP (drops partial silently) */
};

typedef void (*nk_ustack_log_fn)(void *arg, const char *msg);

struct nk_ustack_opts {
	size_t sz; /* sizeof(struct nk_ustack_opts) */
	struct nk_l2 *l2; /* borrowed: must outlive the stack */
	const uint8_t *mac; /* our MAC; NULL: the backend's */
	uint32_t csum_mode; /* enum nk_ustack_csum */
	uint32_t udp_rcvbuf; /* bytes queued per UDP socket (256 KiB) */
	uint32_t tcp_rxq_max; /* segments queued per TCP socket (1024) */
	nk_ustack_log_fn log; /* NULL: silent */
	void *log_arg;
	uint32_t flags; /* NK_USTACK_F_* */
	/*
	 * SYN flood bound: half-open (SYN_RCVD) connections per listener and
	 * in all; a SYN beyond either evicts the oldest half-open one of its
	 * listener (or the oldest of all). 0: 64 and 1024.
	 */
	uint32_t synq, synq_total;
	/* Connections whose sequence numbers are translated (seqmod.h); a
	 * SYN beyond it is not sent (lwIP retries). 0: 65536. */
	uint32_t seq_max;
	/* TIME_WAIT connections kept (Linux's tcp_max_tw_buckets): beyond
	 * it the oldest are dropped. lwIP keeps them 2 MSL = 120 s in lists
	 * it walks per segment. 0: 1024. */
	uint32_t tw_max;
};

/*
 * Socket calls leave their frames queued in the backend instead of kicking
 * it each time; nk_ustack__poll() (or nk_ustack__flush()) sends them. For
 * an owner that always polls before it sleeps (nkd): one TX syscall per
 * loop pass instead of one per datagram or send.
 */
#define NK_USTACK_F_DEFER_FLUSH (1U << 0)
/*
 * Send lwIP's own initial sequence numbers (a counter) instead of RFC 6528
 * ones (seqmod.h). Only for measuring the translation's cost: off-path
 * hosts can then guess sequence numbers.
 */
#define NK_USTACK_F_NO_SEQMOD (1U << 1)
/*
 * Send every pure ACK lwIP makes instead of only the newest of each
 * connection per TX batch (ackq.h). Only for measuring.
 */
#define NK_USTACK_F_NO_ACKCOAL (1U << 2)

struct nk_ustack_stats {
	uint64_t rx_frames; /* handed to us by the backend */
	uint64_t rx_to_lwip; /* passed every check, given to lwIP */
	uint64_t rx_drop[NK_PKT_DROP__MAX]; /* by nk_pkt_parse() reason */
	uint64_t rx_not_ours; /* other MAC / address / multicast */
	uint64_t rx_martian; /* source is ours, loopback, multicast, ... */
	uint64_t rx_csum_bad; /* wrong TCP/UDP checksum */
	uint64_t rx_csum_completed; /* partial checksum completed */
	uint64_t rx_nomem; /* no pbuf */
	uint64_t tx_frames; /* lwIP output to the backend */
	uint64_t tx_dropped; /* backend refused (full) */
	uint64_t sockets; /* open handles */
	uint64_t syn_evicted; /* half-open connections dropped for a new SYN */
	uint64_t seq_conns; /* connections with translated sequence numbers */
	uint64_t seq_full; /* SYN/SYN-ACK not sent: translation table full */
	uint64_t seq_swept; /* translations dropped after lwIP freed the pcb */
	uint64_t tw_reused; /* TIME_WAIT ended by a new SYN (RFC 1122 4.2.2.13) */
	uint64_t tw_trimmed; /* TIME_WAIT dropped beyond tw_max */
	uint64_t rx_csum_once; /* lwIP trusted our check (lwip_csum.h) */
	uint64_t tx_ack_coalesced; /* pure ACKs superseded before the kick */
	uint64_t tcp_retrans; /* segments sent again (seqmod.h; 0 without) */
	uint64_t udp_rx_dropped; /* datagrams dropped: a socket's queue full */
};

/* Creates the engine on an opened backend. -EBUSY if one exists. */
int nk_ustack__create(const struct nk_ustack_opts *opts,
		      struct nk_ustack **out);

/* Aborts every socket, removes the interfaces, frees st. NULL-safe. */
void nk_ustack__destroy(struct nk_ustack *st);

/*
 * Serves IPv4 address addr/netmask (network order) with an lwIP netif;
 * gw (or 0) is the next hop for other destinations (the first address's gw
 * is the default route). -EEXIST if already served.
 */
int nk_ustack__add_addr(struct nk_ustack *st, uint32_t addr, uint32_t netmask,
			uint32_t gw);

/* The fd to poll for POLLIN (the backend's). */
int nk_ustack__fd(const struct nk_ustack *st);

/* Milliseconds until nk_ustack__poll() is due anyway; -1: no timer. */
int nk_ustack__timeout_ms(const struct nk_ustack *st);

/*
 * Does the work: receives up to budget frames, runs lwIP's timers,
 * delivers socket events, flushes TX. Returns frames received or -errno.
 */
int nk_ustack__poll(struct nk_ustack *st, unsigned budget);

/* Kicks the backend if frames are queued (see NK_USTACK_F_DEFER_FLUSH). */
void nk_ustack__flush(struct nk_ustack *st);

void nk_ustack__stats(const struct nk_ustack *st, struct nk_ustack_stats *out);

/* ---- sockets ---- */

#define NK_USOCK_EV_READABLE (1U << 0) /* data, EOF, connection or datagram */
#define NK_USOCK_EV_WRITABLE (1U << 1) /* send space again after -EAGAIN */
#define NK_USOCK_EV_CONNECTED (1U << 2) /* active open completed */
#define NK_USOCK_EV_ERROR (1U << 3) /* see nk_ustack_sock_error() */

typedef void (*nk_usock_cb)(struct nk_usock *s, uint32_t events, void *arg);

struct nk_usock_counters {
	uint64_t rx_bytes, tx_bytes; /* payload through recv/send */
	uint64_t rx_ops, tx_ops; /* successful calls */
	uint64_t tx_eagain; /* send refused for lack of space */
	uint64_t rx_dropped; /* UDP datagrams dropped: queue full */
	uint64_t accepted; /* listener: connections handed out */
	uint64_t accept_overflow; /* listener: refused, backlog full */
};

/* Flags for nk_ustack_tcp_send(). */
#define NK_USOCK_SEND_MORE (1U << 0) /* more follows: do not push yet */

/*
 * Listens on local (addr may be INADDR_ANY; port != 0). At most backlog
 * connections wait for nk_ustack_tcp_accept(); beyond it they are reset.
 * READABLE on the listener means "accept now".
 */
int nk_ustack_tcp_listen(struct nk_ustack *st, const struct sockaddr_in *local,
			 int backlog, nk_usock_cb cb, void *arg,
			 struct nk_usock **out);

/* Takes a waiting connection: 0 and *out (peer in *peer if not NULL), or
 * -EAGAIN. The new socket may already be readable (an event follows). */
int nk_ustack_tcp_accept(struct nk_usock *ls, nk_usock_cb cb, void *arg,
			 struct nk_usock **out, struct sockaddr_in *peer);

/*
 * Starts an active open from local (NULL: any address, ephemeral port) to
 * remote. Returns 0 with *out; CONNECTED or ERROR follows. Destinations that
 * are ours, loopback, multicast or broadcast fail with -ENETUNREACH
 * (guest-to-guest traffic on one host belongs to the shm NSM).
 */
int nk_ustack_tcp_connect(struct nk_ustack *st, const struct sockaddr_in *local,
			  const struct sockaddr_in *remote, nk_usock_cb cb,
			  void *arg, struct nk_usock **out);

/*
 * Copies up to len bytes into lwIP's send buffer (64 KiB per connection).
 * Returns the bytes taken (maybe fewer than len) or -EAGAIN when there is no
 * room (WRITABLE follows), -EPIPE after shutdown, or the socket's error.
 */
ssize_t nk_ustack_tcp_send(struct nk_usock *s, const void *buf, size_t len,
			   unsigned flags);

/*
 * Reads up to len bytes. Returns bytes, 0 at end of stream, -EAGAIN when
 * nothing is queued, or the socket's error. Reading opens the receive
 * window again: unread data is the backpressure on the peer.
 */
ssize_t nk_ustack_tcp_recv(struct nk_usock *s, void *buf, size_t len);

/* SHUT_RD, SHUT_WR (sends FIN) or SHUT_RDWR. */
int nk_ustack_tcp_shutdown(struct nk_usock *s, int how);

/*
 * Closes a TCP socket or listener and frees the handle. Graceful (FIN) when
 * everything received was read, else a reset, as Linux does. Queued send
 * data still goes out; lwIP finishes the close on its own.
 */
int nk_ustack_tcp_close(struct nk_usock *s);

/* Disables (on != 0) or enables Nagle's algorithm. */
int nk_ustack_tcp_nodelay(struct nk_usock *s, int on);

/* A UDP socket bound to local (port 0: ephemeral). */
int nk_ustack_udp_bind(struct nk_ustack *st, const struct sockaddr_in *local,
		       nk_usock_cb cb, void *arg, struct nk_usock **out);

/* Sends one datagram (len <= 65507). Returns len or -errno. */
ssize_t nk_ustack_udp_sendto(struct nk_usock *s, const void *buf, size_t len,
			     const struct sockaddr_in *dst);

/* Receives one datagram, truncated to len. Returns its copied length, or
 * -EAGAIN. *src (if not NULL) gets the sender. */
ssize_t nk_ustack_udp_recvfrom(struct nk_usock *s, void *buf, size_t len,
			       struct sockaddr_in *src);

/* Datagrams queued (nk_ustack_sock_rx_ready() is 0 for an empty one). */
uint32_t nk_ustack_udp_pending(const struct nk_usock *s);

/* Closes a UDP socket and frees the handle (queued datagrams dropped). */
int nk_ustack_udp_close(struct nk_usock *s);

/* Returns and clears the pending error as -errno (SO_ERROR), or 0. */
int nk_ustack_sock_error(struct nk_usock *s);

/* Local and/or peer address (either may be NULL). -ENOTCONN w/o a peer. */
int nk_ustack_sock_name(const struct nk_usock *s, struct sockaddr_in *local,
			struct sockaddr_in *peer);

/* Bytes ready to read (FIONREAD; UDP: the next datagram's size; a
 * listener: connections waiting for accept). */
size_t nk_ustack_sock_rx_ready(const struct nk_usock *s);

/* TCP: the peer's FIN has arrived (data before it may still be unread). */
bool nk_ustack_sock_eof(const struct nk_usock *s);

void nk_ustack_sock_counters(const struct nk_usock *s,
			     struct nk_usock_counters *out);

#endif /* NK_USTACK_H */
