/* SPDX-License-Identifier: MIT */
/* Backend side of l2.h: the ops table each backend fills in. Internal. */
#ifndef NK_USTACK_L2_IMPL_H
#define NK_USTACK_L2_IMPL_H

#include "l2.h"

struct nk_l2_ops {
	const char *name;
	int (*open)(const struct nk_l2_opts *opts, struct nk_l2 **out);
	int (*rx)(struct nk_l2 *l2, nk_l2_rx_fn fn, void *arg, unsigned budget);
	int (*tx)(struct nk_l2 *l2, const void *frame, uint32_t len);
	int (*flush)(struct nk_l2 *l2);
	int (*xskmap_update)(struct nk_l2 *l2, int map_fd, uint32_t slots,
			     uint32_t slot); /* may be NULL */
	void (*stats)(const struct nk_l2 *l2,
		      struct nk_l2_stats *st); /* NULL ok */
	/* one line on the mode actually in use; NULL: just the name */
	int (*describe)(const struct nk_l2 *l2, char *buf, size_t len);
	void (*close)(struct nk_l2 *l2);
};

/* First member of every backend's private struct. */
struct nk_l2 {
	const struct nk_l2_ops *ops;
	int fd; /* pollable */
	uint32_t max_frame;
	uint8_t mac[6];
	struct nk_l2_stats st;
};

extern const struct nk_l2_ops nk_l2_afxdp_ops;
extern const struct nk_l2_ops nk_l2_packet_ops;
extern const struct nk_l2_ops nk_l2_tap_ops;

/*
 * tx and close of the backends whose frames go through one non-blocking
 * fd, a frame per write (AF_PACKET, TAP). The private struct holds nothing
 * else that needs freeing.
 */
int nk_l2_fd_tx(struct nk_l2 *l2, const void *frame, uint32_t len);
void nk_l2_fd_close(struct nk_l2 *l2);

/* Reads the MAC address of ifname into mac via SIOCGIFHWADDR. */
int nk_l2_ifmac(const char *ifname, uint8_t mac[6]);

#endif /* NK_USTACK_L2_IMPL_H */
