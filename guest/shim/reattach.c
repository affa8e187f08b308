// SPDX-License-Identifier: MIT
/*
 * Surviving an nkd restart (docs/shim.md "When nkd restarts").
 *
 * A monitor thread sleeps in poll() on the control socket (no cost while
 * nkd is up). When nkd goes away it:
 *   1. resets every stream connection (its handle becomes NK_HANDLE_LOST:
 *      calls fail with ECONNRESET/EPIPE; the placeholder, whose nkd end
 *      died with nkd, polls POLLIN|POLLHUP so event loops notice);
 *   2. puts a quiet placeholder (a listening AF_UNIX socket nobody
 *      connects to: neither readable nor writable) under the program's fd
 *      of every listener and datagram socket, so event loops sleep instead
 *      of spinning on a hung-up placeholder while nkd is away;
 *   3. attaches again (same guest name, new HELLO/WELCOME, region, rings)
 *      with backoff, for at most NK_REATTACH_S seconds;
 *   4. re-creates those sockets on the new nkd (SOCKET, the options the
 *      program set, BIND to the address nkd had given, LISTEN / CONNECT)
 *      and puts the new placeholder under the same fd numbers. A listener
 *      shared through fork is re-created only by the processes that
 *      accept on it, each with SO_REUSEPORT (recreatable()).
 *
 * Swapping the file under an fd number silently drops it from every epoll
 * set (epoll registers the open file), so each swap reads the process's
 * epoll registrations of that fd from /proc/self/fdinfo (events and data)
 * and registers the new file the same way: the program's epoll loop never
 * knows. poll/select look at fd numbers and need nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define NK_REATTACH_DEFAULT_S 60
#define NK_BACKOFF_MIN_NS (50 * 1000000LL)
#define NK_BACKOFF_MAX_NS (1000 * 1000000LL)
#define NK_EPOLL_MAX 64 /* epoll fds looked at */
#define NK_EPREG_MAX 16 /* registrations of one fd */
/* A held call looks at the reattach at least this often. */
#define NK_HOLD_SLICE_NS (200 * 1000000LL)
#define NK_QREG_MAX 64 /* dead epoll registrations filtered */

static struct {
	atomic_int pending; /* a reattach is under way */
	uint32_t gen; /* futex word: bumped when pending ends */
	int limit_s; /* NK_REATTACH_S; 0 = never reattach */
	pid_t mon_pid; /* process whose monitor runs */
	atomic_int quieted; /* the quiet placeholders are in place */
	int evfd; /* readable once a reattach ends (pollers look again) */
	pid_t evfd_pid;
	char words[96];
} R = { .limit_s = -1, .evfd = -1 };

/* epoll registrations of the dead placeholders, while pending. */
static struct {
	int epfd;
	uint64_t data;
} qregs[NK_QREG_MAX];
static atomic_int nqregs;
static bool recording; /* the monitor's: swap_under notes into qregs */

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000LL,
			       .tv_nsec = ns % 1000000000LL };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------------ */
/* What to replay. */

void nk_rst__note_opt(struct nk_sock *s, int level, int name, const void *val,
		      socklen_t len)
{
	struct nk_replay *rp = &s->rp;
	unsigned int i;

	if (!val || len > NK_REPLAY_OPTLEN)
		return;
	for (i = 0; i < rp->nopts; i++)
		if (rp->opt[i].level == level && rp->opt[i].name == name)
			break;
	if (i == NK_REPLAY_OPTS) {
		nk_dbg("socket %u: option %d/%d not kept for a restart",
		       s->handle, level, name);
		return;
	}
	rp->opt[i].level = level;
	rp->opt[i].name = name;
	rp->opt[i].len = len;
	memcpy(rp->opt[i].val, val, len);
	if (i == rp->nopts)
		rp->nopts++;
}

/* The address nkd gave (an ephemeral port stays the same port). */
static void note_name(struct nk_sock *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (nk_sock__name(s, false, (struct sockaddr *)&ss, &len) == 0 &&
	    nk_addr__from_sa((struct sockaddr *)&ss, len, &s->rp.addr) == 0)
		s->rp.bound = 1;
}

void nk_rst__note_bind(struct nk_sock *s)
{
	note_name(s);
}

void nk_rst__note_listen(struct nk_sock *s, int backlog)
{
	s->rp.backlog = backlog;
	if (!s->rp.bound)
		note_name(s);
}

void nk_rst__note_connect(struct nk_sock *s, const struct nk_sockaddr *peer)
{
	if (s->type != SOCK_DGRAM)
		return;
	s->rp.peer = *peer;
	s->rp.connected = peer->family != 0;
}

/*
 * An exec'd image inherits sockets whose bind, listen and options it never
 * saw: ask nkd for the address, the peer of a datagram socket and the
 * options that decide whether a bind succeeds. The backlog is not
 * readable; the kernel caps the one we use at somaxconn. It counts as
 * ours alone unless we fork (a process that exec'd with a listener hands
 * it over; one that forked first marked it shared in its own memory).
 */
void nk_rst__note_adopted(struct nk_sock *s)
{
	static const int opts[][2] = {
		{ SOL_SOCKET, SO_REUSEADDR },
		{ SOL_SOCKET, SO_REUSEPORT },
		{ IPPROTO_IPV6, IPV6_V6ONLY },
		{ IPPROTO_TCP, TCP_NODELAY },
	};
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	bool listening = atomic_load(&s->listening);

	if (!listening && s->type != SOCK_DGRAM)
		return;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		int v = 0;
		socklen_t l = sizeof(v);

		if ((opts[i][0] == IPPROTO_IPV6 && s->domain != AF_INET6) ||
		    (opts[i][0] == IPPROTO_TCP && s->type != SOCK_STREAM))
			continue;
		if (!nk_sock__getsockopt(s, opts[i][0], opts[i][1], &v, &l) &&
		    v)
			nk_rst__note_opt(s, opts[i][0], opts[i][1], &v,
					 sizeof(v));
	}
	if (nk_sock__name(s, false, (struct sockaddr *)&ss, &len) == 0 &&
	    nk_addr__from_sa((struct sockaddr *)&ss, len, &s->rp.addr) == 0 &&
	    s->rp.addr.port)
		s->rp.bound = 1;
	if (listening)
		s->rp.backlog = SOMAXCONN;
	len = sizeof(ss);
	if (s->type == SOCK_DGRAM &&
	    nk_sock__name(s, true, (struct sockaddr *)&ss, &len) == 0 &&
	    nk_addr__from_sa((struct sockaddr *)&ss, len, &s->rp.peer) == 0 &&
	    s->rp.peer.family)
		s->rp.connected = 1;
}

struct epreg {
	int epfd;
	uint32_t events;
	uint64_t data;
};

void nk_rst__on_fork(void)
{
	uint32_t size;

	if (!nk_fdtab__count())
		return;
	size = nk_fdtab__size();
	for (uint32_t fd = 0; fd < size; fd++) {
		struct nk_sock *s = nk_fdtab__get((int)fd);

		if (s) {
			s->rp.forked = 1;
			nk_sock__put(s);
		}
	}
}

static int eps[NK_EPOLL_MAX], neps; /* the monitor's: epoll_fds() */
static int ep_find(int fd, uint64_t ino, struct epreg *out);

/* Is s in one of this process's epoll sets (under any of its fds)? */
static bool in_epoll(struct nk_sock *s)
{
	uint32_t size = nk_fdtab__size();
	struct epreg regs[NK_EPREG_MAX];
	bool found = false;

	for (uint32_t fd = 0; fd < size && !found; fd++) {
		struct nk_sock *o = nk_fdtab__get((int)fd);

		if (!o)
			continue;
		found = o == s &&
			ep_find((int)fd, nk_sock__ino(s, (int)fd), regs) > 0;
		nk_sock__put(o);
	}
	return found;
}

/*
 * Listeners and every datagram socket come back; connections cannot. A
 * listener shared through fork comes back only in the processes that
 * accept on it (called accept, or watch it with epoll), each as its own
 * SO_REUSEPORT socket: nginx's master, which never accepts, must not get
 * the one socket its workers need.
 */
static bool recreatable(struct nk_sock *s)
{
	if (s->type == SOCK_DGRAM)
		return true;
	if (s->type != SOCK_STREAM || !atomic_load(&s->listening) ||
	    !s->rp.bound)
		return false;
	return !s->rp.forked || s->rp.accepted || in_epoll(s);
}

/* ------------------------------------------------------------------------ */
/* Putting another file under the program's fd numbers. */

static int epoll_fds(int *out, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		char link[64], path[300];
		ssize_t l;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = '\0';
		if (!strcmp(link, "anon_inode:[eventpoll]") &&
		    atoi(de->d_name) != dirfd(d))
			out[n++] = atoi(de->d_name);
	}
	closedir(d);
	return n;
}

/* Registrations of (fd, file with inode ino) in the epoll sets. */
static int ep_find(int fd, uint64_t ino, struct epreg *out)
{
	int n = 0;

	for (int i = 0; i < neps; i++) {
		char path[64], line[256];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", eps[i]);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f) && n < NK_EPREG_MAX) {
			int tfd;
			unsigned int ev;
			unsigned long long data;
			unsigned long tino;
			const char *p = strstr(line, "ino:");

			if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd,
				   &ev, &data) != 3 ||
			    tfd != fd || !p ||
			    sscanf(p, "ino:%lx", &tino) != 1 || tino != ino)
				continue;
			out[n].epfd = eps[i];
			out[n].events = ev;
			out[n].data = data;
			n++;
		}
		fclose(f);
	}
	return n;
}

/* Put nfd's file under every fd naming s, keeping epoll registrations. */
static void swap_under(struct nk_sock *s, int nfd)
{
	uint32_t size = nk_fdtab__size();
	struct stat st;

	for (uint32_t fd = 0; fd < size; fd++) {
		struct nk_sock *o = nk_fdtab__get((int)fd);
		struct epreg regs[NK_EPREG_MAX];
		int nregs, cloexec;

		if (!o)
			continue;
		nk_sock__put(o);
		if (o != s)
			continue;
		cloexec = REAL(fcntl)((int)fd, F_GETFD) & FD_CLOEXEC;
		nregs = ep_find((int)fd, nk_sock__ino(s, (int)fd), regs);
		for (int i = 0; i < nregs; i++) {
			int q = atomic_load(&nqregs);

			epoll_ctl(regs[i].epfd, EPOLL_CTL_DEL, (int)fd, NULL);
			if (recording && q < NK_QREG_MAX) {
				qregs[q].epfd = regs[i].epfd;
				qregs[q].data = regs[i].data;
				atomic_store(&nqregs, q + 1);
			}
		}
		if (REAL(dup3)(nfd, (int)fd, cloexec ? O_CLOEXEC : 0) < 0) {
			nk_log("cannot put the new placeholder under fd %u: %s",
			       fd, strerror(errno));
			continue;
		}
		for (int i = 0; i < nregs; i++) {
			struct epoll_event ev = { .events = regs[i].events,
						  .data.u64 = regs[i].data };

			if (epoll_ctl(regs[i].epfd, EPOLL_CTL_ADD, (int)fd,
				      &ev) < 0)
				nk_log("fd %u: cannot register it again in "
				       "epoll fd %d: %s",
				       fd, regs[i].epfd, strerror(errno));
		}
		nk_dbg("fd %u: new placeholder, %d epoll registrations kept",
		       fd, nregs);
	}
	if (fstat(nfd, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
}

/* Neither readable nor writable: a listening AF_UNIX socket (autobound). */
static int quiet_fd(bool nonblock)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = REAL(socket)(
		AF_UNIX,
		SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0)
		return -1;
	if (REAL(bind)(fd, (struct sockaddr *)&a, sizeof(sa_family_t)) < 0 ||
	    REAL(listen)(fd, 1) < 0) {
		REAL(close)(fd);
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------------------ */
/* Re-creating a socket on the new nkd. */

static int call(struct nk_sqe *sqe)
{
	struct nk_call op;
	int err = nk_ring__call(sqe, &op, false);

	return err ? err : op.cqe.res;
}

static void close_handle(uint32_t h)
{
	struct nk_sqe c = { .opcode = NK_OP_CLOSE, .handle = h };

	call(&c);
}

static int recreate(struct nk_sock *s)
{
	struct nk_sqe sqe = { .opcode = NK_OP_SOCKET };
	struct nk_replay rp = s->rp; /* the replay notes into s->rp again */
	struct sockaddr_storage ss;
	socklen_t len;
	struct stat st;
	uint64_t id;
	int h, pfd, err;

	sqe.sock.domain = s->domain;
	sqe.sock.type = s->type;
	sqe.sock.protocol = s->protocol;
	h = call(&sqe);
	if (h <= 0)
		return h ? h : -EPROTO;
	err = nk_conn__ph_take(&pfd, &id, true);
	if (err)
		goto fail_handle;
	if (atomic_load(&s->nonblock))
		REAL(fcntl)(pfd, F_SETFL, O_NONBLOCK);
	if (fstat(pfd, &st) < 0 ||
	    (err = nk_ctl__ph_bind((uint32_t)h, id, st.st_dev, st.st_ino))) {
		err = err ? err : -errno;
		REAL(close)(pfd);
		goto fail_handle;
	}
	s->handle = (uint32_t)h;
	if (s->type == SOCK_STREAM && rp.forked) {
		int one = 1;

		nk_rst__note_opt(s, SOL_SOCKET, SO_REUSEPORT, &one,
				 sizeof(one));
		rp = s->rp;
	}
	for (unsigned int i = 0; i < rp.nopts; i++) {
		int e = nk_sock__setsockopt(s, pfd, rp.opt[i].level,
					    rp.opt[i].name, rp.opt[i].val,
					    rp.opt[i].len);
		if (e)
			nk_dbg("fd of handle %d: option %d/%d: %s", h,
			       rp.opt[i].level, rp.opt[i].name, strerror(-e));
	}
	err = 0;
	if (rp.bound) {
		len = sizeof(ss);
		nk_addr__to_sa(&rp.addr, (struct sockaddr *)&ss, &len);
		err = nk_sock__bind(s, (struct sockaddr *)&ss, len);
	}
	if (!err && s->type == SOCK_STREAM)
		err = nk_sock__listen(s, rp.backlog);
	if (!err && rp.connected) {
		len = sizeof(ss);
		nk_addr__to_sa(&rp.peer, (struct sockaddr *)&ss, &len);
		err = nk_sock__connect(s, (struct sockaddr *)&ss, len);
	}
	/* A socket that failed keeps its quiet placeholder: no hot loop. */
	if (!err)
		swap_under(s, pfd);
	REAL(close)(pfd);
	if (err) {
		close_handle(s->handle);
		s->handle = NK_HANDLE_LOST;
	}
	return err;
fail_handle:
	close_handle((uint32_t)h);
	return err;
}

/* ------------------------------------------------------------------------ */
/* The monitor. */

static void end_pending(void)
{
	atomic_store(&R.pending, 0);
	atomic_store(&R.quieted, 0);
	atomic_store(&nqregs, 0);
	if (R.evfd >= 0)
		eventfd_write(R.evfd, 1);
	__atomic_add_fetch(&R.gen, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &R.gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Every socket object the fd table names, once, referenced. */
static struct nk_sock **all_socks(int *count)
{
	uint32_t size = nk_fdtab__size();
	struct nk_sock **v = NULL;
	int n = 0, cap = 0;

	for (uint32_t fd = 0; fd < size; fd++) {
		struct nk_sock *s = nk_fdtab__get((int)fd);
		bool seen = false;

		if (!s)
			continue;
		for (int i = 0; i < n && !seen; i++)
			seen = v[i] == s;
		if (seen || (n == cap && !(cap = cap ? 2 * cap : 16,
					   v = realloc(v, cap * sizeof(*v))))) {
			nk_sock__put(s);
			if (!v)
				break;
			continue;
		}
		v[n++] = s;
	}
	*count = v ? n : 0;
	return v;
}

/* Whatever the old nkd held for s is gone with it. */
static void forget_old(struct nk_sock *s)
{
	pthread_mutex_lock(&s->rx_lock);
	/* The buffers belonged to the old region: never free them. */
	atomic_store(&s->pf_state, NK_PF_NONE);
	s->pf_idx = -1;
	s->pf_res = 0;
	s->pf_off = 0;
	s->pf_end = 0;
	atomic_store(&s->rx_batching, 0);
	pthread_mutex_unlock(&s->rx_lock);
	atomic_store(&s->inflight, 0);
	atomic_store(&s->charged, 0);
	atomic_store(&s->send_seq, 0);
	s->handle = NK_HANDLE_LOST;
}

static void reattach(void)
{
	int64_t start = nk_now_ns(),
		deadline = start + R.limit_s * 1000000000LL;
	int64_t backoff = NK_BACKOFF_MIN_NS;
	int n, nkept = 0, nlisten = 0, ndgram = 0, nreset = 0, nfail = 0, err;
	int nleft = 0;
	struct nk_sock **v;
	bool *keep;
	const char *why = NULL, *last_why = NULL;

	/*
	 * Quiet placeholders first, for every listener and datagram socket:
	 * event loops stop seeing the dead ones (readable and hung up) at
	 * once, not after the wait below.
	 */
	if (R.evfd < 0 || R.evfd_pid != getpid()) {
		R.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		R.evfd_pid = getpid();
	} else {
		eventfd_t x;

		eventfd_read(R.evfd, &x); /* unreadable while pending */
	}
	v = all_socks(&n);
	keep = calloc(n ? n : 1, sizeof(*keep));
	neps = epoll_fds(eps, NK_EPOLL_MAX);
	recording = true;
	for (int i = 0; i < n; i++) {
		struct nk_sock *s = v[i];
		int q;

		if (keep)
			keep[i] = recreatable(s);
		if (s->type != SOCK_DGRAM && !atomic_load(&s->listening))
			continue;
		q = quiet_fd(atomic_load(&s->nonblock));
		if (q >= 0) {
			swap_under(s, q);
			REAL(close)(q);
		}
	}
	recording = false;
	atomic_store(&R.quieted, 1);
	/* Waiters were woken with ECONNRESET; let them leave the old ring. */
	for (int i = 0; i < 100 && nk_conn__waiters(); i++)
		sleep_ns(10 * 1000000LL);
	for (int i = 0; i < n; i++) {
		struct nk_sock *s = v[i];

		forget_old(s);
		if (keep && keep[i]) {
			v[nkept++] = s;
			continue;
		}
		if (atomic_load(&s->listening))
			nleft++; /* shared: the processes that accept have it */
		else
			nreset++; /* a connection: as the kernel reports an RST */
		atomic_store(&s->rx_exact, 0);
		atomic_store(&s->tx_ok, 0);
		nk_sock__send_failed(s, ECONNRESET);
		nk_sock__put(s);
	}
	free(keep);
	for (;;) {
		err = nk_conn__reattach(&why);
		if (!err || err == -ESTALE || nk_now_ns() >= deadline)
			break;
		if (why && (!last_why || strcmp(why, last_why)))
			nk_log("nkd at %s refused the reattach: %s; retrying",
			       nk_cfg.socket_path, why);
		last_why = why;
		sleep_ns(backoff);
		backoff = backoff * 2 > NK_BACKOFF_MAX_NS ? NK_BACKOFF_MAX_NS
							  : backoff * 2;
	}
	if (err) {
		if (err == -ESTALE)
			nk_log("nkd at %s dropped this process on purpose; "
			       "socket calls fail with ENETDOWN",
			       nk_cfg.socket_path);
		else
			nk_log("gave up reattaching to nkd at %s after %d s "
			       "(%s); socket calls fail with ENETDOWN",
			       nk_cfg.socket_path, R.limit_s,
			       why ? why : strerror(-err));
		for (int i = 0; i < nkept; i++)
			nk_sock__put(v[i]);
		free(v);
		end_pending();
		return;
	}
	neps = epoll_fds(eps, NK_EPOLL_MAX);
	for (int i = 0; i < nkept; i++) {
		struct nk_sock *s = v[i];

		err = recreate(s);
		if (err) {
			nk_log("could not re-create a %s socket after the "
			       "restart: %s",
			       s->type == SOCK_DGRAM ? "datagram" : "listening",
			       strerror(-err));
			nfail++;
		} else if (s->type == SOCK_DGRAM) {
			ndgram++;
		} else {
			nlisten++;
		}
		nk_sock__put(s);
	}
	free(v);
	end_pending();
	nk_log("reattached to nkd at %s after %lld ms: %d listening and %d "
	       "datagram sockets re-created, %d connections reset%s%s",
	       nk_cfg.socket_path, (long long)(nk_now_ns() - start) / 1000000,
	       nlisten, ndgram, nreset,
	       nleft ? ", shared listeners left to the processes that accept"
		     : "",
	       nfail ? ", some sockets lost" : "");
}

static void *monitor(void *arg)
{
	sigset_t all;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	pthread_setname_np(pthread_self(), "nk-restart");
	for (;;) {
		enum nk_state st = nk_conn__state();
		int fd = nk_conn__ctl_fd();

		if (st == NK_ST_UP && fd >= 0) {
			struct pollfd p = { .fd = fd, .events = POLLRDHUP };

			if (REAL(poll)(&p, 1, -1) < 0 && errno != EINTR) {
				sleep_ns(NK_BACKOFF_MAX_NS);
				continue;
			}
			nk_conn__check_alive();
			/* Not ours to see (the fd moved): look again later. */
			if (nk_conn__state() == NK_ST_UP)
				sleep_ns(NK_BACKOFF_MAX_NS);
			continue;
		}
		if (st != NK_ST_DEAD || !atomic_load(&R.pending))
			break;
		reattach();
	}
	R.mon_pid = 0;
	return NULL;
}

void nk_rst__on_attach(void)
{
	if (R.limit_s < 0) {
		const char *v = secure_getenv("NK_REATTACH_S");

		R.limit_s = v && *v ? atoi(v) : NK_REATTACH_DEFAULT_S;
		if (R.limit_s < 0)
			R.limit_s = 0;
	}
	if (!R.limit_s || R.mon_pid == getpid())
		return;
	if (nk_thread__start_quiet(monitor, 256 * 1024) == 0)
		R.mon_pid = getpid();
	else
		nk_log("cannot start the restart monitor; a restarted nkd "
		       "will not be reattached");
}

const char *nk_rst__on_dead(void)
{
	if (R.limit_s <= 0 || R.mon_pid != getpid())
		return "pending and new socket calls fail";
	atomic_store(&R.pending, 1);
	snprintf(R.words, sizeof(R.words),
		 "connections reset; reattaching for up to %d s", R.limit_s);
	return R.words;
}

bool nk_rst__pending(void)
{
	return atomic_load_explicit(&R.pending, memory_order_relaxed);
}

/*
 * A listener or datagram socket comes back after the reattach: a call on
 * it that failed only because nkd is away must not return at once (a
 * blocking recvfrom loop would spin on ECONNRESET for the whole outage).
 * Blocking: sleep until the reattach ends, bounded by SO_RCVTIMEO or
 * SO_SNDTIMEO (then EAGAIN, as when that timeout expires) and by signals
 * (EINTR); then the caller tries again, on the re-created socket, or gets
 * ENETDOWN once the shim gave up. Non-blocking: EAGAIN, as an idle socket
 * answers. Returns 1 to try again, else the result to return.
 */
long nk_rst__hold(struct nk_sock *s, long r, int flags, bool rx,
		  int64_t *deadline)
{
	uint32_t g = __atomic_load_n(&R.gen, __ATOMIC_SEQ_CST);
	int64_t now, ns = NK_HOLD_SLICE_NS;

	if ((r != -ECONNRESET && r != -ENETDOWN) || !atomic_load(&R.pending) ||
	    (s->type != SOCK_DGRAM && !atomic_load(&s->listening)))
		return r;
	if (atomic_load(&s->nonblock) || (flags & MSG_DONTWAIT))
		return -EAGAIN;
	now = nk_now_ns();
	if (!*deadline) {
		int64_t us =
			atomic_load(rx ? &s->rcvtimeo_us : &s->sndtimeo_us);

		*deadline = us > 0 ? now + us * 1000 : -1;
	}
	if (*deadline > 0) {
		if (now >= *deadline)
			return -EAGAIN;
		if (*deadline - now < ns)
			ns = *deadline - now;
	}
	struct timespec ts = { .tv_sec = ns / 1000000000LL,
			       .tv_nsec = ns % 1000000000LL };

	if (syscall(SYS_futex, &R.gen, FUTEX_WAIT_PRIVATE, g, &ts, NULL, 0) <
		    0 &&
	    errno == EINTR)
		return -EINTR;
	return 1;
}

long nk_rst__accept(struct nk_sock *s, int fd, struct sockaddr *sa,
		    socklen_t *len, int flags)
{
	long r;

	for (;;) {
		uint32_t g = __atomic_load_n(&R.gen, __ATOMIC_SEQ_CST);

		if (atomic_load(&s->listening) && atomic_load(&R.pending)) {
			/* The listener comes back: nothing to accept yet. */
			if (atomic_load(&s->nonblock)) {
				r = -EAGAIN;
				break;
			}
			struct timespec ts = { .tv_nsec = 200 * 1000000L };

			if (syscall(SYS_futex, &R.gen, FUTEX_WAIT_PRIVATE, g,
				    &ts, NULL, 0) < 0 &&
			    errno == EINTR) {
				r = -EINTR;
				break;
			}
			continue;
		}
		if (!s->rp.accepted)
			s->rp.accepted = 1;
		r = nk_conn__ensure();
		if (r == -EHOSTUNREACH)
			r = -ENETDOWN;
		if (!r)
			r = nk_sock__accept(s, fd, sa, len, flags);
		/* nkd went away under this accept: wait for it as above. */
		if ((r == -ECONNRESET || r == -ENETDOWN) &&
		    atomic_load(&s->listening) && atomic_load(&R.pending))
			continue;
		break;
	}
	nk_sock__put(s);
	return r;
}

/* ------------------------------------------------------------------------ */
/* poll, epoll and select while nkd is away. */

/* A listener or datagram socket; with live: not shut down by the program
 * (its placeholder hangs up only if nkd closed its end). */
static bool kept_fd(int fd, bool live)
{
	struct nk_sock *s;
	bool kept;

	if (!nk_fdtab__maybe(fd) || !(s = nk_fdtab__get(fd)))
		return false;
	kept = (s->type == SOCK_DGRAM || atomic_load(&s->listening)) &&
	       (!live || !atomic_load(&s->wr_shut));
	nk_sock__put(s);
	return kept;
}

/* The quiet placeholders are in place a few ms after the loss. */
static void wait_quiet(void)
{
	for (int i = 0;
	     i < 1000 && atomic_load(&R.pending) && !atomic_load(&R.quieted);
	     i++)
		sleep_ns(1000000LL);
}

/*
 * Is nkd gone (a hang-up was seen)? A placeholder of a listener or a
 * datagram socket the program did not shut down hangs up only when its
 * nkd end closed: nkd is exiting, and the control socket closes in the
 * same exit, but later (its io_uring is torn down after the process, a
 * few ms to tens of ms): wait_ms for it. Any other hang-up (a
 * connection's, seen by epoll) costs one poll of the control socket.
 */
static bool nkd_gone(int wait_ms)
{
	int fd = nk_conn__ctl_fd();

	if (!atomic_load(&R.pending) && R.mon_pid == getpid() && fd >= 0 &&
	    nk_conn__state() == NK_ST_UP) {
		struct pollfd p = { .fd = fd, .events = POLLRDHUP };

		REAL(poll)(&p, 1, wait_ms);
		nk_conn__check_alive();
	}
	return atomic_load(&R.pending);
}

bool nk_rst__poll_dead(const struct pollfd *fds, nfds_t n)
{
	bool hup = false;

	for (nfds_t i = 0; i < n && !hup; i++)
		hup = (fds[i].revents & POLLHUP) && kept_fd(fds[i].fd, true);
	return hup && nkd_gone(200);
}

/*
 * poll during a reattach. The files under the program's fds change
 * (swap_under), and a poll sleeping in the kernel stays registered on the
 * files it found first, so sleep with one more fd, readable when the
 * reattach ends, and look again then. A dead placeholder (POLLHUP on a
 * socket that comes back) is not reported. Returns poll's count, -errno,
 * or NK_RST_AGAIN: the reattach ended, poll normally until *deadline.
 */
int nk_rst__poll(struct pollfd *fds, nfds_t n, int64_t deadline,
		 const sigset_t *mask)
{
	struct pollfd *v = malloc((n + 1) * sizeof(*v));
	int r;

	if (!v)
		return -ENOMEM;
	for (;;) {
		struct timespec ts, *tsp = NULL;
		int cnt = 0;

		wait_quiet();
		if (!atomic_load(&R.pending) || R.evfd < 0) {
			r = NK_RST_AGAIN;
			break;
		}
		memcpy(v, fds, n * sizeof(*v));
		v[n] = (struct pollfd){ .fd = R.evfd, .events = POLLIN };
		if (deadline >= 0) {
			int64_t left = deadline - nk_now_ns();

			left = left > 0 ? left : 0;
			ts.tv_sec = left / 1000000000LL;
			ts.tv_nsec = left % 1000000000LL;
			tsp = &ts;
		}
		r = REAL(ppoll)(v, n + 1, tsp, mask);
		if (r <= 0) {
			r = r < 0 ? -errno : 0;
			break;
		}
		for (nfds_t i = 0; i < n; i++) {
			fds[i].revents = v[i].revents;
			if ((v[i].revents & POLLHUP) &&
			    atomic_load(&R.pending) && kept_fd(v[i].fd, false))
				fds[i].revents = 0;
			cnt += fds[i].revents != 0;
		}
		if (cnt) {
			r = cnt;
			break;
		}
	}
	free(v);
	return r;
}

int nk_rst__epoll_dead(int epfd, struct epoll_event *ev, int n)
{
	bool hup = false;
	int k = 0, q;

	for (int i = 0; i < n && !hup; i++)
		hup = ev[i].events & EPOLLHUP;
	if (!hup || !nkd_gone(0))
		return n;
	wait_quiet();
	q = atomic_load(&nqregs);
	for (int i = 0; i < n; i++) {
		bool dead = false;

		for (int j = 0; j < q && !dead && (ev[i].events & EPOLLHUP);
		     j++)
			dead = qregs[j].epfd == epfd &&
			       qregs[j].data == ev[i].data.u64;
		if (!dead)
			ev[k++] = ev[i];
	}
	return k;
}
