/* SPDX-License-Identifier: MIT */
/*
 * Byte scheduler across guests (sched.c, docs/nkd.md "Scheduler"; not
 * "sched.h", which would hide libc's <sched.h> on the include path):
 * weighted fair queuing of the bytes guests move through their NSM, per
 * direction, by virtual service with a bounded lead.
 *
 * Each guest and direction counts its service in normalised bytes,
 * vt += bytes * NK_SCHED_SCALE / weight. A guest contends in a direction
 * while it has ops held here, or (egress) a SEND its NSM has not finished
 * because the stack pushes back and its last SEND progressed less than
 * NK_SCHED_STALL_NS ago, or a SEND of it filled its socket's send window
 * in one of the engine's last NK_SCHED_PASSES loop passes (nkd is the
 * bottleneck), or a SEND of a whole data buffer of it completed less than
 * NK_SCHED_RX_NS ago (a bulk writer between two writes) -- these three
 * not while every SEND it has in its NSM waits
 * for its own peer (the NSM's send_peer_limited: a slow reader, not the
 * shared path) --, or (ingress) a RECV of it filled its buffer less than
 * NK_SCHED_RX_NS ago (more data was waiting). The last two do not count
 * for a guest with a rate cap in that direction (its cap is its limit). An op of a contending
 * guest goes down only while its vt is at most NK_SCHED_LAG bytes (at
 * weight 1) ahead of the least-served other contending guest; otherwise
 * it waits here until that guest catches up or stops contending. A guest
 * that starts contending starts level with the least-served contender,
 * so idle time earns no credit. With no other contender nothing waits:
 * the scheduler is work-conserving.
 *
 * The arithmetic is inline here so tests/unit/test_sched.c runs it alone.
 */
#ifndef NKD_NKSCHED_H
#define NKD_NKSCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"

struct nk_engine;
struct nk_guest;
struct nk_req;

enum { NK_SCHED_TX, NK_SCHED_RX, NK_SCHED_DIRS };

/* vt units per byte at weight 1: weights 1..100 divide it with little loss */
#define NK_SCHED_SCALE 5040u
/* How far (bytes at weight 1) a guest may lead the least-served one: two
 * of the largest SENDs (region.h's buffer), so one op never waits for
 * its own size. */
#define NK_SCHED_LAG (256u * 1024u)
/* A SEND waiting in its NSM this long without progress (a peer that does
 * not read) stops holding other guests back. */
#define NK_SCHED_STALL_NS 1000000000ll
/* A guest whose send window filled in one of the engine's last this many
 * loop passes still offers: its program needs a moment to refill it. */
#define NK_SCHED_PASSES 4u
/*
 * A guest with ops waiting gets one handed down at least this often,
 * whatever the others do: the NSM's send_peer_limited tells a flow its own
 * slow reader holds back from one the shared bottleneck slows, but not
 * every NSM answers, nor at once, and a guest whose contending flow
 * crawls must not stop the others.
 */
#define NK_SCHED_WAIT_NS 250000000ll
/* A guest whose RECV filled its buffer this recently is backlogged; so is
 * one whose SEND of a whole buffer completed this recently (its program
 * wrote at least a buffer at once and is on its way with the next). */
#define NK_SCHED_RX_NS 2000000ll
/* How long a guest's "its SENDs wait for their own peers" answer is
 * kept before the NSM is asked again (a pass over its sockets). */
#define NK_SCHED_PEER_NS 10000000ll

struct nk_sched_q {
	struct nk_list held; /* nk_req.qlink: ops waiting for their turn */
	uint64_t vt; /* normalised service, wraps (compare with nk_sched__lead) */
	uint32_t nr_held;
	uint32_t busy; /* tx: SENDs the NSM has not finished */
	int64_t last; /* ns: tx: last SEND began or ended; rx: last full RECV */
	int64_t since; /* ns clock held's head began to wait; 0: none */
	int64_t passed; /* ns clock a held op of it last went down */
	uint64_t seen; /* tx: loop pass a SEND of it filled its window */
	int64_t full; /* tx: ns clock a whole-buffer SEND of it completed */
	int64_t peer_at; /* tx: ns clock peer_limited was last found */
	bool peer_limited; /* tx: its SENDs all wait for their own peers */
	uint64_t nr_peer_limited; /* tx: times found so */
	uint64_t bytes; /* bytes moved */
	uint64_t nr_holds; /* ops ever held */
	uint64_t held_ns; /* time with ops held, not counting since */
};

/* Part of struct nk_guest; nk_sched__guest_init() before use. */
struct nk_guest_sched {
	struct nk_sched_q dir[NK_SCHED_DIRS];
};

/* Normalised cost of bytes at weight (0 counts as 1). */
static inline uint64_t nk_sched__cost(uint64_t bytes, uint32_t weight)
{
	return bytes * NK_SCHED_SCALE / (weight ? weight : 1);
}

/* How far a leads b in vt (negative: behind); wrap-safe. */
static inline int64_t nk_sched__lead(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b);
}

/*
 * May a guest at vt go, the least-served other contender being at min?
 * The lead allowed is NK_SCHED_LAG bytes at weight 1 (a weight-w guest's
 * bytes cost 1/w as much, so its lead holds w times the bytes).
 */
static inline bool nk_sched__may_go(uint64_t vt, uint64_t min)
{
	return nk_sched__lead(vt, min) <=
	       (int64_t)nk_sched__cost(NK_SCHED_LAG, 1);
}

/* A guest that starts contending: level with the least-served contender
 * min, never back. */
static inline uint64_t nk_sched__catch_up(uint64_t vt, uint64_t min)
{
	return nk_sched__lead(vt, min) < 0 ? min : vt;
}

void nk_sched__guest_init(struct nk_guest *g);
/*
 * op is about to go to its NSM: true if the engine holds it until its
 * guest's turn (nk_sched__run hands it down). SENDs and RECVs only.
 */
bool nk_sched__hold(struct nk_req *op);
/* op completed with res: counts what moved. */
void nk_sched__done(struct nk_req *op, int res);
/* A held op leaves without going down (cancel); op->held is the caller's. */
void nk_sched__unhold(struct nk_req *op);
/* Hands down held ops whose turn came; returns how many. */
unsigned nk_sched__run(struct nk_engine *e, int64_t now);
/* A sleep of timeout ns (-1: forever) cut so held ops are looked at when
 * a contender's activity runs out. */
int64_t nk_sched__clamp(struct nk_engine *e, int64_t now, int64_t timeout);
/* Time g's direction d had ops held, up to now, ns. */
uint64_t nk_sched__held_ns(const struct nk_guest *g, int d, int64_t now);

#endif /* NKD_NKSCHED_H */
