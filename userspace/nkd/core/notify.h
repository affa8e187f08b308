/* SPDX-License-Identifier: MIT */
/*
 * systemd readiness protocol (sd_notify(3), Type=notify): READY=1 once
 * every NSM is usable and the control socket listens, RELOADING=1 ...
 * READY=1 around a SIGHUP reload, STOPPING=1 on the way out, STATUS= lines
 * for `systemctl status`. Without NOTIFY_SOCKET (not under systemd) nothing
 * is sent.
 */
#ifndef NKD_NOTIFY_H
#define NKD_NOTIFY_H

void nk_notify__ready(const char *status);
void nk_notify__reloading(void);
void nk_notify__stopping(const char *status);
void nk_notify__status(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif /* NKD_NOTIFY_H */
