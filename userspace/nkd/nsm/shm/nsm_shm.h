/* SPDX-License-Identifier: MIT */
/*
 * The "shm" NSM (docs/shm-nsm.md): a TCP connection whose two ends are
 * guests of this nkd, allowed by their shm= / shm_peers= policy, joins
 * the two sockets inside nkd; bytes go from one guest's region to the
 * other's, no TCP/IP. The engine calls the three hooks below; everything
 * else is the ops table nk_nsm_shm_ops.
 */
#ifndef NKD_NSM_SHM_H
#define NKD_NSM_SHM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct nk_engine;
struct nk_sock;

/*
 * Before an op's port and destination checks (process_sqe): true when s
 * is (now) an shm socket, whose ops skip those checks. A CONNECT of a
 * stream socket of an shm=on guest to the address of an allowed guest's
 * shm listener moves the socket to the shm NSM here.
 */
bool nk_shm__route(struct nk_engine *e, struct nk_sock *s, uint8_t opcode,
		   const struct sockaddr_storage *sa);
/* A LISTEN completed on s with backlog: an shm=on guest's listener also
 * takes shm connections from now on. */
void nk_shm__listened(struct nk_engine *e, struct nk_sock *s, uint32_t backlog);

/* What `nkctl nsms` shows of the shm NSM (it has no nsm line). */
struct nk_shm_stats {
	uint32_t guests; /* with shm=on */
	uint32_t sockets, listeners; /* now */
	uint64_t joined; /* connections joined since start */
	uint64_t queues, queue_bytes; /* receive queues now, their memory */
	uint64_t queued; /* bytes waiting in them */
	uint64_t queue_refused; /* non-blocking sends refused (shm_queue=) */
};
void nk_shm__stats(const struct nk_engine *e, struct nk_shm_stats *st);

#endif /* NKD_NSM_SHM_H */
