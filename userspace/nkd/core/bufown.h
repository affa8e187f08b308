/* SPDX-License-Identifier: MIT */
/*
 * Buffer ownership: which data-area buffers of a connection belong to nkd
 * right now (from taking an SQE that names one until posting its CQE). A
 * guest naming a buffer nkd already owns is refused (docs/abi.md §5).
 */
#ifndef NKD_BUFOWN_H
#define NKD_BUFOWN_H

#include <stdbool.h>
#include <stdint.h>

struct nk_bufown;

/* NULL with errno on failure. */
struct nk_bufown *nk_bufown__create(uint32_t nr_bufs);
void nk_bufown__destroy(struct nk_bufown *b);
bool nk_bufown__owned(const struct nk_bufown *b, uint32_t idx);
/* 0, -EFAULT if already owned or out of range. */
int nk_bufown__claim(struct nk_bufown *b, uint32_t idx);
/* 0, -EINVAL if not owned (a bug in nkd, never the guest's doing). */
int nk_bufown__release(struct nk_bufown *b, uint32_t idx);
uint32_t nk_bufown__count(const struct nk_bufown *b);

#endif /* NKD_BUFOWN_H */
