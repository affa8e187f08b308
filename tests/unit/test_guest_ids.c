// SPDX-License-Identifier: MIT
/* Guest id allocator: bounds, reuse of freed ids, full. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "guest_ids.h"

static void test_alloc_reuse_full(void **state)
{
	struct nk_guest_ids ids;
	uint32_t id;

	(void)state;
	nk_guest_ids__init(&ids);
	for (id = 1; id <= NK_GUEST_ID_MAX; id++)
		assert_int_equal(nk_guest_ids__alloc(&ids), id);
	assert_true(nk_guest_ids__full(&ids));
	assert_int_equal(nk_guest_ids__alloc(&ids), 0);
	/* A freed id comes back, lowest first. */
	nk_guest_ids__free(&ids, 700);
	nk_guest_ids__free(&ids, 5);
	assert_false(nk_guest_ids__full(&ids));
	assert_int_equal(nk_guest_ids__alloc(&ids), 5);
	assert_int_equal(nk_guest_ids__alloc(&ids), 700);
	assert_int_equal(nk_guest_ids__alloc(&ids), 0);
	/* 0, out of range and double frees change nothing. */
	nk_guest_ids__free(&ids, 0);
	nk_guest_ids__free(&ids, NK_GUEST_ID_MAX + 1);
	nk_guest_ids__free(&ids, 9);
	nk_guest_ids__free(&ids, 9);
	assert_int_equal(ids.nr_used, NK_GUEST_ID_MAX - 1);
	assert_int_equal(nk_guest_ids__alloc(&ids), 9);
	assert_int_equal(nk_guest_ids__alloc(&ids), 0);
}

static void test_churn(void **state)
{
	struct nk_guest_ids ids;

	(void)state;
	nk_guest_ids__init(&ids);
	/* Attach/detach far more names than there are ids. */
	for (int i = 0; i < 5000; i++) {
		uint32_t id = nk_guest_ids__alloc(&ids);

		assert_true(id >= 1 && id <= NK_GUEST_ID_MAX);
		nk_guest_ids__free(&ids, id);
	}
	assert_int_equal(ids.nr_used, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_reuse_full),
		cmocka_unit_test(test_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
