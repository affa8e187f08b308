/* SPDX-License-Identifier: MIT */
/*
 * Rate caps per guest (ratelimit.c): a token bucket per guest and
 * direction (rate_tx=, rate_rx=, burst= in its config line).
 */
#ifndef NKD_RATELIMIT_H
#define NKD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"

struct nk_engine;
struct nk_guest;
struct nk_req;

enum { NK_RATE_TX, NK_RATE_RX, NK_RATE_DIRS };

struct nk_rate {
	struct nk_list held; /* nk_req.qlink: ops waiting for tokens */
	double tokens; /* bytes; negative: debt */
	int64_t last; /* ns clock of the last refill; 0: never */
	int64_t since; /* ns clock the wait of held's head began; 0: none */
	uint64_t passed; /* bytes moved under the cap */
	uint64_t throttled_ns; /* time with ops held, not counting since */
	uint64_t nr_held; /* ops ever held */
};

/* Part of struct nk_guest; nk_rate__guest_init() before use. */
struct nk_guest_rate {
	struct nk_rate dir[NK_RATE_DIRS];
};

void nk_rate__guest_init(struct nk_guest *g);
/*
 * op (any opcode) is about to go to its NSM: true if the engine holds it
 * until its guest's bucket has tokens again (nk_rate__run hands it down).
 * A SEND or RECV that goes down reserves op->len bytes of tokens.
 */
bool nk_rate__hold(struct nk_req *op);
/* op completed with res (bytes for SEND/RECV): the unused part of its
 * reservation is given back and what moved is counted. */
void nk_rate__done(struct nk_req *op, int res);
/* A held op leaves the bucket without going down (cancel): op->held
 * and op->qlink are the caller's. */
void nk_rate__unhold(struct nk_req *op);
/* Hands down held ops whose tokens have come; returns how many. */
unsigned nk_rate__run(struct nk_engine *e, int64_t now);
/* A sleep of timeout ns (-1: forever) cut to the first bucket refill
 * that lets a held op go. */
int64_t nk_rate__clamp(struct nk_engine *e, int64_t now, int64_t timeout);
/* Throttled time of g's direction d up to now, ns. */
uint64_t nk_rate__throttled_ns(const struct nk_guest *g, int d, int64_t now);
#endif /* NKD_RATELIMIT_H */
