// SPDX-License-Identifier: MIT
/*
 * Datagram batches (docs/abi.md §5 "Datagram batches", docs/shim.md).
 *
 * A recv on a datagram socket asks nkd for a batch (NK_SQE_F_BATCH): nkd
 * packs every datagram its socket has queued, up to NK_RECV_BATCH_MAX,
 * into one buffer. The first answers the call; the rest stay in that
 * buffer, the socket's kept batch, and answer later recv, recvfrom,
 * recvmsg and recvmmsg calls without a round trip. nkd keeps the
 * placeholder readable while a batch of more than one is out, so poll
 * and epoll see the kept datagrams. When the last one is handed out the
 * shim sends a read-ahead batch RECV (NK_SQE_F_PREFETCH, as stream
 * read-ahead does) and waits for its answer before the recv returns: it
 * either brings the next batch or comes back -EAGAIN, and then nkd has
 * drained the placeholder, so readiness is exact when the recv returns.
 *
 * The state is the stream read-ahead's (shim.h: pf_*), under rx_lock,
 * which is not held while a recv waits in nkd: threads blocked in recv on
 * one socket each keep their own timeout and signals. Only one of them
 * asks for a batch at a time (rx_batching); the others ask for one
 * datagram.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "shim.h"

bool nk_rxb__on(struct nk_sock *s)
{
	return s->type == SOCK_DGRAM && !atomic_load(&s->rx_nobatch) &&
	       nk_conn__has_feature(NK_FEAT_RECV_BATCH) &&
	       nk_conn__has_feature(NK_FEAT_RECV_PREFETCH);
}

static void scatter(const struct msghdr *msg, const uint8_t *src, size_t len)
{
	for (size_t i = 0; i < msg->msg_iovlen && len; i++) {
		size_t c = msg->msg_iov[i].iov_len < len
				   ? msg->msg_iov[i].iov_len
				   : len;

		memcpy(msg->msg_iov[i].iov_base, src, c);
		src += c;
		len -= c;
	}
}

/*
 * The record at off of a batch buffer into msg, as recvmsg() would give
 * that datagram. *next is the following record's offset. nkd wrote the
 * buffer; a record that does not fit is a protocol error (-EIO).
 */
static ssize_t deliver(struct nk_sock *s, const uint8_t *buf, uint32_t off,
		       uint32_t end, struct msghdr *msg, int flags,
		       bool want_addr, uint32_t *next)
{
	struct nk_dgram h;
	size_t total = 0, n;

	*next = end;
	if (end > nk_conn__buf_size() || off > end || end - off < sizeof(h))
		return -EIO;
	memcpy(&h, buf + off, sizeof(h));
	if (h.len > end - off - sizeof(h))
		return -EIO;
	*next = NK_DGRAM_NEXT(off + (uint32_t)sizeof(h) + h.len);
	if (h.err)
		return h.err > 0 ? -h.err : -EIO;
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		total += msg->msg_iov[i].iov_len;
	n = h.len < total ? h.len : total;
	scatter(msg, buf + off + sizeof(h), n);
	if (h.full_len > n)
		msg->msg_flags |= MSG_TRUNC;
	if (want_addr) {
		nk_dnsmap__src(s, &h.addr);
		nk_addr__to_sa(&h.addr, msg->msg_name, &msg->msg_namelen);
	}
	return (flags & MSG_TRUNC) ? (ssize_t)h.full_len : (ssize_t)n;
}

/*
 * Ask for the next batch without waiting; its result becomes the kept one.
 * Where nkd offers it, the RECV stays armed while the socket is empty and
 * nkd pushes the next datagrams into it (standing, docs/shim.md); the
 * placeholder, readable only because we kept datagrams, is emptied here.
 */
static void refill(struct nk_sock *s, int fd)
{
	struct nk_sqe sqe = { .opcode = NK_OP_RECV,
			      .flags = NK_SQE_F_NONBLOCK | NK_SQE_F_PREFETCH |
				       NK_SQE_F_BATCH,
			      .handle = s->handle };
	int idx = nk_buf__alloc_spare();

	/*
	 * Not optional: until this RECV comes back -EAGAIN nkd keeps the
	 * placeholder readable. Without any free buffer the next recv asks
	 * nkd itself, and poll may see a stale POLLIN until then.
	 */
	if (idx < 0)
		idx = nk_buf__alloc(false, 0);
	if (idx < 0)
		return;
	s->pf_quiet = false;
	if (nk_sock__standing_ok(s)) {
		sqe.flags = NK_SQE_F_PREFETCH | NK_SQE_F_BATCH |
			    NK_SQE_F_EMPTIED;
		nk_sock__ph_empty(fd);
		s->pf_quiet = !s->pf_full;
	}
	s->pf_end = 0;
	nk_pf__submit(s, &sqe, idx);
}

/*
 * Sends a read-ahead RECV into buffer idx, which becomes the socket's
 * (stream stash or datagram batch) until its answer is taken; on failure
 * the buffer goes back.
 */
void nk_pf__submit(struct nk_sock *s, struct nk_sqe *sqe, int idx)
{
	sqe->io.buf_off = nk_buf__off(idx);
	sqe->io.buf_len = nk_conn__buf_size();
	s->pf_idx = idx;
	s->pf_off = 0;
	atomic_store(&s->pf_state, NK_PF_INFLIGHT);
	if (nk_ring__prefetch(s, sqe, idx)) {
		atomic_store(&s->pf_state, NK_PF_NONE);
		nk_buf__free(idx);
	}
}

/*
 * Wait for an in-flight read-ahead (stream) or refill (datagram batch):
 * nkd answers a NONBLOCK RECV at once.
 */
int nk_pf__settle(struct nk_sock *s)
{
	int st = atomic_load(&s->pf_state);

	while (st == NK_PF_INFLIGHT) {
		uint32_t g = nk_ring__gen();
		int err;

		nk_ring__poll();
		st = atomic_load(&s->pf_state);
		if (st != NK_PF_INFLIGHT)
			break;
		err = nk_ring__wait_progress(g, 0, false);
		if (err)
			return err;
		st = atomic_load(&s->pf_state);
	}
	return st;
}

int nk_rxb__take(struct nk_sock *s, int fd, bool nonblock, struct msghdr *msg,
		 int flags, bool want_addr, ssize_t *ret)
{
	int st, idx;
	uint32_t next;

	if (nk_sock__standing_quiet(s, fd, nonblock)) {
		*ret = -EAGAIN;
		return 1;
	}
	st = nk_pf__settle(s);
	if (st == NK_PF_PARKED)
		st = nk_sock__standing_wait(s, fd, nonblock, &s->rx_lock);
	if (st == NK_PF_PARKED || st == -EAGAIN) {
		/* Nothing yet, and nkd will push it: no need to ask. */
		*ret = -EAGAIN;
		return 1;
	}
	if (st < 0)
		return st;
	if (st != NK_PF_DONE)
		return 0;
	idx = s->pf_idx;
	if (s->pf_res > 0) {
		*ret = deliver(s, nk_buf__ptr(idx), s->pf_off, s->pf_end, msg,
			       flags, want_addr, &next);
		if (flags & MSG_PEEK)
			return 1;
		s->pf_off = next;
		if (--s->pf_res > 0 && *ret != -EIO)
			return 1;
		{
			int done = NK_PF_DONE;

			/* Lost only to a close racing with this recv. */
			if (!atomic_compare_exchange_strong(&s->pf_state, &done,
							    NK_PF_NONE))
				return 1;
		}
		refill(s, fd);
		nk_buf__free(idx);
		/*
		 * Wait for its answer before returning: until then nkd keeps
		 * the placeholder readable, and a poll right after this recv
		 * (timeout 0, no barrier) must not see a datagram that is
		 * not there. Once per batch; the data is already copied. A
		 * standing one emptied the placeholder instead: no wait.
		 */
		nk_pf__settle(s);
		return 1;
	}
	if (s->pf_res == -EAGAIN || s->pf_res == 0 || s->pf_res == -ECANCELED) {
		/* nkd drained the placeholder: the peek is exact again. */
		nk_sock__stash_drop(s);
		return 0;
	}
	/* An error the refill met (an ICMP error): this recv reports it. */
	*ret = s->pf_res;
	if (!(flags & MSG_PEEK))
		nk_sock__stash_drop(s);
	return 1;
}

ssize_t nk_rxb__keep(struct nk_sock *s, int idx, int res, uint32_t aux,
		     struct msghdr *msg, int flags, bool want_addr)
{
	uint32_t next;
	ssize_t r = deliver(s, nk_buf__ptr(idx), 0, aux, msg, flags, want_addr,
			    &next);
	bool kept = false;

	if (res <= 1 || r == -EIO) {
		nk_buf__free(idx);
		return r;
	}
	pthread_mutex_lock(&s->rx_lock);
	/*
	 * Free: only the one batch RECV out (rx_batching) fills it, and a
	 * refill needs it filled first. Checked all the same; a socket
	 * closed meanwhile keeps nothing.
	 */
	if (atomic_load(&s->pf_state) == NK_PF_NONE &&
	    !atomic_load(&s->closing)) {
		/* nkd left the placeholder readable for these (abi.md §6). */
		s->pf_idx = idx;
		s->pf_off = next;
		s->pf_end = aux;
		s->pf_res = res - 1;
		nk_sock__note_full(s, res, aux);
		atomic_store(&s->pf_state, NK_PF_DONE);
		kept = true;
	}
	pthread_mutex_unlock(&s->rx_lock);
	if (!kept) {
		if (!atomic_load(&s->closing))
			nk_log("handle %u: %d datagram(s) dropped (batch busy)",
			       s->handle, res - 1);
		nk_buf__free(idx);
	}
	return r;
}

bool nk_rxb__fionread(struct nk_sock *s, int *val)
{
	struct nk_dgram h;

	if (nk_pf__settle(s) != NK_PF_DONE || s->pf_res <= 0 ||
	    s->pf_end > nk_conn__buf_size() || s->pf_off > s->pf_end ||
	    s->pf_end - s->pf_off < sizeof(h))
		return false;
	memcpy(&h, nk_buf__ptr(s->pf_idx) + s->pf_off, sizeof(h));
	*val = h.err ? 0 : (int)h.len;
	return true;
}

uint32_t nk_rxb__kept(struct nk_sock *s)
{
	if (s->type != SOCK_DGRAM || atomic_load(&s->pf_state) != NK_PF_DONE ||
	    s->pf_res <= 0)
		return 0;
	return (uint32_t)s->pf_res;
}
