// SPDX-License-Identifier: MIT
/*
 * fd -> socket object table.
 *
 * Readers (every read/write/close of the application) never lock: the
 * table is a flat array published through an atomic pointer, and socket
 * objects are type-stable (never given back to malloc, recycled through a
 * free list), so a reader that loses a race with close() may touch an
 * object that is being recycled but never freed memory. nk_fdtab__get()
 * takes a reference only while the count is non-zero and then re-checks
 * that the slot still names the object.
 *
 * Writers (socket creation, dup, close of a shim fd) take one mutex. The
 * table grows by copying into a larger array; the old array stays
 * allocated for readers still looking at it (growth doubles, so the waste
 * is bounded by the final size).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "shim.h"

_Atomic(struct nk_fdtab *) nk_fdtab_cur;
void (*nk_sock_last_close_hook)(struct nk_sock *s);

static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nk_sock *free_socks;
static atomic_uint nr_installed;

static struct nk_fdtab *tab_alloc(uint32_t size)
{
	struct nk_fdtab *t;

	t = calloc(1, sizeof(*t) + (size_t)size * sizeof(t->slot[0]));
	if (t)
		t->size = size;
	return t;
}

int nk_fdtab__init(void)
{
	struct nk_fdtab *t;
	struct rlimit rl;
	uint32_t size = 1024;

	if (atomic_load(&nk_fdtab_cur))
		return 0;
	/* Sized for the soft limit: fds the kernel hands out stay below it. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		size = rl.rlim_cur > (1u << 20) ? (1u << 20)
						: (uint32_t)rl.rlim_cur;
	if (size < 64)
		size = 64;
	t = tab_alloc(size);
	if (!t)
		return -ENOMEM;
	pthread_mutex_lock(&tab_lock);
	if (!atomic_load(&nk_fdtab_cur))
		atomic_store_explicit(&nk_fdtab_cur, t, memory_order_release);
	else
		free(t);
	pthread_mutex_unlock(&tab_lock);
	return 0;
}

/* Called with tab_lock held. */
static int tab_grow(uint32_t need)
{
	struct nk_fdtab *old = atomic_load(&nk_fdtab_cur), *t;
	uint32_t size = old->size;

	while (size <= need) {
		if (size > (1u << 30))
			return -EMFILE;
		size *= 2;
	}
	t = tab_alloc(size);
	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < old->size; i++)
		atomic_store_explicit(
			&t->slot[i],
			atomic_load_explicit(&old->slot[i],
					     memory_order_relaxed),
			memory_order_relaxed);
	/* old stays allocated: lock-free readers may still hold it. */
	t->retired = old;
	atomic_store_explicit(&nk_fdtab_cur, t, memory_order_release);
	return 0;
}

struct nk_sock *nk_sock__alloc(void)
{
	struct nk_sock *s;

	pthread_mutex_lock(&free_lock);
	s = free_socks;
	if (s)
		free_socks = s->next;
	pthread_mutex_unlock(&free_lock);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		pthread_mutex_init(&s->rx_lock, NULL);
	}
	/*
	 * refs is 0 here, so a stale reader cannot take a reference while
	 * the fields are reset; publishing refs = 1 last makes it live.
	 */
	s->handle = 0;
	s->domain = s->type = s->protocol = 0;
	atomic_store(&s->fdrefs, 0);
	atomic_store(&s->nonblock, 0);
	atomic_store(&s->listening, 0);
	atomic_store(&s->pending_err, 0);
	atomic_store(&s->inflight, 0);
	atomic_store(&s->charged, 0);
	atomic_store(&s->tx_ok, 0);
	atomic_store(&s->peer_remote, 0);
	atomic_store(&s->dns_mapped, 0);
	atomic_store(&s->window, 0);
	atomic_store(&s->send_seq, 0);
	atomic_store(&s->closing, 0);
	atomic_store(&s->close_sent, 0);
	atomic_store(&s->wr_shut, 0);
	atomic_store(&s->rcvtimeo_us, 0);
	atomic_store(&s->sndtimeo_us, 0);
	s->dev = s->ino = 0;
	s->next = NULL;
	atomic_store(&s->pf_state, NK_PF_NONE);
	s->pf_idx = -1;
	s->pf_res = 0;
	s->pf_off = 0;
	s->pf_end = 0;
	atomic_store(&s->rx_nobatch, 0);
	atomic_store(&s->rx_batching, 0);
	atomic_store(&s->rx_nopush, 0);
	s->rx_reads = 0;
	s->pf_full = s->pf_quiet = false;
	memset(&s->rp, 0, sizeof(s->rp));
	atomic_store_explicit(&s->refs, 1, memory_order_release);
	return s;
}

void nk_sock__get(struct nk_sock *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void nk_sock__put(struct nk_sock *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_lock(&free_lock);
	s->next = free_socks;
	free_socks = s;
	pthread_mutex_unlock(&free_lock);
}

void nk_sock__fdput(struct nk_sock *s)
{
	if (atomic_fetch_sub_explicit(&s->fdrefs, 1, memory_order_acq_rel) ==
		    1 &&
	    nk_sock_last_close_hook)
		nk_sock_last_close_hook(s);
	nk_sock__put(s);
}

uint64_t nk_sock__ino(struct nk_sock *s, int fd)
{
	struct stat st;

	if (!s->ino && fstat(fd, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	return s->ino;
}

/* Reference unless the count already dropped to zero (being recycled). */
static bool sock_tryget(struct nk_sock *s)
{
	unsigned int r = atomic_load_explicit(&s->refs, memory_order_relaxed);

	do {
		if (r == 0)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&s->refs, &r, r + 1,
							memory_order_acquire,
							memory_order_relaxed));
	return true;
}

struct nk_sock *nk_fdtab__get(int fd)
{
	for (;;) {
		struct nk_fdtab *t = atomic_load_explicit(&nk_fdtab_cur,
							  memory_order_acquire);
		struct nk_sock *s;

		if (!t || fd < 0 || (uint32_t)fd >= t->size)
			return NULL;
		s = atomic_load_explicit(&t->slot[fd], memory_order_acquire);
		if (!s)
			return NULL;
		if (!sock_tryget(s))
			continue;
		t = atomic_load_explicit(&nk_fdtab_cur, memory_order_acquire);
		if (atomic_load_explicit(&t->slot[fd], memory_order_acquire) ==
		    s)
			return s;
		nk_sock__put(s);
	}
}

int nk_fdtab__install(int fd, struct nk_sock *s, struct nk_sock **old)
{
	struct nk_fdtab *t;
	struct nk_sock *prev;
	int err;

	*old = NULL;
	if (fd < 0)
		return -EBADF;
	if (!atomic_load(&nk_fdtab_cur) && (err = nk_fdtab__init()))
		return err;
	pthread_mutex_lock(&tab_lock);
	t = atomic_load(&nk_fdtab_cur);
	if ((uint32_t)fd >= t->size) {
		err = tab_grow((uint32_t)fd);
		if (err) {
			pthread_mutex_unlock(&tab_lock);
			return err;
		}
		t = atomic_load(&nk_fdtab_cur);
	}
	nk_sock__get(s);
	atomic_fetch_add(&s->fdrefs, 1);
	prev = atomic_exchange_explicit(&t->slot[fd], s, memory_order_acq_rel);
	if (!prev)
		atomic_fetch_add(&nr_installed, 1);
	pthread_mutex_unlock(&tab_lock);
	*old = prev;
	return 0;
}

struct nk_sock *nk_fdtab__remove(int fd)
{
	struct nk_fdtab *t;
	struct nk_sock *prev = NULL;

	pthread_mutex_lock(&tab_lock);
	t = atomic_load(&nk_fdtab_cur);
	if (t && fd >= 0 && (uint32_t)fd < t->size) {
		prev = atomic_exchange_explicit(&t->slot[fd], NULL,
						memory_order_acq_rel);
		if (prev)
			atomic_fetch_sub(&nr_installed, 1);
	}
	pthread_mutex_unlock(&tab_lock);
	return prev;
}

uint32_t nk_fdtab__size(void)
{
	struct nk_fdtab *t = atomic_load(&nk_fdtab_cur);

	return t ? t->size : 0;
}

uint32_t nk_fdtab__count(void)
{
	return atomic_load(&nr_installed);
}

/* fork: the child must not inherit a table lock held by another thread. */
void nk_fdtab__fork_lock(void)
{
	pthread_mutex_lock(&tab_lock);
	pthread_mutex_lock(&free_lock);
}

void nk_fdtab__fork_unlock(bool child)
{
	if (child) {
		pthread_mutex_init(&tab_lock, NULL);
		pthread_mutex_init(&free_lock, NULL);
		return;
	}
	pthread_mutex_unlock(&free_lock);
	pthread_mutex_unlock(&tab_lock);
}
