/* SPDX-License-Identifier: MIT */
/*
 * Datagram batches (NK_SQE_F_BATCH, docs/abi.md §5 "Datagram batches"):
 * packing struct nk_dgram records into a guest buffer. Pure logic, the
 * kernel calls go through a callback, so tests/unit/test_recv_batch.c
 * drives it with a fake socket.
 */
#ifndef NKD_RECV_BATCH_H
#define NKD_RECV_BATCH_H

#include <stdint.h>
#include <sys/socket.h>

#include <netkernel/abi.h>

/*
 * Receives the next datagram into data[0..room) and its source into *sa,
 * without waiting. Returns the datagram's length as recvmsg(MSG_TRUNC)
 * does (the callback should not take a datagram that does not fit whole:
 * the rest would be lost; if it does, the record says so), -EAGAIN
 * to end the batch with nothing taken, or another -errno that the kernel
 * reported in place of a datagram (it is consumed and becomes a record).
 */
typedef int (*nk_rbatch_recv_fn)(void *arg, uint8_t *data, uint32_t room,
				 struct sockaddr_storage *sa, socklen_t *salen);

/*
 * The first datagram is already in buf + sizeof(struct nk_dgram) (at most
 * len - sizeof(struct nk_dgram) bytes of it; first_res is its length as
 * recvmsg(MSG_TRUNC) reported it, sa/salen its source): writes its header,
 * then appends up to NK_RECV_BATCH_MAX - 1 more with recv. Nothing is
 * written outside buf[0..len). Returns the number of records, *used the
 * bytes of buf they take, *data the datagram bytes in them. first_res < 0
 * is returned as it is.
 */
int nk_rbatch__fill(uint8_t *buf, uint32_t len, int first_res,
		    const struct sockaddr_storage *sa, socklen_t salen,
		    nk_rbatch_recv_fn recv, void *arg, uint32_t *used,
		    uint32_t *data_bytes);

#endif /* NKD_RECV_BATCH_H */
