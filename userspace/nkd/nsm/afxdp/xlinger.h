/* SPDX-License-Identifier: MIT */
/*
 * Flows of closed afxdp connections that stay in nk_steer's flow table for
 * a while (lwIP still sends queued data and FIN after close and needs the
 * ACKs). A FIFO by expiry (every entry lingers the same time, so insertion
 * order is expiry order) and a hash by (key, owner) for the take-over of a
 * 4-tuple by a new connection: both O(1) per connection. A list walked per
 * accept and per expiry made short connections quadratic: at 2000
 * connections/s, 60 000 entries walked twice per connection.
 */
#ifndef NKD_XLINGER_H
#define NKD_XLINGER_H

#include <stdbool.h>
#include <stdint.h>

#include "nk_steer_shared.h"

struct nk_xlinger_ent {
	struct nk_flow_key key;
	uint32_t gid; /* owner */
	int64_t until;
	struct nk_xlinger_ent *next, *prev; /* FIFO */
	struct nk_xlinger_ent *hnext, **hpprev; /* hash chain */
};

struct nk_xlinger {
	struct nk_xlinger_ent *head, *tail;
	struct nk_xlinger_ent **tab;
	uint32_t mask;
	uint32_t n;
	uint8_t key[16]; /* SipHash key: peers choose their ports */
};

/* 0 or -ENOMEM. */
int nk_xlinger__init(struct nk_xlinger *l);
/* Frees every entry without telling anyone. */
void nk_xlinger__fini(struct nk_xlinger *l);
/* Appends (key, gid) expiring at until. 0 or -ENOMEM. */
int nk_xlinger__add(struct nk_xlinger *l, const struct nk_flow_key *key,
		    uint32_t gid, int64_t until);
/* Removes (key, gid) if it lingers; true if it did. */
bool nk_xlinger__take(struct nk_xlinger *l, const struct nk_flow_key *key,
		      uint32_t gid);
/* Earliest expiry, 0 when empty. */
int64_t nk_xlinger__next(const struct nk_xlinger *l);
/*
 * Pops one entry that expired at now (any entry if all) into key and
 * gid: true, or false when none is due.
 */
bool nk_xlinger__pop(struct nk_xlinger *l, int64_t now, bool all,
		     struct nk_flow_key *key, uint32_t *gid);
/* Forgets every entry of gid (guest id reuse); O(n), rare. */
void nk_xlinger__drop_gid(struct nk_xlinger *l, uint32_t gid);

#endif
