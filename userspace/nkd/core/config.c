// SPDX-License-Identifier: MIT
/*
 * Config file parser. One statement per line, '#' starts a comment:
 *   nsm NAME type=kernel [netns=PATH] [resolv=PATH]
 *   nsm NAME type=afxdp dev=IFACE addr=A/P [addr=...] [gw=A] [queues=N]
 *            [backend=afxdp|packet|tap] [mode=native|skb] [netns=PATH]
 *            [synq=N] [synq_total=N]
 *   guest NAME [nsm=] [uid=]... [max_sockets=] [max_inflight=] [bufs=]
 *              [weight=] [max_conns=] [bind=]... [acl_allow=]... [acl_deny=]...
 *              [rate=|rate_tx=|rate_rx=] [burst=]
 *              [gid=]... [netns=PATH]... [cgroup=PATH]... [attach=PATH]
 *              [host_access=allow|deny] [egress=]...
 *   unknown_guests allow|deny
 *   abuse_limit N
 *   operator uid=N|gid=N ...
 *   max_ctl_per_uid N
 *   hello_timeout SECONDS
 *   socket_budget N | memory_budget MIB | default_share PCT | resolve_queue N
 *   (guest key reserve=N: see budget.c)
 * A line ending in '\' continues on the next one (messages cite the first).
 * uid= and gid= take names too, looked up when the file is read.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define MAX_LINE 4096
#define MAX_CONFIG_BYTES (1u << 20)

static void seterr(char *err, size_t errlen, const char *fname, unsigned line,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void seterr(char *err, size_t errlen, const char *fname, unsigned line,
		   const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return;
	n = snprintf(err, errlen, "%s:%u: ", fname, line);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
}

void nk_guest_conf__defaults(struct nk_guest_conf *g, const char *name)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->max_sockets = NK_DEF_MAX_SOCKETS;
	g->max_inflight = NK_DEF_MAX_INFLIGHT;
	g->bufs = NK_DEF_BUFS;
	g->weight = NK_DEF_WEIGHT;
	g->max_conns = NK_DEF_MAX_CONNS;
	g->shm_queue = NK_DEF_SHM_QUEUE;
	g->idx = -1;
}

int nk_config__default(struct nk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nsms = calloc(1, sizeof(*cfg->nsms));
	if (!cfg->nsms)
		return -ENOMEM;
	snprintf(cfg->nsms[0].name, sizeof(cfg->nsms[0].name), "kernel0");
	snprintf(cfg->nsms[0].type, sizeof(cfg->nsms[0].type), "kernel");
	cfg->nr_nsms = 1;
	cfg->unknown_allow = true;
	cfg->abuse_limit = NK_DEF_ABUSE_LIMIT;
	cfg->max_ctl_per_uid = NK_DEF_MAX_CTL_PER_UID;
	cfg->hello_timeout_s = NK_DEF_HELLO_TIMEOUT_S;
	return 0;
}

void nk_config__free(struct nk_config *cfg)
{
	free(cfg->nsms);
	free(cfg->guests);
	memset(cfg, 0, sizeof(*cfg));
}

const struct nk_guest_conf *nk_config__guest(const struct nk_config *cfg,
					     const char *name)
{
	for (unsigned i = 0; i < cfg->nr_guests; i++)
		if (!strcmp(cfg->guests[i].name, name))
			return &cfg->guests[i];
	return NULL;
}

/* Names appear in JSON and Prometheus labels: keep them boring. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= NK_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return false;
	return true;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* A number, or a user (group) name looked up now (a reload looks again). */
static int parse_id(const char *s, bool group, uint32_t *out)
{
	if (isdigit((unsigned char)*s))
		return parse_u32(s, 0, UINT32_MAX - 1, out);
	if (!*s)
		return -EINVAL;
	if (group) {
		struct group *gr = getgrnam(s);

		if (!gr)
			return -ENOENT;
		*out = (uint32_t)gr->gr_gid;
	} else {
		struct passwd *pw = getpwnam(s);

		if (!pw)
			return -ENOENT;
		*out = (uint32_t)pw->pw_uid;
	}
	return 0;
}

static int parse_ports(const char *s, struct nk_bind_rule *r)
{
	char buf[32];
	char *dash;
	uint32_t lo, hi;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	if (parse_u32(buf, 0, 65535, &lo))
		return -EINVAL;
	hi = lo;
	if (dash && parse_u32(dash + 1, 0, 65535, &hi))
		return -EINVAL;
	if (hi < lo)
		return -EINVAL;
	r->port_lo = (uint16_t)lo;
	r->port_hi = (uint16_t)hi;
	return 0;
}

int nk_bind_rule__parse(const char *s, struct nk_bind_rule *r)
{
	char addr[INET6_ADDRSTRLEN + 8];
	const char *ports, *slash_end;
	const char *p;
	uint32_t prefix;
	size_t n;

	memset(r, 0, sizeof(*r));
	if (*s == '[') {
		p = strchr(s, ']');
		if (!p)
			return -EINVAL;
		n = (size_t)(p - s - 1);
		r->family = AF_INET6;
		s++;
		slash_end = p + 1;
	} else {
		p = strpbrk(s, "/:");
		if (!p)
			return -EINVAL;
		n = (size_t)(p - s);
		r->family = AF_INET;
		slash_end = p;
	}
	if (n == 0 || n >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(r->family, addr, r->addr) != 1)
		return -EINVAL;
	r->prefix = r->family == AF_INET ? 32 : 128;
	p = slash_end;
	if (*p == '/') {
		char num[8];
		const char *colon = strchr(p, ':');

		if (!colon || (size_t)(colon - p - 1) >= sizeof(num))
			return -EINVAL;
		memcpy(num, p + 1, (size_t)(colon - p - 1));
		num[colon - p - 1] = '\0';
		if (parse_u32(num, 0, r->prefix, &prefix))
			return -EINVAL;
		r->prefix = prefix;
		p = colon;
	}
	if (*p != ':')
		return -EINVAL;
	ports = p + 1;
	return parse_ports(ports, r);
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, full))
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));

		if ((a[full] & mask) != (b[full] & mask))
			return false;
	}
	return true;
}

int nk_guest_conf__uid_ok(const struct nk_guest_conf *g, uid_t uid)
{
	if (!g->nr_uids)
		return 0;
	for (unsigned i = 0; i < g->nr_uids; i++)
		if (g->uids[i] == uid)
			return 0;
	return -EPERM;
}

bool nk_guest_conf__has_match(const struct nk_guest_conf *g)
{
	return g->nr_uids || g->nr_gids || g->nr_netns || g->nr_cgroups ||
	       g->attach[0] || g->vm_channel[0];
}

/* path is cgroup dir or below it ("/a" matches "/a" and "/a/b", not "/ab"). */
static bool cgroup_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (!strcmp(dir, "/"))
		return path[0] == '/';
	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

static bool gid_in(const struct nk_peer *p, gid_t gid)
{
	if (p->gid == gid)
		return true;
	for (unsigned i = 0; i < p->nr_groups && i < NK_PEER_MAX_GROUPS; i++)
		if (p->groups[i] == gid)
			return true;
	return false;
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -EPERM)

int nk_guest_conf__match(const struct nk_guest_conf *g, const struct nk_peer *p,
			 char *why, size_t whylen)
{
	bool via_own = p->attach >= 0 &&
		       (!strcmp(p->attach_path, g->attach) ||
			!strcmp(p->attach_path, g->vm_channel));
	unsigned i;

	if (p->attach >= 0 && !via_own)
		return WHY("this attach socket is only for another guest");
	/* A VM guest is its channel: nothing else attaches as it. */
	if (g->vm_channel[0])
		return via_own ? 0
			       : WHY("guest '%s' is a VM: it attaches only "
				     "through its VM channel",
				     g->name);
	if (g->attach[0] && !via_own)
		return WHY("guest '%s' attaches only through its own socket "
			   "(attach=)",
			   g->name);
	if (!nk_guest_conf__has_match(g)) {
		if (p->uid != geteuid())
			return WHY("uid %u does not match guest '%s' (config: "
				   "no match key, only nkd's uid %u)",
				   (unsigned)p->uid, g->name,
				   (unsigned)geteuid());
		return 0;
	}
	if (g->nr_uids && nk_guest_conf__uid_ok(g, p->uid))
		return WHY("uid %u does not match guest '%s' (config)",
			   (unsigned)p->uid, g->name);
	for (i = 0; i < g->nr_gids && !gid_in(p, g->gids[i]); i++)
		;
	if (g->nr_gids && i == g->nr_gids)
		return WHY("gid %u does not match guest '%s' (config)",
			   (unsigned)p->gid, g->name);
	for (i = 0; i < g->nr_netns; i++)
		if (p->netns_ino && g->netns[i].dev == p->netns_dev &&
		    g->netns[i].ino == p->netns_ino)
			break;
	if (g->nr_netns && i == g->nr_netns)
		return WHY("network namespace %llu does not match guest '%s' "
			   "(config)",
			   (unsigned long long)p->netns_ino, g->name);
	for (i = 0; i < g->nr_cgroups; i++)
		if (p->cgroup[0] && cgroup_under(p->cgroup, g->cgroups[i]))
			break;
	if (g->nr_cgroups && i == g->nr_cgroups)
		return WHY("cgroup '%s' does not match guest '%s' (config)",
			   p->cgroup[0] ? p->cgroup : "?", g->name);
	return 0;
}

int nk_guest_conf__bind_ok(const struct nk_guest_conf *g,
			   const struct sockaddr *sa, uid_t uid)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0,	0,
					      0, 0, 0, 0, 0xff, 0xff };
	uint8_t addr[16];
	int family;
	uint16_t port;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		family = AF_INET;
		memcpy(addr, &in->sin_addr, 4);
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		port = ntohs(in6->sin6_port);
		/* A v4-mapped address binds the IPv4 address: v4 rules. */
		if (!memcmp(in6->sin6_addr.s6_addr, v4mapped, 12)) {
			family = AF_INET;
			memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			family = AF_INET6;
			memcpy(addr, in6->sin6_addr.s6_addr, 16);
		}
	} else {
		return -EAFNOSUPPORT;
	}

	if (!g->nr_binds)
		return (port == 0 || port >= 1024 || uid == 0) ? 0 : -EACCES;
	for (unsigned i = 0; i < g->nr_binds; i++) {
		const struct nk_bind_rule *r = &g->binds[i];

		if (r->family != family ||
		    !prefix_match(r->addr, addr, r->prefix))
			continue;
		if (port == 0 || (port >= r->port_lo && port <= r->port_hi))
			return 0;
	}
	return -EACCES;
}

/* ---- ports and destinations (portown.c) ---- */

/* AF_INET/AF_INET6 address and port of sa, v4-mapped as IPv4. */
static int sa_addr(const struct sockaddr *sa, int *family, uint8_t addr[16],
		   uint16_t *port)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0,	0,
					      0, 0, 0, 0, 0xff, 0xff };

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		*family = AF_INET;
		memcpy(addr, &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		*port = ntohs(in6->sin6_port);
		if (!memcmp(in6->sin6_addr.s6_addr, v4mapped, 12)) {
			*family = AF_INET;
			memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, in6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

int nk_guest_conf__egress_ok(const struct nk_guest_conf *g,
			     const struct sockaddr *sa)
{
	uint8_t addr[16];
	uint16_t port;
	int family;

	if (!g->nr_egress)
		return 0;
	if (sa_addr(sa, &family, addr, &port))
		return -ENETUNREACH;
	for (unsigned i = 0; i < g->nr_egress; i++) {
		const struct nk_bind_rule *r = &g->egress[i];

		if (r->family == family &&
		    prefix_match(r->addr, addr, r->prefix) &&
		    port >= r->port_lo && port <= r->port_hi)
			return 0;
	}
	return -ENETUNREACH;
}

/* 1: not one of these keys, 0: taken, -EINVAL: bad value. */
static int guest_port_key(struct nk_guest_conf *g, const char *key,
			  const char *val)
{
	if (!strcmp(key, "host_access")) {
		if (strcmp(val, "allow") && strcmp(val, "deny"))
			return -EINVAL;
		g->host_access = !strcmp(val, "allow");
		return 0;
	}
	if (!strcmp(key, "shm")) {
		if (strcmp(val, "on") && strcmp(val, "off"))
			return -EINVAL;
		g->shm = !strcmp(val, "on");
		return 0;
	}
	if (!strcmp(key, "shm_peers")) {
		if (strlen(val) >= sizeof(g->shm_peers))
			return -EINVAL;
		strcpy(g->shm_peers, val);
		return 0;
	}
	if (!strcmp(key, "egress")) {
		if (g->nr_egress == NK_MAX_BINDS ||
		    nk_bind_rule__parse(val, &g->egress[g->nr_egress]))
			return -EINVAL;
		g->nr_egress++;
		return 0;
	}
	return 1;
}

struct parser {
	struct nk_config cfg;
	const char *fname;
	unsigned line;
	unsigned *guest_lines; /* line of each guest, for late nsm= checks */
	unsigned *nsm_lines; /* line of each nsm, cited for a duplicate */
	char *err;
	size_t errlen;
	/* nk_config__check: every error, one a line, in errs */
	bool all;
	char *errs;
	size_t errslen, errsused;
	unsigned nerrs;
};

static int grow(void **arr, unsigned n, size_t sz)
{
	void *p = realloc(*arr, (n + 1) * sz);

	if (!p)
		return -ENOMEM;
	*arr = p;
	return 0;
}

#define PERR(P, ...)                                                        \
	(seterr((P)->err, (P)->errlen, (P)->fname, (P)->line, __VA_ARGS__), \
	 -EINVAL)

/* "A.B.C.D" or "A.B.C.D/P" (IPv4); prefix 32 when absent if want_prefix. */
static int parse_v4_prefix(const char *s, bool want_prefix,
			   struct nk_nsm_addr *out)
{
	char buf[32];
	char *slash;
	struct in_addr a;
	uint32_t pfx = 32;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash) {
		if (!want_prefix)
			return -EINVAL;
		*slash++ = '\0';
		if (parse_u32(slash, 0, 32, &pfx))
			return -EINVAL;
	}
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -EINVAL;
	out->addr = a.s_addr;
	out->prefix = pfx;
	return 0;
}

/*
 * The afxdp keys. Returns 0 when key was one of them and valid, 1 when it
 * is not an afxdp key, -EINVAL (n->name[0] cleared as a marker) when the
 * value is bad: the caller reports a generic message for that key.
 */
static int nsm_afxdp_key(struct nk_nsm_conf *n, const char *key,
			 const char *val)
{
	struct nk_nsm_addr a;

	if (!strcmp(key, "dev")) {
		if (!*val || strlen(val) >= sizeof(n->dev) ||
		    strchr(val, '/') || !strcmp(val, ".") || !strcmp(val, ".."))
			return -EINVAL;
		strcpy(n->dev, val);
	} else if (!strcmp(key, "addr")) {
		if (n->nr_addrs == NK_NSM_MAX_ADDRS ||
		    parse_v4_prefix(val, true, &a) || !a.addr)
			return -EINVAL;
		n->addrs[n->nr_addrs++] = a;
	} else if (!strcmp(key, "gw")) {
		if (parse_v4_prefix(val, false, &a))
			return -EINVAL;
		n->gw = a.addr;
	} else if (!strcmp(key, "queues")) {
		if (parse_u32(val, 1, NK_NSM_MAX_QUEUES, &n->queues))
			return -EINVAL;
	} else if (!strcmp(key, "backend")) {
		if (strcmp(val, "afxdp") && strcmp(val, "packet") &&
		    strcmp(val, "tap"))
			return -EINVAL;
		strcpy(n->backend, val);
	} else if (!strcmp(key, "mode")) {
		if (strcmp(val, "native") && strcmp(val, "skb"))
			return -EINVAL;
		strcpy(n->mode, val);
	} else if (!strcmp(key, "synq")) {
		if (parse_u32(val, 1, 65536, &n->synq))
			return -EINVAL;
	} else if (!strcmp(key, "synq_total")) {
		if (parse_u32(val, 1, 1u << 20, &n->synq_total))
			return -EINVAL;
	} else {
		return 1;
	}
	return 0;
}

/* Completes an afxdp NSM (defaults) or refuses afxdp keys on others. */
static int check_nsm_afxdp(struct parser *p, struct nk_nsm_conf *n,
			   const char *seen_key)
{
	if (strcmp(n->type, "afxdp")) {
		if (seen_key)
			return PERR(p, "nsm %s: %s= is only for type=afxdp",
				    n->name, seen_key);
		return 0;
	}
	if (!n->dev[0])
		return PERR(p, "nsm %s: type=afxdp needs dev=", n->name);
	if (!n->nr_addrs)
		return PERR(p, "nsm %s: type=afxdp needs addr=A.B.C.D/P",
			    n->name);
	if (!n->queues)
		n->queues = 1;
	if (!n->backend[0])
		strcpy(n->backend, "afxdp");
	if (!n->mode[0])
		strcpy(n->mode, "native");
	return 0;
}

static int parse_nsm(struct parser *p, char **tok, int ntok)
{
	struct nk_nsm_conf n;
	const char *seen_afxdp_key = NULL;
	int ret;

	memset(&n, 0, sizeof(n));
	if (ntok < 2)
		return PERR(p, "nsm: missing name");
	if (!name_ok(tok[1]))
		return PERR(p, "nsm: bad name '%s' (letters, digits, '._-')",
			    tok[1]);
	for (unsigned i = 0; i < p->cfg.nr_nsms; i++)
		if (!strcmp(p->cfg.nsms[i].name, tok[1]))
			return PERR(p, "nsm '%s' already defined at %s:%u",
				    tok[1], p->fname, p->nsm_lines[i]);
	strcpy(n.name, tok[1]);
	for (int i = 2; i < ntok; i++) {
		char *eq = strchr(tok[i], '=');

		if (!eq)
			return PERR(p, "nsm %s: expected key=value, got '%s'",
				    n.name, tok[i]);
		*eq++ = '\0';
		if (!strcmp(tok[i], "type")) {
			if (strcmp(eq, "kernel") && strcmp(eq, "afxdp"))
				return PERR(p,
					    "nsm %s: unknown type '%s' "
					    "(supported: kernel, afxdp)",
					    n.name, eq);
			strcpy(n.type, eq);
		} else if ((ret = nsm_afxdp_key(&n, tok[i], eq)) <= 0) {
			if (ret)
				return PERR(p, "nsm %s: bad %s '%s'", n.name,
					    tok[i], eq);
			seen_afxdp_key = tok[i];
		} else if (!strcmp(tok[i], "netns")) {
			if (!*eq || strlen(eq) >= sizeof(n.netns))
				return PERR(p, "nsm %s: bad netns path",
					    n.name);
			strcpy(n.netns, eq);
		} else if (!strcmp(tok[i], "resolv")) {
			if (eq[0] != '/' || strlen(eq) >= sizeof(n.resolv))
				return PERR(p,
					    "nsm %s: bad resolv path '%s' "
					    "(an absolute file name)",
					    n.name, eq);
			strcpy(n.resolv, eq);
		} else {
			return PERR(p, "nsm %s: unknown key '%s'", n.name,
				    tok[i]);
		}
	}
	if (!n.type[0])
		return PERR(p, "nsm %s: type= is required", n.name);
	ret = check_nsm_afxdp(p, &n, seen_afxdp_key);
	if (ret)
		return ret;
	if (grow((void **)&p->cfg.nsms, p->cfg.nr_nsms, sizeof(n)) ||
	    grow((void **)&p->nsm_lines, p->cfg.nr_nsms, sizeof(unsigned)))
		return -ENOMEM;
	p->nsm_lines[p->cfg.nr_nsms] = p->line;
	p->cfg.nsms[p->cfg.nr_nsms++] = n;
	return 0;
}

/*
 * The identity match keys of a guest (docs/config.md "Who is which
 * guest"). 0 if key is one of them (*ret: 0 or the error), 1 if not.
 */
static int match_key(struct parser *p, struct nk_guest_conf *g, const char *key,
		     const char *val, int *ret)
{
	struct stat st;
	uint32_t v;

	*ret = 0;
	if (!strcmp(key, "gid")) {
		if (g->nr_gids == NK_MAX_MATCH)
			*ret = PERR(p, "guest %s: more than %u gid=", g->name,
				    NK_MAX_MATCH);
		else if (parse_id(val, true, &v))
			*ret = PERR(p,
				    "guest %s: bad gid '%s' (a number or a "
				    "group name)",
				    g->name, val);
		else
			g->gids[g->nr_gids++] = (gid_t)v;
	} else if (!strcmp(key, "netns")) {
		if (g->nr_netns == NK_MAX_MATCH)
			*ret = PERR(p, "guest %s: more than %u netns=", g->name,
				    NK_MAX_MATCH);
		else if (stat(val, &st))
			*ret = PERR(p, "guest %s: netns %s: %s", g->name, val,
				    strerror(errno));
		else {
			g->netns[g->nr_netns].dev = st.st_dev;
			g->netns[g->nr_netns++].ino = st.st_ino;
		}
	} else if (!strcmp(key, "cgroup")) {
		size_t n = strlen(val);

		while (n > 1 && val[n - 1] == '/')
			n--;
		if (g->nr_cgroups == NK_MAX_MATCH)
			*ret = PERR(p,
				    "guest %s: more than %u cgroup=", g->name,
				    NK_MAX_MATCH);
		else if (val[0] != '/' || n >= NK_PEER_CGROUP_MAX)
			*ret = PERR(p,
				    "guest %s: bad cgroup '%s' (a cgroup v2 "
				    "path such as /system.slice/web.service)",
				    g->name, val);
		else {
			memcpy(g->cgroups[g->nr_cgroups], val, n);
			g->cgroups[g->nr_cgroups++][n] = '\0';
		}
	} else if (!strcmp(key, "vm_region") || !strcmp(key, "vm_channel")) {
		char *dst = key[3] == 'r' ? g->vm_region : g->vm_channel;

		if (val[0] != '/' || strlen(val) >= 108 - 16)
			*ret = PERR(p,
				    "guest %s: %s= needs an absolute path "
				    "shorter than 92 bytes",
				    g->name, key);
		else
			strcpy(dst, val);
	} else if (!strcmp(key, "vm_size")) {
		unsigned long long sz;
		char *end;

		errno = 0;
		sz = strtoull(val, &end, 10);
		if (!errno && (*end == 'M' || *end == 'm'))
			sz <<= 20, end++;
		else if (!errno && (*end == 'G' || *end == 'g'))
			sz <<= 30, end++;
		/* QEMU's ivshmem BAR is a power of two. */
		if (errno || *end || sz < (1ull << 20) || sz > (1ull << 36) ||
		    (sz & (sz - 1)))
			*ret = PERR(p,
				    "guest %s: vm_size= must be a power of "
				    "two from 1M to 64G (e.g. 64M)",
				    g->name);
		else
			g->vm_size = sz;
	} else if (!strcmp(key, "attach")) {
		if (val[0] != '/' || strlen(val) >= 108 - 16)
			*ret = PERR(p,
				    "guest %s: attach= needs an absolute "
				    "path shorter than 92 bytes",
				    g->name);
		else if (g->attach[0])
			*ret = PERR(p, "guest %s: only one attach=", g->name);
		else
			strcpy(g->attach, val);
		for (unsigned i = 0; !*ret && i < p->cfg.nr_guests; i++)
			if (!strcmp(p->cfg.guests[i].attach, val))
				*ret = PERR(p,
					    "guest %s: attach=%s is already "
					    "guest %s's",
					    g->name, val,
					    p->cfg.guests[i].name);
	} else {
		return 1;
	}
	return 0;
}

/* A rate in bits/s ("100M", "1.5G", "800kbit", "64000"); k, M, G are
 * powers of 1000, as tc reads "kbit". 0: no cap. */
static int parse_rate(const char *s, uint64_t *bps)
{
	char *end;
	double v, mult = 1;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	v = strtod(s, &end);
	if (end == s || !(v >= 0 && v <= 1e13)) /* NaN, inf */
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		mult = 1e3;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1e6;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1e9;
		end++;
		break;
	default:
		break;
	}
	if (!strcmp(end, "bit"))
		end += 3;
	if (*end)
		return -EINVAL;
	v *= mult;
	/* 0: no cap; a cap below 8 kbit/s is a typo, above 1 Tbit/s too. */
	if (v != 0 && (v < 8e3 || v > 1e12))
		return -EINVAL;
	*bps = (uint64_t)v;
	return 0;
}

/* burst= bytes, with k or m for KiB, MiB (as tc's "burst 32k"). */
static int parse_burst(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end == 'k' || *end == 'K') {
		v *= 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v *= 1024 * 1024;
		end++;
	}
	if (*end == 'b')
		end++;
	if (*end || v < 1500 || v > (1ull << 30))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_guest(struct parser *p, char **tok, int ntok)
{
	struct nk_guest_conf g;
	uint32_t v;
	int ret;

	if (ntok < 2)
		return PERR(p, "guest: missing name");
	if (!name_ok(tok[1]))
		return PERR(p, "guest: bad name '%s' (letters, digits, '._-')",
			    tok[1]);
	for (unsigned i = 0; i < p->cfg.nr_guests; i++)
		if (!strcmp(p->cfg.guests[i].name, tok[1]))
			return PERR(p, "guest '%s' already defined at %s:%u",
				    tok[1], p->fname, p->guest_lines[i]);
	nk_guest_conf__defaults(&g, tok[1]);
	for (int i = 2; i < ntok; i++) {
		char *key = tok[i], *val = strchr(tok[i], '=');

		if (!val)
			return PERR(p, "guest %s: expected key=value, got '%s'",
				    g.name, key);
		*val++ = '\0';
		if (!strcmp(key, "nsm")) {
			if (!name_ok(val))
				return PERR(p, "guest %s: bad nsm name",
					    g.name);
			strcpy(g.nsm, val);
		} else if (!strcmp(key, "uid")) {
			if (g.nr_uids == NK_MAX_UIDS)
				return PERR(p, "guest %s: more than %u uid=",
					    g.name, NK_MAX_UIDS);
			if (parse_id(val, false, &v))
				return PERR(p,
					    "guest %s: bad uid '%s' (a number "
					    "or a user name)",
					    g.name, val);
			g.uids[g.nr_uids++] = (uid_t)v;
		} else if (!strcmp(key, "bind")) {
			if (g.nr_binds == NK_MAX_BINDS)
				return PERR(p, "guest %s: more than %u bind=",
					    g.name, NK_MAX_BINDS);
			if (nk_bind_rule__parse(val, &g.binds[g.nr_binds]))
				return PERR(p,
					    "guest %s: bad bind '%s' (want "
					    "ADDR/PREFIX:LO-HI, IPv6 in [])",
					    g.name, val);
			g.nr_binds++;
		} else if (!strcmp(key, "acl_allow") ||
			   !strcmp(key, "acl_deny")) {
			struct nk_nsm_addr a;
			struct nk_bind_rule *r = &g.acl[g.nr_acl];

			if (g.nr_acl == NK_MAX_BINDS)
				return PERR(p, "guest %s: more than %u acl_*=",
					    g.name, NK_MAX_BINDS);
			if (parse_v4_prefix(val, true, &a))
				return PERR(p,
					    "guest %s: bad %s '%s' (want "
					    "A.B.C.D[/PREFIX])",
					    g.name, key, val);
			memset(r, 0, sizeof(*r));
			r->family = AF_INET;
			memcpy(r->addr, &a.addr, 4);
			r->prefix = a.prefix;
			g.acl_deny[g.nr_acl++] = !strcmp(key, "acl_deny");
		} else if (!match_key(p, &g, key, val, &ret)) {
			if (ret)
				return ret;
		} else if (!strcmp(key, "max_sockets")) {
			if (parse_u32(val, 1, NK_MAX_SOCKETS_LIMIT,
				      &g.max_sockets))
				return PERR(p,
					    "guest %s: max_sockets must be "
					    "1..%u",
					    g.name, NK_MAX_SOCKETS_LIMIT);
		} else if (!strcmp(key, "max_inflight")) {
			if (parse_u32(val, 1, 1u << 20, &g.max_inflight))
				return PERR(p,
					    "guest %s: max_inflight must "
					    "be 1..1048576",
					    g.name);
		} else if (!strcmp(key, "bufs")) {
			if (parse_u32(val, 1, NK_MAX_BUFS_LIMIT, &g.bufs))
				return PERR(p, "guest %s: bufs must be 1..%u",
					    g.name, NK_MAX_BUFS_LIMIT);
		} else if (!strcmp(key, "weight")) {
			if (parse_u32(val, 1, 100, &g.weight))
				return PERR(p,
					    "guest %s: weight must be "
					    "1..100",
					    g.name);
		} else if (!strcmp(key, "rate") || !strcmp(key, "rate_tx") ||
			   !strcmp(key, "rate_rx")) {
			uint64_t bps;

			if (parse_rate(val, &bps))
				return PERR(
					p,
					"guest %s: bad %s '%s' (want bits/s "
					"with k, M or G: 100M; 0 = no cap; "
					"8k..1000G)",
					g.name, key, val);
			if (strcmp(key, "rate_rx"))
				g.rate_bps[0] = bps;
			if (strcmp(key, "rate_tx"))
				g.rate_bps[1] = bps;
		} else if (!strcmp(key, "burst")) {
			if (parse_burst(val, &g.rate_burst))
				return PERR(p,
					    "guest %s: bad burst '%s' (want "
					    "bytes, k or m for KiB, MiB: "
					    "1500..1g)",
					    g.name, val);
		} else if (!strcmp(key, "max_conns")) {
			if (parse_u32(val, 1, 65536, &g.max_conns))
				return PERR(p,
					    "guest %s: max_conns must be "
					    "1..65536",
					    g.name);
		} else if ((ret = guest_port_key(&g, key, val)) <= 0) {
			if (ret)
				return PERR(
					p,
					"guest %s: bad %s '%s' (host_access="
					"allow|deny, egress=ADDR/PREFIX:"
					"LO-HI, at most %u egress=)",
					g.name, key, val, NK_MAX_BINDS);
		} else if (!strcmp(key, "shm_queue")) {
			if (strcmp(val, "0") && parse_burst(val, &g.shm_queue))
				return PERR(
					p,
					"guest %s: bad shm_queue '%s' (want "
					"bytes, k or m for KiB, MiB: 0 or "
					"1500..1g)",
					g.name, val);
			if (!strcmp(val, "0"))
				g.shm_queue = 0;
		} else if (!strcmp(key, "reserve")) {
			if (parse_u32(val, 0, NK_MAX_SOCKETS_LIMIT, &g.reserve))
				return PERR(p,
					    "guest %s: reserve must be 0..%u",
					    g.name, NK_MAX_SOCKETS_LIMIT);
		} else {
			return PERR(p, "guest %s: unknown key '%s'", g.name,
				    key);
		}
	}
	if (g.reserve > g.max_sockets)
		return PERR(p,
			    "guest %s: reserve=%u is more than max_sockets=%u",
			    g.name, g.reserve, g.max_sockets);
	if (!g.vm_channel[0] != !g.vm_region[0] ||
	    !g.vm_channel[0] != !g.vm_size)
		return PERR(p,
			    "guest %s: a VM guest needs vm_region=, vm_size= "
			    "and vm_channel= together",
			    g.name);
	if (g.vm_channel[0] && (g.attach[0] || g.nr_uids || g.nr_gids ||
				g.nr_netns || g.nr_cgroups))
		return PERR(p,
			    "guest %s: a VM guest is its channel: no attach=, "
			    "uid=, gid=, netns= or cgroup=",
			    g.name);
	if (grow((void **)&p->cfg.guests, p->cfg.nr_guests, sizeof(g)) ||
	    grow((void **)&p->guest_lines, p->cfg.nr_guests, sizeof(unsigned)))
		return -ENOMEM;
	p->guest_lines[p->cfg.nr_guests] = p->line;
	g.idx = (int)p->cfg.nr_guests;
	p->cfg.guests[p->cfg.nr_guests++] = g;
	return 0;
}

/* operator uid=N|gid=N ... (repeatable): who may run nkctl (admin.c). */
static int parse_operator(struct parser *p, char **tok, int ntok)
{
	uint32_t v;

	if (ntok < 2)
		return PERR(p, "operator: expected uid=N or gid=N");
	for (int i = 1; i < ntok; i++) {
		bool is_uid = !strncmp(tok[i], "uid=", 4);

		if (!is_uid && strncmp(tok[i], "gid=", 4))
			return PERR(p,
				    "operator: expected uid=N or gid=N, got "
				    "'%s'",
				    tok[i]);
		if (parse_id(tok[i] + 4, !is_uid, &v))
			return PERR(p,
				    "operator: bad %s (a number or a %s name)",
				    tok[i], is_uid ? "user" : "group");
		if ((is_uid ? p->cfg.nr_op_uids : p->cfg.nr_op_gids) ==
		    NK_MAX_UIDS)
			return PERR(p, "operator: more than %u %s", NK_MAX_UIDS,
				    is_uid ? "uids" : "gids");
		if (is_uid)
			p->cfg.op_uids[p->cfg.nr_op_uids++] = (uid_t)v;
		else
			p->cfg.op_gids[p->cfg.nr_op_gids++] = (gid_t)v;
	}
	return 0;
}

/* The budget statements; 1 if tok[0] is not one of them. */
static int parse_budget(struct parser *p, char **tok, int ntok)
{
	struct nk_budget_conf *b = &p->cfg.budget;
	uint32_t v;

	if (!strcmp(tok[0], "socket_budget")) {
		if (ntok != 2 || parse_u32(tok[1], 1, UINT32_MAX, &v))
			return PERR(p, "socket_budget: expected a number >= 1");
		b->sockets = v;
	} else if (!strcmp(tok[0], "memory_budget")) {
		if (ntok != 2 || parse_u32(tok[1], 1, UINT32_MAX, &v))
			return PERR(p, "memory_budget: expected MiB >= 1");
		b->memory = (uint64_t)v << 20;
	} else if (!strcmp(tok[0], "default_share")) {
		if (ntok != 2 || parse_u32(tok[1], 1, 100, &v))
			return PERR(p, "default_share: expected a percentage "
				       "1..100");
		b->share_pct = v;
	} else if (!strcmp(tok[0], "resolve_queue")) {
		if (ntok != 2 || parse_u32(tok[1], 1, 256, &v))
			return PERR(p, "resolve_queue: expected 1..256");
		b->resolve_queue = v;
	} else {
		return 1;
	}
	return 0;
}

static int parse_line(struct parser *p, char *s)
{
	char *tok[2 + 4 * NK_MAX_BINDS + NK_MAX_UIDS + 3 * NK_MAX_MATCH + 17];
	int ntok = 0;
	char *save = NULL, *t;
	uint32_t v;
	int ret;

	for (t = strtok_r(s, " \t\r", &save); t;
	     t = strtok_r(NULL, " \t\r", &save)) {
		if (ntok == (int)(sizeof(tok) / sizeof(tok[0])))
			return PERR(p, "too many words on one line");
		tok[ntok++] = t;
	}
	if (!ntok)
		return 0;
	if (!strcmp(tok[0], "nsm"))
		return parse_nsm(p, tok, ntok);
	if (!strcmp(tok[0], "guest"))
		return parse_guest(p, tok, ntok);
	if (!strcmp(tok[0], "unknown_guests")) {
		if (ntok != 2 ||
		    (strcmp(tok[1], "allow") && strcmp(tok[1], "deny")))
			return PERR(p, "unknown_guests: expected allow or "
				       "deny");
		p->cfg.unknown_allow = !strcmp(tok[1], "allow");
		return 0;
	}
	if (!strcmp(tok[0], "operator"))
		return parse_operator(p, tok, ntok);
	if (!strcmp(tok[0], "abuse_limit")) {
		if (ntok != 2 || parse_u32(tok[1], 1, UINT32_MAX, &v))
			return PERR(p, "abuse_limit: expected a number >= 1");
		p->cfg.abuse_limit = v;
		return 0;
	}
	if (!strcmp(tok[0], "max_ctl_per_uid")) {
		if (ntok != 2 || parse_u32(tok[1], 1, 1u << 20, &v))
			return PERR(p, "max_ctl_per_uid: expected a number "
				       ">= 1");
		p->cfg.max_ctl_per_uid = v;
		return 0;
	}
	if (!strcmp(tok[0], "hello_timeout")) {
		if (ntok != 2 || parse_u32(tok[1], 1, 3600, &v))
			return PERR(p, "hello_timeout: expected seconds, "
				       "1..3600");
		p->cfg.hello_timeout_s = v;
		return 0;
	}
	ret = parse_budget(p, tok, ntok);
	if (ret != 1)
		return ret;
	return PERR(p, "unknown statement '%s'", tok[0]);
}

/* nk_config__check mode: the error in p->err joins the list. */
static void collect(struct parser *p)
{
	size_t n = strlen(p->err);

	p->nerrs++;
	if (!p->errs || p->errsused + n + 2 > p->errslen)
		return;
	memcpy(p->errs + p->errsused, p->err, n);
	p->errsused += n;
	p->errs[p->errsused++] = '\n';
	p->errs[p->errsused] = '\0';
}

/*
 * The next statement from *s into line: physical lines joined while one
 * ends in '\' (comments cut first, so a '\' in a comment continues
 * nothing). p->line becomes the statement's first line; *phys counts
 * physical lines.
 */
static int next_statement(struct parser *p, const char **s, unsigned *phys,
			  char *line, size_t linesz)
{
	size_t used = 0;
	bool more = true, too_long = false;

	line[0] = '\0';
	p->line = *phys + 1;
	while (more && **s) {
		const char *nl = strchr(*s, '\n');
		size_t n = nl ? (size_t)(nl - *s) : strlen(*s);
		const char *hash = memchr(*s, '#', n);

		(*phys)++;
		if (hash)
			n = (size_t)(hash - *s);
		while (n && strchr(" \t\r", (*s)[n - 1]))
			n--;
		more = n && (*s)[n - 1] == '\\';
		if (more)
			n--;
		if (used + n + 2 > linesz) {
			too_long = true;
		} else if (!too_long) {
			memcpy(line + used, *s, n);
			used += n;
			line[used++] = ' ';
			line[used] = '\0';
		}
		*s = nl ? nl + 1 : *s + strlen(*s);
	}
	if (too_long)
		return PERR(p, "line longer than %zu bytes", linesz);
	return 0;
}

static int parse_text(struct parser *p, const char *text)
{
	const char *s = text;
	char line[MAX_LINE], msg[512];
	unsigned phys = 0;
	int ret, first = 0;

	if (p->all) {
		/* Each error goes to msg, then to the list; err: the first */
		msg[0] = '\0';
		p->err = msg;
		p->errlen = sizeof(msg);
	}
#define STOP_OR_GO_ON(R)                     \
	do {                                 \
		if (!p->all)                 \
			return (R);          \
		if ((R) == -ENOMEM)          \
			return (R);          \
		collect(p);                  \
		first = first ? first : (R); \
	} while (0)
	while (*s) {
		ret = next_statement(p, &s, &phys, line, sizeof(line));
		if (!ret)
			ret = parse_line(p, line);
		if (ret)
			STOP_OR_GO_ON(ret);
	}
	if (!p->cfg.nr_nsms) {
		p->line = 0;
		ret = PERR(p, "no nsm defined (add e.g. 'nsm kernel0 "
			      "type=kernel')");
		STOP_OR_GO_ON(ret);
	}
	for (unsigned i = 0; i < p->cfg.nr_guests; i++) {
		struct nk_guest_conf *g = &p->cfg.guests[i];
		bool found = !g->nsm[0];

		for (unsigned j = 0; j < p->cfg.nr_nsms && !found; j++)
			found = !strcmp(p->cfg.nsms[j].name, g->nsm);
		if (!found) {
			p->line = p->guest_lines[i];
			ret = PERR(p, "guest %s: nsm '%s' is not defined",
				   g->name, g->nsm);
			STOP_OR_GO_ON(ret);
		}
	}
	/* nkd would stop at start on an NSM namespace that is not there. */
	for (unsigned i = 0; p->all && i < p->cfg.nr_nsms; i++) {
		struct nk_nsm_conf *n = &p->cfg.nsms[i];
		struct stat st;

		if (!n->netns[0] || !stat(n->netns, &st))
			continue;
		p->line = p->nsm_lines[i];
		ret = PERR(p, "nsm %s: netns %s: %s", n->name, n->netns,
			   strerror(errno));
		STOP_OR_GO_ON(ret);
	}
#undef STOP_OR_GO_ON
	return first;
}

static void parser_init(struct parser *p, const char *fname)
{
	memset(p, 0, sizeof(*p));
	p->fname = fname;
	p->cfg.unknown_allow = false;
	p->cfg.abuse_limit = NK_DEF_ABUSE_LIMIT;
	p->cfg.max_ctl_per_uid = NK_DEF_MAX_CTL_PER_UID;
	p->cfg.hello_timeout_s = NK_DEF_HELLO_TIMEOUT_S;
}

static int parser_finish(struct parser *p, int ret, struct nk_config *cfg)
{
	free(p->guest_lines);
	free(p->nsm_lines);
	if (ret) {
		nk_config__free(&p->cfg);
		return ret;
	}
	*cfg = p->cfg;
	return 0;
}

int nk_config__parse(const char *text, const char *fname, struct nk_config *cfg,
		     char *err, size_t errlen)
{
	struct parser p;

	memset(cfg, 0, sizeof(*cfg));
	parser_init(&p, fname);
	p.err = err;
	p.errlen = errlen;
	return parser_finish(&p, parse_text(&p, text), cfg);
}

/* The whole file as a string; -errno with "path: message" in err. */
static int read_config(const char *path, char **out, char *err, size_t errlen)
{
	struct stat st;
	char *text;
	ssize_t n;
	size_t got = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    st.st_size > MAX_CONFIG_BYTES) {
		snprintf(err, errlen, "%s: not a readable file up to 1 MiB",
			 path);
		close(fd);
		return -EINVAL;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, text + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	text[got] = '\0';
	if (strlen(text) != got) {
		snprintf(err, errlen, "%s: NUL byte in config", path);
		free(text);
		return -EINVAL;
	}
	*out = text;
	return 0;
}

int nk_config__load(const char *path, struct nk_config *cfg, char *err,
		    size_t errlen)
{
	char *text;
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	ret = read_config(path, &text, err, errlen);
	if (ret)
		return ret;
	ret = nk_config__parse(text, path, cfg, err, errlen);
	free(text);
	return ret;
}

int nk_config__check(const char *path, struct nk_config *cfg, char *errs,
		     size_t errslen, unsigned *nerrs)
{
	struct parser p;
	char *text;
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	*nerrs = 0;
	if (errslen)
		errs[0] = '\0';
	ret = read_config(path, &text, errs, errslen);
	if (ret) {
		*nerrs = 1;
		if (strlen(errs) + 2 <= errslen)
			strcat(errs, "\n");
		return ret;
	}
	parser_init(&p, path);
	p.all = true;
	p.errs = errs;
	p.errslen = errslen;
	ret = parse_text(&p, text);
	free(text);
	*nerrs = p.nerrs;
	return parser_finish(&p, ret, cfg);
}

/* ------------------------------------------------------------------ */
/* Run-time policy change (nkctl set, admin.c). */

int nk_guest_conf__set(struct nk_guest_conf *g, const char *words, char *err,
		       size_t errlen)
{
	struct parser p = { .fname = "set", .line = 1 };
	char *tok[2 + 3 * NK_MAX_BINDS + NK_MAX_UIDS + 16];
	char buf[MAX_LINE], msg[512] = "";
	const struct nk_guest_conf *n;
	char *save = NULL, *t;
	int ntok = 2, ret;

	if (strlen(words) >= sizeof(buf)) {
		snprintf(err, errlen, "too long");
		return -EINVAL;
	}
	strcpy(buf, words);
	tok[0] = "guest";
	tok[1] = g->name;
	for (t = strtok_r(buf, " \t\r\n", &save); t;
	     t = strtok_r(NULL, " \t\r\n", &save)) {
		if (ntok == (int)(sizeof(tok) / sizeof(tok[0]))) {
			snprintf(err, errlen, "too many words");
			return -EINVAL;
		}
		if (!strncmp(t, "nsm=", 4)) {
			snprintf(err, errlen,
				 "guest %s: nsm= cannot change at run time "
				 "(change the config and reload: the guest "
				 "is evicted)",
				 g->name);
			return -EINVAL;
		}
		tok[ntok++] = t;
	}
	if (ntok == 2) {
		snprintf(err, errlen, "nothing to set (key=value ...)");
		return -EINVAL;
	}
	p.err = msg;
	p.errlen = sizeof(msg);
	/* The same checks as a guest line, on a fresh guest. */
	ret = parse_guest(&p, tok, ntok);
	if (ret) {
		const char *m = strncmp(msg, "set:1: ", 7) ? msg : msg + 7;

		snprintf(err, errlen, "%s", m);
		nk_config__free(&p.cfg);
		free(p.guest_lines);
		return ret;
	}
	n = &p.cfg.guests[0];
	/* parse_guest cut each word at its '=': tok[i] is the key now. */
	for (int i = 2; i < ntok; i++) {
		static const char *const live[] = {
			"uid",	    "bind",	   "acl_allow",
			"acl_deny", "max_sockets", "max_inflight",
			"bufs",	    "weight",	   "max_conns",
			"egress",   "host_access", "rate",
			"rate_tx",  "rate_rx",	   "burst",
			"shm",	    "shm_peers",   "shm_queue",
		};
		bool ok = false;

		for (size_t j = 0; j < sizeof(live) / sizeof(live[0]); j++)
			ok = ok || !strcmp(tok[i], live[j]);
		if (!ok) {
			snprintf(err, errlen,
				 "guest %s: %s= cannot change at run time "
				 "(change the config and reload)",
				 g->name, tok[i]);
			nk_config__free(&p.cfg);
			free(p.guest_lines);
			return -EINVAL;
		}
	}
	for (int i = 2; i < ntok; i++) {
		const char *k = tok[i];

		if (!strcmp(k, "uid")) {
			memcpy(g->uids, n->uids, sizeof(g->uids));
			g->nr_uids = n->nr_uids;
		} else if (!strcmp(k, "bind")) {
			memcpy(g->binds, n->binds, sizeof(g->binds));
			g->nr_binds = n->nr_binds;
		} else if (!strcmp(k, "acl_allow") || !strcmp(k, "acl_deny")) {
			memcpy(g->acl, n->acl, sizeof(g->acl));
			memcpy(g->acl_deny, n->acl_deny, sizeof(g->acl_deny));
			g->nr_acl = n->nr_acl;
		} else if (!strcmp(k, "max_sockets")) {
			g->max_sockets = n->max_sockets;
		} else if (!strcmp(k, "max_inflight")) {
			g->max_inflight = n->max_inflight;
		} else if (!strcmp(k, "bufs")) {
			g->bufs = n->bufs;
		} else if (!strcmp(k, "weight")) {
			g->weight = n->weight;
		} else if (!strcmp(k, "max_conns")) {
			g->max_conns = n->max_conns;
		} else if (!strcmp(k, "egress")) {
			memcpy(g->egress, n->egress, sizeof(g->egress));
			g->nr_egress = n->nr_egress;
		} else if (!strcmp(k, "host_access")) {
			g->host_access = n->host_access;
		} else if (!strcmp(k, "rate") || !strcmp(k, "rate_tx")) {
			g->rate_bps[0] = n->rate_bps[0];
			if (!strcmp(k, "rate"))
				g->rate_bps[1] = n->rate_bps[1];
		} else if (!strcmp(k, "rate_rx")) {
			g->rate_bps[1] = n->rate_bps[1];
		} else if (!strcmp(k, "burst")) {
			g->rate_burst = n->rate_burst;
		} else if (!strcmp(k, "shm")) {
			g->shm = n->shm;
		} else if (!strcmp(k, "shm_peers")) {
			memcpy(g->shm_peers, n->shm_peers,
			       sizeof(g->shm_peers));
		} else if (!strcmp(k, "shm_queue")) {
			g->shm_queue = n->shm_queue;
		}
	}
	nk_config__free(&p.cfg);
	free(p.guest_lines);
	return 0;
}
