// SPDX-License-Identifier: MIT
/*
 * The shim's fd table: dup/close reference counting, the last-close hook,
 * replacement of a stale slot, growth past the initial size, and
 * concurrent publish/lookup/remove (run it under the sanitizer build too).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sys/resource.h>

#include "../../guest/shim/shim.h"

static atomic_int last_closes;
static _Atomic(struct nk_sock *) last_closed;

static void on_last_close(struct nk_sock *s)
{
	atomic_fetch_add(&last_closes, 1);
	atomic_store(&last_closed, s);
}

static int setup(void **state)
{
	(void)state;
	nk_sock_last_close_hook = on_last_close;
	atomic_store(&last_closes, 0);
	return nk_fdtab__init();
}

static void test_install_get_remove(void **state)
{
	struct nk_sock *s = nk_sock__alloc(), *old, *g;

	(void)state;
	assert_non_null(s);
	s->handle = 7;
	assert_false(nk_fdtab__maybe(10));
	assert_null(nk_fdtab__get(10));
	assert_int_equal(nk_fdtab__install(10, s, &old), 0);
	assert_null(old);
	nk_sock__put(s); /* the table holds it now */
	assert_true(nk_fdtab__maybe(10));
	g = nk_fdtab__get(10);
	assert_ptr_equal(g, s);
	assert_int_equal(g->handle, 7);
	assert_int_equal(atomic_load(&g->refs), 2);
	nk_sock__put(g);
	assert_null(nk_fdtab__get(-1));
	assert_null(nk_fdtab__get(11));

	g = nk_fdtab__remove(10);
	assert_ptr_equal(g, s);
	assert_false(nk_fdtab__maybe(10));
	assert_int_equal(atomic_load(&last_closes), 0);
	nk_sock__fdput(g);
	assert_int_equal(atomic_load(&last_closes), 1);
	assert_null(nk_fdtab__remove(10));
}

/* dup: two fds, one object; only the last close sends CLOSE. */
static void test_dup_refcount(void **state)
{
	struct nk_sock *s = nk_sock__alloc(), *old;

	(void)state;
	assert_int_equal(nk_fdtab__install(20, s, &old), 0);
	assert_int_equal(nk_fdtab__install(21, s, &old), 0);
	assert_int_equal(nk_fdtab__install(22, s, &old), 0);
	nk_sock__put(s);
	assert_int_equal(atomic_load(&s->fdrefs), 3);
	assert_int_equal(atomic_load(&s->refs), 3);
	assert_int_equal(nk_fdtab__count(), 3);

	nk_sock__fdput(nk_fdtab__remove(21));
	nk_sock__fdput(nk_fdtab__remove(20));
	assert_int_equal(atomic_load(&last_closes), 0);
	assert_ptr_equal(nk_fdtab__get(22), s);
	nk_sock__put(s);
	nk_sock__fdput(nk_fdtab__remove(22));
	assert_int_equal(atomic_load(&last_closes), 1);
	assert_ptr_equal(atomic_load(&last_closed), s);
	assert_int_equal(nk_fdtab__count(), 0);
}

/* An fd the app closed behind our back is reused: the old object goes. */
static void test_replace_stale(void **state)
{
	struct nk_sock *a = nk_sock__alloc(), *b = nk_sock__alloc(), *old;

	(void)state;
	assert_int_equal(nk_fdtab__install(30, a, &old), 0);
	assert_null(old);
	nk_sock__put(a);
	assert_int_equal(nk_fdtab__install(30, b, &old), 0);
	assert_ptr_equal(old, a);
	nk_sock__put(b);
	nk_sock__fdput(old);
	assert_int_equal(atomic_load(&last_closes), 1);
	assert_ptr_equal(nk_fdtab__get(30), b);
	nk_sock__put(b);
	assert_int_equal(nk_fdtab__count(), 1);
	nk_sock__fdput(nk_fdtab__remove(30));
	assert_int_equal(atomic_load(&last_closes), 2);
}

/* Recycled objects come back clean. */
static void test_recycle_resets(void **state)
{
	struct nk_sock *s = nk_sock__alloc(), *t;

	(void)state;
	s->handle = 99;
	atomic_store(&s->inflight, 123);
	atomic_store(&s->nonblock, 1);
	nk_sock__put(s);
	t = nk_sock__alloc();
	assert_int_equal(t->handle, 0);
	assert_int_equal(atomic_load(&t->inflight), 0);
	assert_int_equal(atomic_load(&t->nonblock), 0);
	assert_int_equal(atomic_load(&t->refs), 1);
	nk_sock__put(t);
}

static void test_growth(void **state)
{
	uint32_t size = nk_fdtab__size();
	struct nk_sock *s = nk_sock__alloc(), *low = nk_sock__alloc(), *old;

	(void)state;
	assert_true(size >= 64);
	assert_int_equal(nk_fdtab__install(5, low, &old), 0);
	nk_sock__put(low);
	assert_int_equal(nk_fdtab__install((int)size + 5, s, &old), 0);
	nk_sock__put(s);
	assert_true(nk_fdtab__size() > size + 5);
	/* Entries from before the growth survive it. */
	assert_ptr_equal(nk_fdtab__get(5), low);
	nk_sock__put(low);
	assert_ptr_equal(nk_fdtab__get((int)size + 5), s);
	nk_sock__put(s);
	nk_sock__fdput(nk_fdtab__remove((int)size + 5));
	nk_sock__fdput(nk_fdtab__remove(5));
	assert_int_equal(nk_fdtab__count(), 0);
}

#define NTHREADS 4
#define ROUNDS 20000
#define FDS 64

struct worker {
	int id;
	long hits;
};

/*
 * Writers publish and remove objects on a shared range of fds while
 * readers look them up; a reader must only ever see a live object whose
 * handle matches its fd, and the counts must balance at the end.
 */
static void *writer(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ROUNDS; i++) {
		int fd = 100 + (i * 7 + w->id) % FDS;
		struct nk_sock *s, *old;

		if (i % 3 == 2) {
			s = nk_fdtab__remove(fd);
			if (s)
				nk_sock__fdput(s);
			continue;
		}
		s = nk_sock__alloc();
		s->handle = (uint32_t)fd;
		if (nk_fdtab__install(fd, s, &old) == 0 && old)
			nk_sock__fdput(old);
		nk_sock__put(s);
	}
	return NULL;
}

static void *reader(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ROUNDS * 2; i++) {
		int fd = 100 + (i + w->id) % FDS;
		struct nk_sock *s;

		if (!nk_fdtab__maybe(fd))
			continue;
		s = nk_fdtab__get(fd);
		if (!s)
			continue;
		/* A live object: refs > 0 and it still says which fd. */
		if (atomic_load(&s->refs) == 0 || s->handle != (uint32_t)fd)
			w->hits = -1000000;
		else
			w->hits++;
		nk_sock__put(s);
	}
	return NULL;
}

static void test_concurrent_publish(void **state)
{
	pthread_t th[2 * NTHREADS];
	struct worker w[2 * NTHREADS];
	int before = atomic_load(&last_closes), remaining = 0;

	(void)state;
	for (int i = 0; i < 2 * NTHREADS; i++) {
		w[i].id = i;
		w[i].hits = 0;
		assert_int_equal(pthread_create(&th[i], NULL,
						i < NTHREADS ? writer : reader,
						&w[i]),
				 0);
	}
	for (int i = 0; i < 2 * NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = NTHREADS; i < 2 * NTHREADS; i++)
		assert_true(w[i].hits >= 0);
	for (int fd = 100; fd < 100 + FDS; fd++) {
		struct nk_sock *s = nk_fdtab__remove(fd);

		if (s) {
			remaining++;
			assert_int_equal(atomic_load(&s->refs), 1);
			nk_sock__fdput(s);
		}
	}
	assert_int_equal(nk_fdtab__count(), 0);
	/* Every object ever installed was closed exactly once. */
	assert_int_equal(atomic_load(&last_closes) - before,
			 NTHREADS * (ROUNDS - ROUNDS / 3));
	(void)remaining;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_install_get_remove, setup),
		cmocka_unit_test_setup(test_dup_refcount, setup),
		cmocka_unit_test_setup(test_replace_stale, setup),
		cmocka_unit_test_setup(test_recycle_resets, setup),
		cmocka_unit_test_setup(test_growth, setup),
		cmocka_unit_test_setup(test_concurrent_publish, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
