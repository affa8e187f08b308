/* SPDX-License-Identifier: MIT */
/*
 * The afxdp NSM's stack counters for nkctl (nsm.h, counters()): what its
 * L2 backend and nk_ustack count, under names an operator reads in
 * `nkctl nsms` and `nkctl stats` (docs/afxdp-nsm.md, "Counters").
 */
#ifndef NKD_XCOUNTERS_H
#define NKD_XCOUNTERS_H

#include "l2.h"
#include "nsm.h"
#include "ustack.h"

/* Fills up to max counters of l2 and st; returns how many. */
unsigned nk_xcounters__fill(const struct nk_l2 *l2, const struct nk_ustack *st,
			    struct nk_nsm_counter *out, unsigned max);

#endif /* NKD_XCOUNTERS_H */
