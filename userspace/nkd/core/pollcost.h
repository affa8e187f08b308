/* SPDX-License-Identifier: MIT */
/*
 * What one SQE costs against its guest's per-pass budget (NK_POLL_BUDGET x
 * weight units, docs/nkd.md "Isolation"). A pass serves every guest once,
 * so another guest waits at most one pass of this guest's work: counting
 * entries alone let a guest put 32 x 128 KiB of SENDs (4 MiB of copying
 * and TCP in nkd's thread) into every pass, and a bystander's request,
 * which needs a few passes, waited milliseconds per pass. So an entry
 * costs what it makes nkd do: one unit, one more per NK_POLL_COST_BYTES
 * a SEND or RECV may copy, and a few for the entries that make or destroy
 * kernel sockets and placeholders (several system calls each). A NOP or a
 * refused entry costs one unit like any other: spinning buys no more.
 */
#ifndef NK_POLLCOST_H
#define NK_POLLCOST_H

#include "netkernel/abi.h"

/* Bytes of SEND/RECV per extra unit. */
#define NK_POLL_COST_BYTES (16u * 1024u)
/* SOCKET and ACCEPT: a kernel socket, a socketpair, a duplicate. */
#define NK_POLL_COST_SOCKET 4u
/* CLOSE and CONNECT: closing three descriptors; a connect's handshake. */
#define NK_POLL_COST_CLOSE 2u

static inline unsigned nk_pollcost__sqe(const struct nk_sqe *sqe)
{
	switch (sqe->opcode) {
	case NK_OP_SEND:
	case NK_OP_RECV:
		/* buf_len is the guest's: bounded, a bogus one is refused. */
		return 1u + (sqe->io.buf_len > (1u << 24)
				     ? (1u << 24) / NK_POLL_COST_BYTES
				     : sqe->io.buf_len / NK_POLL_COST_BYTES);
	case NK_OP_SOCKET:
	case NK_OP_ACCEPT:
		return NK_POLL_COST_SOCKET;
	case NK_OP_CLOSE:
	case NK_OP_CONNECT:
		return NK_POLL_COST_CLOSE;
	default:
		return 1u;
	}
}

#endif
