/* SPDX-License-Identifier: MIT */
/*
 * Adaptive spinning before a sleep, shared by nkd and the shim.
 *
 * A waiter that expects its event soon spins instead of sleeping, because
 * a wake-up costs more than a short spin. But every cycle spent spinning
 * on a machine with few cores is taken from the process that would make
 * the event happen, so the budget follows what spinning has recently paid
 * off (the halt-polling policy of KVM, virt/kvm/kvm_main.c): a sleep that
 * ended soon after the spin gave up, within what a longer spin would have
 * covered, doubles the budget up to its cap; one that ended within twice
 * the cap keeps it (unless several sleeps in a row found no hit); a longer
 * sleep, or one that ended with nothing to do, halves it, to nothing. A
 * spin that finds its event leaves the budget alone. The cap is smaller on
 * a machine with at most two online CPUs. docs/nkd.md and docs/shim.md
 * describe the knobs.
 */
#ifndef NETKERNEL_SPIN_H
#define NETKERNEL_SPIN_H

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* First budget after growing from nothing. */
#define NK_SPIN_GROW_START_NS 5000ll
/*
 * Past this many sleeps in a row without a hit (struct nk_spin.give_up)
 * the budget is 0, but every NK_SPIN_PROBE_EVERY sleeps one full spin
 * probes whether spinning pays again.
 */
#define NK_SPIN_KEEP_MISSES 4u
#define NK_SPIN_PROBE_EVERY 16u

struct nk_spin {
	int64_t cur; /* current budget, 0..max */
	int64_t max; /* cap */
	int64_t keep; /* a useful wait up to this long keeps the budget */
	uint64_t hits; /* spins that found their event */
	uint64_t misses; /* spins that ended in a sleep */
	uint32_t miss_run; /* sleeps since the last hit */
	/* Sleeps without a hit before the budget drops to 0 (0: never) */
	uint32_t give_up;
};

/* Few online CPUs: a spinner and its peer share them. */
static inline int nk_spin__few_cpus(void)
{
	static int few = -1;

	if (few < 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		few = n > 0 && n <= 2;
	}
	return few;
}

/*
 * The cap: @many on a larger machine, @few on one with at most two online
 * CPUs; @v (an environment variable's value, nanoseconds), when set,
 * overrides both (0 turns spinning off).
 */
static inline int64_t nk_spin__cap(const char *v, int64_t many, int64_t few)
{
	if (v && *v) {
		char *end;
		long long n = strtoll(v, &end, 0);

		if (*end == '\0' && n >= 0 && n <= 100000000ll)
			return n;
	}
	return nk_spin__few_cpus() ? few : many;
}

static inline void nk_spin__init(struct nk_spin *s, int64_t max)
{
	s->max = max;
	s->keep = 2 * max;
	s->cur = max;
	s->hits = s->misses = 0;
	s->miss_run = 0;
	s->give_up = NK_SPIN_KEEP_MISSES;
}

static inline int64_t nk_spin__budget(const struct nk_spin *s)
{
	return s->cur;
}

static inline void nk_spin__hit(struct nk_spin *s)
{
	s->hits++;
	s->miss_run = 0;
}

/*
 * The spin gave up and the waiter slept @slept ns; @useful says the sleep
 * ended because the awaited thing happened (not a timeout, not a stray
 * wake-up).
 */
static inline void nk_spin__slept(struct nk_spin *s, int64_t slept, int useful)
{
	s->misses++;
	s->miss_run++;
	if (s->give_up && s->miss_run > s->give_up) {
		/*
		 * Spinning has not paid off for a while: gaps just beyond
		 * what it covers (the steps of a short connection: accept,
		 * request, response, close, each a guest wake-up apart) kept
		 * it growing and kept, with a spin before every sleep that
		 * never found work (docs/benchmarks.md "Short connections").
		 * Sleep at once; now and then spin fully to find out whether
		 * the flow changed (a hit ends this).
		 */
		s->cur = s->miss_run % NK_SPIN_PROBE_EVERY ? 0 : s->max;
		return;
	}
	if (useful && slept + s->cur <= s->max) {
		s->cur = s->cur ? s->cur * 2 : NK_SPIN_GROW_START_NS;
		if (s->cur > s->max)
			s->cur = s->max;
	} else if (useful && slept + s->cur <= s->keep) {
		/*
		 * Just beyond the cap: keep the budget. Halving here would
		 * make the next wait a sleep, which makes the round trip
		 * slower still, down to no spin at all (a ping-pong whose
		 * round trip hovers around the cap went 35 -> 160 us).
		 */
	} else {
		s->cur /= 2;
		if (s->cur < NK_SPIN_GROW_START_NS)
			s->cur = 0;
	}
}

#endif /* NETKERNEL_SPIN_H */
