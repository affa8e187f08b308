// SPDX-License-Identifier: MIT
/*
 * AF_XDP backend (libxdp's xsk API): one XSK per RX queue of the device,
 * all on one UMEM. Each (device, queue) has its own fill and completion
 * ring (shared UMEM across queues, kernel >= 5.10); the first socket uses
 * the rings created with the UMEM. TX goes out through the first socket.
 *
 * UMEM frames live in two places: the fill rings (RX buffers, recycled as
 * soon as the engine has copied a frame out) and a free stack for TX
 * (taken by tx(), given back when the completion ring returns them).
 *
 * need_wakeup is always requested: we only make a syscall when the kernel
 * asks for one (TX kick in flush(); fill ring kick after a refill). In copy
 * mode (veth) every TX needs the sendto() kick anyway.
 *
 * XDP program: by default none is loaded (INHIBIT_PROG_LOAD): nk-loader's
 * steering program owns the device and nkd puts our sockets into its XSKMAP
 * with nk_l2__xskmap_update(). NK_L2_F_DEFAULT_PROG lets libxdp load its
 * redirect-everything program instead (tests).
 */
#include "l2_impl.h"

#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <xdp/xsk.h>

#ifndef XDP_PACKET_HEADROOM
#define XDP_PACKET_HEADROOM 256u /* linux/bpf.h */
#endif

#define XQ_MAX 64u
#define TX_BATCH 64u /* kick at the latest after this many queued frames */

struct xq {
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx, cq;
	struct xsk_ring_prod tx, fq;
	uint32_t queue;
	int fd;
};

struct l2_xdp {
	struct nk_l2 base;
	void *area;
	size_t area_sz;
	struct xsk_umem *umem;
	uint32_t frame_size, nframes, ring;
	uint64_t *free_frames; /* TX frame stack */
	uint32_t nfree;
	uint32_t tx_pending; /* submitted since the last kick */
	unsigned nq, rr;
	int epfd;
	int zerocopy; /* bound with XDP_ZEROCOPY */
	int own_prog; /* libxdp loaded its default program */
	struct xq q[];
};

static void reclaim_tx(struct l2_xdp *x)
{
	unsigned i;

	for (i = 0; i < x->nq; i++) {
		struct xq *q = &x->q[i];
		uint32_t idx, n, k;

		n = xsk_ring_cons__peek(&q->cq, x->ring, &idx);
		for (k = 0; k < n; k++)
			x->free_frames[x->nfree++] =
				*xsk_ring_cons__comp_addr(&q->cq, idx + k);
		if (n)
			xsk_ring_cons__release(&q->cq, n);
	}
}

static void kick_tx(struct l2_xdp *x)
{
	struct xq *q = &x->q[0];

	if (!xsk_ring_prod__needs_wakeup(&q->tx))
		return;
	/*
	 * In copy mode one sendto() sends at most 32 descriptors (the
	 * kernel's TX_BATCH_SIZE) and says EAGAIN when more are left. Nothing
	 * would kick again until new frames are queued, so a window's tail
	 * would sit in the ring while lwIP waits for its ACKs: kick until the
	 * ring is drained. EBUSY/ENOBUFS: the device is busy, retried later.
	 */
	for (int i = 0; i < 64; i++) {
		x->base.st.kicks++;
		if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 ||
		    errno != EAGAIN)
			break;
	}
}

static void teardown(struct l2_xdp *x)
{
	unsigned i;

	for (i = 0; i < x->nq; i++)
		if (x->q[i].xsk) {
			xsk_socket__delete(x->q[i].xsk);
			x->q[i].xsk = NULL;
		}
	if (x->umem) {
		xsk_umem__delete(x->umem);
		x->umem = NULL;
	}
	if (x->area && x->area != MAP_FAILED)
		munmap(x->area, x->area_sz);
	x->area = NULL;
	if (x->epfd >= 0)
		close(x->epfd);
	x->epfd = -1;
	free(x->free_frames);
	x->free_frames = NULL;
}

/* Creates the UMEM and every socket with the given bind flags. */
static int setup(struct l2_xdp *x, const struct nk_l2_opts *o,
		 uint16_t bind_flags)
{
	struct xsk_umem_config ucfg = {
		.fill_size = x->ring,
		.comp_size = x->ring,
		.frame_size = x->frame_size,
		.frame_headroom = 0,
	};
	struct xsk_socket_config scfg = {
		.rx_size = x->ring,
		.tx_size = x->ring,
		.bind_flags = bind_flags | XDP_USE_NEED_WAKEUP,
	};
	uint32_t per_q, f = 0, i, idx;
	int ret;

	if (o->flags & NK_L2_F_DEFAULT_PROG)
		scfg.xdp_flags = (o->flags & NK_L2_F_SKB_MODE)
					 ? XDP_FLAGS_SKB_MODE
					 : XDP_FLAGS_DRV_MODE;
	else
		scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;

	x->epfd = -1;
	x->area_sz = (size_t)x->nframes * x->frame_size;
	x->area = mmap(NULL, x->area_sz, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (x->area == MAP_FAILED) {
		x->area = NULL;
		return -errno;
	}
	x->free_frames = calloc(x->nframes, sizeof(*x->free_frames));
	if (!x->free_frames)
		return -ENOMEM;
	ret = xsk_umem__create(&x->umem, x->area, x->area_sz, &x->q[0].fq,
			       &x->q[0].cq, &ucfg);
	if (ret)
		return ret;
	for (i = 0; i < x->nq; i++) {
		struct xq *q = &x->q[i];
		int tries;

		q->queue = o->queue_first + i;
		/* a socket closed just before is released asynchronously */
		for (tries = 0; tries < 20; tries++) {
			ret = xsk_socket__create_shared(&q->xsk, o->ifname,
							q->queue, x->umem,
							&q->rx, &q->tx, &q->fq,
							&q->cq, &scfg);
			if (ret != -EBUSY)
				break;
			usleep(50000);
		}
		if (ret) {
			q->xsk = NULL;
			if (o->failed_queue)
				*o->failed_queue = q->queue;
			return ret;
		}
		q->fd = xsk_socket__fd(q->xsk);
	}
	/* Half of the frames feed the fill rings, the rest are for TX. */
	per_q = x->nframes / 2 / x->nq;
	if (per_q > x->ring)
		per_q = x->ring;
	for (i = 0; i < x->nq; i++) {
		struct xq *q = &x->q[i];
		uint32_t k;

		if (xsk_ring_prod__reserve(&q->fq, per_q, &idx) != per_q)
			return -ENOSPC;
		for (k = 0; k < per_q; k++)
			*xsk_ring_prod__fill_addr(&q->fq, idx + k) =
				(uint64_t)(f++) * x->frame_size;
		xsk_ring_prod__submit(&q->fq, per_q);
	}
	for (; f < x->nframes; f++)
		x->free_frames[x->nfree++] = (uint64_t)f * x->frame_size;

	if (x->nq == 1) {
		x->base.fd = x->q[0].fd;
		return 0;
	}
	x->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (x->epfd < 0)
		return -errno;
	for (i = 0; i < x->nq; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

		if (epoll_ctl(x->epfd, EPOLL_CTL_ADD, x->q[i].fd, &ev) < 0)
			return -errno;
	}
	x->base.fd = x->epfd;
	return 0;
}

static int is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static int xdp_open(const struct nk_l2_opts *o, struct nk_l2 **out)
{
	uint32_t nq = o->queue_count ? o->queue_count : 1;
	struct l2_xdp *x;
	int ret;

	if (nq > XQ_MAX)
		return -EINVAL;
	x = calloc(1, sizeof(*x) + nq * sizeof(x->q[0]));
	if (!x)
		return -ENOMEM;
	x->nq = nq;
	x->epfd = -1;
	x->frame_size = o->frame_size ? o->frame_size : 2048;
	x->nframes = o->num_frames ? o->num_frames : 4096;
	x->ring = o->ring_size ? o->ring_size : 1024;
	if (!is_pow2(x->frame_size) || x->frame_size < 2048 ||
	    x->frame_size > 4096 || !is_pow2(x->ring) ||
	    x->nframes < 2 * nq * 64) {
		free(x);
		return -EINVAL;
	}
	x->base.max_frame = x->frame_size - XDP_PACKET_HEADROOM;
	if (x->base.max_frame > 1514)
		x->base.max_frame = 1514; /* MTU 1500: one frame, no SG */
	ret = nk_l2_ifmac(o->ifname, x->base.mac);
	if (ret)
		goto fail;
	ret = -EOPNOTSUPP;
	if (o->flags & NK_L2_F_ZEROCOPY) {
		ret = setup(x, o, XDP_ZEROCOPY);
		if (ret)
			teardown(x); /* clean fallback: everything again */
	}
	if (!ret)
		x->zerocopy = 1;
	else
		ret = setup(x, o, XDP_COPY);
	if (ret)
		goto fail;
	x->own_prog = !!(o->flags & NK_L2_F_DEFAULT_PROG);
	*out = &x->base;
	return 0;
fail:
	teardown(x);
	free(x);
	return ret;
}

static int xdp_rx(struct nk_l2 *l2, nk_l2_rx_fn fn, void *arg, unsigned budget)
{
	struct l2_xdp *x = (struct l2_xdp *)l2;
	unsigned total = 0, i;

	for (i = 0; i < x->nq && total < budget; i++) {
		struct xq *q = &x->q[(x->rr + i) % x->nq];
		uint32_t idx_rx = 0, idx_fq = 0, n, k;

		n = xsk_ring_cons__peek(&q->rx, budget - total, &idx_rx);
		if (!n) {
			if (xsk_ring_prod__needs_wakeup(&q->fq)) {
				l2->st.kicks++;
				(void)recvfrom(q->fd, NULL, 0, MSG_DONTWAIT,
					       NULL, NULL);
			}
			continue;
		}
		for (k = 0; k < n; k++) {
			const struct xdp_desc *d =
				xsk_ring_cons__rx_desc(&q->rx, idx_rx + k);
			uint8_t *data = xsk_umem__get_data(x->area, d->addr);

			if (d->len > l2->max_frame) {
				l2->st.rx_dropped++;
				continue;
			}
			l2->st.rx_frames++;
			l2->st.rx_bytes += d->len;
			fn(arg, data, d->len);
		}
		/*
		 * Frames are copied out by now: recycle them. The fill ring
		 * has room, since it is as large as what this queue owns.
		 */
		while (xsk_ring_prod__reserve(&q->fq, n, &idx_fq) != n)
			(void)recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL,
				       NULL);
		for (k = 0; k < n; k++) {
			const struct xdp_desc *d =
				xsk_ring_cons__rx_desc(&q->rx, idx_rx + k);

			*xsk_ring_prod__fill_addr(&q->fq, idx_fq + k) =
				xsk_umem__extract_addr(d->addr);
		}
		xsk_ring_prod__submit(&q->fq, n);
		xsk_ring_cons__release(&q->rx, n);
		if (xsk_ring_prod__needs_wakeup(&q->fq)) {
			l2->st.kicks++;
			(void)recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL,
				       NULL);
		}
		total += n;
	}
	x->rr++;
	return (int)total;
}

static int xdp_flush(struct nk_l2 *l2)
{
	struct l2_xdp *x = (struct l2_xdp *)l2;

	if (x->tx_pending) {
		kick_tx(x);
		x->tx_pending = 0;
	}
	reclaim_tx(x);
	return 0;
}

static int xdp_tx(struct nk_l2 *l2, const void *frame, uint32_t len)
{
	struct l2_xdp *x = (struct l2_xdp *)l2;
	struct xq *q = &x->q[0];
	struct xdp_desc *d;
	uint32_t idx;
	int tries;

	for (tries = 0;; tries++) {
		if (!x->nfree)
			reclaim_tx(x);
		if (x->nfree && xsk_ring_prod__reserve(&q->tx, 1, &idx) == 1)
			break;
		if (tries == 2) {
			l2->st.tx_dropped++;
			return -ENOBUFS; /* TCP retransmits; UDP is lossy */
		}
		/* ring or frames exhausted: push what is queued, then retry */
		x->base.st.kicks++;
		(void)sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
		x->tx_pending = 0;
	}
	d = xsk_ring_prod__tx_desc(&q->tx, idx);
	d->addr = x->free_frames[--x->nfree];
	d->len = len;
	memcpy(xsk_umem__get_data(x->area, d->addr), frame, len);
	xsk_ring_prod__submit(&q->tx, 1);
	l2->st.tx_frames++;
	l2->st.tx_bytes += len;
	if (++x->tx_pending >= TX_BATCH)
		xdp_flush(l2);
	return 0;
}

static int xdp_xskmap_update(struct nk_l2 *l2, int map_fd, uint32_t slots,
			     uint32_t slot)
{
	struct l2_xdp *x = (struct l2_xdp *)l2;
	unsigned i;

	for (i = 0; i < x->nq; i++) {
		uint32_t key = x->q[i].queue * slots + slot;
		int fd = x->q[i].fd;

		if (bpf_map_update_elem(map_fd, &key, &fd, 0))
			return -errno;
	}
	return 0;
}

static void xdp_stats(const struct nk_l2 *l2, struct nk_l2_stats *st)
{
	const struct l2_xdp *x = (const struct l2_xdp *)l2;
	unsigned i;

	for (i = 0; i < x->nq; i++) {
		struct xdp_statistics xs;
		socklen_t len = sizeof(xs);

		memset(&xs, 0, sizeof(xs));
		if (getsockopt(x->q[i].fd, SOL_XDP, XDP_STATISTICS, &xs,
			       &len) == 0)
			st->rx_dropped += xs.rx_dropped + xs.rx_ring_full +
					  xs.rx_invalid_descs;
	}
}

static int xdp_describe(const struct nk_l2 *l2, char *buf, size_t len)
{
	const struct l2_xdp *x = (const struct l2_xdp *)l2;

	return snprintf(
		buf, len,
		"afxdp %s queues %u-%u umem %ux%u ring %u need_wakeup%s",
		x->zerocopy ? "zero-copy" : "copy", x->q[0].queue,
		x->q[x->nq - 1].queue, x->nframes, x->frame_size, x->ring,
		x->own_prog ? " libxdp-default-prog" : "");
}

static void xdp_close(struct nk_l2 *l2)
{
	struct l2_xdp *x = (struct l2_xdp *)l2;

	teardown(x);
	free(x);
}

const struct nk_l2_ops nk_l2_afxdp_ops = {
	.name = "afxdp",
	.open = xdp_open,
	.rx = xdp_rx,
	.tx = xdp_tx,
	.flush = xdp_flush,
	.xskmap_update = xdp_xskmap_update,
	.stats = xdp_stats,
	.describe = xdp_describe,
	.close = xdp_close,
};
