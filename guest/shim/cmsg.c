// SPDX-License-Identifier: MIT
/*
 * Ancillary data on datagram sockets (docs/abi.md §5, "Ancillary data";
 * docs/shim.md). RECV: once the app enabled an option that makes the
 * kernel attach control messages (IPV6_RECVHOPLIMIT, IP_PKTINFO...), each
 * recvmsg asks nkd for them and hands them out with put_cmsg()'s rules,
 * MSG_CTRUNC included. SEND: the per-packet hop limit / TTL and traffic
 * class / TOS go to nkd; any other control message at SOL_SOCKET or the
 * socket's IP level fails with the kernel's EINVAL, never silently
 * dropped; other levels are ignored, as the kernel ignores them.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "shim.h"

/* The options that make recvmsg return control messages, one bit each. */
static unsigned opt_bit(int level, int name)
{
	if (level == IPPROTO_IPV6) {
		switch (name) {
		case IPV6_RECVHOPLIMIT:
			return 1u << 0;
		case IPV6_RECVTCLASS:
			return 1u << 1;
		case IPV6_RECVPKTINFO:
			return 1u << 2;
		}
	} else if (level == IPPROTO_IP) {
		switch (name) {
		case IP_PKTINFO:
			return 1u << 3;
		case IP_RECVTTL:
			return 1u << 4;
		case IP_RECVTOS:
			return 1u << 5;
		}
	}
	return 0;
}

void nk_cmsg__track_opt(struct nk_sock *s, int level, int name, const void *val,
			socklen_t len)
{
	unsigned bit = opt_bit(level, name);
	int v = 0;

	if (!bit || !val || !len)
		return;
	/* As do_ip_setsockopt reads it: an int, or one byte. */
	if (len >= sizeof(int))
		memcpy(&v, val, sizeof(int));
	else
		v = *(const unsigned char *)val;
	if (v)
		atomic_fetch_or(&s->rx_cmsg, bit);
	else
		atomic_fetch_and(&s->rx_cmsg, ~bit);
}

/* One control message the kernel takes on a send; -EINVAL as it would. */
static int send_one(int family, const struct cmsghdr *c, bool *keep)
{
	int ip_level = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
	size_t dlen = c->cmsg_len - CMSG_LEN(0);
	int v = 0;

	*keep = false;
	if (c->cmsg_level != SOL_SOCKET && c->cmsg_level != ip_level)
		return 0; /* not the kernel's business either */
	if (c->cmsg_level == SOL_SOCKET)
		return -EINVAL;
	if (dlen == sizeof(int))
		memcpy(&v, CMSG_DATA(c), sizeof(int));
	if (family == AF_INET6) {
		/* ip6_datagram_send_ctl(): exact length, -1..255. */
		if ((c->cmsg_type != IPV6_HOPLIMIT &&
		     c->cmsg_type != IPV6_TCLASS) ||
		    dlen != sizeof(int) || v < -1 || v > 0xff)
			return -EINVAL;
	} else if (c->cmsg_type == IP_TTL) {
		/* ip_cmsg_send() */
		if (dlen != sizeof(int) || v < 1 || v > 255)
			return -EINVAL;
	} else if (c->cmsg_type == IP_TOS) {
		if (dlen == 1)
			v = *CMSG_DATA(c);
		else if (dlen != sizeof(int))
			return -EINVAL;
		if (v < 0 || v > 255)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	*keep = true;
	return 0;
}

int nk_cmsg__pack_send(const struct msghdr *msg, int family,
		       struct nk_cmsg *out)
{
	struct msghdr m = *msg;

	memset(out, 0, sizeof(*out));
	if (!m.msg_controllen)
		return 0;
	if (!m.msg_control)
		return -EFAULT;
	/* __sys_sendmsg: shorter than one header is EINVAL. */
	if (m.msg_controllen < sizeof(struct cmsghdr))
		return -EINVAL;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		bool keep;
		int err;

		/* CMSG_OK(): a length inside what is left. */
		if (c->cmsg_len < sizeof(*c) ||
		    c->cmsg_len > m.msg_controllen -
					  (size_t)((uint8_t *)c -
						   (uint8_t *)m.msg_control))
			return -EINVAL;
		err = send_one(family, c, &keep);
		if (err)
			return err;
		if (!keep)
			continue;
		if (out->len + CMSG_SPACE(c->cmsg_len - CMSG_LEN(0)) >
		    sizeof(out->data))
			return -ENOBUFS;
		memcpy(out->data + out->len, c, c->cmsg_len);
		out->len += (uint32_t)CMSG_SPACE(c->cmsg_len - CMSG_LEN(0));
	}
	return 0;
}

void nk_cmsg__put_recv(struct msghdr *msg, void *ctl, size_t room,
		       const struct nk_cmsg *blk)
{
	const uint8_t *p = blk->data;
	size_t left = blk->len < sizeof(blk->data) ? blk->len
						   : sizeof(blk->data);
	uint8_t *out = ctl;
	size_t used = 0;

	if (blk->flags & NK_CMSG_F_CTRUNC)
		msg->msg_flags |= MSG_CTRUNC;
	/* Each as put_cmsg() writes it: cut to the room, MSG_CTRUNC. */
	while (left >= sizeof(struct cmsghdr)) {
		struct cmsghdr c;
		size_t cmlen, space;

		memcpy(&c, p, sizeof(c));
		if (c.cmsg_len < sizeof(c) || c.cmsg_len > left)
			break;
		cmlen = c.cmsg_len;
		space = CMSG_ALIGN(cmlen);
		if (!out || room - used < sizeof(struct cmsghdr)) {
			msg->msg_flags |= MSG_CTRUNC;
			break;
		}
		if (room - used < cmlen) {
			msg->msg_flags |= MSG_CTRUNC;
			cmlen = room - used;
		}
		c.cmsg_len = cmlen;
		memcpy(out + used, &c, sizeof(c));
		memcpy(out + used + sizeof(c), p + sizeof(c),
		       cmlen - sizeof(c));
		used += space < room - used ? space : room - used;
		if (space >= left)
			break;
		p += space;
		left -= space;
	}
	msg->msg_controllen = used;
}
