/* SPDX-License-Identifier: MIT */
/*
 * nkd's one io_uring: it carries the kernel NSM's socket operations and
 * watches every other file descriptor nkd waits for (control sockets,
 * doorbell eventfds, pidfds, the signalfd), so the event loop sleeps in a
 * single io_uring_enter.
 *
 * user_data = kind (8 bits) | generation (24 bits) | slot (32 bits): a
 * completion is dispatched by kind, and the owner checks the generation so
 * a late completion never lands on a slot that was freed and reused.
 */
#ifndef NKD_LOOP_H
#define NKD_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

enum nk_ud_kind {
	NK_UD_IGNORE = 0, /* cancels, link timeouts: nobody cares */
	NK_UD_LISTEN, /* the control listening socket */
	NK_UD_CTL, /* a control connection: slot = client */
	NK_UD_DOORBELL, /* a guest doorbell eventfd: slot = client */
	NK_UD_SIGNAL, /* signalfd */
	NK_UD_RESOLVED, /* resolver worker finished something */
	NK_UD_PIDFD, /* hand-over child exited: slot = hand-over */
	NK_UD_KOP, /* kernel NSM: an operation, slot = op */
	NK_UD_KPOLL, /* kernel NSM: readiness poll, slot = socket */
	NK_UD_KINT, /* kernel NSM: internal request (background connect) */
	NK_UD_XPOLL, /* afxdp NSM: its packet fd or timerfd, slot = which */
	NK_UD_VM, /* a VM guest's channel or process (vm.c) */
	NK_UD__MAX
};

#define NK_UD_GEN_MASK 0xffffffu

static inline uint64_t nk_ud(enum nk_ud_kind kind, uint32_t gen, uint32_t slot)
{
	return (uint64_t)kind << 56 | (uint64_t)(gen & NK_UD_GEN_MASK) << 32 |
	       slot;
}

typedef void (*nk_cqe_fn)(void *ctx, uint32_t slot, uint32_t gen,
			  const struct io_uring_cqe *cqe);

struct nk_loop;

/* 0 and *out or -errno (with a clear message logged). */
int nk_loop__create(struct nk_loop **out);
void nk_loop__destroy(struct nk_loop *l);
void nk_loop__on(struct nk_loop *l, enum nk_ud_kind kind, nk_cqe_fn fn,
		 void *ctx);
/* An SQE to fill, submitting queued ones if the SQ is full; NULL if the
 * kernel refuses more work right now. */
struct io_uring_sqe *nk_loop__sqe(struct nk_loop *l);
/* Makes sure n SQEs can be taken in a row (linked requests). */
void nk_loop__need(struct nk_loop *l, unsigned n);
/* Dispatches every completion that is ready; returns how many. */
unsigned nk_loop__reap(struct nk_loop *l);
/* Submits queued SQEs and runs deferred task work (DEFER_TASKRUN). */
void nk_loop__kick(struct nk_loop *l);
/* Submits and sleeps until one completion or timeout_ns (< 0: forever). */
void nk_loop__wait(struct nk_loop *l, int64_t timeout_ns);
/* Multishot poll on fd; 0 or -EBUSY if no SQE. */
int nk_loop__poll(struct nk_loop *l, int fd, unsigned mask, uint64_t ud);
/* Cancels every request with this user_data (fire and forget). */
void nk_loop__cancel_ud(struct nk_loop *l, uint64_t ud);
/* Cancels every request on fd (fire and forget). */
void nk_loop__cancel_fd(struct nk_loop *l, int fd);
const char *nk_loop__mode(const struct nk_loop *l);

#endif /* NKD_LOOP_H */
