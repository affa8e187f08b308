// SPDX-License-Identifier: MIT
/*
 * Process life: initialisation, exit, fork and exec (docs/abi.md
 * section 7).
 *
 * fork: the wrapper asks nkd for a hand-over token (FORK_PREPARE) when the
 * process has sockets, forks, and COMMITs the token with the child's pid
 * (or ABORTs it). The child re-attaches lazily, on its first shim call,
 * with HELLO + token; its fd table is the parent's since fds are
 * inherited. Forks we do not see (daemon() runs glibc's internal fork,
 * which still runs atfork handlers) get their token from the prepare
 * handler and re-attach at once in the child, because nobody commits it.
 *
 * exec: EXEC gives a token, which goes to the new image in the environment
 * together with NK_* and LD_PRELOAD (so programs that scrub their
 * environment stay guests). The new image's constructor attaches with it
 * and finds its inherited sockets by the placeholder inodes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "signals.h"

#define NK_EXPORT __attribute__((visibility("default")))
#define NK_EXIT_DRAIN_NS (10 * 1000000000LL)

extern char **environ;

/* Hand-over state of a fork in progress; fork runs in one thread. */
static __thread struct {
	bool wrapper; /* fork() came through our wrapper */
	bool have;
	uint64_t token;
} ft;

static void fork_token(void)
{
	uint64_t tok;

	ft.have = false;
	if (!nk_fdtab__count())
		return; /* nothing to hand over: the child starts fresh */
	if (nk_conn__ensure())
		return;
	/* Read-ahead stays in the socket, for whichever reads on. */
	nk_giveback__all();
	if (nk_ctl__token_req(NK_CTL_FORK_PREPARE, &tok) == 0) {
		ft.have = true;
		ft.token = tok;
	}
}

static void atfork_prepare(void)
{
	if (!ft.wrapper)
		fork_token();
	nk_rst__on_fork();
	nk_conn__fork_prepare();
}

static void atfork_parent(void)
{
	nk_conn__fork_parent();
}

static void atfork_child(void)
{
	bool eager = !ft.wrapper;

	ft.wrapper = false;
	nk_sig__fork_child();
	nk_conn__fork_child(ft.have, ft.token, eager);
}

static pid_t fork_common(pid_t (*real)(void), bool run_handlers)
{
	int e;
	pid_t pid;

	ft.wrapper = true;
	fork_token();
	if (!run_handlers)
		atfork_prepare();
	pid = real();
	if (pid == 0) {
		if (!run_handlers)
			atfork_child();
		return 0;
	}
	e = errno;
	if (!run_handlers)
		atfork_parent();
	if (ft.have)
		nk_ctl__token_msg(pid > 0 ? NK_CTL_FORK_COMMIT
					  : NK_CTL_TOKEN_ABORT,
				  ft.token, pid > 0 ? pid : 0);
	ft.wrapper = false;
	ft.have = false;
	errno = e;
	return pid;
}

NK_EXPORT pid_t fork(void)
{
	return fork_common(REAL(fork), true);
}

NK_EXPORT pid_t __fork(void)
{
	return fork_common(REAL(fork), true);
}

/* _Fork runs no atfork handlers; we still need ours. */
NK_EXPORT pid_t _Fork(void)
{
	return fork_common(REAL(_Fork), false);
}

/*
 * vfork's child borrows the parent's memory and stack until exec, and our
 * exec wrapper talks to nkd: a real fork is the only safe choice.
 */
NK_EXPORT pid_t vfork(void)
{
	return fork_common(REAL(fork), true);
}

/* ------------------------------------------------------------------------ */
/* exec */

static bool has_var(char *const envp[], const char *name, size_t len)
{
	for (size_t i = 0; envp && envp[i]; i++)
		if (!strncmp(envp[i], name, len) && envp[i][len] == '=')
			return true;
	return false;
}

/* A new image's environment; owned[] are the strings we allocated. */
struct exec_env {
	char **env;
	char *owned[6];
	int nowned;
};

static void env_add(struct exec_env *e, size_t *k, char *s)
{
	e->env[(*k)++] = s;
	e->owned[e->nowned++] = s;
}

static void env_build(struct exec_env *e, char *const envp[], uint64_t token,
		      bool have_token)
{
	static const char *const keep[] = { "NK_GUEST", "NK_SOCKET",
					    "NK_FALLBACK" };
	const char *vals[] = { nk_cfg.guest, nk_cfg.socket_path,
			       nk_cfg.fallback == NK_FB_PASSTHROUGH
				       ? "passthrough"
				       : "fail" };
	bool preload_seen = false;
	size_t n = 0, k = 0;
	char *s;

	e->nowned = 0;
	while (envp && envp[n])
		n++;
	e->env = calloc(n + 7, sizeof(char *));
	if (!e->env)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(envp[i], "NK_INHERIT_TOKEN=", 17))
			continue;
		if (!strncmp(envp[i], "LD_PRELOAD=", 11)) {
			preload_seen = true;
			if (nk_cfg.shim_path[0] &&
			    !strstr(envp[i] + 11, nk_cfg.shim_path) &&
			    asprintf(&s, "LD_PRELOAD=%s:%s", nk_cfg.shim_path,
				     envp[i] + 11) >= 0) {
				env_add(e, &k, s);
				continue;
			}
		}
		e->env[k++] = envp[i];
	}
	if (!preload_seen && nk_cfg.shim_path[0] &&
	    asprintf(&s, "LD_PRELOAD=%s", nk_cfg.shim_path) >= 0)
		env_add(e, &k, s);
	for (size_t i = 0; i < 3; i++)
		if (!has_var(envp, keep[i], strlen(keep[i])) &&
		    asprintf(&s, "%s=%s", keep[i], vals[i]) >= 0)
			env_add(e, &k, s);
	if (have_token && asprintf(&s, "NK_INHERIT_TOKEN=%" PRIu64, token) >= 0)
		env_add(e, &k, s);
}

static void env_free(struct exec_env *e)
{
	for (int i = 0; i < e->nowned; i++)
		free(e->owned[i]);
	free(e->env);
	e->env = NULL;
	e->nowned = 0;
}

struct exec_ctx {
	bool have;
	uint64_t token;
	struct exec_env e;
};

/* Kept datagrams not given back die with this image: say so. */
static void exec_note_kept(void)
{
	for (uint32_t fd = 0; nk_cfg.debug && fd < nk_fdtab__size(); fd++) {
		struct nk_sock *s = nk_fdtab__get((int)fd);
		uint32_t n;

		if (!s)
			continue;
		n = nk_rxb__kept(s);
		if (n)
			nk_dbg("exec drops %u datagram(s) kept on fd %u", n,
			       fd);
		nk_sock__put(s);
	}
}

static void exec_prepare(struct exec_ctx *x, char *const envp[])
{
	x->have = false;
	if (nk_fdtab__count() && nk_conn__ensure() == 0) {
		/* Unread data is the socket's: the new image reads it. */
		nk_giveback__all();
		if (nk_ctl__token_req(NK_CTL_EXEC, &x->token) == 0)
			x->have = true;
	}
	exec_note_kept();
	env_build(&x->e, envp, x->token, x->have);
}

static int exec_failed(struct exec_ctx *x, int r)
{
	int e = errno;

	/* Still this image: keep the sockets, give the token back. */
	if (x->have)
		nk_ctl__token_msg(NK_CTL_TOKEN_ABORT, x->token, 0);
	env_free(&x->e);
	errno = e;
	return r;
}

NK_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	struct exec_ctx x;
	int r;

	exec_prepare(&x, envp);
	r = REAL(execve)(path, argv, x.e.env ? x.e.env : envp);
	return exec_failed(&x, r);
}

NK_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	struct exec_ctx x;
	int r;

	exec_prepare(&x, envp);
	r = REAL(execvpe)(file, argv, x.e.env ? x.e.env : envp);
	return exec_failed(&x, r);
}

NK_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	struct exec_ctx x;
	int r;

	exec_prepare(&x, envp);
	r = REAL(fexecve)(fd, argv, x.e.env ? x.e.env : envp);
	return exec_failed(&x, r);
}

NK_EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

NK_EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

/* argv from execl-style varargs; envp too for execle. */
static char **collect(const char *arg0, va_list ap, char ***envp)
{
	size_t n = 1, cap = 16;
	char **v = malloc(cap * sizeof(char *));
	const char *a;

	if (!v)
		return NULL;
	v[0] = (char *)arg0;
	do {
		a = va_arg(ap, const char *);
		if (n + 1 >= cap) {
			char **nv = realloc(v, (cap *= 2) * sizeof(char *));

			if (!nv) {
				free(v);
				return NULL;
			}
			v = nv;
		}
		v[n++] = (char *)a;
	} while (a);
	if (envp)
		*envp = va_arg(ap, char **);
	return v;
}

NK_EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	char **argv;
	int r;

	va_start(ap, arg);
	argv = collect(arg, ap, NULL);
	va_end(ap);
	if (!argv) {
		errno = ENOMEM;
		return -1;
	}
	r = execve(path, argv, environ);
	free(argv);
	return r;
}

NK_EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	char **argv;
	int r;

	va_start(ap, arg);
	argv = collect(arg, ap, NULL);
	va_end(ap);
	if (!argv) {
		errno = ENOMEM;
		return -1;
	}
	r = execvpe(file, argv, environ);
	free(argv);
	return r;
}

NK_EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	char **argv, **envp = NULL;
	int r;

	va_start(ap, arg);
	argv = collect(arg, ap, &envp);
	va_end(ap);
	if (!argv) {
		errno = ENOMEM;
		return -1;
	}
	r = execve(path, argv, envp);
	free(argv);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Load and exit. */

/*
 * A forked child that write()s and _exit()s expects its bytes delivered,
 * as the kernel would: give queued SENDs a moment to reach nkd.
 */
#define NK_UEXIT_DRAIN_NS (2 * 1000000000LL)

NK_EXPORT void _exit(int status)
{
	nk_ring__drain_nolock(NK_UEXIT_DRAIN_NS);
	REAL(_exit)(status);
}

NK_EXPORT void _Exit(int status)
{
	nk_ring__drain_nolock(NK_UEXIT_DRAIN_NS);
	REAL(_Exit)(status);
}

__attribute__((constructor)) static void nk_init(void)
{
	char *tok;

	nk_real__init();
	nk_sig__init(); /* handlers installed before us: counted too */
	nk_cfg__load();
	nk_fdtab__init();
	nk_sock_last_close_hook = nk_sock__last_close;
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	tok = secure_getenv("NK_INHERIT_TOKEN");
	if (tok && *tok) {
		uint64_t t = strtoull(tok, NULL, 10);

		/*
		 * Ours alone: a child of ours gets its own token. Blank the
		 * value in place too: unsetenv() only unlinks it, and the
		 * initial environment stays readable in /proc/PID/environ.
		 * (nkd also refuses the token from any other process.)
		 */
		memset(tok, 'x', strlen(tok));
		unsetenv("NK_INHERIT_TOKEN");
		nk_conn__attach_exec(t);
	}
}

/*
 * SENDs still queued when the program exits would be dropped with the
 * connection; the kernel would still deliver them, so wait a little.
 */
__attribute__((destructor)) static void nk_fini(void)
{
	nk_ring__drain(NK_EXIT_DRAIN_NS);
}
