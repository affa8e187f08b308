/* SPDX-License-Identifier: MIT */
/*
 * Operation timeouts in the engine (optimer.c): one deadline list for
 * every NSM, driven by the run loop.
 */
#ifndef NKD_OPTIMER_H
#define NKD_OPTIMER_H

#include <stdint.h>

struct nk_engine;
struct nk_req;

/* Starts op's timeout (op->timeout_ms, none if 0) from now. */
void nk_optimer__add(struct nk_engine *e, struct nk_req *op, int64_t now);
/* Stops it (op completed); harmless if none. */
void nk_optimer__del(struct nk_req *op);
/* The earliest deadline (ns clock), 0 if none. */
int64_t nk_optimer__next(const struct nk_engine *e);
/* A sleep of timeout ns (-1: forever) cut to the earliest deadline. */
int64_t nk_optimer__clamp(const struct nk_engine *e, int64_t now,
			  int64_t timeout);

#endif /* NKD_OPTIMER_H */
