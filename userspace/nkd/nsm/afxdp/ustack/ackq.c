// SPDX-License-Identifier: MIT
/* Pure-ACK coalescing for one TX batch; see ackq.h. */
#include "ackq.h"

#include <string.h>

#define ETH_HLEN 14
#define IP_HLEN 20
#define TCP_HLEN 20
#define TH_ACK 0x10

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/*
 * An IPv4 TCP frame without IP options and not a fragment: returns its TCP
 * header, else NULL. Our own frames from lwIP, but checked all the same.
 */
static const uint8_t *tcp_of(const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + ETH_HLEN;

	if (len < ETH_HLEN + IP_HLEN + TCP_HLEN || rd16(f + 12) != 0x0800 ||
	    ip[0] != 0x45 || ip[9] != 6 || (rd16(ip + 6) & 0x3fff))
		return NULL;
	return ip + IP_HLEN;
}

/* Flags exactly ACK, no options, no payload. */
static int pure_ack(const uint8_t *f, size_t len, const uint8_t *th)
{
	return th[13] == TH_ACK && th[12] >> 4 == 5 &&
	       rd16(f + ETH_HLEN + 2) == IP_HLEN + TCP_HLEN &&
	       len <= NK_ACKQ_FRAME;
}

/* The same connection: addresses (IP 12..19) and ports (TCP 0..3). */
static int same_flow(const uint8_t *a, const uint8_t *b)
{
	return !memcmp(a + ETH_HLEN + 12, b + ETH_HLEN + 12, 8) &&
	       !memcmp(a + ETH_HLEN + IP_HLEN, b + ETH_HLEN + IP_HLEN, 4);
}

static void take(struct nk_ackq *q, unsigned i)
{
	q->e[i] = q->e[--q->n];
}

int nk_ackq__out(struct nk_ackq *q, const uint8_t *frame, size_t len,
		 nk_ackq_emit_fn emit, void *arg)
{
	const uint8_t *th = tcp_of(frame, len);
	struct nk_ackq_ent *e;
	uint32_t ack;
	unsigned i;
	int pure;

	if (!th)
		return 0;
	pure = pure_ack(frame, len, th);
	ack = rd32(th + 8);
	for (i = 0; i < q->n; i++)
		if (same_flow(q->e[i].frame, frame))
			break;
	if (i < q->n) {
		e = &q->e[i];
		/*
		 * Superseded: a newer ACK, or a segment with data or flags
		 * that acknowledges as much (and carries the newer window).
		 * An equal pure ACK is a duplicate ACK: both go out.
		 */
		if ((th[13] & TH_ACK) &&
		    (int32_t)(ack - e->ack) >= (pure ? 1 : 0)) {
			q->coalesced++;
		} else {
			emit(arg, e->frame, e->len);
		}
		take(q, i);
	}
	if (!pure)
		return 0;
	if (q->n == NK_ACKQ_MAX)
		return 0; /* many connections in one batch: just send it */
	e = &q->e[q->n++];
	memcpy(e->frame, frame, len);
	e->len = (uint16_t)len;
	e->ack = ack;
	return 1;
}

void nk_ackq__drain(struct nk_ackq *q, nk_ackq_emit_fn emit, void *arg)
{
	unsigned i;

	for (i = 0; i < q->n; i++)
		emit(arg, q->e[i].frame, q->e[i].len);
	q->n = 0;
}
