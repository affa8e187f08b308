// SPDX-License-Identifier: MIT
/*
 * syscall(): the two socket calls libuv makes through it.
 *
 * libuv (1.44, Debian 12's) sends and receives UDP with
 * syscall(__NR_sendmmsg, ...) and syscall(__NR_recvmmsg, ...) rather than
 * libc's wrappers, after probing them on a fresh socket; on a guest socket
 * the datagrams then went into the placeholder, and bind9's dig, host and
 * nslookup (on libuv) timed out even with @server. syscall() is an
 * ordinary libc function, so it can be interposed like the others: these
 * two numbers go to the shim's sendmmsg/recvmmsg (which hand non-guest fds
 * to libc's, the same system call); every other number goes to libc's
 * syscall() unchanged, with all six argument registers, as glibc's own
 * syscall() takes them. A program that issues the instruction itself
 * (static binaries, Go) is still not seen (docs/shim.md).
 */
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

#include "shim.h"

#define NK_EXPORT __attribute__((visibility("default")))

NK_EXPORT long syscall(long nr, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	switch (nr) {
#ifdef SYS_sendmmsg
	case SYS_sendmmsg:
		return sendmmsg((int)a[0], (struct mmsghdr *)a[1],
				(unsigned int)a[2], (int)a[3]);
#endif
#ifdef SYS_recvmmsg
	case SYS_recvmmsg:
		return recvmmsg((int)a[0], (struct mmsghdr *)a[1],
				(unsigned int)a[2], (int)a[3],
				(struct timespec *)a[4]);
#endif
	default:
		return REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	}
}
