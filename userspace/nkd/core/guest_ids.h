/* SPDX-License-Identifier: MIT */
/*
 * Guest ids: a small bitmap allocator shared by every NSM. Ids are
 * 1 .. NK_GUEST_ID_MAX (0 is the NSM itself in nk_steer's maps, and the
 * afxdp NSM's per-guest maps are arrays of NK_MAX_GUESTS = 1024), and a
 * freed id is handed out again, lowest first, so attaching under ever new
 * names cannot run the id space out. An NSM keeps per-id state; it must
 * drop it in its guest_detach hook, before the id is freed, so the next
 * guest that gets the id inherits nothing.
 */
#ifndef NKD_GUEST_IDS_H
#define NKD_GUEST_IDS_H

#include <stdbool.h>
#include <stdint.h>

#define NK_GUEST_ID_MAX 1023u

struct nk_guest_ids {
	uint64_t used[(NK_GUEST_ID_MAX + 1 + 63) / 64]; /* bit 0 always set */
	uint32_t nr_used; /* ids handed out (bit 0 not counted) */
	uint32_t hint; /* lowest id that may be free */
};

void nk_guest_ids__init(struct nk_guest_ids *ids);
/* A free id (1 .. NK_GUEST_ID_MAX), or 0 when every id is in use. */
uint32_t nk_guest_ids__alloc(struct nk_guest_ids *ids);
/* Gives id back; ids not handed out are ignored. */
void nk_guest_ids__free(struct nk_guest_ids *ids, uint32_t id);
static inline bool nk_guest_ids__full(const struct nk_guest_ids *ids)
{
	return ids->nr_used >= NK_GUEST_ID_MAX;
}

#endif /* NKD_GUEST_IDS_H */
