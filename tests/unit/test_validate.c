// SPDX-License-Identifier: MIT
/*
 * nk_validate__sqe(): every refusal case of docs/abi.md §5, and that the
 * accepted cases decode what the engine relies on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bufown.h"
#include "validate.h"

#define BUF_SIZE 4096u
#define NR_BUFS 8u
#define H_TCP4 0x00100001u
#define H_UDP6 0x00100002u

static int lookup(const void *arg, uint32_t handle, struct nk_sock_view *v)
{
	(void)arg;
	if (handle == H_TCP4) {
		v->family = AF_INET;
		v->type = SOCK_STREAM;
		return 0;
	}
	if (handle == H_UDP6) {
		v->family = AF_INET6;
		v->type = SOCK_DGRAM;
		return 0;
	}
	return -EBADF;
}

struct fix {
	struct nk_bufown *owned;
	struct nk_validate_ctx c;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	f->owned = nk_bufown__create(NR_BUFS);
	f->c.buf_size = BUF_SIZE;
	f->c.nr_bufs = NR_BUFS;
	f->c.owned = f->owned;
	f->c.lookup = lookup;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	nk_bufown__destroy(f->owned);
	free(f);
	return 0;
}

static int check(void **state, const struct nk_sqe *sqe, bool *abuse)
{
	struct fix *f = *state;
	struct nk_valid v;
	int ret = nk_validate__sqe(sqe, &f->c, &v);

	*abuse = v.abuse;
	return ret;
}

#define REFUSED_ABUSE(sqe, err)                                      \
	do {                                                         \
		bool ab_;                                            \
		assert_int_equal(check(state, &(sqe), &ab_), (err)); \
		assert_true(ab_);                                    \
	} while (0)
#define REFUSED_PLAIN(sqe, err)                                      \
	do {                                                         \
		bool ab_;                                            \
		assert_int_equal(check(state, &(sqe), &ab_), (err)); \
		assert_false(ab_);                                   \
	} while (0)
#define ACCEPTED(sqe)                                            \
	do {                                                     \
		bool ab_;                                        \
		assert_int_equal(check(state, &(sqe), &ab_), 0); \
		assert_false(ab_);                               \
	} while (0)

static struct nk_sqe op(uint8_t opcode, uint32_t handle)
{
	struct nk_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = opcode;
	s.handle = handle;
	s.user_data = 42;
	return s;
}

static void set_v4(struct nk_sqe *s, uint32_t ip, uint16_t port)
{
	s->addr.family = AF_INET;
	s->addr.port = htons(port);
	memcpy(s->addr.addr, &ip, 4);
}

static void test_opcode_flags_resv(void **state)
{
	struct nk_sqe s = op(NK_OP__MAX, 0);

	REFUSED_ABUSE(s, -EINVAL);
	s = op(0xff, 0);
	REFUSED_ABUSE(s, -EINVAL);
	s = op(NK_OP_NOP, 0);
	ACCEPTED(s);
	s.flags = 0x80;
	REFUSED_ABUSE(s, -EINVAL);
	s = op(NK_OP_NOP, 0);
	s.resv0 = 1;
	REFUSED_ABUSE(s, -EINVAL);
	s = op(NK_OP_NOP, 0);
	s.addr.resv = 1; /* second union must be zero */
	REFUSED_ABUSE(s, -EINVAL);
}

static void test_handles(void **state)
{
	struct nk_sqe s = op(NK_OP_NOP, H_TCP4);

	REFUSED_ABUSE(s, -EINVAL); /* NOP takes no handle */
	s = op(NK_OP_CANCEL, 7);
	REFUSED_ABUSE(s, -EINVAL);
	s = op(NK_OP_SOCKET, H_TCP4);
	REFUSED_ABUSE(s, -EINVAL);
	s = op(NK_OP_CLOSE, 0x00200001u); /* stale generation */
	REFUSED_ABUSE(s, -EBADF);
	s = op(NK_OP_CLOSE, 0);
	REFUSED_ABUSE(s, -EBADF);
	s = op(NK_OP_CLOSE, H_TCP4);
	ACCEPTED(s);
}

static void test_socket(void **state)
{
	struct nk_sqe s = op(NK_OP_SOCKET, 0);

	s.sock.domain = AF_INET;
	s.sock.type = SOCK_STREAM;
	ACCEPTED(s);
	s.sock.protocol = IPPROTO_UDP;
	REFUSED_PLAIN(s, -EPROTONOSUPPORT);
	s.sock.protocol = IPPROTO_TCP;
	ACCEPTED(s);
	s.sock.type = SOCK_DGRAM;
	s.sock.protocol = IPPROTO_TCP;
	REFUSED_PLAIN(s, -EPROTONOSUPPORT);
	/* The ICMP echo socket, of its own family only. */
	s.sock.protocol = IPPROTO_ICMP;
	ACCEPTED(s);
	s.sock.protocol = IPPROTO_ICMPV6;
	REFUSED_PLAIN(s, -EPROTONOSUPPORT);
	s.sock.domain = AF_INET6;
	ACCEPTED(s);
	s.sock.protocol = IPPROTO_ICMP;
	REFUSED_PLAIN(s, -EPROTONOSUPPORT);
	s.sock.domain = AF_INET;
	s.sock.type = SOCK_STREAM;
	REFUSED_PLAIN(s, -EPROTONOSUPPORT);
	s.sock.type = SOCK_DGRAM;
	s.sock.protocol = 0;
	s.sock.type = SOCK_STREAM | SOCK_NONBLOCK;
	REFUSED_PLAIN(s, -EINVAL);
	s.sock.type = SOCK_RAW;
	REFUSED_PLAIN(s, -EINVAL);
	s.sock.type = SOCK_STREAM;
	s.sock.domain = AF_UNIX;
	REFUSED_PLAIN(s, -EAFNOSUPPORT);
	s.sock.domain = AF_INET6;
	s.sock.resv1 = 3;
	REFUSED_ABUSE(s, -EINVAL);
}

static void test_addr(void **state)
{
	struct fix *f = *state;
	struct nk_valid v;
	struct nk_sqe s = op(NK_OP_BIND, H_TCP4);

	set_v4(&s, htonl(INADDR_LOOPBACK), 80);
	assert_int_equal(nk_validate__sqe(&s, &f->c, &v), 0);
	assert_int_equal(v.sa.ss_family, AF_INET);
	assert_int_equal(v.salen, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&v.sa)->sin_port), 80);

	s.addr.addr[7] = 1; /* bytes past an IPv4 address */
	REFUSED_ABUSE(s, -EINVAL);
	set_v4(&s, 0, 80);
	s.addr.addr[7] = 0;
	s.addr.scope_id = 2;
	REFUSED_ABUSE(s, -EINVAL);
	s.addr.scope_id = 0;
	s.addr.resv = 9;
	REFUSED_ABUSE(s, -EINVAL);
	s.addr.resv = 0;
	s.addr.family = 99;
	REFUSED_ABUSE(s, -EINVAL);
	s.addr.family = AF_INET6; /* valid address, wrong family */
	REFUSED_PLAIN(s, -EAFNOSUPPORT);

	/* AF_UNSPEC: CONNECT on a datagram socket only. */
	s = op(NK_OP_CONNECT, H_UDP6);
	ACCEPTED(s);
	s = op(NK_OP_CONNECT, H_TCP4);
	REFUSED_PLAIN(s, -EAFNOSUPPORT);
	s = op(NK_OP_CONNECT, H_UDP6);
	s.addr.port = 5; /* AF_UNSPEC with junk */
	REFUSED_ABUSE(s, -EINVAL);

	/* SEND: addr only with NK_SQE_F_ADDR, else zero. */
	s = op(NK_OP_SEND, H_UDP6);
	s.io.buf_len = 10;
	s.addr.family = AF_INET6;
	REFUSED_ABUSE(s, -EINVAL);
	s.flags = NK_SQE_F_ADDR;
	ACCEPTED(s);
}

static void test_buffers(void **state)
{
	struct fix *f = *state;
	struct nk_valid v;
	struct nk_sqe s = op(NK_OP_SEND, H_TCP4);

	s.io.buf_off = BUF_SIZE * 2 + 100;
	s.io.buf_len = 200;
	assert_int_equal(nk_validate__sqe(&s, &f->c, &v), 0);
	assert_int_equal(v.buf_idx, 2);

	s.io.buf_off = BUF_SIZE * NR_BUFS; /* past the area */
	REFUSED_ABUSE(s, -EFAULT);
	s.io.buf_off = UINT32_MAX;
	REFUSED_ABUSE(s, -EFAULT);
	s.io.buf_off = BUF_SIZE - 10; /* spans two buffers */
	s.io.buf_len = 11;
	REFUSED_ABUSE(s, -EFAULT);
	s.io.buf_off = 0;
	s.io.buf_len = BUF_SIZE + 1; /* longer than a buffer */
	REFUSED_ABUSE(s, -EFAULT);
	s.io.buf_len = UINT32_MAX;
	REFUSED_ABUSE(s, -EFAULT);
	s.io.buf_off = BUF_SIZE * (NR_BUFS - 1); /* last byte of the area */
	s.io.buf_len = BUF_SIZE;
	ACCEPTED(s);

	/* Already host-owned. */
	nk_bufown__claim(f->owned, 3);
	s.io.buf_off = BUF_SIZE * 3 + 5;
	s.io.buf_len = 1;
	REFUSED_ABUSE(s, -EFAULT);
	nk_bufown__release(f->owned, 3);
	ACCEPTED(s);

	/* Zero length: no buffer taken, but still a position in the area. */
	s.io.buf_len = 0;
	assert_int_equal(nk_validate__sqe(&s, &f->c, &v), 0);
	assert_int_equal(v.buf_idx, -1);
	s.io.buf_off = BUF_SIZE * NR_BUFS + 1;
	REFUSED_ABUSE(s, -EFAULT);
}

static void test_io_rules(void **state)
{
	struct nk_sqe s = op(NK_OP_ACCEPT, H_TCP4);

	s.io.buf_len = 16; /* room for the peer address needed */
	REFUSED_PLAIN(s, -EINVAL);
	s.io.buf_len = 32;
	ACCEPTED(s);
	s = op(NK_OP_ACCEPT, H_UDP6);
	s.io.buf_len = 32;
	REFUSED_PLAIN(s, -EOPNOTSUPP);
	s = op(NK_OP_GETSOCKNAME, H_TCP4);
	s.io.buf_len = 31;
	REFUSED_PLAIN(s, -EINVAL);
	s = op(NK_OP_RECV, H_UDP6);
	s.flags = NK_SQE_F_ADDR;
	s.io.buf_len = 20;
	REFUSED_PLAIN(s, -EINVAL);
	s.io.buf_len = 100;
	ACCEPTED(s);
	s.io.msg_flags = MSG_ERRQUEUE;
	REFUSED_PLAIN(s, -EOPNOTSUPP);
	s = op(NK_OP_SEND, H_TCP4);
	s.io.buf_len = 1;
	s.io.msg_flags = MSG_NOSIGNAL | MSG_MORE;
	ACCEPTED(s);
	s.io.msg_flags = MSG_FASTOPEN;
	REFUSED_PLAIN(s, -EOPNOTSUPP);
	s = op(NK_OP_SETSOCKOPT, H_TCP4);
	s.io.buf_len = NK_OPTVAL_MAX + 1;
	REFUSED_PLAIN(s, -EINVAL);
	s.io.buf_len = 4;
	ACCEPTED(s);
	s.opt.resv2[5] = 1;
	REFUSED_ABUSE(s, -EINVAL);
}

/* NK_SQE_F_CMSG: SEND/RECV on datagrams, with room for the block. */
static void test_cmsg_rules(void **state)
{
	struct nk_sqe s = op(NK_OP_RECV, H_UDP6);

	s.flags = NK_SQE_F_ADDR | NK_SQE_F_CMSG;
	s.io.buf_len = 32 + NK_CMSG_BYTES - 1;
	REFUSED_PLAIN(s, -EINVAL);
	s.io.buf_len = 32 + NK_CMSG_BYTES;
	ACCEPTED(s);
	s = op(NK_OP_RECV, H_TCP4);
	s.flags = NK_SQE_F_CMSG;
	s.io.buf_len = 1024;
	REFUSED_PLAIN(s, -EINVAL);
	s = op(NK_OP_SEND, H_UDP6);
	s.flags = NK_SQE_F_CMSG;
	s.io.buf_len = NK_CMSG_BYTES - 1;
	REFUSED_PLAIN(s, -EINVAL);
	s.io.buf_len = NK_CMSG_BYTES + 10;
	ACCEPTED(s);
	s = op(NK_OP_SEND, H_TCP4);
	s.flags = NK_SQE_F_CMSG;
	s.io.buf_len = NK_CMSG_BYTES + 10;
	REFUSED_PLAIN(s, -EINVAL);
	s = op(NK_OP_GETSOCKNAME, H_UDP6);
	s.flags = NK_SQE_F_CMSG;
	s.io.buf_len = 32;
	REFUSED_ABUSE(s, -EINVAL);
}

/* NK_SQE_F_BATCH: RECV on datagrams only, plain, room for a record. */
static void test_batch_rules(void **state)
{
	struct nk_sqe s = op(NK_OP_RECV, H_UDP6);

	s.flags = NK_SQE_F_BATCH | NK_SQE_F_NONBLOCK | NK_SQE_F_PREFETCH;
	s.io.buf_len = sizeof(struct nk_dgram) - 1;
	REFUSED_PLAIN(s, -EINVAL);
	s.io.buf_len = sizeof(struct nk_dgram);
	ACCEPTED(s);
	s.io.buf_len = BUF_SIZE;
	ACCEPTED(s);
	s.io.msg_flags = MSG_PEEK;
	REFUSED_PLAIN(s, -EINVAL);
	s.io.msg_flags = 0;
	s.flags = NK_SQE_F_BATCH | NK_SQE_F_ADDR;
	REFUSED_PLAIN(s, -EINVAL);
	s.flags = NK_SQE_F_BATCH | NK_SQE_F_CMSG;
	REFUSED_PLAIN(s, -EINVAL);
	/* Past the buffer: refused like any RECV. */
	s.flags = NK_SQE_F_BATCH;
	s.io.buf_off = 100;
	REFUSED_ABUSE(s, -EFAULT);
	s = op(NK_OP_RECV, H_TCP4);
	s.flags = NK_SQE_F_BATCH;
	s.io.buf_len = 1024;
	REFUSED_PLAIN(s, -EINVAL);
	s = op(NK_OP_SEND, H_UDP6);
	s.flags = NK_SQE_F_BATCH;
	s.io.buf_len = 100;
	REFUSED_ABUSE(s, -EINVAL);
}

/* NK_OP_UNREAD: a plain buffer, no flags; a datagram needs a record. */
static void test_unread_rules(void **state)
{
	struct fix *f = *state;
	struct nk_sqe s = op(NK_OP_UNREAD, H_TCP4);

	s.io.buf_len = 1;
	ACCEPTED(s);
	s.io.buf_len = 0;
	REFUSED_PLAIN(s, -EINVAL);
	s.io.buf_len = BUF_SIZE;
	ACCEPTED(s);
	s.io.buf_off = 100; /* spans two buffers */
	REFUSED_ABUSE(s, -EFAULT);
	s.io.buf_off = BUF_SIZE * NR_BUFS;
	s.io.buf_len = 1;
	REFUSED_ABUSE(s, -EFAULT);
	s.io.buf_off = 0;
	s.flags = NK_SQE_F_NONBLOCK;
	REFUSED_ABUSE(s, -EINVAL);
	s.flags = NK_SQE_F_BATCH;
	REFUSED_ABUSE(s, -EINVAL);
	s.flags = 0;
	s.io.msg_flags = MSG_PEEK;
	REFUSED_ABUSE(s, -EINVAL);
	s.io.msg_flags = 0;
	s.io.timeout_ms = 5;
	REFUSED_ABUSE(s, -EINVAL);
	s.io.timeout_ms = 0;
	/* A buffer nkd holds (a RECV in flight) cannot be given back. */
	assert_int_equal(nk_bufown__claim(f->owned, 0), 0);
	REFUSED_ABUSE(s, -EFAULT);
	s.handle = 0x00100009u;
	REFUSED_ABUSE(s, -EBADF);
	s = op(NK_OP_UNREAD, H_UDP6);
	s.io.buf_off = BUF_SIZE;
	s.io.buf_len = sizeof(struct nk_dgram) - 1;
	REFUSED_PLAIN(s, -EINVAL);
	s.io.buf_len = sizeof(struct nk_dgram);
	ACCEPTED(s);
}

static void test_ctl_ops(void **state)
{
	struct nk_sqe s = op(NK_OP_LISTEN, H_TCP4);

	s.ctl.arg = 128;
	ACCEPTED(s);
	s.ctl.resv1 = 1;
	REFUSED_ABUSE(s, -EINVAL);
	s = op(NK_OP_LISTEN, H_UDP6);
	REFUSED_PLAIN(s, -EOPNOTSUPP);
	s = op(NK_OP_SHUTDOWN, H_TCP4);
	s.ctl.arg = SHUT_RDWR;
	ACCEPTED(s);
	s.ctl.arg = 3;
	REFUSED_PLAIN(s, -EINVAL);
	s = op(NK_OP_IOCTL, H_TCP4);
	s.ctl.arg = NK_IOCTL_SIOCOUTQ;
	ACCEPTED(s);
	s.ctl.arg = 0x5421; /* FIONBIO is the shim's business */
	REFUSED_PLAIN(s, -ENOTTY);
	s = op(NK_OP_CANCEL, 0);
	s.ctl.arg64 = 42;
	ACCEPTED(s);
}

static void test_sockaddr_roundtrip(void **state)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
				    .sin6_port = htons(443),
				    .sin6_scope_id = 3 };
	struct sockaddr_storage ss;
	struct nk_sockaddr a;
	socklen_t len;

	(void)state;
	in6.sin6_addr.s6_addr[15] = 1;
	nk_sockaddr__from_sa((struct sockaddr *)&in6, sizeof(in6), &a);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(a.scope_id, 3);
	assert_int_equal(nk_sockaddr__to_sa(&a, &ss, &len), 0);
	assert_int_equal(len, sizeof(in6));
	assert_memory_equal(&ss, &in6, sizeof(in6));
	/* Unknown family in: family 0 out. */
	ss.ss_family = AF_UNIX;
	nk_sockaddr__from_sa((struct sockaddr *)&ss, sizeof(ss), &a);
	assert_int_equal(a.family, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_opcode_flags_resv, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmsg_rules, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batch_rules, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unread_rules, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ctl_ops, setup, teardown),
		cmocka_unit_test(test_sockaddr_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
