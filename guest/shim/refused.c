// SPDX-License-Identifier: MIT
/*
 * What a guest says when nkd refuses it. One fixed form, the same as
 * nkrun's, so that users and scripts find it: "netkernel: refused: " and
 * nkd's reason (docs/shim.md "Messages"), then who was refused and what
 * the program's sockets do now.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

void nk_log_refused(const char *why, const char *then)
{
	char line[512], who[NK_GUEST_NAME_MAX + 16] = "";
	int n, e = errno;

	/* Name the guest unless nkd's reason does. */
	if (nk_cfg.guest[0] && !strstr(why, nk_cfg.guest))
		snprintf(who, sizeof(who), "guest '%s', ", nk_cfg.guest);
	n = snprintf(line, sizeof(line),
		     "netkernel: refused: %s (%spid %d)%s%s\n", why, who,
		     (int)getpid(), then && *then ? "; " : "",
		     then ? then : "");
	if (n < 0)
		return;
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (REAL(write)(STDERR_FILENO, line, (size_t)n) < 0)
		(void)0; /* nowhere to report it */
	errno = e;
}
