// SPDX-License-Identifier: MIT
#include "kn_accq.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int nk_kn_accq__push(struct nk_kn_accq *q, int fd)
{
	if (q->len == q->cap) {
		uint32_t ncap = q->cap ? q->cap * 2 : 8;
		int *n = malloc(ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		/* Unwrapped into the new array, oldest first. */
		for (uint32_t i = 0; i < q->len; i++)
			n[i] = q->fd[(q->head + i) % q->cap];
		free(q->fd);
		q->fd = n;
		q->cap = ncap;
		q->head = 0;
	}
	q->fd[(q->head + q->len) % q->cap] = fd;
	q->len++;
	return 0;
}

int nk_kn_accq__pop(struct nk_kn_accq *q)
{
	int fd;

	if (!q->len)
		return -1;
	fd = q->fd[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return fd;
}

void nk_kn_accq__drain(struct nk_kn_accq *q)
{
	/* A reset, as the kernel gives a closed listener's backlog. */
	static const struct linger rst = { 1, 0 };
	int fd;

	while ((fd = nk_kn_accq__pop(q)) >= 0) {
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(fd);
	}
}

void nk_kn_accq__free(struct nk_kn_accq *q)
{
	nk_kn_accq__drain(q);
	free(q->fd);
	q->fd = NULL;
	q->cap = q->head = q->len = 0;
}
