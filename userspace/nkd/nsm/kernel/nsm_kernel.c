// SPDX-License-Identifier: MIT
/*
 * The "kernel" NSM: guest sockets are Linux sockets (created in the NSM's
 * network namespace) driven through nkd's io_uring.
 *
 * Rules (docs/nkd.md):
 *  - kernel sockets are blocking (no O_NONBLOCK) but listeners: io_uring
 *    does the waiting, and a guest's non-blocking op is an immediate
 *    syscall with MSG_DONTWAIT (accept4 on the O_NONBLOCK listener), so it
 *    never waits;
 *  - per socket at most one SEND in flight (short sends are resubmitted)
 *    and one RECV/ACCEPT in flight: io_uring may reorder waiting requests;
 *  - every blocking op first tries the immediate syscall, so data that is
 *    already there costs no io_uring round trip;
 *  - teardown cancels what is pending, shuts listeners down, lets queued
 *    SENDs finish (a close() does not throw away written data), and closes
 *    the fd only when no request refers to it any more.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmsg.h"
#include "engine.h"
#include "log.h"
#include "loop.h"
#include "kn_accq.h"
#include "kn_ping.h"
#include "kn_sendlim.h"
#include "recv_batch.h"
#include "validate.h"

#define POLL_MASK (POLLIN | POLLRDHUP | POLLERR | POLLHUP)
#define READ_EVENTS (POLLIN | POLLERR | POLLHUP | POLLRDHUP)

struct kn {
	struct nk_engine *e;
	struct nk_loop *loop;
	int netns_fd; /* -1: nkd's own */
	int self_ns_fd;
	char name[NK_NAME_MAX];
};

struct ksock {
	uint32_t slot, gen;
	bool used;
	int fd;
	struct kn *kn;
	struct nk_sock *s;
	uint32_t refs; /* io_uring requests that name fd */
	bool poll_armed, want_poll, closing;
	bool recv_busy; /* recvq's head is in io_uring */
	bool bg_connect;
	struct nk_req *connect_op; /* blocking CONNECT in io_uring */
	/*
	 * The socket's one SEND waiting in io_uring for room: the engine
	 * hands down one at a time, in order, and a SHUT_WR only after
	 * them (core/sendq.c).
	 */
	struct nk_req *send_op;
	struct nk_list recvq; /* nk_op.qlink */
	struct sockaddr_storage csa; /* background connect target */
	socklen_t csalen;
	/* SO_LINGER {1, N>0} as the guest set it, never on the fd. */
	bool linger_emul;
	struct linger linger;
	struct nk_kn_sendlim sendlim; /* kn_sendlim.c */
	/*
	 * A listener with a multishot ACCEPT (ms_on): connections io_uring
	 * took, oldest first, for the guest's next ACCEPTs (docs/nkd.md
	 * "Accept"). ms_armed: the request is in io_uring (ud NK_UD_KINT:
	 * a listener never has a background connect).
	 */
	bool ms_on, ms_armed, ms_stop;
	int backlog; /* as the guest asked, capped */
	struct nk_kn_accq accq;
};

/* Per-operation state, in the op's NSM scratch space (nsm.h). */
struct kreq {
	struct msghdr msg;
	struct iovec iov;
	/* SEND's checked ancillary data (cmsg.c) */
	uint64_t ctl[NK_CMSG_BYTES / 8];
	size_t ctl_len;
	/* What its io_uring completion does (set with the request). */
	void (*on_cqe)(struct ksock *ks, struct nk_req *op, int res);
	/* An ACCEPT on recvq (RECVs share it): set by kn_accept. */
	bool accept;
};

_Static_assert(sizeof(struct kreq) <= NK_NSM_SCRATCH, "kreq fits the scratch");

static struct kreq *kr(struct nk_req *op)
{
	return (struct kreq *)(void *)op->scratch;
}

/* One table for every kernel NSM: completions find sockets by slot. */
static struct {
	struct nk_engine *e;
	struct ksock **ks;
	uint32_t cap;
	uint32_t *free;
	uint32_t nr_free;
	unsigned users;
} kt;

/* Multishot ACCEPT: 0 not tried yet, 1 worked, -1 the kernel refused it. */
static int ms_support;
/*
 * Connections queued in all listeners, and their cap: a 32nd of nkd's
 * descriptors (an eighth of the headroom budget.c keeps beyond the socket
 * budget), so that guests with many listeners cannot use nkd's descriptors
 * up through queues the socket budget does not count.
 */
static uint32_t accq_total, accq_cap;

static uint32_t accq_total_cap(void)
{
	struct rlimit r;

	if (!accq_cap) {
		rlim_t n = getrlimit(RLIMIT_NOFILE, &r) ? 1024 : r.rlim_cur;

		n /= 32;
		accq_cap = n < 16 ? 16 : n > 4096 ? 4096 : (uint32_t)n;
	}
	return accq_cap;
}

/* Resets and closes a listener's queued connections. */
static void accq_drain(struct ksock *ks)
{
	accq_total -= ks->accq.len;
	nk_kn_accq__drain(&ks->accq);
}

static struct ksock *ks_alloc(void)
{
	struct ksock *ks;
	uint32_t slot, gen;

	if (!kt.nr_free) {
		uint32_t ncap = kt.cap ? kt.cap * 2 : 256;
		struct ksock **n = realloc(kt.ks, ncap * sizeof(*n));
		uint32_t *f;

		if (!n)
			return NULL;
		kt.ks = n;
		f = realloc(kt.free, ncap * sizeof(*f));
		if (!f)
			return NULL;
		kt.free = f;
		for (uint32_t i = kt.cap; i < ncap; i++) {
			kt.ks[i] = calloc(1, sizeof(struct ksock));
			if (!kt.ks[i]) {
				ncap = i;
				break;
			}
			kt.ks[i]->slot = i;
		}
		for (uint32_t i = ncap; i > kt.cap; i--)
			kt.free[kt.nr_free++] = i - 1;
		kt.cap = ncap;
		if (!kt.nr_free)
			return NULL;
	}
	ks = kt.ks[kt.free[--kt.nr_free]];
	slot = ks->slot;
	gen = ks->gen;
	memset(ks, 0, sizeof(*ks));
	ks->slot = slot;
	ks->gen = gen;
	ks->used = true;
	ks->fd = -1;
	nk_list__init(&ks->recvq);
	return ks;
}

static void ks_free(struct ksock *ks)
{
	ks->used = false;
	ks->gen = (ks->gen + 1) & NK_UD_GEN_MASK;
	kt.free[kt.nr_free++] = ks->slot;
}

static struct ksock *ks_get(uint32_t slot, uint32_t gen)
{
	if (slot >= kt.cap || !kt.ks[slot]->used || kt.ks[slot]->gen != gen)
		return NULL;
	return kt.ks[slot];
}

static struct ksock *ks_of(struct nk_sock *s)
{
	return s->nsm_priv;
}

/* Closes the fd once nothing in io_uring refers to it any more. */
static void ks_maybe_close(struct ksock *ks)
{
	struct nk_sock *s;

	/* !used: already closed by a completion's callback (engine's sendq
	 * releasing the socket after its last SEND). */
	if (!ks->used || !ks->closing || ks->refs || ks->send_op ||
	    !nk_list__empty(&ks->recvq))
		return;
	close(ks->fd);
	accq_drain(ks);
	nk_kn_accq__free(&ks->accq);
	s = ks->s;
	ks_free(ks);
	if (s)
		nk_engine__sock_gone(kt.e, s);
}

static void arm_poll(struct ksock *ks)
{
	ks->want_poll = true;
	if (ks->poll_armed || ks->closing)
		return;
	if (nk_loop__poll(ks->kn->loop, ks->fd, POLL_MASK,
			  nk_ud(NK_UD_KPOLL, ks->gen, ks->slot)))
		return;
	ks->poll_armed = true;
	ks->refs++;
}

static unsigned poll_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (poll(&p, 1, 0) <= 0)
		return 0;
	return (unsigned)p.revents;
}

/* ------------------------------------------------------------------ */
/* Completion helpers. */

static uint64_t op_ud(const struct nk_req *op)
{
	return nk_ud(NK_UD_KOP, op->gen, op->slot);
}

/* Bytes in front of a RECV's or SEND's data: address, ancillary block. */
static uint32_t head_len(const struct nk_req *op, bool recv)
{
	uint32_t skip = 0;

	if ((op->sqe_flags & NK_SQE_F_ADDR) && recv)
		skip += sizeof(struct nk_sockaddr);
	if ((op->sqe_flags & NK_SQE_F_BATCH) && recv)
		skip += sizeof(struct nk_dgram); /* the first record's header */
	if (op->sqe_flags & NK_SQE_F_CMSG)
		skip += NK_CMSG_BYTES;
	return skip;
}

/* Bytes of data a SEND carries. */
static uint32_t send_len(const struct nk_req *op)
{
	return op->len - head_len(op, false);
}

/* Fills kr(op)->msg for RECV/SEND from op->done onwards. */
static void build_msg(struct nk_req *op, bool recv)
{
	struct msghdr *m = &kr(op)->msg;
	uint32_t skip = head_len(op, recv);

	memset(m, 0, sizeof(*m));
	if (op->sqe_flags & (NK_SQE_F_ADDR | NK_SQE_F_BATCH)) {
		if (recv) {
			memset(&op->sa, 0, sizeof(op->sa));
			m->msg_name = &op->sa;
			m->msg_namelen = sizeof(op->sa);
		} else {
			m->msg_name = &op->sa;
			m->msg_namelen = op->salen;
		}
	}
	if ((op->sqe_flags & NK_SQE_F_CMSG) && recv) {
		/* The kernel writes them straight into the guest's block. */
		m->msg_control = op->buf + skip - NK_CMSG_BYTES +
				 offsetof(struct nk_cmsg, data);
		m->msg_controllen = sizeof(((struct nk_cmsg *)0)->data);
	} else if (op->sqe_flags & NK_SQE_F_CMSG && kr(op)->ctl_len) {
		m->msg_control = kr(op)->ctl;
		m->msg_controllen = kr(op)->ctl_len;
	}
	kr(op)->iov.iov_base = op->buf + skip + op->done;
	kr(op)->iov.iov_len = op->len - skip - op->done;
	m->msg_iov = &kr(op)->iov;
	m->msg_iovlen = 1;
}

static int recv_flags(const struct nk_req *op)
{
	int f = (int)(op->msg_flags & ~(uint32_t)MSG_DONTWAIT);

	/* Real datagram length back, so truncation is always visible. */
	if (op->sock->type == SOCK_DGRAM)
		f |= MSG_TRUNC;
	return f;
}

static int send_flags(const struct nk_req *op)
{
	return (int)(op->msg_flags & ~(uint32_t)MSG_DONTWAIT) | MSG_NOSIGNAL;
}

/* Next datagram of a batch, only if it fits whole (recv_batch.h). */
static int batch_recv_one(void *arg, uint8_t *data, uint32_t room,
			  struct sockaddr_storage *sa, socklen_t *salen)
{
	struct ksock *ks = arg;
	struct iovec iov = { .iov_base = data, .iov_len = room };
	struct msghdr m = { .msg_name = sa,
			    .msg_namelen = *salen,
			    .msg_iov = &iov,
			    .msg_iovlen = 1 };
	ssize_t n;
	int q;

	/* With less room than any datagram can have, ask its size first. */
	if (room < 65536 &&
	    (ioctl(ks->fd, FIONREAD, &q) < 0 || q <= 0 || (uint32_t)q > room))
		return -EAGAIN;
	n = recvmsg(ks->fd, &m, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	*salen = m.msg_namelen;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

static void finish_batch(struct nk_req *op, int res)
{
	uint32_t used = 0;

	/*
	 * More than one only while this connection alone holds the socket:
	 * datagrams a process keeps are invisible to another's recv and
	 * poll, so a shared socket (fork, hand-over) gets one per RECV.
	 */
	bool alone = op->sock->nr_holders <= 1;

	res = nk_rbatch__fill(op->buf, op->len, res, &op->sa, sizeof(op->sa),
			      alone ? batch_recv_one : NULL, ks_of(op->sock),
			      &used, &op->done);
	nk_engine__op_done(op, res, 0, used, 0);
}

static void finish_recv(struct nk_req *op, int res)
{
	uint32_t skip = (op->sqe_flags & NK_SQE_F_ADDR)
				? sizeof(struct nk_sockaddr)
				: 0;
	uint32_t cap = op->len - head_len(op, true), flags = 0, data;

	if (op->sqe_flags & NK_SQE_F_BATCH) {
		finish_batch(op, res);
		return;
	}
	if (res < 0) {
		nk_engine__op_done(op, res, 0, 0, 0);
		return;
	}
	if (op->sqe_flags & NK_SQE_F_CMSG) {
		/* msg_controllen and msg_flags: the kernel's, in nkd memory. */
		struct nk_cmsg h = { 0 };
		size_t got = kr(op)->msg.msg_controllen;

		h.len = got < sizeof(h.data) ? (uint32_t)got
					     : (uint32_t)sizeof(h.data);
		if (kr(op)->msg.msg_flags & MSG_CTRUNC)
			h.flags = NK_CMSG_F_CTRUNC;
		memcpy(op->buf + skip, &h, offsetof(struct nk_cmsg, data));
	}
	data = (uint32_t)res;
	if (op->sock->type == SOCK_DGRAM && data > cap) {
		flags |= NK_CQE_F_TRUNC;
		data = cap;
		if (!(op->msg_flags & MSG_TRUNC))
			res = (int)cap;
	}
	if (res == 0 && op->sock->type == SOCK_STREAM && cap > 0)
		flags |= NK_CQE_F_EOF;
	if (skip) {
		struct nk_sockaddr a;

		nk_sockaddr__from_sa((struct sockaddr *)&op->sa, sizeof(op->sa),
				     &a);
		memcpy(op->buf, &a, sizeof(a));
		flags |= NK_CQE_F_ADDR;
	}
	nk_engine__op_done(op, res, flags, data, 0);
}

static void send_try(struct ksock *ks, struct nk_req *op);
static void pump_recv(struct ksock *ks);
static void send_cqe(struct ksock *ks, struct nk_req *op, int res);
static void recv_cqe(struct ksock *ks, struct nk_req *op, int res);
static void accept_cqe(struct ksock *ks, struct nk_req *op, int res);

static void complete_queued(struct nk_req *op, int res)
{
	nk_list__del(&op->qlink);
	if (kr(op)->accept)
		nk_engine__op_done(op, res, 0, 0, 0);
	else
		finish_recv(op, res);
}

/*
 * Unsent bytes a stream socket takes before a SEND waits: the stack's
 * push-back the engine's scheduler sees (core/sched.c). Without it the
 * send buffer (autotuned to MiBs) hides which guest the bottleneck slows
 * down. A guest's own TCP_NOTSENT_LOWAT replaces it. Set when a stream
 * socket opens; an accepted socket inherits its listener's value (the
 * kernel clones the listener's tcp_sock), as natively.
 */
#define KN_NOTSENT_LOWAT (128 * 1024)

static void set_notsent_lowat(int fd)
{
	int v = KN_NOTSENT_LOWAT;

	/* Best effort: without it the scheduler is only less exact. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v));
}

/* A new kernel socket from accept: engine socket + ksock + poll. */
/*
 * Is the peer of a connection elsewhere than this namespace? Loopback, or
 * the connection's own local address as its source (what the kernel picks
 * for a connect to a local address), means a socket here, maybe a guest's;
 * an error or an unknown family says "maybe here" too. A client bound to
 * one local address that connects to another is taken for remote: its
 * sends then miss the barrier, as before there was one (abi.md §5, NOP).
 */
static bool peer_elsewhere(const struct sockaddr_storage *peer,
			   const struct sockaddr_storage *local)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	const struct sockaddr_in6 *p6 = (const void *)peer;
	const struct sockaddr_in6 *l6 = (const void *)local;
	const uint8_t *pa, *la;

	if (peer->ss_family != local->ss_family)
		return false;
	if (peer->ss_family == AF_INET) {
		pa = (const uint8_t *)&((const struct sockaddr_in *)peer)
			     ->sin_addr;
		la = (const uint8_t *)&((const struct sockaddr_in *)local)
			     ->sin_addr;
		return pa[0] != 127 && memcmp(pa, la, 4) != 0;
	}
	if (peer->ss_family != AF_INET6)
		return false;
	pa = p6->sin6_addr.s6_addr;
	la = l6->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_LOOPBACK(&p6->sin6_addr) ||
	    (!memcmp(pa, v4mapped, 12) && pa[12] == 127))
		return false;
	return memcmp(pa, la, 16) != 0;
}

static int adopt_accepted(struct ksock *lks, struct nk_req *op, int fd,
			  uint32_t *cqe_flags)
{
	struct nk_sock *ns;
	struct ksock *ks;
	struct nk_sockaddr a;
	struct sockaddr_storage ss, ls;
	socklen_t len = sizeof(ss), llen = sizeof(ls);
	int ret;

	ret = nk_engine__sock_accepted(kt.e, op, &ns);
	if (ret) {
		close(fd);
		return ret;
	}
	ks = ks_alloc();
	if (!ks) {
		close(fd);
		ns->closing = true;
		nk_engine__sock_gone(kt.e, ns);
		return -ENOMEM;
	}
	/* TCP_NOTSENT_LOWAT: the listener's, which the kernel copies. */
	ks->fd = fd;
	ks->kn = lks->kn;
	ks->s = ns;
	ns->nsm_priv = ks;
	if (getpeername(fd, (struct sockaddr *)&ss, &len))
		memset(&ss, 0, sizeof(ss));
	nk_sockaddr__from_sa((struct sockaddr *)&ss, len, &a);
	memcpy(op->buf, &a, sizeof(a));
	if (!getsockname(fd, (struct sockaddr *)&ls, &llen) &&
	    peer_elsewhere(&ss, &ls))
		*cqe_flags |= NK_CQE_F_REMOTE;
	arm_poll(ks);
	return (int)ns->handle;
}

static void finish_accept(struct ksock *ks, struct nk_req *op, int res)
{
	uint32_t flags = 0;

	if (res >= 0)
		res = adopt_accepted(ks, op, res, &flags);
	nk_engine__op_done(op, res, flags, 0, res > 0 ? (uint32_t)res : 0);
}

/* ------------------------------------------------------------------ */
/* Multishot ACCEPT (docs/nkd.md "Accept"). */

/* Arms the listener's multishot ACCEPT unless its queue is at the bound. */
static void ms_arm(struct ksock *ks)
{
	struct io_uring_sqe *sqe;

	if (!ks->ms_on || ks->ms_armed || ks->closing ||
	    ks->accq.len >= ks->accq.bound)
		return;
	nk_loop__need(ks->kn->loop, 1);
	sqe = accq_total < accq_total_cap() ? nk_loop__sqe(ks->kn->loop) : NULL;
	if (!sqe) {
		/* No SQE, or nkd's queues are full: the poll-driven path
		 * takes this listener over. */
		ks->ms_on = false;
		(void)listen(ks->fd, ks->backlog);
		arm_poll(ks);
		return;
	}
	io_uring_prep_multishot_accept(sqe, ks->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, nk_ud(NK_UD_KINT, ks->gen, ks->slot));
	ks->ms_armed = true;
	ks->refs++;
}

/* The oldest queued connection (-1: none); a slot freed re-arms. */
static int accq_take(struct ksock *ks)
{
	int fd = nk_kn_accq__pop(&ks->accq);

	if (fd >= 0) {
		accq_total--;
		ms_arm(ks);
	}
	return fd;
}

static void pump_recv(struct ksock *ks);

static void ms_cqe(struct ksock *ks, const struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;
	unsigned ev;

	if (!more) {
		ks->ms_armed = false;
		ks->ms_stop = false;
		ks->refs--;
	}
	if (res >= 0) {
		ms_support = 1;
		if (ks->closing || !ks->s || nk_kn_accq__push(&ks->accq, res)) {
			close(res);
		} else {
			accq_total++;
			/* A blocking ACCEPT waiting takes it at once. */
			pump_recv(ks);
			if (ks->accq.len)
				nk_engine__sock_event(kt.e, ks->s, POLLIN,
						      true);
			/* At the bound the kernel's backlog holds the rest. */
			if ((ks->accq.len >= ks->accq.bound ||
			     accq_total >= accq_total_cap()) &&
			    ks->ms_armed && !ks->ms_stop) {
				ks->ms_stop = true;
				nk_loop__cancel_ud(ks->kn->loop,
						   nk_ud(NK_UD_KINT, ks->gen,
							 ks->slot));
			}
		}
	}
	if (ks->ms_armed || ks->closing || !ks->s)
		return;
	if (res >= 0 || res == -ECANCELED) {
		ms_arm(ks);
		return;
	}
	/*
	 * Refused (a kernel without multishot ACCEPT says EINVAL before it
	 * ever worked: no listener tries again), or failed (EMFILE, a
	 * shut-down listener): this listener goes back to poll + accept4.
	 */
	if (!ms_support && (res == -EINVAL || res == -EOPNOTSUPP)) {
		ms_support = -1;
		nk_info("nsm %s: no multishot accept (%s): poll + accept4",
			ks->kn->name, strerror(-res));
	}
	ks->ms_on = false;
	/* The kernel's backlog is the whole one again (listen_arm). */
	(void)listen(ks->fd, ks->backlog);
	arm_poll(ks);
	ev = poll_fd(ks->fd, POLL_MASK);
	if (ev & READ_EVENTS)
		nk_engine__sock_event(kt.e, ks->s, ev, true);
	pump_recv(ks);
}

/* ------------------------------------------------------------------ */
/* Queues. */

static void finish_send(struct ksock *ks, struct nk_req *op, int res)
{
	ks->send_op = NULL;
	/* May hand the next SEND down, or release (and free) ks. */
	nk_engine__op_done(op, op->done ? (int)op->done : res, 0, 0, 0);
}

/* Sends what is left of op; waits in io_uring while the buffer is full. */
static void send_try(struct ksock *ks, struct nk_req *op)
{
	struct io_uring_sqe *sqe;
	ssize_t n;

	if (op->cancelled) {
		finish_send(ks, op, -ECANCELED);
		return;
	}
	build_msg(op, false);
	n = sendmsg(ks->fd, &kr(op)->msg, send_flags(op) | MSG_DONTWAIT);
	if (n >= 0)
		op->done += (uint32_t)n;
	if ((n >= 0 && op->done == send_len(op)) ||
	    (n < 0 && errno != EAGAIN)) {
		finish_send(ks, op, n < 0 ? -errno : 0);
		return;
	}
	/* Socket buffer full: let io_uring wait for room. */
	nk_loop__need(ks->kn->loop, 1);
	sqe = nk_loop__sqe(ks->kn->loop);
	if (!sqe) {
		finish_send(ks, op, -EAGAIN);
		return;
	}
	build_msg(op, false);
	io_uring_prep_sendmsg(sqe, ks->fd, &kr(op)->msg,
			      (unsigned)send_flags(op));
	io_uring_sqe_set_data64(sqe, op_ud(op));
	kr(op)->on_cqe = send_cqe;
	op->in_nsm = true;
	ks->send_op = op;
	ks->refs++;
}

static void pump_recv(struct ksock *ks)
{
	while (!ks->recv_busy && !nk_list__empty(&ks->recvq)) {
		struct nk_req *op =
			nk_container_of(ks->recvq.next, struct nk_req, qlink);
		struct io_uring_sqe *sqe;

		if (op->cancelled || ks->closing) {
			complete_queued(op, -ECANCELED);
			continue;
		}
		if (kr(op)->accept) {
			int fd = accq_take(ks);

			/* The multishot ACCEPT's next completion serves it. */
			if (fd < 0 && ks->ms_on)
				break;
			/* O_NONBLOCK listener: EAGAIN, never a wait. */
			if (fd < 0)
				fd = accept4(ks->fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0 || errno != EAGAIN) {
				nk_list__del(&op->qlink);
				finish_accept(ks, op, fd < 0 ? -errno : fd);
				continue;
			}
		} else if (!(op->msg_flags & MSG_WAITALL)) {
			ssize_t n;

			build_msg(op, true);
			n = recvmsg(ks->fd, &kr(op)->msg,
				    recv_flags(op) | MSG_DONTWAIT);
			if (n >= 0 || errno != EAGAIN) {
				complete_queued(op, n >= 0 ? (int)n : -errno);
				continue;
			}
		}
		nk_loop__need(ks->kn->loop, 1);
		sqe = nk_loop__sqe(ks->kn->loop);
		if (!sqe) {
			complete_queued(op, -EAGAIN);
			continue;
		}
		if (kr(op)->accept) {
			io_uring_prep_accept(sqe, ks->fd, NULL, NULL,
					     SOCK_CLOEXEC);
			kr(op)->on_cqe = accept_cqe;
		} else {
			build_msg(op, true);
			io_uring_prep_recvmsg(sqe, ks->fd, &kr(op)->msg,
					      (unsigned)recv_flags(op));
			kr(op)->on_cqe = recv_cqe;
		}
		io_uring_sqe_set_data64(sqe, op_ud(op));
		op->in_nsm = true;
		ks->recv_busy = true;
		ks->refs++;
	}
}

/* ------------------------------------------------------------------ */
/* Completions from io_uring. */

static void send_cqe(struct ksock *ks, struct nk_req *op, int res)
{
	ks->send_op = NULL;
	if (res > 0) {
		op->done += (uint32_t)res;
		if (op->done < send_len(op) && !op->cancelled) {
			/* Short send: the rest goes next, in order. */
			send_try(ks, op);
			return;
		}
	}
	finish_send(ks, op, res);
}

static void recv_cqe(struct ksock *ks, struct nk_req *op, int res)
{
	ks->recv_busy = false;
	complete_queued(op, res);
	pump_recv(ks);
}

static void accept_cqe(struct ksock *ks, struct nk_req *op, int res)
{
	ks->recv_busy = false;
	nk_list__del(&op->qlink);
	finish_accept(ks, op, res);
	pump_recv(ks);
}

static void connect_cqe(struct ksock *ks, struct nk_req *op, int res)
{
	struct nk_sock *s = op->sock;

	ks->connect_op = NULL;
	if (!s->closing) {
		if (res == 0) {
			s->state = NK_SS_ESTABLISHED;
			arm_poll(ks);
		} else {
			s->state = NK_SS_CLOSED;
		}
		nk_engine__sock_event(kt.e, s, POLLOUT, false);
	}
	nk_engine__op_done(op, res, 0, 0, 0);
}

static void on_kop(void *ctx, uint32_t slot, uint32_t gen,
		   const struct io_uring_cqe *cqe)
{
	struct nk_req *op = nk_engine__op_get(ctx, slot, gen);
	struct ksock *ks;
	int res = cqe->res;

	if (!op || !op->in_nsm)
		return;
	ks = ks_of(op->sock);
	op->in_nsm = false;
	ks->refs--;

	kr(op)->on_cqe(ks, op, res);
	ks_maybe_close(ks);
}

static void on_kpoll(void *ctx, uint32_t slot, uint32_t gen,
		     const struct io_uring_cqe *cqe)
{
	struct ksock *ks = ks_get(slot, gen);

	(void)ctx;
	if (!ks)
		return;
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		ks->poll_armed = false;
		ks->refs--;
	}
	if (cqe->res > 0 && ks->s && !ks->closing) {
		/* Events may be stale by now: report what is true. */
		unsigned ev = poll_fd(ks->fd, POLL_MASK);

		if (ev & READ_EVENTS)
			nk_engine__sock_event(kt.e, ks->s, ev, true);
	}
	if (!ks->poll_armed && !ks->closing && cqe->res != -ECANCELED)
		arm_poll(ks);
	ks_maybe_close(ks);
}

/* Background (non-blocking) connect finished. */
static void on_kint(void *ctx, uint32_t slot, uint32_t gen,
		    const struct io_uring_cqe *cqe)
{
	struct ksock *ks = ks_get(slot, gen);
	struct nk_sock *s;

	(void)ctx;
	if (ks && ks->ms_armed) {
		ms_cqe(ks, cqe);
		ks_maybe_close(ks);
		return;
	}
	if (!ks || !ks->bg_connect)
		return;
	ks->bg_connect = false;
	ks->refs--;
	s = ks->s;
	if (s && !ks->closing) {
		if (cqe->res == 0) {
			s->state = NK_SS_ESTABLISHED;
			arm_poll(ks);
			nk_engine__sock_event(kt.e, s, POLLOUT, false);
		} else {
			s->so_error = -cqe->res;
			s->state = NK_SS_CLOSED;
			nk_engine__sock_event(kt.e, s, POLLOUT | POLLERR, true);
		}
	}
	ks_maybe_close(ks);
}

/* ------------------------------------------------------------------ */
/* Synchronous ops. */

enum { OPT_NO = 0, OPT_YES, OPT_IGNORE, OPT_PRIV };

/* Allow-list (docs/abi.md §5). */
static int sockopt_class(int level, int name, bool set)
{
	switch (level) {
	case SOL_SOCKET:
		switch (name) {
		case SO_REUSEADDR:
		case SO_REUSEPORT:
		case SO_KEEPALIVE:
		case SO_LINGER:
		case SO_SNDBUF:
		case SO_RCVBUF:
		case SO_BROADCAST:
		case SO_OOBINLINE:
		case SO_RCVLOWAT:
		case SO_PRIORITY:
			return OPT_YES;
		case SO_TYPE:
		case SO_DOMAIN:
		case SO_PROTOCOL:
		case SO_ACCEPTCONN:
		case SO_ERROR:
		case SO_SNDLOWAT:
		case SO_INCOMING_CPU:
			return set ? OPT_NO : OPT_YES;
		case SO_RCVTIMEO:
		case SO_SNDTIMEO:
			/* The shim's business; never on nkd's sockets. */
			return set ? OPT_IGNORE : OPT_YES;
		case SO_MARK:
		case SO_BINDTODEVICE:
		case SO_BINDTOIFINDEX:
		case SO_ATTACH_FILTER:
		case SO_ATTACH_BPF:
		case SO_DETACH_FILTER:
		case SO_LOCK_FILTER:
		case SO_ATTACH_REUSEPORT_CBPF:
		case SO_ATTACH_REUSEPORT_EBPF:
		case SO_SNDBUFFORCE:
		case SO_RCVBUFFORCE:
		case SO_DEBUG:
			return OPT_PRIV;
		}
		return OPT_NO;
	case IPPROTO_TCP:
		switch (name) {
		case TCP_NODELAY:
		case TCP_CORK:
		case TCP_KEEPIDLE:
		case TCP_KEEPINTVL:
		case TCP_KEEPCNT:
		case TCP_MAXSEG:
		case TCP_QUICKACK:
		case TCP_DEFER_ACCEPT:
		case TCP_USER_TIMEOUT:
		case TCP_FASTOPEN:
		case TCP_FASTOPEN_CONNECT:
		case TCP_NOTSENT_LOWAT:
		case TCP_LINGER2:
		case TCP_SYNCNT:
		case TCP_WINDOW_CLAMP:
			return OPT_YES;
		case TCP_INFO:
		case TCP_CONGESTION:
			/* Setting any loaded algorithm needs privilege. */
			return set ? OPT_PRIV : OPT_YES;
		}
		return OPT_NO;
	case IPPROTO_IP:
		switch (name) {
		case IP_TOS:
		case IP_TTL:
		case IP_MTU_DISCOVER:
		case IP_MULTICAST_TTL:
		case IP_MULTICAST_LOOP:
		case IP_MULTICAST_IF:
		case IP_ADD_MEMBERSHIP:
		case IP_DROP_MEMBERSHIP:
		case IP_BIND_ADDRESS_NO_PORT:
		/* Ancillary data on RECV (abi.md §5). */
		case IP_PKTINFO:
		case IP_RECVTTL:
		case IP_RECVTOS:
			return OPT_YES;
		case IP_MTU:
			return set ? OPT_NO : OPT_YES;
		case IP_RECVERR:
			/* No error queue through nkd (MSG_ERRQUEUE is
			 * EOPNOTSUPP): kept off, as ping needs it to start. */
			return set ? OPT_IGNORE : OPT_YES;
		case IP_TRANSPARENT:
		case IP_FREEBIND:
		case IP_OPTIONS:
			return OPT_PRIV;
		}
		return OPT_NO;
	case IPPROTO_IPV6:
		switch (name) {
		case IPV6_V6ONLY:
		case IPV6_UNICAST_HOPS:
		case IPV6_MULTICAST_HOPS:
		case IPV6_MULTICAST_LOOP:
		case IPV6_MULTICAST_IF:
		case IPV6_ADD_MEMBERSHIP:
		case IPV6_DROP_MEMBERSHIP:
		case IPV6_TCLASS:
		case IPV6_MTU_DISCOVER:
		/* Ancillary data on RECV (abi.md §5). */
		case IPV6_RECVHOPLIMIT:
		case IPV6_RECVTCLASS:
		case IPV6_RECVPKTINFO:
			return OPT_YES;
		case IPV6_MTU:
			return set ? OPT_NO : OPT_YES;
		case IPV6_RECVERR:
			return set ? OPT_IGNORE : OPT_YES; /* as IP_RECVERR */
		case IPV6_TRANSPARENT:
		case IPV6_FREEBIND:
			return OPT_PRIV;
		}
		return OPT_NO;
	}
	return OPT_NO;
}

/*
 * SO_LINGER {1, N != 0} makes close() wait up to N seconds for unsent data:
 * on nkd's only thread that stalls every guest. The fd keeps the default
 * (close returns at once, the kernel still sends what is queued in the
 * background); the guest's value is kept for getsockopt. {1, 0} (reset on
 * close) never waits and is applied. docs/nkd.md "Close and SO_LINGER".
 */
static int kn_linger_set(struct ksock *ks, const uint8_t *val, uint32_t len)
{
	struct linger l, off = { 0, 0 };

	if (len < sizeof(l))
		return -EINVAL;
	memcpy(&l, val, sizeof(l));
	/* A negative time is "forever" to the kernel: emulated too. */
	if (!l.l_onoff || !l.l_linger) {
		if (setsockopt(ks->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
			return -errno;
		ks->linger_emul = false;
		return 0;
	}
	if (setsockopt(ks->fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off)))
		return -errno;
	ks->linger = l;
	ks->linger_emul = true;
	return 0;
}

static int do_setsockopt(struct ksock *ks, struct nk_req *op)
{
	uint8_t val[NK_OPTVAL_MAX];
	int cls = sockopt_class(op->level, op->optname, true);

	if (cls == OPT_NO)
		return -ENOPROTOOPT;
	if (cls == OPT_PRIV)
		return -EPERM;
	if (cls == OPT_IGNORE)
		return 0;
	/* Copy first: the guest may change its buffer while we look. */
	memcpy(val, op->buf, op->len);
	if (op->level == SOL_SOCKET && op->optname == SO_LINGER)
		return kn_linger_set(ks, val, op->len);
	if (op->level == SOL_SOCKET && op->optname == SO_PRIORITY) {
		int prio;

		if (op->len < sizeof(int))
			return -EINVAL;
		memcpy(&prio, val, sizeof(prio));
		if (prio < 0 || prio > 6)
			return -EPERM;
	}
	if (setsockopt(ks->fd, op->level, op->optname, val, op->len))
		return -errno;
	return 0;
}

static int do_getsockopt(struct ksock *ks, struct nk_req *op)
{
	uint8_t val[NK_OPTVAL_MAX];
	socklen_t len = op->len;
	int cls = sockopt_class(op->level, op->optname, false);

	if (cls != OPT_YES)
		return cls == OPT_PRIV ? -EPERM : -ENOPROTOOPT;
	memset(val, 0, sizeof(val));
	if (op->level == SOL_SOCKET && op->optname == SO_LINGER &&
	    ks->linger_emul) {
		/* What the guest set, not the {0, 0} the fd has. */
		len = len < sizeof(ks->linger) ? len : sizeof(ks->linger);
		memcpy(val, &ks->linger, len);
	} else if (getsockopt(ks->fd, op->level, op->optname, val, &len)) {
		return -errno;
	}
	if (len > op->len)
		len = op->len;
	memcpy(op->buf, val, len);
	return (int)len;
}

static int do_name(struct ksock *ks, struct nk_req *op, bool peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct nk_sockaddr a;
	int r;

	memset(&ss, 0, sizeof(ss));
	r = peer ? getpeername(ks->fd, (struct sockaddr *)&ss, &len)
		 : getsockname(ks->fd, (struct sockaddr *)&ss, &len);
	if (r)
		return -errno;
	nk_sockaddr__from_sa((struct sockaddr *)&ss, len, &a);
	memcpy(op->buf, &a, sizeof(a));
	return 0;
}

static int start_connect(struct ksock *ks, struct nk_req *op)
{
	struct nk_sock *s = op->sock;
	struct io_uring_sqe *sqe;
	bool nonblock = op->sqe_flags & NK_SQE_F_NONBLOCK;

	if (s->type == SOCK_DGRAM) {
		int ret = op->sa.ss_family == AF_UNSPEC
				  ? 0
				  : nk_portown__autobind_fd(s, ks->fd);

		if (ret)
			return ret;
		if (connect(ks->fd, (struct sockaddr *)&op->sa, op->salen))
			return -errno;
		s->state = op->sa.ss_family == AF_UNSPEC ? NK_SS_BOUND
							 : NK_SS_ESTABLISHED;
		return 0;
	}
	if (s->state == NK_SS_CONNECTING)
		return -EALREADY;
	if (s->state == NK_SS_ESTABLISHED || s->state == NK_SS_CLOSE_WAIT)
		return -EISCONN;
	if (s->state == NK_SS_LISTEN)
		return -EINVAL;
	nk_loop__need(ks->kn->loop, 1);
	sqe = nk_loop__sqe(ks->kn->loop);
	if (!sqe)
		return -EAGAIN;
	s->so_error = 0;
	s->state = NK_SS_CONNECTING;
	nk_engine__sock_event(kt.e, s, 0, false); /* unwritable now */
	if (nonblock) {
		ks->csa = op->sa;
		ks->csalen = op->salen;
		io_uring_prep_connect(sqe, ks->fd, (struct sockaddr *)&ks->csa,
				      ks->csalen);
		io_uring_sqe_set_data64(sqe,
					nk_ud(NK_UD_KINT, ks->gen, ks->slot));
		ks->bg_connect = true;
		ks->refs++;
		return -EINPROGRESS;
	}
	io_uring_prep_connect(sqe, ks->fd, (struct sockaddr *)&op->sa,
			      op->salen);
	io_uring_sqe_set_data64(sqe, op_ud(op));
	kr(op)->on_cqe = connect_cqe;
	op->in_nsm = true;
	ks->connect_op = op;
	ks->refs++;
	return 1; /* pending */
}

/* Ops that finish at once report here. */
static void kn_reply(struct nk_req *op, int res)
{
	nk_engine__op_done(op, res, 0, 0, 0);
}

static bool op_nonblock(const struct nk_req *op)
{
	return op->sqe_flags & NK_SQE_F_NONBLOCK ||
	       op->msg_flags & MSG_DONTWAIT;
}

static void kn_bind(void *priv, struct nk_req *op)
{
	struct ksock *ks = ks_of(op->sock);
	struct nk_sock *s = op->sock;
	int res = 0;

	(void)priv;
	if (bind(ks->fd, (struct sockaddr *)&op->sa, op->salen))
		res = -errno;
	else if (s->state == NK_SS_UNBOUND)
		s->state = NK_SS_BOUND;
	kn_reply(op, res);
}

/*
 * A multishot ACCEPT where the kernel has one, queueing up to the backlog
 * the guest asked for (at most NK_KN_ACCQ_MAX): one CQE per connection
 * instead of a poll completion, a poll and an accept4 (docs/nkd.md
 * "Accept"). NK_KN_MULTISHOT_ACCEPT=0 keeps poll + accept4.
 */
static void listen_arm(struct ksock *ks, uint32_t backlog)
{
	static int off = -1;

	if (off < 0) {
		const char *v = getenv("NK_KN_MULTISHOT_ACCEPT");

		off = v && !strcmp(v, "0");
	}
	if (off || ms_support < 0 || (ks->poll_armed && !ks->ms_on)) {
		arm_poll(ks);
		return;
	}
	ks->accq.bound = backlog < 1		    ? 1
			 : backlog > NK_KN_ACCQ_MAX ? NK_KN_ACCQ_MAX
						    : backlog;
	/*
	 * The kernel keeps the rest: nkd's queue plus the kernel's hold
	 * backlog + 1 connections, as a native listener would.
	 */
	if (backlog > 0 &&
	    listen(ks->fd, (int)(backlog - (backlog < ks->accq.bound
						    ? backlog
						    : ks->accq.bound)))) {
		arm_poll(ks);
		return;
	}
	ks->ms_on = true;
	ms_arm(ks);
}

static void kn_listen(void *priv, struct nk_req *op)
{
	struct ksock *ks = ks_of(op->sock);
	struct nk_sock *s = op->sock;
	int res;

	(void)priv;
	res = nk_portown__autobind_fd(s, ks->fd);
	if (res) {
		kn_reply(op, res);
		return;
	}
	/*
	 * Listeners are the one non-blocking kernel socket: accept4() on
	 * the loop can then never wait, and io_uring's ACCEPT still waits
	 * for a connection (it polls).
	 */
	ks->backlog = op->arg > 65535 ? 65535 : (int)op->arg;
	if (listen(ks->fd, ks->backlog) ||
	    fcntl(ks->fd, F_SETFL, O_NONBLOCK | O_RDWR)) {
		res = -errno;
	} else {
		s->state = NK_SS_LISTEN;
		listen_arm(ks, (uint32_t)ks->backlog);
	}
	kn_reply(op, res);
}

static void kn_connect(void *priv, struct nk_req *op)
{
	int res;

	(void)priv;
	res = start_connect(ks_of(op->sock), op);
	if (res != 1)
		kn_reply(op, res);
}

static void kn_accept(void *priv, struct nk_req *op)
{
	struct ksock *ks = ks_of(op->sock);

	(void)priv;
	if (op->sock->state != NK_SS_LISTEN) {
		kn_reply(op, -EINVAL);
		return;
	}
	if (op_nonblock(op)) {
		int fd = accq_take(ks);

		/* The listener is O_NONBLOCK: this never waits. */
		if (fd < 0)
			fd = accept4(ks->fd, NULL, NULL, SOCK_CLOEXEC);
		finish_accept(ks, op, fd < 0 ? -errno : fd);
		return;
	}
	kr(op)->accept = true;
	nk_list__add_tail(&ks->recvq, &op->qlink);
	pump_recv(ks);
}

static void kn_recv(void *priv, struct nk_req *op)
{
	struct ksock *ks = ks_of(op->sock);

	(void)priv;
	if (op_nonblock(op)) {
		ssize_t n;

		build_msg(op, true);
		n = recvmsg(ks->fd, &kr(op)->msg,
			    recv_flags(op) | MSG_DONTWAIT);
		finish_recv(op, n < 0 ? -errno : (int)n);
		return;
	}
	nk_list__add_tail(&ks->recvq, &op->qlink);
	pump_recv(ks);
}

static void kn_send(void *priv, struct nk_req *op)
{
	struct ksock *ks = ks_of(op->sock);
	struct nk_sock *s = op->sock;
	int res;

	(void)priv;
	if (op->sqe_flags & NK_SQE_F_CMSG) {
		struct nk_cmsg blk;

		/* Copied once: the guest may change it meanwhile. */
		memcpy(&blk, op->buf, sizeof(blk));
		res = nk_cmsg__check_send(&blk, s->family, kr(op)->ctl,
					  &kr(op)->ctl_len);
		if (res) {
			kn_reply(op, res);
			return;
		}
	}
	/* A first datagram binds: claim the port before it leaves. */
	if (s->type == SOCK_DGRAM && !s->pc.port) {
		res = nk_portown__autobind_fd(s, ks->fd);
		if (res) {
			kn_reply(op, res);
			return;
		}
	}
	if (op_nonblock(op)) {
		ssize_t n;

		build_msg(op, false);
		n = sendmsg(ks->fd, &kr(op)->msg,
			    send_flags(op) | MSG_DONTWAIT);
		kn_reply(op, n < 0 ? -errno : (int)n);
		return;
	}
	send_try(ks, op);
}

static void kn_shutdown(void *priv, struct nk_req *op)
{
	struct ksock *ks = ks_of(op->sock);
	int res = 0;

	(void)priv;
	/* The engine hands a SHUT_WR down after the SENDs before it. */
	if (shutdown(ks->fd, (int)op->arg))
		res = -errno;
	/* A listener's shutdown resets its backlog: nkd's queue too. */
	else if (op->sock->state == NK_SS_LISTEN)
		accq_drain(ks);
	kn_reply(op, res);
}

static void kn_setsockopt(void *priv, struct nk_req *op)
{
	(void)priv;
	kn_reply(op, do_setsockopt(ks_of(op->sock), op));
}

static void kn_getsockopt(void *priv, struct nk_req *op)
{
	(void)priv;
	kn_reply(op, do_getsockopt(ks_of(op->sock), op));
}

static void kn_getsockname(void *priv, struct nk_req *op)
{
	(void)priv;
	kn_reply(op, do_name(ks_of(op->sock), op, false));
}

static void kn_getpeername(void *priv, struct nk_req *op)
{
	(void)priv;
	kn_reply(op, do_name(ks_of(op->sock), op, true));
}

static void kn_ioctl(void *priv, struct nk_req *op)
{
	int v;

	(void)priv;
	if (ioctl(ks_of(op->sock)->fd,
		  op->arg == NK_IOCTL_FIONREAD ? SIOCINQ : SIOCOUTQ, &v))
		kn_reply(op, -errno);
	else
		kn_reply(op, v);
}

static int kn_cancel(void *priv, struct nk_req *op)
{
	struct ksock *ks = ks_of(op->sock);

	(void)priv;
	if (op->in_nsm) {
		nk_loop__cancel_ud(ks->kn->loop, op_ud(op));
		return 0;
	}
	if (!nk_list__empty(&op->qlink)) {
		/* Queued behind the in-flight head: finish it right here. */
		complete_queued(op, op->done ? (int)op->done : -ECANCELED);
		ks_maybe_close(ks);
		return 0;
	}
	return -ENOENT;
}

static int socket_in_ns(struct kn *kn, int domain, int type, int proto)
{
	int fd, err;

	if (kn->netns_fd < 0)
		return nk_ping__socket(kn->name, domain, type, proto);
	if (setns(kn->netns_fd, CLONE_NEWNET))
		return -1;
	fd = nk_ping__socket(kn->name, domain, type, proto);
	err = errno;
	if (setns(kn->self_ns_fd, CLONE_NEWNET)) {
		/* Every later socket would land in the wrong place. */
		nk_err("nsm %s: cannot return to nkd's netns: %s", kn->name,
		       strerror(errno));
		abort();
	}
	errno = err;
	return fd;
}

static int kn_sock_open(void *priv, struct nk_sock *s)
{
	struct kn *kn = priv;
	struct ksock *ks;
	int fd;

	fd = socket_in_ns(kn, s->family, s->type | SOCK_CLOEXEC, s->protocol);
	if (fd < 0)
		return -errno;
	ks = ks_alloc();
	if (!ks) {
		close(fd);
		return -ENOMEM;
	}
	ks->fd = fd;
	ks->kn = kn;
	ks->s = s;
	s->nsm_priv = ks;
	/* Unconnected TCP polls as HUP: watch streams once they connect. */
	if (s->type == SOCK_DGRAM)
		arm_poll(ks);
	else if (s->type == SOCK_STREAM && s->protocol != IPPROTO_MPTCP)
		set_notsent_lowat(fd);
	return 0;
}

static void kn_sock_release(void *priv, struct nk_sock *s)
{
	struct ksock *ks = ks_of(s);
	struct nk_list *p, *t;

	(void)priv;
	if (!ks)
		return;
	ks->closing = true;
	/* Queued receives and accepts die; queued sends finish. */
	nk_list__for_each_safe(p, t, &ks->recvq)
	{
		struct nk_req *op = nk_container_of(p, struct nk_req, qlink);

		if (!op->in_nsm)
			complete_queued(op, -ECANCELED);
		else
			nk_loop__cancel_ud(ks->kn->loop, op_ud(op));
	}
	if (ks->poll_armed)
		nk_loop__cancel_ud(ks->kn->loop,
				   nk_ud(NK_UD_KPOLL, ks->gen, ks->slot));
	if (ks->bg_connect || ks->ms_armed)
		nk_loop__cancel_ud(ks->kn->loop,
				   nk_ud(NK_UD_KINT, ks->gen, ks->slot));
	/* Connections no guest accepted yet are reset, as a close would. */
	accq_drain(ks);
	if (ks->connect_op)
		nk_loop__cancel_ud(ks->kn->loop, op_ud(ks->connect_op));
	if (s->state == NK_SS_LISTEN)
		shutdown(ks->fd, SHUT_RDWR);
	ks_maybe_close(ks);
}

static unsigned kn_poll_now(void *priv, struct nk_sock *s)
{
	struct ksock *ks = ks_of(s);

	(void)priv;
	if (!ks)
		return 0;
	if (ks->accq.len)
		return POLLIN;
	/*
	 * An armed multishot ACCEPT takes each connection as it arrives and
	 * its completion marks the listener readable: an empty queue is the
	 * answer, without a poll per accepted connection. Stopped (or
	 * stopping) at the bound, the kernel's backlog says.
	 */
	if (ks->ms_on)
		return ks->ms_armed && !ks->ms_stop
			       ? 0
			       : poll_fd(ks->fd, POLL_MASK);
	if (!ks->want_poll)
		return s->so_error ? POLLERR | POLLOUT : 0;
	return poll_fd(ks->fd, POLL_MASK);
}

static bool kn_send_peer_limited(void *priv, struct nk_sock *s)
{
	struct ksock *ks = ks_of(s);

	(void)priv;
	return ks && ks->send_op && s->type == SOCK_STREAM &&
	       nk_kn__send_peer_limited(ks->fd, &ks->sendlim);
}

static int kn_sock_name(void *priv, struct nk_sock *s, bool peer,
			struct sockaddr_storage *ss, socklen_t *len)
{
	struct ksock *ks = ks_of(s);

	(void)priv;
	*len = sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if (!ks)
		return -EBADF;
	if (peer ? getpeername(ks->fd, (struct sockaddr *)ss, len)
		 : getsockname(ks->fd, (struct sockaddr *)ss, len))
		return -errno;
	return 0;
}

/*
 * Is the NSM usable? Opening its netns file proves little: without
 * CAP_SYS_ADMIN over the user namespace that owns it, setns() fails and so
 * would every guest socket (EPERM). One socket made and closed the way a
 * guest's is made, before nkd says it is ready.
 */
static int kn_probe(struct kn *kn, const struct nk_nsm_conf *conf)
{
	int fd = socket_in_ns(kn, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int err = -errno;

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	nk_err("nsm %s: unusable: cannot open a socket in %s: %s%s", kn->name,
	       conf->netns[0] ? conf->netns : "nkd's network namespace",
	       strerror(-err),
	       err == -EPERM && conf->netns[0]
		       ? " (entering a network namespace needs CAP_SYS_ADMIN "
			 "in the user namespace that owns it)"
		       : "");
	return err;
}

static int kn_create(struct nk_engine *e, struct nk_loop *loop,
		     const struct nk_nsm_conf *conf, void **priv)
{
	struct kn *kn = calloc(1, sizeof(*kn));
	int ret;

	if (!kn)
		return -ENOMEM;
	kn->e = e;
	kn->loop = loop;
	kn->netns_fd = -1;
	kn->self_ns_fd = -1;
	snprintf(kn->name, sizeof(kn->name), "%s", conf->name);
	if (conf->netns[0]) {
		kn->netns_fd = open(conf->netns, O_RDONLY | O_CLOEXEC);
		kn->self_ns_fd =
			open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (kn->netns_fd < 0 || kn->self_ns_fd < 0) {
			int err = -errno;

			if (kn->netns_fd >= 0)
				close(kn->netns_fd);
			if (kn->self_ns_fd >= 0)
				close(kn->self_ns_fd);
			free(kn);
			return err;
		}
	}
	ret = kn_probe(kn, conf);
	if (ret) {
		if (kn->netns_fd >= 0)
			close(kn->netns_fd);
		if (kn->self_ns_fd >= 0)
			close(kn->self_ns_fd);
		free(kn);
		return ret;
	}
	kt.e = e;
	kt.users++;
	nk_loop__on(loop, NK_UD_KOP, on_kop, e);
	nk_loop__on(loop, NK_UD_KPOLL, on_kpoll, NULL);
	nk_loop__on(loop, NK_UD_KINT, on_kint, NULL);
	*priv = kn;
	return 0;
}

static void kn_destroy(void *priv)
{
	struct kn *kn = priv;

	/* The ring is gone: whatever is left can simply be closed. */
	for (uint32_t i = 0; i < kt.cap; i++) {
		struct ksock *ks = kt.ks[i];

		if (ks->used && ks->kn == kn) {
			close(ks->fd);
			accq_drain(ks);
			nk_kn_accq__free(&ks->accq);
			if (ks->s)
				ks->s->nsm_priv = NULL;
			ks_free(ks);
		}
	}
	if (kn->netns_fd >= 0)
		close(kn->netns_fd);
	if (kn->self_ns_fd >= 0)
		close(kn->self_ns_fd);
	free(kn);
	if (--kt.users == 0) {
		for (uint32_t i = 0; i < kt.cap; i++)
			free(kt.ks[i]);
		free(kt.ks);
		free(kt.free);
		memset(&kt, 0, sizeof(kt));
	}
}

const struct nk_nsm_ops nk_nsm_kernel_ops = {
	.type = "kernel",
	.create = kn_create,
	.destroy = kn_destroy,
	.sock_open = kn_sock_open,
	.sock_release = kn_sock_release,
	.bind = kn_bind,
	.listen = kn_listen,
	.connect = kn_connect,
	.accept = kn_accept,
	.send = kn_send,
	.recv = kn_recv,
	.shutdown = kn_shutdown,
	.setsockopt = kn_setsockopt,
	.getsockopt = kn_getsockopt,
	.getsockname = kn_getsockname,
	.getpeername = kn_getpeername,
	.ioctl = kn_ioctl,
	.cancel = kn_cancel,
	.poll_now = kn_poll_now,
	.send_peer_limited = kn_send_peer_limited,
	.sock_name = kn_sock_name,
	.poll = NULL,
	/* Its own SEND queue per socket: short sends go on in io_uring. */
	.caps = NK_NSM_CAP_RECV_BATCH | NK_NSM_CAP_ACCEPT_REPORTS,
};
