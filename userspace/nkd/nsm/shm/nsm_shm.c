// SPDX-License-Identifier: MIT
/*
 * The "shm" NSM (docs/shm-nsm.md): TCP connections between two guests of
 * this nkd, joined inside nkd instead of going through a TCP/IP stack.
 *
 * Every shm socket keeps the socket its home NSM made for it ("under"):
 * a listener goes on listening there for peers outside (its ACCEPTs take
 * from either side), a connected socket keeps an unconnected one as the
 * store of its options. The socket moves to this NSM (s->nsm) when it is
 * routed here and back to its home NSM when it is released, so that the
 * home NSM tears its own state down as always.
 *
 * Data: a blocking SEND is held until the peer's RECVs have taken all of
 * it; each RECV copies straight from the sender's region buffer into the
 * receiver's (one copy). A non-blocking SEND that the peer cannot take at
 * once is copied into the receiver's bounded queue (SHM_QCAP bytes), or
 * answered -EAGAIN when that is full or the sending guest's shm_queue=
 * budget has no room for a new queue (budget.c: a queue is charged to
 * the guest that filled it from allocation until it drains or dies). The engine hands down one SEND per
 * socket at a time, so the queue's bytes always come before a held SEND's.
 *
 * Completing an op can run the engine's send queue and release sockets
 * (nsm.h): deliver() therefore never keeps a pointer into the peer across
 * a completion, and is re-entered only through its again flag.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "engine.h"
#include "log.h"
#include "refusal.h"
#include "nsm_shm.h"
#include "validate.h"

#define SHM_QCAP (256u * 1024u)
#define SHM_SOMAXCONN 4096u

struct shm_ep {
	struct nk_list
		tlink; /* listeners: shm.listeners; backlog: lis->backlog */
	struct nk_sock *s; /* NULL: in a backlog, not accepted yet */
	struct shm_ep *peer; /* NULL once the peer is gone */
	struct nk_nsm *under; /* home NSM and its state of s */
	void *under_priv;
	bool listener, connected, connecting, closing;
	/* listener */
	struct nk_list backlog; /* shm_ep.tlink: connected, not accepted */
	uint32_t nr_backlog, max_backlog;
	struct nk_list acceptq; /* parked ACCEPTs (nk_req.qlink) */
	struct nk_list synq; /* connectors waiting for backlog room */
	struct sockaddr_storage lsa; /* bound address */
	/* connection */
	struct shm_ep *lis; /* waiting in lis->synq */
	struct nk_list slink; /* lis->synq */
	struct nk_req *connect_op; /* blocking CONNECT waiting for room */
	uint8_t *q; /* bytes for this end from non-blocking SENDs */
	uint32_t qhead, qlen;
	struct nk_guest *qg; /* charged for q (budget.c): the sender's */
	struct nk_req *held; /* this end's SEND, read by the peer */
	struct nk_list recvq; /* parked RECVs */
	bool peer_fin; /* the peer shut its sending side (or closed) */
	bool shut_rd, shut_wr;
	bool reset; /* RST seen: recv gives err once, then EOF */
	int err; /* pending error (ECONNRESET), reported once */
	bool linger0; /* SO_LINGER {1, 0}: close resets */
	bool delivering, again;
	struct sockaddr_storage local, remote;
};

static struct {
	struct nk_engine *e;
	struct nk_list listeners;
	bool init;
	uint16_t next_port;
	/* nkctl nsms (nk_shm__stats) */
	uint32_t nr_listeners, nr_queues;
	uint64_t joined, queued;
} shm;

static struct nk_nsm shm_nsm = {
	.conf = { .name = "shm", .type = "shm" },
	.ops = &nk_nsm_shm_ops,
	.netns_fd = -1,
};

static void shm_init(struct nk_engine *e)
{
	if (shm.init)
		return;
	shm.init = true;
	shm.e = e;
	shm.next_port = 32768;
	nk_list__init(&shm.listeners);
}

static struct shm_ep *ep_of(struct nk_sock *s)
{
	return s->nsm_priv;
}

static struct shm_ep *ep_new(void)
{
	struct shm_ep *ep = calloc(1, sizeof(*ep));

	if (!ep)
		return NULL;
	nk_list__init(&ep->tlink);
	nk_list__init(&ep->backlog);
	nk_list__init(&ep->acceptq);
	nk_list__init(&ep->synq);
	nk_list__init(&ep->slink);
	nk_list__init(&ep->recvq);
	return ep;
}

/* s moves to the shm NSM; its home NSM's state stays under it. */
static void rehome(struct nk_sock *s, struct shm_ep *ep)
{
	ep->s = s;
	ep->under = s->nsm;
	ep->under_priv = s->nsm_priv;
	s->nsm->nr_socks--;
	s->nsm = &shm_nsm;
	s->nsm_priv = ep;
	shm_nsm.nr_socks++;
}

static void unhome(struct nk_sock *s, struct shm_ep *ep)
{
	shm_nsm.nr_socks--;
	s->nsm = ep->under;
	s->nsm_priv = ep->under_priv;
	s->nsm->nr_socks++;
}

/*
 * Runs one op of the home NSM on s as if s were still its own (its ops
 * find their state in s->nsm_priv). Only for ops that finish at once.
 */
static struct nk_sock *fwd_sock;
static struct shm_ep *fwd_ep;

static void fwd(struct shm_ep *ep, struct nk_req *op)
{
	struct nk_sock *s = ep->s;
	nk_nsm_op_fn fn = nk_nsm__op(ep->under->ops, op->opcode);
	struct nk_sock *os = fwd_sock;
	struct shm_ep *oe = fwd_ep;

	if (!fn || !ep->under_priv) {
		nk_engine__op_done(op, -EOPNOTSUPP, 0, 0, 0);
		return;
	}
	fwd_sock = s;
	fwd_ep = ep;
	s->nsm = ep->under;
	s->nsm_priv = ep->under_priv;
	fn(ep->under->priv, op);
	s->nsm = &shm_nsm;
	s->nsm_priv = ep;
	fwd_sock = os;
	fwd_ep = oe;
}

static unsigned under_poll(struct shm_ep *ep)
{
	struct nk_sock *s = ep->s;
	unsigned ev;

	if (!ep->under_priv)
		return 0;
	s->nsm = ep->under;
	s->nsm_priv = ep->under_priv;
	ev = ep->under->ops->poll_now(ep->under->priv, s);
	s->nsm = &shm_nsm;
	s->nsm_priv = ep;
	return ev;
}

static int under_name(struct shm_ep *ep, bool peer, struct sockaddr_storage *ss,
		      socklen_t *len)
{
	struct nk_sock *s = ep->s;
	int ret;

	if (!ep->under_priv || !ep->under->ops->sock_name)
		return -ENOTCONN;
	s->nsm = ep->under;
	s->nsm_priv = ep->under_priv;
	ret = ep->under->ops->sock_name(ep->under->priv, s, peer, ss, len);
	s->nsm = &shm_nsm;
	s->nsm_priv = ep;
	return ret;
}

static bool op_nonblock(const struct nk_req *op)
{
	return op->sqe_flags & NK_SQE_F_NONBLOCK ||
	       op->msg_flags & MSG_DONTWAIT;
}

/* ------------------------------------------------------------------ */
/* Addresses and policy. */

static uint16_t sa_port(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

static void sa_set_port(struct sockaddr_storage *sa, uint16_t port)
{
	if (sa->ss_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	else if (sa->ss_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

/* The address as 16 bytes (IPv4 mapped); false if not INET. */
static bool sa_addr16(const struct sockaddr_storage *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa->ss_family == AF_INET) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr,
		       4);
		return true;
	}
	if (sa->ss_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

static bool a16_v4(const uint8_t a[16])
{
	static const uint8_t pfx[12] = { 0, 0, 0, 0, 0,	   0,
					 0, 0, 0, 0, 0xff, 0xff };

	return !memcmp(a, pfx, 12);
}

static bool a16_any(const uint8_t a[16])
{
	static const uint8_t z[16];

	return !memcmp(a, z, 16) || (a16_v4(a) && !memcmp(a + 12, z, 4));
}

/* Loopback or unspecified: the namespace's own, not reachable from
 * another namespace. */
static bool a16_nslocal(const uint8_t a[16])
{
	static const uint8_t lo6[16] = { [15] = 1 };

	if (a16_v4(a))
		return a[12] == 127 || a16_any(a);
	return !memcmp(a, lo6, 16) || a16_any(a);
}

/* Is name in the comma-separated list? */
static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		const char *c = strchr(p, ',');
		size_t l = c ? (size_t)(c - p) : strlen(p);

		if (l == n && !strncmp(p, name, n))
			return true;
		if (!c)
			break;
		p = c + 1;
	}
	return false;
}

/* May guest a pair with guest b (docs/shm-nsm.md "Policy")? */
static bool peers_ok(const struct nk_guest *a, const struct nk_guest *b)
{
	if (!a->conf.shm || !b->conf.shm)
		return false;
	if (a == b)
		return true;
	if (a->conf.shm_peers[0] && !in_list(a->conf.shm_peers, b->conf.name))
		return false;
	if (b->conf.shm_peers[0] && !in_list(b->conf.shm_peers, a->conf.name))
		return false;
	return true;
}

/* The shm listener a connect from guest g (home NSM n) to sa reaches. */
static struct shm_ep *find_listener(struct nk_guest *g, struct nk_nsm *n,
				    int family,
				    const struct sockaddr_storage *sa)
{
	uint8_t d[16], l[16];
	uint16_t port = sa_port(sa);
	struct nk_list *p, *t;

	if (!port || !sa_addr16(sa, d))
		return NULL;
	if (!shm.init)
		return NULL;
	nk_list__for_each_safe(p, t, &shm.listeners)
	{
		struct shm_ep *lep = nk_container_of(p, struct shm_ep, tlink);
		struct nk_sock *ls = lep->s;

		if (ls->closing || sa_port(&lep->lsa) != port ||
		    !peers_ok(g, ls->guest) || !sa_addr16(&lep->lsa, l))
			continue;
		/* An IPv4 listener takes no IPv6 peer; IPv6 [::] takes both */
		if (lep->lsa.ss_family == AF_INET && !a16_v4(d))
			continue;
		if (lep->lsa.ss_family == AF_INET6 && family == AF_INET &&
		    !a16_any(l))
			continue;
		if (a16_nslocal(d)) {
			if (n != lep->under)
				continue;
			if (!a16_any(l) && memcmp(l, d, 16) &&
			    !(a16_any(d) && a16_nslocal(l)))
				continue;
		} else if (a16_any(l)) {
			if (!nk_portown__is_local(lep->under, sa))
				continue;
		} else if (memcmp(l, d, 16)) {
			continue;
		}
		return lep;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Data. */

static uint32_t send_head(const struct nk_req *op)
{
	return (op->sqe_flags & NK_SQE_F_CMSG) ? NK_CMSG_BYTES : 0;
}

static uint32_t held_left(const struct nk_req *op)
{
	return op->len - send_head(op) - op->done;
}

/* ep's queue is empty (or its bytes are discarded): its memory goes
 * back, and so does the sending guest's charge. */
static void q_drop(struct shm_ep *ep)
{
	if (!ep->q)
		return;
	free(ep->q);
	ep->q = NULL;
	shm.nr_queues--;
	shm.queued -= ep->qlen;
	ep->qhead = ep->qlen = 0;
	if (ep->qg)
		nk_budget__shmq_put(shm.e, ep->qg, SHM_QCAP);
	ep->qg = NULL;
}

/* Bytes ep can read now. */
static uint64_t avail(const struct shm_ep *ep)
{
	uint64_t n = ep->qlen;

	if (ep->peer && ep->peer->held)
		n += held_left(ep->peer->held);
	return n;
}

static unsigned ep_events(const struct shm_ep *ep)
{
	unsigned ev = 0;

	if (ep->listener)
		return nk_list__empty(&ep->backlog) ? 0 : POLLIN;
	if (!ep->connected)
		return 0;
	if (avail(ep) || ep->peer_fin || ep->reset || ep->shut_rd)
		ev |= POLLIN;
	if (ep->peer_fin || ep->reset || ep->shut_rd)
		ev |= POLLRDHUP;
	if (ep->err)
		ev |= POLLERR;
	if (ep->reset || (ep->peer_fin && ep->shut_wr))
		ev |= POLLHUP;
	ev |= POLLOUT; /* room, or a write fails at once (shut, reset) */
	return ev;
}

static void notify(struct shm_ep *ep, bool arrival)
{
	if (ep && ep->s && !ep->s->closing)
		nk_engine__sock_event(shm.e, ep->s, ep_events(ep), arrival);
}

/*
 * Copies up to room bytes for ep into dst: its queue first, then the
 * peer's held SEND. *done_send: the held SEND all taken, to complete
 * after the caller's own op (its completion may re-enter).
 */
static uint32_t take(struct shm_ep *ep, uint8_t *dst, uint32_t room, bool peek,
		     struct nk_req **done_send)
{
	uint32_t got = 0, n;

	if (ep->qlen) {
		uint32_t h = ep->qhead;

		n = ep->qlen < room ? ep->qlen : room;
		for (uint32_t left = n; left;) {
			uint32_t c = SHM_QCAP - h < left ? SHM_QCAP - h : left;

			memcpy(dst + got, ep->q + h, c);
			got += c;
			left -= c;
			h = (h + c) % SHM_QCAP;
		}
		if (!peek) {
			ep->qhead = h;
			ep->qlen -= n;
			shm.queued -= n;
			if (!ep->qlen)
				q_drop(ep);
		}
	}
	if (got < room && ep->peer && ep->peer->held) {
		struct nk_req *hs = ep->peer->held;
		uint32_t left = held_left(hs);

		n = room - got < left ? room - got : left;
		memcpy(dst + got, hs->buf + send_head(hs) + hs->done, n);
		got += n;
		if (!peek) {
			hs->done += n;
			if (!held_left(hs)) {
				ep->peer->held = NULL;
				*done_send = hs;
			}
		}
	}
	return got;
}

static void finish_release(struct shm_ep *ep);

/*
 * SEND completions wait until the outermost call into this NSM returns:
 * completing one may release its socket or hand down its next SEND, and
 * no caller below keeps a pointer that this could free.
 */
static struct nk_list done_sends = { &done_sends, &done_sends };
static unsigned depth;

static void enter(void)
{
	depth++;
}

static void leave(void)
{
	if (depth > 1) {
		depth--;
		return;
	}
	while (!nk_list__empty(&done_sends)) {
		struct nk_req *hs =
			nk_container_of(done_sends.next, struct nk_req, qlink);
		struct nk_sock *s = hs->sock;
		struct shm_ep *sep = s->nsm == &shm_nsm ? ep_of(s) : NULL;
		/* Before the completion: a closing socket outlives it. */
		bool fin = sep && sep->closing && !sep->held;

		nk_list__del(&hs->qlink);
		hs->in_nsm = false;
		nk_engine__op_done(hs, (int)(hs->len - send_head(hs)), 0, 0, 0);
		if (fin)
			finish_release(sep);
	}
	depth--;
}

/* The held SEND hs of an end is complete: all of it was taken. */
static void send_complete(struct nk_req *hs)
{
	nk_list__add_tail(&done_sends, &hs->qlink);
}

/* Answers one RECV of ep from what is there; false if it must wait. */
static bool recv_one(struct shm_ep *ep, struct nk_req *op,
		     struct nk_req **done_send)
{
	uint32_t skip = (op->sqe_flags & NK_SQE_F_ADDR)
				? sizeof(struct nk_sockaddr)
				: 0;
	uint32_t head =
		skip + ((op->sqe_flags & NK_SQE_F_CMSG) ? NK_CMSG_BYTES : 0);
	uint32_t cap = op->len - head, flags = 0, got;
	int res;

	if (ep->err) {
		res = -ep->err;
		ep->err = 0;
		nk_engine__op_done(op, res, 0, 0, 0);
		return true;
	}
	got = cap ? take(ep, op->buf + head, cap, op->msg_flags & MSG_PEEK,
			 done_send)
		  : 0;
	if (!got && cap && !ep->peer_fin && !ep->reset && !ep->shut_rd)
		return false;
	if (op->sqe_flags & NK_SQE_F_CMSG)
		memset(op->buf + skip, 0, offsetof(struct nk_cmsg, data));
	if (skip) {
		struct nk_sockaddr a;

		nk_sockaddr__from_sa((struct sockaddr *)&ep->remote,
				     sizeof(ep->remote), &a);
		memcpy(op->buf, &a, sizeof(a));
		flags |= NK_CQE_F_ADDR;
	}
	if (!got && cap)
		flags |= NK_CQE_F_EOF;
	res = (int)got;
	nk_engine__op_done(op, res, flags, got, 0);
	return true;
}

/* Serves ep's parked RECVs with what is there. */
static void deliver(struct shm_ep *ep)
{
	if (ep->delivering) {
		ep->again = true;
		return;
	}
	ep->delivering = true;
	do {
		ep->again = false;
		while (!nk_list__empty(&ep->recvq)) {
			struct nk_req *op = nk_container_of(
				ep->recvq.next, struct nk_req, qlink);
			struct nk_req *hs = NULL;

			nk_list__del(&op->qlink);
			if (!recv_one(ep, op, &hs)) {
				/* Back at the head: still the first to wait. */
				struct nk_list *n = ep->recvq.next;

				op->qlink.next = n;
				op->qlink.prev = &ep->recvq;
				n->prev = &op->qlink;
				ep->recvq.next = &op->qlink;
				break;
			}
			if (hs)
				send_complete(hs);
		}
	} while (ep->again);
	ep->delivering = false;
}

/* The peer of ep is gone: reset (RST) or end of stream (FIN). */
static void peer_gone(struct shm_ep *ep, bool rst)
{
	if (!ep)
		return;
	ep->peer = NULL;
	ep->peer_fin = true;
	if (rst) {
		ep->reset = true;
		ep->err = ECONNRESET;
		q_drop(ep);
		/* What it sent counts as sent, as with a kernel socket. */
		if (ep->held) {
			send_complete(ep->held);
			ep->held = NULL;
		}
	}
	deliver(ep);
	notify(ep, true);
}

static void kn_reply(struct nk_req *op, int res)
{
	nk_engine__op_done(op, res, 0, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Socket operations. */

static void shm_bind_(void *priv, struct nk_req *op)
{
	(void)priv;
	kn_reply(op, -EINVAL); /* connected or listening: bound already */
}

static void shm_listen_(void *priv, struct nk_req *op)
{
	struct shm_ep *ep = ep_of(op->sock);

	(void)priv;
	if (!ep->listener) {
		kn_reply(op, -EINVAL);
		return;
	}
	fwd(ep, op); /* a new backlog, outside and here (nk_shm__listened) */
}

static void connect_done(struct shm_ep *c, int res)
{
	struct nk_req *op = c->connect_op;
	struct nk_sock *s = c->s;

	c->connect_op = NULL;
	c->connecting = false;
	if (op) {
		kn_reply(op, res);
		return;
	}
	/* A background connect: its result through SO_ERROR (nsm.h). */
	if (s && !s->closing) {
		if (res)
			s->so_error = -res;
		nk_engine__sock_event(
			shm.e, s,
			res ? POLLOUT | POLLERR | POLLHUP : ep_events(c), true);
	}
}

static void accept_serve(struct shm_ep *lep);

/* Joins connector c to listener lep's backlog; -ENOMEM. */
static int join(struct shm_ep *lep, struct shm_ep *c)
{
	struct shm_ep *sep = ep_new();

	if (!sep)
		return -ENOMEM;
	sep->peer = c;
	c->peer = sep;
	sep->local = c->remote;
	sep->remote = c->local;
	sep->connected = c->connected = true;
	c->s->state = NK_SS_ESTABLISHED;
	nk_list__add_tail(&lep->backlog, &sep->tlink);
	lep->nr_backlog++;
	shm.joined++;
	return 0;
}

static bool backlog_full(const struct shm_ep *lep)
{
	return lep->nr_backlog > lep->max_backlog;
}

static void shm_connect_(void *priv, struct nk_req *op)
{
	struct nk_sock *s = op->sock;
	struct shm_ep *c = ep_of(s), *lep;
	int ret;

	(void)priv;
	if (c->connected || c->connecting) {
		kn_reply(op, c->connecting ? -EALREADY : -EISCONN);
		return;
	}
	lep = find_listener(s->guest, c->under, s->family, &op->sa);
	if (!lep) {
		kn_reply(op, -ECONNREFUSED);
		return;
	}
	c->remote = op->sa;
	if (!c->local.ss_family) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		/* Bound before: its address; else the address it dialed
		 * with a port of its own, as the stack would pick. */
		if (!under_name(c, false, &ss, &len) && sa_port(&ss)) {
			c->local = ss;
		} else {
			c->local = op->sa;
			if (s->family == AF_INET6 &&
			    op->sa.ss_family == AF_INET6)
				c->local.ss_family = AF_INET6;
			sa_set_port(&c->local, shm.next_port);
			shm.next_port = shm.next_port >= 60999
						? 32768
						: shm.next_port + 1;
		}
	}
	if (backlog_full(lep)) {
		/* A full accept queue drops the SYN: the connect waits. */
		c->lis = lep;
		c->connecting = true;
		nk_list__add_tail(&lep->synq, &c->slink);
		s->state = NK_SS_CONNECTING;
		nk_engine__sock_event(shm.e, s, 0, false); /* unwritable */
		if (op_nonblock(op)) {
			kn_reply(op, -EINPROGRESS);
		} else {
			c->connect_op = op;
			op->in_nsm = true;
		}
		return;
	}
	ret = join(lep, c);
	/* As the kernel's: a non-blocking connect is "in progress", and
	 * then writable. */
	kn_reply(op, !ret && op_nonblock(op) ? -EINPROGRESS : ret);
	if (!ret) {
		notify(c, false);
		accept_serve(lep);
	}
}

/* Promotes connectors waiting for room in lep's backlog. */
static void synq_pump(struct shm_ep *lep)
{
	while (!backlog_full(lep) && !nk_list__empty(&lep->synq)) {
		struct shm_ep *c =
			nk_container_of(lep->synq.next, struct shm_ep, slink);
		int ret;

		nk_list__del(&c->slink);
		c->lis = NULL;
		ret = join(lep, c);
		if (c->connect_op)
			c->connect_op->in_nsm = false;
		connect_done(c, ret);
	}
}

/* One shm connection of the backlog for ACCEPT op. */
static void accept_one(struct shm_ep *lep, struct nk_req *op)
{
	struct shm_ep *sep =
		nk_container_of(lep->backlog.next, struct shm_ep, tlink);
	struct nk_sock *ns;
	struct nk_sockaddr a;
	int ret;

	ret = nk_engine__sock_accepted(op->e, op, &ns);
	if (!ret) {
		/* Its option store: an unconnected socket of the home NSM */
		ret = ns->nsm->ops->sock_open(ns->nsm->priv, ns);
		if (ret) {
			ns->closing = true;
			nk_engine__sock_gone(shm.e, ns);
		}
	}
	if (ret) {
		kn_reply(op, ret);
		return;
	}
	nk_list__del(&sep->tlink);
	nk_list__init(&sep->tlink);
	lep->nr_backlog--;
	rehome(ns, sep);
	ns->state = sep->peer_fin ? NK_SS_CLOSE_WAIT : NK_SS_ESTABLISHED;
	nk_sockaddr__from_sa((struct sockaddr *)&sep->remote,
			     sizeof(sep->remote), &a);
	memcpy(op->buf, &a, sizeof(a));
	nk_engine__op_done(op, (int)ns->handle, 0, 0, ns->handle);
	synq_pump(lep);
}

/* Serves parked ACCEPTs from the backlog, or tells the listener. */
static void accept_serve(struct shm_ep *lep)
{
	while (!nk_list__empty(&lep->backlog) &&
	       !nk_list__empty(&lep->acceptq)) {
		struct nk_req *op = nk_container_of(lep->acceptq.next,
						    struct nk_req, qlink);

		nk_list__del(&op->qlink);
		op->in_nsm = false;
		accept_one(lep, op);
	}
	if (!nk_list__empty(&lep->backlog))
		nk_engine__sock_event(shm.e, lep->s, POLLIN, true);
}

/* The home NSM's listener has a connection: parked ACCEPTs take it. */
static void shm_lower_event_(void *priv, struct nk_sock *s, unsigned revents)
{
	struct shm_ep *lep = ep_of(s);

	(void)priv;
	if (!lep->listener || !(revents & POLLIN))
		return;
	while (!nk_list__empty(&lep->acceptq) && (under_poll(lep) & POLLIN)) {
		struct nk_req *op = nk_container_of(lep->acceptq.next,
						    struct nk_req, qlink);

		nk_list__del(&op->qlink);
		op->in_nsm = false;
		/* It is there: the home NSM's accept cannot wait. */
		op->sqe_flags |= NK_SQE_F_NONBLOCK;
		fwd(lep, op);
	}
}

static void shm_accept_(void *priv, struct nk_req *op)
{
	struct shm_ep *lep = ep_of(op->sock);

	(void)priv;
	if (!lep->listener) {
		kn_reply(op, -EINVAL);
		return;
	}
	if (!nk_list__empty(&lep->backlog)) {
		accept_one(lep, op);
		return;
	}
	if (op_nonblock(op) || (under_poll(lep) & POLLIN)) {
		op->sqe_flags |= NK_SQE_F_NONBLOCK;
		fwd(lep, op);
		return;
	}
	op->in_nsm = true;
	nk_list__add_tail(&lep->acceptq, &op->qlink);
}

static void shm_recv_(void *priv, struct nk_req *op)
{
	struct shm_ep *ep = ep_of(op->sock);
	struct nk_req *hs = NULL;

	(void)priv;
	if (ep->listener || (!ep->connected && !ep->reset)) {
		kn_reply(op, -ENOTCONN);
		return;
	}
	if (op->sqe_flags & NK_SQE_F_BATCH) {
		kn_reply(op, -EOPNOTSUPP);
		return;
	}
	/* Behind parked ones, or first: it may be answered at once. */
	if (nk_list__empty(&ep->recvq) && !ep->delivering) {
		if (recv_one(ep, op, &hs)) {
			if (hs)
				send_complete(hs);
			return;
		}
		if (op_nonblock(op)) {
			kn_reply(op, -EAGAIN);
			return;
		}
	} else if (op_nonblock(op)) {
		kn_reply(op, -EAGAIN);
		return;
	}
	op->in_nsm = true;
	nk_list__add_tail(&ep->recvq, &op->qlink);
	deliver(ep);
}

/* Copies what fits of the held SEND into the peer's queue. */
static uint32_t queue_held(struct shm_ep *ep, struct shm_ep *p)
{
	struct nk_req *op = ep->held;
	uint32_t n = held_left(op), room = SHM_QCAP - p->qlen, tail, moved = 0;

	if (!p->q) {
		struct nk_guest *g = ep->s->guest;

		if (nk_budget__shmq_get(shm.e, g, SHM_QCAP)) {
			nk_guest__refused(shm.e, g, NK_REFUSED_SHM_QUEUE,
					  "shm_queue=%llu bytes of receive "
					  "queues held: non-blocking send "
					  "gets EAGAIN",
					  (unsigned long long)g->bshmq);
			return 0;
		}
		p->q = malloc(SHM_QCAP);
		if (!p->q) {
			nk_budget__shmq_put(shm.e, g, SHM_QCAP);
			return 0;
		}
		p->qg = g;
		shm.nr_queues++;
	}
	if (n > room)
		n = room;
	tail = (p->qhead + p->qlen) % SHM_QCAP;
	while (moved < n) {
		uint32_t c = SHM_QCAP - tail < n - moved ? SHM_QCAP - tail
							 : n - moved;

		memcpy(p->q + tail, op->buf + send_head(op) + op->done, c);
		op->done += c;
		moved += c;
		p->qlen += c;
		shm.queued += c;
		tail = (tail + c) % SHM_QCAP;
	}
	return moved;
}

static void shm_send_(void *priv, struct nk_req *op)
{
	struct nk_sock *s = op->sock;
	struct shm_ep *ep = ep_of(s), *p = ep->peer;

	(void)priv;
	if (ep->err) {
		int err = ep->err;

		ep->err = 0;
		kn_reply(op, -err);
		return;
	}
	if (ep->reset || ep->shut_wr) {
		kn_reply(op, -EPIPE);
		return;
	}
	if (!ep->connected) {
		kn_reply(op, -ENOTCONN);
		return;
	}
	if (!p) {
		/* The peer closed: its stack answers with a reset. */
		ep->reset = true;
		ep->err = ECONNRESET;
		kn_reply(op, (int)(op->len - send_head(op)));
		notify(ep, true);
		return;
	}
	if (!held_left(op)) {
		kn_reply(op, 0);
		return;
	}
	ep->held = op;
	op->in_nsm = true;
	deliver(p);
	if (ep->held != op) /* all taken by the peer's RECVs */
		return;
	if (op_nonblock(op)) {
		p = ep->peer;
		if (p)
			queue_held(ep, p);
		ep->held = NULL;
		op->in_nsm = false;
		kn_reply(op, op->done ? (int)op->done : -EAGAIN);
	}
	notify(ep->peer, true);
}

static void shm_shutdown_(void *priv, struct nk_req *op)
{
	struct shm_ep *ep = ep_of(op->sock);
	int how = (int)op->arg;

	(void)priv;
	if (ep->listener) {
		fwd(ep, op);
		return;
	}
	if (!ep->connected) {
		kn_reply(op, -ENOTCONN);
		return;
	}
	if (how == SHUT_RD || how == SHUT_RDWR) {
		ep->shut_rd = true;
		deliver(ep);
	}
	if ((how == SHUT_WR || how == SHUT_RDWR) && !ep->shut_wr) {
		ep->shut_wr = true;
		if (ep->peer) {
			ep->peer->peer_fin = true;
			deliver(ep->peer);
			notify(ep->peer, true);
		}
	}
	kn_reply(op, 0);
	notify(ep, false);
}

static void shm_setsockopt_(void *priv, struct nk_req *op)
{
	struct shm_ep *ep = ep_of(op->sock);
	struct linger l;

	(void)priv;
	if (op->level == SOL_SOCKET && op->optname == SO_LINGER &&
	    op->len >= sizeof(l)) {
		memcpy(&l, op->buf, sizeof(l)); /* guest memory: a number */
		ep->linger0 = l.l_onoff && !l.l_linger;
	}
	fwd(ep, op);
}

static void shm_getsockopt_(void *priv, struct nk_req *op)
{
	struct shm_ep *ep = ep_of(op->sock);

	(void)priv;
	if (op->level == SOL_SOCKET && op->optname == SO_ERROR &&
	    op->len >= sizeof(int)) {
		int v = ep->err;

		ep->err = 0;
		memcpy(op->buf, &v, sizeof(v));
		kn_reply(op, sizeof(v));
		return;
	}
	fwd(ep, op);
}

static int name_of(struct shm_ep *ep, bool peer, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);

	if (ep->listener)
		return under_name(ep, peer, ss, &len);
	if (peer && (!ep->connected || !ep->peer_fin) && !ep->connected)
		return -ENOTCONN;
	*ss = peer ? ep->remote : ep->local;
	return 0;
}

static void name_op(struct nk_req *op, bool peer)
{
	struct sockaddr_storage ss;
	struct nk_sockaddr a;
	int ret = name_of(ep_of(op->sock), peer, &ss);

	if (!ret) {
		nk_sockaddr__from_sa((struct sockaddr *)&ss, sizeof(ss), &a);
		memcpy(op->buf, &a, sizeof(a));
	}
	kn_reply(op, ret);
}

static void shm_getsockname_(void *priv, struct nk_req *op)
{
	(void)priv;
	name_op(op, false);
}

static void shm_getpeername_(void *priv, struct nk_req *op)
{
	(void)priv;
	name_op(op, true);
}

static void shm_ioctl_(void *priv, struct nk_req *op)
{
	struct shm_ep *ep = ep_of(op->sock);
	uint64_t v;

	(void)priv;
	if (ep->listener) {
		kn_reply(op, -EINVAL);
		return;
	}
	v = op->arg == NK_IOCTL_FIONREAD ? avail(ep)
	    : ep->held			 ? held_left(ep->held)
					 : 0;
	kn_reply(op, v > INT32_MAX ? INT32_MAX : (int)v);
}

static int shm_cancel_(void *priv, struct nk_req *op)
{
	struct shm_ep *ep = ep_of(op->sock);

	(void)priv;
	if (!op->in_nsm)
		return -ENOENT;
	op->in_nsm = false;
	if (ep->held == op) {
		ep->held = NULL;
		kn_reply(op, op->done ? (int)op->done : -ECANCELED);
		if (ep->closing)
			finish_release(ep);
		return 0;
	}
	if (ep->connect_op == op) {
		/* Timed out: the connect goes on in the background. */
		ep->connect_op = NULL;
		kn_reply(op, -ECANCELED);
		return 0;
	}
	nk_list__del(&op->qlink);
	kn_reply(op, -ECANCELED);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lifecycle. */

static void ep_free(struct shm_ep *ep)
{
	q_drop(ep);
	free(ep);
}

static void finish_release(struct shm_ep *ep)
{
	struct nk_sock *s = ep->s;
	struct shm_ep *p = ep->peer;

	if (p) {
		bool rst = ep->linger0 || avail(ep);

		p->peer = NULL;
		peer_gone(p, rst);
	}
	unhome(s, ep);
	ep_free(ep);
	if (s->nsm_priv)
		s->nsm->ops->sock_release(s->nsm->priv, s);
	else
		nk_engine__sock_gone(shm.e, s);
}

static void release_listener(struct shm_ep *lep)
{
	struct nk_sock *s = lep->s;

	nk_list__del(&lep->tlink);
	shm.nr_listeners--;
	while (!nk_list__empty(&lep->acceptq)) {
		struct nk_req *op = nk_container_of(lep->acceptq.next,
						    struct nk_req, qlink);

		nk_list__del(&op->qlink);
		op->in_nsm = false;
		kn_reply(op, -ECANCELED);
	}
	/* Connected, never accepted: their peers see a reset. */
	while (!nk_list__empty(&lep->backlog)) {
		struct shm_ep *sep = nk_container_of(lep->backlog.next,
						     struct shm_ep, tlink);

		nk_list__del(&sep->tlink);
		if (sep->peer) {
			sep->peer->peer = NULL;
			peer_gone(sep->peer, true);
		}
		ep_free(sep);
	}
	while (!nk_list__empty(&lep->synq)) {
		struct shm_ep *c =
			nk_container_of(lep->synq.next, struct shm_ep, slink);

		nk_list__del(&c->slink);
		c->lis = NULL;
		if (c->connect_op)
			c->connect_op->in_nsm = false;
		if (c->s)
			c->s->state = NK_SS_CLOSED;
		connect_done(c, -ECONNREFUSED);
	}
	unhome(s, lep);
	ep_free(lep);
	s->nsm->ops->sock_release(s->nsm->priv, s);
}

static void shm_sock_release_(void *priv, struct nk_sock *s)
{
	struct shm_ep *ep = ep_of(s);

	(void)priv;
	if (ep->listener) {
		release_listener(ep);
		return;
	}
	ep->closing = true;
	while (!nk_list__empty(&ep->recvq)) {
		struct nk_req *op =
			nk_container_of(ep->recvq.next, struct nk_req, qlink);

		nk_list__del(&op->qlink);
		op->in_nsm = false;
		kn_reply(op, -ECANCELED);
	}
	if (ep->lis) {
		nk_list__del(&ep->slink);
		ep->lis = NULL;
	}
	if (ep->connect_op) {
		struct nk_req *op = ep->connect_op;

		ep->connect_op = NULL;
		op->in_nsm = false;
		kn_reply(op, -ECANCELED);
	}
	/* Unread data here: a reset, and what it sent goes too. */
	if (ep->peer && avail(ep))
		ep->linger0 = true;
	if (ep->held && ep->linger0) {
		send_complete(ep->held);
		ep->held = NULL;
	}
	/* Its last SEND is still read by the peer: FIN after it. */
	if (ep->held)
		return;
	finish_release(ep);
}

/* Every way into this NSM goes through enter()/leave(). */
#define SHM_OP(name)                                    \
	static void name(void *priv, struct nk_req *op) \
	{                                               \
		enter();                                \
		name##_(priv, op);                      \
		leave();                                \
	}
SHM_OP(shm_bind)
SHM_OP(shm_listen)
SHM_OP(shm_connect)
SHM_OP(shm_accept)
SHM_OP(shm_recv)
SHM_OP(shm_send)
SHM_OP(shm_shutdown)
SHM_OP(shm_setsockopt)
SHM_OP(shm_getsockopt)
SHM_OP(shm_getsockname)
SHM_OP(shm_getpeername)
SHM_OP(shm_ioctl)

static int shm_cancel(void *priv, struct nk_req *op)
{
	int ret;

	enter();
	ret = shm_cancel_(priv, op);
	leave();
	return ret;
}

static void shm_sock_release(void *priv, struct nk_sock *s)
{
	enter();
	shm_sock_release_(priv, s);
	leave();
}

static void shm_lower_event(void *priv, struct nk_sock *s, unsigned revents)
{
	enter();
	shm_lower_event_(priv, s, revents);
	leave();
}

static int shm_sock_open(void *priv, struct nk_sock *s)
{
	(void)priv;
	(void)s;
	return -EOPNOTSUPP; /* sockets come here by routing (nsm_shm.h) */
}

static unsigned shm_poll_now(void *priv, struct nk_sock *s)
{
	struct shm_ep *ep = ep_of(s);

	(void)priv;
	if (ep->listener)
		return under_poll(ep) | ep_events(ep);
	return ep_events(ep);
}

static int shm_sock_name(void *priv, struct nk_sock *s, bool peer,
			 struct sockaddr_storage *ss, socklen_t *len)
{
	int ret;

	(void)priv;
	memset(ss, 0, sizeof(*ss));
	ret = name_of(ep_of(s), peer, ss);
	*len = sizeof(*ss);
	return ret;
}

static int shm_create(struct nk_engine *e, struct nk_loop *loop,
		      const struct nk_nsm_conf *conf, void **priv)
{
	(void)e;
	(void)loop;
	(void)conf;
	(void)priv;
	/* Not configured as an nsm line: guests' shm= turns it on. */
	return -EINVAL;
}

static void shm_destroy(void *priv)
{
	(void)priv;
}

/* ------------------------------------------------------------------ */
/* Engine hooks. */

bool nk_shm__route(struct nk_engine *e, struct nk_sock *s, uint8_t opcode,
		   const struct sockaddr_storage *sa)
{
	struct shm_ep *ep;

	if (!s)
		return false;
	if (s->nsm == &shm_nsm)
		return true;
	shm.e = e; /* one engine at a time (unit tests make several) */
	if (opcode != NK_OP_CONNECT || s->type != SOCK_STREAM ||
	    !s->guest->conf.shm || s->closing || s->nr_ops ||
	    (s->state != NK_SS_UNBOUND && s->state != NK_SS_BOUND) ||
	    (s->family != AF_INET && s->family != AF_INET6))
		return false;
	shm_init(e);
	if (!find_listener(s->guest, s->nsm, s->family, sa))
		return false; /* its own NSM: another listener, or refused */
	ep = ep_new();
	if (!ep)
		return false;
	rehome(s, ep);
	return true;
}

void nk_shm__listened(struct nk_engine *e, struct nk_sock *s, uint32_t backlog)
{
	struct shm_ep *ep;
	socklen_t len = sizeof(ep->lsa);

	if (backlog > SHM_SOMAXCONN)
		backlog = SHM_SOMAXCONN;
	if (s == fwd_sock) { /* listen() again: a new backlog */
		fwd_ep->max_backlog = backlog;
		enter();
		synq_pump(fwd_ep);
		leave();
		return;
	}
	if (s->type != SOCK_STREAM || !s->guest->conf.shm || s->closing ||
	    (s->family != AF_INET && s->family != AF_INET6) ||
	    !s->nsm->ops->sock_name)
		return;
	shm_init(e);
	shm.e = e;
	ep = ep_new();
	if (!ep)
		return; /* outside peers only */
	if (s->nsm->ops->sock_name(s->nsm->priv, s, false, &ep->lsa, &len)) {
		free(ep);
		return;
	}
	ep->listener = true;
	ep->max_backlog = backlog;
	ep->s = s;
	rehome(s, ep);
	nk_list__add_tail(&shm.listeners, &ep->tlink);
	shm.nr_listeners++;
}

void nk_shm__stats(const struct nk_engine *e, struct nk_shm_stats *st)
{
	const struct nk_list *p;

	memset(st, 0, sizeof(*st));
	for (p = e->guests.next; p != &e->guests; p = p->next) {
		const struct nk_guest *g =
			nk_container_of(p, struct nk_guest, link);

		st->guests += g->conf.shm;
	}
	st->sockets = shm_nsm.nr_socks;
	st->listeners = shm.nr_listeners;
	st->joined = shm.joined;
	st->queues = shm.nr_queues;
	st->queue_bytes = (uint64_t)shm.nr_queues * SHM_QCAP;
	st->queued = shm.queued;
	st->queue_refused = e->budget.refused_shmq;
}

/* A held SEND waits for the peer program's RECVs and nothing else. */
static bool shm_send_peer_limited(void *priv, struct nk_sock *s)
{
	struct shm_ep *ep = ep_of(s);

	(void)priv;
	return ep && !ep->listener && ep->held && ep->peer &&
	       nk_list__empty(&ep->peer->recvq);
}

const struct nk_nsm_ops nk_nsm_shm_ops = {
	.type = "shm",
	.create = shm_create,
	.destroy = shm_destroy,
	.sock_open = shm_sock_open,
	.sock_release = shm_sock_release,
	.bind = shm_bind,
	.listen = shm_listen,
	.connect = shm_connect,
	.accept = shm_accept,
	.send = shm_send,
	.recv = shm_recv,
	.shutdown = shm_shutdown,
	.setsockopt = shm_setsockopt,
	.getsockopt = shm_getsockopt,
	.getsockname = shm_getsockname,
	.getpeername = shm_getpeername,
	.ioctl = shm_ioctl,
	.cancel = shm_cancel,
	.poll_now = shm_poll_now,
	.sock_name = shm_sock_name,
	.lower_event = shm_lower_event,
	.send_peer_limited = shm_send_peer_limited,
	.caps = NK_NSM_CAP_RECV_RENDEZVOUS,
};
