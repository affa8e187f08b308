// SPDX-License-Identifier: MIT
/*
 * The registry of NSM types: the config's type= names an ops table here.
 * Built-in types are listed in one table; nk_nsm__register() adds more at
 * start-up (tests/unit/test_engine.c registers a fake one), so the engine
 * looks types up without knowing any NSM.
 */
#include <errno.h>
#include <string.h>

#include "netkernel/abi.h"

#include "nsm.h"

static const struct nk_nsm_ops *const builtin[] = {
	&nk_nsm_kernel_ops,
	&nk_nsm_afxdp_ops,
	&nk_nsm_shm_ops,
};

#define NK_NSM_MAX_EXTRA 8u

static const struct nk_nsm_ops *extra[NK_NSM_MAX_EXTRA];
static unsigned nr_extra;

const struct nk_nsm_ops *nk_nsm__find(const char *type)
{
	for (unsigned i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (!strcmp(builtin[i]->type, type))
			return builtin[i];
	for (unsigned i = 0; i < nr_extra; i++)
		if (!strcmp(extra[i]->type, type))
			return extra[i];
	return NULL;
}

int nk_nsm__register(const struct nk_nsm_ops *ops)
{
	if (!ops || !ops->type || !ops->type[0] || !ops->create ||
	    !ops->destroy || !ops->sock_open || !ops->sock_release ||
	    !ops->cancel || !ops->poll_now || !ops->sock_name)
		return -EINVAL;
	if (nk_nsm__find(ops->type))
		return -EEXIST;
	if (nr_extra == NK_NSM_MAX_EXTRA)
		return -ENOSPC;
	extra[nr_extra++] = ops;
	return 0;
}

nk_nsm_op_fn nk_nsm__op(const struct nk_nsm_ops *ops, uint8_t opcode)
{
	switch (opcode) {
	case NK_OP_BIND:
		return ops->bind;
	case NK_OP_LISTEN:
		return ops->listen;
	case NK_OP_CONNECT:
		return ops->connect;
	case NK_OP_ACCEPT:
		return ops->accept;
	case NK_OP_SEND:
		return ops->send;
	case NK_OP_RECV:
		return ops->recv;
	case NK_OP_SHUTDOWN:
		return ops->shutdown;
	case NK_OP_SETSOCKOPT:
		return ops->setsockopt;
	case NK_OP_GETSOCKOPT:
		return ops->getsockopt;
	case NK_OP_GETSOCKNAME:
		return ops->getsockname;
	case NK_OP_GETPEERNAME:
		return ops->getpeername;
	case NK_OP_IOCTL:
		return ops->ioctl;
	default: /* NOP, SOCKET, CLOSE, CANCEL: the engine's own */
		return NULL;
	}
}
