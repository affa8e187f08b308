// SPDX-License-Identifier: MIT
/*
 * sd_notify from Debian's libsystemd: it finds NOTIFY_SOCKET (path or
 * abstract), does nothing without it, and keeps it in the environment so
 * every later state change reaches systemd too.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

static void notify_send(const char *state)
{
	int ret = sd_notify(0, state);

	if (ret < 0)
		nk_warn("sd_notify: %s", state);
}

void nk_notify__ready(const char *status)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status);
	notify_send(buf);
}

/*
 * systemd 253's Type=notify-reload wants the CLOCK_MONOTONIC time of the
 * reload's start with RELOADING=1; older ones ignore the extra field.
 */
void nk_notify__reloading(void)
{
	struct timespec ts;
	char buf[128];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf),
		 "RELOADING=1\nSTATUS=reloading the config\n"
		 "MONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull +
			 (unsigned long long)ts.tv_nsec / 1000ull);
	notify_send(buf);
}

void nk_notify__stopping(const char *status)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "STOPPING=1\nSTATUS=%s", status);
	notify_send(buf);
}

void nk_notify__status(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "STATUS=");

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	notify_send(buf);
}
