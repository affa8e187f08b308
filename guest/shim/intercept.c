// SPDX-License-Identifier: MIT
/*
 * The interposed libc entry points. Each one decides: a netkernel socket
 * (its fd is in the fd table) goes to sock.c, anything else goes to libc
 * untouched. read/write/close and friends sit in every program's file I/O,
 * so their test is one bounds check and one atomic load (nk_fdtab__maybe).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "shim.h"

#define NK_EXPORT __attribute__((visibility("default")))

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern void __chk_fail(void) __attribute__((noreturn));

static inline long nk_ret(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* Referenced socket at fd if it is one of ours and nkd is usable. */
static struct nk_sock *sock_of(int fd)
{
	if (!nk_fdtab__maybe(fd))
		return NULL;
	return nk_fdtab__get(fd);
}

/* Run expr on socket s (attached), drop the reference, set errno. */
#define ON_SOCK(s, expr)                      \
	({                                    \
		long __r = nk_conn__ensure(); \
		if (__r == -EHOSTUNREACH)     \
			__r = -ENETDOWN;      \
		if (!__r)                     \
			__r = (expr);         \
		nk_sock__put(s);              \
		nk_ret(__r);                  \
	})

/*
 * ON_SOCK for data calls: while nkd is away (reattach.c), a blocking call
 * on a socket that comes back waits for it instead of failing at once.
 */
#define ON_DATA(s, flags, rx, expr)                                   \
	({                                                            \
		long __r;                                             \
		int64_t __dl = 0;                                     \
		for (;;) {                                            \
			__r = nk_conn__ensure();                      \
			if (__r == -EHOSTUNREACH)                     \
				__r = -ENETDOWN;                      \
			if (!__r)                                     \
				__r = (expr);                         \
			if (__builtin_expect(__r >= 0, 1))            \
				break;                                \
			__r = nk_rst__hold(s, __r, flags, rx, &__dl); \
			if (__r != 1)                                 \
				break;                                \
		}                                                     \
		nk_sock__put(s);                                      \
		nk_ret(__r);                                          \
	})

/* ------------------------------------------------------------------------ */
/* Creation and naming. */

static bool ours(int domain, int type, int protocol)
{
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (domain != AF_INET && domain != AF_INET6)
		return false;
	if (base == SOCK_STREAM)
		return protocol == 0 || protocol == IPPROTO_TCP;
	if (base == SOCK_DGRAM)
		return protocol == 0 || protocol == IPPROTO_UDP ||
		       nk_is_ping_proto(domain, protocol);
	return false;
}

NK_EXPORT int socket(int domain, int type, int protocol)
{
	int err;

	if (!ours(domain, type, protocol))
		return REAL(socket)(domain, type, protocol);
	err = nk_conn__ensure();
	if (err == -EHOSTUNREACH ||
	    (err && nk_cfg.fallback == NK_FB_PASSTHROUGH))
		return REAL(socket)(domain, type, protocol);
	if (err)
		return (int)nk_ret(-ENETDOWN);
	return (int)nk_ret(nk_sock__create(domain, type, protocol));
}

NK_EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(bind)(fd, sa, len);
	return (int)ON_SOCK(s, nk_sock__bind(s, sa, len));
}

NK_EXPORT int listen(int fd, int backlog)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(listen)(fd, backlog);
	return (int)ON_SOCK(s, nk_sock__listen(s, backlog));
}

NK_EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(accept4)(fd, sa, len, flags);
	return (int)nk_ret(nk_rst__accept(s, fd, sa, len, flags));
}

NK_EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(accept)(fd, sa, len);
	return (int)nk_ret(nk_rst__accept(s, fd, sa, len, 0));
}

NK_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(connect)(fd, sa, len);
	return (int)ON_SOCK(s, nk_sock__connect(s, sa, len));
}

NK_EXPORT int shutdown(int fd, int how)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(shutdown)(fd, how);
	return (int)ON_SOCK(s, nk_sock__shutdown(s, fd, how));
}

NK_EXPORT int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(getsockname)(fd, sa, len);
	return (int)ON_SOCK(s, nk_sock__name(s, false, sa, len));
}

NK_EXPORT int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(getpeername)(fd, sa, len);
	return (int)ON_SOCK(s, nk_sock__name(s, true, sa, len));
}

NK_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(getsockopt)(fd, level, name, val, len);
	return (int)ON_SOCK(s, nk_sock__getsockopt(s, level, name, val, len));
}

NK_EXPORT int setsockopt(int fd, int level, int name, const void *val,
			 socklen_t len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(setsockopt)(fd, level, name, val, len);
	return (int)ON_SOCK(s,
			    nk_sock__setsockopt(s, fd, level, name, val, len));
}

/* ------------------------------------------------------------------------ */
/* Receive. */

static ssize_t sock_recv(struct nk_sock *s, int fd, void *buf, size_t n,
			 int flags, struct sockaddr *sa, socklen_t *len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (sa && len) {
		mh.msg_name = sa;
		mh.msg_namelen = *len;
	}
	r = nk_sock__recvmsg(s, fd, &mh, flags);
	if (r >= 0 && sa && len)
		*len = mh.msg_namelen;
	return r;
}

NK_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	struct nk_sock *s;

	if (__builtin_expect(!nk_fdtab__maybe(fd), 1))
		return REAL(read)(fd, buf, n);
	s = nk_fdtab__get(fd);
	if (!s)
		return REAL(read)(fd, buf, n);
	return ON_DATA(s, 0, true, sock_recv(s, fd, buf, n, 0, NULL, NULL));
}

NK_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return read(fd, buf, n);
}

NK_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(recv)(fd, buf, n, flags);
	return ON_DATA(s, flags, true,
		       sock_recv(s, fd, buf, n, flags, NULL, NULL));
}

NK_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen,
			     int flags)
{
	if (n > buflen)
		__chk_fail();
	return recv(fd, buf, n, flags);
}

NK_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
			   struct sockaddr *sa, socklen_t *len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(recvfrom)(fd, buf, n, flags, sa, len);
	return ON_DATA(s, flags, true,
		       sock_recv(s, fd, buf, n, flags, sa, len));
}

NK_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
				 int flags, struct sockaddr *sa, socklen_t *len)
{
	if (n > buflen)
		__chk_fail();
	return recvfrom(fd, buf, n, flags, sa, len);
}

NK_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)iov };
	struct nk_sock *s;

	if (__builtin_expect(!nk_fdtab__maybe(fd), 1) ||
	    !(s = nk_fdtab__get(fd)))
		return REAL(readv)(fd, iov, iovcnt);
	if (iovcnt < 0 || iovcnt > IOV_MAX) {
		nk_sock__put(s);
		return nk_ret(-EINVAL);
	}
	mh.msg_iovlen = (size_t)iovcnt;
	return ON_DATA(s, 0, true, nk_sock__recvmsg(s, fd, &mh, 0));
}

NK_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(recvmsg)(fd, msg, flags);
	return ON_DATA(s, flags, true, nk_sock__recvmsg(s, fd, msg, flags));
}

NK_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
		       int flags, struct timespec *tmo)
{
	struct nk_sock *s = sock_of(fd);
	unsigned int i;
	int64_t dl = 0;
	long r = 0;

	if (!s)
		return REAL(recvmmsg)(fd, vec, vlen, flags, tmo);
again:
	r = nk_conn__ensure();
	for (i = 0; !r && i < vlen; i++) {
		/* After the first datagram, take only what is there. */
		int f = i && (flags & MSG_WAITFORONE || tmo)
				? flags | MSG_DONTWAIT
				: flags;
		ssize_t n = nk_sock__recvmsg(s, fd, &vec[i].msg_hdr,
					     f & ~MSG_WAITFORONE);

		if (n < 0) {
			if (!i)
				r = n;
			break;
		}
		vec[i].msg_len = (unsigned int)n;
	}
	if (r < 0 && (r = nk_rst__hold(s, r, flags, true, &dl)) == 1)
		goto again;
	nk_sock__put(s);
	if (r == -EHOSTUNREACH)
		r = -ENETDOWN;
	return (int)nk_ret(r ? r : (long)i);
}

/* ------------------------------------------------------------------------ */
/* Send. */

static ssize_t sock_send(struct nk_sock *s, const void *buf, size_t n,
			 int flags, const struct sockaddr *sa, socklen_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_name = (void *)sa,
			     .msg_namelen = sa ? len : 0 };

	return nk_sock__sendmsg(s, &mh, flags);
}

NK_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct nk_sock *s;

	if (__builtin_expect(!nk_fdtab__maybe(fd), 1))
		return REAL(write)(fd, buf, n);
	s = nk_fdtab__get(fd);
	if (!s)
		return REAL(write)(fd, buf, n);
	return ON_DATA(s, 0, false, sock_send(s, buf, n, 0, NULL, 0));
}

NK_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(send)(fd, buf, n, flags);
	return ON_DATA(s, flags, false, sock_send(s, buf, n, flags, NULL, 0));
}

NK_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			 const struct sockaddr *sa, socklen_t len)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(sendto)(fd, buf, n, flags, sa, len);
	return ON_DATA(s, flags, false, sock_send(s, buf, n, flags, sa, len));
}

NK_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)iov };
	struct nk_sock *s;

	if (__builtin_expect(!nk_fdtab__maybe(fd), 1) ||
	    !(s = nk_fdtab__get(fd)))
		return REAL(writev)(fd, iov, iovcnt);
	if (iovcnt < 0 || iovcnt > IOV_MAX) {
		nk_sock__put(s);
		return nk_ret(-EINVAL);
	}
	mh.msg_iovlen = (size_t)iovcnt;
	return ON_DATA(s, 0, false, nk_sock__sendmsg(s, &mh, 0));
}

NK_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct nk_sock *s = sock_of(fd);

	if (!s)
		return REAL(sendmsg)(fd, msg, flags);
	return ON_DATA(s, flags, false, nk_sock__sendmsg(s, msg, flags));
}

NK_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
		       int flags)
{
	struct nk_sock *s = sock_of(fd);
	unsigned int i;
	long r;

	if (!s)
		return REAL(sendmmsg)(fd, vec, vlen, flags);
	r = nk_conn__ensure();
	/* One doorbell for the whole vector, as one syscall would be. */
	nk_ring__plug();
	for (i = 0; !r && i < vlen; i++) {
		ssize_t n = nk_sock__sendmsg(s, &vec[i].msg_hdr, flags);

		if (n < 0) {
			if (!i)
				r = n;
			break;
		}
		vec[i].msg_len = (unsigned int)n;
	}
	nk_ring__unplug();
	nk_sock__put(s);
	if (r == -EHOSTUNREACH)
		r = -ENETDOWN;
	return (int)nk_ret(r ? r : (long)i);
}

NK_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t count)
{
	struct nk_sock *s = sock_of(out_fd);

	if (!s)
		return REAL(sendfile)(out_fd, in_fd, off, count);
	return ON_SOCK(s, nk_sock__sendfile(s, in_fd, off, count));
}

NK_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t *off, size_t count)
{
	struct nk_sock *s = sock_of(out_fd);

	if (!s)
		return REAL(sendfile64)(out_fd, in_fd, off, count);
	return ON_SOCK(s, nk_sock__sendfile(s, in_fd, off, count));
}

/* ------------------------------------------------------------------------ */
/* fd control. */

/* fd now names what src names (dup family); fd was just made by libc. */
static void share(int fd, struct nk_sock *src)
{
	struct nk_sock *old = NULL;

	if (nk_fdtab__install(fd, src, &old) == 0 && old)
		nk_sock__fdput(old);
}

/* fd was closed or replaced by libc: drop what it named. */
static void forget(int fd)
{
	struct nk_sock *old = nk_fdtab__remove(fd);

	if (old)
		nk_sock__fdput(old);
}

NK_EXPORT int close(int fd)
{
	struct nk_sock *s;
	int r;

	if (__builtin_expect(!nk_fdtab__maybe(fd), 1)) {
		if (__builtin_expect(nk_conn__is_internal_fd(fd), 0))
			return (int)nk_ret(-EBADF); /* not the app's fd */
		return REAL(close)(fd);
	}
	/* Out of the table first: the number may be reused at once. */
	s = nk_fdtab__remove(fd);
	r = REAL(close)(fd);
	if (s)
		nk_sock__fdput(s);
	return r;
}

static int do_dup3(int old, int new, int flags, bool is_dup2)
{
	struct nk_sock *s;
	int r;

	if (nk_conn__is_internal_fd(old))
		return (int)nk_ret(-EBADF);
	if (old == new)
		return is_dup2 ? REAL(dup2)(old, new)
			       : REAL(dup3)(old, new, flags);
	if (nk_conn__is_internal_fd(new))
		nk_conn__evacuate((unsigned int)new, (unsigned int)new);
	s = sock_of(old);
	r = is_dup2 ? REAL(dup2)(old, new) : REAL(dup3)(old, new, flags);
	if (r >= 0) {
		forget(new);
		if (s)
			share(new, s);
	}
	if (s)
		nk_sock__put(s);
	return r;
}

NK_EXPORT int dup2(int old, int new)
{
	return do_dup3(old, new, 0, true);
}

NK_EXPORT int dup3(int old, int new, int flags)
{
	return do_dup3(old, new, flags, false);
}

NK_EXPORT int dup(int fd)
{
	struct nk_sock *s;
	int r;

	if (nk_conn__is_internal_fd(fd))
		return (int)nk_ret(-EBADF);
	s = sock_of(fd);
	r = REAL(dup)(fd);
	if (s) {
		if (r >= 0)
			share(r, s);
		nk_sock__put(s);
	}
	return r;
}

static int do_fcntl(int (*fn)(int, int, ...), int fd, int cmd,
		    unsigned long arg)
{
	struct nk_sock *s;
	int r;

	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		if (nk_conn__is_internal_fd(fd))
			return (int)nk_ret(-EBADF);
		s = sock_of(fd);
		r = fn(fd, cmd, arg);
		if (s) {
			if (r >= 0)
				share(r, s);
			nk_sock__put(s);
		}
		return r;
	case F_SETFL:
		s = sock_of(fd);
		r = fn(fd, cmd, arg);
		if (s) {
			if (r == 0)
				atomic_store(&s->nonblock,
					     !!(arg & O_NONBLOCK));
			nk_sock__put(s);
		}
		return r;
	default:
		return fn(fd, cmd, arg);
	}
}

NK_EXPORT int fcntl(int fd, int cmd, ...)
{
	unsigned long arg;
	va_list ap;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	return do_fcntl(REAL(fcntl), fd, cmd, arg);
}

NK_EXPORT int fcntl64(int fd, int cmd, ...)
{
	unsigned long arg;
	va_list ap;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	return do_fcntl(REAL(fcntl64), fd, cmd, arg);
}

NK_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	struct nk_sock *s;
	void *arg;
	va_list ap;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	s = sock_of(fd);
	if (!s)
		return REAL(ioctl)(fd, req, arg);
	if (req == FIONBIO) {
		/* Local: no need to reach nkd. */
		int r = nk_sock__ioctl(s, fd, req, arg);

		nk_sock__put(s);
		return (int)nk_ret(r);
	}
	return (int)ON_SOCK(s, nk_sock__ioctl(s, fd, req, arg));
}

/* Close [lo, hi] with libc, stepping around the shim's own fds. */
static int range_close(unsigned int lo, unsigned int hi, int flags)
{
	int in[NK_INTERNAL_FDS], n = nk_conn__internal_fds(in), r = 0;
	unsigned int cur = lo;

	for (int i = 0; i < n && cur <= hi; i++) {
		unsigned int f = (unsigned int)in[i];

		if (f < cur || f > hi)
			continue;
		if (f > cur && (r = REAL(close_range)(cur, f - 1, flags)))
			return r;
		if (f == UINT_MAX)
			return 0;
		cur = f + 1;
	}
	if (cur <= hi && cur >= lo)
		r = REAL(close_range)(cur, hi, flags);
	return r;
}

NK_EXPORT int close_range(unsigned int lo, unsigned int hi, int flags)
{
	uint32_t size;
	int r;

	if (lo > hi)
		return (int)nk_ret(-EINVAL);
	r = range_close(lo, hi, flags);
	if (r || (flags & CLOSE_RANGE_CLOEXEC))
		return r;
	/* Closed by the kernel: drop the sockets those fds named. */
	size = nk_fdtab__size();
	for (uint32_t fd = lo; fd <= hi && fd < size; fd++)
		if (nk_fdtab__maybe((int)fd))
			forget((int)fd);
	return 0;
}

NK_EXPORT void closefrom(int lo)
{
	if (lo < 0)
		lo = 0;
	close_range((unsigned int)lo, UINT_MAX, 0);
}

/* ------------------------------------------------------------------------ */
/* Multiplexers. */

/*
 * Readiness reaches the app end a few microseconds after the process's own
 * send, through nkd: an epoll_wait or poll right after it would sleep, and
 * a wake-up costs far more (~21 us on the target) than the wait. While the
 * process is talking to nkd, spin with zero timeouts first, signals
 * blocked so none is handled without the call returning EINTR; the final
 * sleep is the p-variant with the caller's mask, as the kernel would do.
 */
struct mux_spin {
	sigset_t old;
	int64_t until;
};

static bool mux_spin_begin(struct mux_spin *m, int timeout)
{
	int64_t spin;
	sigset_t all;

	if (timeout == 0 || !nk_fdtab__count())
		return false;
	spin = nk_conn__mux_spin_ns();
	if (spin < 0)
		return false;
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &m->old))
		return false;
	m->until = nk_now_ns() + spin;
	return true;
}

/* @spun: the spin found readiness; otherwise m->until is when the sleep
 * began. */
static int mux_spin_end(struct mux_spin *m, int ret, bool spun)
{
	int e = errno;

	nk_conn__mux_spun(spun, spun ? 0 : nk_now_ns() - m->until, ret > 0);

	pthread_sigmask(SIG_SETMASK, &m->old, NULL);
	errno = e;
	return ret;
}

static int do_epoll_once(int epfd, struct epoll_event *ev, int max, int timeout,
			 const sigset_t *mask)
{
	struct mux_spin m;
	int n;

	if (timeout != 0 && nk_fdtab__count())
		nk_ring__barrier();
	else if (nk_fdtab__count())
		nk_ring__vm_sync();
	if (!mux_spin_begin(&m, timeout))
		return mask ? REAL(epoll_pwait)(epfd, ev, max, timeout, mask)
			    : REAL(epoll_wait)(epfd, ev, max, timeout);
	do {
		n = REAL(epoll_wait)(epfd, ev, max, 0);
		if (n != 0)
			return mux_spin_end(&m, n, true);
	} while (nk_now_ns() < m.until);
	m.until = nk_now_ns();
	n = REAL(epoll_pwait)(epfd, ev, max, timeout, mask ? mask : &m.old);
	return mux_spin_end(&m, n, false);
}

/*
 * When nkd goes away, the dead placeholders of listeners and datagram
 * sockets wake epoll before the shim takes them out of the set: not an
 * event of the program's (reattach.c). The timeout then starts again.
 */
static int do_epoll(int epfd, struct epoll_event *ev, int max, int timeout,
		    const sigset_t *mask)
{
	int n;

	do
		n = do_epoll_once(epfd, ev, max, timeout, mask);
	while (n > 0 && nk_fdtab__count() &&
	       !(n = nk_rst__epoll_dead(epfd, ev, n)) && timeout);
	return n;
}

NK_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	return do_epoll(epfd, ev, max, timeout, NULL);
}

NK_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max,
			  int timeout, const sigset_t *mask)
{
	return do_epoll(epfd, ev, max, timeout, mask);
}

static int do_poll_once(struct pollfd *fds, nfds_t n, int timeout,
			const struct timespec *ts, const sigset_t *mask)
{
	struct mux_spin m;
	struct timespec t;
	int r;

	if ((ts ? ts->tv_sec || ts->tv_nsec : timeout != 0) &&
	    nk_fdtab__count())
		nk_ring__barrier();
	else if (nk_fdtab__count())
		nk_ring__vm_sync();
	if (!mux_spin_begin(&m, ts ? (ts->tv_sec || ts->tv_nsec) : timeout))
		return ts || mask ? REAL(ppoll)(fds, n, ts, mask)
				  : REAL(poll)(fds, n, timeout);
	do {
		r = REAL(poll)(fds, n, 0);
		if (r != 0)
			return mux_spin_end(&m, r, true);
	} while (nk_now_ns() < m.until);
	m.until = nk_now_ns();
	if (!ts && timeout >= 0) {
		t.tv_sec = timeout / 1000;
		t.tv_nsec = (long)(timeout % 1000) * 1000000L;
		ts = &t;
	}
	r = REAL(ppoll)(fds, n, ts, mask ? mask : &m.old);
	return mux_spin_end(&m, r, false);
}

/*
 * While nkd is away the files under the program's fds change; reattach.c
 * polls so that the change wakes it, and hides dead placeholders.
 */
static int poll_outage(struct pollfd *fds, nfds_t n, int timeout,
		       const struct timespec *ts, const sigset_t *mask)
{
	int64_t dl = -1;
	struct timespec t;
	int r;

	if (ts)
		dl = nk_now_ns() + ts->tv_sec * 1000000000LL + ts->tv_nsec;
	else if (timeout >= 0)
		dl = nk_now_ns() + timeout * 1000000LL;
	r = nk_rst__poll(fds, n, dl, mask);
	if (r != NK_RST_AGAIN)
		return (int)nk_ret(r);
	if (dl < 0)
		return do_poll_once(fds, n, -1, NULL, mask);
	dl -= nk_now_ns();
	dl = dl > 0 ? dl : 0;
	t.tv_sec = dl / 1000000000LL;
	t.tv_nsec = dl % 1000000000LL;
	return do_poll_once(fds, n, -1, &t, mask);
}

static int do_poll(struct pollfd *fds, nfds_t n, int timeout,
		   const struct timespec *ts, const sigset_t *mask)
{
	int r;

	if (!nk_rst__pending() || !nk_fdtab__count()) {
		r = do_poll_once(fds, n, timeout, ts, mask);
		if (r <= 0 || !nk_fdtab__count() || !nk_rst__poll_dead(fds, n))
			return r;
	}
	return poll_outage(fds, n, timeout, ts, mask);
}

NK_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return do_poll(fds, n, timeout, NULL, NULL);
}

NK_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		    const sigset_t *mask)
{
	return do_poll(fds, n, -1, ts, mask);
}

/*
 * select/pselect get no barrier (docs/shim.md), but in VM mode they look
 * at the agent's placeholders, which must first have caught up with
 * every CQE this process has seen (abi.md §9).
 */
#define NK_LBITS (8 * sizeof(unsigned long))
static bool fdbit(const fd_set *set, int fd)
{
	return set && (((const unsigned long *)set)[fd / NK_LBITS] >>
		       (fd % NK_LBITS)) &
			      1;
}

static void fdset(fd_set *set, int fd, bool on)
{
	unsigned long *w = (unsigned long *)set + fd / NK_LBITS;

	if (set && on)
		*w |= 1UL << (fd % NK_LBITS);
	else if (set)
		*w &= ~(1UL << (fd % NK_LBITS));
}

static int select_outage(int n, fd_set *r, fd_set *w, fd_set *x,
			 const struct timespec *ts, const sigset_t *mask)
{
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	nfds_t k = 0;
	int ret;

	if (!p)
		return (int)nk_ret(-ENOMEM);
	for (int fd = 0; fd < n; fd++) {
		short ev = (fdbit(r, fd) ? POLLIN : 0) |
			   (fdbit(w, fd) ? POLLOUT : 0) |
			   (fdbit(x, fd) ? POLLPRI : 0);

		if (ev)
			p[k++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	ret = poll_outage(p, k, -1, ts, mask);
	if (ret >= 0) {
		ret = 0;
		for (nfds_t i = 0; i < k; i++) {
			short re = p[i].revents;
			bool in = re & (POLLIN | POLLHUP | POLLERR),
			     out = re & (POLLOUT | POLLERR), pri = re & POLLPRI;

			if (re & POLLNVAL) {
				ret = (int)nk_ret(-EBADF);
				break;
			}
			in = in && fdbit(r, p[i].fd);
			out = out && fdbit(w, p[i].fd);
			pri = pri && fdbit(x, p[i].fd);
			fdset(r, p[i].fd, in);
			fdset(w, p[i].fd, out);
			fdset(x, p[i].fd, pri);
			ret += in + out + pri;
		}
	}
	free(p);
	return ret;
}

NK_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *x,
		      const struct timespec *ts, const sigset_t *mask)
{
	if (nk_fdtab__count()) {
		nk_ring__vm_sync();
		/* While nkd is away, as poll (a sleeping select would miss
		 * the new placeholders): rare, so by conversion. */
		if (nk_rst__pending() && n > 0)
			return select_outage(n, r, w, x, ts, mask);
	}
	return REAL(pselect)(n, r, w, x, ts, mask);
}

NK_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv)
{
	struct timespec ts;

	if (nk_fdtab__count() && nk_rst__pending() && n > 0) {
		if (tv) {
			ts.tv_sec = tv->tv_sec;
			ts.tv_nsec = tv->tv_usec * 1000L;
		}
		return pselect(n, r, w, x, tv ? &ts : NULL, NULL);
	}
	if (nk_fdtab__count())
		nk_ring__vm_sync();
	return REAL(select)(n, r, w, x, tv);
}
