// SPDX-License-Identifier: MIT
/*
 * maps_test: drives lib/steer/nk_steer_maps.c against the pins nk-loader made
 * for a device (run by tests/integration/loader_*.sh, inside the device's
 * netns through nsenter --net so /sys/fs/bpf stays the host's).
 *
 *   maps_test api DEV
 *       API contract: add/del of endpoints, flows, NSM addresses, ACL
 *       entries and modes, duplicate and range errors; leaves maps empty.
 *   maps_test setup DEV PORT_MISS PORT_DENY
 *       installs: UDP any:PORT_MISS -> guest 3 (slot 0, no XSK: fallback);
 *       UDP any:PORT_DENY -> guest 4 with an empty allow-list (drops).
 *   maps_test xsk DEV PORT COUNT SECONDS
 *       binds an AF_XDP socket to DEV queue 0, installs it in slot 0 and
 *       UDP any:PORT -> guest 2, prints "ready", then receives until COUNT
 *       frames for PORT arrived (exit 0) or SECONDS passed (exit 1).
 *       COUNT must stay below 64: frames are not recycled.
 *       Removes its endpoint and XSK before leaving.
 * Exit: 0 pass, 1 fail, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include "nk_steer_maps.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

static int failures;

#define EXPECT(expr, want)                                                \
	do {                                                              \
		int got_ = (expr);                                        \
		if (got_ != (want)) {                                     \
			failures++;                                       \
			fprintf(stderr,                                   \
				"FAIL line %d: %s = %d (%s), want %d\n",  \
				__LINE__, #expr, got_,                    \
				got_ < 0 ? strerror(-got_) : "", (want)); \
		}                                                         \
	} while (0)

static void addr(const char *text, __u8 out[16])
{
	if (nk_steer_addr_parse(text, out)) {
		fprintf(stderr, "bad address %s\n", text);
		exit(2);
	}
}

static int cmd_api(struct nk_steer_maps *m)
{
	const struct nk_steer_knobs *k = nk_steer_maps__knobs(m);
	struct nk_target t = { .guest_id = 1, .xsk_slot = 0 };
	struct nk_target bad = { .guest_id = NK_MAX_GUESTS, .xsk_slot = 0 };
	struct nk_flow_key fk;
	struct nk_ep_key ek;
	__u8 a[16], b[16];

	EXPECT(k->magic == NK_KNOBS_MAGIC, 1);
	EXPECT(k->slots_per_queue >= 1, 1);
	EXPECT(nk_steer_addr_parse("not an address", a), -EINVAL);

	addr("192.0.2.1", a);
	nk_steer_ep_key(&ek, IPPROTO_TCP, a, 80);
	EXPECT(ek.port, htons(80));
	EXPECT(ek.addr[10] == 0xff && ek.addr[11] == 0xff && ek.addr[12] == 192,
	       1);
	EXPECT(nk_steer_maps__endpoint_add(m, &ek, &t), 0);
	EXPECT(nk_steer_maps__endpoint_add(m, &ek, &t), -EEXIST);
	EXPECT(nk_steer_maps__count(m, NK_MAP_ENDPOINTS), 1);
	EXPECT(nk_steer_maps__endpoint_add(m, &ek, &bad), -ERANGE);
	bad = (struct nk_target){ .guest_id = 1,
				  .xsk_slot = k->slots_per_queue };
	EXPECT(nk_steer_maps__endpoint_add(m, &ek, &bad), -ERANGE);
	EXPECT(nk_steer_maps__endpoint_del(m, &ek), 0);
	EXPECT(nk_steer_maps__endpoint_del(m, &ek), -ENOENT);

	addr("2001:db8::2", b);
	nk_steer_flow_key(&fk, IPPROTO_UDP, a, 53, b, 40000);
	EXPECT(nk_steer_maps__flow_add(m, &fk, &t), 0);
	EXPECT(nk_steer_maps__flow_add(m, &fk, &t), -EEXIST);
	EXPECT(nk_steer_maps__count(m, NK_MAP_FLOWS), 1);
	EXPECT(nk_steer_maps__flow_del(m, &fk), 0);
	EXPECT(nk_steer_maps__count(m, NK_MAP_FLOWS), 0);

	/* Ownership: guest 2 can neither replace nor delete guest 1's keys. */
	{
		struct nk_target t2 = { .guest_id = 2, .xsk_slot = 0 };
		struct nk_steer_flushed fl;
		__u32 owner = 0;

		EXPECT(nk_steer_maps__flow_add(m, &fk, &t), 0);
		EXPECT(nk_steer_maps__flow_add(m, &fk, &t2), -EEXIST);
		EXPECT(nk_steer_maps__flow_del_owned(m, &fk, 2), -EPERM);
		EXPECT(nk_steer_maps__flow_owner(m, &fk, &owner), 0);
		EXPECT(owner, 1);
		EXPECT(nk_steer_maps__endpoint_add(m, &ek, &t), 0);
		EXPECT(nk_steer_maps__endpoint_add(m, &ek, &t2), -EEXIST);
		EXPECT(nk_steer_maps__endpoint_del_owned(m, &ek, 2), -EPERM);
		EXPECT(nk_steer_maps__count(m, NK_MAP_ENDPOINTS), 1);
		/* A flush of guest 2 leaves guest 1 alone... */
		nk_steer_flow_key(&fk, IPPROTO_TCP, a, 80, b, 40001);
		EXPECT(nk_steer_maps__flow_add(m, &fk, &t2), 0);
		EXPECT(nk_steer_maps__acl_add(m, 2, b, 128, NK_ACL_ALLOW), 0);
		EXPECT(nk_steer_maps__acl_add(m, 1, b, 128, NK_ACL_ALLOW), 0);
		EXPECT(nk_steer_maps__acl_mode_set(m, 2,
						   NK_ACL_MODE_ALLOW_LIST),
		       0);
		EXPECT(nk_steer_maps__guest_flush(m, 2, &fl), 0);
		EXPECT(fl.flows, 1);
		EXPECT(fl.endpoints, 0);
		EXPECT(fl.acl, 1);
		EXPECT(fl.cfg, 1);
		EXPECT(nk_steer_maps__count(m, NK_MAP_FLOWS), 1);
		EXPECT(nk_steer_maps__count(m, NK_MAP_ACL), 1);
		EXPECT(nk_steer_maps__flow_owner(m, &fk, &owner), -ENOENT);
		/* ...the owner deletes its own... */
		nk_steer_flow_key(&fk, IPPROTO_UDP, a, 53, b, 40000);
		EXPECT(nk_steer_maps__flow_del_owned(m, &fk, 1), 0);
		EXPECT(nk_steer_maps__flow_del_owned(m, &fk, 1), -ENOENT);
		/* ...and a flush of everyone removes the rest. */
		EXPECT(nk_steer_maps__flow_add(m, &fk, &t), 0);
		EXPECT(nk_steer_maps__guest_flush(m, NK_STEER_ALL_GUESTS, &fl),
		       0);
		EXPECT(fl.flows, 1);
		EXPECT(fl.endpoints, 1);
		EXPECT(fl.acl, 1);
		EXPECT(nk_steer_maps__count(m, NK_MAP_FLOWS), 0);
		EXPECT(nk_steer_maps__count(m, NK_MAP_ENDPOINTS), 0);
		EXPECT(nk_steer_maps__count(m, NK_MAP_ACL), 0);
		EXPECT(nk_steer_maps__guest_flush(m, NK_MAX_GUESTS, NULL),
		       -ERANGE);
	}

	EXPECT(nk_steer_maps__nsm_addr_add(m, b, &t), 0);
	EXPECT(nk_steer_maps__nsm_addr_add(m, b, &t), -EEXIST);
	EXPECT(nk_steer_maps__nsm_addr_del(m, b), 0);

	EXPECT(nk_steer_maps__acl_mode_set(m, 7, NK_ACL_MODE_DENY_LIST), 0);
	EXPECT(nk_steer_maps__acl_mode_set(m, 7, (enum nk_acl_mode)9), -EINVAL);
	EXPECT(nk_steer_maps__acl_mode_set(m, NK_MAX_GUESTS, NK_ACL_MODE_OFF),
	       -ERANGE);
	/* host bits beyond the prefix are ignored: same entry */
	addr("198.51.100.77", a);
	EXPECT(nk_steer_maps__acl_add(m, 7, a, 96 + 24, NK_ACL_DENY), 0);
	addr("198.51.100.0", a);
	EXPECT(nk_steer_maps__acl_add(m, 7, a, 96 + 24, NK_ACL_DENY), 0);
	EXPECT(nk_steer_maps__count(m, NK_MAP_ACL), 1);
	EXPECT(nk_steer_maps__acl_add(m, 7, a, 129, NK_ACL_DENY), -EINVAL);
	EXPECT(nk_steer_maps__acl_add(m, 7, a, 24, (enum nk_acl_action)0),
	       -EINVAL);
	EXPECT(nk_steer_maps__acl_del(m, 7, a, 96 + 24), 0);
	EXPECT(nk_steer_maps__acl_del(m, 7, a, 96 + 24), -ENOENT);
	EXPECT(nk_steer_maps__acl_mode_set(m, 7, NK_ACL_MODE_OFF), 0);

	EXPECT(nk_steer_maps__xsk_set(m, k->nr_queues, 0, 0), -ERANGE);
	EXPECT(nk_steer_maps__xsk_set(m, 0, k->slots_per_queue, 0), -ERANGE);
	EXPECT(nk_steer_maps__xsk_set(m, 0, 0, -1), -EBADF);
	/* an fd that is not an XSK is refused by the kernel */
	EXPECT(nk_steer_maps__xsk_set(m, 0, 0, 0) < 0, 1);
	EXPECT(nk_steer_maps__count(m, NK_MAP_XSKS), -EINVAL);
	EXPECT(nk_steer_maps__count(m, "nope"), -EINVAL);
	return failures ? 1 : 0;
}

static int cmd_setup(struct nk_steer_maps *m, int port_miss, int port_deny)
{
	struct nk_target t3 = { .guest_id = 3, .xsk_slot = 0 };
	struct nk_target t4 = { .guest_id = 4, .xsk_slot = 0 };
	__u8 any[16] = { 0 };
	struct nk_ep_key ek;

	nk_steer_ep_key(&ek, IPPROTO_UDP, any, (__u16)port_miss);
	EXPECT(nk_steer_maps__endpoint_add(m, &ek, &t3), 0);
	nk_steer_ep_key(&ek, IPPROTO_UDP, any, (__u16)port_deny);
	EXPECT(nk_steer_maps__endpoint_add(m, &ek, &t4), 0);
	EXPECT(nk_steer_maps__acl_mode_set(m, 4, NK_ACL_MODE_ALLOW_LIST), 0);
	return failures ? 1 : 0;
}

/* ---- a minimal AF_XDP receiver (the afxdp NSM will do this for real) */

#define NFRAMES 64
#define FRAME 4096

struct ring {
	__u32 *producer, *consumer;
	void *desc;
	__u32 mask;
};

static int ring_map(int fd, __u64 pgoff, const struct xdp_ring_offset *o,
		    size_t esize, struct ring *r)
{
	size_t len = o->desc + NFRAMES * esize;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, fd, (off_t)pgoff);

	if (p == MAP_FAILED)
		return -errno;
	r->producer = (__u32 *)(p + o->producer);
	r->consumer = (__u32 *)(p + o->consumer);
	r->desc = p + o->desc;
	r->mask = NFRAMES - 1;
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_xsk(struct nk_steer_maps *m, const char *dev, int port,
		   int count, int secs)
{
	struct nk_target t2 = { .guest_id = 2, .xsk_slot = 0 };
	struct xdp_umem_reg reg = { 0 };
	struct sockaddr_xdp sxdp = { 0 };
	struct xdp_mmap_offsets off;
	struct ring fill = { 0 }, rx = { 0 };
	socklen_t optlen = sizeof(off);
	int fd, ring = NFRAMES, got = 0, other = 0, i, ret = 1;
	__u8 any[16] = { 0 };
	struct nk_ep_key ek;
	double deadline;
	char *umem;

	umem = mmap(NULL, NFRAMES * FRAME, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (umem == MAP_FAILED || fd < 0) {
		perror("xsk socket");
		return 1;
	}
	reg.addr = (__u64)(unsigned long)umem;
	reg.len = NFRAMES * FRAME;
	reg.chunk_size = FRAME;
	if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) ||
	    setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &ring, sizeof(ring)) ||
	    setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &ring,
		       sizeof(ring)) ||
	    setsockopt(fd, SOL_XDP, XDP_RX_RING, &ring, sizeof(ring)) ||
	    getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen)) {
		perror("xsk setsockopt");
		return 1;
	}
	if (ring_map(fd, XDP_UMEM_PGOFF_FILL_RING, &off.fr, sizeof(__u64),
		     &fill) ||
	    ring_map(fd, XDP_PGOFF_RX_RING, &off.rx, sizeof(struct xdp_desc),
		     &rx)) {
		perror("xsk mmap");
		return 1;
	}
	/* hand every frame to the kernel; it is the only producer we need */
	for (i = 0; i < NFRAMES; i++)
		((__u64 *)fill.desc)[i] = (__u64)i * FRAME;
	__atomic_store_n(fill.producer, NFRAMES, __ATOMIC_RELEASE);

	sxdp.sxdp_family = AF_XDP;
	sxdp.sxdp_ifindex = if_nametoindex(dev);
	sxdp.sxdp_queue_id = 0;
	sxdp.sxdp_flags = XDP_COPY;
	if (bind(fd, (struct sockaddr *)&sxdp, sizeof(sxdp))) {
		perror("xsk bind");
		return 1;
	}
	EXPECT(nk_steer_maps__xsk_set(m, 0, 0, fd), 0);
	nk_steer_ep_key(&ek, IPPROTO_UDP, any, (__u16)port);
	EXPECT(nk_steer_maps__endpoint_add(m, &ek, &t2), 0);
	if (failures)
		goto out;
	printf("ready\n");
	fflush(stdout);

	deadline = now() + secs;
	while (got < count && now() < deadline) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		__u32 cons, prod;

		poll(&pfd, 1, 100);
		/* acquire: descriptors written before the producer index */
		prod = __atomic_load_n(rx.producer, __ATOMIC_ACQUIRE);
		cons = *rx.consumer;
		for (; cons != prod; cons++) {
			struct xdp_desc *d =
				&((struct xdp_desc *)rx.desc)[cons & rx.mask];
			const __u8 *pkt = (const __u8 *)umem + d->addr;
			const struct iphdr *ip =
				(const void *)(pkt + sizeof(struct ethhdr));
			const struct udphdr *uh =
				(const void *)((const __u8 *)ip + ip->ihl * 4);

			if (d->len >= 42 && ip->protocol == IPPROTO_UDP &&
			    ntohs(uh->dest) == port)
				got++;
			else
				other++;
		}
		/* release: we are done reading those descriptors */
		__atomic_store_n(rx.consumer, cons, __ATOMIC_RELEASE);
		/* no recycling: NFRAMES covers every frame a test sends */
	}
	printf("received %d frames for port %d (%d others)\n", got, port,
	       other);
	ret = got >= count ? 0 : 1;
out:
	nk_steer_maps__endpoint_del(m, &ek);
	nk_steer_maps__xsk_clear(m, 0, 0);
	close(fd);
	return ret || failures;
}

int main(int argc, char **argv)
{
	struct nk_steer_maps *m;
	int err, ret = 2;

	if (argc < 3) {
		fprintf(stderr,
			"usage: see the header of tests/bpf/maps_test.c\n");
		return 2;
	}
	err = nk_steer_maps__open(argv[2], NULL, &m);
	if (err) {
		fprintf(stderr, "nk_steer_maps__open(%s): %s\n", argv[2],
			strerror(-err));
		return 1;
	}
	if (!strcmp(argv[1], "api"))
		ret = cmd_api(m);
	else if (!strcmp(argv[1], "setup") && argc == 5)
		ret = cmd_setup(m, atoi(argv[3]), atoi(argv[4]));
	else if (!strcmp(argv[1], "xsk") && argc == 6)
		ret = cmd_xsk(m, argv[2], atoi(argv[3]), atoi(argv[4]),
			      atoi(argv[5]));
	nk_steer_maps__close(m);
	if (ret == 0)
		printf("maps_test %s: PASS\n", argv[1]);
	return ret;
}
