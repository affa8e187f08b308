/* SPDX-License-Identifier: MIT */
/* The files an NSM's resolver reads (resolv_view.c, docs/nkd.md). */
#ifndef NKD_RESOLV_VIEW_H
#define NKD_RESOLV_VIEW_H

#include <stdbool.h>

#include "netkernel/abi.h"

#include "config.h"

#define NK_RESOLV_MAX_NS 3u /* MAXNS: nameservers glibc reads */

struct nk_resolv_view {
	char dir[NK_PATH_MAX]; /* /etc/netns/NAME, or "" */
	char resolv[NK_PATH_MAX]; /* resolv= (bound on /etc/resolv.conf) */
	char effective[NK_PATH_MAX]; /* the resolv.conf lookups read */
	struct nk_sockaddr servers[NK_RESOLV_MAX_NS]; /* its nameservers */
	unsigned nr_servers;
};

int nk_resolv__view(const struct nk_nsm_conf *conf, struct nk_resolv_view *v);
int nk_resolv__enter(const struct nk_resolv_view *v);

#endif /* NKD_RESOLV_VIEW_H */
