// SPDX-License-Identifier: MIT
/*
 * The adaptive spin budget (include/netkernel/spin.h): spins that never
 * find their event stop, with a periodic probe; spins that do, and the
 * multiplexers' never-give-up budget, keep the old policy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "netkernel/spin.h"

#define CAP 50000ll

/*
 * The steps of a short connection: every gap ends just beyond the cap
 * (spin 50 us, then a 30 us sleep that work ended), and no spin ever
 * hits. The keep zone used to keep a full spin before every sleep.
 */
static void test_gaps_beyond_cap_give_up(void **state)
{
	struct nk_spin s;
	unsigned spun = 0;

	(void)state;
	nk_spin__init(&s, CAP);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(nk_spin__budget(&s), CAP);
		nk_spin__slept(&s, 30000, 1);
	}
	assert_int_equal(nk_spin__budget(&s), 0);
	/* 1000 more such sleeps: a full probe every 16th, no spin else. */
	for (int i = 0; i < 1000; i++) {
		if (nk_spin__budget(&s))
			spun++;
		nk_spin__slept(&s, 30000 + nk_spin__budget(&s), 1);
	}
	assert_true(spun >= 1000 / 16 - 1 && spun <= 1000 / 16 + 1);
}

/* A probe that hits brings the old policy back, at the full budget. */
static void test_probe_hit_restores(void **state)
{
	struct nk_spin s;

	(void)state;
	nk_spin__init(&s, CAP);
	for (int i = 0; i < 200 && nk_spin__budget(&s) != CAP; i++)
		nk_spin__slept(&s, 30000, 1);
	for (int i = 0; i < 64 && nk_spin__budget(&s) != CAP; i++)
		nk_spin__slept(&s, 30000, 1);
	assert_int_equal(nk_spin__budget(&s), CAP);
	nk_spin__hit(&s);
	for (int i = 0; i < 4; i++) {
		nk_spin__slept(&s, 30000, 1);
		assert_int_equal(nk_spin__budget(&s), CAP);
	}
}

/* One hit in every five gaps is enough to keep spinning (a ping-pong
 * whose round trip hovers around the cap). */
static void test_some_hits_keep(void **state)
{
	struct nk_spin s;

	(void)state;
	nk_spin__init(&s, CAP);
	for (int i = 0; i < 100; i++) {
		if (i % 5 == 0)
			nk_spin__hit(&s);
		else
			nk_spin__slept(&s, 30000, 1);
		assert_int_equal(nk_spin__budget(&s), CAP);
	}
}

/* give_up = 0 (the multiplexers): the keep zone keeps, hits or not. */
static void test_never_give_up(void **state)
{
	struct nk_spin s;

	(void)state;
	nk_spin__init(&s, CAP);
	s.give_up = 0;
	for (int i = 0; i < 100; i++) {
		nk_spin__slept(&s, 30000, 1);
		assert_int_equal(nk_spin__budget(&s), CAP);
	}
}

/* Long or useless sleeps still halve the budget to nothing. */
static void test_long_sleeps_halve(void **state)
{
	struct nk_spin s;

	(void)state;
	nk_spin__init(&s, CAP);
	nk_spin__slept(&s, 10 * CAP, 1);
	assert_int_equal(nk_spin__budget(&s), CAP / 2);
	nk_spin__slept(&s, 1000, 0);
	assert_int_equal(nk_spin__budget(&s), CAP / 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gaps_beyond_cap_give_up),
		cmocka_unit_test(test_probe_hit_restores),
		cmocka_unit_test(test_some_hits_keep),
		cmocka_unit_test(test_never_give_up),
		cmocka_unit_test(test_long_sleeps_halve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
