/* SPDX-License-Identifier: MIT */
/*
 * nkd logging: one line per event on stderr, debug lines only with -v.
 * With "<N>" priority prefixes when stderr is the journal (log.c).
 */
#ifndef NKD_LOG_H
#define NKD_LOG_H

#include <stdbool.h>

enum nk_log_level { NK_LOG_ERR, NK_LOG_WARN, NK_LOG_INFO, NK_LOG_DEBUG };

extern int nk_log_verbose;

/* stderr is systemd's journal stream (JOURNAL_STREAM names it). */
bool nk_log__is_journal(void);

void nk_log(enum nk_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define nk_err(...) nk_log(NK_LOG_ERR, __VA_ARGS__)
#define nk_warn(...) nk_log(NK_LOG_WARN, __VA_ARGS__)
#define nk_info(...) nk_log(NK_LOG_INFO, __VA_ARGS__)
#define nk_dbg(...)                                        \
	do {                                               \
		if (nk_log_verbose)                        \
			nk_log(NK_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif /* NKD_LOG_H */
