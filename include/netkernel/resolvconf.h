/* SPDX-License-Identifier: MIT */
/*
 * One resolv.conf line, read the same way by nkd (an NSM's nameservers)
 * and the shim (the guest's own, whose DNS it redirects): the two lists
 * are matched by rank, so they must agree on which lines count.
 */
#ifndef NETKERNEL_RESOLVCONF_H
#define NETKERNEL_RESOLVCONF_H

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "abi.h"

/*
 * 1 and *a (port 53) for a "nameserver ADDR" line, 0 for any other line.
 * A scope ("fe80::1%eth0") is dropped: the address names a server in
 * whichever namespace reads it.
 */
static inline int nk_resolvconf__nameserver(const char *line,
					    struct nk_sockaddr *a)
{
	char addr[INET6_ADDRSTRLEN + 1], *pct;

	if (sscanf(line, " nameserver %46s", addr) != 1)
		return 0;
	pct = strchr(addr, '%');
	if (pct)
		*pct = '\0';
	memset(a, 0, sizeof(*a));
	a->port = htons(53);
	if (inet_pton(AF_INET, addr, a->addr) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, a->addr) == 1)
		a->family = AF_INET6;
	else
		return 0;
	return 1;
}

#endif /* NETKERNEL_RESOLVCONF_H */
