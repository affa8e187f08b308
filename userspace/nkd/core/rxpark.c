// SPDX-License-Identifier: MIT
/*
 * Standing receives (docs/abi.md §5 "Standing receive", docs/nkd.md
 * "Receive path").
 *
 * A stream RECV with NK_SQE_F_PREFETCH and without NK_SQE_F_NONBLOCK is
 * the guest lending nkd a buffer for whatever the socket receives next.
 * While the socket is empty the engine keeps the op (parked), after a CQE
 * flagged NK_CQE_F_MORE that tells the guest so. When the
 * NSM reports data, an end or an error, the op goes down as a
 * non-blocking receive, its data lands in the guest's buffer, its CQE is
 * posted, and only then does the placeholder get a readable edge. A
 * program woken by poll or epoll finds its data in shared memory: its
 * recv() costs no round trip to nkd, where before every read was one.
 *
 * The NSM only ever sees non-blocking receives, so every NSM that reports
 * readiness with nk_engine__sock_event() gets this for free. A woken op
 * waits for the end of the loop pass (engine->rx_wake): NSMs report events
 * from inside their own completion handling, and are not handed a new op
 * there.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "engine.h"
#include "nksched.h"
#include "host_ring.h"
#include "ratelimit.h"
#include "rxpark.h"

#define RX_EVENTS (POLLIN | POLLERR | POLLHUP | POLLRDHUP)

/* Would a receive find something (data, an end, an error) now? */
static bool sock_readable(struct nk_sock *s)
{
	return s->rxback ||
	       (s->nsm->ops->poll_now(s->nsm->priv, s) & RX_EVENTS);
}

/*
 * Keeps op until data comes; false if it cannot be announced. The guest
 * learns it is kept from a CQE flagged NK_CQE_F_MORE (once per op), a
 * second CQE for one SQE: it needs a CQ slot beyond the one reserved when
 * the SQE was taken, reserved here for the final CQE, or none is posted
 * and the RECV ends with -EAGAIN like a non-blocking one.
 */
static bool park(struct nk_req *op)
{
	struct nk_sock *s = op->sock;

	if (!op->announced) {
		struct nk_hring *r = op->conn->qs[op->qset];

		if (!op->conn->dead && nk_hring__cq_room(r) <= 0)
			return false;
		nk_hring__cq_reserve(r);
	}
	op->parked = true;
	/* Bytes queued since the guest last looked are stale now. */
	nk_ph__set_readable(&s->ph, false, false);
	if (!op->announced) {
		/* So that the guest's peek at its placeholder is exact. */
		nk_engine__op_post(op, -EAGAIN, NK_CQE_F_MORE);
		op->announced = true;
	}
	return true;
}

/* Plain reads of a connected stream, or batches of a datagram socket. */
static bool shape_ok(const struct nk_req *op)
{
	const struct nk_sock *s = op->sock;

	if (op->msg_flags || (op->sqe_flags & (NK_SQE_F_TIMEOUT |
					       NK_SQE_F_CMSG | NK_SQE_F_ADDR)))
		return false;
	if (s->type == SOCK_DGRAM)
		return op->sqe_flags & NK_SQE_F_BATCH;
	return s->type == SOCK_STREAM && !(op->sqe_flags & NK_SQE_F_BATCH) &&
	       (s->state == NK_SS_ESTABLISHED || s->state == NK_SS_CLOSE_WAIT);
}

bool nk_rxpark__start(struct nk_req *op)
{
	struct nk_sock *s = op->sock;

	/* The NSM only ever tries: the waiting is done here. */
	op->sqe_flags |= NK_SQE_F_NONBLOCK;
	/*
	 * One per socket: plain reads of a connected stream (one that is
	 * still connecting would take the error a failed connect leaves for
	 * SO_ERROR), or batches of a datagram socket; not a VM's (its
	 * placeholder is nkd's mirror, which the guest cannot empty).
	 * Anything else is an ordinary read-ahead, answered at once.
	 */
	if (s->rx_standing || s->closing || op->conn->vm_ref || !shape_ok(op))
		return false;
	if (s->nsm->ops->caps & NK_NSM_CAP_RECV_RENDEZVOUS) {
		nk_engine__op_done(op, -EOPNOTSUPP, 0, 0, 0);
		return true;
	}
	op->standing = true;
	s->rx_standing = op;
	if (op->sqe_flags & NK_SQE_F_EMPTIED)
		nk_ph__guest_drained(&s->ph);
	if (sock_readable(s))
		return false;
	return park(op);
}

bool nk_rxpark__again(struct nk_req *op, int res)
{
	struct nk_sock *s = op->sock;

	/*
	 * Readable after all (it raced with an arrival, or another reader
	 * took the data): the final -EAGAIN, and the guest asks again.
	 */
	if (res != -EAGAIN || op->cancelled || s->closing || op->conn->dead ||
	    sock_readable(s))
		return false;
	/* The try is over: what the rate cap and scheduler counted goes
	 * back, and the next try is judged afresh. */
	nk_rate__done(op, res);
	nk_sched__done(op, res);
	op->rate_dir = 0;
	op->rate_pass = false;
	op->sched_pass = false;
	memset(op->scratch, 0, sizeof(op->scratch));
	return park(op);
}

bool nk_rxpark__wake(struct nk_engine *e, struct nk_sock *s, unsigned revents)
{
	struct nk_req *op = s->rx_standing;

	/* In the NSM already: its CQE comes anyway; the usual edge. */
	if (!op || (!op->parked && !op->waking))
		return false;
	op->wake_ev |= revents;
	if (op->parked) {
		op->parked = false;
		op->waking = true;
		nk_list__add_tail(&e->rx_wake, &op->qlink);
	}
	return true;
}

unsigned nk_rxpark__run(struct nk_engine *e)
{
	unsigned n = 0;

	while (!nk_list__empty(&e->rx_wake)) {
		struct nk_req *op =
			nk_container_of(e->rx_wake.next, struct nk_req, qlink);

		nk_list__del(&op->qlink);
		op->waking = false;
		nk_engine__nsm_call(op);
		n++;
	}
	return n;
}

bool nk_rxpark__cancel(struct nk_req *op)
{
	if (!op->parked && !op->waking)
		return false;
	if (op->waking)
		nk_list__del(&op->qlink);
	op->parked = false;
	op->waking = false;
	nk_engine__op_done(op, -ECANCELED, 0, 0, 0);
	return true;
}

void nk_rxpark__done(struct nk_req *op, int res)
{
	struct nk_sock *s = op->sock;
	unsigned ev = op->wake_ev;

	if (s->rx_standing == op)
		s->rx_standing = NULL;
	if (s->closing)
		return;
	if (ev && res > 0)
		op->conn->guest->c.rx_pushed++;
	/* The hang-up its wake-up held back, whatever became of the op. */
	if (ev & (POLLRDHUP | POLLHUP | POLLERR))
		nk_engine__sock_mirror_hup(
			s, s->nsm->ops->poll_now(s->nsm->priv, s));
	/* Nothing reached the guest: the socket's own state says. */
	if (res == -EAGAIN || res == -ECANCELED) {
		nk_engine__sock_recheck(s);
		return;
	}
	/*
	 * Readable. A new edge if it was parked: the guest may have answered
	 * EAGAIN meanwhile and wait for one; until then it waited for this
	 * CQE instead.
	 */
	nk_ph__set_readable(&s->ph, true, ev != 0);
}
