// SPDX-License-Identifier: MIT
/*
 * Idle rests (docs/nkd.md "Isolation"). The per-pass budget (pollcost.h)
 * bounds what a spinner takes per pass, but not how many passes it makes
 * nkd run: a guest that keeps its SQ full of NOPs or refused entries
 * would keep the loop busy forever, doing nothing. So a guest whose whole
 * budget of a pass went on such entries is skipped for NK_IDLE_BACKOFF_NS;
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
			unsigned idle, unsigned left)
{
	/*
	 * idle may count a little more than g's own (a completion another
	 * guest's op got during g's turn): the worst is a rest for a guest
	 * whose last pass was all failures anyway, never a lost entry.
	 */
	if (left || !taken || idle < taken)
		return;
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
