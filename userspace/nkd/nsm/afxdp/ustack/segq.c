// SPDX-License-Identifier: MIT
/* Bounded receive-segment queue; see segq.h. */
#include "segq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int nk_segq__init(struct nk_segq *q, uint32_t max_ents, size_t max_bytes,
		  nk_segq_copy_fn copy, nk_segq_release_fn release)
{
	uint32_t cap = 1;

	memset(q, 0, sizeof(*q));
	if (!max_ents || max_ents > (1u << 20) || !max_bytes || !copy ||
	    !release)
		return -EINVAL;
	while (cap < max_ents)
		cap <<= 1;
	q->ents = calloc(cap, sizeof(*q->ents));
	if (!q->ents)
		return -ENOMEM;
	q->mask = cap - 1;
	q->max_bytes = max_bytes;
	q->copy = copy;
	q->release = release;
	return 0;
}

void nk_segq__fini(struct nk_segq *q)
{
	if (!q || !q->ents)
		return;
	while (q->head != q->tail) {
		q->release(q->ents[q->head & q->mask].obj);
		q->head++;
	}
	free(q->ents);
	memset(q, 0, sizeof(*q));
}

int nk_segq__push(struct nk_segq *q, void *obj, size_t len, uint32_t addr,
		  uint16_t port)
{
	struct nk_segq_ent *e;

	if (len > UINT32_MAX)
		return -EINVAL;
	if (q->tail - q->head > q->mask || len > q->max_bytes - q->bytes)
		return -ENOBUFS;
	e = &q->ents[q->tail & q->mask];
	e->obj = obj;
	e->len = (uint32_t)len;
	e->off = 0;
	e->addr = addr;
	e->port = port;
	q->bytes += len;
	q->tail++;
	return 0;
}

static void drop_front(struct nk_segq *q)
{
	struct nk_segq_ent *e = &q->ents[q->head & q->mask];

	q->bytes -= e->len - e->off;
	q->release(e->obj);
	e->obj = NULL;
	q->head++;
}

size_t nk_segq__read(struct nk_segq *q, void *dst, size_t len)
{
	uint8_t *out = dst;
	size_t done = 0;

	while (done < len && q->head != q->tail) {
		struct nk_segq_ent *e = &q->ents[q->head & q->mask];
		size_t n = e->len - e->off;

		if (n > len - done)
			n = len - done;
		n = q->copy(e->obj, e->off, out + done, n);
		e->off += (uint32_t)n;
		q->bytes -= n;
		done += n;
		if (e->off == e->len) {
			q->release(e->obj);
			e->obj = NULL;
			q->head++;
		} else if (!n) {
			break; /* copy refused: do not spin */
		}
	}
	return done;
}

ssize_t nk_segq__pop_dgram(struct nk_segq *q, void *dst, size_t len,
			   uint32_t *addr, uint16_t *port, size_t *full)
{
	struct nk_segq_ent *e;
	size_t n;

	if (q->head == q->tail)
		return -EAGAIN;
	e = &q->ents[q->head & q->mask];
	n = e->len - e->off;
	if (full)
		*full = n;
	if (n > len)
		n = len;
	if (n)
		n = q->copy(e->obj, e->off, dst, n);
	if (addr)
		*addr = e->addr;
	if (port)
		*port = e->port;
	drop_front(q);
	return (ssize_t)n;
}
