// SPDX-License-Identifier: MIT
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"

#define LOOP_SQ_ENTRIES 1024u
/* Multishot polls post many CQEs per SQE: keep the CQ well above the SQ. */
#define LOOP_CQ_ENTRIES 8192u

struct nk_loop {
	struct io_uring ring;
	bool defer;
	bool taskrun_flag; /* the kernel flags pending completion work */
	const char *mode;
	struct {
		nk_cqe_fn fn;
		void *ctx;
	} h[NK_UD__MAX];
};

int nk_loop__create(struct nk_loop **out)
{
	static const struct {
		unsigned flags;
		const char *name;
	} modes[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			  IORING_SETUP_TASKRUN_FLAG,
		  "single-issuer+defer-taskrun" },
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		  "single-issuer+defer-taskrun" },
		{ IORING_SETUP_COOP_TASKRUN, "coop-taskrun" },
		{ 0, "plain" },
	};
	struct nk_loop *l;
	int ret = -EINVAL;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	/* Probe by trying: the flags a kernel lacks fail with -EINVAL. */
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = modes[i].flags | IORING_SETUP_CQSIZE |
			  IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = LOOP_CQ_ENTRIES;
		ret = io_uring_queue_init_params(LOOP_SQ_ENTRIES, &l->ring, &p);
		if (ret == 0) {
			l->defer = modes[i].flags & IORING_SETUP_DEFER_TASKRUN;
			l->taskrun_flag = modes[i].flags &
					  IORING_SETUP_TASKRUN_FLAG;
			l->mode = modes[i].name;
			break;
		}
		if (ret != -EINVAL)
			break;
	}
	if (ret) {
		nk_err("io_uring setup failed: %s%s", strerror(-ret),
		       ret == -EPERM || ret == -ENOSYS
			       ? " (io_uring disabled by sysctl or seccomp?)"
			       : "");
		free(l);
		return ret;
	}
	*out = l;
	return 0;
}

void nk_loop__destroy(struct nk_loop *l)
{
	if (!l)
		return;
	io_uring_queue_exit(&l->ring);
	free(l);
}

void nk_loop__on(struct nk_loop *l, enum nk_ud_kind kind, nk_cqe_fn fn,
		 void *ctx)
{
	l->h[kind].fn = fn;
	l->h[kind].ctx = ctx;
}

struct io_uring_sqe *nk_loop__sqe(struct nk_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

void nk_loop__need(struct nk_loop *l, unsigned n)
{
	if (io_uring_sq_space_left(&l->ring) < n)
		io_uring_submit(&l->ring);
}

unsigned nk_loop__reap(struct nk_loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	/*
	 * Handlers may queue new SQEs but never reap, so iterating the CQ
	 * here is not re-entered.
	 */
	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		unsigned kind = (unsigned)(cqe->user_data >> 56);
		uint32_t gen = (uint32_t)(cqe->user_data >> 32) &
			       NK_UD_GEN_MASK;
		uint32_t slot = (uint32_t)cqe->user_data;

		if (kind < NK_UD__MAX && l->h[kind].fn)
			l->h[kind].fn(l->h[kind].ctx, slot, gen, cqe);
		n++;
	}
	io_uring_cq_advance(&l->ring, n);
	return n;
}

void nk_loop__kick(struct nk_loop *l)
{
	/*
	 * With DEFER_TASKRUN completions are only made in io_uring_enter;
	 * TASKRUN_FLAG has the kernel say when there are some to make. The
	 * loop kicks once per pass, spinning or not: a pass with nothing to
	 * submit and nothing pending costs no system call.
	 */
	if (l->taskrun_flag && !io_uring_sq_ready(&l->ring) &&
	    !(IO_URING_READ_ONCE(*l->ring.sq.kflags) &
	      (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)))
		return;
	if (l->defer)
		io_uring_submit_and_get_events(&l->ring);
	else
		io_uring_submit(&l->ring);
}

void nk_loop__wait(struct nk_loop *l, int64_t timeout_ns)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;

	if (timeout_ns < 0) {
		io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, NULL, NULL);
		return;
	}
	ts.tv_sec = timeout_ns / 1000000000;
	ts.tv_nsec = timeout_ns % 1000000000;
	io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
}

int nk_loop__poll(struct nk_loop *l, int fd, unsigned mask, uint64_t ud)
{
	struct io_uring_sqe *sqe = nk_loop__sqe(l);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, fd, mask);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

void nk_loop__cancel_ud(struct nk_loop *l, uint64_t ud)
{
	struct io_uring_sqe *sqe = nk_loop__sqe(l);

	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, ud, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, nk_ud(NK_UD_IGNORE, 0, 0));
}

void nk_loop__cancel_fd(struct nk_loop *l, int fd)
{
	struct io_uring_sqe *sqe = nk_loop__sqe(l);

	if (!sqe)
		return;
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, nk_ud(NK_UD_IGNORE, 0, 0));
}

const char *nk_loop__mode(const struct nk_loop *l)
{
	return l->mode;
}
