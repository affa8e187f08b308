// SPDX-License-Identifier: MIT
/*
 * ABI layout checks that a compile-time assert cannot express: the sizes
 * a peer built from docs/abi.md would assume, and the flag masks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "netkernel/abi.h"
#include "netkernel/ctl.h"
#include "netkernel/ring.h"

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct nk_sqe), 64);
	assert_int_equal(sizeof(struct nk_cqe), 32);
	assert_int_equal(sizeof(struct nk_sockaddr), 32);
	assert_int_equal(sizeof(struct nk_ring_idx), 128);
	assert_true(sizeof(struct nk_region_hdr) <= 4096);
}

static void test_flag_masks_disjoint(void **state)
{
	(void)state;
	assert_int_equal(NK_SQE_F_ALL, NK_SQE_F_NONBLOCK | NK_SQE_F_ADDR |
					       NK_SQE_F_TIMEOUT |
					       NK_SQE_F_PREFETCH |
					       NK_SQE_F_CMSG | NK_SQE_F_BATCH |
					       NK_SQE_F_EMPTIED | NK_SQE_F_PH);
	/* All eight bits of nk_sqe.flags are taken. */
	assert_int_equal(NK_SQE_F_ALL, 0xff);
	/* Each flag its own bit. */
	assert_int_equal(NK_SQE_F_PREFETCH & (NK_SQE_F_NONBLOCK |
					      NK_SQE_F_ADDR | NK_SQE_F_TIMEOUT),
			 0);
	assert_int_equal(NK_SQE_F_CMSG & (NK_SQE_F_NONBLOCK | NK_SQE_F_ADDR |
					  NK_SQE_F_TIMEOUT | NK_SQE_F_PREFETCH),
			 0);
	assert_int_equal(NK_SQE_F_BATCH & (NK_SQE_F_NONBLOCK | NK_SQE_F_ADDR |
					   NK_SQE_F_TIMEOUT |
					   NK_SQE_F_PREFETCH | NK_SQE_F_CMSG),
			 0);
	assert_int_equal(NK_SQE_F_PH & (NK_SQE_F_NONBLOCK | NK_SQE_F_ADDR |
					NK_SQE_F_TIMEOUT | NK_SQE_F_PREFETCH |
					NK_SQE_F_CMSG | NK_SQE_F_BATCH),
			 0);
	assert_int_equal(NK_FEAT_ALL & NK_FEAT_RECV_BATCH, NK_FEAT_RECV_BATCH);
	assert_int_equal(NK_FEAT_ALL & NK_FEAT_PH_SQE, NK_FEAT_PH_SQE);
	assert_int_equal(NK_SQE_F_EMPTIED &
				 (NK_SQE_F_NONBLOCK | NK_SQE_F_ADDR |
				  NK_SQE_F_TIMEOUT | NK_SQE_F_PREFETCH |
				  NK_SQE_F_CMSG | NK_SQE_F_BATCH | NK_SQE_F_PH),
			 0);
	assert_int_equal(NK_FEAT_RECV_STANDING &
				 (NK_FEAT_PH_SQE | NK_FEAT_UNREAD |
				  NK_FEAT_DNS_PING | NK_FEAT_RECV_BATCH),
			 0);
	assert_int_equal(NK_FEAT_ALL & NK_FEAT_RECV_STANDING,
			 NK_FEAT_RECV_STANDING);
	assert_int_equal(sizeof(struct nk_dgram), 48);
	assert_int_equal(sizeof(struct nk_cmsg), NK_CMSG_BYTES);
	assert_int_equal(NK_SQE_F_ALL & ~0xffu, 0);
	assert_int_equal(NK_FEAT_ALL & NK_FEAT_FUTEX_WAKE, NK_FEAT_FUTEX_WAKE);
}

static void test_ring_count_wraps(void **state)
{
	(void)state;
	assert_int_equal(nk_ring_count(0xfffffff0u, 0x10u), 0x20u);
	assert_int_equal(nk_ring_count(5, 5), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_flag_masks_disjoint),
		cmocka_unit_test(test_ring_count_wraps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
