/* SPDX-License-Identifier: MIT */
/*
 * Pure-ACK coalescing for one TX batch: a pure ACK that a newer, higher
 * ACK of the same connection supersedes before the batch is kicked is never
 * sent. lwIP acknowledges every second segment, so a poll pass that takes
 * in a burst of N segments sends N/2 ACKs; in copy mode each one runs the
 * peer's ACK processing inside nkd's sendto(). Duplicate ACKs (same
 * acknowledgment number) are all kept: the peer's fast retransmit counts
 * them.
 */
#ifndef NK_USTACK_ACKQ_H
#define NK_USTACK_ACKQ_H

#include <stddef.h>
#include <stdint.h>

#define NK_ACKQ_MAX 16 /* connections with a held ACK per batch */
#define NK_ACKQ_FRAME 64 /* Ethernet + IPv4 (no options) + TCP (no options) */

struct nk_ackq_ent {
	uint8_t frame[NK_ACKQ_FRAME];
	uint16_t len;
	uint32_t ack; /* host order */
};

struct nk_ackq {
	unsigned n;
	uint64_t coalesced; /* ACKs never sent: superseded while held */
	struct nk_ackq_ent e[NK_ACKQ_MAX];
};

typedef void (*nk_ackq_emit_fn)(void *arg, const uint8_t *frame, size_t len);

/*
 * An outgoing Ethernet frame. Returns 1 if the queue took it (a pure ACK:
 * copied, held until nk_ackq__drain or until superseded), 0 if the caller
 * sends it now. Before a 0, a held ACK of the same connection is either
 * emitted (so the order on the wire stays) or dropped when this frame
 * carries the same or a newer acknowledgment.
 */
int nk_ackq__out(struct nk_ackq *q, const uint8_t *frame, size_t len,
		 nk_ackq_emit_fn emit, void *arg);

/* Emits every held ACK (before the batch is kicked). */
void nk_ackq__drain(struct nk_ackq *q, nk_ackq_emit_fn emit, void *arg);

#endif
