/* SPDX-License-Identifier: MIT */
/*
 * nk_rawguest: a raw client of the netkernel guest ABI (docs/abi.md), with
 * no shim in between. It attaches with HELLO, maps the region from
 * WELCOME's descriptor and drives the first queue set by hand.
 *
 *   nk_rawguest [--socket PATH] [--guest NAME] nop-bench N [BATCH]
 *       N NOP round trips (BATCH per doorbell, default 1); prints the rate.
 *   nk_rawguest [--socket PATH] [--guest NAME] nop-rate RATE SECS [BATCH]
 *       BATCH NOPs (default 1) RATE times a second (0: as fast as the
 *       round trips go) for SECS seconds; waits for completions asleep.
 *   nk_rawguest [--socket PATH] [--guest NAME] linger-close HOST PORT SECS
 *       connects to HOST:PORT (IPv4; a peer that never reads), fills the
 *       connection with non-blocking SENDs, sets SO_LINGER {1, SECS} and
 *       closes; reports how long CLOSE and a NOP after it took.
 *   nk_rawguest pipe-bench N
 *       reference without nkd: N one-byte round trips between two
 *       processes over a pair of pipes.
 *   nk_rawguest [--socket PATH] [--guest NAME] fuzz SEED COUNT [SECS]
 *       COUNT hostile actions (random opcodes, flags, reserved bytes,
 *       foreign and stale handles, buffers outside the area, SQ tail and CQ
 *       head jumps, header scribbles, malformed control messages), for at
 *       most SECS seconds (default 30). Survives being disconnected and
 *       attaches again. Every address it puts in an entry is loopback.
 *       SIGTERM ends the run early (with its RESULT line).
 *   nk_rawguest [--socket PATH] attach-many PREFIX N
 *       N guests in sequence, each under a name of its own (PREFIX-i): attach,
 *       open an AF_INET stream socket on the guest's NSM, close it, detach.
 *       Counts what was refused (nkd running out of guest ids).
 *
 *   nk_rawguest [...] spin nop|inval|socket|connect SECS [MAX [DEPTH [HOST PORT]]]
 *       keeps DEPTH entries (default half the SQ) in flight for SECS
 *       seconds or MAX entries, never sleeping: NOPs, refused SOCKETs,
 *       SOCKET+CLOSE or SOCKET+CONNECT+CLOSE cycles (a connect storm).
 *
 *   nk_rawguest [...] thief N GENS [HANDLE...]
 *       RECV/SEND/ACCEPT/GETPEERNAME/CLOSE on handles it does not hold
 *       (indices 1..N x generations 1..GENS, and HANDLEs); counts what
 *       nkd let through (tenancy_handles.sh).
 *   nk_rawguest [...] tokens [SECS] | token TOKEN
 *       hand-over tokens presented by processes they were not made for.
 *   nk_rawguest [...] ph-old | ph-hammer SECS NSOCK
 *       the old guest-made PLACEHOLDER; 3 threads flooding placeholder
 *       fds while nkd mirrors readiness (tenancy_placeholder.sh).
 *       NK_RAWGUEST_ABI=1 speaks to an old nkd.
 *
 * Each mode prints one line "RESULT mode=... key=value ...". Exit status:
 * 0 done, 1 error (nop-bench: a wrong completion), 3 nkd unreachable.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netkernel/abi.h"
#include "netkernel/ctl.h"
#include "netkernel/guest_ring.h"
#include "netkernel/ring.h"

struct rg {
	int ctl; /* control socket */
	int bell; /* doorbell eventfd */
	uint8_t *reg;
	size_t size;
	struct nk_region_hdr *hdr;
	struct nk_gring ring; /* queue set 0 */
	uint8_t *data;
	uint32_t buf_size, nr_bufs;
	uint64_t seq;
	int pool; /* placeholder pool channel (ABI 2), -1 if none */
	int welcome_status; /* of the last HELLO */
	uint32_t nr_handles; /* inherited, from WELCOME */
};

/* HELLO with NK_HELLO_F_INHERIT and this token when non-zero. */
static uint64_t inherit_tok;

static const char *sock_path = NK_CTL_DEFAULT_PATH;
static const char *guest_name = "rawguest";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ attach */

static void rg_detach(struct rg *g)
{
	if (g->reg)
		munmap(g->reg, g->size);
	if (g->ctl >= 0)
		close(g->ctl);
	if (g->bell >= 0)
		close(g->bell);
	if (g->pool >= 0)
		close(g->pool);
	memset(g, 0, sizeof(*g));
	g->ctl = g->bell = g->pool = -1;
}

static int in_region(const struct rg *g, uint64_t off, uint64_t len)
{
	return off <= g->size && len <= g->size - off;
}

/* Returns 0, or -errno (-ECONNREFUSED etc. when nkd is not there). */
static int rg_attach(struct rg *g)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct nk_ctl_hello hello;
	static uint8_t buf[NK_CTL_MAX_MSG];
	union {
		struct cmsghdr c;
		uint8_t b[CMSG_SPACE(8 * sizeof(int))];
	} cm;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cm.b,
			     .msg_controllen = sizeof(cm.b) };
	struct nk_ctl_welcome *w = (void *)buf;
	struct cmsghdr *c;
	int fds[8], nfds = 0, err, i;
	ssize_t n;
	const struct nk_qset_desc *q;

	memset(g, 0, sizeof(*g));
	g->ctl = g->bell = g->pool = -1;
	g->ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (g->ctl < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (connect(g->ctl, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		rg_detach(g);
		return err;
	}
	memset(&hello, 0, sizeof(hello));
	hello.hdr.type = NK_CTL_HELLO;
	hello.hdr.len = sizeof(hello);
	hello.hdr.seq = ++g->seq;
	hello.abi_version = getenv("NK_RAWGUEST_ABI")
				    ? (uint32_t)atoi(getenv("NK_RAWGUEST_ABI"))
				    : NK_ABI_VERSION;
	hello.nr_qsets = 1;
	if (inherit_tok) {
		hello.flags = NK_HELLO_F_INHERIT;
		hello.inherit_token = inherit_tok;
	}
	snprintf(hello.guest, sizeof(hello.guest), "%s", guest_name);
	if (send(g->ctl, &hello, sizeof(hello), MSG_NOSIGNAL) < 0) {
		err = -errno;
		rg_detach(g);
		return err;
	}
	n = recvmsg(g->ctl, &mh, MSG_CMSG_CLOEXEC);
	if (n < (ssize_t)sizeof(*w)) {
		rg_detach(g);
		return n < 0 ? -errno : -EPROTO;
	}
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

		for (i = 0; i < k && nfds < 8; i++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int),
			       sizeof(int));
	}
	g->welcome_status = w->hdr.type == NK_CTL_WELCOME ? w->status : -EPROTO;
	if (w->hdr.type != NK_CTL_WELCOME || w->status != 0 || nfds < 2) {
		err = w->status ? w->status : -EPROTO;
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		rg_detach(g);
		return err;
	}
	for (i = 3; i < nfds; i++)
		close(fds[i]);
	if (nfds >= 3)
		g->pool = fds[2];
	g->nr_handles = w->nr_handles;
	g->bell = fds[1];
	g->size = w->region_size;
	g->reg = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
		      0);
	close(fds[0]);
	if (g->reg == MAP_FAILED) {
		g->reg = NULL;
		err = -errno;
		rg_detach(g);
		return err;
	}
	g->hdr = (void *)g->reg;
	q = &g->hdr->qsets[0];
	/* Trust nothing: check what we are about to dereference. */
	if (g->hdr->magic != NK_REGION_MAGIC ||
	    g->hdr->abi_version != hello.abi_version || g->hdr->nr_qsets < 1 ||
	    nk_gring__init(&g->ring, g->reg, g->size, q) ||
	    !in_region(g, g->hdr->data_off,
		       (uint64_t)g->hdr->nr_bufs * g->hdr->buf_size)) {
		fprintf(stderr, "nk_rawguest: bad region header\n");
		rg_detach(g);
		return -EPROTO;
	}
	g->data = g->reg + g->hdr->data_off;
	g->buf_size = g->hdr->buf_size;
	g->nr_bufs = g->hdr->nr_bufs;
	return 0;
}

/* ------------------------------------------------------------ rings */

/* After an index was stored behind the ring object's back. */
static void rg_ring_bell(struct rg *g)
{
	uint64_t one = 1;

	/* Publish tail before reading the consumer's NEED_WAKEUP. */
	nk_ring_fence();
	if (__atomic_load_n(&g->ring.sqi->flags, __ATOMIC_RELAXED) &
	    NK_RING_NEED_WAKEUP) {
		if (write(g->bell, &one, sizeof(one)) < 0) {
			/* nkd gone or eventfd full: the caller notices */
		}
	}
}

/* Queue one SQE without publishing; -EAGAIN when the ring is full. */
static int rg_queue(struct rg *g, const struct nk_sqe *e)
{
	uint32_t i;

	if (!nk_sq__reserve(&g->ring, 1, &i))
		return -EAGAIN;
	memcpy(nk_sq__entry(&g->ring, i), e, sizeof(*e));
	return 0;
}

static void rg_publish(struct rg *g)
{
	uint64_t one = 1;

	if (nk_sq__submit(&g->ring) && write(g->bell, &one, sizeof(one)) < 0) {
		/* nkd gone or eventfd full: the caller notices */
	}
}

/* Take one CQE if there is one; returns 1 if *out was filled. */
static int rg_peek(struct rg *g, struct nk_cqe *out)
{
	uint32_t i;

	/* A corrupt tail reads as empty: the caller's timeout notices. */
	if (nk_cq__peek(&g->ring, 1, &i) != 1)
		return 0;
	memcpy(out, nk_cq__entry(&g->ring, i), sizeof(*out));
	/* Slot read before we hand it back. */
	nk_cq__release(&g->ring, 1);
	return 1;
}

static int futex_wait(uint32_t *addr, uint32_t val, int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	return (int)syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

/*
 * Wait for a CQE: spin ~spin_us, then set NEED_WAKEUP and sleep on the CQ
 * tail, up to timeout_ms in total. Returns 1 with *out filled, 0 on
 * timeout.
 */
static int rg_wait(struct rg *g, struct nk_cqe *out, int timeout_ms,
		   int spin_us)
{
	double t0 = now_s(), deadline = t0 + timeout_ms / 1000.0;

	for (;;) {
		if (rg_peek(g, out))
			return 1;
		double t = now_s();

		if (t >= deadline)
			return 0;
		if (t - t0 < spin_us / 1e6) {
			__builtin_ia32_pause();
			continue;
		}
		struct nk_ring_idx *cqi = g->ring.cqi;
		uint32_t seen = nk_ring_load_acquire(&cqi->tail);

		__atomic_fetch_or(&cqi->flags, NK_RING_NEED_WAKEUP,
				  __ATOMIC_RELAXED);
		/* Flag set before the re-check, or we sleep past a CQE. */
		nk_ring_fence();
		if (seen == g->ring.cq_head) {
			int ms = (int)((deadline - t) * 1000) + 1;

			futex_wait(&cqi->tail, seen, ms > 50 ? 50 : ms);
		}
		__atomic_fetch_and(&cqi->flags, ~NK_RING_NEED_WAKEUP,
				   __ATOMIC_RELAXED);
	}
}

/* ------------------------------------------------------------ nop-bench */

static int attach_or_die(struct rg *g)
{
	int err = rg_attach(g);

	if (err) {
		fprintf(stderr, "nk_rawguest: cannot attach to %s: %s\n",
			sock_path, strerror(-err));
		exit(3);
	}
	return 0;
}

/* A NOP entry to repeat, and the batch clamped to 1..the SQ size. */
static int nop_prep(const struct rg *g, int batch, struct nk_sqe *e)
{
	if (batch < 1)
		batch = 1;
	if ((uint32_t)batch > g->ring.sq_n)
		batch = (int)g->ring.sq_n;
	memset(e, 0, sizeof(*e));
	e->opcode = NK_OP_NOP;
	return batch;
}

static int nop_bench(long n, int batch)
{
	struct rg g;
	struct nk_sqe e;
	struct nk_cqe c;
	long done = 0, i;
	double t0, t;

	attach_or_die(&g);
	batch = nop_prep(&g, batch, &e);
	t0 = now_s();
	while (done < n) {
		int k = (int)(n - done < batch ? n - done : batch);

		for (i = 0; i < k; i++) {
			e.user_data = (uint64_t)(done + i);
			if (rg_queue(&g, &e)) {
				fprintf(stderr, "nk_rawguest: SQ full\n");
				return 1;
			}
		}
		rg_publish(&g);
		for (i = 0; i < k; i++) {
			if (!rg_wait(&g, &c, 5000, 50)) {
				fprintf(stderr,
					"nk_rawguest: no CQE within 5 s "
					"(op %ld)\n",
					done + i);
				return 1;
			}
			if (c.res != 0) {
				fprintf(stderr,
					"nk_rawguest: NOP failed: res=%d "
					"flags=%#x\n",
					c.res, c.flags);
				return 1;
			}
		}
		done += k;
	}
	t = now_s() - t0;
	printf("RESULT mode=nop-bench ops=%ld batch=%d secs=%.3f "
	       "ops_per_s=%.0f avg_us=%.3f\n",
	       n, batch, t, n / t, t / n * 1e6 * batch);
	rg_detach(&g);
	return 0;
}

/* Submit one entry and wait for its completion; 0 or -ETIMEDOUT. */
static int rg_call(struct rg *g, struct nk_sqe *e, struct nk_cqe *c,
		   int timeout_ms)
{
	static uint64_t ud = 1u << 30;
	double deadline = now_s() + timeout_ms / 1000.0;

	e->user_data = ++ud;
	if (rg_queue(g, e))
		return -EAGAIN;
	rg_publish(g);
	for (;;) {
		int left = (int)((deadline - now_s()) * 1000);

		if (left <= 0 || !rg_wait(g, c, left, 20))
			return -ETIMEDOUT;
		if (c->user_data == ud)
			return 0;
	}
}

static int nop_rate(double rate, double secs, int batch)
{
	struct rg g;
	struct nk_sqe e;
	struct nk_cqe c;
	double t0, next, t;
	long ops = 0, late = 0;

	attach_or_die(&g);
	batch = nop_prep(&g, batch, &e);
	t0 = next = now_s();
	while ((t = now_s()) - t0 < secs) {
		if (rate > 0 && t < next) {
			struct timespec ts = { 0, (long)((next - t) * 1e9) };

			nanosleep(&ts, NULL);
			continue;
		}
		next += rate > 0 ? 1.0 / rate : 0;
		for (int i = 0; i < batch; i++) {
			e.user_data = (uint64_t)ops + (uint64_t)i;
			if (rg_queue(&g, &e))
				break;
		}
		rg_publish(&g);
		for (int i = 0; i < batch; i++) {
			if (!rg_wait(&g, &c, 5000, 0)) {
				fprintf(stderr, "nk_rawguest: no CQE in 5 s\n");
				return 1;
			}
			if (c.res != 0) {
				fprintf(stderr, "nk_rawguest: NOP res=%d\n",
					c.res);
				return 1;
			}
		}
		if (now_s() - t > 0.1)
			late++;
		ops += batch;
	}
	t = now_s() - t0;
	printf("RESULT mode=nop-rate ops=%ld secs=%.3f ops_per_s=%.0f "
	       "slow=%ld\n",
	       ops, t, ops / t, late);
	rg_detach(&g);
	return 0;
}

static int linger_close(const char *host, int port, int secs)
{
	struct rg g;
	struct nk_sqe e;
	struct nk_cqe c;
	struct nk_sockaddr *a;
	struct linger lg = { 1, secs }, got;
	uint32_t h;
	long sent = 0;
	double t;
	int i;

	attach_or_die(&g);
	memset(&e, 0, sizeof(e));
	e.opcode = NK_OP_SOCKET;
	e.sock.domain = AF_INET;
	e.sock.type = SOCK_STREAM;
	if (rg_call(&g, &e, &c, 5000) || c.res <= 0) {
		fprintf(stderr, "nk_rawguest: SOCKET failed (%d)\n", c.res);
		return 1;
	}
	h = (uint32_t)c.res;
	memset(&e, 0, sizeof(e));
	e.opcode = NK_OP_CONNECT;
	e.handle = h;
	a = &e.addr;
	a->family = AF_INET;
	a->port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, a->addr) != 1)
		return 2;
	if (rg_call(&g, &e, &c, 10000) || c.res) {
		fprintf(stderr, "nk_rawguest: CONNECT failed (%d)\n", c.res);
		return 1;
	}
	/* Fill the socket and the peer's window: non-blocking, so nothing
	 * waits in nkd and the close below finds unsent data. */
	memset(g.data, 'x', g.buf_size);
	for (i = 0; i < 4096; i++) {
		memset(&e, 0, sizeof(e));
		e.opcode = NK_OP_SEND;
		e.flags = NK_SQE_F_NONBLOCK;
		e.handle = h;
		e.io.buf_off = 0;
		e.io.buf_len = g.buf_size;
		if (rg_call(&g, &e, &c, 5000)) {
			fprintf(stderr, "nk_rawguest: SEND timed out\n");
			return 1;
		}
		if (c.res == -EAGAIN)
			break;
		if (c.res < 0) {
			fprintf(stderr, "nk_rawguest: SEND: %d\n", c.res);
			return 1;
		}
		sent += c.res;
	}
	memset(&e, 0, sizeof(e));
	e.opcode = NK_OP_SETSOCKOPT;
	e.handle = h;
	e.opt.level = SOL_SOCKET;
	e.opt.optname = SO_LINGER;
	e.io.buf_off = 0;
	e.io.buf_len = sizeof(lg);
	memcpy(g.data, &lg, sizeof(lg));
	if (rg_call(&g, &e, &c, 5000) || c.res) {
		fprintf(stderr, "nk_rawguest: SO_LINGER: %d\n", c.res);
		return 1;
	}
	e.opcode = NK_OP_GETSOCKOPT;
	memset(g.data, 0, sizeof(got));
	if (rg_call(&g, &e, &c, 5000) || c.res < (int)sizeof(got)) {
		fprintf(stderr, "nk_rawguest: get SO_LINGER: %d\n", c.res);
		return 1;
	}
	memcpy(&got, g.data, sizeof(got));
	memset(&e, 0, sizeof(e));
	e.opcode = NK_OP_CLOSE;
	e.handle = h;
	t = now_s();
	if (rg_call(&g, &e, &c, 60000)) {
		fprintf(stderr, "nk_rawguest: CLOSE timed out\n");
		return 1;
	}
	memset(&e, 0, sizeof(e));
	e.opcode = NK_OP_NOP;
	if (rg_call(&g, &e, &c, 60000)) {
		fprintf(stderr, "nk_rawguest: NOP timed out\n");
		return 1;
	}
	printf("RESULT mode=linger-close sent=%ld linger=%d,%d "
	       "close_nop_ms=%.1f\n",
	       sent, got.l_onoff, got.l_linger, (now_s() - t) * 1000);
	rg_detach(&g);
	return 0;
}

static int pipe_bench(long n)
{
	int a[2], b[2];
	char x = 'x';
	long i;
	double t0, t;
	pid_t pid;

	if (pipe(a) || pipe(b))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		for (;;) {
			if (read(a[0], &x, 1) != 1)
				_exit(0);
			if (write(b[1], &x, 1) != 1)
				_exit(1);
		}
	}
	close(a[0]);
	close(b[1]);
	t0 = now_s();
	for (i = 0; i < n; i++) {
		if (write(a[1], &x, 1) != 1 || read(b[0], &x, 1) != 1)
			return 1;
	}
	t = now_s() - t0;
	close(a[1]);
	waitpid(pid, NULL, 0);
	printf("RESULT mode=pipe-bench ops=%ld batch=1 secs=%.3f "
	       "ops_per_s=%.0f avg_us=%.3f\n",
	       n, t, n / t, t / n * 1e6);
	return 0;
}

/* ------------------------------------------------------------ fuzz */

static uint64_t rs;

static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static uint32_t rndn(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

#define MAXH 64
struct fz {
	struct rg g;
	uint32_t live[MAXH], nlive;
	uint32_t stale[MAXH], nstale;
	uint64_t actions, sqes, cqes, errs, abuse, disconnects, attaches, jumps,
		scribbles, ctl_garbage, sigbus, stalls;
	uint32_t inflight;
	double last_progress;
	int calm; /* this connection: entries only, no ring/ctl breakage */
};

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t stop_req;

static void on_stop(int sig)
{
	(void)sig;
	stop_req = 1;
}

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

static uint32_t pick_handle(struct fz *f)
{
	switch (rndn(6)) {
	case 0:
		return 0;
	case 1:
		return f->nlive ? f->live[rndn(f->nlive)] : 1;
	case 2:
		return f->nstale ? f->stale[rndn(f->nstale)] : 2;
	case 3:
		return (uint32_t)rnd();
	default: /* small numbers: likely another guest's handles */
		return 1 + rndn(256);
	}
}

/* Loopback or nonsense, never a routable address. */
static void pick_addr(struct nk_sockaddr *a)
{
	memset(a, 0, sizeof(*a));
	switch (rndn(5)) {
	case 0:
		a->family = AF_INET;
		a->addr[0] = 127;
		a->addr[3] = 1;
		break;
	case 1:
		a->family = AF_INET6;
		a->addr[15] = 1;
		break;
	case 2:
		a->family = (uint16_t)rnd(); /* garbage family */
		if (a->family == AF_INET || a->family == AF_INET6)
			a->family = 0xbeef;
		for (int i = 0; i < 16; i++)
			a->addr[i] = (uint8_t)rnd();
		break;
	case 3:
		a->family = AF_INET;
		a->addr[0] = 127;
		a->addr[3] = 1;
		a->resv = (uint32_t)rnd() | 1; /* non-zero reserved */
		break;
	default:
		break; /* family 0 */
	}
	a->port = (uint16_t)rnd();
}

static void pick_buf(struct fz *f, struct nk_sqe *e)
{
	struct rg *g = &f->g;
	uint64_t area = (uint64_t)g->nr_bufs * g->buf_size;

	switch (rndn(7)) {
	case 0: /* a plausible buffer */
		e->io.buf_off = rndn(g->nr_bufs) * g->buf_size;
		e->io.buf_len = 1 + rndn(g->buf_size);
		break;
	case 1: /* past the end of the area */
		e->io.buf_off = (uint32_t)(area + rndn(1u << 20));
		e->io.buf_len = 1 + rndn(4096);
		break;
	case 2: /* straddles two buffers */
		e->io.buf_off =
			(1 + rndn(g->nr_bufs > 1 ? g->nr_bufs - 1 : 1)) *
				g->buf_size -
			8;
		e->io.buf_len = 64;
		break;
	case 3: /* wrap-around length */
		e->io.buf_off = rndn(g->nr_bufs) * g->buf_size + 16;
		e->io.buf_len = 0xffffffffu - 8;
		break;
	case 4:
		e->io.buf_off = (uint32_t)rnd();
		e->io.buf_len = (uint32_t)rnd();
		break;
	case 5: /* same buffer twice in a row: ownership */
		e->io.buf_off = 0;
		e->io.buf_len = 128;
		break;
	default:
		e->io.buf_off = rndn(g->nr_bufs) * g->buf_size;
		e->io.buf_len = 0;
		break;
	}
	e->io.msg_flags = rndn(3) ? 0 : (uint32_t)rnd();
	e->io.timeout_ms = rndn(2) ? 10 : (uint32_t)rnd();
}

static void fz_drain(struct fz *f)
{
	struct nk_cqe c;

	while (rg_peek(&f->g, &c)) {
		f->cqes++;
		if (f->inflight)
			f->inflight--;
		f->last_progress = now_s();
		if (c.res < 0)
			f->errs++;
		if (c.flags & NK_CQE_F_ABUSE)
			f->abuse++;
		/* A new socket from SOCKET or ACCEPT: remember it. */
		if (c.res > 0 && c.user_data >> 56 == 0xa5 && f->nlive < MAXH)
			f->live[f->nlive++] = (uint32_t)c.res;
	}
}

/* Has nkd dropped us? */
static int fz_dead(struct fz *f)
{
	struct pollfd p = { f->g.ctl, POLLIN, 0 };
	char b[64];

	if (__atomic_load_n(&f->g.hdr->host_flags, __ATOMIC_RELAXED) &
	    NK_HOST_F_DEAD)
		return 1;
	if (poll(&p, 1, 0) > 0) {
		if (p.revents & (POLLHUP | POLLERR))
			return 1;
		if ((p.revents & POLLIN) &&
		    recv(f->g.ctl, b, sizeof(b), MSG_DONTWAIT) == 0)
			return 1;
	}
	return 0;
}

static int fz_reattach(struct fz *f, double deadline)
{
	int err;

	rg_detach(&f->g);
	f->nlive = 0;
	f->inflight = 0;
	for (;;) {
		err = rg_attach(&f->g);
		if (!err) {
			f->calm = rndn(4) != 0;
			f->attaches++;
			f->last_progress = now_s();
			return 0;
		}
		if (now_s() > deadline) {
			fprintf(stderr, "nk_rawguest: cannot attach: %s\n",
				strerror(-err));
			return -1;
		}
		usleep(100 * 1000);
	}
}

static void fz_submit(struct fz *f, struct nk_sqe *e)
{
	if (rg_queue(&f->g, e) == 0) {
		f->sqes++;
		f->inflight++;
		rg_publish(&f->g);
	}
}

static void fz_one(struct fz *f)
{
	struct rg *g = &f->g;
	struct nk_sqe e;
	uint32_t r = rndn(100);

	/* Most connections stay up long enough for many entries to be
	 * validated; the rest also break rings and the control stream. */
	if (f->calm)
		r = rndn(10) ? rndn(76) : 88 + rndn(12);
	memset(&e, 0, sizeof(e));
	e.user_data = rnd() & 0x00ffffffffffffffULL;
	if (r < 35) { /* random entry */
		e.opcode = (uint8_t)rndn(24);
		e.flags = rndn(2) ? (uint8_t)rnd() : (uint8_t)rndn(8);
		if (!rndn(5))
			e.resv0 = (uint16_t)rnd();
		e.handle = pick_handle(f);
		if (e.opcode == NK_OP_SOCKET) {
			e.sock.domain = rndn(2) ? AF_INET : (int32_t)rnd();
			e.sock.type = rndn(2) ? SOCK_STREAM : (int32_t)rnd();
			e.sock.protocol = rndn(2) ? 0 : (int32_t)rnd();
			e.sock.resv1 = rndn(4) ? 0 : (uint32_t)rnd();
			e.user_data |= 0xa5ULL << 56;
		} else if (e.opcode == NK_OP_LISTEN ||
			   e.opcode == NK_OP_SHUTDOWN ||
			   e.opcode == NK_OP_IOCTL ||
			   e.opcode == NK_OP_CANCEL) {
			e.ctl.arg64 = rnd();
			e.ctl.arg = rndn(2) ? rndn(4) : (uint32_t)rnd();
			e.ctl.resv1 = rndn(4) ? 0 : (uint32_t)rnd();
		} else {
			pick_buf(f, &e);
		}
		if (e.opcode == NK_OP_SETSOCKOPT ||
		    e.opcode == NK_OP_GETSOCKOPT) {
			static const int32_t lv[] = { SOL_SOCKET, IPPROTO_TCP,
						      IPPROTO_IP, IPPROTO_IPV6,
						      IPPROTO_UDP };
			e.opt.level = rndn(4) ? lv[rndn(5)] : (int32_t)rnd();
			e.opt.optname = (int32_t)rndn(80);
			if (!rndn(4))
				e.opt.resv2[rndn(6)] = (uint32_t)rnd();
			/* value bytes in the named buffer, if it is one */
			if ((uint64_t)e.io.buf_off + e.io.buf_len <=
			    (uint64_t)g->nr_bufs * g->buf_size)
				for (uint32_t i = 0; i < e.io.buf_len && i < 64;
				     i++)
					g->data[e.io.buf_off + i] =
						(uint8_t)rnd();
		} else if (e.opcode == NK_OP_ACCEPT) {
			e.user_data |= 0xa5ULL << 56;
		} else {
			pick_addr(&e.addr);
		}
		fz_submit(f, &e);
	} else if (r < 50) { /* a valid SOCKET */
		e.opcode = NK_OP_SOCKET;
		e.sock.domain = rndn(3) ? AF_INET : AF_INET6;
		e.sock.type = rndn(2) ? SOCK_STREAM : SOCK_DGRAM;
		e.user_data |= 0xa5ULL << 56;
		fz_submit(f, &e);
	} else if (r < 58) { /* a valid CLOSE; the handle becomes stale */
		if (!f->nlive)
			return;
		uint32_t i = rndn(f->nlive);

		e.opcode = NK_OP_CLOSE;
		e.handle = f->live[i];
		if (f->nstale < MAXH)
			f->stale[f->nstale++] = e.handle;
		f->live[i] = f->live[--f->nlive];
		fz_submit(f, &e);
	} else if (r < 66) { /* bind/listen/connect on loopback */
		if (!f->nlive)
			return;
		e.handle = f->live[rndn(f->nlive)];
		e.opcode = (uint8_t)(rndn(2) ? NK_OP_BIND : NK_OP_CONNECT);
		e.flags = NK_SQE_F_NONBLOCK;
		e.addr.family = AF_INET;
		e.addr.addr[0] = 127;
		e.addr.addr[3] = 1;
		e.addr.port = (uint16_t)rnd();
		fz_submit(f, &e);
		if (e.opcode == NK_OP_BIND) {
			memset(&e.addr, 0, sizeof(e.addr));
			e.opcode = NK_OP_LISTEN;
			e.flags = 0;
			e.ctl.arg = 4;
			fz_submit(f, &e);
		}
	} else if (r < 76) { /* NOPs, some with junk */
		e.opcode = NK_OP_NOP;
		if (!rndn(3))
			e.handle = (uint32_t)rnd();
		fz_submit(f, &e);
	} else if (r < 79) { /* SQ tail jump forward or backward */
		f->jumps++;
		uint32_t t = rndn(2) ? g->ring.sq_tail + g->ring.sq_n + 1 +
					       rndn(1000)
				     : g->ring.sq_tail - 1 - rndn(g->ring.sq_n);
		nk_ring_store_release(&g->ring.sqi->tail, t);
		rg_ring_bell(g);
	} else if (r < 82) { /* CQ head jump */
		f->jumps++;
		nk_ring_store_release(&g->ring.cqi->head,
				      g->ring.cq_head + g->ring.cq_n + 1 +
					      rndn(1000));
		rg_ring_bell(g);
	} else if (r < 84) { /* scribble on the host's header fields */
		f->scribbles++;
		uint8_t *h = (uint8_t *)g->hdr;
		size_t off = rndn(sizeof(struct nk_region_hdr));

		h[off] = (uint8_t)rnd();
		fz_submit(f, &(struct nk_sqe){ .opcode = NK_OP_NOP });
	} else if (r < 86) { /* doorbell storm */
		uint64_t v = 1 + rndn(1000);

		for (int i = 0; i < 64; i++)
			if (write(g->bell, &v, sizeof(v)) < 0)
				break;
	} else if (r < 88) { /* malformed control message */
		uint8_t m[128];
		struct nk_ctl_hdr *hd = (void *)m;
		size_t len = 1 + rndn(sizeof(m));

		f->ctl_garbage++;
		for (size_t i = 0; i < sizeof(m); i++)
			m[i] = (uint8_t)rnd();
		if (rndn(2)) {
			hd->type = rndn(2) ? NK_CTL_PLACEHOLDER : rndn(40);
			hd->len = rndn(2) ? (uint32_t)len : (uint32_t)rnd();
		}
		if (send(g->ctl, m, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* already disconnected: noticed below */
		}
	} else { /* a run of entries naming the same buffer */
		for (int i = 0; i < 4; i++) {
			memset(&e, 0, sizeof(e));
			e.opcode = NK_OP_RECV;
			e.flags = NK_SQE_F_NONBLOCK;
			e.handle = f->nlive ? f->live[rndn(f->nlive)] : 1;
			e.io.buf_off = 0;
			e.io.buf_len = 256;
			fz_submit(f, &e);
		}
	}
}

static int fuzz(uint64_t seed, long count, double secs)
{
	static struct fz f;
	double t0 = now_s(), deadline = t0 + secs;
	struct sigaction sa = { .sa_handler = on_sigbus };
	struct sigaction st = { .sa_handler = on_stop };
	int err;

	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGBUS, &sa, NULL);
	/* SIGTERM/SIGINT end the run early, still with a RESULT line. */
	sigaction(SIGTERM, &st, NULL);
	sigaction(SIGINT, &st, NULL);
	rs = seed * 0x9E3779B97F4A7C15ULL + 1;
	err = rg_attach(&f.g);
	if (err) {
		fprintf(stderr, "nk_rawguest: cannot attach to %s: %s\n",
			sock_path, strerror(-err));
		return 3;
	}
	f.attaches = 1;
	f.calm = 0;
	f.last_progress = now_s();
	if (sigsetjmp(bus_jmp, 1)) {
		/* The region went away under us (truncated): start over. */
		if (++f.sigbus > 100 || fz_reattach(&f, now_s() + 5) < 0)
			goto out;
	}
	while (f.actions < (uint64_t)count && now_s() < deadline && !stop_req) {
		f.actions++;
		fz_one(&f);
		fz_drain(&f);
		if ((f.actions & 15) == 0 || fz_dead(&f)) {
			struct nk_cqe c;

			if (f.inflight && rg_wait(&f.g, &c, 5, 0)) {
				f.cqes++;
				f.inflight--;
				f.last_progress = now_s();
			}
			fz_drain(&f);
			int dead = fz_dead(&f);
			/* No completions for a while with work queued: the
			 * ring is wedged (by us); start a new connection. */
			int stalled = f.inflight &&
				      now_s() - f.last_progress > 0.5;

			if (stalled && !dead)
				f.stalls++;
			if (dead)
				f.disconnects++;
			if (dead || stalled) {
				if (fz_reattach(&f, now_s() + 5) < 0)
					goto out;
			}
		}
	}
out:
	printf("RESULT mode=fuzz seed=%llu actions=%llu sqes=%llu cqes=%llu "
	       "errors=%llu abuse=%llu disconnects=%llu attaches=%llu "
	       "jumps=%llu scribbles=%llu ctl_garbage=%llu stalls=%llu "
	       "sigbus=%llu secs=%.1f\n",
	       (unsigned long long)seed, (unsigned long long)f.actions,
	       (unsigned long long)f.sqes, (unsigned long long)f.cqes,
	       (unsigned long long)f.errs, (unsigned long long)f.abuse,
	       (unsigned long long)f.disconnects,
	       (unsigned long long)f.attaches, (unsigned long long)f.jumps,
	       (unsigned long long)f.scribbles,
	       (unsigned long long)f.ctl_garbage, (unsigned long long)f.stalls,
	       (unsigned long long)f.sigbus, now_s() - t0);
	rg_detach(&f.g);
	/* Reaching the end (count or time) is success; losing nkd is not. */
	return f.actions < (uint64_t)count && now_s() < deadline && !stop_req
		       ? 3
		       : 0;
}

/* ------------------------------------------------------------ tenancy */

/* One entry, published, and its CQE; 0 on timeout or when dropped. */
static int rg_dropped(struct rg *g)
{
	struct pollfd p = { g->ctl, POLLIN, 0 };
	char b[64];

	if (__atomic_load_n(&g->hdr->host_flags, __ATOMIC_RELAXED) &
	    NK_HOST_F_DEAD)
		return 1;
	if (poll(&p, 1, 0) > 0) {
		if (p.revents & (POLLHUP | POLLERR))
			return 1;
		if ((p.revents & POLLIN) &&
		    recv(g->ctl, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK) == 0)
			return 1;
	}
	return 0;
}

/* SOCKET; returns the handle or -errno. */
static int rg_socket(struct rg *g, int type)
{
	struct nk_sqe e = { .opcode = NK_OP_SOCKET };
	struct nk_cqe c;

	e.sock.domain = AF_INET;
	e.sock.type = type;
	if (rg_call(g, &e, &c, 3000))
		return -ETIMEDOUT;
	return c.res;
}

/*
 * thief N GENS [HANDLE...]: a process of the victim's guest that holds
 * none of its sockets tries RECV, SEND, ACCEPT, GETPEERNAME and CLOSE on
 * every handle index 1..N with generations 1..GENS, and on the handles
 * given (e.g. read from nkctl). Every success is a breach.
 */
static int thief(long n, long gens, char **extra, int nextra)
{
	static const uint8_t ops[] = { NK_OP_RECV, NK_OP_SEND, NK_OP_ACCEPT,
				       NK_OP_GETPEERNAME, NK_OP_CLOSE };
	static const char inject[] = "INJECTED-BY-THIEF\n";
	long tried = 0, ok = 0, ebadf = 0, other = 0, reattach = 0;
	long recv_bytes = 0, accepted = 0, sent = 0;
	struct rg g;

	signal(SIGPIPE, SIG_IGN);
	attach_or_die(&g);
	for (long k = 0; k < n * gens + nextra; k++) {
		uint32_t h = k < n * gens
				     ? (uint32_t)(k / gens + 1) |
					       (uint32_t)(k % gens + 1) << 20
				     : (uint32_t)strtoul(extra[k - n * gens],
							 NULL, 0);

		for (size_t i = 0; i < sizeof(ops); i++) {
			struct nk_sqe e = { .opcode = ops[i], .handle = h };
			struct nk_cqe c;
			uint32_t bs = g.buf_size;

			e.flags = NK_SQE_F_NONBLOCK;
			switch (ops[i]) {
			case NK_OP_RECV:
				e.io.buf_off = 0;
				e.io.buf_len = bs;
				break;
			case NK_OP_SEND:
				memcpy(g.data + bs, inject, sizeof(inject) - 1);
				e.io.buf_off = bs;
				e.io.buf_len = sizeof(inject) - 1;
				break;
			case NK_OP_ACCEPT:
			case NK_OP_GETPEERNAME:
				e.io.buf_off = 2 * bs;
				e.io.buf_len = sizeof(struct nk_sockaddr);
				break;
			default:
				e.flags = 0;
			}
			tried++;
			if (rg_call(&g, &e, &c, 3000) || rg_dropped(&g)) {
				/* Disconnected for abuse: come back. */
				rg_detach(&g);
				attach_or_die(&g);
				reattach++;
				continue;
			}
			if (c.res == -EBADF) {
				ebadf++;
				continue;
			}
			if (c.res < 0) {
				other++;
				continue;
			}
			ok++;
			fprintf(stderr, "nk_rawguest: op %u on %#x: res %d\n",
				ops[i], h, c.res);
			if (ops[i] == NK_OP_RECV)
				recv_bytes += c.res;
			if (ops[i] == NK_OP_SEND)
				sent += c.res;
			if (ops[i] == NK_OP_ACCEPT)
				accepted++;
		}
	}
	printf("RESULT mode=thief tried=%ld ok=%ld ebadf=%ld other=%ld "
	       "recv_bytes=%ld sent=%ld accepted=%ld reattach=%ld\n",
	       tried, ok, ebadf, other, recv_bytes, sent, accepted, reattach);
	rg_detach(&g);
	return 0;
}

/* A control request answered by NK_CTL_STATUS; status or -errno. */
static int rg_ctl_status(struct rg *g, uint32_t type, uint64_t *token)
{
	struct nk_ctl_hdr h = { .type = type, .len = sizeof(h) };
	struct nk_ctl_status st;

	h.seq = ++g->seq;
	if (send(g->ctl, &h, sizeof(h), MSG_NOSIGNAL) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(g->ctl, &st, sizeof(st), 0);

		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		if (n == sizeof(st) && st.hdr.type == NK_CTL_STATUS &&
		    st.hdr.seq == h.seq) {
			*token = st.token;
			return st.status;
		}
	}
}

/* HELLO with a token; prints and returns what nkd said (0: inherited). */
static int try_token(const char *who, uint64_t tok)
{
	struct rg g;
	int err;

	inherit_tok = tok;
	err = rg_attach(&g);
	inherit_tok = 0;
	printf("TOKEN who=%s pid=%d status=%d handles=%u\n", who, (int)getpid(),
	       err, err ? 0 : g.nr_handles);
	fflush(stdout);
	if (!err)
		rg_detach(&g);
	return err;
}

/*
 * tokens [SECS]: make a socket, get an EXEC and a FORK token, then present
 * them from the wrong processes (a grandchild: not the child, not the
 * asker) and the FORK token from the real child. Prints both tokens and
 * stays attached SECS seconds so that another process can try them.
 */
static int tokens(double secs)
{
	uint64_t xtok = 0, ftok = 0;
	struct rg g;
	pid_t b1;
	int st = 0, h;

	attach_or_die(&g);
	h = rg_socket(&g, SOCK_STREAM);
	if (h <= 0 || rg_ctl_status(&g, NK_CTL_EXEC, &xtok) ||
	    rg_ctl_status(&g, NK_CTL_FORK_PREPARE, &ftok)) {
		fprintf(stderr, "nk_rawguest: no socket or token\n");
		return 1;
	}
	printf("TOKENS exec=%llu fork=%llu asker=%d handle=%d\n",
	       (unsigned long long)xtok, (unsigned long long)ftok,
	       (int)getpid(), h);
	fflush(stdout);
	b1 = fork();
	if (b1 == 0) {
		pid_t b2 = fork();
		int r2 = 0;

		if (b2 == 0) {
			int a = try_token("grandchild-fork", ftok);
			int b = try_token("grandchild-exec", xtok);

			_exit((a ? 0 : 1) | (b ? 0 : 2));
		}
		waitpid(b2, &r2, 0);
		/* The real child: its parent asked, so it inherits. */
		_exit((WIFEXITED(r2) ? WEXITSTATUS(r2) : 8) |
		      (try_token("child-fork", ftok) ? 4 : 0));
	}
	waitpid(b1, &st, 0);
	st = WIFEXITED(st) ? WEXITSTATUS(st) : 16;
	printf("RESULT mode=tokens grandchild_fork=%s grandchild_exec=%s "
	       "child_fork=%s\n",
	       st & 1 ? "inherited" : "refused",
	       st & 2 ? "inherited" : "refused", st & 4 ? "refused" : "ok");
	fflush(stdout);
	/* Another EXEC token for an unrelated process to try. */
	if (secs > 0 && !rg_ctl_status(&g, NK_CTL_EXEC, &xtok)) {
		printf("TOKENS exec=%llu\n", (unsigned long long)xtok);
		fflush(stdout);
		for (double end = now_s() + secs; now_s() < end;)
			usleep(50 * 1000);
	}
	rg_detach(&g);
	return 0;
}

static int token_mode(uint64_t tok)
{
	return try_token("other", tok) ? 0 : 1;
}

/* Sends PLACEHOLDER with [app, nkd] the old way; the nkd end stays ours. */
static int ph_old_send(struct rg *g, uint32_t handle, int *keep)
{
	struct nk_ctl_placeholder m = {
		.hdr = { .type = NK_CTL_PLACEHOLDER, .len = sizeof(m) },
		.handle = handle,
	};
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	struct stat st;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -errno;
	fstat(sv[0], &st);
	m.ino = st.st_ino;
	m.dev = st.st_dev;
	m.hdr.seq = ++g->seq;
	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(cm), sv, 2 * sizeof(int));
	if (sendmsg(g->ctl, &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	/* A copy of the nkd end: what the old protocol could not stop. */
	keep[0] = sv[0];
	keep[1] = sv[1];
	return 0;
}

/* ph-old: the old PLACEHOLDER; prints refused=1 if nkd dropped us. */
static int ph_old(void)
{
	struct nk_sqe e = { .opcode = NK_OP_NOP };
	struct nk_cqe c;
	struct rg g;
	int keep[2], h, refused;

	signal(SIGPIPE, SIG_IGN);
	attach_or_die(&g);
	h = rg_socket(&g, SOCK_STREAM);
	if (h <= 0 || ph_old_send(&g, (uint32_t)h, keep)) {
		fprintf(stderr, "nk_rawguest: no socket\n");
		return 1;
	}
	usleep(300 * 1000);
	refused = rg_dropped(&g) || rg_call(&g, &e, &c, 3000);
	printf("RESULT mode=ph-old refused=%d\n", refused);
	rg_detach(&g);
	return 0;
}

struct hammer {
	int fds[64];
	int nfds;
	double end;
	long written;
};

static void *hammer_thread(void *arg)
{
	struct hammer *hm = arg;
	static char buf[65536];

	while (now_s() < hm->end) {
		for (int i = 0; i < hm->nfds; i++) {
			ssize_t n = send(hm->fds[i], buf, sizeof(buf),
					 MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n > 0)
				__atomic_fetch_add(&hm->written, n,
						   __ATOMIC_RELAXED);
			while (recv(hm->fds[i], buf, sizeof(buf),
				    MSG_DONTWAIT) > 0)
				;
		}
	}
	return NULL;
}

/* One placeholder from g's pool: its fd and id (-1: none came). */
static int ph_pool_take(struct rg *g, uint64_t *id)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct nk_ctl_ph_pool m;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct pollfd p = { g->pool, POLLIN, 0 };
	struct cmsghdr *cm;
	int fd;

	if (poll(&p, 1, 3000) <= 0 ||
	    recvmsg(g->pool, &mh, MSG_CMSG_CLOEXEC) != sizeof(m))
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	*id = m.id;
	return fd;
}

/* One placeholder from the pool (ABI 2), bound to handle. */
static int ph_pool_bind(struct rg *g, uint32_t handle, int *fd)
{
	struct nk_ctl_ph_bind b = {
		.hdr = { .type = NK_CTL_PH_BIND, .len = sizeof(b) },
		.handle = handle,
	};
	struct stat st;

	*fd = ph_pool_take(g, &b.id);
	if (*fd < 0)
		return -EPROTO;
	fstat(*fd, &st);
	b.ino = st.st_ino;
	b.dev = st.st_dev;
	b.hdr.seq = ++g->seq;
	return send(g->ctl, &b, sizeof(b), MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* SOCKET (UDP) naming placeholder id (NK_SQE_F_PH): the CQE. */
static struct nk_cqe ph_socket(struct rg *g, uint64_t id)
{
	struct nk_sqe e = { .opcode = NK_OP_SOCKET, .flags = NK_SQE_F_PH };
	struct nk_cqe c = { .res = -ETIMEDOUT };

	e.sock.domain = AF_INET;
	e.sock.type = SOCK_DGRAM;
	e.ph.id = id;
	if (rg_call(g, &e, &c, 3000))
		c.res = -ETIMEDOUT;
	return c;
}

/*
 * ph-steal: two processes' worth of connections of one guest. A SOCKET
 * of the first naming the second's placeholder (NK_SQE_F_PH) must be
 * refused (-EBADF, abuse) and leave it the second's to use; its own
 * binds, mirrors readiness (a datagram to itself makes the fd
 * readable), and cannot be named twice.
 */
static int ph_steal(void)
{
	struct rg g1, g2;
	struct nk_cqe c;
	struct nk_sqe e;
	uint64_t id1, id2;
	int fd1, fd2, stolen, abuse, own = 0, mirrored = 0, other = 0;
	int reuse = 0;

	signal(SIGPIPE, SIG_IGN);
	attach_or_die(&g1);
	attach_or_die(&g2);
	if (!(g1.hdr->features & NK_FEAT_PH_SQE) || g1.pool < 0) {
		printf("RESULT mode=ph-steal feature=0\n");
		return 1;
	}
	fd2 = ph_pool_take(&g2, &id2);
	fd1 = ph_pool_take(&g1, &id1);
	if (fd1 < 0 || fd2 < 0)
		return 1;
	c = ph_socket(&g1, id2);
	stolen = c.res > 0;
	abuse = c.res == -EBADF && (c.flags & NK_CQE_F_ABUSE);
	c = ph_socket(&g1, id1);
	if (c.res > 0) {
		struct nk_sockaddr *a = (void *)(g1.data + g1.buf_size);
		struct pollfd p = { fd1, POLLIN, 0 };
		uint32_t h = (uint32_t)c.res;

		own = 1;
		memset(&e, 0, sizeof(e));
		e.opcode = NK_OP_BIND;
		e.handle = h;
		e.addr.family = AF_INET;
		e.addr.addr[0] = 127;
		e.addr.addr[3] = 1;
		if (rg_call(&g1, &e, &c, 3000) || c.res < 0)
			return 1;
		memset(&e, 0, sizeof(e));
		e.opcode = NK_OP_GETSOCKNAME;
		e.handle = h;
		e.io.buf_off = g1.buf_size;
		e.io.buf_len = sizeof(*a);
		if (rg_call(&g1, &e, &c, 3000) || c.res < 0)
			return 1;
		memset(&e, 0, sizeof(e));
		e.opcode = NK_OP_SEND;
		e.flags = NK_SQE_F_ADDR;
		e.handle = h;
		e.io.buf_len = 1;
		e.addr = *a;
		memcpy(g1.data, "x", 1);
		if (rg_call(&g1, &e, &c, 3000) || c.res != 1)
			return 1;
		mirrored = poll(&p, 1, 2000) == 1 && (p.revents & POLLIN);
	}
	c = ph_socket(&g1, id1);
	reuse = c.res == -EBADF;
	c = ph_socket(&g2, id2);
	other = c.res > 0;
	printf("RESULT mode=ph-steal feature=1 stolen=%d abuse=%d own=%d "
	       "mirrored=%d reuse_refused=%d other_ok=%d\n",
	       stolen, abuse, own, mirrored, reuse, other);
	close(fd1);
	close(fd2);
	rg_detach(&g1);
	rg_detach(&g2);
	return 0;
}

/*
 * ph-hammer SECS NSOCK: NSOCK UDP sockets with placeholders; 3 threads
 * write into (and read from) the placeholder fds this process has as
 * fast as they can while the main thread makes nkd mirror readiness
 * (datagrams to itself, RECVs until EAGAIN), for SECS seconds. With ABI
 * 2 the fds are the app ends from nkd's pool; with NK_RAWGUEST_ABI=1 (an
 * old nkd) they are kept copies of the nkd ends.
 */
static int ph_hammer(double secs, int nsock)
{
	static struct hammer hm;
	uint32_t hs[64];
	uint16_t ports[64];
	pthread_t th[3];
	struct rg g;
	long rounds = 0;
	int bufsz = 8 << 20;

	signal(SIGPIPE, SIG_IGN);
	if (nsock < 1 || nsock > 64)
		nsock = 8;
	attach_or_die(&g);
	for (int i = 0; i < nsock; i++) {
		struct nk_sqe e = { .opcode = NK_OP_BIND };
		struct nk_cqe c;
		int h = rg_socket(&g, SOCK_DGRAM), keep[2], fd;
		struct nk_sockaddr *a = (void *)(g.data + 2 * g.buf_size);

		if (h <= 0)
			return 1;
		hs[i] = (uint32_t)h;
		e.handle = hs[i];
		e.addr.family = AF_INET;
		e.addr.addr[0] = 127;
		e.addr.addr[3] = 1;
		if (rg_call(&g, &e, &c, 3000) || c.res < 0)
			return 1;
		memset(&e, 0, sizeof(e));
		e.opcode = NK_OP_GETSOCKNAME;
		e.handle = hs[i];
		e.io.buf_off = 2 * g.buf_size;
		e.io.buf_len = sizeof(*a);
		if (rg_call(&g, &e, &c, 3000) || c.res < 0)
			return 1;
		ports[i] = a->port;
		if (g.pool >= 0) {
			if (ph_pool_bind(&g, hs[i], &fd))
				return 1;
		} else {
			if (ph_old_send(&g, hs[i], keep))
				return 1;
			fd = keep[1];
		}
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz,
			   sizeof(bufsz));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz,
			   sizeof(bufsz));
		hm.fds[hm.nfds++] = fd;
	}
	hm.end = now_s() + secs;
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, hammer_thread, &hm);
	while (now_s() < hm.end && !rg_dropped(&g)) {
		for (int i = 0; i < nsock; i++) {
			struct nk_sqe e = { .opcode = NK_OP_SEND,
					    .flags = NK_SQE_F_NONBLOCK |
						     NK_SQE_F_ADDR,
					    .handle = hs[i] };
			struct nk_cqe c;

			memcpy(g.data, "x", 1);
			e.io.buf_len = 1;
			e.addr.family = AF_INET;
			e.addr.port = ports[i];
			e.addr.addr[0] = 127;
			e.addr.addr[3] = 1;
			if (rg_call(&g, &e, &c, 3000))
				break;
			for (int k = 0; k < 2; k++) {
				memset(&e, 0, sizeof(e));
				e.opcode = NK_OP_RECV;
				e.flags = NK_SQE_F_NONBLOCK;
				e.handle = hs[i];
				e.io.buf_off = g.buf_size;
				e.io.buf_len = 256;
				if (rg_call(&g, &e, &c, 3000))
					break;
			}
		}
		rounds++;
	}
	hm.end = 0;
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	printf("RESULT mode=ph-hammer rounds=%ld written=%ld dropped=%d\n",
	       rounds, hm.written, rg_dropped(&g));
	rg_detach(&g);
	return 0;
}

/* ------------------------------------------------------------ attach-many */

static int attach_many(const char *prefix, long n)
{
	long att_fail = 0, sock_fail = 0, i;
	int first_err = 0, last_sock = 0;
	char name[64];
	double t0 = now_s();

	for (i = 0; i < n; i++) {
		struct nk_sqe e;
		struct nk_cqe c;
		struct rg g;
		int err;

		snprintf(name, sizeof(name), "%s-%ld", prefix, i);
		guest_name = name;
		err = rg_attach(&g);
		if (err == -ECONNREFUSED || err == -ENOENT)
			return 3;
		if (err) {
			if (!first_err)
				first_err = err;
			att_fail++;
			continue;
		}
		memset(&e, 0, sizeof(e));
		e.opcode = NK_OP_SOCKET;
		e.sock.domain = AF_INET;
		e.sock.type = SOCK_STREAM;
		e.user_data = 1;
		if (rg_queue(&g, &e) == 0)
			rg_publish(&g);
		if (!rg_wait(&g, &c, 5000, 20) || c.res <= 0) {
			last_sock = c.res;
			if (!first_err)
				first_err = c.res ? c.res : -ETIMEDOUT;
			sock_fail++;
		} else {
			memset(&e, 0, sizeof(e));
			e.opcode = NK_OP_CLOSE;
			e.handle = (uint32_t)c.res;
			e.user_data = 2;
			if (rg_queue(&g, &e) == 0)
				rg_publish(&g);
			rg_wait(&g, &c, 5000, 20);
		}
		rg_detach(&g);
	}
	printf("RESULT mode=attach-many guests=%ld attach_refused=%ld "
	       "socket_failed=%ld first_errno=%d last_socket_res=%d "
	       "secs=%.3f\n",
	       n, att_fail, sock_fail, -first_err, last_sock, now_s() - t0);
	return 0;
}

/* ------------------------------------------------------------ spin */

/* Stages of a spin entry, in user_data's top byte; the low 32 bits hold
 * the handle it concerns. */
enum { SPIN_PLAIN = 1, SPIN_SOCKET, SPIN_CONNECT, SPIN_CLOSE };

#define SPIN_UD(stage, h) (((uint64_t)(stage) << 56) | (uint32_t)(h))

/*
 * A guest that keeps nkd as busy as its ring allows (noisy_neighbour.sh,
 * the bench's noisy_p99): DEPTH entries in flight at all times, CQEs taken
 * as they come, never sleeping. KIND: nop; inval (SOCKET of AF_UNIX:
 * refused with EAFNOSUPPORT, not malformed, so no disconnect); socket
 * (SOCKET then CLOSE); connect (SOCKET, CONNECT to HOST:PORT, CLOSE: a
 * connect/close storm). Stops after SECS or MAX entries (0: no bound).
 */
static int spin(const char *kind, double secs, long max, int depth,
		const char *host, int port)
{
	static struct nk_sqe pend[4096];
	struct rg g;
	struct nk_sqe e;
	struct nk_cqe c;
	struct nk_sockaddr dst = { 0 };
	long sent = 0, done = 0, ok = 0, errs = 0, cycles = 0;
	int npend = 0, k;
	double t0, last;

	k = !strcmp(kind, "nop")       ? 0
	    : !strcmp(kind, "inval")   ? 1
	    : !strcmp(kind, "socket")  ? 2
	    : !strcmp(kind, "connect") ? 3
				       : -1;
	if (k < 0)
		return 2;
	if (k == 3) {
		dst.family = AF_INET;
		dst.port = htons((uint16_t)port);
		if (!host || inet_pton(AF_INET, host, dst.addr) != 1)
			return 2;
	}
	attach_or_die(&g);
	if (depth < 1 || (uint32_t)depth > g.ring.sq_n / 2)
		depth = (int)(g.ring.sq_n / 2);
	t0 = last = now_s();
	for (;;) {
		double t = now_s();
		bool more = t - t0 < secs && (!max || sent < max);
		int queued = 0;

		/* Follow-ups first: they free what the storm holds. */
		while (npend && !rg_queue(&g, &pend[npend - 1])) {
			npend--;
			queued++;
		}
		while (more && sent - done < depth && !npend) {
			memset(&e, 0, sizeof(e));
			if (k == 0) {
				e.opcode = NK_OP_NOP;
				e.user_data = SPIN_UD(SPIN_PLAIN, 0);
			} else {
				e.opcode = NK_OP_SOCKET;
				e.sock.domain = k == 1 ? AF_UNIX : AF_INET;
				e.sock.type = SOCK_STREAM;
				e.user_data = SPIN_UD(
					k == 1 ? SPIN_PLAIN : SPIN_SOCKET, 0);
			}
			if (rg_queue(&g, &e))
				break;
			sent++;
			queued++;
			if (max && sent >= max)
				break;
		}
		if (queued)
			rg_publish(&g);
		while (rg_peek(&g, &c)) {
			unsigned st = (unsigned)(c.user_data >> 56);

			last = now_s();
			memset(&e, 0, sizeof(e));
			if (st == SPIN_SOCKET && c.res > 0) {
				e.handle = (uint32_t)c.res;
				if (k == 3) {
					e.opcode = NK_OP_CONNECT;
					e.addr = dst;
					e.user_data =
						SPIN_UD(SPIN_CONNECT, e.handle);
				} else {
					e.opcode = NK_OP_CLOSE;
					e.user_data =
						SPIN_UD(SPIN_CLOSE, e.handle);
				}
			} else if (st == SPIN_CONNECT) {
				e.opcode = NK_OP_CLOSE;
				e.handle = (uint32_t)c.user_data;
				e.user_data = SPIN_UD(SPIN_CLOSE, e.handle);
			}
			if (c.res >= 0)
				ok++;
			else
				errs++;
			if (e.opcode &&
			    npend < (int)(sizeof(pend) / sizeof(pend[0]))) {
				pend[npend++] = e;
				continue;
			}
			if (st == SPIN_CLOSE || st == SPIN_PLAIN ||
			    (st == SPIN_SOCKET && c.res <= 0))
				done++;
			if (st == SPIN_CLOSE)
				cycles++;
		}
		if (!more && done >= sent && !npend)
			break;
		if (now_s() - last > 10) {
			fprintf(stderr, "nk_rawguest: no CQE in 10 s\n");
			printf("RESULT mode=spin kind=%s sent=%ld done=%ld "
			       "stalled=1\n",
			       kind, sent, done);
			return 1;
		}
	}
	t0 = now_s() - t0;
	printf("RESULT mode=spin kind=%s sent=%ld done=%ld ok=%ld errors=%ld "
	       "cycles=%ld secs=%.3f per_s=%.0f\n",
	       kind, sent, done, ok, errs, cycles, t0, done / t0);
	rg_detach(&g);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: nk_rawguest [--socket PATH] [--guest NAME] "
		"nop-bench N [BATCH]\n"
		"       nk_rawguest [--socket PATH] [--guest NAME] "
		"nop-rate RATE SECS [BATCH]\n"
		"       nk_rawguest [--socket PATH] [--guest NAME] "
		"linger-close HOST PORT SECS\n"
		"       nk_rawguest pipe-bench N\n"
		"       nk_rawguest [--socket PATH] [--guest NAME] "
		"fuzz SEED COUNT [SECS]\n"
		"       nk_rawguest [...] thief N GENS [HANDLE...]\n"
		"       nk_rawguest [...] tokens [SECS]\n"
		"       nk_rawguest [...] token TOKEN\n"
		"       nk_rawguest [...] ph-old\n"
		"       nk_rawguest [...] ph-steal\n"
		"       nk_rawguest [...] ph-hammer SECS NSOCK\n"
		"       nk_rawguest [--socket PATH] attach-many PREFIX N\n"
		"       nk_rawguest [...] spin nop|inval|socket|connect SECS "
		"[MAX [DEPTH [HOST PORT]]]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int i = 1;

	while (i + 1 < argc && !strncmp(argv[i], "--", 2)) {
		if (!strcmp(argv[i], "--socket"))
			sock_path = argv[i + 1];
		else if (!strcmp(argv[i], "--guest"))
			guest_name = argv[i + 1];
		else
			usage();
		i += 2;
	}
	if (i >= argc)
		usage();
	if (!strcmp(argv[i], "nop-bench") && i + 1 < argc)
		return nop_bench(atol(argv[i + 1]),
				 i + 2 < argc ? atoi(argv[i + 2]) : 1);
	if (!strcmp(argv[i], "nop-rate") && i + 2 < argc)
		return nop_rate(atof(argv[i + 1]), atof(argv[i + 2]),
				i + 3 < argc ? atoi(argv[i + 3]) : 1);
	if (!strcmp(argv[i], "linger-close") && i + 3 < argc)
		return linger_close(argv[i + 1], atoi(argv[i + 2]),
				    atoi(argv[i + 3]));
	if (!strcmp(argv[i], "pipe-bench") && i + 1 < argc)
		return pipe_bench(atol(argv[i + 1]));
	if (!strcmp(argv[i], "thief") && i + 2 < argc)
		return thief(atol(argv[i + 1]), atol(argv[i + 2]), argv + i + 3,
			     argc - i - 3);
	if (!strcmp(argv[i], "tokens"))
		return tokens(i + 1 < argc ? atof(argv[i + 1]) : 0);
	if (!strcmp(argv[i], "token") && i + 1 < argc)
		return token_mode(strtoull(argv[i + 1], NULL, 0));
	if (!strcmp(argv[i], "ph-old"))
		return ph_old();
	if (!strcmp(argv[i], "ph-steal"))
		return ph_steal();
	if (!strcmp(argv[i], "ph-hammer") && i + 2 < argc)
		return ph_hammer(atof(argv[i + 1]), atoi(argv[i + 2]));
	if (!strcmp(argv[i], "fuzz") && i + 2 < argc)
		return fuzz(strtoull(argv[i + 1], NULL, 0), atol(argv[i + 2]),
			    i + 3 < argc ? atof(argv[i + 3]) : 30.0);
	if (!strcmp(argv[i], "spin") && i + 2 < argc)
		return spin(argv[i + 1], atof(argv[i + 2]),
			    i + 3 < argc ? atol(argv[i + 3]) : 0,
			    i + 4 < argc ? atoi(argv[i + 4]) : 0,
			    i + 5 < argc ? argv[i + 5] : NULL,
			    i + 6 < argc ? atoi(argv[i + 6]) : 0);
	if (!strcmp(argv[i], "attach-many") && i + 2 < argc)
		return attach_many(argv[i + 1], atol(argv[i + 2]));
	usage();
	return 2;
}
