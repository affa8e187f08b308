// SPDX-License-Identifier: MIT
/*
 * TAP backend: the engine is the "wire side" of a TAP device. Frames the
 * kernel sends out of the device are read from the fd; frames written to
 * the fd arrive at the kernel as if received. The kernel computes full
 * checksums for a TAP without offloads (no TUNSETOFFLOAD), so frames from
 * here never carry partial checksums. Works in `unshare -Urn`.
 */
#include "l2_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#define TAP_BUF 65536u

struct l2_tap {
	struct nk_l2 base;
	uint8_t buf[TAP_BUF];
};

static int tap_mtu(const char *ifname)
{
	struct ifreq ifr;
	int fd, mtu = 1500;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mtu;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
	if (ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
		mtu = ifr.ifr_mtu;
	close(fd);
	return mtu;
}

static int tap_open(const struct nk_l2_opts *opts, struct nk_l2 **out)
{
	struct l2_tap *t;
	struct ifreq ifr;
	int fd, ret;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	memcpy(ifr.ifr_name, opts->ifname, strnlen(opts->ifname, IFNAMSIZ - 1));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	t->base.fd = fd;
	t->base.max_frame = (uint32_t)tap_mtu(ifr.ifr_name) + NK_L2_MIN_FRAME;
	if (t->base.max_frame > TAP_BUF)
		t->base.max_frame = TAP_BUF;
	/* A locally administered unicast MAC of our own, not the device's. */
	if (getrandom(t->base.mac, 6, GRND_NONBLOCK) != 6)
		memcpy(t->base.mac, "\x02\x00\x5e\x4e\x4b\x01", 6);
	t->base.mac[0] = (uint8_t)((t->base.mac[0] & 0xfc) | 0x02);
	*out = &t->base;
	return 0;
}

static int tap_rx(struct nk_l2 *l2, nk_l2_rx_fn fn, void *arg, unsigned budget)
{
	struct l2_tap *t = (struct l2_tap *)l2;
	unsigned n = 0;

	while (n < budget) {
		ssize_t r = read(l2->fd, t->buf, TAP_BUF);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return n ? (int)n : -errno;
		}
		if (r == 0)
			break;
		if ((uint32_t)r > l2->max_frame) {
			l2->st.rx_dropped++;
			continue;
		}
		l2->st.rx_frames++;
		l2->st.rx_bytes += (uint64_t)r;
		fn(arg, t->buf, (uint32_t)r);
		n++;
	}
	return (int)n;
}

const struct nk_l2_ops nk_l2_tap_ops = {
	.name = "tap",
	.open = tap_open,
	.rx = tap_rx,
	.tx = nk_l2_fd_tx,
	.close = nk_l2_fd_close,
};
