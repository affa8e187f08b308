// SPDX-License-Identifier: MIT
/* Buffer ownership: claim, double claim, release, bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "bufown.h"

static void test_claim_release(void **state)
{
	struct nk_bufown *b = nk_bufown__create(130);

	(void)state;
	assert_non_null(b);
	assert_false(nk_bufown__owned(b, 0));
	assert_int_equal(nk_bufown__claim(b, 0), 0);
	assert_int_equal(nk_bufown__claim(b, 129), 0);
	assert_int_equal(nk_bufown__claim(b, 64), 0);
	assert_true(nk_bufown__owned(b, 129));
	assert_int_equal(nk_bufown__count(b), 3);
	/* Owned: a second SQE naming it is refused. */
	assert_int_equal(nk_bufown__claim(b, 64), -EFAULT);
	assert_int_equal(nk_bufown__release(b, 64), 0);
	assert_int_equal(nk_bufown__release(b, 64), -EINVAL);
	assert_int_equal(nk_bufown__claim(b, 64), 0);
	assert_int_equal(nk_bufown__count(b), 3);
	nk_bufown__destroy(b);
}

static void test_bounds(void **state)
{
	struct nk_bufown *b = nk_bufown__create(10);

	(void)state;
	assert_int_equal(nk_bufown__claim(b, 10), -EFAULT);
	assert_int_equal(nk_bufown__claim(b, UINT32_MAX), -EFAULT);
	assert_false(nk_bufown__owned(b, 11));
	assert_int_equal(nk_bufown__release(b, 10), -EINVAL);
	assert_int_equal(nk_bufown__count(b), 0);
	nk_bufown__destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claim_release),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
