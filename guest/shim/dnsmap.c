// SPDX-License-Identifier: MIT
/*
 * One name resolution (issue 9): DNS that a program sends itself.
 *
 * getaddrinfo() and friends resolve through nkd in the NSM's world
 * (resolve.c). Programs with their own resolver (node's c-ares, dig, Go)
 * read /etc/resolv.conf themselves, the guest's, and send UDP or TCP to
 * port 53 of the nameservers listed there, addresses that mean nothing (or
 * something else) in the NSM's namespace. So the shim redirects: a
 * connect() or sendto() to port 53 of one of the guest's nameservers goes
 * to the NSM's nameserver of the same rank (nkd's NK_CTL_DNS_SERVERS: the
 * resolv.conf its resolver reads, resolv= in nkd.conf), and the answers
 * that come back from there are shown as from the address the program
 * used (c-ares and dig drop an answer from another address). Other
 * destinations, `dig @server` included, are not touched; nkd checks the
 * real destination against the guest's egress= and host_access= rules, as
 * for any datagram.
 *
 * Both lists are read once, on the first datagram or connect to port 53:
 * the guest's /etc/resolv.conf as glibc reads it (no nameserver line:
 * 127.0.0.1), and nkd's answer. With no NSM nameserver of the socket's
 * family nothing is redirected.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netkernel/resolvconf.h"
#include "shim.h"

#define MAX_NS 3

static pthread_once_t once = PTHREAD_ONCE_INIT;
/* Guards every socket's dns_to / dns_orig: taken for port 53 only. */
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nk_sockaddr guest_ns[MAX_NS], nsm_ns[MAX_NS];
static unsigned nr_guest, nr_nsm;

static void read_guest(void)
{
	char line[512];
	FILE *f = fopen("/etc/resolv.conf", "re");

	while (f && nr_guest < MAX_NS && fgets(line, sizeof(line), f))
		nr_guest +=
			nk_resolvconf__nameserver(line, &guest_ns[nr_guest]);
	if (f)
		fclose(f);
	if (!nr_guest) {
		guest_ns[0].family = AF_INET;
		guest_ns[0].port = htons(53);
		inet_pton(AF_INET, "127.0.0.1", guest_ns[0].addr);
		nr_guest = 1;
	}
}

static void load(void)
{
	struct nk_ctl_resolve_reply *r = NULL;
	const struct nk_ctl_resolve_ent *ents;

	/* An older nkd would close the control connection on it. */
	if (!nk_conn__has_feature(NK_FEAT_DNS_PING) || nk_ctl__dns_servers(&r))
		return;
	ents = (const void *)(r + 1);
	for (uint32_t i = 0; i < r->nr_ents && nr_nsm < MAX_NS; i++)
		if (ents[i].addr.family == AF_INET ||
		    ents[i].addr.family == AF_INET6)
			nsm_ns[nr_nsm++] = ents[i].addr;
	free(r);
	if (nr_nsm)
		read_guest();
}

static bool same(const struct nk_sockaddr *a, const struct nk_sockaddr *b)
{
	size_t n = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && a->port == b->port &&
	       !memcmp(a->addr, b->addr, n);
}

void nk_dnsmap__dst(struct nk_sock *s, struct nk_sockaddr *a)
{
	unsigned i, k, n = 0;

	if (a->port != htons(53) ||
	    (a->family != AF_INET && a->family != AF_INET6))
		return;
	pthread_once(&once, load);
	for (i = 0; i < nr_guest && !same(a, &guest_ns[i]); i++)
		;
	if (i == nr_guest)
		return;
	/* The NSM's servers of this family; the i-th of them, round. */
	for (k = 0; k < nr_nsm; k++)
		n += nsm_ns[k].family == a->family;
	if (!n)
		return;
	for (k = 0, n = i % n;; k++)
		if (nsm_ns[k].family == a->family && !n--)
			break;
	pthread_mutex_lock(&map_lock);
	s->dns_orig = *a;
	s->dns_to = nsm_ns[k];
	atomic_store(&s->dns_mapped, 1);
	pthread_mutex_unlock(&map_lock);
	a->port = nsm_ns[k].port;
	memcpy(a->addr, nsm_ns[k].addr, 16);
	a->scope_id = nsm_ns[k].scope_id;
	a->flowinfo = 0;
}

void nk_dnsmap__src(struct nk_sock *s, struct nk_sockaddr *a)
{
	bool hit;

	if (!atomic_load(&s->dns_mapped) || a->port != htons(53))
		return;
	pthread_mutex_lock(&map_lock);
	hit = same(a, &s->dns_to);
	if (hit)
		*a = s->dns_orig;
	pthread_mutex_unlock(&map_lock);
}
