// SPDX-License-Identifier: MIT
/*
 * nkd: the netkernel host service. Command line, signals, pidfile, systemd
 * readiness; the rest is the CoreEngine's event loop (core_engine.c).
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
#include "netkernel/version.h"

#include "config.h"
#include "engine.h"
#include "log.h"
#include "notify.h"
#include "vm.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nkd [--socket PATH] [--config FILE] [--pidfile FILE] "
		"[-v|--verbose]\n"
		"       nkd --check-config FILE\n"
		"       nkd --version | --help\n"
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
		"  --check-config FILE\n"
		"                  check FILE and exit: 0 and \"FILE: ok\", or 1 "
		"and a\n"
		"                  FILE:LINE: message for every error\n"
		"  --version       print the version and exit\n"
		"Under systemd (Type=notify) nkd reports ready only once every "
		"NSM works.\n"
		"See nkd(8) and docs/config.md.\n",
		NK_CTL_DEFAULT_PATH);
}

/* nkd --check-config FILE: like `nginx -t`, nothing starts. */
static int check_config(const char *path)
{
	static char errs[32768];
	struct nk_config cfg;
	unsigned nerrs;
	int ret;

	ret = nk_config__check(path, &cfg, errs, sizeof(errs), &nerrs);
	if (ret) {
		fputs(errs, stderr);
		if (!nerrs) /* out of memory: no message */
			fprintf(stderr, "%s: %s\n", path, strerror(-ret));
		fprintf(stderr, "%s: %u error%s, nkd would not start\n", path,
			nerrs, nerrs == 1 ? "" : "s");
		return 1;
	}
	printf("%s: ok: %u nsm%s (", path, cfg.nr_nsms,
	       cfg.nr_nsms == 1 ? "" : "s");
	for (unsigned i = 0; i < cfg.nr_nsms; i++)
		printf("%s%s %s", i ? ", " : "", cfg.nsms[i].name,
		       cfg.nsms[i].type);
	printf("), %u guest%s, unknown guests %s\n", cfg.nr_guests,
	       cfg.nr_guests == 1 ? "" : "s",
	       cfg.unknown_allow ? "allowed" : "denied");
	nk_config__free(&cfg);
	return 0;
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
		{ "version", no_argument, NULL, 'V' },
		{ "check-config", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NK_CTL_DEFAULT_PATH, *config = NULL, *pidfile = NULL;
	const char *check = NULL;
	struct nk_engine *e = NULL;
	struct nk_config cfg;
	struct nk_ctl *ctl;
	struct nk_vmset *vms = NULL;
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
		case 'V':
			printf("nkd (netkernel) %s\n", NK_VERSION_STRING);
			return 0;
		case 't':
			check = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (check)
		return check_config(check);

	/*
	 * Before any thread exists, the signals go to the loop's signalfd;
	 * blocked from here, so a SIGHUP during start-up is a reload once the
	 * loop runs, not death by the default action.
	 */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* reload the config */
	sigprocmask(SIG_BLOCK, &mask, NULL);

	if (config)
		ret = nk_config__load(config, &cfg, err, sizeof(err));
	else
		ret = nk_config__default(&cfg);
	if (ret) {
		nk_err("%s", config ? err : "out of memory");
		nk_notify__status("config error: %s",
				  config ? err : "out of memory");
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

	/*
	 * Creating each NSM proves it usable (the kernel NSM opens a socket in
	 * its namespace, afxdp binds its queues): a failure stops nkd here,
	 * before READY=1, with the NSM's name and the cause logged.
	 */
	ret = nk_engine__create(&cfg, &e); /* takes cfg over */
	if (ret) {
		nk_err("startup failed: %s (see above)", strerror(-ret));
		nk_notify__status("startup failed: %s", strerror(-ret));
		return 1;
	}
	nk_admin__set_config_path(e, config);
	ret = nk_ctl__create(e, sock, &ctl);
	if (ret) {
		nk_notify__status("startup failed: control socket %s: %s", sock,
				  strerror(-ret));
		nk_engine__destroy(e);
		return 1;
	}
	ret = nk_vm__create(e, &vms);
	if (ret) {
		nk_notify__status("startup failed: VM guests: %s",
				  strerror(-ret));
		nk_vm__shutdown(vms);
		nk_engine__destroy(e);
		nk_vm__destroy(vms);
		return 1;
	}
	if (pidfile && (ret = write_pidfile(pidfile))) {
		nk_err("pidfile %s: %s", pidfile, strerror(-ret));
		nk_notify__status("startup failed: pidfile %s: %s", pidfile,
				  strerror(-ret));
		nk_engine__destroy(e); /* removes the control socket */
		return 1;
	}
	nk_info("nkd %s ready (pid %d)", NK_VERSION, (int)getpid());
	{
		char status[256];

		snprintf(status, sizeof(status), "running: %u NSM%s, %s",
			 e->nr_nsms, e->nr_nsms == 1 ? "" : "s", sock);
		nk_notify__ready(status);
	}
	ret = nk_engine__run(e);
	nk_notify__stopping(ret ? "stopping after an error" : "stopping");
	nk_vm__shutdown(vms);
	nk_engine__destroy(e);
	nk_vm__destroy(vms);
	if (pidfile)
		unlink(pidfile);
	nk_info("stopped");
	return ret ? 1 : 0;
}
