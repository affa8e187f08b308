/* SPDX-License-Identifier: MIT */
/*
 * netkernel guest region ABI ("NK device"), uapi-style.
 *
 * One shared-memory region per guest connection (a memfd for a process
 * guest, an ivshmem BAR for a VM). Both sides map the same bytes; nothing in
 * it is trusted by the host. The protocol is written down in docs/abi.md.
 *
 * Rules every structure here follows:
 *  - fixed-width types only, explicit padding, little-endian host order;
 *  - fields named resv* must be written as zero and are refused otherwise;
 *  - every size and offset is pinned by a _Static_assert at the bottom;
 *  - offsets inside the region are handed over in the header, never compiled
 *    in: a guest must read them from struct nk_region_hdr.
 */
#ifndef NETKERNEL_ABI_H
#define NETKERNEL_ABI_H

#include <stddef.h>
#include <stdint.h>

#define NK_REGION_MAGIC 0x4e4b5247u /* "NKRG" */
/* 2: nkd makes the placeholders; 3: nkd owns the send window (send_charge,
 * SEND completions carry the room left, docs/abi.md section 5) */
#define NK_ABI_VERSION 3u

/* Feature bits, offered by the host in nk_region_hdr.features. */
#define NK_FEAT_FUTEX_WAKE (1U << 0) /* host FUTEX_WAKEs cq_tail waiters */
#define NK_FEAT_DOORBELL_EVENTFD (1U << 1) /* guest rings host via eventfd */
#define NK_FEAT_PLACEHOLDER (1U << 2) /* readiness via placeholder socketpair */
#define NK_FEAT_SENDTO_ADDR (1U << 3) /* SEND may carry a destination address */
#define NK_FEAT_RECV_PREFETCH (1U << 4) /* RECV takes NK_SQE_F_PREFETCH */
/* SEND CQE aux = room left in the socket's send window (docs/abi.md §5) */
#define NK_FEAT_SEND_CREDIT (1U << 5)
#define NK_FEAT_CMSG (1U << 6) /* SEND/RECV take NK_SQE_F_CMSG */
#define NK_FEAT_RECV_BATCH (1U << 7) /* RECV takes NK_SQE_F_BATCH */
/* ctl NK_CTL_DNS_SERVERS is answered; SOCKET takes the ICMP echo socket */
#define NK_FEAT_DNS_PING (1U << 8)
/* NK_OP_UNREAD: read-ahead data goes back to nkd (docs/abi.md §5) */
#define NK_FEAT_UNREAD (1U << 9)
/*
 * A stream RECV with NK_SQE_F_PREFETCH and without NK_SQE_F_NONBLOCK stays
 * armed while the socket is empty: nkd pushes the next data into its
 * buffer as it arrives (docs/abi.md §5 "Standing receive").
 */
#define NK_FEAT_RECV_STANDING (1U << 10)
/*
 * SOCKET and ACCEPT take NK_SQE_F_PH: the SQE names the pool placeholder
 * of the new socket, no PH_BIND message (docs/abi.md §6). Not offered to
 * VM guests, whose placeholders nk-vmagent makes.
 */
#define NK_FEAT_PH_SQE (1U << 11)
#define NK_FEAT_ALL                                                            \
	(NK_FEAT_FUTEX_WAKE | NK_FEAT_DOORBELL_EVENTFD | NK_FEAT_PLACEHOLDER | \
	 NK_FEAT_SENDTO_ADDR | NK_FEAT_RECV_PREFETCH | NK_FEAT_SEND_CREDIT |   \
	 NK_FEAT_CMSG | NK_FEAT_RECV_BATCH | NK_FEAT_DNS_PING |                \
	 NK_FEAT_UNREAD | NK_FEAT_RECV_STANDING | NK_FEAT_PH_SQE)

/* Cache line the layout is built around; the SQE is exactly one. */
#define NK_CACHELINE 64u

/* ------------------------------------------------------------------------ */
/* Ring indices. */

/*
 * One direction of a ring. head and tail are free-running 32-bit counters;
 * the slot is index & (entries - 1). The producer owns tail, the consumer
 * owns head; each side load-acquires the peer's index and store-releases its
 * own, so the entry bytes are visible before the index that publishes them.
 * head and tail sit on separate cache lines so the two sides never write to
 * the same line.
 */
struct nk_ring_idx {
	uint32_t head; /* consumer-owned */
	uint8_t pad0[NK_CACHELINE - 4];
	uint32_t tail; /* producer-owned */
	/*
	 * Set by the consumer before it sleeps, cleared when it wakes: the
	 * producer must notify (doorbell or futex) after publishing when it
	 * reads NK_RING_NEED_WAKEUP here.
	 */
	uint32_t flags;
	uint8_t pad1[NK_CACHELINE - 8];
};

#define NK_RING_NEED_WAKEUP (1U << 0)

/* ------------------------------------------------------------------------ */
/* Addresses. */

/*
 * A socket address in a fixed 32-byte form. IPv4 uses addr[0..3]. port is in
 * network byte order, as in sockaddr_in; everything else is host order.
 */
struct nk_sockaddr {
	uint16_t family; /* AF_INET, AF_INET6 or 0 (none) */
	uint16_t port; /* network byte order */
	uint32_t flowinfo; /* IPv6 only, else 0 */
	uint8_t addr[16];
	uint32_t scope_id; /* IPv6 only, else 0 */
	uint32_t resv;
};

/* ------------------------------------------------------------------------ */
/* Submission queue entries (guest -> host), exactly one cache line. */

enum nk_op {
	NK_OP_NOP = 0, /* a barrier (docs/abi.md §5) */
	NK_OP_SOCKET = 1, /* sock: domain, type, protocol; res = handle */
	NK_OP_BIND = 2, /* addr */
	NK_OP_LISTEN = 3, /* arg = backlog */
	NK_OP_CONNECT = 4, /* addr; honours NK_SQE_F_NONBLOCK */
	NK_OP_ACCEPT = 5, /* buf gets peer nk_sockaddr; res = new handle */
	NK_OP_SEND = 6, /* buf, len, msg_flags; addr if NK_SQE_F_ADDR */
	NK_OP_RECV = 7, /* buf, len, msg_flags; see NK_SQE_F_ADDR */
	NK_OP_SHUTDOWN = 8, /* arg = SHUT_RD/WR/RDWR */
	NK_OP_CLOSE = 9, /* drop this connection's reference */
	NK_OP_SETSOCKOPT = 10, /* level, optname; value in buf[0..len) */
	NK_OP_GETSOCKOPT = 11, /* level, optname; value out to buf, res = len */
	NK_OP_GETSOCKNAME = 12, /* nk_sockaddr out to buf */
	NK_OP_GETPEERNAME = 13, /* nk_sockaddr out to buf */
	NK_OP_IOCTL = 14, /* arg = NK_IOCTL_*; res = value */
	NK_OP_CANCEL = 15, /* arg64 = user_data of the op to cancel */
	/*
	 * buf, len: read-ahead data the guest hands back unread (a stream's
	 * bytes, or a datagram socket's nk_dgram records); nkd answers the
	 * socket's next RECVs from it first. res = bytes or records taken.
	 * Only when the header offers NK_FEAT_UNREAD (docs/abi.md §5).
	 */
	NK_OP_UNREAD = 16,
	NK_OP__MAX
};

/* Flags in nk_sqe.flags. Unknown flags are refused with -EINVAL. */
#define NK_SQE_F_NONBLOCK (1U << 0) /* complete with -EAGAIN, never wait */
#define NK_SQE_F_ADDR \
	(1U << 1) /* SEND: addr is the destination;
				  * RECV: write the source nk_sockaddr to
				  * buf[0..32) and the data after it */
#define NK_SQE_F_TIMEOUT (1U << 2) /* timeout_ms applies (SO_RCVTIMEO etc.) */
/*
 * RECV only: read-ahead. The guest keeps the data for a later recv(), so
 * the host keeps the placeholder readable after it returns data and drains
 * it only when it returns -EAGAIN (docs/abi.md §6).
 */
#define NK_SQE_F_PREFETCH (1U << 3)
/*
 * SEND and RECV on a datagram socket: ancillary data. The buffer holds a
 * struct nk_cmsg block of NK_CMSG_BYTES (after the nk_sockaddr when
 * NK_SQE_F_ADDR is set on a RECV), then the data. RECV: nkd fills it with
 * the kernel's control messages; SEND: the guest's, which nkd checks
 * against an allow-list (docs/abi.md §5, "Ancillary data").
 */
#define NK_SQE_F_CMSG (1U << 4)
/*
 * RECV on a datagram socket only: many datagrams in one buffer, each a
 * struct nk_dgram record (docs/abi.md §5, "Datagram batches"). Not with
 * NK_SQE_F_ADDR, NK_SQE_F_CMSG or any msg_flags. res = records (>= 1),
 * aux = bytes of the buffer used. An NSM that does not batch answers
 * -EOPNOTSUPP; the guest then uses single RECVs on that socket.
 */
#define NK_SQE_F_BATCH (1U << 5)
/*
 * A standing RECV (NK_SQE_F_PREFETCH without NK_SQE_F_NONBLOCK, with
 * NK_FEAT_RECV_STANDING): the guest emptied its placeholder's app end
 * just before, so nkd's next readable edge must be a byte (abi.md §6).
 */
#define NK_SQE_F_EMPTIED (1U << 6)
/*
 * SOCKET and ACCEPT only (NK_FEAT_PH_SQE): ph.id names a placeholder the
 * guest took from its pool channel. nkd takes it out of the pool whatever
 * the outcome: on success it is the new socket's placeholder, bound before
 * the CQE; on any failure nkd closes its ends and the guest its fd
 * (docs/abi.md §6, "Pool").
 */
#define NK_SQE_F_PH (1U << 7)
/*
 * Every flag this ABI defines; anything else is refused. NK_SQE_F_PREFETCH
 * and NK_SQE_F_BATCH are also refused on any op but RECV, NK_SQE_F_CMSG
 * on any but SEND and RECV, NK_SQE_F_PH on any but SOCKET and ACCEPT; a
 * guest sends them only when the header offers NK_FEAT_RECV_PREFETCH,
 * NK_FEAT_RECV_BATCH, NK_FEAT_CMSG and NK_FEAT_PH_SQE.
 */
#define NK_SQE_F_ALL                                            \
	(NK_SQE_F_NONBLOCK | NK_SQE_F_ADDR | NK_SQE_F_TIMEOUT | \
	 NK_SQE_F_PREFETCH | NK_SQE_F_CMSG | NK_SQE_F_BATCH |   \
	 NK_SQE_F_EMPTIED | NK_SQE_F_PH)

/* NK_OP_IOCTL requests. */
#define NK_IOCTL_FIONREAD 1u /* bytes readable now */
#define NK_IOCTL_SIOCOUTQ 2u /* bytes not yet acknowledged by the peer */

/*
 * Buffers: buf_off is an offset from the start of the data area, buf_len a
 * length; [buf_off, buf_off + buf_len) must lie inside one data buffer, and
 * that buffer belongs to the host from submission until the CQE for this SQE
 * is posted. The guest must not touch it in between.
 */
struct nk_sqe {
	uint8_t opcode; /* enum nk_op */
	uint8_t flags; /* NK_SQE_F_* */
	uint16_t resv0;
	uint32_t handle; /* socket handle; 0 for SOCKET/NOP/CANCEL */
	uint64_t user_data; /* echoed in the CQE */
	union {
		struct { /* SOCKET */
			int32_t domain;
			int32_t type; /* SOCK_STREAM or SOCK_DGRAM, no flags */
			int32_t protocol;
			uint32_t resv1;
		} sock;
		struct { /* SEND, RECV, ACCEPT, *SOCKOPT, GET*NAME */
			uint32_t buf_off;
			uint32_t buf_len;
			uint32_t msg_flags; /* MSG_PEEK, MSG_WAITALL, ... */
			uint32_t timeout_ms;
		} io;
		struct { /* LISTEN, SHUTDOWN, IOCTL, CANCEL */
			uint64_t arg64;
			uint32_t arg;
			uint32_t resv1;
		} ctl;
	};
	union {
		/* BIND, CONNECT, SEND with NK_SQE_F_ADDR; zero otherwise */
		struct nk_sockaddr addr;
		struct { /* SETSOCKOPT / GETSOCKOPT, with io for the value */
			int32_t level;
			int32_t optname;
			uint32_t resv2[6];
		} opt;
		struct { /* SOCKET, ACCEPT with NK_SQE_F_PH */
			uint64_t id; /* the pool placeholder (nk_ctl_ph_pool) */
			uint32_t resv3[6];
		} ph;
	};
};

/*
 * The ancillary-data block of a SEND or RECV with NK_SQE_F_CMSG: NK_CMSG_BYTES
 * in the buffer, this header followed by len bytes of control messages in
 * the host's struct cmsghdr layout (as recvmsg() writes them, CMSG_ALIGN'd),
 * the rest unused.
 */
#define NK_CMSG_BYTES 256u
#define NK_CMSG_F_CTRUNC (1U << 0) /* RECV: the kernel cut them (MSG_CTRUNC) */

struct nk_cmsg {
	uint32_t len; /* bytes of control messages after this header */
	uint32_t flags; /* NK_CMSG_F_*; 0 on a SEND */
	uint8_t data[NK_CMSG_BYTES - 8];
};

/*
 * One datagram of a RECV with NK_SQE_F_BATCH: this header, then len bytes
 * of data; the next record starts at the next multiple of NK_DGRAM_ALIGN.
 * A record with err != 0 carries no data: the kernel reported -err at that
 * point of the queue (an ICMP error on a connected socket).
 */
#define NK_DGRAM_ALIGN 8u
/* Where the record after one ending at byte end (of the buffer) starts. */
#define NK_DGRAM_NEXT(end) \
	(((end) + NK_DGRAM_ALIGN - 1) & ~(NK_DGRAM_ALIGN - 1))
#define NK_RECV_BATCH_MAX 64u /* most records one RECV returns */

struct nk_dgram {
	uint32_t len; /* data bytes that follow */
	uint32_t full_len; /* the datagram's length; > len: truncated */
	int32_t err; /* 0, or a positive errno in place of a datagram */
	uint32_t resv; /* 0 */
	struct nk_sockaddr addr; /* source */
};

/* ------------------------------------------------------------------------ */
/* Completion queue entries (host -> guest), 32 bytes. */

/* Flags in nk_cqe.flags. */
#define NK_CQE_F_TRUNC (1U << 0) /* RECV: datagram was longer than buf */
#define NK_CQE_F_EOF (1U << 1) /* RECV: orderly shutdown by the peer */
#define NK_CQE_F_ADDR (1U << 2) /* RECV: buf starts with a nk_sockaddr */
#define NK_CQE_F_ABUSE (1U << 3) /* entry refused as malformed */
/*
 * ACCEPT: the peer is not on the NSM's own host (not loopback, not the
 * connection's own local address), so nothing sent on this connection can
 * make a socket of this guest readable: its SEND, SHUTDOWN and CLOSE need
 * no NOP barrier (abi.md §5, NOP). Absent: assume it may be local.
 */
#define NK_CQE_F_REMOTE (1U << 4)
/*
 * A standing RECV found the socket empty and stays armed (res -EAGAIN, the
 * placeholder drained): its final CQE comes when data does (abi.md §5).
 */
#define NK_CQE_F_MORE (1U << 5)

struct nk_cqe {
	uint64_t user_data; /* from the SQE */
	int32_t res; /* >= 0 result, or -errno */
	uint32_t flags; /* NK_CQE_F_* */
	uint32_t handle; /* socket the result is about (new one for ACCEPT) */
	/*
	 * RECV: bytes of data; ACCEPT: 0; SEND (NK_FEAT_SEND_CREDIT): bytes
	 * left in the socket's send window once this SEND stopped counting.
	 */
	uint32_t aux;
	uint64_t resv;
};

/* ------------------------------------------------------------------------ */
/* Region header: page 0 of the region. */

/*
 * A queue set: one submission ring and one completion ring. The offsets of
 * the entry arrays are from the start of the region.
 */
struct nk_qset_desc {
	uint32_t sq_idx_off; /* struct nk_ring_idx for the SQ */
	uint32_t sq_entries_off; /* struct nk_sqe[sq_entries] */
	uint32_t cq_idx_off; /* struct nk_ring_idx for the CQ */
	uint32_t cq_entries_off; /* struct nk_cqe[cq_entries] */
	uint32_t sq_entries; /* power of two */
	uint32_t cq_entries; /* power of two, >= sq_entries */
	uint32_t resv[2];
};

#define NK_MAX_QSETS 8u

struct nk_region_hdr {
	uint32_t magic; /* NK_REGION_MAGIC */
	uint32_t abi_version; /* NK_ABI_VERSION */
	uint64_t features; /* NK_FEAT_* offered by the host */
	uint64_t region_size; /* bytes in the whole mapping */
	uint64_t epoch; /* changes when nkd restarts */
	uint32_t hdr_size; /* sizeof(struct nk_region_hdr) at the host */
	uint32_t nr_qsets; /* 1..NK_MAX_QSETS */
	uint32_t data_off; /* start of the data area */
	uint32_t buf_size; /* bytes per data buffer, power of two */
	uint32_t nr_bufs; /* data buffers in the data area */
	uint32_t guest_id; /* nkd's id for this guest */
	uint32_t conn_id; /* nkd's id for this connection */
	/*
	 * Host state word: NK_HOST_F_DEAD is set when nkd disconnects this
	 * guest (abuse, shutdown); the guest must stop submitting.
	 */
	uint32_t host_flags;
	/*
	 * nkd's send window per socket (docs/abi.md §5): SENDs in flight
	 * count max(buf_len, send_charge) bytes each, and the placeholder is
	 * unwritable while they add up to send_window or more.
	 */
	uint32_t send_window;
	uint32_t send_charge; /* least a SEND counts; > 0 since ABI 3 */
	/*
	 * VM guests only (docs/abi.md §9): nk-vmagent stores here how many
	 * placeholder operations of the channel it has applied; a NOP's CQE
	 * carries in aux how many nkd had sent. nkd never reads it.
	 */
	uint32_t vm_ph_applied;
	/* VM guests only: how many nkd had sent; written by nkd. */
	uint32_t vm_ph_sent;
	/*
	 * VM guests only: how many of this connection's PH_BINDs nkd has
	 * run (their PH_OPs are in vm_ph_sent by then); written by nkd.
	 */
	uint32_t vm_ph_bound;
	uint32_t resv[3];
	struct nk_qset_desc qsets[NK_MAX_QSETS];
};

#define NK_HOST_F_DEAD (1U << 0)

/*
 * A successful SETSOCKOPT(SOL_SOCKET, SO_SNDBUF, v) shrinks the socket's
 * send window to min(window, max(2 * v, NK_SNDBUF_WINDOW_MIN)): the window
 * never grows back, so every guest's idea of it is at least nkd's
 * (docs/abi.md §5). Accepted sockets start with their listener's.
 */
#define NK_SNDBUF_WINDOW_MIN 4096u

/* ------------------------------------------------------------------------ */
/* Layout assertions: a change here is an ABI change. */

#define NK_ASSERT_OFF(type, field, off)                       \
	_Static_assert(offsetof(struct type, field) == (off), \
		       #type "." #field " moved")

_Static_assert(sizeof(struct nk_ring_idx) == 2 * NK_CACHELINE, "ring idx");
NK_ASSERT_OFF(nk_ring_idx, head, 0);
NK_ASSERT_OFF(nk_ring_idx, tail, 64);
NK_ASSERT_OFF(nk_ring_idx, flags, 68);

_Static_assert(sizeof(struct nk_sockaddr) == 32, "nk_sockaddr size");
NK_ASSERT_OFF(nk_sockaddr, family, 0);
NK_ASSERT_OFF(nk_sockaddr, port, 2);
NK_ASSERT_OFF(nk_sockaddr, flowinfo, 4);
NK_ASSERT_OFF(nk_sockaddr, addr, 8);
NK_ASSERT_OFF(nk_sockaddr, scope_id, 24);
NK_ASSERT_OFF(nk_sockaddr, resv, 28);

_Static_assert(sizeof(struct nk_sqe) == NK_CACHELINE, "SQE is a cache line");
NK_ASSERT_OFF(nk_sqe, opcode, 0);
NK_ASSERT_OFF(nk_sqe, flags, 1);
NK_ASSERT_OFF(nk_sqe, resv0, 2);
NK_ASSERT_OFF(nk_sqe, handle, 4);
NK_ASSERT_OFF(nk_sqe, user_data, 8);
NK_ASSERT_OFF(nk_sqe, sock.domain, 16);
NK_ASSERT_OFF(nk_sqe, io.buf_off, 16);
NK_ASSERT_OFF(nk_sqe, io.buf_len, 20);
NK_ASSERT_OFF(nk_sqe, io.msg_flags, 24);
NK_ASSERT_OFF(nk_sqe, io.timeout_ms, 28);
NK_ASSERT_OFF(nk_sqe, ctl.arg64, 16);
NK_ASSERT_OFF(nk_sqe, ctl.arg, 24);
NK_ASSERT_OFF(nk_sqe, opt.level, 32);
NK_ASSERT_OFF(nk_sqe, opt.optname, 36);
NK_ASSERT_OFF(nk_sqe, addr, 32);
NK_ASSERT_OFF(nk_sqe, ph.id, 32);
NK_ASSERT_OFF(nk_sqe, ph.resv3, 40);

_Static_assert(sizeof(struct nk_cmsg) == NK_CMSG_BYTES, "cmsg block size");
_Static_assert(NK_CMSG_BYTES % 8 == 0, "cmsg block keeps 8-byte alignment");
NK_ASSERT_OFF(nk_cmsg, len, 0);
NK_ASSERT_OFF(nk_cmsg, flags, 4);
NK_ASSERT_OFF(nk_cmsg, data, 8);

_Static_assert(sizeof(struct nk_dgram) == 48, "dgram record size");
_Static_assert(sizeof(struct nk_dgram) % NK_DGRAM_ALIGN == 0,
	       "records keep their alignment");
NK_ASSERT_OFF(nk_dgram, len, 0);
NK_ASSERT_OFF(nk_dgram, full_len, 4);
NK_ASSERT_OFF(nk_dgram, err, 8);
NK_ASSERT_OFF(nk_dgram, resv, 12);
NK_ASSERT_OFF(nk_dgram, addr, 16);

_Static_assert(sizeof(struct nk_cqe) == 32, "CQE size");
NK_ASSERT_OFF(nk_cqe, user_data, 0);
NK_ASSERT_OFF(nk_cqe, res, 8);
NK_ASSERT_OFF(nk_cqe, flags, 12);
NK_ASSERT_OFF(nk_cqe, handle, 16);
NK_ASSERT_OFF(nk_cqe, aux, 20);
NK_ASSERT_OFF(nk_cqe, resv, 24);

/*
 * SOCKET's protocol for SOCK_DGRAM: 0, IPPROTO_UDP (17), or the ICMP echo
 * ("ping") socket: IPPROTO_ICMP (1) with AF_INET, IPPROTO_ICMPV6 (58) with
 * AF_INET6 (docs/abi.md §4). Numbers, not <netinet/in.h>, keep this header
 * free of libc's socket headers.
 */
static inline int nk_is_ping_proto(int domain, int protocol)
{
	return (domain == 2 /* AF_INET */ && protocol == 1) ||
	       (domain == 10 /* AF_INET6 */ && protocol == 58);
}

_Static_assert(sizeof(struct nk_qset_desc) == 32, "qset desc size");
_Static_assert(sizeof(struct nk_region_hdr) == 96 + 32 * NK_MAX_QSETS,
	       "region header size");
NK_ASSERT_OFF(nk_region_hdr, features, 8);
NK_ASSERT_OFF(nk_region_hdr, epoch, 24);
NK_ASSERT_OFF(nk_region_hdr, host_flags, 60);
NK_ASSERT_OFF(nk_region_hdr, send_window, 64);
NK_ASSERT_OFF(nk_region_hdr, send_charge, 68);
NK_ASSERT_OFF(nk_region_hdr, vm_ph_applied, 72);
NK_ASSERT_OFF(nk_region_hdr, vm_ph_sent, 76);
NK_ASSERT_OFF(nk_region_hdr, vm_ph_bound, 80);
NK_ASSERT_OFF(nk_region_hdr, resv, 84);
NK_ASSERT_OFF(nk_region_hdr, qsets, 96);
_Static_assert(NK_OP__MAX == 17, "update the opcode table in docs/abi.md");

#endif /* NETKERNEL_ABI_H */
