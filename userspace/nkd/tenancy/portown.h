/* SPDX-License-Identifier: MIT */
/*
 * Ports and destinations belong to guests (docs/nkd.md "Port ownership",
 * docs/config.md host_access= and egress=).
 *
 * Every guest socket of an NSM lives in one stack (the kernel NSM: one
 * network namespace, every socket created by root), so the stack's own
 * rules (SO_REUSEPORT's same-uid check, SO_REUSEADDR) cannot keep guests
 * apart. nkd keeps its own table per NSM:
 *
 *   (TCP|UDP, port) -> owning guest + how many of its sockets use it
 *
 * A port is owned by at most one guest, whatever the address (stricter
 * than Linux, which lets different addresses share a port). A guest's own
 * sockets may share as the stack allows (SO_REUSEPORT/SO_REUSEADDR).
 * Claimed: on BIND with a port (before the NSM binds), on the port the
 * stack picks for BIND to port 0, LISTEN without BIND, and the first
 * CONNECT/sendto of an unbound UDP socket; inherited by accepted sockets;
 * released when the guest's last socket on it is freed. Ports the stack
 * picks for an outgoing TCP connection are not claimed: the stack keeps
 * 4-tuples distinct, and nobody can take a connection's traffic by binding
 * its local port.
 *
 * Destinations (CONNECT, UDP sendto/connect): an address local to the
 * NSM's namespace (loopback, unspecified, broadcast, any address of its
 * interfaces; afxdp: its addr= list) is reachable only on a port the
 * guest itself owns, or with host_access=allow; refused TCP CONNECT ->
 * ECONNREFUSED, refused datagram -> EACCES (a UDP CONNECT succeeds; its
 * sends are judged). Then egress= rules: outside -> ENETUNREACH.
 */
#ifndef NKD_PORTOWN_H
#define NKD_PORTOWN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct nk_nsm;
struct nk_sock;
struct nk_req;

/* Per socket (struct nk_sock.pc). Zeroed at creation. */
struct nk_portclaim {
	uint16_t port; /* host order; 0: no claim */
	bool pending; /* claimed for a BIND that has not completed */
	bool peer_local; /* UDP connected to a local address: judge sends */
	uint16_t peer_port; /* ... on this port */
};

struct nk_portown;

/* Per NSM: after n->netns_fd is set. Fails only for lack of memory. */
int nk_portown__create(struct nk_nsm *n);
void nk_portown__destroy(struct nk_nsm *n);

/*
 * Engine hook before an op is submitted (process_sqe): claims BIND's
 * port, applies bind= to implicit binds and host_access=/egress= to
 * destinations. 0 or the -errno to fail the op with.
 */
int nk_portown__check_op(struct nk_sock *s, uint8_t opcode, uint8_t sqe_flags,
			 const struct sockaddr_storage *sa, uid_t uid);
/* Engine hook when an op completes: returns the result to report. */
int nk_portown__op_done(struct nk_req *op, int res);
/* A socket accepted on listener l shares l's port. */
void nk_portown__inherit(struct nk_sock *s, const struct nk_sock *l);
/* The socket is freed: its claim goes. */
void nk_portown__sock_free(struct nk_sock *s);

/* Is sa an address of n's namespace (loopback, its interfaces)? n's
 * table only: false for an NSM without one. */
bool nk_portown__is_local(struct nk_nsm *n, const struct sockaddr_storage *sa);

/* NSM hooks. Claims port (host order) for s's guest: 0 or -EADDRINUSE. */
int nk_portown__claim(struct nk_sock *s, uint16_t port);
void nk_portown__release(struct nk_sock *s);
/*
 * Kernel NSM: makes an implicit bind explicit before LISTEN or a UDP
 * CONNECT/send: binds fd to the wildcard address with port 0 if it has no
 * port yet, then claims the port the kernel picked. 0 or -EADDRINUSE.
 */
int nk_portown__autobind_fd(struct nk_sock *s, int fd);

#endif /* NKD_PORTOWN_H */
