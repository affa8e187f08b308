// SPDX-License-Identifier: MIT
/*
 * Placeholder pool (docs/abi.md §6): nkd makes every readiness
 * socketpair itself, keeps the nkd end (and a duplicate of the app end)
 * and hands the guest only the app end, in advance, over a per-connection
 * pool channel. So no guest ever holds an nkd end, and making a socket
 * costs the guest no control round trip.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"

/*
 * Ids are unique over all of nkd's connections, not per connection: a VM
 * guest's agent keeps every process's placeholders in one table by id
 * (vm.c, docs/vm.md "Transport").
 */
static uint64_t next_id = 1;

struct nk_phpool {
	int chan; /* nkd's end of the pool channel */
	uint32_t nr; /* unbound: in the channel or taken, not yet bound */
	struct {
		uint64_t id;
		int app, nkd;
	} ent[NK_PH_POOL_MAX];
};

int nk_phpool__create(struct nk_phpool **out, int *guest_end)
{
	struct nk_phpool *p = calloc(1, sizeof(*p));
	int sv[2];

	if (!p)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		int err = -errno;

		free(p);
		return err;
	}
	/* Only nkd speaks on the channel: the guest's end cannot write. */
	shutdown(sv[1], SHUT_WR);
	p->chan = sv[0];
	*guest_end = sv[1];
	*out = p;
	return 0;
}

void nk_phpool__destroy(struct nk_phpool *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->nr; i++) {
		close(p->ent[i].app);
		close(p->ent[i].nkd);
	}
	close(p->chan);
	free(p);
}

uint32_t nk_phpool__unbound(const struct nk_phpool *p)
{
	return p ? p->nr : 0;
}

/* One new placeholder down the channel; false when nothing more can go. */
static bool send_one(struct nk_phpool *p)
{
	struct nk_ctl_ph_pool m = {
		.hdr = { .type = NK_CTL_PH_POOL, .len = sizeof(m) },
	};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	int sv[2];

	if (p->nr >= NK_PH_POOL_MAX)
		return false;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		nk_dbg("placeholder pool: socketpair: %s", strerror(errno));
		return false;
	}
	m.id = next_id++;
	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &sv[0], sizeof(int));
	if (sendmsg(p->chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(m)) {
		close(sv[0]);
		close(sv[1]);
		return false;
	}
	p->ent[p->nr].id = m.id;
	p->ent[p->nr].app = sv[0]; /* nkd's duplicate of what it sent */
	p->ent[p->nr].nkd = sv[1];
	p->nr++;
	return true;
}

unsigned nk_phpool__fill(struct nk_phpool *p, unsigned n)
{
	unsigned sent = 0;

	while (p && sent < n && send_one(p))
		sent++;
	return sent;
}

int nk_phpool__take(struct nk_phpool *p, uint64_t id, int *app, int *nkd)
{
	for (uint32_t i = 0; p && i < p->nr; i++) {
		if (p->ent[i].id != id)
			continue;
		*app = p->ent[i].app;
		*nkd = p->ent[i].nkd;
		p->ent[i] = p->ent[--p->nr];
		return 0;
	}
	return -ENOENT;
}
