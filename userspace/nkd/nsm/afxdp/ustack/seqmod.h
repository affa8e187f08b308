/* SPDX-License-Identifier: MIT */
/*
 * TCP sequence number modulation at the afxdp engine's packet boundary.
 *
 * Debian's lwIP picks initial sequence numbers from a counter (6510, 6511,
 * ...), so anyone off-path could guess them and inject data or resets, and
 * it has no hook to change that. Like OpenBSD pf's "modulate state", the
 * engine therefore translates every TCP connection's sequence space between
 * lwIP and the wire: when lwIP sends a SYN or SYN-ACK, the connection gets
 * an RFC 6528 initial sequence number
 *     ISN = F(local addr, local port, remote addr, remote port, secret) + M
 * (F: SipHash-2-4 keyed with a secret from getrandom, M: a ~4 us clock), and
 * the offset ISN - (lwIP's ISN) is added to the sequence number of each of
 * the connection's outgoing segments and subtracted from the acknowledgment
 * number and the SACK block edges of each incoming one. TCP checksums are
 * updated incrementally (RFC 1624).
 *
 * The table is keyed by the 4-tuple, bounded (max entries) and hashed with
 * a second secret key, so chains cannot be aimed at. Packets never remove
 * an entry (a spoofed RST would otherwise undo a live connection's
 * translation): the owner sweeps entries whose connection lwIP no longer
 * has (nk_seqmod__sweep_begin / __mark / __sweep_end).
 *
 * Pure: no lwIP, no I/O except getrandom at create. Addresses and ports
 * are in network byte order. Unit tested (tests/unit/test_ustack_seqmod.c).
 */
#ifndef NK_USTACK_SEQMOD_H
#define NK_USTACK_SEQMOD_H

#include <stddef.h>
#include <stdint.h>

struct nk_seqmod;

struct nk_seqmod_stats {
	uint32_t entries; /* connections translated now */
	uint64_t created; /* entries made (SYN or SYN-ACK sent) */
	uint64_t out_xlated, in_xlated; /* segments rewritten */
	uint64_t full; /* SYN/SYN-ACK not sent: table full */
	uint64_t swept; /* entries removed by a sweep */
	/*
	 * Segments sent again (lwIP's retransmissions: timeouts, fast
	 * retransmit, SYN, SYN-ACK and FIN again, repeated zero-window
	 * probes): a segment with data, SYN or FIN that ends at or before
	 * the highest one sent on its connection.
	 */
	uint64_t retrans;
};

/* Result of nk_seqmod__out(). */
enum nk_seqmod_out {
	NK_SEQMOD_PASS = 0, /* not a translated connection: unchanged */
	NK_SEQMOD_XLATED, /* rewritten; nk_seqmod__undo() restores it */
	NK_SEQMOD_FULL, /* a SYN with no room in the table: do not send */
};

/* What nk_seqmod__out() changed, to put lwIP's own segment back. */
struct nk_seqmod_undo {
	uint32_t seq; /* network order, as lwIP wrote it */
	uint16_t csum; /* network order */
	uint16_t l4_off; /* 0: nothing to undo */
};

/*
 * max_ents: table bound (>= 1). key: 32 secret bytes (16 for F, 16 for the
 * table hash), or NULL to take them from getrandom. 0 or -errno.
 */
int nk_seqmod__create(uint32_t max_ents, const uint8_t *key,
		      struct nk_seqmod **out);
void nk_seqmod__destroy(struct nk_seqmod *sm);

/*
 * An outgoing Ethernet frame (frame[0..len)) from lwIP. A SYN (with or
 * without ACK) makes or reuses the connection's entry; the segment's
 * sequence number is then translated in place and the checksum fixed.
 * now_ns: a monotonic clock in ns, for M; 0: CLOCK_MONOTONIC, read only
 * when a new ISN is chosen.
 */
int nk_seqmod__out(struct nk_seqmod *sm, uint8_t *frame, size_t len,
		   uint64_t now_ns, struct nk_seqmod_undo *undo);
void nk_seqmod__undo(uint8_t *frame, const struct nk_seqmod_undo *undo);

/*
 * An incoming Ethernet frame whose IPv4 header and TCP header length were
 * already checked (nk_pkt_parse). Translates the ACK number and SACK blocks
 * of a known connection in place. Returns 1 if rewritten, else 0.
 */
int nk_seqmod__in(struct nk_seqmod *sm, uint8_t *frame, size_t len);

/*
 * Sweep: begin, mark every connection the stack still has, end. End frees
 * the unmarked entries and returns how many.
 */
void nk_seqmod__sweep_begin(struct nk_seqmod *sm);
void nk_seqmod__mark(struct nk_seqmod *sm, uint32_t laddr, uint16_t lport,
		     uint32_t raddr, uint16_t rport);
unsigned nk_seqmod__sweep_end(struct nk_seqmod *sm);
/* 1 if the connection (as for mark) has an entry: lwIP has or had it since
 * the last sweep (every active and TIME_WAIT pcb has one). */
int nk_seqmod__has(struct nk_seqmod *sm, uint32_t laddr, uint16_t lport,
		   uint32_t raddr, uint16_t rport);

void nk_seqmod__stats(const struct nk_seqmod *sm, struct nk_seqmod_stats *out);

/* SipHash-2-4 (Aumasson, Bernstein), exposed for its test vector. */
uint64_t nk_siphash24(const uint8_t key[16], const void *data, size_t len);

/*
 * RFC 1624 incremental update of a 16-bit Internet checksum field (network
 * order, as stored) when a 32-bit word changes from old to new (both in
 * network order, as stored).
 */
uint16_t nk_csum_update32(uint16_t csum, uint32_t old_be, uint32_t new_be);

#endif /* NK_USTACK_SEQMOD_H */
