// SPDX-License-Identifier: MIT
/* Config parser: every statement and key, and bad lines as file:line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static void test_full_example(void **state)
{
	static const char text[] =
		"# comment line\n"
		"nsm kernel0 type=kernel netns=/run/netns/nkh    # trailing\n"
		"nsm k1 type=kernel\n"
		"\n"
		"guest web nsm=kernel0 uid=0 uid=1000 max_sockets=256 "
		"max_inflight=128 bufs=64 weight=3 bind=0.0.0.0/0:1024-65535 "
		"bind=[::]/0:80-80 max_conns=5\n"
		"guest plain\n"
		"unknown_guests allow\n"
		"abuse_limit 50\n";
	struct nk_config c;
	const struct nk_guest_conf *g;
	char err[256] = "";

	(void)state;
	assert_int_equal(nk_config__parse(text, "t.conf", &c, err, sizeof(err)),
			 0);
	assert_int_equal(c.nr_nsms, 2);
	assert_string_equal(c.nsms[0].netns, "/run/netns/nkh");
	assert_string_equal(c.nsms[1].netns, "");
	assert_true(c.unknown_allow);
	assert_int_equal(c.abuse_limit, 50);
	g = nk_config__guest(&c, "web");
	assert_non_null(g);
	assert_int_equal(g->nr_uids, 2);
	assert_int_equal(g->uids[1], 1000);
	assert_int_equal(g->max_sockets, 256);
	assert_int_equal(g->max_inflight, 128);
	assert_int_equal(g->bufs, 64);
	assert_int_equal(g->weight, 3);
	assert_int_equal(g->max_conns, 5);
	assert_int_equal(g->nr_binds, 2);
	assert_int_equal(g->binds[1].family, AF_INET6);
	assert_int_equal(g->binds[1].port_lo, 80);
	g = nk_config__guest(&c, "plain");
	assert_int_equal(g->max_sockets, NK_DEF_MAX_SOCKETS);
	assert_int_equal(g->bufs, NK_DEF_BUFS);
	assert_int_equal(g->nr_uids, 0);
	assert_null(nk_config__guest(&c, "nope"));
	nk_config__free(&c);
}

static void expect_error(const char *text, const char *msg)
{
	struct nk_config c;
	char err[256] = "";

	assert_int_equal(nk_config__parse(text, "bad.conf", &c, err,
					  sizeof(err)),
			 -EINVAL);
	if (!strstr(err, msg))
		fail_msg("error '%s' lacks '%s'", err, msg);
	assert_int_equal(c.nr_nsms, 0);
	assert_null(c.nsms);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("nsm k type=kernel\nbogus x\n",
		     "bad.conf:2: unknown statement 'bogus'");
	expect_error("nsm k type=shm\n", "bad.conf:1: nsm k: unknown type");
	expect_error("nsm k type=afxdp addr=10.0.0.5/24\n",
		     "bad.conf:1: nsm k: type=afxdp needs dev=");
	expect_error("nsm k type=afxdp dev=eth0\n",
		     "bad.conf:1: nsm k: type=afxdp needs addr=");
	expect_error("nsm k type=afxdp dev=eth0 addr=10.0.0.5/33\n",
		     "bad.conf:1: nsm k: bad addr '10.0.0.5/33'");
	expect_error("nsm k type=afxdp dev=eth0 addr=1.2.3.4 queues=0\n",
		     "bad.conf:1: nsm k: bad queues '0'");
	expect_error("nsm k type=afxdp dev=eth0 addr=1.2.3.4 backend=dpdk\n",
		     "bad.conf:1: nsm k: bad backend 'dpdk'");
	expect_error("nsm k type=afxdp dev=eth0 addr=1.2.3.4 synq=0\n",
		     "bad.conf:1: nsm k: bad synq '0'");
	expect_error("nsm k type=kernel synq_total=5\n",
		     "bad.conf:1: nsm k: synq_total= is only for type=afxdp");
	expect_error("nsm k type=kernel dev=eth0\n",
		     "bad.conf:1: nsm k: dev= is only for type=afxdp");
	expect_error("nsm k type=kernel\nguest g acl_deny=1.2.3.4/40\n",
		     "bad.conf:2: guest g: bad acl_deny '1.2.3.4/40'");
	expect_error("nsm k\n", "bad.conf:1: nsm k: type= is required");
	expect_error("nsm k type=kernel\nnsm k type=kernel\n",
		     "bad.conf:2: nsm 'k' already defined at bad.conf:1");
	expect_error("nsm k type=kernel color=red\n",
		     "bad.conf:1: nsm k: unknown key 'color'");
	expect_error("nsm k/x type=kernel\n", "bad.conf:1: nsm: bad name");
	expect_error("nsm k type=kernel\nguest g max_sockets=0\n",
		     "bad.conf:2: guest g: max_sockets must be");
	expect_error("nsm k type=kernel\nguest g max_sockets=12x\n",
		     "bad.conf:2: guest g: max_sockets must be");
	expect_error("nsm k type=kernel\nguest g weight=101\n",
		     "bad.conf:2: guest g: weight must be 1..100");
	expect_error("nsm k type=kernel\nguest g bufs=99999999\n",
		     "bad.conf:2: guest g: bufs must be");
	expect_error("nsm k type=kernel\nguest g uid=-1\n",
		     "bad.conf:2: guest g: bad uid");
	expect_error("nsm k type=kernel\nguest g bind=1.2.3.4\n",
		     "bad.conf:2: guest g: bad bind '1.2.3.4'");
	expect_error("nsm k type=kernel\nguest g bind=1.2.3.4/33:80\n",
		     "bad.conf:2: guest g: bad bind");
	expect_error("nsm k type=kernel\nguest g bind=1.2.3.4:90-80\n",
		     "bad.conf:2: guest g: bad bind");
	expect_error("nsm k type=kernel\nguest g speed=9\n",
		     "bad.conf:2: guest g: unknown key 'speed'");
	expect_error("nsm k type=kernel\nguest g novalue\n",
		     "bad.conf:2: guest g: expected key=value");
	expect_error("nsm k type=kernel\n\n\nguest g nsm=other\n",
		     "bad.conf:4: guest g: nsm 'other' is not defined");
	expect_error("nsm k type=kernel\nguest g\nguest g\n",
		     "bad.conf:3: guest 'g' already defined at bad.conf:2");
	expect_error("nsm k type=kernel\nunknown_guests maybe\n",
		     "bad.conf:2: unknown_guests: expected allow or deny");
	expect_error("nsm k type=kernel\nabuse_limit 0\n",
		     "bad.conf:2: abuse_limit");
	expect_error("guest g\n", "no nsm defined");
	expect_error("", "no nsm defined");
}

/* Budget statements and reserve= (the budget itself is sized at start). */
static void test_budgets(void **state)
{
	static const char text[] = "nsm k type=kernel\n"
				   "guest web reserve=100 max_sockets=200\n"
				   "guest plain\n"
				   "socket_budget 5000\n"
				   "memory_budget 512\n"
				   "default_share 25\n"
				   "resolve_queue 4\n";
	struct nk_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(nk_config__parse(text, "t.conf", &c, err, sizeof(err)),
			 0);
	assert_int_equal(nk_config__guest(&c, "web")->reserve, 100);
	assert_int_equal(nk_config__guest(&c, "plain")->reserve, 0);
	assert_int_equal(c.budget.sockets, 5000);
	assert_true(c.budget.memory == 512ull << 20);
	assert_int_equal(c.budget.share_pct, 25);
	assert_int_equal(c.budget.resolve_queue, 4);
	nk_config__free(&c);
	/* Unset: 0, budget.c's defaults. */
	assert_int_equal(nk_config__parse("nsm k type=kernel\n", "t.conf", &c,
					  err, sizeof(err)),
			 0);
	assert_int_equal(c.budget.sockets, 0);
	assert_int_equal(c.budget.share_pct, 0);
	nk_config__free(&c);
	expect_error(
		"nsm k type=kernel\nguest g reserve=10 max_sockets=5\n",
		"bad.conf:2: guest g: reserve=10 is more than max_sockets=5");
	expect_error("nsm k type=kernel\nguest g reserve=-1\n",
		     "bad.conf:2: guest g: reserve must be");
	expect_error("nsm k type=kernel\ndefault_share 0\n",
		     "bad.conf:2: default_share: expected a percentage");
	expect_error("nsm k type=kernel\ndefault_share 101\n",
		     "bad.conf:2: default_share");
	expect_error("nsm k type=kernel\nsocket_budget 0\n",
		     "bad.conf:2: socket_budget");
	expect_error("nsm k type=kernel\nmemory_budget x\n",
		     "bad.conf:2: memory_budget");
	expect_error("nsm k type=kernel\nresolve_queue 1000\n",
		     "bad.conf:2: resolve_queue");
}

static void test_afxdp(void **state)
{
	struct nk_config c;
	char err[256] = "";
	const char *text =
		"nsm k type=kernel\n"
		"nsm x type=afxdp dev=nkh addr=10.0.0.5/24 addr=10.1.0.5 "
		"gw=10.0.0.1 queues=2 backend=packet mode=skb "
		"netns=/run/netns/h\n"
		"nsm y type=afxdp dev=eth0 addr=192.168.1.9/16\n"
		"guest g nsm=x acl_deny=10.0.0.9 acl_allow=10.0.0.0/24\n";

	(void)state;
	assert_int_equal(nk_config__parse(text, "t", &c, err, sizeof(err)), 0);
	assert_int_equal(c.nr_nsms, 3);
	assert_string_equal(c.nsms[1].type, "afxdp");
	assert_string_equal(c.nsms[1].dev, "nkh");
	assert_int_equal(c.nsms[1].nr_addrs, 2);
	assert_int_equal(c.nsms[1].addrs[0].addr, htonl(0x0a000005));
	assert_int_equal(c.nsms[1].addrs[0].prefix, 24);
	assert_int_equal(c.nsms[1].addrs[1].prefix, 32);
	assert_int_equal(c.nsms[1].gw, htonl(0x0a000001));
	assert_int_equal(c.nsms[1].queues, 2);
	assert_string_equal(c.nsms[1].backend, "packet");
	assert_string_equal(c.nsms[1].mode, "skb");
	assert_string_equal(c.nsms[1].netns, "/run/netns/h");
	/* defaults */
	assert_int_equal(c.nsms[2].queues, 1);
	assert_string_equal(c.nsms[2].backend, "afxdp");
	assert_string_equal(c.nsms[2].mode, "native");
	assert_int_equal(c.guests[0].nr_acl, 2);
	assert_true(c.guests[0].acl_deny[0]);
	assert_false(c.guests[0].acl_deny[1]);
	assert_int_equal(c.guests[0].acl[0].prefix, 32);
	assert_int_equal(c.guests[0].acl[1].prefix, 24);
	nk_config__free(&c);
}

static void test_afxdp_synq(void **state)
{
	struct nk_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(
		nk_config__parse("nsm x type=afxdp dev=e addr=10.0.0.5 "
				 "synq=16 synq_total=100\n"
				 "nsm y type=afxdp dev=f addr=10.0.1.5\n",
				 "t", &c, err, sizeof(err)),
		0);
	assert_int_equal(c.nsms[0].synq, 16);
	assert_int_equal(c.nsms[0].synq_total, 100);
	assert_int_equal(c.nsms[1].synq, 0); /* the engine's default */
	nk_config__free(&c);
}

static void test_defaults(void **state)
{
	struct nk_config c;

	(void)state;
	assert_int_equal(nk_config__default(&c), 0);
	assert_int_equal(c.nr_nsms, 1);
	assert_string_equal(c.nsms[0].name, "kernel0");
	assert_string_equal(c.nsms[0].type, "kernel");
	assert_true(c.unknown_allow);
	assert_int_equal(c.abuse_limit, NK_DEF_ABUSE_LIMIT);
	nk_config__free(&c);
	/* With a file, unknown guests are denied unless it says so. */
	assert_int_equal(
		nk_config__parse("nsm k type=kernel\n", "f", &c, NULL, 0), 0);
	assert_false(c.unknown_allow);
	nk_config__free(&c);
}

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_port = htons(port) };

	inet_pton(AF_INET, ip, &in.sin_addr);
	return in;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
				    .sin6_port = htons(port) };

	inet_pton(AF_INET6, ip, &in6.sin6_addr);
	return in6;
}

static void test_bind_policy(void **state)
{
	struct nk_guest_conf g;
	struct sockaddr_in a;
	struct sockaddr_in6 b;

	(void)state;
	nk_guest_conf__defaults(&g, "g");
	/* Default: any address, ports >= 1024, low ports for uid 0. */
	a = v4("10.1.2.3", 80);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&a, 1000), -EACCES);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&a, 0), 0);
	a = v4("10.1.2.3", 8080);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&a, 1000), 0);
	a = v4("10.1.2.3", 0);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&a, 1000), 0);

	assert_int_equal(
		nk_bind_rule__parse("10.0.0.0/8:1024-2047", &g.binds[0]), 0);
	assert_int_equal(nk_bind_rule__parse("[fd00::]/16:80", &g.binds[1]), 0);
	g.nr_binds = 2;
	a = v4("10.9.9.9", 2000);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&a, 5), 0);
	a = v4("10.9.9.9", 2048);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&a, 0), -EACCES);
	a = v4("11.0.0.1", 2000);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&a, 0), -EACCES);
	a = v4("10.0.0.1", 0); /* ephemeral port on an allowed address */
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&a, 5), 0);
	b = v6("fd00:1::1", 80);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&b, 5), 0);
	b = v6("fd01::1", 80);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&b, 5), -EACCES);
	/* v4-mapped v6 binds are judged by the IPv4 rules. */
	b = v6("::ffff:10.1.1.1", 1500);
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&b, 5), 0);
	b = v6("::", 1500); /* the v6 wildcard is not covered */
	assert_int_equal(nk_guest_conf__bind_ok(&g, (void *)&b, 5), -EACCES);
}

static void test_uid_policy(void **state)
{
	struct nk_guest_conf g;

	(void)state;
	nk_guest_conf__defaults(&g, "g");
	assert_int_equal(nk_guest_conf__uid_ok(&g, 1234), 0);
	g.uids[0] = 7;
	g.nr_uids = 1;
	assert_int_equal(nk_guest_conf__uid_ok(&g, 7), 0);
	assert_int_equal(nk_guest_conf__uid_ok(&g, 0), -EPERM);
}

static void test_operator(void **state)
{
	struct nk_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(nk_config__parse("nsm k type=kernel\n"
					  "operator uid=1000 gid=50\n"
					  "operator uid=0\n",
					  "t.conf", &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(cfg.nr_op_uids, 2);
	assert_int_equal(cfg.op_uids[0], 1000);
	assert_int_equal(cfg.op_uids[1], 0);
	assert_int_equal(cfg.nr_op_gids, 1);
	assert_int_equal(cfg.op_gids[0], 50);
	nk_config__free(&cfg);
	assert_int_equal(nk_config__parse("nsm k type=kernel\noperator\n",
					  "t.conf", &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "t.conf:2: operator: expected uid=N or gid=N");
	assert_int_equal(nk_config__parse("nsm k type=kernel\n"
					  "operator user=root\n",
					  "t.conf", &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(nk_config__parse("nsm k type=kernel\n"
					  "operator uid=x\n",
					  "t.conf", &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "t.conf:2: operator: bad uid=x (a number or a "
				 "user name)");
}

/* nkctl set: keys given replace, others stay; all or nothing. */
static void test_guest_set(void **state)
{
	struct nk_guest_conf g, before;
	char err[256];

	(void)state;
	nk_guest_conf__defaults(&g, "web");
	g.max_inflight = 77;
	assert_int_equal(nk_guest_conf__set(&g,
					    "max_sockets=9 weight=3 "
					    "bind=10.0.0.0/8:80-90 "
					    "bind=[::1]:443",
					    err, sizeof(err)),
			 0);
	assert_int_equal(g.max_sockets, 9);
	assert_int_equal(g.weight, 3);
	assert_int_equal(g.max_inflight, 77); /* not given: kept */
	assert_int_equal(g.nr_binds, 2);
	assert_int_equal(g.binds[1].family, AF_INET6);
	/* A repeatable key replaces its whole list. */
	assert_int_equal(nk_guest_conf__set(&g, "bind=0.0.0.0/0:1-2", err,
					    sizeof(err)),
			 0);
	assert_int_equal(g.nr_binds, 1);
	assert_int_equal(nk_guest_conf__set(&g, "uid=5 uid=6 max_conns=2", err,
					    sizeof(err)),
			 0);
	assert_int_equal(g.nr_uids, 2);
	assert_int_equal(g.max_conns, 2);

	before = g;
	assert_int_equal(nk_guest_conf__set(&g, "weight=4 max_sockets=0", err,
					    sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "guest web: max_sockets must be 1..1048574");
	assert_memory_equal(&g, &before, sizeof(g)); /* nothing applied */
	assert_int_equal(nk_guest_conf__set(&g, "nsm=other", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(nk_guest_conf__set(&g, "colour=red", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "guest web: unknown key 'colour'");
	assert_int_equal(nk_guest_conf__set(&g, "  ", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(nk_guest_conf__set(&g, "weight", err, sizeof(err)),
			 -EINVAL);
	assert_memory_equal(&g, &before, sizeof(g));
}

/* rate=, rate_tx=, rate_rx=, burst= (ratelimit.c), also at run time. */
static void test_rate(void **state)
{
	struct nk_guest_conf g;
	char err[256];

	(void)state;
	nk_guest_conf__defaults(&g, "web");
	assert_int_equal(g.rate_bps[0], 0);
	assert_int_equal(g.rate_bps[1], 0);
	assert_int_equal(nk_guest_conf__set(&g, "rate=100M", err, sizeof(err)),
			 0);
	assert_int_equal(g.rate_bps[0], 100000000);
	assert_int_equal(g.rate_bps[1], 100000000);
	assert_int_equal(nk_guest_conf__set(&g, "rate_tx=1.5G burst=32k", err,
					    sizeof(err)),
			 0);
	assert_int_equal(g.rate_bps[0], 1500000000);
	assert_int_equal(g.rate_bps[1], 100000000); /* not given: kept */
	assert_int_equal(g.rate_burst, 32768);
	assert_int_equal(
		nk_guest_conf__set(&g, "rate_rx=800kbit", err, sizeof(err)), 0);
	assert_int_equal(g.rate_bps[1], 800000);
	assert_int_equal(nk_guest_conf__set(&g, "rate=0", err, sizeof(err)), 0);
	assert_int_equal(g.rate_bps[0], 0);
	assert_int_equal(g.rate_bps[1], 0);
	assert_int_equal(nk_guest_conf__set(&g, "rate=fast", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "guest web: bad rate 'fast' (want bits/s "
				 "with k, M or G: 100M; 0 = no cap; "
				 "8k..1000G)");
	assert_int_equal(nk_guest_conf__set(&g, "rate=-5M", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(nk_guest_conf__set(&g, "rate=1k", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(nk_guest_conf__set(&g, "rate=nan", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(nk_guest_conf__set(&g, "rate=5T", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(nk_guest_conf__set(&g, "burst=10", err, sizeof(err)),
			 -EINVAL);
}

static void test_match(void **state)
{
	static const char text[] =
		"nsm k type=kernel\n"
		"guest a uid=5 uid=6 gid=50 netns=/proc/self/ns/net "
		"cgroup=/svc/a/\n"
		"guest b\n"
		"guest c attach=/run/nk/c.sock\n"
		"max_ctl_per_uid 3\n"
		"hello_timeout 9\n";
	struct nk_config c;
	struct nk_peer p;
	struct stat st;
	char err[256] = "", why[256];

	(void)state;
	assert_int_equal(nk_config__parse(text, "t", &c, err, sizeof(err)), 0);
	assert_int_equal(c.max_ctl_per_uid, 3);
	assert_int_equal(c.hello_timeout_s, 9);
	assert_int_equal(stat("/proc/self/ns/net", &st), 0);
	memset(&p, 0, sizeof(p));
	p.attach = -1;
	p.uid = 6;
	p.gid = 1;
	p.groups[0] = 50;
	p.nr_groups = 1;
	p.netns_dev = st.st_dev;
	p.netns_ino = st.st_ino;
	strcpy(p.cgroup, "/svc/a/x");
	assert_int_equal(nk_guest_conf__match(&c.guests[0], &p, why, 256), 0);
	strcpy(p.cgroup, "/svc/ab");
	assert_int_equal(nk_guest_conf__match(&c.guests[0], &p, why, 256),
			 -EPERM);
	assert_non_null(strstr(why, "cgroup"));
	strcpy(p.cgroup, "/svc/a");
	p.netns_ino++;
	assert_int_equal(nk_guest_conf__match(&c.guests[0], &p, why, 256),
			 -EPERM);
	p.netns_ino--;
	p.uid = 7;
	assert_int_equal(nk_guest_conf__match(&c.guests[0], &p, why, 256),
			 -EPERM);
	assert_non_null(strstr(why, "uid 7"));
	/* No match key: nkd's own euid only. */
	p.uid = geteuid();
	assert_int_equal(nk_guest_conf__match(&c.guests[1], &p, why, 256), 0);
	p.uid = geteuid() + 1;
	assert_int_equal(nk_guest_conf__match(&c.guests[1], &p, why, 256),
			 -EPERM);
	/* attach=: only through its socket, and its socket only for it. */
	assert_int_equal(nk_guest_conf__match(&c.guests[2], &p, why, 256),
			 -EPERM);
	p.attach = 2;
	strcpy(p.attach_path, "/run/nk/c.sock");
	assert_int_equal(nk_guest_conf__match(&c.guests[2], &p, why, 256), 0);
	assert_int_equal(nk_guest_conf__match(&c.guests[1], &p, why, 256),
			 -EPERM);
	nk_config__free(&c);
	assert_int_equal(nk_config__parse("nsm k type=kernel\nguest a "
					  "netns=/nonexistent/x\n",
					  "t", &c, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "t:2: guest a: netns"));
	assert_int_equal(nk_config__parse("nsm k type=kernel\nguest a "
					  "attach=/x\nguest b attach=/x\n",
					  "t", &c, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "already guest a's"));
}

/* VM guests (docs/vm.md): three keys together, the channel is the match. */
static void test_vm_guest(void **state)
{
	static const char text[] = "nsm k type=kernel\n"
				   "guest v vm_region=/dev/shm/v vm_size=64M "
				   "vm_channel=/run/nk/v.chan\n"
				   "guest b\n";
	static const char *const bad[][2] = {
		{ "guest v vm_region=/x vm_size=64M\n", "together" },
		{ "guest v vm_region=/x vm_size=3M vm_channel=/c\n",
		  "power of two" },
		{ "guest v vm_region=/x vm_size=64k vm_channel=/c\n",
		  "power of two" },
		{ "guest v vm_region=x vm_size=64M vm_channel=/c\n",
		  "absolute path" },
		{ "guest v vm_region=/x vm_size=64M vm_channel=/c uid=0\n",
		  "is its channel" },
	};
	struct nk_config c;
	struct nk_peer p;
	char err[256] = "", why[256];

	(void)state;
	assert_int_equal(nk_config__parse(text, "t", &c, err, sizeof(err)), 0);
	assert_int_equal(c.guests[0].vm_size, 64ull << 20);
	assert_string_equal(c.guests[0].vm_region, "/dev/shm/v");
	assert_string_equal(c.guests[0].vm_channel, "/run/nk/v.chan");
	memset(&p, 0, sizeof(p));
	p.attach = -1;
	p.uid = geteuid();
	/* Not through its channel: refused, even for nkd's own uid. */
	assert_int_equal(nk_guest_conf__match(&c.guests[0], &p, why, 256),
			 -EPERM);
	assert_non_null(strstr(why, "is a VM"));
	p.attach = 0;
	strcpy(p.attach_path, "/run/nk/v.chan");
	assert_int_equal(nk_guest_conf__match(&c.guests[0], &p, why, 256), 0);
	/* Its channel is nobody else's. */
	assert_int_equal(nk_guest_conf__match(&c.guests[1], &p, why, 256),
			 -EPERM);
	nk_config__free(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char t[256];

		snprintf(t, sizeof(t), "nsm k type=kernel\n%s", bad[i][0]);
		assert_int_equal(nk_config__parse(t, "t", &c, err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, bad[i][1]))
			fail_msg("'%s': got '%s'", bad[i][0], err);
	}
}

static void test_egress_policy(void **state)
{
	static const char text[] =
		"nsm k type=kernel\n"
		"guest e egress=10.1.0.0/16:80-443 egress=[fd00::]/8:53 "
		"host_access=allow\n"
		"guest d\n";
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	const struct nk_guest_conf *g;
	struct nk_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(nk_config__parse(text, "t.conf", &c, err, sizeof(err)),
			 0);
	g = nk_config__guest(&c, "e");
	assert_true(g->host_access);
	assert_int_equal(g->nr_egress, 2);
	inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
	in.sin_port = htons(443);
	assert_int_equal(nk_guest_conf__egress_ok(g, (void *)&in), 0);
	in.sin_port = htons(444);
	assert_int_equal(nk_guest_conf__egress_ok(g, (void *)&in),
			 -ENETUNREACH);
	inet_pton(AF_INET, "10.2.0.1", &in.sin_addr);
	in.sin_port = htons(80);
	assert_int_equal(nk_guest_conf__egress_ok(g, (void *)&in),
			 -ENETUNREACH);
	/* A v4-mapped destination is judged by the IPv4 rules. */
	inet_pton(AF_INET6, "::ffff:10.1.0.9", &in6.sin6_addr);
	in6.sin6_port = htons(80);
	assert_int_equal(nk_guest_conf__egress_ok(g, (void *)&in6), 0);
	inet_pton(AF_INET6, "fd12::1", &in6.sin6_addr);
	in6.sin6_port = htons(53);
	assert_int_equal(nk_guest_conf__egress_ok(g, (void *)&in6), 0);
	g = nk_config__guest(&c, "d");
	assert_false(g->host_access);
	assert_int_equal(nk_guest_conf__egress_ok(g, (void *)&in), 0);
	nk_config__free(&c);
	expect_error("nsm k type=kernel\nguest g host_access=maybe\n",
		     "bad.conf:2: guest g: bad host_access 'maybe'");
	expect_error("nsm k type=kernel\nguest g egress=1.2.3.4\n",
		     "bad.conf:2: guest g: bad egress '1.2.3.4'");
}

/* '\' continues a statement; errors cite its first line; names as ids. */
static void test_continuation_and_names(void **state)
{
	static const char text[] = "nsm k type=kernel \\\n"
				   "    # a comment line ends nothing \\\n"
				   "\n"
				   "guest web uid=root \\\n"
				   "\tuid=7 gid=root \\\n"
				   "  max_sockets=9\n"
				   "operator uid=root gid=root\n";
	struct nk_config c;
	const struct nk_guest_conf *g;
	char err[256] = "";

	(void)state;
	assert_int_equal(nk_config__parse(text, "t.conf", &c, err, sizeof(err)),
			 0);
	g = nk_config__guest(&c, "web");
	assert_non_null(g);
	assert_int_equal(g->nr_uids, 2);
	assert_int_equal(g->uids[0], 0);
	assert_int_equal(g->uids[1], 7);
	assert_int_equal(g->nr_gids, 1);
	assert_int_equal(g->gids[0], 0);
	assert_int_equal(g->max_sockets, 9);
	assert_int_equal(c.nr_op_uids, 1);
	assert_int_equal(c.nr_op_gids, 1);
	nk_config__free(&c);

	assert_int_equal(nk_config__parse("nsm k type=kernel\n"
					  "guest a \\\n"
					  "  uid=no-such-user-nk\n",
					  "t.conf", &c, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "t.conf:2: guest a: bad uid "
				 "'no-such-user-nk' (a number or a user name)");
}

/* nk_config__check: every error, not just the first. */
static void test_check_all(void **state)
{
	static const char text[] = "nsm k type=kernel\n"
				   "guest a uid=nobody-nk-x\n"
				   "guest b\n"
				   "guest b\n"
				   "nsm n type=kernel netns=/nonexistent/nk\n"
				   "bogus\n";
	char path[] = "/tmp/nk-test-config-XXXXXX", errs[2048], want[1024];
	struct nk_config c;
	unsigned nerrs;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1),
			 (ssize_t)sizeof(text) - 1);
	close(fd);
	assert_int_equal(nk_config__check(path, &c, errs, sizeof(errs), &nerrs),
			 -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:2: guest a: bad uid 'nobody-nk-x' (a number or a user "
		 "name)\n"
		 "%s:4: guest 'b' already defined at %s:3\n"
		 "%s:6: unknown statement 'bogus'\n"
		 "%s:5: nsm n: netns /nonexistent/nk: No such file or "
		 "directory\n",
		 path, path, path, path, path);
	assert_string_equal(errs, want);
	assert_int_equal(nerrs, 4);
	unlink(path);
}

/* resolv= (issue 9): an absolute path, kept per NSM; default "". */
static void test_resolv(void **state)
{
	static const char text[] =
		"nsm a type=kernel netns=/run/netns/x resolv=/etc/nk/r.conf\n"
		"nsm b type=kernel\n";
	struct nk_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(nk_config__parse(text, "t.conf", &c, err, sizeof(err)),
			 0);
	assert_string_equal(c.nsms[0].resolv, "/etc/nk/r.conf");
	assert_string_equal(c.nsms[1].resolv, "");
	nk_config__free(&c);
	expect_error("nsm k type=kernel resolv=etc/r.conf\n",
		     "bad.conf:1: nsm k: bad resolv path 'etc/r.conf'");
	expect_error("nsm k type=kernel resolv=\n",
		     "bad.conf:1: nsm k: bad resolv path ''");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_example),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_afxdp),
		cmocka_unit_test(test_afxdp_synq),
		cmocka_unit_test(test_budgets),
		cmocka_unit_test(test_bind_policy),
		cmocka_unit_test(test_uid_policy),
		cmocka_unit_test(test_operator),
		cmocka_unit_test(test_guest_set),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_vm_guest),
		cmocka_unit_test(test_egress_policy),
		cmocka_unit_test(test_continuation_and_names),
		cmocka_unit_test(test_check_all),
		cmocka_unit_test(test_resolv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
