// SPDX-License-Identifier: MIT
/*
 * nkrun: run an unmodified program as a netkernel guest.
 *
 *   nkrun --guest NAME [--socket PATH] [--fallback fail|passthrough] [-v]
 *         -- CMD ARGS...
 *
 * Sets NK_GUEST, NK_SOCKET, NK_FALLBACK (and NK_DEBUG with -v), puts
 * libnkshim.so first in LD_PRELOAD and execs CMD, so the exit status is
 * CMD's own. Exit statuses of its own follow env(1): 125 for a usage or
 * set-up error, 126 when CMD cannot be run, 127 when it is not found.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netkernel/ctl.h"

#define EXIT_USAGE 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nkrun [--guest NAME] [--socket PATH] "
		"[--fallback fail|passthrough] [-v] -- CMD [ARGS...]\n"
		"\n"
		"Run CMD as netkernel guest NAME: its AF_INET/AF_INET6 sockets\n"
		"are served by nkd through libnkshim.so.\n"
		"\n"
		"  -g, --guest NAME      guest name (default: $NK_GUEST or "
		"\"default\")\n"
		"  -s, --socket PATH     nkd control socket (default: %s)\n"
		"  -f, --fallback MODE   when nkd cannot be reached: fail "
		"(sockets fail\n"
		"                        with ENETDOWN, default) or "
		"passthrough (local stack)\n"
		"  -v, --verbose         shim debug messages on stderr "
		"(NK_DEBUG=1)\n"
		"  -h, --help            this text\n"
		"\n"
		"The shim is $NK_SHIM, else libnkshim.so next to nkrun, else\n"
		"../lib/netkernel/libnkshim.so relative to nkrun.\n",
		NK_CTL_DEFAULT_PATH);
}

static int find_shim(char *out, size_t size)
{
	const char *env = getenv("NK_SHIM");
	char self[PATH_MAX], cand[PATH_MAX + 64], *dir;
	ssize_t n;

	if (env && *env) {
		if (!realpath(env, out) || access(out, R_OK)) {
			fprintf(stderr, "nkrun: NK_SHIM=%s: %s\n", env,
				strerror(errno));
			return -1;
		}
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		fprintf(stderr, "nkrun: cannot find myself: %s\n",
			strerror(errno));
		return -1;
	}
	self[n] = 0;
	dir = dirname(self);
	snprintf(cand, sizeof(cand), "%s/libnkshim.so", dir);
	if (realpath(cand, out) && !access(out, R_OK))
		return 0;
	snprintf(cand, sizeof(cand), "%s/../lib/netkernel/libnkshim.so", dir);
	if (realpath(cand, out) && !access(out, R_OK))
		return 0;
	(void)size;
	fprintf(stderr,
		"nkrun: libnkshim.so not found (looked in %s and "
		"%s/../lib/netkernel); set NK_SHIM\n",
		dir, dir);
	return -1;
}

/* LD_PRELOAD with the shim first, once. */
static int set_preload(const char *shim)
{
	const char *old = getenv("LD_PRELOAD");
	char *val;
	int r;

	if (!old || !*old)
		return setenv("LD_PRELOAD", shim, 1);
	if (!strncmp(old, shim, strlen(shim)) &&
	    (old[strlen(shim)] == 0 || old[strlen(shim)] == ':' ||
	     old[strlen(shim)] == ' '))
		return 0;
	if (asprintf(&val, "%s:%s", shim, old) < 0)
		return -1;
	r = setenv("LD_PRELOAD", val, 1);
	free(val);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "guest", required_argument, NULL, 'g' },
		{ "socket", required_argument, NULL, 's' },
		{ "fallback", required_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *guest = NULL, *sock = NULL, *fallback = "fail";
	char shim[PATH_MAX];
	int c, verbose = 0;

	while ((c = getopt_long(argc, argv, "+g:s:f:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'g':
			guest = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'f':
			fallback = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "nkrun: no command given\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!guest)
		guest = getenv("NK_GUEST");
	if (!guest || !*guest)
		guest = "default";
	if (strlen(guest) >= NK_GUEST_NAME_MAX) {
		fprintf(stderr, "nkrun: guest name longer than %u bytes\n",
			NK_GUEST_NAME_MAX - 1);
		return EXIT_USAGE;
	}
	if (strcmp(fallback, "fail") && strcmp(fallback, "passthrough")) {
		fprintf(stderr,
			"nkrun: --fallback must be fail or passthrough, not "
			"'%s'\n",
			fallback);
		return EXIT_USAGE;
	}
	if (sock && strlen(sock) >= 108) {
		fprintf(stderr, "nkrun: socket path too long: %s\n", sock);
		return EXIT_USAGE;
	}
	if (find_shim(shim, sizeof(shim)))
		return EXIT_USAGE;
	if (setenv("NK_GUEST", guest, 1) ||
	    (sock && setenv("NK_SOCKET", sock, 1)) ||
	    setenv("NK_FALLBACK", fallback, 1) ||
	    (verbose && setenv("NK_DEBUG", "1", 1)) || set_preload(shim)) {
		fprintf(stderr, "nkrun: cannot set environment: %s\n",
			strerror(errno));
		return EXIT_USAGE;
	}
	/* A token is for the image that its parent exec'd, never for us. */
	unsetenv("NK_INHERIT_TOKEN");
	if (verbose)
		fprintf(stderr,
			"nkrun: guest %s, socket %s, fallback %s, shim %s\n",
			guest, sock ? sock : NK_CTL_DEFAULT_PATH, fallback,
			shim);
	execvp(argv[optind], argv + optind);
	c = errno;
	fprintf(stderr, "nkrun: cannot run %s: %s\n", argv[optind],
		strerror(c));
	return c == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}
