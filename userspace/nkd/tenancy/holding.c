// SPDX-License-Identifier: MIT
/*
 * Holding, not naming (docs/abi.md §5, §7): handle generations that
 * cannot be guessed, and hand-over tokens that only the process they were
 * made for can claim. The per-operation "does this conn hold the socket"
 * check itself is in core_engine.c (lookup_cb), next to the holder list.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "engine.h"
#include "log.h"

#define RAND_POOL 128u

static uint16_t pool[RAND_POOL];
static unsigned pool_left;
static uint64_t fallback_state;

/* getrandom() never blocks once the pool is initialised (after boot). */
static uint16_t rand16(void)
{
	if (!pool_left) {
		ssize_t n = getrandom(pool, sizeof(pool), GRND_NONBLOCK);

		if (n != (ssize_t)sizeof(pool)) {
			/* Early boot: splitmix64 from the clock, still not +1. */
			if (!fallback_state) {
				struct timespec ts;

				clock_gettime(CLOCK_MONOTONIC, &ts);
				fallback_state = (uint64_t)ts.tv_nsec ^
						 ((uint64_t)ts.tv_sec << 32);
			}
			for (unsigned i = 0; i < RAND_POOL; i++) {
				uint64_t z = (fallback_state +=
					      0x9e3779b97f4a7c15ull);

				z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
				z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
				pool[i] = (uint16_t)(z ^ (z >> 31));
			}
		}
		pool_left = RAND_POOL;
	}
	return pool[--pool_left];
}

uint16_t nk_rand__handle_gen(uint16_t old)
{
	for (;;) {
		/*
		 * 11 random bits: the top bit of the 32-bit handle stays 0,
		 * since SOCKET and ACCEPT return the handle in a CQE's res,
		 * where a negative value is an error.
		 */
		uint16_t g = rand16() & (NK_HANDLE_GEN_MASK >> 1);

		/* 0 is never valid; the old value would revive a stale handle. */
		if (g && g != old)
			return g;
	}
}

int nk_proc__ppid(pid_t pid)
{
	char path[64], line[256];
	int ppid = -ESRCH;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "PPid: %d", &ppid) == 1)
			break;
	}
	fclose(f);
	return ppid;
}

/*
 * EXEC: the new image keeps the pid that asked. FORK: the committed child
 * (when nkd could check it is a child: same pid namespace), else any
 * process whose parent is the pid that asked. All pids are nkd's view
 * (SO_PEERCRED at accept, /proc of nkd's pid namespace).
 */
bool nk_handover__claim_ok(const struct nk_handover *ho, pid_t pid)
{
	/* A VM's pids mean nothing here: nk-vmagent checks them inside. */
	if (ho->guest->conf.vm_channel[0])
		return true;
	if (pid <= 0 || ho->owner_pid <= 0)
		return false;
	if (ho->is_exec)
		return pid == ho->owner_pid;
	if (ho->child_pid > 0)
		return pid == ho->child_pid;
	return nk_proc__ppid(pid) == ho->owner_pid;
}
