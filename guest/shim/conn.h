/* SPDX-License-Identifier: MIT */
/*
 * The process's connection to nkd, inside the shim: one global, nk_conn,
 * made of one object per concern. Only the files that implement the
 * connection include this header; the rest of the shim uses shim.h.
 *
 *   struct nk_attach   conn.c     HELLO/WELCOME, the mapped region, state,
 *                                 liveness, reattach generation, fork,
 *                                 internal fds; config and logging
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

#define NK_SLICE_NS (200 * 1000000LL) /* longest sleep between checks */
#define NK_SPIN_NS (50 * 1000LL) /* spin before sleeping */
#define NK_SPIN_QUICK_NS (200 * 1000LL) /* ...for an op nkd answers at once */
/* Longest sleep between looks at the SQ head (nk_ring__wait_taken). */
#define NK_TAKEN_SLICE_NS (100 * 1000LL)
/* epoll_wait/poll spin this long while the process is talking to nkd... */
#define NK_MUX_SPIN_NS (50 * 1000LL)
/* ...that is, submitted something this recently. */
#define NK_MUX_ACTIVE_NS (1000 * 1000LL)
/*
 * Caps with at most 2 online CPUs, where a spin takes nkd's or the peer's
 * core (netkernel/spin.h, docs/shim.md). Not for the multiplexers: a round
 * trip through nkd (~35 us) must fit in their spin, or a ping-pong pays a
 * wake-up and a run-queue wait each way (sockperf p50 went 35 -> 175 us
 * with a 20 us cap on the loaded 2-core machine).
 */
#define NK_SPIN_FEW_CPUS_NS (20 * 1000LL)
#define NK_MUX_SPIN_FEW_CPUS_NS NK_MUX_SPIN_NS
#define NK_CTL_TIMEOUT_S 5 /* a control reply later than this: nkd hung */
#define NK_EPENDING 1 /* a signal is pending: handled like EINTR */

/* user_data tags: sync ops are 8-aligned pointers (tag 0). */
#define UD_TAG_MASK 7u
#define UD_SEND 1u /* async SEND, buffer index in the upper bits */
#define UD_IGNORE 2u /* fire-and-forget (CLOSE, CANCEL) */
#define UD_PREFETCH 3u /* read-ahead RECV, buffer index in the upper bits */
#define UD_BARRIER 4u /* NOP barrier, its sequence number in the upper bits */
/* Longest a multiplexer waits for nkd to catch up with this process. */
#define NK_BARRIER_NS (2 * 1000 * 1000LL)
/* VM mode: how long a barrier waits for nk-vmagent's placeholders. */
#define NK_VM_BARRIER_NS (500 * 1000 * 1000LL)

/* The attachment: what HELLO/WELCOME gave us (conn.c). */
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
	/* Control messages are serialised by ctl_lock; one buffer is enough. */
	union {
		struct nk_ctl_hdr hdr;
		uint8_t b[NK_CTL_MAX_MSG];
	} buf;
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

/* Between the connection's files (each defined in the file named). */
/* conn.c: nkd is gone for this process; wake everyone. */
NK_HIDDEN void nk_attach__mark_dead(const char *why);
/* conn.c: cheap liveness checks (shared header, control socket). */
NK_HIDDEN void nk_attach__check_alive(void);
/* conn.c: nkd still up, by words in the shared header (cheap). */
NK_HIDDEN bool nk_attach__host_ok(void);
/*
 * ctlsock.c, callers hold ctl.ctl_lock: send one control message (with
 * fds); take the reply to seq of type into ctl.buf (fds, up to 3, too).
 */
NK_HIDDEN int nk_ctlchan__send(const void *msg, size_t len, const int *fds,
			       int nfds);
NK_HIDDEN int nk_ctlchan__recv(uint64_t seq, uint32_t type, int *fds,
			       int *nfds);
/* bufpool.c: give back a buffer from nk_buf__alloc_send(). */
NK_HIDDEN void nk_bufpool__free_send(int idx);
/* submit.c: ring the doorbell a plugged section held back. */
NK_HIDDEN void nk_submit__plug_flush(void);
/* submit.c: fire-and-forget op (CLOSE, CANCEL); its CQE is ignored. */
NK_HIDDEN void nk_submit__ignored(uint8_t opcode, uint32_t handle,
				  uint64_t arg64);
/* waiter.c: the connection went away or changed: wake every sleeper. */
NK_HIDDEN void nk_waiter__wake_all(void);
NK_HIDDEN void nk_waiter__watchdog_start(void);
/* waiter.c: reap the CQ; called with w.cq_lock held. */
NK_HIDDEN bool nk_waiter__reap_locked(void);
/*
 * waiter.c: wait until op is done (or, op NULL, the reaper generation
 * moved past since), the deadline passed or nkd died.
 */
struct nk_sigsnap;
NK_HIDDEN int nk_waiter__wait(struct nk_call *op, uint32_t since,
			      int64_t deadline, bool intr, int64_t spin,
			      const struct nk_sigsnap *from);

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
