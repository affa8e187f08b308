// SPDX-License-Identifier: MIT
/*
 * nkrun: run an unmodified program as a netkernel guest.
 *
 *   nkrun [--guest NAME] [--socket PATH] [--fallback fail|passthrough] [-v]
 *         -- CMD ARGS...
 *
 * Asks nkd first whether this process may attach (as NAME, or as the guest
 * nkd picks for it from its uid, network namespace, cgroup and socket) and
 * stops with nkd's reason if not. Then sets NK_GUEST, NK_SOCKET,
 * NK_FALLBACK (and NK_DEBUG with -v), puts libnkshim.so first in
 * LD_PRELOAD and execs CMD, so the exit status is CMD's own. Exit statuses
 * of its own follow env(1): 125 for a usage or set-up error or a refusal,
 * 126 when CMD cannot be run, 127 when it is not found.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "netkernel/ctl.h"
#include "netkernel/version.h"

#define EXIT_USAGE 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nkrun [--guest NAME] [--socket PATH] "
		"[--fallback fail|passthrough] [-v] -- CMD [ARGS...]\n"
		"\n"
		"Run CMD as a netkernel guest: its AF_INET/AF_INET6 sockets\n"
		"are served by nkd through libnkshim.so. nkd decides which guest\n"
		"a process is from its uid, network namespace, cgroup and the\n"
		"socket it connects to; NAME only chooses among the guests it\n"
		"matches. A refused attach stops nkrun with nkd's reason.\n"
		"\n"
		"  -g, --guest NAME      guest name (default: $NK_GUEST, else the\n"
		"                        one guest nkd finds for this process)\n"
		"  -s, --socket PATH     nkd control socket (default: %s)\n"
		"  -f, --fallback MODE   when nkd cannot be reached: fail "
		"(sockets fail\n"
		"                        with ENETDOWN, default) or "
		"passthrough (local stack)\n"
		"  -v, --verbose         shim debug messages on stderr "
		"(NK_DEBUG=1)\n"
		"  -h, --help            this text\n"
		"      --version         print the version and exit\n"
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

/*
 * Asks nkd whether we may attach (HELLO with NK_HELLO_F_PROBE; exec keeps
 * our uid, namespaces and cgroup, so the answer holds for CMD). 0 to go
 * on (also when nkd cannot be reached: the shim's fallback decides), -1
 * refused, with the reason printed.
 */
static int probe(const char *sock, const char *guest, int verbose)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	struct nk_ctl_hello h = {
		.hdr = { .type = NK_CTL_HELLO, .len = sizeof(h), .seq = 1 },
		.abi_version = NK_ABI_VERSION,
		.flags = NK_HELLO_F_PROBE,
		.nr_qsets = 1,
	};
	union {
		struct nk_ctl_welcome w;
		char b[sizeof(struct nk_ctl_welcome) + 512];
	} r;
	const char *why;
	bool named;
	ssize_t n;
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	snprintf(h.guest, sizeof(h.guest), "%s", guest);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		close(fd);
		return 0;
	}
	/* A failed send may still leave nkd's early refusal to read. */
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	memset(&r, 0, sizeof(r));
	n = recv(fd, r.b, sizeof(r.b) - 1, 0);
	/* A reset (nkd closed, our HELLO unread) comes before its refusal. */
	if (n < 0 && errno == ECONNRESET)
		n = recv(fd, r.b, sizeof(r.b) - 1, 0);
	close(fd);
	if (n < (ssize_t)sizeof(r.w) || r.w.hdr.type != NK_CTL_WELCOME)
		return 0;
	r.b[n] = '\0';
	if (!r.w.status) {
		if (verbose)
			fprintf(stderr,
				"nkrun: nkd will attach us as guest %s\n",
				r.b + sizeof(r.w));
		return 0;
	}
	if (r.w.status == -EINVAL && n == (ssize_t)sizeof(r.w))
		return 0; /* an nkd without probes: the shim will find out */
	/* The shim's form (docs/shim.md "Messages"). */
	why = n > (ssize_t)sizeof(r.w) ? r.b + sizeof(r.w)
				       : strerror(-r.w.status);
	named = !*guest || strstr(why, guest);
	fprintf(stderr, "netkernel: refused: %s (%s%s%snkrun)\n", why,
		named ? "" : "guest '", named ? "" : guest, named ? "" : "', ");
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
		{ "version", no_argument, NULL, 'V' },
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
		case 'V':
			printf("nkrun (netkernel) %s\n", NK_VERSION_STRING);
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
	if (!guest)
		guest = "";
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
	if (probe(sock ? sock
		  : getenv("NK_SOCKET") && *getenv("NK_SOCKET")
			  ? getenv("NK_SOCKET")
			  : NK_CTL_DEFAULT_PATH,
		  guest, verbose))
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
			*guest ? guest : "(picked by nkd)",
			sock ? sock : NK_CTL_DEFAULT_PATH, fallback, shim);
	execvp(argv[optind], argv + optind);
	c = errno;
	fprintf(stderr, "nkrun: cannot run %s: %s\n", argv[optind],
		strerror(c));
	return c == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}
