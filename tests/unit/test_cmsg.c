// SPDX-License-Identifier: MIT
/*
 * nk_cmsg__check_send(): a SEND's ancillary block comes from a hostile
 * guest; only well-formed, allow-listed control messages pass.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "cmsg.h"

/* Appends one control message with an int (or len bytes) of data. */
static void add(struct nk_cmsg *b, int level, int type, int val, size_t len)
{
	struct cmsghdr c = { .cmsg_len = CMSG_LEN(len),
			     .cmsg_level = level,
			     .cmsg_type = type };

	memcpy(b->data + b->len, &c, sizeof(c));
	memcpy(b->data + b->len + sizeof(c), &val, len);
	b->len += (uint32_t)CMSG_SPACE(len);
}

static void test_allowed(void **state)
{
	struct nk_cmsg b = { 0 };
	uint64_t out[NK_CMSG_BYTES / 8];
	size_t n;

	(void)state;
	add(&b, IPPROTO_IPV6, IPV6_HOPLIMIT, 7, sizeof(int));
	add(&b, IPPROTO_IPV6, IPV6_TCLASS, 40, sizeof(int));
	add(&b, IPPROTO_UDP, 103, 1, sizeof(int)); /* other level: dropped */
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), 0);
	assert_int_equal(n, 2 * CMSG_SPACE(sizeof(int)));
	assert_memory_equal(out, b.data, n);
	memset(&b, 0, sizeof(b));
	add(&b, IPPROTO_IP, IP_TOS, 0x10, 1);
	add(&b, IPPROTO_IP, IP_TTL, 9, sizeof(int));
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET, out, &n), 0);
	assert_int_equal(n, CMSG_SPACE(1) + CMSG_SPACE(sizeof(int)));
	memset(&b, 0, sizeof(b));
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET, out, &n), 0);
	assert_int_equal(n, 0);
}

static void test_refused(void **state)
{
	struct nk_cmsg b = { 0 };
	uint64_t out[NK_CMSG_BYTES / 8];
	struct cmsghdr c = { 0 };
	size_t n;

	(void)state;
	/* Not on the list at the socket's level or SOL_SOCKET. */
	add(&b, IPPROTO_IPV6, IPV6_PKTINFO, 0, sizeof(int));
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), -EINVAL);
	memset(&b, 0, sizeof(b));
	add(&b, SOL_SOCKET, SCM_RIGHTS, 3, sizeof(int));
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET, out, &n), -EINVAL);
	/* The other family's IP level: ignored by the kernel, dropped. */
	memset(&b, 0, sizeof(b));
	add(&b, IPPROTO_IP, IP_TTL, 9, sizeof(int));
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), 0);
	assert_int_equal(n, 0);
	/* Wrong length for an allowed type. */
	memset(&b, 0, sizeof(b));
	add(&b, IPPROTO_IPV6, IPV6_HOPLIMIT, 7, 2);
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), -EINVAL);
	/* Malformed: length past the block, shorter than a header, flags. */
	memset(&b, 0, sizeof(b));
	add(&b, IPPROTO_IPV6, IPV6_HOPLIMIT, 7, sizeof(int));
	c.cmsg_len = 1000;
	memcpy(b.data, &c.cmsg_len, sizeof(c.cmsg_len));
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), -EINVAL);
	c.cmsg_len = 4;
	memcpy(b.data, &c.cmsg_len, sizeof(c.cmsg_len));
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), -EINVAL);
	memset(&b, 0, sizeof(b));
	b.len = sizeof(b.data) + 1;
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), -EINVAL);
	b.len = 0;
	b.flags = 1;
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), -EINVAL);
	b.flags = 0;
	b.len = 8; /* a partial header */
	assert_int_equal(nk_cmsg__check_send(&b, AF_INET6, out, &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
