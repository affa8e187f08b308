// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>

#include "bufown.h"

struct nk_bufown {
	uint32_t nr_bufs;
	uint32_t count;
	uint64_t bits[];
};

struct nk_bufown *nk_bufown__create(uint32_t nr_bufs)
{
	struct nk_bufown *b;
	size_t words = (nr_bufs + 63) / 64;

	b = calloc(1, sizeof(*b) + words * sizeof(uint64_t));
	if (!b)
		return NULL;
	b->nr_bufs = nr_bufs;
	return b;
}

void nk_bufown__destroy(struct nk_bufown *b)
{
	free(b);
}

bool nk_bufown__owned(const struct nk_bufown *b, uint32_t idx)
{
	if (idx >= b->nr_bufs)
		return false;
	return b->bits[idx / 64] & (1ULL << (idx % 64));
}

int nk_bufown__claim(struct nk_bufown *b, uint32_t idx)
{
	if (idx >= b->nr_bufs || nk_bufown__owned(b, idx))
		return -EFAULT;
	b->bits[idx / 64] |= 1ULL << (idx % 64);
	b->count++;
	return 0;
}

int nk_bufown__release(struct nk_bufown *b, uint32_t idx)
{
	if (!nk_bufown__owned(b, idx))
		return -EINVAL;
	b->bits[idx / 64] &= ~(1ULL << (idx % 64));
	b->count--;
	return 0;
}

uint32_t nk_bufown__count(const struct nk_bufown *b)
{
	return b->count;
}
