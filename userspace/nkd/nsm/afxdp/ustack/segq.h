/* SPDX-License-Identifier: MIT */
/*
 * nk_segq: a bounded FIFO of received segments, the per-socket receive
 * queue of the TCP/IP engine. Each entry references a buffer the queue does
 * not look into (for the engine an lwIP pbuf chain): bytes are taken out
 * through the copy callback and the buffer is handed back through release
 * once it is drained. So data is copied exactly once, from the stack's
 * buffer into the caller's.
 *
 * Two ways to read: as a byte stream (TCP: reads cross entry boundaries,
 * partially read entries keep an offset) or as datagrams (UDP: one entry per
 * read, the rest of a datagram that does not fit is discarded, as recvfrom
 * does). Bounded both in entries and in bytes; a push that would exceed
 * either fails and leaves the buffer with the caller.
 *
 * Internal to the engine (ustack/); not thread-safe (the engine is
 * single-threaded). Pure: unit tested in tests/unit/test_ustack_segq.c.
 */
#ifndef NK_USTACK_SEGQ_H
#define NK_USTACK_SEGQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Copies len bytes starting at off of obj to dst; returns bytes copied. */
typedef size_t (*nk_segq_copy_fn)(void *obj, size_t off, void *dst, size_t len);
/* Gives a drained (or flushed) buffer back to its owner. */
typedef void (*nk_segq_release_fn)(void *obj);

struct nk_segq_ent {
	void *obj;
	uint32_t len; /* bytes in obj */
	uint32_t off; /* bytes already read (stream mode) */
	uint32_t addr; /* datagram source address, network order */
	uint16_t port; /* datagram source port, network order */
	uint16_t resv;
};

struct nk_segq {
	struct nk_segq_ent *ents;
	uint32_t mask; /* capacity - 1, capacity a power of two */
	uint32_t head, tail; /* free-running */
	size_t bytes; /* unread bytes queued */
	size_t max_bytes;
	nk_segq_copy_fn copy;
	nk_segq_release_fn release;
};

/*
 * Prepares q for at most max_ents entries (rounded up to a power of two)
 * and max_bytes unread bytes. Returns 0 or -EINVAL / -ENOMEM.
 */
int nk_segq__init(struct nk_segq *q, uint32_t max_ents, size_t max_bytes,
		  nk_segq_copy_fn copy, nk_segq_release_fn release);

/* Releases every queued buffer and the entry array. NULL-safe. */
void nk_segq__fini(struct nk_segq *q);

/*
 * Appends a buffer of len bytes (with a datagram source for UDP). len 0
 * is an empty datagram (UDP delivers those; a stream read passes over
 * it). Returns 0 (the queue now owns obj) or -ENOBUFS (full: obj stays
 * the caller's) or -EINVAL for len > UINT32_MAX.
 */
int nk_segq__push(struct nk_segq *q, void *obj, size_t len, uint32_t addr,
		  uint16_t port);

/*
 * Stream read: copies up to len bytes from the front, crossing entries,
 * releasing each entry it drains. Returns the bytes copied (0 when empty).
 */
size_t nk_segq__read(struct nk_segq *q, void *dst, size_t len);

/*
 * Datagram read: copies up to len bytes of the front entry to dst, stores
 * its source in *addr / *port (if not NULL) and its full length in *full,
 * then releases it (a longer datagram is truncated). Returns the bytes
 * copied, or -EAGAIN when empty.
 */
ssize_t nk_segq__pop_dgram(struct nk_segq *q, void *dst, size_t len,
			   uint32_t *addr, uint16_t *port, size_t *full);

static inline size_t nk_segq__bytes(const struct nk_segq *q)
{
	return q->bytes;
}

static inline uint32_t nk_segq__count(const struct nk_segq *q)
{
	return q->tail - q->head;
}

#endif /* NK_USTACK_SEGQ_H */
