// SPDX-License-Identifier: MIT
/* Refusal accounting: counters and rate-limited log lines (refusal.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "netkernel/ctl.h"

#include "admin.h"
#include "engine.h"
#include "log.h"
#include "refusal.h"

static const char *const names[NK_REFUSAL__MAX] = {
#define NK_REFUSAL_NAME(e, name, err) [NK_REFUSED_##e] = name,
	NK_REFUSALS(NK_REFUSAL_NAME)
#undef NK_REFUSAL_NAME
};

static const char *const errnos[NK_REFUSAL__MAX] = {
#define NK_REFUSAL_ERRNO(e, name, err) [NK_REFUSED_##e] = err,
	NK_REFUSALS(NK_REFUSAL_ERRNO)
#undef NK_REFUSAL_ERRNO
};

const char *nk_refusal__name(enum nk_refusal r)
{
	return (unsigned)r < NK_REFUSAL__MAX ? names[r] : "?";
}

const char *nk_refusal__errno(enum nk_refusal r)
{
	return (unsigned)r < NK_REFUSAL__MAX ? errnos[r] : "?";
}

void nk_guest__refused(struct nk_engine *e, struct nk_guest *g,
		       enum nk_refusal r, const char *fmt, ...)
{
	struct nk_refusals *rf = g ? &g->refused : &e->admin.refused;
	char why[256] = "";
	int64_t now;
	va_list ap;

	if ((unsigned)r >= NK_REFUSAL__MAX || !rf)
		return;
	rf->count[r]++;
	now = nk_now_ns();
	if (rf->logged_ns[r] && now - rf->logged_ns[r] < NK_REFUSAL_LOG_NS) {
		rf->suppressed[r]++;
		return;
	}
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
	}
	/* No guest yet (an attach refused): say so, not "guest -". */
	if (rf->suppressed[r])
		nk_warn("%s%s refused (%s): %s [%llu more since the last "
			"such line]",
			g ? "guest " : "an attach", g ? g->conf.name : "",
			names[r], why, (unsigned long long)rf->suppressed[r]);
	else
		nk_warn("%s%s refused (%s): %s", g ? "guest " : "an attach",
			g ? g->conf.name : "", names[r], why);
	rf->logged_ns[r] = now;
	rf->suppressed[r] = 0;
}

void nk_ctl__refuse_early(int fd, int status, const char *fmt, ...)
{
	struct {
		struct nk_ctl_welcome w;
		char why[200];
	} m;
	size_t len;
	va_list ap;

	memset(&m, 0, sizeof(m));
	va_start(ap, fmt);
	vsnprintf(m.why, sizeof(m.why), fmt, ap);
	va_end(ap);
	len = sizeof(m.w) + strlen(m.why);
	m.w.hdr.type = NK_CTL_WELCOME;
	m.w.hdr.len = (uint32_t)len;
	m.w.hdr.seq = 0; /* no request to answer: see refusal.h */
	m.w.status = status;
	/* Never waits: an empty socket buffer takes one small message. */
	if (send(fd, &m, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		nk_dbg("early refusal not sent: %s", strerror(errno));
}
