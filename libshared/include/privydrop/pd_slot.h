/* pd_slot.h — Redis Cluster key routing, pure (no I/O): key → hash slot,
 * a slot → master map from a CLUSTER SLOTS reply, and the -MOVED / -ASK
 * redirections. The groundwork for running on a Redis Cluster; the
 * services do not use it yet (docs/architecture.md §Redis Cluster).
 *
 * Specification: the Redis Cluster specification
 * (https://redis.io/docs/reference/cluster-spec/), sections "Key
 * distribution model" (CRC16, 16384 slots), "Hash tags", "Redirection and
 * resharding" (MOVED, ASK) and the CLUSTER SLOTS reply format.
 *
 * Ownership: a pd_slot_map owns copies of every string it holds; the nodes
 * it returns are valid until it is freed. Nothing here keeps a pointer into
 * a redisReply. */
#ifndef PD_SLOT_H
#define PD_SLOT_H

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "privydrop/pd_common.h"

#define PD_SLOT_COUNT 16384u
#define PD_SLOT_MAX_NODES 1024   /* masters in one map: Redis Cluster's own suggested bound is 1000 */
#define PD_SLOT_HOST_MAX 255     /* bytes in a node's host */
#define PD_SLOT_ID_MAX 64        /* bytes in a node id (Redis uses 40 hex) */

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection,
 * no final XOR — crc16("123456789") is 0x31C3. */
uint16_t pd_slot_crc16(const void *buf, size_t len);

/* The key's slot, hash tags applied: if the key has a '{' followed later by
 * a '}' with at least one byte between the first such pair, only those
 * bytes are hashed; otherwise the whole key. */
unsigned pd_slot_of(pd_slice key);

/* ---- redirections -------------------------------------------------------- */

typedef enum pd_slot_redirect_kind {
    PD_SLOT_MOVED = 1, /* the slot lives elsewhere for good: update the map */
    PD_SLOT_ASK,       /* this once: send ASKING then the command to that node */
} pd_slot_redirect_kind;

typedef struct pd_slot_redirect {
    pd_slot_redirect_kind kind;
    unsigned slot;                     /* 0..16383 */
    char host[PD_SLOT_HOST_MAX + 1];   /* "" when Redis does not know the endpoint */
    int port;                          /* 1..65535 */
} pd_slot_redirect;

/* An error reply's text (hiredis gives it without the leading '-'; a
 * leading '-' is accepted too): "MOVED <slot> <host>:<port>" or "ASK …".
 * The port follows the last ':', so IPv6 hosts need no brackets. PD_ERR
 * for any other error or a malformed one. */
int pd_slot_parse_redirect(pd_slice error, pd_slot_redirect *out);

/* ---- the slot map ---------------------------------------------------------- */

typedef struct pd_slot_node {
    char *host;  /* as the cluster announced it; "" when unknown (use the address asked) */
    int port;    /* 1..65535 */
    char *id;    /* node id, or "" when the reply had none */
} pd_slot_node;

typedef struct pd_slot_map pd_slot_map;

/* The masters of a CLUSTER SLOTS reply: each element is [start, end,
 * master, replica…] with a node as [host, port, id?, …]. Replicas are
 * ignored (reads and writes both go to masters). A node that appears in
 * several ranges is one node. NULL with *err (static text) for anything
 * malformed: a range outside 0..16383 or reversed, overlapping ranges, a
 * bad port, more than PD_SLOT_MAX_NODES masters, too long a host or id;
 * or on allocation failure ("out of memory"). Slots no range names are
 * uncovered. */
pd_slot_map *pd_slot_map_from_reply(const redisReply *reply, const char **err);
void pd_slot_map_free(pd_slot_map *m);

size_t pd_slot_map_node_count(const pd_slot_map *m);
const pd_slot_node *pd_slot_map_node(const pd_slot_map *m, size_t i);

/* Slots with a master. PD_SLOT_COUNT when the cluster serves every key. */
unsigned pd_slot_map_covered(const pd_slot_map *m);

/* The master serving `slot`, or NULL (uncovered or out of range). */
const pd_slot_node *pd_slot_map_lookup(const pd_slot_map *m, unsigned slot);

/* The node a command on `key` goes to: pd_slot_map_lookup(pd_slot_of(key)). */
const pd_slot_node *pd_slot_map_for_key(const pd_slot_map *m, pd_slice key);

/* A MOVED redirection: from now on the slot is served by that node (added
 * if new). An ASK changes nothing and returns PD_OK; PD_ERR when a new
 * node would pass PD_SLOT_MAX_NODES or on allocation failure (the map is
 * unchanged then; refreshing it with CLUSTER SLOTS is the remedy). */
int pd_slot_map_apply(pd_slot_map *m, const pd_slot_redirect *r);

#endif
