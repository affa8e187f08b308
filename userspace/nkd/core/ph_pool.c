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

/*
 * Up to n new placeholders down the channel, one message each (so each
 * lands on the guest's lowest free fd when it takes it), all in one
 * sendmmsg(): a refill of several costs one system call.
 */
unsigned nk_phpool__fill(struct nk_phpool *p, unsigned n)
{
	struct nk_ctl_ph_pool m[NK_PH_POOL_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u[NK_PH_POOL_MAX];
	struct iovec iov[NK_PH_POOL_MAX];
	struct mmsghdr mm[NK_PH_POOL_MAX];
	int sv[NK_PH_POOL_MAX][2];
	unsigned k = 0;
	int sent;

	if (!p)
		return 0;
	if (n > NK_PH_POOL_MAX - p->nr)
		n = NK_PH_POOL_MAX - p->nr;
	for (; k < n; k++) {
		struct cmsghdr *cm;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[k]) <
		    0) {
			nk_dbg("placeholder pool: socketpair: %s",
			       strerror(errno));
			break;
		}
		memset(&m[k], 0, sizeof(m[k]));
		m[k].hdr.type = NK_CTL_PH_POOL;
		m[k].hdr.len = sizeof(m[k]);
		m[k].id = next_id + k;
		iov[k] = (struct iovec){ .iov_base = &m[k],
					 .iov_len = sizeof(m[k]) };
		memset(&u[k], 0, sizeof(u[k]));
		memset(&mm[k], 0, sizeof(mm[k]));
		mm[k].msg_hdr.msg_iov = &iov[k];
		mm[k].msg_hdr.msg_iovlen = 1;
		mm[k].msg_hdr.msg_control = u[k].buf;
		mm[k].msg_hdr.msg_controllen = sizeof(u[k].buf);
		cm = CMSG_FIRSTHDR(&mm[k].msg_hdr);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &sv[k][0], sizeof(int));
	}
	sent = k ? sendmmsg(p->chan, mm, k, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
	if (sent < 0)
		sent = 0;
	for (unsigned i = 0; i < k; i++) {
		if ((int)i >= sent) {
			close(sv[i][0]);
			close(sv[i][1]);
			continue;
		}
		p->ent[p->nr].id = m[i].id;
		p->ent[p->nr].app = sv[i][0]; /* nkd's copy of what it sent */
		p->ent[p->nr].nkd = sv[i][1];
		p->nr++;
	}
	next_id += (unsigned)sent;
	return (unsigned)sent;
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
