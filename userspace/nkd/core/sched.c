// SPDX-License-Identifier: MIT
/*
 * Byte scheduler across guests: weighted fair queuing of the bytes each
 * guest moves through its NSM, per direction (sched.h has the rule).
 *
 * Why virtual service with a bounded lead rather than a plain DRR round:
 * the queue that matters is not the engine's. A kernel NSM hands a SEND
 * to a socket whose buffer drains at the rate TCP gives that flow, so the
 * "link" is many per-flow queues in parallel and the engine never sees
 * one server to take turns at. What the engine can do is refuse to let a
 * guest's admitted bytes run ahead of a guest that is pushed back: then
 * the leader's sockets run dry, its flows become application-limited,
 * and TCP hands the room at the bottleneck to the guest behind. Ordering
 * by normalised service (start-time fair queuing's tags) gives the
 * weights; the lead bound turns it into that admission control; and a
 * guest without backlog never holds anybody (work-conserving).
 *
 * Holding reuses the rate cap's mechanism (ratelimit.c): a held op is
 * op->held on a per-guest list, sendq.c cancels it and keeps a release
 * waiting for it, and the run loop hands it down (nk_sched__run).
 */
#include <sys/socket.h>

#include "engine.h"
#include "nksched.h"
#include "sendq.h"

void nk_sched__guest_init(struct nk_guest *g)
{
	for (int d = 0; d < NK_SCHED_DIRS; d++)
		nk_list__init(&g->sched.dir[d].held);
}

static int dir_of(const struct nk_req *op)
{
	if (op->opcode == NK_OP_SEND)
		return NK_SCHED_TX;
	if (op->opcode == NK_OP_RECV && !(op->msg_flags & MSG_PEEK))
		return NK_SCHED_RX;
	return -1;
}

/*
 * Does every SEND g has in its NSM wait for its own peer (a reader slower
 * than the path)? Then the shared bottleneck is not what holds g back:
 * holding the others would not speed g up, only idle the bottleneck
 * while g crawls. Asked of the NSMs at most every NK_SCHED_PEER_NS.
 */
static bool peer_limited(struct nk_guest *g, struct nk_sched_q *q, int64_t now)
{
	bool any = false, all = true;

	if (q->peer_at && now - q->peer_at < NK_SCHED_PEER_NS)
		return q->peer_limited;
	q->peer_at = now;
	for (uint32_t i = 1; i < g->cap && all; i++) {
		struct nk_sock *s = g->socks[i];

		/* A SEND in its NSM (not one waiting in the engine). */
		if (!s || !s->send_busy || s->sched_held || s->rate_held)
			continue;
		any = true;
		all = s->nsm->ops->send_peer_limited &&
		      s->nsm->ops->send_peer_limited(s->nsm->priv, s);
	}
	q->peer_limited = any && all;
	q->nr_peer_limited += q->peer_limited;
	return q->peer_limited;
}

static bool contending(const struct nk_engine *e, struct nk_guest *g,
		       struct nk_sched_q *q, int d, int64_t now)
{
	if (q->nr_held)
		return true;
	if (d == NK_SCHED_TX)
		/* Pushed back by the stack, or its send window filled in
		 * one of the last passes: nkd itself is the bottleneck;
		 * unless its flows wait for their own slow peers. */
		return ((q->busy && now - q->last < NK_SCHED_STALL_NS) ||
			(q->seen && e->loops - q->seen <= NK_SCHED_PASSES) ||
			(q->full && now - q->full < NK_SCHED_RX_NS)) &&
		       !peer_limited(g, q, now);
	return q->last && now - q->last < NK_SCHED_RX_NS;
}

/* The least vt among the guests but g contending in d; false if none. */
static bool min_other(struct nk_engine *e, const struct nk_guest *g, int d,
		      int64_t now, uint64_t *min)
{
	struct nk_list *p;
	bool any = false;

	for (p = e->guests.next; p != &e->guests; p = p->next) {
		struct nk_guest *o = nk_container_of(p, struct nk_guest, link);
		struct nk_sched_q *q = &o->sched.dir[d];

		if (o == g || !contending(e, o, q, d, now))
			continue;
		if (!any || nk_sched__lead(q->vt, *min) < 0)
			*min = q->vt;
		any = true;
	}
	return any;
}

static void end_wait(struct nk_sched_q *q, int64_t now)
{
	if (q->since && !q->nr_held) {
		q->held_ns += (uint64_t)(now - q->since);
		q->since = 0;
	}
}

/* op goes down: an egress op is charged now, a RECV when it is done. */
static void go(struct nk_req *op, int d, int64_t now)
{
	struct nk_guest *g = op->conn->guest;
	struct nk_sched_q *q = &g->sched.dir[d];

	op->sched_dir = (int8_t)(d + 1);
	if (d == NK_SCHED_TX) {
		q->vt += nk_sched__cost(op->len, g->conf.weight);
		q->busy++;
		if (now) {
			q->last = now;
			/*
			 * The program wrote more than nkd has taken: its
			 * socket's window is full. Not a guest held by its
			 * own rate cap: that is its limit, not the shared
			 * one (and a sender of little never fills it).
			 */
			if (op->sock->send_inflight >= op->sock->send_window &&
			    !g->conf.rate_bps[NK_RATE_TX])
				q->seen = op->e->loops;
		}
	}
}

static void hold(struct nk_req *op, struct nk_sched_q *q, int64_t now)
{
	if (!q->nr_held)
		q->since = now;
	op->held = true;
	op->sched_held = true;
	op->sched_since = now;
	nk_list__add_tail(&q->held, &op->qlink);
	q->nr_held++;
	q->nr_holds++;
	op->sock->sched_held++;
	op->e->sched_held++;
}

bool nk_sched__hold(struct nk_req *op)
{
	struct nk_engine *e = op->e;
	struct nk_guest *g = op->conn->guest;
	int d = dir_of(op);
	struct nk_sched_q *q;
	uint64_t min;
	int64_t now;

	if (d < 0)
		return false;
	q = &g->sched.dir[d];
	/* One guest (the common case) or a held op whose turn came. */
	if (op->sched_pass || e->nr_guests < 2) {
		go(op, d, op->sched_pass ? nk_now_ns() : 0);
		return false;
	}
	now = nk_now_ns();
	if (q->nr_held) {
		/* Behind the guest's ops already waiting, in order. */
		hold(op, q, now);
		return true;
	}
	if (min_other(e, g, d, now, &min)) {
		if (!contending(e, g, q, d, now))
			q->vt = nk_sched__catch_up(q->vt, min);
		if (!nk_sched__may_go(q->vt, min)) {
			hold(op, q, now);
			return true;
		}
	}
	go(op, d, now);
	return false;
}

void nk_sched__done(struct nk_req *op, int res)
{
	struct nk_guest *g = op->conn->guest;
	struct nk_sched_q *q;
	uint64_t moved = 0;
	int d;

	if (!op->sched_dir)
		return;
	d = op->sched_dir - 1;
	q = &g->sched.dir[d];
	op->sched_dir = 0;
	if (res > 0)
		moved = (op->sqe_flags & NK_SQE_F_BATCH) ? op->done
							 : (uint64_t)res;
	q->bytes += moved;
	if (d == NK_SCHED_TX) {
		/* Charged op->len when it went down: give back the rest. */
		if (moved < op->len)
			q->vt -=
				nk_sched__cost(op->len - moved, g->conf.weight);
		q->busy--;
		if (op->e->nr_guests > 1) {
			q->last = nk_now_ns();
			/*
			 * A single-stream writer has nothing in nkd between
			 * two SENDs (the program's turn-around), and the
			 * pass count alone would call it idle and erase its
			 * deficit at every write; a whole buffer written at
			 * once says it is backlogged (as a full RECV does).
			 */
			if (moved >= op->len && op->len >= op->conn->buf_size &&
			    !g->conf.rate_bps[NK_RATE_TX])
				q->full = q->last;
		}
		return;
	}
	q->vt += nk_sched__cost(moved, g->conf.weight);
	/* A buffer filled: more was likely waiting in the stack (unless the
	 * guest's own rate cap keeps it waiting there). */
	if (moved && moved >= op->len && op->e->nr_guests > 1 &&
	    !g->conf.rate_bps[NK_RATE_RX])
		q->last = nk_now_ns();
}

void nk_sched__unhold(struct nk_req *op)
{
	struct nk_sched_q *q = &op->conn->guest->sched.dir[dir_of(op)];

	nk_list__del(&op->qlink);
	op->sched_held = false;
	q->nr_held--;
	op->sock->sched_held--;
	op->e->sched_held--;
	end_wait(q, nk_now_ns());
}

/* Hands op down; the socket's deferred release follows its last op. */
static void pass(struct nk_req *op, int64_t now)
{
	struct nk_sock *s = op->sock;
	bool rel;

	op->conn->guest->sched.dir[dir_of(op)].passed = now;
	nk_sched__unhold(op);
	op->held = false;
	op->sched_pass = true;
	/* It was past the rate cap (ratelimit.c) before it waited here. */
	op->rate_pass = true;
	/* Decided before the call: s may be gone after a release. */
	rel = nk_sendq__release_due(s);
	nk_engine__nsm_call(op);
	if (rel)
		s->nsm->ops->sock_release(s->nsm->priv, s);
}

/*
 * The guest's head op goes anyway once the guest has had nothing handed
 * down for NK_SCHED_WAIT_NS: a guest is slowed to its share, never
 * stopped.
 */
static bool waited_out(const struct nk_sched_q *q, const struct nk_req *op,
		       int64_t now)
{
	int64_t from = op->sched_since > q->passed ? op->sched_since
						   : q->passed;

	return now - from >= NK_SCHED_WAIT_NS;
}

/* Ops handed down per call at most: the loop comes back for the rest. */
#define NK_SCHED_RUN_MAX 256u

unsigned nk_sched__run(struct nk_engine *e, int64_t now)
{
	unsigned n = 0;
	bool more = true;

	while (e->sched_held && more && n < NK_SCHED_RUN_MAX) {
		struct nk_list *p, *t;

		more = false;
		nk_list__for_each_safe(p, t, &e->guests)
		{
			struct nk_guest *g =
				nk_container_of(p, struct nk_guest, link);

			for (int d = 0; d < NK_SCHED_DIRS; d++) {
				struct nk_sched_q *q = &g->sched.dir[d];
				struct nk_req *op;
				uint64_t min;

				if (!q->nr_held)
					continue;
				op = nk_container_of(q->held.next,
						     struct nk_req, qlink);
				if (min_other(e, g, d, now, &min) &&
				    !nk_sched__may_go(q->vt, min) &&
				    !waited_out(q, op, now))
					continue;
				/* One op per guest and round: turns alternate. */
				pass(op, now);
				n++;
				more = true;
			}
		}
	}
	return n;
}

int64_t nk_sched__clamp(struct nk_engine *e, int64_t now, int64_t timeout)
{
	/*
	 * Held ops go when a contender falls behind or stops contending;
	 * the second happens by the clock alone (a stalled SEND, a reader
	 * whose buffers stopped filling), so look again soon.
	 */
	int64_t t = NK_SCHED_RX_NS;

	(void)now;
	if (!e->sched_held)
		return timeout;
	return timeout < 0 || timeout > t ? t : timeout;
}

uint64_t nk_sched__held_ns(const struct nk_guest *g, int d, int64_t now)
{
	const struct nk_sched_q *q = &g->sched.dir[d];

	return q->held_ns +
	       (q->since && now > q->since ? (uint64_t)(now - q->since) : 0);
}
