// SPDX-License-Identifier: MIT
/*
 * Read-ahead given back before fork and exec (docs/shim.md "Receive
 * read-ahead", "Datagram batches"; docs/abi.md §5 "Unread data").
 *
 * A stream's stash and a datagram socket's kept batch are data the program
 * has not asked for yet: on a kernel socket they would still be in the
 * socket, for the child of a fork or the next image of an exec to read.
 * So before fork and execve the shim hands them back to nkd (NK_OP_UNREAD,
 * when nkd offers NK_FEAT_UNREAD), which answers the socket's next RECVs
 * from them, ahead of anything its NSM holds. The process then holds
 * nothing read ahead; what it reads next comes from nkd again.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "shim.h"

/* Give s's read-ahead back; with rx_lock held. */
static void giveback_one(struct nk_sock *s, int fd)
{
	struct nk_sqe sqe = { .opcode = NK_OP_UNREAD, .handle = s->handle };
	struct nk_call op;
	uint32_t len, end;
	int done = NK_PF_DONE, res, err;

	if (nk_pf__settle(s) != NK_PF_DONE || s->pf_res <= 0)
		return; /* nothing kept, or only an end or an error */
	/* Stream: bytes left in the stash; datagrams: the records left. */
	end = s->type == SOCK_STREAM ? (uint32_t)s->pf_res : s->pf_end;
	if (end > nk_conn__buf_size() || s->pf_off >= end)
		return;
	len = end - s->pf_off;
	sqe.io.buf_off = nk_buf__off(s->pf_idx) + s->pf_off;
	sqe.io.buf_len = len;
	err = nk_ring__call(&sqe, &op, false);
	res = err ? err : op.cqe.res;
	if (res < 0) {
		/* Kept: the parent reads it; an exec loses it, as before. */
		nk_dbg("fd %d: %u byte(s) read ahead not given back: %s", fd,
		       len, strerror(-res));
		return;
	}
	nk_dbg("fd %d: gave %u byte(s) read ahead back to nkd", fd, len);
	if (atomic_compare_exchange_strong(&s->pf_state, &done, NK_PF_NONE))
		nk_buf__free(s->pf_idx);
}

/*
 * A standing RECV parked at nkd would take data the child or the next
 * image waits for: end it (what it got meanwhile is read-ahead like any
 * other, given back below). With rx_lock held.
 */
static void standing_end(struct nk_sock *s)
{
	if (nk_pf__settle(s) != NK_PF_PARKED ||
	    nk_ring__prefetch_cancel(s->pf_idx))
		return;
	while (atomic_load(&s->pf_state) == NK_PF_PARKED) {
		uint32_t g = nk_ring__gen();

		nk_ring__poll();
		if (atomic_load(&s->pf_state) != NK_PF_PARKED ||
		    nk_ring__wait_progress(g, 0, false))
			break;
	}
}

void nk_giveback__all(void)
{
	bool unread = nk_conn__has_feature(NK_FEAT_UNREAD);

	if (!unread && !nk_conn__has_feature(NK_FEAT_RECV_STANDING))
		return;
	for (uint32_t fd = 0; fd < nk_fdtab__size(); fd++) {
		struct nk_sock *s = nk_fdtab__get((int)fd);

		if (!s)
			continue;
		/* Two processes may read it from now on. */
		atomic_store(&s->rx_nopush, 1);
		/*
		 * A thread blocked in a stream recv holds rx_lock, and then
		 * nothing is stashed (the stash answers before nkd is asked).
		 */
		if (atomic_load(&s->pf_state) != NK_PF_NONE &&
		    !pthread_mutex_trylock(&s->rx_lock)) {
			standing_end(s);
			if (unread)
				giveback_one(s, (int)fd);
			pthread_mutex_unlock(&s->rx_lock);
		}
		nk_sock__put(s);
	}
}
