// SPDX-License-Identifier: MIT
/*
 * Name resolution for a guest that has no network of its own. glibc's
 * resolver opens its sockets inside libc, where LD_PRELOAD cannot see them
 * (docs/shim.md), so names are resolved by nkd (NK_CTL_RESOLVE,
 * getaddrinfo in the NSM's namespace). Numeric hosts and NULL nodes need
 * no network and stay with libc, as does getnameinfo (reverse lookups fall
 * back to numeric output without a network, which is what callers get on
 * any host without DNS).
 *
 * Results we build are recorded so freeaddrinfo() can tell them from
 * libc's: both kinds go through the one exported freeaddrinfo.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#define NK_EXPORT __attribute__((visibility("default")))

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct addrinfo **reg;
static size_t reg_n, reg_cap;

static bool reg_add(struct addrinfo *ai)
{
	bool ok = true;

	pthread_mutex_lock(&reg_lock);
	if (reg_n == reg_cap) {
		size_t cap = reg_cap ? 2 * reg_cap : 16;
		struct addrinfo **n = realloc(reg, cap * sizeof(*n));

		if (n) {
			reg = n;
			reg_cap = cap;
		} else {
			ok = false;
		}
	}
	if (ok)
		reg[reg_n++] = ai;
	pthread_mutex_unlock(&reg_lock);
	return ok;
}

static bool reg_take(struct addrinfo *ai)
{
	bool found = false;

	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < reg_n; i++) {
		if (reg[i] == ai) {
			reg[i] = reg[--reg_n];
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return found;
}

static void free_ours(struct addrinfo *ai)
{
	while (ai) {
		struct addrinfo *next = ai->ai_next;

		free(ai->ai_canonname);
		free(ai); /* the sockaddr lives in the same block */
		ai = next;
	}
}

NK_EXPORT void freeaddrinfo(struct addrinfo *ai)
{
	if (!ai)
		return;
	if (reg_take(ai))
		free_ours(ai);
	else
		REAL(freeaddrinfo)(ai);
}

enum route { ROUTE_NKD, ROUTE_LIBC, ROUTE_DOWN };

static enum route route(const char *node, const struct addrinfo *hints)
{
	int err;

	if (!node || (hints && (hints->ai_flags & AI_NUMERICHOST)))
		return ROUTE_LIBC;
	err = nk_conn__ensure();
	if (err == -EHOSTUNREACH)
		return ROUTE_LIBC; /* passthrough: the local resolver it is */
	return err ? ROUTE_DOWN : ROUTE_NKD;
}

static int is_numeric(const char *node)
{
	struct in6_addr a6;
	struct in_addr a4;
	char tmp[INET6_ADDRSTRLEN + 1];
	const char *pct = strchr(node, '%');

	if (inet_pton(AF_INET, node, &a4) == 1)
		return 1;
	if (pct && (size_t)(pct - node) < sizeof(tmp)) {
		memcpy(tmp, node, pct - node);
		tmp[pct - node] = 0;
		node = tmp;
	}
	return inet_pton(AF_INET6, node, &a6) == 1;
}

static int ask_nkd(const char *node, const char *service,
		   const struct addrinfo *hints,
		   struct nk_ctl_resolve_reply **reply)
{
	struct nk_ctl_resolve req;
	int err;

	memset(&req, 0, sizeof(req));
	if (hints) {
		req.ai_flags = hints->ai_flags;
		req.ai_family = hints->ai_family;
		req.ai_socktype = hints->ai_socktype;
		req.ai_protocol = hints->ai_protocol;
	}
	if (strlen(node) >= sizeof(req.node) ||
	    (service && strlen(service) >= sizeof(req.service)))
		return EAI_NONAME;
	strcpy(req.node, node);
	if (service)
		strcpy(req.service, service);
	err = nk_ctl__resolve(&req, reply);
	if (err) {
		errno = -err;
		return EAI_SYSTEM;
	}
	return (*reply)->status;
}

NK_EXPORT int getaddrinfo(const char *node, const char *service,
			  const struct addrinfo *hints, struct addrinfo **res)
{
	struct nk_ctl_resolve_reply *r = NULL;
	const struct nk_ctl_resolve_ent *ents;
	struct addrinfo *head = NULL, **tail = &head;
	enum route rt;
	int st;

	rt = route(node, hints);
	if (rt == ROUTE_LIBC || is_numeric(node))
		return REAL(getaddrinfo)(node, service, hints, res);
	if (rt == ROUTE_DOWN) {
		errno = ENETDOWN;
		return EAI_SYSTEM;
	}
	st = ask_nkd(node, service, hints, &r);
	if (st) {
		free(r);
		return st;
	}
	ents = (const void *)(r + 1);
	for (uint32_t i = 0; i < r->nr_ents; i++) {
		struct {
			struct addrinfo ai;
			struct sockaddr_storage ss;
		} *blk = calloc(1, sizeof(*blk));
		socklen_t len = sizeof(blk->ss);

		if (!blk) {
			free_ours(head);
			free(r);
			return EAI_MEMORY;
		}
		nk_addr__to_sa(&ents[i].addr, (struct sockaddr *)&blk->ss,
			       &len);
		blk->ai.ai_family = ents[i].family;
		blk->ai.ai_socktype = ents[i].socktype;
		blk->ai.ai_protocol = ents[i].protocol;
		blk->ai.ai_addr = (struct sockaddr *)&blk->ss;
		blk->ai.ai_addrlen = len;
		if (!head && hints && (hints->ai_flags & AI_CANONNAME))
			blk->ai.ai_canonname =
				strdup(r->canonname[0] ? r->canonname : node);
		*tail = &blk->ai;
		tail = &blk->ai.ai_next;
	}
	free(r);
	if (!head)
		return EAI_NONAME;
	if (!reg_add(head)) {
		free_ours(head);
		return EAI_MEMORY;
	}
	*res = head;
	return 0;
}

/* Lay out a hostent in the caller's buffer, glibc style. */
static int fill_hostent(const char *name, int af,
			const struct nk_ctl_resolve_reply *r, struct hostent *h,
			char *buf, size_t buflen)
{
	const struct nk_ctl_resolve_ent *ents = (const void *)(r + 1);
	size_t alen = af == AF_INET6 ? 16 : 4, nl, need;
	uint32_t n = 0;
	char **list, *p;

	for (uint32_t i = 0; i < r->nr_ents; i++)
		if (ents[i].addr.family == af)
			n++;
	if (!n)
		return -ENOENT;
	nl = strlen(r->canonname[0] ? r->canonname : name) + 1;
	need = (n + 2) * sizeof(char *) + n * alen + nl + sizeof(char *);
	if (buflen < need + sizeof(char *))
		return -ERANGE;
	/* Pointers first, aligned; then addresses; then the name. */
	p = buf + ((uintptr_t)buf % sizeof(char *)
			   ? sizeof(char *) - (uintptr_t)buf % sizeof(char *)
			   : 0);
	list = (char **)p;
	p += (n + 1) * sizeof(char *);
	h->h_aliases = (char **)p;
	h->h_aliases[0] = NULL;
	p += sizeof(char *);
	for (uint32_t i = 0, k = 0; i < r->nr_ents; i++) {
		if (ents[i].addr.family != af)
			continue;
		memcpy(p, ents[i].addr.addr, alen);
		list[k++] = p;
		p += alen;
	}
	list[n] = NULL;
	memcpy(p, r->canonname[0] ? r->canonname : name, nl);
	h->h_name = p;
	h->h_addrtype = af;
	h->h_length = (int)alen;
	h->h_addr_list = list;
	return 0;
}

NK_EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *ret,
			       char *buf, size_t buflen,
			       struct hostent **result, int *h_errnop)
{
	struct addrinfo hints = { .ai_family = af,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_CANONNAME };
	struct nk_ctl_resolve_reply *r = NULL;
	enum route rt;
	int st, err;

	*result = NULL;
	if (af != AF_INET && af != AF_INET6) {
		*h_errnop = NO_RECOVERY;
		return EAFNOSUPPORT;
	}
	rt = name ? route(name, NULL) : ROUTE_LIBC;
	if (rt == ROUTE_LIBC || is_numeric(name))
		return REAL(gethostbyname2_r)(name, af, ret, buf, buflen,
					      result, h_errnop);
	if (rt == ROUTE_DOWN) {
		*h_errnop = TRY_AGAIN;
		return ENETDOWN;
	}
	st = ask_nkd(name, NULL, &hints, &r);
	if (st) {
		free(r);
		*h_errnop = st == EAI_AGAIN ? TRY_AGAIN : HOST_NOT_FOUND;
		return st == EAI_SYSTEM ? errno : 0;
	}
	err = fill_hostent(name, af, r, ret, buf, buflen);
	free(r);
	if (err == -ERANGE) {
		*h_errnop = NETDB_INTERNAL;
		return ERANGE;
	}
	if (err) {
		*h_errnop = NO_ADDRESS;
		return 0;
	}
	*h_errnop = 0;
	*result = ret;
	return 0;
}

NK_EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf,
			      size_t buflen, struct hostent **result,
			      int *h_errnop)
{
	return gethostbyname2_r(name, AF_INET, ret, buf, buflen, result,
				h_errnop);
}

/* Not thread-safe, like libc's: one static result. */
static struct hostent static_he;
static char static_buf[8192];

NK_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
	struct hostent *res = NULL;
	int herr = 0, err;

	err = gethostbyname2_r(name, af, &static_he, static_buf,
			       sizeof(static_buf), &res, &herr);
	if (!res) {
		h_errno = herr;
		if (err)
			errno = err;
	}
	return res;
}

NK_EXPORT struct hostent *gethostbyname(const char *name)
{
	return gethostbyname2(name, AF_INET);
}
