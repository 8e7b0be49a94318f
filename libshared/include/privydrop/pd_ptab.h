/* pd_ptab.h — a hash set of items that carry their own string key (open
 * addressing, linear probing, seeded hash). Unlike pd_map it allocates
 * nothing per item: a slot is one pointer, and the key is read from the item
 * through the table's key function. For the worker's per-socket and
 * per-room indexes, where a separate entry with a key copy would cost more
 * than the item itself.
 *
 * Items are borrowed: the table never frees them, and an item's key must not
 * change while it is in the table. Not thread-safe (one loop per process). */
#ifndef PD_PTAB_H
#define PD_PTAB_H

#include <stddef.h>

#include "privydrop/pd_common.h"

typedef struct pd_ptab pd_ptab;

/* The key of an item; must be cheap and stable. */
typedef pd_slice (*pd_ptab_key_fn)(const void *item);

pd_ptab *pd_ptab_create(pd_ptab_key_fn key);
/* Frees the table, not the items. */
void pd_ptab_free(pd_ptab *t);

/* The item with this key, or NULL. */
void *pd_ptab_get(const pd_ptab *t, pd_slice key);
/* Insert, or replace the item with the same key. PD_OK, or PD_ERR on
 * allocation failure (the table is unchanged). */
int pd_ptab_put(pd_ptab *t, void *item);
/* Remove; returns the removed item or NULL. */
void *pd_ptab_del(pd_ptab *t, pd_slice key);
size_t pd_ptab_count(const pd_ptab *t);

/* Visit every item. The callback must not modify the table; return non-zero
 * from it to stop early. */
typedef int (*pd_ptab_visit_fn)(pd_slice key, void *item, void *data);
void pd_ptab_foreach(const pd_ptab *t, pd_ptab_visit_fn fn, void *data);

#endif
