/* SPDX-License-Identifier: MIT */
/*
 * Guest regions ("NK device"): creation and layout. A region provider makes
 * the backing memory (a sealed memfd for a namespace guest's process, or a
 * window of the file a VM guest's QEMU maps as ivshmem), the layout code is
 * shared.
 */
#ifndef NKD_REGION_H
#define NKD_REGION_H

#include <stdint.h>

#include "netkernel/abi.h"

#define NK_REGION_SQ_ENTRIES 256u
#define NK_REGION_CQ_ENTRIES 512u
/*
 * 128 KiB: a RECV with NK_SQE_F_ADDR puts the 32-byte source address in
 * front of the data in the same buffer, and the largest UDP datagram
 * (65,527 bytes over IPv6) must still fit behind it.
 */
#define NK_REGION_BUF_SIZE 131072u
/* The guest config's bufs= counts units of this size (the data area). */
#define NK_REGION_BUF_UNIT 65536u
#define NK_REGION_SEND_WINDOW (1u << 20)
/* At most this many SENDs of one socket count against its window. */
#define NK_REGION_SEND_SLOTS 32u

struct nk_region_params {
	uint32_t nr_qsets; /* 1..NK_MAX_QSETS */
	uint32_t sq_entries, cq_entries; /* powers of two, cq >= sq */
	uint32_t buf_size; /* power of two */
	uint32_t nr_bufs;
	uint32_t send_window, send_charge;
	uint64_t epoch;
	uint32_t guest_id, conn_id;
};

/*
 * A backing store for regions. create() returns an fd of at least size
 * bytes that both sides can map MAP_SHARED, or -errno; label names it for
 * debugging.
 */
struct nk_region_provider {
	const char *name;
	int (*create)(const struct nk_region_provider *p, uint64_t size,
		      const char *label);
};

extern const struct nk_region_provider nk_region_memfd;

struct nk_region;

/* 0 and *out, or -errno. The header is written; rings are zero. */
/*
 * The least a SEND counts against the send window (abi.md §5): small enough
 * that a bulk sender's buffers fill the window, large enough that the SENDs
 * of one stalled socket (a window, and one more the guest may queue before
 * nkd takes them) hold under three quarters of the buffers, which the shim
 * keeps for sends; the rest stays free for receives, accepts and options.
 */
uint32_t nk_region__send_charge(uint32_t send_window, uint32_t nr_bufs);

int nk_region__create(const struct nk_region_provider *prov,
		      const struct nk_region_params *p, const char *label,
		      struct nk_region **out);
void nk_region__destroy(struct nk_region *r);
/* The bytes a region of these parameters takes. */
int nk_region__layout_size(const struct nk_region_params *p, uint64_t *size);
/*
 * A VM guest's region (docs/vm.md): a window of max bytes at page-aligned
 * off in fd (the file shared with the VM), zeroed; release(ctx, off) runs
 * when the region is destroyed. -ENOSPC if the layout needs more than max.
 */
int nk_region__create_window(int fd, uint64_t off, uint64_t max,
			     const struct nk_region_params *p,
			     void (*release)(void *ctx, uint64_t off),
			     void *ctx, struct nk_region **out);
/* Where the region starts in its fd (0 but for a VM window). */
uint64_t nk_region__offset(const struct nk_region *r);

void *nk_region__base(const struct nk_region *r);
uint64_t nk_region__size(const struct nk_region *r);
int nk_region__fd(const struct nk_region *r);
/* nkd's private copy of the layout, never read back from the region. */
const struct nk_qset_desc *nk_region__qset(const struct nk_region *r,
					   uint32_t i);
uint8_t *nk_region__data(const struct nk_region *r);
const struct nk_region_params *nk_region__params(const struct nk_region *r);
/* Sets NK_HOST_F_DEAD: the guest must stop submitting. */
void nk_region__mark_dead(struct nk_region *r);

#endif /* NKD_REGION_H */
