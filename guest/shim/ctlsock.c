// SPDX-License-Identifier: MIT
/*
 * The control channel (struct nk_ctlchan, conn.h): requests on the
 * control socket, serialised by ctl_lock and matched by sequence number,
 * and the placeholder pool channel (docs/abi.md sections 1, 6).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "shim.h"

/* ------------------------------------------------------------------------ */
/* Control socket. Callers hold ctl_lock. */

int nk_ctlchan__send(const void *msg, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr cm;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (C.ctl.ctl_fd < 0)
		return -ENOTCONN;
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		u.cm.cmsg_level = SOL_SOCKET;
		u.cm.cmsg_type = SCM_RIGHTS;
		u.cm.cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(&u.cm), fds, nfds * sizeof(int));
	}
	do
		n = REAL(sendmsg)(C.ctl.ctl_fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EPROTO;
}

/* Reply to seq into C.ctl.buf; fds (up to 3) returned in fds. */
int nk_ctlchan__recv(uint64_t seq, uint32_t type, int *fds, int *nfds)
{
	bool reset = false;

	for (;;) {
		union {
			struct cmsghdr cm;
			char b[CMSG_SPACE(4 * sizeof(int))];
		} u;
		struct iovec iov = { .iov_base = C.ctl.buf.b,
				     .iov_len = sizeof(C.ctl.buf) };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		int got[4], ngot = 0;
		struct cmsghdr *cm;
		ssize_t n;

		n = REAL(recvmsg)(C.ctl.ctl_fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		/*
		 * nkd closed with our HELLO unread: the reset comes before
		 * what it queued (an early refusal); read that once more.
		 */
		if (n < 0 && errno == ECONNRESET && !reset) {
			reset = true;
			continue;
		}
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -ECONNRESET;
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			int k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (int i = 0; i < k && ngot < 4; i++)
				memcpy(&got[ngot++],
				       CMSG_DATA(cm) + i * sizeof(int),
				       sizeof(int));
		}
		if ((size_t)n < sizeof(struct nk_ctl_hdr) ||
		    (C.ctl.buf.hdr.seq != seq &&
		     !nk_ctl__early_refusal(&C.ctl.buf.hdr, type)) ||
		    C.ctl.buf.hdr.type != type ||
		    C.ctl.buf.hdr.len != (uint32_t)n) {
			/* Not ours (a late reply to a timed-out request). */
			for (int i = 0; i < ngot; i++)
				REAL(close)(got[i]);
			if ((size_t)n >= sizeof(struct nk_ctl_hdr) &&
			    C.ctl.buf.hdr.seq > seq)
				return -EPROTO;
			continue;
		}
		if (nfds) {
			for (int i = 0; i < ngot; i++) {
				if (i < 3)
					fds[i] = got[i];
				else
					REAL(close)(got[i]);
			}
			*nfds = ngot < 3 ? ngot : 3;
		} else {
			for (int i = 0; i < ngot; i++)
				REAL(close)(got[i]);
		}
		return (int)n;
	}
}

/* A control-socket failure means nkd is gone for this process. */
static int ctl_fail(int err)
{
	if (err == -ECONNRESET || err == -EPIPE || err == -ENOTCONN)
		nk_attach__mark_dead("control socket closed");
	return err;
}

int nk_ctl__ph_bind(uint32_t handle, uint64_t id, uint64_t dev, uint64_t ino)
{
	struct nk_ctl_ph_bind m = {
		.hdr = { .type = NK_CTL_PH_BIND, .len = sizeof(m) },
		.handle = handle,
		.id = id,
		.ino = ino,
		.dev = dev,
	};
	int err;

	pthread_mutex_lock(&C.ctl.ctl_lock);
	m.hdr.seq = ++C.ctl.seq;
	err = nk_ctlchan__send(&m, sizeof(m), NULL, 0);
	if (!err && C.at.vm_wait)
		atomic_fetch_add(&C.sq.vm_binds, 1);
	pthread_mutex_unlock(&C.ctl.ctl_lock);
	return err ? ctl_fail(err) : 0;
}

/*
 * One placeholder from the pool channel, if one is queued. -EMFILE: the
 * message came but its fd could not be installed (*id says which).
 */
static int pool_recv(int *fd, uint64_t *id, bool cloexec)
{
	union {
		struct cmsghdr cm;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct nk_ctl_ph_pool m;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.b,
			     .msg_controllen = sizeof(u.b) };
	int got[4], ngot = 0;
	ssize_t n;

	for (;;) {
		n = REAL(recvmsg)(C.ctl.pool_fd, &mh,
				  MSG_DONTWAIT |
					  (cloexec ? MSG_CMSG_CLOEXEC : 0));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		break;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		int k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k && ngot < 4; i++)
			memcpy(&got[ngot++], CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(int));
	}
	/* The fd table is full: the kernel dropped the fd (MSG_CTRUNC). */
	if (n == (ssize_t)sizeof(m) && m.hdr.type == NK_CTL_PH_POOL &&
	    m.hdr.len == sizeof(m) && !ngot && (mh.msg_flags & MSG_CTRUNC)) {
		*id = m.id;
		return -EMFILE;
	}
	if (n != (ssize_t)sizeof(m) || m.hdr.type != NK_CTL_PH_POOL ||
	    m.hdr.len != sizeof(m) || ngot != 1) {
		for (int i = 0; i < ngot; i++)
			REAL(close)(got[i]);
		return -EPROTO;
	}
	*fd = got[0];
	*id = m.id;
	return 0;
}

int nk_conn__ph_take(int *fd, uint64_t *id, bool cloexec)
{
	struct nk_ctl_hdr refill = { .type = NK_CTL_PH_REFILL,
				     .len = sizeof(refill) };
	int64_t deadline = nk_now_ns() + NK_CTL_TIMEOUT_S * 1000000000LL;
	bool asked = false;

	for (;;) {
		struct pollfd p = { .fd = C.ctl.pool_fd, .events = POLLIN };
		int64_t left = deadline - nk_now_ns();
		int err = pool_recv(fd, id, cloexec);

		/* Lost on our side: nkd may close its ends (handle 0). */
		if (err == -EMFILE)
			nk_ctl__ph_bind(0, *id, 0, 0);
		if (err != -EAGAIN)
			return err;
		/* Empty: nkd tops up on BIND; ask once in case it cannot. */
		if (!asked) {
			pthread_mutex_lock(&C.ctl.ctl_lock);
			refill.seq = ++C.ctl.seq;
			err = nk_ctlchan__send(&refill, sizeof(refill), NULL,
					       0);
			pthread_mutex_unlock(&C.ctl.ctl_lock);
			if (err)
				return ctl_fail(err);
			asked = true;
		}
		if (left <= 0)
			return -ENOBUFS;
		if (REAL(poll)(&p, 1, (int)(left / 1000000 + 1)) < 0 &&
		    errno != EINTR)
			return -errno;
		if (p.revents & (POLLHUP | POLLERR | POLLNVAL) &&
		    !(p.revents & POLLIN))
			return -ECONNRESET;
	}
}

int nk_ctl__token_req(uint32_t type, uint64_t *token)
{
	struct nk_ctl_hdr m = { .type = type, .len = sizeof(m) };
	struct nk_ctl_status st;
	int err;

	pthread_mutex_lock(&C.ctl.ctl_lock);
	m.seq = ++C.ctl.seq;
	err = nk_ctlchan__send(&m, sizeof(m), NULL, 0);
	if (!err) {
		err = nk_ctlchan__recv(m.seq, NK_CTL_STATUS, NULL, NULL);
		if (err >= (int)sizeof(st)) {
			memcpy(&st, C.ctl.buf.b, sizeof(st));
			err = st.status;
			*token = st.token;
		} else if (err >= 0) {
			err = -EPROTO;
		}
	}
	pthread_mutex_unlock(&C.ctl.ctl_lock);
	return err < 0 ? ctl_fail(err) : 0;
}

void nk_ctl__token_msg(uint32_t type, uint64_t token, pid_t pid)
{
	struct nk_ctl_token m = {
		.hdr = { .type = type, .len = sizeof(m) },
		.token = token,
		.child_pid = pid,
	};

	pthread_mutex_lock(&C.ctl.ctl_lock);
	m.hdr.seq = ++C.ctl.seq;
	ctl_fail(nk_ctlchan__send(&m, sizeof(m), NULL, 0));
	pthread_mutex_unlock(&C.ctl.ctl_lock);
}

/* Send m (its seq set here), take the RESOLVE_REPLY, checked. */
static int ask_resolve_reply(struct nk_ctl_hdr *m,
			     struct nk_ctl_resolve_reply **reply)
{
	struct nk_ctl_resolve_reply *r;
	int n;

	pthread_mutex_lock(&C.ctl.ctl_lock);
	m->seq = ++C.ctl.seq;
	n = nk_ctlchan__send(m, m->len, NULL, 0);
	if (!n)
		n = nk_ctlchan__recv(m->seq, NK_CTL_RESOLVE_REPLY, NULL, NULL);
	if (n >= 0 && (size_t)n < sizeof(*r))
		n = -EPROTO;
	if (n >= 0) {
		r = malloc(n);
		if (!r) {
			n = -ENOMEM;
		} else {
			memcpy(r, C.ctl.buf.b, n);
			if (r->nr_ents > NK_RESOLVE_MAX_ENTS ||
			    sizeof(*r) + r->nr_ents *
						    sizeof(struct nk_ctl_resolve_ent) >
				    (size_t)n) {
				free(r);
				n = -EPROTO;
			} else {
				r->canonname[sizeof(r->canonname) - 1] = 0;
				*reply = r;
			}
		}
	}
	pthread_mutex_unlock(&C.ctl.ctl_lock);
	return n < 0 ? ctl_fail(n) : 0;
}

int nk_ctl__resolve(const struct nk_ctl_resolve *req,
		    struct nk_ctl_resolve_reply **reply)
{
	struct nk_ctl_resolve m = *req;

	m.hdr.type = NK_CTL_RESOLVE;
	m.hdr.len = sizeof(m);
	return ask_resolve_reply(&m.hdr, reply);
}

int nk_ctl__dns_servers(struct nk_ctl_resolve_reply **reply)
{
	struct nk_ctl_hdr m = { .type = NK_CTL_DNS_SERVERS, .len = sizeof(m) };

	return ask_resolve_reply(&m, reply);
}
