// SPDX-License-Identifier: MIT
/*
 * nkctl: the operator's view of nkd, and its hand. Sends one NK_CTL_QUERY
 * (or NK_CTL_ADMIN for evict, set, reload) on the control socket, collects
 * the reply chunks until NK_QUERY_F_LAST, and prints them: as is with
 * --json (and for stats, which is Prometheus text), or as a table made
 * from the JSON objects nkd sends (read with json-c); a command's reply
 * is a message.
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

#include <json.h>

#include "netkernel/ctl.h"
#include "netkernel/version.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nkctl [--socket PATH] "
		"status|guests|sockets|nsms|stats\n"
		"             [--json | --pretty] [--guest NAME]\n"
		"       nkctl [--socket PATH] evict GUEST\n"
		"       nkctl [--socket PATH] set GUEST key=value...\n"
		"       nkctl [--socket PATH] reload\n"
		"  --socket PATH  nkd control socket (default %s)\n"
		"  --json         print nkd's JSON answer (null: not "
		"applicable)\n"
		"  --pretty       the JSON answer indented (implies --json)\n"
		"  --guest NAME   only NAME's rows (guests, sockets, stats)\n"
		"  --version      print nkctl's version\n"
		"  evict GUEST    disconnect all processes of GUEST, close its "
		"sockets\n"
		"  set GUEST k=v  change GUEST's quotas and rules now (keys of "
		"a guest line:\n"
		"                 max_sockets max_inflight max_conns weight "
		"bufs uid bind\n"
		"                 acl_allow acl_deny egress host_access rate "
		"rate_tx rate_rx\n"
		"                 burst shm shm_peers)\n"
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

/* Parses nkd's whole answer; NULL (with the reason printed) if bad. */
static struct json_object *parse(const char *text)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	size_t len = strlen(text);

	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success) {
		fprintf(stderr, "nkctl: cannot parse nkd's answer: %s\n",
			json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(o);
		o = NULL;
	} else if (json_tokener_get_parse_end(tok) < len &&
		   text[json_tokener_get_parse_end(tok) +
			strspn(text + json_tokener_get_parse_end(tok),
			       " \t\r\n")]) {
		fprintf(stderr, "nkctl: cannot parse nkd's answer: "
				"trailing data\n");
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* A growing string for table cells. */
struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *np = realloc(b->p, cap);

		if (!np) {
			perror("nkctl");
			exit(1);
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

static bool is_zero(struct json_object *v)
{
	return json_object_is_type(v, json_type_int) &&
	       json_object_get_uint64(v) == 0 && json_object_get_int64(v) == 0;
}

/*
 * A value as a table cell: null "-" (not applicable), a string as is, an
 * object as "key=value,..." without its zero counters ("0" if all are:
 * a guest's refusals), an array as its elements joined by "," with the
 * members of an object element joined by "/" (a socket's holders,
 * "pid/comm").
 */
static void cell(struct buf *b, struct json_object *v, bool in_array);

/* An object's non-zero members as "k=v,..."; nested ones as "k.sub=v". */
static void cell_members(struct buf *b, struct json_object *v,
			 const char *prefix, bool *any)
{
	json_object_object_foreach(v, key, val)
	{
		if (json_object_is_type(val, json_type_object)) {
			char full[256];

			snprintf(full, sizeof(full), "%s%s.", prefix, key);
			cell_members(b, val, full, any);
			continue;
		}
		if (is_zero(val))
			continue;
		if (*any)
			buf_add(b, ",");
		buf_add(b, prefix);
		buf_add(b, key);
		buf_add(b, "=");
		cell(b, val, true);
		*any = true;
	}
}

static void cell(struct buf *b, struct json_object *v, bool in_array)
{
	bool any = false;

	switch (json_object_get_type(v)) {
	case json_type_null:
		buf_add(b, "-");
		return;
	case json_type_string:
		buf_add(b, json_object_get_string(v));
		return;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (i)
				buf_add(b, ",");
			cell(b, json_object_array_get_idx(v, i), true);
		}
		if (!json_object_array_length(v))
			buf_add(b, "-");
		return;
	case json_type_object: {
		if (!in_array) {
			cell_members(b, v, "", &any);
		} else {
			json_object_object_foreach(v, key, val)
			{
				(void)key;
				if (any)
					buf_add(b, "/");
				cell(b, val, true);
				any = true;
			}
		}
		if (!any)
			buf_add(b, in_array ? "-" : "0");
		return;
	}
	default:
		buf_add(b, json_object_to_json_string_ext(
				   v, JSON_C_TO_STRING_PLAIN));
		return;
	}
}

/*
 * An object one member a line, a nested object's members as "k.sub"
 * (status has "budget":{"sockets":{...},...}).
 */
static void print_flat(struct json_object *o, const char *prefix)
{
	json_object_object_foreach(o, key, val)
	{
		char full[256];

		snprintf(full, sizeof(full), "%s%s%s", prefix,
			 *prefix ? "." : "", key);
		if (json_object_is_type(val, json_type_object)) {
			print_flat(val, full);
		} else {
			struct buf b = { 0 };

			cell(&b, val, false);
			printf("%-10s %s\n", full, b.p ? b.p : "");
			free(b.p);
		}
	}
}

/* {"NAME":[{...},...]} as a table; column order from the first row. */
static int print_table(struct json_object *rows, const char *name)
{
	size_t nrows = json_object_array_length(rows), ncols = 0, c, r;
	struct json_object *first;
	const char **keys = NULL;
	char **cells;
	int *width;

	if (!nrows) {
		printf("(no %s)\n", name);
		return 0;
	}
	first = json_object_array_get_idx(rows, 0);
	if (!json_object_is_type(first, json_type_object))
		return -1;
	ncols = (size_t)json_object_object_length(first);
	keys = calloc(ncols + 1, sizeof(*keys));
	width = calloc(ncols + 1, sizeof(*width));
	cells = calloc(nrows * ncols + 1, sizeof(*cells));
	if (!keys || !width || !cells) {
		free(keys);
		free(width);
		free(cells);
		return -1;
	}
	c = 0;
	{
		json_object_object_foreach(first, key, val)
		{
			(void)val;
			keys[c] = key;
			width[c] = (int)strlen(key);
			c++;
		}
	}
	for (r = 0; r < nrows; r++) {
		struct json_object *row = json_object_array_get_idx(rows, r);

		for (c = 0; c < ncols; c++) {
			struct json_object *v = NULL;
			struct buf b = { 0 };

			if (json_object_is_type(row, json_type_object) &&
			    json_object_object_get_ex(row, keys[c], &v))
				cell(&b, v, false);
			else
				buf_add(&b, "");
			cells[r * ncols + c] = b.p;
			if ((int)b.len > width[c])
				width[c] = (int)b.len;
		}
	}
	for (c = 0; c < ncols; c++) {
		for (const char *k = keys[c]; *k; k++)
			putchar(*k >= 'a' && *k <= 'z' ? *k - 32 : *k);
		printf("%*s",
		       c + 1 < ncols ? width[c] - (int)strlen(keys[c]) + 2 : 0,
		       "");
		if (c + 1 == ncols)
			putchar('\n');
	}
	for (r = 0; r < nrows; r++)
		for (c = 0; c < ncols; c++) {
			const char *v = cells[r * ncols + c];

			if (c + 1 < ncols)
				printf("%-*s  ", width[c], v);
			else
				printf("%s\n", v);
		}
	for (r = 0; r < nrows * ncols; r++)
		free(cells[r]);
	free(cells);
	free(width);
	free(keys);
	return 0;
}

/* The guest a row belongs to: "guest" in sockets, "name" in guests. */
static const char *row_guest(struct json_object *row, const char *list)
{
	struct json_object *v;

	if (!json_object_object_get_ex(
		    row, strcmp(list, "guests") ? "guest" : "name", &v))
		return NULL;
	return json_object_get_string(v);
}

/*
 * Keeps the rows of guest in doc's list (in place): nkd answers for all
 * guests, the operator asked about one.
 */
static void filter_rows(struct json_object *rows, const char *list,
			const char *guest)
{
	size_t i = json_object_array_length(rows);

	while (i--) {
		const char *g =
			row_guest(json_object_array_get_idx(rows, i), list);

		if (!g || strcmp(g, guest))
			json_object_array_del_idx(rows, i, 1);
	}
}

/* Prometheus text: the lines of other guests go, the rest stays. */
static void print_stats(const char *text, const char *guest)
{
	char label[160];

	if (!guest) {
		fputs(text, stdout);
		return;
	}
	snprintf(label, sizeof(label), "guest=\"%s\"", guest);
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		const char *g = memmem(p, n, "guest=\"", 7);

		/* Lines without a guest label (HELP, TYPE, totals) stay. */
		if (!g || memmem(p, n, label, strlen(label)) == g) {
			fwrite(p, 1, n, stdout);
			putchar('\n');
		}
		p += n;
		if (*p)
			p++;
	}
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

/*
 * Prints a query's answer: Prometheus text for stats, else nkd's JSON
 * (as is, or re-written when filtered or pretty) or a table of it.
 */
static int show(const char *cmd, uint32_t what, const char *text, bool json,
		bool pretty, const char *guest)
{
	struct json_object *doc, *rows = NULL;
	int ret = 0;

	if (what == NK_QUERY_STATS) {
		print_stats(text, guest);
		return 0;
	}
	if (json && !pretty && !guest) {
		fputs(text, stdout);
		return 0;
	}
	doc = parse(text);
	if (!doc)
		return -1;
	if (what != NK_QUERY_STATUS &&
	    (!json_object_object_get_ex(doc, cmd, &rows) ||
	     !json_object_is_type(rows, json_type_array))) {
		fprintf(stderr, "nkctl: nkd's answer has no \"%s\" list\n",
			cmd);
		json_object_put(doc);
		return -1;
	}
	if (guest && rows)
		filter_rows(rows, cmd, guest);
	if (json)
		printf("%s\n",
		       json_object_to_json_string_ext(
			       doc, (pretty ? JSON_C_TO_STRING_PRETTY
					    : JSON_C_TO_STRING_PLAIN) |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (what == NK_QUERY_STATUS)
		print_flat(doc, "");
	else
		ret = print_table(rows, cmd);
	json_object_put(doc);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "guest", required_argument, NULL, 'g' },
		{ "version", no_argument, NULL, 'V' },
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
	const char *path = NK_CTL_DEFAULT_PATH, *cmd = NULL, *guest = NULL;
	bool json = false, pretty = false;
	uint32_t what = 0;
	int opt, status = 0, ret;
	struct nk_ctl_query q = {
		.hdr = { .type = NK_CTL_QUERY, .len = sizeof(q), .seq = 1 },
	};
	char *text;

	while ((opt = getopt_long(argc, argv, "s:jpg:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'p':
			json = pretty = true;
			break;
		case 'g':
			guest = optarg;
			break;
		case 'V':
			printf("nkctl (netkernel) %s\n", NK_VERSION_STRING);
			return 0;
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
	     !strcmp(argv[optind], "reload"))) {
		if (json || guest) {
			fprintf(stderr,
				"nkctl: %s takes no --json, --pretty "
				"or --guest\n",
				argv[optind]);
			return 2;
		}
		return admin(path, argc - optind, argv + optind);
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
	if (guest && (what == NK_QUERY_STATUS || what == NK_QUERY_NSMS)) {
		fprintf(stderr,
			"nkctl: --guest applies to guests, sockets and "
			"stats, not %s\n",
			cmd);
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
	ret = show(cmd, what, text, json, pretty, guest);
	free(text);
	return ret ? 1 : 0;
}
