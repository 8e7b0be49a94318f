#include "privydrop/pd_ptab.h"

#include <stdlib.h>

#include "privydrop/pd_map.h"

#define PTAB_MIN_SLOTS 16

struct pd_ptab {
    void **slots;      /* nslots pointers, NULL = empty */
    size_t nslots;     /* power of two */
    size_t count;      /* items */
    uint64_t seed;     /* per-table random hash seed */
    pd_ptab_key_fn key;
};

pd_ptab *pd_ptab_create(pd_ptab_key_fn key)
{
    pd_ptab *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->nslots = PTAB_MIN_SLOTS;
    t->slots = calloc(t->nslots, sizeof(*t->slots));
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->key = key;
    t->seed = pd_map_new_seed(t);
    return t;
}

void pd_ptab_free(pd_ptab *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

static size_t home(const pd_ptab *t, pd_slice key)
{
    return (size_t)pd_map_hash(t->seed, key) & (t->nslots - 1);
}

static int key_eq(pd_slice a, pd_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

/* The slot holding key, or the empty slot where it would go. The load
 * factor stays below 3/4, so an empty slot always exists. */
static size_t find(const pd_ptab *t, pd_slice key)
{
    size_t mask = t->nslots - 1, i = home(t, key);
    while (t->slots[i] && !key_eq(t->key(t->slots[i]), key))
        i = (i + 1) & mask;
    return i;
}

void *pd_ptab_get(const pd_ptab *t, pd_slice key)
{
    return t->slots[find(t, key)];
}

static int resize(pd_ptab *t, size_t n)
{
    void **old = t->slots;
    size_t oldn = t->nslots;
    void **slots = calloc(n, sizeof(*slots));
    if (!slots)
        return PD_ERR;
    t->slots = slots;
    t->nslots = n;
    for (size_t i = 0; i < oldn; i++)
        if (old[i])
            t->slots[find(t, t->key(old[i]))] = old[i];
    free(old);
    return PD_OK;
}

int pd_ptab_put(pd_ptab *t, void *item)
{
    pd_slice key = t->key(item);
    size_t i = find(t, key);
    if (t->slots[i]) {
        t->slots[i] = item;
        return PD_OK;
    }
    if ((t->count + 1) * 4 > t->nslots * 3) {
        if (resize(t, t->nslots * 2) != PD_OK)
            return PD_ERR;
        i = find(t, key);
    }
    t->slots[i] = item;
    t->count++;
    return PD_OK;
}

void *pd_ptab_del(pd_ptab *t, pd_slice key)
{
    size_t mask = t->nslots - 1, i = find(t, key);
    void *item = t->slots[i];
    if (!item)
        return NULL;
    t->slots[i] = NULL;
    t->count--;
    /* Backward shift: pull later items of the probe run into the hole when
     * the hole lies between their home slot and where they sit, so lookups
     * never stop early at it. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->slots[j])
            break;
        size_t h = home(t, t->key(t->slots[j]));
        if (((j - h) & mask) >= ((j - hole) & mask)) {
            t->slots[hole] = t->slots[j];
            t->slots[j] = NULL;
            hole = j;
        }
    }
    /* Give memory back once far emptier than it was (a failed shrink only
     * keeps the larger table). */
    if (t->nslots > PTAB_MIN_SLOTS && t->count * 8 < t->nslots)
        resize(t, t->nslots / 2);
    return item;
}

size_t pd_ptab_count(const pd_ptab *t)
{
    return t->count;
}

void pd_ptab_foreach(const pd_ptab *t, pd_ptab_visit_fn fn, void *data)
{
    for (size_t i = 0; i < t->nslots; i++)
        if (t->slots[i] && fn(t->key(t->slots[i]), t->slots[i], data))
            return;
}
