// SPDX-License-Identifier: MIT
/*
 * Global budgets (budget.h, docs/nkd.md "Budgets"). Every guest socket
 * costs nkd NK_FDS_PER_SOCK descriptors, so the descriptors nkd may have
 * (RLIMIT_NOFILE) bound the sockets of all guests together: without a
 * budget a few guests at their max_sockets exhaust nkd, which then fails
 * everyone (accept of control connections, placeholders, kernel sockets).
 *
 * Sockets: configured guests get their reserve= for sure; everything
 * else comes from the shared pool, of which a guest the config does not
 * name may hold at most share_pct percent, so neither one default guest
 * nor a crowd of them can take the reservations. Region memory (each
 * attached process maps bufs x 64 KiB plus rings) and attached processes
 * (descriptors again) have one global budget, with the same per-guest
 * share for unnamed guests. Refusals: ENOBUFS for sockets (SOCKET and
 * ACCEPT), ENOMEM for memory and EMFILE for attaches at HELLO.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "budget.h"
#include "engine.h"
#include "log.h"
#include "region.h"

/* Descriptors nkd needs besides guests': ring, control listener,
 * signalfd, eventfds, netns fds, logs; an afxdp NSM has more. */
#define FIXED_FDS 128u
#define FIXED_FDS_PER_NSM 32u
/* Headroom kept from guest sockets for control connections and attaches. */
#define HEADROOM_MIN 512u
#define HEADROOM_DIV 4u
#define WARN_INTERVAL_NS 1000000000ll

static uint64_t share_of(uint64_t total, uint32_t pct)
{
	uint64_t n = total * pct / 100;

	return n ? n : (total ? 1 : 0);
}

/* One warning a second at most: refusals come in floods. */
static void warn_limited(struct nk_budget *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void warn_limited(struct nk_budget *b, const char *fmt, ...)
{
	int64_t now = nk_now_ns();
	char msg[256];
	va_list ap;

	if (b->last_warn_ns && now - b->last_warn_ns < WARN_INTERVAL_NS)
		return;
	b->last_warn_ns = now;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	nk_warn("%s", msg);
}

int nk_budget__init(struct nk_engine *e, char *err, size_t errlen)
{
	const struct nk_budget_conf *bc = &e->cfg.budget;
	struct nk_budget *b = &e->budget;
	uint64_t nofile = 1024, headroom, fixed, fit;
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	struct rlimit rl;

	memset(b, 0, sizeof(*b));
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		nofile = rl.rlim_cur == RLIM_INFINITY ? (1u << 20)
						      : rl.rlim_cur;
	b->nofile = nofile;
	fixed = FIXED_FDS + (uint64_t)FIXED_FDS_PER_NSM * e->cfg.nr_nsms;
	headroom = nofile / HEADROOM_DIV;
	if (headroom < HEADROOM_MIN)
		headroom = HEADROOM_MIN;
	if (nofile < headroom + fixed + 64 * NK_FDS_PER_SOCK) {
		snprintf(err, errlen,
			 "RLIMIT_NOFILE is %llu: too few descriptors for any "
			 "guest (raise it to at least %llu)",
			 (unsigned long long)nofile,
			 (unsigned long long)(HEADROOM_MIN * 2 + fixed));
		return -EINVAL;
	}
	fit = (nofile - headroom) / NK_FDS_PER_SOCK;
	if (fit > NK_MAX_SOCKETS_LIMIT)
		fit = NK_MAX_SOCKETS_LIMIT;
	if (bc->sockets > fit) {
		snprintf(err, errlen,
			 "socket_budget %u does not fit: RLIMIT_NOFILE %llu "
			 "allows %llu guest sockets (%u descriptors each, a "
			 "quarter kept for control connections)",
			 bc->sockets, (unsigned long long)nofile,
			 (unsigned long long)fit, NK_FDS_PER_SOCK);
		return -EINVAL;
	}
	b->sockets = bc->sockets ? bc->sockets : (uint32_t)fit;
	for (unsigned i = 0; i < e->cfg.nr_guests; i++)
		b->reserved += e->cfg.guests[i].reserve;
	if (b->reserved > b->sockets) {
		snprintf(err, errlen,
			 "guests reserve %u sockets in all (reserve=), more "
			 "than the socket budget of %u (RLIMIT_NOFILE %llu%s)",
			 b->reserved, b->sockets, (unsigned long long)nofile,
			 bc->sockets ? ", socket_budget" : "");
		return -EINVAL;
	}
	b->shared = b->sockets - b->reserved;
	b->share_pct = bc->share_pct ? bc->share_pct : NK_DEF_SHARE_PCT;
	b->conns = (uint32_t)((headroom - fixed) / NK_FDS_PER_CONN);
	b->memory = bc->memory;
	if (!b->memory)
		b->memory = pages > 0 && psz > 0
				    ? (uint64_t)pages * (uint64_t)psz / 2
				    : (uint64_t)4 << 30;
	b->resolve_queue = bc->resolve_queue ? bc->resolve_queue
					     : NK_DEF_RESOLVE_QUEUE;
	nk_info("budget: %u guest sockets (%u reserved, RLIMIT_NOFILE %llu), "
		"%u attached processes, %llu MiB of regions",
		b->sockets, b->reserved, (unsigned long long)nofile, b->conns,
		(unsigned long long)(b->memory >> 20));
	return 0;
}

int nk_budget__sock_get(struct nk_engine *e, struct nk_guest *g)
{
	struct nk_budget *b = &e->budget;
	uint32_t draw =
		g->bsocks > g->conf.reserve ? g->bsocks - g->conf.reserve : 0;

	if (g->bsocks < g->conf.reserve)
		goto ok;
	if (b->shared_used >= b->shared) {
		b->refused_sockets++;
		warn_limited(b,
			     "guest %s: socket refused (ENOBUFS): the shared "
			     "socket budget (%u) is used up",
			     g->conf.name, b->shared);
		return -ENOBUFS;
	}
	if (!g->from_config && draw >= share_of(b->shared, b->share_pct)) {
		b->refused_sockets++;
		warn_limited(b,
			     "guest %s: socket refused (ENOBUFS): an unnamed "
			     "guest may hold %u%% of the shared socket budget "
			     "(%u)",
			     g->conf.name, b->share_pct, b->shared);
		return -ENOBUFS;
	}
	b->shared_used++;
ok:
	g->bsocks++;
	b->sockets_used++;
	return 0;
}

void nk_budget__sock_put(struct nk_engine *e, struct nk_guest *g)
{
	struct nk_budget *b = &e->budget;

	if (!g->bsocks)
		return;
	if (g->bsocks > g->conf.reserve)
		b->shared_used--;
	g->bsocks--;
	b->sockets_used--;
}

int nk_budget__conn_get(struct nk_engine *e, struct nk_conn *c, uint64_t bytes)
{
	struct nk_budget *b = &e->budget;
	struct nk_guest *g = c->guest;

	if (b->conns_used >= b->conns) {
		b->refused_memory++;
		warn_limited(b,
			     "guest %s: attach of pid %d refused (EMFILE): %u "
			     "processes attached, the descriptor budget's most",
			     g->conf.name, (int)c->pid, b->conns_used);
		return -EMFILE;
	}
	if (b->memory_used + bytes > b->memory ||
	    (!g->from_config &&
	     g->bmem + bytes > share_of(b->memory, b->share_pct))) {
		b->refused_memory++;
		warn_limited(b,
			     "guest %s: attach of pid %d refused (ENOMEM): its "
			     "%llu KiB region would pass the region memory "
			     "budget (%llu of %llu MiB used%s)",
			     g->conf.name, (int)c->pid,
			     (unsigned long long)(bytes >> 10),
			     (unsigned long long)(b->memory_used >> 20),
			     (unsigned long long)(b->memory >> 20),
			     g->from_config
				     ? ""
				     : "; an unnamed guest gets a share");
		return -ENOMEM;
	}
	b->conns_used++;
	b->memory_used += bytes;
	g->bmem += bytes;
	c->bmem = bytes;
	return 0;
}

void nk_budget__conn_put(struct nk_engine *e, struct nk_conn *c)
{
	struct nk_budget *b = &e->budget;

	if (!c->bmem)
		return;
	b->conns_used--;
	b->memory_used -= c->bmem;
	c->guest->bmem -= c->bmem;
	c->bmem = 0;
}

bool nk_budget__resolve_get(struct nk_engine *e, struct nk_guest *g)
{
	struct nk_budget *b = &e->budget;

	if (g->nr_resolve >= b->resolve_queue) {
		b->refused_resolve++;
		return false;
	}
	g->nr_resolve++;
	return true;
}

void nk_budget__resolve_put(struct nk_engine *e, struct nk_guest *g)
{
	(void)e;
	if (g->nr_resolve)
		g->nr_resolve--;
}

int nk_budget__shmq_get(struct nk_engine *e, struct nk_guest *g, uint64_t bytes)
{
	struct nk_budget *b = &e->budget;

	/*
	 * Charged to the guest whose sends make nkd keep the bytes, never to
	 * the receiver, which need not read: a sender cannot grow nkd's
	 * memory past its own cap by opening connections.
	 */
	if (g->bshmq + bytes > g->conf.shm_queue ||
	    b->memory_used + bytes > b->memory ||
	    (!g->from_config &&
	     g->bmem + bytes > share_of(b->memory, b->share_pct))) {
		b->refused_shmq++;
		return -ENOBUFS;
	}
	b->memory_used += bytes;
	b->shmq_used += bytes;
	g->bmem += bytes;
	g->bshmq += bytes;
	return 0;
}

void nk_budget__shmq_put(struct nk_engine *e, struct nk_guest *g,
			 uint64_t bytes)
{
	struct nk_budget *b = &e->budget;

	if (bytes > g->bshmq)
		bytes = g->bshmq;
	b->memory_used -= bytes;
	b->shmq_used -= bytes;
	g->bmem -= bytes;
	g->bshmq -= bytes;
}

void nk_budget__json(const struct nk_engine *e, char *buf, size_t len)
{
	const struct nk_budget *b = &e->budget;

	snprintf(buf, len,
		 "{\"nofile\":%llu,\"sockets\":{\"limit\":%u,\"used\":%u,"
		 "\"reserved\":%u,\"shared\":%u,\"shared_used\":%u,"
		 "\"default_share_pct\":%u,\"refused\":%llu},"
		 "\"conns\":{\"limit\":%u,\"used\":%u},"
		 "\"memory\":{\"limit\":%llu,\"used\":%llu,\"refused\":%llu},"
		 "\"resolve\":{\"queue_per_guest\":%u,\"refused\":%llu},"
		 "\"shm_queue\":{\"used\":%llu,\"refused\":%llu}}",
		 (unsigned long long)b->nofile, b->sockets, b->sockets_used,
		 b->reserved, b->shared, b->shared_used, b->share_pct,
		 (unsigned long long)b->refused_sockets, b->conns,
		 b->conns_used, (unsigned long long)b->memory,
		 (unsigned long long)b->memory_used,
		 (unsigned long long)b->refused_memory, b->resolve_queue,
		 (unsigned long long)b->refused_resolve,
		 (unsigned long long)b->shmq_used,
		 (unsigned long long)b->refused_shmq);
}
