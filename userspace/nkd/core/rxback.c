// SPDX-License-Identifier: MIT
/*
 * Unread data a guest gave back (rxback.h, docs/abi.md §5 "Unread data").
 *
 * A kernel socket keeps what the program has not read yet across fork and
 * exec. The shim reads ahead (a stream's stash, a datagram batch), so some
 * of that lives in a process's memory; before fork and execve the shim
 * hands it back with NK_OP_UNREAD and it waits here, at the head of the
 * socket's receive side, for whichever process reads next. What is given
 * back was read last from the head, so it goes in front of what is
 * already here. The guest's bytes are copied before they are looked at.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netkernel/abi.h"

#include "rxback.h"

#define UDP_MAX_LEN 65535u
#define ERRNO_MAX 4095

struct item {
	struct item *next;
	uint32_t len; /* data bytes */
	uint32_t off; /* stream: bytes of it already handed out */
	uint32_t full_len; /* datagram: its length (>= len) */
	int32_t err; /* datagram: an error record (a positive errno) */
	struct nk_sockaddr addr; /* datagram: its source */
	uint8_t data[];
};

struct nk_rxback {
	struct item *head;
	uint64_t bytes; /* data bytes not handed out yet */
	uint32_t nr; /* items */
};

static void list_free(struct item *it)
{
	while (it) {
		struct item *n = it->next;

		free(it);
		it = n;
	}
}

static struct item *item_new(uint32_t len)
{
	struct item *it = calloc(1, sizeof(*it) + len);

	if (it)
		it->len = len;
	return it;
}

/*
 * The records of a datagram give-back, parsed from nkd's copy into a list
 * (*first..*last); returns the records, or -errno.
 */
static int parse_dgrams(const struct nk_rxback *q, const uint8_t *p,
			uint32_t len, struct item **first, struct item **last,
			uint64_t *bytes)
{
	uint32_t off = 0, n = 0;

	*first = *last = NULL;
	*bytes = 0;
	while (off < len) {
		struct nk_dgram h;
		struct item *it;

		if (len - off < sizeof(h))
			return -EINVAL;
		memcpy(&h, p + off, sizeof(h));
		if (h.resv || h.addr.resv || h.len > len - off - sizeof(h) ||
		    h.full_len < h.len || h.full_len > UDP_MAX_LEN)
			return -EINVAL;
		if (h.err && (h.err < 0 || h.err > ERRNO_MAX || h.len))
			return -EINVAL;
		if (h.addr.family != 0 && h.addr.family != AF_INET &&
		    h.addr.family != AF_INET6)
			return -EINVAL;
		if (q->nr + ++n > NK_RXBACK_MAX_ITEMS ||
		    q->bytes + *bytes + h.len > NK_RXBACK_MAX_BYTES)
			return -ENOBUFS;
		it = item_new(h.len);
		if (!it)
			return -ENOMEM;
		it->full_len = h.full_len;
		it->err = h.err;
		it->addr = h.addr;
		memcpy(it->data, p + off + sizeof(h), h.len);
		if (*last)
			(*last)->next = it;
		else
			*first = it;
		*last = it;
		*bytes += h.len;
		off = NK_DGRAM_NEXT(off + (uint32_t)sizeof(h) + h.len);
	}
	return (int)n;
}

int nk_rxback__unread(struct nk_rxback **qp, int type, const uint8_t *buf,
		      uint32_t len)
{
	struct nk_rxback empty = { 0 }, *q = *qp ? *qp : &empty;
	struct item *first, *last;
	uint64_t bytes = len;
	uint8_t *copy = NULL;
	int ret;

	if (!len || len > NK_RXBACK_MAX_BYTES)
		return len ? -ENOBUFS : -EINVAL;
	if (type == SOCK_STREAM) {
		if (q->nr + 1 > NK_RXBACK_MAX_ITEMS ||
		    q->bytes + len > NK_RXBACK_MAX_BYTES)
			return -ENOBUFS;
		first = last = item_new(len);
		if (!first)
			return -ENOMEM;
		first->full_len = len;
		memcpy(first->data, buf, len);
		ret = (int)len;
	} else if (type == SOCK_DGRAM) {
		/* Once: the guest may rewrite its buffer while we parse. */
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, buf, len);
		ret = parse_dgrams(q, copy, len, &first, &last, &bytes);
		free(copy);
		if (ret <= 0) {
			list_free(first);
			return ret ? ret : -EINVAL;
		}
	} else {
		return -EOPNOTSUPP;
	}
	if (!*qp) {
		*qp = calloc(1, sizeof(**qp));
		if (!*qp) {
			list_free(first);
			return -ENOMEM;
		}
	}
	q = *qp;
	/* Read last from the head, so it goes back in front. */
	last->next = q->head;
	q->head = first;
	q->bytes += bytes;
	q->nr += type == SOCK_STREAM ? 1u : (uint32_t)ret;
	return ret;
}

static void pop(struct nk_rxback **qp)
{
	struct nk_rxback *q = *qp;
	struct item *it = q->head;

	q->head = it->next;
	q->bytes -= it->len - it->off;
	q->nr--;
	free(it);
	if (!q->head) {
		free(q);
		*qp = NULL;
	}
}

static int recv_stream(struct nk_rxback **qp, uint8_t *buf, uint32_t room,
		       uint32_t msg_flags, uint64_t *bytes)
{
	bool peek = msg_flags & MSG_PEEK;
	uint32_t n = 0;

	for (struct item *it = (*qp)->head; it && n < room; it = it->next) {
		uint32_t c = it->len - it->off;

		if (c > room - n)
			c = room - n;
		/* MSG_TRUNC on a stream discards, as tcp_recvmsg does. */
		if (!(msg_flags & MSG_TRUNC))
			memcpy(buf + n, it->data + it->off, c);
		n += c;
	}
	*bytes = n;
	for (uint32_t left = n; !peek && left;) {
		struct item *it = (*qp)->head;
		uint32_t c = it->len - it->off;

		if (c > left) {
			it->off += left;
			(*qp)->bytes -= left;
			break;
		}
		left -= c;
		pop(qp);
	}
	return (int)n;
}

static int recv_batch(struct nk_rxback **qp, uint8_t *buf, uint32_t len,
		      uint32_t *aux, uint64_t *bytes)
{
	uint32_t off = 0, end = 0;
	int recs = 0;

	while (*qp && recs < (int)NK_RECV_BATCH_MAX && off < len) {
		struct item *it = (*qp)->head;
		struct nk_dgram h = { .len = it->len,
				      .full_len = it->full_len,
				      .err = it->err,
				      .addr = it->addr };
		bool err = it->err;

		if (len - off < sizeof(h) || it->len > len - off - sizeof(h)) {
			if (recs)
				break;
			/* The first one is cut to fit, as a RECV would. */
			h.len = len - (uint32_t)sizeof(h);
		}
		memcpy(buf + off, &h, sizeof(h));
		memcpy(buf + off + sizeof(h), it->data, h.len);
		*bytes += h.len;
		end = off + (uint32_t)sizeof(h) + h.len;
		off = NK_DGRAM_NEXT(end);
		recs++;
		pop(qp);
		/* An error record ends the batch (abi.md §5). */
		if (err)
			break;
	}
	*aux = end;
	return recs;
}

int nk_rxback__recv(struct nk_rxback **qp, int type, uint8_t *buf, uint32_t len,
		    uint32_t sqe_flags, uint32_t msg_flags, uint32_t *cqe_flags,
		    uint32_t *aux, uint64_t *bytes)
{
	uint32_t hdr = 0, c;
	struct item *it;
	int res;

	*cqe_flags = 0;
	*aux = 0;
	*bytes = 0;
	if (sqe_flags & NK_SQE_F_BATCH)
		return recv_batch(qp, buf, len, aux, bytes);
	it = (*qp)->head;
	if (sqe_flags & NK_SQE_F_ADDR) {
		struct nk_sockaddr none = { 0 };

		/* A stream's bytes have no source; a datagram its own. */
		memcpy(buf, type == SOCK_DGRAM ? &it->addr : &none,
		       sizeof(none));
		if (type == SOCK_DGRAM)
			*cqe_flags |= NK_CQE_F_ADDR;
		hdr += sizeof(none);
	}
	if (sqe_flags & NK_SQE_F_CMSG) {
		/* Their control messages did not come back with them. */
		memset(buf + hdr, 0, offsetof(struct nk_cmsg, data));
		hdr += NK_CMSG_BYTES;
	}
	if (type == SOCK_STREAM) {
		res = recv_stream(qp, buf + hdr, len - hdr, msg_flags, bytes);
		*aux = (uint32_t)res;
		return res;
	}
	if (it->err) {
		res = -it->err;
		*cqe_flags = 0;
		if (!(msg_flags & MSG_PEEK))
			pop(qp);
		return res;
	}
	c = it->len < len - hdr ? it->len : len - hdr;
	memcpy(buf + hdr, it->data, c);
	if (it->full_len > c)
		*cqe_flags |= NK_CQE_F_TRUNC;
	res = (msg_flags & MSG_TRUNC) ? (int)it->full_len : (int)c;
	*aux = c;
	*bytes = c;
	if (!(msg_flags & MSG_PEEK))
		pop(qp);
	return res;
}

int nk_rxback__fionread(const struct nk_rxback *q, int type, int res)
{
	if (!q || res < 0)
		return res;
	if (type == SOCK_DGRAM)
		return q->head->err ? 0 : (int)q->head->full_len;
	if (q->bytes > (uint64_t)(INT_MAX - res))
		return INT_MAX;
	return res + (int)q->bytes;
}

uint64_t nk_rxback__bytes(const struct nk_rxback *q)
{
	return q ? q->bytes : 0;
}

void nk_rxback__free(struct nk_rxback **q)
{
	if (!*q)
		return;
	list_free((*q)->head);
	free(*q);
	*q = NULL;
}
