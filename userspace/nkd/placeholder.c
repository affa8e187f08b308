// SPDX-License-Identifier: MIT
/*
 * Readiness placeholders (docs/abi.md §6). The guest's socket fd is the app
 * end of an AF_UNIX stream socketpair; nkd holds a duplicate of the app end
 * and the other (nkd) end, and makes the app end's poll state mirror the
 * socket:
 *   readable   <- at least one byte queued nkd end -> app end;
 *   unwritable <- app end's send buffer filled (through nkd's duplicate);
 *   POLLRDHUP  <- nkd end shut for writing (the peer's FIN);
 *   POLLHUP    <- nkd end closed, with POLLERR (ECONNRESET in the app
 *                 end's sk_err) if it had unread data: a reset.
 * Every call here is non-blocking (MSG_DONTWAIT): never O_NONBLOCK on the
 * duplicate, which shares its file status flags with the guest's fd.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

/* Small send buffer on the app end so filling it costs little. */
#define PH_SNDBUF 4096

void nk_ph__init(struct nk_ph *ph)
{
	ph->app = -1;
	ph->nkd = -1;
	ph->readable = false;
	ph->blocked = false;
	ph->rdhup = false;
}

void nk_ph__close(struct nk_ph *ph)
{
	if (ph->app >= 0)
		close(ph->app);
	if (ph->nkd >= 0)
		close(ph->nkd);
	nk_ph__init(ph);
}

int nk_ph__attach(struct nk_ph *ph, int app_fd, int nkd_fd)
{
	int type = 0, sndbuf = PH_SNDBUF;
	socklen_t len = sizeof(type);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	/* Both must be connected AF_UNIX stream sockets. */
	if (getsockopt(app_fd, SOL_SOCKET, SO_TYPE, &type, &len) ||
	    type != SOCK_STREAM ||
	    getsockname(app_fd, (struct sockaddr *)&ss, &sslen) ||
	    ss.ss_family != AF_UNIX ||
	    getsockopt(nkd_fd, SOL_SOCKET, SO_TYPE, &type, &len) ||
	    type != SOCK_STREAM) {
		close(app_fd);
		close(nkd_fd);
		return -EINVAL;
	}
	setsockopt(app_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	ph->app = app_fd;
	ph->nkd = nkd_fd;
	ph->readable = false;
	ph->blocked = false;
	ph->rdhup = false;
	return 0;
}

static void drain(int fd)
{
	char buf[4096];
	ssize_t n;

	/* A short read emptied the queue: no second call to see EAGAIN. */
	do
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (n == (ssize_t)sizeof(buf));
}

void nk_ph__set_readable(struct nk_ph *ph, bool want, bool arrival)
{
	/* Hung up: readable for good, and a drain could eat its sk_err. */
	if (ph->app < 0 || ph->nkd < 0)
		return;
	if (want) {
		/* One byte per arrival: edge-triggered waiters see a new edge.
		 * A full buffer (EAGAIN) still leaves the end readable. */
		if (arrival || !ph->readable)
			send(ph->nkd, "r", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		ph->readable = true;
	} else if (ph->readable) {
		drain(ph->app);
		ph->readable = false;
	}
}

void nk_ph__set_writable(struct nk_ph *ph, bool want)
{
	static const char zeros[4096];

	if (ph->app < 0 || ph->nkd < 0 || want == !ph->blocked)
		return;
	if (!want) {
		while (send(ph->app, zeros, sizeof(zeros),
			    MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
			;
		ph->blocked = true;
	} else {
		drain(ph->nkd);
		ph->blocked = false;
	}
}

void nk_ph__kick_writable(struct nk_ph *ph)
{
	/*
	 * A byte through the app end's send direction, read back at once:
	 * freeing it runs the app end's write-space wakeup, a new EPOLLOUT
	 * edge for edge-triggered waiters that saw EAGAIN from the shim
	 * while nkd's own count never reached send_window.
	 */
	if (ph->app < 0 || ph->nkd < 0 || ph->blocked)
		return;
	if (send(ph->app, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
		drain(ph->nkd);
}

void nk_ph__rdhup(struct nk_ph *ph)
{
	/*
	 * The app end's receive side shuts: it polls POLLIN|POLLRDHUP like a
	 * socket whose peer sent FIN, and POLLHUP as well once the guest
	 * shuts its side (the shim shuts the app end for writing then).
	 */
	if (ph->app < 0 || ph->nkd < 0 || ph->rdhup)
		return;
	shutdown(ph->nkd, SHUT_WR);
	ph->rdhup = true;
}

void nk_ph__hangup(struct nk_ph *ph, bool reset)
{
	if (ph->app < 0 || ph->nkd < 0)
		return;
	/*
	 * Closing the nkd end shuts the app end both ways (POLLHUP, and
	 * POLLIN|POLLRDHUP). AF_UNIX stream sets the survivor's sk_err to
	 * ECONNRESET (POLLERR) when the closed end still had unread data:
	 * a byte through the app end makes sure of that on a reset, and
	 * draining makes sure of the opposite on an orderly hang-up. A
	 * shim peek that finds no byte queued eats that sk_err and asks
	 * nkd, whose socket still has the error.
	 */
	if (reset)
		send(ph->app, "e", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	else
		drain(ph->nkd);
	close(ph->nkd);
	ph->nkd = -1;
	ph->blocked = false;
}
