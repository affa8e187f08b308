/* SPDX-License-Identifier: MIT */
/*
 * Data a guest gave back unread (NK_OP_UNREAD, docs/abi.md §5 "Unread
 * data"): a socket's read-ahead that a process held when it forked or
 * exec'd. The engine keeps it at the head of the socket's receive side and
 * answers the next RECVs from it before asking the NSM, so it survives the
 * process that read it, in order. One queue per socket, in nkd's memory
 * (copied at UNREAD: the guest cannot change it afterwards), freed with
 * the socket.
 */
#ifndef NKD_RXBACK_H
#define NKD_RXBACK_H

#include <stdbool.h>
#include <stdint.h>

/* Most one socket holds: two read-ahead buffers (two processes' worth). */
#define NK_RXBACK_MAX_BYTES (256u * 1024u)
/* Most pieces (datagrams, or stream chunks) one socket holds. */
#define NK_RXBACK_MAX_ITEMS 256u
/* Most all sockets of one guest hold: what a hostile guest can pin. */
#define NK_RXBACK_GUEST_MAX (32u * 1024u * 1024u)

struct nk_rxback;

/*
 * Put len bytes of guest memory at buf back at the head of *q (created on
 * demand) for a socket of type (SOCK_STREAM: bytes; SOCK_DGRAM: a
 * sequence of struct nk_dgram records, checked here). Copies first, then
 * parses the copy. Returns the bytes (stream) or records (datagram) taken,
 * -EINVAL if malformed, -ENOBUFS past the caps, -ENOMEM. Nothing is taken
 * on failure.
 */
int nk_rxback__unread(struct nk_rxback **q, int type, const uint8_t *buf,
		      uint32_t len);

/*
 * Answer a RECV from *q (non-NULL; freed and set NULL when it empties):
 * buf/len is the RECV's buffer, sqe_flags (NK_SQE_F_ADDR, _CMSG, _BATCH)
 * and msg_flags (MSG_PEEK, MSG_TRUNC) as in the SQE. Returns the RECV's
 * res, and its CQE flags and aux; *bytes = data bytes handed out.
 */
int nk_rxback__recv(struct nk_rxback **q, int type, uint8_t *buf, uint32_t len,
		    uint32_t sqe_flags, uint32_t msg_flags, uint32_t *cqe_flags,
		    uint32_t *aux, uint64_t *bytes);

/* FIONREAD: res (the NSM's answer) with what *q holds counted in. */
int nk_rxback__fionread(const struct nk_rxback *q, int type, int res);

/* Bytes of data *q holds (0 for NULL). */
uint64_t nk_rxback__bytes(const struct nk_rxback *q);

void nk_rxback__free(struct nk_rxback **q);

#endif /* NKD_RXBACK_H */
