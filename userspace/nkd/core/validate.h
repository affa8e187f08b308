/* SPDX-License-Identifier: MIT */
/*
 * SQE validation: a pure function of the copied entry and what nkd knows
 * about the connection. Guest memory is hostile, so nothing downstream of
 * nk_validate__sqe() re-reads the SQE from shared memory or re-checks what
 * it checked.
 */
#ifndef NKD_VALIDATE_H
#define NKD_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netkernel/abi.h"

#include "bufown.h"

/* Largest socket option value nkd copies in or out. */
#define NK_OPTVAL_MAX 256u

/* What the validator may know about a socket handle. */
struct nk_sock_view {
	int family; /* AF_INET or AF_INET6 */
	int type; /* SOCK_STREAM or SOCK_DGRAM */
};

struct nk_validate_ctx {
	uint32_t buf_size; /* bytes per data buffer */
	uint32_t nr_bufs;
	const struct nk_bufown *owned; /* buffers nkd holds now */
	/* 0 and *v filled if handle is a live socket of this guest. */
	int (*lookup)(const void *arg, uint32_t handle, struct nk_sock_view *v);
	const void *arg;
	bool ph_sqe; /* NK_FEAT_PH_SQE offered: SOCKET, ACCEPT take NK_SQE_F_PH */
};

/* The decoded request, valid only when nk_validate__sqe() returned 0. */
struct nk_valid {
	int buf_idx; /* data buffer the SQE names, -1 for none */
	struct nk_sock_view sock; /* for ops on a handle */
	struct sockaddr_storage sa; /* BIND, CONNECT, SEND with ADDR */
	socklen_t salen; /* 0: no address */
	bool abuse; /* the refusal counts as abuse (NK_CQE_F_ABUSE) */
};

/*
 * Returns 0 if the SQE may be executed, else a negative errno for its CQE;
 * out->abuse tells malformed entries (unknown opcode or flag, non-zero
 * reserved bytes, foreign handle, bad buffer) from ordinary failures (an
 * unsupported address family, a bad shutdown mode...).
 */
int nk_validate__sqe(const struct nk_sqe *sqe, const struct nk_validate_ctx *c,
		     struct nk_valid *out);

/* nk_sockaddr -> sockaddr; -EINVAL if malformed (counts as abuse). */
int nk_sockaddr__to_sa(const struct nk_sockaddr *a, struct sockaddr_storage *ss,
		       socklen_t *len);
/* sockaddr -> nk_sockaddr (zeroed first); unknown families give family 0. */
void nk_sockaddr__from_sa(const struct sockaddr *sa, socklen_t len,
			  struct nk_sockaddr *a);

#endif /* NKD_VALIDATE_H */
