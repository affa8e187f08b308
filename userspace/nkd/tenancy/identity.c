// SPDX-License-Identifier: MIT
/*
 * Which guest a caller is (docs/config.md "Who is which guest").
 *
 * A guest is never just a name a process claims. A configured guest is
 * chosen by its match keys (nk_guest_conf__match) against facts the kernel
 * gave us about the caller (struct nk_peer); the name in HELLO only
 * chooses among the guests the caller matches. A guest that is not in the
 * config (no config, or unknown_guests allow) belongs to the (uid, network
 * namespace) that first attached it for as long as its object lives, so
 * two users never share one; without a name the caller gets its own
 * default guest u<uid>-<netns inode>.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "log.h"

/* Guest names one identity may hold at once (not counting idle ones). */
#define NK_IDENTITY_MAX_NAMES 16u

#define WHY(a, ...) (snprintf((a)->why, sizeof((a)->why), __VA_ARGS__), -EPERM)

static bool guest_in_use(const struct nk_guest *g)
{
	return g->nr_conns || g->nr_socks || g->nr_handovers || g->inflight;
}

static bool same_owner(const struct nk_guest *g, const struct nk_peer *p)
{
	return g->owner_uid == p->uid && g->owner_netns_dev == p->netns_dev &&
	       g->owner_netns_ino == p->netns_ino;
}

/*
 * u<uid>-<netns inode> is the default guest of that identity: nobody else
 * may take the name first and so lock its owner out.
 */
static bool default_name_of_another(const char *name, const struct nk_peer *p)
{
	unsigned long long uid, ino;
	char tail;

	if (sscanf(name, "u%llu-%llu%c", &uid, &ino, &tail) != 2)
		return false;
	return uid != p->uid || ino != p->netns_ino;
}

int nk_identity__pick(struct nk_engine *e, struct nk_attach *a,
		      struct nk_guest_conf *defconf,
		      const struct nk_guest_conf **conf)
{
	const struct nk_config *cfg = &e->cfg;
	const struct nk_peer *p = a->peer;
	const char *name = a->hello->guest;
	char names[128] = "";
	unsigned found = 0;
	size_t off = 0;

	if (p->attach >= 0) {
		/* Its own socket: this guest or nothing (by path: a reload
		 * may have moved or dropped the guest since the accept). */
		const struct nk_guest_conf *g = NULL;

		for (unsigned i = 0; i < cfg->nr_guests && !g; i++)
			if (!strcmp(cfg->guests[i].attach, p->attach_path) ||
			    !strcmp(cfg->guests[i].vm_channel, p->attach_path))
				g = &cfg->guests[i];
		if (!g)
			return WHY(a,
				   "attach socket %s belongs to no guest of "
				   "nkd's config any more",
				   p->attach_path);
		if (name[0] && strcmp(name, g->name))
			return WHY(a,
				   "this attach socket is guest '%s's, not "
				   "'%s'",
				   g->name, name);
		*conf = g;
		return nk_guest_conf__match(g, p, a->why, sizeof(a->why));
	}
	if (name[0]) {
		*conf = nk_config__guest(cfg, name);
		if (*conf)
			return nk_guest_conf__match(*conf, p, a->why,
						    sizeof(a->why));
		if (!cfg->unknown_allow)
			return WHY(a, "guest '%s' is not in nkd's config",
				   name);
		if (default_name_of_another(name, p))
			return WHY(a,
				   "guest name '%s' is reserved for that uid "
				   "and network namespace",
				   name);
		nk_guest_conf__defaults(defconf, name);
		*conf = defconf;
		return 0;
	}
	for (unsigned i = 0; i < cfg->nr_guests; i++) {
		char why[8];

		if (nk_guest_conf__match(&cfg->guests[i], p, why, sizeof(why)))
			continue;
		if (!found++)
			*conf = &cfg->guests[i];
		if (off < sizeof(names))
			off += (size_t)snprintf(names + off,
						sizeof(names) - off, "%s%s",
						found > 1 ? ", " : "",
						cfg->guests[i].name);
	}
	if (found == 1)
		return 0;
	if (found > 1)
		return WHY(a,
			   "several guests match (%s): choose one with --guest",
			   names);
	if (!cfg->unknown_allow)
		return WHY(a,
			   "no guest in nkd's config matches uid %u, network "
			   "namespace %llu, cgroup '%.100s'",
			   (unsigned)p->uid, (unsigned long long)p->netns_ino,
			   p->cgroup);
	nk_guest_conf__defaults(defconf, "");
	snprintf(defconf->name, sizeof(defconf->name), "u%u-%llu",
		 (unsigned)p->uid, (unsigned long long)p->netns_ino);
	*conf = defconf;
	return 0;
}

int nk_identity__claim(struct nk_engine *e, struct nk_attach *a,
		       struct nk_guest *g, bool is_new)
{
	const struct nk_peer *p = a->peer;
	struct nk_list *it, *tmp;
	unsigned held = 0;

	if (g && g->from_config)
		return 0;
	if (g && is_new) {
		g->owner_uid = p->uid;
		g->owner_netns_dev = p->netns_dev;
		g->owner_netns_ino = p->netns_ino;
		return 0;
	}
	if (g) {
		if (!same_owner(g, p))
			return WHY(a,
				   "guest '%s' belongs to another uid or "
				   "network namespace",
				   g->conf.name);
		return 0;
	}
	/* About to create one: bound how many names one identity holds. */
	nk_list__for_each_safe(it, tmp, &e->guests)
	{
		struct nk_guest *o = nk_container_of(it, struct nk_guest, link);

		if (!o->from_config && same_owner(o, p) && guest_in_use(o))
			held++;
	}
	if (held >= NK_IDENTITY_MAX_NAMES)
		return WHY(a,
			   "uid %u in network namespace %llu already holds %u "
			   "guests",
			   (unsigned)p->uid, (unsigned long long)p->netns_ino,
			   held);
	return 0;
}
