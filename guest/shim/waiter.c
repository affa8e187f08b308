// SPDX-License-Identifier: MIT
/*
 * The waiter (struct nk_waiter, conn.h): reaping the CQ, dispatching
 * completions, and sleeping until one comes (docs/abi.md sections 3-4).
 *
 * One waiter at a time is the *reaper*: it spins briefly on the CQ tail,
 * then sets NEED_WAKEUP and sleeps in FUTEX_WAIT on the CQ tail (VM mode:
 * on the doorbell stream); nkd wakes it. The others are *followers*
 * sleeping on a process-private futex (gen) that the reaper bumps whenever
 * it dispatched completions or gave up the reaper role, so a completion
 * reaped by one thread for another is never a lost wakeup. A wait without
 * a deadline sleeps untimed; the watchdog thread wakes the sleepers every
 * 200 ms while anyone waits, so a dead nkd is noticed even if it never
 * wakes us.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "netkernel/ring.h"
#include "shim.h"
#include "signals.h"

/* ------------------------------------------------------------------------ */
/* Completions. */

static void dispatch(const struct nk_cqe *cqe)
{
	uint64_t ud = cqe->user_data;

	if (nk_cfg.debug >= 2)
		nk_log("cqe ud %#llx res %d flags %#x handle %u",
		       (unsigned long long)ud, cqe->res, cqe->flags,
		       cqe->handle);

	switch (ud & UD_TAG_MASK) {
	case 0: {
		struct nk_call *op = (struct nk_call *)(uintptr_t)ud;

		if (!op)
			return;
		op->cqe = *cqe;
		atomic_store_explicit(&op->done, 1, memory_order_release);
		return;
	}
	case UD_SEND: {
		uint64_t idx = ud >> 3;
		struct nk_sock *s;
		uint32_t bytes;

		if (idx >= C.bp.nr_bufs || !(s = C.bp.meta[idx].sock))
			return;
		bytes = C.bp.meta[idx].bytes;
		C.bp.meta[idx].sock = NULL;
		nk_bufpool__free_send((int)idx);
		if (cqe->res < 0)
			nk_sock__send_failed(s, -cqe->res);
		else
			atomic_store(&s->tx_ok, 1);
		atomic_fetch_sub(&C.bp.inflight, bytes);
		atomic_fetch_sub(&s->inflight, bytes);
		atomic_fetch_sub(&s->charged, C.bp.meta[idx].charge);
		nk_sock__put(s);
		return;
	}
	case UD_PREFETCH: {
		uint64_t idx = ud >> 3;
		struct nk_sock *s;
		int done = NK_PF_DONE;

		if (idx >= C.bp.nr_bufs || !(s = C.bp.meta[idx].sock))
			return;
		if (cqe->flags & NK_CQE_F_MORE) {
			int inflight = NK_PF_INFLIGHT;

			/* Kept at nkd: the placeholder peek is exact again. */
			atomic_compare_exchange_strong(&s->pf_state, &inflight,
						       NK_PF_PARKED);
			return;
		}
		C.bp.meta[idx].sock = NULL;
		s->pf_res = cqe->res;
		s->pf_end = cqe->aux; /* a batch's bytes (rxbatch.c) */
		nk_sock__note_full(s, cqe->res, cqe->aux);
		atomic_store(&s->pf_state, NK_PF_DONE);
		/* Closed meanwhile: nobody will read it (see shim.h). */
		if (atomic_load(&s->closing) &&
		    atomic_compare_exchange_strong(&s->pf_state, &done,
						   NK_PF_NONE))
			nk_buf__free((int)idx);
		nk_sock__put(s);
		return;
	}
	case UD_BARRIER: {
		unsigned seq = (unsigned)(ud >> 3), done;

		if (C.at.vm_wait)
			atomic_store(&C.sq.barrier_ph, cqe->aux);
		done = atomic_load(&C.sq.barrier_done);
		while ((int)(seq - done) > 0 &&
		       !atomic_compare_exchange_weak(&C.sq.barrier_done, &done,
						     seq))
			;
		return;
	}
	default:
		return;
	}
}

/* Called with cq_lock held. */
bool nk_waiter__reap_locked(void)
{
	uint32_t idx;
	int n = nk_cq__peek(&C.at.ring, C.at.ring.cq_n, &idx);

	if (n < 0) {
		nk_attach__mark_dead("completion ring corrupt");
		return false;
	}
	for (int k = 0; k < n; k++) {
		struct nk_cqe cqe =
			*nk_cq__entry(&C.at.ring, idx + (uint32_t)k);

		/* The slot is copied out: nkd may reuse it. */
		nk_cq__release(&C.at.ring, 1);
		dispatch(&cqe);
	}
	if (n > 0) {
		__atomic_add_fetch(&C.w.gen, 1, __ATOMIC_SEQ_CST);
		if (C.w.nfollowers)
			syscall(SYS_futex, &C.w.gen, FUTEX_WAKE_PRIVATE,
				INT_MAX, NULL, NULL, 0);
	}
	return n > 0;
}

void nk_ring__poll(void)
{
	if (atomic_load(&C.at.state) != NK_ST_UP)
		return;
	pthread_mutex_lock(&C.w.cq_lock);
	nk_waiter__reap_locked();
	pthread_mutex_unlock(&C.w.cq_lock);
}

uint32_t nk_ring__gen(void)
{
	return __atomic_load_n(&C.w.gen, __ATOMIC_SEQ_CST);
}

/* ns == 0: no timeout. Returns -EINTR when a handler interrupted it. */
static int futex_wait(uint32_t *addr, int op, uint32_t val, int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000LL,
			       .tv_nsec = ns % 1000000000LL };

	nk_submit__plug_flush(); /* what we wait for may need nkd awake */
	if (syscall(SYS_futex, addr, op, val, ns ? &ts : NULL, NULL, 0) < 0)
		return errno == EINTR ? -EINTR : 0;
	return 0;
}

void nk_waiter__wake_all(void)
{
	if (C.at.ring.cqi)
		syscall(SYS_futex, &C.at.ring.cqi->tail, FUTEX_WAKE, INT_MAX,
			NULL, NULL, 0);
	__atomic_add_fetch(&C.w.gen, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &C.w.gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL,
		0);
}

/*
 * Waits without a deadline sleep in an untimed FUTEX_WAIT, so the kernel
 * itself restarts them under SA_RESTART and reports EINTR otherwise (a
 * timed wait would report EINTR always, and a timeout racing a signal
 * would hide it). Their periodic wake-up to notice a dead nkd comes from
 * this thread, which ticks every 200 ms only while someone is waiting and
 * blocks every signal so it never takes one meant for the application.
 */
static void *watchdog(void *arg)
{
	const struct timespec tick = { .tv_nsec = NK_SLICE_NS };
	sigset_t all;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	/* Kept through a reattach (reattach.c): it needs us afterwards. */
	while (atomic_load(&C.at.state) == NK_ST_UP || nk_rst__pending()) {
		/*
		 * Parked only while nobody waits; a waiter wakes us only if
		 * we are parked (seq_cst on both sides: one of the two sees
		 * the other), so a wait costs no futex call while we tick.
		 * We park only after a whole tick in which no wait began: a
		 * process making socket calls all the time (a server under
		 * load) would otherwise wake us, at a futex call and two
		 * context switches, on nearly every call that waits.
		 */
		atomic_store(&C.w.wd_parked, 1);
		if (!atomic_load(&C.w.nwaiters) &&
		    !atomic_exchange(&C.w.wd_seen, 0)) {
			futex_wait((uint32_t *)&C.w.nwaiters,
				   FUTEX_WAIT_PRIVATE, 0, 0);
			atomic_store(&C.w.wd_parked, 0);
			continue;
		}
		atomic_store(&C.w.wd_parked, 0);
		nanosleep(&tick, NULL);
		nk_attach__check_alive();
		if (atomic_load(&C.w.nwaiters))
			nk_waiter__wake_all();
	}
	nk_waiter__wake_all();
	C.w.wd_running = false; /* a later attach starts another */
	return NULL;
}

int nk_thread__start_quiet(void *(*fn)(void *), size_t stack)
{
	pthread_attr_t a;
	pthread_t t;
	sigset_t all, old;
	int err;

	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, stack);
	/* Born with every signal blocked: no window to take one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&t, &a, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	return -err;
}

void nk_waiter__watchdog_start(void)
{
	if (C.w.wd_running)
		return;
	if (nk_thread__start_quiet(watchdog, 64 * 1024) == 0)
		C.w.wd_running = true;
	else
		nk_log("cannot start the liveness thread; a dead nkd may go "
		       "unnoticed by blocked calls");
}

static void waiter_enter(void)
{
	if (!atomic_load_explicit(&C.w.wd_seen, memory_order_relaxed))
		atomic_store(&C.w.wd_seen, 1);
	if (atomic_fetch_add(&C.w.nwaiters, 1) == 0 &&
	    atomic_load(&C.w.wd_parked))
		syscall(SYS_futex, &C.w.nwaiters, FUTEX_WAKE_PRIVATE, 1, NULL,
			NULL, 0);
}

static void waiter_leave(void)
{
	atomic_fetch_sub(&C.w.nwaiters, 1);
}

/*
 * A timed FUTEX_WAIT interrupted by a handler returns EINTR even under
 * SA_RESTART (the kernel restarts only untimed waits), so decide the way
 * the kernel would for a socket call: restart unless some installed
 * handler lacks SA_RESTART. We cannot tell which signal it was; erring
 * towards EINTR is what careful applications handle anyway.
 */
static bool signals_restart(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sigaction(sig, NULL, &sa))
			continue;
		if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)
			continue;
		if (!(sa.sa_flags & SA_RESTART))
			return false;
	}
	return true;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static bool op_done(struct nk_call *op, uint32_t since)
{
	if (op)
		return atomic_load_explicit(&op->done, memory_order_acquire);
	return nk_ring__gen() != since;
}

/*
 * Signals and sleeping. A handler that runs while we are between sleeps
 * (spinning, reaping) would be missed: the kernel only ever runs it on the
 * way out of the syscall that then returns EINTR. So once a wait is about
 * to sleep, signals are blocked for the rest of it and let in only across
 * the futex call; a signal already pending counts as an interruption
 * without sleeping. What is left is the few instructions between the
 * unmask and the futex entry.
 */
struct sigwin {
	bool masked;
	bool exact; /* FUTEX_WAITV with the handler counter: no mask needed */
	struct nk_sigsnap snap;
	sigset_t old;
};

static void sigwin_block(struct sigwin *w)
{
	sigset_t all;

	if (w->masked)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &w->old);
	w->masked = true;
}

/* Let pending signals run their handlers now. */
static void sigwin_deliver(struct sigwin *w)
{
	sigset_t all;

	if (!w->masked)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &w->old, NULL);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
}

static void sigwin_end(struct sigwin *w)
{
	if (w->masked)
		pthread_sigmask(SIG_SETMASK, &w->old, NULL);
	w->masked = false;
}

static int sleep_futex(struct sigwin *w, uint32_t *addr, int op, uint32_t val,
		       int64_t ns)
{
	sigset_t pend, all;
	int err;

	if (w && w->exact) {
		nk_submit__plug_flush(); /* what we wait for may need nkd awake */
		return nk_sig__futex_wait(addr, op == FUTEX_WAIT_PRIVATE, val,
					  &w->snap, ns);
	}
	if (!w || !w->masked)
		return futex_wait(addr, op, val, ns);
	if (sigpending(&pend) == 0) {
		for (int sig = 1; sig < NSIG; sig++)
			if (sigismember(&pend, sig) == 1 &&
			    sigismember(&w->old, sig) != 1)
				return NK_EPENDING; /* caller delivers it */
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &w->old, NULL);
	err = futex_wait(addr, op, val, ns);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	return err;
}

/*
 * VM mode: no futex crosses the VM boundary (and FUTEX_WAIT on a PCI BAR
 * mapping fails), so nk-vmagent writes a byte on the bell stream when nkd
 * says the CQ moved. A byte written before we sleep stays queued: no
 * lost wake-up. Local wake-ups (wake_waiters) reach the futex only, so
 * the sleep is cut into slices of at most 100 ms.
 */
static int sleep_bell(struct sigwin *w, int64_t ns)
{
	struct pollfd p = { .fd = C.at.bell_fd, .events = POLLIN };
	int ms = ns > 0 && ns < 100000000 ? (int)(ns / 1000000) + 1 : 100;
	sigset_t pend, all;
	char buf[64];
	int r;

	nk_submit__plug_flush(); /* what we wait for may need nkd awake */
	if (w && w->masked && sigpending(&pend) == 0) {
		for (int sig = 1; sig < NSIG; sig++)
			if (sigismember(&pend, sig) == 1 &&
			    sigismember(&w->old, sig) != 1)
				return NK_EPENDING;
	}
	if (w && w->masked)
		pthread_sigmask(SIG_SETMASK, &w->old, NULL);
	r = REAL(poll)(&p, 1, ms);
	if (w && w->masked) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, NULL);
	}
	/*
	 * An untimed FUTEX_WAIT is restarted by the kernel under SA_RESTART;
	 * poll() never is, so decide as the kernel would for the socket call.
	 */
	if (r < 0 && errno == EINTR)
		return !ns && signals_restart() ? 0 : -EINTR;
	if (r > 0)
		while (REAL(recv)(C.at.bell_fd, buf, sizeof(buf),
				  MSG_DONTWAIT) == (ssize_t)sizeof(buf))
			;
	return 0;
}

/*
 * The reaper's sleep: spin, then NEED_WAKEUP + FUTEX_WAIT on the CQ tail.
 * The spin is the caller's, cut to what spinning has recently paid off
 * (C.w.wait_spin); with few CPUs it yields, so an nkd or a peer waiting for
 * this core runs instead of the spin.
 */
static int reaper_sleep(struct sigwin *w, int64_t slice, int64_t spin)
{
	struct nk_ring_idx *cqi = C.at.ring.cqi;
	uint32_t head = C.at.ring.cq_head, tail;
	int64_t t0 = nk_now_ns(), budget = nk_spin__budget(&C.w.wait_spin);
	bool few = nk_spin__few_cpus();
	int err;

	if (spin > budget)
		spin = budget;
	do {
		if (nk_ring_load_acquire(&cqi->tail) != head) {
			nk_spin__hit(&C.w.wait_spin);
			return 0;
		}
		if (few)
			sched_yield();
		else
			cpu_relax();
	} while (nk_now_ns() - t0 < spin);
	if (!(C.at.features & NK_FEAT_FUTEX_WAKE)) {
		/* Host never wakes us: poll with a short sleep. */
		usleep(200);
		return 0;
	}
	__atomic_fetch_or(&cqi->flags, NK_RING_NEED_WAKEUP, __ATOMIC_RELAXED);
	/* Flag before the re-check, or nkd's post slips between (ring.h). */
	nk_ring_fence();
	tail = nk_ring_load_acquire(&cqi->tail);
	err = 0;
	if (tail == head) {
		t0 = nk_now_ns();
		err = C.at.vm_wait ? sleep_bell(w, slice)
				   : sleep_futex(w, &cqi->tail, FUTEX_WAIT,
						 tail, slice);
		nk_spin__slept(&C.w.wait_spin, nk_now_ns() - t0,
			       nk_ring_load_acquire(&cqi->tail) != head);
	}
	__atomic_fetch_and(&cqi->flags, ~NK_RING_NEED_WAKEUP, __ATOMIC_RELAXED);
	return err;
}

int nk_waiter__wait(struct nk_call *op, uint32_t since, int64_t deadline,
		    bool intr, int64_t spin, const struct nk_sigsnap *from)
{
	struct sigwin w = { .masked = false };
	int ret = 0;

	/*
	 * signals.c: every handler that runs from the start of the call
	 * (from) or of this wait is counted.
	 */
	if (from)
		w.snap = *from;
	else
		nk_sig__snap(&w.snap);
	w.exact = intr && !C.at.vm_wait && nk_sig__exact();
	for (;;) {
		int64_t now, slice = 0; /* untimed unless a deadline */
		int err;

		pthread_mutex_lock(&C.w.cq_lock);
		if (atomic_load(&C.at.state) != NK_ST_UP) {
			pthread_mutex_unlock(&C.w.cq_lock);
			ret = -ECONNRESET;
			break;
		}
		nk_waiter__reap_locked();
		if (op_done(op, since)) {
			pthread_mutex_unlock(&C.w.cq_lock);
			break;
		}
		/*
		 * nkd went away with the op in flight and the monitor has
		 * already attached again (reattach.c) before this thread ran:
		 * the state is UP, but the new nkd never saw the op.
		 */
		if (op && op->conn_gen != atomic_load(&C.at.conn_gen)) {
			pthread_mutex_unlock(&C.w.cq_lock);
			ret = -ECONNRESET;
			break;
		}
		now = nk_now_ns();
		if (deadline) {
			if (now >= deadline) {
				pthread_mutex_unlock(&C.w.cq_lock);
				ret = -ETIMEDOUT;
				break;
			}
			slice = deadline - now;
		}
		if (intr && !w.exact)
			sigwin_block(&w);
		if (C.w.reaper_busy) {
			uint32_t g =
				__atomic_load_n(&C.w.gen, __ATOMIC_SEQ_CST);

			C.w.nfollowers++;
			pthread_mutex_unlock(&C.w.cq_lock);
			waiter_enter();
			err = sleep_futex(&w, &C.w.gen, FUTEX_WAIT_PRIVATE, g,
					  slice);
			waiter_leave();
			pthread_mutex_lock(&C.w.cq_lock);
			C.w.nfollowers--;
			pthread_mutex_unlock(&C.w.cq_lock);
		} else {
			C.w.reaper_busy = true;
			pthread_mutex_unlock(&C.w.cq_lock);
			waiter_enter();
			err = reaper_sleep(&w, slice, spin);
			waiter_leave();
			pthread_mutex_lock(&C.w.cq_lock);
			C.w.reaper_busy = false;
			if (C.w.nfollowers) {
				/* Let a follower take the reaper role. */
				__atomic_add_fetch(&C.w.gen, 1,
						   __ATOMIC_SEQ_CST);
				syscall(SYS_futex, &C.w.gen, FUTEX_WAKE_PRIVATE,
					INT_MAX, NULL, NULL, 0);
			}
			pthread_mutex_unlock(&C.w.cq_lock);
		}
		now = nk_now_ns();
		if (now - __atomic_load_n(&C.w.last_check, __ATOMIC_RELAXED) >=
		    NK_SLICE_NS) {
			__atomic_store_n(&C.w.last_check, now,
					 __ATOMIC_RELAXED);
			nk_attach__check_alive();
		}
		if (intr && err != NK_EPENDING) {
			/*
			 * A handler ran while we waited (anywhere: spinning,
			 * reaping, around or inside the sleep): EINTR as the
			 * kernel would give, unless all were SA_RESTART and the
			 * wait has no timeout (then the wait goes on).
			 */
			int s = nk_sig__check(&w.snap);

			if (s == NK_SIG_INTR || (s && deadline)) {
				ret = -EINTR;
				break;
			}
			if (s)
				nk_sig__snap(&w.snap);
		}
		if (err == NK_EPENDING) {
			/*
			 * Caught before sleeping: run the handlers, then decide
			 * as the kernel would have (see signals_restart()).
			 */
			sigwin_deliver(&w);
			if (intr && (deadline || !signals_restart())) {
				ret = -EINTR;
				break;
			}
		} else if (err == -EINTR && intr) {
			/*
			 * The kernel already said EINTR: an untimed wait is
			 * restarted under SA_RESTART, a timed one (socket
			 * timeout) never is, as for a real socket call.
			 */
			ret = -EINTR;
			break;
		}
	}
	sigwin_end(&w);
	return ret;
}

int nk_ring__wait_progress(uint32_t since, int64_t deadline_ns, bool intr)
{
	return nk_waiter__wait(NULL, since, deadline_ns, intr, NK_SPIN_NS,
			       NULL);
}

/*
 * Does the op wait on the network (a blocking recv, accept, connect)?
 * Those spin briefly before sleeping; anything nkd answers at once spins
 * longer, because sleeping would only add a wake-up to its latency.
 */
