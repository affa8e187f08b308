// SPDX-License-Identifier: MIT
/*
 * AF_PACKET backend: SOCK_RAW on one device, every ethertype, our own
 * transmissions ignored (PACKET_IGNORE_OUTGOING). Plain recv/send with
 * batching through recvmmsg; simple and good for tests, not for speed.
 *
 * The kernel may hand up GSO/GRO super-frames larger than the MTU (a veth
 * peer with TSO on): those are dropped and counted, so the peer must run
 * with `ethtool -K dev tso off gso off` (docs/afxdp-nsm.md). Partial
 * checksums from a veth peer are completed by the engine.
 */
#include "l2_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define PKT_BATCH 32u
#define PKT_BUF 2048u /* frames beyond max_frame are dropped anyway */

struct l2_packet {
	struct nk_l2 base;
	int ifindex;
	struct mmsghdr msgs[PKT_BATCH];
	struct iovec iov[PKT_BATCH];
	uint8_t bufs[PKT_BATCH][PKT_BUF];
};

static int packet_open(const struct nk_l2_opts *opts, struct nk_l2 **out)
{
	struct sockaddr_ll sll;
	struct l2_packet *p;
	struct ifreq ifr;
	int fd, one = 1, ret;
	unsigned i;

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    htons(ETH_P_ALL));
	if (fd < 0)
		return -errno;
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	p->base.fd = fd;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, opts->ifname, strnlen(opts->ifname, IFNAMSIZ - 1));
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
		goto err;
	p->ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFMTU, &ifr) < 0)
		goto err;
	p->base.max_frame = (uint32_t)ifr.ifr_mtu + NK_L2_MIN_FRAME;
	if (p->base.max_frame > PKT_BUF)
		p->base.max_frame = PKT_BUF;
	ret = nk_l2_ifmac(opts->ifname, p->base.mac);
	if (ret) {
		errno = -ret;
		goto err;
	}
	/* Best effort: older kernels lack it and we then see our own TX. */
	(void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one,
			 sizeof(one));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = p->ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		goto err;
	for (i = 0; i < PKT_BATCH; i++) {
		p->iov[i].iov_base = p->bufs[i];
		p->iov[i].iov_len = PKT_BUF;
		p->msgs[i].msg_hdr.msg_iov = &p->iov[i];
		p->msgs[i].msg_hdr.msg_iovlen = 1;
	}
	*out = &p->base;
	return 0;
err:
	ret = -errno;
	close(fd);
	free(p);
	return ret;
}

static int packet_rx(struct nk_l2 *l2, nk_l2_rx_fn fn, void *arg,
		     unsigned budget)
{
	struct l2_packet *p = (struct l2_packet *)l2;
	unsigned total = 0;

	while (total < budget) {
		unsigned want = budget - total, i;
		int n;

		if (want > PKT_BATCH)
			want = PKT_BATCH;
		n = recvmmsg(l2->fd, p->msgs, want, MSG_DONTWAIT | MSG_TRUNC,
			     NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return total ? (int)total : -errno;
		}
		for (i = 0; i < (unsigned)n; i++) {
			uint32_t len = p->msgs[i].msg_len; /* real length */

			if (len > l2->max_frame) {
				l2->st.rx_dropped++;
				continue;
			}
			l2->st.rx_frames++;
			l2->st.rx_bytes += len;
			fn(arg, p->bufs[i], len);
		}
		total += (unsigned)n;
		if ((unsigned)n < want)
			break;
	}
	return (int)total;
}

const struct nk_l2_ops nk_l2_packet_ops = {
	.name = "packet",
	.open = packet_open,
	.rx = packet_rx,
	.tx = nk_l2_fd_tx,
	.close = nk_l2_fd_close,
};
