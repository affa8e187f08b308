/* SPDX-License-Identifier: MIT */
/*
 * The operator's hand (docs/nkd.md "Operator"): who the operator is, and
 * the commands that change nkd's state at run time (evict, set, reload).
 *
 * The operator is a caller with uid 0 in nkd's user namespace, nkd's own
 * uid, or a uid/gid the config names (`operator uid=N`, `operator gid=N`),
 * and who does not run in a network namespace that guests attach from
 * (root inside a guest is not the operator), unless that namespace is
 * nkd's own.
 */
#ifndef NKD_ADMIN_H
#define NKD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "netkernel/ctl.h"

#include "refusal.h"

/* Network namespaces a guest attached from, remembered per guest. */
#define NK_ADMIN_GUEST_NETNS 8

struct nk_admin_guest {
	uint64_t netns[NK_ADMIN_GUEST_NETNS][2]; /* st_dev, st_ino; 0: free */
	unsigned next;
};

/* nkd-wide operator state, embedded in struct nk_engine. */
struct nk_admin_state {
	char config_path[4096]; /* "": nkd runs on the built-in config */
	struct nk_refusals refused; /* refusals that no guest can own */
	/* A guest attached from a namespace nkd could not read. */
	bool unknown_guest_netns;
	uint64_t reloads, reload_failures;
};

struct nk_engine;
struct nk_conn;
struct nk_peer;

/* The file `nkctl reload` and SIGHUP read again (main.c). */
void nk_admin__set_config_path(struct nk_engine *e, const char *path);

/*
 * 0 if the peer of control socket fd (facts read at accept, peer.c) is
 * the operator; -EPERM with the reason in why otherwise.
 */
int nk_admin__check(struct nk_engine *e, int fd, const struct nk_peer *peer,
		    char *why, size_t whylen);

/* A conn attached: remember the network namespace its guest comes from. */
void nk_admin__attached(struct nk_engine *e, struct nk_conn *c,
			const struct nk_peer *peer);

/*
 * Runs an NK_CTL_ADMIN command (the caller is the operator). Returns 0 or
 * -errno; *text (malloc'd, may be NULL) is the message for nkctl.
 */
int nk_admin__command(struct nk_engine *e, const struct nk_ctl_admin *m,
		      char **text, size_t *len);

/* Re-reads the config file; 0 or -errno, with a message in msg. */
int nk_admin__reload(struct nk_engine *e, char *msg, size_t msglen);

#endif /* NKD_ADMIN_H */
