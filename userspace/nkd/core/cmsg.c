// SPDX-License-Identifier: MIT
/*
 * Ancillary data a guest sends (docs/abi.md §5, "Ancillary data"). The
 * block comes from guest memory, so it is checked on nkd's own copy and
 * only the per-packet IP options on the allow-list reach sendmsg():
 * hop limit / TTL and traffic class / TOS, which a socket option could set
 * as well. Everything else the kernel would act on at the socket's IP
 * level or SOL_SOCKET (source address and interface through PKTINFO, the
 * mark, timestamps...) is refused with the kernel's own answer to a cmsg
 * it does not take, EINVAL; other levels the kernel ignores, and so does
 * nkd (it drops them).
 */
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "cmsg.h"

static bool allowed(int family, const struct cmsghdr *c)
{
	size_t dlen = c->cmsg_len - CMSG_LEN(0);

	if (family == AF_INET6 && c->cmsg_level == IPPROTO_IPV6)
		return (c->cmsg_type == IPV6_HOPLIMIT ||
			c->cmsg_type == IPV6_TCLASS) &&
		       dlen == sizeof(int);
	if (family == AF_INET && c->cmsg_level == IPPROTO_IP)
		return (c->cmsg_type == IP_TTL && dlen == sizeof(int)) ||
		       (c->cmsg_type == IP_TOS &&
			(dlen == sizeof(int) || dlen == 1));
	return false;
}

int nk_cmsg__check_send(const struct nk_cmsg *blk, int family, void *out,
			size_t *out_len)
{
	const uint8_t *p = blk->data;
	size_t left, used = 0;

	*out_len = 0;
	memset(out, 0, NK_CMSG_BYTES);
	if (blk->flags || blk->len > sizeof(blk->data))
		return -EINVAL;
	left = blk->len;
	while (left > 0) {
		struct cmsghdr c;
		size_t step;

		if (left < sizeof(c))
			return -EINVAL;
		memcpy(&c, p, sizeof(c));
		if (c.cmsg_len < sizeof(c) || c.cmsg_len > left)
			return -EINVAL;
		step = CMSG_ALIGN(c.cmsg_len);
		if (step > left)
			step = left; /* the last one need not be padded */
		if (allowed(family, &c)) {
			memcpy((uint8_t *)out + used, p, c.cmsg_len);
			used += CMSG_ALIGN(c.cmsg_len);
		} else if (c.cmsg_level == SOL_SOCKET ||
			   c.cmsg_level == (family == AF_INET6 ? IPPROTO_IPV6
							       : IPPROTO_IP)) {
			return -EINVAL;
		}
		p += step;
		left -= step;
	}
	*out_len = used;
	return 0;
}
