// SPDX-License-Identifier: MIT
/*
 * Idle rests (docs/nkd.md "Isolation"). The per-pass budget (pollcost.h)
 * bounds what a spinner takes per pass, but not how many passes it makes
 * nkd run: a guest that keeps its SQ full of NOPs or refused entries
 * would keep the loop busy forever, doing nothing. So a guest that spent
 * a pass's worth of budget on such entries (in one pass or several, with
 * nothing real between) is skipped for NK_IDLE_BACKOFF_NS;
 * the loop sleeps if nobody else has work (prepare_sleep ignores a
 * resting guest's SQ and does not ask it for doorbells) and its sleep
 * ends when the first rest does (nk_idlerest__clamp), so a resting guest
 * is always looked at again, whether or not it rang.
 */
#include "idlerest.h"

#include "engine.h"

bool nk_idlerest__skip(struct nk_guest *g, int64_t *now)
{
	if (!g->rest.until)
		return false;
	if (!*now)
		*now = nk_now_ns();
	if (*now < g->rest.until)
		return true;
	g->rest.until = 0;
	return false;
}

void nk_idlerest__judge(struct nk_engine *e, struct nk_guest *g, unsigned taken,
			unsigned idle, unsigned spent)
{
	if (!taken)
		return;
	/*
	 * idle may count a little more than g's own (a completion another
	 * guest's op got during g's turn): the worst is an early rest for a
	 * guest whose pass was all failures anyway, never a lost entry.
	 */
	if (idle < taken) {
		g->rest.idle_units = 0;
		return;
	}
	g->rest.idle_units += spent;
	if (g->rest.idle_units < NK_POLL_BUDGET * g->conf.weight)
		return;
	g->rest.idle_units = 0;
	g->rest.until = nk_now_ns() + NK_IDLE_BACKOFF_NS;
	g->rest.rests++;
	e->rests++;
}

int64_t nk_idlerest__clamp(struct nk_engine *e, int64_t now, int64_t timeout)
{
	struct nk_list *p;

	for (p = e->guests.next; p != &e->guests; p = p->next) {
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);
		int64_t left;

		if (!g->rest.until)
			continue;
		left = g->rest.until > now ? g->rest.until - now : 0;
		if (timeout < 0 || left < timeout)
			timeout = left;
	}
	return timeout;
}
