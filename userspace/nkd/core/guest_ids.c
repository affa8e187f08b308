// SPDX-License-Identifier: MIT
/* Guest id allocator: see guest_ids.h. */
#include <string.h>

#include "guest_ids.h"

void nk_guest_ids__init(struct nk_guest_ids *ids)
{
	memset(ids, 0, sizeof(*ids));
	ids->used[0] = 1; /* id 0: the NSM */
	ids->hint = 1;
}

static bool is_used(const struct nk_guest_ids *ids, uint32_t id)
{
	return ids->used[id / 64] & (1ull << (id % 64));
}

uint32_t nk_guest_ids__alloc(struct nk_guest_ids *ids)
{
	for (uint32_t id = ids->hint; id <= NK_GUEST_ID_MAX; id++) {
		if (is_used(ids, id))
			continue;
		ids->used[id / 64] |= 1ull << (id % 64);
		ids->nr_used++;
		ids->hint = id + 1;
		return id;
	}
	ids->hint = NK_GUEST_ID_MAX + 1;
	return 0;
}

void nk_guest_ids__free(struct nk_guest_ids *ids, uint32_t id)
{
	if (!id || id > NK_GUEST_ID_MAX || !is_used(ids, id))
		return;
	ids->used[id / 64] &= ~(1ull << (id % 64));
	ids->nr_used--;
	if (id < ids->hint)
		ids->hint = id;
}
