// SPDX-License-Identifier: MIT
/*
 * Host ring side over a real region: copy-out, CQ room accounting with
 * reservations, and index sanity (jumps and backwards moves are -EPROTO).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "netkernel/ring.h"

#include "host_ring.h"
#include "region.h"

struct fix {
	struct nk_region *reg;
	struct nk_hring *r;
	struct nk_ring_idx *sqi, *cqi;
	struct nk_sqe *sqes;
	struct nk_cqe *cqes;
	uint32_t sqn, cqn;
};

static int setup(void **state)
{
	struct nk_region_params p = { .nr_qsets = 2,
				      .sq_entries = 8,
				      .cq_entries = 16,
				      .buf_size = 4096,
				      .nr_bufs = 4,
				      .send_window = 1 << 20,
				      .send_charge = 1 << 15,
				      .epoch = 7 };
	struct fix *f = calloc(1, sizeof(*f));
	const struct nk_qset_desc *d;
	uint8_t *base;

	assert_int_equal(nk_region__create(&nk_region_memfd, &p, "t", &f->reg),
			 0);
	base = nk_region__base(f->reg);
	d = nk_region__qset(f->reg, 1);
	f->r = nk_hring__create(base, nk_region__size(f->reg), d);
	assert_non_null(f->r);
	f->sqi = (void *)(base + d->sq_idx_off);
	f->cqi = (void *)(base + d->cq_idx_off);
	f->sqes = (void *)(base + d->sq_entries_off);
	f->cqes = (void *)(base + d->cq_entries_off);
	f->sqn = d->sq_entries;
	f->cqn = d->cq_entries;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	nk_hring__destroy(f->r);
	nk_region__destroy(f->reg);
	free(f);
	return 0;
}

static void test_header(void **state)
{
	struct fix *f = *state;
	struct nk_region_hdr *h = nk_region__base(f->reg);

	assert_int_equal(h->magic, NK_REGION_MAGIC);
	assert_int_equal(h->abi_version, NK_ABI_VERSION);
	assert_int_equal(h->nr_qsets, 2);
	assert_int_equal(h->epoch, 7);
	assert_int_equal(h->hdr_size, sizeof(*h));
	assert_int_equal(h->region_size, nk_region__size(f->reg));
	assert_true(h->data_off + 4 * 4096ull <= h->region_size);
	assert_int_equal(h->data_off % 4096, 0);
	assert_memory_equal(&h->qsets[1], nk_region__qset(f->reg, 1),
			    sizeof(h->qsets[1]));
	assert_int_equal(h->send_window, 1 << 20);
	assert_int_equal(h->send_charge, 1 << 15);
	assert_true(h->features & NK_FEAT_SEND_CREDIT);
	nk_region__mark_dead(f->reg);
	assert_true(h->host_flags & NK_HOST_F_DEAD);
}

/* A stalled socket's SENDs hold a bounded share of the buffers. */
static void test_send_charge(void **state)
{
	(void)state;
	/* Default: 128 buffers, 1 MiB window: 32 SENDs of 32 KiB. */
	assert_int_equal(nk_region__send_charge(1 << 20, 128), 1 << 15);
	/* Few buffers: at most 3/8 of them per window (two windows fit). */
	assert_int_equal(nk_region__send_charge(1 << 20, 16), (1 << 20) / 6);
	assert_int_equal(nk_region__send_charge(1 << 20, 1), 1 << 20);
	assert_int_equal(nk_region__send_charge(1 << 20, 0), 1 << 20);
	assert_int_equal(nk_region__send_charge(1 << 20, 100000), 1 << 15);
	assert_int_equal(nk_region__send_charge(1, 128), 1);
}

static void test_copy_and_post(void **state)
{
	struct fix *f = *state;
	struct nk_sqe got;
	struct nk_cqe cqe = { .user_data = 99, .res = -5 };

	assert_int_equal(nk_hring__sq_peek(f->r, &got), 0);
	f->sqes[0].opcode = NK_OP_NOP;
	f->sqes[0].user_data = 1234;
	nk_ring_store_release(&f->sqi->tail, 1);
	assert_true(nk_hring__sq_pending(f->r));
	assert_int_equal(nk_hring__sq_peek(f->r, &got), 1);
	/* The copy is ours: later scribbles do not change it. */
	f->sqes[0].user_data = 1;
	assert_int_equal(got.user_data, 1234);
	nk_hring__sq_consume(f->r);
	assert_int_equal(f->sqi->head, 1);
	assert_false(nk_hring__sq_pending(f->r));

	assert_int_equal(nk_hring__cq_room(f->r), (int)f->cqn);
	nk_hring__cq_reserve(f->r);
	assert_int_equal(nk_hring__cq_room(f->r), (int)f->cqn - 1);
	nk_hring__cq_post(f->r, &cqe);
	assert_int_equal(f->cqi->tail, 1);
	assert_int_equal(f->cqes[0].user_data, 99);
	assert_int_equal(f->cqes[0].res, -5);
	assert_int_equal(nk_hring__reserved(f->r), 0);
	/* Posted and not consumed still takes room. */
	assert_int_equal(nk_hring__cq_room(f->r), (int)f->cqn - 1);
	nk_ring_store_release(&f->cqi->head, 1);
	assert_int_equal(nk_hring__cq_room(f->r), (int)f->cqn);
	/* A guest scribbling on nkd's own indices changes nothing. */
	f->sqi->head = 77;
	f->cqi->tail = 55;
	nk_hring__cq_reserve(f->r);
	nk_hring__cq_post(f->r, &cqe);
	assert_int_equal(f->cqi->tail, 2);
}

static void test_cq_full(void **state)
{
	struct fix *f = *state;
	struct nk_cqe cqe = { 0 };

	for (uint32_t i = 0; i < f->cqn; i++) {
		assert_true(nk_hring__cq_room(f->r) > 0);
		nk_hring__cq_reserve(f->r);
		if (i % 2)
			nk_hring__cq_post(f->r, &cqe);
	}
	assert_int_equal(nk_hring__cq_room(f->r), 0);
	nk_ring_store_release(&f->cqi->head, 3);
	assert_int_equal(nk_hring__cq_room(f->r), 3);
}

static void test_sq_jump(void **state)
{
	struct fix *f = *state;
	struct nk_sqe got;

	nk_ring_store_release(&f->sqi->tail, f->sqn + 1);
	assert_int_equal(nk_hring__sq_peek(f->r, &got), -EPROTO);
}

static void test_sq_backwards(void **state)
{
	struct fix *f = *state;
	struct nk_sqe got;

	nk_ring_store_release(&f->sqi->tail, 3);
	assert_int_equal(nk_hring__sq_peek(f->r, &got), 1);
	nk_ring_store_release(&f->sqi->tail, 2);
	assert_int_equal(nk_hring__sq_peek(f->r, &got), -EPROTO);
}

static void test_sq_wraps(void **state)
{
	struct fix *f = *state;
	struct nk_sqe got;
	uint32_t start = 0xfffffffeu;

	/* A fresh ring picking up indices near the wrap point. */
	nk_hring__destroy(f->r);
	f->sqi->head = start;
	f->sqi->tail = start;
	f->r = nk_hring__create(nk_region__base(f->reg),
				nk_region__size(f->reg),
				nk_region__qset(f->reg, 1));
	nk_ring_store_release(&f->sqi->tail, start + 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(nk_hring__sq_peek(f->r, &got), 1);
		nk_hring__sq_consume(f->r);
	}
	assert_int_equal(nk_hring__sq_peek(f->r, &got), 0);
	assert_int_equal(f->sqi->head, start + 4);
}

static void test_cq_head_bad(void **state)
{
	struct fix *f = *state;
	struct nk_cqe cqe = { 0 };

	/* Head beyond the tail nkd published. */
	nk_ring_store_release(&f->cqi->head, 5);
	assert_int_equal(nk_hring__cq_room(f->r), -EPROTO);
	nk_ring_store_release(&f->cqi->head, 0);
	nk_hring__cq_reserve(f->r);
	nk_hring__cq_post(f->r, &cqe);
	nk_hring__cq_reserve(f->r);
	nk_hring__cq_post(f->r, &cqe);
	nk_ring_store_release(&f->cqi->head, 2);
	assert_true(nk_hring__cq_room(f->r) > 0);
	/* Backwards. */
	nk_ring_store_release(&f->cqi->head, 1);
	assert_int_equal(nk_hring__cq_room(f->r), -EPROTO);
}

static void test_need_wakeup(void **state)
{
	struct fix *f = *state;
	struct nk_cqe cqe = { 0 };

	nk_hring__sq_need_wakeup(f->r, true);
	assert_int_equal(f->sqi->flags, NK_RING_NEED_WAKEUP);
	nk_hring__sq_need_wakeup(f->r, false);
	assert_int_equal(f->sqi->flags, 0);
	nk_hring__cq_reserve(f->r);
	nk_hring__cq_post(f->r, &cqe);
	assert_false(nk_hring__cq_wake(f->r));
	f->cqi->flags = NK_RING_NEED_WAKEUP;
	assert_true(nk_hring__cq_wake(f->r)); /* no waiter: harmless */
}

static void test_bad_layout(void **state)
{
	struct fix *f = *state;
	struct nk_qset_desc d = *nk_region__qset(f->reg, 0);
	uint64_t size = nk_region__size(f->reg);
	void *base = nk_region__base(f->reg);

	d.sq_entries = 6;
	assert_null(nk_hring__create(base, size, &d));
	d = *nk_region__qset(f->reg, 0);
	d.cq_entries = d.sq_entries / 2;
	assert_null(nk_hring__create(base, size, &d));
	d = *nk_region__qset(f->reg, 0);
	d.cq_entries_off = (uint32_t)size - 32;
	assert_null(nk_hring__create(base, size, &d));
	d = *nk_region__qset(f->reg, 0);
	d.sq_idx_off += 4; /* misaligned */
	assert_null(nk_hring__create(base, size, &d));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_header),	     T(test_copy_and_post), T(test_cq_full),
		T(test_sq_jump),     T(test_sq_backwards),  T(test_sq_wraps),
		T(test_cq_head_bad), T(test_need_wakeup),   T(test_bad_layout),
		T(test_send_charge),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
