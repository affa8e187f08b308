/* SPDX-License-Identifier: MIT */
/*
 * nk_semantics: conformance checks for docs/shim.md "Semantics".
 * An ordinary sockets program: natively it runs on kernel sockets (which
 * validates every check: the kernel is the oracle); under nkrun the same
 * checks run on shim sockets through nkd.
 *
 *   nk_semantics [OPTIONS] [CHECK...]   run all checks, or the named ones
 *   nk_semantics --list                 list the checks
 *
 * Options (checks that need a missing one print SKIP):
 *   --addr4 A, --addr6 A   a non-loopback address of the stack's host
 *                          (extra TCP/UDP runs on it besides 127.0.0.1/::1)
 *   --unreach A            an IPv4 address nobody answers (connect pending)
 *   --resolve NAME=ADDR    NAME must resolve to the IPv4 address ADDR
 *
 * Every check runs in its own forked process (own process group), so fd
 * numbers start from a known state and a hang or crash is one FAIL: a check
 * that has not answered after CHECK_TIMEOUT_MS is killed. Output: one line
 * per check, "PASS name", "FAIL name: detail" or "SKIP name: reason", then
 * "N passed, N failed" (preceded by "N skipped" when some were). Exit 0
 * only if nothing failed.
 *
 * Built with -D_FILE_OFFSET_BITS=64 -D_FORTIFY_SOURCE=2 -O2, so glibc
 * redirects to __recv_chk, __recvfrom_chk, __read_chk, fcntl64 and
 * sendfile64: those variants are what the shim has to catch.
 *
 * Hidden mode: "--exec-child CONN LISTEN CLOEXECFD RESULTFD PORT" is the
 * image exec'd by the exec_inherit and vfork_exec checks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SIOCINQ
#define SIOCINQ FIONREAD
#endif

#define CHECK_TIMEOUT_MS 10000
#define EXIT_GRACE_MS 5000
#define BUDGET_MS 55000
#define SELF_EXE "/proc/self/exe"

static const char *opt_addr4, *opt_addr6, *opt_unreach;
static char opt_name[256], opt_name_addr[64];

/* Result of the running check: why it failed or was skipped; a note. */
static char g_detail[400];
static char g_note[200];

#define FAIL(fmt, ...)                                                \
	do {                                                          \
		snprintf(g_detail, sizeof(g_detail), "line %d: " fmt, \
			 __LINE__, ##__VA_ARGS__);                    \
		return -1;                                            \
	} while (0)
#define SKIP(fmt, ...)                                                    \
	do {                                                              \
		snprintf(g_detail, sizeof(g_detail), fmt, ##__VA_ARGS__); \
		return 1;                                                 \
	} while (0)
#define EXPECT(cond, fmt, ...)                    \
	do {                                      \
		if (!(cond))                      \
			FAIL(fmt, ##__VA_ARGS__); \
	} while (0)
/* A call that must not return < 0. */
#define SYS(expr)                                               \
	do {                                                    \
		if ((expr) < 0)                                 \
			FAIL("%s: %s", #expr, strerror(errno)); \
	} while (0)
/* A helper that already filled g_detail. */
#define TRY(expr)                  \
	do {                       \
		if ((expr) < 0)    \
			return -1; \
	} while (0)

/* ------------------------------------------------------------- helpers */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A length the compiler cannot see through: with a local buffer, recv,
 * recvfrom and read then stay __recv_chk, __recvfrom_chk and __read_chk
 * instead of being proven safe at compile time. */
static size_t opq(size_t v)
{
	__asm__ volatile("" : "+r"(v));
	return v;
}

/* Deterministic byte at stream offset i. */
static unsigned char pat(uint64_t i, unsigned seed)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed << 40);

	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 27;
	return (unsigned char)x;
}

static void fill(unsigned char *b, uint64_t off, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = pat(off + i, seed);
}

/* Index of the first byte that differs from the pattern, or -1. */
static long mismatch(const unsigned char *b, uint64_t off, size_t n,
		     unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != pat(off + i, seed))
			return (long)i;
	return -1;
}

/* The kernel's view of fd (raw syscall: no interposition). */
static int kernel_fd_open(int fd)
{
	return syscall(SYS_fcntl, fd, F_GETFD) >= 0;
}

static int lowest_free_from(int from)
{
	int i;

	for (i = from; i < 65536; i++)
		if (!kernel_fd_open(i))
			return i;
	return -1;
}

static int lowest_free(void)
{
	return lowest_free_from(0);
}

static int is_sock(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* poll one fd; revents, or 0 after ms. */
static int wait_ev(int fd, short events, long long ms)
{
	long long end = now_ms() + ms;
	struct pollfd p = { fd, events, 0 };
	int r;

	for (;;) {
		long long left = end - now_ms();

		r = poll(&p, 1, left > 0 ? (int)left : 0);
		if (r > 0)
			return p.revents;
		if (r == 0 || errno != EINTR || left <= 0)
			return 0;
	}
}

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

static struct sockaddr *sa(struct addr *a)
{
	return (struct sockaddr *)&a->ss;
}

static int addr_make(struct addr *a, const char *ip, int port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		a->len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*s6);
		return 0;
	}
	FAIL("bad address %s", ip);
}

static int addr_port(const struct addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static const char *addr_str(const struct addr *a, char *buf, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->ss.ss_family == AF_INET) {
		inet_ntop(AF_INET,
			  &((const struct sockaddr_in *)&a->ss)->sin_addr, ip,
			  sizeof(ip));
		snprintf(buf, n, "%s:%d", ip, addr_port(a));
	} else if (a->ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, ip,
			  sizeof(ip));
		snprintf(buf, n, "[%s]:%d", ip, addr_port(a));
	} else {
		snprintf(buf, n, "family %d", a->ss.ss_family);
	}
	return buf;
}

/* Same family, address and port. */
static int addr_eq(const struct addr *a, const struct addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return 0;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->ss;
		const struct sockaddr_in *y = (const void *)&b->ss;

		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)&a->ss;
		const struct sockaddr_in6 *y = (const void *)&b->ss;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
	}
	return 0;
}

/* Same family and address as the text ip. */
static int addr_is_ip(const struct addr *a, const char *ip)
{
	struct addr b;

	if (addr_make(&b, ip, addr_port(a)) < 0)
		return 0;
	return addr_eq(a, &b);
}

static int local_of(int fd, struct addr *a)
{
	a->len = sizeof(a->ss);
	memset(&a->ss, 0, sizeof(a->ss));
	SYS(getsockname(fd, sa(a), &a->len));
	return 0;
}

static int peer_of(int fd, struct addr *a)
{
	a->len = sizeof(a->ss);
	memset(&a->ss, 0, sizeof(a->ss));
	SYS(getpeername(fd, sa(a), &a->len));
	return 0;
}

static int sockopt_int(int fd, int level, int opt, int *val)
{
	socklen_t len = sizeof(*val);

	*val = -12345;
	SYS(getsockopt(fd, level, opt, val, &len));
	EXPECT(len == sizeof(*val), "getsockopt(%d,%d) len %u", level, opt,
	       (unsigned)len);
	return 0;
}

/* Bound to ip:0 and listening; its address in *bound. */
static int tcp_listen(const char *ip, struct addr *bound)
{
	struct addr a;
	int fd, one = 1;

	TRY(addr_make(&a, ip, 0));
	fd = socket(a.ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		FAIL("socket(%s): %s", ip, strerror(errno));
	SYS(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
	if (bind(fd, sa(&a), a.len) < 0)
		FAIL("bind(%s): %s", ip, strerror(errno));
	SYS(listen(fd, 64));
	TRY(local_of(fd, bound));
	return fd;
}

static int tcp_connect(struct addr *to)
{
	char b[80];
	int fd = socket(to->ss.ss_family, SOCK_STREAM, 0);

	if (fd < 0)
		FAIL("socket: %s", strerror(errno));
	if (connect(fd, sa(to), to->len) < 0)
		FAIL("connect(%s): %s", addr_str(to, b, sizeof(b)),
		     strerror(errno));
	return fd;
}

/* A connected TCP pair through a listener on ip (closed afterwards). */
static int tcp_pair(const char *ip, int *cli, int *srv)
{
	struct addr a;
	int l = tcp_listen(ip, &a);

	TRY(l);
	*cli = tcp_connect(&a);
	TRY(*cli);
	*srv = accept(l, NULL, NULL);
	if (*srv < 0)
		FAIL("accept: %s", strerror(errno));
	close(l);
	return 0;
}

static int udp_bound(const char *ip, struct addr *bound)
{
	struct addr a;
	int fd;

	TRY(addr_make(&a, ip, 0));
	fd = socket(a.ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0)
		FAIL("socket(udp %s): %s", ip, strerror(errno));
	if (bind(fd, sa(&a), a.len) < 0)
		FAIL("bind(udp %s): %s", ip, strerror(errno));
	TRY(local_of(fd, bound));
	return fd;
}

static int send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_ev(fd, POLLOUT, 5000))
				FAIL("send: not writable for 5 s");
			continue;
		}
		if (r <= 0)
			FAIL("send(%zu): %s", n, strerror(errno));
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int send_str(int fd, const char *s)
{
	return send_all(fd, s, strlen(s));
}

/* Exactly n bytes within ms: poll for readability, then a plain recv. */
static int recv_exact(int fd, void *buf, size_t n, long long ms)
{
	long long end = now_ms() + ms;
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		if (!wait_ev(fd, POLLIN, end - now_ms()))
			FAIL("fd %d: nothing to read for %lld ms after %zu of %zu bytes",
			     fd, ms, got, n);
		r = recv(fd, (char *)buf + got, n - got, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			FAIL("recv after %zu of %zu bytes: %s", got, n,
			     strerror(errno));
		if (r == 0)
			FAIL("EOF after %zu of %zu bytes", got, n);
		got += (size_t)r;
	}
	return 0;
}

static int expect_msg(int fd, const char *want, long long ms)
{
	char buf[256];
	size_t n = strlen(want);

	TRY(recv_exact(fd, buf, n, ms));
	buf[n] = 0;
	EXPECT(!memcmp(buf, want, n), "received \"%s\", expected \"%s\"", buf,
	       want);
	return 0;
}

/* The peer closed: readable, and recv gives 0. */
static int expect_eof(int fd, long long ms)
{
	char c;
	ssize_t r;

	EXPECT(wait_ev(fd, POLLIN, ms), "fd %d: no EOF within %lld ms", fd, ms);
	r = recv(fd, &c, 1, MSG_DONTWAIT);
	EXPECT(r == 0, "expected EOF, recv gave %zd (%s)", r,
	       r < 0 ? strerror(errno) : "data");
	return 0;
}

/* Nothing to read (no data, no EOF) for ms. */
static int expect_quiet(int fd, long long ms)
{
	int ev = wait_ev(fd, POLLIN, ms);

	EXPECT(!ev,
	       "fd %d became readable (revents %#x): EOF or data too early", fd,
	       ev);
	return 0;
}

static int wait_child(pid_t pid, long long ms, int *status)
{
	long long end = now_ms() + ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0)
			FAIL("waitpid(%d): %s", (int)pid, strerror(errno));
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			FAIL("child %d did not exit within %lld ms", (int)pid,
			     ms);
		}
		sleep_ms(5);
	}
}

static int expect_exit0(pid_t pid, long long ms, const char *who)
{
	int st;

	TRY(wait_child(pid, ms, &st));
	EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s %d", who,
	       WIFEXITED(st) ? "exit status" : "signal",
	       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

/* A helper thread that acts on a timeline: sends, signals, shutdowns. */
enum { ACT_SEND, ACT_SIGNAL, ACT_SHUTWR };
struct act {
	int at_ms, kind, fd;
	const char *data;
};
struct timeline {
	struct act a[8];
	int n;
	pthread_t th, target;
	char err[160];
};

static void *timeline_fn(void *arg)
{
	struct timeline *t = arg;
	long long t0 = now_ms();
	int i;

	for (i = 0; i < t->n; i++) {
		struct act *a = &t->a[i];
		long long w = t0 + a->at_ms - now_ms();
		size_t len;

		if (w > 0)
			sleep_ms(w);
		switch (a->kind) {
		case ACT_SEND:
			len = strlen(a->data);
			if (send(a->fd, a->data, len, MSG_NOSIGNAL) !=
			    (ssize_t)len)
				snprintf(t->err, sizeof(t->err), "send: %s",
					 strerror(errno));
			break;
		case ACT_SIGNAL:
			pthread_kill(t->target, SIGUSR1);
			break;
		case ACT_SHUTWR:
			if (shutdown(a->fd, SHUT_WR) < 0)
				snprintf(t->err, sizeof(t->err), "shutdown: %s",
					 strerror(errno));
			break;
		}
	}
	return NULL;
}

static void tl_add(struct timeline *t, int at_ms, int kind, int fd,
		   const char *data)
{
	struct act a = { at_ms, kind, fd, data };

	t->a[t->n++] = a;
}

static int tl_start(struct timeline *t)
{
	t->target = pthread_self();
	errno = pthread_create(&t->th, NULL, timeline_fn, t);
	SYS(errno ? -1 : 0);
	return 0;
}

static int tl_join(struct timeline *t)
{
	pthread_join(t->th, NULL);
	EXPECT(!t->err[0], "helper thread: %s", t->err);
	return 0;
}

/* Bulk pattern stream in a thread: sender or verifying receiver. */
struct bulk {
	int fd, use_rw, shut;
	unsigned seed;
	uint64_t n, done;
	unsigned char *store; /* receiver: keep the bytes instead */
	size_t cap;
	pthread_t th;
	char err[160];
};

static void *bulk_send_fn(void *arg)
{
	struct bulk *b = arg;
	unsigned char buf[16384];

	while (b->done < b->n) {
		size_t k = sizeof(buf);
		ssize_t r;

		if (b->n - b->done < k)
			k = (size_t)(b->n - b->done);
		fill(buf, b->done, k, b->seed);
		r = b->use_rw ? write(b->fd, buf, k)
			      : send(b->fd, buf, k, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			if (!wait_ev(b->fd, POLLOUT, 5000)) {
				snprintf(b->err, sizeof(b->err),
					 "sender: not writable for 5 s at %llu",
					 (unsigned long long)b->done);
				return NULL;
			}
			continue;
		}
		if (r <= 0) {
			snprintf(b->err, sizeof(b->err), "sender: %s at %llu",
				 strerror(errno), (unsigned long long)b->done);
			return NULL;
		}
		b->done += (uint64_t)r;
	}
	if (b->shut && shutdown(b->fd, SHUT_WR) < 0)
		snprintf(b->err, sizeof(b->err), "shutdown: %s",
			 strerror(errno));
	return NULL;
}

static void *bulk_recv_fn(void *arg)
{
	struct bulk *b = arg;
	unsigned char buf[16384];
	size_t want = sizeof(buf) - (size_t)(b->seed % 7);

	for (;;) {
		ssize_t r;
		long bad;

		if (!wait_ev(b->fd, POLLIN, 5000)) {
			snprintf(b->err, sizeof(b->err),
				 "receiver: stalled 5 s at %llu",
				 (unsigned long long)b->done);
			return NULL;
		}
		r = b->use_rw ? read(b->fd, buf, opq(want))
			      : recv(b->fd, buf, opq(want), 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0) {
			snprintf(b->err, sizeof(b->err), "receiver: %s at %llu",
				 strerror(errno), (unsigned long long)b->done);
			return NULL;
		}
		if (r == 0)
			return NULL;
		if (b->store) {
			if (b->done + (uint64_t)r > b->cap) {
				snprintf(b->err, sizeof(b->err),
					 "receiver: more than %zu bytes",
					 b->cap);
				return NULL;
			}
			memcpy(b->store + b->done, buf, (size_t)r);
		} else if ((bad = mismatch(buf, b->done, (size_t)r, b->seed)) >=
			   0) {
			snprintf(b->err, sizeof(b->err),
				 "receiver: wrong byte at offset %llu",
				 (unsigned long long)(b->done + (uint64_t)bad));
			return NULL;
		}
		b->done += (uint64_t)r;
	}
}

static int bulk_start(struct bulk *b, void *(*fn)(void *))
{
	errno = pthread_create(&b->th, NULL, fn, b);
	SYS(errno ? -1 : 0);
	return 0;
}

static int bulk_join(struct bulk *b)
{
	pthread_join(b->th, NULL);
	EXPECT(!b->err[0], "%s", b->err);
	return 0;
}

/* ------------------------------------------------- real fd numbers */

static int c_fd_lowest(void)
{
	int s[8], i, fd, want, p[2], l, c, a, f;
	struct addr la;
	struct stat st;

	close(0);
	EXPECT(lowest_free() == 0, "fd 0 still open after close(0)");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	EXPECT(fd == 0, "first socket() after close(0) returned %d, not 0", fd);
	EXPECT(is_sock(0), "fd 0 is not S_ISSOCK");
	for (i = 0; i < 8; i++) {
		want = lowest_free();
		s[i] = socket(i & 1 ? AF_INET6 : AF_INET,
			      i & 2 ? SOCK_DGRAM : SOCK_STREAM, 0);
		EXPECT(s[i] == want,
		       "socket #%d returned %d, lowest free is %d", i, s[i],
		       want);
		EXPECT(kernel_fd_open(s[i]) && is_sock(s[i]),
		       "fd %d is not an open socket for the kernel", s[i]);
	}
	/* Holes are refilled lowest first. */
	close(s[1]);
	close(s[4]);
	close(s[6]);
	EXPECT(!kernel_fd_open(s[4]), "close(%d) left the fd open", s[4]);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	EXPECT(fd == s[1], "socket() after closing %d,%d,%d gave %d", s[1],
	       s[4], s[6], fd);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	EXPECT(fd == s[4], "second socket() gave %d, expected %d", fd, s[4]);
	/* A pipe takes the next hole; its other end the one after. */
	want = lowest_free();
	i = lowest_free_from(want + 1);
	SYS(pipe(p));
	EXPECT(p[0] == s[6] && want == s[6], "pipe got %d, expected %d", p[0],
	       s[6]);
	EXPECT(p[1] == i, "pipe write end %d, expected %d", p[1], i);
	/* accept() returns the lowest free number too. */
	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	c = tcp_connect(&la);
	TRY(c);
	close(s[2]);
	want = lowest_free();
	a = accept(l, NULL, NULL);
	EXPECT(a == want && a == s[2], "accept() gave %d, lowest free is %d", a,
	       want);
	EXPECT(is_sock(a), "accepted fd %d is not S_ISSOCK", a);
	/* Double close: EBADF the second time. */
	EXPECT(close(s[3]) == 0, "close(%d): %s", s[3], strerror(errno));
	errno = 0;
	EXPECT(close(s[3]) == -1 && errno == EBADF,
	       "second close(%d): errno %d, expected EBADF", s[3], errno);
	/* The number of a closed socket goes to the next open() and stays a
	 * plain file. */
	close(s[5]);
	want = lowest_free();
	f = open("/dev/null", O_WRONLY);
	EXPECT(f == want && f == s[3],
	       "open() after closing sockets %d and %d gave %d", s[3], s[5], f);
	EXPECT(fstat(f, &st) == 0 && S_ISCHR(st.st_mode),
	       "fd %d not the character device", f);
	EXPECT(write(f, "x", 1) == 1, "write to /dev/null on fd %d: %s", f,
	       strerror(errno));
	return 0;
}

static int c_fd_fstat_select(void)
{
	int c, s, c2, s2, i, r, mx;
	fd_set rd, wr;
	struct timeval tv;
	char buf[32];
	size_t n = 9;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	EXPECT(is_sock(c) && is_sock(s), "fstat: not S_ISSOCK");
	/* Push numbers past 100, still below FD_SETSIZE. */
	for (i = 0; i < 100; i++)
		SYS(open("/dev/null", O_RDONLY));
	TRY(tcp_pair("127.0.0.1", &c2, &s2));
	EXPECT(c2 >= 100 && s2 >= 100 && s2 < FD_SETSIZE, "pair got fds %d,%d",
	       c2, s2);
	EXPECT(is_sock(c2) && is_sock(s2), "fstat: not S_ISSOCK (high fds)");
	mx = (s2 > c2 ? s2 : c2) + 1;
	FD_ZERO(&rd);
	FD_SET(s, &rd);
	FD_SET(s2, &rd);
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	r = select(mx, &rd, NULL, NULL, &tv);
	EXPECT(r == 0, "select: %d readable before any data", r);
	TRY(send_str(c2, "select-me"));
	FD_ZERO(&rd);
	FD_SET(s, &rd);
	FD_SET(s2, &rd);
	tv.tv_sec = 3;
	r = select(mx, &rd, NULL, NULL, &tv);
	EXPECT(r == 1 && FD_ISSET(s2, &rd) && !FD_ISSET(s, &rd),
	       "select after data on fd %d: r=%d s2=%d s=%d", s2, r,
	       FD_ISSET(s2, &rd), FD_ISSET(s, &rd));
	r = (int)recv(s2, buf, opq(n), 0);
	EXPECT(r == 9 && !memcmp(buf, "select-me", 9), "recv gave %d", r);
	FD_ZERO(&wr);
	FD_SET(c, &wr);
	FD_SET(c2, &wr);
	tv.tv_sec = 3;
	r = select(mx, NULL, &wr, NULL, &tv);
	EXPECT(r == 2, "select for writing: %d of 2 writable", r);
	return 0;
}

/* ------------------------------------------------ mixed readiness */

enum { M_SOCK = 1, M_PIPE = 2, M_EVT = 4, M_TIMER = 8 };
enum { K_SELECT, K_POLL, K_EPOLL };

struct mixed {
	int kind, fd[4], ep, peer, pw;
};

static int mixed_ready(struct mixed *m, int ms)
{
	int i, r, mask = 0, mx = 0;

	if (m->kind == K_SELECT) {
		fd_set rd;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		FD_ZERO(&rd);
		for (i = 0; i < 4; i++) {
			FD_SET(m->fd[i], &rd);
			if (m->fd[i] >= mx)
				mx = m->fd[i] + 1;
		}
		r = select(mx, &rd, NULL, NULL, &tv);
		if (r < 0)
			FAIL("select: %s", strerror(errno));
		for (i = 0; i < 4; i++)
			if (FD_ISSET(m->fd[i], &rd))
				mask |= 1 << i;
	} else if (m->kind == K_POLL) {
		struct pollfd p[4];

		for (i = 0; i < 4; i++) {
			p[i].fd = m->fd[i];
			p[i].events = POLLIN;
			p[i].revents = 0;
		}
		r = poll(p, 4, ms);
		if (r < 0)
			FAIL("poll: %s", strerror(errno));
		for (i = 0; i < 4; i++)
			if (p[i].revents)
				mask |= 1 << i;
	} else {
		struct epoll_event ev[8];

		r = epoll_wait(m->ep, ev, 8, ms);
		if (r < 0)
			FAIL("epoll_wait: %s", strerror(errno));
		for (i = 0; i < r; i++)
			mask |= (int)ev[i].data.u32;
	}
	return mask;
}

/* Wait up to 3 s until exactly `want` is ready; never anything else. */
static int mixed_expect(struct mixed *m, int want, const char *after)
{
	long long end = now_ms() + 3000;
	int got = 0;

	while (now_ms() < end) {
		got = mixed_ready(m, 100);
		TRY(got);
		EXPECT(!(got & ~want),
		       "after %s: ready set %#x includes %#x (sock=1 pipe=2 eventfd=4 timerfd=8)",
		       after, got, got & ~want);
		if (got == want)
			return 0;
	}
	FAIL("after %s: ready set %#x, expected %#x (sock=1 pipe=2 eventfd=4 timerfd=8)",
	     after, got, want);
}

static int mixed_consume(struct mixed *m, int which)
{
	char buf[64];
	uint64_t v;
	size_t n = 10;

	if (which & M_PIPE)
		EXPECT(read(m->fd[1], buf, 1) == 1 && buf[0] == 'p',
		       "pipe read");
	if (which & M_EVT)
		EXPECT(read(m->fd[2], &v, 8) == 8 && v == 7,
		       "eventfd read gave %llu", (unsigned long long)v);
	if (which & M_TIMER)
		EXPECT(read(m->fd[3], &v, 8) == 8 && v >= 1, "timerfd read");
	if (which & M_SOCK) {
		ssize_t r = recv(m->fd[0], buf, opq(n), 0);

		EXPECT(r == 10 && !memcmp(buf, "mixed-sock", 10),
		       "socket recv gave %zd", r);
	}
	return 0;
}

static int mixed_arm(struct mixed *m, int which)
{
	struct itimerspec its = { { 0, 0 }, { 0, 100 * 1000000L } };

	if (which & M_PIPE)
		EXPECT(write(m->pw, "p", 1) == 1, "pipe write");
	if (which & M_EVT)
		SYS(eventfd_write(m->fd[2], 7));
	if (which & M_SOCK)
		TRY(send_str(m->peer, "mixed-sock"));
	if (which & M_TIMER)
		SYS(timerfd_settime(m->fd[3], 0, &its, NULL));
	return 0;
}

static int mixed_run(int kind)
{
	static const char *const names[] = { "socket data", "pipe write",
					     "eventfd write",
					     "timerfd expiry" };
	struct mixed m = { .kind = kind };
	int p[2], i, r;

	TRY(tcp_pair("127.0.0.1", &m.peer, &m.fd[0]));
	SYS(pipe(p));
	m.fd[1] = p[0];
	m.pw = p[1];
	SYS(m.fd[2] = eventfd(0, 0));
	SYS(m.fd[3] = timerfd_create(CLOCK_MONOTONIC, 0));
	if (kind == K_EPOLL) {
		SYS(m.ep = epoll_create1(EPOLL_CLOEXEC));
		for (i = 0; i < 4; i++) {
			struct epoll_event ev = { .events = EPOLLIN };

			ev.data.u32 = 1u << i;
			SYS(epoll_ctl(m.ep, EPOLL_CTL_ADD, m.fd[i], &ev));
		}
	}
	r = mixed_ready(&m, 0);
	TRY(r);
	EXPECT(r == 0, "ready set %#x before anything happened", r);
	/* One at a time; the socket twice. */
	for (i = 0; i < 5; i++) {
		static const int order[5] = { M_PIPE, M_SOCK, M_EVT, M_TIMER,
					      M_SOCK };
		int bit = order[i];

		TRY(mixed_arm(&m, bit));
		TRY(mixed_expect(&m, bit, names[__builtin_ctz(bit)]));
		TRY(mixed_consume(&m, bit));
		r = mixed_ready(&m, 0);
		TRY(r);
		EXPECT(r == 0,
		       "ready set %#x right after consuming the %s (spurious readiness)",
		       r, names[__builtin_ctz(bit)]);
	}
	/* All four at once. */
	TRY(mixed_arm(&m, 15));
	TRY(mixed_expect(&m, 15, "all four"));
	TRY(mixed_consume(&m, 15));
	r = mixed_ready(&m, 0);
	TRY(r);
	EXPECT(r == 0, "ready set %#x after consuming all four", r);
	return 0;
}

static int c_select_mixed(void)
{
	return mixed_run(K_SELECT);
}

static int c_poll_mixed(void)
{
	return mixed_run(K_POLL);
}

static int c_epoll_mixed(void)
{
	return mixed_run(K_EPOLL);
}

/* ---------------------------------------------------------- epoll */

static int ep_events(int ep, int ms, uint32_t *events)
{
	struct epoll_event ev[8];
	int r, i;

	r = epoll_wait(ep, ev, 8, ms);
	if (r < 0)
		FAIL("epoll_wait: %s", strerror(errno));
	if (events) {
		*events = 0;
		for (i = 0; i < r; i++)
			*events |= ev[i].events;
	}
	return r;
}

static int ep_add(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	ev.data.fd = fd;
	SYS(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	return 0;
}

static int c_epoll_level(void)
{
	int c, s, ep, n;
	uint32_t e;
	char buf[16];
	size_t k = 4;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(ep = epoll_create1(0));
	TRY(ep_add(ep, s, EPOLLIN));
	EXPECT(ep_events(ep, 0, NULL) == 0, "event before data");
	TRY(send_str(c, "0123456789"));
	EXPECT(ep_events(ep, 3000, &e) == 1 && (e & EPOLLIN),
	       "no EPOLLIN for data");
	EXPECT(ep_events(ep, 100, &e) == 1,
	       "level-triggered: unread data not reported again");
	EXPECT(recv(s, buf, opq(k), 0) == 4 && !memcmp(buf, "0123", 4),
	       "first 4 bytes");
	EXPECT(ep_events(ep, 100, &e) == 1,
	       "level-triggered: 6 bytes left but no event");
	TRY(recv_exact(s, buf, 6, 2000));
	EXPECT(!memcmp(buf, "456789", 6), "rest of the data");
	n = ep_events(ep, 0, &e);
	EXPECT(n == 0, "event (%#x) after everything was read", e);
	return 0;
}

static int c_epoll_edge(void)
{
	int c, s, ep, n;
	uint32_t e;
	char buf[8];
	size_t one = 1;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(ep = epoll_create1(0));
	TRY(ep_add(ep, s, EPOLLIN | EPOLLET));
	EXPECT(ep_events(ep, 0, NULL) == 0, "event before data");
	TRY(send_str(c, "a"));
	EXPECT(ep_events(ep, 3000, &e) == 1 && (e & EPOLLIN),
	       "no event for the first arrival");
	n = ep_events(ep, 200, NULL);
	EXPECT(n == 0, "EPOLLET: a second event without new data");
	TRY(send_str(c, "b"));
	EXPECT(ep_events(ep, 3000, &e) == 1,
	       "EPOLLET: no event for a new arrival while data was unread");
	EXPECT(ep_events(ep, 200, NULL) == 0,
	       "EPOLLET: more than one event for one arrival");
	EXPECT(recv(s, buf, opq(one), 0) == 1 && buf[0] == 'a', "partial read");
	EXPECT(ep_events(ep, 200, NULL) == 0,
	       "EPOLLET: event after a partial read, without new data");
	TRY(send_str(c, "c"));
	EXPECT(ep_events(ep, 3000, &e) == 1,
	       "EPOLLET: no event for new data after a partial read");
	TRY(recv_exact(s, buf, 2, 2000));
	EXPECT(!memcmp(buf, "bc", 2), "data after edges: %.2s", buf);
	EXPECT(ep_events(ep, 200, NULL) == 0, "event after draining");
	return 0;
}

static int c_epoll_oneshot(void)
{
	int c, s, ep;
	uint32_t e;
	char buf[8];
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT };

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(ep = epoll_create1(0));
	TRY(ep_add(ep, s, EPOLLIN | EPOLLONESHOT));
	TRY(send_str(c, "1"));
	EXPECT(ep_events(ep, 3000, &e) == 1 && (e & EPOLLIN), "no first event");
	EXPECT(ep_events(ep, 200, NULL) == 0,
	       "EPOLLONESHOT: second event without rearm");
	TRY(send_str(c, "2"));
	EXPECT(ep_events(ep, 200, NULL) == 0,
	       "EPOLLONESHOT: event for new data while disarmed");
	ev.data.fd = s;
	SYS(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
	EXPECT(ep_events(ep, 3000, &e) == 1 && (e & EPOLLIN),
	       "no event after EPOLL_CTL_MOD rearm with data pending");
	EXPECT(ep_events(ep, 200, NULL) == 0,
	       "event after the rearmed one fired");
	TRY(recv_exact(s, buf, 2, 2000));
	EXPECT(!memcmp(buf, "12", 2), "data %.2s", buf);
	SYS(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
	EXPECT(ep_events(ep, 200, NULL) == 0, "event after rearm without data");
	TRY(send_str(c, "3"));
	EXPECT(ep_events(ep, 3000, &e) == 1, "no event for data after rearm");
	TRY(expect_msg(s, "3", 2000));
	return 0;
}

static int c_epoll_rdhup(void)
{
	int c, s, ep;
	uint32_t e = 0, all = 0;
	long long end;
	char buf[8];

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(ep = epoll_create1(0));
	TRY(ep_add(ep, s, EPOLLIN | EPOLLRDHUP));
	TRY(send_str(c, "bye"));
	close(c);
	end = now_ms() + 3000;
	while (!(all & EPOLLRDHUP) && now_ms() < end) {
		TRY(ep_events(ep, 100, &e));
		all |= e;
	}
	EXPECT(all & EPOLLRDHUP,
	       "no EPOLLRDHUP after the peer closed (events %#x)", all);
	EXPECT(all & EPOLLIN, "EPOLLRDHUP without EPOLLIN (%#x)", all);
	EXPECT(!(all & (EPOLLHUP | EPOLLERR)),
	       "EPOLLHUP/ERR after a FIN while our side is open (%#x)", all);
	TRY(recv_exact(s, buf, 3, 2000));
	EXPECT(!memcmp(buf, "bye", 3), "data before FIN");
	TRY(expect_eof(s, 2000));
	/* Still reported (level) after reading EOF. */
	EXPECT(ep_events(ep, 0, &e) == 1 && (e & EPOLLRDHUP),
	       "EPOLLRDHUP not level-triggered after EOF (%#x)", e);
	return 0;
}

static int c_poll_hup(void)
{
	int c, s, ev;
	struct pollfd p;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	close(c);
	TRY(expect_eof(s, 3000));
	p.fd = s;
	p.events = POLLIN | POLLOUT;
	EXPECT(poll(&p, 1, 0) == 1 && !(p.revents & POLLHUP),
	       "POLLHUP with only the peer's side closed (%#x)", p.revents);
	SYS(shutdown(s, SHUT_WR));
	/* Both directions shut: POLLHUP, as soon as the kernel says so. */
	ev = wait_ev(s, POLLIN, 3000);
	EXPECT(ev & POLLHUP, "no POLLHUP after both directions were shut (%#x)",
	       ev);
	EXPECT(ev & POLLIN, "POLLHUP without POLLIN (%#x)", ev);
	return 0;
}

struct ep_shared {
	int ep, s[2];
	pthread_mutex_t mu;
	char stream[2][256];
	size_t len[2];
	atomic_int first_owner, second_owner, hold, stop;
	int events[2];
	char err[120];
};

struct ep_thread {
	struct ep_shared *sh;
	int id;
};

static void *ep_thread_fn(void *arg)
{
	struct ep_thread *t = arg;
	struct ep_shared *sh = t->sh;

	while (!atomic_load(&sh->stop)) {
		struct epoll_event ev;
		char buf[256];
		int n = epoll_wait(sh->ep, &ev, 1, 5000), idx;
		ssize_t r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				snprintf(sh->err, sizeof(sh->err),
					 "epoll_wait: %s", strerror(errno));
			return NULL;
		}
		if (ev.data.u32 == 99)
			return NULL;
		idx = (int)ev.data.u32;
		pthread_mutex_lock(&sh->mu);
		sh->events[t->id]++;
		while ((r = recv(sh->s[idx], buf, opq(sizeof(buf)),
				 MSG_DONTWAIT)) > 0) {
			if (sh->len[idx] + (size_t)r < sizeof(sh->stream[0])) {
				memcpy(sh->stream[idx] + sh->len[idx], buf,
				       (size_t)r);
				sh->len[idx] += (size_t)r;
			}
		}
		pthread_mutex_unlock(&sh->mu);
		if (idx == 1 && atomic_load(&sh->second_owner) < 0)
			atomic_store(&sh->second_owner, t->id);
		if (idx == 0 && atomic_load(&sh->first_owner) < 0) {
			atomic_store(&sh->first_owner, t->id);
			while (atomic_load(&sh->hold))
				sleep_ms(2);
		}
		ev.events = EPOLLIN | EPOLLONESHOT;
		ev.data.u32 = (uint32_t)idx;
		epoll_ctl(sh->ep, EPOLL_CTL_MOD, sh->s[idx], &ev);
	}
	return NULL;
}

static int wait_flag(atomic_int *v, long long ms)
{
	long long end = now_ms() + ms;

	while (atomic_load(v) < 0 && now_ms() < end)
		sleep_ms(2);
	return atomic_load(v);
}

static int c_epoll_threads(void)
{
	static struct ep_shared sh;
	struct ep_thread t[2];
	pthread_t th[2];
	char want[2][256], msg[16];
	int c[2], i, efd, f, s2;
	struct epoll_event ev;
	long long end;

	sh.first_owner = -1;
	sh.second_owner = -1;
	sh.hold = 1;
	pthread_mutex_init(&sh.mu, NULL);
	for (i = 0; i < 2; i++)
		TRY(tcp_pair("127.0.0.1", &c[i], &sh.s[i]));
	SYS(sh.ep = epoll_create1(0));
	for (i = 0; i < 2; i++) {
		ev.events = EPOLLIN | EPOLLONESHOT;
		ev.data.u32 = (uint32_t)i;
		SYS(epoll_ctl(sh.ep, EPOLL_CTL_ADD, sh.s[i], &ev));
	}
	SYS(efd = eventfd(0, 0));
	ev.events = EPOLLIN;
	ev.data.u32 = 99;
	SYS(epoll_ctl(sh.ep, EPOLL_CTL_ADD, efd, &ev));
	for (i = 0; i < 2; i++) {
		t[i].sh = &sh;
		t[i].id = i;
		errno = pthread_create(&th[i], NULL, ep_thread_fn, &t[i]);
		SYS(errno ? -1 : 0);
	}
	sleep_ms(100);
	/* One thread takes socket 0's event and stays busy; socket 1's
	 * event must reach the other thread waiting on the same set. */
	TRY(send_str(c[0], "first;"));
	f = wait_flag(&sh.first_owner, 3000);
	EXPECT(f >= 0, "no thread got the event for socket 0");
	TRY(send_str(c[1], "second;"));
	s2 = wait_flag(&sh.second_owner, 3000);
	EXPECT(s2 >= 0,
	       "socket 1's event was not delivered while thread %d was busy",
	       f);
	EXPECT(s2 != f, "thread %d got both events while it was busy", f);
	atomic_store(&sh.hold, 0);
	strcpy(want[0], "first;");
	strcpy(want[1], "second;");
	for (i = 0; i < 20; i++) {
		snprintf(msg, sizeof(msg), "m%02d;", i);
		strcat(want[0], msg);
		TRY(send_str(c[0], msg));
		snprintf(msg, sizeof(msg), "n%02d;", i);
		strcat(want[1], msg);
		TRY(send_str(c[1], msg));
		sleep_ms(3);
	}
	end = now_ms() + 3000;
	for (;;) {
		size_t l0, l1;

		pthread_mutex_lock(&sh.mu);
		l0 = sh.len[0];
		l1 = sh.len[1];
		pthread_mutex_unlock(&sh.mu);
		if ((l0 >= strlen(want[0]) && l1 >= strlen(want[1])) ||
		    now_ms() > end)
			break;
		sleep_ms(5);
	}
	atomic_store(&sh.stop, 1);
	SYS(eventfd_write(efd, 1));
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	EXPECT(!sh.err[0], "%s", sh.err);
	for (i = 0; i < 2; i++) {
		sh.stream[i][sh.len[i]] = 0;
		EXPECT(!strcmp(sh.stream[i], want[i]),
		       "socket %d: threads collected \"%.60s\" (%zu bytes), expected %zu bytes",
		       i, sh.stream[i], sh.len[i], strlen(want[i]));
	}
	snprintf(g_note, sizeof(g_note), "events per thread: %d/%d",
		 sh.events[0], sh.events[1]);
	return 0;
}

/* ------------------------------------------------- dup, fcntl, close */

static int c_dup_dup2_dup3(void)
{
	int c, s, d, p[2], r, f, want;
	char buf[64];
	struct stat st;
	char tmpl[] = "/tmp/nk_semantics.XXXXXX";

	TRY(tcp_pair("127.0.0.1", &c, &s));
	want = lowest_free();
	SYS(d = dup(c));
	EXPECT(d == want, "dup gave %d, lowest free is %d", d, want);
	EXPECT(is_sock(d), "dup'ed fd not S_ISSOCK");
	TRY(send_str(d, "via-dup;"));
	/* dup2 onto an open pipe end replaces it. */
	SYS(pipe(p));
	r = dup2(c, p[1]);
	EXPECT(r == p[1], "dup2(%d,%d) gave %d", c, p[1], r);
	EXPECT(is_sock(p[1]), "dup2 target not S_ISSOCK");
	EXPECT(read(p[0], buf, 1) == 0,
	       "pipe read end: the write end dup2 replaced still open");
	TRY(send_str(p[1], "via-dup2;"));
	EXPECT(dup2(c, c) == c, "dup2(fd, fd) did not return fd");
	errno = 0;
	EXPECT(dup3(c, c, 0) == -1 && errno == EINVAL,
	       "dup3(fd, fd): errno %d, expected EINVAL", errno);
	r = dup3(c, 200, O_CLOEXEC);
	EXPECT(r == 200, "dup3(%d,200,O_CLOEXEC) gave %d (%s)", c, r,
	       strerror(errno));
	EXPECT(fcntl(200, F_GETFD) == FD_CLOEXEC, "dup3 O_CLOEXEC: F_GETFD %d",
	       fcntl(200, F_GETFD));
	EXPECT(fcntl(c, F_GETFD) == 0, "dup3 changed the source's FD_CLOEXEC");
	EXPECT(fcntl(d, F_GETFD) == 0, "dup set FD_CLOEXEC");
	TRY(send_str(200, "via-dup3;"));
	/* dup2 of a regular file over a socket fd: it is a file now. */
	SYS(f = mkstemp(tmpl));
	unlink(tmpl);
	EXPECT(write(f, "file-data", 9) == 9, "write tmp file");
	SYS(lseek(f, 0, SEEK_SET));
	EXPECT(dup2(f, d) == d, "dup2(file, socket fd)");
	EXPECT(fstat(d, &st) == 0 && S_ISREG(st.st_mode),
	       "fd %d not a regular file after dup2", d);
	EXPECT(read(d, buf, 9) == 9 && !memcmp(buf, "file-data", 9),
	       "read of the file through the former socket fd");
	/* Close every reference but one: no EOF yet. */
	close(c);
	close(p[1]);
	TRY(recv_exact(s, buf, 26, 3000));
	EXPECT(!memcmp(buf, "via-dup;via-dup2;via-dup3;", 26),
	       "data through the duplicates: %.26s", buf);
	TRY(expect_quiet(s, 300));
	TRY(send_str(200, "last;"));
	TRY(expect_msg(s, "last;", 3000));
	close(200);
	TRY(expect_eof(s, 3000));
	return 0;
}

static int c_fcntl_dupfd(void)
{
	int c, s, n, m, blocker;
	char buf[16];

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(blocker = fcntl(c, F_DUPFD, 50));
	EXPECT(blocker == 50, "F_DUPFD 50 gave %d", blocker);
	SYS(n = fcntl(c, F_DUPFD, 50));
	EXPECT(n == 51, "F_DUPFD 50 with 50 taken gave %d", n);
	EXPECT(fcntl(n, F_GETFD) == 0, "F_DUPFD set FD_CLOEXEC");
	SYS(m = fcntl(c, F_DUPFD_CLOEXEC, 50));
	EXPECT(m == 52, "F_DUPFD_CLOEXEC 50 gave %d", m);
	EXPECT(fcntl(m, F_GETFD) == FD_CLOEXEC, "F_DUPFD_CLOEXEC: F_GETFD %d",
	       fcntl(m, F_GETFD));
	EXPECT(is_sock(n) && is_sock(m), "duplicates not S_ISSOCK");
	close(c);
	close(blocker);
	TRY(send_str(n, "dupfd;"));
	TRY(send_str(m, "cloexec;"));
	TRY(expect_msg(s, "dupfd;cloexec;", 3000));
	TRY(send_str(s, "back"));
	TRY(recv_exact(m, buf, 4, 3000));
	EXPECT(!memcmp(buf, "back", 4), "read through F_DUPFD_CLOEXEC copy");
	close(n);
	TRY(expect_quiet(s, 200));
	close(m);
	TRY(expect_eof(s, 3000));
	return 0;
}

static int c_fcntl_flags(void)
{
	int s1, s2, c, s, l, a, fl, on = 1, off = 0;
	struct addr la;
	struct timeline tl = { 0 };
	char buf[16];
	size_t n = 8;
	long long t0, el;
	ssize_t r;

	SYS(s1 = socket(AF_INET, SOCK_STREAM, 0));
	fl = fcntl(s1, F_GETFL);
	EXPECT(fl >= 0 && (fl & O_ACCMODE) == O_RDWR && !(fl & O_NONBLOCK),
	       "fresh socket F_GETFL %#x", fl);
	EXPECT(fcntl(s1, F_GETFD) == 0, "fresh socket has FD_CLOEXEC");
	SYS(s2 = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0));
	fl = fcntl(s2, F_GETFL);
	EXPECT(fl & O_NONBLOCK, "SOCK_NONBLOCK not in F_GETFL (%#x)", fl);
	EXPECT(fcntl(s2, F_GETFD) == FD_CLOEXEC, "SOCK_CLOEXEC not in F_GETFD");
	SYS(fcntl(s2, F_SETFD, 0));
	EXPECT(fcntl(s2, F_GETFD) == 0, "F_SETFD 0 did not clear");
	SYS(fcntl(s1, F_SETFD, FD_CLOEXEC));
	EXPECT(fcntl(s1, F_GETFD) == FD_CLOEXEC, "F_SETFD FD_CLOEXEC");

	TRY(tcp_pair("127.0.0.1", &c, &s));
	fl = fcntl(s, F_GETFL);
	SYS(fcntl(s, F_SETFL, fl | O_NONBLOCK));
	EXPECT(fcntl(s, F_GETFL) & O_NONBLOCK,
	       "F_SETFL O_NONBLOCK not visible");
	t0 = now_ms();
	r = recv(s, buf, opq(n), 0);
	EXPECT(r == -1 && errno == EAGAIN,
	       "recv on O_NONBLOCK socket: %zd (%s), expected EAGAIN", r,
	       strerror(errno));
	EXPECT(now_ms() - t0 < 1000, "EAGAIN took %lld ms", now_ms() - t0);
	SYS(fcntl(s, F_SETFL, fl & ~O_NONBLOCK));
	EXPECT(!(fcntl(s, F_GETFL) & O_NONBLOCK), "O_NONBLOCK not cleared");
	/* Blocking again: recv waits for the data sent 200 ms later. */
	tl_add(&tl, 200, ACT_SEND, c, "blocking");
	TRY(tl_start(&tl));
	t0 = now_ms();
	r = recv(s, buf, opq(n), MSG_WAITALL);
	el = now_ms() - t0;
	TRY(tl_join(&tl));
	EXPECT(r == 8 && !memcmp(buf, "blocking", 8),
	       "blocking recv after clearing O_NONBLOCK: %zd (%s)", r,
	       strerror(errno));
	EXPECT(el >= 150, "recv returned after %lld ms: did not block", el);
	/* FIONBIO is the same flag. */
	SYS(ioctl(s, FIONBIO, &on));
	EXPECT(fcntl(s, F_GETFL) & O_NONBLOCK, "FIONBIO 1 not in F_GETFL");
	r = recv(s, buf, opq(n), 0);
	EXPECT(r == -1 && errno == EAGAIN, "recv after FIONBIO 1: %zd", r);
	SYS(ioctl(s, FIONBIO, &off));
	EXPECT(!(fcntl(s, F_GETFL) & O_NONBLOCK), "FIONBIO 0 not in F_GETFL");

	/* A non-blocking listener: accept EAGAIN; accepted sockets do not
	 * inherit O_NONBLOCK (Linux), accept4 flags apply. */
	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	SYS(fcntl(l, F_SETFL, O_NONBLOCK));
	a = accept(l, NULL, NULL);
	EXPECT(a == -1 && errno == EAGAIN,
	       "accept with nothing pending: %d (%s)", a, strerror(errno));
	TRY(tcp_connect(&la));
	EXPECT(wait_ev(l, POLLIN, 3000) & POLLIN, "listener not readable");
	SYS(a = accept4(l, NULL, NULL, 0));
	fl = fcntl(a, F_GETFL);
	EXPECT(!(fl & O_NONBLOCK), "accepted socket inherited O_NONBLOCK (%#x)",
	       fl);
	EXPECT(fcntl(a, F_GETFD) == 0, "accepted socket has FD_CLOEXEC");
	TRY(tcp_connect(&la));
	EXPECT(wait_ev(l, POLLIN, 3000) & POLLIN, "listener not readable");
	SYS(a = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
	EXPECT(fcntl(a, F_GETFL) & O_NONBLOCK, "accept4 SOCK_NONBLOCK missing");
	EXPECT(fcntl(a, F_GETFD) == FD_CLOEXEC, "accept4 SOCK_CLOEXEC missing");
	r = recv(a, buf, opq(n), 0);
	EXPECT(r == -1 && errno == EAGAIN,
	       "recv on accept4(SOCK_NONBLOCK) socket: %zd", r);
	return 0;
}

static int c_close_refs(void)
{
	int c, s, d, e;
	char b;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(d = dup(c));
	SYS(e = fcntl(c, F_DUPFD, 20));
	close(c);
	errno = 0;
	EXPECT(send(c, "x", 1, MSG_NOSIGNAL) == -1 && errno == EBADF,
	       "send on the closed number: errno %d, expected EBADF", errno);
	TRY(expect_quiet(s, 300));
	TRY(send_str(d, "d;"));
	close(d);
	TRY(expect_msg(s, "d;", 3000));
	TRY(expect_quiet(s, 300));
	TRY(send_str(e, "e;"));
	TRY(expect_msg(s, "e;", 3000));
	TRY(send_str(s, "to-e"));
	TRY(expect_msg(e, "to-e", 3000));
	EXPECT(recv(d, &b, 1, MSG_DONTWAIT) == -1 && errno == EBADF,
	       "recv on closed dup: not EBADF");
	close(e);
	TRY(expect_eof(s, 3000));
	return 0;
}

/* --------------------------------------------------------- fork, exec */

static int c_fork_shared(void)
{
	int c, s, sync[2];
	pid_t pid;
	char b;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(pipe(sync));
	pid = fork();
	SYS(pid);
	if (pid == 0) {
		close(sync[1]);
		if (expect_msg(c, "to-child;", 5000) < 0 ||
		    send_str(c, "from-child;") < 0)
			_exit(1);
		if (read(sync[0], &b, 1) != 1)
			_exit(2);
		if (send_str(c, "child-last;") < 0)
			_exit(3);
		exit(0);
	}
	close(sync[0]);
	TRY(send_str(s, "to-child;"));
	TRY(expect_msg(s, "from-child;", 5000));
	TRY(send_str(c, "from-parent;"));
	TRY(expect_msg(s, "from-parent;", 3000));
	TRY(send_str(s, "to-parent;"));
	TRY(expect_msg(c, "to-parent;", 3000));
	/* The parent closes; the child still holds the connection. */
	close(c);
	TRY(expect_quiet(s, 300));
	EXPECT(write(sync[1], "g", 1) == 1, "sync write");
	TRY(expect_msg(s, "child-last;", 5000));
	TRY(expect_exit0(pid, 5000, "child"));
	TRY(expect_eof(s, 3000));
	return 0;
}

/*
 * What the parent has received but not read stays the socket's across
 * fork: the parent reads whole buffers (the shim reads ahead), forks,
 * and only the child reads on; it must get every byte after the parent's
 * last one, in order (abi.md §5 "Unread data").
 */
static int c_fork_readahead(void)
{
	const uint64_t total = 1 << 20;
	struct bulk b = { 0 };
	unsigned char *buf;
	uint64_t got = 0;
	int c, s;
	pid_t pid;
	ssize_t r;
	long bad;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	b.fd = s;
	b.n = total;
	b.seed = 9;
	b.shut = 1;
	TRY(bulk_start(&b, bulk_send_fn));
	buf = malloc(1 << 18);
	EXPECT(buf, "malloc");
	/* Lets data queue, so the reads fill whole buffers; not a check. */
	sleep_ms(200);
	while (got < 300000) {
		r = recv(c, buf, opq(1 << 18), 0);
		if (r < 0 && errno == EINTR)
			continue;
		EXPECT(r > 0, "recv: %zd (%s) after %llu bytes", r,
		       strerror(errno), (unsigned long long)got);
		bad = mismatch(buf, got, (size_t)r, 9);
		EXPECT(bad < 0, "wrong byte at offset %llu",
		       (unsigned long long)(got + (uint64_t)bad));
		got += (uint64_t)r;
	}
	fflush(NULL);
	pid = fork();
	SYS(pid);
	if (pid == 0) {
		for (;;) {
			r = recv(c, buf, opq(65536), 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			if (mismatch(buf, got, (size_t)r, 9) >= 0)
				_exit(2);
			got += (uint64_t)r;
		}
		_exit(r == 0 && got == total ? 0 : 3);
	}
	TRY(expect_exit0(pid, 10000,
			 "child reading on (2: a byte out of place, 3: short)"));
	TRY(bulk_join(&b));
	free(buf);
	return 0;
}

_Noreturn static void worker(int l, int ctl)
{
	int ep, n, i, a;
	struct epoll_event ev[4];
	char req[8], resp[32];

	ep = epoll_create1(0);
	if (ep < 0 || ep_add(ep, l, EPOLLIN) < 0 ||
	    ep_add(ep, ctl, EPOLLIN) < 0)
		exit(2);
	for (;;) {
		n = epoll_wait(ep, ev, 4, 10000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(3);
		for (i = 0; i < n; i++) {
			if (ev[i].data.fd == ctl)
				exit(0);
			for (;;) {
				a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
				if (a < 0 &&
				    (errno == EAGAIN || errno == EINTR))
					break;
				if (a < 0)
					exit(4);
				if (fcntl(a, F_GETFL) & O_NONBLOCK)
					exit(5);
				if (recv_exact(a, req, 6, 5000) < 0)
					exit(6);
				snprintf(resp, sizeof(resp), "%.6s:%07d", req,
					 (int)getpid());
				if (send_all(a, resp, 14) < 0)
					exit(7);
				close(a);
			}
		}
	}
}

/*
 * Connections waiting in a listener's backlog (nkd's kernel NSM may hold
 * them in its own accept queue: docs/nkd.md "Accept") come out in arrival
 * order, the listener is readable exactly while one waits, and closing the
 * listener resets the ones nobody accepted.
 */
static int c_accept_queue(void)
{
	enum { N = 3 };
	int l, cli[2 * N], a, i;
	struct addr la, pa, ca;
	char c;
	ssize_t r;

	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	SYS(fcntl(l, F_SETFL, O_NONBLOCK));
	for (i = 0; i < N; i++) {
		cli[i] = tcp_connect(&la);
		TRY(cli[i]);
	}
	EXPECT(wait_ev(l, POLLIN, 2000), "listener not readable, %d pending",
	       N);
	for (i = 0; i < N; i++) {
		a = accept(l, NULL, NULL);
		EXPECT(a >= 0, "accept %d of %d pending: %s", i, N,
		       strerror(errno));
		TRY(peer_of(a, &pa));
		TRY(local_of(cli[i], &ca));
		EXPECT(addr_eq(&pa, &ca), "accept %d is not the %d. connection",
		       i, i);
		close(a);
		close(cli[i]);
	}
	a = accept(l, NULL, NULL);
	EXPECT(a < 0 && errno == EAGAIN, "accept with none pending: %d (%s)", a,
	       strerror(errno));
	EXPECT(!wait_ev(l, POLLIN, 0), "listener readable, none pending");
	for (i = N; i < 2 * N; i++) {
		cli[i] = tcp_connect(&la);
		TRY(cli[i]);
	}
	EXPECT(wait_ev(l, POLLIN, 2000), "listener not readable again");
	usleep(100 * 1000);
	close(l);
	for (i = N; i < 2 * N; i++) {
		EXPECT(wait_ev(cli[i], POLLIN, 2000),
		       "connection %d: nothing after the listener closed", i);
		r = recv(cli[i], &c, 1, MSG_DONTWAIT);
		EXPECT(r < 0 && errno == ECONNRESET,
		       "connection %d never accepted, listener closed: recv "
		       "%zd (%s), want ECONNRESET",
		       i, r, r < 0 ? strerror(errno) : "EOF or data");
		close(cli[i]);
	}
	return 0;
}

static int c_accept_emfile(void)
{
	int l, cli, a, fill[64], nfill = 0, fd;
	struct rlimit rl;
	struct addr la;
	char buf[4];

	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	SYS(fcntl(l, F_SETFL, O_NONBLOCK));
	cli = tcp_connect(&la);
	TRY(cli);
	EXPECT(wait_ev(l, POLLIN, 2000), "listener not readable");
	/* A small table, filled to the last descriptor. */
	fd = open("/dev/null", O_RDONLY);
	SYS(fd);
	close(fd);
	rl.rlim_cur = rl.rlim_max = (rlim_t)fd + 16;
	SYS(setrlimit(RLIMIT_NOFILE, &rl));
	while (nfill < 64 && (fd = open("/dev/null", O_RDONLY)) >= 0)
		fill[nfill++] = fd;
	EXPECT(fd < 0 && errno == EMFILE, "the table never filled: %s",
	       strerror(errno));
	a = accept(l, NULL, NULL);
	EXPECT(a < 0 && errno == EMFILE, "accept with no fd free: %d (%s)", a,
	       a < 0 ? strerror(errno) : "a descriptor");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	EXPECT(fd < 0 && errno == EMFILE, "socket with no fd free: %d (%s)", fd,
	       fd < 0 ? strerror(errno) : "a descriptor");
	/* The connection stayed queued: one fd free, and it is there. */
	close(fill[--nfill]);
	a = accept(l, NULL, NULL);
	EXPECT(a >= 0, "accept once an fd is free: %s", strerror(errno));
	SYS(send(cli, "emf", 3, 0));
	EXPECT(wait_ev(a, POLLIN, 2000), "accepted socket never readable");
	EXPECT(recv(a, buf, sizeof(buf), 0) == 3 && !memcmp(buf, "emf", 3),
	       "accepted socket lost its data");
	while (nfill)
		close(fill[--nfill]);
	close(a);
	close(cli);
	close(l);
	return 0;
}

static int c_fork_accept_workers(void)
{
	enum { NCONN = 12 };
	int l, ctl[2], i, w, conn[NCONN], served[2] = { 0, 0 };
	pid_t pids[2];
	struct addr la;
	char req[8], resp[16];

	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	SYS(fcntl(l, F_SETFL, O_NONBLOCK));
	SYS(pipe(ctl));
	fflush(NULL);
	for (w = 0; w < 2; w++) {
		pids[w] = fork();
		SYS(pids[w]);
		if (pids[w] == 0) {
			close(ctl[1]);
			worker(l, ctl[0]);
		}
	}
	close(ctl[0]);
	for (i = 0; i < NCONN; i++) {
		conn[i] = tcp_connect(&la);
		TRY(conn[i]);
	}
	for (i = 0; i < NCONN; i++) {
		snprintf(req, sizeof(req), "req-%02d", i);
		TRY(send_all(conn[i], req, 6));
	}
	for (i = 0; i < NCONN; i++) {
		int pid;

		snprintf(req, sizeof(req), "req-%02d", i);
		TRY(recv_exact(conn[i], resp, 14, 5000));
		resp[14] = 0;
		EXPECT(!memcmp(resp, req, 6) && resp[6] == ':',
		       "connection %d: response \"%s\"", i, resp);
		pid = atoi(resp + 7);
		EXPECT(pid == pids[0] || pid == pids[1],
		       "connection %d served by pid %d, not a worker", i, pid);
		served[pid == pids[1]]++;
		if (expect_eof(conn[i], 3000) < 0)
			FAIL("connection %d: answered by worker %d, which then closed it, but no EOF within 3 s",
			     i, pid);
	}
	close(ctl[1]);
	TRY(expect_exit0(pids[0], 5000, "worker 0"));
	TRY(expect_exit0(pids[1], 5000, "worker 1"));
	snprintf(g_note, sizeof(g_note), "connections per worker: %d/%d",
		 served[0], served[1]);
	return 0;
}

static pid_t spawn_vfork(char *const args[])
{
	pid_t pid = vfork();

	if (pid == 0) {
		execv(SELF_EXE, args);
		_exit(127);
	}
	return pid;
}

static int exec_check(int use_vfork)
{
	int res[2], cA, sA, cB, sB, l, c, hi = 150;
	struct addr la;
	char a1[16], a2[16], a3[16], a4[16], a5[16], buf[300];
	char *args[] = {
		"nk_semantics", "--exec-child", a1, a2, a3, a4, a5, NULL
	};
	pid_t pid;
	ssize_t r;

	SYS(pipe(res));
	SYS(fcntl(res[0], F_SETFD, FD_CLOEXEC));
	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	TRY(tcp_pair("127.0.0.1", &cA, &sA));
	TRY(tcp_pair("127.0.0.1", &cB, &sB));
	EXPECT(dup3(cB, hi, O_CLOEXEC) == hi, "dup3: %s", strerror(errno));
	close(cB);
	/* Only cA, l and res[1] go to the new image. */
	SYS(fcntl(sA, F_SETFD, FD_CLOEXEC));
	SYS(fcntl(sB, F_SETFD, FD_CLOEXEC));
	snprintf(a1, sizeof(a1), "%d", cA);
	snprintf(a2, sizeof(a2), "%d", l);
	snprintf(a3, sizeof(a3), "%d", hi);
	snprintf(a4, sizeof(a4), "%d", res[1]);
	snprintf(a5, sizeof(a5), "%d", addr_port(&la));
	fflush(NULL);
	if (use_vfork) {
		pid = spawn_vfork(args);
	} else {
		pid = fork();
		if (pid == 0) {
			execv(SELF_EXE, args);
			_exit(127);
		}
	}
	SYS(pid);
	close(cA);
	close(hi);
	close(l);
	close(res[1]);
	TRY(expect_msg(sA, "exec-hello;", 5000));
	/* The close-on-exec connection: its last reference went with the
	 * exec, while the new image still runs. */
	if (expect_eof(sB, 3000) < 0) {
		char why[120];

		memcpy(why, g_detail, sizeof(why) - 1);
		why[sizeof(why) - 1] = 0;
		FAIL("FD_CLOEXEC socket survived exec: the peer saw no EOF (%s)",
		     why);
	}
	TRY(send_str(sA, "exec-reply;"));
	c = tcp_connect(&la);
	TRY(c);
	TRY(send_str(c, "ping"));
	TRY(expect_msg(c, "pong", 5000));
	TRY(expect_eof(c, 3000));
	EXPECT(wait_ev(res[0], POLLIN, 5000),
	       "no result from the exec'd image");
	r = read(res[0], buf, sizeof(buf) - 1);
	buf[r > 0 ? r : 0] = 0;
	EXPECT(!strcmp(buf, "ok"), "exec'd image: %s", r > 0 ? buf : "(none)");
	TRY(expect_exit0(pid, 5000, "exec'd image"));
	TRY(expect_eof(sA, 3000));
	return 0;
}

static int exec_child_checks(int conn, int lst, int gone, int port)
{
	struct addr a;
	int v, acc;

	EXPECT(is_sock(conn), "inherited connection fd %d is not a socket",
	       conn);
	EXPECT(is_sock(lst), "inherited listener fd %d is not a socket", lst);
	EXPECT(fcntl(conn, F_GETFD) == 0, "inherited fd %d: F_GETFD %d", conn,
	       fcntl(conn, F_GETFD));
	EXPECT(!kernel_fd_open(gone), "FD_CLOEXEC fd %d still open after exec",
	       gone);
	errno = 0;
	EXPECT(fcntl(gone, F_GETFD) == -1 && errno == EBADF,
	       "fcntl on the FD_CLOEXEC number: errno %d", errno);
	TRY(sockopt_int(lst, SOL_SOCKET, SO_ACCEPTCONN, &v));
	EXPECT(v == 1, "inherited listener: SO_ACCEPTCONN %d", v);
	TRY(sockopt_int(conn, SOL_SOCKET, SO_TYPE, &v));
	EXPECT(v == SOCK_STREAM, "inherited connection: SO_TYPE %d", v);
	TRY(local_of(lst, &a));
	EXPECT(addr_port(&a) == port, "inherited listener on port %d, not %d",
	       addr_port(&a), port);
	TRY(send_str(conn, "exec-hello;"));
	TRY(expect_msg(conn, "exec-reply;", 5000));
	acc = accept(lst, NULL, NULL);
	EXPECT(acc >= 0, "accept on the inherited listener: %s",
	       strerror(errno));
	TRY(expect_msg(acc, "ping", 5000));
	TRY(send_str(acc, "pong"));
	close(acc);
	return 0;
}

static int exec_child_main(int argc, char **argv)
{
	int res, r;

	if (argc < 5)
		return 2;
	res = atoi(argv[3]);
	r = exec_child_checks(atoi(argv[0]), atoi(argv[1]), atoi(argv[2]),
			      atoi(argv[4]));
	if (r == 0)
		snprintf(g_detail, sizeof(g_detail), "ok");
	if (write(res, g_detail, strlen(g_detail)) < 0)
		return 3;
	return r == 0 ? 0 : 1;
}

static int c_exec_inherit(void)
{
	return exec_check(0);
}

static int c_vfork_exec(void)
{
	return exec_check(1);
}

/* ---------------------------------------------- blocking, non-blocking */

static int c_tcp_blocking(void)
{
	int c, s;
	struct bulk b = { 0 };
	unsigned char buf[7000];
	size_t want = sizeof(buf) - 3;
	uint64_t got = 0;
	ssize_t r;
	long bad;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	b.fd = c;
	b.n = 1 << 20;
	b.seed = 3;
	b.use_rw = 1;
	b.shut = 1;
	TRY(bulk_start(&b, bulk_send_fn));
	for (;;) {
		r = read(s, buf, opq(want));
		if (r < 0 && errno == EINTR)
			continue;
		EXPECT(r >= 0, "read: %s after %llu bytes", strerror(errno),
		       (unsigned long long)got);
		if (r == 0)
			break;
		bad = mismatch(buf, got, (size_t)r, 3);
		EXPECT(bad < 0, "wrong byte at offset %llu",
		       (unsigned long long)(got + (uint64_t)bad));
		got += (uint64_t)r;
	}
	TRY(bulk_join(&b));
	EXPECT(got == 1 << 20, "received %llu of %d bytes",
	       (unsigned long long)got, 1 << 20);
	EXPECT(write(s, "done", 4) == 4, "write reply: %s", strerror(errno));
	TRY(expect_msg(c, "done", 3000));
	close(s);
	TRY(expect_eof(c, 3000));
	return 0;
}

static int c_tcp_nonblocking(void)
{
	int l, c, s, ev;
	struct addr la;
	unsigned char *buf;
	char small[8];
	size_t n = 8;
	uint64_t total = 0, target;
	struct bulk b = { 0 };
	int pollout = 0, spurious = 0;
	long long t_sp = 0;
	char spur[200];
	ssize_t r;

	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	SYS(c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	r = connect(c, sa(&la), la.len);
	EXPECT(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
	EXPECT(wait_ev(c, POLLOUT, 3000) & POLLOUT, "connect did not complete");
	SYS(s = accept(l, NULL, NULL));
	r = recv(c, small, opq(n), 0);
	EXPECT(r == -1 && errno == EAGAIN, "recv without data: %zd (%s)", r,
	       strerror(errno));
	r = read(c, small, opq(n));
	EXPECT(r == -1 && errno == EAGAIN, "read without data: %zd (%s)", r,
	       strerror(errno));
	buf = malloc(65536);
	EXPECT(buf, "malloc");
	/* Fill until EAGAIN; POLLOUT must then be false, or the next send
	 * take at least one byte. Spurious POLLOUT is counted (up to 2 s)
	 * and reported at the end, after the data has been checked. */
	for (;;) {
		fill(buf, total, 65536, 4);
		r = send(c, buf, 65536, 0);
		if (r > 0) {
			total += (uint64_t)r;
			pollout = 0;
		} else if (r < 0 && errno == EAGAIN) {
			if (pollout) {
				if (!spurious++)
					t_sp = now_ms();
				if (now_ms() - t_sp > 2000)
					break;
				sleep_ms(1);
			}
			ev = wait_ev(c, POLLOUT, 0);
			pollout = !!(ev & POLLOUT);
			if (!pollout)
				break;
		} else {
			FAIL("send: %s after %llu bytes", strerror(errno),
			     (unsigned long long)total);
		}
		EXPECT(total < (256ULL << 20),
		       "256 MiB sent to a peer that reads nothing: no backpressure");
	}
	EXPECT(total > 0, "nothing could be sent");
	if (spurious)
		snprintf(
			spur, sizeof(spur),
			"after EAGAIN, poll said POLLOUT but send returned EAGAIN again, %d times over %lld ms (%llu bytes queued)%s",
			spurious, now_ms() - t_sp, (unsigned long long)total,
			pollout ? "; POLLOUT still set at the end" : "");
	/* A reader drains; the writer waits for POLLOUT and goes on. */
	b.fd = s;
	b.seed = 4;
	TRY(bulk_start(&b, bulk_recv_fn));
	target = total + (2u << 20);
	while (total < target) {
		size_t k = 65536;

		if (target - total < k)
			k = (size_t)(target - total);
		fill(buf, total, k, 4);
		r = send(c, buf, k, MSG_NOSIGNAL);
		if (r > 0) {
			total += (uint64_t)r;
			continue;
		}
		EXPECT(r < 0 && errno == EAGAIN, "send: %s", strerror(errno));
		EXPECT(wait_ev(c, POLLOUT, 5000) & POLLOUT,
		       "not writable for 5 s while the peer reads (at %llu)",
		       (unsigned long long)total);
	}
	SYS(shutdown(c, SHUT_WR));
	TRY(bulk_join(&b));
	EXPECT(b.done == total, "peer received %llu of %llu bytes",
	       (unsigned long long)b.done, (unsigned long long)total);
	EXPECT(!spurious, "%s", spur);
	snprintf(g_note, sizeof(g_note), "%llu bytes queued before EAGAIN",
		 (unsigned long long)(target - (2u << 20)));
	free(buf);
	return 0;
}

static int c_connect_nonblock(void)
{
	int l, c, s, ep, v;
	struct addr la, pa;
	uint32_t e;
	char b1[80], b2[80];
	int r;

	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	SYS(c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	r = connect(c, sa(&la), la.len);
	EXPECT(r == -1 && errno == EINPROGRESS,
	       "non-blocking connect: %d (%s), expected EINPROGRESS", r,
	       strerror(errno));
	SYS(ep = epoll_create1(0));
	TRY(ep_add(ep, c, EPOLLOUT));
	EXPECT(ep_events(ep, 3000, &e) == 1 && (e & EPOLLOUT),
	       "no EPOLLOUT when the connection completed");
	EXPECT(!(e & (EPOLLERR | EPOLLHUP)), "EPOLLOUT with error bits %#x", e);
	TRY(sockopt_int(c, SOL_SOCKET, SO_ERROR, &v));
	EXPECT(v == 0, "SO_ERROR %d (%s) after a good connect", v, strerror(v));
	TRY(peer_of(c, &pa));
	EXPECT(addr_eq(&pa, &la), "getpeername %s, connected to %s",
	       addr_str(&pa, b1, sizeof(b1)), addr_str(&la, b2, sizeof(b2)));
	/* Linux reports the completion to a second connect() with 0 (POSIX
	 * allows EISCONN); after that it is EISCONN. */
	errno = 0;
	r = connect(c, sa(&la), la.len);
	EXPECT(r == 0 || errno == EISCONN,
	       "second connect after completion: %d (%s), expected 0 or EISCONN",
	       r, strerror(errno));
	errno = 0;
	EXPECT(connect(c, sa(&la), la.len) == -1 && errno == EISCONN,
	       "connect on a connected socket: errno %d, expected EISCONN",
	       errno);
	SYS(s = accept(l, NULL, NULL));
	TRY(send_str(c, "nb-hello"));
	TRY(expect_msg(s, "nb-hello", 3000));
	TRY(send_str(s, "nb-reply"));
	TRY(expect_msg(c, "nb-reply", 3000));
	return 0;
}

static int c_connect_pending(void)
{
	int c, ep, v, r;
	struct addr a;

	if (!opt_unreach)
		SKIP("no --unreach address given");
	TRY(addr_make(&a, opt_unreach, 9));
	SYS(c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	r = connect(c, sa(&a), a.len);
	EXPECT(r == -1 && errno == EINPROGRESS,
	       "connect to %s: %d (%s), expected EINPROGRESS", opt_unreach, r,
	       strerror(errno));
	SYS(ep = epoll_create1(0));
	TRY(ep_add(ep, c, EPOLLOUT));
	r = ep_events(ep, 300, NULL);
	if (r > 0) {
		TRY(sockopt_int(c, SOL_SOCKET, SO_ERROR, &v));
		EXPECT(v == 0,
		       "connect to %s failed within 300 ms (%s): --unreach must be an address nobody answers",
		       opt_unreach, strerror(v));
		FAIL("EPOLLOUT while the connect is still in progress");
	}
	r = wait_ev(c, POLLOUT, 0);
	EXPECT(!(r & POLLOUT), "POLLOUT while the connect is in progress (%#x)",
	       r);
	TRY(sockopt_int(c, SOL_SOCKET, SO_ERROR, &v));
	EXPECT(v == 0, "SO_ERROR %d (%s) while in progress", v, strerror(v));
	errno = 0;
	r = connect(c, sa(&a), a.len);
	EXPECT(r == -1 && errno == EALREADY,
	       "second connect while in progress: errno %d (%s), expected EALREADY",
	       errno, strerror(errno));
	return 0;
}

static int refused_one(const char *ip)
{
	int b, c, r, v, ev;
	struct addr ba, pa;

	TRY(addr_make(&ba, ip, 0));
	SYS(b = socket(ba.ss.ss_family, SOCK_STREAM, 0));
	SYS(bind(b, sa(&ba), ba.len)); /* bound, not listening: refuses */
	TRY(local_of(b, &ba));
	SYS(c = socket(ba.ss.ss_family, SOCK_STREAM, 0));
	r = connect(c, sa(&ba), ba.len);
	EXPECT(r == -1 && errno == ECONNREFUSED,
	       "%s: blocking connect to a closed port: %d (%s)", ip, r,
	       strerror(errno));
	errno = 0;
	EXPECT(peer_of(c, &pa) < 0 && errno == ENOTCONN,
	       "getpeername after refusal: errno %d", errno);
	SYS(c = socket(ba.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0));
	r = connect(c, sa(&ba), ba.len);
	if (r == -1 && errno == EINPROGRESS) {
		ev = wait_ev(c, POLLOUT, 3000);
		EXPECT(ev & (POLLOUT | POLLERR),
		       "%s: refused non-blocking connect never ready", ip);
		TRY(sockopt_int(c, SOL_SOCKET, SO_ERROR, &v));
		EXPECT(v == ECONNREFUSED,
		       "%s: SO_ERROR %d (%s), expected ECONNREFUSED", ip, v,
		       strerror(v));
		TRY(sockopt_int(c, SOL_SOCKET, SO_ERROR, &v));
		EXPECT(v == 0, "%s: SO_ERROR not cleared by reading it (%d)",
		       ip, v);
	} else {
		EXPECT(r == -1 && errno == ECONNREFUSED,
		       "%s: non-blocking connect: %d (%s)", ip, r,
		       strerror(errno));
	}
	return 0;
}

static int c_connect_refused(void)
{
	TRY(refused_one("127.0.0.1"));
	TRY(refused_one("::1"));
	return 0;
}

static volatile sig_atomic_t sig_count;

static void on_signal(int sig)
{
	(void)sig;
	sig_count++;
}

static int set_handler(int sig, int flags)
{
	struct sigaction sa_ = { 0 };

	sa_.sa_handler = on_signal;
	sa_.sa_flags = flags;
	sigemptyset(&sa_.sa_mask);
	SYS(sigaction(sig, &sa_, NULL));
	return 0;
}

static int c_eintr_norestart(void)
{
	int c, s;
	struct timeline tl = { 0 };
	char buf[32];
	size_t n = sizeof(buf) - 1;
	long long t0, el;
	ssize_t r;
	int e;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	TRY(set_handler(SIGUSR1, 0));
	tl_add(&tl, 200, ACT_SIGNAL, 0, NULL);
	tl_add(&tl, 500, ACT_SEND, c, "after-eintr");
	TRY(tl_start(&tl));
	t0 = now_ms();
	r = recv(s, buf, opq(n), 0);
	e = errno;
	el = now_ms() - t0;
	EXPECT(r == -1 && e == EINTR,
	       "recv interrupted by a handler without SA_RESTART returned %zd (%s) after %lld ms, expected -1 EINTR",
	       r, r < 0 ? strerror(e) : "data", el);
	EXPECT(sig_count == 1, "handler ran %d times", (int)sig_count);
	EXPECT(el >= 150, "EINTR after %lld ms, before the signal", el);
	/* Nothing lost: the data sent later arrives. */
	TRY(expect_msg(s, "after-eintr", 5000));
	TRY(tl_join(&tl));
	return 0;
}

static int c_eintr_restart(void)
{
	int c, s;
	struct timeline tl = { 0 };
	char buf[32];
	size_t n = 9;
	long long t0, el;
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	TRY(set_handler(SIGUSR1, SA_RESTART));
	tl_add(&tl, 200, ACT_SIGNAL, 0, NULL);
	tl_add(&tl, 500, ACT_SEND, c, "restarted");
	TRY(tl_start(&tl));
	t0 = now_ms();
	r = recv(s, buf, opq(n), MSG_WAITALL);
	el = now_ms() - t0;
	TRY(tl_join(&tl));
	EXPECT(r == 9 && !memcmp(buf, "restarted", 9),
	       "recv with an SA_RESTART handler returned %zd (%s) after %lld ms, expected the data",
	       r, r < 0 ? strerror(errno) : "short", el);
	EXPECT(sig_count == 1, "handler ran %d times", (int)sig_count);
	EXPECT(el >= 450, "returned after %lld ms, before the data was sent",
	       el);
	return 0;
}

static int c_rcvtimeo(void)
{
	int c, s, l;
	struct timeval tv = { 0, 300000 }, got;
	socklen_t len = sizeof(got);
	struct addr la;
	char buf[16];
	size_t n = 7;
	long long t0, el;
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	SYS(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &got, &len));
	EXPECT(got.tv_sec == 0 && got.tv_usec == 300000,
	       "SO_RCVTIMEO reads back %ld.%06ld", (long)got.tv_sec,
	       (long)got.tv_usec);
	t0 = now_ms();
	r = recv(s, buf, opq(n), 0);
	el = now_ms() - t0;
	EXPECT(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK),
	       "recv with SO_RCVTIMEO: %zd (%s), expected EAGAIN", r,
	       strerror(errno));
	EXPECT(el >= 290, "timed out after %lld ms, before the 300 ms timeout",
	       el);
	EXPECT(el < 5000, "timed out after %lld ms (timeout 300 ms)", el);
	TRY(send_str(c, "in-time"));
	r = recv(s, buf, opq(n), MSG_WAITALL);
	EXPECT(r == 7 && !memcmp(buf, "in-time", 7),
	       "recv with SO_RCVTIMEO and data: %zd (%s)", r, strerror(errno));
	/* accept() honours it too. */
	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	tv.tv_usec = 200000;
	SYS(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	t0 = now_ms();
	r = accept(l, NULL, NULL);
	el = now_ms() - t0;
	EXPECT(r == -1 && errno == EAGAIN,
	       "accept with SO_RCVTIMEO: %zd (%s), expected EAGAIN", r,
	       strerror(errno));
	EXPECT(el >= 190 && el < 5000, "accept timed out after %lld ms", el);
	return 0;
}

/* --------------------------------------------------- protocols */

static int tcp_family(const char *ip)
{
	int l, c, s;
	struct addr la, cl, cp, sl, sp, acc;
	socklen_t alen = sizeof(acc.ss);
	unsigned char *buf;
	char b1[80], b2[80];

	l = tcp_listen(ip, &la);
	TRY(l);
	EXPECT(addr_is_ip(&la, ip), "listener bound to %s",
	       addr_str(&la, b1, sizeof(b1)));
	c = tcp_connect(&la);
	TRY(c);
	s = accept(l, sa(&acc), &alen);
	acc.len = alen;
	SYS(s);
	TRY(local_of(c, &cl));
	TRY(peer_of(c, &cp));
	TRY(local_of(s, &sl));
	TRY(peer_of(s, &sp));
	EXPECT(addr_is_ip(&cl, ip), "client's local address %s on %s",
	       addr_str(&cl, b1, sizeof(b1)), ip);
	EXPECT(addr_eq(&cp, &la), "client's peer %s, listener %s",
	       addr_str(&cp, b1, sizeof(b1)), addr_str(&la, b2, sizeof(b2)));
	EXPECT(addr_eq(&sl, &la), "server's local %s, listener %s",
	       addr_str(&sl, b1, sizeof(b1)), addr_str(&la, b2, sizeof(b2)));
	EXPECT(addr_eq(&sp, &cl), "server's peer %s, client %s",
	       addr_str(&sp, b1, sizeof(b1)), addr_str(&cl, b2, sizeof(b2)));
	EXPECT(addr_eq(&acc, &cl), "accept()'s address %s, client %s",
	       addr_str(&acc, b1, sizeof(b1)), addr_str(&cl, b2, sizeof(b2)));
	buf = malloc(65536);
	EXPECT(buf, "malloc");
	fill(buf, 0, 65536, 5);
	TRY(send_all(c, buf, 65536));
	memset(buf, 0, 65536);
	TRY(recv_exact(s, buf, 65536, 5000));
	EXPECT(mismatch(buf, 0, 65536, 5) < 0, "%s: client->server data", ip);
	fill(buf, 0, 65536, 6);
	TRY(send_all(s, buf, 65536));
	memset(buf, 0, 65536);
	TRY(recv_exact(c, buf, 65536, 5000));
	EXPECT(mismatch(buf, 0, 65536, 6) < 0, "%s: server->client data", ip);
	free(buf);
	close(c);
	TRY(expect_eof(s, 3000));
	return 0;
}

static int c_tcp_v4(void)
{
	TRY(tcp_family("127.0.0.1"));
	if (opt_addr4)
		TRY(tcp_family(opt_addr4));
	return 0;
}

static int c_tcp_v6(void)
{
	TRY(tcp_family("::1"));
	if (opt_addr6)
		TRY(tcp_family(opt_addr6));
	return 0;
}

/* One datagram within 3 s; its source in *src. */
static ssize_t udp_recv(int fd, void *buf, size_t n, int flags,
			struct addr *src)
{
	ssize_t r;

	if (!wait_ev(fd, POLLIN, 3000)) {
		snprintf(g_detail, sizeof(g_detail), "no datagram within 3 s");
		return -2;
	}
	src->len = sizeof(src->ss);
	r = recvfrom(fd, buf, n, flags, sa(src), &src->len);
	if (r < 0)
		snprintf(g_detail, sizeof(g_detail), "recvfrom: %s",
			 strerror(errno));
	return r;
}

static int udp_family(const char *ip, size_t maxdg)
{
	int a, b;
	struct addr aa, ba, src, pa;
	unsigned char *big;
	char small[64], b1[80], b2[80];
	size_t n = sizeof(small);
	ssize_t r;

	TRY(a = udp_bound(ip, &aa));
	TRY(b = udp_bound(ip, &ba));
	EXPECT(addr_is_ip(&aa, ip) && addr_port(&aa), "bound to %s",
	       addr_str(&aa, b1, sizeof(b1)));
	big = malloc(70000);
	EXPECT(big, "malloc");
	fill(big, 0, 100, 7);
	EXPECT(sendto(a, big, 100, 0, sa(&ba), ba.len) == 100, "sendto 100: %s",
	       strerror(errno));
	fill(big, 100, 3000, 7);
	EXPECT(sendto(a, big, 3000, 0, sa(&ba), ba.len) == 3000,
	       "sendto 3000: %s", strerror(errno));
	r = udp_recv(b, big, 70000, 0, &src);
	TRY(r);
	EXPECT(r == 100 && mismatch(big, 0, 100, 7) < 0,
	       "first datagram: %zd bytes", r);
	EXPECT(addr_eq(&src, &aa), "source %s, sender is %s",
	       addr_str(&src, b1, sizeof(b1)), addr_str(&aa, b2, sizeof(b2)));
	r = udp_recv(b, big, 70000, 0, &src);
	TRY(r);
	EXPECT(r == 3000 && mismatch(big, 100, 3000, 7) < 0,
	       "second datagram: %zd bytes (boundaries)", r);
	r = recvfrom(b, small, opq(n), MSG_DONTWAIT, NULL, NULL);
	EXPECT(r == -1 && errno == EAGAIN, "recvfrom on empty UDP socket: %zd",
	       r);
	EXPECT(sendto(b, "pong", 4, 0, sa(&aa), aa.len) == 4, "sendto reply");
	r = udp_recv(a, small, n, 0, &src);
	TRY(r);
	EXPECT(r == 4 && !memcmp(small, "pong", 4) && addr_eq(&src, &ba),
	       "reply %zd from %s", r, addr_str(&src, b1, sizeof(b1)));
	/* Connected UDP. */
	SYS(connect(a, sa(&ba), ba.len));
	SYS(connect(b, sa(&aa), aa.len));
	TRY(peer_of(a, &pa));
	EXPECT(addr_eq(&pa, &ba), "connected UDP peer %s",
	       addr_str(&pa, b1, sizeof(b1)));
	EXPECT(send(a, "conn", 4, 0) == 4, "send on connected UDP: %s",
	       strerror(errno));
	r = udp_recv(b, small, n, 0, &src);
	TRY(r);
	EXPECT(r == 4 && !memcmp(small, "conn", 4), "connected datagram");
	/* The largest datagram the protocol allows. */
	fill(big, 0, maxdg, 8);
	r = send(b, big, maxdg, 0);
	EXPECT(r == (ssize_t)maxdg, "send of a %zu-byte datagram: %zd (%s)",
	       maxdg, r, strerror(errno));
	memset(big, 0, maxdg);
	r = udp_recv(a, big, 70000, 0, &src);
	TRY(r);
	EXPECT(r == (ssize_t)maxdg && mismatch(big, 0, maxdg, 8) < 0,
	       "%zu-byte datagram came back as %zd bytes", maxdg, r);
	if (aa.ss.ss_family == AF_INET && maxdg == 65507) {
		errno = 0;
		r = send(b, big, maxdg + 1, 0);
		EXPECT(r == -1 && errno == EMSGSIZE,
		       "send of %zu bytes: %zd (%s), expected EMSGSIZE",
		       maxdg + 1, r, strerror(errno));
	}
	free(big);
	return 0;
}

static int c_udp_v4(void)
{
	TRY(udp_family("127.0.0.1", 65507));
	if (opt_addr4)
		TRY(udp_family(opt_addr4, 8000));
	return 0;
}

static int c_udp_v6(void)
{
	TRY(udp_family("::1", 65527));
	if (opt_addr6)
		TRY(udp_family(opt_addr6, 8000));
	return 0;
}

static int c_udp_trunc(void)
{
	int a, b;
	struct addr aa, ba;
	unsigned char out[500], in[100];
	size_t n = 100;
	struct iovec iov = { in, 100 };
	struct msghdr mh = { 0 };
	ssize_t r;

	TRY(a = udp_bound("127.0.0.1", &aa));
	TRY(b = udp_bound("127.0.0.1", &ba));
	fill(out, 0, 500, 9);
	EXPECT(sendto(a, out, 500, 0, sa(&ba), ba.len) == 500, "sendto");
	EXPECT(wait_ev(b, POLLIN, 3000), "no datagram");
	r = recv(b, in, opq(n), MSG_TRUNC);
	EXPECT(r == 500, "recv(100, MSG_TRUNC) of a 500-byte datagram: %zd", r);
	EXPECT(mismatch(in, 0, 100, 9) < 0, "truncated data");
	EXPECT(sendto(a, out, 500, 0, sa(&ba), ba.len) == 500, "sendto");
	EXPECT(wait_ev(b, POLLIN, 3000), "no datagram");
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	r = recvmsg(b, &mh, 0);
	EXPECT(r == 100, "recvmsg into 100 bytes: %zd", r);
	EXPECT(mh.msg_flags & MSG_TRUNC, "msg_flags %#x lacks MSG_TRUNC",
	       mh.msg_flags);
	EXPECT(mismatch(in, 0, 100, 9) < 0, "truncated data (recvmsg)");
	r = recv(b, in, opq(n), MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN,
	       "the truncated rest was not discarded: recv %zd", r);
	return 0;
}

/*
 * Many datagrams of different sizes and sources queued at once, then read
 * with every call (netkernel hands them over in batches: docs/shim.md).
 */
#define UB_N 80 /* more than one batch (NK_RECV_BATCH_MAX) */

static size_t ub_len(int i)
{
	return i % 10 == 5 ? 3000 + (size_t)i * 10 : (size_t)(i * 37) % 300;
}

/* Datagram i came back whole (or cut to cut bytes) from sender i % 3. */
static int ub_check(int i, const unsigned char *in, ssize_t r, size_t cut,
		    const struct addr *from, const struct addr *src)
{
	size_t want = ub_len(i) < cut ? ub_len(i) : cut;
	char b1[80], b2[80];

	EXPECT(r == (ssize_t)want, "datagram %d: %zd bytes, want %zu", i, r,
	       want);
	EXPECT(mismatch(in, 0, want, (unsigned)i + 1) < 0,
	       "datagram %d: wrong bytes", i);
	if (from)
		EXPECT(addr_eq(from, &src[i % 3]),
		       "datagram %d from %s, not %s", i,
		       addr_str(from, b1, sizeof(b1)),
		       addr_str(&src[i % 3], b2, sizeof(b2)));
	return 0;
}

static int udp_batch_run(const char *ip)
{
	static unsigned char out[4000], in[4000];
	struct addr src[3], ba, from;
	int a[3], b, ep, i = 0, v, big = 1 << 20;
	struct epoll_event ev = { .events = EPOLLIN }, got;
	struct mmsghdr mm[5];
	struct iovec iov[2], miov[5];
	static unsigned char mbuf[5][4000];
	struct msghdr mh;
	struct pollfd pf;
	ssize_t r;
	size_t n = sizeof(in);

	for (int k = 0; k < 3; k++)
		TRY(a[k] = udp_bound(ip, &src[k]));
	TRY(b = udp_bound(ip, &ba));
	SYS(setsockopt(b, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)));
	for (int k = 0; k < UB_N; k++) {
		fill(out, 0, ub_len(k), (unsigned)k + 1);
		EXPECT(sendto(a[k % 3], out, ub_len(k), 0, sa(&ba), ba.len) ==
			       (ssize_t)ub_len(k),
		       "sendto %d: %s", k, strerror(errno));
	}
	EXPECT(wait_ev(b, POLLIN, 3000) & POLLIN, "no datagram");
	/* recv, recvfrom */
	r = recv(b, in, opq(n), 0);
	TRY(ub_check(i++, in, r, n, NULL, src));
	from.len = sizeof(from.ss);
	r = recvfrom(b, in, opq(n), 0, sa(&from), &from.len);
	TRY(ub_check(i++, in, r, n, &from, src));
	/* recvmsg over two iovecs */
	memset(&mh, 0, sizeof(mh));
	iov[0] = (struct iovec){ in, 50 };
	iov[1] = (struct iovec){ in + 50, sizeof(in) - 50 };
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	mh.msg_name = &from.ss;
	mh.msg_namelen = sizeof(from.ss);
	r = recvmsg(b, &mh, 0);
	from.len = mh.msg_namelen;
	TRY(ub_check(i++, in, r, n, &from, src));
	EXPECT(!(mh.msg_flags & MSG_TRUNC), "msg_flags %#x", mh.msg_flags);
	/* MSG_PEEK twice, then the same datagram for real */
	for (int k = 0; k < 2; k++) {
		memset(in, 0, sizeof(in));
		from.len = sizeof(from.ss);
		r = recvfrom(b, in, opq(n), MSG_PEEK, sa(&from), &from.len);
		TRY(ub_check(i, in, r, n, &from, src));
	}
	r = recv(b, in, opq(n), 0);
	TRY(ub_check(i++, in, r, n, NULL, src));
	/* A short buffer cuts: the rest is gone; MSG_TRUNC says how long. */
	r = recv(b, in, opq(10), 0);
	TRY(ub_check(i++, in, r, 10, NULL, src));
	memset(&mh, 0, sizeof(mh));
	iov[0] = (struct iovec){ in, 5 };
	mh.msg_iov = iov;
	mh.msg_iovlen = 1;
	r = recvmsg(b, &mh, 0);
	TRY(ub_check(i, in, r, 5, NULL, src));
	EXPECT(ub_len(i) <= 5 || (mh.msg_flags & MSG_TRUNC),
	       "datagram %d: msg_flags %#x lacks MSG_TRUNC", i, mh.msg_flags);
	i++;
	r = recv(b, in, opq(3), MSG_TRUNC);
	EXPECT(r == (ssize_t)ub_len(i),
	       "recv(3, MSG_TRUNC) of datagram %d: %zd", i, r);
	EXPECT(mismatch(in, 0, 3, (unsigned)i + 1) < 0, "truncated data");
	i++;
	/* FIONREAD: the next datagram's length */
	SYS(ioctl(b, FIONREAD, &v));
	EXPECT(v == (int)ub_len(i), "FIONREAD %d, next datagram %zu", v,
	       ub_len(i));
	/* recvmmsg */
	for (int k = 0; k < 5; k++) {
		miov[k] = (struct iovec){ mbuf[k], sizeof(mbuf[k]) };
		memset(&mm[k], 0, sizeof(mm[k]));
		mm[k].msg_hdr.msg_iov = &miov[k];
		mm[k].msg_hdr.msg_iovlen = 1;
	}
	r = recvmmsg(b, mm, 5, MSG_DONTWAIT, NULL);
	EXPECT(r == 5, "recvmmsg: %zd (%s)", r, strerror(errno));
	for (int k = 0; k < 5; k++)
		TRY(ub_check(i++, mbuf[k], (ssize_t)mm[k].msg_len, n, NULL,
			     src));
	/* readiness while datagrams are left */
	pf = (struct pollfd){ b, POLLIN, 0 };
	EXPECT(poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN),
	       "poll with datagrams queued: revents %#x", pf.revents);
	SYS(ep = epoll_create1(EPOLL_CLOEXEC));
	SYS(epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev));
	EXPECT(epoll_wait(ep, &got, 1, 0) == 1, "epoll with datagrams queued");
	while (i < UB_N) {
		from.len = sizeof(from.ss);
		r = recvfrom(b, in, opq(n), MSG_DONTWAIT, sa(&from), &from.len);
		TRY(ub_check(i++, in, r, n, &from, src));
	}
	/* drained: not readable, EAGAIN, in every way of asking */
	pf = (struct pollfd){ b, POLLIN, 0 };
	EXPECT(poll(&pf, 1, 0) == 0, "drained: poll revents %#x", pf.revents);
	EXPECT(epoll_wait(ep, &got, 1, 0) == 0, "drained: epoll says ready");
	r = recv(b, in, opq(n), MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN, "drained recv: %zd", r);
	r = recvmmsg(b, mm, 5, MSG_DONTWAIT, NULL);
	EXPECT(r == -1 && errno == EAGAIN, "drained recvmmsg: %zd", r);
	/* one more, then drained again */
	fill(out, 0, 33, 99);
	EXPECT(sendto(a[1], out, 33, 0, sa(&ba), ba.len) == 33, "sendto");
	EXPECT(epoll_wait(ep, &got, 1, 3000) == 1, "new datagram: no EPOLLIN");
	r = recv(b, in, opq(n), 0);
	EXPECT(r == 33 && mismatch(in, 0, 33, 99) < 0, "last datagram: %zd", r);
	pf = (struct pollfd){ b, POLLIN, 0 };
	EXPECT(poll(&pf, 1, 0) == 0, "drained again: revents %#x", pf.revents);
	r = recv(b, in, opq(n), MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN, "drained again: recv %zd", r);
	/* sendmmsg: 5 datagrams in one call, in order */
	for (int k = 0; k < 5; k++) {
		fill(mbuf[k], 0, ub_len(k), (unsigned)k + 1);
		miov[k] = (struct iovec){ mbuf[k], ub_len(k) };
		memset(&mm[k], 0, sizeof(mm[k]));
		mm[k].msg_hdr.msg_iov = &miov[k];
		mm[k].msg_hdr.msg_iovlen = 1;
		mm[k].msg_hdr.msg_name = &ba.ss;
		mm[k].msg_hdr.msg_namelen = ba.len;
	}
	r = sendmmsg(a[0], mm, 5, 0);
	EXPECT(r == 5, "sendmmsg: %zd (%s)", r, strerror(errno));
	for (int k = 0; k < 5; k++) {
		EXPECT(mm[k].msg_len == ub_len(k), "sendmmsg msg_len[%d] %u", k,
		       mm[k].msg_len);
		from.len = sizeof(from.ss);
		r = recvfrom(b, in, opq(n), 0, sa(&from), &from.len);
		EXPECT(addr_eq(&from, &src[0]), "sendmmsg datagram %d source",
		       k);
		TRY(ub_check(k, in, r, n, NULL, src));
	}
	close(ep);
	close(b);
	for (int k = 0; k < 3; k++)
		close(a[k]);
	return 0;
}

static void *ub_blocked_reader(void *arg)
{
	static unsigned char buf[100];
	int fd = *(int *)arg;

	return (void *)(intptr_t)recv(fd, buf, sizeof(buf), 0);
}

static int c_udp_batch(void)
{
	int a, b;
	struct addr aa, ba;
	pthread_t t;
	void *res;
	char in[16];
	ssize_t r;

	TRY(udp_batch_run("127.0.0.1"));
	TRY(udp_batch_run("::1"));
	/* A thread blocked in recv does not hold up a MSG_DONTWAIT one. */
	TRY(a = udp_bound("127.0.0.1", &aa));
	TRY(b = udp_bound("127.0.0.1", &ba));
	EXPECT(pthread_create(&t, NULL, ub_blocked_reader, &b) == 0,
	       "pthread_create");
	sleep_ms(100);
	/* Waiting behind the blocked reader would hang: the check fails. */
	r = recv(b, in, opq(sizeof(in)), MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN, "recv(MSG_DONTWAIT): %zd", r);
	EXPECT(sendto(a, "wake", 4, 0, sa(&ba), ba.len) == 4, "sendto");
	pthread_join(t, &res);
	EXPECT((intptr_t)res == 4, "blocked reader got %ld",
	       (long)(intptr_t)res);
	close(a);
	close(b);
	return 0;
}

static int c_v4mapped(void)
{
	int l6, c4, c6, s, v, u6, u4, one = 1;
	struct addr any, la, cl, peer, to, src, u4a, u6a;
	socklen_t alen = sizeof(peer.ss);
	const struct sockaddr_in6 *p6;
	char b1[80], buf[16];
	size_t n = sizeof(buf);
	ssize_t r;

	TRY(addr_make(&any, "::", 0));
	SYS(l6 = socket(AF_INET6, SOCK_STREAM, 0));
	v = 0;
	SYS(setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v)));
	TRY(sockopt_int(l6, IPPROTO_IPV6, IPV6_V6ONLY, &v));
	EXPECT(v == 0, "IPV6_V6ONLY reads %d", v);
	SYS(setsockopt(l6, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
	SYS(bind(l6, sa(&any), any.len));
	SYS(listen(l6, 8));
	TRY(local_of(l6, &la));
	/* An IPv4 client reaches the dual-stack listener. */
	TRY(addr_make(&to, "127.0.0.1", addr_port(&la)));
	c4 = tcp_connect(&to);
	TRY(c4);
	TRY(local_of(c4, &cl));
	s = accept(l6, sa(&peer), &alen);
	SYS(s);
	peer.len = alen;
	p6 = (const struct sockaddr_in6 *)&peer.ss;
	EXPECT(peer.ss.ss_family == AF_INET6 &&
		       IN6_IS_ADDR_V4MAPPED(&p6->sin6_addr) &&
		       !memcmp(&p6->sin6_addr.s6_addr[12], "\x7f\0\0\x01", 4),
	       "peer of a v4 client: %s, expected ::ffff:127.0.0.1",
	       addr_str(&peer, b1, sizeof(b1)));
	EXPECT(addr_port(&peer) == addr_port(&cl), "peer port %d, client %d",
	       addr_port(&peer), addr_port(&cl));
	TRY(peer_of(s, &src));
	EXPECT(addr_eq(&src, &peer), "getpeername %s differs from accept()'s",
	       addr_str(&src, b1, sizeof(b1)));
	TRY(send_str(c4, "mapped-v4"));
	TRY(expect_msg(s, "mapped-v4", 3000));
	TRY(send_str(s, "back"));
	TRY(expect_msg(c4, "back", 3000));
	/* An AF_INET6 client to a v4-mapped address. */
	TRY(addr_make(&to, "::ffff:127.0.0.1", addr_port(&la)));
	c6 = tcp_connect(&to);
	TRY(c6);
	SYS(s = accept(l6, NULL, NULL));
	TRY(send_str(c6, "v6-to-mapped"));
	TRY(expect_msg(s, "v6-to-mapped", 3000));
	/* UDP, the same way. */
	SYS(u6 = socket(AF_INET6, SOCK_DGRAM, 0));
	v = 0;
	SYS(setsockopt(u6, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v)));
	SYS(bind(u6, sa(&any), any.len));
	TRY(local_of(u6, &u6a));
	TRY(u4 = udp_bound("127.0.0.1", &u4a));
	TRY(addr_make(&to, "127.0.0.1", addr_port(&u6a)));
	EXPECT(sendto(u4, "dg4", 3, 0, sa(&to), to.len) == 3, "sendto");
	r = udp_recv(u6, buf, n, 0, &src);
	TRY(r);
	p6 = (const struct sockaddr_in6 *)&src.ss;
	EXPECT(r == 3 && src.ss.ss_family == AF_INET6 &&
		       IN6_IS_ADDR_V4MAPPED(&p6->sin6_addr) &&
		       addr_port(&src) == addr_port(&u4a),
	       "UDP from v4 to a dual-stack socket: %zd bytes from %s", r,
	       addr_str(&src, b1, sizeof(b1)));
	EXPECT(sendto(u6, "re", 2, 0, sa(&src), src.len) == 2,
	       "sendto a v4-mapped address: %s", strerror(errno));
	r = udp_recv(u4, buf, n, 0, &src);
	TRY(r);
	EXPECT(r == 2 && !memcmp(buf, "re", 2), "reply to v4-mapped source");
	/* IPV6_V6ONLY=1: IPv4 does not reach it. */
	SYS(l6 = socket(AF_INET6, SOCK_STREAM, 0));
	v = 1;
	SYS(setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v)));
	SYS(bind(l6, sa(&any), any.len));
	SYS(listen(l6, 8));
	TRY(local_of(l6, &la));
	TRY(addr_make(&to, "127.0.0.1", addr_port(&la)));
	SYS(c4 = socket(AF_INET, SOCK_STREAM, 0));
	errno = 0;
	EXPECT(connect(c4, sa(&to), to.len) == -1 && errno == ECONNREFUSED,
	       "IPv4 connect to an IPV6_V6ONLY listener's port: errno %d",
	       errno);
	return 0;
}

static int c_sendmsg_recvmsg(void)
{
	int c, s, a, b;
	unsigned char mid[1000], got[1010], exp_[1010];
	char r0[3], r1[400], r2[7], r3[600];
	struct iovec out[3] = { { "head:", 5 }, { mid, 1000 }, { ":tail", 5 } };
	struct iovec in[4] = { { r0, 3 }, { r1, 400 }, { r2, 7 }, { r3, 600 } };
	struct msghdr mh = { 0 };
	struct addr aa, ba, src;
	char u0[10], u1[100], u2[200];
	unsigned char upay[200], ugot[204];
	struct iovec uout[2] = { { "udp-", 4 }, { upay, 200 } };
	struct iovec uin[3] = { { u0, 10 }, { u1, 100 }, { u2, 200 } };
	char b1[80];
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	fill(mid, 0, 1000, 10);
	memcpy(exp_, "head:", 5);
	memcpy(exp_ + 5, mid, 1000);
	memcpy(exp_ + 1005, ":tail", 5);
	mh.msg_iov = out;
	mh.msg_iovlen = 3;
	r = sendmsg(c, &mh, 0);
	EXPECT(r == 1010, "sendmsg of 3 iovecs: %zd (%s)", r, strerror(errno));
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = in;
	mh.msg_iovlen = 4;
	r = recvmsg(s, &mh, MSG_WAITALL);
	EXPECT(r == 1010, "recvmsg(MSG_WAITALL) into 4 iovecs: %zd (%s)", r,
	       strerror(errno));
	memcpy(got, r0, 3);
	memcpy(got + 3, r1, 400);
	memcpy(got + 403, r2, 7);
	memcpy(got + 410, r3, 600);
	EXPECT(!memcmp(got, exp_, 1010), "scattered data differs");
	EXPECT(mh.msg_flags == 0, "msg_flags %#x", mh.msg_flags);
	/* UDP: msg_name both ways. */
	TRY(a = udp_bound("127.0.0.1", &aa));
	TRY(b = udp_bound("127.0.0.1", &ba));
	fill(upay, 0, 200, 11);
	memset(&mh, 0, sizeof(mh));
	mh.msg_name = sa(&ba);
	mh.msg_namelen = ba.len;
	mh.msg_iov = uout;
	mh.msg_iovlen = 2;
	r = sendmsg(a, &mh, 0);
	EXPECT(r == 204, "UDP sendmsg: %zd (%s)", r, strerror(errno));
	EXPECT(wait_ev(b, POLLIN, 3000), "no datagram");
	memset(&mh, 0, sizeof(mh));
	memset(&src, 0, sizeof(src));
	mh.msg_name = sa(&src);
	mh.msg_namelen = sizeof(src.ss);
	mh.msg_iov = uin;
	mh.msg_iovlen = 3;
	r = recvmsg(b, &mh, 0);
	src.len = mh.msg_namelen;
	EXPECT(r == 204, "UDP recvmsg: %zd (%s)", r, strerror(errno));
	EXPECT(mh.msg_namelen == sizeof(struct sockaddr_in) &&
		       addr_eq(&src, &aa),
	       "UDP recvmsg source %s (namelen %u)",
	       addr_str(&src, b1, sizeof(b1)), (unsigned)mh.msg_namelen);
	memcpy(ugot, u0, 10);
	memcpy(ugot + 10, u1, 100);
	memcpy(ugot + 110, u2, 94);
	EXPECT(!memcmp(ugot, "udp-", 4) && mismatch(ugot + 4, 0, 200, 11) < 0,
	       "UDP scattered data differs");
	EXPECT(!(mh.msg_flags & MSG_TRUNC), "UDP msg_flags %#x", mh.msg_flags);
	return 0;
}

/* readv until all iovecs are full (bounded). */
static int readv_all(int fd, struct iovec *iov, int cnt, size_t total)
{
	long long end = now_ms() + 5000;
	size_t got = 0;

	while (got < total) {
		ssize_t r;
		size_t k;

		EXPECT(wait_ev(fd, POLLIN, end - now_ms()),
		       "readv: stalled at %zu of %zu", got, total);
		r = readv(fd, iov, cnt);
		EXPECT(r > 0, "readv: %zd (%s) at %zu", r, strerror(errno),
		       got);
		got += (size_t)r;
		k = (size_t)r;
		while (cnt && k >= iov->iov_len) {
			k -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt) {
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= k;
		}
	}
	return 0;
}

static int c_readv_writev(void)
{
	int c, s;
	unsigned char mid[3000], got[3008];
	struct iovec out[4] = {
		{ "one-", 4 }, { "", 0 }, { mid, 3000 }, { "-end", 4 }
	};
	struct iovec in[3] = { { got, 10 },
			       { got + 10, 2000 },
			       { got + 2010, 998 } };
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	fill(mid, 0, 3000, 12);
	r = writev(c, out, 4);
	EXPECT(r == 3008, "writev: %zd (%s)", r, strerror(errno));
	TRY(readv_all(s, in, 3, 3008));
	EXPECT(!memcmp(got, "one-", 4) && mismatch(got + 4, 0, 3000, 12) < 0 &&
		       !memcmp(got + 3004, "-end", 4),
	       "readv data differs");
	/* And back, read with writev's counterpart. */
	r = writev(s, out + 2, 2);
	EXPECT(r == 3004, "writev back: %zd", r);
	in[0].iov_base = got;
	in[0].iov_len = 3004;
	TRY(readv_all(c, in, 1, 3004));
	EXPECT(mismatch(got, 0, 3000, 12) < 0 && !memcmp(got + 3000, "-end", 4),
	       "readv back data differs");
	return 0;
}

static int c_sendfile(void)
{
	int f, c, s;
	char tmpl[] = "/tmp/nk_semantics.XXXXXX";
	unsigned char *data;
	struct bulk b = { 0 };
	off_t off;
	ssize_t r;
	size_t left;

	data = malloc(300000);
	EXPECT(data, "malloc");
	fill(data, 0, 300000, 13);
	SYS(f = mkstemp(tmpl));
	unlink(tmpl);
	EXPECT(write(f, data, 300000) == 300000, "write tmp file");
	SYS(lseek(f, 0, SEEK_SET));
	TRY(tcp_pair("127.0.0.1", &c, &s));
	b.fd = s;
	b.cap = 200000;
	b.store = malloc(b.cap);
	EXPECT(b.store, "malloc");
	TRY(bulk_start(&b, bulk_recv_fn));
	/* With an offset pointer: file position untouched, offset moved. */
	off = 1000;
	for (left = 100000; left;) {
		r = sendfile(c, f, &off, left);
		EXPECT(r > 0, "sendfile(offset %lld, %zu): %zd (%s)",
		       (long long)off, left, r, strerror(errno));
		left -= (size_t)r;
	}
	EXPECT(off == 101000, "offset after sendfile: %lld, expected 101000",
	       (long long)off);
	EXPECT(lseek(f, 0, SEEK_CUR) == 0,
	       "sendfile with an offset moved the file position to %lld",
	       (long long)lseek(f, 0, SEEK_CUR));
	/* Without: from the file position, which advances. */
	SYS(lseek(f, 5000, SEEK_SET));
	for (left = 2000; left;) {
		r = sendfile(c, f, NULL, left);
		EXPECT(r > 0, "sendfile(NULL, %zu): %zd (%s)", left, r,
		       strerror(errno));
		left -= (size_t)r;
	}
	EXPECT(lseek(f, 0, SEEK_CUR) == 7000,
	       "file position after sendfile(NULL): %lld, expected 7000",
	       (long long)lseek(f, 0, SEEK_CUR));
	/* Across the end of the file: a short count, then 0. */
	off = 299990;
	r = sendfile(c, f, &off, 100);
	EXPECT(r == 10 && off == 300000,
	       "sendfile across EOF: %zd, offset %lld", r, (long long)off);
	r = sendfile(c, f, &off, 100);
	EXPECT(r == 0, "sendfile at EOF: %zd", r);
	SYS(shutdown(c, SHUT_WR));
	TRY(bulk_join(&b));
	EXPECT(b.done == 102010, "peer received %llu of 102010 bytes",
	       (unsigned long long)b.done);
	EXPECT(!memcmp(b.store, data + 1000, 100000), "bytes from offset 1000");
	EXPECT(!memcmp(b.store + 100000, data + 5000, 2000),
	       "bytes from the file position 5000");
	EXPECT(!memcmp(b.store + 102000, data + 299990, 10), "last 10 bytes");
	return 0;
}

static int c_msg_peek(void)
{
	int c, s, a, b;
	char buf[32];
	size_t n5 = 5, n11 = 11, n6 = 6;
	long long end;
	ssize_t r;
	struct addr aa, ba, s1, s2;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	r = recv(s, buf, opq(n5), MSG_PEEK | MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN, "peek on empty socket: %zd", r);
	TRY(send_str(c, "hello world"));
	end = now_ms() + 3000;
	do {
		EXPECT(wait_ev(s, POLLIN, 3000), "no data");
		r = recv(s, buf, opq(n11), MSG_PEEK);
	} while (r >= 0 && r < 11 && now_ms() < end);
	EXPECT(r == 11 && !memcmp(buf, "hello world", 11), "peek 11: %zd", r);
	r = recv(s, buf, opq(n5), MSG_PEEK);
	EXPECT(r == 5 && !memcmp(buf, "hello", 5), "peek 5: %zd", r);
	r = recv(s, buf, opq(n6), 0);
	EXPECT(r == 6 && !memcmp(buf, "hello ", 6),
	       "recv after peeks: %zd \"%.6s\"", r, buf);
	r = recv(s, buf, opq(n11), MSG_PEEK);
	EXPECT(r == 5 && !memcmp(buf, "world", 5), "peek of the rest: %zd", r);
	r = recv(s, buf, opq(n11), 0);
	EXPECT(r == 5 && !memcmp(buf, "world", 5), "recv of the rest: %zd", r);
	r = recv(s, buf, opq(n5), MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN, "data left after the peeked bytes");
	/* UDP: peek then read the same datagram and source. */
	TRY(a = udp_bound("127.0.0.1", &aa));
	TRY(b = udp_bound("127.0.0.1", &ba));
	EXPECT(sendto(a, "dgram-peek", 10, 0, sa(&ba), ba.len) == 10, "sendto");
	r = udp_recv(b, buf, n11, MSG_PEEK, &s1);
	TRY(r);
	EXPECT(r == 10 && !memcmp(buf, "dgram-peek", 10) && addr_eq(&s1, &aa),
	       "UDP peek: %zd", r);
	memset(buf, 0, sizeof(buf));
	r = udp_recv(b, buf, n11, 0, &s2);
	TRY(r);
	EXPECT(r == 10 && !memcmp(buf, "dgram-peek", 10) && addr_eq(&s2, &aa),
	       "UDP read after peek: %zd", r);
	r = recv(b, buf, opq(n11), MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN, "UDP datagram left after read");
	return 0;
}

static int c_msg_dontwait(void)
{
	int c, s;
	char buf[16];
	size_t n = 4;
	struct timeline tl = { 0 };
	unsigned char *big, *in;
	uint64_t total = 0;
	long long t0;
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	t0 = now_ms();
	r = recv(s, buf, opq(n), MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN, "recv(MSG_DONTWAIT) on no data: %zd",
	       r);
	EXPECT(now_ms() - t0 < 1000, "MSG_DONTWAIT took %lld ms",
	       now_ms() - t0);
	TRY(send_str(c, "dw"));
	EXPECT(wait_ev(s, POLLIN, 3000), "no data");
	r = recv(s, buf, opq(n), MSG_DONTWAIT);
	EXPECT(r == 2 && !memcmp(buf, "dw", 2), "recv(MSG_DONTWAIT): %zd", r);
	EXPECT(!(fcntl(s, F_GETFL) & O_NONBLOCK),
	       "MSG_DONTWAIT set O_NONBLOCK");
	/* The socket still blocks without the flag. */
	tl_add(&tl, 200, ACT_SEND, c, "late");
	TRY(tl_start(&tl));
	t0 = now_ms();
	r = recv(s, buf, opq(n), MSG_WAITALL);
	EXPECT(r == 4 && !memcmp(buf, "late", 4), "blocking recv: %zd", r);
	EXPECT(now_ms() - t0 >= 150, "blocking recv did not wait");
	TRY(tl_join(&tl));
	/* send(MSG_DONTWAIT) on a blocking socket: fills up, then EAGAIN. */
	big = malloc(65536);
	in = malloc(65536);
	EXPECT(big && in, "malloc");
	for (;;) {
		fill(big, total, 65536, 14);
		r = send(c, big, 65536, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			break;
		EXPECT(r > 0, "send(MSG_DONTWAIT): %s", strerror(errno));
		total += (uint64_t)r;
		EXPECT(total < (256ULL << 20),
		       "256 MiB accepted without EAGAIN: no backpressure");
	}
	/* Everything that was accepted arrives, in order. */
	for (uint64_t got = 0; got < total;) {
		size_t k = total - got < 65536 ? (size_t)(total - got) : 65536;

		TRY(recv_exact(s, in, k, 5000));
		EXPECT(mismatch(in, got, k, 14) < 0, "wrong data at %llu",
		       (unsigned long long)got);
		got += k;
	}
	r = recv(s, buf, opq(n), MSG_DONTWAIT);
	EXPECT(r == -1 && errno == EAGAIN, "more than was sent arrived");
	free(big);
	free(in);
	return 0;
}

static int c_msg_waitall(void)
{
	int c, s;
	char buf[128];
	size_t n = 17, m = 100;
	struct timeline tl = { 0 }, t2 = { 0 };
	long long t0, el;
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	tl_add(&tl, 100, ACT_SEND, c, "part1-");
	tl_add(&tl, 200, ACT_SEND, c, "part2-");
	tl_add(&tl, 300, ACT_SEND, c, "part3");
	TRY(tl_start(&tl));
	t0 = now_ms();
	r = recv(s, buf, opq(n), MSG_WAITALL);
	el = now_ms() - t0;
	TRY(tl_join(&tl));
	EXPECT(r == 17 && !memcmp(buf, "part1-part2-part3", 17),
	       "recv(17, MSG_WAITALL) gave %zd (%s)", r, strerror(errno));
	EXPECT(el >= 250, "MSG_WAITALL returned after %lld ms", el);
	/* The peer's FIN ends the wait with what there is. */
	tl_add(&t2, 100, ACT_SEND, c, "only");
	tl_add(&t2, 200, ACT_SHUTWR, c, NULL);
	TRY(tl_start(&t2));
	r = recv(s, buf, opq(m), MSG_WAITALL);
	TRY(tl_join(&t2));
	EXPECT(r == 4 && !memcmp(buf, "only", 4),
	       "recv(100, MSG_WAITALL) before FIN gave %zd (%s)", r,
	       strerror(errno));
	TRY(expect_eof(s, 3000));
	return 0;
}

static int c_shutdown_wr(void)
{
	int c, s, u;
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	TRY(send_str(c, "request"));
	SYS(shutdown(c, SHUT_WR));
	TRY(expect_msg(s, "request", 3000));
	TRY(expect_eof(s, 3000));
	/* Half-close: the other direction still works. */
	TRY(send_str(s, "response"));
	TRY(expect_msg(c, "response", 3000));
	errno = 0;
	r = send(c, "x", 1, MSG_NOSIGNAL);
	EXPECT(r == -1 && errno == EPIPE,
	       "send after SHUT_WR: %zd (errno %d), expected EPIPE", r, errno);
	TRY(set_handler(SIGPIPE, 0));
	errno = 0;
	r = send(c, "x", 1, 0);
	EXPECT(r == -1 && errno == EPIPE, "send after SHUT_WR: %zd (errno %d)",
	       r, errno);
	EXPECT(sig_count == 1, "SIGPIPE delivered %d times, expected once",
	       (int)sig_count);
	close(s);
	TRY(expect_eof(c, 3000));
	SYS(u = socket(AF_INET, SOCK_STREAM, 0));
	errno = 0;
	EXPECT(shutdown(u, SHUT_WR) == -1 && errno == ENOTCONN,
	       "shutdown of an unconnected socket: errno %d", errno);
	return 0;
}

static int c_sockname(void)
{
	int u, v, l, c, s, d;
	struct addr a, b, la, cl, cp, sl, sp;
	struct sockaddr_in tiny;
	socklen_t len;
	char b1[80], b2[80];

	SYS(u = socket(AF_INET, SOCK_STREAM, 0));
	TRY(local_of(u, &a));
	EXPECT(a.ss.ss_family == AF_INET && addr_is_ip(&a, "0.0.0.0") &&
		       addr_port(&a) == 0 &&
		       a.len == sizeof(struct sockaddr_in),
	       "unbound AF_INET socket: %s (len %u)",
	       addr_str(&a, b1, sizeof(b1)), (unsigned)a.len);
	errno = 0;
	EXPECT(peer_of(u, &b) < 0 && errno == ENOTCONN,
	       "getpeername unconnected: errno %d", errno);
	SYS(v = socket(AF_INET6, SOCK_DGRAM, 0));
	TRY(local_of(v, &a));
	EXPECT(a.ss.ss_family == AF_INET6 && addr_is_ip(&a, "::") &&
		       a.len == sizeof(struct sockaddr_in6),
	       "unbound AF_INET6 socket: %s (len %u)",
	       addr_str(&a, b1, sizeof(b1)), (unsigned)a.len);
	TRY(addr_make(&a, "127.0.0.1", 0));
	SYS(bind(u, sa(&a), a.len));
	TRY(local_of(u, &b));
	EXPECT(addr_is_ip(&b, "127.0.0.1") && addr_port(&b) != 0,
	       "after bind(127.0.0.1:0): %s", addr_str(&b, b1, sizeof(b1)));
	/* A short buffer: truncated, and the real length reported. */
	len = 4;
	memset(&tiny, 0xee, sizeof(tiny));
	SYS(getsockname(u, (struct sockaddr *)&tiny, &len));
	EXPECT(len == sizeof(struct sockaddr_in),
	       "getsockname with a 4-byte buffer reported length %u",
	       (unsigned)len);
	EXPECT(tiny.sin_family == AF_INET &&
		       tiny.sin_port == ((struct sockaddr_in *)&b.ss)->sin_port,
	       "truncated getsockname: first 4 bytes wrong");
	EXPECT(tiny.sin_addr.s_addr == 0xeeeeeeeeu,
	       "getsockname wrote past the given length");
	/* Both ends of a connection agree (v6). */
	l = tcp_listen("::1", &la);
	TRY(l);
	errno = 0;
	EXPECT(peer_of(l, &cp) < 0 && errno == ENOTCONN,
	       "getpeername on a listener: errno %d", errno);
	c = tcp_connect(&la);
	TRY(c);
	SYS(s = accept(l, NULL, NULL));
	TRY(local_of(c, &cl));
	TRY(peer_of(c, &cp));
	TRY(local_of(s, &sl));
	TRY(peer_of(s, &sp));
	EXPECT(addr_eq(&cl, &sp) && addr_eq(&cp, &sl) && addr_eq(&sl, &la),
	       "ends disagree: client %s -> %s", addr_str(&cl, b1, sizeof(b1)),
	       addr_str(&cp, b2, sizeof(b2)));
	EXPECT(cl.len == sizeof(struct sockaddr_in6), "v6 name length %u",
	       (unsigned)cl.len);
	/* Connected UDP. */
	TRY(d = udp_bound("127.0.0.1", &a));
	SYS(connect(d, sa(&b), b.len));
	TRY(peer_of(d, &cp));
	EXPECT(addr_eq(&cp, &b), "UDP getpeername %s, connected to %s",
	       addr_str(&cp, b1, sizeof(b1)), addr_str(&b, b2, sizeof(b2)));
	return 0;
}

static int c_fionread(void)
{
	int c, s, a, b, v = -1, q = -1;
	unsigned char buf[1300];
	size_t n = 234;
	long long end;
	struct addr aa, ba;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(ioctl(s, FIONREAD, &v));
	EXPECT(v == 0, "FIONREAD %d before data", v);
	fill(buf, 0, 1234, 15);
	TRY(send_all(c, buf, 1234));
	end = now_ms() + 3000;
	do {
		SYS(ioctl(s, FIONREAD, &v));
		EXPECT(v <= 1234, "FIONREAD %d, only 1234 were sent", v);
		if (v < 1234)
			sleep_ms(5);
	} while (v < 1234 && now_ms() < end);
	EXPECT(v == 1234, "FIONREAD %d, expected 1234", v);
	SYS(ioctl(s, SIOCINQ, &q));
	EXPECT(q == 1234, "SIOCINQ %d, expected 1234", q);
	EXPECT(recv(s, buf, opq(n), 0) == 234, "recv 234");
	SYS(ioctl(s, FIONREAD, &v));
	EXPECT(v == 1000, "FIONREAD %d after reading 234 of 1234", v);
	TRY(recv_exact(s, buf, 1000, 3000));
	EXPECT(mismatch(buf, 234, 1000, 15) < 0, "data");
	SYS(ioctl(s, FIONREAD, &v));
	EXPECT(v == 0, "FIONREAD %d after reading everything", v);
	/* UDP: the size of the next datagram. */
	TRY(a = udp_bound("127.0.0.1", &aa));
	TRY(b = udp_bound("127.0.0.1", &ba));
	EXPECT(sendto(a, buf, 100, 0, sa(&ba), ba.len) == 100, "sendto");
	EXPECT(sendto(a, buf, 200, 0, sa(&ba), ba.len) == 200, "sendto");
	EXPECT(wait_ev(b, POLLIN, 3000), "no datagram");
	SYS(ioctl(b, FIONREAD, &v));
	EXPECT(v == 100, "UDP FIONREAD %d, expected 100 (first datagram)", v);
	EXPECT(recv(b, buf, opq(sizeof(buf)), 0) == 100, "first datagram");
	end = now_ms() + 3000;
	for (;;) {
		SYS(ioctl(b, FIONREAD, &v));
		if (v != 0 || now_ms() > end)
			break;
		sleep_ms(5);
	}
	EXPECT(v == 200, "UDP FIONREAD %d, expected 200", v);
	return 0;
}

static int c_sockopt_basic(void)
{
	static const struct {
		int fam, type, proto;
	} kinds[] = {
		{ AF_INET, SOCK_STREAM, IPPROTO_TCP },
		{ AF_INET6, SOCK_STREAM, IPPROTO_TCP },
		{ AF_INET, SOCK_DGRAM, IPPROTO_UDP },
		{ AF_INET6, SOCK_DGRAM, IPPROTO_UDP },
	};
	int fd, v, i, one = 1, zero = 0, big = 65536;
	struct linger lg = { 1, 5 }, lgot;
	socklen_t len;
	struct addr la;

	for (i = 0; i < 4; i++) {
		SYS(fd = socket(kinds[i].fam, kinds[i].type, 0));
		TRY(sockopt_int(fd, SOL_SOCKET, SO_TYPE, &v));
		EXPECT(v == kinds[i].type, "SO_TYPE %d, expected %d", v,
		       kinds[i].type);
		TRY(sockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &v));
		EXPECT(v == kinds[i].fam, "SO_DOMAIN %d, expected %d", v,
		       kinds[i].fam);
		TRY(sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL, &v));
		EXPECT(v == kinds[i].proto, "SO_PROTOCOL %d, expected %d", v,
		       kinds[i].proto);
		TRY(sockopt_int(fd, SOL_SOCKET, SO_ERROR, &v));
		EXPECT(v == 0, "SO_ERROR %d on a fresh socket", v);
		TRY(sockopt_int(fd, SOL_SOCKET, SO_RCVBUF, &v));
		EXPECT(v > 0, "SO_RCVBUF %d", v);
		TRY(sockopt_int(fd, SOL_SOCKET, SO_SNDBUF, &v));
		EXPECT(v > 0, "SO_SNDBUF %d", v);
		close(fd);
	}
	SYS(fd = socket(AF_INET, SOCK_STREAM, 0));
	TRY(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN, &v));
	EXPECT(v == 0, "SO_ACCEPTCONN %d before listen", v);
	TRY(sockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, &v));
	EXPECT(v == 0, "SO_REUSEADDR %d by default", v);
	SYS(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
	TRY(sockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, &v));
	EXPECT(v == 1, "SO_REUSEADDR %d after setting 1", v);
	TRY(sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, &v));
	EXPECT(v == 0, "TCP_NODELAY %d by default", v);
	SYS(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)));
	TRY(sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, &v));
	EXPECT(v == 1, "TCP_NODELAY %d after setting 1", v);
	SYS(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &zero, sizeof(zero)));
	TRY(sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, &v));
	EXPECT(v == 0, "TCP_NODELAY %d after setting 0", v);
	TRY(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, &v));
	EXPECT(v == 0, "SO_KEEPALIVE %d by default", v);
	SYS(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)));
	TRY(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, &v));
	EXPECT(v == 1, "SO_KEEPALIVE %d after setting 1", v);
	SYS(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)));
	TRY(sockopt_int(fd, SOL_SOCKET, SO_RCVBUF, &v));
	EXPECT(v >= big, "SO_RCVBUF %d after setting %d", v, big);
	SYS(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)));
	TRY(sockopt_int(fd, SOL_SOCKET, SO_SNDBUF, &v));
	EXPECT(v >= big, "SO_SNDBUF %d after setting %d", v, big);
	len = sizeof(lgot);
	SYS(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lgot, &len));
	EXPECT(len == sizeof(lgot) && lgot.l_onoff == 0,
	       "SO_LINGER by default: on=%d", lgot.l_onoff);
	SYS(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	len = sizeof(lgot);
	SYS(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lgot, &len));
	EXPECT(lgot.l_onoff == 1 && lgot.l_linger == 5,
	       "SO_LINGER reads back {%d,%d}, set {1,5}", lgot.l_onoff,
	       lgot.l_linger);
	TRY(addr_make(&la, "127.0.0.1", 0));
	SYS(bind(fd, sa(&la), la.len));
	SYS(listen(fd, 4));
	TRY(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN, &v));
	EXPECT(v == 1, "SO_ACCEPTCONN %d after listen", v);
	return 0;
}

static int c_sockopt_linger(void)
{
	int c, s, ev;
	struct linger lg = { 1, 0 };
	char buf[8];
	size_t n = 8;
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	TRY(send_str(c, "before"));
	TRY(expect_msg(s, "before", 3000));
	SYS(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	close(c);
	/* l_linger 0: close resets the connection. */
	ev = wait_ev(s, POLLIN, 3000);
	EXPECT(ev, "the peer saw nothing within 3 s of the close");
	r = recv(s, buf, opq(n), 0);
	EXPECT(r == -1 && errno == ECONNRESET,
	       "recv on the reset connection: %zd (%s), expected ECONNRESET", r,
	       r < 0 ? strerror(errno) : "EOF or data");
	EXPECT(ev & (POLLERR | POLLHUP),
	       "the reset connection polled as revents %#x; the kernel reports POLLIN|POLLERR|POLLHUP (0x19)",
	       ev);
	return 0;
}

/* ------------------------------------------------- name resolution */

static int ai_has(struct addrinfo *ai, const char *ip, int port)
{
	struct addr a;

	for (; ai; ai = ai->ai_next) {
		memset(&a, 0, sizeof(a));
		memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
		a.len = ai->ai_addrlen;
		if (addr_is_ip(&a, ip) && (port < 0 || addr_port(&a) == port))
			return 1;
	}
	return 0;
}

static int he_has(struct hostent *he, const char *ip)
{
	struct in_addr want;
	int i;

	if (!he || he->h_addrtype != AF_INET ||
	    inet_pton(AF_INET, ip, &want) != 1)
		return 0;
	for (i = 0; he->h_addr_list[i]; i++)
		if (!memcmp(he->h_addr_list[i], &want, 4))
			return 1;
	return 0;
}

static int c_resolve_localhost(void)
{
	struct addrinfo hints = { 0 }, *ai;
	struct addr la;
	char port[16];
	int rc, l, c, s;

	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo("localhost", "4242", &hints, &ai);
	EXPECT(rc == 0, "getaddrinfo(localhost, AF_INET): %s",
	       gai_strerror(rc));
	EXPECT(ai_has(ai, "127.0.0.1", 4242),
	       "getaddrinfo(localhost) lacks 127.0.0.1:4242");
	EXPECT(ai->ai_socktype == SOCK_STREAM && ai->ai_protocol == IPPROTO_TCP,
	       "socktype %d protocol %d", ai->ai_socktype, ai->ai_protocol);
	freeaddrinfo(ai);
	hints.ai_family = AF_UNSPEC;
	rc = getaddrinfo("localhost", NULL, &hints, &ai);
	EXPECT(rc == 0, "getaddrinfo(localhost, AF_UNSPEC): %s",
	       gai_strerror(rc));
	EXPECT(ai_has(ai, "127.0.0.1", -1), "AF_UNSPEC lacks 127.0.0.1");
	freeaddrinfo(ai);
	EXPECT(he_has(gethostbyname("localhost"), "127.0.0.1"),
	       "gethostbyname(localhost) lacks 127.0.0.1");
	hints.ai_flags = AI_NUMERICHOST;
	rc = getaddrinfo("::1", "80", &hints, &ai);
	EXPECT(rc == 0 && ai_has(ai, "::1", 80), "numeric ::1: %s",
	       gai_strerror(rc));
	freeaddrinfo(ai);
	/* The answer is usable: connect to our own listener by name. */
	l = tcp_listen("127.0.0.1", &la);
	TRY(l);
	snprintf(port, sizeof(port), "%d", addr_port(&la));
	hints.ai_flags = 0;
	hints.ai_family = AF_INET;
	rc = getaddrinfo("localhost", port, &hints, &ai);
	EXPECT(rc == 0, "getaddrinfo(localhost, %s): %s", port,
	       gai_strerror(rc));
	SYS(c = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol));
	SYS(connect(c, ai->ai_addr, ai->ai_addrlen));
	freeaddrinfo(ai);
	SYS(s = accept(l, NULL, NULL));
	TRY(send_str(c, "by-name"));
	TRY(expect_msg(s, "by-name", 3000));
	return 0;
}

static int c_resolve_name(void)
{
	struct addrinfo hints = { 0 }, *ai;
	struct hostent he, *res = NULL;
	char tmp[2048];
	int rc, herr = 0;

	if (!opt_name[0])
		SKIP("no --resolve NAME=ADDR given");
	hints.ai_family = AF_INET;
	rc = getaddrinfo(opt_name, "80", &hints, &ai);
	EXPECT(rc == 0, "getaddrinfo(%s, AF_INET): %s", opt_name,
	       gai_strerror(rc));
	EXPECT(ai_has(ai, opt_name_addr, 80), "getaddrinfo(%s) lacks %s",
	       opt_name, opt_name_addr);
	freeaddrinfo(ai);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	rc = getaddrinfo(opt_name, NULL, &hints, &ai);
	EXPECT(rc == 0, "getaddrinfo(%s, AF_UNSPEC): %s", opt_name,
	       gai_strerror(rc));
	EXPECT(ai_has(ai, opt_name_addr, -1), "AF_UNSPEC lacks %s",
	       opt_name_addr);
	freeaddrinfo(ai);
	EXPECT(he_has(gethostbyname(opt_name), opt_name_addr),
	       "gethostbyname(%s) lacks %s", opt_name, opt_name_addr);
	rc = gethostbyname_r(opt_name, &he, tmp, sizeof(tmp), &res, &herr);
	EXPECT(rc == 0 && res && he_has(res, opt_name_addr),
	       "gethostbyname_r(%s): rc %d h_errno %d", opt_name, rc, herr);
	hints.ai_family = AF_INET;
	hints.ai_socktype = 0;
	rc = getaddrinfo("nk-no-such-name.invalid", NULL, &hints, &ai);
	EXPECT(rc != 0, "a name that does not exist resolved");
	return 0;
}

/* ---------------------------------------------- non-network fds */

static int c_unix_local(void)
{
	int sv[2], dg[2], p[2], l, c, s, v, got;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	char buf[64], cbuf[CMSG_SPACE(sizeof(int))], name[64];
	struct iovec iov = { "F", 1 };
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	socklen_t unlen;
	struct sockaddr_un who;
	socklen_t wlen = sizeof(who);
	FILE *f;
	char line[512];
	int found = 0;

	SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	EXPECT(is_sock(sv[0]), "socketpair end not S_ISSOCK");
	EXPECT(write(sv[0], "unix", 4) == 4, "write");
	EXPECT(read(sv[1], buf, 4) == 4 && !memcmp(buf, "unix", 4), "read");
	SYS(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &len));
	EXPECT(cr.pid == getpid(), "SO_PEERCRED pid %d, we are %d", (int)cr.pid,
	       (int)getpid());
	TRY(sockopt_int(sv[0], SOL_SOCKET, SO_DOMAIN, &v));
	EXPECT(v == AF_UNIX, "SO_DOMAIN %d", v);
	/* SCM_RIGHTS: only a real local AF_UNIX socket can do this. */
	SYS(pipe(p));
	EXPECT(write(p[1], "via-fd", 6) == 6, "pipe write");
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
	EXPECT(sendmsg(sv[0], &mh, 0) == 1, "sendmsg SCM_RIGHTS: %s",
	       strerror(errno));
	memset(cbuf, 0, sizeof(cbuf));
	iov.iov_base = buf;
	mh.msg_controllen = sizeof(cbuf);
	EXPECT(recvmsg(sv[1], &mh, 0) == 1, "recvmsg SCM_RIGHTS: %s",
	       strerror(errno));
	cm = CMSG_FIRSTHDR(&mh);
	EXPECT(cm && cm->cmsg_type == SCM_RIGHTS, "no SCM_RIGHTS received");
	memcpy(&got, CMSG_DATA(cm), sizeof(int));
	EXPECT(read(got, buf, 6) == 6 && !memcmp(buf, "via-fd", 6),
	       "read through the passed fd");
	/* Datagram boundaries. */
	SYS(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg));
	EXPECT(send(dg[0], "a", 1, 0) == 1 && send(dg[0], "bb", 2, 0) == 2,
	       "unix dgram send");
	EXPECT(recv(dg[1], buf, opq(sizeof(buf)), 0) == 1 &&
		       recv(dg[1], buf, opq(sizeof(buf)), 0) == 2,
	       "unix dgram boundaries");
	/* An abstract listener, visible in this process's own network
	 * namespace (/proc/self/net/unix): it stayed local. */
	snprintf(name, sizeof(name), "nk_semantics.%d", (int)getpid());
	memcpy(un.sun_path + 1, name, strlen(name));
	unlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			    strlen(name));
	SYS(l = socket(AF_UNIX, SOCK_STREAM, 0));
	SYS(bind(l, (struct sockaddr *)&un, unlen));
	SYS(listen(l, 4));
	SYS(c = socket(AF_UNIX, SOCK_STREAM, 0));
	SYS(connect(c, (struct sockaddr *)&un, unlen));
	SYS(s = accept(l, NULL, NULL));
	EXPECT(write(c, "abstract", 8) == 8, "write");
	EXPECT(read(s, buf, 8) == 8 && !memcmp(buf, "abstract", 8), "read");
	SYS(getsockname(l, (struct sockaddr *)&who, &wlen));
	EXPECT(who.sun_family == AF_UNIX && wlen == unlen,
	       "AF_UNIX getsockname: family %d len %u", who.sun_family,
	       (unsigned)wlen);
	f = fopen("/proc/self/net/unix", "r");
	EXPECT(f, "/proc/self/net/unix: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strstr(line, name))
			found = 1;
	fclose(f);
	EXPECT(found, "@%s not in this namespace's /proc/net/unix", name);
	return 0;
}

static int c_pipe_file(void)
{
	int p[2], f, ev;
	char tmpl[] = "/tmp/nk_semantics.XXXXXX";
	unsigned char data[10000], buf[10000];
	size_t n = 4000, k = 4096;
	struct iovec iov[2];
	struct stat st;
	off_t off;
	ssize_t r;

	SYS(pipe(p));
	EXPECT(write(p[1], "pipe", 4) == 4, "pipe write");
	EXPECT(read(p[0], buf, 4) == 4 && !memcmp(buf, "pipe", 4), "pipe read");
	iov[0].iov_base = "vec-";
	iov[0].iov_len = 4;
	iov[1].iov_base = "tor";
	iov[1].iov_len = 3;
	EXPECT(writev(p[1], iov, 2) == 7, "pipe writev");
	iov[0].iov_base = buf;
	iov[0].iov_len = 2;
	iov[1].iov_base = buf + 2;
	iov[1].iov_len = 5;
	EXPECT(readv(p[0], iov, 2) == 7 && !memcmp(buf, "vec-tor", 7),
	       "pipe readv");
	EXPECT((fcntl(p[1], F_GETFL) & O_ACCMODE) == O_WRONLY,
	       "pipe write end F_GETFL");
	SYS(fcntl(p[0], F_SETFL, O_NONBLOCK));
	r = read(p[0], buf, opq(n));
	EXPECT(r == -1 && errno == EAGAIN, "empty non-blocking pipe: %zd", r);
	/* A regular file. */
	fill(data, 0, sizeof(data), 16);
	SYS(f = mkstemp(tmpl));
	unlink(tmpl);
	EXPECT(write(f, data, sizeof(data)) == (ssize_t)sizeof(data),
	       "file write");
	EXPECT(fstat(f, &st) == 0 && S_ISREG(st.st_mode) &&
		       st.st_size == (off_t)sizeof(data),
	       "fstat of the file");
	SYS(lseek(f, 0, SEEK_SET));
	EXPECT(read(f, buf, opq(n)) == (ssize_t)n && !memcmp(buf, data, n),
	       "file read");
	EXPECT(pread(f, buf, 100, 5000) == 100 &&
		       !memcmp(buf, data + 5000, 100),
	       "file pread");
	EXPECT(lseek(f, 0, SEEK_CUR) == (off_t)n, "file position after read");
	/* sendfile to a pipe (not a socket): libc's. */
	off = 2000;
	r = sendfile(p[1], f, &off, k);
	EXPECT(r == (ssize_t)k && off == 2000 + (off_t)k,
	       "sendfile file->pipe: %zd (%s)", r, strerror(errno));
	ev = wait_ev(p[0], POLLIN, 1000);
	EXPECT(ev & POLLIN, "pipe not readable after sendfile");
	EXPECT(read(p[0], buf, opq(k)) == (ssize_t)k &&
		       !memcmp(buf, data + 2000, k),
	       "data sent into the pipe");
	close(p[1]);
	EXPECT(read(p[0], buf, opq(n)) == 0,
	       "pipe EOF after closing the write end");
	return 0;
}

/* The send path's checks (causes C, D, F of issue 7). */
#include "nk_semantics_send.c"
/* ----------------------------------------------- issue 7 conformance */

/* recv's answer as an errno, 0 for end of stream, or -1 for data. */
static int recv_errno(int fd, int flags)
{
	char c;
	ssize_t r;

	errno = 0;
	r = recv(fd, &c, 1, flags);
	return r < 0 ? errno : r == 0 ? 0 : -1;
}

/*
 * A non-blocking recv on a stream that is not connected is ENOTCONN, not
 * EAGAIN (ssl.wrap_socket probes with recv(1)); only a connecting or
 * connected one says EAGAIN, after SHUT_RD it is end of stream, and
 * unconnected UDP says EAGAIN.
 */
static int c_recv_notconn(void)
{
	struct addr a, to;
	int u, l, c, s, x, e;

	SYS(u = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	e = recv_errno(u, 0);
	EXPECT(e == ENOTCONN, "unconnected non-blocking recv: errno %d", e);
	e = recv_errno(u, MSG_DONTWAIT);
	EXPECT(e == ENOTCONN, "unconnected MSG_DONTWAIT recv: errno %d", e);
	errno = 0;
	EXPECT(accept(u, NULL, NULL) < 0 && errno == EINVAL,
	       "non-blocking accept on a non-listener: errno %d", errno);
	TRY(l = tcp_listen("127.0.0.1", &a));
	SYS(fcntl(l, F_SETFL, O_NONBLOCK));
	e = recv_errno(l, 0);
	EXPECT(e == ENOTCONN, "listener non-blocking recv: errno %d", e);
	TRY(c = tcp_connect(&a));
	TRY(wait_ev(l, POLLIN, 3000));
	SYS(s = accept(l, NULL, NULL));
	e = recv_errno(c, MSG_DONTWAIT);
	EXPECT(e == EAGAIN, "connected, nothing sent: errno %d", e);
	e = recv_errno(s, MSG_DONTWAIT);
	EXPECT(e == EAGAIN, "accepted, nothing sent: errno %d", e);
	SYS(shutdown(c, SHUT_RD));
	e = recv_errno(c, MSG_DONTWAIT);
	EXPECT(e == 0, "after SHUT_RD: %d, expected end of stream", e);
	SYS(x = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
	e = recv_errno(x, 0);
	EXPECT(e == EAGAIN, "unconnected UDP: errno %d", e);
	close(x);
	if (opt_unreach) {
		TRY(addr_make(&to, opt_unreach, 9));
		SYS(x = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
		errno = 0;
		EXPECT(connect(x, sa(&to), to.len) < 0 && errno == EINPROGRESS,
		       "connect to %s: errno %d", opt_unreach, errno);
		e = recv_errno(x, 0);
		EXPECT(e == EAGAIN, "connecting: errno %d", e);
		close(x);
	}
	close(u);
	close(l);
	close(c);
	close(s);
	return 0;
}

/*
 * shutdown(SHUT_WR) on a non-blocking socket with a full send queue
 * returns at once (the reader is this same thread, as in asyncio), and
 * the FIN still comes after every byte.
 */
static int c_shutdown_queued(void)
{
	static unsigned char buf[65536];
	unsigned long long sent = 0, got = 0;
	long long end;
	int c, s;
	ssize_t r;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	SYS(fcntl(c, F_SETFL, O_NONBLOCK));
	for (int i = 0; i < 1024; i++) {
		fill(buf, sent, sizeof(buf), 7);
		r = send(c, buf, sizeof(buf), MSG_NOSIGNAL);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r < 0)
			FAIL("send: %s", strerror(errno));
		sent += (unsigned long long)r;
	}
	EXPECT(sent > 0, "nothing queued");
	SYS(shutdown(c, SHUT_WR)); /* hangs here if it waits for the peer */
	end = now_ms() + 8000;
	for (;;) {
		r = recv(s, buf, sizeof(buf), 0);
		if (r < 0)
			FAIL("recv after %llu bytes: %s", got, strerror(errno));
		if (r == 0)
			break;
		if (mismatch(buf, got, (size_t)r, 7) >= 0)
			FAIL("byte %llu differs", got);
		got += (unsigned long long)r;
		EXPECT(now_ms() < end, "only %llu of %llu bytes", got, sent);
	}
	EXPECT(got == sent, "%llu bytes before the FIN, %llu sent", got, sent);
	close(c);
	close(s);
	return 0;
}

/*
 * Edge-triggered readiness from the process's own sends is there when it
 * looks (CPython's test_epoll test_control_and_wait): on loopback the
 * kernel delivers during send(), so after both ends send one epoll_wait
 * reports EPOLLIN|EPOLLOUT on both, never a lone EPOLLOUT.
 */
static int c_epoll_edge_send(void)
{
	for (int round = 0; round < 20; round++) {
		struct epoll_event ev[4];
		uint32_t want = EPOLLIN | EPOLLOUT, got[2] = { 0, 0 };
		int c, s, ep, n;

		TRY(tcp_pair("127.0.0.1", &c, &s));
		SYS(ep = epoll_create1(EPOLL_CLOEXEC));
		TRY(ep_add(ep, s, EPOLLIN | EPOLLOUT | EPOLLET));
		TRY(ep_add(ep, c, EPOLLIN | EPOLLOUT | EPOLLET));
		SYS(n = epoll_wait(ep, ev, 4, 1000));
		EXPECT(n == 2, "round %d: %d events at first, expected 2",
		       round, n);
		SYS(n = epoll_wait(ep, ev, 4, 0));
		EXPECT(n == 0, "round %d: %d events with no new edge", round,
		       n);
		TRY(send_str(c, "Hello!"));
		TRY(send_str(s, "world!!!"));
		SYS(n = epoll_wait(ep, ev, 4, 1000));
		for (int i = 0; i < n; i++)
			got[ev[i].data.fd == c] |= ev[i].events;
		EXPECT(n == 2 && got[0] == want && got[1] == want,
		       "round %d: %d events, server %#x client %#x, expected "
		       "%#x on both",
		       round, n, got[0], got[1], want);
		close(ep);
		close(c);
		close(s);
	}
	return 0;
}

/* A plain 3-byte datagram "anc" to `to`. */
static int send_str_to(int fd, struct addr *to)
{
	if (sendto(fd, "anc", 3, 0, sa(to), to->len) != 3)
		FAIL("sendto: %s", strerror(errno));
	return 0;
}

/* Sends "anc" to `to` with one int control message (level, type, val). */
static int send_cmsg_int(int fd, struct addr *to, int level, int type, int val)
{
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { "anc", 3 };
	struct msghdr m = { .msg_name = sa(to),
			    .msg_namelen = to->len,
			    .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.b,
			    .msg_controllen = sizeof(u.b) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	memset(&u, 0, sizeof(u));
	c->cmsg_level = level;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &val, sizeof(val));
	return sendmsg(fd, &m, 0) == 3 ? 0 : -errno;
}

/* recvmsg with room for room bytes of control messages. */
static int recv_cmsgs(int fd, size_t room, struct msghdr *m, uint64_t *ctl,
		      char *data)
{
	static struct iovec iov;

	iov.iov_base = data;
	iov.iov_len = 16;
	memset(m, 0, sizeof(*m));
	m->msg_iov = &iov;
	m->msg_iovlen = 1;
	m->msg_control = room ? ctl : NULL;
	m->msg_controllen = room;
	if (wait_ev(fd, POLLIN, 3000) <= 0)
		FAIL("no datagram within 3 s");
	if (recvmsg(fd, m, 0) != 3)
		FAIL("recvmsg: %s", strerror(errno));
	return 0;
}

/*
 * RFC 3542 ancillary data over UDPv6 (and its IPv4 twins), as CPython's
 * test_socket RFC3542AncillaryTest uses it: IPV6_RECVHOPLIMIT and
 * IPV6_RECVTCLASS are accepted, recvmsg returns the kernel's control
 * messages, cut with MSG_CTRUNC to a short buffer, and sendmsg applies an
 * IPV6_HOPLIMIT control message and refuses a bad one with EINVAL.
 */
static int c_udp_cmsg(void)
{
	uint64_t ctl[32];
	char data[16];
	struct msghdr m;
	struct cmsghdr *c;
	struct addr a;
	int r, s, one = 1, v, e;

	TRY(r = udp_bound("::1", &a));
	SYS(s = socket(AF_INET6, SOCK_DGRAM, 0));
	SYS(setsockopt(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one)));
	SYS(setsockopt(r, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one)));
	e = send_cmsg_int(s, &a, IPPROTO_IPV6, IPV6_HOPLIMIT, 7);
	EXPECT(!e, "sendmsg with IPV6_HOPLIMIT: %s", strerror(-e));
	TRY(recv_cmsgs(r, sizeof(ctl), &m, ctl, data));
	EXPECT(!(m.msg_flags & MSG_CTRUNC), "MSG_CTRUNC with room");
	c = CMSG_FIRSTHDR(&m);
	EXPECT(c && c->cmsg_level == IPPROTO_IPV6 &&
		       c->cmsg_type == IPV6_HOPLIMIT &&
		       c->cmsg_len == CMSG_LEN(sizeof(int)),
	       "first control message is not IPV6_HOPLIMIT");
	memcpy(&v, CMSG_DATA(c), sizeof(v));
	EXPECT(v == 7, "hop limit %d, sent with 7", v);
	c = CMSG_NXTHDR(&m, c);
	EXPECT(c && c->cmsg_type == IPV6_TCLASS, "no IPV6_TCLASS after it");
	EXPECT(!CMSG_NXTHDR(&m, c), "more than two control messages");
	EXPECT(m.msg_controllen == 2 * CMSG_SPACE(sizeof(int)),
	       "msg_controllen %zu", (size_t)m.msg_controllen);
	/* Room for one and a bit: the second is cut, MSG_CTRUNC. */
	TRY(send_str_to(s, &a));
	TRY(recv_cmsgs(r, CMSG_SPACE(sizeof(int)) + sizeof(struct cmsghdr) + 1,
		       &m, ctl, data));
	EXPECT(m.msg_flags & MSG_CTRUNC, "no MSG_CTRUNC on a short buffer");
	EXPECT(m.msg_controllen ==
		       CMSG_SPACE(sizeof(int)) + sizeof(struct cmsghdr) + 1,
	       "short buffer: msg_controllen %zu", (size_t)m.msg_controllen);
	/* No buffer at all: MSG_CTRUNC alone. */
	TRY(send_str_to(s, &a));
	TRY(recv_cmsgs(r, 0, &m, ctl, data));
	EXPECT((m.msg_flags & MSG_CTRUNC) && !m.msg_controllen,
	       "no buffer: flags %#x controllen %zu", m.msg_flags,
	       (size_t)m.msg_controllen);
	e = send_cmsg_int(s, &a, IPPROTO_IPV6, IPV6_HOPLIMIT, 300);
	EXPECT(e == -EINVAL, "IPV6_HOPLIMIT 300: %s, expected EINVAL",
	       strerror(-e));
	close(r);
	close(s);
	/* IPv4: IP_RECVTTL and an IP_TTL control message. */
	TRY(r = udp_bound("127.0.0.1", &a));
	SYS(s = socket(AF_INET, SOCK_DGRAM, 0));
	SYS(setsockopt(r, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one)));
	e = send_cmsg_int(s, &a, IPPROTO_IP, IP_TTL, 9);
	EXPECT(!e, "sendmsg with IP_TTL: %s", strerror(-e));
	TRY(recv_cmsgs(r, sizeof(ctl), &m, ctl, data));
	c = CMSG_FIRSTHDR(&m);
	EXPECT(c && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL,
	       "no IP_TTL control message");
	memcpy(&v, CMSG_DATA(c), sizeof(v));
	EXPECT(v == 9, "TTL %d, sent with 9", v);
	close(r);
	close(s);
	return 0;
}

/* ------------------------------------------------------------- runner */

struct check {
	const char *name;
	int (*fn)(void);
	const char *what;
};

static const struct check checks[] = {
	{ "fd_lowest", c_fd_lowest,
	  "socket()/accept() return the lowest free fd; holes; double close" },
	{ "fd_fstat_select", c_fd_fstat_select,
	  "S_ISSOCK; FD_SET/select with fds past 100" },
	{ "select_mixed", c_select_mixed,
	  "select over a socket, pipe, eventfd and timerfd" },
	{ "poll_mixed", c_poll_mixed, "poll over the same mixed set" },
	{ "epoll_mixed", c_epoll_mixed, "epoll over the same mixed set" },
	{ "epoll_level", c_epoll_level, "level-triggered epoll" },
	{ "epoll_edge", c_epoll_edge,
	  "EPOLLET: one event per arrival, none after a partial read" },
	{ "epoll_oneshot", c_epoll_oneshot, "EPOLLONESHOT and rearm" },
	{ "epoll_rdhup", c_epoll_rdhup, "EPOLLRDHUP after the peer closes" },
	{ "poll_hup", c_poll_hup, "POLLHUP once both directions are shut" },
	{ "epoll_threads", c_epoll_threads,
	  "an epoll set shared by two threads" },
	{ "dup_dup2_dup3", c_dup_dup2_dup3,
	  "dup, dup2 (onto a pipe; a file onto a socket), dup3 O_CLOEXEC" },
	{ "fcntl_dupfd", c_fcntl_dupfd, "F_DUPFD, F_DUPFD_CLOEXEC" },
	{ "fcntl_flags", c_fcntl_flags,
	  "F_GETFL/F_SETFL O_NONBLOCK, FIONBIO, F_GETFD/F_SETFD, accept4" },
	{ "close_refs", c_close_refs, "EOF only after the last reference" },
	{ "fork_shared", c_fork_shared,
	  "parent and child use one inherited connection" },
	{ "fork_readahead", c_fork_readahead,
	  "bytes received before fork are the child's to read" },
	{ "fork_accept_workers", c_fork_accept_workers,
	  "a listener accepted in 2 forked epoll workers" },
	{ "accept_emfile", c_accept_emfile,
	  "EMFILE from accept and socket; the connection stays queued" },
	{ "accept_queue", c_accept_queue,
	  "backlog in arrival order, exact readiness, reset on listener close" },
	{ "exec_inherit", c_exec_inherit,
	  "fork+exec keeps non-CLOEXEC sockets, drops CLOEXEC ones" },
	{ "vfork_exec", c_vfork_exec, "the same with vfork+exec" },
	{ "tcp_blocking", c_tcp_blocking, "1 MiB with blocking read/write" },
	{ "tcp_nonblocking", c_tcp_nonblocking,
	  "EAGAIN, POLLOUT backpressure, no loss" },
	{ "connect_nonblock", c_connect_nonblock,
	  "EINPROGRESS, EPOLLOUT, SO_ERROR 0, EISCONN" },
	{ "connect_pending", c_connect_pending,
	  "not writable while connecting; EALREADY" },
	{ "connect_refused", c_connect_refused,
	  "ECONNREFUSED blocking and through SO_ERROR, IPv4 and IPv6" },
	{ "eintr_norestart", c_eintr_norestart,
	  "recv + handler without SA_RESTART: EINTR" },
	{ "eintr_restart", c_eintr_restart,
	  "recv + SA_RESTART handler: resumes, gets the data" },
	{ "rcvtimeo", c_rcvtimeo, "SO_RCVTIMEO on recv and accept" },
	{ "tcp_v4", c_tcp_v4, "TCP over IPv4, names of both ends" },
	{ "tcp_v6", c_tcp_v6, "TCP over IPv6, names of both ends" },
	{ "udp_v4", c_udp_v4,
	  "UDP over IPv4: sources, boundaries, 65507 bytes" },
	{ "udp_v6", c_udp_v6, "UDP over IPv6" },
	{ "udp_trunc", c_udp_trunc, "MSG_TRUNC on UDP" },
	{ "udp_batch", c_udp_batch,
	  "80 queued datagrams, 3 sources: every recv call, peek, cut, poll" },
	{ "v4mapped", c_v4mapped,
	  "IPV6_V6ONLY=0 dual stack, v4-mapped addresses, V6ONLY=1" },
	{ "sendmsg_recvmsg", c_sendmsg_recvmsg, "several iovecs, TCP and UDP" },
	{ "readv_writev", c_readv_writev, "readv/writev on a socket" },
	{ "sendfile", c_sendfile,
	  "sendfile with an offset, from the file position, across EOF" },
	{ "msg_peek", c_msg_peek, "MSG_PEEK on TCP and UDP" },
	{ "msg_dontwait", c_msg_dontwait,
	  "MSG_DONTWAIT on a blocking socket, both directions" },
	{ "msg_waitall", c_msg_waitall, "MSG_WAITALL across segments and FIN" },
	{ "shutdown_wr", c_shutdown_wr, "half-close, EPIPE, SIGPIPE" },
	{ "sockname", c_sockname, "getsockname/getpeername" },
	{ "fionread", c_fionread, "FIONREAD/SIOCINQ on TCP and UDP" },
	{ "sockopt_basic", c_sockopt_basic, "the common socket options" },
	{ "sockopt_linger", c_sockopt_linger, "SO_LINGER {1,0} resets" },
	{ "resolve_localhost", c_resolve_localhost,
	  "getaddrinfo/gethostbyname of localhost" },
	{ "resolve_name", c_resolve_name, "a name from --resolve" },
	{ "unix_local", c_unix_local, "AF_UNIX stays local (SCM_RIGHTS)" },
	{ "pipe_file", c_pipe_file, "pipes and regular files untouched" },
	{ "send_destaddr", c_send_destaddr,
	  "EDESTADDRREQ from send on an unconnected UDP socket" },
	{ "send_reset", c_send_reset,
	  "a peer's reset comes back from a send or recv, then EPIPE" },
	{ "send_sndbuf", c_send_sndbuf,
	  "small SO_SNDBUF: a mid-transfer reset shows soon" },
	{ "send_bufs", c_send_bufs,
	  "sends stuck in flight leave accept and recv a buffer" },
	{ "send_pollout", c_send_pollout,
	  "no POLLOUT while send says EAGAIN; SO_SNDTIMEO" },
	{ "send_small_bulk", c_send_small_bulk,
	  "8 KiB sendfile calls to a slow reader in the same process" },
	{ "recv_notconn", c_recv_notconn,
	  "recv on an unconnected stream: ENOTCONN, not EAGAIN" },
	{ "shutdown_queued", c_shutdown_queued,
	  "SHUT_WR with a full send queue returns, FIN after the data" },
	{ "epoll_edge_send", c_epoll_edge_send,
	  "EPOLLET: both ends readable right after both send" },
	{ "udp_cmsg", c_udp_cmsg,
	  "RFC 3542 ancillary data over UDP, MSG_CTRUNC" },
};

#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

/* Runs one check in its own process group; 'P', 'F' or 'S'. */
static int run_check(const struct check *c, long long limit_ms, char *why,
		     size_t whylen, char *note, size_t notelen)
{
	int p[2], st = 0, exited = 0;
	char msg[sizeof(g_detail) + sizeof(g_note) + 8];
	size_t got = 0;
	long long end = now_ms() + limit_ms, exit_end = 0;
	pid_t pid;

	why[0] = note[0] = 0;
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		return 'F';
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return 'F';
	}
	if (pid == 0) {
		int r, len;

		setpgid(0, 0);
		close(p[0]);
		r = c->fn();
		len = snprintf(msg, sizeof(msg), "%c%s\n%s",
			       r == 0  ? 'P'
			       : r > 0 ? 'S'
				       : 'F',
			       g_detail, g_note);
		if (write(p[1], msg, (size_t)len) < 0)
			_exit(3);
		exit(r < 0 ? 1 : 0);
	}
	setpgid(pid, pid);
	close(p[1]);
	for (;;) {
		struct pollfd pf = { p[0], POLLIN, 0 };

		if (!got && poll(&pf, 1, 20) > 0) {
			ssize_t r = read(p[0], msg, sizeof(msg) - 1);

			if (r > 0) {
				got = (size_t)r;
				msg[got] = 0;
				exit_end = now_ms() + EXIT_GRACE_MS;
			}
		} else if (got) {
			sleep_ms(10);
		}
		if (!exited && waitpid(pid, &st, WNOHANG) == pid)
			exited = 1;
		if (exited && got)
			break;
		if (exited && !got) {
			/* It may have written just before exiting. */
			ssize_t r = read(p[0], msg, sizeof(msg) - 1);

			if (r > 0) {
				got = (size_t)r;
				msg[got] = 0;
				break;
			}
			snprintf(why, whylen,
				 "check process died without a result (%s %d)",
				 WIFSIGNALED(st) ? "signal" : "exit status",
				 WIFSIGNALED(st) ? WTERMSIG(st)
						 : WEXITSTATUS(st));
			break;
		}
		if (!got && now_ms() > end) {
			snprintf(why, whylen,
				 "no result after %lld ms: hung, killed",
				 limit_ms);
			break;
		}
		if (got && now_ms() > exit_end) {
			char *nl = strchr(msg, '\n');

			if (nl)
				*nl = 0;
			snprintf(
				why, whylen,
				"reported \"%.300s\" but did not exit within %d ms",
				msg[0] == 'P' ? "pass" : msg + 1,
				EXIT_GRACE_MS);
			break;
		}
	}
	close(p[0]);
	/* Whatever is left of the check's processes goes. */
	kill(-pid, SIGKILL);
	if (!exited) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	if (why[0])
		return 'F';
	{
		char *nl = strchr(msg + 1, '\n');

		if (nl) {
			*nl = 0;
			snprintf(note, notelen, "%s", nl + 1);
		}
		snprintf(why, whylen, "%s", msg + 1);
	}
	return msg[0];
}

static void usage(void)
{
	fprintf(stderr,
		"usage: nk_semantics [--addr4 A] [--addr6 A] [--unreach A] "
		"[--resolve NAME=ADDR] [--list] [CHECK...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int i, list = 0, npass = 0, nfail = 0, nskip = 0;
	unsigned j;
	unsigned char sel[NCHECKS];
	int any = 0;
	long long t0;

	if (argc >= 2 && !strcmp(argv[1], "--exec-child"))
		return exec_child_main(argc - 2, argv + 2);
	memset(sel, 0, sizeof(sel));
	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--list")) {
			list = 1;
		} else if (!strcmp(o, "--addr4") && i + 1 < argc) {
			opt_addr4 = argv[++i];
		} else if (!strcmp(o, "--addr6") && i + 1 < argc) {
			opt_addr6 = argv[++i];
		} else if (!strcmp(o, "--unreach") && i + 1 < argc) {
			opt_unreach = argv[++i];
		} else if (!strcmp(o, "--resolve") && i + 1 < argc) {
			const char *eq = strchr(argv[++i], '=');

			if (!eq || eq == argv[i] ||
			    (size_t)(eq - argv[i]) >= sizeof(opt_name))
				usage();
			snprintf(opt_name, sizeof(opt_name), "%.*s",
				 (int)(eq - argv[i]), argv[i]);
			snprintf(opt_name_addr, sizeof(opt_name_addr), "%s",
				 eq + 1);
		} else if (o[0] == '-') {
			usage();
		} else {
			for (j = 0; j < NCHECKS; j++)
				if (!strcmp(o, checks[j].name))
					break;
			if (j == NCHECKS) {
				fprintf(stderr, "nk_semantics: no check %s\n",
					o);
				return 2;
			}
			sel[j] = 1;
			any = 1;
		}
	}
	if (list) {
		for (j = 0; j < NCHECKS; j++)
			printf("%-20s %s\n", checks[j].name, checks[j].what);
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_DFL);
	t0 = now_ms();
	for (j = 0; j < NCHECKS; j++) {
		char why[800], note[256];
		long long left = BUDGET_MS - (now_ms() - t0);
		int r;

		if (any && !sel[j])
			continue;
		if (left < 1000) {
			printf("FAIL %s: not run, the %d s budget is used up\n",
			       checks[j].name, BUDGET_MS / 1000);
			nfail++;
			continue;
		}
		r = run_check(&checks[j],
			      left < CHECK_TIMEOUT_MS ? left : CHECK_TIMEOUT_MS,
			      why, sizeof(why), note, sizeof(note));
		if (r == 'P') {
			printf("PASS %s\n", checks[j].name);
			if (note[0])
				printf("# %s: %s\n", checks[j].name, note);
			npass++;
		} else if (r == 'S') {
			printf("SKIP %s: %s\n", checks[j].name, why);
			nskip++;
		} else {
			printf("FAIL %s: %s\n", checks[j].name, why);
			nfail++;
		}
	}
	if (nskip)
		printf("%d skipped\n", nskip);
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
