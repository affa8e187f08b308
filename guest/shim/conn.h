/* SPDX-License-Identifier: MIT */
/*
 * The process's connection to nkd, inside the shim: one global, nk_conn,
 * made of one object per concern. Only the files that implement the
 * connection include this header; the rest of the shim uses shim.h.
 *
 *   struct nk_attach   attach.c   HELLO/WELCOME, the mapped region, state,
 *                                 liveness, reattach generation, fork
 *   struct nk_ctlchan  ctlsock.c  control socket requests, placeholder pool
 *   struct nk_bufpool  bufpool.c  data-area buffers, send window accounting
 *   struct nk_submit   submit.c   SQ submission, doorbell, NOP barriers,
 *                                 VM-mode sync
 *   struct nk_waiter   waiter.c   CQ reaping, sleeping, wake-ups, watchdog
 *
 * Locks, always taken in this order: at.attach_lock -> ctl.ctl_lock ->
 * w.cq_lock -> sq.sq_lock -> bp.buf_lock. The fd table has its own locks
 * and is never held while taking these.
 */
#ifndef NK_SHIM_CONN_H
#define NK_SHIM_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "netkernel/guest_ring.h"
#include "netkernel/spin.h"
#include "shim.h"

/* The attachment: what HELLO/WELCOME gave us (attach.c). */
struct nk_attach {
	atomic_int state; /* enum nk_state */
	pthread_mutex_t attach_lock;
	int bell_fd; /* doorbell: eventfd, or nk-vmagent's stream (VM) */
	uint8_t *region;
	size_t region_size;
	struct nk_region_hdr *hdr;
	struct nk_gring ring; /* queue set 0 (netkernel/guest_ring.h) */
	uint64_t epoch, features;
	/* VM mode (abi.md §9): the bell is a stream from nk-vmagent, and
	 * the reaper sleeps on it instead of FUTEX_WAIT on the CQ tail. */
	bool vm_wait;
	bool child_have_token;
	uint64_t child_token;
	atomic_int dead_logged;
	/* Bumped when a connection is retired (all locks held): an op
	 * submitted on an older one never completes. */
	atomic_uint conn_gen;
};

/* The control socket and the placeholder pool channel (ctlsock.c). */
struct nk_ctlchan {
	pthread_mutex_t ctl_lock; /* serialises requests and ctl_buf */
	int ctl_fd;
	int pool_fd; /* placeholder pool channel from nkd (abi.md §6) */
	uint64_t seq;
};

struct bufmeta {
	struct nk_sock *sock; /* owner of an async SEND, else NULL */
	uint32_t bytes;
	uint32_t charge; /* what the SEND counts against the window */
};

/* The data area's buffers and the send window (bufpool.c). */
struct nk_bufpool {
	pthread_mutex_t buf_lock;
	uint8_t *data;
	uint32_t buf_size, nr_bufs, send_window, send_charge;
	uint32_t *free_bufs, nfree;
	/* Buffers async SENDs hold, and how many they may (the rest is kept
	 * for receives, accepts and options: sends never starve them). */
	uint32_t send_bufs, send_cap;
	struct bufmeta *meta;
	atomic_llong inflight; /* SEND bytes of all sockets */
};

/* Putting SQEs on the ring (submit.c). */
struct nk_submit {
	pthread_mutex_t sq_lock;
	_Atomic int64_t last_submit_ns;
	/*
	 * Barriers (abi.md §5, NOP): set when an SQE that changes a peer's
	 * readiness (SEND, SHUTDOWN, CLOSE) was published since the last one.
	 */
	atomic_int barrier_dirty;
	atomic_uint barrier_seq, barrier_done;
	/* VM mode: nkd's placeholder ops the last NOP covers (abi.md §9). */
	atomic_uint barrier_ph;
	/* VM mode: PH_BINDs sent on this connection (vm_ph_bound, §9). */
	atomic_uint vm_binds;
};

/* Waiting for completions (waiter.c). */
struct nk_waiter {
	pthread_mutex_t cq_lock;
	bool reaper_busy;
	struct nk_spin wait_spin; /* the reaper's (only it touches it) */
	int nfollowers;
	uint32_t gen; /* futex word, __atomic ops */
	int64_t last_check;
	atomic_uint nwaiters; /* threads asleep in a wait (futex word) */
	atomic_int wd_parked; /* watchdog sleeps on nwaiters: wake it */
	atomic_int wd_seen; /* a wait began since the watchdog last looked */
	bool wd_running;
};

/* bufpool.c: give back a buffer from nk_buf__alloc_send(). */
NK_HIDDEN void nk_bufpool__free_send(int idx);

struct nk_conn {
	struct nk_attach at;
	struct nk_ctlchan ctl;
	struct nk_bufpool bp;
	struct nk_submit sq;
	struct nk_waiter w;
};

extern struct nk_conn nk_conn NK_HIDDEN;
/* The connection files' short name for it. */
#define C nk_conn

#endif /* NK_SHIM_CONN_H */
