// SPDX-License-Identifier: MIT
/*
 * QUERY answers: JSON documents for nkctl (shapes in docs/nkd.md and
 * nkctl(8)) and Prometheus text exposition for NK_QUERY_STATS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "nsm_shm.h"

struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
		char *np = realloc(b->p, ncap);

		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

/* Names are restricted to [A-Za-z0-9._-], but escape anyway. */
static void sb_str(struct sb *b, const char *s)
{
	sb_printf(b, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			sb_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			sb_printf(b, "\\u%04x", ch);
		else
			sb_printf(b, "%c", ch);
	}
	sb_printf(b, "\"");
}

/* "Not applicable" is null in JSON (nkctl(8)), not a made-up string. */
static void sb_str_or_null(struct sb *b, const char *s)
{
	if (s && *s)
		sb_str(b, s);
	else
		sb_printf(b, "null");
}

/*
 * The command name of pid, read at query time: an operator's question,
 * not a guest's, and /proc reads do not wait on anything. "" if gone.
 */
static void proc_comm(pid_t pid, char *out, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0)
		n = 0;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	/* A guest sets its own comm (prctl): keep the JSON valid UTF-8. */
	for (char *q = out; *q; q++)
		if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
			*q = '?';
}

/* {"pid":N,"comm":S}, null for what is not known. */
static void q_holder_pid(struct sb *b, pid_t pid)
{
	char comm[32];

	if (pid <= 0) {
		sb_printf(b, "{\"pid\":null,\"comm\":null");
		return;
	}
	proc_comm(pid, comm, sizeof(comm));
	sb_printf(b, "{\"pid\":%d,\"comm\":", (int)pid);
	sb_str_or_null(b, comm);
}

/*
 * ,"holders":[{"pid":N,"comm":"..."},...]: the attached processes that
 * hold s (nkd's pid namespace). A pending fork or exec hand-over holds it
 * too: {"pid":...,"comm":...,"handover":"fork"|"exec"}, with the process
 * that will take it over when nkd knows it (exec: the same pid; fork: the
 * child once it is known), else null.
 */
static void q_holders(struct nk_engine *e, struct sb *b,
		      const struct nk_guest *g, const struct nk_sock *s)
{
	const struct nk_list *p;

	sb_printf(b, ",\"holders\":[");
	for (uint32_t i = 0; i < s->nr_holders; i++) {
		const void *h = s->holders[i];
		const struct nk_handover *ho = NULL;
		const struct nk_conn *c = NULL;

		for (p = g->conns.next; p != &g->conns && !c; p = p->next) {
			const struct nk_conn *k =
				nk_container_of(p, struct nk_conn, glink);

			if ((const void *)k == h)
				c = k;
		}
		for (uint32_t j = 0; !c && !ho && j < e->hos_cap; j++)
			if (e->hos[j]->used && (const void *)e->hos[j] == h)
				ho = e->hos[j];
		sb_printf(b, "%s", i ? "," : "");
		if (ho) {
			q_holder_pid(b, ho->is_exec ? ho->owner_pid
						    : ho->child_pid);
			sb_printf(b, ",\"handover\":\"%s\"}",
				  ho->is_exec ? "exec" : "fork");
			continue;
		}
		q_holder_pid(b, c ? c->pid : 0);
		sb_printf(b, "}");
	}
	sb_printf(b, "]");
}

const char *nk_sock_state__name(enum nk_sock_state st)
{
	static const char *const names[] = {
		[NK_SS_UNBOUND] = "UNBOUND",
		[NK_SS_BOUND] = "BOUND",
		[NK_SS_LISTEN] = "LISTEN",
		[NK_SS_CONNECTING] = "CONNECTING",
		[NK_SS_ESTABLISHED] = "ESTABLISHED",
		[NK_SS_CLOSE_WAIT] = "CLOSE_WAIT",
		[NK_SS_CLOSED] = "CLOSED",
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st]
							       : "?";
}

static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		out[0] = '\0';
	}
}

static void q_status(struct nk_engine *e, struct sb *b)
{
	char budget[1024];

	nk_budget__json(e, budget, sizeof(budget));
	sb_printf(b,
		  "{\"version\":\"%s\",\"pid\":%d,\"uptime_s\":%lld,"
		  "\"epoch\":\"%llu\",\"guests\":%u,\"conns\":%u,"
		  "\"sockets\":%llu,\"nsms\":%u,\"budget\":%s}\n",
		  NK_VERSION, (int)getpid(),
		  (long long)((nk_now_ns() - e->start_ns) / 1000000000ll),
		  (unsigned long long)e->epoch, e->nr_guests, e->nr_conns,
		  (unsigned long long)e->nr_socks, e->nr_nsms, budget);
}

static uint32_t guest_live_socks(const struct nk_guest *g)
{
	uint32_t n = 0;

	for (uint32_t i = 1; i < g->cap; i++)
		if (g->socks[i] && !g->socks[i]->closing)
			n++;
	return n;
}

/* The NSM's data-path counters of g (XDP for afxdp), zero if none. */
static void guest_xdp(const struct nk_guest *g, struct nk_nsm_guest_stats *xs)
{
	memset(xs, 0, sizeof(*xs));
	if (g->nsm->ops->guest_stats)
		g->nsm->ops->guest_stats(g->nsm->priv, g->id, xs);
}

/* ,"refusals":{"sockets":N,...} with every reason (refusal.h). */
static void q_refusals(struct sb *b, const struct nk_refusals *r)
{
	sb_printf(b, ",\"refusals\":{");
	for (unsigned i = 0; i < NK_REFUSAL__MAX; i++)
		sb_printf(b, "%s\"%s\":%llu", i ? "," : "",
			  nk_refusal__name((enum nk_refusal)i),
			  (unsigned long long)r->count[i]);
	sb_printf(b, "}");
}

/* The caps (bits/s, 0: none) and their buckets (ratelimit.c). */
static void q_rate(struct sb *b, const struct nk_guest *g)
{
	int64_t now = nk_now_ns();

	for (int d = 0; d < NK_RATE_DIRS; d++) {
		const char *n = d == NK_RATE_TX ? "tx" : "rx";

		sb_printf(
			b,
			",\"rate_%s\":%llu,\"rate_%s_bytes\":%llu,"
			"\"rate_%s_throttled_ms\":%llu",
			n, (unsigned long long)g->conf.rate_bps[d], n,
			(unsigned long long)g->rate.dir[d].passed, n,
			(unsigned long long)(nk_rate__throttled_ns(g, d, now) /
					     1000000));
	}
}

/* The byte scheduler's counters (sched.c). */
static void q_sched(struct sb *b, const struct nk_guest *g)
{
	int64_t now = nk_now_ns();

	for (int d = 0; d < NK_SCHED_DIRS; d++) {
		const struct nk_sched_q *q = &g->sched.dir[d];
		const char *n = d == NK_SCHED_TX ? "tx" : "rx";

		sb_printf(b,
			  ",\"sched_%s_bytes\":%llu,\"sched_%s_holds\":%llu,"
			  "\"sched_%s_held\":%u,\"sched_%s_held_ms\":%llu",
			  n, (unsigned long long)q->bytes, n,
			  (unsigned long long)q->nr_holds, n, q->nr_held, n,
			  (unsigned long long)(nk_sched__held_ns(g, d, now) /
					       1000000));
	}
	/* Times its SENDs were found waiting for their own peers. */
	sb_printf(
		b, ",\"sched_tx_peer_limited\":%llu",
		(unsigned long long)g->sched.dir[NK_SCHED_TX].nr_peer_limited);
}

static void q_guests(struct nk_engine *e, struct sb *b)
{
	struct nk_list *p, *t;
	bool first = true;
	struct nk_nsm_guest_stats xs;

	sb_printf(b, "{\"guests\":[");
	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		sb_printf(b, "%s{\"name\":", first ? "" : ",");
		sb_str(b, g->conf.name);
		/* Its processes' transport: a VM's channel or this host's
		 * control socket (docs/vm.md). */
		sb_printf(b, ",\"kind\":\"%s\",\"nsm\":",
			  g->conf.vm_channel[0] ? "vm" : "local");
		sb_str(b, g->nsm->conf.name);
		guest_xdp(g, &xs);
		sb_printf(b,
			  ",\"conns\":%u,\"sockets\":%u,\"inflight\":%u,"
			  "\"bytes_tx\":%llu,\"bytes_rx\":%llu,\"ops\":%llu,"
			  "\"errors\":%llu,\"abuse\":%llu,"
			  "\"disconnects\":%llu,\"xdp_packets\":%llu,"
			  "\"xdp_bytes\":%llu,\"xdp_drops\":%llu",
			  g->nr_conns, guest_live_socks(g), g->inflight,
			  (unsigned long long)g->c.bytes_tx,
			  (unsigned long long)g->c.bytes_rx,
			  (unsigned long long)g->c.ops,
			  (unsigned long long)g->c.errors,
			  (unsigned long long)g->c.abuse,
			  (unsigned long long)g->c.disconnects,
			  (unsigned long long)xs.packets,
			  (unsigned long long)xs.bytes,
			  (unsigned long long)xs.drops);
		/* Rests for spinning on nothing (idlerest.c). */
		sb_printf(b, ",\"idle_rests\":%llu",
			  (unsigned long long)g->rest.rests);
		/* Data pushed into a waiting standing RECV (rxpark.c). */
		sb_printf(b, ",\"rx_pushed\":%llu",
			  (unsigned long long)g->c.rx_pushed);
		q_rate(b, g);
		q_sched(b, g);
		q_refusals(b, &g->refused);
		sb_printf(b, "}");
		first = false;
	}
	sb_printf(b, "]}\n");
}

static void q_sockets(struct nk_engine *e, struct sb *b)
{
	struct nk_list *p, *t;
	bool first = true;

	sb_printf(b, "{\"sockets\":[");
	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		for (uint32_t i = 1; i < g->cap; i++) {
			struct nk_sock *s = g->socks[i];
			struct sockaddr_storage ss;
			socklen_t len;
			char local[64] = "", remote[64] = "";

			if (!s || s->closing)
				continue;
			if (!s->nsm->ops->sock_name(s->nsm->priv, s, false, &ss,
						    &len))
				fmt_addr(&ss, local, sizeof(local));
			if (!s->nsm->ops->sock_name(s->nsm->priv, s, true, &ss,
						    &len))
				fmt_addr(&ss, remote, sizeof(remote));
			sb_printf(b, "%s{\"guest\":", first ? "" : ",");
			sb_str(b, g->conf.name);
			sb_printf(b, ",\"conn\":%u,\"handle\":%u,\"nsm\":",
				  s->conn_id, s->handle);
			sb_str(b, s->nsm->conf.name);
			sb_printf(b,
				  ",\"family\":\"%s\",\"type\":\"%s\","
				  "\"state\":\"%s\",\"local\":",
				  s->family == AF_INET6 ? "inet6" : "inet",
				  s->type == SOCK_DGRAM ? "dgram" : "stream",
				  nk_sock_state__name(s->state));
			sb_str_or_null(b, local);
			sb_printf(b, ",\"remote\":");
			sb_str_or_null(b, remote);
			sb_printf(b, ",\"refs\":%u", s->nr_holders);
			q_holders(e, b, g, s);
			sb_printf(b,
				  ",\"bytes_tx\":%llu,\"bytes_rx\":%llu,"
				  "\"ops\":%llu,\"errors\":%llu}",
				  (unsigned long long)s->bytes_tx,
				  (unsigned long long)s->bytes_rx,
				  (unsigned long long)s->ops,
				  (unsigned long long)s->errors);
			first = false;
		}
	}
	sb_printf(b, "]}\n");
}

/*
 * ,"stack":{"name":N,...,"name":{"reason":N,...}}: the NSM's stack
 * counters (nsm.h counters()), null for an NSM without.
 */
static void q_stack(struct sb *b, const struct nk_nsm *n)
{
	struct nk_nsm_counter c[NK_NSM_MAX_COUNTERS];
	unsigned nc = 0;

	if (n && n->ops->counters)
		nc = n->ops->counters(n->priv, c, NK_NSM_MAX_COUNTERS);
	if (nc > NK_NSM_MAX_COUNTERS)
		nc = NK_NSM_MAX_COUNTERS;
	if (!nc) {
		sb_printf(b, ",\"stack\":null");
		return;
	}
	sb_printf(b, ",\"stack\":{");
	for (unsigned i = 0; i < nc; i++) {
		bool group = c[i].reason;
		bool first = !i || !c[i - 1].reason ||
			     strcmp(c[i - 1].name, c[i].name);
		bool last = i + 1 == nc || !c[i + 1].reason ||
			    strcmp(c[i + 1].name, c[i].name);

		if (!group) {
			sb_printf(b, "%s\"%s\":%llu", i ? "," : "", c[i].name,
				  (unsigned long long)c[i].value);
			continue;
		}
		if (first)
			sb_printf(b, "%s\"%s\":{", i ? "," : "", c[i].name);
		sb_printf(b, "%s\"%s\":%llu%s", first ? "" : ",", c[i].reason,
			  (unsigned long long)c[i].value, last ? "}" : "");
	}
	sb_printf(b, "}");
}

/*
 * The shm NSM, which no nsm line configures: the same columns as the
 * others (nkctl's table takes the first row's), its own under "shm".
 */
static void q_nsm_shm(struct nk_engine *e, struct sb *b)
{
	struct nk_shm_stats st;

	nk_shm__stats(e, &st);
	sb_printf(b,
		  "%s{\"name\":\"shm\",\"type\":\"shm\",\"netns\":null,"
		  "\"guests\":%u,\"sockets\":%u,\"dev\":null,\"addrs\":null,"
		  "\"queues\":0,\"backend\":null,\"stack\":null,"
		  "\"shm\":{\"listeners\":%u,"
		  "\"joined\":%llu,\"rx_queues\":%llu,\"rx_queue_bytes\":%llu,"
		  "\"queued\":%llu,\"queue_refused\":%llu}}",
		  e->nr_nsms ? "," : "", st.guests, st.sockets, st.listeners,
		  (unsigned long long)st.joined, (unsigned long long)st.queues,
		  (unsigned long long)st.queue_bytes,
		  (unsigned long long)st.queued,
		  (unsigned long long)st.queue_refused);
}

static void q_nsms(struct nk_engine *e, struct sb *b)
{
	char dev[32], addrs[200], backend[160];
	unsigned queues;

	sb_printf(b, "{\"nsms\":[");
	for (unsigned i = 0; i < e->nr_nsms; i++) {
		struct nk_nsm *n = &e->nsms[i];

		sb_printf(b, "%s{\"name\":", i ? "," : "");
		sb_str(b, n->conf.name);
		sb_printf(b, ",\"type\":");
		sb_str(b, n->conf.type);
		sb_printf(b, ",\"netns\":");
		sb_str(b, n->conf.netns[0] ? n->conf.netns : "self");
		sb_printf(b, ",\"guests\":%u,\"sockets\":%u", n->nr_guests,
			  n->nr_socks);
		/* Same columns for every type: nkctl's table takes the first
		 * row's keys. */
		dev[0] = addrs[0] = backend[0] = '\0';
		queues = 0;
		if (n->ops->describe)
			n->ops->describe(n->priv, dev, sizeof(dev), addrs,
					 sizeof(addrs), &queues, backend,
					 sizeof(backend));
		sb_printf(b, ",\"dev\":");
		sb_str_or_null(b, dev);
		sb_printf(b, ",\"addrs\":");
		sb_str_or_null(b, addrs);
		sb_printf(b, ",\"queues\":%u,\"backend\":", queues);
		sb_str_or_null(b, backend);
		q_stack(b, n);
		sb_printf(b, ",\"shm\":null}");
	}
	q_nsm_shm(e, b);
	sb_printf(b, "]}\n");
}

static void prom_guest(struct sb *b, struct nk_engine *e, const char *name,
		       const char *help, const char *type, size_t off,
		       bool is64)
{
	struct nk_list *p, *t;

	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);
		const char *base = (const char *)g + off;
		unsigned long long v = is64 ? *(const uint64_t *)base
					    : *(const uint32_t *)base;

		sb_printf(b, "%s{guest=\"%s\",nsm=\"%s\"} %llu\n", name,
			  g->conf.name, g->nsm->conf.name, v);
	}
}

/* Per-guest XDP counters of afxdp NSMs (summed over CPUs). */
static void prom_xdp(struct sb *b, struct nk_engine *e)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} m[] = {
		{ "netkernel_guest_xdp_packets_total",
		  "Frames the XDP program steered to the guest.",
		  offsetof(struct nk_nsm_guest_stats, packets) },
		{ "netkernel_guest_xdp_bytes_total",
		  "Bytes (L2 frames) steered to the guest.",
		  offsetof(struct nk_nsm_guest_stats, bytes) },
		{ "netkernel_guest_xdp_drops_total",
		  "Frames for the guest dropped in XDP (source ACL).",
		  offsetof(struct nk_nsm_guest_stats, drops) },
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		struct nk_list *p, *t;

		sb_printf(b, "# HELP %s %s\n# TYPE %s counter\n", m[i].name,
			  m[i].help, m[i].name);
		nk_list__for_each_safe(p, t, &e->guests)
		{
			struct nk_guest *g =
				nk_container_of(p, struct nk_guest, link);
			struct nk_nsm_guest_stats xs;

			if (!g->nsm->ops->guest_stats ||
			    g->nsm->ops->guest_stats(g->nsm->priv, g->id, &xs))
				continue;
			sb_printf(b, "%s{guest=\"%s\",nsm=\"%s\"} %llu\n",
				  m[i].name, g->conf.name, g->nsm->conf.name,
				  (unsigned long long)*(
					  const uint64_t *)((const char *)&xs +
							    m[i].off));
		}
	}
}

/*
 * The NSMs' stack counters (nsm.h counters()) as
 * netkernel_nsm_stack_NAME_total{nsm,type[,reason]}: one family a name,
 * its samples from every NSM that has it, together as the format wants.
 */
static void prom_stack(struct sb *b, struct nk_engine *e)
{
	struct nk_nsm_counter(*c)[NK_NSM_MAX_COUNTERS];
	unsigned *nc;

	if (!e->nr_nsms)
		return;
	c = calloc(e->nr_nsms, sizeof(*c));
	nc = calloc(e->nr_nsms, sizeof(*nc));
	if (!c || !nc) {
		b->oom = true;
		goto out;
	}
	for (unsigned i = 0; i < e->nr_nsms; i++) {
		struct nk_nsm *n = &e->nsms[i];

		if (n->ops->counters)
			nc[i] = n->ops->counters(n->priv, c[i],
						 NK_NSM_MAX_COUNTERS);
		if (nc[i] > NK_NSM_MAX_COUNTERS)
			nc[i] = NK_NSM_MAX_COUNTERS;
	}
	for (unsigned i = 0; i < e->nr_nsms; i++)
		for (unsigned j = 0; j < nc[i]; j++) {
			const char *name = c[i][j].name;
			bool seen = false;

			/* Its family is out already when met before. */
			for (unsigned k = 0; k <= i && !seen; k++)
				for (unsigned m = 0;
				     m < (k < i ? nc[k] : j) && !seen; m++)
					seen = !strcmp(c[k][m].name, name);
			if (seen)
				continue;
			sb_printf(b,
				  "# HELP netkernel_nsm_stack_%s_total %s\n"
				  "# TYPE netkernel_nsm_stack_%s_total "
				  "counter\n",
				  name, c[i][j].help, name);
			for (unsigned k = i; k < e->nr_nsms; k++)
				for (unsigned m = 0; m < nc[k]; m++) {
					if (strcmp(c[k][m].name, name))
						continue;
					sb_printf(b,
						  "netkernel_nsm_stack_%s_total"
						  "{nsm=\"%s\",type=\"%s\"",
						  name, e->nsms[k].conf.name,
						  e->nsms[k].conf.type);
					if (c[k][m].reason)
						sb_printf(b, ",reason=\"%s\"",
							  c[k][m].reason);
					sb_printf(b, "} %llu\n",
						  (unsigned long long)c[k][m]
							  .value);
				}
		}
out:
	free(c);
	free(nc);
}

/*
 * Refusals per guest and reason (refusal.h), and in total: with the ones
 * no guest owns (an unknown name refused at attach).
 */
static void prom_refusals(struct sb *b, struct nk_engine *e)
{
	uint64_t total[NK_REFUSAL__MAX];
	struct nk_list *p, *t;

	for (unsigned i = 0; i < NK_REFUSAL__MAX; i++)
		total[i] = e->admin.refused.count[i];
	sb_printf(b, "# HELP netkernel_guest_refusals_total Requests of the "
		     "guest refused by quota or policy, by reason.\n"
		     "# TYPE netkernel_guest_refusals_total counter\n");
	nk_list__for_each_safe(p, t, &e->guests)
	{
		struct nk_guest *g = nk_container_of(p, struct nk_guest, link);

		for (unsigned i = 0; i < NK_REFUSAL__MAX; i++) {
			total[i] += g->refused.count[i];
			sb_printf(b,
				  "netkernel_guest_refusals_total{guest=\"%s\","
				  "nsm=\"%s\",reason=\"%s\"} %llu\n",
				  g->conf.name, g->nsm->conf.name,
				  nk_refusal__name((enum nk_refusal)i),
				  (unsigned long long)g->refused.count[i]);
		}
	}
	sb_printf(b, "# HELP netkernel_refusals_total Requests refused by "
		     "quota or policy, by reason (all guests and callers).\n"
		     "# TYPE netkernel_refusals_total counter\n");
	for (unsigned i = 0; i < NK_REFUSAL__MAX; i++)
		sb_printf(b, "netkernel_refusals_total{reason=\"%s\"} %llu\n",
			  nk_refusal__name((enum nk_refusal)i),
			  (unsigned long long)total[i]);
}

static void q_stats(struct nk_engine *e, struct sb *b)
{
	sb_printf(b,
		  "# HELP netkernel_up nkd is running.\n"
		  "# TYPE netkernel_up gauge\nnetkernel_up 1\n"
		  "# HELP netkernel_uptime_seconds Seconds since nkd "
		  "started.\n# TYPE netkernel_uptime_seconds gauge\n"
		  "netkernel_uptime_seconds %lld\n"
		  "# HELP netkernel_conns Attached guest connections.\n"
		  "# TYPE netkernel_conns gauge\nnetkernel_conns %u\n"
		  "# HELP netkernel_sockets Guest sockets.\n"
		  "# TYPE netkernel_sockets gauge\nnetkernel_sockets %llu\n"
		  "# HELP netkernel_loop_sleeps_total Times the event loop "
		  "went to sleep.\n"
		  "# TYPE netkernel_loop_sleeps_total counter\n"
		  "netkernel_loop_sleeps_total %llu\n"
		  "# HELP netkernel_loop_spin_hits_total Spins that found "
		  "work before the budget ran out.\n"
		  "# TYPE netkernel_loop_spin_hits_total counter\n"
		  "netkernel_loop_spin_hits_total %llu\n"
		  "# HELP netkernel_loop_spin_ns Current spin budget.\n"
		  "# TYPE netkernel_loop_spin_ns gauge\n"
		  "netkernel_loop_spin_ns %lld\n"
		  "# HELP netkernel_loop_idle_rests_total Rests of guests "
		  "that spent a pass's budget on nothing real.\n"
		  "# TYPE netkernel_loop_idle_rests_total counter\n"
		  "netkernel_loop_idle_rests_total %llu\n",
		  (long long)((nk_now_ns() - e->start_ns) / 1000000000ll),
		  e->nr_conns, (unsigned long long)e->nr_socks,
		  (unsigned long long)e->sleeps,
		  (unsigned long long)e->spin.hits, (long long)e->spin.cur,
		  (unsigned long long)e->rests);
#define G(name, help, type, field, is64)                      \
	prom_guest(b, e, "netkernel_guest_" name, help, type, \
		   offsetof(struct nk_guest, field), is64)
	G("conns", "Attached connections of the guest.", "gauge", nr_conns,
	  false);
	G("sockets", "Sockets of the guest.", "gauge", nr_socks, false);
	G("inflight", "Operations taken and not completed.", "gauge", inflight,
	  false);
	G("tx_bytes_total", "Bytes sent by the guest.", "counter", c.bytes_tx,
	  true);
	G("rx_bytes_total", "Bytes received by the guest.", "counter",
	  c.bytes_rx, true);
	G("ops_total", "Submission entries taken.", "counter", c.ops, true);
	G("errors_total", "Operations that failed.", "counter", c.errors, true);
	G("abuse_total", "Malformed entries refused.", "counter", c.abuse,
	  true);
	G("disconnects_total", "Connections nkd cut.", "counter", c.disconnects,
	  true);
	G("idle_rests_total", "Rests for a pass spent on nothing real.",
	  "counter", rest.rests, true);
	G("rx_pushed_total",
	  "Receives whose data nkd pushed into a waiting guest buffer.",
	  "counter", c.rx_pushed, true);
	G("rate_tx_bps", "Egress rate cap, bits/s (0: none).", "gauge",
	  conf.rate_bps[NK_RATE_TX], true);
	G("rate_rx_bps", "Ingress rate cap, bits/s (0: none).", "gauge",
	  conf.rate_bps[NK_RATE_RX], true);
	G("rate_tx_bytes_total", "Bytes sent under the egress cap.", "counter",
	  rate.dir[NK_RATE_TX].passed, true);
	G("rate_rx_bytes_total", "Bytes received under the ingress cap.",
	  "counter", rate.dir[NK_RATE_RX].passed, true);
	G("sched_tx_holds_total", "SENDs that waited for the guest's turn.",
	  "counter", sched.dir[NK_SCHED_TX].nr_holds, true);
	G("sched_rx_holds_total", "RECVs that waited for the guest's turn.",
	  "counter", sched.dir[NK_SCHED_RX].nr_holds, true);
#undef G
	prom_xdp(b, e);
	prom_refusals(b, e);
	sb_printf(b, "# HELP netkernel_nsm_sockets Sockets on the NSM.\n"
		     "# TYPE netkernel_nsm_sockets gauge\n");
	for (unsigned i = 0; i < e->nr_nsms; i++)
		sb_printf(b,
			  "netkernel_nsm_sockets{nsm=\"%s\",type=\"%s\"} %u\n",
			  e->nsms[i].conf.name, e->nsms[i].conf.type,
			  e->nsms[i].nr_socks);
	{
		struct nk_shm_stats st;

		nk_shm__stats(e, &st);
		sb_printf(b,
			  "netkernel_nsm_sockets{nsm=\"shm\",type=\"shm\"} %u\n"
			  "# HELP netkernel_shm_queue_bytes nkd memory in shm "
			  "receive queues.\n"
			  "# TYPE netkernel_shm_queue_bytes gauge\n"
			  "netkernel_shm_queue_bytes %llu\n",
			  st.sockets, (unsigned long long)st.queue_bytes);
	}
	prom_stack(b, e);
}

int nk_query__build(struct nk_engine *e, uint32_t what, char **text,
		    size_t *len)
{
	struct sb b = { 0 };

	switch (what) {
	case NK_QUERY_STATUS:
		q_status(e, &b);
		break;
	case NK_QUERY_GUESTS:
		q_guests(e, &b);
		break;
	case NK_QUERY_SOCKETS:
		q_sockets(e, &b);
		break;
	case NK_QUERY_NSMS:
		q_nsms(e, &b);
		break;
	case NK_QUERY_STATS:
		q_stats(e, &b);
		break;
	default:
		return -EINVAL;
	}
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*text = b.p;
	*len = b.len;
	return 0;
}
