// SPDX-License-Identifier: MIT
/* Port holdings and random ephemeral ports of the afxdp NSM: xports.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "xports.h"

/* Random draws before giving up: with half the range held, 2^-64. */
#define NK_XPORT_TRIES 64

int nk_xports__init(struct nk_xports *p)
{
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < 2; i++) {
		p->tab[i] = calloc(65536, sizeof(*p->tab[i]));
		if (!p->tab[i]) {
			nk_xports__fini(p);
			return -ENOMEM;
		}
	}
	return 0;
}

void nk_xports__fini(struct nk_xports *p)
{
	for (int i = 0; i < 2; i++) {
		free(p->tab[i]);
		p->tab[i] = NULL;
	}
}

bool nk_xports__free_for(const struct nk_xports *p, int proto, uint16_t port,
			 bool reuse)
{
	const struct nk_xport_ent *e = &p->tab[proto][port];

	return port && (!e->n || (reuse && !e->excl));
}

int nk_xports__hold(struct nk_xports *p, int proto, uint16_t port, bool reuse,
		    bool *excl)
{
	struct nk_xport_ent *e = &p->tab[proto][port];

	if (!nk_xports__free_for(p, proto, port, reuse))
		return -EADDRINUSE;
	e->n++;
	*excl = !reuse;
	if (*excl)
		e->excl++;
	return 0;
}

int nk_xports__listen(struct nk_xports *p, int proto, uint16_t port, bool *excl)
{
	struct nk_xport_ent *e = &p->tab[proto][port];

	if (*excl)
		return 0; /* alone on the port already */
	if (e->excl)
		return -EADDRINUSE; /* another listener shares it */
	e->excl++;
	*excl = true;
	return 0;
}

void nk_xports__release(struct nk_xports *p, int proto, uint16_t port,
			bool excl)
{
	struct nk_xport_ent *e = &p->tab[proto][port];

	if (!port || !e->n)
		return;
	e->n--;
	if (excl && e->excl)
		e->excl--;
}

/* Uniform over the range: getrandom() in batches, refilled when used up. */
static int rnd16(struct nk_xports *p, uint16_t *out)
{
	if (!p->nr_rnd) {
		ssize_t n = getrandom(p->rnd, sizeof(p->rnd), GRND_NONBLOCK);

		if (n != (ssize_t)sizeof(p->rnd))
			return -EAGAIN; /* entropy pool not ready (early boot) */
		p->nr_rnd = sizeof(p->rnd) / sizeof(p->rnd[0]);
	}
	*out = p->rnd[--p->nr_rnd];
	p->rnd[p->nr_rnd] = 0;
	return 0;
}

int nk_xports__pick(struct nk_xports *p, int proto, bool reuse, uint16_t *port)
{
	const unsigned span = NK_XPORT_HI - NK_XPORT_LO + 1;

	for (int i = 0; i < NK_XPORT_TRIES; i++) {
		uint16_t r;
		uint16_t cand;
		int err = rnd16(p, &r);

		if (err)
			return err;
		/* span is 2^14: no modulo bias. */
		cand = (uint16_t)(NK_XPORT_LO + r % span);
		if (nk_xports__free_for(p, proto, cand, reuse) &&
		    !p->tab[proto][cand].n) {
			*port = cand;
			return 0;
		}
	}
	return -EADDRINUSE;
}
