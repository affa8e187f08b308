/* SPDX-License-Identifier: MIT */
/*
 * Standing receives (rxpark.c, docs/abi.md §5 "Standing receive"): a
 * stream RECV that stays armed in the engine while its socket is empty and
 * pushes the next data into the guest's buffer when it arrives.
 */
#ifndef NKD_RXPARK_H
#define NKD_RXPARK_H

#include <stdbool.h>

struct nk_engine;
struct nk_req;
struct nk_sock;

/*
 * A RECV with NK_SQE_F_PREFETCH and without NK_SQE_F_NONBLOCK, set up and
 * counted: true if it is kept here (parked, its MORE CQE posted), false if
 * it goes to the NSM now (always as a non-blocking try).
 */
bool nk_rxpark__start(struct nk_req *op);
/* Its try found nothing (res): true if parked again, no CQE to post. */
bool nk_rxpark__again(struct nk_req *op, int res);
/*
 * Data, an end or an error arrived (revents): true if s's standing RECV
 * takes it, in which case the placeholder waits for its CQE.
 */
bool nk_rxpark__wake(struct nk_engine *e, struct nk_sock *s, unsigned revents);
/* Sends the woken ones down; once per loop pass. Returns how many. */
unsigned nk_rxpark__run(struct nk_engine *e);
/* CANCEL, close or teardown: true if op was kept here (now done). */
bool nk_rxpark__cancel(struct nk_req *op);
/* After a standing RECV's final CQE was posted. */
void nk_rxpark__done(struct nk_req *op, int res);

#endif /* NKD_RXPARK_H */
