/* pd_map.h — a string-keyed hash map (separate chaining, power-of-two
 * buckets, seeded hash so clients cannot aim their ids at one bucket).
 *
 * The map copies keys and owns the copies; values are borrowed pointers the
 * map never frees. Not thread-safe (one loop per process). */
#ifndef PD_MAP_H
#define PD_MAP_H

#include <stddef.h>

#include "privydrop/pd_common.h"

typedef struct pd_map pd_map;

pd_map *pd_map_create(void);
/* Frees the map and its key copies, not the values. */
void pd_map_free(pd_map *m);

/* Value for key, or NULL. */
void *pd_map_get(const pd_map *m, pd_slice key);
/* Insert or replace. PD_OK, or PD_ERR on allocation failure. */
int pd_map_put(pd_map *m, pd_slice key, void *value);
/* Remove; returns the old value or NULL. */
void *pd_map_del(pd_map *m, pd_slice key);
size_t pd_map_count(const pd_map *m);

/* Visit every entry. The callback must not modify the map; return non-zero
 * from it to stop early. */
typedef int (*pd_map_visit_fn)(pd_slice key, void *value, void *data);
void pd_map_foreach(const pd_map *m, pd_map_visit_fn fn, void *data);

/* The seeded string hash both pd_map and pd_ptab use, and a fresh random
 * seed for it (`salt` only matters if the system has no randomness). */
uint64_t pd_map_hash(uint64_t seed, pd_slice key);
uint64_t pd_map_new_seed(const void *salt);

#endif
