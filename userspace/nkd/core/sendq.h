/* SPDX-License-Identifier: MIT */
/*
 * Send ordering per socket in the engine (sendq.c), for every NSM.
 */
#ifndef NKD_SENDQ_H
#define NKD_SENDQ_H

#include <stdbool.h>

struct nk_engine;
struct nk_req;
struct nk_sock;

/*
 * A new op of s, before it goes to the NSM: true if the engine took it
 * (held behind earlier SENDs, or answered), false if it goes down now.
 */
bool nk_sendq__take(struct nk_sock *s, struct nk_req *op);
/* op completed: the next held op of its socket may go down. */
void nk_sendq__done(struct nk_engine *e, struct nk_req *op);
/* The last reference to s is gone: true if sock_release must wait. */
bool nk_sendq__defer_release(struct nk_sock *s);
/*
 * A held op of s went down: true if s's release waited for it and nothing
 * else of s is held (the caller releases s, and must not touch it after).
 */
bool nk_sendq__release_due(struct nk_sock *s);
/* Cancels op: here if held, else through its NSM's cancel op. */
int nk_sendq__cancel(struct nk_engine *e, struct nk_req *op);

#endif /* NKD_SENDQ_H */
