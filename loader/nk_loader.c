// SPDX-License-Identifier: MIT
/*
 * nk-loader: load the nk_steer XDP program on a device, attach it through a
 * bpf_link and pin link and maps under /sys/fs/bpf/netkernel/<DEV>/, so the
 * attachment outlives the loader; detach it again; show its state.
 *
 *   nk-loader attach DEV [--mode native|skb] [--queues N] [--slots N]
 *                        [--no-arp] [--no-icmp] [--debug]
 *   nk-loader detach DEV
 *   nk-loader status [DEV] [--json]
 *
 * Lifecycle of attach (libbpf-bootstrap order): open the skeleton,
 * configure the knobs, load, create the link, pin everything into a private
 * directory DEV:PID and rename it to DEV: the pins appear all at once or
 * not at all. Any failure goes to one cleanup label that undoes only what
 * this run created. Termination signals are blocked while pins are being
 * made, so Ctrl-C never leaves half an attachment. Exit codes: enum below,
 * documented in docs/man/nk-loader.8.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/sockios.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "netkernel/version.h"
#include "nk_steer_shared.h"
#include "nk_steer.skel.h"
#include "nk_steer_maps.h"

enum nk_loader_exit {
	EXIT_OK = 0,
	EXIT_FAIL = 1, /* any other error */
	EXIT_USAGE = 2, /* bad command line */
	EXIT_PERM = 3, /* not root / missing capability */
	EXIT_NODEV = 4, /* no such device */
	EXIT_BUSY = 5, /* already attached (ours or another XDP program) */
	EXIT_NOSUPP = 6, /* kernel (or driver) lacks support */
	EXIT_NOT_ATTACHED = 7, /* detach/status: nothing pinned for DEV */
};

#define BPFFS_MOUNT "/sys/fs/bpf"
/* Where attach builds its pins before publishing them with one rename();
 * a sibling of NK_PIN_ROOT so no device name can collide with it. */
#define NK_PIN_STAGING NK_PIN_ROOT "-staging"

static const char *prog_name = "nk-loader";
static bool verbose;

static void err_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (level == LIBBPF_DEBUG && !verbose)
		return 0;
	if (level == LIBBPF_INFO && !verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nk-loader attach DEV [--mode native|skb] [--queues N] [--slots N]\n"
		"                            [--no-arp] [--no-icmp] [--debug]\n"
		"       nk-loader detach DEV\n"
		"       nk-loader status [DEV] [--json]\n"
		"       nk-loader --help\n"
		"Loads the netkernel XDP steering program on DEV through a bpf_link\n"
		"pinned with its maps under " NK_PIN_ROOT "/DEV/.\n"
		"Options: -v/--verbose shows libbpf and verifier messages.\n"
		"See nk-loader(8).\n");
}

/* Map a failed operation's -errno to an exit code. */
static int exit_for(int err)
{
	switch (-err) {
	case EPERM:
	case EACCES:
		return EXIT_PERM;
	case ENODEV:
	case ENXIO:
		return EXIT_NODEV;
	case EBUSY:
	case EEXIST:
		return EXIT_BUSY;
	case ENOSYS:
	case EOPNOTSUPP:
		return EXIT_NOSUPP;
	default:
		return EXIT_FAIL;
	}
}

static int require_root(void)
{
	if (geteuid() != 0) {
		err_msg("must be run as root (needs CAP_BPF, CAP_NET_ADMIN)");
		return EXIT_PERM;
	}
	return 0;
}

static int dev_check(const char *dev, unsigned int *ifindex)
{
	if (!*dev || strlen(dev) >= IFNAMSIZ || strpbrk(dev, "/: \t\n")) {
		err_msg("invalid device name '%s'", dev);
		return EXIT_USAGE;
	}
	if (ifindex) {
		*ifindex = if_nametoindex(dev);
		if (!*ifindex) {
			err_msg("%s: no such device", dev);
			return EXIT_NODEV;
		}
	}
	return 0;
}

/* dir/name into out; the names here are short (IFNAMSIZ), so truncation
 * cannot happen in practice, but it is refused rather than ignored. */
static int path_join(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	long ppid = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* "pid (comm) state ppid ...": comm may hold spaces and ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %ld", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

/*
 * Are we in a mount namespace of our own, one that an ancestor process
 * does not share (what `ip netns exec` or `unshare -m` create)? Walks up the
 * parent chain as far as /proc lets us look; when nothing can be compared
 * the answer is "no".
 */
static bool private_mount_ns(void)
{
	struct stat self, other;
	char path[64];
	pid_t pid = getppid();
	int depth;

	if (stat("/proc/self/ns/mnt", &self))
		return false;
	for (depth = 0; pid > 0 && depth < 64; depth++) {
		snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", (long)pid);
		if (stat(path, &other))
			return false;
		if (other.st_ino != self.st_ino || other.st_dev != self.st_dev)
			return true;
		if (pid == 1)
			return false;
		pid = parent_of(pid);
	}
	return false;
}

/*
 * Make sure BPFFS_MOUNT is a bpffs. Mounting one in a private mount
 * namespace (`ip netns exec` makes one) would put the pins in a filesystem
 * that disappears with the process, taking the attachment with it, so that
 * case is refused with a hint instead.
 */
static int bpffs_ensure(bool create)
{
	struct statfs sfs;

	if (!statfs(BPFFS_MOUNT, &sfs) && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (!create)
		return -ENOENT;
	if (private_mount_ns()) {
		err_msg("%s is not a bpffs in this private mount namespace "
			"(ip netns exec?): pins would vanish on exit; run "
			"'nsenter --net=/run/netns/NS nk-loader ...' instead",
			BPFFS_MOUNT);
		return -EXDEV;
	}
	if (mkdir(BPFFS_MOUNT, 0700) && errno != EEXIST)
		return -errno;
	if (mount("bpffs", BPFFS_MOUNT, "bpf", 0, "mode=0700"))
		return -errno;
	/* As bpftool does; say so, the operator did not ask for a mount. */
	fprintf(stderr, "nk-loader: mounted a bpffs on %s (there was none)\n",
		BPFFS_MOUNT);
	return 0;
}

/* Remove every entry of dir (pins only: bpffs holds no regular files),
 * then dir itself. Missing dir is success. */
static int pins_remove(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	int err = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (path_join(path, sizeof(path), dir, de->d_name))
			continue;
		if (unlink(path) && errno != ENOENT && !err)
			err = -errno;
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT && !err)
		err = -errno;
	return err;
}

/*
 * Remove the staging directories (NK_PIN_STAGING/DEV:PID) of attach runs
 * that died before publishing.
 */
static void stale_tmp_remove(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	const char *dot;
	DIR *d;
	long pid;

	d = opendir(NK_PIN_STAGING);
	if (!d)
		return;
	while ((de = readdir(d))) {
		dot = strrchr(de->d_name, ':');
		if (!dot)
			continue;
		pid = strtol(dot + 1, NULL, 10);
		if (pid <= 0 || !kill((pid_t)pid, 0) || errno != ESRCH)
			continue;
		if (path_join(path, sizeof(path), NK_PIN_STAGING, de->d_name))
			continue;
		pins_remove(path);
	}
	closedir(d);
}

/* Link info of DEV's pinned link. Returns 0, -ENOENT if not pinned. */
static int link_info_get(const char *dir, struct bpf_link_info *info)
{
	char path[PATH_MAX];
	__u32 len = sizeof(*info);
	int fd, err = 0;

	if (path_join(path, sizeof(path), dir, NK_PIN_LINK))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	memset(info, 0, sizeof(*info));
	if (bpf_obj_get_info_by_fd(fd, info, &len))
		err = -errno;
	close(fd);
	return err;
}

/* RX queues in /sys/class/net/DEV/queues (rx-0, rx-1, ...), 0 if none. */
static unsigned int rx_queues_sysfs(const char *dev)
{
	char path[IFNAMSIZ + 64];
	unsigned int n = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/class/net/%s/queues", dev);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, "rx-", 3);
	closedir(d);
	return n;
}

/*
 * The RX queues dev uses now: ETHTOOL_GCHANNELS's current rx + combined
 * (not the maxima: a veth reports max 2 and has 1, and an XSK on a queue
 * that does not exist fails), else the sysfs queue directories, else 1.
 */
static unsigned int rx_queues(const char *dev)
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	struct ifreq ifr;
	unsigned int n = 0;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
		ifr.ifr_data = (void *)&ch;
		if (!ioctl(fd, SIOCETHTOOL, &ifr))
			n = ch.rx_count + ch.combined_count;
		close(fd);
	}
	if (!n)
		n = rx_queues_sysfs(dev);
	return n ? n : 1;
}

static int probe_support(void)
{
	static const enum bpf_map_type types[] = { BPF_MAP_TYPE_XSKMAP,
						   BPF_MAP_TYPE_LPM_TRIE,
						   BPF_MAP_TYPE_PERCPU_ARRAY,
						   BPF_MAP_TYPE_HASH };
	unsigned int i;
	int r;

	r = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, NULL);
	if (r == -EPERM)
		return r;
	if (r <= 0) {
		err_msg("kernel lacks support: XDP programs (%s)",
			r ? strerror(-r) : "not available");
		return -EOPNOTSUPP;
	}
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		r = libbpf_probe_bpf_map_type(types[i], NULL);
		if (r == -EPERM)
			return r;
		if (r <= 0) {
			err_msg("kernel lacks support: BPF map type %s",
				libbpf_bpf_map_type_str(types[i]));
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

struct attach_opts {
	const char *dev;
	__u32 xdp_flags; /* XDP_FLAGS_DRV_MODE / SKB_MODE / 0 */
	unsigned int queues; /* 0: ask the device */
	unsigned int slots;
	bool no_arp, no_icmp, debug;
};

static const char *mode_name(__u32 xdp_flags)
{
	if (xdp_flags & XDP_FLAGS_SKB_MODE)
		return "skb";
	if (xdp_flags & XDP_FLAGS_DRV_MODE)
		return "native";
	return "auto";
}

static int pin_fd(int fd, const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (path_join(path, sizeof(path), dir, name))
		return -ENAMETOOLONG;
	return bpf_obj_pin(fd, path) ? -errno : 0;
}

static int cmd_attach(const struct attach_opts *o)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	LIBBPF_OPTS(bpf_link_create_opts, lopts);
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct nk_steer *skel = NULL;
	struct bpf_link_info linfo;
	struct bpf_map *map;
	bool tmp_made = false;
	unsigned int ifindex, queues;
	sigset_t block, old;
	int link_fd = -1;
	int ret, err;

	ret = require_root();
	if (!ret)
		ret = dev_check(o->dev, &ifindex);
	if (ret)
		return ret;

	/* No termination between here and the end: cleanup runs. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);

	err = bpffs_ensure(true);
	if (err) {
		if (err != -EXDEV)
			err_msg("cannot mount bpffs on %s: %s", BPFFS_MOUNT,
				strerror(-err));
		ret = err == -EXDEV ? EXIT_FAIL : exit_for(err);
		goto cleanup;
	}
	if ((mkdir(NK_PIN_ROOT, 0700) && errno != EEXIST) ||
	    (mkdir(NK_PIN_STAGING, 0700) && errno != EEXIST)) {
		err = -errno;
		err_msg("mkdir %s: %s", NK_PIN_ROOT, strerror(-err));
		ret = exit_for(err);
		goto cleanup;
	}
	stale_tmp_remove();
	nk_steer_pin_dir(dir, sizeof(dir), NULL, o->dev);
	snprintf(tmp, sizeof(tmp), "%s/%s:%ld", NK_PIN_STAGING,
		 strrchr(dir, '/') + 1, (long)getpid());

	/* Already ours? A link whose device is gone is stale: clear it. */
	err = link_info_get(dir, &linfo);
	if (!err && linfo.xdp.ifindex) {
		err_msg("%s: already attached (link id %u, prog id %u); "
			"run 'nk-loader detach %s' first",
			o->dev, linfo.id, linfo.prog_id, o->dev);
		ret = EXIT_BUSY;
		goto cleanup;
	}
	if (!access(dir, F_OK)) {
		if (verbose)
			fprintf(stderr, "%s: removing stale pins in %s\n",
				prog_name, dir);
		pins_remove(dir);
	}

	/* Someone else's XDP program? */
	err = bpf_xdp_query((int)ifindex, 0, &q);
	if (!err && q.prog_id) {
		err_msg("%s: already has an XDP program (id %u) not attached "
			"by nk-loader",
			o->dev, q.prog_id);
		ret = EXIT_BUSY;
		goto cleanup;
	}

	err = probe_support();
	if (err) {
		if (err == -EPERM)
			err_msg("permission denied loading BPF programs");
		ret = exit_for(err);
		goto cleanup;
	}

	queues = o->queues ? o->queues : rx_queues(o->dev);
	if ((unsigned long)queues * o->slots > NK_MAX_XSKS) {
		err_msg("queues (%u) x slots (%u) exceeds %u XSK entries",
			queues, o->slots, NK_MAX_XSKS);
		ret = EXIT_USAGE;
		goto cleanup;
	}

	skel = nk_steer__open();
	if (!skel) {
		err = -errno;
		err_msg("cannot open the BPF object: %s", strerror(-err));
		ret = exit_for(err);
		goto cleanup;
	}
	skel->rodata->nk_knobs.nr_queues = queues;
	skel->rodata->nk_knobs.slots_per_queue = o->slots;
	skel->rodata->nk_knobs.ifindex = ifindex;
	skel->rodata->nk_knobs.xdp_flags = o->xdp_flags;
	skel->rodata->nk_knobs.steer_arp = !o->no_arp;
	skel->rodata->nk_knobs.steer_icmp = !o->no_icmp;
	skel->rodata->nk_knobs.debug = o->debug;
	err = bpf_map__set_max_entries(skel->maps.nk_xsks, queues * o->slots);
	if (!err)
		err = nk_steer__load(skel);
	if (err) {
		err_msg("cannot load the BPF program: %s%s", strerror(-err),
			verbose ? "" : " (-v shows the verifier log)");
		ret = exit_for(err);
		goto cleanup;
	}

	lopts.flags = o->xdp_flags;
	link_fd = bpf_link_create(bpf_program__fd(skel->progs.nk_steer),
				  (int)ifindex, BPF_XDP, &lopts);
	if (link_fd < 0) {
		err = -errno;
		if (err == -EBUSY || err == -EEXIST)
			err_msg("%s: already has an XDP program", o->dev);
		else if (err == -EOPNOTSUPP || err == -EINVAL)
			err_msg("%s: kernel or driver lacks support for XDP "
				"links in %s mode (%s)",
				o->dev, mode_name(o->xdp_flags),
				strerror(-err));
		else
			err_msg("%s: cannot attach: %s", o->dev,
				strerror(-err));
		ret = err == -EINVAL ? EXIT_NOSUPP : exit_for(err);
		goto cleanup;
	}

	if (mkdir(tmp, 0700)) {
		err = -errno;
		err_msg("mkdir %s: %s", tmp, strerror(-err));
		ret = exit_for(err);
		goto cleanup;
	}
	tmp_made = true;
	bpf_object__for_each_map(map, skel->obj)
	{
		const char *name = bpf_map__name(map);

		if (map == skel->maps.bss)
			continue; /* debug record only */
		if (map == skel->maps.rodata)
			name = NK_MAP_KNOBS;
		err = pin_fd(bpf_map__fd(map), tmp, name);
		if (err) {
			err_msg("cannot pin map %s: %s", name, strerror(-err));
			ret = exit_for(err);
			goto cleanup;
		}
	}
	err = pin_fd(link_fd, tmp, NK_PIN_LINK);
	if (!err && rename(tmp, dir))
		err = -errno;
	if (err) {
		err_msg("cannot pin the link in %s: %s", dir, strerror(-err));
		ret = err == -ENOTEMPTY ? EXIT_BUSY : exit_for(err);
		goto cleanup;
	}
	tmp_made = false;

	err = link_info_get(dir, &linfo);
	printf("%s: attached nk_steer (prog id %u, link id %u, mode %s, "
	       "%u queue%s x %u slot%s), pinned in %s\n",
	       o->dev, err ? 0 : linfo.prog_id, err ? 0 : linfo.id,
	       mode_name(o->xdp_flags), queues, queues == 1 ? "" : "s",
	       o->slots, o->slots == 1 ? "" : "s", dir);
	fflush(stdout);
	ret = EXIT_OK;

	/* Test hook: linger after the attachment is published, so a test can
	 * SIGKILL a live loader and check the attachment survives it. */
	if (getenv("NK_LOADER_TEST_HOLD")) {
		unsigned int secs =
			(unsigned int)atoi(getenv("NK_LOADER_TEST_HOLD"));

		sigprocmask(SIG_SETMASK, &old, NULL);
		if (link_fd >= 0)
			close(link_fd);
		link_fd = -1;
		sleep(secs);
	}

cleanup:
	if (tmp_made)
		pins_remove(tmp);
	if (link_fd >= 0)
		close(link_fd); /* the pin, if made, keeps the link alive */
	nk_steer__destroy(skel);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static int cmd_detach(const char *dev)
{
	struct bpf_link_info linfo;
	char dir[PATH_MAX], path[PATH_MAX];
	int ret, err, fd;

	ret = require_root();
	if (!ret)
		ret = dev_check(dev, NULL);
	if (ret)
		return ret;
	if (bpffs_ensure(false)) {
		err_msg("%s: not attached (%s is not mounted)", dev,
			BPFFS_MOUNT);
		return EXIT_NOT_ATTACHED;
	}
	nk_steer_pin_dir(dir, sizeof(dir), NULL, dev);
	if (access(dir, F_OK)) {
		err_msg("%s: not attached (no %s)", dev, dir);
		return EXIT_NOT_ATTACHED;
	}
	/* Detach explicitly: another process may still hold a link fd. */
	fd = path_join(path, sizeof(path), dir, NK_PIN_LINK)
		     ? -1
		     : bpf_obj_get(path);
	if (fd >= 0) {
		memset(&linfo, 0, sizeof(linfo));
		if (bpf_link_detach(fd) && errno != ENOLINK &&
		    errno != EINVAL && verbose)
			fprintf(stderr, "%s: link detach: %s\n", prog_name,
				strerror(errno));
		close(fd);
	}
	err = pins_remove(dir);
	if (err) {
		err_msg("cannot remove %s: %s", dir, strerror(-err));
		return exit_for(err);
	}
	printf("%s: detached, pins removed\n", dev);
	return EXIT_OK;
}

/* ---- status ---- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int status_one(const char *dev, bool json)
{
	static const char *const counted[] = { NK_MAP_ENDPOINTS, NK_MAP_FLOWS,
					       NK_MAP_NSM_ADDRS, NK_MAP_ACL };
	struct nk_exit_stats ex[NK_EXIT__MAX];
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	const struct nk_steer_knobs *k;
	const char *mode;
	struct nk_steer_maps *m = NULL;
	struct bpf_link_info linfo;
	struct nk_guest_stats gs;
	char dir[PATH_MAX];
	char ifname[IF_NAMESIZE] = "";
	bool first, here;
	unsigned int i;
	__u32 g;
	int err;

	nk_steer_pin_dir(dir, sizeof(dir), NULL, dev);
	err = link_info_get(dir, &linfo);
	if (err) {
		err_msg("%s: not attached (%s)", dev,
			err == -ENOENT ? "no pinned link" : strerror(-err));
		return err == -ENOENT ? EXIT_NOT_ATTACHED : exit_for(err);
	}
	err = nk_steer_maps__open(dev, NULL, &m);
	if (err) {
		err_msg("%s: cannot open pinned maps: %s", dev, strerror(-err));
		return exit_for(err);
	}
	k = nk_steer_maps__knobs(m);
	/* the ifindex means something only in the netns that attached it */
	here = linfo.xdp.ifindex && if_indextoname(linfo.xdp.ifindex, ifname) &&
	       !strcmp(ifname, dev);
	err = nk_steer_maps__exit_stats(m, ex);
	if (err)
		memset(ex, 0, sizeof(ex));
	mode = mode_name(k->xdp_flags);
	if (here && !bpf_xdp_query((int)linfo.xdp.ifindex, 0, &q)) {
		if (q.attach_mode == XDP_ATTACHED_DRV)
			mode = "native";
		else if (q.attach_mode == XDP_ATTACHED_SKB)
			mode = "skb";
	}

	if (json) {
		printf("{\"dev\":");
		json_str(dev);
		printf(",\"attached\":%s,\"device_present\":%s,\"mode\":\"%s\","
		       "\"prog_id\":%u,\"link_id\":%u,\"ifindex\":%u,\"pin_dir\":",
		       linfo.xdp.ifindex ? "true" : "false",
		       here ? "true" : "false", mode, linfo.prog_id, linfo.id,
		       linfo.xdp.ifindex);
		json_str(dir);
		printf(",\"knobs\":{\"nr_queues\":%u,\"slots_per_queue\":%u,"
		       "\"steer_arp\":%s,\"steer_icmp\":%s,\"debug\":%s}",
		       k->nr_queues, k->slots_per_queue,
		       k->steer_arp ? "true" : "false",
		       k->steer_icmp ? "true" : "false",
		       k->debug ? "true" : "false");
		printf(",\"entries\":{");
		for (i = 0; i < sizeof(counted) / sizeof(counted[0]); i++)
			printf("%s\"%s\":%d", i ? "," : "", counted[i],
			       nk_steer_maps__count(m, counted[i]));
		printf("},\"guests\":[");
	} else {
		printf("%s: %s, mode %s, prog id %u, link id %u, ifindex %u%s\n",
		       dev, linfo.xdp.ifindex ? "attached" : "link defunct",
		       mode, linfo.prog_id, linfo.id, linfo.xdp.ifindex,
		       here || !linfo.xdp.ifindex ? "" : " (in another netns)");
		printf("  knobs: queues %u, slots/queue %u, steer_arp %s, "
		       "steer_icmp %s, debug %s\n",
		       k->nr_queues, k->slots_per_queue,
		       k->steer_arp ? "on" : "off",
		       k->steer_icmp ? "on" : "off", k->debug ? "on" : "off");
		printf("  entries:");
		for (i = 0; i < sizeof(counted) / sizeof(counted[0]); i++)
			printf(" %s %d", counted[i] + 3,
			       nk_steer_maps__count(m, counted[i]));
		printf("\n  %-6s %12s %14s %10s %10s %14s\n", "guest",
		       "packets", "bytes", "xsk_miss", "acl_deny",
		       "acl_notallow");
	}
	first = true;
	for (g = 0; g < NK_MAX_GUESTS; g++) {
		if (nk_steer_maps__guest_stats(m, g, &gs))
			continue;
		if (!gs.packets && !gs.xsk_miss && !gs.drops[0] && !gs.drops[1])
			continue;
		if (json)
			printf("%s{\"id\":%u,\"packets\":%llu,\"bytes\":%llu,"
			       "\"xsk_miss\":%llu,\"xsk_miss_bytes\":%llu,"
			       "\"drops\":{\"acl_deny\":%llu,"
			       "\"acl_not_allowed\":%llu},\"drop_bytes\":%llu}",
			       first ? "" : ",", g,
			       (unsigned long long)gs.packets,
			       (unsigned long long)gs.bytes,
			       (unsigned long long)gs.xsk_miss,
			       (unsigned long long)gs.xsk_miss_bytes,
			       (unsigned long long)gs.drops[NK_DROP_ACL_DENY],
			       (unsigned long long)
				       gs.drops[NK_DROP_ACL_NOT_ALLOWED],
			       (unsigned long long)gs.drop_bytes);
		else
			printf("  %-6u %12llu %14llu %10llu %10llu %14llu\n", g,
			       (unsigned long long)gs.packets,
			       (unsigned long long)gs.bytes,
			       (unsigned long long)gs.xsk_miss,
			       (unsigned long long)gs.drops[NK_DROP_ACL_DENY],
			       (unsigned long long)
				       gs.drops[NK_DROP_ACL_NOT_ALLOWED]);
		first = false;
	}
	if (json)
		printf("],\"exits\":{");
	else
		printf("  exits:");
	first = true;
	for (i = 0; i < NK_EXIT__MAX; i++) {
		if (json) {
			printf("%s\"%s\":{\"packets\":%llu,\"bytes\":%llu}",
			       first ? "" : ",", nk_steer_exit_name(i),
			       (unsigned long long)ex[i].packets,
			       (unsigned long long)ex[i].bytes);
		} else if (ex[i].packets) {
			printf(" %s %llu", nk_steer_exit_name(i),
			       (unsigned long long)ex[i].packets);
		} else {
			continue;
		}
		first = false;
	}
	if (json)
		printf("}}");
	else
		printf("%s\n", first ? " none" : "");
	nk_steer_maps__close(m);
	return EXIT_OK;
}

/* Would status_one() print dev? (a pinned link and openable maps) */
static bool status_printable(const char *dev)
{
	struct nk_steer_maps *m = NULL;
	struct bpf_link_info linfo;
	char dir[PATH_MAX];

	if (nk_steer_pin_dir(dir, sizeof(dir), NULL, dev) ||
	    link_info_get(dir, &linfo) || nk_steer_maps__open(dev, NULL, &m))
		return false;
	nk_steer_maps__close(m);
	return true;
}

static int cmd_status(const char *dev, bool json)
{
	struct dirent *de;
	bool first = true;
	int ret, r;
	DIR *d;

	ret = require_root();
	if (!ret && dev)
		ret = dev_check(dev, NULL);
	if (ret)
		return ret;
	if (dev) {
		if (bpffs_ensure(false)) {
			err_msg("%s: not attached (%s is not mounted)", dev,
				BPFFS_MOUNT);
			return EXIT_NOT_ATTACHED;
		}
		ret = status_one(dev, json);
		if (json && !ret)
			putchar('\n');
		return ret;
	}
	d = bpffs_ensure(false) ? NULL : opendir(NK_PIN_ROOT);
	if (json)
		putchar('[');
	while (d && (de = readdir(d))) {
		char name[NAME_MAX + 1], *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		/* undo nk_steer_pin_dir()'s '.' -> ':' */
		snprintf(name, sizeof(name), "%s", de->d_name);
		for (p = name; *p; p++)
			if (*p == ':')
				*p = '.';
		/* the JSON list must stay valid: only entries that have a
		 * link get a separator (status_one reports the others) */
		if (json && !first && status_printable(name))
			putchar(',');
		r = status_one(name, json);
		if (r && !ret)
			ret = r;
		if (!r)
			first = false;
	}
	if (d)
		closedir(d);
	if (json)
		printf("]\n");
	else if (first)
		printf("no device attached\n");
	return ret;
}

static int parse_uint(const char *s, unsigned int min, unsigned int max,
		      unsigned int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_NO_ARP = 256, OPT_NO_ICMP, OPT_DEBUG, OPT_JSON };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "mode", required_argument, NULL, 'm' },
		{ "queues", required_argument, NULL, 'q' },
		{ "slots", required_argument, NULL, 's' },
		{ "no-arp", no_argument, NULL, OPT_NO_ARP },
		{ "no-icmp", no_argument, NULL, OPT_NO_ICMP },
		{ "debug", no_argument, NULL, OPT_DEBUG },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct attach_opts ao = { .slots = 1 };
	const char *cmd, *dev = NULL;
	bool json = false;
	int c;

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("nk-loader (netkernel) %s\n", NK_VERSION_STRING);
		return EXIT_OK;
	}
	libbpf_set_print(libbpf_print);
	/* GNU getopt permutes: options may come before or after CMD and DEV */
	while ((c = getopt_long(argc, argv, "hvm:q:s:j", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'v':
			verbose = true;
			break;
		case 'm':
			if (!strcmp(optarg, "native") ||
			    !strcmp(optarg, "drv")) {
				ao.xdp_flags = XDP_FLAGS_DRV_MODE;
			} else if (!strcmp(optarg, "skb") ||
				   !strcmp(optarg, "generic")) {
				ao.xdp_flags = XDP_FLAGS_SKB_MODE;
			} else {
				err_msg("--mode must be native or skb");
				return EXIT_USAGE;
			}
			break;
		case 'q':
			if (parse_uint(optarg, 1, NK_MAX_XSKS, &ao.queues)) {
				err_msg("--queues must be 1..%u", NK_MAX_XSKS);
				return EXIT_USAGE;
			}
			break;
		case 's':
			if (parse_uint(optarg, 1, NK_MAX_XSKS, &ao.slots)) {
				err_msg("--slots must be 1..%u", NK_MAX_XSKS);
				return EXIT_USAGE;
			}
			break;
		case OPT_NO_ARP:
			ao.no_arp = true;
			break;
		case OPT_NO_ICMP:
			ao.no_icmp = true;
			break;
		case OPT_DEBUG:
			ao.debug = true;
			break;
		case 'j':
		case OPT_JSON:
			json = true;
			break;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	if (optind + 1 < argc)
		dev = argv[optind + 1];

	if (!strcmp(cmd, "attach")) {
		if (!dev || json) {
			usage(stderr);
			return EXIT_USAGE;
		}
		ao.dev = dev;
		return cmd_attach(&ao);
	}
	if (!strcmp(cmd, "detach")) {
		if (!dev || json) {
			usage(stderr);
			return EXIT_USAGE;
		}
		return cmd_detach(dev);
	}
	if (!strcmp(cmd, "status"))
		return cmd_status(dev, json);
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	err_msg("unknown command '%s'", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
