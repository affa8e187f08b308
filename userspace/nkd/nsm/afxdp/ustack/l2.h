/* SPDX-License-Identifier: MIT */
/*
 * Pluggable L2 backends of the afxdp NSM: whole Ethernet frames in and out.
 *
 *   afxdp   one AF_XDP socket per RX queue of a device, one shared UMEM
 *           (copy mode on veth, zero-copy when asked and the driver has it),
 *           need_wakeup, batched rings. Needs CAP_NET_RAW; RX also needs an
 *           XDP program that redirects into the sockets (nk-loader's, or
 *           libxdp's default one with NK_L2_F_DEFAULT_PROG).
 *   packet  AF_PACKET SOCK_RAW bound to a device, PACKET_IGNORE_OUTGOING.
 *   tap     a TAP device from /dev/net/tun (IFF_TAP | IFF_NO_PI); works in
 *           an unprivileged user + network namespace (unshare -Urn).
 *
 * All calls on one handle come from one thread. Functions return 0 or a
 * positive count, or -errno; nk_l2__open() hands out an opaque handle that
 * nk_l2__close() frees.
 */
#ifndef NK_USTACK_L2_H
#define NK_USTACK_L2_H

#include <stddef.h>
#include <stdint.h>

struct nk_l2;

enum nk_l2_kind {
	NK_L2_AFXDP = 1,
	NK_L2_PACKET = 2,
	NK_L2_TAP = 3,
};

#define NK_L2_F_ZEROCOPY (1U << 0) /* afxdp: try zero-copy, fall back to copy */
#define NK_L2_F_SKB_MODE (1U << 1) /* afxdp: generic XDP for the default prog */
#define NK_L2_F_DEFAULT_PROG (1U << 2) /* afxdp: let libxdp load its program */
#define NK_L2_F__ALL ((1U << 3) - 1)

/*
 * Options; sz must be sizeof(struct nk_l2_opts) of the caller, so fields
 * added at the end later keep old callers working. Zero means "default".
 */
struct nk_l2_opts {
	size_t sz;
	const char *ifname; /* device (tap: name to create or attach) */
	uint32_t flags; /* NK_L2_F_* */
	uint32_t queue_first; /* afxdp: first RX queue (default 0) */
	uint32_t queue_count; /* afxdp: queues from queue_first (default 1) */
	uint32_t frame_size; /* afxdp: UMEM frame size (default 2048) */
	uint32_t num_frames; /* afxdp: UMEM frames in total (default 4096) */
	uint32_t ring_size; /* afxdp: rx/tx/fill/comp descriptors (default 1024) */
	uint32_t *failed_queue; /* afxdp, out: the queue whose XSK failed */
};

struct nk_l2_stats {
	uint64_t rx_frames, rx_bytes;
	uint64_t tx_frames, tx_bytes;
	uint64_t rx_dropped; /* backend-level: oversized, kernel ring drops */
	uint64_t tx_dropped; /* no free frame/descriptor, or send error */
	uint64_t kicks; /* wakeup syscalls */
	/*
	 * afxdp (XDP_STATISTICS): frames lost because the RX ring was full
	 * (also in rx_dropped), and empty-fill-ring events as the kernel
	 * counts them for zero-copy drivers. In copy mode an empty fill ring
	 * drops the frame as plain rx_dropped and is not counted here.
	 */
	uint64_t rx_ring_full, rx_fill_empty;
};

/*
 * Called for each received frame. The frame is valid only during the call
 * and may be modified in place (the engine completes checksums there).
 */
typedef void (*nk_l2_rx_fn)(void *arg, uint8_t *frame, uint32_t len);

/* A received frame for nk_l2__rx_burst(): the caller owns buf[0..cap). */
struct nk_l2_buf {
	uint8_t *buf;
	uint32_t cap;
	uint32_t len; /* out: frame length (truncated to cap) */
};

/* Opens a backend. Returns 0 and *out, or -errno (-EINVAL for a bad opts). */
int nk_l2__open(enum nk_l2_kind kind, const struct nk_l2_opts *opts,
		struct nk_l2 **out);

/* Stops the backend and frees everything it holds. NULL-safe. */
void nk_l2__close(struct nk_l2 *l2);

/* Backend name ("afxdp", "packet", "tap"). */
const char *nk_l2__name(const struct nk_l2 *l2);

/* Maps a name to a kind; returns 0 when unknown. */
enum nk_l2_kind nk_l2__kind(const char *name);

/*
 * Receives up to budget frames without blocking, calling fn for each.
 * Returns the number of frames or -errno.
 */
int nk_l2__rx(struct nk_l2 *l2, nk_l2_rx_fn fn, void *arg, unsigned budget);

/* Same, copying into caller buffers; returns frames received. */
int nk_l2__rx_burst(struct nk_l2 *l2, struct nk_l2_buf *bufs, unsigned n);

/*
 * Queues one frame for transmission (copied; the caller keeps frame). It
 * may only go out at the next nk_l2__flush(). Returns 0, -EMSGSIZE, or
 * -ENOBUFS when the backend is full (the frame is dropped and counted).
 */
int nk_l2__tx(struct nk_l2 *l2, const void *frame, uint32_t len);

/* Pushes queued frames to the device (the "kick"). Returns 0 or -errno. */
int nk_l2__flush(struct nk_l2 *l2);

/* An fd that polls POLLIN when frames may be waiting. */
int nk_l2__fd(const struct nk_l2 *l2);

/* The device's MAC address (for the tap backend: a locally administered
 * address the engine may use; the kernel side keeps its own). */
int nk_l2__mac(const struct nk_l2 *l2, uint8_t mac[6]);

void nk_l2__stats(const struct nk_l2 *l2, struct nk_l2_stats *st);

/*
 * afxdp only: inserts each socket into an XSKMAP for a steering program
 * loaded by someone else (nk-loader's nk_xsks): the socket of RX queue q
 * goes to index q * slots_per_queue + slot (slots_per_queue 0 counts as 1,
 * which is libxdp's key = queue id). Returns 0, -EOPNOTSUPP for other
 * backends, or -errno.
 */
int nk_l2__xskmap_update(struct nk_l2 *l2, int xskmap_fd,
			 uint32_t slots_per_queue, uint32_t slot);

/*
 * Writes a one-line description of the backend as opened (for afxdp: copy
 * or zero-copy, queues, UMEM) to buf. Returns snprintf's length.
 */
int nk_l2__describe(const struct nk_l2 *l2, char *buf, size_t len);

/* Smallest frame accepted for TX: an Ethernet header. */
#define NK_L2_MIN_FRAME 14u

/* Largest frame the backend carries (without FCS). */
uint32_t nk_l2__max_frame(const struct nk_l2 *l2);

#endif /* NK_USTACK_L2_H */
