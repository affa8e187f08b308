/* SPDX-License-Identifier: MIT */
/*
 * Ring index helpers shared by the shim and nkd. Both sides use these so the
 * memory-ordering rules of docs/abi.md live in one place.
 */
#ifndef NETKERNEL_RING_H
#define NETKERNEL_RING_H

#include <stdint.h>

#include "netkernel/abi.h"

/* Pairs with nk_ring_store_release() of the peer: entries before index. */
static inline uint32_t nk_ring_load_acquire(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Publishes every entry written before it to the peer's acquire load. */
static inline void nk_ring_store_release(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Own index: only this side writes it, so a relaxed load is enough. */
static inline uint32_t nk_ring_load_relaxed(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/*
 * Full barrier between publishing an index and reading the peer's
 * NEED_WAKEUP flag (and between setting NEED_WAKEUP and re-checking the
 * ring before sleeping): without it a store-load reordering lets both sides
 * sleep with work pending.
 */
static inline void nk_ring_fence(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline uint32_t nk_ring_count(uint32_t head, uint32_t tail)
{
	return tail - head; /* free-running: wraps correctly */
}

#endif /* NETKERNEL_RING_H */
