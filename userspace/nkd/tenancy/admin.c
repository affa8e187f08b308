// SPDX-License-Identifier: MIT
/*
 * The operator's hand (admin.h, docs/nkd.md "Operator"): who may query and
 * command nkd, and the commands evict, set and reload.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "admin.h"
#include "engine.h"
#include "log.h"
#include "peer.h"

void nk_admin__set_config_path(struct nk_engine *e, const char *path)
{
	snprintf(e->admin.config_path, sizeof(e->admin.config_path), "%s",
		 path ? path : "");
}

static bool self_netns(uint64_t dev, uint64_t ino)
{
	struct stat st;

	return !stat("/proc/self/ns/net", &st) && (uint64_t)st.st_dev == dev &&
	       (uint64_t)st.st_ino == ino;
}

void nk_admin__attached(struct nk_engine *e, struct nk_conn *c,
			const struct nk_peer *peer)
{
	struct nk_admin_guest *a = &c->guest->admin;
	uint64_t dev = peer->netns_dev, ino = peer->netns_ino;

	if (!ino) {
		/* Then callers whose namespace is unknown are refused. */
		e->admin.unknown_guest_netns = true;
		return;
	}
	if (self_netns(dev, ino))
		return;
	for (unsigned i = 0; i < NK_ADMIN_GUEST_NETNS; i++)
		if (a->netns[i][0] == dev && a->netns[i][1] == ino)
			return;
	/* The oldest is forgotten past NK_ADMIN_GUEST_NETNS namespaces. */
	a->netns[a->next][0] = dev;
	a->netns[a->next][1] = ino;
	a->next = (a->next + 1) % NK_ADMIN_GUEST_NETNS;
}

static bool in_list(const uint32_t *ids, unsigned n, uint32_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* root, nkd's own uid, or a uid/gid (primary or supplementary) named. */
static bool operator_ids(const struct nk_config *cfg, int fd, uid_t uid,
			 gid_t gid)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (uid == 0 || uid == geteuid() ||
	    in_list(cfg->op_uids, cfg->nr_op_uids, uid) ||
	    in_list(cfg->op_gids, cfg->nr_op_gids, gid))
		return true;
	if (!cfg->nr_op_gids || fd < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len))
		return false;
	for (size_t i = 0; i < len / sizeof(groups[0]); i++)
		if (in_list(cfg->op_gids, cfg->nr_op_gids, groups[i]))
			return true;
	return false;
}

/* The name of the guest that attaches from (dev, ino), or NULL. */
static const char *netns_guest(struct nk_engine *e, uint64_t dev, uint64_t ino,
			       bool *any)
{
	struct nk_list *p, *t;

	*any = false;
	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		for (unsigned i = 0; i < NK_ADMIN_GUEST_NETNS; i++) {
			if (!g->admin.netns[i][1])
				continue;
			*any = true;
			if (g->admin.netns[i][0] == dev &&
			    g->admin.netns[i][1] == ino)
				return g->conf.name;
		}
	}
	/* A listed guest's netns= is a guest namespace before it attached. */
	for (unsigned i = 0; i < e->cfg.nr_guests; i++) {
		const struct nk_guest_conf *gc = &e->cfg.guests[i];

		for (unsigned j = 0; j < gc->nr_netns; j++) {
			*any = true;
			if (gc->netns[j].dev == dev && gc->netns[j].ino == ino)
				return gc->name;
		}
	}
	return NULL;
}

int nk_admin__check(struct nk_engine *e, int fd, const struct nk_peer *peer,
		    char *why, size_t whylen)
{
	uint64_t dev = peer->netns_dev, ino = peer->netns_ino;
	uid_t uid = peer->uid;
	gid_t gid = peer->gid;
	const char *g;
	bool any;

	if (!operator_ids(&e->cfg, fd, uid, gid)) {
		snprintf(why, whylen,
			 "uid %u is not the operator (root, nkd's uid, or an "
			 "'operator uid=/gid=' line in nkd's config)",
			 (unsigned)uid);
		return -EPERM;
	}
	/* Cheap first: no guest namespace known, nothing to compare. */
	netns_guest(e, 0, 0, &any);
	if (!any && !e->admin.unknown_guest_netns)
		return 0;
	if (!ino) {
		snprintf(why, whylen,
			 "uid %u: cannot tell the network namespace of pid %d, "
			 "and guests attach from other namespaces: not the "
			 "operator",
			 (unsigned)uid, (int)peer->pid);
		return -EPERM;
	}
	if (self_netns(dev, ino))
		return 0;
	g = netns_guest(e, dev, ino, &any);
	if (g) {
		snprintf(why, whylen,
			 "uid %u in network namespace of guest '%s' is not the "
			 "operator",
			 (unsigned)uid, g);
		return -EPERM;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Commands. */

struct msg {
	char *p;
	size_t len, cap;
};

static void msg_add(struct msg *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void msg_add(struct msg *m, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;
	char *np;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	np = realloc(m->p, m->len + (size_t)n + 1);
	if (!np)
		return;
	m->p = np;
	memcpy(m->p + m->len, buf, (size_t)n + 1);
	m->len += (size_t)n;
}

/*
 * The afxdp NSM installs a guest's XDP source ACL once (nsm_afxdp.c
 * acl_install): it cannot change under a running guest.
 */
static bool acl_changed_on_afxdp(const struct nk_guest *g,
				 const struct nk_guest_conf *n)
{
	return !strcmp(g->nsm->conf.type, "afxdp") &&
	       (g->conf.nr_acl != n->nr_acl ||
		memcmp(g->conf.acl, n->acl, sizeof(n->acl)) ||
		memcmp(g->conf.acl_deny, n->acl_deny, sizeof(n->acl_deny)));
}

/*
 * Gives g the policy n at once (quotas and rules are read where they
 * apply, so the next operation sees them; bufs= sizes new connections).
 * Processes whose uid n no longer allows are disconnected. Returns how
 * many were.
 */
static unsigned apply_conf(struct nk_engine *e, struct nk_guest *g,
			   const struct nk_guest_conf *n)
{
	struct nk_list *p, *t;
	unsigned cut = 0;

	g->conf = *n;
	nk_list__for_each_safe(p, t, &g->conns)
	{
		struct nk_conn *c = nk_container_of(p, struct nk_conn, glink);

		if (!nk_guest_conf__uid_ok(&g->conf, c->uid))
			continue;
		nk_warn("guest %s conn %u (pid %d): uid %d no longer allowed, "
			"disconnecting",
			g->conf.name, c->id, (int)c->pid, (int)c->uid);
		nk_ctl__drop(e->ctl, c->ctl);
		cut++;
	}
	return cut;
}

static void evict(struct nk_engine *e, struct nk_guest *g, const char *why)
{
	nk_warn("guest %s evicted (%s): %u connections, %u sockets, %u "
		"hand-overs",
		g->conf.name, why, g->nr_conns, g->nr_socks, g->nr_handovers);
	nk_engine__evict(e, g);
}

/* Moves g (evicted first) to the NSM its new policy names. */
static void move_nsm(struct nk_guest *g, struct nk_nsm *to)
{
	if (g->nsm == to)
		return;
	g->nsm->nr_guests--;
	g->nsm = to;
	to->nr_guests++;
}

static int cmd_evict(struct nk_engine *e, const char *name, struct msg *m)
{
	struct nk_guest *g = nk_engine__guest_find(e, name);
	unsigned conns, socks, hos;

	if (!g) {
		msg_add(m, "no guest '%s'", name);
		return -ENOENT;
	}
	conns = g->nr_conns;
	socks = g->nr_socks;
	hos = g->nr_handovers;
	evict(e, g, "nkctl evict");
	msg_add(m,
		"evicted guest '%s': %u connections, %u sockets, %u "
		"hand-overs%s",
		name, conns, socks, hos,
		g->from_config ? " (its config line lets it attach again)"
			       : "");
	return 0;
}

static int cmd_set(struct nk_engine *e, const char *name, const char *arg,
		   struct msg *m)
{
	struct nk_guest *g = nk_engine__guest_find(e, name);
	struct nk_guest_conf n;
	char err[512];
	unsigned cut;

	if (!g) {
		msg_add(m, "no guest '%s'", name);
		return -ENOENT;
	}
	n = g->conf;
	if (nk_guest_conf__set(&n, arg, err, sizeof(err))) {
		msg_add(m, "%s", err);
		return -EINVAL;
	}
	if (acl_changed_on_afxdp(g, &n)) {
		msg_add(m,
			"guest %s: acl_allow=/acl_deny= of a guest on afxdp "
			"NSM '%s' need an nkd restart",
			name, g->nsm->conf.name);
		return -EINVAL;
	}
	cut = apply_conf(e, g, &n);
	nk_info("guest %s: policy set at run time: %s", name, arg);
	msg_add(m, "guest '%s': %s", name, arg);
	if (cut)
		msg_add(m,
			" (%u processes whose uid is no longer allowed "
			"disconnected)",
			cut);
	return 0;
}

static bool nsm_conf_eq(const struct nk_nsm_conf *a,
			const struct nk_nsm_conf *b)
{
	return !memcmp(a, b, sizeof(*a));
}

/* NSMs cannot change while nkd runs: the reload says which one did. */
static int check_nsms(struct nk_engine *e, const struct nk_config *n, char *msg,
		      size_t len)
{
	for (unsigned i = 0; i < e->nr_nsms; i++) {
		const struct nk_nsm_conf *o = &e->nsms[i].conf;
		bool found = false;

		for (unsigned j = 0; j < n->nr_nsms && !found; j++) {
			if (strcmp(n->nsms[j].name, o->name))
				continue;
			found = true;
			if (!nsm_conf_eq(o, &n->nsms[j]) || i != j) {
				snprintf(msg, len,
					 "nsm %s changed: NSM changes need a "
					 "restart; the old config stays",
					 o->name);
				return -EINVAL;
			}
		}
		if (!found) {
			snprintf(msg, len,
				 "nsm %s removed: NSM changes need a restart; "
				 "the old config stays",
				 o->name);
			return -EINVAL;
		}
	}
	if (n->nr_nsms != e->nr_nsms) {
		snprintf(msg, len,
			 "nsm %s added: NSM changes need a restart; the old "
			 "config stays",
			 n->nsms[e->nr_nsms].name);
		return -EINVAL;
	}
	return 0;
}

static const char *effective_nsm(const struct nk_config *cfg,
				 const struct nk_guest_conf *g)
{
	return g->nsm[0] ? g->nsm : cfg->nsms[0].name;
}

int nk_admin__reload(struct nk_engine *e, char *msg, size_t msglen)
{
	const char *path = e->admin.config_path;
	unsigned same = 0, updated = 0, evicted = 0, added = 0, cut = 0;
	struct nk_list *p, *t;
	struct nk_config n;
	int ret;

	if (!path[0]) {
		snprintf(msg, msglen,
			 "nkd runs without --config: there is no file to "
			 "reload");
		nk_warn("reload: %s", msg);
		return -ENOENT;
	}
	/* Read and checked whole before anything changes. */
	ret = nk_config__load(path, &n, msg, msglen);
	if (ret)
		goto refused;
	ret = check_nsms(e, &n, msg, msglen);
	if (!ret) {
		nk_list__for_each_safe(p, t, &e->guests)
		{
			struct nk_guest *g =
				nk_container_of(p, struct nk_guest, link);
			const struct nk_guest_conf *gc =
				nk_config__guest(&n, g->conf.name);

			if (gc &&
			    !strcmp(effective_nsm(&n, gc), g->nsm->conf.name) &&
			    acl_changed_on_afxdp(g, gc)) {
				snprintf(msg, msglen,
					 "%s: guest %s: acl_allow=/acl_deny= "
					 "of a guest on afxdp NSM '%s' need a "
					 "restart; the old config stays",
					 path, g->conf.name, g->nsm->conf.name);
				ret = -EINVAL;
				break;
			}
		}
	}
	if (ret) {
		nk_config__free(&n);
refused:
		e->admin.reload_failures++;
		nk_warn("reload of %s refused: %s", path, msg);
		return ret;
	}

	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);
		const struct nk_guest_conf *gc =
			nk_config__guest(&n, g->conf.name);
		struct nk_guest_conf def;
		struct nk_nsm *to;

		if (!gc) {
			if (!n.unknown_allow) {
				/* Gone from the config, or unknown: out. */
				if (g->nr_conns || g->nr_socks ||
				    g->nr_handovers) {
					evict(e, g,
					      g->from_config
						      ? "removed from the config"
						      : "unknown guests denied");
					evicted++;
				}
				g->from_config = false; /* gc frees it */
				continue;
			}
			if (!g->from_config) {
				same++; /* an unknown guest stays one */
				continue;
			}
			/* Kept as an unknown guest, with the defaults. */
			nk_guest_conf__defaults(&def, g->conf.name);
			gc = &def;
		}
		if (!memcmp(&g->conf, gc, sizeof(*gc)) &&
		    g->from_config == (gc != &def)) {
			same++;
			continue;
		}
		to = nk_engine__nsm_by_name(e, effective_nsm(&n, gc));
		if (to && to != g->nsm) {
			evict(e, g, "its nsm changed");
			move_nsm(g, to);
			evicted++;
		}
		cut += apply_conf(e, g, gc);
		g->from_config = gc != &def;
		updated++;
		nk_info("guest %s: policy reloaded", g->conf.name);
	}
	for (unsigned i = 0; i < n.nr_guests; i++) {
		if (nk_engine__guest_find(e, n.guests[i].name))
			continue;
		if (!nk_engine__guest_new(e, &n.guests[i], true)) {
			/* Out of memory: the guest is added on its attach. */
			nk_warn("reload: guest %s: out of memory",
				n.guests[i].name);
			continue;
		}
		added++;
	}
	nk_config__free(&e->cfg);
	e->cfg = n;
	e->admin.reloads++;
	snprintf(msg, msglen,
		 "reloaded %s: %u guests unchanged, %u updated, %u evicted, "
		 "%u added%s",
		 path, same, updated, evicted, added,
		 cut ? " (processes whose uid is no longer allowed were "
		       "disconnected)"
		     : "");
	nk_info("%s", msg);
	return 0;
}

int nk_admin__command(struct nk_engine *e, const struct nk_ctl_admin *a,
		      char **text, size_t *len)
{
	char guest[NK_GUEST_NAME_MAX + 1], arg[NK_ADMIN_ARG_MAX + 1];
	struct msg m = { 0 };
	char buf[1024];
	int ret;

	/* Copies with a terminator whatever the client sent. */
	memcpy(guest, a->guest, sizeof(a->guest));
	guest[sizeof(a->guest)] = '\0';
	memcpy(arg, a->arg, sizeof(a->arg));
	arg[sizeof(a->arg)] = '\0';
	switch (a->cmd) {
	case NK_ADMIN_EVICT:
		ret = cmd_evict(e, guest, &m);
		break;
	case NK_ADMIN_SET:
		ret = cmd_set(e, guest, arg, &m);
		break;
	case NK_ADMIN_RELOAD:
		ret = nk_admin__reload(e, buf, sizeof(buf));
		msg_add(&m, "%s", buf);
		break;
	default:
		msg_add(&m, "unknown command %u", a->cmd);
		ret = -EINVAL;
	}
	*text = m.p;
	*len = m.p ? m.len : 0;
	return ret;
}
