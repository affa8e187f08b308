// SPDX-License-Identifier: MIT
/*
 * Send ordering per socket, the one place it is kept (no NSM keeps its
 * own): the engine hands the NSM one SEND of a socket at a time and holds
 * the others on s->sendq, in ring order, so the bytes of a stream leave
 * in the order the guest wrote them.
 *
 *  - a non-blocking SEND (NK_SQE_F_NONBLOCK or MSG_DONTWAIT) that finds
 *    another SEND of the socket not yet completed gets -EAGAIN at once:
 *    it may neither wait nor overtake;
 *  - a stream's SHUTDOWN other than SHUT_RD that finds SENDs not yet
 *    completed: SHUT_WR is answered 0 at once and held behind them, so
 *    the FIN follows the data without the guest waiting for it (abi.md
 *    §5), what the NSM later answers is not posted; SHUT_RDWR goes down
 *    at once as SHUT_RD (its answer is the guest's) and an engine-made
 *    SHUT_WR is held behind the SENDs;
 *  - the last reference going away while SENDs are held: the NSM's
 *    sock_release() waits until the last of them was handed down
 *    (closing a socket does not throw written data away);
 *  - a held op is cancelled (guest CANCEL, timeout, teardown) here,
 *    without the NSM.
 */
#include <errno.h>
#include <sys/socket.h>

#include "engine.h"
#include "ratelimit.h"
#include "nksched.h"
#include "rxpark.h"
#include "sendq.h"

static bool nonblock(const struct nk_req *op)
{
	return (op->sqe_flags & NK_SQE_F_NONBLOCK) ||
	       (op->msg_flags & MSG_DONTWAIT);
}

static bool sends_pending(const struct nk_sock *s)
{
	return s->send_busy || !nk_list__empty(&s->sendq);
}

static void hold(struct nk_sock *s, struct nk_req *op)
{
	op->held = true;
	nk_list__add_tail(&s->sendq, &op->qlink);
}

bool nk_sendq__take(struct nk_sock *s, struct nk_req *op)
{
	if (op->opcode == NK_OP_SEND) {
		if (!sends_pending(s)) {
			s->send_busy = true;
			op->order_head = true;
			return false;
		}
		if (nonblock(op)) {
			nk_engine__op_done(op, -EAGAIN, 0, 0, 0);
			return true;
		}
		hold(s, op);
		return true;
	}
	if (op->opcode == NK_OP_SHUTDOWN && op->arg != SHUT_RD &&
	    s->type == SOCK_STREAM && sends_pending(s)) {
		struct nk_req *wr;

		if (op->arg == SHUT_RDWR && (wr = nk_engine__op_dup(op))) {
			wr->arg = SHUT_WR;
			hold(s, wr);
			op->arg = SHUT_RD; /* now; the reader wakes at once */
			return false;
		}
		/* SHUT_WR (or no memory for the split): all of it later. */
		nk_engine__op_answer(op, 0);
		hold(s, op);
		return true;
	}
	return false;
}

/* Hands held ops down while no SEND of s is in the NSM. */
static void pump(struct nk_engine *e, struct nk_sock *s)
{
	if (s->sendq_pumping)
		return;
	s->sendq_pumping = true;
	while (!s->send_busy && !nk_list__empty(&s->sendq)) {
		struct nk_req *op =
			nk_container_of(s->sendq.next, struct nk_req, qlink);

		nk_list__del(&op->qlink);
		op->held = false;
		if (op->opcode == NK_OP_SEND) {
			s->send_busy = true;
			op->order_head = true;
		}
		nk_engine__nsm_call(op);
	}
	s->sendq_pumping = false;
	if (nk_sendq__release_due(s)) {
		/* May end in sock_gone: s is not touched after it. */
		s->nsm->ops->sock_release(s->nsm->priv, s);
		return;
	}
	(void)e;
}

void nk_sendq__done(struct nk_engine *e, struct nk_req *op)
{
	struct nk_sock *s = op->sock;

	if (!op->order_head)
		return;
	op->order_head = false;
	s->send_busy = false;
	pump(e, s);
}

/* Ops held by a rate cap (ratelimit.c) or the scheduler (sched.c) go
 * down first too. */
static bool ops_held(const struct nk_sock *s)
{
	return s->rate_held || s->sched_held || !nk_list__empty(&s->sendq);
}

bool nk_sendq__defer_release(struct nk_sock *s)
{
	if (!ops_held(s))
		return false;
	s->release_held = true;
	return true;
}

bool nk_sendq__release_due(struct nk_sock *s)
{
	if (!s->release_held || ops_held(s))
		return false;
	s->release_held = false;
	return true;
}

int nk_sendq__cancel(struct nk_engine *e, struct nk_req *op)
{
	struct nk_sock *s = op->sock;

	if (nk_rxpark__cancel(op))
		return 0; /* a standing RECV the engine kept */
	if (!op->held)
		return s->nsm->ops->cancel(s->nsm->priv, op);
	if (op->sched_held)
		nk_sched__unhold(op); /* waiting for its turn */
	else if (op->rate_dir)
		nk_rate__unhold(op); /* held by a rate cap */
	else
		nk_list__del(&op->qlink);
	op->held = false;
	/* Still counts (nr_ops) until done: s outlives this call. */
	nk_engine__op_done(op, -ECANCELED, 0, 0, 0);
	pump(e, s);
	return 0;
}
