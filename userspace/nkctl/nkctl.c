// SPDX-License-Identifier: MIT
/*
 * nkctl: the operator's view of nkd, and its hand. Sends one NK_CTL_QUERY
 * (or NK_CTL_ADMIN for evict, set, reload) on the control socket, collects
 * the reply chunks until NK_QUERY_F_LAST, and prints them: as is with
 * --json (and for stats, which is Prometheus text), or as a table made
 * from the JSON objects nkd sends; a command's reply is a message.
 *
 * Exit status: 0 ok, 1 nkd not reachable or bad reply, 2 usage,
 * 3 nkd refused: the caller is not the operator (or a bad query),
 * 4 the command failed (no such guest, bad value, bad config file).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "netkernel/ctl.h"

#define MAX_COLS 24
#define MAX_VAL 256

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nkctl [--socket PATH] "
		"status|guests|sockets|nsms|stats [--json]\n"
		"       nkctl [--socket PATH] evict GUEST\n"
		"       nkctl [--socket PATH] set GUEST key=value...\n"
		"       nkctl [--socket PATH] reload\n"
		"  --socket PATH  nkd control socket (default %s)\n"
		"  --json         print nkd's JSON answer as is\n"
		"  evict GUEST    disconnect all processes of GUEST, close its "
		"sockets\n"
		"  set GUEST k=v  change GUEST's quotas and rules now (keys of "
		"a guest line:\n"
		"                 max_sockets max_inflight max_conns weight "
		"bufs uid bind\n"
		"                 acl_allow acl_deny egress host_access)\n"
		"  reload         re-read nkd's --config file (as SIGHUP "
		"does)\n"
		"See nkctl(8).\n",
		NK_CTL_DEFAULT_PATH);
}

/*
 * Sends req (a QUERY or an ADMIN, seq 1), returns the whole text of the
 * reply (NUL-terminated) or NULL.
 */
static char *query(const char *path, const void *req, size_t reqlen,
		   int *status)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct nk_ctl_hdr q;
	char *text = NULL, *msg;
	size_t len = 0;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "nkctl: socket path too long: %s\n", path);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "nkctl: cannot reach nkd at %s: %s\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	memcpy(&q, req, sizeof(q));
	if (send(fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
		fprintf(stderr, "nkctl: sending to %s: %s\n", path,
			strerror(errno));
		close(fd);
		return NULL;
	}
	msg = malloc(NK_CTL_MAX_MSG);
	if (!msg) {
		close(fd);
		return NULL;
	}
	for (;;) {
		struct nk_ctl_query_reply r;
		ssize_t n = recv(fd, msg, NK_CTL_MAX_MSG, 0);
		size_t body;
		char *nt;

		if (n < (ssize_t)sizeof(r)) {
			fprintf(stderr, "nkctl: %s: %s\n", path,
				n < 0 ? strerror(errno)
				      : "connection closed by nkd");
			goto fail;
		}
		memcpy(&r, msg, sizeof(r));
		if (r.hdr.type != NK_CTL_QUERY_REPLY || r.hdr.len != n ||
		    r.hdr.seq != q.seq) {
			fprintf(stderr, "nkctl: %s: unexpected reply\n", path);
			goto fail;
		}
		*status = r.status;
		body = (size_t)n - sizeof(r);
		nt = realloc(text, len + body + 1);
		if (!nt)
			goto fail;
		text = nt;
		memcpy(text + len, msg + sizeof(r), body);
		len += body;
		text[len] = '\0';
		if (r.flags & NK_QUERY_F_LAST)
			break;
	}
	free(msg);
	close(fd);
	return text ? text : strdup("");
fail:
	free(msg);
	free(text);
	close(fd);
	return NULL;
}

/* A tiny reader for the flat JSON objects nkd writes. */
struct obj {
	int n;
	char key[MAX_COLS][32];
	char val[MAX_COLS][MAX_VAL];
};

static void skip_ws(const char **p)
{
	while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
		(*p)++;
}

static int read_string(const char **p, char *out, size_t max)
{
	size_t n = 0;

	if (**p != '"')
		return -1;
	(*p)++;
	while (**p && **p != '"') {
		char ch = **p;

		if (ch == '\\') {
			(*p)++;
			ch = **p;
			if (ch == 'u') {
				unsigned v;

				if (sscanf(*p + 1, "%4x", &v) != 1)
					return -1;
				ch = (char)v;
				*p += 4;
			} else if (!ch) {
				return -1;
			}
		}
		if (n + 1 < max)
			out[n++] = ch;
		(*p)++;
	}
	if (**p != '"')
		return -1;
	(*p)++;
	out[n] = '\0';
	return 0;
}

/* A member's "key": and the white space after it. */
static int read_key(const char **p, char *key, size_t max)
{
	if (read_string(p, key, max))
		return -1;
	skip_ws(p);
	if (**p != ':')
		return -1;
	(*p)++;
	skip_ws(p);
	return 0;
}

/*
 * The next member of an object whose '{' was read: 1 with its key read
 * and *p at the value, 0 at the closing '}' (taken), -1 on bad input.
 * Takes the ',' after the previous member's value.
 */
static int obj_member(const char **p, char *key, size_t max)
{
	skip_ws(p);
	if (**p == ',') {
		(*p)++;
		skip_ws(p);
	}
	if (**p == '}') {
		(*p)++;
		return 0;
	}
	return read_key(p, key, max) ? -1 : 1;
}

/*
 * A nested {"k":N,...} of counters (a guest's "refusals") as "k=N,..."
 * with the non-zero ones only, "0" if none.
 */
static int read_counts(const char **p, char *out, size_t max)
{
	char key[32];
	size_t n = 0;
	int m;

	out[0] = '\0';
	(*p)++;
	while ((m = obj_member(p, key, sizeof(key))) > 0) {
		char num[32];
		size_t k = strspn(*p, "0123456789");

		if (!k || k >= sizeof(num))
			return -1;
		memcpy(num, *p, k);
		num[k] = '\0';
		*p += k;
		if (strcmp(num, "0")) {
			int w = snprintf(out + n, max - n, "%s%s=%s",
					 n ? "," : "", key, num);

			if (w > 0 && (size_t)w < max - n)
				n += (size_t)w;
		}
	}
	if (m < 0)
		return -1;
	if (!n)
		snprintf(out, max, "0");
	return 0;
}

/* A string or a bare (number, true, ...) member value. */
static int read_scalar(const char **p, char *val, size_t max)
{
	size_t n;

	if (**p == '"')
		return read_string(p, val, max);
	n = strcspn(*p, ",}");
	if (n >= max || !n)
		return -1;
	memcpy(val, *p, n);
	val[n] = '\0';
	*p += n;
	return 0;
}

/* Reads {"k":v,...} with string, number or counter-object values. */
static int read_obj(const char **p, struct obj *o)
{
	char key[32], val[MAX_VAL];
	int m;

	o->n = 0;
	skip_ws(p);
	if (**p != '{')
		return -1;
	(*p)++;
	while ((m = obj_member(p, key, sizeof(key))) > 0) {
		if (**p == '{' ? read_counts(p, val, sizeof(val))
			       : read_scalar(p, val, sizeof(val)))
			return -1;
		if (o->n < MAX_COLS) {
			snprintf(o->key[o->n], sizeof(o->key[0]), "%s", key);
			snprintf(o->val[o->n], sizeof(o->val[0]), "%s", val);
			o->n++;
		}
	}
	return m;
}

/*
 * Prints {"k":v,...} one member a line; a nested object's members as
 * "k.sub" (status has "budget":{"sockets":{...},...}).
 */
static int print_flat(const char **p, const char *prefix)
{
	char key[32], full[128], val[MAX_VAL];
	int m;

	skip_ws(p);
	if (**p != '{')
		return -1;
	(*p)++;
	while ((m = obj_member(p, key, sizeof(key))) > 0) {
		snprintf(full, sizeof(full), "%s%s%s", prefix,
			 *prefix ? "." : "", key);
		if (**p == '{') {
			if (print_flat(p, full))
				return -1;
		} else {
			if (read_scalar(p, val, sizeof(val)))
				return -1;
			printf("%-10s %s\n", full, val);
		}
	}
	return m;
}

static int print_status(const char *text)
{
	const char *p = text;

	return print_flat(&p, "");
}

/* {"NAME":[{...},...]} as a table; column order from the first row. */
static int print_table(const char *text, const char *name)
{
	const char *p = text;
	struct obj *rows = NULL;
	int nrows = 0, width[MAX_COLS];
	char key[32];

	skip_ws(&p);
	if (*p++ != '{')
		return -1;
	skip_ws(&p);
	if (read_string(&p, key, sizeof(key)) || strcmp(key, name))
		return -1;
	skip_ws(&p);
	if (*p++ != ':')
		return -1;
	skip_ws(&p);
	if (*p++ != '[')
		return -1;
	for (;;) {
		struct obj *nr;

		skip_ws(&p);
		if (*p == ']')
			break;
		nr = realloc(rows, (size_t)(nrows + 1) * sizeof(*rows));
		if (!nr) {
			free(rows);
			return -1;
		}
		rows = nr;
		if (read_obj(&p, &rows[nrows])) {
			free(rows);
			return -1;
		}
		nrows++;
		skip_ws(&p);
		if (*p == ',')
			p++;
	}
	if (!nrows) {
		printf("(no %s)\n", name);
		free(rows);
		return 0;
	}
	for (int c = 0; c < rows[0].n; c++) {
		width[c] = (int)strlen(rows[0].key[c]);
		for (int r = 0; r < nrows; r++)
			if (c < rows[r].n &&
			    (int)strlen(rows[r].val[c]) > width[c])
				width[c] = (int)strlen(rows[r].val[c]);
	}
	for (int c = 0; c < rows[0].n; c++) {
		char up[32];

		for (size_t i = 0; i <= strlen(rows[0].key[c]); i++)
			up[i] = (char)(rows[0].key[c][i] >= 'a' &&
						       rows[0].key[c][i] <= 'z'
					       ? rows[0].key[c][i] - 32
					       : rows[0].key[c][i]);
		printf("%-*s%s", width[c], up, c + 1 < rows[0].n ? "  " : "\n");
	}
	for (int r = 0; r < nrows; r++)
		for (int c = 0; c < rows[0].n; c++)
			printf("%-*s%s", width[c],
			       c < rows[r].n ? rows[r].val[c] : "",
			       c + 1 < rows[0].n ? "  " : "\n");
	free(rows);
	return 0;
}

/* evict GUEST | set GUEST key=value... | reload */
static int admin(const char *path, int argc, char **argv)
{
	struct nk_ctl_admin a;
	const char *cmd = argv[0];
	int status = 0, need_guest;
	size_t n = 0;
	char *text;

	memset(&a, 0, sizeof(a));
	a.hdr.type = NK_CTL_ADMIN;
	a.hdr.len = sizeof(a);
	a.hdr.seq = 1;
	if (!strcmp(cmd, "evict")) {
		a.cmd = NK_ADMIN_EVICT;
		need_guest = argc == 2;
	} else if (!strcmp(cmd, "set")) {
		a.cmd = NK_ADMIN_SET;
		need_guest = argc >= 3;
	} else {
		a.cmd = NK_ADMIN_RELOAD;
		need_guest = -(argc == 1);
	}
	if (!need_guest) {
		usage(stderr);
		return 2;
	}
	if (need_guest > 0) {
		if (strlen(argv[1]) >= sizeof(a.guest) || !argv[1][0]) {
			fprintf(stderr, "nkctl: bad guest name '%s'\n",
				argv[1]);
			return 2;
		}
		strcpy(a.guest, argv[1]);
	}
	for (int i = 2; i < argc; i++) {
		size_t k = strlen(argv[i]);

		if (n + k + 2 > sizeof(a.arg)) {
			fprintf(stderr,
				"nkctl: set: more than %zu bytes of "
				"key=value words\n",
				sizeof(a.arg) - 1);
			return 2;
		}
		if (n)
			a.arg[n++] = ' ';
		memcpy(a.arg + n, argv[i], k);
		n += k;
	}
	text = query(path, &a, sizeof(a), &status);
	if (!text)
		return 1;
	if (status == -EPERM) {
		fprintf(stderr, "nkctl: refused: %s\n",
			*text ? text : strerror(-status));
		free(text);
		return 3;
	}
	if (status) {
		fprintf(stderr, "nkctl: %s: %s\n", cmd,
			*text ? text : strerror(-status));
		free(text);
		return 4;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		const char *cmd;
		uint32_t what;
	} cmds[] = {
		{ "status", NK_QUERY_STATUS },	 { "guests", NK_QUERY_GUESTS },
		{ "sockets", NK_QUERY_SOCKETS }, { "nsms", NK_QUERY_NSMS },
		{ "stats", NK_QUERY_STATS },
	};
	const char *path = NK_CTL_DEFAULT_PATH, *cmd = NULL;
	bool json = false;
	uint32_t what = 0;
	int opt, status = 0, ret;
	struct nk_ctl_query q = {
		.hdr = { .type = NK_CTL_QUERY, .len = sizeof(q), .seq = 1 },
	};
	char *text;

	while ((opt = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc &&
	    (!strcmp(argv[optind], "evict") || !strcmp(argv[optind], "set") ||
	     !strcmp(argv[optind], "reload")))
		return admin(path, argc - optind, argv + optind);
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmd, cmds[i].cmd))
			what = cmds[i].what;
	if (!what) {
		fprintf(stderr, "nkctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	q.what = what;
	text = query(path, &q, sizeof(q), &status);
	if (!text)
		return 1;
	if (status) {
		if (*text)
			fprintf(stderr, "nkctl: refused: %s\n", text);
		else
			fprintf(stderr, "nkctl: nkd at %s refused '%s': %s\n",
				path, cmd, strerror(-status));
		free(text);
		return 3;
	}
	if (json || what == NK_QUERY_STATS)
		ret = fputs(text, stdout) < 0 ? -1 : 0;
	else if (what == NK_QUERY_STATUS)
		ret = print_status(text);
	else
		ret = print_table(text, cmd);
	if (ret)
		fprintf(stderr, "nkctl: cannot parse nkd's answer:\n%s\n",
			text);
	free(text);
	return ret ? 1 : 0;
}
