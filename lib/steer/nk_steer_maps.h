/* SPDX-License-Identifier: MIT */
/*
 * nk_steer_maps: the control-plane API over the maps nk-loader pinned for
 * one device (/sys/fs/bpf/netkernel/<DEV>/...). nkd uses it to install and
 * remove the endpoints, flows, XSKs and ACL entries of the guests it serves;
 * nk-loader uses it for `status`.
 *
 * Conventions: int functions return 0 or -errno; nothing here prints.
 * Keys are the structs of bpf/nk_steer_shared.h (addresses and ports in
 * network byte order, IPv4 as ::ffff:a.b.c.d); the helpers at the bottom
 * build them. The handle owns the map fds it opened; one handle is not
 * thread-safe, the maps themselves are (the kernel serialises updates).
 */
#ifndef NK_STEER_MAPS_H
#define NK_STEER_MAPS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "nk_steer_shared.h"

struct nk_steer_maps; /* opaque */

/*
 * Open the pinned maps of dev under pin_root (NULL: NK_PIN_ROOT) and check
 * their key/value sizes against this build. -ENOENT: dev not attached;
 * -EPROTO: pins from an incompatible nk_steer. On success *out owns the fds.
 */
int nk_steer_maps__open(const char *dev, const char *pin_root,
			struct nk_steer_maps **out);
/* Close every fd of m. NULL-safe. */
void nk_steer_maps__close(struct nk_steer_maps *m);

/* The knobs the program was loaded with. */
const struct nk_steer_knobs *
nk_steer_maps__knobs(const struct nk_steer_maps *m);

/* Endpoints. add: -EEXIST if the key is taken (another guest owns it). */
int nk_steer_maps__endpoint_add(struct nk_steer_maps *m,
				const struct nk_ep_key *key,
				const struct nk_target *target);
int nk_steer_maps__endpoint_del(struct nk_steer_maps *m,
				const struct nk_ep_key *key);

/* Flows. add: -EEXIST if present. */
int nk_steer_maps__flow_add(struct nk_steer_maps *m,
			    const struct nk_flow_key *key,
			    const struct nk_target *target);
int nk_steer_maps__flow_del(struct nk_steer_maps *m,
			    const struct nk_flow_key *key);

/*
 * Owner-aware deletes: a key belongs to the guest whose id is in its value
 * (nk_target.guest_id). They remove the key only if guest_id owns it:
 * -ENOENT if absent, -EPERM if another guest owns it. The check and the
 * delete are two system calls: callers must be the maps' only writer (nkd
 * is, one thread). The adds above never replace a key (BPF_NOEXIST).
 */
int nk_steer_maps__endpoint_del_owned(struct nk_steer_maps *m,
				      const struct nk_ep_key *key,
				      __u32 guest_id);
int nk_steer_maps__flow_del_owned(struct nk_steer_maps *m,
				  const struct nk_flow_key *key,
				  __u32 guest_id);
/* The owner of a flow key: 0 and *guest_id, or -ENOENT. */
int nk_steer_maps__flow_owner(struct nk_steer_maps *m,
			      const struct nk_flow_key *key, __u32 *guest_id);

/* guest_flush: every guest id (a daemon's start, after a crash). */
#define NK_STEER_ALL_GUESTS 0xffffffffu

/* What nk_steer_maps__guest_flush removed. */
struct nk_steer_flushed {
	unsigned int endpoints, flows, acl, cfg; /* cfg: modes reset to OFF */
};

/*
 * Remove every piece of per-guest state of guest_id (or of every guest with
 * NK_STEER_ALL_GUESTS): endpoints and flows whose target is that guest, its
 * ACL entries, its ACL mode (back to OFF) and its counters (zeroed). NSM
 * addresses and XSKs are left alone. out (may be NULL) counts what was
 * removed. 0, or the first -errno (the rest is still attempted).
 */
int nk_steer_maps__guest_flush(struct nk_steer_maps *m, __u32 guest_id,
			       struct nk_steer_flushed *out);

/*
 * Put the AF_XDP socket xsk_fd (bound to RX queue `queue` of this device) in
 * slot `slot` of that queue; clear removes it. -ERANGE if queue/slot are
 * outside the loaded knobs.
 */
int nk_steer_maps__xsk_set(struct nk_steer_maps *m, unsigned int queue,
			   unsigned int slot, int xsk_fd);
int nk_steer_maps__xsk_clear(struct nk_steer_maps *m, unsigned int queue,
			     unsigned int slot);

/* NSM-owned addresses (16 bytes, network order). */
int nk_steer_maps__nsm_addr_add(struct nk_steer_maps *m, const __u8 addr[16],
				const struct nk_target *target);
int nk_steer_maps__nsm_addr_del(struct nk_steer_maps *m, const __u8 addr[16]);

/* Source ACL of a guest: mode (enum nk_acl_mode), then prefix entries.
 * prefix_len counts bits of the 16-byte address (IPv4 /24 = 96 + 24). */
int nk_steer_maps__acl_mode_set(struct nk_steer_maps *m, __u32 guest_id,
				enum nk_acl_mode mode);
int nk_steer_maps__acl_add(struct nk_steer_maps *m, __u32 guest_id,
			   const __u8 addr[16], unsigned int prefix_len,
			   enum nk_acl_action action);
int nk_steer_maps__acl_del(struct nk_steer_maps *m, __u32 guest_id,
			   const __u8 addr[16], unsigned int prefix_len);

/* Counters summed over CPUs. */
int nk_steer_maps__guest_stats(struct nk_steer_maps *m, __u32 guest_id,
			       struct nk_guest_stats *out);
int nk_steer_maps__exit_stats(struct nk_steer_maps *m,
			      struct nk_exit_stats out[NK_EXIT__MAX]);

/* Entry counts (for status): which is one of the NK_MAP_* names that is a
 * hash or LPM map. Returns the count or -errno. */
int nk_steer_maps__count(struct nk_steer_maps *m, const char *which);

/*
 * Pin directory of dev: pin_root (NULL: NK_PIN_ROOT) + "/" + dev, with every
 * '.' of dev written as ':' (bpffs refuses '.' in names; ':' never occurs in
 * a device name, so the mapping is one to one). 0 or -ENAMETOOLONG.
 */
int nk_steer_pin_dir(char *out, size_t size, const char *pin_root,
		     const char *dev);

/* Short name of an exit path ("pass_no_match"), "?" if out of range. */
const char *nk_steer_exit_name(unsigned int exit);

/* Sum a per-CPU array of struct-of-u64 values (n_u64 words each) read from
 * a per-CPU map into out. Exposed for tests and other readers. */
void nk_steer_sum_percpu(const void *percpu, unsigned int ncpu, size_t n_u64,
			 __u64 *out);

/* Key helpers. addr16 out: IPv4-mapped for AF_INET. Ports host order in,
 * network order stored. parse: numeric IPv4 or IPv6 text; -EINVAL else. */
void nk_steer_addr_v4(__u8 out[16], struct in_addr a);
int nk_steer_addr_parse(const char *text, __u8 out[16]);
void nk_steer_ep_key(struct nk_ep_key *key, int proto, const __u8 addr[16],
		     __u16 port);
void nk_steer_flow_key(struct nk_flow_key *key, int proto, const __u8 laddr[16],
		       __u16 lport, const __u8 raddr[16], __u16 rport);

#endif /* NK_STEER_MAPS_H */
