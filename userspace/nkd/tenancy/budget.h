/* SPDX-License-Identifier: MIT */
/*
 * Global budgets that protect every guest from the others (docs/nkd.md
 * "Budgets"): guest sockets (nkd's descriptors), region memory, and queued
 * RESOLVE requests. Configured guests may reserve sockets (reserve=N);
 * the rest of the socket budget is a shared pool of which one guest the
 * config does not name may take at most default_share percent.
 */
#ifndef NKD_BUDGET_H
#define NKD_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netkernel/ctl.h"

/*
 * Descriptors one guest socket costs nkd: the kernel socket, the
 * placeholder's nkd end and nkd's duplicate of its app end. An attached
 * process costs NK_FDS_PER_CONN: control socket, region memfd, doorbell,
 * placeholder pool channel, and up to NK_PH_POOL_MAX unbound placeholders
 * (nkd end and app-end duplicate each) waiting in its pool.
 */
#define NK_FDS_PER_SOCK 3u
#define NK_FDS_PER_CONN (4u + 2u * NK_PH_POOL_MAX)

struct nk_engine;
struct nk_guest;
struct nk_conn;

struct nk_budget {
	uint64_t nofile; /* RLIMIT_NOFILE soft limit after raising it */
	uint32_t sockets, sockets_used; /* guest sockets in all */
	uint32_t reserved; /* sum of reserve= */
	uint32_t shared, shared_used; /* the pool beyond reservations */
	uint32_t share_pct; /* of the pool, per guest not in the config */
	uint32_t conns, conns_used; /* attached processes (descriptors) */
	uint64_t memory, memory_used; /* region bytes */
	uint32_t resolve_queue; /* queued RESOLVEs per guest */
	uint64_t shmq_used; /* shm receive queues (part of memory_used) */
	uint64_t refused_sockets, refused_memory, refused_resolve;
	uint64_t refused_shmq;
	int64_t last_warn_ns;
};

/* Sizes the budgets from RLIMIT_NOFILE (main.c raised it to the hard
 * limit) and the config; -EINVAL with err set when
 * the configuration asks for more than fits. */
int nk_budget__init(struct nk_engine *e, char *err, size_t errlen);
/* A new guest socket: 0 or -ENOBUFS. */
int nk_budget__sock_get(struct nk_engine *e, struct nk_guest *g);
void nk_budget__sock_put(struct nk_engine *e, struct nk_guest *g);
/* An attach mapping a region of bytes: 0, -EMFILE or -ENOMEM. */
int nk_budget__conn_get(struct nk_engine *e, struct nk_conn *c, uint64_t bytes);
void nk_budget__conn_put(struct nk_engine *e, struct nk_conn *c);
/* A RESOLVE to queue for g: false if g has resolve_queue waiting. */
bool nk_budget__resolve_get(struct nk_engine *e, struct nk_guest *g);
void nk_budget__resolve_put(struct nk_engine *e, struct nk_guest *g);
/*
 * nkd memory for an shm receive queue that g's non-blocking sends fill
 * (nsm/shm/): within g's shm_queue= and the region memory budget (an
 * unnamed guest's share of it included). 0 or -ENOBUFS.
 */
int nk_budget__shmq_get(struct nk_engine *e, struct nk_guest *g,
			uint64_t bytes);
void nk_budget__shmq_put(struct nk_engine *e, struct nk_guest *g,
			 uint64_t bytes);
/* The "budget" object of `nkctl status --json`. */
void nk_budget__json(const struct nk_engine *e, char *buf, size_t len);

#endif /* NKD_BUDGET_H */
