// SPDX-License-Identifier: MIT
/* Lingering flows of the afxdp NSM: expiry order, take-over by (key,
 * owner), per-guest drop, many entries (hash chains), fini. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "xlinger.h"

static struct nk_flow_key key(uint16_t rport)
{
	struct nk_flow_key k;

	memset(&k, 0, sizeof(k));
	k.laddr[15] = 5;
	k.raddr[15] = 2;
	k.lport = 8080;
	k.rport = rport;
	k.proto = 6;
	return k;
}

static void test_order_take_pop(void **state)
{
	struct nk_xlinger l;
	struct nk_flow_key k, got;
	uint32_t gid;

	(void)state;
	assert_int_equal(nk_xlinger__init(&l), 0);
	assert_int_equal(nk_xlinger__next(&l), 0);
	for (uint16_t p = 1; p <= 3; p++) {
		k = key(p);
		assert_int_equal(nk_xlinger__add(&l, &k, 7, 100 * p), 0);
	}
	assert_int_equal(nk_xlinger__next(&l), 100);
	/* another owner's key is not ours to take */
	k = key(2);
	assert_false(nk_xlinger__take(&l, &k, 8));
	assert_true(nk_xlinger__take(&l, &k, 7));
	assert_false(nk_xlinger__take(&l, &k, 7));
	assert_false(nk_xlinger__pop(&l, 99, false, &got, &gid));
	assert_true(nk_xlinger__pop(&l, 100, false, &got, &gid));
	k = key(1);
	assert_memory_equal(&got, &k, sizeof(k));
	assert_int_equal(gid, 7);
	assert_int_equal(nk_xlinger__next(&l), 300);
	assert_false(nk_xlinger__pop(&l, 299, false, &got, &gid));
	assert_true(nk_xlinger__pop(&l, 0, true, &got, &gid));
	k = key(3);
	assert_memory_equal(&got, &k, sizeof(k));
	assert_int_equal(nk_xlinger__next(&l), 0);
	assert_false(nk_xlinger__pop(&l, 0, true, &got, &gid));
	nk_xlinger__fini(&l);
}

static void test_many_and_drop(void **state)
{
	struct nk_xlinger l;
	struct nk_flow_key k, got;
	uint32_t gid, n = 0;

	(void)state;
	assert_int_equal(nk_xlinger__init(&l), 0);
	/* more entries than buckets: chains */
	for (uint32_t i = 0; i < 40000; i++) {
		k = key((uint16_t)i);
		k.raddr[14] = (uint8_t)(i >> 16);
		assert_int_equal(nk_xlinger__add(&l, &k, i % 3, i), 0);
	}
	assert_int_equal(l.n, 40000);
	for (uint32_t i = 0; i < 40000; i += 7) {
		k = key((uint16_t)i);
		assert_true(nk_xlinger__take(&l, &k, i % 3));
	}
	nk_xlinger__drop_gid(&l, 1);
	while (nk_xlinger__pop(&l, 0, true, &got, &gid)) {
		assert_int_not_equal(gid, 1);
		n++;
	}
	/* gid 0 and 2, minus the taken ones of those gids */
	uint32_t want = 0;

	for (uint32_t i = 0; i < 40000; i++)
		if (i % 3 != 1 && i % 7)
			want++;
	assert_int_equal(n, want);
	assert_int_equal(l.n, 0);
	/* fini frees what is left */
	k = key(1);
	assert_int_equal(nk_xlinger__add(&l, &k, 1, 1), 0);
	nk_xlinger__fini(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_take_pop),
		cmocka_unit_test(test_many_and_drop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
