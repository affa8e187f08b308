// SPDX-License-Identifier: MIT
/*
 * nk_steer_maps: open the pinned nk_steer maps of a device and edit them.
 * See nk_steer_maps.h for the contract; docs/steering.md for the design.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "nk_steer_maps.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum {
	M_ENDPOINTS,
	M_FLOWS,
	M_XSKS,
	M_NSM_ADDRS,
	M_GUEST_CFG,
	M_ACL,
	M_GUEST_STATS,
	M_EXIT_STATS,
	M_KNOBS,
	M__MAX
};

/* Name, key size and value size each pinned map must have. */
static const struct {
	const char *name;
	__u32 key_size;
	__u32 value_size;
} map_desc[] = {
	[M_ENDPOINTS] = { NK_MAP_ENDPOINTS, sizeof(struct nk_ep_key),
			  sizeof(struct nk_target) },
	[M_FLOWS] = { NK_MAP_FLOWS, sizeof(struct nk_flow_key),
		      sizeof(struct nk_target) },
	[M_XSKS] = { NK_MAP_XSKS, sizeof(__u32), sizeof(__u32) },
	[M_NSM_ADDRS] = { NK_MAP_NSM_ADDRS, sizeof(struct nk_addr_key),
			  sizeof(struct nk_target) },
	[M_GUEST_CFG] = { NK_MAP_GUEST_CFG, sizeof(__u32),
			  sizeof(struct nk_guest_cfg) },
	[M_ACL] = { NK_MAP_ACL, sizeof(struct nk_acl_key), sizeof(__u32) },
	[M_GUEST_STATS] = { NK_MAP_GUEST_STATS, sizeof(__u32),
			    sizeof(struct nk_guest_stats) },
	[M_EXIT_STATS] = { NK_MAP_EXIT_STATS, sizeof(__u32),
			   sizeof(struct nk_exit_stats) },
	[M_KNOBS] = { NK_MAP_KNOBS, sizeof(__u32),
		      sizeof(struct nk_steer_knobs) },
};
_Static_assert(ARRAY_SIZE(map_desc) == M__MAX, "map_desc covers every map");

static const char *const exit_names[] = {
	[NK_EXIT_PASS_L3_OTHER] = "pass_l3_other",
	[NK_EXIT_PASS_TRUNC_ETH] = "pass_trunc_eth",
	[NK_EXIT_PASS_TRUNC_VLAN] = "pass_trunc_vlan",
	[NK_EXIT_PASS_TRUNC_ARP] = "pass_trunc_arp",
	[NK_EXIT_PASS_TRUNC_IP4] = "pass_trunc_ip4",
	[NK_EXIT_PASS_TRUNC_IP6] = "pass_trunc_ip6",
	[NK_EXIT_PASS_TRUNC_EXT] = "pass_trunc_ext",
	[NK_EXIT_PASS_TRUNC_L4] = "pass_trunc_l4",
	[NK_EXIT_PASS_BAD_IP4] = "pass_bad_ip4",
	[NK_EXIT_PASS_BAD_IP6] = "pass_bad_ip6",
	[NK_EXIT_PASS_FRAG] = "pass_frag",
	[NK_EXIT_PASS_FRAG_FIRST] = "pass_frag_first",
	[NK_EXIT_PASS_EXT_LIMIT] = "pass_ext_limit",
	[NK_EXIT_PASS_L4_OTHER] = "pass_l4_other",
	[NK_EXIT_PASS_ARP] = "pass_arp",
	[NK_EXIT_PASS_ICMP] = "pass_icmp",
	[NK_EXIT_PASS_NO_MATCH] = "pass_no_match",
	[NK_EXIT_PASS_QUEUE] = "pass_queue",
	[NK_EXIT_PASS_BAD_TARGET] = "pass_bad_target",
	[NK_EXIT_PASS_XSK_MISS] = "pass_xsk_miss",
	[NK_EXIT_REDIRECT_FLOW] = "redirect_flow",
	[NK_EXIT_REDIRECT_EP] = "redirect_ep",
	[NK_EXIT_REDIRECT_EP_ANY] = "redirect_ep_any",
	[NK_EXIT_REDIRECT_ARP] = "redirect_arp",
	[NK_EXIT_REDIRECT_ICMP] = "redirect_icmp",
	[NK_EXIT_DROP_ACL] = "drop_acl",
};
_Static_assert(ARRAY_SIZE(exit_names) == NK_EXIT__MAX,
	       "exit_names covers every enum nk_exit value");

struct nk_steer_maps {
	int fd[M__MAX];
	int ncpu;
	struct nk_steer_knobs knobs;
};

const char *nk_steer_exit_name(unsigned int exit)
{
	if (exit >= NK_EXIT__MAX || !exit_names[exit])
		return "?";
	return exit_names[exit];
}

int nk_steer_pin_dir(char *out, size_t size, const char *pin_root,
		     const char *dev)
{
	int n;
	char *p;

	n = snprintf(out, size, "%s/%s", pin_root ? pin_root : NK_PIN_ROOT,
		     dev);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	for (p = out + n - strlen(dev); *p; p++)
		if (*p == '.')
			*p = ':';
	return 0;
}

static int check_map(int fd, __u32 key_size, __u32 value_size)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.key_size != key_size || info.value_size != value_size)
		return -EPROTO;
	return 0;
}

int nk_steer_maps__open(const char *dev, const char *pin_root,
			struct nk_steer_maps **out)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct nk_steer_maps *m;
	__u32 zero = 0;
	int i, err;

	*out = NULL;
	if (!dev || !*dev || strchr(dev, '/'))
		return -EINVAL;
	err = nk_steer_pin_dir(dir, sizeof(dir), pin_root, dev);
	if (err)
		return err;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (i = 0; i < M__MAX; i++)
		m->fd[i] = -1;
	m->ncpu = libbpf_num_possible_cpus();
	if (m->ncpu <= 0) {
		err = m->ncpu ? m->ncpu : -EINVAL;
		goto fail;
	}
	for (i = 0; i < M__MAX; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir,
			     map_desc[i].name) >= (int)sizeof(path)) {
			err = -ENAMETOOLONG;
			goto fail;
		}
		m->fd[i] = bpf_obj_get(path);
		if (m->fd[i] < 0) {
			err = -errno;
			goto fail;
		}
		err = check_map(m->fd[i], map_desc[i].key_size,
				map_desc[i].value_size);
		if (err)
			goto fail;
	}
	if (bpf_map_lookup_elem(m->fd[M_KNOBS], &zero, &m->knobs)) {
		err = -errno;
		goto fail;
	}
	if (m->knobs.magic != NK_KNOBS_MAGIC ||
	    m->knobs.version != NK_KNOBS_VERSION ||
	    m->knobs.slots_per_queue == 0) {
		err = -EPROTO;
		goto fail;
	}
	*out = m;
	return 0;
fail:
	nk_steer_maps__close(m);
	return err;
}

void nk_steer_maps__close(struct nk_steer_maps *m)
{
	int i;

	if (!m)
		return;
	for (i = 0; i < M__MAX; i++)
		if (m->fd[i] >= 0)
			close(m->fd[i]);
	free(m);
}

const struct nk_steer_knobs *nk_steer_maps__knobs(const struct nk_steer_maps *m)
{
	return &m->knobs;
}

static int map_add(int fd, const void *key, const void *value)
{
	return bpf_map_update_elem(fd, key, value, BPF_NOEXIST) ? -errno : 0;
}

static int map_del(int fd, const void *key)
{
	return bpf_map_delete_elem(fd, key) ? -errno : 0;
}

static int target_ok(const struct nk_steer_maps *m, const struct nk_target *t)
{
	if (t->guest_id >= NK_MAX_GUESTS ||
	    t->xsk_slot >= m->knobs.slots_per_queue)
		return -ERANGE;
	return 0;
}

int nk_steer_maps__endpoint_add(struct nk_steer_maps *m,
				const struct nk_ep_key *key,
				const struct nk_target *target)
{
	int err = target_ok(m, target);

	if (err)
		return err;
	if (key->pad)
		return -EINVAL;
	return map_add(m->fd[M_ENDPOINTS], key, target);
}

int nk_steer_maps__endpoint_del(struct nk_steer_maps *m,
				const struct nk_ep_key *key)
{
	return map_del(m->fd[M_ENDPOINTS], key);
}

int nk_steer_maps__flow_add(struct nk_steer_maps *m,
			    const struct nk_flow_key *key,
			    const struct nk_target *target)
{
	int err = target_ok(m, target);

	if (err)
		return err;
	if (key->pad[0] || key->pad[1] || key->pad[2])
		return -EINVAL;
	return map_add(m->fd[M_FLOWS], key, target);
}

int nk_steer_maps__flow_del(struct nk_steer_maps *m,
			    const struct nk_flow_key *key)
{
	return map_del(m->fd[M_FLOWS], key);
}

/* Lookup-check-delete for the owner-aware deletes (see the header). */
static int del_owned(int fd, const void *key, __u32 guest_id)
{
	struct nk_target t;

	if (bpf_map_lookup_elem(fd, key, &t))
		return -errno;
	if (t.guest_id != guest_id)
		return -EPERM;
	return map_del(fd, key);
}

int nk_steer_maps__endpoint_del_owned(struct nk_steer_maps *m,
				      const struct nk_ep_key *key,
				      __u32 guest_id)
{
	return del_owned(m->fd[M_ENDPOINTS], key, guest_id);
}

int nk_steer_maps__flow_del_owned(struct nk_steer_maps *m,
				  const struct nk_flow_key *key, __u32 guest_id)
{
	return del_owned(m->fd[M_FLOWS], key, guest_id);
}

int nk_steer_maps__flow_owner(struct nk_steer_maps *m,
			      const struct nk_flow_key *key, __u32 *guest_id)
{
	struct nk_target t;

	if (bpf_map_lookup_elem(m->fd[M_FLOWS], key, &t))
		return -errno;
	*guest_id = t.guest_id;
	return 0;
}

/*
 * Deletes the keys of map `which` that belong to guest_id (or to anyone):
 * the owner is the nk_target value (endpoints, flows) or the key's guest_id
 * (ACL). Keys are collected first and deleted after the walk, because
 * deleting the walk's current key makes the kernel restart it.
 */
static int flush_map(struct nk_steer_maps *m, int which, __u32 guest_id,
		     unsigned int *count)
{
	size_t ksz = map_desc[which].key_size, n = 0, cap = 0, i;
	__u8 cur[64], next[64];
	__u8 *keys = NULL;
	void *prev = NULL;
	int fd = m->fd[which], err = 0;

	*count = 0;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		bool mine = guest_id == NK_STEER_ALL_GUESTS;
		struct nk_target t;

		memcpy(cur, next, ksz);
		prev = cur;
		if (!mine && which == M_ACL) {
			mine = ((struct nk_acl_key *)cur)->guest_id == guest_id;
		} else if (!mine) {
			if (bpf_map_lookup_elem(fd, cur, &t))
				continue; /* deleted meanwhile */
			mine = t.guest_id == guest_id;
		}
		if (!mine)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			__u8 *nk = realloc(keys, ncap * ksz);

			if (!nk) {
				err = -ENOMEM;
				break;
			}
			keys = nk;
			cap = ncap;
		}
		memcpy(keys + n * ksz, cur, ksz);
		n++;
	}
	if (!err && errno != ENOENT)
		err = -errno;
	for (i = 0; i < n; i++) {
		int r = map_del(fd, keys + i * ksz);

		if (!r)
			(*count)++;
		else if (r != -ENOENT && !err)
			err = r;
	}
	free(keys);
	return err;
}

int nk_steer_maps__guest_flush(struct nk_steer_maps *m, __u32 guest_id,
			       struct nk_steer_flushed *out)
{
	struct nk_steer_flushed f = { 0 };
	__u32 id, lo = guest_id, hi = guest_id + 1;
	void *zero;
	int err = 0, r;

	if (guest_id == NK_STEER_ALL_GUESTS) {
		lo = 0;
		hi = NK_MAX_GUESTS;
	} else if (guest_id >= NK_MAX_GUESTS) {
		return -ERANGE;
	}
	r = flush_map(m, M_ENDPOINTS, guest_id, &f.endpoints);
	err = err ? err : r;
	r = flush_map(m, M_FLOWS, guest_id, &f.flows);
	err = err ? err : r;
	r = flush_map(m, M_ACL, guest_id, &f.acl);
	err = err ? err : r;
	zero = calloc((size_t)m->ncpu, sizeof(struct nk_guest_stats));
	if (!zero)
		err = err ? err : -ENOMEM;
	for (id = lo; id < hi; id++) {
		struct nk_guest_cfg cfg;

		if (!bpf_map_lookup_elem(m->fd[M_GUEST_CFG], &id, &cfg) &&
		    (cfg.acl_mode || cfg.resv)) {
			r = nk_steer_maps__acl_mode_set(m, id, NK_ACL_MODE_OFF);
			if (!r)
				f.cfg++;
			err = err ? err : r;
		}
		if (zero && bpf_map_update_elem(m->fd[M_GUEST_STATS], &id, zero,
						BPF_ANY))
			err = err ? err : -errno;
	}
	free(zero);
	if (out)
		*out = f;
	return err;
}

static int xsk_index(const struct nk_steer_maps *m, unsigned int queue,
		     unsigned int slot, __u32 *idx)
{
	if (queue >= m->knobs.nr_queues || slot >= m->knobs.slots_per_queue)
		return -ERANGE;
	*idx = queue * m->knobs.slots_per_queue + slot;
	return 0;
}

int nk_steer_maps__xsk_set(struct nk_steer_maps *m, unsigned int queue,
			   unsigned int slot, int xsk_fd)
{
	__u32 idx, val = (__u32)xsk_fd;
	int err = xsk_index(m, queue, slot, &idx);

	if (err)
		return err;
	if (xsk_fd < 0)
		return -EBADF;
	return bpf_map_update_elem(m->fd[M_XSKS], &idx, &val, BPF_ANY) ? -errno
								       : 0;
}

int nk_steer_maps__xsk_clear(struct nk_steer_maps *m, unsigned int queue,
			     unsigned int slot)
{
	__u32 idx;
	int err = xsk_index(m, queue, slot, &idx);

	if (err)
		return err;
	return map_del(m->fd[M_XSKS], &idx);
}

int nk_steer_maps__nsm_addr_add(struct nk_steer_maps *m, const __u8 addr[16],
				const struct nk_target *target)
{
	struct nk_addr_key key;
	int err = target_ok(m, target);

	if (err)
		return err;
	memcpy(key.addr, addr, 16);
	return map_add(m->fd[M_NSM_ADDRS], &key, target);
}

int nk_steer_maps__nsm_addr_del(struct nk_steer_maps *m, const __u8 addr[16])
{
	struct nk_addr_key key;

	memcpy(key.addr, addr, 16);
	return map_del(m->fd[M_NSM_ADDRS], &key);
}

int nk_steer_maps__acl_mode_set(struct nk_steer_maps *m, __u32 guest_id,
				enum nk_acl_mode mode)
{
	struct nk_guest_cfg cfg = { .acl_mode = mode };

	if (guest_id >= NK_MAX_GUESTS)
		return -ERANGE;
	if (mode != NK_ACL_MODE_OFF && mode != NK_ACL_MODE_ALLOW_LIST &&
	    mode != NK_ACL_MODE_DENY_LIST)
		return -EINVAL;
	return bpf_map_update_elem(m->fd[M_GUEST_CFG], &guest_id, &cfg, BPF_ANY)
		       ? -errno
		       : 0;
}

/* Build an LPM key; the host bits past the prefix are cleared, as the trie
 * would ignore them anyway and a canonical key makes deletes exact. */
static int acl_key(struct nk_acl_key *key, __u32 guest_id, const __u8 addr[16],
		   unsigned int prefix_len)
{
	unsigned int i;

	if (guest_id >= NK_MAX_GUESTS)
		return -ERANGE;
	if (prefix_len > 128)
		return -EINVAL;
	memset(key, 0, sizeof(*key));
	key->prefixlen = 32 + prefix_len;
	key->guest_id = guest_id;
	for (i = 0; i < 16; i++) {
		unsigned int bits = i * 8;

		if (bits + 8 <= prefix_len)
			key->addr[i] = addr[i];
		else if (bits < prefix_len)
			key->addr[i] =
				addr[i] &
				(__u8)(0xff << (8 - (prefix_len - bits)));
	}
	return 0;
}

int nk_steer_maps__acl_add(struct nk_steer_maps *m, __u32 guest_id,
			   const __u8 addr[16], unsigned int prefix_len,
			   enum nk_acl_action action)
{
	struct nk_acl_key key;
	__u32 val = action;
	int err;

	if (action != NK_ACL_ALLOW && action != NK_ACL_DENY)
		return -EINVAL;
	err = acl_key(&key, guest_id, addr, prefix_len);
	if (err)
		return err;
	return bpf_map_update_elem(m->fd[M_ACL], &key, &val, BPF_ANY) ? -errno
								      : 0;
}

int nk_steer_maps__acl_del(struct nk_steer_maps *m, __u32 guest_id,
			   const __u8 addr[16], unsigned int prefix_len)
{
	struct nk_acl_key key;
	int err = acl_key(&key, guest_id, addr, prefix_len);

	if (err)
		return err;
	return map_del(m->fd[M_ACL], &key);
}

void nk_steer_sum_percpu(const void *percpu, unsigned int ncpu, size_t n_u64,
			 __u64 *out)
{
	const __u64 *v = percpu;
	unsigned int c;
	size_t i;

	/* per-CPU values are laid out CPU after CPU, each rounded up to 8
	 * bytes; our values are arrays of u64 so there is no padding */
	memset(out, 0, n_u64 * sizeof(*out));
	for (c = 0; c < ncpu; c++)
		for (i = 0; i < n_u64; i++)
			out[i] += v[c * n_u64 + i];
}

static int percpu_read(struct nk_steer_maps *m, int which, __u32 key,
		       size_t value_size, void *out)
{
	size_t n = value_size / sizeof(__u64);
	__u64 *buf;
	int err = 0;

	buf = calloc((size_t)m->ncpu, value_size);
	if (!buf)
		return -ENOMEM;
	if (bpf_map_lookup_elem(m->fd[which], &key, buf))
		err = -errno;
	else
		nk_steer_sum_percpu(buf, (unsigned int)m->ncpu, n, out);
	free(buf);
	return err;
}

int nk_steer_maps__guest_stats(struct nk_steer_maps *m, __u32 guest_id,
			       struct nk_guest_stats *out)
{
	if (guest_id >= NK_MAX_GUESTS)
		return -ERANGE;
	return percpu_read(m, M_GUEST_STATS, guest_id, sizeof(*out), out);
}

int nk_steer_maps__exit_stats(struct nk_steer_maps *m,
			      struct nk_exit_stats out[NK_EXIT__MAX])
{
	__u32 e;
	int err;

	for (e = 0; e < NK_EXIT__MAX; e++) {
		err = percpu_read(m, M_EXIT_STATS, e, sizeof(out[e]), &out[e]);
		if (err)
			return err;
	}
	return 0;
}

int nk_steer_maps__count(struct nk_steer_maps *m, const char *which)
{
	__u8 key[64], next[64];
	int i, fd = -1, n = 0;
	void *prev = NULL;

	for (i = 0; i < M__MAX; i++)
		if (!strcmp(which, map_desc[i].name))
			fd = m->fd[i];
	if (fd < 0 || !strcmp(which, NK_MAP_XSKS))
		return -EINVAL;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, sizeof(key));
		prev = key;
		if (++n == INT_MAX)
			break;
	}
	return errno == ENOENT ? n : -errno;
}

void nk_steer_addr_v4(__u8 out[16], struct in_addr a)
{
	memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	memcpy(out + 12, &a.s_addr, 4);
}

int nk_steer_addr_parse(const char *text, __u8 out[16])
{
	struct in_addr a4;

	if (inet_pton(AF_INET, text, &a4) == 1) {
		nk_steer_addr_v4(out, a4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, out) == 1)
		return 0;
	return -EINVAL;
}

void nk_steer_ep_key(struct nk_ep_key *key, int proto, const __u8 addr[16],
		     __u16 port)
{
	memset(key, 0, sizeof(*key));
	memcpy(key->addr, addr, 16);
	key->port = htons(port);
	key->proto = (__u8)proto;
}

void nk_steer_flow_key(struct nk_flow_key *key, int proto, const __u8 laddr[16],
		       __u16 lport, const __u8 raddr[16], __u16 rport)
{
	memset(key, 0, sizeof(*key));
	memcpy(key->laddr, laddr, 16);
	memcpy(key->raddr, raddr, 16);
	key->lport = htons(lport);
	key->rport = htons(rport);
	key->proto = (__u8)proto;
}
