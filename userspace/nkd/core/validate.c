// SPDX-License-Identifier: MIT
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "validate.h"

#define SEND_MSG_FLAGS                                                \
	(MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE | MSG_EOR | MSG_OOB | \
	 MSG_CONFIRM | MSG_DONTROUTE)
#define RECV_MSG_FLAGS \
	(MSG_PEEK | MSG_WAITALL | MSG_TRUNC | MSG_DONTWAIT | MSG_OOB)

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

int nk_sockaddr__to_sa(const struct nk_sockaddr *a, struct sockaddr_storage *ss,
		       socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->resv)
		return -EINVAL;
	switch (a->family) {
	case AF_INET: {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		if (a->flowinfo || a->scope_id || !all_zero(a->addr + 4, 12))
			return -EINVAL;
		in->sin_family = AF_INET;
		in->sin_port = a->port;
		memcpy(&in->sin_addr, a->addr, 4);
		*len = sizeof(*in);
		return 0;
	}
	case AF_INET6: {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = a->port;
		in6->sin6_flowinfo = a->flowinfo;
		memcpy(&in6->sin6_addr, a->addr, 16);
		in6->sin6_scope_id = a->scope_id;
		*len = sizeof(*in6);
		return 0;
	}
	case AF_UNSPEC:
		if (a->port || a->flowinfo || a->scope_id ||
		    !all_zero(a->addr, 16))
			return -EINVAL;
		ss->ss_family = AF_UNSPEC;
		*len = sizeof(struct sockaddr);
		return 0;
	default:
		return -EINVAL;
	}
}

void nk_sockaddr__from_sa(const struct sockaddr *sa, socklen_t len,
			  struct nk_sockaddr *a)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;

		a->family = AF_INET;
		a->port = in->sin_port;
		memcpy(a->addr, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 &&
		   len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		a->family = AF_INET6;
		a->port = in6->sin6_port;
		a->flowinfo = in6->sin6_flowinfo;
		memcpy(a->addr, &in6->sin6_addr, 16);
		a->scope_id = in6->sin6_scope_id;
	}
}

static int abuse(struct nk_valid *out, int err)
{
	out->abuse = true;
	return err;
}

/* [off, off + len) inside one buffer that nkd does not own yet. */
static int check_buf(const struct nk_sqe *sqe, const struct nk_validate_ctx *c,
		     struct nk_valid *out)
{
	uint64_t off = sqe->io.buf_off, len = sqe->io.buf_len;
	uint64_t area = (uint64_t)c->buf_size * c->nr_bufs;
	uint32_t idx;

	if (len == 0) {
		/* Still a position in the area: no pointing anywhere. */
		if (off > area)
			return abuse(out, -EFAULT);
		return 0;
	}
	if (off >= area || len > c->buf_size)
		return abuse(out, -EFAULT);
	idx = (uint32_t)(off / c->buf_size);
	if ((off % c->buf_size) + len > c->buf_size)
		return abuse(out, -EFAULT);
	if (c->owned && nk_bufown__owned(c->owned, idx))
		return abuse(out, -EFAULT);
	out->buf_idx = (int)idx;
	return 0;
}

static int check_addr(const struct nk_sqe *sqe, struct nk_valid *out,
		      bool unspec_ok)
{
	if (nk_sockaddr__to_sa(&sqe->addr, &out->sa, &out->salen))
		return abuse(out, -EINVAL);
	if (out->sa.ss_family == AF_UNSPEC) {
		if (!unspec_ok)
			return -EAFNOSUPPORT;
		return 0;
	}
	if (out->sa.ss_family != out->sock.family)
		return -EAFNOSUPPORT;
	return 0;
}

int nk_validate__sqe(const struct nk_sqe *sqe, const struct nk_validate_ctx *c,
		     struct nk_valid *out)
{
	bool uses_addr = false, uses_opt = false;
	uint8_t op = sqe->opcode;
	int ret;

	memset(out, 0, sizeof(*out));
	out->buf_idx = -1;

	if (op >= NK_OP__MAX)
		return abuse(out, -EINVAL);
	if (sqe->flags & ~NK_SQE_F_ALL ||
	    ((sqe->flags & (NK_SQE_F_PREFETCH | NK_SQE_F_BATCH)) &&
	     op != NK_OP_RECV) ||
	    ((sqe->flags & NK_SQE_F_EMPTIED) &&
	     (sqe->flags & (NK_SQE_F_PREFETCH | NK_SQE_F_NONBLOCK)) !=
		     NK_SQE_F_PREFETCH) ||
	    ((sqe->flags & NK_SQE_F_CMSG) && op != NK_OP_RECV &&
	     op != NK_OP_SEND) ||
	    ((sqe->flags & NK_SQE_F_PH) &&
	     (!c->ph_sqe || (op != NK_OP_SOCKET && op != NK_OP_ACCEPT))))
		return abuse(out, -EINVAL);
	if (sqe->resv0)
		return abuse(out, -EINVAL);

	/* Handle: none for NOP, SOCKET and CANCEL; a live one otherwise. */
	if (op == NK_OP_NOP || op == NK_OP_SOCKET || op == NK_OP_CANCEL) {
		if (sqe->handle)
			return abuse(out, -EINVAL);
	} else if (!c->lookup || c->lookup(c->arg, sqe->handle, &out->sock)) {
		return abuse(out, -EBADF);
	}

	switch (op) {
	case NK_OP_BIND:
	case NK_OP_CONNECT:
		uses_addr = true;
		break;
	case NK_OP_SEND:
		uses_addr = sqe->flags & NK_SQE_F_ADDR;
		break;
	case NK_OP_SETSOCKOPT:
	case NK_OP_GETSOCKOPT:
		uses_opt = true;
		break;
	default:
		break;
	}
	/* The second union is "zero otherwise" (docs/abi.md §5). */
	if (uses_opt) {
		if (!all_zero(sqe->opt.resv2, sizeof(sqe->opt.resv2)))
			return abuse(out, -EINVAL);
	} else if (sqe->flags & NK_SQE_F_PH) {
		/* The id itself is the engine's to check: in this pool? */
		if (!all_zero(sqe->ph.resv3, sizeof(sqe->ph.resv3)))
			return abuse(out, -EINVAL);
	} else if (!uses_addr && !all_zero(&sqe->addr, sizeof(sqe->addr))) {
		return abuse(out, -EINVAL);
	}

	switch (op) {
	case NK_OP_NOP:
	case NK_OP_CLOSE:
		return 0;
	case NK_OP_SOCKET:
		if (sqe->sock.resv1)
			return abuse(out, -EINVAL);
		if (sqe->sock.domain != AF_INET && sqe->sock.domain != AF_INET6)
			return -EAFNOSUPPORT;
		if (sqe->sock.type == SOCK_STREAM) {
			if (sqe->sock.protocol &&
			    sqe->sock.protocol != IPPROTO_TCP)
				return -EPROTONOSUPPORT;
		} else if (sqe->sock.type == SOCK_DGRAM) {
			/* The ICMP echo ("ping") socket, docs/nkd.md. */
			if (sqe->sock.protocol &&
			    sqe->sock.protocol != IPPROTO_UDP &&
			    !nk_is_ping_proto(sqe->sock.domain,
					      sqe->sock.protocol))
				return -EPROTONOSUPPORT;
		} else {
			return -EINVAL;
		}
		return 0;
	case NK_OP_BIND:
		return check_addr(sqe, out, false);
	case NK_OP_CONNECT:
		return check_addr(sqe, out, out->sock.type == SOCK_DGRAM);
	case NK_OP_LISTEN:
	case NK_OP_SHUTDOWN:
	case NK_OP_IOCTL:
	case NK_OP_CANCEL:
		if (sqe->ctl.resv1)
			return abuse(out, -EINVAL);
		if (op == NK_OP_LISTEN && out->sock.type != SOCK_STREAM)
			return -EOPNOTSUPP;
		if (op == NK_OP_SHUTDOWN && sqe->ctl.arg > SHUT_RDWR)
			return -EINVAL;
		if (op == NK_OP_IOCTL && sqe->ctl.arg != NK_IOCTL_FIONREAD &&
		    sqe->ctl.arg != NK_IOCTL_SIOCOUTQ)
			return -ENOTTY;
		return 0;
	case NK_OP_ACCEPT:
		ret = check_buf(sqe, c, out);
		if (ret)
			return ret;
		if (out->sock.type != SOCK_STREAM)
			return -EOPNOTSUPP;
		if (sqe->io.buf_len < sizeof(struct nk_sockaddr))
			return -EINVAL;
		return 0;
	case NK_OP_GETSOCKNAME:
	case NK_OP_GETPEERNAME:
		ret = check_buf(sqe, c, out);
		if (ret)
			return ret;
		if (sqe->io.buf_len < sizeof(struct nk_sockaddr))
			return -EINVAL;
		return 0;
	case NK_OP_SEND:
		ret = check_buf(sqe, c, out);
		if (ret)
			return ret;
		if (sqe->io.msg_flags & ~(uint32_t)SEND_MSG_FLAGS)
			return -EOPNOTSUPP;
		/* Ancillary data only with datagrams, and its block whole. */
		if ((sqe->flags & NK_SQE_F_CMSG) &&
		    (out->sock.type != SOCK_DGRAM ||
		     sqe->io.buf_len < NK_CMSG_BYTES))
			return -EINVAL;
		if (uses_addr)
			return check_addr(sqe, out, false);
		return 0;
	case NK_OP_RECV:
		ret = check_buf(sqe, c, out);
		if (ret)
			return ret;
		if (sqe->io.msg_flags & ~(uint32_t)RECV_MSG_FLAGS)
			return -EOPNOTSUPP;
		if (sqe->io.buf_len <
		    ((sqe->flags & NK_SQE_F_ADDR) ? sizeof(struct nk_sockaddr)
						  : 0) +
			    ((sqe->flags & NK_SQE_F_CMSG) ? NK_CMSG_BYTES : 0))
			return -EINVAL;
		if ((sqe->flags & NK_SQE_F_CMSG) &&
		    out->sock.type != SOCK_DGRAM)
			return -EINVAL;
		/* A batch: datagrams only, plain, room for one record. */
		if ((sqe->flags & NK_SQE_F_BATCH) &&
		    (out->sock.type != SOCK_DGRAM || sqe->io.msg_flags ||
		     (sqe->flags & (NK_SQE_F_ADDR | NK_SQE_F_CMSG)) ||
		     sqe->io.buf_len < sizeof(struct nk_dgram)))
			return -EINVAL;
		return 0;
	case NK_OP_UNREAD:
		/* Plain: no flags; bytes, or at least one datagram record. */
		if (sqe->flags || sqe->io.msg_flags || sqe->io.timeout_ms)
			return abuse(out, -EINVAL);
		ret = check_buf(sqe, c, out);
		if (ret)
			return ret;
		if (!sqe->io.buf_len ||
		    (out->sock.type == SOCK_DGRAM &&
		     sqe->io.buf_len < sizeof(struct nk_dgram)))
			return -EINVAL;
		return 0;
	case NK_OP_SETSOCKOPT:
	case NK_OP_GETSOCKOPT:
		ret = check_buf(sqe, c, out);
		if (ret)
			return ret;
		if (sqe->io.buf_len > NK_OPTVAL_MAX)
			return -EINVAL;
		return 0;
	default:
		return abuse(out, -EINVAL);
	}
}
