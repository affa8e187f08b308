/* SPDX-License-Identifier: MIT */
/*
 * Idle rests (idlerest.c, docs/nkd.md "Isolation"): a guest that spent a
 * pass's worth of budget on entries that do nothing real (in one pass or
 * over several, nothing real between) is left alone for
 * NK_IDLE_BACKOFF_NS, and the loop may sleep meanwhile.
 */
#ifndef NKD_IDLEREST_H
#define NKD_IDLEREST_H

#include <stdbool.h>
#include <stdint.h>

struct nk_engine;
struct nk_guest;

/*
 * Otherwise a guest spinning NOPs or refused entries keeps nkd's thread
 * from ever sleeping, and on a busy machine a thread that never sleeps
 * waits its turn for the CPU like any other, where one woken by a
 * bystander's packet or doorbell runs at once. A NOP ping-pong (one at a
 * time) rests too, once per 32 x weight of them: it does nothing real.
 */
#define NK_IDLE_BACKOFF_NS 500000ll

/* Part of struct nk_guest. */
struct nk_idlerest {
	int64_t until; /* ns clock its rings are skipped until; 0: not */
	uint32_t idle_units; /* cost of nothing-real entries since real work */
	uint64_t rests; /* rests begun */
};

/*
 * Whether g's rings are skipped this pass. *now: the clock, read here
 * once per pass (0: not read yet). A rest that is over ends here.
 */
bool nk_idlerest__skip(struct nk_guest *g, int64_t *now);
/*
 * After g's turn in a pass: it took `taken` entries costing `spent`
 * units, and `idle` units of the pass's idle work (engine->idle_work)
 * came from them. Units of entries that did nothing real add up over
 * passes until g does something real; when they reach its per-pass
 * budget, g rests: a spinner keeping fewer entries in flight than one
 * pass takes is rested like one that fills its SQ.
 */
void nk_idlerest__judge(struct nk_engine *e, struct nk_guest *g, unsigned taken,
			unsigned idle, unsigned spent);
/* A sleep of timeout ns (-1: forever) cut to the end of the first rest:
 * a resting guest is looked at again without a doorbell. */
int64_t nk_idlerest__clamp(struct nk_engine *e, int64_t now, int64_t timeout);

#endif /* NKD_IDLEREST_H */
