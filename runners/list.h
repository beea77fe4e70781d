/* list.h: an intrusive circular doubly-linked list, for the runners' own
 * bookkeeping (open handles, handles waiting for their close callbacks,
 * pending timers). A list is an ar_link head linked to itself; an element
 * embeds an ar_link and is found back with AR_CONTAINER_OF. */
#ifndef ASYNCRACE_LIST_H
#define ASYNCRACE_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ar_link {
    struct ar_link *prev, *next;
} ar_link;

#define AR_CONTAINER_OF(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static inline void ar_list_init(ar_link *head) { head->prev = head->next = head; }
static inline bool ar_list_empty(const ar_link *head) { return head->next == head; }

/* Links n in just before at (before the head: at the tail). */
static inline void ar_list_insert_before(ar_link *at, ar_link *n)
{
    n->prev = at->prev;
    n->next = at;
    at->prev->next = n;
    at->prev = n;
}

static inline void ar_list_remove(ar_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* Moves every element of from to the tail of to; from is left empty. */
static inline void ar_list_splice_tail(ar_link *to, ar_link *from)
{
    if (ar_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    ar_list_init(from);
}

#endif
