// SPDX-License-Identifier: MIT
/* Lingering flows of the afxdp NSM; see xlinger.h. */
#include "xlinger.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "seqmod.h" /* nk_siphash24 */

#define XL_BUCKETS 16384u /* NK_MAX_FLOWS / 4: short chains when full */

int nk_xlinger__init(struct nk_xlinger *l)
{
	memset(l, 0, sizeof(*l));
	l->tab = calloc(XL_BUCKETS, sizeof(*l->tab));
	if (!l->tab)
		return -ENOMEM;
	l->mask = XL_BUCKETS - 1;
	if (getrandom(l->key, sizeof(l->key), 0) != sizeof(l->key)) {
		/* no entropy yet: chains can be aimed at, nothing worse */
		memset(l->key, 0x5a, sizeof(l->key));
	}
	return 0;
}

static void unlink_ent(struct nk_xlinger *l, struct nk_xlinger_ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	*e->hpprev = e->hnext;
	if (e->hnext)
		e->hnext->hpprev = e->hpprev;
	l->n--;
}

void nk_xlinger__fini(struct nk_xlinger *l)
{
	while (l->head) {
		struct nk_xlinger_ent *e = l->head;

		unlink_ent(l, e);
		free(e);
	}
	free(l->tab);
	l->tab = NULL;
}

static uint32_t bucket(const struct nk_xlinger *l,
		       const struct nk_flow_key *key, uint32_t gid)
{
	uint8_t buf[sizeof(*key) + sizeof(gid)];

	memcpy(buf, key, sizeof(*key));
	memcpy(buf + sizeof(*key), &gid, sizeof(gid));
	return (uint32_t)nk_siphash24(l->key, buf, sizeof(buf)) & l->mask;
}

int nk_xlinger__add(struct nk_xlinger *l, const struct nk_flow_key *key,
		    uint32_t gid, int64_t until)
{
	struct nk_xlinger_ent *e = calloc(1, sizeof(*e)), **b;

	if (!e)
		return -ENOMEM;
	e->key = *key;
	e->gid = gid;
	e->until = until;
	e->prev = l->tail;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
	b = &l->tab[bucket(l, key, gid)];
	e->hnext = *b;
	if (*b)
		(*b)->hpprev = &e->hnext;
	e->hpprev = b;
	*b = e;
	l->n++;
	return 0;
}

bool nk_xlinger__take(struct nk_xlinger *l, const struct nk_flow_key *key,
		      uint32_t gid)
{
	struct nk_xlinger_ent *e;

	for (e = l->tab[bucket(l, key, gid)]; e; e = e->hnext)
		if (e->gid == gid && !memcmp(&e->key, key, sizeof(*key))) {
			unlink_ent(l, e);
			free(e);
			return true;
		}
	return false;
}

int64_t nk_xlinger__next(const struct nk_xlinger *l)
{
	return l->head ? l->head->until : 0;
}

bool nk_xlinger__pop(struct nk_xlinger *l, int64_t now, bool all,
		     struct nk_flow_key *key, uint32_t *gid)
{
	struct nk_xlinger_ent *e = l->head;

	if (!e || (!all && now < e->until))
		return false;
	*key = e->key;
	*gid = e->gid;
	unlink_ent(l, e);
	free(e);
	return true;
}

void nk_xlinger__drop_gid(struct nk_xlinger *l, uint32_t gid)
{
	struct nk_xlinger_ent *e = l->head, *next;

	for (; e; e = next) {
		next = e->next;
		if (e->gid == gid) {
			unlink_ent(l, e);
			free(e);
		}
	}
}
