/* SPDX-License-Identifier: MIT */
/*
 * A kernel NSM listener's queue of connections io_uring's multishot
 * ACCEPT took before a guest asked for them (docs/nkd.md "Accept"). A
 * FIFO of kernel fds owned by nkd; bounded by the caller (it stops the
 * multishot ACCEPT at the bound), growable because completions already
 * in the CQ ring still arrive after the stop.
 */
#ifndef NKD_KN_ACCQ_H
#define NKD_KN_ACCQ_H

#include <stdint.h>

struct nk_kn_accq {
	int *fd;
	uint32_t cap, head, len;
	uint32_t bound; /* the listen backlog, at most NK_KN_ACCQ_MAX */
};

/* Connections queued in nkd per listener, whatever the backlog. */
#define NK_KN_ACCQ_MAX 64

/* 0 or -ENOMEM (fd is then not queued: the caller closes it). */
int nk_kn_accq__push(struct nk_kn_accq *q, int fd);
/* The oldest fd, or -1 when empty. */
int nk_kn_accq__pop(struct nk_kn_accq *q);
/* Resets and closes every queued fd (the listener closes or shuts down). */
void nk_kn_accq__drain(struct nk_kn_accq *q);
void nk_kn_accq__free(struct nk_kn_accq *q);

#endif /* NKD_KN_ACCQ_H */
