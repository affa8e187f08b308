/* SPDX-License-Identifier: MIT */
/*
 * Network Stack Module interface: the engine is the socket layer, an NSM
 * the stack below it, like Linux's generic socket code over struct
 * proto_ops. The engine validates, accounts, mirrors readiness and owns
 * what every stack shares: operation timeouts (core/optimer.c), send
 * ordering (core/sendq.c; no NSM keeps a send queue of its own) and the
 * pending error reported by SO_ERROR (s->so_error). An NSM executes socket
 * operations on some stack: "kernel" (the Linux stack through io_uring,
 * nsm/kernel/) and "afxdp" (a userspace TCP/IP stack on AF_XDP,
 * nsm/afxdp/) and "shm" (guest to guest inside nkd, nsm/shm/,
 * docs/shm-nsm.md). Adding one is one folder with one ops table,
 * listed in nsm/nsm_registry.c's built-in table (docs/nkd.md).
 *
 * Contract:
 *  - sock_open() gives the NSM a new engine socket (family/type/protocol
 *    set) and must set s->nsm_priv or fail with -errno.
 *  - one op per socket operation (bind, listen, connect, accept, send,
 *    recv, shutdown, setsockopt, getsockopt, getsockname, getpeername,
 *    ioctl) executes one validated operation of that opcode (NOP, SOCKET,
 *    CLOSE and CANCEL are the engine's) and reports its result exactly
 *    once through nk_engine__op_done(), possibly before it returns. The
 *    engine picks the op (nk_nsm__op()); an NSM never switches on
 *    NK_OP_*. A NULL op: the engine answers -EOPNOTSUPP.
 *  - op->scratch (NK_NSM_SCRATCH bytes) is the NSM's while it holds op.
 *  - cancel() asks for an operation to finish early (-ECANCELED, or what
 *    it already moved); it still completes through nk_engine__op_done().
 *    -ENOENT if unknown. The engine also cancels at an op's deadline
 *    (op->timed_out set) and turns that -ECANCELED into -EAGAIN
 *    (-ETIMEDOUT for CONNECT): an NSM keeps no timers for ops.
 *  - an NSM has at most one SEND per socket at a time, and a stream's
 *    SHUT_WR only after the SENDs before it completed (SHUT_RDWR behind
 *    SENDs arrives split: SHUT_RD, later SHUT_WR). A SEND may wait in the
 *    NSM for room; the next goes down when it completes. A non-empty
 *    s->sendq says more SENDs of the socket wait (a hint to coalesce).
 *    The engine may release the socket (sock_release()) from inside a
 *    SEND's nk_engine__op_done(): an NSM touches its socket state after
 *    that call only if it kept it alive.
 *  - GETSOCKOPT SO_ERROR reaches the NSM only when s->so_error is 0; an
 *    NSM records a background connect's error in s->so_error.
 *  - sock_release() is called once the last reference is gone; the NSM
 *    stops everything on the socket and calls nk_engine__sock_gone() when
 *    no operation of its own refers to it any more.
 *  - readiness changes are reported with nk_engine__sock_event().
 *  - poll() is for NSMs that need the loop to call them (busy stacks);
 *    returns the amount of work done. May be NULL.
 *  - guest_stats(), describe() and counters() feed nkctl; all may be
 *    NULL.
 *  - guest_attach() is called when a guest object served by this NSM is
 *    created (its id is fresh or reused), guest_detach() when it is freed
 *    (no socket of it is left), before its id goes back to the allocator:
 *    an NSM installs per-guest state in the first and removes ALL of it in
 *    the second, so a later guest with the same id inherits nothing. A
 *    guest_attach() error refuses the guest. Both may be NULL.
 */
#ifndef NKD_NSM_H
#define NKD_NSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

struct nk_engine;
struct nk_guest;
struct nk_loop;
struct nk_sock;
struct nk_req;

/*
 * Bytes in every struct nk_req (its scratch[], 16-byte aligned) that the
 * NSM may use for the operation's own state while it holds the op (the
 * kernel NSM keeps its msghdr there); never read by the engine, zeroed
 * when the engine takes the op. An NSM checks its struct fits with a
 * _Static_assert.
 */
#define NK_NSM_SCRATCH 384u

/* One socket operation (struct nk_nsm_ops). */
typedef void (*nk_nsm_op_fn)(void *priv, struct nk_req *op);

/* Data-path counters an NSM keeps per guest (afxdp: the XDP program's). */
struct nk_nsm_guest_stats {
	uint64_t packets, bytes, drops;
};

/*
 * A counter of the NSM's own network stack (afxdp: nk_ustack and its L2
 * backend), for `nkctl nsms` ("stack") and `nkctl stats`
 * (netkernel_nsm_stack_NAME_total). Counters only grow. Several with the
 * same name and a reason each are one counter by reason; they come one
 * after the other.
 */
struct nk_nsm_counter {
	const char *name; /* [a-z0-9_], static */
	const char *reason; /* [a-z0-9_] or NULL, static */
	const char *help; /* one line, static */
	uint64_t value;
};

/* The most counters() is asked for. */
#define NK_NSM_MAX_COUNTERS 64

struct nk_nsm_ops {
	const char *type;
	int (*create)(struct nk_engine *e, struct nk_loop *loop,
		      const struct nk_nsm_conf *conf, void **priv);
	void (*destroy)(void *priv);
	int (*sock_open)(void *priv, struct nk_sock *s);
	void (*sock_release)(void *priv, struct nk_sock *s);
	/*
	 * Socket operations, one per NK_OP_* the engine hands down (the
	 * socket is op->sock). Each reports its result exactly once through
	 * nk_engine__op_done(), possibly before it returns. NULL: the
	 * engine answers -EOPNOTSUPP itself.
	 */
	nk_nsm_op_fn bind, listen, connect, accept;
	nk_nsm_op_fn send, recv, shutdown;
	nk_nsm_op_fn setsockopt, getsockopt, getsockname, getpeername;
	nk_nsm_op_fn ioctl; /* op->arg: NK_IOCTL_* */
	int (*cancel)(void *priv, struct nk_req *op);
	/* Current poll(2) events of the socket, without waiting. */
	unsigned (*poll_now)(void *priv, struct nk_sock *s);
	/* Local (peer = false) or peer address for listings. */
	int (*sock_name)(void *priv, struct nk_sock *s, bool peer,
			 struct sockaddr_storage *ss, socklen_t *len);
	int (*poll)(void *priv);
	/* 0 and *out, -ENOENT if the NSM keeps none for this guest. */
	int (*guest_stats)(void *priv, uint32_t guest_id,
			   struct nk_nsm_guest_stats *out);
	/* Fills the `nkctl nsms` columns (device, addresses, queues,
	 * backend); "" for what does not apply. */
	void (*describe)(void *priv, char *dev, size_t dev_len, char *addrs,
			 size_t addrs_len, unsigned *queues, char *backend,
			 size_t backend_len);
	/* Fills up to max (NK_NSM_MAX_COUNTERS) counters of the NSM's
	 * stack, the same ones each time; returns how many. */
	unsigned (*counters)(void *priv, struct nk_nsm_counter *out,
			     unsigned max);
	int (*guest_attach)(void *priv, struct nk_guest *g);
	void (*guest_detach)(void *priv, struct nk_guest *g);
	/*
	 * For an NSM layered over a socket's home NSM (shm: a listener
	 * listens on both): the home NSM reported revents on s, which is
	 * this NSM's now. May be NULL.
	 */
	void (*lower_event)(void *priv, struct nk_sock *s, unsigned revents);
	/*
	 * s has a SEND in this NSM: is it waiting for s's own peer (a slow
	 * reader: the peer's receive window, not the shared path)? The byte
	 * scheduler does not count a guest whose every waiting SEND is so as
	 * contending (docs/nkd.md "Scheduler"). Non-blocking. May be NULL
	 * (never).
	 */
	bool (*send_peer_limited)(void *priv, struct nk_sock *s);
	/* NK_NSM_CAP_*: optional ABI features the NSM implements. */
	unsigned caps;
};

/* RECV with NK_SQE_F_BATCH; without it the engine answers -EOPNOTSUPP. */
#define NK_NSM_CAP_RECV_BATCH (1U << 0)
/*
 * An accepted socket's first readiness report (nk_engine__sock_event)
 * comes after its ACCEPT completed and says what it already has (the
 * kernel NSM arms its poll then): the engine binds the placeholder an
 * ACCEPT named (NK_SQE_F_PH) without a poll_now of its own.
 */
#define NK_NSM_CAP_ACCEPT_REPORTS (1U << 1)
/*
 * A RECV waiting in the NSM takes a sender's bytes straight from its SEND
 * (shm: one copy, guest to guest). A standing RECV, which the engine keeps
 * and sends down non-blocking, would cost a second copy through the NSM's
 * queue: the engine answers one -EOPNOTSUPP and the guest stops asking.
 */
#define NK_NSM_CAP_RECV_RENDEZVOUS (1U << 2)

extern const struct nk_nsm_ops nk_nsm_kernel_ops;
extern const struct nk_nsm_ops nk_nsm_afxdp_ops;
extern const struct nk_nsm_ops nk_nsm_shm_ops; /* nsm/shm/, nsm_shm.h */

/* Registry (nsm_registry.c). */
/* Looks an ops table up by type name ("kernel"); NULL if unknown. */
const struct nk_nsm_ops *nk_nsm__find(const char *type);
/*
 * Adds a type besides the built-in ones, before nk_engine__create():
 * -EINVAL if a mandatory op is missing, -EEXIST if the name is taken,
 * -ENOSPC when the table is full. ops must outlive the process.
 */
int nk_nsm__register(const struct nk_nsm_ops *ops);
/* The socket operation of ops for NK_OP_* opcode, NULL if none. */
nk_nsm_op_fn nk_nsm__op(const struct nk_nsm_ops *ops, uint8_t opcode);

#endif /* NKD_NSM_H */
