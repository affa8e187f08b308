// SPDX-License-Identifier: MIT
/*
 * nkd: the netkernel host service. Command line, signals, pidfile; the rest
 * is the CoreEngine's event loop (core_engine.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "netkernel/ctl.h"

#include "config.h"
#include "engine.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nkd [--socket PATH] [--config FILE] [--pidfile FILE] "
		"[-v|--verbose] [--help]\n"
		"  --socket PATH   control socket (default %s)\n"
		"  --config FILE   NSMs, guests and policy (default: one "
		"kernel NSM 'kernel0';\n"
		"                  any local process may attach, a guest name "
		"belongs to\n"
		"                  the uid and network namespace that first "
		"used it);\n"
		"                  SIGHUP or `nkctl reload` reads it again\n"
		"  --pidfile FILE  write nkd's pid there, remove it on exit\n"
		"  -v, --verbose   debug logging\n"
		"See nkd(8) and docs/config.md.\n",
		NK_CTL_DEFAULT_PATH);
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		int err = -errno;

		close(fd);
		return err ? err : -EIO;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NK_CTL_DEFAULT_PATH, *config = NULL, *pidfile = NULL;
	struct nk_engine *e = NULL;
	struct nk_config cfg;
	struct nk_ctl *ctl;
	char err[512];
	sigset_t mask;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "s:c:p:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'v':
			nk_log_verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	if (config)
		ret = nk_config__load(config, &cfg, err, sizeof(err));
	else
		ret = nk_config__default(&cfg);
	if (ret) {
		fprintf(stderr, "nkd: %s\n", config ? err : "out of memory");
		return 1;
	}

	/*
	 * Every guest socket costs nkd three descriptors (kernel socket and
	 * both placeholder ends): take all the descriptors we may have.
	 */
	{
		struct rlimit rl;

		if (!getrlimit(RLIMIT_NOFILE, &rl) &&
		    rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}

	/* Before any thread exists: the signals go to the loop's signalfd. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* reload the config */
	sigprocmask(SIG_BLOCK, &mask, NULL);

	ret = nk_engine__create(&cfg, &e); /* takes cfg over */
	if (ret) {
		nk_err("startup failed: %s", strerror(-ret));
		return 1;
	}
	nk_admin__set_config_path(e, config);
	ret = nk_ctl__create(e, sock, &ctl);
	if (ret) {
		nk_engine__destroy(e);
		return 1;
	}
	if (pidfile && (ret = write_pidfile(pidfile))) {
		nk_err("pidfile %s: %s", pidfile, strerror(-ret));
		nk_engine__destroy(e);
		return 1;
	}
	nk_info("nkd %s ready (pid %d)", NK_VERSION, (int)getpid());
	ret = nk_engine__run(e);
	nk_engine__destroy(e);
	if (pidfile)
		unlink(pidfile);
	nk_info("stopped");
	return ret ? 1 : 0;
}
