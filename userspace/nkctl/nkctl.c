// SPDX-License-Identifier: MIT
/*
 * nkctl: the operator's view of nkd. Sends one NK_CTL_QUERY on the control
 * socket, collects the reply chunks until NK_QUERY_F_LAST, and prints them:
 * as is with --json (and for stats, which is Prometheus text), or as a
 * table made from the flat JSON objects nkd sends.
 *
 * Exit status: 0 ok, 1 nkd not reachable or bad reply, 2 usage,
 * 3 nkd refused the query.
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
		"  --socket PATH  nkd control socket (default %s)\n"
		"  --json         print nkd's JSON answer as is\n"
		"See nkctl(8).\n",
		NK_CTL_DEFAULT_PATH);
}

/* Sends the query, returns the whole text (NUL-terminated) or NULL. */
static char *query(const char *path, uint32_t what, int *status)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct nk_ctl_query q = {
		.hdr = { .type = NK_CTL_QUERY, .len = sizeof(q), .seq = 1 },
		.what = what
	};
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
	if (send(fd, &q, sizeof(q), MSG_NOSIGNAL) != sizeof(q)) {
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
		    r.hdr.seq != q.hdr.seq) {
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

/* Reads {"k":v,...} with string or number values. */
static int read_obj(const char **p, struct obj *o)
{
	o->n = 0;
	skip_ws(p);
	if (**p != '{')
		return -1;
	(*p)++;
	for (;;) {
		char key[32], val[MAX_VAL];

		skip_ws(p);
		if (**p == '}') {
			(*p)++;
			return 0;
		}
		if (read_string(p, key, sizeof(key)))
			return -1;
		skip_ws(p);
		if (**p != ':')
			return -1;
		(*p)++;
		skip_ws(p);
		if (**p == '"') {
			if (read_string(p, val, sizeof(val)))
				return -1;
		} else {
			size_t n = strcspn(*p, ",}");

			if (n >= sizeof(val) || !n)
				return -1;
			memcpy(val, *p, n);
			val[n] = '\0';
			*p += n;
		}
		if (o->n < MAX_COLS) {
			snprintf(o->key[o->n], sizeof(o->key[0]), "%s", key);
			snprintf(o->val[o->n], sizeof(o->val[0]), "%s", val);
			o->n++;
		}
		skip_ws(p);
		if (**p == ',')
			(*p)++;
	}
}

static int print_status(const char *text)
{
	const char *p = text;
	struct obj o;

	if (read_obj(&p, &o))
		return -1;
	for (int i = 0; i < o.n; i++)
		printf("%-10s %s\n", o.key[i], o.val[i]);
	return 0;
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
	text = query(path, what, &status);
	if (!text)
		return 1;
	if (status) {
		fprintf(stderr, "nkctl: nkd at %s refused '%s': %s\n", path,
			cmd, strerror(-status));
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
