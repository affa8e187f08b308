// SPDX-License-Identifier: MIT
/*
 * Signals and blocking waits (docs/shim.md "Signals").
 *
 * A blocking socket call waits in the shim, not in the kernel's socket
 * code, so the kernel's rule (a handler without SA_RESTART that runs while
 * the call sleeps makes it return EINTR) has to be kept here. The kernel
 * tells us only about a handler that ran *inside* our sleeping syscall; a
 * handler that runs anywhere else in the wait (spinning, reaping, the
 * instructions around the futex call, or on the way back from a futex
 * call that a wake-up had already ended) was invisible, and the wait went
 * back to sleep: a lost EINTR.
 *
 * So every handler the program installs runs through a trampoline that
 * counts, per thread, the handlers that ran (nk_sig_seq) and those without
 * SA_RESTART (nk_sig_intr). A wait takes a snapshot when it begins, looks
 * at the counters after every wake-up, and sleeps with FUTEX_WAITV on two
 * words: the one it waits for and its own nk_sig_seq with the snapshot's
 * value. A handler that runs after the last look and before the sleep has
 * changed that word, and the kernel refuses to sleep (EAGAIN): no window.
 *
 * sigaction() and friends report the program's own handler and flags,
 * never the trampoline.
 */
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "signals.h"

#define NK_EXPORT __attribute__((visibility("default")))
#define NK_TLS __thread __attribute__((tls_model("initial-exec")))

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

NK_TLS uint32_t nk_sig_seq;
NK_TLS uint32_t nk_sig_intr;

/*
 * The program's disposition of each signal whose kernel handler is the
 * trampoline. A seqlock: written under wlock with every signal blocked,
 * read by the trampoline on any thread.
 */
struct sigrec {
	atomic_uint seq;
	void *handler;
	int flags; /* the program's sa_flags */
};

static struct sigrec recs[NSIG];
static atomic_flag wlock = ATOMIC_FLAG_INIT;
static sigset_t sigintr; /* siginterrupt(): signal() without SA_RESTART */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static atomic_int waitv_ok; /* 0 unknown, 1 yes, -1 no */

static int rsigaction(int sig, const struct sigaction *a, struct sigaction *o)
{
	if (!real_sigaction)
		__atomic_store_n((void **)&real_sigaction,
				 dlsym(RTLD_NEXT, "sigaction"),
				 __ATOMIC_RELAXED);
	if (!real_sigaction) {
		errno = ENOSYS;
		return -1;
	}
	return real_sigaction(sig, a, o);
}

static void rec_read(int sig, void **h, int *flags)
{
	struct sigrec *r = &recs[sig];
	unsigned int s;

	for (;;) {
		s = atomic_load_explicit(&r->seq, memory_order_acquire);
		if (s & 1)
			continue; /* a writer on another thread (signals off) */
		*h = __atomic_load_n(&r->handler, __ATOMIC_RELAXED);
		*flags = __atomic_load_n(&r->flags, __ATOMIC_RELAXED);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&r->seq, memory_order_relaxed) == s)
			return;
	}
}

static void rec_write(int sig, void *h, int flags)
{
	struct sigrec *r = &recs[sig];

	atomic_fetch_add_explicit(&r->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	__atomic_store_n(&r->handler, h, __ATOMIC_RELAXED);
	__atomic_store_n(&r->flags, flags, __ATOMIC_RELAXED);
	atomic_fetch_add_explicit(&r->seq, 1, memory_order_release);
}

static void trampoline(int sig, siginfo_t *si, void *uc)
{
	void *h;
	int flags;

	rec_read(sig, &h, &flags);
	/* Counted first: the handler may leave with siglongjmp. */
	__atomic_store_n(&nk_sig_seq, nk_sig_seq + 1, __ATOMIC_RELAXED);
	if (!(flags & SA_RESTART))
		__atomic_store_n(&nk_sig_intr, nk_sig_intr + 1,
				 __ATOMIC_RELAXED);
	atomic_signal_fence(memory_order_seq_cst);
	if (h == (void *)SIG_IGN)
		return;
	if (h == (void *)SIG_DFL) {
		/* Changed under our feet: the default action, once. */
		struct sigaction d = { .sa_handler = SIG_DFL };

		rsigaction(sig, &d, NULL);
		raise(sig);
		return;
	}
	if (flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))h)(sig, si, uc);
	else
		((void (*)(int))h)(sig);
}

static bool is_func(void *h)
{
	return h != (void *)SIG_DFL && h != (void *)SIG_IGN &&
	       h != (void *)SIG_ERR && h != (void *)SIG_HOLD;
}

/* What the kernel reports (ko) as the program would see it. */
static void report(struct sigaction *ko, void *h, int flags)
{
	if (ko->sa_sigaction == trampoline) {
		ko->sa_sigaction = (void (*)(int, siginfo_t *, void *))h;
		if (!(flags & SA_SIGINFO))
			ko->sa_flags &= ~SA_SIGINFO;
	} else if ((ko->sa_flags & SA_RESETHAND) &&
		   (ko->sa_flags & SA_SIGINFO) && ko->sa_handler == SIG_DFL &&
		   !(flags & SA_SIGINFO) && is_func(h)) {
		/* SA_RESETHAND fired: the kernel keeps our SA_SIGINFO. */
		ko->sa_flags &= ~SA_SIGINFO;
	}
}

static int do_sigaction(int sig, const struct sigaction *act,
			struct sigaction *oact)
{
	struct sigaction k, ko;
	sigset_t all, old;
	void *oh;
	int oflags, ret, e;

	if (sig < 1 || sig >= NSIG)
		return rsigaction(sig, act, oact);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (atomic_flag_test_and_set_explicit(&wlock, memory_order_acquire))
		;
	rec_read(sig, &oh, &oflags);
	if (act && is_func((void *)act->sa_handler) && sig != SIGKILL &&
	    sig != SIGSTOP) {
		k = *act;
		k.sa_sigaction = trampoline;
		k.sa_flags |= SA_SIGINFO;
		rec_write(sig, (void *)act->sa_handler, act->sa_flags);
		ret = rsigaction(sig, &k, &ko);
		if (ret)
			rec_write(sig, oh, oflags);
	} else {
		ret = rsigaction(sig, act, &ko);
	}
	e = errno;
	atomic_flag_clear_explicit(&wlock, memory_order_release);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret == 0 && oact) {
		report(&ko, oh, oflags);
		*oact = ko;
	}
	errno = e;
	return ret;
}

NK_EXPORT int sigaction(int sig, const struct sigaction *act,
			struct sigaction *oact)
{
	return do_sigaction(sig, act, oact);
}

NK_EXPORT int __sigaction(int sig, const struct sigaction *act,
			  struct sigaction *oact)
{
	return do_sigaction(sig, act, oact);
}

/* glibc's signal(): BSD semantics (SA_RESTART unless siginterrupt). */
NK_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	struct sigaction a, o;

	if (h == SIG_ERR || sig < 1 || sig >= NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&a, 0, sizeof(a));
	a.sa_handler = h;
	sigemptyset(&a.sa_mask);
	sigaddset(&a.sa_mask, sig);
	a.sa_flags = sigismember(&sigintr, sig) == 1 ? 0 : SA_RESTART;
	if (do_sigaction(sig, &a, &o) < 0)
		return SIG_ERR;
	return o.sa_handler;
}

NK_EXPORT sighandler_t bsd_signal(int sig, sighandler_t h)
{
	return signal(sig, h);
}

/* glibc's sysv_signal(): one-shot, not blocked in its handler. */
NK_EXPORT sighandler_t sysv_signal(int sig, sighandler_t h)
{
	struct sigaction a, o;

	if (h == SIG_ERR || sig < 1 || sig >= NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&a, 0, sizeof(a));
	a.sa_handler = h;
	sigemptyset(&a.sa_mask);
	a.sa_flags = SA_RESETHAND | SA_NODEFER;
	if (do_sigaction(sig, &a, &o) < 0)
		return SIG_ERR;
	return o.sa_handler;
}

NK_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t h)
{
	return sysv_signal(sig, h);
}

NK_EXPORT int siginterrupt(int sig, int flag)
{
	struct sigaction a;

	if (sig < 1 || sig >= NSIG) {
		errno = EINVAL;
		return -1;
	}
	if (do_sigaction(sig, NULL, &a) < 0)
		return -1;
	if (flag) {
		sigaddset(&sigintr, sig);
		a.sa_flags &= ~SA_RESTART;
	} else {
		sigdelset(&sigintr, sig);
		a.sa_flags |= SA_RESTART;
	}
	return do_sigaction(sig, &a, NULL);
}

/* glibc's sigset() (System V), SIG_HOLD included. */
NK_EXPORT sighandler_t sigset(int sig, sighandler_t h)
{
	struct sigaction a, o;
	sigset_t set, oset;

	if (h == SIG_ERR || sig < 1 || sig >= NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (h == SIG_HOLD) {
		if (pthread_sigmask(SIG_BLOCK, &set, &oset) ||
		    do_sigaction(sig, NULL, &o) < 0)
			return SIG_ERR;
		return sigismember(&oset, sig) == 1 ? SIG_HOLD : o.sa_handler;
	}
	memset(&a, 0, sizeof(a));
	a.sa_handler = h;
	sigemptyset(&a.sa_mask);
	if (do_sigaction(sig, &a, &o) < 0 ||
	    pthread_sigmask(SIG_UNBLOCK, &set, &oset))
		return SIG_ERR;
	return sigismember(&oset, sig) == 1 ? SIG_HOLD : o.sa_handler;
}

/*
 * Handlers installed before our constructor ran (other libraries'
 * constructors run first) go through the trampoline too.
 */
void nk_sig__init(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction a;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (rsigaction(sig, NULL, &a) || a.sa_sigaction == trampoline ||
		    !is_func((void *)a.sa_handler))
			continue;
		do_sigaction(sig, &a, NULL);
	}
}

void nk_sig__fork_child(void)
{
	/* Only the forking thread lives on; a writer elsewhere is gone. */
	atomic_flag_clear_explicit(&wlock, memory_order_relaxed);
	for (int sig = 1; sig < NSIG; sig++)
		if (atomic_load_explicit(&recs[sig].seq, memory_order_relaxed) &
		    1)
			atomic_fetch_add_explicit(&recs[sig].seq, 1,
						  memory_order_relaxed);
}

void nk_sig__snap(struct nk_sigsnap *s)
{
	s->seq = __atomic_load_n(&nk_sig_seq, __ATOMIC_RELAXED);
	s->intr = __atomic_load_n(&nk_sig_intr, __ATOMIC_RELAXED);
	atomic_signal_fence(memory_order_seq_cst);
}

int nk_sig__check(const struct nk_sigsnap *s)
{
	atomic_signal_fence(memory_order_seq_cst);
	if (__atomic_load_n(&nk_sig_seq, __ATOMIC_RELAXED) == s->seq)
		return 0;
	return __atomic_load_n(&nk_sig_intr, __ATOMIC_RELAXED) != s->intr
		       ? NK_SIG_INTR
		       : NK_SIG_RESTART;
}

bool nk_sig__exact(void)
{
	int ok = atomic_load_explicit(&waitv_ok, memory_order_relaxed);

	if (!ok) {
		/* No waiter: EINVAL if the call exists. */
		long r = syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0);
		const char *env = getenv("NK_SIG_WAITV");

		ok = r < 0 && errno == ENOSYS ? -1 : 1;
		if (env && !strcmp(env, "0"))
			ok = -1; /* the masked fallback, for comparison */
		atomic_store_explicit(&waitv_ok, ok, memory_order_relaxed);
	}
	return ok > 0;
}

int nk_sig__futex_wait(uint32_t *addr, bool priv, uint32_t val,
		       const struct nk_sigsnap *s, int64_t ns)
{
	struct futex_waitv w[2];
	struct timespec ts;
	long r;

	memset(w, 0, sizeof(w));
	w[0].uaddr = (uint64_t)(uintptr_t)addr;
	w[0].val = val;
	w[0].flags = FUTEX_32 | (priv ? FUTEX_PRIVATE_FLAG : 0);
	w[1].uaddr = (uint64_t)(uintptr_t)&nk_sig_seq;
	w[1].val = s->seq;
	w[1].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
	if (ns) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += ns / 1000000000LL;
		ts.tv_nsec += ns % 1000000000LL;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	r = syscall(SYS_futex_waitv, w, 2, 0, ns ? &ts : NULL, CLOCK_MONOTONIC);
	if (r < 0 && errno == EINTR)
		return -EINTR;
	return 0;
}
