// SPDX-License-Identifier: MIT
/*
 * The byte scheduler's arithmetic (core/nksched.h): normalised cost by
 * weight, wrap-safe lead, the lead bound, catch-up of a guest that was
 * idle, and shares that follow the weights in a model of two guests whose
 * sends the scheduler admits one at a time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "nksched.h"

static void test_cost(void **state)
{
	(void)state;
	assert_int_equal(nk_sched__cost(1000, 1), 1000ull * NK_SCHED_SCALE);
	assert_int_equal(nk_sched__cost(1000, 2), 500ull * NK_SCHED_SCALE);
	/* Every weight 1..100 a config accepts costs as 1/weight: the scale
	 * divides by the small ones exactly. */
	for (uint32_t w = 1; w <= 10; w++)
		assert_int_equal(nk_sched__cost(w, w), NK_SCHED_SCALE);
	/* Weight 0 never divides by zero. */
	assert_int_equal(nk_sched__cost(7, 0), nk_sched__cost(7, 1));
	/* 1 GiB at weight 1 fits easily. */
	assert_true(nk_sched__cost(1ull << 30, 1) > (1ull << 30));
}

static void test_lead_wraps(void **state)
{
	uint64_t near_max = UINT64_MAX - 100;

	(void)state;
	assert_int_equal(nk_sched__lead(10, 4), 6);
	assert_int_equal(nk_sched__lead(4, 10), -6);
	/* vt wraps after 2^64: a guest just past the wrap still leads. */
	assert_int_equal(nk_sched__lead(near_max + 300, near_max), 300);
	assert_int_equal(nk_sched__lead(near_max, near_max + 300), -300);
}

static void test_may_go(void **state)
{
	uint64_t lag = nk_sched__cost(NK_SCHED_LAG, 1);

	(void)state;
	/* Behind or level: always. */
	assert_true(nk_sched__may_go(5, 10));
	assert_true(nk_sched__may_go(10, 10));
	/* Ahead by the lag: still; by more: no. */
	assert_true(nk_sched__may_go(10 + lag, 10));
	assert_false(nk_sched__may_go(11 + lag, 10));
	/* Across the wrap too. */
	assert_false(nk_sched__may_go(lag + 50, UINT64_MAX - 50));
	/* The lag holds the largest SEND (a region buffer, 128 KiB). */
	assert_true(nk_sched__may_go(nk_sched__cost(128 * 1024, 1), 0));
}

static void test_catch_up(void **state)
{
	(void)state;
	/* An idle guest comes back level with the least-served one... */
	assert_int_equal(nk_sched__catch_up(100, 5000), 5000);
	/* ...never back from where it is. */
	assert_int_equal(nk_sched__catch_up(9000, 5000), 9000);
	assert_int_equal(nk_sched__catch_up(UINT64_MAX - 1, 3), 3);
}

/*
 * Two always-backlogged guests offer sends of size sz; each round every
 * guest that may go sends once (B first, the one with more flows). Bytes
 * moved must follow the weights within 1 %.
 */
static void share(uint32_t wa, uint32_t wb, uint32_t sza, uint32_t szb)
{
	uint64_t vt[2] = { 0, 0 }, bytes[2] = { 0, 0 };
	uint32_t w[2] = { wa, wb }, sz[2] = { sza, szb };
	double want = (double)wa / wb, got;

	for (int round = 0; round < 200000; round++) {
		for (int i = 1; i >= 0; i--) {
			if (!nk_sched__may_go(vt[i], vt[!i]))
				continue;
			vt[i] += nk_sched__cost(sz[i], w[i]);
			bytes[i] += sz[i];
		}
	}
	got = (double)bytes[0] / (double)bytes[1];
	assert_true(got > want * 0.99 && got < want * 1.01);
}

static void test_shares_follow_weights(void **state)
{
	(void)state;
	share(1, 1, 65536, 65536);
	share(2, 1, 65536, 65536);
	share(1, 3, 65536, 65536);
	/* Bytes, not ops: a guest of small sends gets its share too. */
	share(1, 1, 1500, 131072);
	share(5, 2, 131072, 4096);
}

/*
 * A guest idle for long (its vt far behind) that comes back with catch-up
 * may not lock the busy one out for more than the lag.
 */
static void test_idle_earns_nothing(void **state)
{
	uint64_t a = 0, b = nk_sched__cost(1ull << 30, 1); /* B sent 1 GiB */
	int n = 0;

	(void)state;
	/* Without catch-up B waits until A has sent the whole GiB. */
	assert_false(nk_sched__may_go(b, a));
	a = nk_sched__catch_up(a, b);
	/* With it both go on at once... */
	assert_true(nk_sched__may_go(b, a));
	assert_true(nk_sched__may_go(a, b));
	/* ...and take turns: B alone gets at most the lag ahead of A. */
	while (nk_sched__may_go(b, a)) {
		b += nk_sched__cost(65536, 1);
		n++;
	}
	assert_int_equal(n, NK_SCHED_LAG / 65536 + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_lead_wraps),
		cmocka_unit_test(test_may_go),
		cmocka_unit_test(test_catch_up),
		cmocka_unit_test(test_shares_follow_weights),
		cmocka_unit_test(test_idle_earns_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
