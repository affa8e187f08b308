// SPDX-License-Identifier: MIT
/*
 * The "afxdp" NSM: guest sockets live in nk_ustack, the userspace TCP/IP
 * engine (lwIP raw API) in ./ustack/, whose frames come from AF_XDP
 * sockets that nk-loader's nk_steer program fills (docs/afxdp-nsm.md,
 * docs/steering.md).
 *
 * Rules:
 *  - the engine is single-threaded and polled: everything here runs on
 *    nkd's one loop thread. Its packet fd and a timerfd (lwIP timers,
 *    flow expiry; op timeouts are the engine's) are watched by multishot polls on nkd's
 *    io_uring, so nkd wakes for packets; while nkd is busy, poll() runs the
 *    engine on every pass.
 *  - the engine reports readiness only from nk_ustack__poll(), edge style;
 *    each event runs the socket's queues (RECV/ACCEPT, SEND, a blocking
 *    CONNECT) and then tells the engine (placeholders).
 *  - steering entries are written before the engine can need them: an
 *    endpoint before lwIP listens, a flow (with a port we choose) before
 *    the SYN leaves, so the first answer is never passed to the kernel.
 *    A guest binding INADDR_ANY gets one endpoint per NSM address, never
 *    the wildcard: the kernel keeps its own addresses (the hybrid rule).
 *  - flows outlive close() by NK_XFLOW_LINGER_NS: lwIP still sends queued
 *    data and FIN after close and needs the ACKs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "engine.h"
#include "log.h"
#include "loop.h"
#include "nk_steer_maps.h"
#include "recv_batch.h"
#include "ustack.h"
#include "validate.h"
#include "xcounters.h"
#include "xlinger.h"
#include "xports.h"

#define READ_EVENTS (POLLIN | POLLERR | POLLHUP | POLLRDHUP)
/* Frames taken per nk_ustack__poll(): a ring's worth keeps TX batching. */
#define NK_XRX_BUDGET 256u
/* Flows stay steered this long after close (lwIP's FIN/TIME_WAIT). */
#define NK_XFLOW_LINGER_NS (30ll * 1000000000ll)
/* Ephemeral ports we pick ourselves (the flow must exist before SYN):
 * random, from xports.c. */
/* lwIP resets connections beyond the backlog instead of dropping SYNs as
 * Linux does, so small backlogs (python's 5) are raised to this. */
#define NK_XBACKLOG_MIN 128
#define NK_XSLOT 0u /* our XSK slot in every queue (nk_xsks layout) */

enum { XP_PKT = 0, XP_TIMER = 1 };

struct xacl {
	uint32_t guest_id;
	uint8_t addr[16];
	unsigned plen;
};

/* The NSM's own counters (logged when it stops, with the engine's). */
struct xn_stats {
	uint64_t recv_batches; /* batch RECVs answered with datagrams */
	uint64_t recv_batch_dgrams; /* datagrams in them */
};

struct xn {
	struct nk_engine *e;
	struct nk_loop *loop;
	struct nk_nsm_conf conf;
	struct nk_l2 *l2;
	struct nk_ustack *st;
	struct nk_steer_maps *maps; /* NULL: no steering (packet/tap) */
	int xskmap_fd;
	unsigned slots_per_queue;
	int tfd; /* timerfd */
	int64_t armed_ns; /* absolute CLOCK_MONOTONIC deadline armed, 0 none */
	struct nk_list socks; /* asock.link */
	struct nk_xlinger linger; /* flows of closed connections */
	struct nk_xports ports;
	uint8_t acl_done[NK_MAX_GUESTS / 8];
	struct xacl *acls;
	unsigned nr_acls;
	uint64_t work; /* completions, for poll()'s return */
	struct xn_stats stats;
};

struct asock {
	struct nk_list link; /* xn.socks */
	struct xn *xn;
	struct nk_sock *s;
	struct nk_usock *us; /* NULL until listen/connect/accept/UDP bind */
	uint32_t gid; /* the guest's id: owner of its map entries */
	uint16_t port; /* held in xn->ports (host order), 0 none */
	bool port_excl;
	bool listener, closing;
	bool bound; /* BIND seen: local holds it */
	struct sockaddr_in local;
	struct sockaddr_in peer; /* UDP connect target */
	bool udp_connected;
	bool connecting, eof, rd_ready;
	int err; /* pending error for RECV/SEND, positive errno */
	bool nodelay;
	int reuseaddr, keepalive;
	struct nk_ep_key eps[NK_NSM_MAX_ADDRS];
	unsigned nr_eps;
	struct nk_flow_key flow;
	bool has_flow;
	struct nk_req *connect_op;
	/*
	 * The socket's one TCP SEND waiting for window: the engine hands
	 * down one at a time, in order, and a SHUT_WR only after them
	 * (core/sendq.c).
	 */
	struct nk_req *send_op;
	struct nk_list recvq; /* nk_req.qlink */
	/*
	 * Paths that complete a SEND and touch a afterwards hold it: the
	 * engine may release the socket from inside that completion, and
	 * finalize waits for the last hold (hold()/unhold()).
	 */
	unsigned holds;
};

static void pump(struct asock *a);
static void finalize(struct asock *a);

/* Per-operation state, in the op's NSM scratch space (nsm.h). */
struct xreq {
	bool accept; /* an ACCEPT on recvq (RECVs share it) */
};

_Static_assert(sizeof(struct xreq) <= NK_NSM_SCRATCH, "xreq fits the scratch");

static struct xreq *xr(struct nk_req *op)
{
	return (struct xreq *)(void *)op->scratch;
}

static int xp_proto(const struct asock *a)
{
	return a->s && a->s->type == SOCK_DGRAM ? NK_XP_UDP : NK_XP_TCP;
}

/* Gives back the local port a holds (xports.h). */
static void port_release(struct asock *a)
{
	if (!a->port)
		return;
	nk_xports__release(&a->xn->ports, xp_proto(a), a->port, a->port_excl);
	a->port = 0;
	a->port_excl = false;
}

/* ------------------------------------------------------------------ */
/* Helpers. */

static void addr16(uint8_t out[16], uint32_t a)
{
	nk_steer_addr_v4(out, (struct in_addr){ .s_addr = a });
}

static uint32_t mask_of(unsigned prefix)
{
	return prefix ? htonl(~0u << (32 - prefix)) : 0;
}

static bool is_ours(const struct xn *xn, uint32_t a)
{
	for (unsigned i = 0; i < xn->conf.nr_addrs; i++)
		if (xn->conf.addrs[i].addr == a)
			return true;
	return false;
}

/* Source address for dst: the address on its subnet, else the gateway's. */
static uint32_t pick_src(const struct xn *xn, uint32_t dst)
{
	for (int pass = 0; pass < 2; pass++) {
		uint32_t d = pass ? xn->conf.gw : dst;

		for (unsigned i = 0; d && i < xn->conf.nr_addrs; i++) {
			uint32_t m = mask_of(xn->conf.addrs[i].prefix);

			if ((xn->conf.addrs[i].addr & m) == (d & m))
				return xn->conf.addrs[i].addr;
		}
	}
	return xn->conf.addrs[0].addr;
}

static void queue_op(struct nk_list *q, struct nk_req *op)
{
	op->in_nsm = true;
	nk_list__add_tail(q, &op->qlink);
}

static void done(struct xn *xn, struct nk_req *op, int res, uint32_t flags,
		 uint32_t aux, uint32_t handle)
{
	xn->work++;
	nk_engine__op_done(op, res, flags, aux, handle);
}

/* Completes the socket's SEND (a may be released and freed meanwhile). */
static void send_done(struct asock *a, struct nk_req *op, int res)
{
	a->send_op = NULL;
	op->in_nsm = false;
	done(a->xn, op, res, 0, 0, 0);
}

static void hold(struct asock *a)
{
	a->holds++;
}

/* Drops a hold; the last one finalizes a released socket. */
static void unhold(struct asock *a)
{
	if (!--a->holds && a->closing && !a->send_op)
		finalize(a);
}

/* Takes op off its queue and completes it. */
static void dequeue_done(struct asock *a, struct nk_req *op, int res,
			 uint32_t flags, uint32_t aux)
{
	op->in_nsm = false;
	nk_list__del(&op->qlink);
	done(a->xn, op, res, flags, aux, 0);
}

/* ------------------------------------------------------------------ */
/* Steering entries. */

static int eps_add(struct asock *a, int proto, const struct sockaddr_in *sin)
{
	struct xn *xn = a->xn;
	struct nk_target t = { a->gid, NK_XSLOT };
	int ret = 0;

	if (!xn->maps)
		return 0;
	a->nr_eps = 0;
	for (unsigned i = 0; i < xn->conf.nr_addrs; i++) {
		uint32_t addr = xn->conf.addrs[i].addr;
		uint8_t a16[16];

		if (sin->sin_addr.s_addr != INADDR_ANY &&
		    sin->sin_addr.s_addr != addr)
			continue;
		addr16(a16, addr);
		nk_steer_ep_key(&a->eps[a->nr_eps], proto, a16,
				ntohs(sin->sin_port));
		ret = nk_steer_maps__endpoint_add(xn->maps, &a->eps[a->nr_eps],
						  &t);
		if (ret)
			break;
		a->nr_eps++;
	}
	if (ret) {
		for (unsigned i = 0; i < a->nr_eps; i++)
			nk_steer_maps__endpoint_del(xn->maps, &a->eps[i]);
		a->nr_eps = 0;
		return ret == -EEXIST ? -EADDRINUSE : ret;
	}
	return 0;
}

static void eps_del(struct asock *a)
{
	for (unsigned i = 0; a->xn->maps && i < a->nr_eps; i++)
		nk_steer_maps__endpoint_del_owned(a->xn->maps, &a->eps[i],
						  a->gid);
	a->nr_eps = 0;
}

/*
 * A flow we re-add must not be deleted later by its lingering twin. Only
 * the guest's own lingering flow is taken over: another guest's stays (and
 * keeps its key) until it expires.
 */
static bool linger_forget(struct xn *xn, const struct nk_flow_key *k,
			  uint32_t gid)
{
	return nk_xlinger__take(&xn->linger, k, gid);
}

static int flow_add(struct asock *a, const struct sockaddr_in *l,
		    const struct sockaddr_in *r)
{
	struct xn *xn = a->xn;
	struct nk_target t = { a->gid, NK_XSLOT };
	uint8_t la[16], ra[16];
	bool forgot;
	int ret;

	if (!xn->maps)
		return 0;
	addr16(la, l->sin_addr.s_addr);
	addr16(ra, r->sin_addr.s_addr);
	nk_steer_flow_key(&a->flow, IPPROTO_TCP, la, ntohs(l->sin_port), ra,
			  ntohs(r->sin_port));
	forgot = linger_forget(xn, &a->flow, a->gid);
	ret = nk_steer_maps__flow_add(xn->maps, &a->flow, &t);
	if (ret == -EEXIST && forgot) {
		/* Left by our own socket whose linger we just forgot. */
		nk_steer_maps__flow_del_owned(xn->maps, &a->flow, a->gid);
		ret = nk_steer_maps__flow_add(xn->maps, &a->flow, &t);
	}
	/* Never another guest's key: its connection would die. */
	if (ret == -EEXIST)
		ret = -EADDRINUSE;
	a->has_flow = !ret;
	return ret;
}

static void flow_linger(struct asock *a, bool now)
{
	struct xn *xn = a->xn;

	if (!a->has_flow)
		return;
	a->has_flow = false;
	if (now || nk_xlinger__add(&xn->linger, &a->flow, a->gid,
				   nk_now_ns() + NK_XFLOW_LINGER_NS))
		nk_steer_maps__flow_del_owned(xn->maps, &a->flow, a->gid);
}

static void linger_expire(struct xn *xn, int64_t now, bool all)
{
	struct nk_flow_key k;
	uint32_t gid;

	while (nk_xlinger__pop(&xn->linger, now, all, &k, &gid))
		nk_steer_maps__flow_del_owned(xn->maps, &k, gid);
}

/* The guest's source ACL, once per guest id (config guests only). */
static void acl_install(struct xn *xn, const struct nk_guest *g)
{
	uint32_t id = g->id;
	int mode = NK_ACL_MODE_DENY_LIST;

	if (!xn->maps || id >= NK_MAX_GUESTS ||
	    (xn->acl_done[id / 8] & (1u << (id % 8))))
		return;
	xn->acl_done[id / 8] |= (uint8_t)(1u << (id % 8));
	for (unsigned i = 0; i < g->conf.nr_acl; i++)
		if (!g->conf.acl_deny[i])
			mode = NK_ACL_MODE_ALLOW_LIST;
	if (!g->conf.nr_acl)
		mode = NK_ACL_MODE_OFF;
	for (unsigned i = 0; i < g->conf.nr_acl; i++) {
		const struct nk_bind_rule *r = &g->conf.acl[i];
		struct xacl *n =
			realloc(xn->acls, (xn->nr_acls + 1) * sizeof(*n));
		uint32_t a4;

		if (!n)
			break;
		xn->acls = n;
		n = &xn->acls[xn->nr_acls];
		memcpy(&a4, r->addr, 4);
		n->guest_id = id;
		addr16(n->addr, a4);
		n->plen = 96 + r->prefix;
		if (nk_steer_maps__acl_add(xn->maps, id, n->addr, n->plen,
					   g->conf.acl_deny[i] ? NK_ACL_DENY
							       : NK_ACL_ALLOW))
			nk_warn("nsm %s: guest %s: ACL entry refused",
				xn->conf.name, g->conf.name);
		else
			xn->nr_acls++;
	}
	/* Also resets a mode a previous nkd left for this id. */
	nk_steer_maps__acl_mode_set(xn->maps, id, (enum nk_acl_mode)mode);
}

/* ------------------------------------------------------------------ */
/* Readiness. */

static unsigned revents_of(struct asock *a)
{
	struct nk_sock *s = a->s;
	unsigned ev = 0;

	if (!s)
		return 0;
	/*
	 * A listener is readable while connections wait, not from the first
	 * READABLE until an accept finds the queue empty: that kept the
	 * placeholder readable after the last one was taken, and a blocking
	 * accept() after select() (iperf3's server) hung. rd_ready is the
	 * shutdown wake only.
	 */
	if (a->listener)
		return a->rd_ready || (a->us && nk_ustack_sock_rx_ready(a->us))
			       ? POLLIN
			       : 0;
	if (s->type == SOCK_DGRAM) {
		if (a->us && (a->rd_ready || nk_ustack_udp_pending(a->us)))
			ev |= POLLIN;
		return ev | POLLOUT;
	}
	if (!a->us)
		return s->so_error ? POLLERR | POLLOUT : 0;
	if (a->connecting)
		return 0;
	ev |= POLLOUT;
	if (nk_ustack_sock_rx_ready(a->us))
		ev |= POLLIN;
	/* FIN arrived: readable and RDHUP at once, as the kernel says it. */
	if (a->eof || nk_ustack_sock_eof(a->us))
		ev |= POLLIN | POLLRDHUP;
	if (a->err)
		ev |= POLLIN | POLLERR | POLLHUP;
	return ev;
}

static void tell(struct asock *a, bool arrival)
{
	if (a->s && !a->closing)
		nk_engine__sock_event(a->xn->e, a->s, revents_of(a), arrival);
}

/* ------------------------------------------------------------------ */
/* Engine callback: runs from nk_ustack__poll() only. */

static void connect_finish(struct asock *a, int res)
{
	struct nk_sock *s = a->s;

	a->connecting = false;
	if (!s)
		return;
	if (!res) {
		s->state = NK_SS_ESTABLISHED;
		if (a->nodelay)
			nk_ustack_tcp_nodelay(a->us, 1);
	} else {
		s->state = NK_SS_CLOSED;
	}
	if (a->connect_op) {
		struct nk_req *op = a->connect_op;

		a->connect_op = NULL;
		op->in_nsm = false;
		done(a->xn, op, res, 0, 0, 0);
	} else if (res) {
		s->so_error = -res; /* background connect: SO_ERROR */
	}
	if (!a->closing)
		nk_engine__sock_event(a->xn->e, s,
				      POLLOUT | (res ? POLLERR : 0), res != 0);
}

static void us_cb(struct nk_usock *us, uint32_t ev, void *arg)
{
	struct asock *a = arg;

	(void)us;
	hold(a);
	if (ev & NK_USOCK_EV_ERROR) {
		int r = nk_ustack_sock_error(a->us);

		if (r && a->connecting) {
			connect_finish(a, r);
		} else if (r) {
			a->err = -r;
			if (a->s)
				a->s->so_error = -r;
		}
		if (!r && a->connecting)
			connect_finish(a, -ECONNREFUSED);
	}
	if (ev & NK_USOCK_EV_CONNECTED)
		connect_finish(a, 0);
	if ((ev & NK_USOCK_EV_READABLE) && !a->listener)
		a->rd_ready = true;
	pump(a);
	tell(a, ev & (NK_USOCK_EV_READABLE | NK_USOCK_EV_ERROR));
	unhold(a);
}

/* ------------------------------------------------------------------ */
/* Queues. */

/* One TCP RECV attempt: bytes, 0 (EOF), -EAGAIN (wait) or -errno. */
static int tcp_recv_once(struct asock *a, struct nk_req *op)
{
	ssize_t n;

	if (!a->us)
		return a->s->state == NK_SS_CLOSED ? 0 : -ENOTCONN;
	if (a->err && !nk_ustack_sock_rx_ready(a->us)) {
		int e = a->err;

		a->err = 0;
		return -e;
	}
	n = nk_ustack_tcp_recv(a->us, op->buf + op->done, op->len - op->done);
	if (n == 0 && op->len > op->done)
		a->eof = true;
	return (int)n;
}

static void finish_tcp_recv(struct asock *a, struct nk_req *op, int res,
			    bool queued)
{
	uint32_t flags = 0;

	if (res >= 0 || op->done)
		res = (int)op->done;
	if (res == 0 && op->len)
		flags |= NK_CQE_F_EOF;
	if (queued)
		dequeue_done(a, op, res, flags, (uint32_t)(res > 0 ? res : 0));
	else
		done(a->xn, op, res, flags, (uint32_t)(res > 0 ? res : 0), 0);
}

/* Runs a TCP RECV as far as it goes; true when it completed. */
static bool run_tcp_recv(struct asock *a, struct nk_req *op, bool queued)
{
	for (;;) {
		int n = tcp_recv_once(a, op);

		if (n > 0) {
			op->done += (uint32_t)n;
			if ((op->msg_flags & MSG_WAITALL) && op->done < op->len)
				continue;
			finish_tcp_recv(a, op, n, queued);
			return true;
		}
		if (n == -EAGAIN) {
			a->rd_ready = false;
			if (op->done && !(op->msg_flags & MSG_WAITALL)) {
				finish_tcp_recv(a, op, 0, queued);
				return true;
			}
			return false;
		}
		finish_tcp_recv(a, op, n, queued);
		return true;
	}
}

/* One UDP RECV attempt; -EAGAIN when nothing is queued. */
/*
 * What a UDP receive meets before any datagram: no stack socket yet
 * (-EAGAIN), or an ICMP error left for the next call (taken once).
 */
static int udp_rx_start(struct asock *a)
{
	int e;

	if (!a->us)
		return -EAGAIN;
	e = a->err;
	a->err = 0;
	return -e;
}

static int udp_recv(struct asock *a, struct nk_req *op, uint32_t *flags,
		    uint32_t *aux)
{
	uint32_t skip = (op->sqe_flags & NK_SQE_F_ADDR)
				? sizeof(struct nk_sockaddr)
				: 0;
	uint32_t cap = op->len - skip;
	struct sockaddr_in src;
	size_t size;
	ssize_t n;
	int res;

	*flags = 0;
	*aux = 0;
	if ((res = udp_rx_start(a)))
		return res;
	size = nk_ustack_sock_rx_ready(a->us);
	n = nk_ustack_udp_recvfrom(a->us, op->buf + skip, cap, &src);
	if (n < 0) {
		if (n == -EAGAIN)
			a->rd_ready = false;
		return (int)n;
	}
	*aux = (uint32_t)n;
	if (size > cap) {
		*flags |= NK_CQE_F_TRUNC;
		if (op->msg_flags & MSG_TRUNC)
			n = (ssize_t)size;
	}
	if (skip) {
		struct nk_sockaddr sa;

		nk_sockaddr__from_sa((struct sockaddr *)&src, sizeof(src), &sa);
		memcpy(op->buf, &sa, sizeof(sa));
		*flags |= NK_CQE_F_ADDR;
	}
	return (int)n;
}

/* Next datagram of a batch, only if it fits whole (recv_batch.h). */
static int batch_recv_one(void *arg, uint8_t *data, uint32_t room,
			  struct sockaddr_storage *sa, socklen_t *salen)
{
	struct asock *a = arg;
	size_t size = nk_ustack_sock_rx_ready(a->us); /* the next one's */
	struct sockaddr_in src;
	ssize_t n;

	if (!nk_ustack_udp_pending(a->us) || size > room)
		return -EAGAIN; /* stays queued for the next RECV */
	n = nk_ustack_udp_recvfrom(a->us, data, room, &src);
	if (n < 0)
		return -EAGAIN;
	memcpy(sa, &src, sizeof(src));
	*salen = sizeof(src);
	return (int)size;
}

/*
 * A UDP RECV with NK_SQE_F_BATCH (abi.md §5 "Datagram batches"): every
 * queued datagram, up to NK_RECV_BATCH_MAX, packed into op's buffer as
 * nk_dgram records, in queue order. The first may be cut (full_len says
 * so); a further one goes in only whole. Returns the records, -EAGAIN
 * when nothing is queued, or the pending error; *aux the bytes used.
 */
static int udp_recv_batch(struct asock *a, struct nk_req *op, uint32_t *aux)
{
	const uint32_t hdr = sizeof(struct nk_dgram);
	struct sockaddr_storage ss;
	struct sockaddr_in src;
	size_t size;
	ssize_t n;
	int res;

	*aux = 0;
	if (op->len < hdr)
		return -EINVAL; /* validation refuses it first */
	if ((res = udp_rx_start(a)))
		return res;
	size = nk_ustack_sock_rx_ready(a->us);
	n = nk_ustack_udp_recvfrom(a->us, op->buf + hdr, op->len - hdr, &src);
	if (n < 0) {
		if (n == -EAGAIN)
			a->rd_ready = false;
		return (int)n;
	}
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &src, sizeof(src));
	/*
	 * More than one only while this connection alone holds the socket:
	 * datagrams one process keeps are invisible to another's recv and
	 * poll (as in the kernel NSM).
	 */
	res = nk_rbatch__fill(op->buf, op->len,
			      size > INT32_MAX ? INT32_MAX : (int)size, &ss,
			      sizeof(src),
			      op->sock->nr_holders <= 1 ? batch_recv_one : NULL,
			      a, aux, &op->done);
	if (res > 0) {
		a->xn->stats.recv_batches++;
		a->xn->stats.recv_batch_dgrams += (uint64_t)res;
	}
	if (!nk_ustack_udp_pending(a->us))
		a->rd_ready = false;
	return res;
}

/* A UDP RECV, batch or single: flags and aux for its completion. */
static int udp_recv_op(struct asock *a, struct nk_req *op, uint32_t *flags,
		       uint32_t *aux)
{
	if (op->sqe_flags & NK_SQE_F_BATCH) {
		*flags = 0;
		return udp_recv_batch(a, op, aux);
	}
	return udp_recv(a, op, flags, aux);
}

static int adopt_accepted(struct asock *la, struct nk_req *op);

static void pump_recv(struct asock *a)
{
	struct nk_list *p, *t;

	nk_list__for_each_safe(p, t, &a->recvq)
	{
		struct nk_req *op = nk_container_of(p, struct nk_req, qlink);
		uint32_t flags, aux;
		int r;

		if (op->cancelled || a->closing) {
			dequeue_done(a, op,
				     op->done ? (int)op->done : -ECANCELED, 0,
				     0);
			continue;
		}
		if (xr(op)->accept) {
			r = adopt_accepted(a, op);
			if (r == -EAGAIN)
				return;
			nk_list__del(&op->qlink);
			op->in_nsm = false;
			done(a->xn, op, r, 0, 0, r > 0 ? (uint32_t)r : 0);
			continue;
		}
		if (a->s->type == SOCK_DGRAM) {
			r = udp_recv_op(a, op, &flags, &aux);
			if (r == -EAGAIN)
				return;
			dequeue_done(a, op, r, flags, aux);
			continue;
		}
		if (!run_tcp_recv(a, op, true))
			return;
	}
}

/* One TCP SEND step: true when op completed. */
static bool run_tcp_send(struct asock *a, struct nk_req *op, bool queued,
			 bool more)
{
	for (;;) {
		ssize_t n;
		int res;

		if (!a->us) {
			n = a->err ? -a->err : -EPIPE;
		} else {
			unsigned fl = (op->msg_flags & MSG_MORE) || more
					      ? NK_USOCK_SEND_MORE
					      : 0;

			n = nk_ustack_tcp_send(a->us, op->buf + op->done,
					       op->len - op->done, fl);
		}
		if (n > 0) {
			op->done += (uint32_t)n;
			if (op->done < op->len)
				continue;
		} else if (n == -EAGAIN && !op->cancelled) {
			if (!queued)
				return false;
			return false;
		}
		res = op->done ? (int)op->done : (int)n;
		if (n == 0 && !op->done)
			res = 0;
		if (queued)
			send_done(a, op, res);
		else
			done(a->xn, op, res, 0, 0, 0);
		return true;
	}
}

/* Called with a held: a completion may hand the next SEND down. */
static void pump_send(struct asock *a)
{
	struct nk_req *op;

	while ((op = a->send_op)) {
		if (op->cancelled) {
			send_done(a, op, op->done ? (int)op->done : -ECANCELED);
			continue;
		}
		/* More SENDs held in the engine: coalesce (MSG_MORE). */
		if (!run_tcp_send(a, op, true,
				  !nk_list__empty(&op->sock->sendq)))
			return;
	}
}

static void pump(struct asock *a)
{
	pump_recv(a);
	pump_send(a);
}

/* ------------------------------------------------------------------ */
/* Socket lifecycle. */

static struct asock *asock_new(struct xn *xn, struct nk_sock *s)
{
	struct asock *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->xn = xn;
	a->s = s;
	a->gid = s ? s->guest->id : NK_GUEST_NSM;
	nk_list__init(&a->recvq);
	nk_list__add_tail(&xn->socks, &a->link);
	return a;
}

static void usock_close(struct asock *a)
{
	if (!a->us)
		return;
	if (a->s && a->s->type == SOCK_DGRAM)
		nk_ustack_udp_close(a->us);
	else
		nk_ustack_tcp_close(a->us);
	a->us = NULL;
}

/* Everything of a released socket is done: free it for good. */
static void finalize(struct asock *a)
{
	struct nk_engine *e = a->xn->e;
	struct nk_sock *s = a->s;

	eps_del(a);
	flow_linger(a, false);
	usock_close(a);
	port_release(a);
	nk_list__del(&a->link);
	free(a);
	if (s)
		nk_engine__sock_gone(e, s);
}

static int adopt_accepted(struct asock *la, struct nk_req *op)
{
	struct xn *xn = la->xn;
	struct nk_sock *ns;
	struct nk_usock *nus;
	struct sockaddr_in peer, local;
	struct nk_sockaddr sa;
	struct asock *na;
	int ret;

	if (!la->us)
		return -EINVAL;
	na = asock_new(xn, NULL);
	if (!na)
		return -ENOMEM;
	ret = nk_ustack_tcp_accept(la->us, us_cb, na, &nus, &peer);
	if (ret) {
		nk_list__del(&na->link);
		free(na);
		if (ret == -EAGAIN)
			la->rd_ready = false;
		return ret;
	}
	na->us = nus;
	ret = nk_engine__sock_accepted(xn->e, op, &ns);
	if (ret) {
		finalize(na);
		return ret;
	}
	na->s = ns;
	na->gid = ns->guest->id;
	ns->nsm_priv = na;
	if (!nk_ustack_sock_name(nus, &local, NULL))
		flow_add(na, &local, &peer);
	if (la->nodelay) {
		na->nodelay = true;
		nk_ustack_tcp_nodelay(nus, 1);
	}
	nk_sockaddr__from_sa((struct sockaddr *)&peer, sizeof(peer), &sa);
	memcpy(op->buf, &sa, sizeof(sa));
	return (int)ns->handle;
}

/*
 * Takes *port (network order) for a, or a random ephemeral one when it is
 * 0; what a held before is given back first. 0 or -EADDRINUSE.
 */
static int port_take(struct asock *a, uint16_t *port)
{
	uint16_t p = ntohs(*port);
	int ret;

	port_release(a);
	if (!p) {
		ret = nk_xports__pick(&a->xn->ports, xp_proto(a),
				      a->reuseaddr != 0, &p);
		if (ret)
			return ret == -EAGAIN ? -EAGAIN : -EADDRINUSE;
	}
	ret = nk_xports__hold(&a->xn->ports, xp_proto(a), p, a->reuseaddr != 0,
			      &a->port_excl);
	if (ret)
		return ret;
	a->port = p;
	*port = htons(p);
	return 0;
}

static int do_bind(struct asock *a, struct nk_req *op)
{
	const struct sockaddr_in *sin = (const void *)&op->sa;
	struct nk_sock *s = a->s;
	int ret;

	if (op->sa.ss_family != AF_INET)
		return -EAFNOSUPPORT;
	if (a->bound || a->us)
		return -EINVAL;
	if (sin->sin_addr.s_addr != INADDR_ANY &&
	    !is_ours(a->xn, sin->sin_addr.s_addr))
		return -EADDRNOTAVAIL;
	a->local = *sin;
	/* The port is ours from now on; 0 draws a random one. */
	ret = port_take(a, &a->local.sin_port);
	if (ret)
		return ret;
	if (s->type == SOCK_DGRAM) {
		struct sockaddr_in l;

		ret = nk_ustack_udp_bind(a->xn->st, &a->local, us_cb, a,
					 &a->us);
		if (ret) {
			port_release(a);
			return ret;
		}
		nk_ustack_sock_name(a->us, &l, NULL);
		l.sin_addr = sin->sin_addr;
		/* The port lwIP picked may be another guest's. */
		ret = nk_portown__claim(s, ntohs(l.sin_port));
		if (!ret)
			ret = eps_add(a, IPPROTO_UDP, &l);
		if (ret) {
			usock_close(a);
			port_release(a);
			if (!sin->sin_port)
				nk_portown__release(s);
			return ret;
		}
		a->local = l;
	}
	a->bound = true;
	s->state = NK_SS_BOUND;
	return 0;
}

static int udp_autobind(struct asock *a)
{
	struct sockaddr_in any = { .sin_family = AF_INET };
	struct nk_req fake;

	if (a->us)
		return 0;
	if (a->bound) /* bound to something udp_bind refused earlier */
		return -EINVAL;
	memset(&fake, 0, sizeof(fake));
	memcpy(&fake.sa, &any, sizeof(any));
	return do_bind(a, &fake);
}

static int do_listen(struct asock *a, struct nk_req *op)
{
	struct sockaddr_in l = a->local;
	int backlog = op->arg > 4096 ? 4096 : (int)op->arg, ret = -EADDRINUSE;

	if (a->s->type != SOCK_STREAM)
		return -EOPNOTSUPP;
	if (a->listener)
		return 0;
	if (a->us || a->connecting)
		return -EINVAL;
	if (backlog < NK_XBACKLOG_MIN)
		backlog = NK_XBACKLOG_MIN;
	if (!a->bound) {
		l.sin_family = AF_INET;
		l.sin_addr.s_addr = INADDR_ANY;
		l.sin_port = 0;
	}
	for (int tries = a->bound ? 1 : 64; tries--;) {
		if (!a->bound) {
			l.sin_port = 0;
			ret = port_take(a, &l.sin_port);
			if (ret)
				return ret;
			/* Another guest's port (portown): pick again. */
			ret = nk_portown__claim(a->s, ntohs(l.sin_port));
			if (ret) {
				port_release(a);
				continue;
			}
		}
		/* A listener shares its port with no one. */
		ret = nk_xports__listen(&a->xn->ports, NK_XP_TCP, a->port,
					&a->port_excl);
		if (!ret)
			ret = eps_add(a, IPPROTO_TCP, &l);
		if (!ret) {
			ret = nk_ustack_tcp_listen(a->xn->st, &l, backlog,
						   us_cb, a, &a->us);
			if (ret)
				eps_del(a);
		}
		if (!ret)
			break;
		if (!a->bound)
			port_release(a);
		if (ret != -EADDRINUSE)
			return ret;
	}
	if (ret) {
		if (!a->bound || !a->local.sin_port)
			nk_portown__release(a->s);
		return ret;
	}
	a->local = l;
	a->bound = true;
	a->listener = true;
	a->s->state = NK_SS_LISTEN;
	return 0;
}

/* 0 (blocking op queued: 1), -EINPROGRESS, or -errno. */
static int do_connect(struct asock *a, struct nk_req *op)
{
	const struct sockaddr_in *r = (const void *)&op->sa;
	struct nk_sock *s = a->s;
	struct sockaddr_in l;
	bool nonblock = op->sqe_flags & NK_SQE_F_NONBLOCK;
	int ret = -EADDRINUSE;

	if (s->type == SOCK_DGRAM) {
		if (op->sa.ss_family == AF_UNSPEC) {
			a->udp_connected = false;
			s->state = a->us ? NK_SS_BOUND : NK_SS_UNBOUND;
			return 0;
		}
		if (op->sa.ss_family != AF_INET)
			return -EAFNOSUPPORT;
		ret = udp_autobind(a);
		if (ret)
			return ret;
		a->peer = *r;
		a->udp_connected = true;
		s->state = NK_SS_ESTABLISHED;
		return 0;
	}
	if (op->sa.ss_family != AF_INET)
		return -EAFNOSUPPORT;
	if (a->connecting)
		return -EALREADY;
	if (a->listener)
		return -EINVAL;
	if (a->us)
		return -EISCONN;
	if (is_ours(a->xn, r->sin_addr.s_addr))
		return -ENETUNREACH; /* guest to guest: the shm NSM's job */
	l.sin_family = AF_INET;
	l.sin_addr.s_addr = a->bound && a->local.sin_addr.s_addr
				    ? a->local.sin_addr.s_addr
				    : pick_src(a->xn, r->sin_addr.s_addr);
	for (int tries = a->bound ? 1 : 64; tries--;) {
		l.sin_port = a->local.sin_port;
		if (!a->bound) {
			l.sin_port = 0;
			ret = port_take(a, &l.sin_port);
			if (ret)
				return ret;
		}
		/* The flow first: the SYN-ACK must find it. */
		ret = flow_add(a, &l, r);
		if (!ret) {
			ret = nk_ustack_tcp_connect(a->xn->st, &l, r, us_cb, a,
						    &a->us);
			if (ret)
				flow_linger(a, true);
		}
		if (!ret)
			break;
		if (!a->bound)
			port_release(a);
		if (ret != -EADDRINUSE)
			return ret;
	}
	if (ret)
		return ret;
	a->local = l;
	a->connecting = true;
	s->so_error = 0;
	s->state = NK_SS_CONNECTING;
	nk_engine__sock_event(a->xn->e, s, 0, false); /* unwritable now */
	if (nonblock)
		return -EINPROGRESS;
	op->in_nsm = true;
	a->connect_op = op;
	return 1;
}

static int do_udp_send(struct asock *a, struct nk_req *op)
{
	const struct sockaddr_in *dst = &a->peer;
	int ret;

	if (op->sqe_flags & NK_SQE_F_ADDR) {
		if (op->sa.ss_family != AF_INET)
			return -EAFNOSUPPORT;
		dst = (const void *)&op->sa;
	} else if (!a->udp_connected) {
		return -EDESTADDRREQ;
	}
	ret = udp_autobind(a);
	if (ret)
		return ret;
	return (int)nk_ustack_udp_sendto(a->us, op->buf, op->len, dst);
}

/* ------------------------------------------------------------------ */
/* Socket options: what the engine can honour; the rest -ENOPROTOOPT. */

static int opt_int(const struct nk_req *op, int *v)
{
	if (op->len < sizeof(int))
		return -EINVAL;
	memcpy(v, op->buf, sizeof(int));
	return 0;
}

static int do_setsockopt(struct asock *a, struct nk_req *op)
{
	int v = 0;

	if (op->level == SOL_SOCKET) {
		switch (op->optname) {
		case SO_REUSEADDR:
			/* lwIP is built with SO_REUSE; ports are ours. */
			return opt_int(op, &a->reuseaddr);
		case SO_KEEPALIVE:
			return opt_int(op, &a->keepalive);
		case SO_SNDBUF:
		case SO_RCVBUF:
		case SO_LINGER:
		case SO_RCVTIMEO:
		case SO_SNDTIMEO:
		case SO_PRIORITY:
		case SO_BROADCAST:
			/* Fixed by lwIP's build (64 KiB) or the shim's. */
			return 0;
		}
		return -ENOPROTOOPT;
	}
	if (op->level == IPPROTO_TCP && a->s->type == SOCK_STREAM) {
		switch (op->optname) {
		case TCP_NODELAY:
			if (opt_int(op, &v))
				return -EINVAL;
			a->nodelay = v != 0;
			if (a->us && !a->listener && !a->connecting)
				nk_ustack_tcp_nodelay(a->us, a->nodelay);
			return 0;
		case TCP_KEEPIDLE:
		case TCP_KEEPINTVL:
		case TCP_KEEPCNT:
		case TCP_QUICKACK:
			return 0;
		}
		return -ENOPROTOOPT;
	}
	if (op->level == IPPROTO_IP &&
	    (op->optname == IP_TOS || op->optname == IP_BIND_ADDRESS_NO_PORT))
		return 0;
	return -ENOPROTOOPT;
}

static int do_getsockopt(struct asock *a, struct nk_req *op)
{
	struct nk_sock *s = a->s;
	int v;

	if (op->len < sizeof(int))
		return -EINVAL;
	if (op->level == SOL_SOCKET) {
		switch (op->optname) {
		case SO_ERROR:
			/* s->so_error: the engine answered it already. */
			v = 0;
			if (a->err && !a->connecting) {
				v = a->err;
				a->err = 0;
			}
			break;
		case SO_TYPE:
			v = s->type;
			break;
		case SO_DOMAIN:
			v = s->family;
			break;
		case SO_PROTOCOL:
			v = s->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
			break;
		case SO_ACCEPTCONN:
			v = a->listener;
			break;
		case SO_REUSEADDR:
			v = a->reuseaddr != 0;
			break;
		case SO_KEEPALIVE:
			v = a->keepalive != 0;
			break;
		case SO_SNDBUF:
		case SO_RCVBUF:
			v = 65535;
			break;
		default:
			return -ENOPROTOOPT;
		}
	} else if (op->level == IPPROTO_TCP && op->optname == TCP_NODELAY) {
		v = a->nodelay;
	} else if (op->level == IPPROTO_TCP && op->optname == TCP_MAXSEG) {
		v = 1460;
	} else if (op->level == IPPROTO_TCP && op->optname == TCP_CONGESTION) {
		/* lwIP's congestion control is NewReno; iperf3 asks. */
		char name[16] = "reno";
		uint32_t n = op->len < sizeof(name) ? op->len : sizeof(name);

		memcpy(op->buf, name, n);
		return (int)n;
	} else if (op->level == IPPROTO_TCP && op->optname == TCP_INFO &&
		   s->type == SOCK_STREAM) {
		/*
		 * The engine keeps no Linux-style TCP statistics; report what
		 * is known (state, MSS) and zeros, as a kernel without the
		 * newer fields would.
		 */
		struct tcp_info ti;
		uint32_t n = op->len < sizeof(ti) ? op->len : sizeof(ti);

		memset(&ti, 0, sizeof(ti));
		ti.tcpi_state = a->listener ? TCP_LISTEN : TCP_ESTABLISHED;
		ti.tcpi_snd_mss = 1460;
		ti.tcpi_rcv_mss = 1460;
		ti.tcpi_advmss = 1460;
		memcpy(op->buf, &ti, n);
		return (int)n;
	} else {
		return -ENOPROTOOPT;
	}
	memcpy(op->buf, &v, sizeof(v));
	return sizeof(int);
}

static int do_name(struct asock *a, struct nk_req *op, bool peer)
{
	struct sockaddr_in sin;
	struct nk_sockaddr sa;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (peer) {
		if (a->s->type == SOCK_DGRAM) {
			if (!a->udp_connected)
				return -ENOTCONN;
			sin = a->peer;
		} else if (!a->us || a->listener ||
			   nk_ustack_sock_name(a->us, NULL, &sin)) {
			return -ENOTCONN;
		}
	} else if (a->us) {
		nk_ustack_sock_name(a->us, &sin, NULL);
		if (a->bound && a->local.sin_addr.s_addr == INADDR_ANY)
			sin.sin_addr.s_addr = INADDR_ANY;
	} else if (a->bound) {
		sin = a->local;
	}
	nk_sockaddr__from_sa((struct sockaddr *)&sin, sizeof(sin), &sa);
	memcpy(op->buf, &sa, sizeof(sa));
	return 0;
}

/* ------------------------------------------------------------------ */
/* NSM ops. */

static bool op_nonblock(const struct nk_req *op)
{
	return op->sqe_flags & NK_SQE_F_NONBLOCK ||
	       op->msg_flags & MSG_DONTWAIT;
}

static void xn_bind(void *priv, struct nk_req *op)
{
	done(priv, op, do_bind(op->sock->nsm_priv, op), 0, 0, 0);
}

static void xn_listen(void *priv, struct nk_req *op)
{
	done(priv, op, do_listen(op->sock->nsm_priv, op), 0, 0, 0);
}

static void xn_connect(void *priv, struct nk_req *op)
{
	int res = do_connect(op->sock->nsm_priv, op);

	if (res != 1)
		done(priv, op, res, 0, 0, 0);
}

static void xn_accept(void *priv, struct nk_req *op)
{
	struct xn *xn = priv;
	struct asock *a = op->sock->nsm_priv;
	int res;

	if (!a->listener) {
		done(xn, op, -EINVAL, 0, 0, 0);
		return;
	}
	if (nk_list__empty(&a->recvq)) {
		res = adopt_accepted(a, op);
		if (res != -EAGAIN || op_nonblock(op)) {
			done(xn, op, res, 0, 0, res > 0 ? (uint32_t)res : 0);
			return;
		}
	} else if (op_nonblock(op)) {
		done(xn, op, -EAGAIN, 0, 0, 0);
		return;
	}
	xr(op)->accept = true;
	queue_op(&a->recvq, op);
}

static void xn_recv(void *priv, struct nk_req *op)
{
	struct xn *xn = priv;
	struct asock *a = op->sock->nsm_priv;
	struct nk_sock *s = op->sock;
	bool nonblock = op_nonblock(op);
	uint32_t flags, aux;
	int res;

	/* No ancillary data here: its options are refused too (abi.md §5). */
	if (op->sqe_flags & NK_SQE_F_CMSG) {
		done(xn, op, -EINVAL, 0, 0, 0);
		return;
	}
	if (op->msg_flags & MSG_PEEK) {
		done(xn, op, -EOPNOTSUPP, 0, 0, 0); /* nk_ustack has no peek */
		return;
	}
	if (nk_list__empty(&a->recvq)) {
		if (s->type == SOCK_DGRAM) {
			res = udp_recv_op(a, op, &flags, &aux);
			if (res != -EAGAIN || nonblock) {
				done(xn, op, res, flags, aux, 0);
				return;
			}
		} else if (run_tcp_recv(a, op, false)) {
			return;
		} else if (nonblock) {
			finish_tcp_recv(a, op, -EAGAIN, false);
			return;
		}
	} else if (nonblock) {
		done(xn, op, -EAGAIN, 0, 0, 0);
		return;
	}
	queue_op(&a->recvq, op);
}

static void xn_send(void *priv, struct nk_req *op)
{
	struct xn *xn = priv;
	struct asock *a = op->sock->nsm_priv;
	bool nonblock = op_nonblock(op);

	/* No ancillary data here: its options are refused too (abi.md §5). */
	if (op->sqe_flags & NK_SQE_F_CMSG) {
		done(xn, op, -EINVAL, 0, 0, 0);
		return;
	}
	if (op->sock->type == SOCK_DGRAM) {
		done(xn, op, do_udp_send(a, op), 0, 0, 0);
		return;
	}
	if (run_tcp_send(a, op, false, false))
		return;
	if (nonblock) {
		done(xn, op, op->done ? (int)op->done : -EAGAIN, 0, 0, 0);
		return;
	}
	op->in_nsm = true;
	a->send_op = op; /* the engine sends no other before it is done */
}

static void xn_shutdown(void *priv, struct nk_req *op)
{
	struct asock *a = op->sock->nsm_priv;
	int res = 0;

	/* The engine hands a SHUT_WR down after the SENDs before it. */
	if (op->sock->type == SOCK_DGRAM || !a->us || a->listener) {
		res = a->listener ? 0 : -ENOTCONN;
	} else {
		res = nk_ustack_tcp_shutdown(a->us, (int)op->arg);
	}
	if (!res && a->listener) {
		/* Linux wakes accept() with EINVAL on a shut listener */
		a->rd_ready = true;
	}
	done(priv, op, res, 0, 0, 0);
}

static void xn_setsockopt(void *priv, struct nk_req *op)
{
	done(priv, op, do_setsockopt(op->sock->nsm_priv, op), 0, 0, 0);
}

static void xn_getsockopt(void *priv, struct nk_req *op)
{
	done(priv, op, do_getsockopt(op->sock->nsm_priv, op), 0, 0, 0);
}

static void xn_getsockname(void *priv, struct nk_req *op)
{
	done(priv, op, do_name(op->sock->nsm_priv, op, false), 0, 0, 0);
}

static void xn_getpeername(void *priv, struct nk_req *op)
{
	done(priv, op, do_name(op->sock->nsm_priv, op, true), 0, 0, 0);
}

static void xn_ioctl(void *priv, struct nk_req *op)
{
	struct asock *a = op->sock->nsm_priv;
	int res = 0; /* SIOCOUTQ: not tracked by the engine */

	if (op->arg == NK_IOCTL_FIONREAD)
		res = a->us && !a->listener
			      ? (int)nk_ustack_sock_rx_ready(a->us)
			      : 0;
	done(priv, op, res, 0, 0, 0);
}

static int xn_cancel(void *priv, struct nk_req *op)
{
	struct asock *a = op->sock->nsm_priv;

	(void)priv;
	if (!a || !op->in_nsm)
		return -ENOENT;
	if (a->connect_op == op) {
		/* The attempt dies with its op, as io_uring's would. */
		a->connect_op = NULL;
		op->in_nsm = false;
		usock_close(a);
		flow_linger(a, true);
		a->connecting = false;
		a->s->state = NK_SS_CLOSED;
		done(a->xn, op, -ECANCELED, 0, 0, 0);
		return 0;
	}
	hold(a);
	if (op == a->send_op)
		send_done(a, op, op->done ? (int)op->done : -ECANCELED);
	else if (!xr(op)->accept && op->sock->type == SOCK_STREAM)
		finish_tcp_recv(a, op, -ECANCELED, true);
	else
		dequeue_done(a, op, op->done ? (int)op->done : -ECANCELED, 0,
			     0);
	unhold(a);
	return 0;
}

static int xn_sock_open(void *priv, struct nk_sock *s)
{
	struct xn *xn = priv;
	struct asock *a;

	if (s->family != AF_INET)
		return -EAFNOSUPPORT; /* nk_ustack serves IPv4 only */
	if (s->type != SOCK_STREAM && s->type != SOCK_DGRAM)
		return -EPROTONOSUPPORT;
	/* No ICMP echo socket in nk_ustack (the kernel NSM has one). */
	if (nk_is_ping_proto(s->family, s->protocol))
		return -EPROTONOSUPPORT;
	if (s->guest->id >= NK_MAX_GUESTS)
		return -ENOSPC; /* XDP counters and ACLs are per id < 1024 */
	acl_install(xn, s->guest);
	a = asock_new(xn, s);
	if (!a)
		return -ENOMEM;
	s->nsm_priv = a;
	return 0;
}

static void xn_sock_release(void *priv, struct nk_sock *s)
{
	struct asock *a = s->nsm_priv;
	struct nk_list *p, *t;

	(void)priv;
	if (!a)
		return;
	a->closing = true;
	nk_list__for_each_safe(p, t, &a->recvq)
	{
		struct nk_req *op = nk_container_of(p, struct nk_req, qlink);

		dequeue_done(a, op, op->done ? (int)op->done : -ECANCELED, 0,
			     0);
	}
	if (a->connect_op)
		xn_cancel(priv, a->connect_op);
	/* Listeners and UDP stop taking traffic at once. */
	if (a->listener || s->type == SOCK_DGRAM) {
		eps_del(a);
		usock_close(a);
	}
	if (!a->send_op && !a->holds)
		finalize(a);
	/* else: its SEND finishes first, or a path holding a finalizes. */
}

static unsigned xn_poll_now(void *priv, struct nk_sock *s)
{
	(void)priv;
	return s->nsm_priv ? revents_of(s->nsm_priv) : 0;
}

static int xn_sock_name(void *priv, struct nk_sock *s, bool peer,
			struct sockaddr_storage *ss, socklen_t *len)
{
	struct asock *a = s->nsm_priv;
	struct sockaddr_in sin;

	(void)priv;
	*len = sizeof(sin);
	memset(ss, 0, sizeof(*ss));
	if (!a)
		return -EBADF;
	memset(&sin, 0, sizeof(sin));
	if (peer) {
		if (s->type == SOCK_DGRAM ? !a->udp_connected
					  : !a->us || a->listener)
			return -ENOTCONN;
		if (s->type == SOCK_DGRAM)
			sin = a->peer;
		else if (nk_ustack_sock_name(a->us, NULL, &sin))
			return -ENOTCONN;
	} else if (a->us) {
		nk_ustack_sock_name(a->us, &sin, NULL);
	} else if (a->bound) {
		sin = a->local;
	} else {
		return -EINVAL;
	}
	memcpy(ss, &sin, sizeof(sin));
	return 0;
}

/* Arms the timerfd for the earliest of lwIP's timers and flow expiry. */
static void rearm(struct xn *xn, int64_t now)
{
	int t = nk_ustack__timeout_ms(xn->st);
	int64_t want = t < 0 ? 0 : now + (int64_t)t * 1000000ll;
	struct itimerspec its;

	if (nk_xlinger__next(&xn->linger) &&
	    (!want || nk_xlinger__next(&xn->linger) < want))
		want = nk_xlinger__next(&xn->linger);
	/* An earlier (or equal) alarm is already set: it wakes us anyway. */
	if (!want || (xn->armed_ns && xn->armed_ns <= want))
		return;
	memset(&its, 0, sizeof(its));
	if (want <= now)
		want = now + 1;
	its.it_value.tv_sec = want / 1000000000ll;
	its.it_value.tv_nsec = want % 1000000000ll;
	if (!timerfd_settime(xn->tfd, TFD_TIMER_ABSTIME, &its, NULL))
		xn->armed_ns = want;
}

static int xn_poll(void *priv)
{
	struct xn *xn = priv;
	int64_t now;
	int n;

	xn->work = 0;
	n = nk_ustack__poll(xn->st, NK_XRX_BUDGET);
	now = nk_now_ns();
	if (xn->armed_ns && now >= xn->armed_ns)
		xn->armed_ns = 0; /* fired (the read happens in on_xpoll) */
	linger_expire(xn, now, false);
	nk_ustack__flush(xn->st); /* what a cancel may have queued (RST) */
	rearm(xn, now);
	return (n > 0 ? n : 0) + (int)xn->work;
}

static void arm_fd(struct xn *xn, int fd, uint32_t which)
{
	if (nk_loop__poll(xn->loop, fd, POLLIN, nk_ud(NK_UD_XPOLL, 0, which)))
		nk_warn("nsm %s: cannot watch fd %d", xn->conf.name, fd);
}

/* Wakes the loop; poll() does the work. Re-arms a finished multishot. */
static struct xn *the_xn; /* lwIP allows one engine per process */

static void on_xpoll(void *ctx, uint32_t slot, uint32_t gen,
		     const struct io_uring_cqe *cqe)
{
	struct xn *xn = ctx;
	uint64_t v;

	(void)gen;
	if (!xn)
		return;
	if (slot == XP_TIMER) {
		if (read(xn->tfd, &v, sizeof(v)) == sizeof(v))
			xn->armed_ns = 0;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE) && cqe->res != -ECANCELED)
		arm_fd(xn, slot == XP_TIMER ? xn->tfd : nk_ustack__fd(xn->st),
		       slot);
}

static int xn_guest_stats(void *priv, uint32_t guest_id,
			  struct nk_nsm_guest_stats *out)
{
	struct xn *xn = priv;
	struct nk_guest_stats gs;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!xn->maps || guest_id >= NK_MAX_GUESTS)
		return -ENOENT;
	ret = nk_steer_maps__guest_stats(xn->maps, guest_id, &gs);
	if (ret)
		return ret;
	out->packets = gs.packets;
	out->bytes = gs.bytes;
	for (int i = 0; i < NK_DROP__MAX; i++)
		out->drops += gs.drops[i];
	return 0;
}

static void xn_describe(void *priv, char *dev, size_t dev_len, char *addrs,
			size_t addrs_len, unsigned *queues, char *backend,
			size_t backend_len)
{
	struct xn *xn = priv;
	size_t off = 0;

	snprintf(dev, dev_len, "%s", xn->conf.dev);
	addrs[0] = '\0';
	for (unsigned i = 0; i < xn->conf.nr_addrs && off < addrs_len; i++) {
		char a[INET_ADDRSTRLEN];
		int n;

		inet_ntop(AF_INET, &xn->conf.addrs[i].addr, a, sizeof(a));
		n = snprintf(addrs + off, addrs_len - off, "%s%s/%u",
			     i ? "," : "", a, xn->conf.addrs[i].prefix);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	*queues = xn->conf.queues;
	nk_l2__describe(xn->l2, backend, backend_len);
}

static unsigned xn_counters(void *priv, struct nk_nsm_counter *out,
			    unsigned max)
{
	struct xn *xn = priv;

	return nk_xcounters__fill(xn->l2, xn->st, out, max);
}

static void ustack_log(void *arg, const char *msg)
{
	struct xn *xn = arg;

	nk_dbg("nsm %s: %s", xn->conf.name, msg);
}

/* Runs fn in the NSM's namespace (the device lives there). */
static int in_netns(const struct nk_nsm_conf *conf, int (*fn)(void *),
		    void *arg)
{
	int ns, self, ret, err;

	if (!conf->netns[0])
		return fn(arg);
	ns = open(conf->netns, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return -errno;
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		err = -errno;
		close(ns);
		return err;
	}
	if (setns(ns, CLONE_NEWNET)) {
		err = -errno;
		nk_err("nsm %s: cannot enter netns %s: %s", conf->name,
		       conf->netns, strerror(-err));
		close(ns);
		close(self);
		return err;
	}
	ret = fn(arg);
	if (setns(self, CLONE_NEWNET)) {
		nk_err("nsm %s: cannot return to nkd's netns: %s", conf->name,
		       strerror(errno));
		abort();
	}
	close(ns);
	close(self);
	return ret;
}

struct open_ctx {
	struct xn *xn;
	unsigned ifindex;
	uint32_t failed_queue; /* UINT32_MAX: no queue failed */
};

static int open_l2(void *arg)
{
	struct open_ctx *c = arg;
	struct xn *xn = c->xn;
	struct nk_l2_opts o = {
		.sz = sizeof(o),
		.ifname = xn->conf.dev,
		.queue_first = 0,
		.queue_count = xn->conf.queues,
		.failed_queue = &c->failed_queue,
	};
	enum nk_l2_kind kind = nk_l2__kind(xn->conf.backend);

	c->ifindex = if_nametoindex(xn->conf.dev);
	if (kind == NK_L2_AFXDP && !strcmp(xn->conf.mode, "native"))
		o.flags |= NK_L2_F_ZEROCOPY; /* falls back to copy (veth) */
	return nk_l2__open(kind, &o, &xn->l2);
}

static void xn_destroy(void *priv);

/*
 * A previous nkd that died without cleaning up (kill -9, crash) left its
 * endpoints, flows, ACL entries, ACL modes and counters in the pinned
 * maps: they would steer traffic to guests that are gone, or to whoever
 * gets their ids next. One nkd serves a device, so everything per guest
 * goes before we serve anyone.
 */
static int flush_stale(struct xn *xn)
{
	struct nk_steer_flushed f;
	int ret = nk_steer_maps__guest_flush(xn->maps, NK_STEER_ALL_GUESTS, &f);

	if (ret) {
		nk_err("nsm %s: cannot flush stale steering state of %s: %s",
		       xn->conf.name, xn->conf.dev, strerror(-ret));
		return ret;
	}
	nk_info("nsm %s: flushed stale steering state of %s: %u endpoints, "
		"%u flows, %u ACL entries, %u ACL modes",
		xn->conf.name, xn->conf.dev, f.endpoints, f.flows, f.acl,
		f.cfg);
	return 0;
}

/*
 * A guest object is created: its source ACL goes in now, before any of its
 * sockets can receive. The id may have been another guest's: that guest's
 * state went in xn_guest_detach.
 */
static int xn_guest_attach(void *priv, struct nk_guest *g)
{
	struct xn *xn = priv;

	if (g->id >= NK_MAX_GUESTS)
		return -ENOSPC; /* XDP counters and ACLs are per id < 1024 */
	acl_install(xn, g);
	return 0;
}

/*
 * The guest object is freed (none of its sockets is left): remove every
 * piece of state its id has here, in the maps and in our bookkeeping, so
 * the next guest that gets the id inherits nothing.
 */
static void xn_guest_detach(void *priv, struct nk_guest *g)
{
	struct xn *xn = priv;
	uint32_t id = g->id;
	struct nk_steer_flushed f;
	unsigned j = 0;
	int ret;

	if (id >= NK_MAX_GUESTS)
		return;
	nk_xlinger__drop_gid(&xn->linger, id);
	for (unsigned i = 0; i < xn->nr_acls; i++)
		if (xn->acls[i].guest_id != id)
			xn->acls[j++] = xn->acls[i];
	xn->nr_acls = j;
	xn->acl_done[id / 8] &= (uint8_t) ~(1u << (id % 8));
	if (!xn->maps)
		return;
	ret = nk_steer_maps__guest_flush(xn->maps, id, &f);
	if (ret)
		nk_warn("nsm %s: guest %s (id %u): flush: %s", xn->conf.name,
			g->conf.name, id, strerror(-ret));
	else
		nk_dbg("nsm %s: guest %s (id %u) gone: %u endpoints, %u "
		       "flows, %u ACL entries removed",
		       xn->conf.name, g->conf.name, id, f.endpoints, f.flows,
		       f.acl);
}

static int xn_create(struct nk_engine *e, struct nk_loop *loop,
		     const struct nk_nsm_conf *conf, void **priv)
{
	struct nk_ustack_opts uo = { .sz = sizeof(uo) };
	struct open_ctx oc;
	struct xn *xn;
	char desc[160];
	int ret;

	if (the_xn) {
		nk_err("nsm %s: only one afxdp NSM per nkd (lwIP is one "
		       "instance per process)",
		       conf->name);
		return -EBUSY;
	}
	xn = calloc(1, sizeof(*xn));
	if (!xn)
		return -ENOMEM;
	xn->e = e;
	xn->loop = loop;
	xn->conf = *conf;
	xn->tfd = -1;
	xn->xskmap_fd = -1;
	nk_list__init(&xn->socks);
	ret = nk_xports__init(&xn->ports);
	if (ret)
		goto fail;
	ret = nk_xlinger__init(&xn->linger);
	if (ret)
		goto fail;

	if (!strcmp(conf->backend, "afxdp")) {
		const struct nk_steer_knobs *k;
		char dir[256], path[300];

		ret = nk_steer_maps__open(conf->dev, NULL, &xn->maps);
		if (ret == -ENOENT) {
			nk_err("nsm %s: no nk_steer program on %s (no pins "
			       "under " NK_PIN_ROOT "/%s): run `nk-loader "
			       "attach %s` (in the device's namespace) "
			       "before nkd",
			       conf->name, conf->dev, conf->dev, conf->dev);
			goto fail;
		}
		if (ret) {
			nk_err("nsm %s: nk_steer maps of %s: %s", conf->name,
			       conf->dev, strerror(-ret));
			goto fail;
		}
		k = nk_steer_maps__knobs(xn->maps);
		if (conf->queues > k->nr_queues) {
			nk_err("nsm %s: queues=%u but nk_steer on %s serves %u "
			       "(nk-loader attach --queues)",
			       conf->name, conf->queues, conf->dev,
			       k->nr_queues);
			ret = -ERANGE;
			goto fail;
		}
		xn->slots_per_queue = k->slots_per_queue;
		ret = flush_stale(xn);
		if (ret)
			goto fail;
		nk_steer_pin_dir(dir, sizeof(dir), NULL, conf->dev);
		snprintf(path, sizeof(path), "%s/%s", dir, NK_MAP_XSKS);
		xn->xskmap_fd = bpf_obj_get(path);
		if (xn->xskmap_fd < 0) {
			ret = -errno;
			nk_err("nsm %s: %s: %s", conf->name, path,
			       strerror(errno));
			goto fail;
		}
	}
	oc.xn = xn;
	oc.ifindex = 0;
	oc.failed_queue = UINT32_MAX;
	ret = in_netns(conf, open_l2, &oc);
	if (ret && oc.failed_queue != UINT32_MAX) {
		nk_err("nsm %s: %s backend on %s%s%s: RX queue %u of "
		       "queues=%u: %s%s",
		       conf->name, conf->backend, conf->dev,
		       conf->netns[0] ? " in " : "", conf->netns,
		       oc.failed_queue, conf->queues, strerror(-ret),
		       ret == -EINVAL ? " (does the device have that many RX "
					"queues? ethtool -l)"
				      : "");
		goto fail;
	}
	if (ret) {
		nk_err("nsm %s: %s backend on %s%s%s: %s", conf->name,
		       conf->backend, conf->dev, conf->netns[0] ? " in " : "",
		       conf->netns, strerror(-ret));
		goto fail;
	}
	if (xn->maps) {
		const struct nk_steer_knobs *k = nk_steer_maps__knobs(xn->maps);

		if (k->ifindex && oc.ifindex && k->ifindex != oc.ifindex) {
			nk_err("nsm %s: the nk_steer pinned for %s was "
			       "attached to ifindex %u, this %s is %u "
			       "(another namespace, or the device was "
			       "recreated): nk-loader detach, then attach",
			       conf->name, conf->dev, k->ifindex, conf->dev,
			       oc.ifindex);
			ret = -ESTALE;
			goto fail;
		}
		ret = nk_l2__xskmap_update(xn->l2, xn->xskmap_fd,
					   xn->slots_per_queue, NK_XSLOT);
		if (ret) {
			nk_err("nsm %s: XSKMAP: %s", conf->name,
			       strerror(-ret));
			goto fail;
		}
	}
	uo.l2 = xn->l2;
	/* The engine loop runs poll() after every pass over the guests'
	 * rings: one TX kick per pass, not one per SEND. */
	uo.flags = NK_USTACK_F_DEFER_FLUSH;
	uo.log = ustack_log;
	uo.log_arg = xn;
	uo.synq = conf->synq;
	uo.synq_total = conf->synq_total;
	ret = nk_ustack__create(&uo, &xn->st);
	if (ret) {
		nk_err("nsm %s: userspace stack: %s", conf->name,
		       strerror(-ret));
		goto fail;
	}
	for (unsigned i = 0; i < conf->nr_addrs; i++) {
		uint32_t gw = i ? 0 : conf->gw;

		ret = nk_ustack__add_addr(xn->st, conf->addrs[i].addr,
					  mask_of(conf->addrs[i].prefix), gw);
		if (ret)
			goto fail;
		if (xn->maps) {
			struct nk_target t = { NK_GUEST_NSM, NK_XSLOT };
			uint8_t a16[16];

			addr16(a16, conf->addrs[i].addr);
			ret = nk_steer_maps__nsm_addr_add(xn->maps, a16, &t);
			if (ret && ret != -EEXIST) {
				nk_err("nsm %s: NSM address map: %s",
				       conf->name, strerror(-ret));
				goto fail;
			}
		}
	}
	xn->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (xn->tfd < 0) {
		ret = -errno;
		goto fail;
	}
	the_xn = xn;
	nk_loop__on(loop, NK_UD_XPOLL, on_xpoll, xn);
	arm_fd(xn, nk_ustack__fd(xn->st), XP_PKT);
	arm_fd(xn, xn->tfd, XP_TIMER);
	nk_l2__describe(xn->l2, desc, sizeof(desc));
	nk_info("nsm %s: afxdp on %s: %s%s", conf->name, conf->dev, desc,
		xn->maps ? "" : " (no steering maps)");
	*priv = xn;
	return 0;
fail:
	xn_destroy(xn);
	return ret;
}

/*
 * Where received frames went, stage by stage: the XSK (ring full: nkd did
 * not drain it; fill ring empty), the engine's checks, lwIP, the UDP
 * sockets' queues (full: the guest did not read fast enough).
 */
static void log_stats(const struct xn *xn)
{
	struct nk_l2_stats ls;
	struct nk_ustack_stats us;

	if (!xn->st || !xn->l2)
		return;
	memset(&ls, 0, sizeof(ls));
	nk_l2__stats(xn->l2, &ls);
	nk_ustack__stats(xn->st, &us);
	nk_info("nsm %s: frames in %llu, dropped by the XSK %llu (RX ring "
		"full %llu, fill ring empty %llu); to lwIP %llu, no pbuf %llu, "
		"UDP socket queue full %llu; batch RECVs %llu with %llu "
		"datagrams",
		xn->conf.name, (unsigned long long)ls.rx_frames,
		(unsigned long long)ls.rx_dropped,
		(unsigned long long)ls.rx_ring_full,
		(unsigned long long)ls.rx_fill_empty,
		(unsigned long long)us.rx_to_lwip,
		(unsigned long long)us.rx_nomem,
		(unsigned long long)us.udp_rx_dropped,
		(unsigned long long)xn->stats.recv_batches,
		(unsigned long long)xn->stats.recv_batch_dgrams);
}

static void xn_destroy(void *priv)
{
	struct xn *xn = priv;

	if (!xn)
		return;
	if (the_xn == xn)
		the_xn = NULL;
	log_stats(xn);
	/* The ring is gone: sockets still here are simply dropped. */
	while (!nk_list__empty(&xn->socks)) {
		struct asock *a =
			nk_container_of(xn->socks.next, struct asock, link);

		if (a->s)
			a->s->nsm_priv = NULL;
		eps_del(a);
		flow_linger(a, true);
		usock_close(a);
		nk_list__del(&a->link);
		free(a);
	}
	if (xn->maps) {
		linger_expire(xn, 0, true);
		for (unsigned i = 0; i < xn->nr_acls; i++)
			nk_steer_maps__acl_del(xn->maps, xn->acls[i].guest_id,
					       xn->acls[i].addr,
					       xn->acls[i].plen);
		for (uint32_t id = 0; id < NK_MAX_GUESTS; id++)
			if (xn->acl_done[id / 8] & (1u << (id % 8)))
				nk_steer_maps__acl_mode_set(xn->maps, id,
							    NK_ACL_MODE_OFF);
		for (unsigned i = 0; i < xn->conf.nr_addrs; i++) {
			uint8_t a16[16];

			addr16(a16, xn->conf.addrs[i].addr);
			nk_steer_maps__nsm_addr_del(xn->maps, a16);
		}
		for (unsigned q = 0; xn->l2 && q < xn->conf.queues; q++)
			nk_steer_maps__xsk_clear(xn->maps, q, NK_XSLOT);
	}
	nk_ustack__destroy(xn->st);
	nk_l2__close(xn->l2);
	nk_steer_maps__close(xn->maps);
	if (xn->xskmap_fd >= 0)
		close(xn->xskmap_fd);
	if (xn->tfd >= 0)
		close(xn->tfd);
	nk_xports__fini(&xn->ports);
	nk_xlinger__fini(&xn->linger);
	free(xn->acls);
	free(xn);
}

const struct nk_nsm_ops nk_nsm_afxdp_ops = {
	.type = "afxdp",
	.create = xn_create,
	.destroy = xn_destroy,
	.sock_open = xn_sock_open,
	.sock_release = xn_sock_release,
	.bind = xn_bind,
	.listen = xn_listen,
	.connect = xn_connect,
	.accept = xn_accept,
	.send = xn_send,
	.recv = xn_recv,
	.shutdown = xn_shutdown,
	.setsockopt = xn_setsockopt,
	.getsockopt = xn_getsockopt,
	.getsockname = xn_getsockname,
	.getpeername = xn_getpeername,
	.ioctl = xn_ioctl,
	.cancel = xn_cancel,
	.poll_now = xn_poll_now,
	.sock_name = xn_sock_name,
	.poll = xn_poll,
	.guest_stats = xn_guest_stats,
	.describe = xn_describe,
	.counters = xn_counters,
	.guest_attach = xn_guest_attach,
	.guest_detach = xn_guest_detach,
	/* Datagram batches: udp_recv_batch(). */
	.caps = NK_NSM_CAP_RECV_BATCH,
};
