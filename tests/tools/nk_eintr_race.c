// SPDX-License-Identifier: MIT
/*
 * nk_eintr_race: hammers the window in which a signal handler runs while a
 * blocking recv waits, and counts the handlers that ran without the recv
 * returning EINTR ("lost EINTRs"). Run natively (the kernel: always 0)
 * and through nkd (tests/integration/eintr_race.sh).
 *
 * One try: the main thread blocks in recv() on a TCP socket nobody writes
 * to. A signaller waits until the main thread is inside recv (a flag set
 * just before the call, and the thread's state in /proc is S: natively
 * that can only be the recv's own sleep), waits a random 0-2 ms more,
 * and pthread_kill()s SIGUSR1 (a handler without SA_RESTART). It then
 * waits up to --grace ms for recv to return; if it has not, it sends a
 * byte so that it does. recv returning data after the handler ran is a
 * lost EINTR. Meanwhile a noise thread ping-pongs on another socket pair,
 * so that under the shim completions keep waking the waiting thread (each
 * wake-up is a moment at which the old code could run the handler outside
 * the futex call).
 *
 * The restart phase does the same with an SA_RESTART handler and then
 * sends the byte at once: recv must return it, never EINTR.
 *
 * The sigaction phase checks what sigaction() reports back (a shim that
 * wraps handlers must report the program's own), including SA_RESETHAND.
 *
 * Output: "lost N of T", "restart_eintr N of T", "sigaction_bad N" and
 * a final "ok"/"FAIL" line; exit status 0 only if every count is 0.
 * No timing is asserted: --grace only bounds how long a lost EINTR keeps
 * a try waiting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static atomic_int in_recv, recv_done, cur_try;
static atomic_int stop_noise;
static pid_t main_tid;
static pthread_t main_thr;
static int grace_ms = 500;

static volatile long long handled_at; /* ms, for the report */

static long long now_ms(void);

static void on_sig(int sig)
{
	(void)sig;
	handled_at = now_ms();
	handled = handled + 1;
}

static void on_sig3(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000,
			       .tv_nsec = (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int tcp_pair(int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int l, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(l, 4) || getsockname(l, (struct sockaddr *)&a, &len))
		return -1;
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	*s = accept(l, NULL, NULL);
	close(l);
	if (*s < 0)
		return -1;
	setsockopt(*c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/* Is the thread asleep (state S)? Natively, only in the recv. */
static int thread_sleeping(pid_t tid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

struct noise {
	int a, b;
};

static void *noise_thread(void *arg)
{
	struct noise *n = arg;
	char ch = 'n';

	/* Bounded by stop_noise, set when the tries are over. */
	while (!atomic_load(&stop_noise)) {
		if (send(n->a, &ch, 1, 0) != 1 || recv(n->b, &ch, 1, 0) != 1)
			break;
		if (send(n->b, &ch, 1, 0) != 1 || recv(n->a, &ch, 1, 0) != 1)
			break;
	}
	return NULL;
}

struct sigarg {
	int c; /* the writer end */
	int restart; /* restart phase: send at once */
	int tries;
};

static void *signaller(void *arg)
{
	struct sigarg *sa = arg;
	unsigned int seed = (unsigned int)getpid();

	for (int i = 0; i < sa->tries; i++) {
		long long t0 = now_ms();
		int before;

		/* Wait until recv sleeps (bounded: 10 s). */
		while (!(atomic_load(&cur_try) == i && atomic_load(&in_recv) &&
			 thread_sleeping(main_tid))) {
			if (now_ms() - t0 > 10000)
				return (void *)1;
			sleep_us(50);
		}
		sleep_us(rand_r(&seed) % 2000);
		before = handled;
		pthread_kill(main_thr, SIGUSR1);
		/* Wait for the handler to have run (bounded). */
		t0 = now_ms();
		while (handled == before && now_ms() - t0 < 10000)
			sleep_us(20);
		if (!sa->restart) {
			t0 = now_ms();
			while (atomic_load(&recv_done) < i + 1 &&
			       now_ms() - t0 < grace_ms)
				sleep_us(100);
		}
		if (atomic_load(&recv_done) < i + 1)
			if (send(sa->c, "x", 1, 0) != 1)
				return (void *)1;
	}
	return NULL;
}

/* Returns the number of tries that went wrong, -1 on a setup error. */
static int phase(int restart, int tries)
{
	struct sigaction act = { .sa_handler = on_sig };
	struct sigarg sa = { .restart = restart, .tries = tries };
	pthread_t t;
	int c, s, bad = 0;
	void *ret;

	if (tcp_pair(&c, &s))
		return -1;
	sa.c = c;
	act.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&act.sa_mask);
	if (sigaction(SIGUSR1, &act, NULL))
		return -1;
	atomic_store(&cur_try, -1);
	atomic_store(&recv_done, 0);
	atomic_store(&in_recv, 0);
	if (pthread_create(&t, NULL, signaller, &sa))
		return -1;
	for (int i = 0; i < tries; i++) {
		int before = handled, e;
		char ch;
		ssize_t r;

		atomic_store(&cur_try, i);
		atomic_store(&in_recv, 1);
		r = recv(s, &ch, 1, 0);
		e = errno;
		atomic_store(&recv_done, i + 1); /* this try's recv returned */
		if (r < 0 && e == EINTR) {
			/* The signaller sends no byte for this try. */
		} else if (r != 1) {
			fprintf(stderr, "try %d: recv: %s\n", i,
				r < 0 ? strerror(e) : "end of stream");
			bad++;
			atomic_store(&in_recv, 0);
			break;
		}
		/* The handler must have run before recv returns (bounded). */
		for (int w = 0; handled == before && w < 100000; w++)
			sleep_us(100);
		if (restart ? r != 1 : r != -1) {
			fprintf(stderr,
				"try %d: recv returned %zd%s %lld ms after the handler ran\n",
				i, r, r < 0 ? " (EINTR)" : " (data)",
				now_ms() - handled_at);
			bad++;
		}
		atomic_store(&in_recv, 0);
	}
	pthread_join(t, &ret);
	close(c);
	close(s);
	return ret ? -1 : bad;
}

/* What sigaction() reports back must be what the program installed. */
static int check_sigaction(void)
{
	struct sigaction a, o;
	int bad = 0;

	memset(&a, 0, sizeof(a));
	a.sa_handler = on_sig;
	a.sa_flags = SA_RESTART | SA_NODEFER;
	sigemptyset(&a.sa_mask);
	sigaddset(&a.sa_mask, SIGUSR2);
	sigaction(SIGUSR1, &a, NULL);
	sigaction(SIGUSR1, NULL, &o);
	if (o.sa_handler != on_sig || (o.sa_flags & SA_SIGINFO) ||
	    !(o.sa_flags & SA_RESTART) || !(o.sa_flags & SA_NODEFER) ||
	    !sigismember(&o.sa_mask, SIGUSR2)) {
		fprintf(stderr, "sigaction: plain handler reported as %p/%#x\n",
			(void *)o.sa_handler, (unsigned)o.sa_flags);
		bad++;
	}
	a.sa_sigaction = on_sig3;
	a.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &a, &o);
	if (o.sa_handler != on_sig) {
		fprintf(stderr, "sigaction: oldact %p, expected %p\n",
			(void *)o.sa_handler, (void *)on_sig);
		bad++;
	}
	sigaction(SIGUSR1, NULL, &o);
	if (o.sa_sigaction != on_sig3 || !(o.sa_flags & SA_SIGINFO)) {
		fprintf(stderr, "sigaction: siginfo handler reported wrong\n");
		bad++;
	}
	if ((void *)signal(SIGUSR1, on_sig) != (void *)on_sig3) {
		fprintf(stderr, "signal: old handler wrong\n");
		bad++;
	}
	if (signal(SIGUSR1, SIG_IGN) != on_sig) {
		fprintf(stderr, "signal: old handler wrong\n");
		bad++;
	}
	/* SA_RESETHAND: after one delivery it reads back as SIG_DFL. */
	a.sa_handler = on_sig;
	a.sa_flags = SA_RESETHAND;
	sigaction(SIGUSR1, &a, NULL);
	raise(SIGUSR1);
	sigaction(SIGUSR1, NULL, &o);
	if (o.sa_handler != SIG_DFL || (o.sa_flags & SA_SIGINFO)) {
		fprintf(stderr,
			"SA_RESETHAND: reported %p/%#x after delivery\n",
			(void *)o.sa_handler, (unsigned)o.sa_flags);
		bad++;
	}
	/* SIG_IGN is SIG_IGN. */
	signal(SIGUSR1, SIG_IGN);
	raise(SIGUSR1);
	sigaction(SIGUSR1, NULL, &o);
	if (o.sa_handler != SIG_IGN) {
		fprintf(stderr, "SIG_IGN reported as %p\n",
			(void *)o.sa_handler);
		bad++;
	}
	signal(SIGUSR1, SIG_DFL);
	return bad;
}

int main(int argc, char **argv)
{
	int tries = 200, rtries = 20, lost, reintr, sbad, c, s;
	struct noise nz;
	pthread_t nt;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tries") && i + 1 < argc)
			tries = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--restart-tries") && i + 1 < argc)
			rtries = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--grace") && i + 1 < argc)
			grace_ms = atoi(argv[++i]);
		else {
			fprintf(stderr,
				"usage: %s [--tries N] [--restart-tries N] [--grace MS]\n",
				argv[0]);
			return 2;
		}
	}
	main_tid = (pid_t)syscall(SYS_gettid);
	main_thr = pthread_self();
	sbad = check_sigaction();
	printf("sigaction_bad %d\n", sbad);
	if (tcp_pair(&c, &s)) {
		perror("setup");
		return 2;
	}
	nz.a = c;
	nz.b = s;
	if (pthread_create(&nt, NULL, noise_thread, &nz)) {
		perror("pthread_create");
		return 2;
	}
	lost = phase(0, tries);
	printf("lost %d of %d\n", lost, tries);
	reintr = phase(1, rtries);
	printf("restart_eintr %d of %d\n", reintr, rtries);
	atomic_store(&stop_noise, 1);
	pthread_join(nt, NULL);
	fflush(stdout);
	if (lost || reintr || sbad) {
		printf("FAIL\n");
		return 1;
	}
	printf("ok\n");
	return 0;
}
