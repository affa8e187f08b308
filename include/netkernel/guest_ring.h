/* SPDX-License-Identifier: MIT */
/*
 * The guest side of one queue set (docs/abi.md §3): the guest produces
 * SQEs and consumes CQEs. Header-only, used by the shim (guest/shim/submit.c),
 * the raw test client (tests/tools/nk_rawguest.c) and the engine's unit
 * test, so the index rules are written once.
 *
 * Like xdp-tools' xsk.h and liburing: the object keeps private copies of
 * the indices it owns (SQ tail, CQ head) and a cached copy of the peer's
 * (SQ head, CQ tail), re-read only when the cache says "full" or "empty".
 *
 *   uint32_t i;
 *   if (nk_sq__reserve(r, 1, &i) == 1) {
 *           *nk_sq__entry(r, i) = sqe;
 *           if (nk_sq__submit(r))
 *                   ring the doorbell;
 *   }
 *   int n = nk_cq__peek(r, 16, &i);   (-EPROTO: CQ tail out of range)
 *   for (int k = 0; k < n; k++)
 *           use(nk_cq__entry(r, i + k));
 *   nk_cq__release(r, n);
 *
 * Not thread-safe: the caller serialises producers (and consumers).
 */
#ifndef NETKERNEL_GUEST_RING_H
#define NETKERNEL_GUEST_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "netkernel/abi.h"
#include "netkernel/ring.h"

struct nk_gring {
	struct nk_ring_idx *sqi, *cqi;
	struct nk_sqe *sqes;
	struct nk_cqe *cqes;
	uint32_t sq_n, cq_n; /* entries, powers of two */
	uint32_t sq_tail; /* reserved up to here; published by submit */
	uint32_t sq_pub; /* tail last published */
	uint32_t sq_head; /* cached consumer head */
	uint32_t cq_head; /* released up to here (published) */
	uint32_t cq_tail; /* cached producer tail */
};

static inline bool nk_gring__in(uint64_t size, uint64_t off, uint64_t len)
{
	return off <= size && len <= size - off;
}

/*
 * Points r at queue set q of a region of size bytes mapped at base and
 * picks up the indices where they are (a hand-over keeps them). The layout
 * is read once here, checked to lie inside the mapping: -EPROTO if not.
 */
static inline int nk_gring__init(struct nk_gring *r, void *base, uint64_t size,
				 const struct nk_qset_desc *q)
{
	uint32_t sqn = q->sq_entries, cqn = q->cq_entries;
	uint32_t sqi = q->sq_idx_off, cqi = q->cq_idx_off;
	uint32_t sqe = q->sq_entries_off, cqe = q->cq_entries_off;
	uint8_t *b = (uint8_t *)base;

	if (!sqn || (sqn & (sqn - 1)) || !cqn || (cqn & (cqn - 1)) ||
	    !nk_gring__in(size, sqi, sizeof(struct nk_ring_idx)) ||
	    !nk_gring__in(size, cqi, sizeof(struct nk_ring_idx)) ||
	    !nk_gring__in(size, sqe, (uint64_t)sqn * sizeof(struct nk_sqe)) ||
	    !nk_gring__in(size, cqe, (uint64_t)cqn * sizeof(struct nk_cqe)))
		return -EPROTO;
	r->sqi = (struct nk_ring_idx *)(void *)(b + sqi);
	r->cqi = (struct nk_ring_idx *)(void *)(b + cqi);
	r->sqes = (struct nk_sqe *)(void *)(b + sqe);
	r->cqes = (struct nk_cqe *)(void *)(b + cqe);
	r->sq_n = sqn;
	r->cq_n = cqn;
	r->sq_tail = r->sq_pub = nk_ring_load_relaxed(&r->sqi->tail);
	r->sq_head = nk_ring_load_acquire(&r->sqi->head);
	r->cq_head = nk_ring_load_relaxed(&r->cqi->head);
	r->cq_tail = nk_ring_load_acquire(&r->cqi->tail);
	return 0;
}

/* SQ slots free now (re-reads the consumer head). */
static inline uint32_t nk_sq__free(struct nk_gring *r)
{
	uint32_t used;

	r->sq_head = nk_ring_load_acquire(&r->sqi->head);
	used = nk_ring_count(r->sq_head, r->sq_tail);
	/* A head ahead of our tail is garbage: call the ring full. */
	return used > r->sq_n ? 0 : r->sq_n - used;
}

/*
 * Reserves n consecutive SQ slots: returns n with *idx the first, or 0 (and
 * nothing reserved) if fewer are free. The slots are the caller's to fill
 * with nk_sq__entry() until nk_sq__submit().
 */
static inline uint32_t nk_sq__reserve(struct nk_gring *r, uint32_t n,
				      uint32_t *idx)
{
	uint32_t used = nk_ring_count(r->sq_head, r->sq_tail);

	*idx = r->sq_tail;
	if (used > r->sq_n || r->sq_n - used < n) {
		if (nk_sq__free(r) < n)
			return 0;
	}
	r->sq_tail += n;
	return n;
}

static inline struct nk_sqe *nk_sq__entry(struct nk_gring *r, uint32_t idx)
{
	return &r->sqes[idx & (r->sq_n - 1)];
}

/*
 * Publishes every reserved entry (release: the entries are visible before
 * the tail), then a full fence before reading NEED_WAKEUP (ring.h). Returns
 * true if the consumer is asleep: the caller rings the doorbell. The flag
 * is cleared as it is taken (docs/abi.md §3): one doorbell per sleep of the
 * consumer, not one per submission until it has woken up and run.
 */
static inline bool nk_sq__submit(struct nk_gring *r)
{
	if (r->sq_pub != r->sq_tail) {
		nk_ring_store_release(&r->sqi->tail, r->sq_tail);
		r->sq_pub = r->sq_tail;
	}
	nk_ring_fence();
	if (!(__atomic_load_n(&r->sqi->flags, __ATOMIC_RELAXED) &
	      NK_RING_NEED_WAKEUP))
		return false;
	return __atomic_fetch_and(&r->sqi->flags, ~NK_RING_NEED_WAKEUP,
				  __ATOMIC_RELAXED) &
	       NK_RING_NEED_WAKEUP;
}

/* The tail the last submit published: the consumer took an entry
 * published by it once nk_sq__head() has passed it. */
static inline uint32_t nk_sq__tail(const struct nk_gring *r)
{
	return r->sq_pub;
}

static inline uint32_t nk_sq__head(const struct nk_gring *r)
{
	return nk_ring_load_acquire(&r->sqi->head);
}

/*
 * Up to n completions ready: returns how many with *idx the first, 0 if
 * none, -EPROTO if the producer's tail is out of range (the ring is
 * corrupt: stop using it).
 */
static inline int nk_cq__peek(struct nk_gring *r, uint32_t n, uint32_t *idx)
{
	uint32_t ready = nk_ring_count(r->cq_head, r->cq_tail);

	*idx = r->cq_head;
	if (ready < n) {
		r->cq_tail = nk_ring_load_acquire(&r->cqi->tail);
		ready = nk_ring_count(r->cq_head, r->cq_tail);
		if (ready > r->cq_n)
			return -EPROTO;
	}
	return (int)(ready < n ? ready : n);
}

static inline const struct nk_cqe *nk_cq__entry(const struct nk_gring *r,
						uint32_t idx)
{
	return &r->cqes[idx & (r->cq_n - 1)];
}

/* Gives n peeked slots back to the producer (after they were copied). */
static inline void nk_cq__release(struct nk_gring *r, uint32_t n)
{
	r->cq_head += n;
	nk_ring_store_release(&r->cqi->head, r->cq_head);
}

/* True if a completion is published and not yet peeked (re-reads). */
static inline bool nk_cq__ready(struct nk_gring *r)
{
	r->cq_tail = nk_ring_load_acquire(&r->cqi->tail);
	return r->cq_tail != r->cq_head;
}

#endif /* NETKERNEL_GUEST_RING_H */
