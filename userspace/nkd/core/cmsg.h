/* SPDX-License-Identifier: MIT */
/* Ancillary data of SEND and RECV (docs/abi.md §5, "Ancillary data"). */
#ifndef NKD_CMSG_H
#define NKD_CMSG_H

#include <stddef.h>

#include <netkernel/abi.h>

/*
 * Checks a SEND's ancillary block, copied out of guest memory into blk,
 * for a socket of family: every control message well formed and on the
 * allow-list. The allowed ones are packed into out (room for
 * NK_CMSG_BYTES); *out_len gets their length. Returns 0 or -EINVAL.
 */
int nk_cmsg__check_send(const struct nk_cmsg *blk, int family, void *out,
			size_t *out_len);

#endif /* NKD_CMSG_H */
