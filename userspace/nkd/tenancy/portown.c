// SPDX-License-Identifier: MIT
/*
 * Port ownership and destination policy per NSM (see portown.h for the
 * model, docs/nkd.md for the operator's view).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "portown.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

/* Local prefixes of the NSM's namespace (its "local" routing table). */
#define PO_MAX_LOCAL 512
/* A check refreshes them when they are older than this. */
#define PO_REFRESH_NS (2ll * 1000000000ll)
/* Bounds one refresh: recv calls of up to PO_NLBUF bytes. */
#define PO_NL_RECVS 64
#define PO_NLBUF 32768

struct po_ent {
	struct nk_guest *g;
	uint32_t nr; /* sockets of g claiming the port */
};

struct po_prefix {
	uint8_t family, plen;
	uint8_t addr[16];
};

struct nk_portown {
	struct po_ent *tab; /* [2][65536]: TCP, UDP */
	const struct nk_nsm_conf *conf;
	bool afxdp;
	int nl; /* rtnetlink socket in the NSM's namespace, -1: none */
	bool strict; /* NETLINK_GET_STRICT_CHK on: the kernel filters */
	uint32_t seq;
	int64_t next_refresh;
	unsigned nr_local;
	struct po_prefix local[PO_MAX_LOCAL];
};

static struct po_ent *ent_of(struct nk_portown *po, const struct nk_sock *s,
			     uint16_t port)
{
	return &po->tab[(s->type == SOCK_DGRAM ? 65536u : 0u) + port];
}

/* ------------------------------------------------------------------ */
/* Claims. */

int nk_portown__claim(struct nk_sock *s, uint16_t port)
{
	struct nk_portown *po = s->nsm->ports;
	struct po_ent *e;

	/* An ICMP echo socket's "port" is its echo id, not a UDP port. */
	if (!po || !port || s->pc.port == port ||
	    nk_is_ping_proto(s->family, s->protocol))
		return 0;
	e = ent_of(po, s, port);
	if (e->nr && e->g != s->guest) {
		nk_dbg("guest %s: %s port %u belongs to guest %s",
		       s->guest->conf.name,
		       s->type == SOCK_DGRAM ? "UDP" : "TCP", port,
		       e->g->conf.name);
		return -EADDRINUSE;
	}
	nk_portown__release(s);
	e->g = s->guest;
	e->nr++;
	s->pc.port = port;
	return 0;
}

void nk_portown__release(struct nk_sock *s)
{
	struct nk_portown *po = s->nsm->ports;
	struct po_ent *e;

	s->pc.pending = false;
	if (!po || !s->pc.port)
		return;
	e = ent_of(po, s, s->pc.port);
	if (e->nr && e->g == s->guest && --e->nr == 0)
		e->g = NULL;
	s->pc.port = 0;
}

void nk_portown__sock_free(struct nk_sock *s)
{
	nk_portown__release(s);
}

void nk_portown__inherit(struct nk_sock *s, const struct nk_sock *l)
{
	/* Same guest, same port: cannot conflict. */
	if (l->pc.port)
		nk_portown__claim(s, l->pc.port);
}

static uint16_t sa_port(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

/* Learns the port the stack gave s and claims it (or drops the claim). */
static int learn(struct nk_sock *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	uint16_t port;

	if (!s->nsm->ops->sock_name ||
	    s->nsm->ops->sock_name(s->nsm->priv, s, false, &ss, &len))
		return 0;
	port = sa_port(&ss);
	if (!port) {
		nk_portown__release(s);
		return 0;
	}
	return nk_portown__claim(s, port);
}

int nk_portown__autobind_fd(struct nk_sock *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0; /* the op itself will say what is wrong */
	if (!sa_port(&ss)) {
		/* What the kernel's autobind does: wildcard, port 0. */
		memset(&ss, 0, sizeof(ss));
		ss.ss_family = (sa_family_t)s->family;
		len = s->family == AF_INET6 ? sizeof(struct sockaddr_in6)
					    : sizeof(struct sockaddr_in);
		/* Fails if an address is bound (IP_BIND_ADDRESS_NO_PORT):
		 * then the op autobinds and op_done claims. */
		if (bind(fd, (struct sockaddr *)&ss, len))
			return 0;
		if (s->state == NK_SS_UNBOUND)
			s->state = NK_SS_BOUND;
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len))
			return 0;
	}
	return nk_portown__claim(s, sa_port(&ss));
}

/* ------------------------------------------------------------------ */
/* Addresses local to the NSM's namespace. */

static bool prefix_has(const uint8_t *p, unsigned plen, const uint8_t *a)
{
	unsigned full = plen / 8, rest = plen % 8;

	if (memcmp(p, a, full))
		return false;
	return !rest || !((p[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest)));
}

static void parse_route(struct nk_portown *po, struct nlmsghdr *nh,
			struct po_prefix *out, unsigned *n)
{
	struct rtmsg *rtm = NLMSG_DATA(nh);
	int len = (int)RTM_PAYLOAD(nh);
	unsigned table = rtm->rtm_table;
	struct po_prefix p = { 0 };

	(void)po;
	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)))
		return;
	if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6)
		return;
	p.family = rtm->rtm_family;
	p.plen = rtm->rtm_dst_len;
	if (p.plen > (p.family == AF_INET ? 32 : 128))
		return;
	for (struct rtattr *a = RTM_RTA(rtm); RTA_OK(a, len);
	     a = RTA_NEXT(a, len)) {
		size_t alen = RTA_PAYLOAD(a);

		if (a->rta_type == RTA_TABLE && alen >= 4)
			memcpy(&table, RTA_DATA(a), 4);
		else if (a->rta_type == RTA_DST &&
			 alen == (p.family == AF_INET ? 4u : 16u))
			memcpy(p.addr, RTA_DATA(a), alen);
	}
	if (table != RT_TABLE_LOCAL)
		return;
	if (rtm->rtm_type != RTN_LOCAL && rtm->rtm_type != RTN_BROADCAST &&
	    rtm->rtm_type != RTN_ANYCAST)
		return;
	if (*n < PO_MAX_LOCAL)
		out[(*n)++] = p;
}

/* Dumps the "local" routing table: every address of every interface,
 * loopback and broadcast addresses, local routes. Never blocks. */
static bool local_refresh(struct nk_portown *po)
{
	struct {
		struct nlmsghdr nh;
		struct rtmsg rtm;
	} req;
	static struct po_prefix tmp[PO_MAX_LOCAL];
	unsigned n = 0;
	bool done = false;
	char *buf = malloc(PO_NLBUF);
	bool ok = false;

	if (!buf)
		return false;
	/* Leftovers of an earlier dump that did not finish. */
	for (int i = 0;
	     i < PO_NL_RECVS && recv(po->nl, buf, PO_NLBUF, MSG_DONTWAIT) > 0;
	     i++)
		;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = RTM_GETROUTE;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = ++po->seq;
	req.rtm.rtm_table = RT_TABLE_LOCAL; /* a filter with strict checks */
	if (send(po->nl, &req, sizeof(req), MSG_DONTWAIT) < 0)
		goto out;
	for (int i = 0; i < PO_NL_RECVS && !done; i++) {
		ssize_t got = recv(po->nl, buf, PO_NLBUF, MSG_DONTWAIT);
		size_t off = 0;

		if (got <= 0)
			break;
		while (!done && off + sizeof(struct nlmsghdr) <= (size_t)got) {
			struct nlmsghdr *nh = (struct nlmsghdr *)(buf + off);

			if (nh->nlmsg_len < sizeof(*nh) ||
			    nh->nlmsg_len > (size_t)got - off)
				break;
			off += NLMSG_ALIGN(nh->nlmsg_len);
			if (nh->nlmsg_seq != po->seq)
				continue;
			if (nh->nlmsg_type == NLMSG_DONE)
				done = true;
			else if (nh->nlmsg_type == NLMSG_ERROR)
				goto out; /* e.g. a kernel without strict checks */
			else if (nh->nlmsg_type == RTM_NEWROUTE)
				parse_route(po, nh, tmp, &n);
		}
	}
	if (done) {
		memcpy(po->local, tmp, n * sizeof(tmp[0]));
		po->nr_local = n;
		ok = true;
	}
out:
	free(buf);
	return ok;
}

static bool v4_local(struct nk_portown *po, uint32_t a /* network order */)
{
	uint32_t h = ntohl(a);

	if ((h >> 24) == 127 || h == 0 || h == 0xffffffffu)
		return true;
	if (po->afxdp) {
		for (unsigned i = 0; i < po->conf->nr_addrs; i++)
			if (po->conf->addrs[i].addr == a)
				return true;
		return false;
	}
	for (unsigned i = 0; i < po->nr_local; i++)
		if (po->local[i].family == AF_INET &&
		    prefix_has(po->local[i].addr, po->local[i].plen,
			       (const uint8_t *)&a))
			return true;
	return false;
}

static bool is_local(struct nk_portown *po, const struct sockaddr_storage *sa)
{
	const struct in6_addr *a6;

	if (!po->afxdp && po->nl >= 0) {
		int64_t now = nk_now_ns();

		if (now >= po->next_refresh) {
			if (!local_refresh(po) && po->strict) {
				/* Dump every table; parse_route filters. */
				int zero = 0;

				po->strict = false;
				setsockopt(po->nl, SOL_NETLINK,
					   NETLINK_GET_STRICT_CHK, &zero,
					   sizeof(zero));
				local_refresh(po);
			}
			po->next_refresh = now + PO_REFRESH_NS;
		}
	}
	if (sa->ss_family == AF_INET)
		return v4_local(
			po, ((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	if (sa->ss_family != AF_INET6)
		return false;
	a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		uint32_t a;

		memcpy(&a, a6->s6_addr + 12, 4);
		return v4_local(po, a);
	}
	if (IN6_IS_ADDR_LOOPBACK(a6) || IN6_IS_ADDR_UNSPECIFIED(a6))
		return true;
	for (unsigned i = 0; i < po->nr_local; i++)
		if (po->local[i].family == AF_INET6 &&
		    prefix_has(po->local[i].addr, po->local[i].plen,
			       a6->s6_addr))
			return true;
	return false;
}

bool nk_portown__is_local(struct nk_nsm *n, const struct sockaddr_storage *sa)
{
	return n->ports && is_local(n->ports, sa);
}

/* ------------------------------------------------------------------ */
/* Engine hooks. */

static bool owns(struct nk_sock *s, uint16_t port)
{
	struct po_ent *e = ent_of(s->nsm->ports, s, port);

	return port && e->nr && e->g == s->guest;
}

/* Where s may connect or send: 0 or -errno. */
static int dest_check(struct nk_sock *s, const struct sockaddr_storage *sa,
		      bool connect)
{
	const struct nk_guest_conf *gc = &s->guest->conf;
	uint16_t port = sa_port(sa);

	if (connect)
		s->pc.peer_local = false;
	if (sa->ss_family != AF_INET && sa->ss_family != AF_INET6)
		return 0; /* AF_UNSPEC (disconnect); the NSM rejects others */
	if (is_local(s->nsm->ports, sa)) {
		if (owns(s, port))
			return 0; /* its own loopback traffic */
		if (connect && s->type == SOCK_DGRAM) {
			/*
			 * A UDP connect sends nothing: it succeeds as on
			 * Linux, and every send to the peer is judged then.
			 */
			s->pc.peer_local = true;
			s->pc.peer_port = port;
			return 0;
		}
		if (!gc->host_access)
			return connect ? -ECONNREFUSED : -EACCES;
	}
	return nk_guest_conf__egress_ok(gc, (const struct sockaddr *)sa);
}

int nk_portown__check_op(struct nk_sock *s, uint8_t opcode, uint8_t sqe_flags,
			 const struct sockaddr_storage *sa, uid_t uid)
{
	struct nk_portown *po = s->nsm->ports;
	bool implicit = false, dgram = s->type == SOCK_DGRAM;
	int ret = 0;

	if (!po)
		return 0;
	switch (opcode) {
	case NK_OP_BIND:
		/* An already bound socket: the NSM says EINVAL. */
		if (s->pc.port || s->state != NK_SS_UNBOUND)
			return 0;
		ret = nk_portown__claim(s, sa_port(sa));
		s->pc.pending = !ret && s->pc.port;
		return ret;
	case NK_OP_LISTEN:
		implicit = true;
		break;
	case NK_OP_CONNECT:
		implicit = sa->ss_family != AF_UNSPEC;
		ret = dest_check(s, sa, true);
		if (ret)
			return ret;
		break;
	case NK_OP_SEND:
		if (!dgram)
			return 0;
		implicit = true;
		if (sqe_flags & NK_SQE_F_ADDR)
			ret = dest_check(s, sa, false);
		else if (s->pc.peer_local && !owns(s, s->pc.peer_port) &&
			 !s->guest->conf.host_access)
			ret = -EACCES; /* a local port that is not its own */
		if (ret) {
			/*
			 * The shim's sends are asynchronous: the program sees
			 * this on a later send or in SO_ERROR, as it would an
			 * ICMP error.
			 */
			s->so_error = -ret;
			return ret;
		}
		break;
	default:
		return 0;
	}
	if (implicit && s->state == NK_SS_UNBOUND && !s->pc.port) {
		struct sockaddr_storage any;

		memset(&any, 0, sizeof(any));
		any.ss_family = (sa_family_t)s->family;
		ret = nk_guest_conf__bind_ok(&s->guest->conf,
					     (struct sockaddr *)&any, uid);
		if (ret)
			return ret;
	}
	return 0;
}

int nk_portown__op_done(struct nk_req *op, int res)
{
	struct nk_sock *s = op->sock;
	int ret;

	if (!s->nsm->ports || s->closing)
		return res;
	switch (op->opcode) {
	case NK_OP_BIND:
		if (res < 0) {
			if (s->pc.pending)
				nk_portown__release(s);
			return res;
		}
		s->pc.pending = false;
		break;
	case NK_OP_LISTEN:
		if (res < 0)
			return res;
		break;
	case NK_OP_CONNECT:
	case NK_OP_SEND:
		/* UDP only: a disconnect may drop the port, a first send or
		 * connect picks one (the NSMs claim first; this is the net). */
		if (s->type != SOCK_DGRAM || res < 0 ||
		    (s->pc.port && op->sa.ss_family != AF_UNSPEC))
			return res;
		if (op->opcode == NK_OP_SEND && s->pc.port)
			return res;
		break;
	default:
		return res;
	}
	ret = learn(s);
	return ret ? ret : res;
}

/* ------------------------------------------------------------------ */
/* Create / destroy. */

static int netlink_in_ns(int netns_fd)
{
	int self, fd, err;

	if (netns_fd < 0)
		return socket(AF_NETLINK,
			      SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
			      NETLINK_ROUTE);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -1;
	if (setns(netns_fd, CLONE_NEWNET)) {
		close(self);
		return -1;
	}
	/* The socket keeps the namespace it was made in. */
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    NETLINK_ROUTE);
	err = errno;
	if (setns(self, CLONE_NEWNET)) {
		nk_err("cannot return to nkd's netns: %s", strerror(errno));
		abort();
	}
	close(self);
	errno = err;
	return fd;
}

int nk_portown__create(struct nk_nsm *n)
{
	struct nk_portown *po = calloc(1, sizeof(*po));
	int one = 1;

	if (!po)
		return -ENOMEM;
	/* 2 x 64 Ki entries; untouched pages cost nothing. */
	po->tab = calloc(2u * 65536u, sizeof(*po->tab));
	if (!po->tab) {
		free(po);
		return -ENOMEM;
	}
	po->conf = &n->conf;
	po->afxdp = !strcmp(n->conf.type, "afxdp");
	po->nl = -1;
	if (!po->afxdp) {
		po->nl = netlink_in_ns(n->netns_fd);
		if (po->nl < 0)
			nk_warn("nsm %s: no rtnetlink socket (%s): only "
				"loopback and unspecified addresses count as "
				"local to it",
				n->conf.name, strerror(errno));
		else
			po->strict = !setsockopt(po->nl, SOL_NETLINK,
						 NETLINK_GET_STRICT_CHK, &one,
						 sizeof(one));
	}
	n->ports = po;
	return 0;
}

void nk_portown__destroy(struct nk_nsm *n)
{
	struct nk_portown *po = n->ports;

	if (!po)
		return;
	if (po->nl >= 0)
		close(po->nl);
	free(po->tab);
	free(po);
	n->ports = NULL;
}
