// SPDX-License-Identifier: MIT
/*
 * TCP sequence number modulation (seqmod.h): RFC 6528 initial sequence
 * numbers for lwIP's connections, applied as a per-connection offset at the
 * engine's packet boundary.
 */
#include "seqmod.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct sm_ent {
	struct sm_ent *next;
	uint32_t laddr, raddr; /* network order */
	uint16_t lport, rport; /* network order */
	uint32_t lwip_iss; /* host order: lwIP's ISN, to tell a new connection */
	uint32_t off; /* wire = lwIP + off */
	/* lwIP space: the end of the highest segment sent; a segment that
	 * ends at or before it was sent before (a retransmission). */
	uint32_t snd_max;
	uint32_t gen; /* sweep generation that last saw it */
};

struct nk_seqmod {
	uint8_t key_isn[16], key_tab[16];
	struct sm_ent **tab;
	uint32_t mask; /* buckets - 1 */
	uint32_t max, gen;
	struct nk_seqmod_stats st;
};

/* ---- SipHash-2-4, from the paper's description ---- */

static uint64_t rotl64(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define SIPROUND                     \
	do {                         \
		v0 += v1;            \
		v1 = rotl64(v1, 13); \
		v1 ^= v0;            \
		v0 = rotl64(v0, 32); \
		v2 += v3;            \
		v3 = rotl64(v3, 16); \
		v3 ^= v2;            \
		v0 += v3;            \
		v3 = rotl64(v3, 21); \
		v3 ^= v0;            \
		v2 += v1;            \
		v1 = rotl64(v1, 17); \
		v1 ^= v2;            \
		v2 = rotl64(v2, 32); \
	} while (0)

uint64_t nk_siphash24(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *in = data;
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = k1 ^ 0x7465646279746573ULL;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	while (left--)
		b |= (uint64_t)in[i + left] << (8 * left);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- checksums (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')) ---- */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* csum: host order value of the field; n even; words big-endian. */
static uint16_t csum_adjust(uint16_t csum, const uint8_t *oldb,
			    const uint8_t *newb, size_t n)
{
	uint32_t sum = (uint16_t)~csum;
	size_t i;

	for (i = 0; i < n; i += 2) {
		sum += (uint16_t)~rd16(oldb + i);
		sum += rd16(newb + i);
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint16_t nk_csum_update32(uint16_t csum, uint32_t old_be, uint32_t new_be)
{
	uint8_t o[4], n[4], c[2];

	memcpy(o, &old_be, 4);
	memcpy(n, &new_be, 4);
	memcpy(c, &csum, 2);
	wr16(c, csum_adjust(rd16(c), o, n, 4));
	memcpy(&csum, c, 2);
	return csum;
}

/*
 * Adds delta to the 32-bit big-endian word at tcp + off (any alignment)
 * and fixes the checksum at tcp + 16. The checksum runs over 16-bit words
 * from the (even) start of the TCP header, so an odd offset touches three.
 */
static void add32_fix(uint8_t *tcp, size_t off, uint32_t delta)
{
	size_t a = off & ~(size_t)1, n = off & 1 ? 6 : 4;
	uint8_t oldb[6], newb[6];

	memcpy(oldb, tcp + a, n);
	wr32(tcp + off, rd32(tcp + off) + delta);
	memcpy(newb, tcp + a, n);
	wr16(tcp + 16, csum_adjust(rd16(tcp + 16), oldb, newb, n));
}

/* ---- frames ---- */

struct tcp_view {
	uint8_t *tcp;
	size_t doff; /* TCP header length */
	size_t plen; /* payload bytes */
	uint32_t saddr, daddr; /* network order */
	uint16_t sport, dport; /* network order */
};

/* IPv4/TCP inside frame[0..len), unfragmented; 0 or -1. */
static int tcp_find(uint8_t *frame, size_t len, struct tcp_view *v)
{
	uint8_t *ip = frame + 14;
	size_t ihl, tot, doff;

	if (len < 14 + 20 || rd16(frame + 12) != 0x0800)
		return -1;
	ihl = (size_t)(ip[0] & 0xf) * 4;
	tot = rd16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < 20 || tot > len - 14 || tot < ihl + 20 ||
	    ip[9] != 6 || (rd16(ip + 6) & 0x3fff))
		return -1;
	v->tcp = ip + ihl;
	doff = (size_t)(v->tcp[12] >> 4) * 4;
	if (doff < 20 || ihl + doff > tot)
		return -1;
	v->doff = doff;
	v->plen = tot - ihl - doff;
	memcpy(&v->saddr, ip + 12, 4);
	memcpy(&v->daddr, ip + 16, 4);
	memcpy(&v->sport, v->tcp, 2);
	memcpy(&v->dport, v->tcp + 2, 2);
	return 0;
}

/* ---- table ---- */

static uint32_t bucket(const struct nk_seqmod *sm, uint32_t la, uint16_t lp,
		       uint32_t ra, uint16_t rp)
{
	uint8_t b[12];

	memcpy(b, &la, 4);
	memcpy(b + 4, &ra, 4);
	memcpy(b + 8, &lp, 2);
	memcpy(b + 10, &rp, 2);
	return (uint32_t)nk_siphash24(sm->key_tab, b, sizeof(b)) & sm->mask;
}

static struct sm_ent *lookup(struct nk_seqmod *sm, uint32_t la, uint16_t lp,
			     uint32_t ra, uint16_t rp, struct sm_ent ***slot)
{
	struct sm_ent **pp = &sm->tab[bucket(sm, la, lp, ra, rp)], *e;

	if (slot)
		*slot = pp;
	for (e = *pp; e; e = e->next)
		if (e->laddr == la && e->raddr == ra && e->lport == lp &&
		    e->rport == rp)
			return e;
	return NULL;
}

int nk_seqmod__create(uint32_t max_ents, const uint8_t *key,
		      struct nk_seqmod **out)
{
	struct nk_seqmod *sm;
	uint32_t nb = 64;

	*out = NULL;
	if (!max_ents || max_ents > (1u << 24))
		return -EINVAL;
	sm = calloc(1, sizeof(*sm));
	if (!sm)
		return -ENOMEM;
	if (key) {
		memcpy(sm->key_isn, key, 16);
		memcpy(sm->key_tab, key + 16, 16);
	} else {
		uint8_t k[32];
		size_t got = 0;

		while (got < sizeof(k)) {
			ssize_t r = getrandom(k + got, sizeof(k) - got, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				free(sm);
				return r < 0 ? -errno : -EIO;
			}
			got += (size_t)r;
		}
		memcpy(sm->key_isn, k, 16);
		memcpy(sm->key_tab, k + 16, 16);
	}
	/* about two entries per bucket when full */
	while (nb < max_ents / 2 && nb < (1u << 20))
		nb <<= 1;
	sm->tab = calloc(nb, sizeof(*sm->tab));
	if (!sm->tab) {
		free(sm);
		return -ENOMEM;
	}
	sm->mask = nb - 1;
	sm->max = max_ents;
	*out = sm;
	return 0;
}

void nk_seqmod__destroy(struct nk_seqmod *sm)
{
	uint32_t i;

	if (!sm)
		return;
	for (i = 0; i <= sm->mask; i++)
		while (sm->tab[i]) {
			struct sm_ent *e = sm->tab[i];

			sm->tab[i] = e->next;
			free(e);
		}
	free(sm->tab);
	free(sm);
}

static uint32_t rfc6528_isn(const struct nk_seqmod *sm, const struct sm_ent *e,
			    uint64_t now_ns)
{
	uint8_t b[12];

	memcpy(b, &e->laddr, 4);
	memcpy(b + 4, &e->raddr, 4);
	memcpy(b + 8, &e->lport, 2);
	memcpy(b + 10, &e->rport, 2);
	/* M ticks every 4.096 us (RFC 6528 asks for ~4 us) */
	return (uint32_t)nk_siphash24(sm->key_isn, b, sizeof(b)) +
	       (uint32_t)(now_ns >> 12);
}

int nk_seqmod__out(struct nk_seqmod *sm, uint8_t *frame, size_t len,
		   uint64_t now_ns, struct nk_seqmod_undo *undo)
{
	struct tcp_view v;
	struct sm_ent *e, **slot;
	uint32_t seq;

	undo->l4_off = 0;
	if (tcp_find(frame, len, &v))
		return NK_SEQMOD_PASS;
	e = lookup(sm, v.saddr, v.sport, v.daddr, v.dport, &slot);
	seq = rd32(v.tcp + 4);
	if (v.tcp[13] & 0x02) { /* SYN or SYN-ACK: lwIP's ISN */
		if (!e) {
			if (sm->st.entries >= sm->max) {
				sm->st.full++;
				return NK_SEQMOD_FULL;
			}
			e = calloc(1, sizeof(*e));
			if (!e) {
				sm->st.full++;
				return NK_SEQMOD_FULL;
			}
			e->laddr = v.saddr;
			e->raddr = v.daddr;
			e->lport = v.sport;
			e->rport = v.dport;
			e->lwip_iss = seq + 1; /* differs: chosen below */
			e->gen = sm->gen;
			e->next = *slot;
			*slot = e;
			sm->st.entries++;
		}
		/* a retransmitted SYN keeps its ISN; a new connection on the
		 * same 4-tuple (lwIP picked a new ISN) gets a new one */
		if (e->lwip_iss != seq) {
			if (!now_ns) {
				struct timespec ts;

				clock_gettime(CLOCK_MONOTONIC, &ts);
				now_ns = (uint64_t)ts.tv_sec * 1000000000u +
					 (uint64_t)ts.tv_nsec;
			}
			e->lwip_iss = seq;
			e->off = rfc6528_isn(sm, e, now_ns) - seq;
			e->snd_max = seq;
			sm->st.created++;
		}
	}
	if (!e)
		return NK_SEQMOD_PASS;
	{
		/* SYN and FIN take a sequence number each; pure ACKs, RSTs
		 * and keepalives (no data) none, and are not counted. */
		uint32_t end = seq + (uint32_t)v.plen + !!(v.tcp[13] & 0x02) +
			       !!(v.tcp[13] & 0x01);

		if (end != seq) {
			if ((int32_t)(end - e->snd_max) <= 0)
				sm->st.retrans++;
			else
				e->snd_max = end;
		}
	}
	undo->l4_off = (uint16_t)(v.tcp - frame);
	memcpy(&undo->seq, v.tcp + 4, 4);
	memcpy(&undo->csum, v.tcp + 16, 2);
	add32_fix(v.tcp, 4, e->off);
	sm->st.out_xlated++;
	return NK_SEQMOD_XLATED;
}

void nk_seqmod__undo(uint8_t *frame, const struct nk_seqmod_undo *undo)
{
	if (!undo->l4_off)
		return;
	memcpy(frame + undo->l4_off + 4, &undo->seq, 4);
	memcpy(frame + undo->l4_off + 16, &undo->csum, 2);
}

int nk_seqmod__in(struct nk_seqmod *sm, uint8_t *frame, size_t len)
{
	struct tcp_view v;
	struct sm_ent *e;
	uint32_t delta;
	size_t i;

	if (tcp_find(frame, len, &v))
		return 0;
	e = lookup(sm, v.daddr, v.dport, v.saddr, v.sport, NULL);
	if (!e)
		return 0;
	delta = 0u - e->off;
	if (v.tcp[13] & 0x10) /* ACK: our sequence space */
		add32_fix(v.tcp, 8, delta);
	/* SACK blocks (kind 5) are edges of our sequence space too */
	for (i = 20; i < v.doff;) {
		uint8_t kind = v.tcp[i], olen;
		size_t j;

		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= v.doff)
			break;
		olen = v.tcp[i + 1];
		if (olen < 2 || i + olen > v.doff)
			break;
		if (kind == 5 && (olen - 2) % 8 == 0)
			for (j = i + 2; j < i + olen; j += 4)
				add32_fix(v.tcp, j, delta);
		i += olen;
	}
	sm->st.in_xlated++;
	return 1;
}

void nk_seqmod__sweep_begin(struct nk_seqmod *sm)
{
	sm->gen++;
}

void nk_seqmod__mark(struct nk_seqmod *sm, uint32_t laddr, uint16_t lport,
		     uint32_t raddr, uint16_t rport)
{
	struct sm_ent *e = lookup(sm, laddr, lport, raddr, rport, NULL);

	if (e)
		e->gen = sm->gen;
}

int nk_seqmod__has(struct nk_seqmod *sm, uint32_t laddr, uint16_t lport,
		   uint32_t raddr, uint16_t rport)
{
	return lookup(sm, laddr, lport, raddr, rport, NULL) != NULL;
}

unsigned nk_seqmod__sweep_end(struct nk_seqmod *sm)
{
	unsigned n = 0;
	uint32_t i;

	for (i = 0; i <= sm->mask; i++) {
		struct sm_ent **pp = &sm->tab[i];

		while (*pp) {
			struct sm_ent *e = *pp;

			if (e->gen == sm->gen) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free(e);
			n++;
		}
	}
	sm->st.entries -= n;
	sm->st.swept += n;
	return n;
}

void nk_seqmod__stats(const struct nk_seqmod *sm, struct nk_seqmod_stats *out)
{
	*out = sm->st;
}
