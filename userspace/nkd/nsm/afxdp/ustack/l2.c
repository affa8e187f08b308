// SPDX-License-Identifier: MIT
/* Backend-independent part of the L2 interface; see l2.h. */
#include "l2_impl.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static const struct nk_l2_ops *ops_for(enum nk_l2_kind kind)
{
	switch (kind) {
	case NK_L2_AFXDP:
		return &nk_l2_afxdp_ops;
	case NK_L2_PACKET:
		return &nk_l2_packet_ops;
	case NK_L2_TAP:
		return &nk_l2_tap_ops;
	}
	return NULL;
}

enum nk_l2_kind nk_l2__kind(const char *name)
{
	if (!name)
		return 0;
	if (!strcmp(name, "afxdp"))
		return NK_L2_AFXDP;
	if (!strcmp(name, "packet"))
		return NK_L2_PACKET;
	if (!strcmp(name, "tap"))
		return NK_L2_TAP;
	return 0;
}

/*
 * Accepts an options struct of any size: a shorter (older) one is zero
 * extended, a longer (newer) one only if the fields we do not know are 0.
 */
static int opts_copy(const struct nk_l2_opts *in, struct nk_l2_opts *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!in || in->sz < offsetof(struct nk_l2_opts, flags) + 4)
		return -EINVAL;
	for (i = sizeof(*out); i < in->sz; i++)
		if (p[i])
			return -E2BIG;
	memcpy(out, in, in->sz < sizeof(*out) ? in->sz : sizeof(*out));
	out->sz = sizeof(*out);
	if (!out->ifname || !*out->ifname || strlen(out->ifname) >= IFNAMSIZ)
		return -EINVAL;
	if (out->flags & ~NK_L2_F__ALL)
		return -EINVAL;
	return 0;
}

int nk_l2__open(enum nk_l2_kind kind, const struct nk_l2_opts *opts,
		struct nk_l2 **out)
{
	const struct nk_l2_ops *ops = ops_for(kind);
	struct nk_l2_opts o;
	int ret;

	*out = NULL;
	if (!ops)
		return -EINVAL;
	ret = opts_copy(opts, &o);
	if (ret)
		return ret;
	ret = ops->open(&o, out);
	if (ret)
		return ret;
	(*out)->ops = ops;
	return 0;
}

void nk_l2__close(struct nk_l2 *l2)
{
	if (l2)
		l2->ops->close(l2);
}

const char *nk_l2__name(const struct nk_l2 *l2)
{
	return l2->ops->name;
}

int nk_l2__rx(struct nk_l2 *l2, nk_l2_rx_fn fn, void *arg, unsigned budget)
{
	return l2->ops->rx(l2, fn, arg, budget);
}

struct burst_ctx {
	struct nk_l2_buf *bufs;
	unsigned n, got;
};

static void burst_one(void *arg, uint8_t *frame, uint32_t len)
{
	struct burst_ctx *c = arg;
	struct nk_l2_buf *b = &c->bufs[c->got++];

	b->len = len < b->cap ? len : b->cap;
	memcpy(b->buf, frame, b->len);
}

int nk_l2__rx_burst(struct nk_l2 *l2, struct nk_l2_buf *bufs, unsigned n)
{
	struct burst_ctx c = { .bufs = bufs, .n = n };
	int ret = l2->ops->rx(l2, burst_one, &c, n);

	return ret < 0 ? ret : (int)c.got;
}

int nk_l2__tx(struct nk_l2 *l2, const void *frame, uint32_t len)
{
	if (len < NK_L2_MIN_FRAME || len > l2->max_frame) {
		l2->st.tx_dropped++;
		return -EMSGSIZE;
	}
	return l2->ops->tx(l2, frame, len);
}

int nk_l2__flush(struct nk_l2 *l2)
{
	return l2->ops->flush ? l2->ops->flush(l2) : 0;
}

int nk_l2__fd(const struct nk_l2 *l2)
{
	return l2->fd;
}

int nk_l2__mac(const struct nk_l2 *l2, uint8_t mac[6])
{
	memcpy(mac, l2->mac, 6);
	return 0;
}

void nk_l2__stats(const struct nk_l2 *l2, struct nk_l2_stats *st)
{
	*st = l2->st;
	if (l2->ops->stats)
		l2->ops->stats(l2, st);
}

int nk_l2__describe(const struct nk_l2 *l2, char *buf, size_t len)
{
	if (l2->ops->describe)
		return l2->ops->describe(l2, buf, len);
	return snprintf(buf, len, "%s", l2->ops->name);
}

uint32_t nk_l2__max_frame(const struct nk_l2 *l2)
{
	return l2->max_frame;
}

int nk_l2__xskmap_update(struct nk_l2 *l2, int xskmap_fd,
			 uint32_t slots_per_queue, uint32_t slot)
{
	if (!l2->ops->xskmap_update)
		return -EOPNOTSUPP;
	if (!slots_per_queue)
		slots_per_queue = 1;
	if (slot >= slots_per_queue)
		return -EINVAL;
	return l2->ops->xskmap_update(l2, xskmap_fd, slots_per_queue, slot);
}

int nk_l2_fd_tx(struct nk_l2 *l2, const void *frame, uint32_t len)
{
	ssize_t r;

	do {
		r = write(l2->fd, frame, len);
	} while (r < 0 && errno == EINTR);
	if (r != (ssize_t)len) {
		l2->st.tx_dropped++;
		return -ENOBUFS;
	}
	l2->st.tx_frames++;
	l2->st.tx_bytes += len;
	return 0;
}

void nk_l2_fd_close(struct nk_l2 *l2)
{
	close(l2->fd);
	free(l2);
}

int nk_l2_ifmac(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;
	int fd, ret = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		ret = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return ret;
}
