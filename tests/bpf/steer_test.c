// SPDX-License-Identifier: MIT
/*
 * steer_test: the nk_steer XDP program run through bpf_prog_test_run_opts()
 * on packet fixtures built here. No traffic leaves the process: it moves to
 * a private network namespace first (lo, plus a throwaway veth for the
 * multi-queue case) and binds one AF_XDP socket to lo so that a redirect
 * can really succeed.
 *
 * Every case states the verdict and the exit path (enum nk_exit) it expects;
 * the program's debug record (knob debug=1) gives guest id and XSKMAP index.
 * At the end the per-exit counters must equal the tally of what was sent,
 * packets and bytes, and the per-guest counters must match as well.
 *
 * Exit: 0 pass, 1 fail, 77 skip (not root / no BPF).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_xdp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "nk_steer_shared.h"
#include "nk_steer.skel.h"
#include "nk_steer_maps.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define SLOTS 4

static int failures, checks;
static struct nk_steer *skel;
static int lo_ifindex;

/* What the test has sent, per exit path and per guest. */
static struct nk_exit_stats want_exit[NK_EXIT__MAX];
static struct nk_guest_stats want_guest[16];
static bool tally = true; /* off while a second program instance runs */

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		checks++;                                                    \
		if (!(cond)) {                                               \
			failures++;                                          \
			fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                            \
	} while (0)

/* ---------------------------------------------------------- fixtures */

enum l3 { L3_IP4, L3_IP6, L3_ARP, L3_RAW };

struct spec {
	enum l3 l3;
	bool vlan, qinq;
	__u16 ethertype; /* L3_RAW */
	const char *src, *dst; /* text addresses */
	int ihl; /* 0: 5 */
	int ip_version; /* 0: right one */
	__u16 frag; /* IPv4 frag_off / IPv6 fragment header field, host */
	const __u8 *ext; /* IPv6 extension header types, in order */
	int n_ext;
	int proto; /* IPPROTO_*, 0: TCP */
	__u16 sport, dport;
	int icmp_type;
	const char *nd_target;
	int payload;
	const char *arp_tpa;
};

struct frame {
	__u8 b[512];
	unsigned int len;
	/* where each header starts, for truncation tests */
	unsigned int off_l3, off_ext, off_l4, end_l4;
};

static void put(struct frame *f, const void *p, unsigned int n)
{
	memcpy(f->b + f->len, p, n);
	f->len += n;
}

static void put16(struct frame *f, __u16 v)
{
	v = htons(v);
	put(f, &v, 2);
}

static void put8(struct frame *f, __u8 v)
{
	put(f, &v, 1);
}

static void zeros(struct frame *f, unsigned int n)
{
	memset(f->b + f->len, 0, n);
	f->len += n;
}

static void build(struct frame *f, const struct spec *s)
{
	static const __u8 mac_d[6] = { 2, 0, 0, 0, 0, 1 };
	static const __u8 mac_s[6] = { 2, 0, 0, 0, 0, 2 };
	int proto = s->proto ? s->proto : IPPROTO_TCP;
	struct in_addr a4;
	__u8 a6[16];
	int i;

	memset(f, 0, sizeof(*f));
	put(f, mac_d, 6);
	put(f, mac_s, 6);
	if (s->vlan) {
		put16(f, ETH_P_8021Q);
		put16(f, 42);
	}
	if (s->qinq) {
		put16(f, ETH_P_8021Q);
		put16(f, 43);
	}
	switch (s->l3) {
	case L3_RAW:
		put16(f, s->ethertype);
		f->off_l3 = f->off_ext = f->off_l4 = f->len;
		zeros(f, 46);
		f->end_l4 = f->len;
		return;
	case L3_ARP:
		put16(f, ETH_P_ARP);
		f->off_l3 = f->len;
		put16(f, 1); /* Ethernet */
		put16(f, ETH_P_IP);
		put8(f, 6);
		put8(f, 4);
		put16(f, 1); /* request */
		put(f, mac_s, 6);
		inet_pton(AF_INET, s->src ? s->src : "10.0.0.2", &a4);
		put(f, &a4, 4);
		zeros(f, 6);
		inet_pton(AF_INET, s->arp_tpa, &a4);
		put(f, &a4, 4);
		f->off_ext = f->off_l4 = f->end_l4 = f->len;
		return;
	case L3_IP4: {
		int ihl = s->ihl ? s->ihl : 5;

		put16(f, ETH_P_IP);
		f->off_l3 = f->len;
		put8(f, (__u8)(((s->ip_version ? s->ip_version : 4) << 4) |
			       (ihl & 15)));
		put8(f, 0);
		put16(f, 0); /* tot_len: not checked */
		put16(f, 1);
		put16(f, s->frag);
		put8(f, 64);
		put8(f, (__u8)proto);
		put16(f, 0);
		inet_pton(AF_INET, s->src ? s->src : "10.0.0.2", &a4);
		put(f, &a4, 4);
		inet_pton(AF_INET, s->dst, &a4);
		put(f, &a4, 4);
		/* options: NOPs, then EOL */
		for (i = 20; i < ihl * 4; i++)
			put8(f, i + 1 == ihl * 4 ? 0 : 1);
		f->off_ext = f->len;
		break;
	}
	case L3_IP6: {
		__u8 nh = s->n_ext ? s->ext[0] : (__u8)proto;

		put16(f, ETH_P_IPV6);
		f->off_l3 = f->len;
		put8(f, (__u8)((s->ip_version ? s->ip_version : 6) << 4));
		zeros(f, 3);
		put16(f, 0);
		put8(f, nh);
		put8(f, 64);
		inet_pton(AF_INET6, s->src ? s->src : "fd00::2", a6);
		put(f, a6, 16);
		inet_pton(AF_INET6, s->dst, a6);
		put(f, a6, 16);
		f->off_ext = f->len;
		for (i = 0; i < s->n_ext; i++) {
			nh = i + 1 < s->n_ext ? s->ext[i + 1] : (__u8)proto;
			if (s->ext[i] == 44) { /* fragment: 8 bytes */
				put8(f, nh);
				put8(f, 0);
				put16(f, s->frag);
				put(f, "\0\0\0\1", 4);
			} else if (s->ext[i] == 51) { /* AH: (2+2)*4 = 16 */
				put8(f, nh);
				put8(f, 2);
				zeros(f, 14);
			} else { /* hop/routing/dest: (1+1)*8 = 16 */
				put8(f, nh);
				put8(f, 1);
				zeros(f, 14);
			}
		}
		break;
	}
	}
	f->off_l4 = f->len;
	switch (proto) {
	case IPPROTO_TCP:
		put16(f, s->sport);
		put16(f, s->dport);
		zeros(f, 8);
		put8(f, 5 << 4);
		put8(f, 0x02); /* SYN */
		put16(f, 65535);
		zeros(f, 4);
		break;
	case IPPROTO_UDP:
		put16(f, s->sport);
		put16(f, s->dport);
		put16(f, (__u16)(8 + s->payload));
		put16(f, 0);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		put8(f, (__u8)s->icmp_type);
		zeros(f, 7);
		if (s->nd_target) {
			inet_pton(AF_INET6, s->nd_target, a6);
			put(f, a6, 16);
		}
		break;
	default:
		zeros(f, 8);
		break;
	}
	f->end_l4 = f->len;
	zeros(f, (unsigned int)s->payload);
}

/* ---------------------------------------------------------- running */

struct result {
	int verdict;
	struct nk_dbg dbg;
};

static int run_frame(int prog_fd, const void *data, unsigned int len,
		     int ifindex, unsigned int queue, struct result *r)
{
	struct xdp_md ctx = { .data_end = len,
			      .ingress_ifindex = (__u32)ifindex,
			      .rx_queue_index = queue };
	__u8 out[1024];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data,
		    .data_size_in = len, .data_out = out,
		    .data_size_out = sizeof(out), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = 1);
	int err;

	err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err)
		return err;
	r->verdict = (int)opts.retval;
	r->dbg = skel->bss->nk_dbg;
	return 0;
}

static const char *verdict_name(int v)
{
	switch (v) {
	case XDP_ABORTED:
		return "ABORTED";
	case XDP_DROP:
		return "DROP";
	case XDP_PASS:
		return "PASS";
	case XDP_TX:
		return "TX";
	case XDP_REDIRECT:
		return "REDIRECT";
	}
	return "?";
}

/*
 * Run a frame and check verdict and exit path; guest >= 0 also checks the
 * debug record's guest id and, when xsk >= 0, the XSKMAP index tried.
 * Keeps the tallies the counters are compared with at the end.
 */
static void expect_len(const char *what, const struct frame *f,
		       unsigned int len, int verdict, unsigned int exit,
		       int guest, int xsk)
{
	struct result r;
	int err;

	err = run_frame(bpf_program__fd(skel->progs.nk_steer), f->b, len,
			lo_ifindex, 0, &r);
	CHECK(!err, "%s: test_run failed: %s", what, strerror(-err));
	if (err)
		return;
	if (tally) {
		want_exit[exit].packets++;
		want_exit[exit].bytes += len;
	}
	CHECK(r.verdict == verdict && r.dbg.exit == exit,
	      "%s (len %u): got %s/%s, want %s/%s", what, len,
	      verdict_name(r.verdict), nk_steer_exit_name(r.dbg.exit),
	      verdict_name(verdict), nk_steer_exit_name(exit));
	if (guest >= 0) {
		CHECK(r.dbg.guest_id == (__u32)guest, "%s: guest %u, want %d",
		      what, r.dbg.guest_id, guest);
		if (xsk >= 0)
			CHECK(r.dbg.xsk_index == (__u32)xsk,
			      "%s: xsk index %u, want %d", what,
			      r.dbg.xsk_index, xsk);
		if (tally && guest < 16 && r.dbg.guest_id == (__u32)guest) {
			struct nk_guest_stats *g = &want_guest[guest];

			if (exit == NK_EXIT_DROP_ACL) {
				g->drop_bytes += len;
			} else if (exit == NK_EXIT_PASS_XSK_MISS) {
				g->xsk_miss++;
				g->xsk_miss_bytes += len;
			} else if (verdict == XDP_REDIRECT) {
				g->packets++;
				g->bytes += len;
			}
		}
	} else {
		CHECK(r.dbg.guest_id == ~0u, "%s: unexpected guest %u", what,
		      r.dbg.guest_id);
	}
}

static void expect(const char *what, const struct spec *s, int verdict,
		   unsigned int exit, int guest, int xsk)
{
	struct frame f;

	build(&f, s);
	expect_len(what, &f, f.len, verdict, exit, guest, xsk);
}

/* ---------------------------------------------------------- setup */

static void addr(const char *text, __u8 out[16])
{
	if (nk_steer_addr_parse(text, out)) {
		fprintf(stderr, "bad address %s\n", text);
		exit(1);
	}
}

static void add_ep(int proto, const char *a, __u16 port, __u32 guest,
		   __u32 slot)
{
	struct nk_target t = { .guest_id = guest, .xsk_slot = slot };
	struct nk_ep_key k;
	__u8 a16[16] = { 0 };

	if (a)
		addr(a, a16);
	nk_steer_ep_key(&k, proto, a16, port);
	CHECK(!bpf_map_update_elem(bpf_map__fd(skel->maps.nk_endpoints), &k, &t,
				   BPF_NOEXIST),
	      "endpoint add: %s", strerror(errno));
}

static void add_nsm(const char *a, __u32 slot)
{
	struct nk_target t = { .guest_id = NK_GUEST_NSM, .xsk_slot = slot };
	struct nk_addr_key k;

	addr(a, k.addr);
	CHECK(!bpf_map_update_elem(bpf_map__fd(skel->maps.nk_nsm_addrs), &k, &t,
				   BPF_NOEXIST),
	      "nsm addr add: %s", strerror(errno));
}

static void acl(__u32 guest, const char *a, unsigned int plen, __u32 action)
{
	struct nk_acl_key k = { .prefixlen = 32 + plen, .guest_id = guest };

	addr(a, k.addr);
	CHECK(!bpf_map_update_elem(bpf_map__fd(skel->maps.nk_acl), &k, &action,
				   BPF_ANY),
	      "acl add: %s", strerror(errno));
}

static void acl_mode(__u32 guest, __u32 mode)
{
	struct nk_guest_cfg c = { .acl_mode = mode };

	CHECK(!bpf_map_update_elem(bpf_map__fd(skel->maps.nk_guest_cfg), &guest,
				   &c, BPF_ANY),
	      "acl mode: %s", strerror(errno));
}

static int ifup(const char *name)
{
	struct ifreq ifr;
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		err = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!err && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		err = -errno;
	close(fd);
	return err;
}

/*
 * An AF_XDP socket in copy mode on lo, queue 0: enough for the XSKMAP to
 * accept it and for bpf_redirect_map() to answer XDP_REDIRECT. Returns the
 * fd or -errno.
 */
static int xsk_on_lo(void)
{
	struct xdp_umem_reg reg = { 0 };
	struct sockaddr_xdp sxdp = { 0 };
	int fd, ring = 64;
	void *umem;

	umem = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (umem == MAP_FAILED)
		return -errno;
	fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	reg.addr = (__u64)(unsigned long)umem;
	reg.len = 64 * 4096;
	reg.chunk_size = 4096;
	if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) ||
	    setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &ring, sizeof(ring)) ||
	    setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &ring,
		       sizeof(ring)) ||
	    setsockopt(fd, SOL_XDP, XDP_RX_RING, &ring, sizeof(ring)))
		goto fail;
	sxdp.sxdp_family = AF_XDP;
	sxdp.sxdp_ifindex = (__u32)lo_ifindex;
	sxdp.sxdp_queue_id = 0;
	sxdp.sxdp_flags = XDP_COPY;
	if (bind(fd, (struct sockaddr *)&sxdp, sizeof(sxdp)))
		goto fail;
	return fd;
fail:
	ring = -errno;
	close(fd);
	return ring;
}

static struct nk_steer *load(bool arp, bool icmp, unsigned int queues)
{
	struct nk_steer *s = nk_steer__open();

	if (!s)
		return NULL;
	s->rodata->nk_knobs.nr_queues = queues;
	s->rodata->nk_knobs.slots_per_queue = SLOTS;
	s->rodata->nk_knobs.steer_arp = arp;
	s->rodata->nk_knobs.steer_icmp = icmp;
	s->rodata->nk_knobs.debug = 1;
	if (bpf_map__set_max_entries(s->maps.nk_xsks, queues * SLOTS) ||
	    nk_steer__load(s)) {
		nk_steer__destroy(s);
		return NULL;
	}
	return s;
}

/* ---------------------------------------------------------- cases */

static void test_l4_steering(void)
{
	expect("tcp endpoint",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.1",
			       .sport = 1234,
			       .dport = 80 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 1, 1);
	expect("tcp endpoint + payload",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.1",
			       .sport = 1234,
			       .dport = 80,
			       .payload = 300 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 1, 1);
	expect("tcp endpoint via vlan",
	       &(struct spec){ .l3 = L3_IP4,
			       .vlan = true,
			       .dst = "10.0.0.1",
			       .sport = 1234,
			       .dport = 80 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 1, 1);
	expect("tcp unknown port",
	       &(struct spec){ .l3 = L3_IP4, .dst = "10.0.0.1", .dport = 81 },
	       XDP_PASS, NK_EXIT_PASS_NO_MATCH, -1, -1);
	expect("udp to tcp endpoint",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.1",
			       .dport = 80,
			       .proto = IPPROTO_UDP },
	       XDP_PASS, NK_EXIT_PASS_NO_MATCH, -1, -1);
	expect("udp wildcard v4",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.7",
			       .dport = 53,
			       .proto = IPPROTO_UDP },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP_ANY, 2, 1);
	expect("udp wildcard v6",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::9",
			       .dport = 53,
			       .proto = IPPROTO_UDP },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP_ANY, 2, 1);
	expect("tcp v6 endpoint, empty xsk slot",
	       &(struct spec){ .l3 = L3_IP6, .dst = "fd00::1", .dport = 443 },
	       XDP_PASS, NK_EXIT_PASS_XSK_MISS, 3, 2);
	expect("tcp flow",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "10.0.0.2",
			       .dst = "10.0.0.1",
			       .sport = 40000,
			       .dport = 8080 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_FLOW, 4, 1);
	expect("tcp flow, other remote port",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "10.0.0.2",
			       .dst = "10.0.0.1",
			       .sport = 40001,
			       .dport = 8080 },
	       XDP_PASS, NK_EXIT_PASS_NO_MATCH, -1, -1);
	expect("flow wins over endpoint",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "10.0.0.3",
			       .dst = "10.0.0.1",
			       .sport = 5555,
			       .dport = 80 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_FLOW, 7, 1);
	expect("entry with slot out of range",
	       &(struct spec){ .l3 = L3_IP4, .dst = "10.0.0.1", .dport = 9 },
	       XDP_PASS, NK_EXIT_PASS_BAD_TARGET, 8, -1);
	expect("ipv4 options ihl 6",
	       &(struct spec){
		       .l3 = L3_IP4, .ihl = 6, .dst = "10.0.0.1", .dport = 80 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 1, 1);
	expect("ipv4 options ihl 15",
	       &(struct spec){
		       .l3 = L3_IP4, .ihl = 15, .dst = "10.0.0.1", .dport = 80 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 1, 1);
}

static void test_nsm(void)
{
	expect("arp for nsm",
	       &(struct spec){ .l3 = L3_ARP, .arp_tpa = "10.0.0.100" },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_ARP, 0, 1);
	expect("arp for nsm via vlan",
	       &(struct spec){
		       .l3 = L3_ARP, .vlan = true, .arp_tpa = "10.0.0.100" },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_ARP, 0, 1);
	expect("arp for other",
	       &(struct spec){ .l3 = L3_ARP, .arp_tpa = "10.0.0.1" }, XDP_PASS,
	       NK_EXIT_PASS_ARP, -1, -1);
	expect("icmp echo for nsm",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.100",
			       .proto = IPPROTO_ICMP,
			       .icmp_type = 8 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_ICMP, 0, 1);
	expect("icmp echo for other",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.1",
			       .proto = IPPROTO_ICMP,
			       .icmp_type = 8 },
	       XDP_PASS, NK_EXIT_PASS_ICMP, -1, -1);
	expect("icmpv6 echo for nsm",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::100",
			       .proto = IPPROTO_ICMPV6,
			       .icmp_type = 128 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_ICMP, 0, 1);
	expect("neighbour solicitation for nsm",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "ff02::1:ff00:100",
			       .proto = IPPROTO_ICMPV6,
			       .icmp_type = 135,
			       .nd_target = "fd00::100" },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_ICMP, 0, 1);
	expect("neighbour solicitation for other",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "ff02::1:ff00:5",
			       .proto = IPPROTO_ICMPV6,
			       .icmp_type = 135,
			       .nd_target = "fd00::5" },
	       XDP_PASS, NK_EXIT_PASS_ICMP, -1, -1);
	expect("icmp in ipv6 is not icmpv6",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::100",
			       .proto = IPPROTO_ICMP,
			       .icmp_type = 8 },
	       XDP_PASS, NK_EXIT_PASS_L4_OTHER, -1, -1);
}

static void test_acl(void)
{
	/* guest 5: allow-list, 10.9.0.0/16 allowed */
	expect("allow-list: allowed source",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "10.9.1.1",
			       .dst = "10.0.0.1",
			       .dport = 5000,
			       .proto = IPPROTO_UDP },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 5, 1);
	expect("allow-list: unlisted source",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "10.7.0.1",
			       .dst = "10.0.0.1",
			       .dport = 5000,
			       .proto = IPPROTO_UDP },
	       XDP_DROP, NK_EXIT_DROP_ACL, 5, -1);
	want_guest[5].drops[NK_DROP_ACL_NOT_ALLOWED]++;
	expect("allow-list: v6 source",
	       &(struct spec){ .l3 = L3_IP6,
			       .src = "fd00::2",
			       .dst = "fd00::1",
			       .dport = 5000,
			       .proto = IPPROTO_UDP },
	       XDP_DROP, NK_EXIT_DROP_ACL, 5, -1);
	want_guest[5].drops[NK_DROP_ACL_NOT_ALLOWED]++;
	/* guest 6: deny-list, deny 10.8/16 but allow 10.8.1/24 */
	expect("deny-list: denied source",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "10.8.2.2",
			       .dst = "10.0.0.1",
			       .dport = 6000,
			       .proto = IPPROTO_UDP },
	       XDP_DROP, NK_EXIT_DROP_ACL, 6, -1);
	want_guest[6].drops[NK_DROP_ACL_DENY]++;
	expect("deny-list: longer allow prefix wins",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "10.8.1.5",
			       .dst = "10.0.0.1",
			       .dport = 6000,
			       .proto = IPPROTO_UDP },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 6, 1);
	expect("deny-list: unlisted source",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "1.2.3.4",
			       .dst = "10.0.0.1",
			       .dport = 6000,
			       .proto = IPPROTO_UDP },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 6, 1);
	/* ACL of guest 5 does not leak to guest 1 */
	expect("other guest unaffected",
	       &(struct spec){ .l3 = L3_IP4,
			       .src = "10.7.0.1",
			       .dst = "10.0.0.1",
			       .dport = 80 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 1, 1);
}

static void test_malformed(void)
{
	static const __u8 hop_dst_rt[] = { 0, 60, 43 };
	static const __u8 ah[] = { 51 };
	static const __u8 frag[] = { 44 };
	static const __u8 seven[] = { 0, 60, 60, 60, 60, 60, 60 };
	static const __u8 esp[] = { 60 };

	expect("bad ihl 4",
	       &(struct spec){
		       .l3 = L3_IP4, .ihl = 4, .dst = "10.0.0.1", .dport = 80 },
	       XDP_PASS, NK_EXIT_PASS_BAD_IP4, -1, -1);
	expect("bad ihl 0",
	       &(struct spec){ .l3 = L3_IP4,
			       .ihl = 0 + 16,
			       .dst = "10.0.0.1",
			       .dport = 80 },
	       XDP_PASS, NK_EXIT_PASS_BAD_IP4, -1, -1);
	expect("ipv4 version 5",
	       &(struct spec){ .l3 = L3_IP4,
			       .ip_version = 5,
			       .dst = "10.0.0.1",
			       .dport = 80 },
	       XDP_PASS, NK_EXIT_PASS_BAD_IP4, -1, -1);
	expect("ipv6 version 4",
	       &(struct spec){ .l3 = L3_IP6,
			       .ip_version = 4,
			       .dst = "fd00::1",
			       .dport = 443 },
	       XDP_PASS, NK_EXIT_PASS_BAD_IP6, -1, -1);
	expect("ipv4 non-first fragment",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.1",
			       .dport = 80,
			       .frag = 100 },
	       XDP_PASS, NK_EXIT_PASS_FRAG, -1, -1);
	expect("ipv4 first fragment",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.1",
			       .dport = 80,
			       .frag = 0x2000 },
	       XDP_PASS, NK_EXIT_PASS_FRAG_FIRST, -1, -1);
	expect("ipv4 DF is not a fragment",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.1",
			       .dport = 80,
			       .frag = 0x4000 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP, 1, 1);
	expect("ipv6 hop+dest+routing",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::9",
			       .dport = 53,
			       .proto = IPPROTO_UDP,
			       .ext = hop_dst_rt,
			       .n_ext = 3 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP_ANY, 2, 1);
	expect("ipv6 AH",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::9",
			       .dport = 53,
			       .proto = IPPROTO_UDP,
			       .ext = ah,
			       .n_ext = 1 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP_ANY, 2, 1);
	expect("ipv6 atomic fragment",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::9",
			       .dport = 53,
			       .proto = IPPROTO_UDP,
			       .ext = frag,
			       .n_ext = 1 },
	       XDP_REDIRECT, NK_EXIT_REDIRECT_EP_ANY, 2, 1);
	expect("ipv6 non-first fragment",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::9",
			       .dport = 53,
			       .proto = IPPROTO_UDP,
			       .ext = frag,
			       .n_ext = 1,
			       .frag = 800 },
	       XDP_PASS, NK_EXIT_PASS_FRAG, -1, -1);
	expect("ipv6 first fragment",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::9",
			       .dport = 53,
			       .proto = IPPROTO_UDP,
			       .ext = frag,
			       .n_ext = 1,
			       .frag = 1 },
	       XDP_PASS, NK_EXIT_PASS_FRAG_FIRST, -1, -1);
	expect("ipv6 seven extension headers",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::9",
			       .dport = 53,
			       .proto = IPPROTO_UDP,
			       .ext = seven,
			       .n_ext = 7 },
	       XDP_PASS, NK_EXIT_PASS_EXT_LIMIT, -1, -1);
	expect("ipv6 ESP",
	       &(struct spec){ .l3 = L3_IP6,
			       .dst = "fd00::9",
			       .proto = 50,
			       .ext = esp,
			       .n_ext = 1 },
	       XDP_PASS, NK_EXIT_PASS_L4_OTHER, -1, -1);
	expect("gre",
	       &(struct spec){ .l3 = L3_IP4, .dst = "10.0.0.1", .proto = 47 },
	       XDP_PASS, NK_EXIT_PASS_L4_OTHER, -1, -1);
	expect("lldp", &(struct spec){ .l3 = L3_RAW, .ethertype = 0x88cc },
	       XDP_PASS, NK_EXIT_PASS_L3_OTHER, -1, -1);
	expect("qinq is not unwrapped",
	       &(struct spec){ .l3 = L3_IP4,
			       .vlan = true,
			       .qinq = true,
			       .dst = "10.0.0.1",
			       .dport = 80 },
	       XDP_PASS, NK_EXIT_PASS_L3_OTHER, -1, -1);
	expect("arp for ipv6 (pln 16)",
	       &(struct spec){ .l3 = L3_RAW, .ethertype = ETH_P_ARP }, XDP_PASS,
	       NK_EXIT_PASS_ARP, -1, -1);
}

/*
 * Cut a valid frame at every length from 14 (the kernel refuses shorter
 * test frames) to one byte short of its last header, and check the exit is
 * the truncation of the header the cut falls into.
 */
static void truncate_all(const char *what, const struct spec *s,
			 unsigned int l3_exit, unsigned int ext_exit,
			 unsigned int l4_exit, unsigned int l4_min)
{
	struct frame f;
	unsigned int len, exit, l3_hdr_end;
	char name[128];

	build(&f, s);
	l3_hdr_end = f.off_ext; /* end of the base L3 header + options */
	for (len = ETH_HLEN; len < f.off_l4 + l4_min; len++) {
		if (len < f.off_l3)
			exit = NK_EXIT_PASS_TRUNC_VLAN;
		else if (len < l3_hdr_end)
			exit = l3_exit;
		else if (len < f.off_l4)
			exit = ext_exit;
		else
			exit = l4_exit;
		snprintf(name, sizeof(name), "%s cut at %u", what, len);
		expect_len(name, &f, len, XDP_PASS, exit, -1, -1);
	}
	expect_len(what, &f, f.len, s->l3 == L3_ARP ? XDP_REDIRECT : XDP_PASS,
		   s->l3 == L3_ARP ? NK_EXIT_REDIRECT_ARP
				   : NK_EXIT_PASS_NO_MATCH,
		   s->l3 == L3_ARP ? 0 : -1, -1);
}

static void test_truncated(void)
{
	static const __u8 hop_frag[] = { 0, 44 };

	truncate_all("tcp4 vlan",
		     &(struct spec){ .l3 = L3_IP4,
				     .vlan = true,
				     .dst = "10.0.0.1",
				     .dport = 99 },
		     NK_EXIT_PASS_TRUNC_IP4, NK_EXIT_PASS_TRUNC_IP4,
		     NK_EXIT_PASS_TRUNC_L4, 20);
	truncate_all("udp4 options",
		     &(struct spec){ .l3 = L3_IP4,
				     .ihl = 8,
				     .dst = "10.0.0.1",
				     .dport = 99,
				     .proto = IPPROTO_UDP },
		     NK_EXIT_PASS_TRUNC_IP4, NK_EXIT_PASS_TRUNC_IP4,
		     NK_EXIT_PASS_TRUNC_L4, 8);
	truncate_all("udp6 ext",
		     &(struct spec){ .l3 = L3_IP6,
				     .vlan = true,
				     .dst = "fd00::1",
				     .dport = 99,
				     .proto = IPPROTO_UDP,
				     .ext = hop_frag,
				     .n_ext = 2 },
		     NK_EXIT_PASS_TRUNC_IP6, NK_EXIT_PASS_TRUNC_EXT,
		     NK_EXIT_PASS_TRUNC_L4, 8);
	truncate_all("arp vlan",
		     &(struct spec){ .l3 = L3_ARP,
				     .vlan = true,
				     .arp_tpa = "10.0.0.100" },
		     NK_EXIT_PASS_TRUNC_ARP, NK_EXIT_PASS_TRUNC_ARP,
		     NK_EXIT_PASS_TRUNC_ARP, 0);
	/* ND needs its 16-byte target: cut inside it */
	{
		struct frame f;

		build(&f, &(struct spec){ .l3 = L3_IP6,
					  .dst = "ff02::1:ff00:100",
					  .proto = IPPROTO_ICMPV6,
					  .icmp_type = 135,
					  .nd_target = "fd00::100" });
		expect_len("ns cut in target", &f, f.len - 1, XDP_PASS,
			   NK_EXIT_PASS_TRUNC_L4, -1, -1);
		expect_len("ns cut in header", &f, f.off_l4 + 7, XDP_PASS,
			   NK_EXIT_PASS_TRUNC_L4, -1, -1);
	}
}

/* A queue the program was not configured for passes, counted. */
static void test_queue(void)
{
	struct frame f;
	struct result r;
	int ifindex, err;

	if (system("ip link add nkst0 numrxqueues 4 numtxqueues 4 type veth "
		   "peer name nkst1 >/dev/null 2>&1")) {
		fprintf(stderr,
			"note: cannot create a veth, queue test skipped\n");
		return;
	}
	ifindex = (int)if_nametoindex("nkst0");
	build(&f,
	      &(struct spec){ .l3 = L3_IP4, .dst = "10.0.0.1", .dport = 80 });
	err = run_frame(bpf_program__fd(skel->progs.nk_steer), f.b, f.len,
			ifindex, 3, &r);
	CHECK(!err, "queue 3: test_run: %s", strerror(-err));
	if (!err) {
		want_exit[NK_EXIT_PASS_QUEUE].packets++;
		want_exit[NK_EXIT_PASS_QUEUE].bytes += f.len;
		CHECK(r.verdict == XDP_PASS && r.dbg.exit == NK_EXIT_PASS_QUEUE,
		      "queue 3: got %s/%s", verdict_name(r.verdict),
		      nk_steer_exit_name(r.dbg.exit));
	}
	/* queue 1 is served (nr_queues 2): index 1 * SLOTS + 1, no XSK */
	err = run_frame(bpf_program__fd(skel->progs.nk_steer), f.b, f.len,
			ifindex, 1, &r);
	CHECK(!err, "queue 1: test_run: %s", strerror(-err));
	if (!err) {
		want_exit[NK_EXIT_PASS_XSK_MISS].packets++;
		want_exit[NK_EXIT_PASS_XSK_MISS].bytes += f.len;
		want_guest[1].xsk_miss++;
		want_guest[1].xsk_miss_bytes += f.len;
		CHECK(r.verdict == XDP_PASS &&
			      r.dbg.exit == NK_EXIT_PASS_XSK_MISS &&
			      r.dbg.xsk_index == SLOTS + 1,
		      "queue 1: got %s/%s index %u", verdict_name(r.verdict),
		      nk_steer_exit_name(r.dbg.exit), r.dbg.xsk_index);
	}
	if (system("ip link del nkst0 >/dev/null 2>&1"))
		fprintf(stderr, "note: cannot delete nkst0\n");
}

/* The counters must equal what was sent, packet for packet, byte for byte */
static void test_counters(void)
{
	int ncpu = libbpf_num_possible_cpus();
	struct nk_exit_stats *pc = calloc((size_t)ncpu, sizeof(*pc)), sum;
	struct nk_guest_stats *pg = calloc((size_t)ncpu, sizeof(*pg)), gs;
	__u64 total = 0;
	__u32 e, g;

	for (e = 0; e < NK_EXIT__MAX; e++) {
		if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.nk_exit_stats),
					&e, pc)) {
			CHECK(0, "lookup exit %u: %s", e, strerror(errno));
			continue;
		}
		nk_steer_sum_percpu(pc, (unsigned int)ncpu, 2, &sum.packets);
		CHECK(sum.packets == want_exit[e].packets &&
			      sum.bytes == want_exit[e].bytes,
		      "exit %s: %llu pkts %llu bytes, want %llu/%llu",
		      nk_steer_exit_name(e), (unsigned long long)sum.packets,
		      (unsigned long long)sum.bytes,
		      (unsigned long long)want_exit[e].packets,
		      (unsigned long long)want_exit[e].bytes);
		total += sum.packets;
	}
	CHECK(total > 100, "only %llu packets counted",
	      (unsigned long long)total);
	for (g = 0; g < 16; g++) {
		if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.nk_guest_stats),
					&g, pg)) {
			CHECK(0, "lookup guest %u: %s", g, strerror(errno));
			continue;
		}
		nk_steer_sum_percpu(pg, (unsigned int)ncpu,
				    sizeof(gs) / sizeof(__u64), &gs.packets);
		CHECK(!memcmp(&gs, &want_guest[g], sizeof(gs)),
		      "guest %u: pkts %llu bytes %llu miss %llu/%llu drops "
		      "%llu/%llu (%llu bytes); want %llu %llu %llu/%llu "
		      "%llu/%llu (%llu)",
		      g, (unsigned long long)gs.packets,
		      (unsigned long long)gs.bytes,
		      (unsigned long long)gs.xsk_miss,
		      (unsigned long long)gs.xsk_miss_bytes,
		      (unsigned long long)gs.drops[0],
		      (unsigned long long)gs.drops[1],
		      (unsigned long long)gs.drop_bytes,
		      (unsigned long long)want_guest[g].packets,
		      (unsigned long long)want_guest[g].bytes,
		      (unsigned long long)want_guest[g].xsk_miss,
		      (unsigned long long)want_guest[g].xsk_miss_bytes,
		      (unsigned long long)want_guest[g].drops[0],
		      (unsigned long long)want_guest[g].drops[1],
		      (unsigned long long)want_guest[g].drop_bytes);
	}
	free(pc);
	free(pg);
}

/* Knobs off: the same ARP/ICMP for the NSM now goes to the kernel. */
static void test_knobs_off(void)
{
	struct nk_steer *on = skel;
	struct nk_steer *off = load(false, false, 1);

	CHECK(off, "load with steer_arp=0 steer_icmp=0 failed");
	if (!off)
		return;
	skel = off;
	tally = false;
	add_nsm("10.0.0.100", 1);
	expect("arp, steering off",
	       &(struct spec){ .l3 = L3_ARP, .arp_tpa = "10.0.0.100" },
	       XDP_PASS, NK_EXIT_PASS_ARP, -1, -1);
	expect("icmp, steering off",
	       &(struct spec){ .l3 = L3_IP4,
			       .dst = "10.0.0.100",
			       .proto = IPPROTO_ICMP,
			       .icmp_type = 8 },
	       XDP_PASS, NK_EXIT_PASS_ICMP, -1, -1);
	nk_steer__destroy(off);
	skel = on;
	tally = true;
}

int main(void)
{
	struct nk_target t;
	struct nk_flow_key fk;
	__u8 l[16], r[16];
	__u32 idx;
	int xsk, err;

	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF_PROG_TEST_RUN of XDP)\n");
		return 77;
	}
	libbpf_set_print(NULL);
	if (unshare(CLONE_NEWNET)) {
		printf("SKIP: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 77;
	}
	lo_ifindex = (int)if_nametoindex("lo");
	if (ifup("lo"))
		fprintf(stderr, "note: cannot bring lo up\n");

	/* two queues so that queue 1 is a real, served queue (test_queue) */
	skel = load(true, true, 2);
	if (!skel) {
		printf("SKIP: cannot load nk_steer: %s\n", strerror(errno));
		return 77;
	}

	add_ep(IPPROTO_TCP, "10.0.0.1", 80, 1, 1);
	add_ep(IPPROTO_UDP, NULL, 53, 2, 1);
	add_ep(IPPROTO_TCP, "fd00::1", 443, 3, 2);
	add_ep(IPPROTO_TCP, "10.0.0.1", 9, 8, SLOTS); /* bad slot */
	add_ep(IPPROTO_UDP, "10.0.0.1", 5000, 5, 1);
	add_ep(IPPROTO_UDP, "fd00::1", 5000, 5, 1);
	add_ep(IPPROTO_UDP, "10.0.0.1", 6000, 6, 1);
	addr("10.0.0.1", l);
	addr("10.0.0.2", r);
	nk_steer_flow_key(&fk, IPPROTO_TCP, l, 8080, r, 40000);
	t = (struct nk_target){ .guest_id = 4, .xsk_slot = 1 };
	CHECK(!bpf_map_update_elem(bpf_map__fd(skel->maps.nk_flows), &fk, &t,
				   BPF_NOEXIST),
	      "flow add");
	addr("10.0.0.3", r);
	nk_steer_flow_key(&fk, IPPROTO_TCP, l, 80, r, 5555);
	t = (struct nk_target){ .guest_id = 7, .xsk_slot = 1 };
	CHECK(!bpf_map_update_elem(bpf_map__fd(skel->maps.nk_flows), &fk, &t,
				   BPF_NOEXIST),
	      "flow add");
	add_nsm("10.0.0.100", 1);
	add_nsm("fd00::100", 1);
	acl_mode(5, NK_ACL_MODE_ALLOW_LIST);
	acl(5, "10.9.0.0", 96 + 16, NK_ACL_ALLOW);
	acl_mode(6, NK_ACL_MODE_DENY_LIST);
	acl(6, "10.8.0.0", 96 + 16, NK_ACL_DENY);
	acl(6, "10.8.1.0", 96 + 24, NK_ACL_ALLOW);

	xsk = xsk_on_lo();
	if (xsk < 0) {
		fprintf(stderr, "FAIL: AF_XDP socket on lo: %s\n",
			strerror(-xsk));
		return 1;
	}
	idx = 0 * SLOTS + 1;
	err = bpf_map_update_elem(bpf_map__fd(skel->maps.nk_xsks), &idx, &xsk,
				  BPF_ANY);
	if (err) {
		fprintf(stderr, "FAIL: XSKMAP insert: %s\n", strerror(errno));
		return 1;
	}

	test_l4_steering();
	test_nsm();
	test_acl();
	test_malformed();
	test_truncated();
	test_queue();
	test_knobs_off();
	test_counters();

	nk_steer__destroy(skel);
	close(xsk);
	printf("%s: %d checks, %d failed\n", failures ? "FAIL" : "PASS", checks,
	       failures);
	return failures ? 1 : 0;
}
