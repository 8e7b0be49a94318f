#include "privydrop/pd_map.h"

#include <stdlib.h>

#include "privydrop/pd_id.h"

typedef struct pd_map_entry {
    struct pd_map_entry *next; /* chain within one bucket */
    uint64_t hash;             /* full hash, compared before the key */
    void *value;               /* borrowed */
    size_t klen;               /* key length */
    char key[];                /* key copy, NUL-terminated */
} pd_map_entry;

struct pd_map {
    pd_map_entry **buckets; /* nbuckets chains */
    size_t nbuckets;        /* power of two */
    size_t count;           /* entries */
    uint64_t seed;          /* per-map random hash seed */
};

/* FNV-1a over a seeded state, finished with a 64-bit mix so that the low
 * bits (the bucket index) depend on every input byte. */
uint64_t pd_map_hash(uint64_t seed, pd_slice k)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < k.len; i++) {
        h ^= (unsigned char)k.base[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

pd_map *pd_map_create(void)
{
    pd_map *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    m->seed = pd_map_new_seed(m);
    return m;
}

uint64_t pd_map_new_seed(const void *salt)
{
    uint64_t seed;
    if (pd_random_bytes(&seed, sizeof(seed)) != PD_OK)
        seed = (uint64_t)(uintptr_t)salt ^ pd_mono_ms();
    return seed;
}

void pd_map_free(pd_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        pd_map_entry *e = m->buckets[i];
        while (e) {
            pd_map_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static pd_map_entry **map_find(const pd_map *m, pd_slice key, uint64_t h)
{
    pd_map_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp) {
        pd_map_entry *e = *pp;
        if (e->hash == h && e->klen == key.len && (key.len == 0 || memcmp(e->key, key.base, key.len) == 0))
            return pp;
        pp = &e->next;
    }
    return pp;
}

void *pd_map_get(const pd_map *m, pd_slice key)
{
    pd_map_entry **pp = map_find(m, key, pd_map_hash(m->seed, key));
    return *pp ? (*pp)->value : NULL;
}

static void map_grow(pd_map *m)
{
    size_t n = m->nbuckets * 2;
    pd_map_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < m->nbuckets; i++) {
        pd_map_entry *e = m->buckets[i];
        while (e) {
            pd_map_entry *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int pd_map_put(pd_map *m, pd_slice key, void *value)
{
    uint64_t h = pd_map_hash(m->seed, key);
    pd_map_entry **pp = map_find(m, key, h);
    if (*pp) {
        (*pp)->value = value;
        return PD_OK;
    }
    pd_map_entry *e = malloc(sizeof(*e) + key.len + 1);
    if (!e)
        return PD_ERR;
    e->next = NULL;
    e->hash = h;
    e->value = value;
    e->klen = key.len;
    if (key.len)
        memcpy(e->key, key.base, key.len);
    e->key[key.len] = '\0';
    *pp = e;
    m->count++;
    if (m->count > m->nbuckets)
        map_grow(m);
    return PD_OK;
}

void *pd_map_del(pd_map *m, pd_slice key)
{
    pd_map_entry **pp = map_find(m, key, pd_map_hash(m->seed, key));
    pd_map_entry *e = *pp;
    if (!e)
        return NULL;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

size_t pd_map_count(const pd_map *m)
{
    return m->count;
}

void pd_map_foreach(const pd_map *m, pd_map_visit_fn fn, void *data)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (pd_map_entry *e = m->buckets[i]; e; e = e->next) {
            if (fn(pd_slice_make(e->key, e->klen), e->value, data))
                return;
        }
    }
}
