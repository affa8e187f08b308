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
 *
 * The guest can write into its app end (it lands on the nkd end) and can
 * grow the app end's buffers, so no loop here runs to EAGAIN unbounded:
 * each call moves at most PH_CALL_BUDGET bytes, and what is left is done
 * by nk_ph__run_pending() on the next loop passes, PH_PASS_BUDGET bytes
 * per pass over all placeholders.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netkernel/vmchan.h"

#include "engine.h"
#include "vm.h"

/* Small send buffer on the app end so filling it costs little. */
#define PH_SNDBUF 4096
/* Bytes one call may move; an honest guest's placeholder needs < 16 KiB. */
#define PH_CALL_BUDGET (32u * 1024u)
/* Bytes nk_ph__run_pending() moves per loop pass, all placeholders. */
#define PH_PASS_BUDGET (256u * 1024u)
#define PH_CHUNK 4096u

enum {
	PH_TODO_FILL = 1, /* app end not yet filled to EAGAIN */
	PH_TODO_DRAIN_NKD = 2, /* nkd end not yet drained */
	PH_TODO_DRAIN_APP = 4, /* app end not yet drained */
};

/* Placeholders with unfinished work; nkd's loop is single-threaded. */
static struct nk_list pending = { &pending, &pending };

static void todo(struct nk_ph *ph, unsigned what, bool on)
{
	if (on)
		ph->todo |= (uint8_t)what;
	else
		ph->todo &= (uint8_t)~what;
	if (ph->todo && nk_list__empty(&ph->plink))
		nk_list__add_tail(&pending, &ph->plink);
	else if (!ph->todo)
		nk_list__del(&ph->plink);
}

void nk_ph__init(struct nk_ph *ph)
{
	nk_list__init(&ph->plink);
	ph->todo = 0;
	ph->vm_ref = ph->vm_id = 0;
	ph->app = -1;
	ph->nkd = -1;
	ph->readable = false;
	ph->stale = false;
	ph->blocked = false;
	ph->rdhup = false;
	ph->sndbuf = false;
}

void nk_ph__close(struct nk_ph *ph)
{
	nk_list__del(&ph->plink);
	if (ph->vm_ref && ph->app >= 0)
		nk_vm__ph(ph, NK_VMPH_CLOSE, 0);
	if (ph->app >= 0)
		close(ph->app);
	if (ph->nkd >= 0)
		close(ph->nkd);
	nk_ph__init(ph);
}

int nk_ph__attach(struct nk_ph *ph, int app_fd, int nkd_fd)
{
	/*
	 * No checks: since ABI 2 every pair is nkd's own socketpair from the
	 * placeholder pool (ph_pool.c), never descriptors a guest sent. The
	 * small SO_SNDBUF waits for the first fill: most placeholders (a
	 * short connection's) are never made unwritable.
	 */
	ph->app = app_fd;
	ph->nkd = nkd_fd;
	ph->readable = false;
	ph->stale = false;
	ph->blocked = false;
	ph->rdhup = false;
	ph->sndbuf = false;
	return 0;
}

/* true: emptied; false: budget spent with bytes maybe left. */
static bool drain(int fd, size_t *budget)
{
	char buf[PH_CHUNK];
	ssize_t n;

	/* A short read emptied the queue: no second call to see EAGAIN. */
	do {
		if (*budget < sizeof(buf))
			return false;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			*budget -= (size_t)n;
	} while (n == (ssize_t)sizeof(buf));
	return true;
}

/* true: the app end's send direction is full (EAGAIN). */
static bool fill(int fd, size_t *budget)
{
	static const char zeros[PH_CHUNK];
	ssize_t n;

	for (;;) {
		if (*budget < sizeof(zeros))
			return false;
		n = send(fd, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			return true;
		*budget -= (size_t)n;
	}
}

void nk_ph__set_readable(struct nk_ph *ph, bool want, bool arrival)
{
	/* Hung up: readable for good, and a drain could eat its sk_err. */
	if (ph->app < 0 || ph->nkd < 0)
		return;
	if (want) {
		todo(ph, PH_TODO_DRAIN_APP, false);
		/* One byte per arrival: edge-triggered waiters see a new edge.
		 * A full buffer (EAGAIN) still leaves the end readable. */
		if (arrival || !ph->readable) {
			send(ph->nkd, "r", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (ph->vm_ref)
				nk_vm__ph(ph, NK_VMPH_READ, 1);
		}
		ph->readable = true;
	} else if (ph->readable || ph->stale) {
		size_t budget = PH_CALL_BUDGET;

		todo(ph, PH_TODO_DRAIN_APP, !drain(ph->app, &budget));
		ph->readable = false;
		ph->stale = false;
		if (ph->vm_ref)
			nk_vm__ph(ph, NK_VMPH_READ, 0);
	}
}

void nk_ph__guest_drained(struct nk_ph *ph)
{
	/* A VM's app end is a mirror nkd keeps: its guest never drains. */
	if (ph->app < 0 || ph->nkd < 0 || ph->vm_ref)
		return;
	/* Bytes queued since are drained by the next set_readable(false). */
	ph->readable = false;
	ph->stale = true;
}

void nk_ph__set_writable(struct nk_ph *ph, bool want)
{
	size_t budget = PH_CALL_BUDGET;

	if (ph->app < 0 || ph->nkd < 0 || want == !ph->blocked)
		return;
	if (ph->vm_ref)
		nk_vm__ph(ph, NK_VMPH_WRITE, want);
	if (!want) {
		if (!ph->sndbuf) {
			int sndbuf = PH_SNDBUF;

			setsockopt(ph->app, SOL_SOCKET, SO_SNDBUF, &sndbuf,
				   sizeof(sndbuf));
			ph->sndbuf = true;
		}
		todo(ph, PH_TODO_DRAIN_NKD, false);
		todo(ph, PH_TODO_FILL, !fill(ph->app, &budget));
		ph->blocked = true;
	} else {
		todo(ph, PH_TODO_FILL, false);
		todo(ph, PH_TODO_DRAIN_NKD, !drain(ph->nkd, &budget));
		ph->blocked = false;
	}
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
	if (ph->vm_ref)
		nk_vm__ph(ph, NK_VMPH_RDHUP, 0);
}

void nk_ph__hangup(struct nk_ph *ph, bool reset)
{
	size_t budget = PH_CALL_BUDGET;

	if (ph->app < 0 || ph->nkd < 0)
		return;
	/* Whatever was pending is moot once the nkd end is gone. */
	todo(ph, PH_TODO_FILL | PH_TODO_DRAIN_NKD | PH_TODO_DRAIN_APP, false);
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
		drain(ph->nkd, &budget); /* a flooding guest gets its reset */
	close(ph->nkd);
	ph->nkd = -1;
	ph->blocked = false;
	if (ph->vm_ref)
		nk_vm__ph(ph, NK_VMPH_HANGUP, reset);
}

bool nk_ph__pending(void)
{
	return !nk_list__empty(&pending);
}

unsigned nk_ph__run_pending(void)
{
	size_t pass = PH_PASS_BUDGET;
	unsigned n = 0;

	/* Each placeholder at most once per pass, round robin. */
	for (struct nk_list *last = pending.prev;
	     !nk_list__empty(&pending) && pass >= PH_CHUNK;) {
		struct nk_ph *ph =
			nk_container_of(pending.next, struct nk_ph, plink);
		bool at_last = &ph->plink == last;
		size_t budget = pass < PH_CALL_BUDGET ? pass : PH_CALL_BUDGET;
		size_t before = budget;

		if (ph->todo & PH_TODO_FILL)
			todo(ph, PH_TODO_FILL, !fill(ph->app, &budget));
		if (ph->todo & PH_TODO_DRAIN_NKD)
			todo(ph, PH_TODO_DRAIN_NKD, !drain(ph->nkd, &budget));
		if (ph->todo & PH_TODO_DRAIN_APP)
			todo(ph, PH_TODO_DRAIN_APP, !drain(ph->app, &budget));
		if (ph->todo) {
			/* Still unfinished: to the back of the queue. */
			nk_list__del(&ph->plink);
			nk_list__add_tail(&pending, &ph->plink);
		}
		pass -= before - budget;
		n++;
		if (at_last)
			break;
	}
	return n;
}
