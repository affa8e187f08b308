/* SPDX-License-Identifier: MIT */
/*
 * Local ports of the afxdp NSM's sockets (all guests of the NSM share one
 * lwIP, so one port space). A socket holds its port from bind (or from the
 * implicit bind of listen/connect/sendto) until it is freed, so a bound but
 * unconnected socket keeps it, as on Linux. Two holders may share a port
 * only with SO_REUSEADDR on both and neither listening (Linux's rule,
 * without the per-address refinement: every address of the NSM counts as
 * the same). Accepted connections hold nothing: their 4-tuple is guarded by
 * the flow table, whose keys belong to a guest.
 *
 * Ephemeral ports are drawn uniformly at random from NK_XPORT_LO..HI with
 * getrandom() output (RFC 6056 algorithm 1), so a guest cannot predict the
 * port of another guest's next connection from its own.
 */
#ifndef NKD_XPORTS_H
#define NKD_XPORTS_H

#include <stdbool.h>
#include <stdint.h>

#define NK_XPORT_LO 49152u
#define NK_XPORT_HI 65535u

enum { NK_XP_TCP = 0, NK_XP_UDP = 1 };

struct nk_xport_ent {
	uint32_t n; /* holders */
	uint32_t excl; /* holders that exclude others: no reuse, or listening */
};

struct nk_xports {
	struct nk_xport_ent *tab[2]; /* [proto][port] */
	uint16_t rnd[64]; /* getrandom() output not used yet */
	unsigned nr_rnd;
};

/* 0 or -ENOMEM. */
int nk_xports__init(struct nk_xports *p);
void nk_xports__fini(struct nk_xports *p);
/* Could a new holder (reuse: SO_REUSEADDR) take port now? */
bool nk_xports__free_for(const struct nk_xports *p, int proto, uint16_t port,
			 bool reuse);
/* Takes port (host order): 0 or -EADDRINUSE. *excl says how it is held. */
int nk_xports__hold(struct nk_xports *p, int proto, uint16_t port, bool reuse,
		    bool *excl);
/* A holder starts listening: it excludes others from now on. */
int nk_xports__listen(struct nk_xports *p, int proto, uint16_t port,
		      bool *excl);
void nk_xports__release(struct nk_xports *p, int proto, uint16_t port,
			bool excl);
/* A random ephemeral port this holder may take (not taken yet): 0 or
 * -EADDRINUSE after enough tries. */
int nk_xports__pick(struct nk_xports *p, int proto, bool reuse, uint16_t *port);

#endif /* NKD_XPORTS_H */
