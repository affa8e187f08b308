// SPDX-License-Identifier: MIT
/*
 * Submission (struct nk_submit, conn.h): putting SQEs on queue set 0
 * (through include/netkernel/guest_ring.h), ringing the doorbell,
 * synchronous calls, async SENDs and read-ahead RECVs, NOP barriers
 * before a multiplexer looks, VM-mode sync, close and drain at exit
 * (docs/abi.md sections 3-5, 9).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "netkernel/ring.h"
#include "shim.h"
#include "signals.h"

/* ------------------------------------------------------------------------ */
/* Rings. */

static void ring_bell(void)
{
	uint64_t one = 1;

	if (REAL(write)(C.at.bell_fd, &one, sizeof(one)) < 0)
		(void)0; /* counter saturated: nkd is awake anyway */
}

/*
 * A plugged thread (sendmmsg) publishes its SQEs but rings the doorbell
 * once, at the unplug, or before it sleeps for anything (futex_wait): so
 * many SQEs cost one doorbell, and a wait never misses nkd's answer.
 */
static __thread int plug_depth;
static __thread bool plug_bell;

void nk_submit__plug_flush(void)
{
	if (plug_bell) {
		plug_bell = false;
		ring_bell();
	}
}

void nk_ring__plug(void)
{
	plug_depth++;
}

void nk_ring__unplug(void)
{
	if (plug_depth > 0 && --plug_depth == 0)
		nk_submit__plug_flush();
}

/*
 * *seq: the SQ tail that published the entry (nkd took it at head >= *seq).
 * @s: the socket the entry is about, if the caller has it.
 */
static int submit_seq(struct nk_sqe *sqe, uint32_t *seq,
		      const struct nk_sock *s)
{
	uint32_t idx;
	bool bell;

	if (atomic_load(&C.at.state) != NK_ST_UP || !nk_attach__host_ok())
		return -ENETDOWN;
	/*
	 * A socket of an nkd that restarted (reattach.c): no such handle.
	 * SOCKET, NOP and CANCEL name no socket, so their handle is 0 too.
	 */
	if (sqe->handle == NK_HANDLE_LOST && sqe->opcode != NK_OP_SOCKET &&
	    sqe->opcode != NK_OP_NOP && sqe->opcode != NK_OP_CANCEL)
		return -ECONNRESET;
	pthread_mutex_lock(&C.sq.sq_lock);
	for (;;) {
		if (nk_sq__reserve(&C.at.ring, 1, &idx))
			break;
		/* Full: nkd is behind, or waits for CQ room we must free. */
		pthread_mutex_unlock(&C.sq.sq_lock);
		ring_bell();
		nk_ring__poll();
		usleep(50);
		if (atomic_load(&C.at.state) != NK_ST_UP ||
		    !nk_attach__host_ok())
			return -ENETDOWN;
		pthread_mutex_lock(&C.sq.sq_lock);
	}
	if (nk_cfg.debug >= 2)
		nk_log("sqe op %u handle %u flags %#x ud %#llx len %u",
		       sqe->opcode, sqe->handle, sqe->flags,
		       (unsigned long long)sqe->user_data, sqe->io.buf_len);
	*nk_sq__entry(&C.at.ring, idx) = *sqe;
	if (sqe->user_data && !(sqe->user_data & UD_TAG_MASK))
		((struct nk_call *)(uintptr_t)sqe->user_data)->conn_gen =
			atomic_load(&C.at.conn_gen);
	if ((sqe->opcode == NK_OP_SEND || sqe->opcode == NK_OP_SHUTDOWN ||
	     sqe->opcode == NK_OP_CLOSE) &&
	    !(s && atomic_load_explicit(&s->peer_remote, memory_order_relaxed)))
		atomic_store_explicit(&C.sq.barrier_dirty, 1,
				      memory_order_relaxed);
	/* Publishes the entry, then reads NEED_WAKEUP after a fence. */
	bell = nk_sq__submit(&C.at.ring);
	*seq = nk_sq__tail(&C.at.ring);
	atomic_store_explicit(&C.sq.last_submit_ns, nk_now_ns(),
			      memory_order_relaxed);
	if (bell && plug_depth)
		plug_bell = true;
	else if (bell)
		ring_bell();
	pthread_mutex_unlock(&C.sq.sq_lock);
	return 0;
}

int nk_ring__submit(struct nk_sqe *sqe)
{
	uint32_t seq;

	return submit_seq(sqe, &seq, NULL);
}

void nk_submit__ignored(uint8_t opcode, uint32_t handle, uint64_t arg64)
{
	struct nk_sqe sqe = { .opcode = opcode,
			      .handle = handle,
			      .user_data = UD_IGNORE };

	sqe.ctl.arg64 = arg64;
	nk_ring__submit(&sqe);
}

static bool op_waits(const struct nk_sqe *sqe)
{
	if (sqe->flags & NK_SQE_F_NONBLOCK)
		return false;
	return sqe->opcode == NK_OP_RECV || sqe->opcode == NK_OP_ACCEPT ||
	       sqe->opcode == NK_OP_CONNECT || sqe->opcode == NK_OP_SEND;
}

int nk_ring__call(struct nk_sqe *sqe, struct nk_call *op, bool intr)
{
	struct nk_sqe cancel = { .opcode = NK_OP_CANCEL,
				 .user_data = UD_IGNORE };
	struct nk_sigsnap snap;
	int err;

	/* A handler that runs while we submit interrupts the call too. */
	nk_sig__snap(&snap);
	atomic_store(&op->done, 0);
	sqe->user_data = (uint64_t)(uintptr_t)op;
	err = nk_ring__submit(sqe);
	if (err)
		return err;
	err = nk_waiter__wait(op, 0, 0, intr,
			      op_waits(sqe) ? NK_SPIN_NS : NK_SPIN_QUICK_NS,
			      &snap);
	if (err != -EINTR)
		return err;
	/* Interrupted: cancel, but the op's own CQE decides the result. */
	cancel.ctl.arg64 = (uint64_t)(uintptr_t)op;
	if (nk_ring__submit(&cancel) == 0)
		err = nk_waiter__wait(op, 0, 0, false, NK_SPIN_QUICK_NS, NULL);
	else
		err = nk_waiter__wait(op, 0, 0, false, NK_SPIN_NS, NULL);
	if (err)
		return err;
	return op->cqe.res == -ECANCELED ? -EINTR : 0;
}

int nk_ring__prefetch(struct nk_sock *s, struct nk_sqe *sqe, int idx)
{
	int err;

	nk_sock__get(s);
	C.bp.meta[idx].sock = s;
	C.bp.meta[idx].bytes = 0;
	sqe->user_data = ((uint64_t)idx << 3) | UD_PREFETCH;
	err = nk_ring__submit(sqe);
	if (err) {
		C.bp.meta[idx].sock = NULL;
		nk_sock__put(s);
	}
	return err;
}

int nk_ring__prefetch_cancel(int idx)
{
	struct nk_sqe sqe = { .opcode = NK_OP_CANCEL, .user_data = UD_IGNORE };

	sqe.ctl.arg64 = ((uint64_t)idx << 3) | UD_PREFETCH;
	return nk_ring__submit(&sqe);
}

int nk_ring__send_async(struct nk_sock *s, struct nk_sqe *sqe, int idx,
			uint32_t bytes)
{
	uint32_t seq;
	int err;

	uint32_t charge = nk_conn__send_charge(bytes);

	nk_sock__get(s);
	C.bp.meta[idx].sock = s;
	C.bp.meta[idx].bytes = bytes;
	C.bp.meta[idx].charge = charge;
	atomic_fetch_add(&s->inflight, bytes);
	atomic_fetch_add(&s->charged, charge);
	atomic_fetch_add(&C.bp.inflight, bytes);
	sqe->user_data = ((uint64_t)idx << 3) | UD_SEND;
	err = submit_seq(sqe, &seq, s);
	if (!err)
		atomic_store(&s->send_seq, seq);
	if (err) {
		C.bp.meta[idx].sock = NULL;
		atomic_fetch_sub(&s->inflight, bytes);
		atomic_fetch_sub(&s->charged, charge);
		atomic_fetch_sub(&C.bp.inflight, bytes);
		nk_bufpool__free_send(idx);
		nk_sock__put(s);
	}
	return err;
}

bool nk_ring__sends_untaken(struct nk_sock *s)
{
	/*
	 * nkd moves the SQ head past a SEND only once it has counted it and
	 * made the placeholder unwritable if that filled the window (abi.md
	 * §3, §5): until then the guest may count more than nkd does.
	 */
	return atomic_load(&C.at.state) == NK_ST_UP &&
	       (int32_t)(nk_sq__head(&C.at.ring) - atomic_load(&s->send_seq)) <
		       0;
}

int nk_ring__wait_taken(struct nk_sock *s, int64_t timeout_ns)
{
	int64_t deadline = nk_now_ns() + timeout_ns;

	/*
	 * Sleeps (futex on the completion generation, woken by any CQE, at
	 * most NK_TAKEN_SLICE_NS at a time): nkd takes SQEs on its own, but
	 * posts nothing when it does. Only a sender a whole window ahead of
	 * nkd comes here.
	 */
	while (nk_ring__sends_untaken(s)) {
		uint32_t g = nk_ring__gen();
		int64_t now = nk_now_ns(), until;
		int err;

		if (now >= deadline)
			return -EAGAIN;
		if (!nk_ring__sends_untaken(s))
			break;
		until = now + NK_TAKEN_SLICE_NS < deadline
				? now + NK_TAKEN_SLICE_NS
				: deadline;
		err = nk_waiter__wait(NULL, g, until, false, 0, NULL);
		if (err && err != -ETIMEDOUT)
			return err;
	}
	return 0;
}

/*
 * VM mode: the placeholders are the agent's, a channel frame behind nkd's.
 * nkd counts the placeholder operations it sent in the region header
 * (vm_ph_sent, stored before any later CQE and before the SQ head passes
 * an SQE that caused one) and the agent the ones it applied
 * (vm_ph_applied): once they meet, the placeholders show all that the
 * CQEs seen so far imply. A PH_BIND takes the control path through the
 * agent, slower than the ring: an SQE on the new socket (a CONNECT) may
 * run before it, and its readiness only reaches the placeholder when the
 * BIND does, so first wait until nkd ran all of ours (vm_ph_bound).
 * Every multiplexer calls this before it looks, whatever its timeout.
 * Its own bound: the agent is another process to be scheduled.
 */
static bool vm_wait_for(const uint32_t *word, uint32_t want, int64_t *t0)
{
	while ((int)(__atomic_load_n(word, __ATOMIC_ACQUIRE) - want) < 0) {
		int64_t now = nk_now_ns();

		if (!*t0)
			*t0 = now;
		if (now - *t0 >= NK_VM_BARRIER_NS)
			return false;
		/* Yield a little, then sleep: a busy machine runs the agent. */
		if (now - *t0 < 1000000)
			sched_yield();
		else
			usleep(200);
	}
	return true;
}

static void vm_sync(void)
{
	int64_t t0 = 0; /* the clock only once we wait */
	uint32_t want;

	if (!C.at.vm_wait || !C.at.hdr)
		return;
	if (!vm_wait_for(&C.at.hdr->vm_ph_bound, atomic_load(&C.sq.vm_binds),
			 &t0))
		return;
	want = __atomic_load_n(&C.at.hdr->vm_ph_sent, __ATOMIC_ACQUIRE);
	if ((int)(atomic_load(&C.sq.barrier_ph) - want) > 0)
		want = atomic_load(&C.sq.barrier_ph);
	vm_wait_for(&C.at.hdr->vm_ph_applied, want, &t0);
}

void nk_ring__vm_sync(void)
{
	vm_sync();
}

void nk_ring__barrier(void)
{
	struct nk_sqe sqe = { .opcode = NK_OP_NOP };
	int64_t deadline;
	unsigned seq;

	/*
	 * On a kernel socket a loopback send is synchronous: the peer is
	 * readable when send() returns. Here the SEND runs in nkd later, so
	 * before a multiplexer looks, nkd answers a NOP once everything this
	 * process published before it has run and its readiness is on the
	 * placeholders. Bounded: a slow nkd costs a late edge, never a hang.
	 */
	if (atomic_load(&C.at.state) != NK_ST_UP)
		return;
	if (!atomic_exchange(&C.sq.barrier_dirty, 0)) {
		vm_sync();
		return;
	}
	seq = atomic_fetch_add(&C.sq.barrier_seq, 1) + 1;
	sqe.user_data = ((uint64_t)seq << 3) | UD_BARRIER;
	if (nk_ring__submit(&sqe))
		return;
	deadline = nk_now_ns() + NK_BARRIER_NS;
	for (;;) {
		uint32_t g = nk_ring__gen();

		nk_ring__poll();
		if ((int)(atomic_load(&C.sq.barrier_done) - seq) >= 0)
			break;
		if (nk_ring__wait_progress(g, deadline, false))
			break;
	}
	vm_sync();
}

void nk_ring__close_sock(struct nk_sock *s)
{
	if (nk_conn__ensure())
		return;
	atomic_store(&s->closing, 1);
	/*
	 * CLOSE goes now, even with SENDs in flight: nkd runs a connection's
	 * SQEs in order and lets a socket's queued SENDs finish before it
	 * closes the kernel socket, so the data still goes out, then the
	 * FIN. Waiting for the SEND completions instead would need a later
	 * socket call to reap them, which an idle process never makes. The
	 * SEND buffers stay host-owned: C.bp.meta[] holds them (and a reference
	 * on s) until their CQEs, whoever reaps those.
	 */
	if (!atomic_exchange(&s->close_sent, 1)) {
		struct nk_sqe sqe = { .opcode = NK_OP_CLOSE,
				      .handle = s->handle,
				      .user_data = UD_IGNORE };
		uint32_t seq;

		submit_seq(&sqe, &seq, s);
	}
}

void nk_ring__drain(int64_t timeout_ns)
{
	int64_t deadline = nk_now_ns() + timeout_ns;

	while (atomic_load(&C.at.state) == NK_ST_UP &&
	       atomic_load(&C.bp.inflight) > 0) {
		uint32_t g = nk_ring__gen();

		if (atomic_load(&C.bp.inflight) <= 0)
			break;
		if (nk_ring__wait_progress(g, deadline, false))
			break;
	}
	nk_ring__poll();
}

/*
 * _exit() may run in a signal handler or with our locks held by the
 * interrupted code: never block on a lock here, only try, and poll.
 */
void nk_ring__drain_nolock(int64_t timeout_ns)
{
	int64_t deadline;

	if (atomic_load(&C.at.state) != NK_ST_UP ||
	    atomic_load(&C.bp.inflight) <= 0)
		return;
	deadline = nk_now_ns() + timeout_ns;
	while (atomic_load(&C.bp.inflight) > 0 && nk_now_ns() < deadline &&
	       atomic_load(&C.at.state) == NK_ST_UP && nk_attach__host_ok()) {
		if (pthread_mutex_trylock(&C.w.cq_lock) == 0) {
			/* CLOSEs queued here are moot: we are leaving. */
			nk_waiter__reap_locked();
			pthread_mutex_unlock(&C.w.cq_lock);
		}
		usleep(500);
	}
}
