// SPDX-License-Identifier: MIT
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "netkernel/ring.h"

#include "host_ring.h"

struct nk_hring {
	struct nk_ring_idx *sq_idx;
	const struct nk_sqe *sqes;
	struct nk_ring_idx *cq_idx;
	struct nk_cqe *cqes;
	uint32_t sq_mask, cq_entries, cq_mask;
	uint32_t sq_head; /* ours */
	uint32_t sq_tail_seen; /* last guest tail, for "never backwards" */
	uint32_t cq_tail; /* ours */
	uint32_t cq_head_seen;
	uint32_t reserved; /* SQEs taken, CQE not posted yet */
	uint32_t sq_entries;
};

static bool pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static bool fits(uint64_t off, uint64_t len, uint64_t size, uint64_t align)
{
	return off % align == 0 && off <= size && len <= size - off;
}

struct nk_hring *nk_hring__create(void *region, uint64_t region_size,
				  const struct nk_qset_desc *d)
{
	struct nk_hring *r;
	uint8_t *base = region;

	if (!pow2(d->sq_entries) || !pow2(d->cq_entries) ||
	    d->cq_entries < d->sq_entries || d->cq_entries > (1u << 24) ||
	    !fits(d->sq_idx_off, sizeof(struct nk_ring_idx), region_size,
		  NK_CACHELINE) ||
	    !fits(d->cq_idx_off, sizeof(struct nk_ring_idx), region_size,
		  NK_CACHELINE) ||
	    !fits(d->sq_entries_off,
		  (uint64_t)d->sq_entries * sizeof(struct nk_sqe), region_size,
		  NK_CACHELINE) ||
	    !fits(d->cq_entries_off,
		  (uint64_t)d->cq_entries * sizeof(struct nk_cqe), region_size,
		  NK_CACHELINE)) {
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->sq_idx = (struct nk_ring_idx *)(base + d->sq_idx_off);
	r->sqes = (const struct nk_sqe *)(base + d->sq_entries_off);
	r->cq_idx = (struct nk_ring_idx *)(base + d->cq_idx_off);
	r->cqes = (struct nk_cqe *)(base + d->cq_entries_off);
	r->sq_entries = d->sq_entries;
	r->sq_mask = d->sq_entries - 1;
	r->cq_entries = d->cq_entries;
	r->cq_mask = d->cq_entries - 1;
	/* Start from what is in the region (zero for a fresh one). */
	r->sq_head = nk_ring_load_relaxed(&r->sq_idx->head);
	r->sq_tail_seen = r->sq_head;
	r->cq_tail = nk_ring_load_relaxed(&r->cq_idx->tail);
	r->cq_head_seen = r->cq_tail;
	return r;
}

void nk_hring__destroy(struct nk_hring *r)
{
	free(r);
}

int nk_hring__sq_peek(struct nk_hring *r, struct nk_sqe *out)
{
	/* Acquire: the entry bytes are visible once we see the tail. */
	uint32_t tail = nk_ring_load_acquire(&r->sq_idx->tail);

	if ((int32_t)(tail - r->sq_tail_seen) < 0 ||
	    nk_ring_count(r->sq_head, tail) > r->sq_entries)
		return -EPROTO;
	r->sq_tail_seen = tail;
	if (tail == r->sq_head)
		return 0;
	/*
	 * One copy out of shared memory; everything after this reads *out.
	 * A volatile-free memcpy is fine: the guest may still be scribbling
	 * on the slot, and whatever bytes we got are what gets validated.
	 */
	memcpy(out, &r->sqes[r->sq_head & r->sq_mask], sizeof(*out));
	return 1;
}

void nk_hring__sq_consume(struct nk_hring *r)
{
	r->sq_head++;
	/* Release: we are done reading the slot before the guest reuses it. */
	nk_ring_store_release(&r->sq_idx->head, r->sq_head);
}

bool nk_hring__sq_pending(struct nk_hring *r)
{
	return nk_ring_load_acquire(&r->sq_idx->tail) != r->sq_head;
}

void nk_hring__sq_need_wakeup(struct nk_hring *r, bool on)
{
	/* nkd owns nothing else in this word; the guest only reads it. */
	__atomic_store_n(&r->sq_idx->flags, on ? NK_RING_NEED_WAKEUP : 0,
			 __ATOMIC_RELAXED);
}

int nk_hring__cq_room(struct nk_hring *r)
{
	uint32_t head = nk_ring_load_acquire(&r->cq_idx->head);
	uint32_t used = nk_ring_count(head, r->cq_tail);

	if ((int32_t)(head - r->cq_head_seen) < 0 || used > r->cq_entries)
		return -EPROTO;
	r->cq_head_seen = head;
	if (used + r->reserved >= r->cq_entries)
		return 0;
	return (int)(r->cq_entries - used - r->reserved);
}

void nk_hring__cq_reserve(struct nk_hring *r)
{
	r->reserved++;
}

void nk_hring__cq_unreserve(struct nk_hring *r)
{
	if (r->reserved)
		r->reserved--;
}

void nk_hring__cq_post(struct nk_hring *r, const struct nk_cqe *cqe)
{
	/*
	 * The reservation taken with the SQE guarantees the slot is free as
	 * long as the guest's head only moves forward (checked by cq_room).
	 */
	memcpy(&r->cqes[r->cq_tail & r->cq_mask], cqe, sizeof(*cqe));
	r->cq_tail++;
	if (r->reserved)
		r->reserved--;
	/* Release: the CQE bytes before the tail that publishes them. */
	nk_ring_store_release(&r->cq_idx->tail, r->cq_tail);
}

bool nk_hring__cq_wake(struct nk_hring *r)
{
	/* Pairs with the guest's fence between setting the flag and its
	 * re-check of the tail: one of us sees the other's store. */
	nk_ring_fence();
	if (!(__atomic_load_n(&r->cq_idx->flags, __ATOMIC_RELAXED) &
	      NK_RING_NEED_WAKEUP))
		return false;
	/*
	 * Taken as it is seen: CQEs posted before the guest runs need no
	 * more wake-ups; it sets the flag again before its next sleep. A
	 * guest that clears it itself only misses its own wake-up.
	 */
	if (!(__atomic_fetch_and(&r->cq_idx->flags, ~NK_RING_NEED_WAKEUP,
				 __ATOMIC_RELAXED) &
	      NK_RING_NEED_WAKEUP))
		return false;
	/* Shared futex (no FUTEX_PRIVATE_FLAG): the guest maps the memfd. */
	syscall(SYS_futex, &r->cq_idx->tail, FUTEX_WAKE, INT_MAX, NULL, NULL,
		0);
	return true;
}

uint32_t nk_hring__reserved(const struct nk_hring *r)
{
	return r->reserved;
}

uint32_t nk_hring__sq_entries(const struct nk_hring *r)
{
	return r->sq_entries;
}
