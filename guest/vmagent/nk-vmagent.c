// SPDX-License-Identifier: MIT
/*
 * nk-vmagent: netkernel's agent inside a VM guest (docs/vm.md
 * "Transport"). To the shim of every process in the VM it looks like nkd:
 * a SOCK_SEQPACKET control socket with HELLO/WELCOME and descriptors.
 * Towards nkd it speaks the framing of netkernel/vmchan.h over one byte
 * stream (a virtio-serial port /dev/vportNpM, or a unix stream socket
 * when the "VM" is simulated), since no descriptor and no futex crosses a
 * VM boundary:
 *   - the region fd it gives a shim is the shared memory itself (the
 *     ivshmem BAR's resource2 file, or the file), with the window offset
 *     nkd chose in the WELCOME's nk_ctl_welcome_vm;
 *   - the doorbell is a stream socketpair: the shim writes to ring nkd
 *     (a BELL frame), the agent writes a byte when nkd says the CQ moved
 *     (a WAKE frame) and the shim sleeps in poll() on it;
 *   - placeholders are socketpairs the agent makes here (PH_NEW) and
 *     keeps in the state nkd's own pairs are in (PH_OP), exactly as
 *     nkd's placeholder.c does to its pairs.
 * One process, one thread, poll(); nothing runs while nothing happens.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "netkernel/ctl.h"
#include "netkernel/version.h"
#include "netkernel/vmchan.h"

#define PH_SNDBUF 4096
#define PH_BUDGET (256u * 1024u)

struct aconn {
	bool used;
	uint32_t id;
	int fd; /* the shim's control connection */
	int bell; /* our end of its doorbell pair, -1 before WELCOME */
	int pool; /* our end of its pool channel, -1 before WELCOME */
	pid_t pid;
	uint32_t *applied; /* its window's vm_ph_applied, NULL before */
	uint64_t ask_seq; /* its last FORK_PREPARE or EXEC */
	bool ask_exec;
};

struct aph {
	uint64_t id;
	uint32_t conn; /* the conn it was handed to, until bound */
	bool bound;
	int app; /* our copy of the app end */
	int agent; /* the other end; -1 once hung up */
};

/*
 * Fork and exec tokens of the VM's processes: nkd cannot see the VM's
 * pids, so the agent makes the checks nkd makes for a namespace guest
 * (docs/abi.md §7): an exec token only for the process that asked, a
 * fork token only for its child.
 */
#define MAX_TOKENS 256
struct atoken {
	uint64_t token;
	pid_t owner, child;
	bool exec;
};

static struct {
	int chan, lfd, region;
	uint64_t region_base, region_size;
	bool chan_is_sock;
	const char *listen_path;
	struct aconn conns[NK_VMF_MAX_CONNS];
	uint32_t next_id;
	struct aph *ph;
	size_t nph, cap_ph;
	uint8_t in[2 * NK_VMF_MAX];
	size_t in_len;
	bool greeted, debug;
	bool lost; /* the channel closed: wait for nkd and attach again */
	const char *chan_path;
	uint8_t *map; /* the region, to publish vm_ph_applied */
	uint32_t ph_applied; /* PH_OP frames applied since our HELLO */
	struct atoken tok[MAX_TOKENS];
	unsigned ntok, tok_next;
} A = { .chan = -1, .lfd = -1, .region = -1, .next_id = 1 };

static void logm(const char *fmt, ...)
{
	va_list ap;

	fputs("nk-vmagent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define dbg(...)                           \
	do {                               \
		if (A.debug)               \
			logm(__VA_ARGS__); \
	} while (0)

/*
 * A virtio-serial port whose host end is not connected (nkd restarting,
 * QEMU not yet reconnected) says EAGAIN to a non-blocking write and
 * POLLHUP to poll(), at once and for as long as it lasts: there is no
 * event to wait for, so the agent looks again every 100 ms. Attached, a
 * hang-up drops the frame and marks the channel lost (main() attaches
 * again); before that, the write waits for the host.
 */
static void write_all(const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n && !A.lost) {
		ssize_t w = write(A.chan, b, n);

		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			struct pollfd pf = { .fd = A.chan, .events = POLLOUT };

			if (poll(&pf, 1, 1000) > 0 && (pf.revents & POLLHUP) &&
			    !(pf.revents & POLLOUT)) {
				if (A.greeted)
					A.lost = true;
				else
					usleep(100 * 1000);
			}
			continue;
		}
		if (w <= 0) {
			logm("channel write: %s", strerror(errno));
			A.lost = true;
			return;
		}
		b += w;
		n -= (size_t)w;
	}
}

static void frame(uint16_t type, uint32_t conn, const void *body, size_t len)
{
	struct nk_vmf_hdr h = { .len = (uint32_t)(sizeof(h) + len),
				.type = type,
				.conn = conn };
	uint8_t buf[sizeof(h) + NK_VMF_MAX];

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), body, len);
	write_all(buf, sizeof(h) + len); /* one write: frames stay whole */
}

static struct atoken *tok_find(uint64_t t)
{
	for (unsigned i = 0; i < A.ntok; i++)
		if (A.tok[i].token == t)
			return &A.tok[i];
	return NULL;
}

static void tok_forget(struct atoken *t)
{
	*t = A.tok[--A.ntok];
}

static void tok_add(uint64_t t, pid_t owner, bool exec)
{
	struct atoken *n;

	if (!t || tok_find(t))
		return;
	if (A.ntok < MAX_TOKENS)
		n = &A.tok[A.ntok++];
	else /* full: the oldest slot goes (nkd's own TTL is 10 s) */
		n = &A.tok[A.tok_next++ % MAX_TOKENS];
	*n = (struct atoken){ .token = t, .owner = owner, .exec = exec };
}

static pid_t ppid_of(pid_t pid)
{
	char path[64], line[256];
	FILE *f;
	int pp = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "PPid: %d", &pp) == 1)
			break;
	fclose(f);
	return pp;
}

/* May this process present the token? Unknown tokens are nkd's to refuse. */
static bool tok_claim_ok(uint64_t t, pid_t pid)
{
	struct atoken *a = tok_find(t);
	bool ok;

	if (!a)
		return true;
	if (a->exec)
		ok = pid == a->owner;
	else if (a->child > 0)
		ok = pid == a->child;
	else
		ok = pid > 0 && ppid_of(pid) == a->owner;
	if (ok)
		tok_forget(a);
	return ok;
}

static struct aconn *conn_find(uint32_t id)
{
	for (unsigned i = 0; i < NK_VMF_MAX_CONNS; i++)
		if (A.conns[i].used && A.conns[i].id == id)
			return &A.conns[i];
	return NULL;
}

static struct aph *ph_find(uint64_t id)
{
	for (size_t i = 0; i < A.nph; i++)
		if (A.ph[i].id == id)
			return &A.ph[i];
	return NULL;
}

static void ph_forget(struct aph *p)
{
	if (p->app >= 0)
		close(p->app);
	if (p->agent >= 0)
		close(p->agent);
	*p = A.ph[--A.nph];
}

static void conn_close(struct aconn *c, bool tell)
{
	if (!c->used)
		return;
	if (tell)
		frame(NK_VMF_CLOSE, c->id, NULL, 0);
	close(c->fd);
	if (c->bell >= 0)
		close(c->bell);
	if (c->pool >= 0)
		close(c->pool);
	/* Pool placeholders it never bound die with it, as in nkd. */
	for (size_t i = 0; i < A.nph;) {
		if (!A.ph[i].bound && A.ph[i].conn == c->id)
			ph_forget(&A.ph[i]);
		else
			i++;
	}
	c->used = false;
}

/* As nkd's placeholder.c, on our pairs: true when emptied. */
static bool drain(int fd)
{
	char buf[4096];
	size_t budget = PH_BUDGET;
	ssize_t n;

	do {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			budget = (size_t)n > budget ? 0 : budget - (size_t)n;
	} while (n == (ssize_t)sizeof(buf) && budget);
	return budget != 0;
}

static void fill(int fd)
{
	static const char zeros[4096];
	size_t budget = PH_BUDGET;

	while (budget >= sizeof(zeros) &&
	       send(fd, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
		budget -= sizeof(zeros);
}

static void ph_op(const struct nk_vmf_ph *m)
{
	struct aph *p = ph_find(m->id);

	if (!p)
		return; /* given back, or raced with its close */
	dbg("ph %llu op %u arg %u", (unsigned long long)m->id, m->op, m->arg);
	if (m->op == NK_VMPH_CLOSE) {
		ph_forget(p);
		return;
	}
	if (p->agent < 0)
		return; /* hung up: readable and writable for good */
	switch (m->op) {
	case NK_VMPH_READ:
		if (m->arg)
			send(p->agent, "r", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			drain(p->app);
		break;
	case NK_VMPH_WRITE:
		if (m->arg)
			drain(p->agent);
		else
			fill(p->app);
		break;
	case NK_VMPH_RDHUP:
		shutdown(p->agent, SHUT_WR);
		break;
	case NK_VMPH_HANGUP:
		if (m->arg)
			send(p->app, "e", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			drain(p->agent);
		close(p->agent);
		p->agent = -1;
		break;
	default:
		break;
	}
}

static int send_fds(int fd, const void *buf, size_t len, const int *fds,
		    int nfds)
{
	union {
		char b[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static void ph_new(struct aconn *c, uint64_t id)
{
	struct nk_ctl_ph_pool m = {
		.hdr = { .type = NK_CTL_PH_POOL, .len = sizeof(m) },
		.id = id,
	};
	int sv[2], sndbuf = PH_SNDBUF;

	if (c->pool < 0 || ph_find(id) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return;
	if (A.nph == A.cap_ph) {
		size_t cap = A.cap_ph ? A.cap_ph * 2 : 64;
		struct aph *n = realloc(A.ph, cap * sizeof(*n));

		if (!n) {
			close(sv[0]);
			close(sv[1]);
			return;
		}
		A.ph = n;
		A.cap_ph = cap;
	}
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	A.ph[A.nph++] = (struct aph){
		.id = id, .conn = c->id, .app = sv[0], .agent = sv[1]
	};
	/* The shim's pool channel: PH_POOL with the app end, as nkd sends. */
	send_fds(c->pool, &m, sizeof(m), &sv[0], 1);
}

/* A WELCOME from nkd: the descriptors are made here. */
static void welcome(struct aconn *c, uint8_t *buf, size_t len)
{
	struct nk_ctl_welcome w;
	struct nk_ctl_welcome_vm x;
	int bell[2], pool[2], fds[3];
	size_t hl;

	memcpy(&w, buf, sizeof(w));
	hl = sizeof(w) + (size_t)w.nr_handles * sizeof(struct nk_ctl_handle);
	if (w.status || len != hl + sizeof(x)) {
		send_fds(c->fd, buf, len, NULL, 0); /* refusal or probe */
		return;
	}
	memcpy(&x, buf + hl, sizeof(x));
	if (x.magic != NK_WELCOME_VM_MAGIC || x.region_off % 4096 ||
	    x.region_off + w.region_size > A.region_size) {
		logm("nkd's WELCOME names a window outside the region");
		conn_close(c, true);
		return;
	}
	x.region_off += A.region_base;
	memcpy(buf + hl, &x, sizeof(x));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bell)) {
		conn_close(c, true);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pool)) {
		close(bell[0]);
		close(bell[1]);
		conn_close(c, true);
		return;
	}
	fds[0] = A.region;
	fds[1] = bell[0];
	fds[2] = pool[0];
	c->bell = bell[1];
	c->pool = pool[1];
	if (A.map)
		c->applied = (uint32_t *)(A.map + x.region_off - A.region_base +
					  offsetof(struct nk_region_hdr,
						   vm_ph_applied));
	fcntl(c->bell, F_SETFL, O_NONBLOCK);
	fcntl(c->pool, F_SETFL, O_NONBLOCK);
	if (send_fds(c->fd, buf, len, fds, 3))
		conn_close(c, true);
	close(bell[0]);
	close(pool[0]);
}

static void frame_in(const struct nk_vmf_hdr *h, uint8_t *body, size_t len)
{
	struct aconn *c;

	if (h->type == NK_VMF_HELLO) {
		struct nk_vmf_hello hi;

		if (len != sizeof(hi))
			return;
		memcpy(&hi, body, sizeof(hi));
		if (hi.magic != NK_VMF_MAGIC || hi.version != NK_VMF_VERSION) {
			logm("nkd speaks another channel version");
			exit(1);
		}
		if (A.region_size && hi.region_size > A.region_size)
			logm("nkd's region (%llu bytes) is larger than %llu "
			     "bytes mapped here",
			     (unsigned long long)hi.region_size,
			     (unsigned long long)A.region_size);
		if (!A.region_size)
			A.region_size = hi.region_size;
		A.greeted = true;
		A.ph_applied = 0; /* nkd counts from its HELLO too */
		logm("attached to nkd (region %llu bytes)",
		     (unsigned long long)hi.region_size);
		return;
	}
	if (h->type == NK_VMF_PH_OP) {
		struct nk_vmf_ph m;

		if (len == sizeof(m)) {
			memcpy(&m, body, sizeof(m));
			ph_op(&m);
		}
		A.ph_applied++;
		return;
	}
	c = conn_find(h->conn);
	if (!c)
		return;
	switch (h->type) {
	case NK_VMF_CLOSE:
		conn_close(c, false);
		break;
	case NK_VMF_CTL:
		if (len == sizeof(struct nk_ctl_status) && c->ask_seq) {
			struct nk_ctl_status st;

			memcpy(&st, body, sizeof(st));
			if (st.hdr.type == NK_CTL_STATUS &&
			    st.hdr.seq == c->ask_seq && !st.status)
				tok_add(st.token, c->pid, c->ask_exec);
		}
		if (len >= sizeof(struct nk_ctl_welcome) &&
		    ((struct nk_ctl_hdr *)body)->type == NK_CTL_WELCOME)
			welcome(c, body, len);
		else if (send_fds(c->fd, body, len, NULL, 0))
			conn_close(c, true);
		break;
	case NK_VMF_PH_NEW:
		if (len == sizeof(struct nk_vmf_ph)) {
			struct nk_vmf_ph m;

			memcpy(&m, body, sizeof(m));
			ph_new(c, m.id);
		}
		break;
	case NK_VMF_WAKE:
		if (c->bell >= 0)
			send(c->bell, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	default:
		break;
	}
}

static void chan_read(void)
{
	size_t off = 0;
	ssize_t n = read(A.chan, A.in + A.in_len, sizeof(A.in) - A.in_len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Before nkd's HELLO a port says EOF until the VM has seen
		 * the host connect: "not yet", not the end (docs/vm.md). */
		if (A.greeted)
			logm("channel to nkd closed (%s): waiting for nkd",
			     n ? strerror(errno) : "end of file");
		A.lost = true;
		return;
	}
	A.in_len += (size_t)n;
	while (A.in_len - off >= sizeof(struct nk_vmf_hdr)) {
		struct nk_vmf_hdr h;

		memcpy(&h, A.in + off, sizeof(h));
		if (h.len < sizeof(h) || h.len > NK_VMF_MAX) {
			logm("bad frame from nkd (len %u)", h.len);
			A.lost = true;
			A.in_len = 0;
			return;
		}
		if (A.in_len - off < h.len)
			break;
		frame_in(&h, A.in + off + sizeof(h), h.len - sizeof(h));
		off += h.len;
	}
	memmove(A.in, A.in + off, A.in_len - off);
	A.in_len -= off;
	/* What a shim's NOP barrier waits for (abi.md §9). */
	for (unsigned i = 0; i < NK_VMF_MAX_CONNS; i++)
		if (A.conns[i].used && A.conns[i].applied)
			__atomic_store_n(A.conns[i].applied, A.ph_applied,
					 __ATOMIC_RELEASE);
}

static void refuse(int fd, uint64_t seq, int status, const char *why)
{
	struct {
		struct nk_ctl_welcome w;
		char text[160];
	} m = { 0 };
	size_t tl = strlen(why) + 1;

	m.w.hdr.type = NK_CTL_WELCOME;
	m.w.hdr.len = (uint32_t)(sizeof(m.w) + tl);
	m.w.hdr.seq = seq;
	m.w.status = status;
	memcpy(m.text, why, tl);
	send_fds(fd, &m, m.w.hdr.len, NULL, 0);
}

/* A message of a shim, to nkd. */
static void shim_read(struct aconn *c)
{
	static uint8_t buf[NK_CTL_MAX_MSG];
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct nk_ctl_hdr h;
	ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < (ssize_t)sizeof(h) || mh.msg_controllen) {
		/* Gone, or sent descriptors (nkd takes none either). */
		if (mh.msg_controllen) {
			struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t j = 0; j < k; j++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + j * sizeof(int),
				       sizeof(fd));
				close(fd);
			}
		}
		conn_close(c, true);
		return;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.type == NK_CTL_HELLO &&
	    (size_t)n == sizeof(struct nk_ctl_hello)) {
		struct nk_ctl_hello hello;

		memcpy(&hello, buf, sizeof(hello));
		if (!(hello.flags & (NK_HELLO_F_VM | NK_HELLO_F_PROBE))) {
			refuse(c->fd, h.seq, -EPROTO,
			       "this shim does not know VM mode "
			       "(NK_HELLO_F_VM): use the guest package of "
			       "the same netkernel as nk-vmagent");
			return;
		}
		if ((hello.flags & NK_HELLO_F_INHERIT) &&
		    !(hello.flags & NK_HELLO_F_PROBE) &&
		    !tok_claim_ok(hello.inherit_token, c->pid)) {
			logm("pid %d presented a token made for another "
			     "process, refused",
			     (int)c->pid);
			refuse(c->fd, h.seq, -EPERM,
			       "this hand-over token was made for another "
			       "process (nk-vmagent)");
			return;
		}
	} else if ((h.type == NK_CTL_FORK_PREPARE || h.type == NK_CTL_EXEC) &&
		   (size_t)n == sizeof(h)) {
		c->ask_seq = h.seq;
		c->ask_exec = h.type == NK_CTL_EXEC;
	} else if ((h.type == NK_CTL_FORK_COMMIT ||
		    h.type == NK_CTL_TOKEN_ABORT) &&
		   (size_t)n == sizeof(struct nk_ctl_token)) {
		struct nk_ctl_token t;
		struct atoken *a;

		memcpy(&t, buf, sizeof(t));
		a = tok_find(t.token);
		if (a && a->owner == c->pid) {
			if (h.type == NK_CTL_TOKEN_ABORT)
				tok_forget(a);
			else if (t.child_pid > 0 &&
				 ppid_of(t.child_pid) == c->pid)
				a->child = t.child_pid;
		}
	} else if (h.type == NK_CTL_PH_BIND &&
		   (size_t)n == sizeof(struct nk_ctl_ph_bind)) {
		struct nk_ctl_ph_bind b;
		struct aph *p;

		memcpy(&b, buf, sizeof(b));
		p = ph_find(b.id);
		if (p && !b.handle)
			ph_forget(p); /* given back: nkd closes its pair */
		else if (p)
			p->bound = true;
	}
	frame(NK_VMF_CTL, c->id, buf, (size_t)n);
}

static void do_accept(void)
{
	struct nk_vmf_open o = { 0 };
	struct aconn *c = NULL;
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	int fd = accept4(A.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (unsigned i = 0; i < NK_VMF_MAX_CONNS && !c; i++)
		if (!A.conns[i].used)
			c = &A.conns[i];
	if (!c || !A.greeted) {
		refuse(fd, 0, c ? -EAGAIN : -EMFILE,
		       c ? "nk-vmagent is not attached to nkd yet"
			 : "nk-vmagent has too many connections");
		close(fd);
		return;
	}
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl))
		o.pid = cr.pid;
	*c = (struct aconn){ .used = true,
			     .id = A.next_id++,
			     .fd = fd,
			     .bell = -1,
			     .pool = -1,
			     .pid = o.pid };
	if (!A.next_id)
		A.next_id = 1;
	dbg("conn %u: pid %d", c->id, (int)o.pid);
	frame(NK_VMF_OPEN, c->id, &o, sizeof(o));
}

static int open_channel(const char *path, bool quiet)
{
	struct stat st;
	int fd;

	if (stat(path, &st)) {
		if (!quiet)
			logm("channel %s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISSOCK(st.st_mode)) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 &&
		    connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
			if (!quiet)
				logm("channel %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		A.chan_is_sock = true;
	} else {
		/* A virtio-serial port: a plain byte stream. */
		fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			logm("channel %s: %s", path, strerror(errno));
	}
	if (fd >= 0)
		fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
			0);

	if (strlen(path) >= sizeof(sun.sun_path)) {
		logm("--listen %s: path too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(path, 0666) || listen(fd, 64)) {
		logm("--listen %s: %s", path, strerror(errno));
		return -1;
	}
	return fd;
}

/*
 * (Re)attach: forget every process of the VM (an nkd that went away took
 * their connections and sockets with it, as for a namespace guest), send
 * HELLO and wait for nkd's, as long as it takes: QEMU reconnects to a
 * restarted nkd's socket by itself (reconnect=1). A unix socket channel
 * (the simulated VM) is connected again instead.
 */
static void attach(void)
{
	struct nk_vmf_hello hi = { .magic = NK_VMF_MAGIC,
				   .version = NK_VMF_VERSION };
	bool said = false, told = false;

	for (unsigned i = 0; i < NK_VMF_MAX_CONNS; i++)
		conn_close(&A.conns[i], false);
	while (A.nph)
		ph_forget(&A.ph[A.nph - 1]);
	A.ntok = 0;
	A.greeted = false;
	for (;;) {
		struct pollfd pf;

		if (A.lost) {
			A.lost = false;
			A.in_len = 0;
			said = false;
			if (A.chan_is_sock) {
				close(A.chan);
				A.chan = -1;
			}
			usleep(200 * 1000);
		}
		if (A.chan < 0) {
			A.chan = open_channel(A.chan_path, true);
			if (A.chan < 0) {
				A.lost = true;
				continue;
			}
		}
		if (!said) {
			frame(NK_VMF_HELLO, 0, &hi, sizeof(hi));
			said = !A.lost;
			continue;
		}
		pf = (struct pollfd){ .fd = A.chan, .events = POLLIN };
		if (poll(&pf, 1, 10000) == 0) {
			if (!told)
				logm("no answer from nkd on %s yet: waiting",
				     A.chan_path);
			told = true;
			continue;
		}
		chan_read();
		if (A.greeted)
			return;
		if (A.lost && !A.chan_is_sock) {
			/* EOF: the port's host end is not connected (yet);
			 * our HELLO waits in it, or was lost with the old
			 * connection: say it again once it is writable. */
			A.lost = false;
			usleep(100 * 1000);
			said = false;
		}
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nk-vmagent --channel PATH --region PATH [options]\n"
		"  -c, --channel PATH  the stream to nkd: a virtio-serial port\n"
		"                      (/dev/vport0p1) or a unix socket\n"
		"  -r, --region PATH   the shared memory: the ivshmem BAR\n"
		"                      (/sys/bus/pci/devices/X/resource2) or "
		"the file\n"
		"  -o, --offset N      where nkd's file starts in PATH (0)\n"
		"  -l, --listen PATH   control socket for the shims\n"
		"                      (default %s)\n"
		"  -d, --debug         log every placeholder operation\n"
		"      --version       print the version and exit\n",
		NK_CTL_DEFAULT_PATH);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "channel", required_argument, NULL, 'c' },
		{ "region", required_argument, NULL, 'r' },
		{ "offset", required_argument, NULL, 'o' },
		{ "listen", required_argument, NULL, 'l' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *chan = NULL, *region = NULL;
	struct stat st;
	int c;

	A.listen_path = NK_CTL_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:r:o:l:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			chan = optarg;
			break;
		case 'r':
			region = optarg;
			break;
		case 'o':
			A.region_base = strtoull(optarg, NULL, 0);
			break;
		case 'l':
			A.listen_path = optarg;
			break;
		case 'd':
			A.debug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("nk-vmagent (netkernel) %s\n",
			       NK_VERSION_STRING);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!chan || !region || optind != argc || A.region_base % 4096) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	A.region = open(region, O_RDWR | O_CLOEXEC);
	if (A.region < 0 || fstat(A.region, &st)) {
		logm("region %s: %s", region, strerror(errno));
		return 1;
	}
	/* resource2 has the BAR's size; 0 (unknown): nkd's word. */
	if (st.st_size > (off_t)A.region_base)
		A.region_size = (uint64_t)st.st_size - A.region_base;
	if (A.region_size) {
		A.map = mmap(NULL, A.region_size, PROT_READ | PROT_WRITE,
			     MAP_SHARED, A.region, (off_t)A.region_base);
		if (A.map == MAP_FAILED) {
			logm("region %s: mmap: %s", region, strerror(errno));
			return 1;
		}
	}
	A.chan_path = chan;
	A.chan = open_channel(chan, false);
	if (A.chan < 0)
		return 1;
	/* nkd's HELLO first: shims are turned away until then. */
	attach();
	A.lfd = listen_on(A.listen_path);
	if (A.lfd < 0)
		return 1;
	logm("listening on %s", A.listen_path);
	for (;;) {
		struct pollfd pf[2 + 2 * NK_VMF_MAX_CONNS];
		struct aconn *who[2 + 2 * NK_VMF_MAX_CONNS];
		unsigned n = 0;

		pf[n++] = (struct pollfd){ .fd = A.chan, .events = POLLIN };
		pf[n++] = (struct pollfd){ .fd = A.lfd, .events = POLLIN };
		for (unsigned i = 0; i < NK_VMF_MAX_CONNS; i++) {
			struct aconn *a = &A.conns[i];

			if (!a->used)
				continue;
			who[n] = a;
			pf[n++] = (struct pollfd){ .fd = a->fd,
						   .events = POLLIN };
			if (a->bell >= 0) {
				who[n] = a;
				pf[n++] = (struct pollfd){ .fd = a->bell,
							   .events = POLLIN };
			}
		}
		if (poll(pf, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			logm("poll: %s", strerror(errno));
			return 1;
		}
		if (pf[0].revents)
			chan_read();
		if (A.lost) {
			attach(); /* the others' revents are stale now */
			continue;
		}
		if (pf[1].revents)
			do_accept();
		for (unsigned i = 2; i < n; i++) {
			struct aconn *a = who[i];

			if (!pf[i].revents || !a->used)
				continue;
			if (pf[i].fd == a->fd) {
				shim_read(a);
			} else if (pf[i].fd == a->bell) {
				char b[256];

				/* Many rings before we ran: one BELL. */
				if (recv(a->bell, b, sizeof(b), MSG_DONTWAIT) <=
				    0) {
					close(a->bell);
					a->bell = -1;
					continue;
				}
				frame(NK_VMF_BELL, a->id, NULL, 0);
			}
		}
	}
}
