// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "region.h"

#define PAGE 4096u

struct nk_region {
	int fd;
	void *base;
	uint64_t size;
	uint64_t off; /* in fd: 0, or a VM window's offset */
	void (*release)(void *ctx, uint64_t off); /* a VM window's owner */
	void *release_ctx;
	uint32_t data_off;
	struct nk_region_params p;
	struct nk_qset_desc qsets[NK_MAX_QSETS];
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static int memfd_create_region(const struct nk_region_provider *p,
			       uint64_t size, const char *label)
{
	int fd;

	(void)p;
	fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	/*
	 * The guest gets this fd. Without the seals it could shrink the file
	 * under nkd's mapping and every later access would SIGBUS nkd.
	 */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
	    0)
		goto fail;
	return fd;
fail : {
	int err = -errno;

	close(fd);
	return err;
}
}

const struct nk_region_provider nk_region_memfd = {
	.name = "memfd",
	.create = memfd_create_region,
};

static int layout(struct nk_region *r)
{
	const struct nk_region_params *p = &r->p;
	uint64_t off = PAGE; /* page 0: header */

	for (uint32_t i = 0; i < p->nr_qsets; i++) {
		struct nk_qset_desc *d = &r->qsets[i];

		d->sq_entries = p->sq_entries;
		d->cq_entries = p->cq_entries;
		d->sq_idx_off = (uint32_t)off;
		off += sizeof(struct nk_ring_idx);
		d->sq_entries_off = (uint32_t)off;
		off += (uint64_t)p->sq_entries * sizeof(struct nk_sqe);
		off = align_up(off, NK_CACHELINE);
		d->cq_idx_off = (uint32_t)off;
		off += sizeof(struct nk_ring_idx);
		d->cq_entries_off = (uint32_t)off;
		off += (uint64_t)p->cq_entries * sizeof(struct nk_cqe);
		off = align_up(off, PAGE);
	}
	if (off > UINT32_MAX)
		return -EINVAL;
	r->data_off = (uint32_t)off;
	r->size = off + (uint64_t)p->buf_size * p->nr_bufs;
	return 0;
}

static bool params_ok(const struct nk_region_params *p)
{
	return p->nr_qsets && p->nr_qsets <= NK_MAX_QSETS && p->nr_bufs &&
	       p->buf_size && !(p->buf_size & (p->buf_size - 1)) &&
	       (uint64_t)p->buf_size * p->nr_bufs <= (1ull << 32) - PAGE;
}

static void write_hdr(struct nk_region *r)
{
	const struct nk_region_params *p = &r->p;
	struct nk_region_hdr *h = r->base;

	h->magic = NK_REGION_MAGIC;
	h->abi_version = NK_ABI_VERSION;
	h->features = NK_FEAT_ALL;
	h->region_size = r->size;
	h->epoch = p->epoch;
	h->hdr_size = sizeof(*h);
	h->nr_qsets = p->nr_qsets;
	h->data_off = r->data_off;
	h->buf_size = p->buf_size;
	h->nr_bufs = p->nr_bufs;
	h->guest_id = p->guest_id;
	h->conn_id = p->conn_id;
	h->send_window = p->send_window;
	h->send_charge = p->send_charge;
	memcpy(h->qsets, r->qsets, sizeof(r->qsets));
}

int nk_region__create(const struct nk_region_provider *prov,
		      const struct nk_region_params *p, const char *label,
		      struct nk_region **out)
{
	struct nk_region *r;
	int ret;

	if (!params_ok(p))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->p = *p;
	r->fd = -1;
	ret = layout(r);
	if (ret)
		goto fail;
	r->fd = prov->create(prov, r->size, label);
	if (r->fd < 0) {
		ret = r->fd;
		goto fail;
	}
	r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd,
		       0);
	if (r->base == MAP_FAILED) {
		ret = -errno;
		r->base = NULL;
		goto fail;
	}
	write_hdr(r);
	*out = r;
	return 0;
fail:
	nk_region__destroy(r);
	return ret;
}

int nk_region__layout_size(const struct nk_region_params *p, uint64_t *size)
{
	struct nk_region r = { .p = *p };
	int ret;

	if (!params_ok(p))
		return -EINVAL;
	ret = layout(&r);
	*size = r.size;
	return ret;
}

int nk_region__create_window(int fd, uint64_t off, uint64_t max,
			     const struct nk_region_params *p,
			     void (*release)(void *ctx, uint64_t off),
			     void *ctx, struct nk_region **out)
{
	struct nk_region *r;
	int ret;

	if (!params_ok(p) || off % PAGE)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->p = *p;
	r->fd = -1;
	ret = layout(r);
	if (!ret && r->size > max)
		ret = -ENOSPC;
	if (ret)
		goto fail;
	r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (r->fd < 0) {
		ret = -errno;
		goto fail;
	}
	r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd,
		       (off_t)off);
	if (r->base == MAP_FAILED) {
		ret = -errno;
		r->base = NULL;
		goto fail;
	}
	/* A window is reused: rings must start at zero, nothing leaks on. */
	memset(r->base, 0, r->size);
	r->off = off;
	write_hdr(r);
	/* A VM's placeholders are nk-vmagent's: they are bound by PH_BIND. */
	((struct nk_region_hdr *)r->base)->features &=
		~(uint64_t)NK_FEAT_PH_SQE;
	/* Only now: a failed create gives nothing back to the owner. */
	r->release = release;
	r->release_ctx = ctx;
	*out = r;
	return 0;
fail:
	nk_region__destroy(r);
	return ret;
}

uint64_t nk_region__offset(const struct nk_region *r)
{
	return r->off;
}

void nk_region__destroy(struct nk_region *r)
{
	if (!r)
		return;
	if (r->base)
		munmap(r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	if (r->release)
		r->release(r->release_ctx, r->off);
	free(r);
}

void *nk_region__base(const struct nk_region *r)
{
	return r->base;
}

uint64_t nk_region__size(const struct nk_region *r)
{
	return r->size;
}

int nk_region__fd(const struct nk_region *r)
{
	return r->fd;
}

const struct nk_qset_desc *nk_region__qset(const struct nk_region *r,
					   uint32_t i)
{
	return i < r->p.nr_qsets ? &r->qsets[i] : NULL;
}

uint8_t *nk_region__data(const struct nk_region *r)
{
	return (uint8_t *)r->base + r->data_off;
}

const struct nk_region_params *nk_region__params(const struct nk_region *r)
{
	return &r->p;
}

void nk_region__mark_dead(struct nk_region *r)
{
	struct nk_region_hdr *h = r->base;

	__atomic_or_fetch(&h->host_flags, NK_HOST_F_DEAD, __ATOMIC_RELEASE);
}

uint32_t nk_region__send_charge(uint32_t send_window, uint32_t nr_bufs)
{
	uint32_t slots = (uint32_t)((uint64_t)nr_bufs * 3 / 8);

	if (slots < 1)
		slots = 1;
	if (slots > NK_REGION_SEND_SLOTS)
		slots = NK_REGION_SEND_SLOTS;
	return send_window / slots ? send_window / slots : 1;
}
