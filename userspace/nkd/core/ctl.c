// SPDX-License-Identifier: MIT
/*
 * Control socket (docs/abi.md §1, §7, §8): AF_UNIX SOCK_SEQPACKET, one
 * message per datagram, peer credentials from SO_PEERCRED. Everything is
 * non-blocking and driven by io_uring polls; replies are queued per client
 * and go out in request order, also when one of them (RESOLVE) is answered
 * later by a worker thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "loop.h"
#include "peer.h"
#include "region.h"

#define MAX_CLIENTS 4096u
#define MAX_FDS_IN 4
/* High bit of the slot: the one-shot POLLOUT poll of a client. */
#define SLOT_OUT 0x80000000u
/* Next bit: a one-shot POLLIN to go on reading after CTL_READ_BUDGET. */
#define SLOT_MORE 0x40000000u
/* Messages read from one client per wake-up: a flooding guest waits. */
#define CTL_READ_BUDGET 64u
/*
 * First messages (HELLO: a region, rings, a guest maybe) taken per loop
 * pass, all clients. An attach costs nkd a millisecond or more of system
 * calls (and the detach after it as much), so a storm of them filled every
 * pass and the guests' rings waited behind it (docs/nkd.md "Isolation").
 * One per pass, and after one that took t the next waits t (at most
 * 2 ms): attaching gets about half of nkd's time while anything else is
 * to be done.
 * The rest wait, readable, for later passes.
 */
#define CTL_HELLO_PER_PASS 1u
#define CTL_HELLO_WAIT_MAX_NS 2000000ll
#define MAX_PENDING_OUT 64u
#define CLIENT_SNDBUF (1 << 20)

struct out_msg {
	struct nk_list link;
	void *buf;
	size_t len;
	int fds[3];
	int nfds;
	bool ready; /* false: a RESOLVE answer still being computed */
	uint64_t seq;
};

struct nk_ctl_client {
	uint32_t slot, gen;
	bool used, closing;
	int fd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct nk_conn *conn;
	bool query_only;
	struct nk_list out;
	uint32_t nr_out;
	bool out_armed;
	bool more_armed;
	struct nk_peer peer; /* read at accept */
	bool greeted; /* attached, or an allowed QUERY: no HELLO deadline */
	int64_t hello_deadline;
};

/* NK_UD_LISTEN slots: the main socket, the HELLO timer, attach sockets. */
#define LSLOT_MAIN 0u
#define LSLOT_TIMER 1u
#define LSLOT_ATTACH 2u

/* Sockets of guests with attach= (docs/config.md "Who is which guest"). */
struct nk_attach_sock {
	int fd;
	int guest; /* index in the config */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
};

struct nk_ctl {
	struct nk_engine *e;
	struct nk_loop *loop;
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	struct nk_ctl_client **cl;
	uint32_t cap, nr;
	uint8_t *rxbuf;
	struct nk_attach_sock *as;
	unsigned nr_as;
	int tfd; /* timerfd for HELLO deadlines */
	int64_t timer_at; /* armed for this deadline; 0 not armed */
	int64_t cap_warned_ns;
	uint64_t cap_refused;
	/*
	 * A descriptor kept in reserve: when nkd is out of descriptors,
	 * closing it lets accept4() take the waiting client (to close it at
	 * once); otherwise the listener stays readable and the multishot
	 * poll spins the loop.
	 */
	int spare;
	int64_t emfile_warned_ns;
	uint64_t hello_pass; /* engine->loops when hellos was counted */
	unsigned hellos; /* first messages taken in that pass */
	int64_t hello_next; /* no first message before (nk_now_ns) */
};

static struct nk_ctl_client *client_get(struct nk_ctl *c, uint32_t slot,
					uint32_t gen)
{
	if (slot >= c->cap || !c->cl[slot]->used || c->cl[slot]->gen != gen)
		return NULL;
	return c->cl[slot];
}

static void out_free(struct out_msg *m)
{
	for (int i = 0; i < m->nfds; i++)
		close(m->fds[i]);
	free(m->buf);
	free(m);
}

static void client_close(struct nk_ctl *c, struct nk_ctl_client *cl,
			 bool abnormal)
{
	if (cl->closing)
		return;
	cl->closing = true;
	nk_loop__cancel_ud(c->loop, nk_ud(NK_UD_CTL, cl->gen, cl->slot));
	if (cl->out_armed)
		nk_loop__cancel_ud(c->loop, nk_ud(NK_UD_CTL, cl->gen,
						  cl->slot | SLOT_OUT));
	if (cl->more_armed)
		nk_loop__cancel_ud(c->loop, nk_ud(NK_UD_CTL, cl->gen,
						  cl->slot | SLOT_MORE));
	if (cl->conn) {
		nk_loop__cancel_ud(c->loop,
				   nk_ud(NK_UD_DOORBELL, cl->gen, cl->slot));
		nk_engine__detach(c->e, cl->conn, abnormal);
		cl->conn = NULL;
	}
	while (!nk_list__empty(&cl->out)) {
		struct out_msg *m =
			nk_container_of(cl->out.next, struct out_msg, link);

		nk_list__del(&m->link);
		out_free(m);
	}
	close(cl->fd);
	cl->fd = -1;
	cl->used = false;
	cl->gen = (cl->gen + 1) & NK_UD_GEN_MASK;
	c->nr--;
}

void nk_ctl__drop(struct nk_ctl *c, struct nk_ctl_client *cl)
{
	client_close(c, cl, true);
}

/* Sends queued replies in order; false if the client had to be closed. */
static bool flush_out(struct nk_ctl *c, struct nk_ctl_client *cl)
{
	while (!nk_list__empty(&cl->out)) {
		struct out_msg *m =
			nk_container_of(cl->out.next, struct out_msg, link);
		union {
			char buf[CMSG_SPACE(3 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = m->buf, .iov_len = m->len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (!m->ready)
			return true;
		if (m->nfds) {
			struct cmsghdr *cm;

			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = CMSG_SPACE(m->nfds * sizeof(int));
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(m->nfds * sizeof(int));
			memcpy(CMSG_DATA(cm), m->fds, m->nfds * sizeof(int));
		}
		n = sendmsg(cl->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
			if (!cl->out_armed) {
				struct io_uring_sqe *sqe =
					nk_loop__sqe(c->loop);

				if (!sqe) {
					client_close(c, cl, false);
					return false;
				}
				io_uring_prep_poll_add(sqe, cl->fd, POLLOUT);
				io_uring_sqe_set_data64(
					sqe, nk_ud(NK_UD_CTL, cl->gen,
						   cl->slot | SLOT_OUT));
				cl->out_armed = true;
			}
			return true;
		}
		if (n < 0) {
			client_close(c, cl, false);
			return false;
		}
		nk_list__del(&m->link);
		cl->nr_out--;
		out_free(m);
	}
	return true;
}

/* Queues buf (taken over) with borrowed fds (duplicated here). */
static struct out_msg *queue_out(struct nk_ctl_client *cl, void *buf,
				 size_t len, const int *fds, int nfds,
				 bool ready)
{
	struct out_msg *m = calloc(1, sizeof(*m));

	if (!m) {
		free(buf);
		return NULL;
	}
	m->buf = buf;
	m->len = len;
	m->ready = ready;
	for (int i = 0; i < nfds; i++) {
		m->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (m->fds[i] < 0) {
			m->nfds = i;
			out_free(m);
			return NULL;
		}
		m->nfds = i + 1;
	}
	nk_list__add_tail(&cl->out, &m->link);
	cl->nr_out++;
	return m;
}

static void reply_status(struct nk_ctl_client *cl, uint64_t seq, int status,
			 uint64_t token)
{
	struct nk_ctl_status *st = calloc(1, sizeof(*st));

	if (!st)
		return;
	st->hdr.type = NK_CTL_STATUS;
	st->hdr.len = sizeof(*st);
	st->hdr.seq = seq;
	st->status = status;
	st->token = token;
	queue_out(cl, st, sizeof(*st), NULL, 0, true);
}

/*
 * A refused HELLO (or a probe's answer): the WELCOME carries the reason,
 * or a probe's picked guest, as text after the struct (docs/abi.md).
 */
static int reply_refusal(struct nk_ctl_client *cl, const struct nk_ctl_hello *h,
			 const struct nk_attach *a, int ret)
{
	const char *text = ret ? a->why : a->guest;
	size_t tlen = strnlen(text, sizeof(a->why) - 1);
	size_t len = sizeof(struct nk_ctl_welcome) + (tlen ? tlen + 1 : 0);
	struct nk_ctl_welcome *w = calloc(1, len);

	free(a->handles);
	if (!w)
		return -ENOMEM;
	w->hdr.type = NK_CTL_WELCOME;
	w->hdr.len = (uint32_t)len;
	w->hdr.seq = h->hdr.seq;
	w->status = ret;
	if (tlen)
		memcpy(w + 1, text, tlen);
	if (ret)
		nk_info("HELLO from pid %d uid %d gid %d netns %llu cgroup %s "
			"as '%.*s'%s refused: %s",
			(int)cl->pid, (int)cl->uid, (int)cl->gid,
			(unsigned long long)cl->peer.netns_ino,
			cl->peer.cgroup[0] ? cl->peer.cgroup : "?",
			(int)strnlen(h->guest, sizeof(h->guest)), h->guest,
			cl->peer.attach >= 0 ? " (attach socket)" : "",
			a->why[0] ? a->why : strerror(-ret));
	queue_out(cl, w, len, NULL, 0, true);
	return 0;
}

static int do_hello(struct nk_ctl *c, struct nk_ctl_client *cl,
		    const struct nk_ctl_hello *h)
{
	struct nk_attach a = {
		.hello = h,
		.pid = cl->pid,
		.uid = cl->uid,
		.gid = cl->gid,
		.ctl = cl,
		.peer = &cl->peer,
		.probe = h->flags & NK_HELLO_F_PROBE,
		.pool_fd = -1,
	};
	struct nk_ctl_welcome *w;
	size_t max_handles =
		(NK_CTL_MAX_MSG - sizeof(*w)) / sizeof(struct nk_ctl_handle);
	size_t len;
	int fds[3];
	int ret;

	ret = nk_engine__attach(c->e, &a);
	if (ret && a.pool_fd >= 0)
		close(a.pool_fd);
	if (ret || a.probe)
		return reply_refusal(cl, h, &a, ret);
	if (a.nr_handles > max_handles) {
		nk_warn("guest %s: %u inherited sockets, only %zu listed",
			h->guest, a.nr_handles, max_handles);
		a.nr_handles = (uint32_t)max_handles;
	}
	len = sizeof(*w) + (ret ? 0 : a.nr_handles * sizeof(a.handles[0]));
	w = calloc(1, len);
	if (!w) {
		free(a.handles);
		return -ENOMEM;
	}
	w->hdr.type = NK_CTL_WELCOME;
	w->hdr.len = (uint32_t)len;
	w->hdr.seq = h->hdr.seq;
	w->status = ret;
	cl->conn = a.conn;
	nk_admin__attached(c->e, a.conn, &cl->peer);
	cl->greeted = true;
	w->nr_handles = a.nr_handles;
	w->region_size = nk_region__size(a.conn->region);
	if (a.nr_handles)
		memcpy(w + 1, a.handles, a.nr_handles * sizeof(a.handles[0]));
	free(a.handles);
	fds[0] = nk_region__fd(a.conn->region);
	fds[1] = a.conn->doorbell;
	fds[2] = a.pool_fd; /* queue_out keeps its own duplicate */
	if (!queue_out(cl, w, len, fds, 3, true)) {
		close(a.pool_fd);
		return -ENOMEM;
	}
	close(a.pool_fd);
	if (nk_loop__poll(c->loop, a.conn->doorbell, POLLIN,
			  nk_ud(NK_UD_DOORBELL, cl->gen, cl->slot)))
		return -EBUSY;
	return 0;
}

/* The operator only (admin.c); why says the reason to nkctl. */
static int query_allowed(struct nk_ctl *c, const struct nk_ctl_client *cl,
			 char **why, size_t *len)
{
	char buf[256];
	int ret = nk_admin__check(c->e, cl->fd, &cl->peer, buf, sizeof(buf));

	if (ret) {
		nk_info("control client pid %d uid %d refused: %s",
			(int)cl->pid, (int)cl->uid, buf);
		*why = strdup(buf);
		*len = *why ? strlen(*why) : 0;
	}
	return ret;
}

/* Queues status and text (taken over) as NK_CTL_QUERY_REPLY chunks. */
static int reply_text(struct nk_ctl_client *cl, uint64_t seq, int status,
		      char *text, size_t len);

static int do_query(struct nk_ctl *c, struct nk_ctl_client *cl,
		    const struct nk_ctl_query *q)
{
	char *text = NULL;
	size_t len = 0;
	int status = 0;

	if (q->resv)
		status = -EINVAL;
	else if (!(status = query_allowed(c, cl, &text, &len))) {
		cl->greeted = true;
		status = nk_query__build(c->e, q->what, &text, &len);
	}
	return reply_text(cl, q->hdr.seq, status, text, len);
}

static int do_admin(struct nk_ctl *c, struct nk_ctl_client *cl,
		    const struct nk_ctl_admin *m)
{
	char *text = NULL;
	size_t len = 0;
	int status;

	if (m->resv)
		status = -EINVAL;
	else if (!(status = query_allowed(c, cl, &text, &len))) {
		cl->greeted = true;
		status = nk_admin__command(c->e, m, &text, &len);
	}
	return reply_text(cl, m->hdr.seq, status, text, len);
}

static int reply_text(struct nk_ctl_client *cl, uint64_t seq, int status,
		      char *text, size_t len)
{
	const size_t chunk = NK_CTL_MAX_MSG - sizeof(struct nk_ctl_query_reply);
	size_t off = 0;

	do {
		size_t n = len - off > chunk ? chunk : len - off;
		struct nk_ctl_query_reply *r = malloc(sizeof(*r) + n);

		if (!r) {
			free(text);
			return -ENOMEM;
		}
		r->hdr.type = NK_CTL_QUERY_REPLY;
		r->hdr.len = (uint32_t)(sizeof(*r) + n);
		r->hdr.seq = seq;
		r->status = status;
		off += n;
		r->flags = off == len ? NK_QUERY_F_LAST : 0;
		if (n)
			memcpy(r + 1, text + off - n, n);
		if (!queue_out(cl, r, sizeof(*r) + n, NULL, 0, true)) {
			free(text);
			return -ENOMEM;
		}
	} while (off < len);
	free(text);
	return 0;
}

static int do_resolve(struct nk_ctl *c, struct nk_ctl_client *cl,
		      const struct nk_ctl_resolve *req)
{
	struct nk_resolve_job *job = calloc(1, sizeof(*job));
	struct out_msg *m;

	if (!job)
		return -ENOMEM;
	job->req = *req;
	job->req.node[sizeof(job->req.node) - 1] = '\0';
	job->req.service[sizeof(job->req.service) - 1] = '\0';
	job->cookie = (uint64_t)cl->slot << 32 | cl->gen;
	/* A placeholder keeps this reply's place in the output order. */
	m = queue_out(cl, NULL, 0, NULL, 0, false);
	if (!m) {
		free(job);
		return -ENOMEM;
	}
	m->seq = req->hdr.seq;
	/* Its own queue is full: "try again", the others' lookups go on. */
	if (!nk_budget__resolve_get(c->e, cl->conn->guest)) {
		nk_resolver__refuse(job);
		m->buf = job->reply;
		m->len = job->reply_len;
		m->ready = m->buf != NULL;
		free(job);
		return m->ready ? 0 : -ENOMEM;
	}
	job->guest = cl->conn->guest;
	nk_resolver__submit(nk_engine__conn_nsm(cl->conn)->resolver, job);
	return 0;
}

/* 0 ok, -errno: malformed, the client is closed. nfds taken over. */
static int handle_msg(struct nk_ctl *c, struct nk_ctl_client *cl,
		      const uint8_t *buf, size_t len, int *fds, int nfds)
{
	struct nk_ctl_hdr h;
	int ret = -EPROTO;
	uint64_t token;

	if (len < sizeof(h))
		goto bad;
	memcpy(&h, buf, sizeof(h));
	if (h.len != len)
		goto bad;
	/* nkd takes no descriptors from guests (abi.md §6). */
	if (nfds || h.type == NK_CTL_PLACEHOLDER) {
		nk_warn("control client pid %d: %s refused: nkd makes the "
			"placeholders since ABI 2 (NK_CTL_PH_POOL)",
			(int)cl->pid,
			h.type == NK_CTL_PLACEHOLDER ? "PLACEHOLDER"
						     : "a message with fds");
		goto bad;
	}
	if (cl->nr_out >= MAX_PENDING_OUT)
		goto bad; /* not reading its replies */

	switch (h.type) {
	case NK_CTL_HELLO: {
		struct nk_ctl_hello hello;

		if (len != sizeof(hello) || cl->conn || cl->query_only)
			goto bad;
		memcpy(&hello, buf, sizeof(hello));
		return do_hello(c, cl, &hello);
	}
	case NK_CTL_PH_BIND: {
		struct nk_ctl_ph_bind b;

		if (len != sizeof(b) || !cl->conn)
			goto bad;
		memcpy(&b, buf, sizeof(b));
		if (b.resv)
			goto bad;
		ret = nk_engine__placeholder(c->e, cl->conn, &b);
		if (ret) {
			cl->conn->guest->c.errors++;
			nk_dbg("placeholder %llu for handle %#x refused: %s",
			       (unsigned long long)b.id, b.handle,
			       strerror(-ret));
		}
		return 0;
	}
	case NK_CTL_PH_REFILL:
		if (len != sizeof(h) || !cl->conn)
			goto bad;
		nk_phpool__fill(cl->conn->phpool, NK_PH_POOL_TARGET);
		return 0;
	case NK_CTL_FORK_PREPARE:
	case NK_CTL_EXEC:
		if (len != sizeof(h) || !cl->conn)
			goto bad;
		token = 0;
		ret = nk_engine__handover(c->e, cl->conn, h.type == NK_CTL_EXEC,
					  &token);
		reply_status(cl, h.seq, ret, token);
		return 0;
	case NK_CTL_FORK_COMMIT:
	case NK_CTL_TOKEN_ABORT: {
		struct nk_ctl_token t;

		if (len != sizeof(t) || !cl->conn)
			goto bad;
		memcpy(&t, buf, sizeof(t));
		if (t.resv)
			goto bad;
		if (h.type == NK_CTL_FORK_COMMIT)
			ret = nk_engine__handover_commit(c->e, cl->conn,
							 t.token, t.child_pid);
		else
			ret = nk_engine__handover_abort(c->e, cl->conn,
							t.token);
		if (ret)
			nk_dbg("token %s: %s",
			       h.type == NK_CTL_FORK_COMMIT ? "commit"
							    : "abort",
			       strerror(-ret));
		return 0;
	}
	case NK_CTL_RESOLVE: {
		struct nk_ctl_resolve r;

		if (len != sizeof(r) || !cl->conn)
			goto bad;
		memcpy(&r, buf, sizeof(r));
		return do_resolve(c, cl, &r);
	}
	case NK_CTL_DNS_SERVERS: {
		struct nk_ctl_resolve_reply *rep;

		if (len != sizeof(h) || !cl->conn)
			goto bad;
		rep = nk_resolver__dns_servers(
			nk_engine__conn_nsm(cl->conn)->resolver, h.seq);
		if (!rep || !queue_out(cl, rep, rep->hdr.len, NULL, 0, true))
			return -ENOMEM;
		return 0;
	}
	case NK_CTL_QUERY: {
		struct nk_ctl_query q;

		if (len != sizeof(q) || cl->conn)
			goto bad;
		memcpy(&q, buf, sizeof(q));
		cl->query_only = true;
		return do_query(c, cl, &q);
	}
	case NK_CTL_ADMIN: {
		struct nk_ctl_admin m;

		if (len != sizeof(m) || cl->conn)
			goto bad;
		memcpy(&m, buf, sizeof(m));
		cl->query_only = true;
		return do_admin(c, cl, &m);
	}
	default:
		break;
	}
bad:
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return ret ? ret : -EPROTO;
}

/* A client that has not attached yet may send its first message now. */
static bool hello_ok(struct nk_ctl *c, const struct nk_ctl_client *cl)
{
	if (cl->conn || cl->query_only)
		return true;
	if (c->hello_pass != c->e->loops) {
		c->hello_pass = c->e->loops;
		c->hellos = 0;
	}
	if (c->hellos >= CTL_HELLO_PER_PASS || nk_now_ns() < c->hello_next)
		return false;
	c->hellos++;
	return true;
}

static void client_read(struct nk_ctl *c, struct nk_ctl_client *cl)
{
	for (unsigned budget = CTL_READ_BUDGET;; budget--) {
		union {
			char buf[CMSG_SPACE(MAX_FDS_IN * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = c->rxbuf,
				     .iov_len = NK_CTL_MAX_MSG };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		int fds[MAX_FDS_IN];
		int nfds = 0, ret;
		bool bad = false, first;
		int64_t t0 = 0;
		ssize_t n;

		if (!budget || !hello_ok(c, cl)) {
			/* The rest on a later pass: a fresh one-shot poll,
			 * since the multishot one fires only on new data. */
			struct io_uring_sqe *sqe;

			if (cl->more_armed)
				return;
			sqe = nk_loop__sqe(c->loop);
			if (!sqe) {
				client_close(c, cl, false);
				return;
			}
			io_uring_prep_poll_add(sqe, cl->fd, POLLIN);
			io_uring_sqe_set_data64(sqe,
						nk_ud(NK_UD_CTL, cl->gen,
						      cl->slot | SLOT_MORE));
			cl->more_armed = true;
			return;
		}
		n = recvmsg(cl->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			client_close(c, cl, false);
			return;
		}
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
		     cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k;

			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS) {
				bad = true;
				continue;
			}
			k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
				       sizeof(fd));
				if (nfds < MAX_FDS_IN)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
		if (bad || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			nk_warn("control client pid %d: truncated or odd "
				"message, closing",
				(int)cl->pid);
			client_close(c, cl, true);
			return;
		}
		first = !cl->conn && !cl->query_only;
		if (first)
			t0 = nk_now_ns();
		ret = handle_msg(c, cl, c->rxbuf, (size_t)n, fds, nfds);
		if (first) {
			int64_t t1 = nk_now_ns();

			/* Wall time: capped, a preempted attach is no cost. */
			c->hello_next = t1 + (t1 - t0 < CTL_HELLO_WAIT_MAX_NS
						      ? t1 - t0
						      : CTL_HELLO_WAIT_MAX_NS);
		}
		if (ret) {
			nk_warn("control client pid %d: malformed message, "
				"closing",
				(int)cl->pid);
			client_close(c, cl, true);
			return;
		}
		if (!flush_out(c, cl))
			return;
	}
}

static void on_ctl(void *ctx, uint32_t slot, uint32_t gen,
		   const struct io_uring_cqe *cqe)
{
	struct nk_ctl *c = ctx;
	struct nk_ctl_client *cl =
		client_get(c, slot & ~(SLOT_OUT | SLOT_MORE), gen);

	if (!cl || cl->closing)
		return;
	if (slot & SLOT_MORE) {
		cl->more_armed = false;
		if (cqe->res >= 0)
			client_read(c, cl);
		return;
	}
	if (slot & SLOT_OUT) {
		cl->out_armed = false;
		flush_out(c, cl);
		return;
	}
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED)
			client_close(c, cl, false);
		return;
	}
	client_read(c, cl);
	/* The multishot poll ended (overflow...): arm it again. */
	if (cl->used && !cl->closing && !(cqe->flags & IORING_CQE_F_MORE))
		nk_loop__poll(c->loop, cl->fd, POLLIN | POLLRDHUP,
			      nk_ud(NK_UD_CTL, cl->gen, cl->slot));
}

static void on_doorbell(void *ctx, uint32_t slot, uint32_t gen,
			const struct io_uring_cqe *cqe)
{
	struct nk_ctl *c = ctx;
	struct nk_ctl_client *cl = client_get(c, slot, gen);
	uint64_t v;

	if (!cl || !cl->conn)
		return;
	c->e->idle_work++; /* the SQEs it announces count, not the bell */
	/* The loop polls every SQ anyway; just reset the counter. */
	if (read(cl->conn->doorbell, &v, sizeof(v)) < 0 && errno != EAGAIN)
		nk_dbg("doorbell read: %s", strerror(errno));
	if (!(cqe->flags & IORING_CQE_F_MORE) && cqe->res != -ECANCELED)
		nk_loop__poll(c->loop, cl->conn->doorbell, POLLIN,
			      nk_ud(NK_UD_DOORBELL, cl->gen, cl->slot));
}

static void on_resolved(void *ctx, uint32_t slot, uint32_t gen,
			const struct io_uring_cqe *cqe)
{
	struct nk_ctl *c = ctx;
	uint64_t v;

	(void)slot;
	(void)gen;
	if (read(c->e->resolve_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		nk_dbg("resolver eventfd: %s", strerror(errno));
	for (unsigned i = 0; i < c->e->nr_nsms; i++) {
		struct nk_resolve_job *job;

		while ((job = nk_resolver__take(c->e->nsms[i].resolver))) {
			struct nk_ctl_client *cl =
				client_get(c, (uint32_t)(job->cookie >> 32),
					   (uint32_t)job->cookie);
			struct nk_list *p, *t;

			if (job->guest)
				nk_budget__resolve_put(c->e, job->guest);
			if (!job->reply) {
				job->reply = calloc(1, sizeof(*job->reply));
				if (job->reply) {
					job->reply->hdr.type =
						NK_CTL_RESOLVE_REPLY;
					job->reply->hdr.len =
						sizeof(*job->reply);
					job->reply->hdr.seq = job->req.hdr.seq;
					job->reply->status = EAI_MEMORY;
					job->reply_len = sizeof(*job->reply);
				}
			}
			if (cl && !cl->closing && job->reply) {
				nk_list__for_each_safe(p, t, &cl->out)
				{
					struct out_msg *m = nk_container_of(
						p, struct out_msg, link);

					if (m->ready ||
					    m->seq != job->req.hdr.seq)
						continue;
					m->buf = job->reply;
					m->len = job->reply_len;
					m->ready = true;
					job->reply = NULL;
					break;
				}
				flush_out(c, cl);
			}
			free(job->reply);
			free(job);
		}
	}
	if (!(cqe->flags & IORING_CQE_F_MORE))
		nk_loop__poll(c->loop, c->e->resolve_efd, POLLIN,
			      nk_ud(NK_UD_RESOLVED, 0, 0));
}

static struct nk_ctl_client *client_alloc(struct nk_ctl *c)
{
	uint32_t i;

	for (i = 0; i < c->cap; i++)
		if (!c->cl[i]->used)
			break;
	if (i == c->cap) {
		uint32_t ncap = c->cap ? c->cap * 2 : 64;
		struct nk_ctl_client **n;

		if (ncap > MAX_CLIENTS)
			return NULL;
		n = realloc(c->cl, ncap * sizeof(*n));
		if (!n)
			return NULL;
		c->cl = n;
		for (uint32_t j = c->cap; j < ncap; j++) {
			c->cl[j] = calloc(1, sizeof(**n));
			if (!c->cl[j])
				return NULL;
			c->cl[j]->slot = j;
			c->cl[j]->fd = -1;
			c->cap = j + 1;
		}
	}
	return c->cl[i];
}

/*
 * Budgets for control connections (docs/config.md): one uid holds at most
 * max_ctl_per_uid of the MAX_CLIENTS slots (uid 0 is the operator), and a
 * connection that neither attaches nor queries within hello_timeout is
 * closed, so idle connections cannot lock others out.
 */
static bool uid_below_cap(struct nk_ctl *c, uid_t uid)
{
	uint32_t n = 0;
	int64_t now;

	if (uid == 0)
		return true;
	for (uint32_t i = 0; i < c->cap; i++)
		n += c->cl[i]->used && c->cl[i]->uid == uid;
	if (n < c->e->cfg.max_ctl_per_uid)
		return true;
	c->cap_refused++;
	now = nk_now_ns();
	if (!c->cap_warned_ns || now - c->cap_warned_ns > 10000000000ll) {
		nk_warn("control: uid %u has %u connections "
			"(max_ctl_per_uid): refusing more (%llu so far)",
			(unsigned)uid, n, (unsigned long long)c->cap_refused);
		c->cap_warned_ns = now;
	}
	return false;
}

static void timer_arm(struct nk_ctl *c, int64_t at)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = at / 1000000000,
			      .tv_nsec = at % 1000000000 },
	};

	if (c->tfd < 0)
		return;
	if (timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL))
		nk_warn("control: HELLO timer: %s", strerror(errno));
	c->timer_at = at;
}

static void hello_deadline(struct nk_ctl *c, struct nk_ctl_client *cl)
{
	cl->hello_deadline =
		nk_now_ns() + (int64_t)c->e->cfg.hello_timeout_s * 1000000000;
	if (!c->timer_at || cl->hello_deadline < c->timer_at)
		timer_arm(c, cl->hello_deadline);
}

static void hello_timer(struct nk_ctl *c, const struct io_uring_cqe *cqe)
{
	int64_t now = nk_now_ns(), next = 0;
	uint32_t closed = 0;
	uint64_t v;

	if (read(c->tfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		nk_dbg("HELLO timer read: %s", strerror(errno));
	for (uint32_t i = 0; i < c->cap; i++) {
		struct nk_ctl_client *cl = c->cl[i];

		if (!cl->used || cl->closing || cl->greeted)
			continue;
		if (cl->hello_deadline <= now) {
			nk_ctl__refuse_early(
				cl->fd, -ETIMEDOUT,
				"no HELLO within %us (hello_timeout)",
				c->e->cfg.hello_timeout_s);
			client_close(c, cl, false);
			closed++;
		} else if (!next || cl->hello_deadline < next) {
			next = cl->hello_deadline;
		}
	}
	if (closed)
		nk_info("control: closed %u connections that sent no HELLO "
			"in %us",
			closed, c->e->cfg.hello_timeout_s);
	c->timer_at = 0;
	if (next)
		timer_arm(c, next);
	if (!(cqe->flags & IORING_CQE_F_MORE) && cqe->res != -ECANCELED)
		nk_loop__poll(c->loop, c->tfd, POLLIN,
			      nk_ud(NK_UD_LISTEN, 0, LSLOT_TIMER));
}

static void on_listen(void *ctx, uint32_t slot, uint32_t gen,
		      const struct io_uring_cqe *cqe)
{
	struct nk_ctl *c = ctx;
	int lfd = slot == LSLOT_MAIN ? c->lfd : -1;

	(void)gen;
	if (slot == LSLOT_TIMER) {
		hello_timer(c, cqe);
		return;
	}
	if (slot >= LSLOT_ATTACH && slot - LSLOT_ATTACH < c->nr_as)
		lfd = c->as[slot - LSLOT_ATTACH].fd;
	if (lfd < 0)
		return;
	for (;;) {
		struct nk_ctl_client *cl;
		struct nk_peer peer;
		int sndbuf = CLIENT_SNDBUF;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		int ret;

		if (fd < 0 && (errno == EMFILE || errno == ENFILE) &&
		    c->spare >= 0) {
			int64_t now = nk_now_ns();

			close(c->spare);
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				close(fd);
			c->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (now - c->emfile_warned_ns > 10 * 1000000000LL) {
				c->emfile_warned_ns = now;
				nk_warn("control: out of descriptors, closing "
					"new clients");
			}
			if (fd >= 0)
				continue;
		}
		if (fd < 0)
			break;
		ret = nk_peer__read(fd, &peer);
		if (!ret && !uid_below_cap(c, peer.uid))
			ret = -EUSERS;
		cl = ret ? NULL : client_alloc(c);
		if (!cl) {
			if (ret != -EUSERS)
				nk_warn("control: refusing a client (%s)",
					ret ? strerror(-ret)
					    : "too many clients");
			if (ret == -EUSERS)
				nk_ctl__refuse_early(
					fd, ret,
					"uid %u has %u connections to nkd, "
					"its most (max_ctl_per_uid)",
					(unsigned)peer.uid,
					c->e->cfg.max_ctl_per_uid);
			else
				nk_ctl__refuse_early(
					fd, ret ? ret : -EAGAIN, "%s",
					ret ? "nkd cannot read the caller's "
					      "credentials"
					    : "nkd has too many clients");
			close(fd);
			continue;
		}
		if (slot >= LSLOT_ATTACH) {
			const struct nk_attach_sock *as =
				&c->as[slot - LSLOT_ATTACH];

			peer.attach = as->guest;
			snprintf(peer.attach_path, sizeof(peer.attach_path),
				 "%s", as->path);
		}
		cl->peer = peer;
		cl->greeted = false;
		hello_deadline(c, cl);
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		cl->used = true;
		cl->closing = false;
		cl->fd = fd;
		cl->pid = peer.pid;
		cl->uid = peer.uid;
		cl->gid = peer.gid;
		cl->conn = NULL;
		cl->query_only = false;
		cl->out_armed = false;
		cl->more_armed = false;
		cl->nr_out = 0;
		nk_list__init(&cl->out);
		c->nr++;
		if (nk_loop__poll(c->loop, fd, POLLIN | POLLRDHUP,
				  nk_ud(NK_UD_CTL, cl->gen, cl->slot)))
			client_close(c, cl, false);
	}
	if (!(cqe->flags & IORING_CQE_F_MORE) && cqe->res != -ECANCELED)
		nk_loop__poll(c->loop, lfd, POLLIN,
			      nk_ud(NK_UD_LISTEN, 0, slot));
}

static int mkdir_p(const char *dir)
{
	char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* A live nkd answers on the path: refuse to steal it. */
static bool path_in_use(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool used;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	used = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return used;
}

/*
 * A guest's own control socket (attach=): whoever can reach the path is
 * that guest, so the operator places it (bind-mounts it into a container).
 * Mode 0666 like the main socket; created the same way (temp name, rename).
 */
static int attach_listen(struct nk_ctl *c, struct nk_attach_sock *as)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)], tmp[sizeof(sa.sun_path)];
	struct stat st;
	int ret;

	snprintf(dir, sizeof(dir), "%s", as->path);
	ret = mkdir_p(dirname(dir));
	if (ret)
		return ret;
	if (!strcmp(as->path, c->path) || path_in_use(as->path))
		return -EADDRINUSE;
	if (snprintf(tmp, sizeof(tmp), "%s.%d", as->path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tmp);
	as->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
			0);
	if (as->fd < 0 || bind(as->fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(tmp, 0666) || listen(as->fd, 128) || rename(tmp, as->path) ||
	    stat(as->path, &st)) {
		ret = -errno;
		unlink(tmp);
		return ret;
	}
	as->dev = st.st_dev;
	as->ino = st.st_ino;
	return 0;
}

static int attach_create(struct nk_ctl *c)
{
	const struct nk_config *cfg = &c->e->cfg;
	int ret;

	c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->tfd < 0)
		return -errno;
	c->as = calloc(cfg->nr_guests + 1, sizeof(*c->as));
	if (!c->as)
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->nr_guests; i++) {
		struct nk_attach_sock *as = &c->as[c->nr_as];

		if (!cfg->guests[i].attach[0])
			continue;
		as->guest = (int)i;
		as->fd = -1;
		ret = -ENAMETOOLONG;
		if (strlen(cfg->guests[i].attach) < sizeof(as->path)) {
			memcpy(as->path, cfg->guests[i].attach,
			       strlen(cfg->guests[i].attach) + 1);
			ret = attach_listen(c, as);
		}
		if (ret) {
			nk_err("guest %s: attach socket %s: %s",
			       cfg->guests[i].name, as->path, strerror(-ret));
			if (as->fd >= 0)
				close(as->fd);
			return ret;
		}
		c->nr_as++;
		nk_info("guest %s: attach socket %s", cfg->guests[i].name,
			as->path);
	}
	return 0;
}

static void attach_destroy(struct nk_ctl *c)
{
	struct stat st;

	for (unsigned i = 0; i < c->nr_as; i++) {
		struct nk_attach_sock *as = &c->as[i];

		nk_loop__cancel_ud(c->loop,
				   nk_ud(NK_UD_LISTEN, 0, LSLOT_ATTACH + i));
		if (!stat(as->path, &st) && st.st_dev == as->dev &&
		    st.st_ino == as->ino)
			unlink(as->path);
		close(as->fd);
	}
	if (c->tfd >= 0) {
		nk_loop__cancel_ud(c->loop,
				   nk_ud(NK_UD_LISTEN, 0, LSLOT_TIMER));
		close(c->tfd);
	}
	free(c->as);
	c->as = NULL;
	c->nr_as = 0;
}

int nk_ctl__create(struct nk_engine *e, const char *path, struct nk_ctl **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)], tmp[sizeof(sa.sun_path)];
	struct nk_ctl *c;
	struct stat st;
	int ret;

	if (strlen(path) >= sizeof(sa.sun_path) - 16) {
		nk_err("control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->e = e;
	c->loop = e->loop;
	c->lfd = -1;
	c->tfd = -1;
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->rxbuf = malloc(NK_CTL_MAX_MSG);
	if (!c->rxbuf) {
		free(c);
		return -ENOMEM;
	}
	c->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	snprintf(dir, sizeof(dir), "%s", path);
	ret = mkdir_p(dirname(dir));
	if (ret) {
		nk_err("cannot create the directory of %s: %s", path,
		       strerror(-ret));
		goto fail;
	}
	if (path_in_use(path)) {
		nk_err("%s: another nkd is already listening there", path);
		ret = -EADDRINUSE;
		goto fail;
	}
	/*
	 * Bind and listen under a temporary name, then rename: the socket
	 * file appearing means nkd is ready (clients may wait for it).
	 */
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	unlink(tmp);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tmp);
	c->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
			0);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(tmp, 0666) || listen(c->lfd, 128) || rename(tmp, path) ||
	    stat(path, &st)) {
		ret = -errno;
		nk_err("control socket %s: %s", path, strerror(errno));
		unlink(tmp);
		goto fail;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	ret = attach_create(c);
	if (ret)
		goto fail;
	for (unsigned i = 0; i < c->nr_as; i++)
		nk_loop__poll(c->loop, c->as[i].fd, POLLIN,
			      nk_ud(NK_UD_LISTEN, 0, LSLOT_ATTACH + i));
	nk_loop__poll(c->loop, c->tfd, POLLIN,
		      nk_ud(NK_UD_LISTEN, 0, LSLOT_TIMER));
	nk_loop__on(c->loop, NK_UD_LISTEN, on_listen, c);
	nk_loop__on(c->loop, NK_UD_CTL, on_ctl, c);
	nk_loop__on(c->loop, NK_UD_DOORBELL, on_doorbell, c);
	nk_loop__on(c->loop, NK_UD_RESOLVED, on_resolved, c);
	nk_loop__poll(c->loop, c->lfd, POLLIN, nk_ud(NK_UD_LISTEN, 0, 0));
	nk_loop__poll(c->loop, e->resolve_efd, POLLIN,
		      nk_ud(NK_UD_RESOLVED, 0, 0));
	e->ctl = c;
	*out = c;
	nk_info("listening on %s", path);
	return 0;
fail:
	attach_destroy(c);
	if (c->lfd >= 0) {
		if (!stat(path, &st) && st.st_dev == c->dev &&
		    st.st_ino == c->ino)
			unlink(path);
		close(c->lfd);
	}
	if (c->spare >= 0)
		close(c->spare);
	free(c->rxbuf);
	free(c);
	return ret;
}

void nk_ctl__destroy(struct nk_ctl *c)
{
	struct stat st;

	if (!c)
		return;
	for (uint32_t i = 0; i < c->cap; i++)
		if (c->cl[i]->used)
			client_close(c, c->cl[i], false);
	/* Completions of the cancelled polls must not find us. */
	nk_loop__cancel_ud(c->loop, nk_ud(NK_UD_LISTEN, 0, 0));
	nk_loop__cancel_ud(c->loop, nk_ud(NK_UD_RESOLVED, 0, 0));
	attach_destroy(c);
	nk_loop__on(c->loop, NK_UD_LISTEN, NULL, NULL);
	nk_loop__on(c->loop, NK_UD_CTL, NULL, NULL);
	nk_loop__on(c->loop, NK_UD_DOORBELL, NULL, NULL);
	nk_loop__on(c->loop, NK_UD_RESOLVED, NULL, NULL);
	for (uint32_t i = 0; i < c->cap; i++)
		free(c->cl[i]);
	free(c->cl);
	/* Remove the socket only if it is still ours. */
	if (!stat(c->path, &st) && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->spare >= 0)
		close(c->spare);
	free(c->rxbuf);
	free(c);
}

int nk_ctl__inject(struct nk_ctl *c, int fd, const struct nk_peer *peer,
		   uint32_t *slot, uint32_t *gen)
{
	struct nk_ctl_client *cl = client_alloc(c);
	int sndbuf = CLIENT_SNDBUF;

	if (!cl) {
		close(fd);
		return -EMFILE;
	}
	cl->peer = *peer;
	cl->greeted = false;
	hello_deadline(c, cl);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	cl->used = true;
	cl->closing = false;
	cl->fd = fd;
	cl->pid = peer->pid;
	cl->uid = peer->uid;
	cl->gid = peer->gid;
	cl->conn = NULL;
	cl->query_only = false;
	cl->out_armed = false;
	cl->more_armed = false;
	cl->nr_out = 0;
	nk_list__init(&cl->out);
	c->nr++;
	if (nk_loop__poll(c->loop, fd, POLLIN | POLLRDHUP,
			  nk_ud(NK_UD_CTL, cl->gen, cl->slot))) {
		client_close(c, cl, false);
		return -EBUSY;
	}
	*slot = cl->slot;
	*gen = cl->gen;
	return 0;
}

struct nk_conn *nk_ctl__conn_of(struct nk_ctl *c, uint32_t slot, uint32_t gen)
{
	struct nk_ctl_client *cl = client_get(c, slot, gen);

	return cl && !cl->closing ? cl->conn : NULL;
}
