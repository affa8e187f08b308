// SPDX-License-Identifier: MIT
/*
 * The CoreEngine without root: nkd's real engine (core_engine.c, validate,
 * host rings, budgets, port ownership...) over a REAL memfd region that the
 * test maps a second time as the guest would, with a FAKE NSM registered
 * through the NSM registry. The fake records every operation the engine
 * hands it and completes them only when a test says so. The guest side
 * writes SQEs and reads CQEs with netkernel/guest_ring.h, the object the
 * shim uses.
 *
 * Not linked: ctl.c (its nk_ctl__drop/destroy are stubbed below: dropping
 * a client detaches its conn, as ctl.c does) and the two real NSMs (their
 * ops tables are stubbed: the registry lists them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "netkernel/guest_ring.h"

#include "engine.h"
#include "vm.h"
#include "optimer.h"
#include "pollcost.h"
#include "ratelimit.h"
#include "rxback.h"
#include "region.h"

/* ------------------------------------------------------------------ */
/* Stubs for what this test does not link. */

const struct nk_nsm_ops nk_nsm_kernel_ops = { .type = "kernel" };
const struct nk_nsm_ops nk_nsm_afxdp_ops = { .type = "afxdp" };

static struct nk_engine *cur_engine;
static unsigned nr_drops;

/*
 * A conn's ctl pointer is the conn's guest view (struct gview below); the
 * real nk_ctl__drop() closes the control socket and detaches at once.
 */
static void gview_drop(struct nk_ctl_client *cl);

void nk_ctl__drop(struct nk_ctl *c, struct nk_ctl_client *cl)
{
	(void)c;
	nr_drops++;
	gview_drop(cl);
}

void nk_ctl__destroy(struct nk_ctl *c)
{
	(void)c;
}

/* vm.c is not linked either: no VM guests here. */
int nk_vm__region(struct nk_engine *e, const char *guest,
		  const struct nk_region_params *p, struct nk_region **out)
{
	(void)e, (void)guest, (void)p, (void)out;
	return -ENODEV;
}

void nk_vm__wake(const struct nk_conn *c)
{
	(void)c;
}

uint32_t nk_vm__ph_seq(const struct nk_conn *c)
{
	(void)c;
	return 0;
}

void nk_vm__ph(const struct nk_ph *ph, uint32_t op, uint32_t arg)
{
	(void)ph, (void)op, (void)arg;
}

/* ------------------------------------------------------------------ */
/* The fake NSM. */

#define FAKE_MAX 64

static struct fake {
	struct nk_engine *e;
	struct nk_req *pending[FAKE_MAX]; /* submitted, not completed */
	unsigned nr_pending;
	uint8_t log[256]; /* opcodes in submission order */
	unsigned nr_log;
	unsigned opens, cancels, attaches, detaches;
	struct nk_sock *released[FAKE_MAX];
	unsigned nr_released;
	uint32_t detached_ids[FAKE_MAX];
	unsigned poll_mask;
	int open_err; /* sock_open's answer */
	struct sockaddr_storage name; /* sock_name's, if a family is set */
	bool peer_limited; /* send_peer_limited's answer */
	unsigned peer_asked;
} F;

static int fake_create(struct nk_engine *e, struct nk_loop *loop,
		       const struct nk_nsm_conf *conf, void **priv)
{
	(void)loop;
	(void)conf;
	F.e = e;
	*priv = &F;
	return 0;
}

static void fake_destroy(void *priv)
{
	(void)priv;
}

static int fake_sock_open(void *priv, struct nk_sock *s)
{
	F.opens++;
	if (F.open_err)
		return F.open_err;
	s->nsm_priv = priv;
	return 0;
}

static void fake_sock_release(void *priv, struct nk_sock *s)
{
	(void)priv;
	assert_true(F.nr_released < FAKE_MAX);
	F.released[F.nr_released++] = s;
}

/* Every socket op the fake has: recorded, completed when a test says. */
static void fake_op(void *priv, struct nk_req *op)
{
	(void)priv;
	assert_true(F.nr_pending < FAKE_MAX);
	F.pending[F.nr_pending++] = op;
	if (F.nr_log < sizeof(F.log))
		F.log[F.nr_log++] = op->opcode;
}

static int fake_cancel(void *priv, struct nk_req *op)
{
	(void)priv;
	for (unsigned i = 0; i < F.nr_pending; i++)
		if (F.pending[i] == op) {
			F.cancels++;
			return 0;
		}
	return -ENOENT;
}

static unsigned fake_poll_now(void *priv, struct nk_sock *s)
{
	(void)priv;
	(void)s;
	return F.poll_mask;
}

static int fake_sock_name(void *priv, struct nk_sock *s, bool peer,
			  struct sockaddr_storage *ss, socklen_t *len)
{
	(void)priv;
	(void)s;
	(void)peer;
	if (F.name.ss_family) {
		*ss = F.name;
		*len = sizeof(struct sockaddr_in);
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	*len = 0;
	return -EOPNOTSUPP;
}

static int fake_guest_attach(void *priv, struct nk_guest *g)
{
	(void)priv;
	(void)g;
	F.attaches++;
	return 0;
}

static void fake_guest_detach(void *priv, struct nk_guest *g)
{
	(void)priv;
	assert_true(F.detaches < FAKE_MAX);
	F.detached_ids[F.detaches++] = g->id;
}

static bool fake_peer_limited(void *priv, struct nk_sock *s)
{
	(void)priv;
	(void)s;
	F.peer_asked++;
	return F.peer_limited;
}

static const struct nk_nsm_ops fake_ops = {
	.type = "fake",
	.create = fake_create,
	.destroy = fake_destroy,
	.sock_open = fake_sock_open,
	.sock_release = fake_sock_release,
	/* IOCTL left out: optional ops may be missing (-EOPNOTSUPP). */
	.bind = fake_op,
	.listen = fake_op,
	.connect = fake_op,
	.accept = fake_op,
	.send = fake_op,
	.recv = fake_op,
	.shutdown = fake_op,
	.setsockopt = fake_op,
	.getsockopt = fake_op,
	.getsockname = fake_op,
	.getpeername = fake_op,
	.cancel = fake_cancel,
	.poll_now = fake_poll_now,
	.sock_name = fake_sock_name,
	.guest_attach = fake_guest_attach,
	.guest_detach = fake_guest_detach,
	.send_peer_limited = fake_peer_limited,
};

/* The pending op with this opcode (the oldest), or NULL. */
static struct nk_req *fake_find(uint8_t opcode)
{
	for (unsigned i = 0; i < F.nr_pending; i++)
		if (F.pending[i]->opcode == opcode)
			return F.pending[i];
	return NULL;
}

/* The NSM is done with a released socket (it may be freed now). */
static void fake_gone(struct nk_sock *s)
{
	for (unsigned i = 0; i < F.nr_released; i++)
		if (F.released[i] == s) {
			F.released[i] = NULL;
			nk_engine__sock_gone(F.e, s);
			return;
		}
	fail_msg("socket %u was never released", s->handle);
}

/* Completes op as a real NSM would, through nk_engine__op_done(). */
static void fake_complete_h(struct nk_req *op, int res, uint32_t flags,
			    uint32_t aux, uint32_t handle)
{
	unsigned i;

	for (i = 0; i < F.nr_pending && F.pending[i] != op; i++)
		;
	assert_true(i < F.nr_pending);
	/* Keep submission order for fake_find(). */
	memmove(&F.pending[i], &F.pending[i + 1],
		(F.nr_pending - i - 1) * sizeof(F.pending[0]));
	F.nr_pending--;
	nk_engine__op_done(op, res, flags, aux, handle);
}

static void fake_complete(struct nk_req *op, int res, uint32_t flags,
			  uint32_t aux)
{
	fake_complete_h(op, res, flags, aux, 0);
}

/* ------------------------------------------------------------------ */
/* The guest's view of one connection: its own mapping of the memfd. */

struct gview {
	struct nk_conn *conn; /* not to be touched once detached */
	bool detached;
	uint8_t *map;
	size_t size;
	struct nk_region_hdr *hdr;
	struct nk_gring ring;
	uint8_t *data;
	uint64_t ud;
	int pool; /* the placeholder pool channel's guest end */
};

#define NR_VIEWS 2
static struct gview views[NR_VIEWS];

static struct nk_engine *E;

/* The process is gone (the conn may be freed once its ops are done). */
static void gview_detach(struct gview *v, bool abnormal)
{
	assert_false(v->detached);
	v->detached = true;
	nk_engine__detach(E, v->conn, abnormal);
}

static void gview_drop(struct nk_ctl_client *cl)
{
	gview_detach((struct gview *)cl, true);
}

static void attach(struct gview *v, const char *guest)
{
	struct nk_ctl_hello h = { .abi_version = NK_ABI_VERSION,
				  .nr_qsets = 1 };
	struct nk_peer p = { .pid = getpid(),
			     .uid = getuid(),
			     .gid = getgid(),
			     .netns_dev = 1,
			     .netns_ino = 2,
			     .attach = -1 };
	struct nk_attach a = { .hello = &h,
			       .pid = getpid(),
			       .uid = getuid(),
			       .gid = getgid(),
			       .ctl = (struct nk_ctl_client *)v,
			       .peer = &p,
			       .pool_fd = -1 };
	int fd;

	snprintf(h.guest, sizeof(h.guest), "%s", guest);
	memset(v, 0, sizeof(*v));
	assert_int_equal(nk_engine__attach(E, &a), 0);
	free(a.handles);
	v->pool = a.pool_fd;
	v->conn = a.conn;
	fd = nk_region__fd(a.conn->region);
	v->size = nk_region__size(a.conn->region);
	/* A second mapping of the memfd: what the guest process gets. */
	v->map = mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(v->map != MAP_FAILED);
	assert_ptr_not_equal(v->map, nk_region__base(a.conn->region));
	v->hdr = (struct nk_region_hdr *)(void *)v->map;
	assert_int_equal(v->hdr->magic, NK_REGION_MAGIC);
	assert_int_equal(nk_gring__init(&v->ring, v->map, v->size,
					&v->hdr->qsets[0]),
			 0);
	v->data = v->map + v->hdr->data_off;
	v->ud = 1000;
}

/* What nkd counts for a SEND of len bytes (docs/abi.md §5). */
static uint32_t charge(const struct gview *v, uint32_t len)
{
	return len > v->hdr->send_charge ? len : v->hdr->send_charge;
}

static void unmap(struct gview *v)
{
	if (v->map)
		munmap(v->map, v->size);
	v->map = NULL;
	if (v->pool > 0)
		close(v->pool);
	v->pool = -1;
}

static int setup(void **state)
{
	struct nk_config cfg;
	int ret;

	(void)state;
	memset(&F, 0, sizeof(F));
	nr_drops = 0;
	assert_int_equal(nk_config__default(&cfg), 0);
	snprintf(cfg.nsms[0].type, sizeof(cfg.nsms[0].type), "fake");
	ret = nk_engine__create(&cfg, &E);
	assert_int_equal(ret, 0);
	cur_engine = E;
	attach(&views[0], "ut");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (!E)
		return 0;
	/* Completes whatever a test left, as the NSM would at shutdown. */
	for (unsigned n = 0; n < FAKE_MAX && F.nr_pending; n++)
		fake_complete(F.pending[0], -ECANCELED, 0, 0);
	for (unsigned i = 0; i < NR_VIEWS; i++) {
		if (views[i].conn && !views[i].detached)
			gview_detach(&views[i], false);
		for (unsigned n = 0; n < FAKE_MAX && F.nr_pending; n++)
			fake_complete(F.pending[0], -ECANCELED, 0, 0);
		unmap(&views[i]);
		views[i].conn = NULL;
	}
	for (unsigned i = 0; i < F.nr_released; i++)
		if (F.released[i])
			fake_gone(F.released[i]);
	nk_engine__destroy(E);
	E = NULL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Guest-side helpers. */

/* Queues one SQE (not published); returns its user_data. */
static uint64_t queue(struct gview *v, struct nk_sqe sqe)
{
	uint32_t i;

	assert_int_equal(nk_sq__reserve(&v->ring, 1, &i), 1);
	if (!sqe.user_data)
		sqe.user_data = ++v->ud;
	*nk_sq__entry(&v->ring, i) = sqe;
	return sqe.user_data;
}

/* Publishes and lets the engine take what is there. */
static unsigned kick(struct gview *v)
{
	nk_sq__submit(&v->ring);
	return nk_engine__step(E);
}

static uint64_t submit(struct gview *v, struct nk_sqe sqe)
{
	uint64_t ud = queue(v, sqe);

	kick(v);
	return ud;
}

/* Takes one CQE; false if the CQ is empty. */
static bool reap(struct gview *v, struct nk_cqe *out)
{
	uint32_t i;
	int n = nk_cq__peek(&v->ring, 1, &i);

	assert_true(n >= 0);
	if (!n)
		return false;
	*out = *nk_cq__entry(&v->ring, i);
	nk_cq__release(&v->ring, 1);
	return true;
}

static struct nk_cqe reap_one(struct gview *v, uint64_t ud)
{
	struct nk_cqe c;

	assert_true(reap(v, &c));
	assert_int_equal(c.user_data, ud);
	return c;
}

static void assert_cq_empty(struct gview *v)
{
	struct nk_cqe c;

	assert_false(reap(v, &c));
}

static uint32_t cq_ready(struct gview *v)
{
	return nk_ring_load_acquire(&v->ring.cqi->tail) - v->ring.cq_head;
}

static struct nk_sqe sqe_socket(int type)
{
	struct nk_sqe s = { .opcode = NK_OP_SOCKET };

	s.sock.domain = AF_INET;
	s.sock.type = type;
	return s;
}

static void set_addr(struct nk_sqe *s, const char *ip, uint16_t port)
{
	s->addr.family = AF_INET;
	s->addr.port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, s->addr.addr), 1);
}

static struct nk_sqe sqe_io(uint8_t op, uint32_t h, uint32_t off, uint32_t len)
{
	struct nk_sqe s = { .opcode = op, .handle = h };

	s.io.buf_off = off;
	s.io.buf_len = len;
	return s;
}

static uint32_t new_socket(struct gview *v, int type)
{
	uint64_t ud = submit(v, sqe_socket(type));
	struct nk_cqe c = reap_one(v, ud);

	assert_true(c.res > 0);
	assert_int_equal((uint32_t)c.res, c.handle);
	return c.handle;
}

/* ------------------------------------------------------------------ */
/* Tests. */

static void test_registry(void **state)
{
	(void)state;
	assert_ptr_equal(nk_nsm__find("kernel"), &nk_nsm_kernel_ops);
	assert_ptr_equal(nk_nsm__find("afxdp"), &nk_nsm_afxdp_ops);
	assert_ptr_equal(nk_nsm__find("fake"), &fake_ops);
	assert_ptr_equal(nk_nsm__find("shm"), &nk_nsm_shm_ops);
	assert_null(nk_nsm__find("nosuch"));
	assert_int_equal(nk_nsm__register(&fake_ops), -EEXIST);
	assert_int_equal(nk_nsm__register(&nk_nsm_kernel_ops), -EINVAL);
	/* Socket ops are optional, the lifecycle ones are not. */
	{
		struct nk_nsm_ops o = fake_ops;

		o.type = "fake2";
		o.cancel = NULL;
		assert_int_equal(nk_nsm__register(&o), -EINVAL);
		o.cancel = fake_ops.cancel;
		o.sock_name = NULL;
		assert_int_equal(nk_nsm__register(&o), -EINVAL);
	}
	/* The table the engine dispatches through, per opcode. */
	assert_ptr_equal(nk_nsm__op(&fake_ops, NK_OP_SEND), fake_op);
	assert_null(nk_nsm__op(&fake_ops, NK_OP_IOCTL));
	assert_null(nk_nsm__op(&fake_ops, NK_OP_CLOSE));
	assert_null(nk_nsm__op(&fake_ops, NK_OP__MAX));
	/* The guest was attached to the fake NSM through its hook. */
	assert_int_equal(F.attaches, 1);
	assert_ptr_equal(views[0].conn->guest->nsm->ops, &fake_ops);
}

/*
 * The shm NSM (docs/shm-nsm.md): two shm=on guests of the fake NSM. A
 * LISTEN that completes moves the listener to shm; a CONNECT to
 * 127.0.0.1 on its port never reaches the fake NSM, the ACCEPT takes it,
 * a SEND is held until the peer's RECV copies it (one copy, both CQEs
 * then), SHUT_WR gives EOF. Without shm= the port rules refuse it.
 */
static void test_shm_pair(void **state)
{
	struct gview *a = &views[0], *b = &views[1];
	uint32_t bs = a->hdr->buf_size, hl, hc, ha, opens;
	struct sockaddr_in *sin = (struct sockaddr_in *)&F.name;
	struct nk_sqe s;
	struct nk_cqe c;
	struct nk_req *op;
	uint64_t ud, ud2;

	(void)state;
	attach(b, "ut2");
	a->conn->guest->conf.shm = true;
	b->conn->guest->conf.shm = true;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(40100);

	hl = new_socket(a, SOCK_STREAM);
	s = (struct nk_sqe){ .opcode = NK_OP_LISTEN, .handle = hl };
	s.ctl.arg = 8;
	ud = submit(a, s);
	op = fake_find(NK_OP_LISTEN);
	assert_non_null(op);
	fake_complete(op, 0, 0, 0);
	assert_int_equal(reap_one(a, ud).res, 0);
	assert_string_equal(
		a->conn->guest->socks[hl & NK_HANDLE_IDX_MASK]->nsm->conf.name,
		"shm");

	hc = new_socket(b, SOCK_STREAM);
	s = (struct nk_sqe){ .opcode = NK_OP_CONNECT, .handle = hc };
	set_addr(&s, "127.0.0.1", 40100);
	ud = submit(b, s);
	assert_null(fake_find(NK_OP_CONNECT)); /* not the fake NSM's */
	assert_int_equal(reap_one(b, ud).res, 0);

	opens = F.opens;
	ud = submit(a, sqe_io(NK_OP_ACCEPT, hl, 0, sizeof(struct nk_sockaddr)));
	c = reap_one(a, ud);
	assert_true(c.res > 0);
	ha = (uint32_t)c.res;
	assert_int_equal(F.opens, opens + 1); /* its option socket */

	/* Held until read: no CQE for the SEND before the RECV. */
	memcpy(b->data, "hello", 5);
	ud = submit(b, sqe_io(NK_OP_SEND, hc, 0, 5));
	assert_cq_empty(b);
	ud2 = submit(a, sqe_io(NK_OP_RECV, ha, bs, 64));
	c = reap_one(a, ud2);
	assert_int_equal(c.res, 5);
	assert_memory_equal(a->data + bs, "hello", 5);
	assert_int_equal(reap_one(b, ud).res, 5);

	/* A waiting RECV gets EOF from the peer's SHUT_WR. */
	ud2 = submit(a, sqe_io(NK_OP_RECV, ha, bs, 64));
	assert_cq_empty(a);
	s = (struct nk_sqe){ .opcode = NK_OP_SHUTDOWN, .handle = hc };
	s.ctl.arg = SHUT_WR;
	assert_int_equal(reap_one(b, submit(b, s)).res, 0);
	c = reap_one(a, ud2);
	assert_int_equal(c.res, 0);
	assert_true(c.flags & NK_CQE_F_EOF);

	/* shm off: the port rules judge it as before (ut's port). */
	b->conn->guest->conf.shm = false;
	hc = new_socket(b, SOCK_STREAM);
	s = (struct nk_sqe){ .opcode = NK_OP_CONNECT, .handle = hc };
	set_addr(&s, "127.0.0.1", 40100);
	ud = submit(b, s);
	assert_int_equal(reap_one(b, ud).res, -ECONNREFUSED);
	assert_null(fake_find(NK_OP_CONNECT));
}

/* An op the NSM does not implement is answered by the engine. */
static void test_optional_op(void **state)
{
	struct gview *v = &views[0];
	struct nk_sqe s = { .opcode = NK_OP_IOCTL };
	struct nk_cqe c;
	uint64_t ud;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	s.handle = h;
	s.ctl.arg = NK_IOCTL_FIONREAD;
	ud = submit(v, s);
	c = reap_one(v, ud);
	assert_int_equal(c.res, -EOPNOTSUPP);
	assert_int_equal(F.nr_pending, 0);
	assert_int_equal(F.nr_log, 0);
	assert_int_equal(views[0].conn->inflight, 0);
}

/* A pending error (s->so_error) is reported and cleared by the engine. */
static void test_so_error(void **state)
{
	struct gview *v = &views[0];
	struct nk_sqe s = { .opcode = NK_OP_GETSOCKOPT };
	struct nk_sock *so;
	struct nk_req *op;
	uint64_t ud;
	uint32_t h;
	int err = 0;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	so = views[0].conn->guest->socks[h & NK_HANDLE_IDX_MASK];
	so->so_error = ECONNREFUSED; /* a background connect failed */
	s.handle = h;
	s.opt.level = SOL_SOCKET;
	s.opt.optname = SO_ERROR;
	s.io.buf_len = 2; /* too short: EINVAL, the error stays */
	ud = submit(v, s);
	assert_int_equal(reap_one(v, ud).res, -EINVAL);
	assert_int_equal(so->so_error, ECONNREFUSED);
	s.io.buf_len = sizeof(int);
	ud = submit(v, s);
	assert_int_equal(reap_one(v, ud).res, sizeof(int));
	memcpy(&err, v->data, sizeof(err));
	assert_int_equal(err, ECONNREFUSED);
	assert_int_equal(so->so_error, 0);
	assert_int_equal(F.nr_log, 0); /* the NSM never saw them */
	/* None pending: the NSM answers (it may know more, e.g. a reset). */
	ud = submit(v, s);
	op = fake_find(NK_OP_GETSOCKOPT);
	assert_non_null(op);
	fake_complete(op, sizeof(int), 0, 0);
	assert_int_equal(reap_one(v, ud).res, sizeof(int));
}

static void test_round_trip(void **state)
{
	struct gview *v = &views[0];
	uint32_t bs = v->hdr->buf_size;
	struct nk_sqe s;
	struct nk_cqe c;
	struct nk_req *op;
	struct nk_sock *so;
	uint64_t ud;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	assert_int_equal(F.opens, 1);

	s = (struct nk_sqe){ .opcode = NK_OP_BIND, .handle = h };
	set_addr(&s, "127.0.0.1", 40001);
	ud = submit(v, s);
	op = fake_find(NK_OP_BIND);
	assert_non_null(op);
	assert_int_equal(op->sa.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&op->sa)->sin_port),
			 40001);
	assert_cq_empty(v); /* nothing before the NSM answers */
	fake_complete(op, 0, 0, 0);
	c = reap_one(v, ud);
	assert_int_equal(c.res, 0);
	assert_int_equal(c.handle, h);

	s = (struct nk_sqe){ .opcode = NK_OP_CONNECT, .handle = h };
	set_addr(&s, "192.0.2.1", 80);
	ud = submit(v, s);
	op = fake_find(NK_OP_CONNECT);
	assert_non_null(op);
	fake_complete(op, 0, 0, 0);
	assert_int_equal(reap_one(v, ud).res, 0);

	/* SEND: the NSM sees nkd's mapping of the guest's bytes. */
	memcpy(v->data + 0, "hello", 5);
	ud = submit(v, sqe_io(NK_OP_SEND, h, 0, 5));
	op = fake_find(NK_OP_SEND);
	assert_non_null(op);
	assert_int_equal(op->len, 5);
	assert_memory_equal(op->buf, "hello", 5);
	so = op->sock;
	/* ABI 3: a SEND counts at least send_charge against the window. */
	assert_int_equal(so->send_inflight, charge(v, 5));
	fake_complete(op, 5, 0, 0);
	c = reap_one(v, ud);
	assert_int_equal(c.res, 5);
	assert_int_equal(so->send_inflight, 0);
	assert_int_equal(so->bytes_tx, 5);

	/* RECV: what the NSM writes shows in the guest's mapping. */
	ud = submit(v, sqe_io(NK_OP_RECV, h, bs, 100));
	op = fake_find(NK_OP_RECV);
	assert_non_null(op);
	memcpy(op->buf, "world", 5);
	fake_complete(op, 5, 0, 5);
	c = reap_one(v, ud);
	assert_int_equal(c.res, 5);
	assert_int_equal(c.aux, 5);
	assert_memory_equal(v->data + bs, "world", 5);

	ud = submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = h });
	c = reap_one(v, ud);
	assert_int_equal(c.res, 0);
	assert_int_equal(F.nr_released, 1);
	assert_int_equal(F.released[0]->handle, h);
	fake_gone(F.released[0]);
	assert_int_equal(E->nr_socks, 0);

	/* Exactly one CQE per SQE: nothing extra anywhere. */
	assert_cq_empty(v);
	assert_int_equal(F.nr_pending, 0);
	{
		static const uint8_t want[] = { NK_OP_BIND, NK_OP_CONNECT,
						NK_OP_SEND, NK_OP_RECV };

		assert_int_equal(F.nr_log, sizeof(want));
		assert_memory_equal(F.log, want, sizeof(want));
	}
	/* The closed handle is stale now. */
	ud = submit(v, sqe_io(NK_OP_SEND, h, 0, 1));
	assert_int_equal(reap_one(v, ud).res, -EBADF);
}

/*
 * NK_OP_UNREAD (core/rxback.c): nkd copies the bytes at once, answers the
 * next RECVs from them without the NSM, then asks the NSM again; what is
 * left at close goes with the socket.
 */
static void test_unread(void **state)
{
	struct gview *v = &views[0];
	struct nk_guest *g = v->conn->guest;
	uint32_t bs = v->hdr->buf_size, h, hd;
	struct nk_req *op;
	struct nk_cqe c;
	uint64_t ud;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	memcpy(v->data, "abcdef", 6);
	ud = submit(v, sqe_io(NK_OP_UNREAD, h, 0, 6));
	assert_int_equal(reap_one(v, ud).res, 6);
	assert_int_equal(g->rxback_bytes, 6); /* counted against the guest */
	/* nkd's copy: the guest changing its buffer changes nothing. */
	memcpy(v->data, "XXXXXX", 6);
	ud = submit(v, sqe_io(NK_OP_RECV, h, bs, 4));
	c = reap_one(v, ud);
	assert_int_equal(c.res, 4);
	assert_memory_equal(v->data + bs, "abcd", 4);
	assert_int_equal(F.nr_pending, 0); /* the NSM was not asked */
	ud = submit(v, sqe_io(NK_OP_RECV, h, bs, 100));
	c = reap_one(v, ud);
	assert_int_equal(c.res, 2);
	assert_memory_equal(v->data + bs, "ef", 2);
	assert_int_equal(g->rxback_bytes, 0);
	/* Empty again: the NSM answers. */
	ud = submit(v, sqe_io(NK_OP_RECV, h, bs, 100));
	op = fake_find(NK_OP_RECV);
	assert_non_null(op);
	fake_complete(op, -EAGAIN, 0, 0);
	assert_int_equal(reap_one(v, ud).res, -EAGAIN);
	/* A RECV in flight owns its buffer: it cannot be given back. */
	ud = submit(v, sqe_io(NK_OP_RECV, h, bs, 100));
	op = fake_find(NK_OP_RECV);
	assert_non_null(op);
	ud = submit(v, sqe_io(NK_OP_UNREAD, h, bs, 3));
	c = reap_one(v, ud);
	assert_int_equal(c.res, -EFAULT);
	assert_true(c.flags & NK_CQE_F_ABUSE);
	fake_complete(op, -EAGAIN, 0, 0);
	reap(v, &c);
	/* Left at close: freed with the socket (the ASan build checks). */
	ud = submit(v, sqe_io(NK_OP_UNREAD, h, 0, 2));
	assert_int_equal(reap_one(v, ud).res, 2);
	/* A datagram socket takes records only. */
	hd = new_socket(v, SOCK_DGRAM);
	memset(v->data, 0xff, sizeof(struct nk_dgram));
	ud = submit(v, sqe_io(NK_OP_UNREAD, hd, 0, sizeof(struct nk_dgram)));
	assert_int_equal(reap_one(v, ud).res, -EINVAL);
	ud = submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = h });
	assert_int_equal(reap_one(v, ud).res, 0);
	ud = submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = hd });
	assert_int_equal(reap_one(v, ud).res, 0);
	assert_int_equal(F.nr_released, 2);
	assert_int_equal(g->rxback_bytes, 2);
	fake_gone(F.released[0]);
	fake_gone(F.released[1]);
	assert_int_equal(g->rxback_bytes, 0);
	/* A guest past its cap is refused, whatever the socket holds. */
	g->rxback_bytes = NK_RXBACK_GUEST_MAX;
	h = new_socket(v, SOCK_STREAM);
	ud = submit(v, sqe_io(NK_OP_UNREAD, h, 0, 1));
	assert_int_equal(reap_one(v, ud).res, -ENOBUFS);
	g->rxback_bytes = 0;
	ud = submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = h });
	assert_int_equal(reap_one(v, ud).res, 0);
	fake_gone(F.released[2]);
	assert_int_equal(E->nr_socks, 0);
	assert_cq_empty(v);
}

/*
 * A standing RECV (core/rxpark.c): kept by the engine while the socket is
 * empty (a CQE flagged NK_CQE_F_MORE, no NSM call), sent down as a
 * non-blocking receive when the NSM reports data, parked again when that
 * finds nothing, and ended by CANCEL and by close.
 */
static void test_standing_recv(void **state)
{
	struct gview *v = &views[0];
	uint32_t bs = v->hdr->buf_size, h;
	struct nk_sqe s;
	struct nk_req *op;
	struct nk_sock *so;
	struct nk_cqe c;
	uint64_t ud, uc;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	s = (struct nk_sqe){ .opcode = NK_OP_CONNECT, .handle = h };
	set_addr(&s, "192.0.2.1", 80);
	ud = submit(v, s);
	op = fake_find(NK_OP_CONNECT);
	so = op->sock;
	so->state = NK_SS_ESTABLISHED; /* what the NSM would set */
	fake_complete(op, 0, 0, 0);
	assert_int_equal(reap_one(v, ud).res, 0);

	F.poll_mask = 0;
	s = sqe_io(NK_OP_RECV, h, bs, 100);
	s.flags = NK_SQE_F_PREFETCH;
	ud = submit(v, s);
	assert_null(fake_find(NK_OP_RECV)); /* kept: the socket is empty */
	c = reap_one(v, ud);
	assert_int_equal(c.res, -EAGAIN);
	assert_true(c.flags & NK_CQE_F_MORE);
	assert_cq_empty(v);
	/* Data: down at the end of the pass, non-blocking. */
	nk_engine__sock_event(E, so, POLLIN, true);
	assert_null(fake_find(NK_OP_RECV));
	nk_engine__step(E);
	op = fake_find(NK_OP_RECV);
	assert_non_null(op);
	assert_true(op->sqe_flags & NK_SQE_F_NONBLOCK);
	memcpy(op->buf, "hello", 5);
	fake_complete(op, 5, 0, 0);
	c = reap_one(v, ud);
	assert_int_equal(c.res, 5);
	assert_memory_equal(v->data + bs, "hello", 5);
	assert_null(so->rx_standing);

	/* Readable at once: down now; its try finds nothing: kept again. */
	F.poll_mask = POLLIN;
	ud = submit(v, s);
	op = fake_find(NK_OP_RECV);
	assert_non_null(op);
	F.poll_mask = 0;
	fake_complete(op, -EAGAIN, 0, 0);
	c = reap_one(v, ud);
	assert_true(c.flags & NK_CQE_F_MORE);
	assert_cq_empty(v);
	assert_null(fake_find(NK_OP_RECV));
	/* One standing RECV per socket: a second is an ordinary try. */
	s.io.buf_off = 2 * bs;
	uc = submit(v, s);
	op = fake_find(NK_OP_RECV);
	assert_non_null(op);
	assert_true(op->sqe_flags & NK_SQE_F_NONBLOCK);
	fake_complete(op, -EAGAIN, 0, 0);
	assert_int_equal(reap_one(v, uc).res, -EAGAIN);
	/* CANCEL ends the kept one. */
	s = (struct nk_sqe){ .opcode = NK_OP_CANCEL };
	s.ctl.arg64 = ud;
	uc = submit(v, s);
	assert_int_equal(reap_one(v, ud).res, -ECANCELED);
	assert_int_equal(reap_one(v, uc).res, 0);

	/* Close ends it too, and frees the socket once it is done. */
	s = sqe_io(NK_OP_RECV, h, bs, 100);
	s.flags = NK_SQE_F_PREFETCH | NK_SQE_F_EMPTIED;
	ud = submit(v, s);
	assert_true(reap_one(v, ud).flags & NK_CQE_F_MORE);
	assert_cq_empty(v);
	uc = submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = h });
	c = reap_one(v, uc);
	assert_int_equal(c.res, 0);
	assert_int_equal(reap_one(v, ud).res, -ECANCELED);
	fake_gone(F.released[0]);
	assert_int_equal(E->nr_socks, 0);
	assert_cq_empty(v);
}

/* One malformed entry: its errno, NK_CQE_F_ABUSE, and no NSM call. */
static void expect_refused(struct gview *v, struct nk_sqe s, int err,
			   bool abuse)
{
	unsigned nlog = F.nr_log;
	uint64_t abuse0 = v->conn->guest->c.abuse;
	uint64_t ud = submit(v, s);
	struct nk_cqe c = reap_one(v, ud);

	assert_int_equal(c.res, err);
	assert_int_equal(!!(c.flags & NK_CQE_F_ABUSE), abuse);
	assert_int_equal(F.nr_log, nlog);
	assert_int_equal(F.nr_pending, 0);
	assert_int_equal(v->conn->guest->c.abuse, abuse0 + (abuse ? 1 : 0));
	assert_false(v->detached);
}

static void test_malformed(void **state)
{
	struct gview *v = &views[0], *w = &views[1];
	uint32_t bs = v->hdr->buf_size, nb = v->hdr->nr_bufs;
	uint32_t h, foreign;
	struct nk_sqe s;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	attach(w, "ut");
	foreign = new_socket(w, SOCK_STREAM);

	s = sqe_io(NK_OP_SEND, h, 0, 1);
	s.opcode = NK_OP__MAX;
	expect_refused(v, s, -EINVAL, true);
	s = sqe_io(NK_OP_SEND, h, 0, 1);
	s.flags = 0x80;
	expect_refused(v, s, -EINVAL, true);
	/* EMPTIED belongs to a standing RECV only. */
	s = sqe_io(NK_OP_RECV, h, 0, 1);
	s.flags = NK_SQE_F_PREFETCH | NK_SQE_F_NONBLOCK | NK_SQE_F_EMPTIED;
	expect_refused(v, s, -EINVAL, true);
	s = sqe_io(NK_OP_SEND, h, 0, 1);
	s.resv0 = 1;
	expect_refused(v, s, -EINVAL, true);
	/* Outside the data area, and across two buffers. */
	expect_refused(v, sqe_io(NK_OP_SEND, h, nb * bs, 1), -EFAULT, true);
	expect_refused(v, sqe_io(NK_OP_RECV, h, UINT32_MAX - 2, 8), -EFAULT,
		       true);
	expect_refused(v, sqe_io(NK_OP_SEND, h, bs - 10, 20), -EFAULT, true);
	/* A socket of the same guest, held by another connection. */
	expect_refused(v, sqe_io(NK_OP_SEND, foreign, 0, 1), -EBADF, true);
	expect_refused(v, sqe_io(NK_OP_SEND, h | 0x7, 0, 1), -EBADF, true);
	/* A buffer nkd already holds for an op in flight. */
	submit(v, sqe_io(NK_OP_RECV, h, 0, 10));
	assert_int_equal(F.nr_pending, 1);
	s = sqe_io(NK_OP_SEND, h, 5, 1);
	{
		unsigned nlog = F.nr_log;
		uint64_t ud = submit(v, s);
		struct nk_cqe c = reap_one(v, ud);

		assert_int_equal(c.res, -EFAULT);
		assert_true(c.flags & NK_CQE_F_ABUSE);
		assert_int_equal(F.nr_log, nlog);
	}
	/* The other connection's socket is untouched by all this. */
	assert_int_equal(E->nr_socks, 2);
	assert_cq_empty(w);
}

/* An NSM without NK_NSM_CAP_RECV_BATCH never sees a batch RECV. */
static void test_batch_unsupported(void **state)
{
	struct gview *v = &views[0];
	uint32_t h;
	struct nk_sqe s;

	(void)state;
	assert_true(v->hdr->features & NK_FEAT_RECV_BATCH);
	h = new_socket(v, SOCK_DGRAM);
	s = sqe_io(NK_OP_RECV, h, 0, v->hdr->buf_size);
	s.flags = NK_SQE_F_BATCH | NK_SQE_F_NONBLOCK;
	expect_refused(v, s, -EOPNOTSUPP, false);
	/* Malformed ones are refused before: a batch on a stream. */
	h = new_socket(v, SOCK_STREAM);
	s = sqe_io(NK_OP_RECV, h, 0, v->hdr->buf_size);
	s.flags = NK_SQE_F_BATCH;
	expect_refused(v, s, -EINVAL, false);
}

static void test_abuse_limit(void **state)
{
	struct gview *v = &views[0];
	struct nk_sqe s = { .opcode = NK_OP__MAX };

	(void)state;
	E->cfg.abuse_limit = 3;
	for (int i = 0; i < 3; i++)
		queue(v, s);
	kick(v);
	assert_true(v->detached);
	assert_int_equal(nr_drops, 1);
	assert_true(v->hdr->host_flags & NK_HOST_F_DEAD);
}

static void test_sq_tail_jump(void **state)
{
	struct gview *v = &views[0];

	(void)state;
	queue(v, (struct nk_sqe){ .opcode = NK_OP_NOP });
	/* Publishes more entries than the ring holds. */
	nk_ring_store_release(&v->ring.sqi->tail,
			      v->ring.sq_tail + v->ring.sq_n);
	nk_engine__step(E);
	assert_true(v->detached);
	assert_int_equal(nr_drops, 1);
	assert_true(v->hdr->host_flags & NK_HOST_F_DEAD);
	/* Nothing was run from the bogus ring. */
	assert_cq_empty(v);
}

static void test_cq_head_jump(void **state)
{
	struct gview *v = &views[0];

	(void)state;
	nk_ring_store_release(&v->ring.cqi->head,
			      v->ring.cq_head + v->ring.cq_n + 3);
	queue(v, (struct nk_sqe){ .opcode = NK_OP_NOP });
	kick(v);
	assert_true(v->detached);
	assert_int_equal(nr_drops, 1);
}

/* Fills the SQ with NOPs (as many as fit) and publishes them. */
static unsigned fill_nops(struct gview *v)
{
	unsigned n = 0;
	uint32_t i;

	while (nk_sq__reserve(&v->ring, 1, &i)) {
		*nk_sq__entry(&v->ring, i) =
			(struct nk_sqe){ .opcode = NK_OP_NOP,
					 .user_data = ++v->ud };
		n++;
	}
	nk_sq__submit(&v->ring);
	return n;
}

static void test_sq_tail_backwards(void **state)
{
	struct gview *v = &views[0];

	(void)state;
	/* A full CQ keeps the published SQEs in the ring, seen by nkd. */
	for (int round = 0; round < 8 && !v->conn->cq_blocked; round++) {
		fill_nops(v);
		for (int k = 0; k < 8; k++)
			nk_engine__step(E);
	}
	assert_true(v->conn->cq_blocked);
	assert_false(v->detached);
	/* Taking back one it published (still ahead of the head). */
	nk_ring_store_release(&v->ring.sqi->tail, v->ring.sq_tail - 1);
	nk_engine__step(E);
	assert_true(v->detached);
	assert_int_equal(nr_drops, 1);
}

static void test_cq_no_overflow(void **state)
{
	struct gview *v = &views[0];
	uint32_t cqn = v->ring.cq_n, sqn = v->ring.sq_n;
	uint64_t first = v->ud + 1, expect;
	unsigned queued = 0, got = 0;
	struct nk_cqe c;
	uint32_t h;

	(void)state;
	assert_true(cqn >= 2 * sqn);
	/* An op in the NSM holds a promised CQ slot. */
	h = new_socket(v, SOCK_STREAM);
	first = v->ud + 1;
	submit(v, sqe_io(NK_OP_RECV, h, 0, 10));
	assert_int_equal(F.nr_pending, 1);
	first = v->ud + 1;
	/* The guest never reaps: the engine stops when the CQ is full. */
	for (int round = 0; round < 6; round++) {
		queued += fill_nops(v);
		for (int k = 0; k < 4; k++)
			nk_engine__step(E);
		assert_true(cq_ready(v) <= cqn);
	}
	assert_int_equal(cq_ready(v), cqn - 1); /* one kept for the RECV */
	assert_true(v->conn->cq_blocked);
	assert_false(v->detached);
	/* SQEs not taken stay in the SQ, untouched. */
	assert_int_equal(nk_sq__head(&v->ring) + sqn, v->ring.sq_tail);
	fake_complete(fake_find(NK_OP_RECV), -EAGAIN, 0, 0);
	assert_int_equal(cq_ready(v), cqn);
	/* Reaping lets the rest through, each exactly once, in order. */
	expect = first;
	for (int round = 0; round < 20 && got < queued; round++) {
		while (reap(v, &c)) {
			if (c.res == -EAGAIN)
				continue; /* the RECV */
			assert_int_equal(c.user_data, expect);
			assert_int_equal(c.res, 0);
			expect++;
			got++;
		}
		nk_engine__step(E);
	}
	assert_int_equal(got, queued);
	assert_cq_empty(v);
}

static struct nk_sqe sqe_timed(uint8_t op, uint32_t h, uint32_t off,
			       uint32_t len, uint32_t ms)
{
	struct nk_sqe s = sqe_io(op, h, off, len);

	s.flags = NK_SQE_F_TIMEOUT;
	s.io.timeout_ms = ms;
	return s;
}

/*
 * Where per-socket SEND order is kept: the engine (sendq.c) holds a SEND
 * back until the previous one of its socket completed, for every NSM.
 */
static void test_send_order(void **state)
{
	struct gview *v = &views[0];
	uint32_t bs = v->hdr->buf_size;
	struct nk_req *a, *b;
	uint64_t ua, ub;
	uint32_t h, h2;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	h2 = new_socket(v, SOCK_STREAM);
	memset(v->data, 'a', 10);
	memset(v->data + bs, 'b', 10);
	ua = queue(v, sqe_io(NK_OP_SEND, h, 0, 10));
	ub = queue(v, sqe_io(NK_OP_SEND, h, bs, 10));
	queue(v, sqe_io(NK_OP_SEND, h2, 2 * bs, 1));
	kick(v);
	a = fake_find(NK_OP_SEND);
	assert_non_null(a);
	assert_int_equal(a->user_data, ua);
	assert_int_equal(a->buf[0], 'a');
	/* Held or not, both count against the window from the start. */
	assert_int_equal(a->sock->send_inflight, charge(v, 10) + charge(v, 10));
	/* The other socket's SEND is not held behind h's. */
	assert_int_equal(F.nr_pending, 2);
	assert_int_not_equal(F.pending[1]->sock->handle, h);
	fake_complete(a, 10, 0, 0);
	reap_one(v, ua);
	nk_engine__step(E);
	b = F.pending[F.nr_pending - 1];
	assert_ptr_equal(b->sock, a->sock);
	assert_int_equal(b->user_data, ub);
	assert_int_equal(b->buf[0], 'b');
	fake_complete(b, 10, 0, 0);
	reap_one(v, ub);
	assert_int_equal(fake_find(NK_OP_SEND)->sock->handle, h2);
}

/*
 * SHUT_RDWR behind a SEND: the read half reaches the NSM at once (a
 * blocked reader wakes), the write half only after the SEND; one CQE.
 */
static void test_send_queue_rdwr(void **state)
{
	struct gview *v = &views[0];
	struct nk_sqe sh = { .opcode = NK_OP_SHUTDOWN };
	struct nk_req *send, *rd, *wr;
	uint64_t us, ush;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	us = submit(v, sqe_io(NK_OP_SEND, h, 0, 10));
	send = fake_find(NK_OP_SEND);
	sh.handle = h;
	sh.ctl.arg = SHUT_RDWR;
	ush = submit(v, sh);
	rd = fake_find(NK_OP_SHUTDOWN);
	assert_non_null(rd);
	assert_int_equal(rd->arg, SHUT_RD);
	assert_int_equal(F.nr_pending, 2);
	assert_cq_empty(v);
	fake_complete(rd, 0, 0, 0);
	assert_int_equal(reap_one(v, ush).res, 0);
	fake_complete(send, 10, 0, 0);
	assert_int_equal(reap_one(v, us).res, 10);
	wr = fake_find(NK_OP_SHUTDOWN);
	assert_non_null(wr);
	assert_int_equal(wr->arg, SHUT_WR);
	fake_complete(wr, 0, 0, 0);
	assert_cq_empty(v);
	assert_int_equal(views[0].conn->inflight, 0);
}

/* An op of the socket's SEND queue as the fake NSM got it. */
static struct nk_req *pending_ud(uint64_t ud)
{
	for (unsigned i = 0; i < F.nr_pending; i++)
		if (F.pending[i]->user_data == ud)
			return F.pending[i];
	return NULL;
}

/*
 * Around held SENDs: a non-blocking SEND gets EAGAIN instead of
 * overtaking, SHUT_WR is answered at once and reaches the NSM after the
 * data, a held SEND is cancelled (guest CANCEL, timeout) without the NSM,
 * and the NSM hears of the close only once the last held SEND went down.
 */
static void test_send_queue(void **state)
{
	struct gview *v = &views[0];
	uint32_t bs = v->hdr->buf_size;
	struct nk_sqe nb, sh = { .opcode = NK_OP_SHUTDOWN };
	struct nk_sqe cancel = { .opcode = NK_OP_CANCEL };
	uint64_t u1, u2, u3, u4, unb, ush, uc;
	struct nk_req *op;
	struct nk_sock *so;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	u1 = submit(v, sqe_io(NK_OP_SEND, h, 0, 10));
	u2 = submit(v, sqe_io(NK_OP_SEND, h, bs, 10));
	u3 = submit(v, sqe_timed(NK_OP_SEND, h, 2 * bs, 10, 50));
	u4 = submit(v, sqe_io(NK_OP_SEND, h, 4 * bs, 10));
	assert_int_equal(F.nr_pending, 1);
	so = F.pending[0]->sock;

	nb = sqe_io(NK_OP_SEND, h, 3 * bs, 10);
	nb.flags = NK_SQE_F_NONBLOCK;
	unb = submit(v, nb);
	assert_int_equal(reap_one(v, unb).res, -EAGAIN);
	nb.flags = 0;
	nb.io.msg_flags = MSG_DONTWAIT;
	unb = submit(v, nb);
	assert_int_equal(reap_one(v, unb).res, -EAGAIN);

	sh.handle = h;
	sh.ctl.arg = SHUT_WR;
	ush = submit(v, sh);
	assert_int_equal(reap_one(v, ush).res, 0);
	assert_int_equal(F.nr_pending, 1); /* the NSM has only the first */
	/* SHUT_RD does not wait for anything. */
	sh.ctl.arg = SHUT_RD;
	uc = submit(v, sh);
	assert_non_null(pending_ud(uc));
	fake_complete(pending_ud(uc), 0, 0, 0);
	assert_int_equal(reap_one(v, uc).res, 0);

	/* Guest CANCEL of a held SEND: answered here, the NSM never sees it */
	cancel.ctl.arg64 = u2;
	uc = submit(v, cancel);
	assert_int_equal(reap_one(v, u2).res, -ECANCELED);
	assert_int_equal(reap_one(v, uc).res, 0);
	assert_int_equal(F.cancels, 0);
	/* The held SEND's timeout: EAGAIN, also without the NSM. */
	assert_int_equal(nk_engine__expire(E, nk_now_ns() + 1000000000ll), 1);
	assert_int_equal(reap_one(v, u3).res, -EAGAIN);
	assert_int_equal(F.cancels, 0);

	/* The guest closes: the NSM hears of it after the data went down. */
	submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = h });
	reap(v, &(struct nk_cqe){ 0 });
	assert_int_equal(F.nr_released, 0);

	op = pending_ud(u1);
	fake_complete(op, 10, 0, 0);
	assert_int_equal(reap_one(v, u1).res, 10);
	op = pending_ud(u4);
	assert_non_null(op);
	assert_int_equal(op->buf[0], v->data[4 * bs]);
	assert_int_equal(F.nr_pending, 1);
	fake_complete(op, 10, 0, 0);
	assert_int_equal(reap_one(v, u4).res, 10);
	/* Then the SHUT_WR: its result is not posted a second time. */
	op = fake_find(NK_OP_SHUTDOWN);
	assert_non_null(op);
	assert_int_equal(op->user_data, ush);
	assert_int_equal(F.nr_released, 1);
	assert_ptr_equal(F.released[0], so);
	fake_complete(op, -ENOTCONN, 0, 0);
	assert_cq_empty(v);
	fake_gone(so);
}

/*
 * Timeouts are the engine's (optimer.c): at the deadline the NSM is asked
 * to cancel, and its -ECANCELED reaches the guest as EAGAIN. Deadlines are
 * handed to nk_engine__expire(), so nothing here waits for a clock.
 */
static void test_timeout(void **state)
{
	struct gview *v = &views[0];
	uint32_t bs = v->hdr->buf_size;
	struct nk_req *recv, *send, *plain;
	uint64_t ur, us, up;
	int64_t t0, t1;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	t0 = nk_now_ns();
	ur = submit(v, sqe_timed(NK_OP_RECV, h, 0, 10, 1000));
	us = submit(v, sqe_timed(NK_OP_SEND, h, bs, 10, 10));
	up = submit(v, sqe_io(NK_OP_RECV, h, 2 * bs, 10)); /* none */
	t1 = nk_now_ns();
	assert_int_equal(F.nr_pending, 3);
	recv = F.pending[0];
	send = F.pending[1];
	plain = F.pending[2];
	/* The sleep is cut to the first deadline, the SEND's. */
	assert_true(nk_optimer__next(E) >= t0 + 10 * 1000000ll);
	assert_true(nk_optimer__next(E) <= t1 + 10 * 1000000ll);
	assert_true(nk_optimer__clamp(E, t1, -1) <= 10 * 1000000ll);
	assert_int_equal(nk_optimer__clamp(E, t1 + 20 * 1000000ll, -1), 0);

	assert_int_equal(nk_engine__expire(E, t0), 0);
	assert_int_equal(F.cancels, 0);
	/* The SEND's 10 ms passed, not the RECV's second. */
	assert_int_equal(nk_engine__expire(E, t1 + 10 * 1000000ll), 1);
	assert_int_equal(F.cancels, 1);
	assert_true(send->cancelled && send->timed_out);
	assert_false(recv->cancelled || plain->cancelled);
	assert_cq_empty(v);
	/* Once only, and the NSM's completion is the one CQE. */
	assert_int_equal(nk_engine__expire(E, t1 + 20 * 1000000ll), 0);
	fake_complete(send, -ECANCELED, 0, 0);
	assert_int_equal(reap_one(v, us).res, -EAGAIN);

	/* A RECV that completes in time leaves no deadline behind. */
	fake_complete(recv, 5, 0, 5);
	assert_int_equal(reap_one(v, ur).res, 5);
	assert_int_equal(nk_optimer__next(E), 0);
	assert_int_equal(nk_engine__expire(E, t1 + 3600ll * 1000000000ll), 0);
	assert_int_equal(F.cancels, 1);
	assert_false(plain->cancelled);
	fake_complete(plain, 1, 0, 1);
	assert_int_equal(reap_one(v, up).res, 1);
}

/* Deadlines expire in their order, whatever the order the ops came in. */
static void test_timeout_order(void **state)
{
	struct gview *v = &views[0];
	uint32_t bs = v->hdr->buf_size;
	static const uint32_t ms[] = { 300, 100, 200, 100 };
	struct nk_req *op[4];
	uint64_t ud[4];
	int64_t t1;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_DGRAM);
	for (unsigned i = 0; i < 4; i++)
		ud[i] = submit(v, sqe_timed(NK_OP_RECV, h, i * bs, 10, ms[i]));
	t1 = nk_now_ns();
	for (unsigned i = 0; i < 4; i++)
		op[i] = F.pending[i];
	/* A partial result stands: only -ECANCELED becomes EAGAIN. */
	assert_int_equal(nk_engine__expire(E, t1 + 150 * 1000000ll), 2);
	assert_true(op[1]->timed_out && op[3]->timed_out);
	assert_false(op[0]->timed_out || op[2]->timed_out);
	fake_complete(op[1], -ECANCELED, 0, 0);
	assert_int_equal(reap_one(v, ud[1]).res, -EAGAIN);
	fake_complete(op[3], 3, 0, 3);
	assert_int_equal(reap_one(v, ud[3]).res, 3);
	assert_int_equal(nk_engine__expire(E, t1 + 250 * 1000000ll), 1);
	assert_true(op[2]->timed_out);
	assert_false(op[0]->timed_out);
	assert_int_equal(nk_engine__expire(E, t1 + 350 * 1000000ll), 1);
	assert_true(op[0]->timed_out);
	fake_complete(op[2], -ECANCELED, 0, 0);
	fake_complete(op[0], -ECANCELED, 0, 0);
	assert_int_equal(reap_one(v, ud[2]).res, -EAGAIN);
	assert_int_equal(reap_one(v, ud[0]).res, -EAGAIN);
	/* A guest CANCEL is not a timeout: -ECANCELED stays. */
	ud[0] = submit(v, sqe_timed(NK_OP_RECV, h, 0, 10, 1000));
	op[0] = fake_find(NK_OP_RECV);
	{
		struct nk_sqe c = { .opcode = NK_OP_CANCEL };

		c.ctl.arg64 = ud[0];
		assert_int_equal(reap_one(v, submit(v, c)).res, 0);
	}
	assert_true(op[0]->cancelled && !op[0]->timed_out);
	fake_complete(op[0], -ECANCELED, 0, 0);
	assert_int_equal(reap_one(v, ud[0]).res, -ECANCELED);
	assert_int_equal(nk_optimer__next(E), 0);
}

static void test_cancel(void **state)
{
	struct gview *v = &views[0];
	struct nk_sqe s = { .opcode = NK_OP_CANCEL };
	struct nk_req *op;
	struct nk_cqe c;
	uint64_t ud, uc;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	ud = submit(v, sqe_io(NK_OP_RECV, h, 0, 10));
	op = fake_find(NK_OP_RECV);
	assert_non_null(op);

	s.ctl.arg64 = 424242; /* no such op */
	uc = submit(v, s);
	assert_int_equal(reap_one(v, uc).res, -ENOENT);
	assert_int_equal(F.cancels, 0);

	s.ctl.arg64 = ud;
	uc = submit(v, s);
	assert_int_equal(F.cancels, 1);
	assert_true(op->cancelled);
	c = reap_one(v, uc);
	assert_int_equal(c.res, 0);
	/* The RECV still gets its own single completion. */
	assert_cq_empty(v);
	fake_complete(op, -ECANCELED, 0, 0);
	assert_int_equal(reap_one(v, ud).res, -ECANCELED);
	/* Cancelling it again: it is gone. */
	uc = submit(v, s);
	assert_int_equal(reap_one(v, uc).res, -ENOENT);
	assert_cq_empty(v);
}

static void test_close_in_flight(void **state)
{
	struct gview *v = &views[0];
	struct nk_req *op;
	struct nk_sock *s;
	uint64_t ud, uc;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	ud = submit(v, sqe_io(NK_OP_RECV, h, 0, 10));
	op = fake_find(NK_OP_RECV);
	s = op->sock;
	uc = submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = h });
	assert_int_equal(reap_one(v, uc).res, 0);
	/* Last reference gone: the NSM is told, the socket lives on. */
	assert_int_equal(F.nr_released, 1);
	assert_ptr_equal(F.released[0], s);
	assert_true(s->closing);
	assert_int_equal(E->nr_socks, 1);
	/* The handle is dead for new work at once. */
	uc = submit(v, sqe_io(NK_OP_SEND, h, 4096, 1));
	assert_int_equal(reap_one(v, uc).res, -EBADF);
	/* The NSM stops the RECV, then reports the socket gone. */
	fake_complete(op, -ECANCELED, 0, 0);
	assert_int_equal(reap_one(v, ud).res, -ECANCELED);
	assert_int_equal(E->nr_socks, 1);
	fake_gone(s);
	assert_int_equal(E->nr_socks, 0);
	assert_cq_empty(v);
}

static void test_sock_gone_before_ops(void **state)
{
	struct gview *v = &views[0];
	struct nk_req *op;
	struct nk_sock *s;
	uint64_t ud;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	ud = submit(v, sqe_io(NK_OP_RECV, h, 0, 10));
	op = fake_find(NK_OP_RECV);
	s = op->sock;
	submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = h });
	reap_one(v, v->ud);
	/* Gone while an op still refers to it: freed after that op. */
	fake_gone(s);
	assert_int_equal(E->nr_socks, 1);
	fake_complete(op, -ECANCELED, 0, 0);
	assert_int_equal(reap_one(v, ud).res, -ECANCELED);
	assert_int_equal(E->nr_socks, 0);
}

static void test_detach(void **state)
{
	struct gview *v = &views[0];
	struct nk_guest *g = v->conn->guest;
	uint32_t gid = g->id;
	struct nk_req *recv, *send;
	uint32_t h;

	(void)state;
	h = new_socket(v, SOCK_STREAM);
	submit(v, sqe_io(NK_OP_RECV, h, 0, 10));
	submit(v, sqe_io(NK_OP_SEND, h, v->hdr->buf_size, 10));
	recv = fake_find(NK_OP_RECV);
	send = fake_find(NK_OP_SEND);
	/* The process goes: RECV cancelled, SEND lingers, socket released. */
	gview_detach(v, false);
	assert_true(recv->cancelled);
	assert_false(send->cancelled);
	assert_int_equal(F.cancels, 1);
	assert_int_equal(F.nr_released, 1);
	fake_complete(recv, -ECANCELED, 0, 0);
	fake_complete(send, 10, 0, 0);
	nk_engine__step(E);
	/* A socket is left: the guest is in use, no detach yet. */
	assert_int_equal(F.detaches, 0);
	fake_gone(F.released[0]);
	nk_engine__step(E); /* gc: starts the guest's idle time */
	assert_int_equal(F.detaches, 0);
	/* Idle past the retention time: freed, and the NSM told. */
	g->idle_since -= 301ll * 1000000000ll;
	E->gc = true;
	nk_engine__step(E);
	assert_int_equal(F.detaches, 1);
	assert_int_equal(F.detached_ids[0], gid);
	assert_int_equal(E->nr_guests, 0);
}

/*
 * A rate cap (ratelimit.c) holds SENDs and RECVs in the engine while the
 * guest's bucket is in debt; held ops still honour CANCEL, timeouts,
 * close (the release waits for them) and the process going away.
 */
static void test_rate_hold(void **state)
{
	struct gview *v = &views[0];
	struct nk_guest *g = v->conn->guest;
	uint32_t bs = v->hdr->buf_size, h[5];
	struct nk_sqe c = { .opcode = NK_OP_CANCEL };
	struct nk_req *first, *op;
	uint64_t ud[5], uc;
	int64_t now;

	(void)state;
	g->conf.rate_bps[NK_RATE_TX] = 8000000; /* 1 byte/us */
	g->conf.rate_bps[NK_RATE_RX] = 8000000;
	g->conf.rate_burst = bs / 2;
	for (unsigned i = 0; i < 5; i++)
		h[i] = new_socket(v, SOCK_STREAM);
	/* Full bucket: the first SEND goes down and puts it in debt. */
	ud[0] = submit(v, sqe_io(NK_OP_SEND, h[0], 0, bs));
	assert_int_equal(F.nr_pending, 1);
	first = F.pending[0];
	/* The next ones wait in the engine, whatever their socket. */
	ud[1] = submit(v, sqe_io(NK_OP_SEND, h[1], bs, 100));
	ud[2] = submit(v, sqe_timed(NK_OP_SEND, h[2], 2 * bs, 100, 10));
	assert_int_equal(F.nr_pending, 1);
	assert_int_equal(E->rate_held, 2);
	now = nk_now_ns();
	assert_true(nk_rate__clamp(E, now, -1) > 0);
	/* A guest CANCEL of a held SEND: answered here, no NSM cancel. */
	c.ctl.arg64 = ud[1];
	uc = submit(v, c);
	assert_int_equal(reap_one(v, ud[1]).res, -ECANCELED);
	assert_int_equal(reap_one(v, uc).res, 0);
	/* A held SEND whose timeout passes: EAGAIN, as SO_SNDTIMEO. */
	assert_int_equal(nk_engine__expire(E, now + 20 * 1000000ll), 1);
	assert_int_equal(reap_one(v, ud[2]).res, -EAGAIN);
	assert_int_equal(F.cancels, 0);
	assert_int_equal(E->rate_held, 0);
	/* The NSM sent half: the other half is given back. */
	fake_complete(first, (int)(bs / 2), 0, 0);
	assert_int_equal(reap_one(v, ud[0]).res, (int)(bs / 2));
	assert_int_equal(g->rate.dir[NK_RATE_TX].passed, bs / 2);
	/* In debt again: a SEND is held, then its socket closed. */
	g->rate.dir[NK_RATE_TX].tokens = -1000;
	ud[3] = submit(v, sqe_io(NK_OP_SEND, h[3], 3 * bs, 100));
	assert_int_equal(E->rate_held, 1);
	submit(v, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = h[3] });
	reap_one(v, v->ud);
	assert_int_equal(F.nr_released, 0); /* waits for the held SEND */
	/* Tokens come back: the SEND goes down, then the release. */
	now = nk_now_ns() + 1000000000ll;
	assert_int_equal(nk_rate__run(E, now), 1);
	op = fake_find(NK_OP_SEND);
	assert_non_null(op);
	assert_int_equal(F.nr_released, 1);
	assert_true(g->rate.dir[NK_RATE_TX].throttled_ns > 0);
	fake_complete(op, 100, 0, 0);
	assert_int_equal(reap_one(v, ud[3]).res, 100);
	/* Ingress: a RECV waits while the rx bucket is in debt and is
	 * cancelled without the NSM when its process goes. */
	g->rate.dir[NK_RATE_RX].tokens = -1000;
	g->rate.dir[NK_RATE_RX].last = nk_now_ns();
	ud[4] = submit(v, sqe_io(NK_OP_RECV, h[4], 0, 100));
	assert_null(fake_find(NK_OP_RECV));
	assert_int_equal(E->rate_held, 1);
	gview_detach(v, false);
	assert_int_equal(E->rate_held, 0);
	assert_int_equal(F.cancels, 0);
	assert_null(fake_find(NK_OP_RECV));
}

/*
 * The byte scheduler (sched.c): guest ut's SEND stays in the NSM (the
 * stack pushes back), guest ut2 may run at most NK_SCHED_LAG ahead of it;
 * its next SEND waits in the engine, is cancelled there without the NSM,
 * goes down when ut stops contending (not at once after a whole-buffer
 * SEND: a bulk writer between writes), and a close waits for it; a wait
 * is bounded (NK_SCHED_WAIT_NS).
 */
static void test_sched_hold(void **state)
{
	struct gview *va = &views[0], *vb = &views[1];
	uint32_t bs, ha, hb[5];
	struct nk_sqe c = { .opcode = NK_OP_CANCEL };
	struct nk_req *a, *op;
	struct nk_guest *gb;
	uint64_t ud[3], uc, a_ud;
	unsigned sent = 0;

	(void)state;
	attach(vb, "ut2");
	gb = vb->conn->guest;
	bs = va->hdr->buf_size;
	ha = new_socket(va, SOCK_STREAM);
	for (unsigned i = 0; i < 5; i++)
		hb[i] = new_socket(vb, SOCK_STREAM);
	a_ud = submit(va, sqe_io(NK_OP_SEND, ha, 0, bs));
	a = fake_find(NK_OP_SEND);
	assert_non_null(a);
	/* ut2 starts level with ut and may lead it by the lag, no more. */
	for (unsigned i = 0; i < 4; i++) {
		submit(vb, sqe_io(NK_OP_SEND, hb[i], i * bs, bs));
		if (E->sched_held)
			break;
		sent++;
	}
	assert_int_equal(sent, NK_SCHED_LAG / bs + 1);
	assert_int_equal(F.nr_pending, 1 + sent);
	assert_int_equal(E->sched_held, 1);
	assert_int_equal(gb->sched.dir[NK_SCHED_TX].nr_holds, 1);
	ud[0] = vb->ud;
	/* Nothing changes while ut still contends. */
	assert_int_equal(nk_sched__run(E, nk_now_ns()), 0);
	assert_true(nk_sched__clamp(E, nk_now_ns(), -1) > 0);
	/* A guest CANCEL of the waiting SEND: answered here. */
	c.ctl.arg64 = ud[0];
	uc = submit(vb, c);
	assert_int_equal(reap_one(vb, ud[0]).res, -ECANCELED);
	assert_int_equal(reap_one(vb, uc).res, 0);
	assert_int_equal(E->sched_held, 0);
	assert_int_equal(F.cancels, 0);
	/* Again, then its socket closed: the release waits for it. */
	ud[1] = submit(vb, sqe_io(NK_OP_SEND, hb[4], 4 * bs, 100));
	assert_int_equal(E->sched_held, 1);
	submit(vb, (struct nk_sqe){ .opcode = NK_OP_CLOSE, .handle = hb[4] });
	reap_one(vb, vb->ud);
	assert_int_equal(F.nr_released, 0);
	/* ut's SEND of a whole buffer completes: a bulk writer between two
	 * writes still contends for NK_SCHED_RX_NS; then it stops, ut2's
	 * SEND goes down, then the release. */
	fake_complete(a, (int)bs, 0, 0);
	assert_int_equal(nk_sched__run(E, nk_now_ns()), 0);
	assert_int_equal(E->sched_held, 1);
	/* Its moment passes (aged here rather than slept through). */
	va->conn->guest->sched.dir[NK_SCHED_TX].full -= NK_SCHED_RX_NS + 1;
	assert_int_equal(nk_sched__run(E, nk_now_ns()), 1);
	assert_int_equal(E->sched_held, 0);
	assert_int_equal(F.nr_released, 1);
	op = F.pending[F.nr_pending - 1];
	assert_int_equal(op->opcode, NK_OP_SEND);
	fake_complete(op, 100, 0, 0);
	assert_int_equal(reap_one(vb, ud[1]).res, 100);
	assert_true(gb->sched.dir[NK_SCHED_TX].held_ns > 0);
	/* With ut idle, ut2 goes on without waiting (work-conserving),
	 * however far ahead it is. */
	hb[4] = new_socket(vb, SOCK_STREAM);
	sent = F.nr_pending;
	ud[2] = submit(vb, sqe_io(NK_OP_SEND, hb[4], 4 * bs, bs));
	assert_int_equal(E->sched_held, 0);
	assert_int_equal(F.nr_pending, sent + 1);
	assert_int_equal(F.pending[sent]->user_data, ud[2]);
	/* ut contends again (level with ut2 now): ut2's op that has to
	 * wait waits NK_SCHED_WAIT_NS at most, whatever ut does. */
	assert_int_equal(reap_one(va, a_ud).res, (int)bs);
	submit(va, sqe_io(NK_OP_SEND, new_socket(va, SOCK_STREAM), bs, bs));
	for (unsigned i = 5; i < 10 && !E->sched_held; i++)
		submit(vb, sqe_io(NK_OP_SEND, new_socket(vb, SOCK_STREAM),
				  i * bs, bs));
	assert_int_equal(E->sched_held, 1);
	assert_int_equal(nk_sched__run(E, nk_now_ns()), 0);
	assert_int_equal(nk_sched__run(E, nk_now_ns() + NK_SCHED_WAIT_NS), 1);
	assert_int_equal(E->sched_held, 0);
}

/*
 * A guest whose SEND in the NSM waits for its own peer (the NSM's
 * send_peer_limited) does not contend: the other guest's SENDs all go
 * down; once the NSM says the path holds it back again (asked anew after
 * NK_SCHED_PEER_NS), the other is held to its lead as before.
 */
static void test_sched_peer_limited(void **state)
{
	struct gview *va = &views[0], *vb = &views[1];
	struct nk_sched_q *qa;
	uint32_t bs, ha;
	unsigned i;

	(void)state;
	attach(vb, "ut2");
	qa = &va->conn->guest->sched.dir[NK_SCHED_TX];
	bs = va->hdr->buf_size;
	ha = new_socket(va, SOCK_STREAM);
	submit(va, sqe_io(NK_OP_SEND, ha, 0, bs));
	assert_non_null(fake_find(NK_OP_SEND));
	F.peer_limited = true;
	for (i = 0; i < 6; i++)
		submit(vb, sqe_io(NK_OP_SEND, new_socket(vb, SOCK_STREAM),
				  i * bs, bs));
	assert_int_equal(E->sched_held, 0);
	assert_int_equal(F.nr_pending, 1 + 6);
	assert_true(F.peer_asked > 0);
	assert_true(qa->nr_peer_limited > 0);
	/* The path, not its peer: ut contends again and ut2 waits. */
	F.peer_limited = false;
	qa->peer_at = 0;
	for (i = 6; i < 10 && !E->sched_held; i++)
		submit(vb, sqe_io(NK_OP_SEND, new_socket(vb, SOCK_STREAM),
				  i * bs, bs));
	assert_int_equal(E->sched_held, 1);
	assert_int_equal(nk_sched__run(E, nk_now_ns() + NK_SCHED_WAIT_NS), 1);
	assert_int_equal(E->sched_held, 0);
}

static void test_accept(void **state)
{
	struct gview *v = &views[0];
	struct nk_sqe s = { .opcode = NK_OP_LISTEN };
	struct nk_sock *ns;
	struct nk_req *op;
	struct nk_cqe c;
	uint64_t ud;
	uint32_t l;

	(void)state;
	l = new_socket(v, SOCK_STREAM);
	s.handle = l;
	s.ctl.arg = 16;
	ud = submit(v, s);
	op = fake_find(NK_OP_LISTEN);
	assert_non_null(op);
	assert_int_equal(op->arg, 16);
	fake_complete(op, 0, 0, 0);
	assert_int_equal(reap_one(v, ud).res, 0);

	ud = submit(v, sqe_io(NK_OP_ACCEPT, l, 0, sizeof(struct nk_sockaddr)));
	op = fake_find(NK_OP_ACCEPT);
	assert_non_null(op);
	/* A connection arrives: the NSM asks the engine for a socket. */
	assert_int_equal(nk_engine__sock_accepted(E, op, &ns), 0);
	ns->nsm_priv = &F;
	assert_int_equal(ns->state, NK_SS_ESTABLISHED);
	assert_int_equal(E->nr_socks, 2);
	fake_complete_h(op, (int)ns->handle, 0, 0, ns->handle);
	c = reap_one(v, ud);
	assert_int_equal(c.res, (int)ns->handle);
	assert_int_equal(c.handle, ns->handle);
	assert_int_not_equal(c.handle, l);
	/* The accepted handle is this connection's to use. */
	ud = submit(v, sqe_io(NK_OP_SEND, c.handle, 0, 3));
	op = fake_find(NK_OP_SEND);
	assert_non_null(op);
	assert_ptr_equal(op->sock, ns);
	fake_complete(op, 3, 0, 0);
	assert_int_equal(reap_one(v, ud).res, 3);
	assert_cq_empty(v);
}

/* One placeholder from v's pool channel: its fd (the app end) and id. */
static int pool_take(struct gview *v, uint64_t *id)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct nk_ctl_ph_pool m;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	int fd;

	assert_int_equal(recvmsg(v->pool, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC),
			 sizeof(m));
	assert_int_equal(m.hdr.type, NK_CTL_PH_POOL);
	cm = CMSG_FIRSTHDR(&mh);
	assert_non_null(cm);
	assert_int_equal(cm->cmsg_type, SCM_RIGHTS);
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	*id = m.id;
	return fd;
}

static bool fd_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static struct nk_sock *sock_of(struct gview *v, uint32_t h)
{
	struct nk_guest *g = v->conn->guest;

	return g->socks[h & NK_HANDLE_IDX_MASK];
}

/*
 * NK_SQE_F_PH (abi.md §6 "Pool"): SOCKET and ACCEPT name the new
 * socket's placeholder; nkd binds it before the CQE, takes it out of the
 * pool whatever the outcome, and refuses another connection's.
 */
static void test_ph_sqe(void **state)
{
	struct gview *v = &views[0], *w = &views[1];
	uint32_t unbound, l;
	uint64_t id, wid, ud;
	struct nk_sock *ns;
	struct nk_req *op;
	struct nk_sqe s;
	struct nk_cqe c;
	int fd, wfd, fd2;

	(void)state;
	assert_true(v->hdr->features & NK_FEAT_PH_SQE);
	assert_true(v->pool >= 0);
	unbound = nk_phpool__unbound(v->conn->phpool);
	assert_int_equal(unbound, NK_PH_POOL_TARGET);

	/* SOCKET: bound before the CQE; readiness shows on the app end. */
	fd = pool_take(v, &id);
	s = sqe_socket(SOCK_DGRAM);
	s.flags = NK_SQE_F_PH;
	s.ph.id = id;
	c = reap_one(v, submit(v, s));
	assert_true(c.res > 0);
	ns = sock_of(v, c.handle);
	assert_non_null(ns);
	assert_true(ns->ph.app >= 0);
	assert_int_equal(nk_phpool__unbound(v->conn->phpool), unbound - 1);
	assert_false(fd_readable(fd));
	nk_engine__sock_event(E, ns, POLLIN, true);
	assert_true(fd_readable(fd));
	/* A hand-over finds it by the inode nkd fstats itself. */
	assert_int_equal(ns->ph_ino, 0);

	/* Used once: the same id again is not in the pool any more. */
	expect_refused(v, s, -EBADF, true);
	/* Made up, or the other connection's (another guest's): refused. */
	s.ph.id = 999999;
	expect_refused(v, s, -EBADF, true);
	attach(w, "other");
	wfd = pool_take(w, &wid);
	s.ph.id = wid;
	expect_refused(v, s, -EBADF, true);
	assert_int_equal(E->nr_socks, 1);
	/* ... which leaves it w's to use. */
	s.ph.id = wid;
	c = reap_one(w, submit(w, s));
	assert_true(c.res > 0);
	assert_true(sock_of(w, c.handle)->ph.app >= 0);
	close(wfd);

	/* Only SOCKET and ACCEPT take it; reserved bytes must be zero. */
	s = sqe_io(NK_OP_RECV, ns->handle, 0, 16);
	s.flags = NK_SQE_F_PH;
	expect_refused(v, s, -EINVAL, true);
	fd2 = pool_take(v, &id);
	s = sqe_socket(SOCK_STREAM);
	s.flags = NK_SQE_F_PH;
	s.ph.id = id;
	s.ph.resv3[0] = 1;
	expect_refused(v, s, -EINVAL, true);
	/* A refused SOCKET still took it out of the pool. */
	s.ph.resv3[0] = 0;
	expect_refused(v, s, -EBADF, true);
	close(fd2);

	/* ACCEPT: bound to the new socket before its CQE, readable if the
	 * NSM says data came first (the fake asks no report of its own). */
	l = new_socket(v, SOCK_STREAM);
	ud = submit(v, (struct nk_sqe){ .opcode = NK_OP_LISTEN,
					.handle = l,
					.ctl = { .arg = 4 } });
	fake_complete(fake_find(NK_OP_LISTEN), 0, 0, 0);
	assert_int_equal(reap_one(v, ud).res, 0);
	fd2 = pool_take(v, &id);
	s = sqe_io(NK_OP_ACCEPT, l, 0, sizeof(struct nk_sockaddr));
	s.flags = NK_SQE_F_PH;
	s.ph.id = id;
	ud = submit(v, s);
	op = fake_find(NK_OP_ACCEPT);
	assert_non_null(op);
	assert_int_equal(nk_engine__sock_accepted(E, op, &ns), 0);
	ns->nsm_priv = &F;
	F.poll_mask = POLLIN;
	fake_complete_h(op, (int)ns->handle, 0, 0, ns->handle);
	F.poll_mask = 0;
	c = reap_one(v, ud);
	assert_int_equal(c.res, (int)ns->handle);
	assert_true(fd_readable(fd2));
	close(fd2);

	/* An ACCEPT that fails drops its placeholder (the guest closes its
	 * fd); nothing stays in the pool for it. */
	fd2 = pool_take(v, &id);
	s.ph.id = id;
	ud = submit(v, s);
	fake_complete(fake_find(NK_OP_ACCEPT), -EAGAIN, 0, 0);
	assert_int_equal(reap_one(v, ud).res, -EAGAIN);
	/* nkd closed both its ends: the app end sees the hang-up. */
	{
		struct pollfd p = { .fd = fd2, .events = POLLIN };

		assert_int_equal(poll(&p, 1, 0), 1);
		assert_true(p.revents & POLLHUP);
	}
	close(fd2);
	expect_refused(v, s, -EBADF, true);
	close(fd);
	assert_false(v->detached);
}

static void test_socket_open_fails(void **state)
{
	struct gview *v = &views[0];
	uint64_t ud;

	(void)state;
	F.open_err = -EAFNOSUPPORT;
	ud = submit(v, sqe_socket(SOCK_DGRAM));
	assert_int_equal(reap_one(v, ud).res, -EAFNOSUPPORT);
	assert_int_equal(E->nr_socks, 0);
	assert_int_equal(F.nr_released, 0);
}

/*
 * Isolation (docs/nkd.md): a pass takes from a guest what its budget
 * (NK_POLL_BUDGET x weight units, pollcost.h) pays for, and the other
 * guest's entry in the same pass. Bulk SENDs cost by their bytes: a ring
 * full of 128 KiB SENDs gives 4 per pass, not 32 (4 MiB of copying in
 * nkd's thread before anyone else's entry). NOPs cost one unit each.
 */
static void test_poll_budget(void **state)
{
	struct gview *a = &views[0], *b = &views[1];
	uint32_t bs = a->hdr->buf_size, cost, want = 0, left, h;
	uint64_t ub;
	unsigned n, i;

	(void)state;
	attach(b, "ub");
	h = new_socket(a, SOCK_STREAM);
	cost = nk_pollcost__sqe(
		&(struct nk_sqe){ .opcode = NK_OP_SEND, .io.buf_len = bs });
	assert_true(cost > 1);
	for (left = NK_POLL_BUDGET; left; want++)
		left -= cost < left ? cost : left;
	for (i = 0; i < 16; i++)
		queue(a, sqe_io(NK_OP_SEND, h, i * bs, bs));
	nk_sq__submit(&a->ring);
	ub = queue(b, (struct nk_sqe){ .opcode = NK_OP_NOP });
	nk_sq__submit(&b->ring);
	n = nk_engine__step(E);
	/* want of A's SENDs and B's NOP, answered in this pass. */
	assert_int_equal(n, want + 1);
	assert_true(want < 16);
	reap_one(b, ub);
	for (i = want; i < 16; i += n) {
		n = nk_engine__step(E);
		assert_true(n > 0 && n <= want);
	}
	assert_int_equal(nk_engine__step(E), 0);

	/* A NOP spinner: 32 x weight a pass, B's entry still in it. */
	for (i = 0; i < 3 * NK_POLL_BUDGET; i++)
		queue(a, (struct nk_sqe){ .opcode = NK_OP_NOP });
	nk_sq__submit(&a->ring);
	ub = queue(b, (struct nk_sqe){ .opcode = NK_OP_NOP });
	nk_sq__submit(&b->ring);
	assert_int_equal(nk_engine__step(E), NK_POLL_BUDGET + 1);
	reap_one(b, ub);
	assert_int_equal(nk_engine__step(E), NK_POLL_BUDGET);
	assert_int_equal(nk_engine__step(E), NK_POLL_BUDGET);
	gview_detach(b, false);
}

/*
 * Idle rests (idlerest.c): units of entries that did nothing real add up
 * over passes until real work, a rest when they reach the pass budget,
 * and the loop's sleep is cut to the rest's end.
 */
static void test_idle_rest(void **state)
{
	struct nk_guest *g =
		nk_container_of(E->guests.next, struct nk_guest, link);
	uint64_t r0 = E->rests;
	int64_t now = 0, t;

	(void)state;
	nk_idlerest__judge(E, g, 0, 0, 0); /* took nothing: no change */
	nk_idlerest__judge(E, g, 10, 10, 10);
	nk_idlerest__judge(E, g, 10, 10, 10);
	nk_idlerest__judge(E, g, 10, 10, 10);
	assert_int_equal(g->rest.until, 0);
	nk_idlerest__judge(E, g, 2, 1, 2); /* something real: sum reset */
	nk_idlerest__judge(E, g, 20, 20, 20);
	assert_int_equal(g->rest.until, 0);
	assert_false(nk_idlerest__skip(g, &now));
	nk_idlerest__judge(E, g, 20, 20, 20); /* 40 >= 32: rests */
	assert_true(g->rest.until > 0);
	assert_int_equal(g->rest.rests, 1);
	assert_int_equal(E->rests, r0 + 1);
	now = 0;
	assert_true(nk_idlerest__skip(g, &now));
	t = nk_idlerest__clamp(E, nk_now_ns(), -1);
	assert_true(t >= 0 && t <= NK_IDLE_BACKOFF_NS);
	assert_int_equal(nk_idlerest__clamp(E, nk_now_ns(), 7), 7);
	/* Over: polled again, and sleeps are no longer cut. */
	g->rest.until = 1;
	now = 0;
	assert_false(nk_idlerest__skip(g, &now));
	assert_int_equal(g->rest.until, 0);
	assert_int_equal(nk_idlerest__clamp(E, nk_now_ns(), -1), -1);
}

static void test_guest_ring_object(void **state)
{
	struct gview *v = &views[0];
	uint32_t i = 0, j = 0, sqn = v->ring.sq_n;

	(void)state;
	/* Reserve is all or nothing; submit publishes all reserved. */
	assert_int_equal(nk_sq__reserve(&v->ring, sqn + 1, &i), 0);
	assert_int_equal(nk_sq__reserve(&v->ring, 3, &i), 3);
	assert_int_equal(nk_sq__reserve(&v->ring, sqn - 3, &j), sqn - 3);
	assert_int_equal(j, i + 3);
	assert_int_equal(nk_sq__reserve(&v->ring, 1, &j), 0);
	for (uint32_t k = 0; k < sqn; k++)
		*nk_sq__entry(&v->ring, i + k) =
			(struct nk_sqe){ .opcode = NK_OP_NOP,
					 .user_data = k + 1 };
	assert_int_equal(nk_ring_load_acquire(&v->ring.sqi->tail), i);
	/* nkd awake: no doorbell; asleep (NEED_WAKEUP): ring it. */
	assert_false(nk_sq__submit(&v->ring));
	assert_int_equal(nk_ring_load_acquire(&v->ring.sqi->tail), i + sqn);
	for (uint32_t k = 0, n = 0; k < sqn && n < sqn; k++)
		n += nk_engine__step(E);
	assert_int_equal(nk_sq__head(&v->ring), i + sqn);
	v->ring.sqi->flags |= NK_RING_NEED_WAKEUP;
	assert_true(nk_sq__submit(&v->ring));
	v->ring.sqi->flags = 0;
	/* Peek gives at most what is there; release hands slots back. */
	assert_int_equal(nk_cq__peek(&v->ring, sqn + 5, &i), (int)sqn);
	assert_int_equal(nk_cq__entry(&v->ring, i + 2)->user_data, 3);
	nk_cq__release(&v->ring, 2);
	assert_int_equal(nk_ring_load_acquire(&v->ring.cqi->head), i + 2);
	assert_int_equal(nk_cq__peek(&v->ring, 1, &j), 1);
	assert_int_equal(j, i + 2);
	nk_cq__release(&v->ring, sqn - 2);
	assert_int_equal(nk_cq__peek(&v->ring, 1, &j), 0);
	/* A producer tail beyond the ring is corruption. */
	nk_ring_store_release(&v->ring.cqi->tail,
			      v->ring.cq_head + v->ring.cq_n + 1);
	assert_int_equal(nk_cq__peek(&v->ring, 1, &j), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shm_pair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_optional_op, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_so_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_standing_recv, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batch_unsupported, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_abuse_limit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sq_tail_jump, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sq_tail_backwards, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cq_head_jump, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cq_no_overflow, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_send_queue, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_send_queue_rdwr, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_send_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_close_in_flight, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sock_gone_before_ops,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_detach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_peer_limited, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sched_hold, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rate_hold, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ph_sqe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_open_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_poll_budget, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_idle_rest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_guest_ring_object, setup,
						teardown),
	};

	struct nk_config cfg;
	int ret;

	if (nk_nsm__register(&fake_ops))
		return 1;
	/* nkd's loop needs io_uring; a kernel may refuse it to this user
	 * (kernel.io_uring_disabled): then there is nothing to test. */
	if (nk_config__default(&cfg))
		return 1;
	snprintf(cfg.nsms[0].type, sizeof(cfg.nsms[0].type), "fake");
	ret = nk_engine__create(&cfg, &E);
	if (ret == -EPERM || ret == -ENOSYS) {
		printf("SKIP: io_uring is refused to this user (%s)\n",
		       strerror(-ret));
		return 77;
	}
	nk_engine__destroy(E);
	E = NULL;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
