// SPDX-License-Identifier: MIT
/*
 * Rate caps per guest: a token bucket per guest and direction, filled at
 * the guest's rate_tx= / rate_rx= (bits/s) up to burst= bytes.
 *
 *  - egress: a SEND reserves its length in the guest's tx bucket when it
 *    is handed to the NSM; while the bucket is in debt, SENDs wait here
 *    (op->held, on the bucket's list in guest order) and the run loop
 *    hands them down when the debt is paid. The NSM's answer gives back
 *    what it did not send. Holding a SEND keeps its socket's send window
 *    full, so the guest's writes block (or get EAGAIN) as on a slow link.
 *  - ingress: a RECV reserves its length in the rx bucket when it goes
 *    down and gets back what it did not receive; while the bucket is in
 *    debt, RECVs wait here. The data stays in the NSM's socket, whose
 *    receive window shrinks: the sender slows down (backpressure). What
 *    the guest reads is exact; what crosses the wire follows it after
 *    the socket buffer fills.
 *
 * A held op is still the guest's: CANCEL, its timeout and teardown take
 * it off here (sendq.c's nk_sendq__cancel), a close waits until the
 * socket's held ops went down (as sendq.c's release), and a SHUT_WR
 * waits behind the socket's held SENDs so the FIN follows the data.
 * Debt is bounded by the SENDs/RECVs in flight at once: over seconds the
 * rate is the cap.
 */
#include <sys/socket.h>

#include "engine.h"
#include "ratelimit.h"
#include "sendq.h"

/* Default burst: 10 ms at the rate, at least 64 KiB. */
#define NK_RATE_BURST_NS 10000000ll
#define NK_RATE_BURST_MIN (64 * 1024)

void nk_rate__guest_init(struct nk_guest *g)
{
	for (int d = 0; d < NK_RATE_DIRS; d++)
		nk_list__init(&g->rate.dir[d].held);
}

static int dir_of(const struct nk_req *op)
{
	if (op->opcode == NK_OP_SEND)
		return NK_RATE_TX;
	if (op->opcode == NK_OP_RECV && !(op->msg_flags & MSG_PEEK))
		return NK_RATE_RX;
	if (op->opcode == NK_OP_SHUTDOWN && op->arg != SHUT_RD)
		return NK_RATE_TX; /* only behind held SENDs, below */
	return -1;
}

static double bytes_per_ns(const struct nk_guest *g, int d)
{
	return (double)g->conf.rate_bps[d] / 8e9;
}

static double burst(const struct nk_guest *g, int d)
{
	double b;

	if (g->conf.rate_burst)
		return (double)g->conf.rate_burst;
	b = bytes_per_ns(g, d) * NK_RATE_BURST_NS;
	return b > NK_RATE_BURST_MIN ? b : NK_RATE_BURST_MIN;
}

static void refill(struct nk_guest *g, int d, int64_t now)
{
	struct nk_rate *r = &g->rate.dir[d];
	double cap = burst(g, d);

	if (!r->last)
		r->tokens = cap; /* a new bucket starts full, as tc's */
	else if (now > r->last)
		r->tokens += (double)(now - r->last) * bytes_per_ns(g, d);
	r->last = now;
	if (r->tokens > cap)
		r->tokens = cap;
}

static void reserve(struct nk_req *op, int d)
{
	struct nk_guest *g = op->conn->guest;

	op->rate_dir = (int8_t)(d + 1);
	op->rate_res = op->len;
	g->rate.dir[d].tokens -= op->len;
}

bool nk_rate__hold(struct nk_req *op)
{
	struct nk_guest *g = op->conn->guest;
	struct nk_sock *s = op->sock;
	int d = dir_of(op);
	struct nk_rate *r;

	if (d < 0 || op->rate_pass)
		return false;
	r = &g->rate.dir[d];
	if (op->opcode == NK_OP_SHUTDOWN) {
		if (!s->rate_held)
			return false;
	} else if (!g->conf.rate_bps[d]) {
		return false;
	} else {
		refill(g, d, nk_now_ns());
		if (nk_list__empty(&r->held) && r->tokens >= 0) {
			reserve(op, d);
			return false;
		}
	}
	if (nk_list__empty(&r->held))
		r->since = nk_now_ns();
	op->held = true;
	op->rate_dir = (int8_t)(d + 1);
	nk_list__add_tail(&r->held, &op->qlink);
	s->rate_held++;
	op->e->rate_held++;
	r->nr_held++;
	return true;
}

static void end_wait(struct nk_rate *r, int64_t now)
{
	if (r->since && nk_list__empty(&r->held)) {
		r->throttled_ns += (uint64_t)(now - r->since);
		r->since = 0;
	}
}

void nk_rate__unhold(struct nk_req *op)
{
	struct nk_rate *r = &op->conn->guest->rate.dir[op->rate_dir - 1];

	nk_list__del(&op->qlink);
	op->rate_dir = 0;
	op->sock->rate_held--;
	op->e->rate_held--;
	end_wait(r, nk_now_ns());
}

void nk_rate__done(struct nk_req *op, int res)
{
	struct nk_rate *r;
	uint64_t moved = 0;

	if (!op->rate_res)
		return;
	r = &op->conn->guest->rate.dir[op->rate_dir - 1];
	if (res > 0)
		moved = (op->sqe_flags & NK_SQE_F_BATCH) ? op->done
							 : (uint64_t)res;
	if (moved > op->rate_res)
		moved = op->rate_res;
	r->tokens += (double)(op->rate_res - moved);
	r->passed += moved;
	op->rate_res = 0;
}

/* Hands op down; the socket's deferred release follows its last op. */
static void pass(struct nk_engine *e, struct nk_req *op)
{
	struct nk_sock *s = op->sock;
	struct nk_rate *r = &op->conn->guest->rate.dir[op->rate_dir - 1];
	bool rel;

	nk_list__del(&op->qlink);
	/*
	 * Count the wait now: the NSM may complete op at once and the
	 * engine hand the socket's next op straight back here, which
	 * would start a new wait over this one (one SEND per socket is
	 * in the NSM at a time, so the list empties at every op).
	 */
	end_wait(r, nk_now_ns());
	op->held = false;
	op->rate_pass = true;
	s->rate_held--;
	e->rate_held--;
	/* Decided before the call: s may be gone after a release. */
	rel = nk_sendq__release_due(s);
	nk_engine__nsm_call(op);
	if (rel)
		s->nsm->ops->sock_release(s->nsm->priv, s);
}

static unsigned run_dir(struct nk_engine *e, struct nk_guest *g, int d,
			int64_t now)
{
	struct nk_rate *r = &g->rate.dir[d];
	unsigned n = 0;

	if (nk_list__empty(&r->held))
		return 0;
	if (g->conf.rate_bps[d])
		refill(g, d, now);
	while (!nk_list__empty(&r->held)) {
		struct nk_req *op =
			nk_container_of(r->held.next, struct nk_req, qlink);

		if (op->opcode != NK_OP_SHUTDOWN) {
			if (g->conf.rate_bps[d] && r->tokens < 0)
				break;
			if (g->conf.rate_bps[d])
				reserve(op, d);
		}
		pass(e, op);
		n++;
	}
	end_wait(r, now);
	return n;
}

unsigned nk_rate__run(struct nk_engine *e, int64_t now)
{
	struct nk_list *p, *t;
	unsigned n = 0;

	if (!e->rate_held)
		return 0;
	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		for (int d = 0; d < NK_RATE_DIRS; d++)
			n += run_dir(e, g, d, now);
	}
	return n;
}

int64_t nk_rate__clamp(struct nk_engine *e, int64_t now, int64_t timeout)
{
	struct nk_list *p;

	if (!e->rate_held)
		return timeout;
	for (p = e->guests.next; p != &e->guests; p = p->next) {
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		for (int d = 0; d < NK_RATE_DIRS; d++) {
			struct nk_rate *r = &g->rate.dir[d];
			double rate = bytes_per_ns(g, d), tokens;
			int64_t left = 0;

			if (nk_list__empty(&r->held))
				continue;
			tokens = r->tokens;
			if (rate > 0 && r->last && now > r->last)
				tokens += (double)(now - r->last) * rate;
			if (rate > 0 && tokens < 0)
				left = (int64_t)(-tokens / rate) + 1;
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
	}
	return timeout;
}

uint64_t nk_rate__throttled_ns(const struct nk_guest *g, int d, int64_t now)
{
	const struct nk_rate *r = &g->rate.dir[d];

	return r->throttled_ns +
	       (r->since && now > r->since ? (uint64_t)(now - r->since) : 0);
}
