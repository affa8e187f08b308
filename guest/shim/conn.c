// SPDX-License-Identifier: MIT
/*
 * The process's attachment to nkd (struct nk_attach, conn.h): config and
 * logging, internal fds, HELLO/WELCOME and the shared region (docs/abi.md
 * sections 1-2), liveness, reattach after an nkd restart, and fork. The
 * rest of the connection is in ctlsock.c (control socket, placeholder
 * pool), bufpool.c (buffers), submit.c (SQ, barriers) and waiter.c (CQ,
 * sleeping); conn.h has the objects and the lock order.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "netkernel/guest_ring.h"
#include "netkernel/ring.h"
#include "netkernel/spin.h"
#include "conn.h"
#include "shim.h"
#include "signals.h"

struct nk_cfg nk_cfg;

struct nk_conn nk_conn = {
	.at = {
		.attach_lock = PTHREAD_MUTEX_INITIALIZER,
		.bell_fd = -1,
	},
	.ctl = {
		.ctl_lock = PTHREAD_MUTEX_INITIALIZER,
		.ctl_fd = -1,
		.pool_fd = -1,
	},
	.w = { .cq_lock = PTHREAD_MUTEX_INITIALIZER },
	.sq = { .sq_lock = PTHREAD_MUTEX_INITIALIZER },
	.bp = { .buf_lock = PTHREAD_MUTEX_INITIALIZER },
};

/* ------------------------------------------------------------------------ */
/* Config and logging. */

static void copy_env(char *dst, size_t size, const char *name, const char *dflt)
{
	const char *v = secure_getenv(name);

	snprintf(dst, size, "%s", v && *v ? v : dflt);
}

void nk_cfg__load(void)
{
	const char *fb, *dbg;
	Dl_info di;

	copy_env(nk_cfg.socket_path, sizeof(nk_cfg.socket_path), "NK_SOCKET",
		 NK_CTL_DEFAULT_PATH);
	/* No name: nkd picks the guest this process is (docs/config.md). */
	copy_env(nk_cfg.guest, sizeof(nk_cfg.guest), "NK_GUEST", "");
	fb = secure_getenv("NK_FALLBACK");
	nk_cfg.fallback = fb && !strcmp(fb, "passthrough") ? NK_FB_PASSTHROUGH
							   : NK_FB_FAIL;
	dbg = secure_getenv("NK_DEBUG");
	nk_cfg.debug = dbg && *dbg ? atoi(dbg) : 0;
	if (dbg && *dbg && !nk_cfg.debug)
		nk_cfg.debug = strcmp(dbg, "0") != 0;
	if (dladdr((void *)nk_cfg__load, &di) && di.dli_fname)
		snprintf(nk_cfg.shim_path, sizeof(nk_cfg.shim_path), "%s",
			 di.dli_fname);
	nk_spin__init(&C.w.wait_spin,
		      nk_spin__cap(secure_getenv("NK_WAIT_SPIN_MAX_NS"),
				   NK_SPIN_QUICK_NS, NK_SPIN_FEW_CPUS_NS));
}

static void vlog(const char *fmt, va_list ap)
{
	char line[512];
	int n, e = errno;

	n = snprintf(line, sizeof(line), "netkernel[%d]: ", (int)getpid());
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (REAL(write)(STDERR_FILENO, line, n) < 0)
		(void)0; /* nowhere to report it */
	errno = e;
}

void nk_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void nk_dbg(const char *fmt, ...)
{
	va_list ap;

	if (!nk_cfg.debug)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

int64_t nk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Internal fds. */

/*
 * Where internal fds live: high, so they never take the number the kernel
 * would give the application next, and below the soft limit.
 */
static int high_fd_base(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > 65536)
		return 65536 - 64;
	if (rl.rlim_cur <= 128)
		return (int)rl.rlim_cur / 2;
	return (int)rl.rlim_cur - 64;
}

/* Move fd to a high number (CLOEXEC); returns the fd to use. */
static int move_high(int fd, int avoid)
{
	int base = high_fd_base(), nfd;

	if (avoid >= base)
		base = avoid + 1;
	nfd = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, base);
	if (nfd < 0)
		nfd = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return fd;
	REAL(close)(fd);
	return nfd;
}

bool nk_conn__is_internal_fd(int fd)
{
	return fd >= 0 && (fd == C.ctl.ctl_fd || fd == C.at.bell_fd ||
			   fd == C.ctl.pool_fd);
}

int nk_conn__internal_fds(int out[NK_INTERNAL_FDS])
{
	int n = 0, all[NK_INTERNAL_FDS] = { C.ctl.ctl_fd, C.at.bell_fd,
					    C.ctl.pool_fd };

	for (int i = 0; i < NK_INTERNAL_FDS; i++) {
		int j = n++;

		if (all[i] < 0) {
			n--;
			continue;
		}
		/* Insertion sort: ascending. */
		for (; j > 0 && out[j - 1] > all[i]; j--)
			out[j] = out[j - 1];
		out[j] = all[i];
	}
	return n;
}

void nk_conn__evacuate(unsigned int lo, unsigned int hi)
{
	pthread_mutex_lock(&C.ctl.ctl_lock);
	pthread_mutex_lock(&C.sq.sq_lock);
	if (C.ctl.ctl_fd >= 0 && (unsigned int)C.ctl.ctl_fd >= lo &&
	    (unsigned int)C.ctl.ctl_fd <= hi)
		C.ctl.ctl_fd = move_high(C.ctl.ctl_fd, (int)hi);
	if (C.at.bell_fd >= 0 && (unsigned int)C.at.bell_fd >= lo &&
	    (unsigned int)C.at.bell_fd <= hi)
		C.at.bell_fd = move_high(C.at.bell_fd, (int)hi);
	if (C.ctl.pool_fd >= 0 && (unsigned int)C.ctl.pool_fd >= lo &&
	    (unsigned int)C.ctl.pool_fd <= hi)
		C.ctl.pool_fd = move_high(C.ctl.pool_fd, (int)hi);
	pthread_mutex_unlock(&C.sq.sq_lock);
	pthread_mutex_unlock(&C.ctl.ctl_lock);
}

/* ------------------------------------------------------------------------ */
/* Attach. */

/* The connection's descriptors: control socket, doorbell, buffer pool. */
static void close_conn_fds(void)
{
	if (C.ctl.ctl_fd >= 0)
		REAL(close)(C.ctl.ctl_fd);
	if (C.at.bell_fd >= 0)
		REAL(close)(C.at.bell_fd);
	if (C.ctl.pool_fd >= 0)
		REAL(close)(C.ctl.pool_fd);
	C.ctl.ctl_fd = C.at.bell_fd = C.ctl.pool_fd = -1;
}

static void detach_local(void)
{
	if (C.at.region)
		munmap(C.at.region, C.at.region_size);
	C.at.region = NULL;
	C.at.hdr = NULL;
	close_conn_fds();
	free(C.bp.free_bufs);
	free(C.bp.meta);
	C.bp.free_bufs = NULL;
	C.bp.meta = NULL;
	C.bp.nfree = 0;
}

static bool in_region(uint64_t off, uint64_t len)
{
	return off <= C.at.region_size && len <= C.at.region_size - off;
}

static int map_region(int rfd, uint64_t size, uint64_t off)
{
	struct nk_region_hdr *h;
	struct nk_qset_desc *q;
	void *p;

	if (size < sizeof(*h) || size > (1ull << 36) || off % 4096)
		return -EPROTO;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rfd,
		 (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	C.at.region = p;
	C.at.region_size = size;
	h = p;
	C.at.hdr = h;
	if (h->magic != NK_REGION_MAGIC || h->abi_version != NK_ABI_VERSION ||
	    h->hdr_size < sizeof(*h) || h->region_size > size ||
	    h->nr_qsets < 1 || h->nr_qsets > NK_MAX_QSETS)
		return -EPROTO;
	q = &h->qsets[0];
	if (nk_gring__init(&C.at.ring, C.at.region, size, q) || !h->buf_size ||
	    !h->nr_bufs ||
	    !in_region(h->data_off, (uint64_t)h->buf_size * h->nr_bufs))
		return -EPROTO;
	C.bp.data = C.at.region + h->data_off;
	C.bp.buf_size = h->buf_size;
	C.bp.nr_bufs = h->nr_bufs;
	C.bp.send_window = h->send_window ? h->send_window : h->buf_size;
	C.bp.send_charge = h->send_charge ? h->send_charge : 1;
	C.bp.send_cap = C.bp.nr_bufs >= 4 ? C.bp.nr_bufs - C.bp.nr_bufs / 4
					  : C.bp.nr_bufs;
	C.bp.send_bufs = 0;
	C.at.epoch = h->epoch;
	C.at.features = h->features;
	C.bp.free_bufs = malloc(sizeof(uint32_t) * C.bp.nr_bufs);
	C.bp.meta = calloc(C.bp.nr_bufs, sizeof(*C.bp.meta));
	if (!C.bp.free_bufs || !C.bp.meta)
		return -ENOMEM;
	/* Hand out low buffers first: fewer pages touched. */
	for (uint32_t i = 0; i < C.bp.nr_bufs; i++)
		C.bp.free_bufs[i] = C.bp.nr_bufs - 1 - i;
	C.bp.nfree = C.bp.nr_bufs;
	return 0;
}

/* The reason of nkd's last refusal (WELCOME text), "" if none. */
static char refused_why[256];
static bool refused;

/* Why the last attach failed, in words for the user. */
static void log_attach_failure(const char *what, int err, const char *then)
{
	if (refused)
		nk_log_refused(refused_why[0] ? refused_why : strerror(-err),
			       then);
	else
		nk_log("%s at %s: %s; %s", what, nk_cfg.socket_path,
		       strerror(-err), then);
}

/*
 * Connect, HELLO, WELCOME, map. On success the WELCOME (with its handle
 * list) is left in C.ctl.buf for the caller, who holds ctl_lock.
 */
static int do_attach(bool inherit, uint64_t token, int *nhandles)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = NK_CTL_TIMEOUT_S };
	struct nk_ctl_hello hello = {
		.hdr = { .type = NK_CTL_HELLO, .len = sizeof(hello) },
		.abi_version = NK_ABI_VERSION,
		.nr_qsets = 1,
	};
	struct nk_ctl_welcome w;
	struct nk_ctl_welcome_vm vm = { 0 };
	size_t hl;
	int fd, fds[3] = { -1, -1, -1 }, nfds = 0, n, err;

	refused = false;
	refused_why[0] = '\0';
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", nk_cfg.socket_path);
	fd = REAL(socket)(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (REAL(connect)(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = -errno;
		REAL(close)(fd);
		return err;
	}
	C.ctl.ctl_fd = move_high(fd, -1);
	REAL(setsockopt)
	(C.ctl.ctl_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	REAL(setsockopt)
	(C.ctl.ctl_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	if (inherit) {
		hello.flags = NK_HELLO_F_INHERIT;
		hello.inherit_token = token;
	}
	hello.flags |= NK_HELLO_F_VM; /* nk-vmagent wants to know */
	snprintf(hello.guest, sizeof(hello.guest), "%s", nk_cfg.guest);
	hello.hdr.seq = ++C.ctl.seq;
	err = nk_ctlchan__send(&hello, sizeof(hello), NULL, 0);
	/* nkd may have closed with an early refusal: still read it. */
	if (err && err != -EPIPE && err != -ECONNRESET)
		goto fail;
	n = nk_ctlchan__recv(hello.hdr.seq, NK_CTL_WELCOME, fds, &nfds);
	if (n < 0) {
		err = n;
		goto fail;
	}
	err = -EPROTO;
	if ((size_t)n < sizeof(w))
		goto fail;
	memcpy(&w, C.ctl.buf.b, sizeof(w));
	if (w.status < 0) {
		/* An answer, not an outage: say why (docs/abi.md). */
		size_t tl = (size_t)n - sizeof(w);

		refused = true;
		if (tl >= sizeof(refused_why))
			tl = sizeof(refused_why) - 1;
		memcpy(refused_why, C.ctl.buf.b + sizeof(w), tl);
		refused_why[tl] = '\0';
		err = w.status;
		goto fail;
	}
	if (nfds != 3 ||
	    (size_t)n < sizeof(w) + (size_t)w.nr_handles *
					    sizeof(struct nk_ctl_handle))
		goto fail;
	/* From nk-vmagent: a window of the VM's shared memory. */
	hl = sizeof(w) + (size_t)w.nr_handles * sizeof(struct nk_ctl_handle);
	if ((size_t)n >= hl + sizeof(vm))
		memcpy(&vm, C.ctl.buf.b + hl, sizeof(vm));
	if (vm.magic != NK_WELCOME_VM_MAGIC)
		memset(&vm, 0, sizeof(vm));
	C.at.vm_wait = vm.flags & NK_WELCOME_VM_F_BELL_WAIT;
	/* nkd counts anew for this connection (a restarted one from 0) */
	atomic_store(&C.sq.vm_binds, 0);
	atomic_store(&C.sq.barrier_ph, 0);
	err = map_region(fds[0], w.region_size, vm.region_off);
	REAL(close)(fds[0]);
	fds[0] = -1;
	if (err)
		goto fail;
	C.at.bell_fd = move_high(fds[1], C.ctl.ctl_fd);
	fds[1] = -1;
	/* A stream: a full one means the agent has our ring already. */
	if (C.at.vm_wait)
		REAL(fcntl)(C.at.bell_fd, F_SETFL, O_NONBLOCK);
	C.ctl.pool_fd = move_high(fds[2], C.at.bell_fd);
	fds[2] = -1;
	*nhandles = (int)w.nr_handles;
	C.w.last_check = nk_now_ns();
	atomic_store(&C.at.state, NK_ST_UP);
	nk_waiter__watchdog_start();
	nk_rst__on_attach();
	nk_dbg("attached to %s as guest %s (conn %u, %u bufs of %u, window %u)",
	       nk_cfg.socket_path,
	       nk_cfg.guest[0] ? nk_cfg.guest : "(picked by nkd)",
	       C.at.hdr->conn_id, C.bp.nr_bufs, C.bp.buf_size,
	       C.bp.send_window);
	return 0;
fail:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			REAL(close)(fds[i]);
	detach_local();
	return err;
}

static const struct nk_ctl_handle *welcome_handles(void)
{
	return (const void *)(C.ctl.buf.b + sizeof(struct nk_ctl_welcome));
}

/* Inherited handles not named by any fd of ours: give them back. */
static void close_unclaimed(const struct nk_ctl_handle *hs, int n)
{
	uint32_t size = nk_fdtab__size();
	uint32_t *gone = malloc(sizeof(uint32_t) * (n ? n : 1));
	int ngone = 0;

	if (!gone)
		return;
	for (int i = 0; i < n; i++) {
		bool found = false;

		for (uint32_t fd = 0; fd < size && !found; fd++) {
			struct nk_sock *s = nk_fdtab__get((int)fd);

			if (s) {
				found = s->handle == hs[i].handle;
				nk_sock__put(s);
			}
		}
		if (!found)
			gone[ngone++] = hs[i].handle;
	}
	for (int i = 0; i < ngone; i++)
		nk_submit__ignored(NK_OP_CLOSE, gone[i], 0);
	free(gone);
}

static const char *fallback_words(void)
{
	return nk_cfg.fallback == NK_FB_PASSTHROUGH
		       ? "passing sockets through to the local stack"
		       : "AF_INET/AF_INET6 sockets fail with ENETDOWN";
}

/* Fork child: claim the hand-over. Called with attach_lock held. */
static int attach_child(void)
{
	struct nk_ctl_handle *hs = NULL;
	int n = 0, err;

	pthread_mutex_lock(&C.ctl.ctl_lock);
	err = do_attach(true, C.at.child_token, &n);
	if (!err && n) {
		hs = malloc(sizeof(*hs) * n);
		if (hs)
			memcpy(hs, welcome_handles(), sizeof(*hs) * n);
	}
	pthread_mutex_unlock(&C.ctl.ctl_lock);
	C.at.child_have_token = false;
	if (err) {
		atomic_store(&C.at.state, NK_ST_DEAD);
		log_attach_failure("cannot re-attach to nkd after fork", err,
				   "inherited sockets fail");
		return err;
	}
	atomic_store(&C.at.state, NK_ST_UP);
	if (hs)
		close_unclaimed(hs, n);
	free(hs);
	return 0;
}

int nk_conn__ensure(void)
{
	int st = atomic_load_explicit(&C.at.state, memory_order_acquire), err;

	if (__builtin_expect(st == NK_ST_UP, 1))
		return 0;
	if (st == NK_ST_DEAD) /* a restart resets connections (reattach.c) */
		return nk_rst__pending() ? -ECONNRESET : -ENETDOWN;
	if (st == NK_ST_UNREACHABLE)
		return nk_cfg.fallback == NK_FB_PASSTHROUGH ? -EHOSTUNREACH
							    : -ENETDOWN;
	pthread_mutex_lock(&C.at.attach_lock);
	st = atomic_load(&C.at.state);
	if (st == NK_ST_INIT) {
		int n = 0;

		pthread_mutex_lock(&C.ctl.ctl_lock);
		err = do_attach(false, 0, &n);
		pthread_mutex_unlock(&C.ctl.ctl_lock);
		if (err) {
			log_attach_failure("cannot reach nkd", err,
					   fallback_words());
			atomic_store(&C.at.state, NK_ST_UNREACHABLE);
		} else {
			atomic_store(&C.at.state, NK_ST_UP);
		}
	} else if (st == NK_ST_CHILD) {
		attach_child();
	}
	pthread_mutex_unlock(&C.at.attach_lock);
	return nk_conn__ensure();
}

enum nk_state nk_conn__state(void)
{
	return atomic_load(&C.at.state);
}

uint32_t nk_conn__buf_size(void)
{
	return C.bp.buf_size;
}

/* Each thread runs its own event loop: its own spin history. */
static __thread struct nk_spin mux_spin;
static __thread bool mux_spin_ready;

int64_t nk_conn__mux_spin_ns(void)
{
	int64_t last = atomic_load_explicit(&C.sq.last_submit_ns,
					    memory_order_relaxed);

	if (atomic_load_explicit(&C.at.state, memory_order_relaxed) !=
		    NK_ST_UP ||
	    nk_now_ns() - last > NK_MUX_ACTIVE_NS)
		return -1;
	if (!mux_spin_ready) {
		nk_spin__init(&mux_spin,
			      nk_spin__cap(secure_getenv("NK_MUX_SPIN_MAX_NS"),
					   NK_MUX_SPIN_NS,
					   NK_MUX_SPIN_FEW_CPUS_NS));
		/*
		 * Latency first: readiness that keeps coming, however late,
		 * keeps the spin; only waits that end in a timeout or with
		 * nothing shrink it. Adapting to late readiness too made a
		 * ping-pong stop spinning under load (sockperf p50 up to 8x
		 * the old build's). So spins without hits do not give up
		 * either.
		 */
		mux_spin.keep = INT64_MAX;
		mux_spin.give_up = 0;
		mux_spin_ready = true;
	}
	return nk_spin__budget(&mux_spin);
}

void nk_conn__mux_spun(bool hit, int64_t slept, bool useful)
{
	if (!mux_spin_ready)
		return;
	if (hit)
		nk_spin__hit(&mux_spin);
	else
		nk_spin__slept(&mux_spin, slept, useful);
}

bool nk_conn__in_vm(void)
{
	return C.at.vm_wait;
}

bool nk_conn__has_feature(uint64_t feat)
{
	return (C.at.features & feat) == feat;
}

uint32_t nk_conn__send_window(void)
{
	return C.bp.send_window;
}

int nk_conn__attach_exec(uint64_t token)
{
	struct nk_ctl_handle *hs = NULL;
	int n = 0, err;

	pthread_mutex_lock(&C.at.attach_lock);
	pthread_mutex_lock(&C.ctl.ctl_lock);
	err = do_attach(true, token, &n);
	if (!err && n) {
		hs = malloc(sizeof(*hs) * n);
		if (hs)
			memcpy(hs, welcome_handles(), sizeof(*hs) * n);
	}
	pthread_mutex_unlock(&C.ctl.ctl_lock);
	if (err) {
		log_attach_failure("cannot reach nkd", err, fallback_words());
		atomic_store(&C.at.state, NK_ST_UNREACHABLE);
		pthread_mutex_unlock(&C.at.attach_lock);
		return err;
	}
	atomic_store(&C.at.state, NK_ST_UP);
	pthread_mutex_unlock(&C.at.attach_lock);

	/* Find each inherited placeholder among our fds by its inode. */
	for (int fd = 0; hs && fd < (int)nk_fdtab__size(); fd++) {
		struct stat st;
		struct nk_sock *s = NULL, *old;

		if (nk_conn__is_internal_fd(fd) || fstat(fd, &st) ||
		    !S_ISSOCK(st.st_mode))
			continue;
		for (int i = 0; i < n && !s; i++) {
			if (hs[i].ino != (uint64_t)st.st_ino ||
			    hs[i].dev != (uint64_t)st.st_dev)
				continue;
			/* dup'd fds share one object, as they did before. */
			for (int j = 0; j < fd && !s; j++) {
				struct nk_sock *o = nk_fdtab__get(j);

				if (o && o->handle == hs[i].handle)
					s = o;
				else if (o)
					nk_sock__put(o);
			}
			if (!s)
				s = nk_sock__adopt(hs[i].handle, fd);
		}
		if (!s)
			continue;
		s->dev = st.st_dev;
		s->ino = st.st_ino;
		if (nk_fdtab__install(fd, s, &old) == 0 && old)
			nk_sock__fdput(old);
		nk_sock__put(s);
	}
	if (hs)
		close_unclaimed(hs, n);
	free(hs);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Liveness. */

void nk_attach__mark_dead(const char *why)
{
	int st = atomic_load(&C.at.state);

	if (st != NK_ST_UP)
		return;
	atomic_store(&C.at.state, NK_ST_DEAD);
	if (!atomic_exchange(&C.at.dead_logged, 1))
		nk_log("lost nkd at %s (%s); %s", nk_cfg.socket_path, why,
		       nk_rst__on_dead());
	/* Every sleeper must see it now. */
	nk_waiter__wake_all();
}

/* Cheap checks: words in the shared header. */
bool nk_attach__host_ok(void)
{
	if (__atomic_load_n(&C.at.hdr->host_flags, __ATOMIC_ACQUIRE) &
	    NK_HOST_F_DEAD) {
		nk_attach__mark_dead("nkd disconnected this guest");
		return false;
	}
	if (__atomic_load_n(&C.at.hdr->epoch, __ATOMIC_RELAXED) != C.at.epoch) {
		nk_attach__mark_dead("nkd restarted");
		return false;
	}
	return true;
}

void nk_attach__check_alive(void)
{
	struct pollfd p = { .fd = C.ctl.ctl_fd, .events = POLLRDHUP };

	if (atomic_load(&C.at.state) != NK_ST_UP || !nk_attach__host_ok())
		return;
	if (poll(&p, 1, 0) > 0 &&
	    (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)))
		nk_attach__mark_dead("control socket closed");
}

void nk_conn__check_alive(void)
{
	nk_attach__check_alive();
}

int nk_conn__ctl_fd(void)
{
	return C.ctl.ctl_fd;
}

unsigned int nk_conn__waiters(void)
{
	return atomic_load(&C.w.nwaiters);
}

/*
 * Forget a dead connection. Threads may still hold pointers into the old
 * region (a buffer being copied), so it becomes anonymous memory instead
 * of going away: the dead nkd's memfd pages are freed, late accesses
 * touch zeros. Buffer bookkeeping is leaked for the same reason (small).
 * Called with ctl, cq, sq and buf locks held.
 */
static struct nk_region_hdr *retired_hdr;

static void retire_locked(void)
{
	/*
	 * A reaper that found the CQ empty may still be on its way into
	 * FUTEX_WAIT on this tail (mark_dead's wake came too early for it).
	 * Once the region is replaced, no wake reaches that shared-memory
	 * futex: move the tail so such a wait fails at once, and wake
	 * whoever already sleeps there.
	 */
	if (C.at.region && C.at.ring.cqi) {
		__atomic_add_fetch(&C.at.ring.cqi->tail, 1, __ATOMIC_SEQ_CST);
		syscall(SYS_futex, &C.at.ring.cqi->tail, FUTEX_WAKE, INT_MAX,
			NULL, NULL, 0);
	}
	if (C.at.region &&
	    mmap(C.at.region, C.at.region_size, PROT_READ | PROT_WRITE,
		 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		 0) == MAP_FAILED)
		nk_log("cannot retire the old region: %s", strerror(errno));
	/*
	 * hdr and data keep pointing there: a thread that saw the state UP
	 * a moment ago reads a zero epoch (so: dead), never NULL.
	 */
	if (C.at.region)
		retired_hdr = C.at.hdr;
	C.at.region = NULL;
	atomic_fetch_add(&C.at.conn_gen, 1);
	close_conn_fds();
	C.bp.free_bufs = NULL;
	C.bp.meta = NULL;
	C.bp.nfree = 0;
	C.bp.send_bufs = 0;
	atomic_store(&C.bp.inflight, 0);
	atomic_store(&C.sq.barrier_dirty, 0);
	atomic_store(&C.sq.barrier_done, atomic_load(&C.sq.barrier_seq));
}

int nk_conn__reattach(const char **why)
{
	uint64_t old_epoch = C.at.epoch;
	int n = 0, err;

	*why = NULL;
	pthread_mutex_lock(&C.at.attach_lock);
	if (atomic_load(&C.at.state) != NK_ST_DEAD) {
		err = atomic_load(&C.at.state) == NK_ST_UP ? 0 : -ENETDOWN;
		pthread_mutex_unlock(&C.at.attach_lock);
		return err;
	}
	pthread_mutex_lock(&C.ctl.ctl_lock);
	pthread_mutex_lock(&C.w.cq_lock);
	pthread_mutex_lock(&C.sq.sq_lock);
	pthread_mutex_lock(&C.bp.buf_lock);
	retire_locked();
	err = do_attach(false, 0, &n);
	if (!err && C.at.epoch == old_epoch) {
		/* The same nkd dropped us on purpose: stay detached. */
		atomic_store(&C.at.state, NK_ST_DEAD);
		retire_locked();
		err = -ESTALE;
	} else if (err) {
		atomic_store(&C.at.state, NK_ST_DEAD);
		C.at.hdr = retired_hdr; /* detach_local() cleared it */
		if (refused)
			*why = refused_why;
	} else {
		atomic_store(&C.at.dead_logged, 0);
	}
	pthread_mutex_unlock(&C.bp.buf_lock);
	pthread_mutex_unlock(&C.sq.sq_lock);
	pthread_mutex_unlock(&C.w.cq_lock);
	pthread_mutex_unlock(&C.ctl.ctl_lock);
	pthread_mutex_unlock(&C.at.attach_lock);
	return err;
}

/* ------------------------------------------------------------------------ */
/* fork. */

void nk_conn__fork_prepare(void)
{
	pthread_mutex_lock(&C.at.attach_lock);
	pthread_mutex_lock(&C.ctl.ctl_lock);
	pthread_mutex_lock(&C.w.cq_lock);
	pthread_mutex_lock(&C.sq.sq_lock);
	pthread_mutex_lock(&C.bp.buf_lock);
	nk_fdtab__fork_lock();
}

void nk_conn__fork_parent(void)
{
	nk_fdtab__fork_unlock(false);
	pthread_mutex_unlock(&C.bp.buf_lock);
	pthread_mutex_unlock(&C.sq.sq_lock);
	pthread_mutex_unlock(&C.w.cq_lock);
	pthread_mutex_unlock(&C.ctl.ctl_lock);
	pthread_mutex_unlock(&C.at.attach_lock);
}

void nk_conn__fork_child(bool have_token, uint64_t token, bool eager)
{
	int st = atomic_load(&C.at.state);

	nk_fdtab__fork_unlock(true);
	pthread_mutex_init(&C.bp.buf_lock, NULL);
	pthread_mutex_init(&C.sq.sq_lock, NULL);
	pthread_mutex_init(&C.w.cq_lock, NULL);
	pthread_mutex_init(&C.ctl.ctl_lock, NULL);
	pthread_mutex_init(&C.at.attach_lock, NULL);
	/* The parent's region and control socket are not ours to use. */
	detach_local();
	C.w.reaper_busy = false;
	C.w.nfollowers = 0;
	C.w.wd_running = false; /* threads do not survive fork */
	atomic_store(&C.w.nwaiters, 0);
	atomic_store(&C.bp.inflight, 0);
	for (uint32_t fd = 0; fd < nk_fdtab__size(); fd++) {
		struct nk_sock *s = nk_fdtab__get((int)fd);

		if (!s)
			continue;
		/* The parent's sends complete in the parent's ring. */
		atomic_store(&s->inflight, 0);
		atomic_store(&s->charged, 0);
		/* The parent's SQ positions mean nothing on ours. */
		atomic_store(&s->send_seq, 0);
		/*
		 * Read-ahead data belongs to the parent, which read it from
		 * the socket; its buffer index means nothing in our region.
		 */
		pthread_mutex_init(&s->rx_lock, NULL);
		atomic_store(&s->pf_state, NK_PF_NONE);
		s->pf_idx = -1;
		nk_sock__put(s);
	}
	if (st == NK_ST_UNREACHABLE)
		return;
	if (st == NK_ST_UP || st == NK_ST_CHILD) {
		if (have_token) {
			C.at.child_have_token = true;
			C.at.child_token = token;
			atomic_store(&C.at.state, NK_ST_CHILD);
		} else {
			atomic_store(&C.at.state, nk_fdtab__count()
							  ? NK_ST_DEAD
							  : NK_ST_INIT);
		}
	}
	if (eager && have_token)
		nk_conn__ensure();
}
