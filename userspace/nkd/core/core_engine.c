// SPDX-License-Identifier: MIT
/*
 * CoreEngine: guests, connections, the guest-scoped socket handle table,
 * references and hand-overs, quotas, accounting, and the event loop that
 * polls every guest's rings fairly and sleeps when there is nothing to do.
 * See docs/nkd.md for the model.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "netkernel/ring.h"

#include "engine.h"
#include "host_ring.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "nsm_shm.h"
#include "optimer.h"
#include "pollcost.h"
#include "ratelimit.h"
#include "rxback.h"
#include "rxpark.h"
#include "sendq.h"
#include "region.h"
#include "vm.h"
#include "validate.h"

#define READ_EVENTS (POLLIN | POLLERR | POLLHUP | POLLRDHUP)
#define MAX_HANDOVERS_PER_GUEST 256u
/* Sleep at most this long when a guest's full CQ stops us taking SQEs:
 * it frees room without ringing the doorbell. */
#define CQ_BLOCKED_RECHECK_NS 1000000ll

int64_t nk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Operation slab: slot + generation, so late completions are harmless. */

static struct nk_req *op_alloc(struct nk_engine *e)
{
	struct nk_req *op;
	uint32_t slot, gen;

	if (!e->nr_ops_free) {
		uint32_t ncap = e->ops_cap ? e->ops_cap * 2 : 256;
		struct nk_req **ops = realloc(e->ops, ncap * sizeof(*ops));
		uint32_t *fr;

		if (!ops)
			return NULL;
		e->ops = ops;
		fr = realloc(e->ops_free, ncap * sizeof(*fr));
		if (!fr)
			return NULL;
		e->ops_free = fr;
		for (uint32_t i = e->ops_cap; i < ncap; i++) {
			e->ops[i] = calloc(1, sizeof(struct nk_req));
			if (!e->ops[i]) {
				ncap = i;
				break;
			}
			e->ops[i]->slot = i;
		}
		for (uint32_t i = ncap; i > e->ops_cap; i--)
			e->ops_free[e->nr_ops_free++] = i - 1;
		e->ops_cap = ncap;
		if (!e->nr_ops_free)
			return NULL;
	}
	op = e->ops[e->ops_free[--e->nr_ops_free]];
	slot = op->slot;
	gen = op->gen;
	memset(op, 0, sizeof(*op));
	op->slot = slot;
	op->gen = gen;
	op->used = true;
	op->e = e;
	op->buf_idx = -1;
	op->ph_app = op->ph_nkd = -1;
	nk_list__init(&op->clink);
	nk_list__init(&op->qlink);
	nk_list__init(&op->tlink);
	return op;
}

static void op_free(struct nk_engine *e, struct nk_req *op)
{
	op->used = false;
	op->gen = (op->gen + 1) & NK_UD_GEN_MASK;
	e->ops_free[e->nr_ops_free++] = op->slot;
}

struct nk_req *nk_engine__op_get(struct nk_engine *e, uint32_t slot,
				 uint32_t gen)
{
	struct nk_req *op;

	if (slot >= e->ops_cap)
		return NULL;
	op = e->ops[slot];
	if (!op->used || op->gen != gen)
		return NULL;
	return op;
}

/* ------------------------------------------------------------------ */
/* Guests and the handle table. */

static struct nk_nsm *nsm_by_name(struct nk_engine *e, const char *name)
{
	if (!name[0])
		return &e->nsms[0];
	for (unsigned i = 0; i < e->nr_nsms; i++)
		if (!strcmp(e->nsms[i].conf.name, name))
			return &e->nsms[i];
	return NULL;
}

static struct nk_guest *guest_find(struct nk_engine *e, const char *name)
{
	struct nk_list *p, *t;

	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		if (!strcmp(g->conf.name, name))
			return g;
	}
	return NULL;
}

static void guest_free(struct nk_engine *e, struct nk_guest *g);

/* Something still refers to g: it must not be freed (or lose its id). */
static bool guest_in_use(const struct nk_guest *g)
{
	return g->nr_conns || g->nr_socks || g->nr_handovers || g->inflight ||
	       g->nr_resolve || g->bshmq;
}

/*
 * Every id is taken: free the unknown guest that has been idle longest (the
 * ones kept only for their counters), so new names do not starve. false if
 * every guest is in use or from the config.
 */
static bool guest_evict_idle(struct nk_engine *e)
{
	struct nk_guest *victim = NULL;
	struct nk_list *p, *t;

	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		if (g->from_config || guest_in_use(g))
			continue;
		if (!victim ||
		    (g->idle_since && (!victim->idle_since ||
				       g->idle_since < victim->idle_since)))
			victim = g;
	}
	if (victim)
		guest_free(e, victim);
	return victim != NULL;
}

/* NULL with *err: -EUSERS when every guest id is in use, -ENOMEM, or the
 * NSM's guest_attach error. */
static struct nk_guest *guest_new(struct nk_engine *e,
				  const struct nk_guest_conf *conf,
				  bool from_config, int *err)
{
	struct nk_guest *g = calloc(1, sizeof(*g));

	*err = -ENOMEM;
	if (!g)
		return NULL;
	g->conf = *conf;
	g->from_config = from_config;
	g->id = nk_guest_ids__alloc(&e->guest_ids);
	if (!g->id && guest_evict_idle(e))
		g->id = nk_guest_ids__alloc(&e->guest_ids);
	if (!g->id) {
		nk_warn("guest %s refused: all %u guest ids are in use "
			"(guests attached or holding sockets)",
			conf->name, NK_GUEST_ID_MAX);
		free(g);
		*err = -EUSERS;
		return NULL;
	}
	g->nsm = nsm_by_name(e, conf->nsm);
	if (!g->nsm)
		g->nsm = &e->nsms[0];
	if (g->nsm->ops->guest_attach && g->nsm->priv) {
		*err = g->nsm->ops->guest_attach(g->nsm->priv, g);
		if (*err) {
			nk_warn("guest %s refused by nsm %s: %s", conf->name,
				g->nsm->conf.name, strerror(-*err));
			nk_guest_ids__free(&e->guest_ids, g->id);
			free(g);
			return NULL;
		}
	}
	nk_list__init(&g->conns);
	nk_rate__guest_init(g);
	nk_sched__guest_init(g);
	nk_list__add_tail(&e->guests, &g->link);
	e->nr_guests++;
	g->nsm->nr_guests++;
	return g;
}

static void guest_free(struct nk_engine *e, struct nk_guest *g)
{
	/* Only at shutdown can sockets be left; the NSMs are gone by then. */
	for (uint32_t i = 1; i < g->cap; i++) {
		struct nk_sock *s = g->socks[i];

		if (!s)
			continue;
		nk_ph__close(&s->ph);
		free(s->holders);
		free(s);
	}
	nk_list__del(&g->link);
	e->nr_guests--;
	g->nsm->nr_guests--;
	/* Per-id state goes before the id can be handed out again. */
	if (g->nsm->ops->guest_detach && g->nsm->priv)
		g->nsm->ops->guest_detach(g->nsm->priv, g);
	nk_guest_ids__free(&e->guest_ids, g->id);
	free(g->socks);
	free(g->gens);
	free(g);
}

static void ho_deadline(struct nk_engine *e, int64_t when);

/*
 * Unknown guests vanish once nothing has referred to them for
 * NK_GUEST_RETAIN_NS, so `nkctl guests` keeps showing what a guest did
 * after its program exits. When every guest id is taken, guest_new() frees
 * the one idle longest at once: any local process may invent names.
 */
#define NK_GUEST_RETAIN_NS (300 * 1000000000LL)

static void guest_gc(struct nk_engine *e, int64_t now)
{
	struct nk_list *p, *t;

	e->gc = false;
	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		if (g->from_config)
			continue;
		if (guest_in_use(g)) {
			g->idle_since = 0;
			continue;
		}
		if (!g->idle_since)
			g->idle_since = now;
		if (now - g->idle_since >= NK_GUEST_RETAIN_NS)
			guest_free(e, g);
		else
			ho_deadline(e, g->idle_since + NK_GUEST_RETAIN_NS);
	}
}

static struct nk_sock *handle_lookup(struct nk_guest *g, uint32_t handle)
{
	uint32_t idx = handle & NK_HANDLE_IDX_MASK;
	struct nk_sock *s;

	if (!idx || idx >= g->cap)
		return NULL;
	s = g->socks[idx];
	if (!s || s->closing || g->gens[idx] != handle >> NK_HANDLE_IDX_BITS)
		return NULL;
	return s;
}

static int handle_alloc(struct nk_guest *g, struct nk_sock *s)
{
	uint32_t idx;

	/*
	 * ENFILE, not EMFILE: the limit is the guest's, over all its
	 * processes, not the caller's descriptor table (docs/nkd.md).
	 */
	if (g->nr_socks >= g->conf.max_sockets)
		return -ENFILE;
	if (g->nr_socks + 1 >= g->cap) {
		uint32_t ncap = g->cap ? g->cap * 2 : 64;
		struct nk_sock **ns;
		uint16_t *gens;

		if (ncap > NK_HANDLE_IDX_MASK + 1)
			ncap = NK_HANDLE_IDX_MASK + 1;
		if (ncap <= g->cap)
			return -ENFILE;
		ns = realloc(g->socks, ncap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		g->socks = ns;
		gens = realloc(g->gens, ncap * sizeof(*gens));
		if (!gens)
			return -ENOMEM;
		g->gens = gens;
		for (uint32_t i = g->cap; i < ncap; i++) {
			g->socks[i] = NULL;
			g->gens[i] = 0;
		}
		g->cap = ncap;
	}
	/* Round robin over free indices: a freed handle is reused late. */
	idx = g->next_idx;
	for (uint32_t n = 0; n < g->cap; n++, idx++) {
		if (idx >= g->cap || idx == 0)
			idx = 1;
		if (!g->socks[idx])
			break;
	}
	if (g->socks[idx])
		return -ENFILE;
	/* Random, never 0: a handle cannot be guessed (abi.md §5). */
	g->gens[idx] = nk_rand__handle_gen(g->gens[idx]);
	g->socks[idx] = s;
	g->next_idx = idx + 1;
	g->nr_socks++;
	s->handle = (uint32_t)g->gens[idx] << NK_HANDLE_IDX_BITS | idx;
	return 0;
}

static void handle_free(struct nk_guest *g, struct nk_sock *s)
{
	uint32_t idx = s->handle & NK_HANDLE_IDX_MASK;

	if (idx && idx < g->cap && g->socks[idx] == s) {
		g->socks[idx] = NULL;
		g->nr_socks--;
	}
}

/* ------------------------------------------------------------------ */
/* Sockets and references. */

static bool holder_has(const struct nk_sock *s, const void *h)
{
	for (uint32_t i = 0; i < s->nr_holders; i++)
		if (s->holders[i] == h)
			return true;
	return false;
}

static int holder_add(struct nk_sock *s, void *h)
{
	if (holder_has(s, h))
		return 0;
	if (s->nr_holders == s->cap_holders) {
		uint32_t ncap = s->cap_holders ? s->cap_holders * 2 : 2;
		void **n = realloc(s->holders, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->holders = n;
		s->cap_holders = ncap;
	}
	s->holders[s->nr_holders++] = h;
	return 0;
}

static bool holder_del(struct nk_sock *s, const void *h)
{
	for (uint32_t i = 0; i < s->nr_holders; i++) {
		if (s->holders[i] == h) {
			s->holders[i] = s->holders[--s->nr_holders];
			return true;
		}
	}
	return false;
}

static void sock_maybe_free(struct nk_engine *e, struct nk_sock *s)
{
	struct nk_guest *g = s->guest;

	if (!s->gone || s->nr_ops)
		return;
	nk_portown__sock_free(s);
	g->rxback_bytes -= nk_rxback__bytes(s->rxback);
	nk_rxback__free(&s->rxback);
	handle_free(g, s);
	nk_ph__close(&s->ph);
	nk_budget__sock_put(e, g);
	e->nr_socks--;
	s->nsm->nr_socks--;
	free(s->holders);
	free(s);
	e->gc = true;
}

/* Last reference gone: the NSM stops the socket, then calls sock_gone. */
static void sock_release(struct nk_engine *e, struct nk_sock *s)
{
	(void)e;
	if (s->closing)
		return;
	s->closing = true;
	nk_ph__close(&s->ph);
	/* Kept by the engine, not the NSM: nobody else would end it. */
	if (s->rx_standing) {
		s->rx_standing->cancelled = true;
		nk_rxpark__cancel(s->rx_standing);
	}
	if (nk_sendq__defer_release(s))
		return;
	s->nsm->ops->sock_release(s->nsm->priv, s);
}

static void sock_put(struct nk_engine *e, struct nk_sock *s, const void *h)
{
	if (holder_del(s, h) && !s->nr_holders)
		sock_release(e, s);
}

void nk_engine__sock_gone(struct nk_engine *e, struct nk_sock *s)
{
	s->gone = true;
	s->nsm_priv = NULL;
	sock_maybe_free(e, s);
}

static int sock_new(struct nk_engine *e, struct nk_guest *g, struct nk_conn *c,
		    int family, int type, int protocol, struct nk_sock **out)
{
	struct nk_sock *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->guest = g;
	s->nsm = g->nsm;
	s->family = family;
	s->type = type;
	s->protocol = protocol;
	s->state = NK_SS_UNBOUND;
	s->send_window = NK_REGION_SEND_WINDOW;
	s->conn_id = c->id;
	nk_ph__init(&s->ph);
	nk_list__init(&s->sendq);
	ret = handle_alloc(g, s);
	if (ret == -ENFILE)
		nk_guest__refused(e, g, NK_REFUSED_SOCKETS,
				  "max_sockets %u reached",
				  g->conf.max_sockets);
	if (!ret && (ret = nk_budget__sock_get(e, g)))
		nk_guest__refused(e, g, NK_REFUSED_BUDGET,
				  "nkd's socket budget: %s", strerror(-ret));
	if (ret) {
		handle_free(g, s);
		free(s);
		return ret;
	}
	ret = holder_add(s, c);
	if (ret) {
		nk_budget__sock_put(e, g);
		handle_free(g, s);
		free(s);
		return ret;
	}
	e->nr_socks++;
	s->nsm->nr_socks++;
	*out = s;
	return 0;
}

/* Abandons a socket the NSM never took (its sock_open failed). */
static void sock_abandon(struct nk_engine *e, struct nk_sock *s)
{
	s->closing = true;
	s->gone = true;
	s->nr_holders = 0;
	sock_maybe_free(e, s);
}

int nk_engine__sock_accepted(struct nk_engine *e, struct nk_req *op,
			     struct nk_sock **out)
{
	struct nk_conn *c = op->conn;
	int ret;

	if (c->dead)
		return -ECONNABORTED;
	ret = sock_new(e, c->guest, c, op->sock->family, SOCK_STREAM,
		       op->sock->protocol, out);
	if (ret)
		return ret;
	(*out)->state = NK_SS_ESTABLISHED;
	(*out)->send_window = op->sock->send_window;
	nk_portown__inherit(*out, op->sock);
	return 0;
}

/* What a SEND counts against its socket's window (abi.md §5). */
static uint64_t send_charge(const struct nk_conn *c, const struct nk_req *op)
{
	return op->len > c->send_charge ? op->len : c->send_charge;
}

static bool sock_writable(const struct nk_sock *s)
{
	if (s->state == NK_SS_CLOSED)
		return true;
	return s->state != NK_SS_CONNECTING &&
	       s->send_inflight < s->send_window;
}

/*
 * SO_SNDBUF shrinks the send window (abi.md §5), so that a program that
 * asks for a small send buffer sees EAGAIN, and a peer's reset, as soon as
 * the kernel would show them. Read before the CQE gives the buffer back.
 */
static void sndbuf_window(struct nk_req *op)
{
	struct nk_sock *s = op->sock;
	uint64_t w;
	int v;

	if (op->level != SOL_SOCKET || op->optname != SO_SNDBUF ||
	    op->len < sizeof(v))
		return;
	memcpy(&v, op->buf, sizeof(v)); /* guest memory: just a number */
	w = v > 0 ? 2 * (uint64_t)v : 0;
	if (w < NK_SNDBUF_WINDOW_MIN)
		w = NK_SNDBUF_WINDOW_MIN;
	if (w < s->send_window)
		s->send_window = (uint32_t)w;
	/* Full now: unwritable before the guest sees the smaller window. */
	if (!s->closing && !sock_writable(s))
		nk_ph__set_writable(&s->ph, false);
}

/* After the guest consumed something: drop readability if nothing left. */
void nk_engine__sock_recheck(struct nk_sock *s)
{
	unsigned ev;

	if (s->closing || s->ph.app < 0)
		return;
	ev = s->nsm->ops->poll_now(s->nsm->priv, s);
	/* Data given back unread (rxback.c) is readable too. */
	nk_ph__set_readable(&s->ph, (ev & READ_EVENTS) || s->rxback, false);
}

/*
 * A connected stream's end states, on the app end itself (abi.md §6), so
 * that poll shows POLLRDHUP, POLLHUP and POLLERR where the socket would.
 * Called before the readable byte is queued: that byte would wake a poller
 * which could return POLLIN alone before the hang-up shows.
 */
void nk_engine__sock_mirror_hup(struct nk_sock *s, unsigned ev)
{
	if (s->type != SOCK_STREAM || s->state == NK_SS_LISTEN ||
	    s->state == NK_SS_UNBOUND || s->state == NK_SS_BOUND ||
	    s->state == NK_SS_CONNECTING)
		return;
	if (ev & POLLHUP)
		nk_ph__hangup(&s->ph, ev & POLLERR);
	else if (ev & POLLRDHUP)
		nk_ph__rdhup(&s->ph);
}

void nk_engine__sock_event(struct nk_engine *e, struct nk_sock *s,
			   unsigned revents, bool arrival)
{
	if (s->closing)
		return;
	if (s->nsm->ops->lower_event)
		s->nsm->ops->lower_event(s->nsm->priv, s, revents);
	if ((revents & POLLRDHUP) && s->state == NK_SS_ESTABLISHED)
		s->state = NK_SS_CLOSE_WAIT;
	if ((revents & (POLLERR | POLLHUP)) && s->type == SOCK_STREAM &&
	    s->state != NK_SS_LISTEN)
		s->state = NK_SS_CLOSED;
	/* A standing RECV takes it: the placeholder waits for its CQE. */
	if ((revents & READ_EVENTS) && nk_rxpark__wake(e, s, revents)) {
		nk_ph__set_writable(&s->ph, sock_writable(s));
		return;
	}
	nk_engine__sock_mirror_hup(s, revents);
	if (revents & READ_EVENTS)
		nk_ph__set_readable(&s->ph, true, arrival);
	nk_ph__set_writable(&s->ph, sock_writable(s));
}

/* ------------------------------------------------------------------ */
/* Connections. */

static void conn_free(struct nk_engine *e, struct nk_conn *c)
{
	nk_list__del(&c->dlink);
	nk_phpool__destroy(c->phpool);
	for (uint32_t i = 0; i < c->nr_qsets; i++)
		nk_hring__destroy(c->qs[i]);
	nk_bufown__destroy(c->owned);
	nk_budget__conn_put(e, c);
	/* Only now: no operation can still make the kernel touch it. */
	nk_region__destroy(c->region);
	if (c->doorbell >= 0)
		close(c->doorbell);
	free(c);
	e->nr_conn_objs--;
	e->gc = true;
}

static void conn_put(struct nk_engine *e, struct nk_conn *c)
{
	if (--c->refs == 0)
		conn_free(e, c);
}

static void conn_abort(struct nk_engine *e, struct nk_conn *c, const char *why)
{
	if (c->dead)
		return;
	nk_warn("guest %s conn %u (pid %d): %s, disconnecting",
		c->guest->conf.name, c->id, (int)c->pid, why);
	/* ctl closes the control socket and calls nk_engine__detach(). */
	nk_ctl__drop(e->ctl, c->ctl);
}

/*
 * The socket's pending error (a background connect's, which the NSM keeps
 * in s->so_error) is the engine's to report and clear, for every NSM; the
 * NSM answers SO_ERROR only when none is pending.
 */
static bool so_error_answered(struct nk_req *op)
{
	struct nk_sock *s = op->sock;
	int err = s->so_error;

	if (op->opcode != NK_OP_GETSOCKOPT || op->level != SOL_SOCKET ||
	    op->optname != SO_ERROR || !err)
		return false;
	if (op->len < sizeof(int)) {
		nk_engine__op_done(op, -EINVAL, 0, 0, 0);
		return true;
	}
	s->so_error = 0;
	memcpy(op->buf, &err, sizeof(err));
	nk_engine__op_done(op, sizeof(int), 0, 0, 0);
	return true;
}

/* Hands op to its socket's NSM: the op of the table for its opcode. */
void nk_engine__nsm_call(struct nk_req *op)
{
	struct nk_sock *s = op->sock;
	nk_nsm_op_fn fn = nk_nsm__op(s->nsm->ops, op->opcode);

	if (so_error_answered(op) || nk_rate__hold(op) || nk_sched__hold(op))
		return;
	if (!fn) {
		nk_engine__op_done(op, -EOPNOTSUPP, 0, 0, 0);
		return;
	}
	fn(s->nsm->priv, op);
}

static void process_sqe(struct nk_engine *e, struct nk_conn *c, uint16_t q,
			const struct nk_sqe *sqe);

/*
 * A process that exits right after send() has its SEND on the SQ, maybe
 * not yet taken: run what is there (one ring's worth at most, and only
 * entries that validate) before its references go. Reads are consumed
 * without running: nobody is left to see their result, and running them
 * would take data from a process that shares the socket.
 */
static void conn_drain_sq(struct nk_engine *e, struct nk_conn *c)
{
	for (uint32_t q = 0; q < c->nr_qsets; q++) {
		struct nk_hring *r = c->qs[q];

		for (uint32_t n = nk_hring__sq_entries(r); n; n--) {
			struct nk_sqe sqe;

			if (nk_hring__sq_peek(r, &sqe) <= 0)
				break;
			nk_hring__sq_consume(r);
			if (sqe.opcode == NK_OP_RECV ||
			    sqe.opcode == NK_OP_ACCEPT)
				continue;
			process_sqe(e, c, (uint16_t)q, &sqe);
		}
	}
}

/* Cancels the ops of a dead conn; SENDs too only when linger is over. */
static void conn_cancel_ops(struct nk_conn *c, bool sends)
{
	for (;;) {
		struct nk_list *p, *t;
		struct nk_req *victim = NULL;

		nk_list__for_each_safe(p, t, &c->ops)
		{
			struct nk_req *op =
				nk_container_of(p, struct nk_req, clink);

			/* A held SHUT_WR (answered) goes with the SENDs. */
			if (!op->cancelled &&
			    (sends ||
			     (op->opcode != NK_OP_SEND && !op->answered))) {
				victim = op;
				break;
			}
		}
		if (!victim)
			break;
		victim->cancelled = true;
		nk_sendq__cancel(victim->e, victim);
	}
}

void nk_engine__detach(struct nk_engine *e, struct nk_conn *c, bool abnormal)
{
	struct nk_guest *g = c->guest;

	if (c->dead)
		return;
	/* Dead from here on: nothing is posted to its CQ any more. */
	c->dead = true;
	c->refs++;
	nk_region__mark_dead(c->region);
	nk_list__del(&c->glink);
	nk_list__del(&c->wlink);
	g->nr_conns--;
	e->nr_conns--;
	if (abnormal)
		g->c.disconnects++;
	else
		conn_drain_sq(e, c); /* a conn nkd cut off gets nothing run */
	nk_dbg("guest %s conn %u detached", g->conf.name, c->id);
	nk_phpool__destroy(c->phpool);
	c->phpool = NULL;

	for (uint32_t i = 1; i < g->cap; i++) {
		struct nk_sock *s = g->socks[i];

		if (s && !s->closing)
			sock_put(e, s, c);
	}
	/*
	 * Cancel what is left (completions come back without a CQE), except
	 * SENDs: data the process wrote before it went is delivered, as the
	 * kernel delivers what a closed socket still has queued. The NSM
	 * closes the kernel socket once its queued sends are done.
	 */
	conn_cancel_ops(c, false);
	if (!nk_list__empty(&c->ops)) {
		c->linger_deadline = nk_now_ns() + NK_DETACH_LINGER_NS;
		nk_list__add_tail(&e->lingering, &c->dlink);
		ho_deadline(e, c->linger_deadline);
	}
	conn_put(e, c); /* the hold above */
	conn_put(e, c); /* the attachment */
}

struct nk_nsm *nk_engine__conn_nsm(struct nk_conn *c)
{
	return c->guest->nsm;
}

static void post(struct nk_engine *e, struct nk_conn *c, uint16_t q,
		 uint64_t ud, int res, uint32_t flags, uint32_t handle,
		 uint32_t aux)
{
	struct nk_cqe cqe = { .user_data = ud,
			      .res = res,
			      .flags = flags,
			      .handle = handle,
			      .aux = aux };

	/* Its process is gone and its CQ may be full: nobody reads it. */
	if (c->dead)
		return;
	nk_hring__cq_post(c->qs[q], &cqe);
	c->qdirty[q] = true;
	if (nk_list__empty(&c->wlink))
		nk_list__add_tail(&e->wake, &c->wlink);
}

/* ------------------------------------------------------------------ */
/* Hand-overs (docs/abi.md §7). */

static struct nk_handover *ho_alloc(struct nk_engine *e)
{
	uint32_t i;

	for (i = 0; i < e->hos_cap; i++)
		if (!e->hos[i]->used)
			break;
	if (i == e->hos_cap) {
		uint32_t ncap = e->hos_cap ? e->hos_cap * 2 : 16;
		struct nk_handover **n = realloc(e->hos, ncap * sizeof(*n));

		if (!n)
			return NULL;
		e->hos = n;
		for (uint32_t j = e->hos_cap; j < ncap; j++) {
			e->hos[j] = calloc(1, sizeof(**n));
			if (!e->hos[j])
				return NULL;
			e->hos[j]->slot = j;
			e->hos_cap = j + 1;
		}
	}
	e->hos[i]->used = true;
	e->hos[i]->pidfd = -1;
	return e->hos[i];
}

static void ho_free(struct nk_engine *e, struct nk_handover *ho)
{
	for (uint32_t i = 0; i < ho->nr_socks; i++)
		sock_put(e, ho->socks[i], ho);
	free(ho->socks);
	ho->socks = NULL;
	ho->nr_socks = 0;
	if (ho->pidfd >= 0) {
		nk_loop__cancel_ud(e->loop,
				   nk_ud(NK_UD_PIDFD, ho->gen, ho->slot));
		close(ho->pidfd);
		ho->pidfd = -1;
	}
	ho->guest->nr_handovers--;
	ho->used = false;
	ho->committed = false;
	ho->gen = (ho->gen + 1) & NK_UD_GEN_MASK;
	e->gc = true;
}

static struct nk_handover *ho_find(struct nk_engine *e, struct nk_guest *g,
				   uint64_t token)
{
	for (uint32_t i = 0; i < e->hos_cap; i++) {
		struct nk_handover *ho = e->hos[i];

		if (ho->used && ho->guest == g && ho->token == token)
			return ho;
	}
	return NULL;
}

static void ho_deadline(struct nk_engine *e, int64_t when)
{
	if (when && (!e->next_deadline || when < e->next_deadline))
		e->next_deadline = when;
}

static void ho_expire(struct nk_engine *e, int64_t now)
{
	struct nk_list *p, *t;

	e->next_deadline = 0;
	e->gc = true; /* re-arms the idle guests' deadlines */
	nk_list__for_each_safe(p, t, &e->lingering)
	{
		struct nk_conn *c = nk_container_of(p, struct nk_conn, dlink);

		if (c->linger_deadline > now) {
			ho_deadline(e, c->linger_deadline);
			continue;
		}
		nk_dbg("guest %s conn %u: sends still pending after exit, "
		       "cancelling",
		       c->guest->conf.name, c->id);
		nk_list__del(&c->dlink);
		c->refs++;
		conn_cancel_ops(c, true);
		conn_put(e, c);
	}
	for (uint32_t i = 0; i < e->hos_cap; i++) {
		struct nk_handover *ho = e->hos[i];

		if (!ho->used || !ho->deadline_ns)
			continue;
		if (ho->deadline_ns <= now) {
			nk_dbg("hand-over of guest %s expired",
			       ho->guest->conf.name);
			ho_free(e, ho);
		} else {
			ho_deadline(e, ho->deadline_ns);
		}
	}
}

static void on_pidfd(void *ctx, uint32_t slot, uint32_t gen,
		     const struct io_uring_cqe *cqe)
{
	struct nk_engine *e = ctx;
	struct nk_handover *ho;

	(void)cqe;
	if (slot >= e->hos_cap)
		return;
	ho = e->hos[slot];
	if (!ho->used || ho->gen != gen)
		return;
	nk_dbg("hand-over of guest %s: process exited unclaimed",
	       ho->guest->conf.name);
	ho_free(e, ho);
}

static int ho_watch_pid(struct nk_engine *e, struct nk_handover *ho, pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		return -errno;
	if (nk_loop__poll(e->loop, fd, POLLIN,
			  nk_ud(NK_UD_PIDFD, ho->gen, ho->slot))) {
		close(fd);
		return -EBUSY;
	}
	ho->pidfd = fd;
	return 0;
}

int nk_engine__handover(struct nk_engine *e, struct nk_conn *c, bool is_exec,
			uint64_t *token)
{
	struct nk_guest *g = c->guest;
	struct nk_handover *ho;

	if (c->dead)
		return -ENOTCONN;
	if (g->nr_handovers >= MAX_HANDOVERS_PER_GUEST)
		return -EMFILE;
	ho = ho_alloc(e);
	if (!ho)
		return -ENOMEM;
	ho->guest = g;
	g->nr_handovers++;
	ho->is_exec = is_exec;
	ho->owner_pid = c->pid;
	ho->child_pid = 0;
	do {
		if (getrandom(&ho->token, sizeof(ho->token), 0) !=
		    sizeof(ho->token)) {
			ho_free(e, ho);
			return -EIO;
		}
	} while (!ho->token || ho_find(e, g, ho->token) != ho);
	for (uint32_t i = 1; i < g->cap; i++) {
		struct nk_sock *s = g->socks[i];
		struct nk_sock **n;

		if (!s || s->closing || !holder_has(s, c))
			continue;
		n = realloc(ho->socks, (ho->nr_socks + 1) * sizeof(*n));
		if (!n || holder_add(s, ho)) {
			if (n)
				ho->socks = n;
			ho_free(e, ho);
			return -ENOMEM;
		}
		ho->socks = n;
		ho->socks[ho->nr_socks++] = s;
	}
	/* exec keeps the pid: the hand-over lives as long as the process. */
	if (!is_exec || ho_watch_pid(e, ho, c->pid)) {
		ho->deadline_ns = nk_now_ns() + NK_HANDOVER_TTL_NS;
		ho_deadline(e, ho->deadline_ns);
	}
	*token = ho->token;
	nk_dbg("guest %s conn %u: %s hand-over of %u sockets", g->conf.name,
	       c->id, is_exec ? "exec" : "fork", ho->nr_socks);
	return 0;
}

/* The pid a guest names is only trusted if it is the caller's child. */
static bool is_child_of(pid_t child, pid_t parent)
{
	char path[64], line[256];
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)child);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		int ppid;

		if (sscanf(line, "PPid: %d", &ppid) == 1) {
			ok = ppid == parent;
			break;
		}
	}
	fclose(f);
	return ok;
}

int nk_engine__handover_commit(struct nk_engine *e, struct nk_conn *c,
			       uint64_t token, pid_t child)
{
	struct nk_handover *ho = ho_find(e, c->guest, token);

	if (!ho || ho->is_exec || ho->committed || child <= 0)
		return -ENOENT;
	ho->committed = true;
	if (is_child_of(child, c->pid)) {
		ho->child_pid = child;
		if (!ho_watch_pid(e, ho, child))
			ho->deadline_ns = 0;
	}
	/* else: another pid namespace or already gone; the TTL stays. */
	return 0;
}

int nk_engine__handover_abort(struct nk_engine *e, struct nk_conn *c,
			      uint64_t token)
{
	struct nk_handover *ho = ho_find(e, c->guest, token);

	if (!ho)
		return -ENOENT;
	ho_free(e, ho);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The operator's commands (admin.c). */

struct nk_guest *nk_engine__guest_find(struct nk_engine *e, const char *name)
{
	return guest_find(e, name);
}

struct nk_nsm *nk_engine__nsm_by_name(struct nk_engine *e, const char *name)
{
	return nsm_by_name(e, name);
}

struct nk_guest *nk_engine__guest_new(struct nk_engine *e,
				      const struct nk_guest_conf *conf,
				      bool from_config)
{
	int err;

	return guest_new(e, conf, from_config, &err);
}

void nk_engine__evict(struct nk_engine *e, struct nk_guest *g)
{
	struct nk_list *p, *t;

	/* ctl closes each control socket and detaches the conn (abnormal). */
	nk_list__for_each_safe(p, t, &g->conns)
	{
		struct nk_conn *c = nk_container_of(p, struct nk_conn, glink);

		nk_ctl__drop(e->ctl, c->ctl);
	}
	for (uint32_t i = 0; i < e->hos_cap; i++)
		if (e->hos[i]->used && e->hos[i]->guest == g)
			ho_free(e, e->hos[i]);
	/* What its exited processes still send is not delivered. */
	nk_list__for_each_safe(p, t, &e->lingering)
	{
		struct nk_conn *c = nk_container_of(p, struct nk_conn, dlink);

		if (c->guest != g)
			continue;
		nk_list__del(&c->dlink);
		c->refs++;
		conn_cancel_ops(c, true);
		conn_put(e, c);
	}
	e->gc = true;
}

/* ------------------------------------------------------------------ */
/* Attach. */

static bool guest_name_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	if (n == 0 || n == max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return false;
	}
	return true;
}

/*
 * A placeholder bound through its SQE (NK_SQE_F_PH) came with no
 * st_ino/st_dev from the guest: nkd's copy of the app end is the same
 * open file, so its fstat says the same. Only hand-overs need them.
 */
static void ph_stat(struct nk_sock *s)
{
	struct stat st;

	if (s->ph_ino || s->ph.app < 0 || s->ph.vm_ref || fstat(s->ph.app, &st))
		return;
	s->ph_ino = st.st_ino;
	s->ph_dev = st.st_dev;
}

static int conn_setup(struct nk_engine *e, struct nk_conn *c, uint32_t nr_qsets)
{
	struct nk_region_params p = {
		.nr_qsets = nr_qsets,
		.sq_entries = NK_REGION_SQ_ENTRIES,
		.cq_entries = NK_REGION_CQ_ENTRIES,
		.buf_size = NK_REGION_BUF_SIZE,
		/* bufs= keeps its meaning: a data area of bufs x 64 KiB. */
		.nr_bufs = (uint32_t)(((uint64_t)c->guest->conf.bufs *
					       NK_REGION_BUF_UNIT +
				       NK_REGION_BUF_SIZE - 1) /
				      NK_REGION_BUF_SIZE),
		.send_window = NK_REGION_SEND_WINDOW,
		.epoch = e->epoch,
		.guest_id = c->guest->id,
		.conn_id = c->id,
	};
	char label[96];
	int ret;

	p.send_charge = nk_region__send_charge(p.send_window, p.nr_bufs);
	snprintf(label, sizeof(label), "nk:%s:%u", c->guest->conf.name, c->id);
	if (c->guest->conf.vm_channel[0])
		ret = nk_vm__region(e, c->guest->conf.name, &p, &c->region);
	else
		ret = nk_region__create(&nk_region_memfd, &p, label,
					&c->region);
	if (ret)
		return ret;
	for (uint32_t i = 0; i < nr_qsets; i++) {
		c->qs[i] = nk_hring__create(nk_region__base(c->region),
					    nk_region__size(c->region),
					    nk_region__qset(c->region, i));
		if (!c->qs[i])
			return -errno;
		c->nr_qsets = i + 1;
	}
	c->owned = nk_bufown__create(p.nr_bufs);
	if (!c->owned)
		return -ENOMEM;
	c->data = nk_region__data(c->region);
	c->buf_size = p.buf_size;
	c->nr_bufs = p.nr_bufs;
	c->send_window = p.send_window;
	c->send_charge = p.send_charge;
	c->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->doorbell < 0)
		return -errno;
	return 0;
}

/* The placeholder pool channel and its first placeholders. */
static int conn_setup_pool(struct nk_conn *c, struct nk_attach *a)
{
	int ret = nk_phpool__create(&c->phpool, &a->pool_fd);

	if (!ret)
		nk_phpool__fill(c->phpool, NK_PH_POOL_TARGET);
	return ret;
}

int nk_engine__attach(struct nk_engine *e, struct nk_attach *a)
{
	const struct nk_ctl_hello *h = a->hello;
	const struct nk_guest_conf *conf;
	struct nk_guest_conf defconf;
	struct nk_handover *ho = NULL;
	struct nk_guest *g;
	struct nk_conn *c;
	int ret;

	if (h->abi_version != NK_ABI_VERSION)
		return -EPROTO;
	if ((h->flags &
	     ~(NK_HELLO_F_INHERIT | NK_HELLO_F_PROBE | NK_HELLO_F_VM)) ||
	    h->resv || h->nr_qsets > NK_MAX_QSETS ||
	    (h->guest[0] && !guest_name_ok(h->guest, sizeof(h->guest))))
		return -EINVAL;
	ret = nk_identity__pick(e, a, &defconf, &conf);
	if (ret) {
		nk_guest__refused(e, guest_find(e, h->guest),
				  NK_REFUSED_IDENTITY, "uid %d: %s",
				  (int)a->uid, a->why);
		return ret;
	}
	snprintf(a->guest, sizeof(a->guest), "%s", conf->name);
	g = guest_find(e, conf->name);
	ret = nk_identity__claim(e, a, g, false);
	if (ret)
		nk_guest__refused(e, NULL, NK_REFUSED_IDENTITY, "uid %d: %s",
				  (int)a->uid, a->why);
	if (ret || a->probe)
		return ret;
	if (!g) {
		g = guest_new(e, conf, false, &ret);
		if (!g)
			return ret;
		nk_identity__claim(e, a, g, true);
	}
	if (g->nr_conns >= g->conf.max_conns) {
		/* The reason goes to the guest: not "Too many open files". */
		snprintf(a->why, sizeof(a->why),
			 "guest '%s' already has its max_conns of %u "
			 "processes attached",
			 g->conf.name, g->conf.max_conns);
		nk_guest__refused(e, g, NK_REFUSED_CONNS, "%s", a->why);
		e->gc = true;
		return -EMFILE;
	}
	if (h->flags & NK_HELLO_F_INHERIT) {
		ho = ho_find(e, g, h->inherit_token);
		if (!ho) {
			e->gc = true;
			return -ENOENT;
		}
		/* A token is not a capability: only its process claims it. */
		if (!nk_handover__claim_ok(ho, a->pid)) {
			nk_warn("guest %s: pid %d presented a hand-over token "
				"made for %s of pid %d, refused",
				g->conf.name, (int)a->pid,
				ho->is_exec ? "the exec" : "a child",
				(int)ho->owner_pid);
			g->c.errors++;
			return -EPERM;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	e->nr_conn_objs++;
	c->id = ++e->next_conn_id;
	c->guest = g;
	c->ctl = a->ctl;
	c->pid = a->pid;
	c->uid = a->uid;
	c->gid = a->gid;
	c->doorbell = -1;
	c->refs = 1;
	nk_list__init(&c->ops);
	nk_list__init(&c->wlink);
	nk_list__init(&c->dlink);
	ret = conn_setup(e, c, h->nr_qsets ? h->nr_qsets : 1);
	if (!ret &&
	    (ret = nk_budget__conn_get(e, c, nk_region__size(c->region)))) {
		snprintf(a->why, sizeof(a->why), "%s",
			 ret == -ENOMEM ? "nkd's region memory budget is used "
					  "up (memory_budget)"
					: "nkd has as many processes attached "
					  "as its descriptors allow");
		nk_guest__refused(e, g, NK_REFUSED_BUDGET, "%s", a->why);
	}
	if (!ret)
		ret = conn_setup_pool(c, a);
	if (ret) {
		c->dead = true;
		conn_free(e, c);
		return ret;
	}
	if (ho) {
		a->handles = calloc(ho->nr_socks + 1, sizeof(*a->handles));
		if (!a->handles) {
			conn_free(e, c);
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < ho->nr_socks; i++) {
			struct nk_sock *s = ho->socks[i];

			/* Never fails: the hand-over's slot is reused. */
			holder_del(s, ho);
			holder_add(s, c);
			a->handles[a->nr_handles].handle = s->handle;
			ph_stat(s);
			a->handles[a->nr_handles].ino = s->ph_ino;
			a->handles[a->nr_handles].dev = s->ph_dev;
			a->nr_handles++;
		}
		ho->nr_socks = 0;
		ho_free(e, ho);
	}
	nk_list__add_tail(&g->conns, &c->glink);
	g->nr_conns++;
	e->nr_conns++;
	a->conn = c;
	nk_info("guest %s conn %u attached: pid %d uid %d, %u qsets, "
		"%u sockets inherited",
		g->conf.name, c->id, (int)a->pid, (int)a->uid, c->nr_qsets,
		a->nr_handles);
	return 0;
}

/*
 * Takes placeholder id out of c's pool into ph[0] (app end) and ph[1]
 * (nkd end); -ENOENT if the pool has no such id (never another
 * connection's: each has its own pool). Running low: the next ones go
 * out before they are due.
 */
static int ph_take(struct nk_conn *c, uint64_t id, int ph[2])
{
	/* A conn detaching runs its last SQEs with its pool still there. */
	if (!c->phpool || nk_phpool__take(c->phpool, id, &ph[0], &ph[1]))
		return -ENOENT;
	if (!c->dead && nk_phpool__unbound(c->phpool) <= NK_PH_POOL_LOW)
		nk_phpool__fill(c->phpool,
				NK_PH_POOL_TARGET -
					nk_phpool__unbound(c->phpool));
	return 0;
}

/* A placeholder taken and not bound: both ends closed. */
static void ph_drop(int ph[2])
{
	if (ph[0] >= 0)
		close(ph[0]);
	if (ph[1] >= 0)
		close(ph[1]);
	ph[0] = ph[1] = -1;
}

enum ph_show {
	PH_SHOW_ASK, /* ask the NSM what the socket has (poll_now) */
	PH_SHOW_NONE, /* a socket just made: nothing to show */
	PH_SHOW_NSM, /* the NSM reports it (NK_NSM_CAP_ACCEPT_REPORTS) */
};

/*
 * ph (taken by ph_take) becomes s's placeholder, attached not readable
 * and writable; whatever happened before it came shows now (or, per
 * show, needs nothing or comes from the NSM's report).
 */
static void ph_bind(struct nk_conn *c, struct nk_sock *s, int ph[2],
		    uint64_t vm_id, enum ph_show show)
{
	unsigned ev;

	nk_ph__close(&s->ph);
	nk_ph__attach(&s->ph, ph[0], ph[1]);
	ph[0] = ph[1] = -1;
	/* A VM's: the agent mirrors every change on its own pair (vm.c). */
	s->ph.vm_ref = c->vm_ref;
	s->ph.vm_id = c->vm_ref ? vm_id : 0;
	if (show != PH_SHOW_ASK)
		return;
	ev = s->nsm->ops->poll_now(s->nsm->priv, s);
	nk_engine__sock_mirror_hup(s, ev);
	nk_ph__set_readable(&s->ph, ev & READ_EVENTS, true);
	nk_ph__set_writable(&s->ph, sock_writable(s));
}

int nk_engine__placeholder(struct nk_engine *e, struct nk_conn *c,
			   const struct nk_ctl_ph_bind *b)
{
	struct nk_sock *s;
	int ph[2];
	int ret;

	(void)e;
	if (c->dead || ph_take(c, b->id, ph))
		return -ENOENT;
	s = b->handle ? handle_lookup(c->guest, b->handle) : NULL;
	ret = !b->handle ? 0 : !s || !holder_has(s, c) ? -EBADF : 0;
	if (ret || !s) {
		ph_drop(ph);
		return ret;
	}
	ph_bind(c, s, ph, b->id, PH_SHOW_ASK);
	/*
	 * Taken on the guest's word, unchecked (an fstat per socket on the
	 * loop): they only let the guest's own exec'd image find which of its
	 * fds the placeholder is, so a lie can only confuse that guest.
	 */
	s->ph_ino = b->ino;
	s->ph_dev = b->dev;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Taking SQEs. */

/*
 * A handle is usable only by a conn that holds the socket (created it,
 * accepted it, or inherited it through a hand-over): naming a socket of
 * its guest is not enough. Not held answers exactly like no such handle,
 * so nobody learns which handles exist.
 */
static int lookup_cb(const void *arg, uint32_t handle, struct nk_sock_view *v)
{
	const struct nk_conn *c = arg;
	struct nk_sock *s = handle_lookup(c->guest, handle);

	if (!s || !holder_has(s, c))
		return -EBADF;
	v->family = s->family;
	v->type = s->type;
	return 0;
}

static struct nk_req *find_op(struct nk_conn *c, uint64_t user_data)
{
	struct nk_list *p, *t;

	nk_list__for_each_safe(p, t, &c->ops)
	{
		struct nk_req *op = nk_container_of(p, struct nk_req, clink);

		if (op->user_data == user_data && !op->cancelled)
			return op;
	}
	return NULL;
}

/* ph: the placeholder the SQE named (NK_SQE_F_PH), or -1s. */
static void do_socket(struct nk_engine *e, struct nk_conn *c, uint16_t q,
		      const struct nk_sqe *sqe, int ph[2])
{
	struct nk_sock *s;
	int ret;

	ret = sock_new(e, c->guest, c, sqe->sock.domain, sqe->sock.type,
		       sqe->sock.protocol, &s);
	if (!ret) {
		ret = s->nsm->ops->sock_open(s->nsm->priv, s);
		if (ret)
			sock_abandon(e, s);
	}
	if (ret) {
		ph_drop(ph);
		c->guest->c.errors++;
		post(e, c, q, sqe->user_data, ret, 0, 0, 0);
		return;
	}
	if (ph[0] >= 0)
		ph_bind(c, s, ph, 0, PH_SHOW_NONE);
	post(e, c, q, sqe->user_data, (int)s->handle, 0, s->handle, 0);
}

/* The refusal reason of a port or destination check's errno (portown.c). */
static enum nk_refusal portown_reason(uint8_t opcode, int err)
{
	switch (err) {
	case -EADDRINUSE:
		return NK_REFUSED_PORT;
	case -ENETUNREACH:
		return NK_REFUSED_EGRESS;
	case -ECONNREFUSED:
		return NK_REFUSED_HOST;
	default: /* EACCES: a datagram to the host, or an implicit bind */
		return opcode == NK_OP_SEND ? NK_REFUSED_HOST
					    : NK_REFUSED_BIND_POLICY;
	}
}

/* NK_OP_UNREAD: keep the bytes at the head of s's receive side. */
static void rxback_unread(struct nk_engine *e, struct nk_conn *c, uint16_t q,
			  struct nk_sock *s, const struct nk_sqe *sqe)
{
	struct nk_guest *g = c->guest;
	uint64_t before = nk_rxback__bytes(s->rxback);
	int res = -EINVAL;

	e->idle_work++;
	s->ops++;
	if (g->rxback_bytes + sqe->io.buf_len > NK_RXBACK_GUEST_MAX)
		res = -ENOBUFS; /* the guest's sockets hold enough */
	else if (s->state != NK_SS_LISTEN)
		res = nk_rxback__unread(&s->rxback, s->type,
					c->data + sqe->io.buf_off,
					sqe->io.buf_len);
	g->rxback_bytes += nk_rxback__bytes(s->rxback) - before;
	if (res > 0) {
		/* Before the CQE: the guest's next peek must see them. */
		nk_ph__set_readable(&s->ph, true, false);
	} else {
		s->errors++;
		g->c.errors++;
	}
	post(e, c, q, sqe->user_data, res, 0, s->handle, 0);
}

/*
 * A RECV that data given back unread answers, ahead of anything the NSM
 * holds (rxback.c); false: go to the NSM.
 */
static bool rxback_recv(struct nk_engine *e, struct nk_conn *c, uint16_t q,
			struct nk_sock *s, const struct nk_sqe *sqe)
{
	uint64_t bytes, before = nk_rxback__bytes(s->rxback);
	uint32_t flags, aux;
	int res;

	if (!s->rxback || (sqe->io.msg_flags & MSG_OOB))
		return false;
	res = nk_rxback__recv(&s->rxback, s->type, c->data + sqe->io.buf_off,
			      sqe->io.buf_len, sqe->flags, sqe->io.msg_flags,
			      &flags, &aux, &bytes);
	c->guest->rxback_bytes -= before - nk_rxback__bytes(s->rxback);
	s->ops++;
	s->bytes_rx += bytes;
	c->guest->c.bytes_rx += bytes;
	/* The placeholder rules of any RECV (abi.md §6), before the CQE. */
	if (!(sqe->io.msg_flags & MSG_PEEK)) {
		if (s->rxback || (sqe->flags & NK_SQE_F_PREFETCH) ||
		    ((sqe->flags & NK_SQE_F_BATCH) && res > 1))
			nk_ph__set_readable(&s->ph, true, false);
		else
			nk_engine__sock_recheck(s);
	}
	post(e, c, q, sqe->user_data, res, flags, s->handle, aux);
	return true;
}

static void process_sqe(struct nk_engine *e, struct nk_conn *c, uint16_t q,
			const struct nk_sqe *sqe)
{
	struct nk_guest *g = c->guest;
	struct nk_validate_ctx vc = {
		.buf_size = c->buf_size,
		.nr_bufs = c->nr_bufs,
		.owned = c->owned,
		.lookup = lookup_cb,
		.arg = c,
	};
	struct nk_valid v;
	struct nk_sock *s;
	struct nk_req *op;
	int ph[2] = { -1, -1 };
	bool ph_missing = false;
	int ret;

	g->c.ops++;
	vc.ph_sqe = !c->vm_ref;
	/*
	 * The placeholder a SOCKET or ACCEPT names leaves the pool whatever
	 * becomes of the entry: the guest closes its fd on any failure, so
	 * nkd does too (ph_drop) and the pool never keeps a dead one.
	 */
	if ((sqe->flags & NK_SQE_F_PH) && vc.ph_sqe &&
	    (sqe->opcode == NK_OP_SOCKET || sqe->opcode == NK_OP_ACCEPT))
		ph_missing = ph_take(c, sqe->ph.id, ph) != 0;
	ret = nk_validate__sqe(sqe, &vc, &v);
	/* Not from this connection's pool: another's, or made up. */
	if (!ret && ph_missing) {
		v.abuse = true;
		ret = -EBADF;
	}
	if (ret) {
		ph_drop(ph);
		e->idle_work++;
		g->c.errors++;
		if (v.abuse) {
			g->c.abuse++;
			c->abuse++;
			nk_guest__refused(
				e, g, NK_REFUSED_ABUSE,
				"conn %u: malformed entry (opcode %u): %s",
				c->id, sqe->opcode, strerror(-ret));
		}
		post(e, c, q, sqe->user_data, ret, v.abuse ? NK_CQE_F_ABUSE : 0,
		     sqe->handle, 0);
		if (v.abuse && c->abuse >= e->cfg.abuse_limit)
			conn_abort(e, c, "too many malformed entries");
		return;
	}
	s = sqe->handle ? handle_lookup(g, sqe->handle) : NULL;

	switch (sqe->opcode) {
	case NK_OP_NOP:
		e->idle_work++;
		/* Full: answered now, an early barrier rather than none. */
		if (e->nr_barriers == NK_BARRIERS_MAX) {
			post(e, c, q, sqe->user_data, 0, 0, 0, 0);
			return;
		}
		c->refs++;
		e->barriers[e->nr_barriers++] = (struct nk_barrier){
			.c = c, .user_data = sqe->user_data, .q = q
		};
		return;
	case NK_OP_SOCKET:
		do_socket(e, c, q, sqe, ph);
		return;
	case NK_OP_CLOSE:
		s->ops++;
		if (!holder_has(s, c)) {
			g->c.errors++;
			post(e, c, q, sqe->user_data, -EBADF, 0, s->handle, 0);
			return;
		}
		post(e, c, q, sqe->user_data, 0, 0, s->handle, 0);
		/* Its standing RECV would take data another holder waits for. */
		if (s->rx_standing && s->rx_standing->conn == c) {
			s->rx_standing->cancelled = true;
			nk_rxpark__cancel(s->rx_standing);
		}
		sock_put(e, s, c);
		return;
	case NK_OP_UNREAD:
		rxback_unread(e, c, q, s, sqe);
		return;
	case NK_OP_RECV:
		if (rxback_recv(e, c, q, s, sqe))
			return;
		break;
	case NK_OP_CANCEL:
		op = find_op(c, sqe->ctl.arg64);
		ret = -ENOENT;
		if (op) {
			op->cancelled = true;
			ret = nk_sendq__cancel(e, op);
		}
		post(e, c, q, sqe->user_data, ret, 0, 0, 0);
		return;
	default:
		break;
	}

	ret = 0;
	/* Only ops that can wait count: SHUTDOWN must still get through. */
	if (g->inflight >= g->conf.max_inflight &&
	    (sqe->opcode == NK_OP_CONNECT || sqe->opcode == NK_OP_ACCEPT ||
	     sqe->opcode == NK_OP_SEND || sqe->opcode == NK_OP_RECV)) {
		ret = -ENOBUFS;
		nk_guest__refused(e, g, NK_REFUSED_INFLIGHT,
				  "max_inflight %u reached",
				  g->conf.max_inflight);
	} else if (sqe->opcode == NK_OP_BIND &&
		   (ret = nk_guest_conf__bind_ok(
			    &g->conf, (struct sockaddr *)&v.sa, c->uid))) {
		nk_guest__refused(e, g, NK_REFUSED_BIND_POLICY,
				  "bind outside its bind= rules");
	} else if (!nk_shm__route(e, s, sqe->opcode, &v.sa) &&
		   (ret = nk_portown__check_op(s, sqe->opcode, sqe->flags,
					       &v.sa, c->uid))) {
		nk_guest__refused(e, g, portown_reason(sqe->opcode, ret),
				  "opcode %u refused: %s", sqe->opcode,
				  strerror(-ret));
	} else if ((sqe->flags & NK_SQE_F_BATCH) &&
		   !(s->nsm->ops->caps & NK_NSM_CAP_RECV_BATCH)) {
		ret = -EOPNOTSUPP; /* the guest falls back to single RECVs */
	}
	op = ret ? NULL : op_alloc(e);
	if (!ret && !op)
		ret = -ENOMEM;
	if (ret) {
		ph_drop(ph);
		e->idle_work++;
		g->c.errors++;
		s->ops++;
		s->errors++;
		post(e, c, q, sqe->user_data, ret, 0, s->handle, 0);
		return;
	}
	op->conn = c;
	op->qset = q;
	op->opcode = sqe->opcode;
	op->sqe_flags = sqe->flags;
	op->user_data = sqe->user_data;
	op->sock = s;
	if (v.buf_idx >= 0) {
		/* Validated as not owned: claiming cannot fail. */
		nk_bufown__claim(c->owned, (uint32_t)v.buf_idx);
		op->buf_idx = v.buf_idx;
	}
	op->buf = c->data + sqe->io.buf_off;
	op->len = sqe->io.buf_len;
	op->msg_flags = sqe->io.msg_flags;
	op->timeout_ms = (sqe->flags & NK_SQE_F_TIMEOUT) ? sqe->io.timeout_ms
							 : 0;
	op->arg = sqe->ctl.arg;
	op->arg64 = sqe->ctl.arg64;
	op->level = sqe->opt.level;
	op->optname = sqe->opt.optname;
	op->sa = v.sa;
	op->salen = v.salen;
	/* Bound to the new socket, or dropped, by op_done(). */
	op->ph_app = ph[0];
	op->ph_nkd = ph[1];
	switch (sqe->opcode) {
	case NK_OP_SEND:
	case NK_OP_RECV:
	case NK_OP_ACCEPT:
	case NK_OP_SETSOCKOPT:
	case NK_OP_GETSOCKOPT:
	case NK_OP_GETSOCKNAME:
	case NK_OP_GETPEERNAME:
		break;
	default:
		/* ctl-union ops: the io fields are not a buffer. */
		op->buf = NULL;
		op->len = 0;
		op->msg_flags = 0;
		op->timeout_ms = 0;
	}
	nk_list__add_tail(&c->ops, &op->clink);
	c->refs++;
	c->inflight++;
	g->inflight++;
	s->nr_ops++;
	if (op->opcode == NK_OP_SEND) {
		/* Unwritable before the head passes the SEND (abi.md §3, §5). */
		s->send_inflight += send_charge(c, op);
		if (!sock_writable(s))
			nk_ph__set_writable(&s->ph, false);
	}
	if (op->timeout_ms)
		nk_optimer__add(e, op, nk_now_ns());
	if (op->opcode == NK_OP_RECV && (op->sqe_flags & NK_SQE_F_PREFETCH) &&
	    !(op->sqe_flags & NK_SQE_F_NONBLOCK) && nk_rxpark__start(op))
		return;
	if (!nk_sendq__take(s, op))
		nk_engine__nsm_call(op);
}

struct nk_req *nk_engine__op_dup(struct nk_req *op)
{
	struct nk_req *d = op_alloc(op->e);
	struct nk_conn *c = op->conn;

	if (!d)
		return NULL;
	d->conn = c;
	d->qset = op->qset;
	d->opcode = op->opcode;
	d->user_data = op->user_data;
	d->sock = op->sock;
	d->arg = op->arg;
	d->answered = true;
	nk_list__add_tail(&c->ops, &d->clink);
	c->refs++;
	c->inflight++;
	c->guest->inflight++;
	d->sock->nr_ops++;
	return d;
}

void nk_engine__op_answer(struct nk_req *op, int res)
{
	op->answered = true;
	post(op->e, op->conn, op->qset, op->user_data, res, 0, op->sock->handle,
	     0);
}

void nk_engine__op_post(struct nk_req *op, int res, uint32_t cqe_flags)
{
	post(op->e, op->conn, op->qset, op->user_data, res, cqe_flags,
	     op->sock->handle, 0);
}

void nk_engine__op_done(struct nk_req *op, int res, uint32_t cqe_flags,
			uint32_t aux, uint32_t handle)
{
	struct nk_engine *e = op->e;
	struct nk_conn *c = op->conn;
	struct nk_sock *s = op->sock;
	struct nk_guest *g = c->guest;
	bool kick = false;

	/* A standing RECV that found nothing stays (rxpark.c). */
	if (op->standing && nk_rxpark__again(op, res))
		return;
	nk_optimer__del(op);
	/* What a socket call whose timeout passed returns. */
	if (op->timed_out && res == -ECANCELED)
		res = op->opcode == NK_OP_CONNECT ? -ETIMEDOUT : -EAGAIN;
	res = nk_portown__op_done(op, res);
	nk_rate__done(op, res);
	if (op->buf_idx >= 0)
		nk_bufown__release(c->owned, (uint32_t)op->buf_idx);
	s->ops++;
	/* A failure is no reason to keep the loop spinning. */
	if (res < 0 && res != -EINPROGRESS)
		e->idle_work++;
	/* "Try again" and "in progress" are answers, not failures. */
	if (res < 0 && res != -EAGAIN && res != -EINPROGRESS) {
		s->errors++;
		g->c.errors++;
	}
	switch (op->opcode) {
	case NK_OP_SEND:
		if (res > 0) {
			s->bytes_tx += (uint64_t)res;
			g->c.bytes_tx += (uint64_t)res;
		}
		s->send_inflight -= send_charge(c, op);
		/* The credit travels with the CQE; writable after it, below. */
		if (s->send_inflight < s->send_window)
			aux = s->send_window - (uint32_t)s->send_inflight;
		else
			aux = 0;
		kick = !s->closing;
		break;
	case NK_OP_RECV:
		if (res > 0) {
			/* A batch's res counts datagrams; the NSM left bytes. */
			uint64_t b = (op->sqe_flags & NK_SQE_F_BATCH)
					     ? op->done
					     : (uint64_t)res;

			s->bytes_rx += b;
			g->c.bytes_rx += b;
		}
		/* Its placeholder edge follows the CQE (rxpark.c). */
		if ((op->msg_flags & MSG_PEEK) || op->standing)
			break;
		/*
		 * A read-ahead that got data (or EOF, an error), or a batch of
		 * more than one datagram, leaves data with the guest: readable
		 * stays, whatever the kernel socket says.
		 * Only a RECV that found the socket empty shows the guest
		 * holds nothing (abi.md §6).
		 */
		if (((op->sqe_flags & NK_SQE_F_PREFETCH) && res != -EAGAIN) ||
		    ((op->sqe_flags & NK_SQE_F_BATCH) && res > 1)) {
			if (!s->closing)
				nk_ph__set_readable(&s->ph, true, false);
			break;
		}
		nk_engine__sock_recheck(s);
		break;
	case NK_OP_ACCEPT:
		nk_engine__sock_recheck(s);
		if (op->ph_app >= 0) {
			int ph[2] = { op->ph_app, op->ph_nkd };
			struct nk_sock *ns = res > 0 && handle && !c->dead
						     ? handle_lookup(g, handle)
						     : NULL;

			op->ph_app = op->ph_nkd = -1;
			if (ns && holder_has(ns, c) && !ns->closing)
				ph_bind(c, ns, ph, 0,
					ns->nsm->ops->caps &
							NK_NSM_CAP_ACCEPT_REPORTS
						? PH_SHOW_NSM
						: PH_SHOW_ASK);
			else
				ph_drop(ph);
		}
		break;
	case NK_OP_IOCTL:
		/* Data given back unread is the next to read. */
		if (op->arg == NK_IOCTL_FIONREAD)
			res = nk_rxback__fionread(s->rxback, s->type, res);
		break;
	case NK_OP_SETSOCKOPT:
		if (!res)
			sndbuf_window(op);
		break;
	case NK_OP_LISTEN:
		if (!res)
			nk_shm__listened(e, s, op->arg);
		break;
	default:
		break;
	}
	if (!c->dead && !op->answered)
		post(e, c, op->qset, op->user_data, res, cqe_flags,
		     handle ? handle : s->handle, aux);
	if (op->standing)
		nk_rxpark__done(op, res);
	/*
	 * Writable only after the CQE: a guest that polls POLLOUT and sends
	 * must find the completion that freed its window. Only a real
	 * transition (full to not full) touches the placeholder: the guest
	 * answers EAGAIN only when nkd has counted all its SENDs of the
	 * socket and its own count is full, so nkd's is too (abi.md §5).
	 */
	if (kick)
		nk_ph__set_writable(&s->ph, sock_writable(s));
	nk_sendq__done(e, op);
	/* After the socket's next SEND went down: no gap in contention. */
	nk_sched__done(op, res);
	nk_list__del(&op->clink);
	c->inflight--;
	g->inflight--;
	s->nr_ops--;
	if (op->ph_app >= 0) {
		int ph[2] = { op->ph_app, op->ph_nkd };

		ph_drop(ph);
	}
	op_free(e, op);
	sock_maybe_free(e, s);
	conn_put(e, c);
}

/* Takes SQEs from c while *budget lasts (pollcost.h); returns how many. */
static unsigned conn_poll(struct nk_engine *e, struct nk_conn *c,
			  unsigned *budget)
{
	unsigned n = 0;

	if (c->dead)
		return 0;
	c->refs++;
	c->cq_blocked = false;
	for (uint32_t i = 0; i < c->nr_qsets && !c->dead; i++) {
		uint16_t q = (uint16_t)((c->rr + i) % c->nr_qsets);
		struct nk_hring *r = c->qs[q];

		while (*budget && !c->dead) {
			struct nk_sqe sqe;
			int room = nk_hring__cq_room(r);
			unsigned cost;
			int got;

			if (room < 0) {
				conn_abort(e, c, "CQ head out of range");
				break;
			}
			got = nk_hring__sq_peek(r, &sqe);
			if (got < 0) {
				conn_abort(e, c, "SQ tail jumped");
				break;
			}
			if (!got)
				break;
			if (!room) {
				c->cq_blocked = true;
				break;
			}
			/*
			 * The head moves past the entry only once it is
			 * taken, accounted and mirrored on the placeholder
			 * (abi.md §3): a guest that saw the head pass its
			 * SEND knows poll agrees with its own window count.
			 * sqe is our copy, so the slot is not read again.
			 */
			cost = nk_pollcost__sqe(&sqe);
			nk_hring__cq_reserve(r);
			process_sqe(e, c, q, &sqe);
			nk_hring__sq_consume(r);
			n++;
			*budget -= cost < *budget ? cost : *budget;
		}
	}
	c->rr++;
	conn_put(e, c);
	return n;
}

/*
 * Weighted round robin over guests, then over each guest's conns. backoff:
 * a guest that spent a pass's worth of budget on nothing real rests
 * (idlerest.c); nk_engine__step() passes false (its drivers count passes,
 * not time).
 */
static unsigned poll_guests(struct nk_engine *e, bool backoff)
{
	struct nk_list *p, *t;
	unsigned total = 0;
	int64_t now = 0;

	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);
		unsigned full = NK_POLL_BUDGET * g->conf.weight, taken = 0;
		unsigned budget = full;
		unsigned idle0 = e->idle_work;
		struct nk_list *cp, *ct;

		if (backoff && nk_idlerest__skip(g, &now))
			continue;
		nk_list__for_each_safe(cp, ct, &g->conns)
		{
			struct nk_conn *c =
				nk_container_of(cp, struct nk_conn, glink);
			unsigned n;

			if (!budget)
				break;
			n = conn_poll(e, c, &budget);
			taken += n;
		}
		total += taken;
		if (backoff)
			nk_idlerest__judge(e, g, taken, e->idle_work - idle0,
					   full - budget);
		/* The next pass starts with the next conn. */
		if (!nk_list__empty(&g->conns)) {
			struct nk_list *first = g->conns.next;

			nk_list__del(first);
			nk_list__add_tail(&g->conns, first);
		}
	}
	if (!nk_list__empty(&e->guests)) {
		struct nk_list *first = e->guests.next;

		nk_list__del(first);
		nk_list__add_tail(&e->guests, first);
	}
	return total;
}

/*
 * NOPs taken this pass complete once what the SQEs before them caused is
 * mirrored: the SENDs ran, and the readiness they made (a loopback peer's
 * data, which the kernel reports to io_uring during the send) is on the
 * placeholders. A guest waits for one before epoll_wait/poll, so it sees
 * its own sends' effects as on a kernel socket, where they are
 * synchronous (abi.md §5, NOP).
 */
static void flush_barriers(struct nk_engine *e)
{
	if (!e->nr_barriers)
		return;
	nk_loop__kick(e->loop);
	nk_loop__reap(e->loop);
	for (uint32_t i = 0; i < e->nr_barriers; i++) {
		struct nk_barrier *b = &e->barriers[i];

		/* A VM's: the placeholder ops sent so far (abi.md §9). */
		post(e, b->c, b->q, b->user_data, 0, 0, 0,
		     b->c->vm_ref ? nk_vm__ph_seq(b->c) : 0);
		conn_put(e, b->c);
	}
	e->nr_barriers = 0;
}

static void flush_wakes(struct nk_engine *e)
{
	while (!nk_list__empty(&e->wake)) {
		struct nk_conn *c =
			nk_container_of(e->wake.next, struct nk_conn, wlink);

		nk_list__del(&c->wlink);
		for (uint32_t q = 0; q < c->nr_qsets; q++) {
			if (!c->qdirty[q])
				continue;
			c->qdirty[q] = false;
			if (nk_hring__cq_wake(c->qs[q]) && c->vm_ref)
				nk_vm__wake(c);
		}
	}
}

/*
 * One pass of the loop's guest work without its waiting: every guest's
 * rings, then the wake-ups and the idle-guest sweep. For drivers without
 * the loop (tests/unit/test_engine.c); returns the SQEs taken.
 */
unsigned nk_engine__step(struct nk_engine *e)
{
	unsigned n = poll_guests(e, false);

	nk_rxpark__run(e);
	flush_barriers(e);
	flush_wakes(e);
	if (e->gc)
		guest_gc(e, nk_now_ns());
	return n;
}

#define for_each_conn(e, g, c, gp, gt, cp, ct)                                  \
	nk_list__for_each_safe(                                                 \
		gp, gt,                                                         \
		&(e)->guests) if (((g) = nk_container_of(gp, struct nk_guest,   \
							 link)),                \
				  1)                                            \
		nk_list__for_each_safe(                                         \
			cp, ct,                                                 \
			&(g)->conns) if (((c) = nk_container_of(cp,             \
								struct nk_conn, \
								glink)),        \
					 1)

static void set_need_wakeup(struct nk_engine *e, bool on)
{
	struct nk_list *gp, *gt, *cp, *ct;
	struct nk_guest *g;
	struct nk_conn *c;

	for_each_conn(e, g, c, gp, gt, cp, ct)
	{
		/* A resting guest is looked at when its rest ends, rung or
		 * not: a doorbell from it would only wake nkd for nothing. */
		if (on && g->rest.until)
			continue;
		for (uint32_t q = 0; q < c->nr_qsets; q++)
			nk_hring__sq_need_wakeup(c->qs[q], on);
	}
}

/*
 * Announce sleep on every SQ, then look once more: a guest that published
 * before seeing the flag must not be left waiting (docs/abi.md §4).
 * Returns false if there is work after all.
 */
static bool prepare_sleep(struct nk_engine *e, bool *cq_blocked)
{
	struct nk_list *gp, *gt, *cp, *ct;
	struct nk_guest *g;
	struct nk_conn *c;

	*cq_blocked = false;
	set_need_wakeup(e, true);
	nk_ring_fence();
	/* Standing RECVs woken late in the pass go down first. */
	if (!nk_list__empty(&e->rx_wake))
		return false;
	for_each_conn(e, g, c, gp, gt, cp, ct)
	{
		if (g->rest.until)
			continue; /* the sleep ends by then (idlerest.c) */
		if (c->cq_blocked) {
			*cq_blocked = true;
			continue;
		}
		for (uint32_t q = 0; q < c->nr_qsets; q++)
			if (nk_hring__sq_pending(c->qs[q]))
				return false;
	}
	return true;
}

static void on_signal(void *ctx, uint32_t slot, uint32_t gen,
		      const struct io_uring_cqe *cqe)
{
	struct nk_engine *e = ctx;
	struct signalfd_siginfo si;

	(void)slot;
	(void)gen;
	(void)cqe;
	while (read(e->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			char msg[1024];
			int ret;

			nk_notify__reloading();
			ret = nk_admin__reload(e, msg, sizeof(msg)); /* logs */
			nk_notify__ready(ret ? "reload refused, old config kept"
					     : "running, config reloaded");
			continue;
		}
		nk_info("signal %u: shutting down", si.ssi_signo);
		e->stop = true;
	}
}

int nk_engine__run(struct nk_engine *e)
{
	int64_t last_work = nk_now_ns(), last_real = last_work, slept = -1;
	bool spinning = false;
	struct nk_spin *sp = &e->spin;

	nk_spin__init(sp, nk_spin__cap(getenv("NK_SPIN_MAX_NS"),
				       NK_SPIN_BUSY_NS, NK_SPIN_FEW_CPUS_NS));
	while (!e->stop) {
		unsigned work = 0;
		int64_t now, budget;
		bool cq_blocked, real;

		e->idle_work = 0;
		nk_loop__kick(e->loop);
		work += nk_loop__reap(e->loop);
		work += poll_guests(e, true);
		if (nk_optimer__next(e))
			work += nk_engine__expire(e, nk_now_ns());
		work += nk_rate__run(e, nk_now_ns());
		work += nk_sched__run(e, nk_now_ns());
		for (unsigned i = 0; i < e->nr_nsms; i++)
			if (e->nsms[i].ops->poll)
				work += (unsigned)e->nsms[i].ops->poll(
					e->nsms[i].priv);
		work += nk_rxpark__run(e);
		/* Not work: a guest flooding its own app end must not keep
		 * nkd spinning; the sleep below is short while it lasts. */
		flush_barriers(e);
		nk_ph__run_pending();
		flush_wakes(e);
		e->loops++;
		now = nk_now_ns();
		if (e->next_deadline && now >= e->next_deadline)
			ho_expire(e, now);
		if (e->gc)
			guest_gc(e, now);
		/*
		 * Only real work earns and keeps the spin: NOPs, doorbells,
		 * refusals and failures keep nkd awake for the short spin
		 * only, and a sleep they end counts as a useless one (the
		 * budget shrinks), so a guest cannot buy a spinning core
		 * with 1 NOP per millisecond (a NOP ping-pong still finds
		 * nkd awake while the budget lasts).
		 */
		real = work > e->idle_work;
		if (slept >= 0) {
			nk_spin__slept(sp, slept, real);
			slept = -1;
		}
		if (work) {
			last_work = now;
			if (real) {
				if (spinning)
					nk_spin__hit(sp);
				spinning = false;
				last_real = now;
			}
			continue;
		}
		budget = nk_spin__budget(sp);
		if (now - last_real < budget ||
		    now - last_work <
			    (budget < NK_SPIN_NS ? budget : NK_SPIN_NS)) {
			spinning = true;
			continue;
		}
		spinning = false;
		if (prepare_sleep(e, &cq_blocked)) {
			int64_t timeout = -1, t0;

			if (e->next_deadline)
				timeout = e->next_deadline > now
						  ? e->next_deadline - now
						  : 0;
			timeout = nk_optimer__clamp(e, now, timeout);
			timeout = nk_rate__clamp(e, now, timeout);
			timeout = nk_sched__clamp(e, now, timeout);
			timeout = nk_idlerest__clamp(e, now, timeout);
			if ((cq_blocked || nk_ph__pending()) &&
			    (timeout < 0 || timeout > CQ_BLOCKED_RECHECK_NS))
				timeout = CQ_BLOCKED_RECHECK_NS;
			e->sleeps++;
			t0 = nk_now_ns();
			nk_loop__wait(e->loop, timeout);
			/* Judged by the next pass: did real work end it? */
			slept = nk_now_ns() - t0;
		}
		set_need_wakeup(e, false);
		last_work = last_real = nk_now_ns();
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Create / destroy. */

int nk_engine__create(const struct nk_config *cfg, struct nk_engine **out)
{
	struct nk_engine *e;
	struct timespec ts;
	sigset_t mask;
	int ret;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	e->sigfd = -1;
	e->resolve_efd = -1;
	nk_guest_ids__init(&e->guest_ids);
	nk_list__init(&e->guests);
	nk_list__init(&e->wake);
	nk_list__init(&e->rx_wake);
	nk_list__init(&e->lingering);
	nk_list__init(&e->timed);
	e->start_ns = nk_now_ns();
	{
		char err[512];

		ret = nk_budget__init(e, err, sizeof(err));
		if (ret) {
			nk_err("config: %s", err);
			goto fail;
		}
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	/* The epoch only has to differ between runs. */
	e->epoch = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	nk_info("epoch %llu", (unsigned long long)e->epoch);

	ret = nk_loop__create(&e->loop);
	if (ret)
		goto fail;
	nk_info("io_uring mode: %s", nk_loop__mode(e->loop));
	nk_loop__on(e->loop, NK_UD_PIDFD, on_pidfd, e);
	nk_loop__on(e->loop, NK_UD_SIGNAL, on_signal, e);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* reload (admin.c) */
	e->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (e->sigfd < 0) {
		ret = -errno;
		goto fail;
	}
	nk_loop__poll(e->loop, e->sigfd, POLLIN, nk_ud(NK_UD_SIGNAL, 0, 0));
	e->resolve_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->resolve_efd < 0) {
		ret = -errno;
		goto fail;
	}

	e->nsms = calloc(cfg->nr_nsms, sizeof(*e->nsms));
	if (!e->nsms) {
		ret = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < cfg->nr_nsms; i++) {
		struct nk_nsm *n = &e->nsms[i];

		n->conf = cfg->nsms[i];
		n->netns_fd = -1;
		n->ops = nk_nsm__find(n->conf.type);
		if (!n->ops) {
			nk_err("nsm %s: unknown type %s", n->conf.name,
			       n->conf.type);
			ret = -EINVAL;
			goto fail;
		}
		if (n->conf.netns[0]) {
			n->netns_fd = open(n->conf.netns, O_RDONLY | O_CLOEXEC);
			if (n->netns_fd < 0) {
				ret = -errno;
				nk_err("nsm %s: netns %s: %s", n->conf.name,
				       n->conf.netns, strerror(errno));
				goto fail;
			}
		}
		ret = n->ops->create(e, e->loop, &n->conf, &n->priv);
		if (ret) {
			nk_err("nsm %s: %s", n->conf.name, strerror(-ret));
			goto fail;
		}
		e->nr_nsms = i + 1;
		ret = nk_portown__create(n);
		if (ret)
			goto fail;
		ret = nk_resolver__create(n->netns_fd, &n->conf, e->resolve_efd,
					  &n->resolver);
		if (ret) {
			nk_err("nsm %s: resolver: %s", n->conf.name,
			       strerror(-ret));
			goto fail;
		}
		nk_info("nsm %s: type %s, netns %s", n->conf.name, n->conf.type,
			n->conf.netns[0] ? n->conf.netns : "self");
	}
	for (unsigned i = 0; i < cfg->nr_guests; i++)
		if (!guest_new(e, &cfg->guests[i], true, &ret))
			goto fail;
	*out = e;
	return 0;
fail:
	nk_engine__destroy(e);
	return ret;
}

void nk_engine__destroy(struct nk_engine *e)
{
	if (!e)
		return;
	/* Detaches every conn, which releases their sockets. */
	if (e->ctl)
		nk_ctl__destroy(e->ctl);
	e->ctl = NULL;
	for (uint32_t i = 0; i < e->hos_cap; i++)
		if (e->hos[i]->used)
			ho_free(e, e->hos[i]);
	/* Let the cancelled operations come back, so regions are freed in
	 * order; bounded, the kernel drops what is left at ring exit. */
	for (int64_t until = nk_now_ns() + 1000000000ll;
	     e->loop && (e->nr_conn_objs || e->nr_socks) &&
	     nk_now_ns() < until;) {
		nk_loop__wait(e->loop, 10000000ll);
		nk_loop__reap(e->loop);
	}
	if (e->nr_conn_objs || e->nr_socks)
		nk_warn("exit with %u connections and %llu sockets still "
			"draining",
			e->nr_conn_objs, (unsigned long long)e->nr_socks);
	/* Tearing the ring down cancels whatever the kernel still holds. */
	nk_loop__destroy(e->loop);
	for (unsigned i = 0; i < e->nr_nsms; i++) {
		struct nk_nsm *n = &e->nsms[i];

		nk_resolver__destroy(n->resolver);
		if (n->priv)
			n->ops->destroy(n->priv);
		n->priv = NULL; /* guest_free below: no detach hook */
		nk_portown__destroy(n);
		if (n->netns_fd >= 0)
			close(n->netns_fd);
	}
	while (!nk_list__empty(&e->guests))
		guest_free(e, nk_container_of(e->guests.next, struct nk_guest,
					      link));
	for (uint32_t i = 0; i < e->ops_cap; i++)
		free(e->ops[i]);
	free(e->ops);
	free(e->ops_free);
	for (uint32_t i = 0; i < e->hos_cap; i++) {
		free(e->hos[i]->socks);
		free(e->hos[i]);
	}
	free(e->hos);
	free(e->nsms);
	if (e->sigfd >= 0)
		close(e->sigfd);
	if (e->resolve_efd >= 0)
		close(e->resolve_efd);
	nk_config__free(&e->cfg);
	free(e);
}
