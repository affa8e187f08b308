// SPDX-License-Identifier: MIT
/*
 * RESOLVE (docs/abi.md §8): getaddrinfo() may block for seconds, so it runs
 * in NR_WORKERS threads per NSM, each of which moves itself into the NSM's
 * network namespace once (setns() only affects the calling thread).
 * Finished jobs go back to the event loop through an eventfd it polls.
 *
 * Tenants: a guest has at most resolve_queue jobs queued (ctl.c, budget.c)
 * and at most MAX_RUNNING_PER_GUEST of them running, so a guest whose
 * lookups hang (a name server that never answers) leaves workers free for
 * the others: a worker takes the oldest job whose guest is under that cap.
 */
#include <errno.h>
#include <locale.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "resolv_view.h"
#include "validate.h"

#define MAX_QUEUED 256u
#define NR_WORKERS 4u
#define MAX_RUNNING_PER_GUEST 2u
/*
 * The AI_IDN family: glibc's getent and others pass AI_IDN (and
 * AI_CANONIDN). glibc's getaddrinfo takes them here as in the guest: an
 * ASCII name is unchanged; a non-ASCII one, taken as UTF-8 (the workers
 * run in C.UTF-8), is converted to its xn-- form with libidn2 if
 * installed, else EAI_IDN_ENCODE. The two
 * deprecated ones (AI_IDN_ALLOW_UNASSIGNED, AI_IDN_USE_STD3_ASCII_RULES,
 * named by value: the names warn) glibc ignores since 2.28; so does nkd.
 */
#define AI_IDN_DEPRECATED (0x0100 | 0x0200)
#define ALLOWED_AI_FLAGS                                               \
	(AI_PASSIVE | AI_CANONNAME | AI_NUMERICHOST | AI_NUMERICSERV | \
	 AI_ADDRCONFIG | AI_V4MAPPED | AI_ALL | AI_IDN | AI_CANONIDN | \
	 AI_IDN_DEPRECATED)

struct nk_resolver {
	pthread_t th[NR_WORKERS];
	unsigned nr_started;
	/* The guest (job->guest) each worker is running a job for. */
	const void *running[NR_WORKERS];
	bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct nk_list todo, done;
	unsigned nr_todo;
	int netns_fd;
	int efd;
	struct nk_resolv_view view; /* the NSM's resolv.conf (resolv_view.c) */
};

static void run_job(bool ns_failed, struct nk_resolve_job *job)
{
	const struct nk_ctl_resolve *q = &job->req;
	struct nk_ctl_resolve_reply *rep;
	struct nk_ctl_resolve_ent *ents;
	struct addrinfo hints, *res = NULL;
	uint32_t n = 0;
	int status;

	rep = calloc(1, sizeof(*rep) + NK_RESOLVE_MAX_ENTS * sizeof(*ents));
	if (!rep)
		return;
	ents = (struct nk_ctl_resolve_ent *)(rep + 1);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = q->ai_flags & ~AI_IDN_DEPRECATED;
	hints.ai_family = q->ai_family;
	hints.ai_socktype = q->ai_socktype;
	hints.ai_protocol = q->ai_protocol;
	if (ns_failed)
		status = EAI_SYSTEM;
	else if (q->ai_flags & ~ALLOWED_AI_FLAGS)
		status = EAI_BADFLAGS;
	else if (q->ai_family != AF_UNSPEC && q->ai_family != AF_INET &&
		 q->ai_family != AF_INET6)
		status = EAI_FAMILY;
	else if (!q->node[0] && !q->service[0])
		status = EAI_NONAME;
	else
		status = getaddrinfo(q->node[0] ? q->node : NULL,
				     q->service[0] ? q->service : NULL, &hints,
				     &res);
	if (status == 0) {
		for (struct addrinfo *ai = res; ai && n < NK_RESOLVE_MAX_ENTS;
		     ai = ai->ai_next) {
			if (ai->ai_family != AF_INET &&
			    ai->ai_family != AF_INET6)
				continue;
			ents[n].family = ai->ai_family;
			ents[n].socktype = ai->ai_socktype;
			ents[n].protocol = ai->ai_protocol;
			nk_sockaddr__from_sa(ai->ai_addr, ai->ai_addrlen,
					     &ents[n].addr);
			n++;
		}
		if (res && res->ai_canonname)
			snprintf(rep->canonname, sizeof(rep->canonname), "%s",
				 res->ai_canonname);
		freeaddrinfo(res);
		if (!n)
			status = EAI_NODATA;
	}
	rep->hdr.type = NK_CTL_RESOLVE_REPLY;
	rep->hdr.len = (uint32_t)(sizeof(*rep) + n * sizeof(*ents));
	rep->hdr.seq = q->hdr.seq;
	rep->status = status;
	rep->nr_ents = n;
	job->reply = rep;
	job->reply_len = rep->hdr.len;
}

/* The oldest job whose guest has fewer than MAX_RUNNING_PER_GUEST running;
 * called with r->mu held. */
static struct nk_resolve_job *pick_job(struct nk_resolver *r)
{
	struct nk_list *p, *t;

	nk_list__for_each_safe(p, t, &r->todo)
	{
		struct nk_resolve_job *job =
			nk_container_of(p, struct nk_resolve_job, link);
		unsigned n = 0;

		for (unsigned i = 0; i < NR_WORKERS; i++)
			n += job->guest && r->running[i] == job->guest;
		if (n < MAX_RUNNING_PER_GUEST)
			return job;
	}
	return NULL;
}

struct worker_arg {
	struct nk_resolver *r;
	unsigned idx;
};

static void *worker(void *arg)
{
	struct worker_arg wa = *(struct worker_arg *)arg;
	struct nk_resolver *r = wa.r;
	uint64_t one = 1;
	bool ns_failed = false;
	locale_t utf8;

	free(arg);
	if (r->netns_fd >= 0 && setns(r->netns_fd, CLONE_NEWNET)) {
		nk_err("resolver: setns: %s", strerror(errno));
		/* This thread answers EAI_SYSTEM; the flag is per thread. */
		ns_failed = true;
	}
	if (!ns_failed && nk_resolv__enter(&r->view))
		ns_failed = true; /* said why; EAI_SYSTEM as above */
	/* AI_IDN reads the name in the locale's charset: guests send UTF-8
	 * (nkd itself runs in the C locale, where it would fail). */
	utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (utf8)
		uselocale(utf8);
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		struct nk_resolve_job *job = pick_job(r);

		if (!job) {
			pthread_cond_wait(&r->cv, &r->mu);
			continue;
		}
		nk_list__del(&job->link);
		r->nr_todo--;
		r->running[wa.idx] = job->guest;
		pthread_mutex_unlock(&r->mu);
		run_job(ns_failed, job);
		pthread_mutex_lock(&r->mu);
		r->running[wa.idx] = NULL;
		/* A job held back for its guest may go now. */
		pthread_cond_broadcast(&r->cv);
		nk_list__add_tail(&r->done, &job->link);
		if (write(r->efd, &one, sizeof(one)) < 0)
			nk_dbg("resolver: eventfd write: %s", strerror(errno));
	}
	pthread_mutex_unlock(&r->mu);
	if (utf8) {
		uselocale(LC_GLOBAL_LOCALE);
		freelocale(utf8);
	}
	return NULL;
}

int nk_resolver__create(int netns_fd, const struct nk_nsm_conf *conf,
			int notify_fd, struct nk_resolver **out)
{
	struct nk_resolver *r = calloc(1, sizeof(*r));
	sigset_t all, old;
	int ret;

	if (!r)
		return -ENOMEM;
	ret = nk_resolv__view(conf, &r->view);
	if (ret) {
		free(r);
		return ret;
	}
	nk_info("nsm %s: names resolve with %s", conf->name, r->view.effective);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	nk_list__init(&r->todo);
	nk_list__init(&r->done);
	r->netns_fd = netns_fd;
	r->efd = notify_fd;
	/* Signals are for the event loop's signalfd, never this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = 0;
	for (unsigned i = 0; i < NR_WORKERS && !ret; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));

		ret = wa ? 0 : ENOMEM;
		if (!ret) {
			wa->r = r;
			wa->idx = i;
			ret = pthread_create(&r->th[i], NULL, worker, wa);
			if (ret)
				free(wa);
			else
				r->nr_started++;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		nk_resolver__destroy(r);
		return -ret;
	}
	*out = r;
	return 0;
}

static void free_list(struct nk_list *l)
{
	while (!nk_list__empty(l)) {
		struct nk_resolve_job *job =
			nk_container_of(l->next, struct nk_resolve_job, link);

		nk_list__del(&job->link);
		free(job->reply);
		free(job);
	}
}

void nk_resolver__destroy(struct nk_resolver *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	/* A getaddrinfo in progress finishes first (bounded by its own
	 * timeouts); nkd exits right after. */
	for (unsigned i = 0; i < r->nr_started; i++)
		pthread_join(r->th[i], NULL);
	free_list(&r->todo);
	free_list(&r->done);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

void nk_resolver__refuse(struct nk_resolve_job *job)
{
	struct nk_ctl_resolve_reply *rep = calloc(1, sizeof(*rep));

	if (!rep)
		return;
	rep->hdr.type = NK_CTL_RESOLVE_REPLY;
	rep->hdr.len = sizeof(*rep);
	rep->hdr.seq = job->req.hdr.seq;
	rep->status = EAI_AGAIN;
	job->reply = rep;
	job->reply_len = sizeof(*rep);
}

void nk_resolver__submit(struct nk_resolver *r, struct nk_resolve_job *job)
{
	uint64_t one = 1;

	pthread_mutex_lock(&r->mu);
	if (r->nr_todo >= MAX_QUEUED) {
		/* Overloaded: answer "try again" without a lookup. */
		nk_resolver__refuse(job);
		nk_list__add_tail(&r->done, &job->link);
		if (write(r->efd, &one, sizeof(one)) < 0)
			nk_dbg("resolver: eventfd write: %s", strerror(errno));
	} else {
		nk_list__add_tail(&r->todo, &job->link);
		r->nr_todo++;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
}

struct nk_resolve_job *nk_resolver__take(struct nk_resolver *r)
{
	struct nk_resolve_job *job = NULL;

	pthread_mutex_lock(&r->mu);
	if (!nk_list__empty(&r->done)) {
		job = nk_container_of(r->done.next, struct nk_resolve_job,
				      link);
		nk_list__del(&job->link);
	}
	pthread_mutex_unlock(&r->mu);
	return job;
}

struct nk_ctl_resolve_reply *nk_resolver__dns_servers(struct nk_resolver *r,
						      uint64_t seq)
{
	const struct nk_resolv_view *v = &r->view;
	struct nk_ctl_resolve_reply *rep;
	struct nk_ctl_resolve_ent *ents;

	rep = calloc(1, sizeof(*rep) + v->nr_servers * sizeof(*ents));
	if (!rep)
		return NULL;
	ents = (struct nk_ctl_resolve_ent *)(rep + 1);
	for (unsigned i = 0; i < v->nr_servers; i++) {
		ents[i].family = v->servers[i].family;
		ents[i].socktype = SOCK_DGRAM;
		ents[i].protocol = IPPROTO_UDP;
		ents[i].addr = v->servers[i];
	}
	rep->hdr.type = NK_CTL_RESOLVE_REPLY;
	rep->hdr.len = (uint32_t)(sizeof(*rep) + v->nr_servers * sizeof(*ents));
	rep->hdr.seq = seq;
	rep->nr_ents = v->nr_servers;
	return rep;
}
