// SPDX-License-Identifier: MIT
/*
 * VM guests' transport, nkd side (docs/vm.md "Transport", vm.h). Per VM:
 *   - the shared file, carved into fixed windows, one per process;
 *   - a listening unix stream socket, and the one channel connection
 *     accepted on it (QEMU's chardev, or in tests nk-vmagent itself);
 *   - per process the agent announced (NK_VMF_OPEN): a SOCK_SEQPACKET
 *     pair, one end injected into ctl.c as a control client whose
 *     identity is the VM guest (its channel path), the other end here.
 *     Control messages cross verbatim; descriptors do not: the region
 *     becomes an offset, the doorbell and CQ wake-ups become frames, the
 *     placeholder pool becomes NK_VMF_PH_NEW and placeholder.c's changes
 *     NK_VMF_PH_OP (the agent mirrors them on pairs it makes in the VM).
 * Everything read from the channel is hostile: bounded frames, bounded
 * output (a VM that stops reading is cut off), an allow-list of control
 * messages (no QUERY or ADMIN from a VM). Nothing here polls: an idle VM
 * costs nkd nothing.
 */
#include <errno.h>
#include <linux/magic.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "netkernel/vmchan.h"

#include "engine.h"
#include "log.h"
#include "loop.h"
#include "peer.h"
#include "vm.h"

enum {
	K_LISTEN,
	K_CHAN, /* multishot POLLIN on the channel */
	K_CHAN_OUT, /* one-shot POLLOUT while output is queued */
	K_CHAN_MORE, /* one-shot POLLIN after a read budget ran out */
	K_CONN, /* a process's control pair, nkd's side */
	K_POOL, /* a process's placeholder pool channel */
};

#define SLOT(vm, kind, i) ((uint32_t)(vm) << 24 | (uint32_t)(kind) << 20 | (i))
#define OUT_MAX (8u << 20) /* queued output before the VM is cut off */
#define IN_CAP (2u * NK_VMF_MAX)
#define READ_BUDGET (1u << 20)

struct vmconn {
	bool used;
	uint32_t gen;
	uint32_t id; /* the agent's */
	int cfd, pool, bell;
	uint32_t cslot, cgen; /* ctl.c's client */
	uint64_t win_off; /* its region window, once attached */
	bool has_win;
	uint32_t binds; /* PH_BINDs run, as vm_ph_bound */
};

struct nk_vm {
	struct nk_vmset *set;
	unsigned idx;
	char name[NK_GUEST_NAME_MAX];
	char chan_path[108];
	int guest_idx;
	int fd; /* the shared file */
	uint8_t *map; /* all of it: vm_ph_sent in each window's header */
	uint64_t size, win;
	uint32_t nwin;
	uint8_t *win_used;
	int lfd, cfd;
	uint32_t cgen;
	bool greeted, out_armed, more_armed;
	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_cap;
	struct vmconn conns[NK_VMF_MAX_CONNS];
	uint64_t bad;
	uint32_t ph_seq; /* PH_OP frames sent since the agent's HELLO */
};

struct nk_vmset {
	struct nk_engine *e;
	struct nk_vm *vm;
	unsigned n;
	bool down;
};

/* nkd has one loop and one engine; placeholder.c's hook finds it here. */
static struct nk_vmset *the_set;

static uint64_t ref_of(const struct nk_vm *vm, uint32_t i)
{
	return (uint64_t)(vm->idx + 1) << 48 |
	       (uint64_t)(vm->conns[i].gen & 0xffffffu) << 24 | i;
}

static struct nk_vm *vm_of_ref(uint64_t ref, struct vmconn **vc)
{
	unsigned v = (unsigned)(ref >> 48);
	uint32_t i = ref & 0xffffffu, gen = (ref >> 24) & 0xffffffu;
	struct nk_vm *vm;

	if (!the_set || the_set->down || !v || v > the_set->n)
		return NULL;
	vm = &the_set->vm[v - 1];
	if (vc) {
		if (i >= NK_VMF_MAX_CONNS || !vm->conns[i].used ||
		    (vm->conns[i].gen & 0xffffffu) != gen)
			return NULL;
		*vc = &vm->conns[i];
	}
	return vm;
}

static void chan_close(struct nk_vm *vm, const char *why);

static void out_flush(struct nk_vm *vm)
{
	while (vm->out_len) {
		ssize_t n = send(vm->cfd, vm->out, vm->out_len,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			chan_close(vm, "write failed");
			return;
		}
		memmove(vm->out, vm->out + n, vm->out_len - (size_t)n);
		vm->out_len -= (size_t)n;
	}
	if (vm->out_len && !vm->out_armed) {
		struct io_uring_sqe *sqe = nk_loop__sqe(vm->set->e->loop);

		if (!sqe) {
			chan_close(vm, "no room in the loop");
			return;
		}
		io_uring_prep_poll_add(sqe, vm->cfd, POLLOUT);
		io_uring_sqe_set_data64(sqe,
					nk_ud(NK_UD_VM, vm->cgen,
					      SLOT(vm->idx, K_CHAN_OUT, 0)));
		vm->out_armed = true;
	}
}

static void frame_send(struct nk_vm *vm, uint16_t type, uint32_t conn,
		       const void *a, size_t alen, const void *b, size_t blen)
{
	struct nk_vmf_hdr h = { .len = (uint32_t)(sizeof(h) + alen + blen),
				.type = type,
				.conn = conn };
	size_t need = vm->out_len + h.len;

	if (vm->cfd < 0 || !vm->greeted)
		return;
	if (need > OUT_MAX) {
		chan_close(vm, "the VM does not read its channel");
		return;
	}
	if (need > vm->out_cap) {
		size_t cap = vm->out_cap ? vm->out_cap : 65536;
		uint8_t *n;

		while (cap < need)
			cap *= 2;
		n = realloc(vm->out, cap);
		if (!n) {
			chan_close(vm, "out of memory");
			return;
		}
		vm->out = n;
		vm->out_cap = cap;
	}
	memcpy(vm->out + vm->out_len, &h, sizeof(h));
	if (alen)
		memcpy(vm->out + vm->out_len + sizeof(h), a, alen);
	if (blen)
		memcpy(vm->out + vm->out_len + sizeof(h) + alen, b, blen);
	vm->out_len = need;
	out_flush(vm);
}

static void conn_close(struct nk_vm *vm, struct vmconn *vc, bool tell)
{
	struct nk_loop *l = vm->set->e->loop;
	uint32_t i = (uint32_t)(vc - vm->conns);

	if (!vc->used)
		return;
	if (tell)
		frame_send(vm, NK_VMF_CLOSE, vc->id, NULL, 0, NULL, 0);
	nk_loop__cancel_ud(l,
			   nk_ud(NK_UD_VM, vc->gen, SLOT(vm->idx, K_CONN, i)));
	nk_loop__cancel_ud(l,
			   nk_ud(NK_UD_VM, vc->gen, SLOT(vm->idx, K_POOL, i)));
	/* ctl.c sees the pair close and detaches the conn. */
	close(vc->cfd);
	if (vc->pool >= 0)
		close(vc->pool);
	if (vc->bell >= 0)
		close(vc->bell);
	vc->used = false;
	vc->gen++;
}

static void chan_close(struct nk_vm *vm, const char *why)
{
	struct nk_loop *l = vm->set->e->loop;

	if (vm->cfd < 0)
		return;
	nk_info("VM guest %s: channel closed: %s", vm->name, why);
	vm->greeted = false; /* no frames to a closed channel */
	for (uint32_t i = 0; i < NK_VMF_MAX_CONNS; i++)
		conn_close(vm, &vm->conns[i], false);
	nk_loop__cancel_ud(l,
			   nk_ud(NK_UD_VM, vm->cgen, SLOT(vm->idx, K_CHAN, 0)));
	if (vm->out_armed)
		nk_loop__cancel_ud(l, nk_ud(NK_UD_VM, vm->cgen,
					    SLOT(vm->idx, K_CHAN_OUT, 0)));
	if (vm->more_armed)
		nk_loop__cancel_ud(l, nk_ud(NK_UD_VM, vm->cgen,
					    SLOT(vm->idx, K_CHAN_MORE, 0)));
	close(vm->cfd);
	vm->cfd = -1;
	vm->cgen = (vm->cgen + 1) & NK_UD_GEN_MASK;
	vm->out_len = vm->in_len = 0;
	vm->out_armed = vm->more_armed = false;
}

static struct vmconn *conn_find(struct nk_vm *vm, uint32_t id)
{
	for (uint32_t i = 0; i < NK_VMF_MAX_CONNS; i++)
		if (vm->conns[i].used && vm->conns[i].id == id)
			return &vm->conns[i];
	return NULL;
}

static void conn_open(struct nk_vm *vm, uint32_t id)
{
	struct nk_engine *e = vm->set->e;
	struct nk_peer peer = { .pid = 0, .uid = 65534, .gid = 65534 };
	struct vmconn *vc = NULL;
	uint32_t i, nr = 0;
	int sv[2];

	/* A VM holds nkd's control slots as one uid does (max_ctl_per_uid). */
	for (i = 0; i < NK_VMF_MAX_CONNS; i++) {
		nr += vm->conns[i].used;
		if (!vm->conns[i].used && !vc)
			vc = &vm->conns[i];
	}
	if (nr >= e->cfg.max_ctl_per_uid)
		vc = NULL;
	if (!id || conn_find(vm, id) || !vc ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
		       0, sv)) {
		vm->bad++;
		frame_send(vm, NK_VMF_CLOSE, id, NULL, 0, NULL, 0);
		return;
	}
	i = (uint32_t)(vc - vm->conns);
	/* Identity: the channel it came through, never what it claims. */
	peer.attach = vm->guest_idx;
	snprintf(peer.attach_path, sizeof(peer.attach_path), "%s",
		 vm->chan_path);
	if (nk_ctl__inject(e->ctl, sv[0], &peer, &vc->cslot, &vc->cgen)) {
		close(sv[1]);
		frame_send(vm, NK_VMF_CLOSE, id, NULL, 0, NULL, 0);
		return;
	}
	vc->used = true;
	vc->has_win = false;
	vc->id = id;
	vc->cfd = sv[1];
	vc->pool = vc->bell = -1;
	if (nk_loop__poll(e->loop, vc->cfd, POLLIN,
			  nk_ud(NK_UD_VM, vc->gen, SLOT(vm->idx, K_CONN, i))))
		conn_close(vm, vc, true);
}

/* The control messages a VM's process may send (no QUERY, no ADMIN). */
static bool ctl_allowed(uint32_t type)
{
	switch (type) {
	case NK_CTL_HELLO:
	case NK_CTL_PH_BIND:
	case NK_CTL_PH_REFILL:
	case NK_CTL_FORK_PREPARE:
	case NK_CTL_FORK_COMMIT:
	case NK_CTL_EXEC:
	case NK_CTL_TOKEN_ABORT:
	case NK_CTL_RESOLVE:
	case NK_CTL_DNS_SERVERS:
		return true;
	default:
		return false;
	}
}

static struct nk_region_hdr *win_hdr(struct nk_vm *vm, struct vmconn *vc)
{
	return vm->map && vc->has_win ? (void *)(vm->map + vc->win_off) : NULL;
}

/*
 * A PH_BIND runs here, as the frame arrives, not later in ctl.c: the
 * readiness it gives the new placeholder (PH_OPs) must be in vm_ph_sent
 * when the shim sees vm_ph_bound count it (docs/abi.md §9). Checked as
 * ctl.c checks it.
 */
static void conn_bind(struct nk_vm *vm, struct vmconn *vc, const uint8_t *m,
		      size_t len)
{
	struct nk_conn *c =
		nk_ctl__conn_of(vm->set->e->ctl, vc->cslot, vc->cgen);
	struct nk_region_hdr *h = win_hdr(vm, vc);
	struct nk_ctl_ph_bind b;
	int ret;

	if (len != sizeof(b) || !c) {
		vm->bad++;
		conn_close(vm, vc, true);
		return;
	}
	memcpy(&b, m, sizeof(b));
	if (b.resv) {
		vm->bad++;
		conn_close(vm, vc, true);
		return;
	}
	ret = nk_engine__placeholder(vm->set->e, c, &b);
	if (ret) {
		c->guest->c.errors++;
		nk_dbg("VM guest %s: placeholder %llu for handle %#x refused: "
		       "%s",
		       vm->name, (unsigned long long)b.id, b.handle,
		       strerror(-ret));
	}
	vc->binds++;
	if (h)
		__atomic_store_n(&h->vm_ph_bound, vc->binds, __ATOMIC_RELEASE);
}

static void conn_ctl(struct nk_vm *vm, struct vmconn *vc, uint8_t *m,
		     size_t len)
{
	struct nk_ctl_hdr h;

	if (len < sizeof(h)) {
		vm->bad++;
		return;
	}
	memcpy(&h, m, sizeof(h));
	if (h.len != len || !ctl_allowed(h.type)) {
		vm->bad++;
		conn_close(vm, vc, true);
		return;
	}
	if (h.type == NK_CTL_PH_BIND) {
		conn_bind(vm, vc, m, len);
		return;
	}
	if (h.type == NK_CTL_HELLO && len == sizeof(struct nk_ctl_hello)) {
		struct nk_ctl_hello hello;

		/* nkd picks the guest by the channel; VM mode is ours. */
		memcpy(&hello, m, sizeof(hello));
		hello.flags &= ~NK_HELLO_F_VM;
		memset(hello.guest, 0, sizeof(hello.guest));
		memcpy(m, &hello, sizeof(hello));
	}
	if (send(vc->cfd, m, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		conn_close(vm, vc, true);
}

static void frame_in(struct nk_vm *vm, const struct nk_vmf_hdr *h,
		     uint8_t *body, size_t blen)
{
	struct vmconn *vc;

	if (h->type == NK_VMF_HELLO) {
		struct nk_vmf_hello hi;

		if (blen != sizeof(hi) || h->conn)
			goto bad;
		memcpy(&hi, body, sizeof(hi));
		if (hi.magic != NK_VMF_MAGIC || hi.version != NK_VMF_VERSION) {
			chan_close(vm, "agent speaks another protocol version");
			return;
		}
		/* A new agent (the VM rebooted): forget the old processes. */
		for (uint32_t i = 0; i < NK_VMF_MAX_CONNS; i++)
			conn_close(vm, &vm->conns[i], false);
		vm->greeted = true;
		vm->ph_seq = 0;
		hi.region_size = vm->size;
		frame_send(vm, NK_VMF_HELLO, 0, &hi, sizeof(hi), NULL, 0);
		nk_info("VM guest %s: agent attached", vm->name);
		return;
	}
	if (!vm->greeted)
		goto bad;
	if (h->type == NK_VMF_OPEN) {
		if (blen != sizeof(struct nk_vmf_open))
			goto bad;
		conn_open(vm, h->conn);
		return;
	}
	vc = conn_find(vm, h->conn);
	if (!vc)
		goto bad; /* raced with a close: harmless */
	switch (h->type) {
	case NK_VMF_CLOSE:
		conn_close(vm, vc, false);
		return;
	case NK_VMF_CTL:
		conn_ctl(vm, vc, body, blen);
		return;
	case NK_VMF_BELL:
		if (vc->bell >= 0) {
			uint64_t one = 1;

			if (write(vc->bell, &one, sizeof(one)) < 0)
				nk_dbg("VM doorbell: %s", strerror(errno));
		}
		return;
	default:
		break;
	}
bad:
	vm->bad++;
}

static void chan_read(struct nk_vm *vm)
{
	size_t budget = READ_BUDGET;

	while (vm->cfd >= 0) {
		ssize_t n;
		size_t off = 0;

		if (!budget) {
			struct io_uring_sqe *sqe;

			if (vm->more_armed)
				return;
			sqe = nk_loop__sqe(vm->set->e->loop);
			if (!sqe) {
				chan_close(vm, "no room in the loop");
				return;
			}
			io_uring_prep_poll_add(sqe, vm->cfd, POLLIN);
			io_uring_sqe_set_data64(
				sqe, nk_ud(NK_UD_VM, vm->cgen,
					   SLOT(vm->idx, K_CHAN_MORE, 0)));
			vm->more_armed = true;
			return;
		}
		n = recv(vm->cfd, vm->in + vm->in_len, IN_CAP - vm->in_len,
			 MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			chan_close(vm, n ? strerror(errno) : "agent hung up");
			return;
		}
		budget = (size_t)n > budget ? 0 : budget - (size_t)n;
		vm->in_len += (size_t)n;
		while (vm->in_len - off >= sizeof(struct nk_vmf_hdr)) {
			struct nk_vmf_hdr h;

			memcpy(&h, vm->in + off, sizeof(h));
			if (h.len < sizeof(h) || h.len > NK_VMF_MAX || h.resv ||
			    h.resv2) {
				nk_warn("VM guest %s: bad frame (len %u type "
					"%u), closing its channel",
					vm->name, h.len, h.type);
				chan_close(vm, "bad frame");
				return;
			}
			if (vm->in_len - off < h.len)
				break;
			frame_in(vm, &h, vm->in + off + sizeof(h),
				 h.len - sizeof(h));
			if (vm->cfd < 0)
				return;
			off += h.len;
		}
		memmove(vm->in, vm->in + off, vm->in_len - off);
		vm->in_len -= off;
	}
}

/* Replies of ctl.c for one process, to the agent. */
static void conn_read(struct nk_vm *vm, struct vmconn *vc)
{
	static uint8_t buf[NK_CTL_MAX_MSG + sizeof(struct nk_ctl_welcome_vm)];

	for (;;) {
		union {
			char b[CMSG_SPACE(3 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = buf,
				     .iov_len = NK_CTL_MAX_MSG };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		int fds[3], nfds = 0;
		struct nk_ctl_welcome w;
		ssize_t n =
			recvmsg(vc->cfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_close(vm, vc, true);
			return;
		}
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
		     cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t j = 0; j < k; j++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + j * sizeof(int),
				       sizeof(fd));
				if (nfds < 3)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
		memcpy(&w, buf, (size_t)n < sizeof(w) ? (size_t)n : sizeof(w));
		if ((size_t)n >= sizeof(w) && w.hdr.type == NK_CTL_WELCOME &&
		    w.status == 0 && nfds == 3) {
			struct nk_ctl_welcome_vm x = {
				.magic = NK_WELCOME_VM_MAGIC,
				.flags = NK_WELCOME_VM_F_BELL_WAIT,
			};
			struct nk_conn *c = nk_ctl__conn_of(
				vm->set->e->ctl, vc->cslot, vc->cgen);
			uint32_t i = (uint32_t)(vc - vm->conns);

			close(fds[0]); /* the agent maps the VM's own view */
			vc->bell = fds[1];
			vc->pool = fds[2];
			nfds = 0;
			if (!c) {
				conn_close(vm, vc, true);
				return;
			}
			c->vm_ref = ref_of(vm, i);
			x.region_off = nk_region__offset(c->region);
			vc->win_off = x.region_off;
			vc->has_win = true;
			vc->binds = 0;
			/*
			 * A forked child's sockets may have PH_OPs in flight
			 * already: its first sync waits for them too.
			 */
			if (win_hdr(vm, vc))
				__atomic_store_n(&win_hdr(vm, vc)->vm_ph_sent,
						 vm->ph_seq, __ATOMIC_RELEASE);
			w.hdr.len += sizeof(x);
			memcpy(buf, &w, sizeof(w));
			memcpy(buf + n, &x, sizeof(x));
			n += sizeof(x);
			if (nk_loop__poll(vm->set->e->loop, vc->pool, POLLIN,
					  nk_ud(NK_UD_VM, vc->gen,
						SLOT(vm->idx, K_POOL, i)))) {
				conn_close(vm, vc, true);
				return;
			}
		}
		for (int j = 0; j < nfds; j++)
			close(fds[j]);
		frame_send(vm, NK_VMF_CTL, vc->id, buf, (size_t)n, NULL, 0);
		if (!vc->used)
			return;
	}
}

/* Pool placeholders: the agent makes its own pair for each id. */
static void pool_read(struct nk_vm *vm, struct vmconn *vc)
{
	for (;;) {
		struct nk_ctl_ph_pool m;
		union {
			char b[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		struct nk_vmf_ph ph = { 0 };
		ssize_t n =
			recvmsg(vc->pool, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		struct cmsghdr *cm;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			return; /* the conn is going; conn_read sees it */
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t j = 0; j < k; j++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + j * sizeof(int),
				       sizeof(fd));
				close(fd); /* nkd keeps its own duplicate */
			}
		}
		if (n != sizeof(m))
			continue;
		ph.id = m.id;
		frame_send(vm, NK_VMF_PH_NEW, vc->id, &ph, sizeof(ph), NULL, 0);
		if (!vc->used)
			return;
	}
}

static void chan_accept(struct nk_vm *vm)
{
	for (;;) {
		int fd = accept4(vm->lfd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0)
			return;
		if (vm->cfd >= 0) {
			nk_warn("VM guest %s: a second channel connection "
				"refused",
				vm->name);
			close(fd);
			continue;
		}
		vm->cfd = fd;
		vm->greeted = false;
		vm->in_len = vm->out_len = 0;
		if (nk_loop__poll(vm->set->e->loop, fd, POLLIN | POLLRDHUP,
				  nk_ud(NK_UD_VM, vm->cgen,
					SLOT(vm->idx, K_CHAN, 0)))) {
			close(fd);
			vm->cfd = -1;
		}
	}
}

static void on_vm(void *ctx, uint32_t slot, uint32_t gen,
		  const struct io_uring_cqe *cqe)
{
	struct nk_vmset *s = ctx;
	unsigned v = slot >> 24, kind = (slot >> 20) & 0xf;
	uint32_t i = slot & 0xfffff;
	struct nk_vm *vm;
	struct vmconn *vc;
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (s->down || v >= s->n || cqe->res == -ECANCELED)
		return;
	vm = &s->vm[v];
	switch (kind) {
	case K_LISTEN:
		chan_accept(vm);
		if (!more)
			nk_loop__poll(s->e->loop, vm->lfd, POLLIN,
				      nk_ud(NK_UD_VM, 0, slot));
		return;
	case K_CHAN:
	case K_CHAN_MORE:
	case K_CHAN_OUT:
		if (gen != vm->cgen || vm->cfd < 0)
			return;
		if (kind == K_CHAN_OUT) {
			vm->out_armed = false;
			out_flush(vm);
			return;
		}
		if (kind == K_CHAN_MORE)
			vm->more_armed = false;
		chan_read(vm);
		if (kind == K_CHAN && !more && vm->cfd >= 0 && gen == vm->cgen)
			nk_loop__poll(s->e->loop, vm->cfd, POLLIN | POLLRDHUP,
				      nk_ud(NK_UD_VM, gen, slot));
		return;
	case K_CONN:
	case K_POOL:
		if (i >= NK_VMF_MAX_CONNS)
			return;
		vc = &vm->conns[i];
		if (!vc->used || vc->gen != gen)
			return;
		if (kind == K_CONN)
			conn_read(vm, vc);
		else
			pool_read(vm, vc);
		if (!more && vc->used && vc->gen == gen)
			nk_loop__poll(s->e->loop,
				      kind == K_CONN ? vc->cfd : vc->pool,
				      POLLIN, nk_ud(NK_UD_VM, gen, slot));
		return;
	default:
		return;
	}
}

void nk_vm__wake(const struct nk_conn *c)
{
	struct vmconn *vc;
	struct nk_vm *vm = vm_of_ref(c->vm_ref, &vc);

	if (vm)
		frame_send(vm, NK_VMF_WAKE, vc->id, NULL, 0, NULL, 0);
}

void nk_vm__ph(const struct nk_ph *ph, uint32_t op, uint32_t arg)
{
	struct nk_vm *vm = vm_of_ref(ph->vm_ref, NULL);
	struct nk_vmf_ph m = { .id = ph->vm_id, .op = op, .arg = arg };

	if (vm && vm->greeted) {
		vm->ph_seq++;
		/*
		 * Before any later CQE: a shim that saw one waits, before it
		 * trusts a placeholder, until the agent applied this many.
		 */
		for (uint32_t i = 0; vm->map && i < NK_VMF_MAX_CONNS; i++) {
			struct nk_region_hdr *h;

			if (!vm->conns[i].used || !vm->conns[i].has_win)
				continue;
			h = (void *)(vm->map + vm->conns[i].win_off);
			__atomic_store_n(&h->vm_ph_sent, vm->ph_seq,
					 __ATOMIC_RELEASE);
		}
		frame_send(vm, NK_VMF_PH_OP, 0, &m, sizeof(m), NULL, 0);
	}
}

uint32_t nk_vm__ph_seq(const struct nk_conn *c)
{
	struct nk_vm *vm = vm_of_ref(c->vm_ref, NULL);

	return vm ? vm->ph_seq : 0;
}

static void win_release(void *ctx, uint64_t off)
{
	struct nk_vm *vm = ctx;

	if (off / vm->win < vm->nwin)
		vm->win_used[off / vm->win] = 0;
}

int nk_vm__region(struct nk_engine *e, const char *guest,
		  const struct nk_region_params *p, struct nk_region **out)
{
	struct nk_vmset *s = e->vms;

	for (unsigned v = 0; s && v < s->n; v++) {
		struct nk_vm *vm = &s->vm[v];

		if (strcmp(vm->name, guest))
			continue;
		for (uint32_t w = 0; w < vm->nwin; w++) {
			int ret;

			if (vm->win_used[w])
				continue;
			ret = nk_region__create_window(vm->fd, w * vm->win,
						       vm->win, p, win_release,
						       vm, out);
			if (!ret)
				vm->win_used[w] = 1;
			return ret;
		}
		nk_warn("VM guest %s: all %u region windows in use", guest,
			vm->nwin);
		return -ENOSPC;
	}
	return -ENODEV;
}

static int vm_open(struct nk_vmset *s, struct nk_vm *vm,
		   const struct nk_guest_conf *g)
{
	struct nk_region_params p = {
		.nr_qsets = NK_MAX_QSETS,
		.sq_entries = NK_REGION_SQ_ENTRIES,
		.cq_entries = NK_REGION_CQ_ENTRIES,
		.buf_size = NK_REGION_BUF_SIZE,
		.nr_bufs = (uint32_t)(((uint64_t)g->bufs * NK_REGION_BUF_UNIT +
				       NK_REGION_BUF_SIZE - 1) /
				      NK_REGION_BUF_SIZE),
	};
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct statfs sfs;
	uint64_t align = 4096;
	int ret;

	vm->set = s;
	vm->fd = vm->lfd = vm->cfd = -1;
	vm->map = NULL;
	snprintf(vm->name, sizeof(vm->name), "%s", g->name);
	/* config.c keeps the path under 92 bytes */
	memcpy(vm->chan_path, g->vm_channel,
	       strnlen(g->vm_channel, sizeof(vm->chan_path) - 1));
	vm->guest_idx = g->idx;
	vm->size = g->vm_size;
	ret = nk_region__layout_size(&p, &vm->win);
	if (ret)
		return ret;
	vm->fd = open(g->vm_region, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	if (vm->fd < 0 || ftruncate(vm->fd, (off_t)vm->size) ||
	    fstatfs(vm->fd, &sfs)) {
		ret = -errno;
		nk_err("VM guest %s: vm_region %s: %s", vm->name, g->vm_region,
		       strerror(-ret));
		return ret;
	}
	vm->map = mmap(NULL, vm->size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->fd, 0);
	if (vm->map == MAP_FAILED) {
		vm->map = NULL;
		ret = -errno;
		nk_err("VM guest %s: vm_region %s: mmap: %s", vm->name,
		       g->vm_region, strerror(-ret));
		return ret;
	}
	/* Windows are mapped at their offset: on hugetlbfs, huge pages. */
	if (sfs.f_type == HUGETLBFS_MAGIC && sfs.f_bsize > 4096)
		align = (uint64_t)sfs.f_bsize;
	vm->win = (vm->win + align - 1) & ~(align - 1);
	vm->nwin = (uint32_t)(vm->size / vm->win);
	if (!vm->nwin) {
		nk_err("VM guest %s: vm_size=%llu holds no region of %llu "
		       "bytes (bufs=%u): raise vm_size or lower bufs",
		       vm->name, (unsigned long long)vm->size,
		       (unsigned long long)vm->win, g->bufs);
		return -ENOSPC;
	}
	vm->win_used = calloc(vm->nwin, 1);
	vm->in = malloc(IN_CAP);
	if (!vm->win_used || !vm->in)
		return -ENOMEM;
	vm->lfd =
		socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	memcpy(sun.sun_path, vm->chan_path, sizeof(vm->chan_path));
	unlink(g->vm_channel); /* a stale socket of an earlier nkd */
	if (vm->lfd < 0 ||
	    bind(vm->lfd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(g->vm_channel, 0600) || listen(vm->lfd, 4)) {
		ret = -errno;
		nk_err("VM guest %s: vm_channel %s: %s", vm->name,
		       g->vm_channel, strerror(-ret));
		return ret;
	}
	nk_info("VM guest %s: region file %s (%llu bytes, %u windows of "
		"%llu), channel %s",
		vm->name, g->vm_region, (unsigned long long)vm->size, vm->nwin,
		(unsigned long long)vm->win, g->vm_channel);
	return nk_loop__poll(s->e->loop, vm->lfd, POLLIN,
			     nk_ud(NK_UD_VM, 0, SLOT(vm->idx, K_LISTEN, 0)));
}

int nk_vm__create(struct nk_engine *e, struct nk_vmset **out)
{
	struct nk_vmset *s = calloc(1, sizeof(*s));
	unsigned n = 0;
	int ret = 0;

	if (!s)
		return -ENOMEM;
	s->e = e;
	for (unsigned i = 0; i < e->cfg.nr_guests; i++)
		n += e->cfg.guests[i].vm_channel[0] != '\0';
	s->vm = calloc(n ? n : 1, sizeof(*s->vm));
	if (!s->vm) {
		free(s);
		return -ENOMEM;
	}
	e->vms = s;
	the_set = s;
	nk_loop__on(e->loop, NK_UD_VM, on_vm, s);
	for (unsigned i = 0; i < e->cfg.nr_guests && !ret; i++) {
		if (!e->cfg.guests[i].vm_channel[0])
			continue;
		s->vm[s->n].idx = s->n;
		s->n++;
		ret = vm_open(s, &s->vm[s->n - 1], &e->cfg.guests[i]);
	}
	*out = s;
	return ret;
}

void nk_vm__shutdown(struct nk_vmset *s)
{
	if (!s)
		return;
	for (unsigned v = 0; v < s->n; v++)
		chan_close(&s->vm[v], "nkd stops");
	s->down = true;
}

void nk_vm__destroy(struct nk_vmset *s)
{
	if (!s)
		return;
	for (unsigned v = 0; v < s->n; v++) {
		struct nk_vm *vm = &s->vm[v];

		if (vm->lfd >= 0) {
			close(vm->lfd);
			unlink(vm->chan_path);
		}
		if (vm->fd >= 0)
			close(vm->fd);
		if (vm->map)
			munmap(vm->map, vm->size);
		free(vm->win_used);
		free(vm->in);
		free(vm->out);
	}
	if (the_set == s)
		the_set = NULL;
	free(s->vm);
	free(s);
}
