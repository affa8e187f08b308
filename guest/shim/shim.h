/* SPDX-License-Identifier: MIT */
/*
 * libnkshim internals. Nothing here is exported from the shared object:
 * libnkshim.map lists the interposed libc symbols and hides the rest.
 *
 * Layers, bottom up:
 *   real.c      the libc functions we interpose, resolved with RTLD_NEXT;
 *   fdtable.c   fd -> socket object table, refcounted socket objects;
 *   conn.c      attach to nkd: control socket, region, liveness, fork;
 *   bufpool.c, submit.c, waiter.c
 *               buffers, SQ submission, waiting for completions (the
 *               connection's objects are in conn.h);
 *   sock.c      socket operations on socket objects, as ring entries;
 *   cmsg.c      ancillary data of datagram sockets;
 *   proc.c      fork and exec hand-over;
 *   resolve.c   getaddrinfo & co through nkd;
 *   intercept.c the exported wrappers: decide shim or libc, set errno.
 * Internal functions return 0 / a count, or -errno; only intercept.c,
 * proc.c and resolve.c touch errno for the application.
 */
#ifndef NK_SHIM_H
#define NK_SHIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include "netkernel/abi.h"
#include "netkernel/ctl.h"

#define NK_HIDDEN __attribute__((visibility("hidden")))

/* ------------------------------------------------------------------------ */
/* real.c: libc's own implementations. */

struct nk_real {
	int (*socket)(int, int, int);
	int (*socketpair)(int, int, int, int[2]);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*shutdown)(int, int);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *,
			    socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int,
			struct timespec *);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int,
			  const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	long (*syscall)(long, ...);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	ssize_t (*sendfile64)(int, int, off_t *, size_t);
	ssize_t (*__read_chk)(int, void *, size_t, size_t);
	ssize_t (*__recv_chk)(int, void *, size_t, size_t, int);
	ssize_t (*__recvfrom_chk)(int, void *, size_t, size_t, int,
				  struct sockaddr *, socklen_t *);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*close)(int);
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	pid_t (*fork)(void);
	pid_t (*_Fork)(void);
	void (*_exit)(int) __attribute__((noreturn));
	void (*_Exit)(int) __attribute__((noreturn));
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	void (*freeaddrinfo)(struct addrinfo *);
	struct hostent *(*gethostbyname)(const char *);
	struct hostent *(*gethostbyname2)(const char *, int);
	int (*gethostbyname_r)(const char *, struct hostent *, char *, size_t,
			       struct hostent **, int *);
	int (*gethostbyname2_r)(const char *, int, struct hostent *, char *,
				size_t, struct hostent **, int *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int,
			   const sigset_t *);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *,
		     const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *,
		       const struct timespec *, const sigset_t *);
};

extern struct nk_real nk_real NK_HIDDEN;
extern atomic_int nk_real_ready NK_HIDDEN;
NK_HIDDEN void nk_real__init(void);

/* The libc function fn; resolves all of them on first use. */
#define REAL(fn)                                                      \
	(__builtin_expect(atomic_load_explicit(&nk_real_ready,        \
					       memory_order_acquire), \
			  1)                                          \
		 ? nk_real.fn                                         \
		 : (nk_real__init(), nk_real.fn))

/* ------------------------------------------------------------------------ */
/* fdtable.c: socket objects and the fd table. */

/*
 * One guest socket as the process sees it. Several fds (dup) may name it;
 * `fdrefs` counts them and the last one going sends NK_OP_CLOSE. `refs`
 * keeps the memory alive: one per fd slot, one per operation using it, one
 * per SEND in flight. Objects are never returned to malloc (see
 * fdtable.c), so a reader racing with the last put is safe.
 */
/*
 * What it takes to make a socket again on a restarted nkd (reattach.c):
 * the bound address (as nkd reported it, so an ephemeral port stays),
 * the backlog, a connected datagram socket's peer, and the options the
 * program set, in order (same level/name replaces).
 */
#define NK_REPLAY_OPTS 8
#define NK_REPLAY_OPTLEN 16
struct nk_replay {
	uint8_t bound, connected, nopts;
	uint8_t forked; /* shared with another process by fork */
	uint8_t accepted; /* this process called accept on it */
	int backlog;
	struct nk_sockaddr addr, peer;
	struct {
		int level, name;
		uint32_t len;
		uint8_t val[NK_REPLAY_OPTLEN];
	} opt[NK_REPLAY_OPTS];
};

struct nk_sock {
	atomic_uint refs;
	atomic_uint fdrefs;
	uint32_t handle;
	int domain, type, protocol;
	atomic_int nonblock; /* O_NONBLOCK of the open file, as set by app */
	atomic_int listening;
	/*
	 * Stream: known connected or connecting, so an empty placeholder
	 * means EAGAIN. Until then a recv asks nkd, whose socket says
	 * ENOTCONN where the kernel would.
	 */
	atomic_int rx_exact;
	/* Options set that make recvmsg return control messages (cmsg.c). */
	atomic_uint rx_cmsg;
	atomic_int pending_err; /* async SEND error, reported once */
	atomic_llong inflight; /* SEND bytes queued to nkd, not completed */
	/* The same SENDs as nkd counts them against the window (abi.md §5) */
	atomic_llong charged;
	atomic_uint send_seq; /* SQ tail after the last SEND was published */
	/*
	 * A send may go without waiting for its result: the socket is known
	 * connected (connect, accept) or a SEND on it succeeded. Until then a
	 * send waits for nkd's answer, so EDESTADDRREQ, EPIPE on a socket
	 * that never connected and the like come back from that call.
	 */
	atomic_int tx_ok;
	/*
	 * nkd said the peer is on another host (NK_CQE_F_REMOTE): what we
	 * send on it cannot make one of our sockets readable, so it needs
	 * no barrier before epoll/poll (abi.md §5, NOP).
	 */
	atomic_int peer_remote;
	/* Send window once SO_SNDBUF shrank it (abi.md §5); 0: the header's */
	atomic_uint window;
	atomic_int closing; /* no fd left: CLOSE sent or being sent */
	atomic_int close_sent;
	atomic_int wr_shut; /* shutdown(SHUT_WR/RDWR) done: send is EPIPE */
	atomic_llong rcvtimeo_us, sndtimeo_us; /* 0 = none */
	/* placeholder app end (nk_sock__ino: 0 until someone asks) */
	uint64_t dev, ino;
	struct nk_sock *next; /* free list or close queue */
	/*
	 * Receive read-ahead (stream sockets): at most one RECV with
	 * NK_SQE_F_PREFETCH, then its result kept for the next recv().
	 * pf_state moves NONE -> INFLIGHT (recv, under rx_lock) -> DONE
	 * (completion) -> NONE (recv under rx_lock, or the last close:
	 * whoever swaps DONE for NONE frees the buffer). A standing RECV
	 * (docs/shim.md) goes INFLIGHT -> PARKED (nkd's NK_CQE_F_MORE: the
	 * socket was empty) -> DONE when data comes.
	 */
	pthread_mutex_t rx_lock;
	atomic_int pf_state;
	int pf_idx; /* data buffer */
	int32_t pf_res; /* the RECV's result */
	uint32_t pf_off; /* bytes of pf_res already handed out */
	/* Stream RECVs nkd answered with data (under rx_lock): a socket
	 * that gets a second request earns a standing RECV. */
	uint32_t rx_reads;
	/*
	 * Datagram sockets use the same state for batches (rxbatch.c):
	 * pf_res is the records left, pf_off the next one's offset, pf_end
	 * the bytes nkd filled (the CQE's aux).
	 */
	uint32_t pf_end;
	atomic_int rx_nobatch; /* the NSM answered a batch -EOPNOTSUPP */
	atomic_int rx_batching; /* a thread has a batch RECV out (rxbatch.c) */
	/* No standing RECV: another process may read it (inherited, or
	 * forked since), whose data it would take; or SO_RCVLOWAT is set,
	 * which it would not honour. */
	atomic_int rx_nopush;
	/*
	 * The read that filled the stash or batch took all the socket had
	 * (a stream: less than a buffer; a batch: neither 64 datagrams nor
	 * a full buffer), so once it is handed out and a standing RECV is
	 * sent (pf_quiet), an empty placeholder means "nothing yet" without
	 * waiting for nkd's answer.
	 */
	bool pf_full, pf_quiet;
	/* DNS sent to the guest's nameserver dns_orig went to dns_to, the
	 * NSM's (dnsmap.c); answers from dns_to show as from dns_orig. */
	atomic_int dns_mapped;
	struct nk_sockaddr dns_orig, dns_to;
	struct nk_replay rp; /* for a restarted nkd (reattach.c) */
};

enum { NK_PF_NONE = 0, NK_PF_INFLIGHT, NK_PF_DONE, NK_PF_PARKED };

struct nk_fdtab {
	uint32_t size;
	struct nk_fdtab *retired; /* smaller tables readers may still use */
	_Atomic(struct nk_sock *) slot[];
};

extern _Atomic(struct nk_fdtab *) nk_fdtab_cur NK_HIDDEN;

/* Called when the last fd naming a socket is gone (fdrefs hit zero). */
extern void (*nk_sock_last_close_hook)(struct nk_sock *s) NK_HIDDEN;

NK_HIDDEN int nk_fdtab__init(void);
NK_HIDDEN struct nk_sock *nk_sock__alloc(void);
NK_HIDDEN void nk_sock__get(struct nk_sock *s);
NK_HIDDEN void nk_sock__put(struct nk_sock *s);
/* Drop an fd reference returned by nk_fdtab__remove(). */
NK_HIDDEN void nk_sock__fdput(struct nk_sock *s);
/* The placeholder's st_ino, found with fstat(fd) the first time: a
 * socket bound with its SQE (NK_SQE_F_PH) did not need it to be made. */
NK_HIDDEN uint64_t nk_sock__ino(struct nk_sock *s, int fd);
/* Referenced socket at fd, or NULL. */
NK_HIDDEN struct nk_sock *nk_fdtab__get(int fd);
/*
 * Make fd name s (takes an fd reference for it). A socket that fd named
 * before (the app closed it behind our back) is returned in *old, carrying
 * its fd reference, for nk_sock__fdput().
 */
NK_HIDDEN int nk_fdtab__install(int fd, struct nk_sock *s,
				struct nk_sock **old);
/* Clear fd; returns what it named, with its fd reference, or NULL. */
NK_HIDDEN struct nk_sock *nk_fdtab__remove(int fd);
/* Number of slots (every installed fd is below it). */
NK_HIDDEN uint32_t nk_fdtab__size(void);
NK_HIDDEN uint32_t nk_fdtab__count(void);

/* Fast path for read/write/close: one bounds check, one atomic load. */
static inline bool nk_fdtab__maybe(int fd)
{
	struct nk_fdtab *t =
		atomic_load_explicit(&nk_fdtab_cur, memory_order_acquire);

	return t && (unsigned int)fd < t->size &&
	       atomic_load_explicit(&t->slot[fd], memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* conn.c, bufpool.c, submit.c, waiter.c: the connection to nkd (conn.h). */

enum nk_state {
	NK_ST_INIT = 0, /* not attached yet (attach on first need) */
	NK_ST_UP, /* attached, rings usable */
	NK_ST_CHILD, /* forked child: re-attach with the fork token */
	NK_ST_UNREACHABLE, /* nkd could not be reached: fallback applies */
	NK_ST_DEAD, /* nkd went away mid-run */
};

enum nk_fallback { NK_FB_FAIL = 0, NK_FB_PASSTHROUGH };

struct nk_cfg {
	char socket_path[108];
	char guest[NK_GUEST_NAME_MAX];
	enum nk_fallback fallback;
	int debug;
	char shim_path[4096]; /* our own file, for LD_PRELOAD across exec */
};

extern struct nk_cfg nk_cfg NK_HIDDEN;

/* A synchronous operation: the waiter owns it, usually on its stack. */
struct nk_call {
	struct nk_cqe cqe;
	atomic_int done;
	uint32_t conn_gen; /* the connection it was submitted on (conn.c) */
};

NK_HIDDEN void nk_cfg__load(void);
/*
 * Starts a detached helper thread of the shim (liveness watchdog, restart
 * monitor) that is born with every signal blocked, so it never takes one
 * meant for the application. 0 or -errno.
 */
NK_HIDDEN int nk_thread__start_quiet(void *(*fn)(void *), size_t stack);
NK_HIDDEN void nk_log(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
NK_HIDDEN void nk_dbg(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* "netkernel: refused: why (guest, pid); then" on stderr (refused.c). */
NK_HIDDEN void nk_log_refused(const char *why, const char *then);

NK_HIDDEN enum nk_state nk_conn__state(void);
/*
 * Make sure the process is attached. 0 when the rings are usable,
 * -ENETDOWN (fallback fail) or -EHOSTUNREACH (fallback passthrough: caller
 * goes to libc) otherwise. For a forked child, re-attaches with the token.
 */
NK_HIDDEN int nk_conn__ensure(void);
NK_HIDDEN bool nk_conn__is_internal_fd(int fd);
/* The shim's own fds, ascending; returns how many. */
#define NK_INTERNAL_FDS 3 /* control socket, doorbell, placeholder pool */
NK_HIDDEN int nk_conn__internal_fds(int out[NK_INTERNAL_FDS]);
/* Move internal fds away from fd (dup2 target) or out of [lo, hi]. */
NK_HIDDEN void nk_conn__evacuate(unsigned int lo, unsigned int hi);
NK_HIDDEN uint32_t nk_conn__buf_size(void);
/*
 * How long a multiplexer call (epoll_wait, poll) may spin before sleeping:
 * non-zero only while this process has talked to nkd in the last moments,
 * so a reply is probably on its way and a sleep would cost a wake-up.
 * -1 when not talking to nkd; 0 when spinning has not paid off lately
 * (the caller still times its sleep, so the budget can grow back).
 */
NK_HIDDEN int64_t nk_conn__mux_spin_ns(void);
/* What the spin did: found readiness (@hit), or the sleep after it lasted
 * @slept ns and ended with readiness (@useful). Adapts the next spin. */
NK_HIDDEN void nk_conn__mux_spun(bool hit, int64_t slept, bool useful);
NK_HIDDEN uint32_t nk_conn__send_window(void);

/*
 * Buffers of the data area: index -> bytes. Without wait, -EAGAIN when
 * none is free; with it, bounded by deadline_ns (0 = none, -EAGAIN when
 * it passes) and by signals (-EINTR).
 */
NK_HIDDEN int nk_buf__alloc(bool wait, int64_t deadline_ns);
/*
 * The same for an async SEND's data: SENDs hold at most three quarters of
 * the buffers, so in-flight sends never starve receives and accepts.
 */
NK_HIDDEN int nk_buf__alloc_send(bool wait, int64_t deadline_ns);
/* What a SEND of bytes counts against its socket's window (abi.md §5). */
NK_HIDDEN uint32_t nk_conn__send_charge(uint32_t bytes);
/* A buffer for read-ahead, only while plenty are free; -1 otherwise. */
NK_HIDDEN int nk_buf__alloc_spare(void);
NK_HIDDEN void nk_buf__free(int idx);
NK_HIDDEN uint8_t *nk_buf__ptr(int idx);
NK_HIDDEN uint32_t nk_buf__off(int idx);

/*
 * Between plug and unplug this thread's SQEs share one doorbell (rung at
 * the unplug, or before the thread sleeps). Nests.
 */
NK_HIDDEN void nk_ring__plug(void);
NK_HIDDEN void nk_ring__unplug(void);
/* Submit one SQE (user_data set by the caller). */
NK_HIDDEN int nk_ring__submit(struct nk_sqe *sqe);
/*
 * Submit and wait for the CQE; the result is op->cqe. With intr, a signal
 * whose handler lacks SA_RESTART cancels the op: -EINTR unless it had
 * completed anyway. -ECONNRESET if nkd goes away.
 */
NK_HIDDEN int nk_ring__call(struct nk_sqe *sqe, struct nk_call *op, bool intr);
/* Queue a read-ahead RECV into buffer idx for s (takes a ref on s). */
NK_HIDDEN int nk_ring__prefetch(struct nk_sock *s, struct nk_sqe *sqe, int idx);
/*
 * rxbatch.c: datagrams many per RECV (NK_SQE_F_BATCH), kept per socket.
 * nk_rxb__take and nk_rxb__fionread are called with rx_lock held;
 * nk_rxb__keep takes it itself (the RECV waited without it).
 */
/* May a recv on s ask for a batch? */
/* Waits out a RECV read-ahead in flight (nkd answers at once, a standing
 * one with NK_CQE_F_MORE when it parks); returns pf_state or -errno. */
NK_HIDDEN int nk_pf__settle(struct nk_sock *s);
/* Sends a read-ahead RECV into buffer idx (stream stash or batch). */
NK_HIDDEN void nk_pf__submit(struct nk_sock *s, struct nk_sqe *sqe, int idx);
/*
 * Standing receives (docs/shim.md "Standing receive"). May s have one?
 * Only a non-blocking connected stream, or datagram socket that takes
 * batches, no other process reads: the data it takes is this process's
 * to hand out.
 */
NK_HIDDEN bool nk_sock__standing_ok(struct nk_sock *s);
/*
 * Empties the placeholder's app end (fd) before a standing RECV: from then
 * until that RECV's data is in our buffer, it is readable only if nkd made
 * it so (docs/abi.md §6).
 */
NK_HIDDEN void nk_sock__ph_empty(int fd);
/*
 * Whether a result of res (records: a batch's) in aux bytes may have
 * left more behind at nkd (sets pf_full).
 */
NK_HIDDEN void nk_sock__note_full(struct nk_sock *s, int res, uint32_t aux);
/*
 * A non-blocking recv with a standing RECV in flight after a read that
 * emptied the socket: true if it answers EAGAIN now (nothing has come).
 */
NK_HIDDEN bool nk_sock__standing_quiet(struct nk_sock *s, int fd,
				       bool nonblock);
/*
 * A standing RECV parked at nkd: a non-blocking call waits only while the
 * placeholder is readable (nkd makes it so only once the data is in our
 * buffer, or while it is about to be); a blocking one waits for data, an
 * end or an error, or SO_RCVTIMEO (-EAGAIN). Returns pf_state (still
 * NK_PF_PARKED: nothing yet) or -errno. Called with rx_lock; held (that
 * lock, for a datagram socket) is let go while it waits.
 */
NK_HIDDEN int nk_sock__standing_wait(struct nk_sock *s, int fd, bool nonblock,
				     pthread_mutex_t *held);
/* How long a non-blocking recv waits for a RECV nkd is sending down. */
#define NK_STANDING_WAIT_NS 5000000LL
/* Asks nkd to end the read-ahead RECV into buffer idx (fire and forget). */
NK_HIDDEN int nk_ring__prefetch_cancel(int idx);
NK_HIDDEN bool nk_rxb__on(struct nk_sock *s);
/*
 * Answer a datagram recv from the kept batch: 1 with *ret set, 0 when
 * nothing is kept (ask nkd), < 0 if waiting for a refill failed.
 */
NK_HIDDEN int nk_rxb__take(struct nk_sock *s, int fd, bool nonblock,
			   struct msghdr *msg, int flags, bool want_addr,
			   ssize_t *ret);
/*
 * A batch RECV into buffer idx came back with res records, aux bytes:
 * hand out the first, keep the rest (or free idx). Returns recvmsg's value.
 */
NK_HIDDEN ssize_t nk_rxb__keep(struct nk_sock *s, int idx, int res,
			       uint32_t aux, struct msghdr *msg, int flags,
			       bool want_addr);
/* FIONREAD: the next kept datagram's length; false if none is kept. */
NK_HIDDEN bool nk_rxb__fionread(struct nk_sock *s, int *val);
/* Datagrams kept by this process (for exec: they are dropped). */
NK_HIDDEN uint32_t nk_rxb__kept(struct nk_sock *s);
/*
 * giveback.c: before fork and exec, hand every socket's read-ahead (stream
 * stash, kept datagrams) back to nkd (NK_OP_UNREAD), so the child or the
 * new image reads it. Needs an attached connection.
 */
NK_HIDDEN void nk_giveback__all(void);
/* Drop a socket's read-ahead state: its buffer, if the result is in. */
NK_HIDDEN void nk_sock__stash_drop(struct nk_sock *s);
/*
 * Has nkd not yet taken some SEND of s? While it has not, its count of
 * the socket's window is behind ours (abi.md §5).
 */
NK_HIDDEN bool nk_ring__sends_untaken(struct nk_sock *s);
/*
 * Sleep until nkd has taken every SEND of s published so far, at most
 * timeout_ns (-EAGAIN then), or nkd is gone (-ECONNRESET).
 */
NK_HIDDEN int nk_ring__wait_taken(struct nk_sock *s, int64_t timeout_ns);
/*
 * Queue an async SEND of buffer idx (from nk_buf__alloc_send) for s
 * (takes a ref on s).
 */
NK_HIDDEN int nk_ring__send_async(struct nk_sock *s, struct nk_sqe *sqe,
				  int idx, uint32_t bytes);
/*
 * Completion generation: read it before checking a condition that a
 * completion changes (buffers, send window), then wait for it to move:
 * nk_ring__wait_progress() returns once it differs from since, when the
 * deadline passes (-ETIMEDOUT, 0 = none), on a non-restarting signal
 * (-EINTR) or when nkd goes away (-ECONNRESET).
 */
NK_HIDDEN uint32_t nk_ring__gen(void);
NK_HIDDEN int nk_ring__wait_progress(uint32_t since, int64_t deadline_ns,
				     bool intr);
/* Reap without waiting. */
NK_HIDDEN void nk_ring__poll(void);
NK_HIDDEN bool nk_conn__has_feature(uint64_t feat);
/* Attached through nk-vmagent (nkd keeps the placeholders' state). */
NK_HIDDEN bool nk_conn__in_vm(void);

/* Ancillary data (cmsg.c). */
NK_HIDDEN void nk_cmsg__track_opt(struct nk_sock *s, int level, int name,
				  const void *val, socklen_t len);
NK_HIDDEN int nk_cmsg__pack_send(const struct msghdr *msg, int family,
				 struct nk_cmsg *out);
NK_HIDDEN void nk_cmsg__put_recv(struct msghdr *msg, void *ctl, size_t room,
				 const struct nk_cmsg *blk);
/* Before a multiplexer looks: let nkd mirror what this process sent. */
NK_HIDDEN void nk_ring__barrier(void);
/* VM mode, before any multiplexer looks (also with a zero timeout, and
 * select): the agent's placeholders catch up with nkd's (abi.md §9). */
NK_HIDDEN void nk_ring__vm_sync(void);
/* Last close: CLOSE now or once the socket's sends drained. */
NK_HIDDEN void nk_ring__close_sock(struct nk_sock *s);
/* At exit: let queued sends reach nkd before the connection goes. */
NK_HIDDEN void nk_ring__drain(int64_t timeout_ns);
/* The same from _exit(): polls, takes no lock it could wait for. */
NK_HIDDEN void nk_ring__drain_nolock(int64_t timeout_ns);

/* Control socket requests (serialised; reply matched by seq). */
/* PH_BIND, one-way: placeholder id mirrors handle (0: give it back). */
NK_HIDDEN int nk_ctl__ph_bind(uint32_t handle, uint64_t id, uint64_t dev,
			      uint64_t ino);
/*
 * A placeholder app end from nkd's pool (on the lowest free fd, CLOEXEC
 * if cloexec) and its id; waits only if the pool is empty. -EMFILE: no
 * fd free (the placeholder went back to nkd). Needs an attached conn.
 */
NK_HIDDEN int nk_conn__ph_take(int *fd, uint64_t *id, bool cloexec);
NK_HIDDEN int nk_ctl__token_req(uint32_t type, uint64_t *token);
NK_HIDDEN void nk_ctl__token_msg(uint32_t type, uint64_t token, pid_t pid);
/* DNS redirect (dnsmap.c): a destination before it goes to nkd, a
 * source before the program sees it. */
NK_HIDDEN void nk_dnsmap__dst(struct nk_sock *s, struct nk_sockaddr *a);
NK_HIDDEN void nk_dnsmap__src(struct nk_sock *s, struct nk_sockaddr *a);
NK_HIDDEN int nk_ctl__dns_servers(struct nk_ctl_resolve_reply **reply);
NK_HIDDEN int nk_ctl__resolve(const struct nk_ctl_resolve *req,
			      struct nk_ctl_resolve_reply **reply);

/* fork support (proc.c drives it). */
NK_HIDDEN void nk_conn__fork_prepare(void);
NK_HIDDEN void nk_conn__fork_parent(void);
/* In the child: forget the parent's attachment; with a token, re-attach
 * (now if eager, else on the first shim call). */
NK_HIDDEN void nk_conn__fork_child(bool have_token, uint64_t token, bool eager);
/* New image after exec: attach with the token and adopt inherited fds. */
NK_HIDDEN int nk_conn__attach_exec(uint64_t token);
NK_HIDDEN void nk_fdtab__fork_lock(void);
NK_HIDDEN void nk_fdtab__fork_unlock(bool child);

NK_HIDDEN int64_t nk_now_ns(void);

/* ------------------------------------------------------------------------ */
/* sock.c: operations, all return >= 0 or -errno. */

NK_HIDDEN int nk_sock__create(int domain, int type, int protocol);
NK_HIDDEN int nk_sock__bind(struct nk_sock *s, const struct sockaddr *sa,
			    socklen_t len);
NK_HIDDEN int nk_sock__listen(struct nk_sock *s, int backlog);
NK_HIDDEN int nk_sock__accept(struct nk_sock *s, int fd, struct sockaddr *sa,
			      socklen_t *len, int flags);
NK_HIDDEN int nk_sock__connect(struct nk_sock *s, const struct sockaddr *sa,
			       socklen_t len);
NK_HIDDEN int nk_sock__shutdown(struct nk_sock *s, int fd, int how);
NK_HIDDEN int nk_sock__name(struct nk_sock *s, bool peer, struct sockaddr *sa,
			    socklen_t *len);
NK_HIDDEN int nk_sock__getsockopt(struct nk_sock *s, int level, int name,
				  void *val, socklen_t *len);
NK_HIDDEN int nk_sock__setsockopt(struct nk_sock *s, int fd, int level,
				  int name, const void *val, socklen_t len);
NK_HIDDEN ssize_t nk_sock__recvmsg(struct nk_sock *s, int fd,
				   struct msghdr *msg, int flags);
NK_HIDDEN ssize_t nk_sock__sendmsg(struct nk_sock *s, const struct msghdr *msg,
				   int flags);
/* A SEND of s completed with -err: keep it for the app (sock.c). */
NK_HIDDEN void nk_sock__send_failed(struct nk_sock *s, int err);
NK_HIDDEN ssize_t nk_sock__sendfile(struct nk_sock *s, int in_fd, off_t *off,
				    size_t count);
NK_HIDDEN int nk_sock__ioctl(struct nk_sock *s, int fd, unsigned long req,
			     void *arg);
NK_HIDDEN int nk_sock__set_nonblock(struct nk_sock *s, int fd, bool on);
NK_HIDDEN void nk_sock__last_close(struct nk_sock *s);
/* Rebuild a socket object for an inherited handle found at fd. */
NK_HIDDEN struct nk_sock *nk_sock__adopt(uint32_t handle, int fd);

NK_HIDDEN int nk_addr__from_sa(const struct sockaddr *sa, socklen_t len,
			       struct nk_sockaddr *out);
NK_HIDDEN void nk_addr__to_sa(const struct nk_sockaddr *in, struct sockaddr *sa,
			      socklen_t *len);

/* ------------------------------------------------------------------------ */
/* reattach.c: surviving an nkd restart (docs/shim.md "When nkd restarts"). */

/* A socket handle that no nkd knows: ops on it fail with ECONNRESET. */
#define NK_HANDLE_LOST 0u
/* Record what a successful call did, for the replay. */
NK_HIDDEN void nk_rst__note_opt(struct nk_sock *s, int level, int name,
				const void *val, socklen_t len);
NK_HIDDEN void nk_rst__note_bind(struct nk_sock *s);
NK_HIDDEN void nk_rst__note_listen(struct nk_sock *s, int backlog);
NK_HIDDEN void nk_rst__note_connect(struct nk_sock *s,
				    const struct nk_sockaddr *peer);
/* An inherited socket (exec): ask nkd what the replay needs. */
NK_HIDDEN void nk_rst__note_adopted(struct nk_sock *s);
/* proc.c: before fork, every socket becomes shared. */
NK_HIDDEN void nk_rst__on_fork(void);
/* conn.c: nkd is gone for this process (once per loss); what happens now. */
NK_HIDDEN const char *nk_rst__on_dead(void);
/* conn.c: the attach succeeded; start the monitor (once per process). */
NK_HIDDEN void nk_rst__on_attach(void);
/* Is a reattach under way (accept on a listener waits for it)? */
NK_HIDDEN bool nk_rst__pending(void);
/* accept(2) on s, riding out a restart on a listener. */
NK_HIDDEN long nk_rst__accept(struct nk_sock *s, int fd, struct sockaddr *sa,
			      socklen_t *len, int flags);
/*
 * A call on s failed with r: while nkd is away, a blocking call on a socket
 * that comes back waits for it. 1 = call again; else what to return.
 */
NK_HIDDEN long nk_rst__hold(struct nk_sock *s, long r, int flags, bool rx,
			    int64_t *deadline);
/*
 * intercept.c's poll/epoll/select while nkd is away: did poll report a dead
 * placeholder (nkd went away)? poll through the reattach (NK_RST_AGAIN:
 * it ended, poll normally); drop epoll events of dead placeholders.
 */
#define NK_RST_AGAIN (-1000)
NK_HIDDEN bool nk_rst__poll_dead(const struct pollfd *fds, nfds_t n);
NK_HIDDEN int nk_rst__poll(struct pollfd *fds, nfds_t n, int64_t deadline,
			   const sigset_t *mask);
NK_HIDDEN int nk_rst__epoll_dead(int epfd, struct epoll_event *ev, int n);
/* conn.c for reattach.c. */
NK_HIDDEN int nk_conn__ctl_fd(void);
NK_HIDDEN void nk_conn__check_alive(void);
/*
 * Drop the dead connection and attach again as the same guest. 0 when
 * attached to a restarted nkd (new epoch); -ESTALE when the same nkd
 * answered (it dropped us on purpose: stay detached); other -errno when
 * nkd cannot be reached (yet). Refusal text in *why.
 */
NK_HIDDEN int nk_conn__reattach(const char **why);
/* Threads still asleep in a wait on the (old) rings. */
NK_HIDDEN unsigned int nk_conn__waiters(void);

/* ------------------------------------------------------------------------ */
/* proc.c has no internal interface: constructor, fork, exec. */

#endif /* NK_SHIM_H */
