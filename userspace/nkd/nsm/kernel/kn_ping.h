/* SPDX-License-Identifier: MIT */
/* The kernel NSM's socket(): ICMP echo sockets and ping_group_range. */
#ifndef NKD_KN_PING_H
#define NKD_KN_PING_H

int nk_ping__socket(const char *nsm, int domain, int type, int proto);

#endif /* NKD_KN_PING_H */
