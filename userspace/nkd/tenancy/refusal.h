/* SPDX-License-Identifier: MIT */
/*
 * Refusal accounting (docs/nkd.md "Refusals"): every time nkd says no to a
 * guest because of its quota or policy, the refusal is counted per guest
 * and per reason (nkctl guests, Prometheus) and logged, at most one line
 * per guest and reason every NK_REFUSAL_LOG_NS, with the number of
 * refusals that were not logged in between.
 *
 * To add a reason: one X() line below (the C name, the name nkctl and
 * Prometheus show, the errno the program sees), then call
 * nk_guest__refused() where nkd refuses.
 */
#ifndef NKD_REFUSAL_H
#define NKD_REFUSAL_H

#include <stdint.h>

/* X(ENUM suffix, reported name, errno the program sees) */
#define NK_REFUSALS(X)                                      \
	X(SOCKETS, "sockets", "ENFILE")                     \
	X(INFLIGHT, "inflight", "ENOBUFS")                  \
	X(CONNS, "conns", "EMFILE (attach refused)")        \
	X(BIND_POLICY, "bind_policy", "EACCES")             \
	X(ABUSE, "abuse", "EINVAL/EBADF + NK_CQE_F_ABUSE")  \
	X(RESOLVER, "resolver", "EAI_AGAIN")                \
	X(BUDGET, "budget", "ENOBUFS")                      \
	X(PORT, "port", "EADDRINUSE")                       \
	X(EGRESS, "egress", "ENETUNREACH")                  \
	X(HOST, "host", "ECONNREFUSED / EACCES (datagram)") \
	X(IDENTITY, "identity", "EPERM (attach refused)")   \
	X(SHM_QUEUE, "shm_queue", "EAGAIN")

enum nk_refusal {
#define NK_REFUSAL_ENUM(e, name, err) NK_REFUSED_##e,
	NK_REFUSALS(NK_REFUSAL_ENUM)
#undef NK_REFUSAL_ENUM
		NK_REFUSAL__MAX
};

#define NK_REFUSAL_LOG_NS (10ll * 1000000000ll)

/* Per guest (struct nk_guest.refused) and for refusals with no guest. */
struct nk_refusals {
	uint64_t count[NK_REFUSAL__MAX];
	int64_t logged_ns[NK_REFUSAL__MAX]; /* last line logged, 0: never */
	uint64_t suppressed[NK_REFUSAL__MAX]; /* since that line */
};

struct nk_engine;
struct nk_guest;

const char *nk_refusal__name(enum nk_refusal r);
const char *nk_refusal__errno(enum nk_refusal r);

/*
 * Counts one refusal of g (NULL: a caller that is no guest yet, e.g. an
 * unknown name) and logs why, rate-limited. fmt is only formatted when a
 * line is logged, so hot refusal paths stay cheap.
 */
void nk_guest__refused(struct nk_engine *e, struct nk_guest *g,
		       enum nk_refusal r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * A control connection nkd closes before it answered anything (too many
 * connections of the uid, no HELLO in time, unreadable credentials): an
 * unsolicited WELCOME with seq 0, status and why, so the guest can say
 * "refused: why" instead of "connection reset" (docs/abi.md §1). fd is
 * non-blocking; best effort, the caller closes fd anyway.
 */
void nk_ctl__refuse_early(int fd, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* NKD_REFUSAL_H */
