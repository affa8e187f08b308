/* SPDX-License-Identifier: MIT */
/*
 * One checksum pass per received segment, and a faster one for lwIP.
 *
 * Debian's liblwip verifies every TCP/UDP checksum (CHECKSUM_CHECK_* = 1,
 * no per-netif switch in this build), and the engine must verify first
 * (it completes the partial checksums a veth peer with offload leaves):
 * two passes over every received byte. liblwip.so calls its checksum
 * routines through its PLT, so the definitions in lwip_csum.c, linked into
 * the executable, take their place (ELF symbol interposition, as a program
 * defining malloc does for libc):
 *
 * - ip_chksum_pseudo(): for the one pbuf the engine is handing lwIP right
 *   now, whose L4 checksum it has just verified (or completed), the answer
 *   is "correct" without a second pass; anything else goes to lwIP's own.
 * - lwip_standard_chksum(): lwIP's is 16 bits per step; ours (nk_csum_add)
 *   64 bits. It sums every segment lwIP sends and, through
 *   lwip_chksum_copy, the data it copies in.
 *
 * If the interposition does not take (a static liblwip), lwIP just checks
 * again: correct either way. nk_lwcsum__active() tells which.
 */
#ifndef NK_LWIP_CSUM_H
#define NK_LWIP_CSUM_H

#include <stdint.h>

struct pbuf;

/*
 * p's L4 checksum (proto, l4_len bytes from l4 inside p) was verified:
 * lwIP may skip its own check of exactly that (p, l4, proto, length),
 * once.
 */
void nk_lwcsum__verified(const struct pbuf *p, const void *l4, uint8_t proto,
			 uint16_t l4_len);
/* Forget it (after lwIP has processed p). */
void nk_lwcsum__clear(void);
/* 1 if liblwip calls our checksum routines. */
int nk_lwcsum__active(void);
/* Verifications lwIP skipped. */
uint64_t nk_lwcsum__skipped(void);

#endif
