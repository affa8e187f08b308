// SPDX-License-Identifier: MIT
/*
 * The kernel NSM's accept queue (userspace/nkd/nsm/kernel/kn_accq.c):
 * arrival order through growth and wrap-around, drain closes every fd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kn_accq.h"

static void fifo_through_growth_and_wrap(void **state)
{
	struct nk_kn_accq q = { 0 };
	int next_in = 100, next_out = 100;

	(void)state;
	assert_int_equal(nk_kn_accq__pop(&q), -1);
	/* Uneven pushes and pops so that head wraps before each growth. */
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 5 + round; i++)
			assert_int_equal(nk_kn_accq__push(&q, next_in++), 0);
		for (int i = 0; i < 3 + round / 2; i++)
			assert_int_equal(nk_kn_accq__pop(&q), next_out++);
	}
	while (q.len)
		assert_int_equal(nk_kn_accq__pop(&q), next_out++);
	assert_int_equal(next_out, next_in);
	assert_int_equal(nk_kn_accq__pop(&q), -1);
	nk_kn_accq__free(&q);
}

static void drain_closes_all(void **state)
{
	struct nk_kn_accq q = { 0 };
	int sv[12][2];

	(void)state;
	for (int i = 0; i < 12; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
		assert_int_equal(nk_kn_accq__push(&q, sv[i][0]), 0);
	}
	assert_int_equal(nk_kn_accq__pop(&q), sv[0][0]);
	close(sv[0][0]);
	nk_kn_accq__drain(&q);
	assert_int_equal(q.len, 0);
	for (int i = 1; i < 12; i++) {
		char c;

		assert_int_equal(fcntl(sv[i][0], F_GETFD), -1);
		assert_int_equal(errno, EBADF);
		/* The peer sees the end (an AF_UNIX pair: EOF). */
		assert_int_equal(read(sv[i][1], &c, 1), 0);
		close(sv[i][1]);
	}
	close(sv[0][1]);
	nk_kn_accq__free(&q);
	assert_null(q.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fifo_through_growth_and_wrap),
		cmocka_unit_test(drain_closes_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
