/* SPDX-License-Identifier: MIT */
/*
 * The VM channel (docs/vm.md "Transport", docs/abi.md §9): a byte stream
 * between nkd and nk-vmagent inside a VM (a virtio-serial port: a unix
 * stream socket on the host, /dev/vportNpM in the VM). It carries, as
 * length-prefixed frames, what the control socket carries for a process
 * guest, for every process of the VM, plus what cannot cross a VM boundary
 * as a descriptor or a futex: placeholder readiness, doorbells, wake-ups.
 *
 * A frame: struct nk_vmf_hdr, then len - sizeof(hdr) bytes of body. conn
 * is the agent's number for one shim connection (one process, one region
 * window); 0 is the channel itself. Both sides treat the other's frames as
 * hostile: a bad length closes the channel, anything else bad is dropped.
 */
#ifndef NETKERNEL_VMCHAN_H
#define NETKERNEL_VMCHAN_H

#include <stdint.h>

#include "netkernel/ctl.h"

#define NK_VMF_MAGIC 0x4e4b564du /* "NKVM" */
#define NK_VMF_VERSION 1u
/* Largest frame: a control message and its header. */
#define NK_VMF_MAX (NK_CTL_MAX_MSG + 64u)
/* Shim connections one agent may have open at once. */
#define NK_VMF_MAX_CONNS 1024u

enum nk_vmf_type {
	/* both ways, conn 0, body nk_vmf_hello: first frame of each side */
	NK_VMF_HELLO = 1,
	/* agent -> nkd: a process connected to the agent; body nk_vmf_open */
	NK_VMF_OPEN = 2,
	/* both ways: the connection is gone (either side closes it) */
	NK_VMF_CLOSE = 3,
	/* both ways: one control message (docs/abi.md §8), verbatim */
	NK_VMF_CTL = 4,
	/* nkd -> agent: a placeholder for the pool; body nk_vmf_ph */
	NK_VMF_PH_NEW = 5,
	/* nkd -> agent, conn 0: mirror this on placeholder id; nk_vmf_ph */
	NK_VMF_PH_OP = 6,
	/* agent -> nkd: the process rang its doorbell (no body) */
	NK_VMF_BELL = 7,
	/* nkd -> agent: CQ tail moved while the process sleeps (no body) */
	NK_VMF_WAKE = 8,
};

struct nk_vmf_hdr {
	uint32_t len; /* whole frame, header included */
	uint16_t type; /* enum nk_vmf_type */
	uint16_t resv; /* 0 */
	uint32_t conn;
	uint32_t resv2; /* 0 */
};

struct nk_vmf_hello {
	uint32_t magic; /* NK_VMF_MAGIC */
	uint32_t version; /* NK_VMF_VERSION */
	uint64_t region_size; /* nkd: bytes of the shared file; agent: 0 */
};

struct nk_vmf_open {
	int32_t pid; /* in the VM's pid namespace: for logs only */
	uint32_t resv;
};

/* Placeholder operations, what placeholder.c did to the host's pair. */
enum nk_vmph_op {
	NK_VMPH_READ = 1, /* arg 1: queue one byte (an arrival); 0: drain */
	NK_VMPH_WRITE = 2, /* arg 1: writable (drain); 0: fill */
	NK_VMPH_RDHUP = 3, /* shut the agent end for writing */
	NK_VMPH_HANGUP = 4, /* close the agent end; arg 1: a reset */
	NK_VMPH_CLOSE = 5, /* the socket is gone: forget the pair */
};

struct nk_vmf_ph {
	uint64_t id; /* nkd's pool id (abi.md §6), as in PH_POOL/PH_BIND */
	uint32_t op; /* PH_OP: enum nk_vmph_op */
	uint32_t arg;
};

_Static_assert(sizeof(struct nk_vmf_hdr) == 16, "vmf hdr");
_Static_assert(sizeof(struct nk_vmf_hello) == 16, "vmf hello");
_Static_assert(sizeof(struct nk_vmf_ph) == 16, "vmf ph");

#endif /* NETKERNEL_VMCHAN_H */
