/* Redis Cluster key routing (pd_slot.h). */
#include "privydrop/pd_slot.h"

#include <stdlib.h>
#include <string.h>

uint16_t pd_slot_crc16(const void *buf, size_t len)
{
    /* Bit by bit: keys are short, and a table would be 512 bytes of
     * constants to get wrong. */
    const uint8_t *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned pd_slot_of(pd_slice key)
{
    const char *open = key.len ? memchr(key.base, '{', key.len) : NULL;
    if (open) {
        size_t from = (size_t)(open - key.base) + 1;
        const char *close = memchr(key.base + from, '}', key.len - from);
        /* "{}" hashes the whole key: an empty tag is no tag. */
        if (close && close > key.base + from)
            return pd_slot_crc16(key.base + from, (size_t)(close - (key.base + from))) & (PD_SLOT_COUNT - 1);
    }
    return pd_slot_crc16(key.base, key.len) & (PD_SLOT_COUNT - 1);
}

/* ---- redirections ------------------------------------------------------- */

static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    if (len == 0 || len > 10)
        return PD_ERR;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PD_ERR;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return PD_ERR;
    *out = v;
    return PD_OK;
}

static int host_ok(const char *s, size_t len)
{
    if (len > PD_SLOT_HOST_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_' || c == ':' || c == '%'))
            return 0;
    }
    return 1;
}

int pd_slot_parse_redirect(pd_slice e, pd_slot_redirect *out)
{
    const char *p = e.base, *end = e.base + e.len;
    if (p < end && *p == '-')
        p++;
    if ((size_t)(end - p) > 6 && memcmp(p, "MOVED ", 6) == 0) {
        out->kind = PD_SLOT_MOVED;
        p += 6;
    } else if ((size_t)(end - p) > 4 && memcmp(p, "ASK ", 4) == 0) {
        out->kind = PD_SLOT_ASK;
        p += 4;
    } else {
        return PD_ERR;
    }
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    unsigned long slot, port;
    if (!sp || parse_uint(p, (size_t)(sp - p), PD_SLOT_COUNT - 1, &slot) != PD_OK)
        return PD_ERR;
    const char *addr = sp + 1;
    const char *colon = NULL;
    for (const char *q = addr; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon || parse_uint(colon + 1, (size_t)(end - colon - 1), 65535, &port) != PD_OK || port == 0)
        return PD_ERR;
    size_t hlen = (size_t)(colon - addr);
    if (!host_ok(addr, hlen))
        return PD_ERR;
    out->slot = (unsigned)slot;
    memcpy(out->host, addr, hlen);
    out->host[hlen] = '\0';
    out->port = (int)port;
    return PD_OK;
}

/* ---- the slot map ------------------------------------------------------- */

#define NO_NODE UINT16_MAX

struct pd_slot_map {
    uint16_t owner[PD_SLOT_COUNT]; /* node index per slot, NO_NODE if uncovered */
    pd_slot_node *nodes;           /* masters, each once */
    size_t n, cap;                 /* nodes used / allocated */
};

static int node_find(const pd_slot_map *m, const char *host, size_t hlen, int port)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->nodes[i].port == port && strlen(m->nodes[i].host) == hlen && memcmp(m->nodes[i].host, host, hlen) == 0)
            return (int)i;
    return -1;
}

/* Index of host:port, added if new; -1 (with *err) on a bound or OOM. */
static int node_add(pd_slot_map *m, const char *host, size_t hlen, int port, const char *id, size_t idlen,
                    const char **err)
{
    int i = node_find(m, host, hlen, port);
    if (i >= 0)
        return i;
    if (m->n >= PD_SLOT_MAX_NODES) {
        *err = "more masters than a map holds";
        return -1;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        pd_slot_node *nn = realloc(m->nodes, cap * sizeof(*nn));
        if (!nn) {
            *err = "out of memory";
            return -1;
        }
        m->nodes = nn;
        m->cap = cap;
    }
    char *h = malloc(hlen + 1), *d = malloc(idlen + 1);
    if (!h || !d) {
        free(h);
        free(d);
        *err = "out of memory";
        return -1;
    }
    memcpy(h, host, hlen);
    h[hlen] = '\0';
    memcpy(d, id, idlen);
    d[idlen] = '\0';
    m->nodes[m->n] = (pd_slot_node){h, port, d};
    return (int)m->n++;
}

static pd_slot_map *map_new(void)
{
    pd_slot_map *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    for (unsigned s = 0; s < PD_SLOT_COUNT; s++)
        m->owner[s] = NO_NODE;
    return m;
}

/* One node entry [host, port, id?, ...] of a CLUSTER SLOTS range. */
static int parse_node(pd_slot_map *m, const redisReply *n, const char **err)
{
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 || n->element[0]->type != REDIS_REPLY_STRING ||
        n->element[1]->type != REDIS_REPLY_INTEGER) {
        *err = "a node is not [host, port, ...]";
        return -1;
    }
    const redisReply *h = n->element[0];
    long long port = n->element[1]->integer;
    if (port < 1 || port > 65535) {
        *err = "a node's port is not in 1..65535";
        return -1;
    }
    /* Redis 7 says "?" for an endpoint it does not know: the same as "". */
    size_t hlen = (h->len == 1 && h->str[0] == '?') ? 0 : h->len;
    if (!host_ok(h->str, hlen)) {
        *err = "a node's host is too long or has characters a host cannot have";
        return -1;
    }
    const char *id = "";
    size_t idlen = 0;
    if (n->elements >= 3 && n->element[2]->type == REDIS_REPLY_STRING) {
        id = n->element[2]->str;
        idlen = n->element[2]->len;
        if (idlen > PD_SLOT_ID_MAX || !host_ok(id, idlen)) {
            *err = "a node id is too long or not an id";
            return -1;
        }
    }
    return node_add(m, h->str, hlen, (int)port, id, idlen, err);
}

pd_slot_map *pd_slot_map_from_reply(const redisReply *reply, const char **err)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        *err = "not an array";
        return NULL;
    }
    pd_slot_map *m = map_new();
    if (!m) {
        *err = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_INTEGER ||
            r->element[1]->type != REDIS_REPLY_INTEGER) {
            *err = "a range is not [start, end, master, ...]";
            goto fail;
        }
        long long a = r->element[0]->integer, b = r->element[1]->integer;
        if (a < 0 || b < a || b >= (long long)PD_SLOT_COUNT) {
            *err = "a range is outside 0..16383 or reversed";
            goto fail;
        }
        int node = parse_node(m, r->element[2], err);
        if (node < 0)
            goto fail;
        for (long long s = a; s <= b; s++) {
            if (m->owner[s] != NO_NODE) {
                *err = "ranges overlap";
                goto fail;
            }
            m->owner[s] = (uint16_t)node;
        }
    }
    return m;
fail:
    pd_slot_map_free(m);
    return NULL;
}

void pd_slot_map_free(pd_slot_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->nodes[i].host);
        free(m->nodes[i].id);
    }
    free(m->nodes);
    free(m);
}

size_t pd_slot_map_node_count(const pd_slot_map *m)
{
    return m->n;
}

const pd_slot_node *pd_slot_map_node(const pd_slot_map *m, size_t i)
{
    return i < m->n ? &m->nodes[i] : NULL;
}

unsigned pd_slot_map_covered(const pd_slot_map *m)
{
    unsigned n = 0;
    for (unsigned s = 0; s < PD_SLOT_COUNT; s++)
        n += m->owner[s] != NO_NODE;
    return n;
}

const pd_slot_node *pd_slot_map_lookup(const pd_slot_map *m, unsigned slot)
{
    if (slot >= PD_SLOT_COUNT || m->owner[slot] == NO_NODE)
        return NULL;
    return &m->nodes[m->owner[slot]];
}

const pd_slot_node *pd_slot_map_for_key(const pd_slot_map *m, pd_slice key)
{
    return pd_slot_map_lookup(m, pd_slot_of(key));
}

int pd_slot_map_apply(pd_slot_map *m, const pd_slot_redirect *r)
{
    if (r->kind == PD_SLOT_ASK)
        return PD_OK;
    if (r->kind != PD_SLOT_MOVED || r->slot >= PD_SLOT_COUNT)
        return PD_ERR;
    const char *err = NULL;
    int node = node_add(m, r->host, strlen(r->host), r->port, "", 0, &err);
    if (node < 0)
        return PD_ERR;
    m->owner[r->slot] = (uint16_t)node;
    return PD_OK;
}
