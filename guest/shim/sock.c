// SPDX-License-Identifier: MIT
/*
 * Socket operations as ring entries (docs/abi.md section 5). Each returns
 * a result >= 0 or -errno; intercept.c turns that into errno.
 *
 * Sends are asynchronous: the bytes are copied into data-area buffers, the
 * SEND is queued and the call returns while the socket's SENDs stay under
 * nkd's send window (abi.md §5); an error of an earlier SEND is reported
 * by the next send or recv, as the kernel reports a reset or EPIPE. Until
 * a socket is known able to send (tx_ok), its sends wait for their result.
 * Everything else waits for its completion.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

#define NK_ADDR_BYTES ((uint32_t)sizeof(struct nk_sockaddr))
/*
 * Longest a non-blocking send lets nkd catch up with its SENDs before it
 * answers EAGAIN with the placeholder perhaps still writable. nkd takes
 * SQEs within microseconds when it runs, but on a loaded machine it may
 * not run for tens of milliseconds (10 ms gave a false POLLOUT under
 * `make check` on 2 cores); only a sender a whole window ahead waits.
 */
#define NK_SEND_TAKEN_NS (1000 * 1000 * 1000LL)

int nk_addr__from_sa(const struct sockaddr *sa, socklen_t len,
		     struct nk_sockaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (!sa || len < (socklen_t)sizeof(sa_family_t))
		return -EINVAL;
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const void *)sa;

		if (len < (socklen_t)sizeof(*in))
			return -EINVAL;
		out->family = AF_INET;
		out->port = in->sin_port;
		memcpy(out->addr, &in->sin_addr, 4);
		return 0;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		if (len < (socklen_t)sizeof(*in6))
			return -EINVAL;
		out->family = AF_INET6;
		out->port = in6->sin6_port;
		out->flowinfo = in6->sin6_flowinfo;
		memcpy(out->addr, &in6->sin6_addr, 16);
		out->scope_id = in6->sin6_scope_id;
		return 0;
	}
	case AF_UNSPEC:
		return 0; /* connect(AF_UNSPEC) dissolves a UDP association */
	default:
		return -EAFNOSUPPORT;
	}
}

void nk_addr__to_sa(const struct nk_sockaddr *in, struct sockaddr *sa,
		    socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t real;

	memset(&ss, 0, sizeof(ss));
	if (in->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = in->port;
		s6->sin6_flowinfo = in->flowinfo;
		memcpy(&s6->sin6_addr, in->addr, 16);
		s6->sin6_scope_id = in->scope_id;
		real = sizeof(*s6);
	} else if (in->family == AF_INET) {
		struct sockaddr_in *s4 = (void *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = in->port;
		memcpy(&s4->sin_addr, in->addr, 4);
		real = sizeof(*s4);
	} else {
		ss.ss_family = AF_UNSPEC;
		real = sizeof(sa_family_t);
	}
	if (sa && len)
		memcpy(sa, &ss, *len < real ? *len : real);
	if (len)
		*len = real; /* truncated like the kernel: full size reported */
}

static int64_t ms_of(int64_t us)
{
	int64_t ms = (us + 999) / 1000;

	return ms > UINT32_MAX ? UINT32_MAX : ms;
}

/* Blocking ops bounded by SO_RCVTIMEO / SO_SNDTIMEO. */
static void set_timeout(struct nk_sqe *sqe, int64_t us)
{
	if (us <= 0)
		return;
	sqe->flags |= NK_SQE_F_TIMEOUT;
	sqe->io.timeout_ms = (uint32_t)ms_of(us);
}

/*
 * Is there anything for us? nkd keeps a byte queued on the placeholder
 * whenever the socket is readable (or a listener has a connection), so a
 * non-blocking call can answer EAGAIN without a round trip. Only EAGAIN
 * means "nothing": 0 (nkd shut or closed its end to mirror the peer's FIN
 * or a reset) and any error (the ECONNRESET nkd left in the app end's
 * sk_err, which this peek consumes) say "ask nkd", whose socket gives
 * the real EOF or error.
 */
static bool placeholder_ready(int fd)
{
	char c;
	ssize_t n = REAL(recv)(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	return n != -1 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/*
 * How long a call may wait for a data buffer: never when non-blocking,
 * else until SO_RCVTIMEO (0 = no bound; signals interrupt it).
 */
static int64_t rcv_deadline(struct nk_sock *s, bool nonblock)
{
	int64_t us = atomic_load(&s->rcvtimeo_us);

	return nonblock || us <= 0 ? 0 : nk_now_ns() + us * 1000;
}

static int call_simple(struct nk_sqe *sqe, bool intr)
{
	struct nk_call op;
	int err = nk_ring__call(sqe, &op, intr);

	return err ? err : op.cqe.res;
}

/*
 * With NK_FEAT_PH_SQE the SOCKET or ACCEPT itself names the new socket's
 * placeholder (NK_SQE_F_PH): taken from the pool first, in place with
 * the socket's flags, and bound by nkd before the CQE, so no PH_BIND, no
 * fstat (nkd has the inode) and no F_SETFD. *fd: the placeholder, or -1
 * without the feature (install_new() takes and binds one afterwards).
 * Fails as socket() and accept() would without a descriptor to give:
 * before nkd is asked, so a connection stays queued (EMFILE).
 */
static int ph_prepare(struct nk_sqe *sqe, int flags, int *fd)
{
	uint64_t id;
	int err;

	*fd = -1;
	if (!nk_conn__has_feature(NK_FEAT_PH_SQE))
		return 0;
	err = nk_conn__ph_take(fd, &id, flags & SOCK_CLOEXEC);
	if (err)
		return err;
	if (flags & SOCK_NONBLOCK)
		REAL(fcntl)(*fd, F_SETFL, O_NONBLOCK);
	sqe->flags |= NK_SQE_F_PH;
	sqe->ph.id = id;
	return 0;
}

/*
 * Wrap a new handle in a placeholder fd; returns the fd. pfd: the
 * placeholder nkd bound with the SQE (ph_prepare), or -1: take one from
 * the pool and bind it with PH_BIND now.
 */
static int install_new(uint32_t handle, int pfd, int domain, int type,
		       int protocol, int flags, bool accepted)
{
	struct nk_sqe close_sqe = { .opcode = NK_OP_CLOSE, .handle = handle };
	struct nk_sock *s, *old;
	struct stat st;
	uint64_t id = 0;
	bool bound = pfd >= 0;
	int sv[1], err;

	sv[0] = pfd;
	/* nkd made it and keeps the other end (abi.md §6). */
	if (!bound) {
		err = nk_conn__ph_take(&sv[0], &id, flags & SOCK_CLOEXEC);
		if (err)
			goto fail_handle;
		/* The app end tells the truth to F_GETFL and fstat. */
		if (flags & SOCK_NONBLOCK)
			REAL(fcntl)(sv[0], F_SETFL, O_NONBLOCK);
		if (fstat(sv[0], &st) < 0) {
			err = -errno;
			goto fail_pair;
		}
	}
	s = nk_sock__alloc();
	if (!s) {
		err = -ENOMEM;
		goto fail_pair;
	}
	s->handle = handle;
	s->domain = domain;
	s->type = type;
	s->protocol = protocol;
	if (!bound) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	atomic_store(&s->nonblock, !!(flags & SOCK_NONBLOCK));
	atomic_store(&s->rx_exact, accepted || type != SOCK_STREAM);
	err = bound ? 0 : nk_ctl__ph_bind(handle, id, s->dev, s->ino);
	if (err) {
		nk_sock__put(s);
		REAL(close)(sv[0]);
		goto fail_handle;
	}
	err = nk_fdtab__install(sv[0], s, &old);
	if (old)
		nk_sock__fdput(old);
	if (err) {
		nk_sock__put(s);
		REAL(close)(sv[0]);
		goto fail_handle;
	}
	nk_sock__put(s);
	nk_dbg("handle %u is fd %d", handle, sv[0]);
	return sv[0];
fail_pair:
	if (!bound)
		nk_ctl__ph_bind(0, id, 0, 0); /* give it back */
	REAL(close)(sv[0]);
fail_handle:
	/* nkd closes a placeholder it bound with the socket. */
	call_simple(&close_sqe, false);
	return err;
}

int nk_sock__create(int domain, int type, int protocol)
{
	int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct nk_sqe sqe = { .opcode = NK_OP_SOCKET };
	int res, pfd;

	type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	sqe.sock.domain = domain;
	sqe.sock.type = type;
	sqe.sock.protocol = protocol;
	res = ph_prepare(&sqe, flags, &pfd);
	if (res)
		return res;
	res = call_simple(&sqe, false);
	if (res <= 0) {
		if (pfd >= 0) /* nkd dropped its ends (abi.md §6) */
			REAL(close)(pfd);
		return res ? res : -EPROTO;
	}
	return install_new((uint32_t)res, pfd, domain, type, protocol, flags,
			   false);
}

int nk_sock__bind(struct nk_sock *s, const struct sockaddr *sa, socklen_t len)
{
	struct nk_sqe sqe = { .opcode = NK_OP_BIND, .handle = s->handle };
	int err = nk_addr__from_sa(sa, len, &sqe.addr);

	err = err ? err : call_simple(&sqe, false);
	if (!err)
		nk_rst__note_bind(s);
	return err;
}

int nk_sock__listen(struct nk_sock *s, int backlog)
{
	struct nk_sqe sqe = { .opcode = NK_OP_LISTEN, .handle = s->handle };
	int res;

	sqe.ctl.arg = backlog < 0 ? 0 : (uint32_t)backlog;
	res = call_simple(&sqe, false);
	if (res == 0) {
		atomic_store(&s->listening, 1);
		atomic_store(&s->rx_exact, 0); /* recv: ENOTCONN */
		nk_rst__note_listen(s, backlog);
	}
	return res;
}

int nk_sock__accept(struct nk_sock *s, int fd, struct sockaddr *sa,
		    socklen_t *len, int flags)
{
	struct nk_sqe sqe = { .opcode = NK_OP_ACCEPT, .handle = s->handle };
	bool nonblock = atomic_load(&s->nonblock);
	struct nk_sockaddr peer;
	struct nk_call op;
	int idx, err, nfd, pfd;
	bool quick;

	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return -EINVAL;
	/* Only a listener's empty placeholder means EAGAIN; else EINVAL. */
	if (nonblock && atomic_load(&s->listening) && !placeholder_ready(fd))
		return -EAGAIN;
	/*
	 * A blocking accept may wait for long: its placeholder would sit on
	 * a low fd number meanwhile (where another thread's dup2() could
	 * land), so it binds after the CQE, with PH_BIND. Unless a
	 * connection is waiting already (the listener's placeholder says
	 * so): then it asks without waiting, placeholder first, and waits
	 * the usual way only if another process took that connection.
	 */
	pfd = -1;
	quick = nonblock ||
		(atomic_load(&s->listening) &&
		 nk_conn__has_feature(NK_FEAT_PH_SQE) && placeholder_ready(fd));
	err = quick ? ph_prepare(&sqe, flags, &pfd) : 0;
	if (err)
		return err;
	idx = nk_buf__alloc(!nonblock, rcv_deadline(s, nonblock));
	if (idx < 0) {
		/* Not asked: nkd still has it in the pool; give it back. */
		if (pfd >= 0) {
			nk_ctl__ph_bind(0, sqe.ph.id, 0, 0);
			REAL(close)(pfd);
		}
		return idx;
	}
	sqe.io.buf_off = nk_buf__off(idx);
	sqe.io.buf_len = NK_ADDR_BYTES;
	for (;;) {
		if (quick)
			sqe.flags |= NK_SQE_F_NONBLOCK;
		else
			set_timeout(&sqe, atomic_load(&s->rcvtimeo_us));
		err = nk_ring__call(&sqe, &op, !quick);
		if (nonblock || !quick || err || op.cqe.res != -EAGAIN)
			break;
		/* Taken by another: nkd dropped its ends; wait for the next. */
		REAL(close)(pfd);
		pfd = -1;
		quick = false;
		sqe.flags = 0;
		memset(&sqe.ph, 0, sizeof(sqe.ph));
	}
	if (!err && op.cqe.res > 0)
		memcpy(&peer, nk_buf__ptr(idx), sizeof(peer));
	nk_buf__free(idx);
	/* Unless it is the new socket's, nkd dropped its ends (abi.md §6). */
	if (pfd >= 0 && (err || op.cqe.res <= 0))
		REAL(close)(pfd);
	if (err)
		return err;
	if (op.cqe.res <= 0)
		return op.cqe.res ? op.cqe.res : -EPROTO;
	nfd = install_new((uint32_t)op.cqe.res, pfd, s->domain, s->type,
			  s->protocol, flags, true);
	if (nfd >= 0) {
		struct nk_sock *ns = nk_fdtab__get(nfd);

		if (ns) { /* connected: sends need not wait (tx_ok) */
			atomic_store(&ns->tx_ok, 1);
			atomic_store(&ns->peer_remote,
				     !!(op.cqe.flags & NK_CQE_F_REMOTE));
			/* The listener's SO_SNDBUF, as at nkd (abi.md §5). */
			atomic_store(&ns->window, atomic_load(&s->window));
			nk_sock__put(ns);
		}
	}
	if (nfd >= 0 && sa && len)
		nk_addr__to_sa(&peer, sa, len);
	return nfd;
}

int nk_sock__connect(struct nk_sock *s, const struct sockaddr *sa,
		     socklen_t len)
{
	struct nk_sqe sqe = { .opcode = NK_OP_CONNECT, .handle = s->handle };
	int err = nk_addr__from_sa(sa, len, &sqe.addr), res;

	if (err)
		return err;
	nk_dnsmap__dst(s, &sqe.addr);
	if (atomic_load(&s->nonblock))
		sqe.flags |= NK_SQE_F_NONBLOCK;
	else
		set_timeout(&sqe, atomic_load(&s->sndtimeo_us));
	res = call_simple(&sqe, true);
	/* Sends need not wait for their result now (tx_ok, shim.h). */
	if (res == 0) {
		atomic_store(&s->tx_ok, sqe.addr.family != 0);
		nk_rst__note_connect(s, &sqe.addr);
	}
	/* A connect that timed out goes on in the background, as in Linux. */
	if (res == -EAGAIN && !(sqe.flags & NK_SQE_F_NONBLOCK))
		res = -EINPROGRESS;
	/*
	 * Connected or connecting: recv's EAGAIN can come from the
	 * placeholder. connect(AF_UNSPEC) disconnects: ENOTCONN again.
	 */
	if (s->type == SOCK_STREAM && (res == 0 || res == -EINPROGRESS ||
				       res == -EALREADY || res == -EISCONN))
		atomic_store(&s->rx_exact, sqe.addr.family != 0);
	return res;
}

int nk_sock__shutdown(struct nk_sock *s, int fd, int how)
{
	struct nk_sqe sqe = { .opcode = NK_OP_SHUTDOWN, .handle = s->handle };
	int err;

	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	/*
	 * No wait for the queued SENDs: they are on the SQ before this
	 * SHUTDOWN, and nkd sends the FIN after them (abi.md §5). Waiting
	 * would hang a process whose peer reads only after this returns.
	 */
	sqe.ctl.arg = (uint32_t)how;
	err = call_simple(&sqe, false);
	if (err)
		return err;
	if (how != SHUT_RD && s->type == SOCK_STREAM)
		atomic_store(&s->wr_shut, 1);
	/*
	 * The same shutdown on the app end: once nkd has shut the other
	 * direction too (the peer's FIN), the placeholder polls as POLLHUP
	 * like the socket (docs/abi.md §6).
	 */
	REAL(shutdown)(fd, how);
	return 0;
}

int nk_sock__name(struct nk_sock *s, bool peer, struct sockaddr *sa,
		  socklen_t *len)
{
	struct nk_sqe sqe = { .opcode = peer ? NK_OP_GETPEERNAME
					     : NK_OP_GETSOCKNAME,
			      .handle = s->handle };
	struct nk_sockaddr a;
	int idx, res;

	if (!len)
		return -EFAULT;
	idx = nk_buf__alloc(true, 0);
	if (idx < 0)
		return idx;
	sqe.io.buf_off = nk_buf__off(idx);
	sqe.io.buf_len = NK_ADDR_BYTES;
	res = call_simple(&sqe, false);
	if (res >= 0)
		memcpy(&a, nk_buf__ptr(idx), sizeof(a));
	nk_buf__free(idx);
	if (res < 0)
		return res;
	if (peer)
		nk_dnsmap__src(s, &a);
	nk_addr__to_sa(&a, sa, len);
	return 0;
}

/* Forward a socket option; value in/out through one buffer. */
static int fwd_sockopt(struct nk_sock *s, bool set, int level, int name,
		       void *val, socklen_t *len)
{
	struct nk_sqe sqe = { .opcode = set ? NK_OP_SETSOCKOPT
					    : NK_OP_GETSOCKOPT,
			      .handle = s->handle };
	uint32_t n = *len;
	int idx, res;

	if (n > nk_conn__buf_size())
		return -EINVAL;
	idx = nk_buf__alloc(true, 0);
	if (idx < 0)
		return idx;
	if (set && n)
		memcpy(nk_buf__ptr(idx), val, n);
	sqe.io.buf_off = nk_buf__off(idx);
	sqe.io.buf_len = n;
	sqe.opt.level = level;
	sqe.opt.optname = name;
	res = call_simple(&sqe, false);
	if (!set && res >= 0) {
		uint32_t got = (uint32_t)res < n ? (uint32_t)res : n;

		memcpy(val, nk_buf__ptr(idx), got);
		*len = got;
	}
	nk_buf__free(idx);
	return res < 0 ? res : 0;
}

static int put_int(void *val, socklen_t *len, int v)
{
	if (!len || *len < sizeof(int))
		return -EINVAL;
	memcpy(val, &v, sizeof(int));
	*len = sizeof(int);
	return 0;
}

static int put_tv(void *val, socklen_t *len, int64_t us)
{
	struct timeval tv = { .tv_sec = us / 1000000, .tv_usec = us % 1000000 };

	if (!len || *len < sizeof(tv))
		return -EINVAL;
	memcpy(val, &tv, sizeof(tv));
	*len = sizeof(tv);
	return 0;
}

int nk_sock__getsockopt(struct nk_sock *s, int level, int name, void *val,
			socklen_t *len)
{
	if (!len)
		return -EFAULT;
	if (level == SOL_SOCKET) {
		int err;

		switch (name) {
		case SO_TYPE:
			return put_int(val, len, s->type);
		case SO_DOMAIN:
			return put_int(val, len, s->domain);
		case SO_PROTOCOL:
			return put_int(val, len,
				       s->protocol		? s->protocol
				       : s->type == SOCK_STREAM ? IPPROTO_TCP
								: IPPROTO_UDP);
		case SO_ACCEPTCONN:
			return put_int(val, len, atomic_load(&s->listening));
		case SO_RCVTIMEO:
			return put_tv(val, len, atomic_load(&s->rcvtimeo_us));
		case SO_SNDTIMEO:
			return put_tv(val, len, atomic_load(&s->sndtimeo_us));
		case SO_ERROR:
			err = atomic_exchange(&s->pending_err, 0);
			if (err)
				return put_int(val, len, err);
			break;
		}
	}
	return fwd_sockopt(s, false, level, name, val, len);
}

/* The same shrink nkd applies (abi.md §5): never grows back. */
static void sndbuf_window(struct nk_sock *s, const void *val)
{
	uint32_t cur = atomic_load(&s->window), w;
	int v;

	memcpy(&v, val, sizeof(v));
	w = v > 0 && v < (int)(UINT32_MAX / 2) ? 2 * (uint32_t)v : 0;
	if (v >= (int)(UINT32_MAX / 2))
		w = UINT32_MAX;
	if (w < NK_SNDBUF_WINDOW_MIN)
		w = NK_SNDBUF_WINDOW_MIN;
	if (!cur)
		cur = nk_conn__send_window();
	if (w < cur)
		atomic_store(&s->window, w);
}

int nk_sock__setsockopt(struct nk_sock *s, int fd, int level, int name,
			const void *val, socklen_t len)
{
	(void)fd;
	if (level == SOL_SOCKET &&
	    (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
		struct timeval tv;
		int64_t us;

		if (len < sizeof(tv))
			return -EINVAL;
		memcpy(&tv, val, sizeof(tv));
		if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
			return -EDOM;
		us = tv.tv_sec < 0 ? 0 : tv.tv_sec * 1000000LL + tv.tv_usec;
		atomic_store(name == SO_RCVTIMEO ? &s->rcvtimeo_us
						 : &s->sndtimeo_us,
			     us);
		return 0;
	}
	int res;

	if (level == SOL_SOCKET &&
	    (name == SO_TYPE || name == SO_DOMAIN || name == SO_PROTOCOL ||
	     name == SO_ACCEPTCONN))
		return -ENOPROTOOPT;
	res = fwd_sockopt(s, true, level, name, (void *)val, &len);
	if (!res && level == SOL_SOCKET && name == SO_SNDBUF &&
	    len >= sizeof(int))
		sndbuf_window(s, val);
	if (!res && level == SOL_SOCKET && name == SO_RCVLOWAT) {
		atomic_store(&s->rx_nopush, 1);
		/* One kept at nkd would push data below the mark (a reader
		 * blocked on it holds the lock: it is reading anyway). */
		if (!pthread_mutex_trylock(&s->rx_lock)) {
			if (atomic_load(&s->pf_state) == NK_PF_PARKED)
				nk_ring__prefetch_cancel(s->pf_idx);
			pthread_mutex_unlock(&s->rx_lock);
		}
	}
	if (!res) {
		nk_cmsg__track_opt(s, level, name, val, len);
		nk_rst__note_opt(s, level, name, val, len);
	}
	return res;
}

static size_t iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Copy between a flat buffer and an iovec, starting skip bytes in. */
static void iov_scatter(const struct iovec *iov, size_t n, size_t skip,
			const uint8_t *src, size_t len)
{
	for (size_t i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len ? l - skip : len;
		memcpy((uint8_t *)iov[i].iov_base + skip, src, c);
		src += c;
		len -= c;
		skip = 0;
	}
}

static void iov_gather(const struct iovec *iov, size_t n, size_t skip,
		       uint8_t *dst, size_t len)
{
	for (size_t i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len ? l - skip : len;
		memcpy(dst, (const uint8_t *)iov[i].iov_base + skip, c);
		dst += c;
		len -= c;
		skip = 0;
	}
}

/*
 * End of stream, unless an async SEND found a reset first: nkd's kernel
 * socket then gave its sk_err to that SEND, and the kernel would have
 * given it to this recv once the data was read (nk_sock__send_failed).
 */
static int eof_error(struct nk_sock *s)
{
	int err = atomic_exchange(&s->pending_err, 0);

	return err ? -err : 0;
}

void nk_sock__stash_drop(struct nk_sock *s)
{
	int done = NK_PF_DONE;

	if (atomic_compare_exchange_strong(&s->pf_state, &done, NK_PF_NONE))
		nk_buf__free(s->pf_idx);
}

bool nk_sock__standing_ok(struct nk_sock *s)
{
	/*
	 * Non-blocking sockets only: an event loop finds its data pushed.
	 * A blocking reader waits in its RECV anyway, and a standing one
	 * would cost it a second wake-up (the MORE answer, then the data).
	 */
	return atomic_load(&s->nonblock) &&
	       (s->type == SOCK_STREAM || nk_rxb__on(s)) &&
	       atomic_load(&s->rx_exact) && !atomic_load(&s->listening) &&
	       !atomic_load(&s->rx_nopush) && !nk_conn__in_vm() &&
	       nk_conn__has_feature(NK_FEAT_RECV_STANDING);
}

void nk_sock__note_full(struct nk_sock *s, int res, uint32_t aux)
{
	uint32_t bs = nk_conn__buf_size();

	if (s->type == SOCK_STREAM)
		s->pf_full = res > 0 && (uint32_t)res >= bs;
	else /* room left for any datagram: the socket ran dry */
		s->pf_full = res >= (int)NK_RECV_BATCH_MAX ||
			     aux + sizeof(struct nk_dgram) + 65536 > bs;
}

bool nk_sock__standing_quiet(struct nk_sock *s, int fd, bool nonblock)
{
	if (!nonblock || !s->pf_quiet ||
	    atomic_load(&s->pf_state) != NK_PF_INFLIGHT)
		return false;
	nk_ring__poll();
	return atomic_load(&s->pf_state) == NK_PF_INFLIGHT &&
	       !placeholder_ready(fd);
}

/* A few reads: an honest nkd queues a byte an event. */
void nk_sock__ph_empty(int fd)
{
	char b[512];

	/* A short read took all there was; at most 16 KiB (a byte an
	 * arrival: nkd drains what is left when it keeps the RECV). */
	for (int i = 0; i < 32; i++)
		if (REAL(recv)(fd, b, sizeof(b), MSG_DONTWAIT) <
		    (ssize_t)sizeof(b))
			return;
}

/*
 * Read-ahead (docs/shim.md): after a RECV that filled a whole buffer, or
 * after the last byte of a read-ahead buffer was handed out, ask nkd for
 * the next buffer without waiting, so its copy overlaps the app's. Its
 * result is the socket's stash. Where nkd offers it, the RECV stays armed
 * at nkd while the socket is empty (standing), and nkd pushes the next
 * data into it as it arrives. After the last stashed byte (drained) the
 * placeholder is readable only because we held data: it is emptied here,
 * so that a poll right after this recv is exact without waiting for nkd.
 * Called with rx_lock, stash empty.
 */
static void stash_refill(struct nk_sock *s, int fd, bool drained)
{
	struct nk_sqe sqe = { .opcode = NK_OP_RECV,
			      .flags = NK_SQE_F_NONBLOCK | NK_SQE_F_PREFETCH,
			      .handle = s->handle };
	int idx = nk_buf__alloc_spare();

	if (idx < 0)
		return;
	s->pf_quiet = false;
	if (nk_sock__standing_ok(s)) {
		sqe.flags = NK_SQE_F_PREFETCH;
		if (drained) {
			nk_sock__ph_empty(fd);
			sqe.flags |= NK_SQE_F_EMPTIED;
			s->pf_quiet = !s->pf_full;
		}
	}
	nk_pf__submit(s, &sqe, idx);
}

int nk_sock__standing_wait(struct nk_sock *s, int fd, bool nonblock,
			   pthread_mutex_t *held)
{
	int64_t deadline = rcv_deadline(s, nonblock);

	for (;;) {
		uint32_t g = nk_ring__gen();
		int st, err;

		nk_ring__poll();
		st = atomic_load(&s->pf_state);
		if (st != NK_PF_PARKED && st != NK_PF_INFLIGHT)
			return st;
		if (st == NK_PF_PARKED && nonblock) {
			if (!placeholder_ready(fd))
				return st;
			/*
			 * Readable: the RECV is going down (its CQE comes
			 * before nkd's byte when it brings data). Briefly:
			 * a non-blocking call must not wait on the network.
			 */
			if (!deadline)
				deadline = nk_now_ns() + NK_STANDING_WAIT_NS;
		}
		if (held)
			pthread_mutex_unlock(held);
		err = nk_ring__wait_progress(g, deadline, !nonblock);
		if (held)
			pthread_mutex_lock(held);
		if (err == -ETIMEDOUT && nonblock)
			return atomic_load(&s->pf_state);
		if (err)
			return err == -ETIMEDOUT ? -EAGAIN : err;
	}
}

/*
 * Serve a stream recv from the stash. Returns 1 with *ret set when the
 * call is answered (data; 2: an end or an error, which ends a MSG_WAITALL
 * too), 0 to go on to nkd (stash empty, or the read-ahead found the socket
 * empty), < 0 if waiting for the read-ahead failed. Called with rx_lock.
 */
static int stash_take(struct nk_sock *s, int fd, bool nonblock,
		      struct msghdr *msg, size_t *got, size_t total, int flags,
		      ssize_t *ret)
{
	int st;

	if (nk_sock__standing_quiet(s, fd, nonblock)) {
		*ret = *got ? (ssize_t)*got : -EAGAIN;
		return 1;
	}
	st = nk_pf__settle(s);

	if (st == NK_PF_PARKED)
		st = nk_sock__standing_wait(s, fd, nonblock, NULL);
	if (st == NK_PF_PARKED || st == -EAGAIN) {
		/* Nothing yet, and nkd will push it: no need to ask. */
		*ret = *got ? (ssize_t)*got : -EAGAIN;
		return 1;
	}
	if (st < 0)
		return st;
	if (st != NK_PF_DONE)
		return 0;
	if (s->pf_res > 0) {
		uint32_t left = (uint32_t)s->pf_res - s->pf_off;
		size_t n = left < total - *got ? left : total - *got;
		int idx = s->pf_idx;
		uint32_t off = s->pf_off;
		bool last = n == left && !(flags & MSG_PEEK);

		if (last) {
			int done = NK_PF_DONE;

			/* Lost only to a close racing with this recv. */
			if (!atomic_compare_exchange_strong(&s->pf_state, &done,
							    NK_PF_NONE))
				return -EBADF;
			/* Ask for the next one before copying this out. */
			stash_refill(s, fd, true);
		} else if (!(flags & MSG_PEEK)) {
			s->pf_off += (uint32_t)n;
		}
		iov_scatter(msg->msg_iov, msg->msg_iovlen, *got,
			    nk_buf__ptr(idx) + off, n);
		if (last)
			nk_buf__free(idx);
		*got += n;
		*ret = (ssize_t)*got;
		return 1;
	}
	if (s->pf_res == -EAGAIN || s->pf_res == -ECANCELED ||
	    s->pf_res == -EOPNOTSUPP) {
		/* nkd drained the placeholder, or the socket is readable
		 * again and the standing RECV ended: ask nkd. EOPNOTSUPP:
		 * this socket's NSM wants no standing RECVs. */
		if (s->pf_res == -EOPNOTSUPP)
			atomic_store(&s->rx_nopush, 1);
		nk_sock__stash_drop(s);
		return 0;
	}
	/* End of stream or an error: the app sees it like a recv would. */
	*ret = *got ? (ssize_t)*got : s->pf_res ? s->pf_res : eof_error(s);
	if (!*got && !(flags & MSG_PEEK))
		nk_sock__stash_drop(s);
	return 2; /* even MSG_WAITALL ends here */
}

static ssize_t recvmsg_locked(struct nk_sock *s, int fd, struct msghdr *msg,
			      int flags);

ssize_t nk_sock__recvmsg(struct nk_sock *s, int fd, struct msghdr *msg,
			 int flags)
{
	ssize_t r;

	if (s->type != SOCK_STREAM || (flags & MSG_OOB))
		return recvmsg_locked(s, fd, msg, flags);
	/* One reader at a time: the stash has one consumer. */
	pthread_mutex_lock(&s->rx_lock);
	r = recvmsg_locked(s, fd, msg, flags);
	pthread_mutex_unlock(&s->rx_lock);
	return r;
}

static ssize_t recvmsg_locked(struct nk_sock *s, int fd, struct msghdr *msg,
			      int flags)
{
	bool dgram = s->type == SOCK_DGRAM;
	bool nonblock = atomic_load(&s->nonblock) || (flags & MSG_DONTWAIT);
	bool want_addr = dgram && msg->msg_name && msg->msg_namelen;
	/* Control messages the kernel would attach (cmsg.c). */
	bool want_cmsg = dgram && atomic_load(&s->rx_cmsg) &&
			 nk_conn__has_feature(NK_FEAT_CMSG);
	uint32_t hdr = (want_addr ? NK_ADDR_BYTES : 0) +
		       (want_cmsg ? NK_CMSG_BYTES : 0);
	size_t total = iov_total(msg->msg_iov, msg->msg_iovlen), got = 0;
	void *ctl = msg->msg_control;
	size_t ctl_room = msg->msg_controllen;

	msg->msg_flags = 0;
	msg->msg_controllen = 0;
	if (msg->msg_name && !want_addr)
		msg->msg_namelen = 0;
	if (!total && !dgram)
		return 0;
	if (dgram) {
		/* Datagrams nkd handed over in a batch come first. */
		ssize_t r;
		int t;

		/* Held only here: a blocking RECV below waits without it. */
		pthread_mutex_lock(&s->rx_lock);
		t = nk_rxb__take(s, fd, nonblock, msg, flags, want_addr, &r);
		pthread_mutex_unlock(&s->rx_lock);
		if (t)
			return t < 0 ? t : r;
	}
	for (;;) {
		struct nk_sqe sqe = { .opcode = NK_OP_RECV,
				      .handle = s->handle };
		size_t cap = nk_conn__buf_size() - hdr, n;
		struct nk_call op;
		int idx, err, res;
		/* Control messages and peeks stay one datagram per RECV. */
		bool batch = dgram && !want_cmsg &&
			     !(flags & (MSG_PEEK | MSG_OOB)) && nk_rxb__on(s);
		int zero = 0;

		/* One batch out per socket: its rest has one place to go. */
		if (batch)
			batch = atomic_compare_exchange_strong(&s->rx_batching,
							       &zero, 1);

		if (cap > total - got)
			cap = total - got;
		if (!dgram && !(flags & MSG_OOB)) {
			ssize_t sr;
			int t = stash_take(s, fd, nonblock, msg, &got, total,
					   flags, &sr);

			if (t < 0)
				return got ? (ssize_t)got : t;
			if (t > 0) {
				if (t > 1 || sr <= 0 ||
				    !(flags & MSG_WAITALL) ||
				    (flags & MSG_PEEK) || got >= total)
					return sr;
				continue;
			}
		}
		if (nonblock && atomic_load(&s->rx_exact) &&
		    !placeholder_ready(fd)) {
			/*
			 * Let nkd push what comes next (abi.md §5), once the
			 * socket has had data: a connection that carries one
			 * request and closes costs no extra RECV.
			 */
			if (!dgram && !(flags & (MSG_PEEK | MSG_OOB)) &&
			    s->rx_reads && nk_sock__standing_ok(s))
				stash_refill(s, fd, false);
			return got ? (ssize_t)got : -EAGAIN;
		}
		idx = nk_buf__alloc(!nonblock, rcv_deadline(s, nonblock));
		if (idx < 0)
			return got ? (ssize_t)got : idx;
		sqe.io.buf_off = nk_buf__off(idx);
		sqe.io.buf_len = (uint32_t)(hdr + cap);
		sqe.io.msg_flags = flags & (MSG_PEEK | MSG_TRUNC | MSG_OOB);
		if (batch) {
			sqe.io.buf_len = nk_conn__buf_size();
			sqe.io.msg_flags = 0;
			sqe.flags |= NK_SQE_F_BATCH;
		}
		if (want_addr && !batch)
			sqe.flags |= NK_SQE_F_ADDR;
		if (want_cmsg)
			sqe.flags |= NK_SQE_F_CMSG;
		if (nonblock)
			sqe.flags |= NK_SQE_F_NONBLOCK;
		else
			set_timeout(&sqe, atomic_load(&s->rcvtimeo_us));
		err = nk_ring__call(&sqe, &op, !nonblock);
		res = err ? err : op.cqe.res;
		/* nkd's socket is connected or connecting (adopted ones). */
		if (!err && (res >= 0 || res == -EAGAIN) &&
		    !atomic_load(&s->rx_exact) && !atomic_load(&s->listening))
			atomic_store(&s->rx_exact, 1);
		if (batch && res > 0) {
			ssize_t r = nk_rxb__keep(s, idx, res, op.cqe.aux, msg,
						 flags, want_addr);

			atomic_store(&s->rx_batching, 0);
			return r;
		}
		if (batch)
			atomic_store(&s->rx_batching, 0);
		if (batch && res == -EOPNOTSUPP) {
			/* This socket's NSM does not batch: single RECVs. */
			atomic_store(&s->rx_nobatch, 1);
			nk_buf__free(idx);
			continue;
		}
		if (res == 0 && !dgram && !got)
			res = eof_error(s);
		if (res < 0) {
			nk_buf__free(idx);
			return got ? (ssize_t)got : res;
		}
		n = (size_t)res < cap ? (size_t)res : cap;
		/*
		 * A whole buffer came back: more is probably waiting. Or,
		 * from a socket's second read on (it carries more than one
		 * request), nkd pushes the next data as it comes (standing).
		 */
		if (!dgram && !(flags & (MSG_PEEK | MSG_OOB)) && res > 0 &&
		    ((cap == nk_conn__buf_size() && n == cap) ||
		     (++s->rx_reads >= 2 && nk_sock__standing_ok(s))))
			stash_refill(s, fd, false);
		iov_scatter(msg->msg_iov, msg->msg_iovlen, got,
			    nk_buf__ptr(idx) + hdr, n);
		if (want_addr && (op.cqe.flags & NK_CQE_F_ADDR)) {
			struct nk_sockaddr a;

			memcpy(&a, nk_buf__ptr(idx), sizeof(a));
			nk_dnsmap__src(s, &a);
			nk_addr__to_sa(&a, msg->msg_name, &msg->msg_namelen);
		} else if (want_addr) {
			msg->msg_namelen = 0;
		}
		if (op.cqe.flags & NK_CQE_F_TRUNC)
			msg->msg_flags |= MSG_TRUNC;
		if (want_cmsg) {
			struct nk_cmsg blk;

			memcpy(&blk,
			       nk_buf__ptr(idx) +
				       (want_addr ? NK_ADDR_BYTES : 0),
			       sizeof(blk));
			nk_cmsg__put_recv(msg, ctl, ctl_room, &blk);
		}
		nk_buf__free(idx);
		if (dgram)
			return (flags & MSG_TRUNC) ? res : (ssize_t)n;
		got += n;
		if (!(flags & MSG_WAITALL) || (flags & MSG_PEEK) || !res ||
		    got >= total)
			return (ssize_t)got;
	}
}

/* An error left by an earlier async SEND, reported once like the kernel. */
static int take_send_error(struct nk_sock *s, int flags)
{
	int err = atomic_exchange(&s->pending_err, 0);

	if (err == EPIPE && !(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
	return err;
}

/* Errors after which a stream socket's sending side is gone for good. */
static bool stream_dead_err(int err)
{
	return err == EPIPE || err == ECONNRESET || err == ECONNABORTED ||
	       err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH ||
	       err == ENOTCONN;
}

void nk_sock__send_failed(struct nk_sock *s, int err)
{
	int zero = 0;

	/*
	 * As the kernel: a reset (or a timeout) sits in sk_err, for the next
	 * send, recv or SO_ERROR, once; after it, and after an EPIPE, every
	 * send on the stream fails with EPIPE (wr_shut), which SO_ERROR does
	 * not report.
	 */
	if (s->type == SOCK_STREAM && stream_dead_err(err))
		atomic_store(&s->wr_shut, 1);
	if (err == EPIPE && s->type == SOCK_STREAM)
		return;
	atomic_compare_exchange_strong(&s->pending_err, &zero, err);
}

/*
 * A send whose result the app must see from this very call: the socket is
 * not known to be able to send (abi.md §5, tx_ok). One SEND, waited for.
 */
static ssize_t send_sync(struct nk_sock *s, struct nk_sqe *sqe,
			 const struct msghdr *msg, size_t total, int flags,
			 bool nonblock, const struct nk_cmsg *cblk,
			 uint32_t chead)
{
	size_t room = nk_conn__buf_size() - chead;
	size_t chunk = total < room ? total : room;
	int64_t tmo = atomic_load(&s->sndtimeo_us);
	struct nk_call op;
	int idx, err, res;

	if (s->type == SOCK_DGRAM && total > nk_conn__buf_size())
		return -EMSGSIZE;
	/* A blocking send waits for a buffer at most SO_SNDTIMEO. */
	idx = nk_buf__alloc(!nonblock,
			    tmo && !nonblock ? nk_now_ns() + tmo * 1000 : 0);
	if (idx < 0)
		return idx;
	if (chead) {
		memcpy(nk_buf__ptr(idx), cblk, sizeof(*cblk));
		sqe->flags |= NK_SQE_F_CMSG;
	}
	iov_gather(msg->msg_iov, msg->msg_iovlen, 0, nk_buf__ptr(idx) + chead,
		   chunk);
	sqe->io.buf_off = nk_buf__off(idx);
	sqe->io.buf_len = (uint32_t)(chead + chunk);
	if (nonblock)
		sqe->flags |= NK_SQE_F_NONBLOCK;
	else
		set_timeout(sqe, atomic_load(&s->sndtimeo_us));
	err = nk_ring__call(sqe, &op, !nonblock);
	res = err ? err : op.cqe.res;
	nk_buf__free(idx);
	if (res >= 0) {
		atomic_store(&s->tx_ok, 1);
		return res;
	}
	if (s->type == SOCK_STREAM && stream_dead_err(-res))
		atomic_store(&s->wr_shut, 1);
	if (res == -EPIPE && !(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
	return res;
}

ssize_t nk_sock__sendmsg(struct nk_sock *s, const struct msghdr *msg, int flags)
{
	bool dgram = s->type == SOCK_DGRAM;
	bool nonblock = atomic_load(&s->nonblock) || (flags & MSG_DONTWAIT);
	size_t total = iov_total(msg->msg_iov, msg->msg_iovlen), sent = 0;
	int64_t tmo = atomic_load(&s->sndtimeo_us);
	int64_t deadline = tmo && !nonblock ? nk_now_ns() + tmo * 1000 : 0;
	uint32_t bsize = nk_conn__buf_size();
	uint32_t sw = atomic_load(&s->window);
	int64_t window = sw ? sw : nk_conn__send_window();
	struct nk_sockaddr dest;
	bool have_dest = false;
	/* nkd is a daemon: never let its send raise SIGPIPE. */
	uint32_t msg_flags =
		(flags & (MSG_MORE | MSG_OOB | MSG_EOR | MSG_DONTROUTE)) |
		MSG_NOSIGNAL;
	struct nk_cmsg cblk;
	uint32_t chead = 0;
	int err;

	if ((err = take_send_error(s, flags)))
		return -err;
	/*
	 * Known here without asking nkd, whose SEND would only fail after
	 * this call returned (sends are asynchronous).
	 */
	if (atomic_load(&s->wr_shut)) {
		if (!(flags & MSG_NOSIGNAL))
			raise(SIGPIPE);
		return -EPIPE;
	}
	if (dgram && msg->msg_name && msg->msg_namelen) {
		err = nk_addr__from_sa(msg->msg_name, msg->msg_namelen, &dest);
		if (err)
			return err;
		nk_dnsmap__dst(s, &dest);
		have_dest = true;
	}
	/* Refused here like the kernel would, never silently dropped. */
	if (dgram && msg->msg_controllen) {
		err = nk_cmsg__pack_send(msg, s->domain, &cblk);
		if (err)
			return err;
		if (cblk.len && !nk_conn__has_feature(NK_FEAT_CMSG))
			return -EINVAL;
		chead = cblk.len ? NK_CMSG_BYTES : 0;
	}
	/*
	 * The protocol's limit (65,535 bytes of IP packet, or of IPv6 payload,
	 * less the headers), checked here: nkd's SEND completes after this
	 * call returned, too late for the EMSGSIZE the kernel gives at once.
	 */
	if (dgram && (total + chead > bsize ||
		      total > (s->domain == AF_INET6 ? 65527u : 65507u)))
		return -EMSGSIZE;
	if (!dgram && !total)
		return 0;
	if (!have_dest && !atomic_load(&s->tx_ok)) {
		struct nk_sqe sqe = { .opcode = NK_OP_SEND,
				      .handle = s->handle };
		ssize_t r;

		sqe.io.msg_flags = msg_flags;
		r = send_sync(s, &sqe, msg, total, flags, nonblock, &cblk,
			      chead);
		/* A blocking stream send goes on with the rest, async. */
		if (r <= 0 || dgram || nonblock || (size_t)r >= total)
			return r;
		sent = (size_t)r;
	}
	do {
		struct nk_sqe sqe = { .opcode = NK_OP_SEND,
				      .handle = s->handle };
		uint32_t g = nk_ring__gen();
		int64_t own = atomic_load(&s->charged), limit = window, room;
		size_t chunk;
		int idx;

		if (own >= limit) {
			/* Completions we have not reaped yet free it. */
			nk_ring__poll();
			own = atomic_load(&s->charged);
		}
		/*
		 * nkd owns the window (abi.md §5). Our count is at most
		 * nkd's once nkd has taken all our SENDs of the socket;
		 * until then it may go one more window ahead, which nkd,
		 * taking those SENDs, will find full. So an EAGAIN is only
		 * ever answered when the placeholder is unwritable already,
		 * and poll's POLLOUT means a send makes progress.
		 */
		if (own >= limit && nk_ring__sends_untaken(s))
			limit = 2 * window;
		room = limit - own;
		if (room <= 0 && nonblock && limit > window) {
			/*
			 * A whole window ahead of nkd: let it catch up (it
			 * answers in microseconds) rather than answer EAGAIN
			 * while the placeholder may still say POLLOUT.
			 */
			if (nk_ring__wait_taken(s, NK_SEND_TAKEN_NS) == 0)
				continue;
		}
		if (room <= 0) {
			if (nonblock)
				return sent ? (ssize_t)sent : -EAGAIN;
			err = nk_ring__wait_progress(g, deadline, true);
			if (err == -ETIMEDOUT)
				err = -EAGAIN;
			if (err)
				return sent ? (ssize_t)sent : err;
			if ((err = take_send_error(s, flags)))
				return sent ? (ssize_t)sent : -err;
			continue;
		}
		chunk = dgram ? total : total - sent;
		if (!dgram) {
			if (chunk > bsize)
				chunk = bsize;
			if ((int64_t)chunk > room)
				chunk = (size_t)room;
		}
		idx = nk_buf__alloc_send(!nonblock, deadline);
		/*
		 * Out of send buffers (few of them: bufs=) before the window
		 * is full: as for a full window, let nkd take our SENDs, and
		 * so make the placeholder unwritable, before saying EAGAIN.
		 */
		if (idx == -EAGAIN && nonblock && nk_ring__sends_untaken(s) &&
		    nk_ring__wait_taken(s, NK_SEND_TAKEN_NS) == 0)
			continue;
		if (idx < 0)
			return sent ? (ssize_t)sent : idx;
		if (chead) {
			memcpy(nk_buf__ptr(idx), &cblk, sizeof(cblk));
			sqe.flags |= NK_SQE_F_CMSG;
		}
		iov_gather(msg->msg_iov, msg->msg_iovlen, sent,
			   nk_buf__ptr(idx) + chead, chunk);
		sqe.io.buf_off = nk_buf__off(idx);
		sqe.io.buf_len = (uint32_t)(chead + chunk);
		sqe.io.msg_flags = msg_flags;
		if (have_dest) {
			sqe.flags |= NK_SQE_F_ADDR;
			sqe.addr = dest;
		}
		err = nk_ring__send_async(s, &sqe, idx, (uint32_t)chunk);
		if (err)
			return sent ? (ssize_t)sent : err;
		sent += chunk;
	} while (sent < total);
	return (ssize_t)sent;
}

ssize_t nk_sock__sendfile(struct nk_sock *s, int in_fd, off_t *off,
			  size_t count)
{
	size_t bsize = nk_conn__buf_size(), done = 0;
	uint8_t *bounce = malloc(bsize);
	ssize_t ret = 0;

	if (!bounce)
		return -ENOMEM;
	while (done < count) {
		size_t want = count - done < bsize ? count - done : bsize;
		struct iovec iov = { .iov_base = bounce };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n, w;

		n = off ? pread(in_fd, bounce, want, *off)
			: REAL(read)(in_fd, bounce, want);
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		iov.iov_len = (size_t)n;
		w = nk_sock__sendmsg(s, &mh, 0);
		if (w < 0) {
			ret = w;
			if (!off)
				lseek(in_fd, -n, SEEK_CUR);
			break;
		}
		if (off)
			*off += w;
		else if (w < n)
			lseek(in_fd, -(n - w), SEEK_CUR); /* unsent bytes */
		done += (size_t)w;
		if (w < n)
			break;
	}
	free(bounce);
	return done ? (ssize_t)done : ret;
}

int nk_sock__set_nonblock(struct nk_sock *s, int fd, bool on)
{
	int fl = REAL(fcntl)(fd, F_GETFL);

	if (fl >= 0)
		REAL(fcntl)
	(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	atomic_store(&s->nonblock, on);
	return 0;
}

int nk_sock__ioctl(struct nk_sock *s, int fd, unsigned long req, void *arg)
{
	struct nk_sqe sqe = { .opcode = NK_OP_IOCTL, .handle = s->handle };
	int res, v;

	switch (req) {
	case FIONBIO:
		if (!arg)
			return -EFAULT;
		memcpy(&v, arg, sizeof(v));
		return nk_sock__set_nonblock(s, fd, v != 0);
	case FIONREAD: /* == SIOCINQ */
		sqe.ctl.arg = NK_IOCTL_FIONREAD;
		break;
	case SIOCOUTQ:
		sqe.ctl.arg = NK_IOCTL_SIOCOUTQ;
		break;
	default:
		res = REAL(ioctl)(fd, req, arg);
		return res < 0 ? -errno : res;
	}
	if (!arg)
		return -EFAULT;
	res = call_simple(&sqe, false);
	if (res < 0)
		return res;
	/* Bytes still queued to nkd are unsent too. */
	if (req == SIOCOUTQ)
		res += (int)atomic_load(&s->inflight);
	/* A kept datagram is the next one the app reads. */
	if (req == FIONREAD && s->type == SOCK_DGRAM) {
		pthread_mutex_lock(&s->rx_lock);
		nk_rxb__fionread(s, &res);
		pthread_mutex_unlock(&s->rx_lock);
	}
	/* Read-ahead bytes are still unread for the app. */
	if (req == FIONREAD && s->type == SOCK_STREAM) {
		pthread_mutex_lock(&s->rx_lock);
		/* Let it land (a parked one holds nothing). */
		nk_pf__settle(s);
		if (atomic_load(&s->pf_state) == NK_PF_DONE && s->pf_res > 0)
			res += s->pf_res - (int)s->pf_off;
		pthread_mutex_unlock(&s->rx_lock);
	}
	memcpy(arg, &res, sizeof(res));
	return 0;
}

void nk_sock__last_close(struct nk_sock *s)
{
	nk_ring__close_sock(s);
	nk_sock__stash_drop(s);
}

struct nk_sock *nk_sock__adopt(uint32_t handle, int fd)
{
	struct nk_sock *s = nk_sock__alloc();
	int v, fl;
	socklen_t len;

	if (!s)
		return NULL;
	s->handle = handle;
	/* nkd knows what the socket is; the fd only knows O_NONBLOCK. */
	len = sizeof(v);
	s->domain = fwd_sockopt(s, false, SOL_SOCKET, SO_DOMAIN, &v, &len)
			    ? AF_INET
			    : v;
	len = sizeof(v);
	s->type = fwd_sockopt(s, false, SOL_SOCKET, SO_TYPE, &v, &len)
			  ? SOCK_STREAM
			  : v;
	len = sizeof(v);
	s->protocol = fwd_sockopt(s, false, SOL_SOCKET, SO_PROTOCOL, &v, &len)
			      ? 0
			      : v;
	len = sizeof(v);
	if (!fwd_sockopt(s, false, SOL_SOCKET, SO_ACCEPTCONN, &v, &len))
		atomic_store(&s->listening, v);
	fl = REAL(fcntl)(fd, F_GETFL);
	atomic_store(&s->nonblock, fl >= 0 && (fl & O_NONBLOCK));
	/* Inherited: the process that passed it may still read it. */
	atomic_store(&s->rx_nopush, 1);
	nk_rst__note_adopted(s);
	return s;
}
