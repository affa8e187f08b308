// SPDX-License-Identifier: MIT
/*
 * Operation timeouts (SO_RCVTIMEO/SO_SNDTIMEO: an SQE's NK_SQE_F_TIMEOUT),
 * kept once for every NSM. A timed op is on e->timed, sorted by deadline;
 * the run loop sleeps no longer than the first one and, once it passes,
 * cancels it (sendq.c: held by the engine, else the NSM's cancel op). The NSM completes it as
 * it completes any cancelled op (-ECANCELED, or the bytes already moved);
 * nk_engine__op_done() turns the -ECANCELED of an expiry into what a timed
 * out socket call returns: -EAGAIN, -ETIMEDOUT for CONNECT.
 *
 * Timeouts are mostly one per socket and of one length per program, so
 * new deadlines are nearly always the latest: the insertion walks from
 * the tail.
 */
#include "engine.h"
#include "optimer.h"
#include "sendq.h"

void nk_optimer__add(struct nk_engine *e, struct nk_req *op, int64_t now)
{
	struct nk_list *p;

	if (!op->timeout_ms)
		return;
	op->deadline = now + (int64_t)op->timeout_ms * 1000000ll;
	for (p = e->timed.prev; p != &e->timed; p = p->prev)
		if (nk_container_of(p, struct nk_req, tlink)->deadline <=
		    op->deadline)
			break;
	/* After p: before p->next. */
	nk_list__add_tail(p->next, &op->tlink);
}

void nk_optimer__del(struct nk_req *op)
{
	nk_list__del(&op->tlink);
}

int64_t nk_optimer__next(const struct nk_engine *e)
{
	if (nk_list__empty(&e->timed))
		return 0;
	return nk_container_of(e->timed.next, struct nk_req, tlink)->deadline;
}

int64_t nk_optimer__clamp(const struct nk_engine *e, int64_t now,
			  int64_t timeout)
{
	int64_t d = nk_optimer__next(e), left;

	if (!d)
		return timeout;
	left = d > now ? d - now : 0;
	return timeout < 0 || left < timeout ? left : timeout;
}

unsigned nk_engine__expire(struct nk_engine *e, int64_t now)
{
	unsigned n = 0;

	while (!nk_list__empty(&e->timed)) {
		struct nk_req *op =
			nk_container_of(e->timed.next, struct nk_req, tlink);

		if (op->deadline > now)
			break;
		/* Off the list first: cancel may complete (and free) it. */
		nk_list__del(&op->tlink);
		op->timed_out = true;
		op->cancelled = true;
		/* -ENOENT: it is finishing on its own (a CQE on its way). */
		nk_sendq__cancel(e, op);
		n++;
	}
	return n;
}
