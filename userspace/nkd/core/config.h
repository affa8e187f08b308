/* SPDX-License-Identifier: MIT */
/*
 * nkd configuration: NSMs, guests and their policy (docs/config.md).
 * The parser is pure (text in, struct out, "file:line: message" on error) so
 * it is unit-tested without a daemon.
 */
#ifndef NKD_CONFIG_H
#define NKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "peer.h"

#define NK_NAME_MAX 64
#define NK_PATH_MAX 256
#define NK_MAX_UIDS 16
#define NK_MAX_BINDS 32
#define NK_MAX_MATCH 8 /* each of gid=, netns=, cgroup= per guest */
#define NK_DEF_MAX_CTL_PER_UID 256u
#define NK_DEF_HELLO_TIMEOUT_S 5u

#define NK_DEF_MAX_SOCKETS 4096u
#define NK_DEF_MAX_INFLIGHT 4096u
#define NK_DEF_BUFS 256u
#define NK_DEF_WEIGHT 1u
#define NK_DEF_MAX_CONNS 256u
/* shm_queue=: nkd memory a guest's non-blocking shm sends may hold */
#define NK_DEF_SHM_QUEUE (4ull << 20)
#define NK_DEF_ABUSE_LIMIT 1000u
#define NK_MAX_SOCKETS_LIMIT 1048574u /* handle index is 20 bits */
#define NK_MAX_BUFS_LIMIT 16384u /* bufs= units of 64 KiB: 1 GiB */

/* One bind= rule: an address prefix and an inclusive port range. */
struct nk_bind_rule {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
	uint16_t port_lo, port_hi; /* host order */
};

/* An IPv4 address an afxdp NSM serves, with its subnet. */
struct nk_nsm_addr {
	uint32_t addr; /* network order */
	unsigned prefix; /* 0..32 */
};

#define NK_NSM_MAX_ADDRS 8
#define NK_NSM_MAX_QUEUES 64

struct nk_nsm_conf {
	char name[NK_NAME_MAX];
	char type[16]; /* "kernel" or "afxdp" */
	char netns[NK_PATH_MAX]; /* "" = nkd's own namespace */
	/* resolv=: the resolv.conf RESOLVE reads; "" = the default
	 * (resolv_view.c: /etc/netns/NAME/resolv.conf, else nkd's own) */
	char resolv[NK_PATH_MAX];
	/* afxdp only (docs/config.md) */
	char dev[16]; /* IFNAMSIZ */
	struct nk_nsm_addr addrs[NK_NSM_MAX_ADDRS];
	unsigned nr_addrs;
	uint32_t gw; /* next hop off-subnet, network order; 0: none */
	uint32_t queues; /* RX queues 0..queues-1 get an XSK */
	char backend[8]; /* "afxdp", "packet", "tap" */
	char mode[8]; /* "native" (try zero-copy) or "skb" */
	/* SYN flood bound (synq= / synq_total=): half-open connections per
	 * listener and in all; 0: the engine's defaults (64, 1024). */
	uint32_t synq, synq_total;
};

struct nk_guest_conf {
	char name[NK_NAME_MAX];
	char nsm[NK_NAME_MAX]; /* "" = first NSM */
	uid_t uids[NK_MAX_UIDS];
	unsigned nr_uids; /* 0 = any uid */
	uint32_t max_sockets, max_inflight, bufs, weight, max_conns;
	/* rate_tx= [0], rate_rx= [1] in bits/s (0: no cap); rate_burst:
	 * burst= bytes (0: 10 ms at the rate, at least 64 KiB) */
	uint64_t rate_bps[2], rate_burst;
	struct nk_bind_rule binds[NK_MAX_BINDS];
	unsigned nr_binds; /* 0 = default policy */
	/*
	 * Source ACL enforced in XDP by an afxdp NSM (acl_allow= / acl_deny=;
	 * port fields unused). Any allow entry makes it an allow-list.
	 */
	struct nk_bind_rule acl[NK_MAX_BINDS];
	bool acl_deny[NK_MAX_BINDS];
	unsigned nr_acl;
	/*
	 * Who may attach as this guest (docs/config.md "Who is which guest"):
	 * different keys AND together, repeats of one key OR. uids above too.
	 */
	gid_t gids[NK_MAX_MATCH];
	unsigned nr_gids;
	struct {
		uint64_t dev, ino;
	} netns[NK_MAX_MATCH]; /* netns=PATH, resolved by stat at load */
	unsigned nr_netns;
	char cgroups[NK_MAX_MATCH][NK_PEER_CGROUP_MAX];
	unsigned nr_cgroups;
	char attach[NK_PATH_MAX]; /* its own control socket; "" none */
	/*
	 * A VM guest (docs/vm.md): its processes' regions are windows of the
	 * file vm_region (vm_size bytes, shared with QEMU's ivshmem) and
	 * everything else goes over the stream socket vm_channel (QEMU's
	 * virtio-serial chardev). Anything on the channel is this guest.
	 */
	char vm_region[NK_PATH_MAX];
	char vm_channel[NK_PATH_MAX];
	uint64_t vm_size;
	int idx; /* index in nk_config.guests; -1 not from the config */
	/*
	 * Ports and destinations (portown.c, docs/config.md): host_access=
	 * lets the guest reach addresses local to its NSM's namespace on
	 * ports it does not own; egress= rules (any makes an allow-list) are
	 * the destinations it may connect or send to.
	 */
	bool host_access;
	struct nk_bind_rule egress[NK_MAX_BINDS];
	unsigned nr_egress;
	/* Budgets (budget.c): sockets of the global budget kept for it. */
	uint32_t reserve;
	/*
	 * shm= / shm_peers= (nsm/shm/, docs/shm-nsm.md): connections to
	 * another guest of this nkd go region to region; shm_peers: the
	 * guests it may pair with that way ("" = any with shm=on).
	 */
	bool shm;
	char shm_peers[NK_PATH_MAX];
	/* shm_queue=: bytes of nkd memory (receive queues) its non-blocking
	 * shm sends may hold at once; 0: none (EAGAIN instead) */
	uint64_t shm_queue;
};

/*
 * Global budgets (docs/config.md "Budgets"); 0 means the default that
 * budget.c derives (from RLIMIT_NOFILE, physical memory, NK_DEF_*).
 */
#define NK_DEF_SHARE_PCT 50u
#define NK_DEF_RESOLVE_QUEUE 8u
struct nk_budget_conf {
	uint32_t sockets; /* socket_budget N */
	uint64_t memory; /* memory_budget MIB, in bytes */
	uint32_t share_pct; /* default_share PCT */
	uint32_t resolve_queue; /* resolve_queue N */
};

struct nk_config {
	struct nk_nsm_conf *nsms;
	unsigned nr_nsms;
	struct nk_guest_conf *guests;
	unsigned nr_guests;
	bool unknown_allow;
	uint32_t abuse_limit;
	/* operator uid=N / operator gid=N (admin.c): who may run nkctl. */
	uid_t op_uids[NK_MAX_UIDS];
	unsigned nr_op_uids;
	gid_t op_gids[NK_MAX_UIDS];
	unsigned nr_op_gids;
	/* Control connections: per-uid cap (uid 0 exempt), HELLO deadline */
	uint32_t max_ctl_per_uid;
	uint32_t hello_timeout_s;
	struct nk_budget_conf budget;
};

/* Built-in configuration: one kernel NSM "kernel0", unknown guests allowed. */
int nk_config__default(struct nk_config *cfg);

/*
 * Parses text (named fname in messages). Returns 0, or -EINVAL with a
 * "fname:line: message" in err. cfg is left empty on error.
 */
int nk_config__parse(const char *text, const char *fname, struct nk_config *cfg,
		     char *err, size_t errlen);
/* Reads and parses a file; -errno with a message in err on failure. */
int nk_config__load(const char *path, struct nk_config *cfg, char *err,
		    size_t errlen);
/*
 * nkd --check-config: reads and parses path like nk_config__load but goes
 * on after an error, and also checks that each NSM's netns= exists. Every
 * "path:line: message" found goes to errs, one a line (a '\'-continued
 * statement is cited at its first line); *nerrs counts them. Returns 0
 * (cfg filled) or the first error (cfg empty).
 */
int nk_config__check(const char *path, struct nk_config *cfg, char *errs,
		     size_t errslen, unsigned *nerrs);
void nk_config__free(struct nk_config *cfg);

/* Defaults for a guest not named in the config (unknown_guests allow). */
void nk_guest_conf__defaults(struct nk_guest_conf *g, const char *name);
const struct nk_guest_conf *nk_config__guest(const struct nk_config *cfg,
					     const char *name);
/*
 * 0 if the peer matches g's match keys (uid=, gid=, netns=, cgroup=,
 * attach=), else -EPERM with the reason in why. A guest with no key at all
 * matches only nkd's own euid.
 */
int nk_guest_conf__match(const struct nk_guest_conf *g, const struct nk_peer *p,
			 char *why, size_t whylen);
/* g has at least one match key. */
bool nk_guest_conf__has_match(const struct nk_guest_conf *g);
/* 0 if uid may attach as this guest, -EPERM otherwise. */
int nk_guest_conf__uid_ok(const struct nk_guest_conf *g, uid_t uid);
/*
 * Bind policy: 0 if the guest may bind sa (as peer uid), -EACCES if not.
 * Port 0 (ephemeral) is allowed whenever the address is.
 */
int nk_guest_conf__bind_ok(const struct nk_guest_conf *g,
			   const struct sockaddr *sa, uid_t uid);
/*
 * Egress policy: 0 if the guest may connect or send to sa, -ENETUNREACH if
 * its egress= rules do not list it. No egress= rule: everything allowed.
 */
int nk_guest_conf__egress_ok(const struct nk_guest_conf *g,
			     const struct sockaddr *sa);
/* Parses one bind= value: "ADDR[/PREFIX]:PORT[-PORT]", IPv6 in brackets. */
int nk_bind_rule__parse(const char *s, struct nk_bind_rule *r);

/*
 * Run-time policy change (nkctl set): words are key=value words of a guest
 * line. Each key given replaces its value in *g (a repeatable key such as
 * bind= replaces its whole list; acl_allow= and acl_deny= share one list),
 * keys not given stay. All words are checked before *g changes. nsm= is
 * refused (it needs a reload, which evicts the guest). Returns 0, or
 * -EINVAL with a message in err.
 */
int nk_guest_conf__set(struct nk_guest_conf *g, const char *words, char *err,
		       size_t errlen);

#endif /* NKD_CONFIG_H */
