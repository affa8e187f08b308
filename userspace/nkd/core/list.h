/* SPDX-License-Identifier: MIT */
/*
 * Intrusive doubly linked list: nkd keeps guests, connections and in-flight
 * operations on lists without allocating nodes.
 */
#ifndef NKD_LIST_H
#define NKD_LIST_H

#include <stddef.h>

struct nk_list {
	struct nk_list *next, *prev;
};

#define nk_container_of(ptr, type, member) \
	((type *)((char *)(ptr)-offsetof(type, member)))

static inline void nk_list__init(struct nk_list *h)
{
	h->next = h;
	h->prev = h;
}

static inline int nk_list__empty(const struct nk_list *h)
{
	return h->next == h;
}

static inline void nk_list__add_tail(struct nk_list *h, struct nk_list *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

/* Leaves n self-linked so a second del is harmless. */
static inline void nk_list__del(struct nk_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	nk_list__init(n);
}

#define nk_list__for_each_safe(pos, tmp, head)                   \
	for (pos = (head)->next, tmp = pos->next; pos != (head); \
	     pos = tmp, tmp = pos->next)

#endif /* NKD_LIST_H */
