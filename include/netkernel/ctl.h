/* SPDX-License-Identifier: MIT */
/*
 * netkernel control protocol: messages on nkd's AF_UNIX SOCK_SEQPACKET
 * control socket (default /run/netkernel/nkd.sock). The rings carry the data
 * path; this socket carries what needs file descriptors or credentials:
 * attach, readiness placeholders, fork/exec hand-over, name resolution and
 * the operator's queries. Documented in docs/abi.md ("Control socket").
 *
 * Every message starts with struct nk_ctl_hdr; len counts the whole message.
 * Requests with a reply are answered in order on the same socket; the reply
 * echoes seq. Fixed-width types, resv fields zero, little-endian host order.
 */
#ifndef NETKERNEL_CTL_H
#define NETKERNEL_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "netkernel/abi.h"

#define NK_CTL_DEFAULT_PATH "/run/netkernel/nkd.sock"
#define NK_CTL_MAX_MSG 65536u /* largest message either side sends */
#define NK_GUEST_NAME_MAX 64u

enum nk_ctl_type {
	/*
	 * guest -> nkd, reply NK_CTL_WELCOME + fds [region memfd, doorbell,
	 * placeholder pool channel]
	 */
	NK_CTL_HELLO = 1,
	NK_CTL_WELCOME = 2,
	/*
	 * Gone since ABI 2: the guest made the socketpair and sent nkd both
	 * ends, so nkd could not know the guest kept no copy of its end.
	 * nkd refuses it (the client is closed). See NK_CTL_PH_*.
	 */
	NK_CTL_PLACEHOLDER = 3,
	/*
	 * Hand-over of socket references to a child or a new image. PREPARE
	 * (before fork) and EXEC (before execve) are answered by NK_CTL_STATUS
	 * whose token the new process presents in its HELLO; COMMIT names the
	 * child's pid (after fork, so the hand-over expires when it exits);
	 * ABORT drops a token that will not be claimed (fork or exec failed).
	 * COMMIT and ABORT carry struct nk_ctl_token and get no reply.
	 */
	NK_CTL_FORK_PREPARE = 4,
	NK_CTL_FORK_COMMIT = 5,
	NK_CTL_EXEC = 6,
	NK_CTL_TOKEN_ABORT = 12,
	NK_CTL_STATUS = 7, /* generic reply: nk_ctl_status */
	/* guest -> nkd, reply NK_CTL_RESOLVE_REPLY */
	NK_CTL_RESOLVE = 8,
	NK_CTL_RESOLVE_REPLY = 9,
	/* nkctl -> nkd, reply one or more NK_CTL_QUERY_REPLY chunks */
	NK_CTL_QUERY = 10,
	NK_CTL_QUERY_REPLY = 11,
	/*
	 * nkctl -> nkd: a command that changes nkd's state (evict, set,
	 * reload); reply NK_CTL_QUERY_REPLY chunks whose text is a message
	 * for the operator (why it failed, what it did).
	 */
	NK_CTL_ADMIN = 13,
	/*
	 * Readiness placeholders (docs/abi.md §6). nkd makes each socketpair,
	 * keeps the nkd end and sends only the app end, one per PH_POOL
	 * message with one fd, on the pool channel (the third WELCOME fd, a
	 * SOCK_SEQPACKET socket only nkd writes to). The guest takes one per
	 * new socket (a recvmsg, so it lands on the lowest free fd number as
	 * socket() would) and names it in PH_BIND on the control socket; both
	 * one-way. nkd keeps at most NK_PH_POOL_MAX unbound placeholders per
	 * connection and tops them up to NK_PH_POOL_TARGET when a BIND leaves
	 * NK_PH_POOL_LOW or fewer; a guest that finds the channel empty sends
	 * PH_REFILL (one-way, up to NK_PH_POOL_TARGET more) and waits on it.
	 */
	NK_CTL_PH_POOL = 14, /* nkd -> guest on the pool channel, 1 fd */
	NK_CTL_PH_BIND = 15, /* guest -> nkd, no reply */
	NK_CTL_PH_REFILL = 16, /* guest -> nkd, header only, no reply */
	/*
	 * guest -> nkd, header only; reply NK_CTL_RESOLVE_REPLY whose entries
	 * are its NSM's nameservers (port 53), for the shim's DNS redirect
	 * (docs/shim.md). Only when the region offers NK_FEAT_DNS_PING: an
	 * older nkd closes the client.
	 */
	NK_CTL_DNS_SERVERS = 17,
	NK_CTL__MAX
};

struct nk_ctl_hdr {
	uint32_t type; /* enum nk_ctl_type */
	uint32_t len; /* whole message, header included */
	uint64_t seq; /* echoed in the reply */
};

/* HELLO flags */
#define NK_HELLO_F_INHERIT (1U << 0) /* inherit_token is valid */
/*
 * Only ask whether this caller may attach (as guest, or as the guest nkd
 * picks when guest is ""): the WELCOME has status, no fds, no region, and
 * on success the picked guest's name as text after the struct.
 */
#define NK_HELLO_F_PROBE (1U << 1)
/*
 * The caller knows VM mode (docs/abi.md §9): nk-vmagent refuses a HELLO
 * without it, since an older shim would map the wrong region window.
 */
#define NK_HELLO_F_VM (1U << 2)

struct nk_ctl_hello {
	struct nk_ctl_hdr hdr;
	uint32_t abi_version; /* NK_ABI_VERSION */
	uint32_t flags; /* NK_HELLO_F_* */
	uint32_t nr_qsets; /* wanted, 1..NK_MAX_QSETS; nkd may give fewer */
	uint32_t resv;
	uint64_t inherit_token; /* from FORK_PREPARE or EXEC */
	/* NUL-terminated guest name; "" = the guest nkd picks for the caller */
	char guest[NK_GUEST_NAME_MAX];
};

/*
 * A handle inherited through fork or exec, with the inode of its
 * placeholder so the new image can find which of its fds it is.
 */
struct nk_ctl_handle {
	uint32_t handle;
	uint32_t resv;
	uint64_t ino; /* st_ino of the app end of the placeholder */
	uint64_t dev; /* st_dev of the same */
};

/*
 * On error (status < 0) no fds come, and a refusal's reason may follow the
 * struct as NUL-terminated text (hdr.len > sizeof): "uid 65534 does not
 * match guest 'web' (config)". Clients that do not know it ignore it.
 */
struct nk_ctl_welcome {
	struct nk_ctl_hdr hdr;
	int32_t status; /* 0 or -errno; on error no fds follow */
	uint32_t nr_handles; /* nk_ctl_handle entries that follow */
	uint64_t region_size; /* bytes to mmap from the region fd */
	/* struct nk_ctl_handle handles[nr_handles]; or, on error, reason */
};

/*
 * VM mode (docs/abi.md §9): a successful WELCOME from nk-vmagent has this
 * after its handles. The region fd is the whole shared memory (the ivshmem
 * BAR, or the file): map region_size bytes at region_off (page-aligned).
 * The doorbell fd is a stream socket: the guest writes to it to ring, and
 * with NK_WELCOME_VM_F_BELL_WAIT sleeps on it (poll) instead of FUTEX_WAIT
 * on the CQ tail, which does not cross a VM boundary.
 */
#define NK_WELCOME_VM_MAGIC 0x4e4b564du /* "NKVM" */
#define NK_WELCOME_VM_F_BELL_WAIT (1U << 0)
struct nk_ctl_welcome_vm {
	uint32_t magic;
	uint32_t flags;
	uint64_t region_off;
};

/*
 * An early refusal: a WELCOME with seq 0 that nkd sends, unasked, on a
 * control connection it closes before any answer (too many connections
 * of the uid, no HELLO in time); status < 0 and the reason follow as for
 * a refused HELLO. A client waiting for its WELCOME takes it as the
 * answer (docs/abi.md §1).
 */
static inline int nk_ctl__early_refusal(const struct nk_ctl_hdr *h,
					uint32_t want_type)
{
	return h->seq == 0 && h->type == NK_CTL_WELCOME &&
	       want_type == NK_CTL_WELCOME;
}

/* The old guest-made placeholder (refused since ABI 2). */
struct nk_ctl_placeholder {
	struct nk_ctl_hdr hdr;
	uint32_t handle;
	uint32_t resv;
	uint64_t ino; /* st_ino of the app end, for exec hand-over */
	uint64_t dev;
};

#define NK_PH_POOL_MAX 16u /* unbound placeholders per connection */
#define NK_PH_POOL_TARGET 8u /* nkd tops up to this many */
#define NK_PH_POOL_LOW 4u /* ... when a BIND leaves this many or fewer */

/* nkd -> guest on the pool channel; SCM_RIGHTS carries the app end. */
struct nk_ctl_ph_pool {
	struct nk_ctl_hdr hdr; /* seq 0 */
	uint64_t id; /* names this placeholder in PH_BIND */
};

/*
 * guest -> nkd: placeholder id is now the readiness mirror of handle (a
 * socket this process holds). handle 0 gives the placeholder back unused.
 * ino/dev are the app end's fstat(), checked by nkd and returned to a new
 * image in WELCOME's handle list after exec.
 */
struct nk_ctl_ph_bind {
	struct nk_ctl_hdr hdr;
	uint32_t handle;
	uint32_t resv;
	uint64_t id;
	uint64_t ino;
	uint64_t dev;
};

struct nk_ctl_token {
	struct nk_ctl_hdr hdr;
	uint64_t token;
	int32_t child_pid; /* FORK_COMMIT only, else 0 */
	uint32_t resv;
};

struct nk_ctl_status {
	struct nk_ctl_hdr hdr;
	int32_t status; /* 0 or -errno */
	uint32_t resv;
	uint64_t token; /* FORK_PREPARE / EXEC replies, else 0 */
};

/* RESOLVE: getaddrinfo() run by nkd in the guest's NSM namespace. */
struct nk_ctl_resolve {
	struct nk_ctl_hdr hdr;
	int32_t ai_flags;
	int32_t ai_family;
	int32_t ai_socktype;
	int32_t ai_protocol;
	char node[256]; /* NUL-terminated, empty for none */
	char service[64]; /* NUL-terminated, empty for none */
};

struct nk_ctl_resolve_ent {
	int32_t family;
	int32_t socktype;
	int32_t protocol;
	uint32_t resv;
	struct nk_sockaddr addr;
};

#define NK_RESOLVE_MAX_ENTS 32u

struct nk_ctl_resolve_reply {
	struct nk_ctl_hdr hdr;
	int32_t status; /* 0 or an EAI_* code */
	uint32_t nr_ents;
	char canonname[256];
	/* struct nk_ctl_resolve_ent ents[nr_ents]; */
};

/* QUERY: what the operator asks for; the reply is JSON text. */
enum nk_query_what {
	NK_QUERY_STATUS = 1,
	NK_QUERY_GUESTS = 2,
	NK_QUERY_SOCKETS = 3,
	NK_QUERY_NSMS = 4,
	NK_QUERY_STATS = 5, /* Prometheus text exposition, not JSON */
};

struct nk_ctl_query {
	struct nk_ctl_hdr hdr;
	uint32_t what; /* enum nk_query_what */
	uint32_t resv;
};

#define NK_QUERY_F_LAST (1U << 0)

struct nk_ctl_query_reply {
	struct nk_ctl_hdr hdr;
	int32_t status; /* 0, or -errno: the text then says why */
	uint32_t flags; /* NK_QUERY_F_LAST on the final chunk */
	/* text bytes follow, hdr.len - sizeof(*this) of them, no NUL */
};

/* ADMIN: the operator's commands (docs/abi.md §8, nkctl(8)). */
enum nk_admin_cmd {
	NK_ADMIN_EVICT = 1, /* guest: disconnect it, close its sockets */
	NK_ADMIN_SET = 2, /* guest, arg: "key=value ..." as on a guest line */
	NK_ADMIN_RELOAD = 3, /* re-read the config file; guest, arg empty */
};

#define NK_ADMIN_ARG_MAX 512u

struct nk_ctl_admin {
	struct nk_ctl_hdr hdr;
	uint32_t cmd; /* enum nk_admin_cmd */
	uint32_t resv;
	char guest[NK_GUEST_NAME_MAX]; /* NUL-terminated, "" if none */
	char arg[NK_ADMIN_ARG_MAX]; /* NUL-terminated, "" if none */
};

_Static_assert(sizeof(struct nk_ctl_hdr) == 16, "ctl hdr");
_Static_assert(sizeof(struct nk_ctl_hello) == 40 + NK_GUEST_NAME_MAX, "hello");
_Static_assert(sizeof(struct nk_ctl_handle) == 24, "handle");
_Static_assert(sizeof(struct nk_ctl_welcome) == 32, "welcome");
_Static_assert(sizeof(struct nk_ctl_placeholder) == 40, "placeholder");
_Static_assert(sizeof(struct nk_ctl_ph_pool) == 24, "ph pool");
_Static_assert(sizeof(struct nk_ctl_ph_bind) == 48, "ph bind");
_Static_assert(offsetof(struct nk_ctl_ph_bind, id) == 24, "ph bind id");
_Static_assert(sizeof(struct nk_ctl_token) == 32, "token");
_Static_assert(sizeof(struct nk_ctl_status) == 32, "status");
_Static_assert(sizeof(struct nk_ctl_resolve) == 32 + 256 + 64, "resolve");
_Static_assert(sizeof(struct nk_ctl_resolve_ent) == 48, "resolve ent");
_Static_assert(sizeof(struct nk_ctl_resolve_reply) == 24 + 256,
	       "resolve reply");
_Static_assert(sizeof(struct nk_ctl_query) == 24, "query");
_Static_assert(sizeof(struct nk_ctl_query_reply) == 24, "query reply");
_Static_assert(sizeof(struct nk_ctl_admin) ==
		       24 + NK_GUEST_NAME_MAX + NK_ADMIN_ARG_MAX,
	       "admin");

#endif /* NETKERNEL_CTL_H */
