/* SPDX-License-Identifier: MIT */
/*
 * Host side of one queue set: consume the guest's SQ, produce its CQ.
 *
 * nkd keeps private copies of the indices it owns (SQ head, CQ tail) and
 * of the layout, so a guest scribbling over them changes nothing for nkd.
 * The peer's indices are checked on every load: a jump (more entries than
 * the ring holds) or a move backwards is a protocol violation (-EPROTO) and
 * the caller disconnects the guest.
 */
#ifndef NKD_HOST_RING_H
#define NKD_HOST_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "netkernel/abi.h"

struct nk_hring;

/*
 * desc is nkd's own copy of the queue set layout (never re-read from the
 * region). NULL with errno = EINVAL if it does not fit inside region_size.
 */
struct nk_hring *nk_hring__create(void *region, uint64_t region_size,
				  const struct nk_qset_desc *desc);
void nk_hring__destroy(struct nk_hring *r);

/*
 * Copies the next SQE out of shared memory once: 1 if *out holds one, 0 if
 * the ring is empty, -EPROTO on an index jump. Does not consume it.
 */
int nk_hring__sq_peek(struct nk_hring *r, struct nk_sqe *out);
/* Consumes the entry returned by the last peek and publishes the head. */
void nk_hring__sq_consume(struct nk_hring *r);
/* True if the guest published entries nkd has not consumed. */
bool nk_hring__sq_pending(struct nk_hring *r);
/* Sets or clears NK_RING_NEED_WAKEUP in the SQ flags (nkd sleeping). */
void nk_hring__sq_need_wakeup(struct nk_hring *r, bool on);

/*
 * CQ slots free after counting completions already promised to SQEs taken
 * but not completed; -EPROTO if the guest's CQ head is out of range.
 */
int nk_hring__cq_room(struct nk_hring *r);
/* Promise a CQ slot to an SQE being taken. */
void nk_hring__cq_reserve(struct nk_hring *r);
/* Gives back a promised slot without posting (never used for live SQEs). */
void nk_hring__cq_unreserve(struct nk_hring *r);
/* Writes one CQE in a promised slot and publishes the tail (release). */
void nk_hring__cq_post(struct nk_hring *r, const struct nk_cqe *cqe);
/*
 * After a batch of posts: full fence, then FUTEX_WAKE the CQ tail if the
 * guest asked for a wake-up. Returns true if it woke the guest.
 */
bool nk_hring__cq_wake(struct nk_hring *r);
uint32_t nk_hring__reserved(const struct nk_hring *r);
uint32_t nk_hring__sq_entries(const struct nk_hring *r);

#endif /* NKD_HOST_RING_H */
