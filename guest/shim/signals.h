/* SPDX-License-Identifier: MIT */
/* signals.c: handlers through a counting trampoline, exact waits. */
#ifndef NK_SHIM_SIGNALS_H
#define NK_SHIM_SIGNALS_H

#include <stdbool.h>
#include <stdint.h>

/* The calling thread's handler counters when a wait began. */
struct nk_sigsnap {
	uint32_t seq; /* handlers that ran */
	uint32_t intr; /* of those, without SA_RESTART */
};

#define NK_SIG_RESTART 1 /* only SA_RESTART handlers ran */
#define NK_SIG_INTR 2 /* a handler without SA_RESTART ran */

__attribute__((visibility("hidden"))) void nk_sig__init(void);
/* The child of a fork whose other thread held the table's lock. */
__attribute__((visibility("hidden"))) void nk_sig__fork_child(void);
__attribute__((visibility("hidden"))) void nk_sig__snap(struct nk_sigsnap *s);
/* 0: no handler ran since the snapshot; else NK_SIG_RESTART/NK_SIG_INTR. */
__attribute__((visibility("hidden"))) int
nk_sig__check(const struct nk_sigsnap *s);
/* FUTEX_WAITV is there (Linux >= 5.16). */
__attribute__((visibility("hidden"))) bool nk_sig__exact(void);
/*
 * Sleep while *addr == val and no handler ran since the snapshot (no
 * window between the check and the sleep). ns == 0: untimed. Returns
 * -EINTR when the kernel said so, else 0.
 */
__attribute__((visibility("hidden"))) int
nk_sig__futex_wait(uint32_t *addr, bool priv, uint32_t val,
		   const struct nk_sigsnap *s, int64_t ns);

#endif
