// SPDX-License-Identifier: MIT
/*
 * nkd's log. Under systemd, stderr is a stream to journald: each line then
 * starts with an sd-daemon(3) "<N>" priority prefix (journald strips it and
 * files the line at that level) and carries no timestamp (the journal has
 * its own). Anywhere else a line starts with an ISO 8601 local time in ms.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int nk_log_verbose;

static int journal = -1; /* -1: not decided yet */

/*
 * systemd.exec(5): JOURNAL_STREAM is "DEV:INO" of the stream it connected
 * stdout/stderr to; stderr is the journal only if it still is that file
 * (a shell may have redirected it and kept the variable).
 */
bool nk_log__is_journal(void)
{
	unsigned long long dev, ino;
	const char *s = getenv("JOURNAL_STREAM");
	struct stat st;
	char tail;

	if (!s || sscanf(s, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st))
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void nk_log(enum nk_log_level lvl, const char *fmt, ...)
{
	static const char *const tag[] = { "error", "warning", "info",
					   "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048];
	int n, is_journal;
	va_list ap;

	if ((unsigned)lvl > NK_LOG_DEBUG)
		lvl = NK_LOG_ERR;
	/* The resolver threads log too: decided once, atomically. */
	is_journal = __atomic_load_n(&journal, __ATOMIC_RELAXED);
	if (is_journal < 0) {
		is_journal = nk_log__is_journal();
		__atomic_store_n(&journal, is_journal, __ATOMIC_RELAXED);
	}
	if (is_journal) {
		n = snprintf(line, sizeof(line), "<%d>%s: ", prio[lvl],
			     tag[lvl]);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32], zone[8];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		strftime(zone, sizeof(zone), "%z", &tm);
		n = snprintf(line, sizeof(line),
			     "%s.%03ld%s nkd[%d] %s: ", when,
			     ts.tv_nsec / 1000000, zone, (int)getpid(),
			     tag[lvl]);
	}
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line: lines of two threads never interleave. */
	fprintf(stderr, "%s\n", line);
}
