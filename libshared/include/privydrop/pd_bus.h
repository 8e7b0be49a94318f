/* pd_bus.h — the envelope that carries a room-scoped Socket.IO packet between
 * instances over the room's pub/sub channel (docs/architecture.md §Bus).
 * Pure codec.
 *
 * Wire form (text, one PUBLISH payload):
 *     PD1 <kind> <origin> <target>\n<engine.io packet bytes>
 * or, on a worker's own channel (a signal sent straight to the worker that
 * holds its target, docs/architecture.md §Signals), with the room the
 * channel does not name:
 *     PD1 S <origin> <target> <room>\n<engine.io packet bytes>
 * kind   'S' deliver to socket <target> only (a signal);
 *        'B' deliver to every member except <target> ("-" = nobody excluded);
 *        'L' <target> has left the room: its instance unbinds it locally,
 *            every other member receives the packet.
 * origin the instance id of the sender (instances ignore their own).
 * The packet is already encoded ("42[...]") so receivers write it as is. */
#ifndef PD_BUS_H
#define PD_BUS_H

#include "privydrop/pd_common.h"

typedef enum pd_bus_kind {
    PD_BUS_TO_SOCKET = 'S',
    PD_BUS_BROADCAST = 'B',
    PD_BUS_LEAVE = 'L',
} pd_bus_kind;

#define PD_BUS_CHANNEL_PREFIX "pd:room:"
/* Every instance listens here for peers that cannot keep up with the bus
 * (message: the slow instance's id); they slow down until it recovers. */
#define PD_BUS_PRESSURE_CHANNEL "pd:pressure"
/* Longest instance id accepted in an envelope. */
#define PD_BUS_MAX_ORIGIN 128

typedef struct pd_bus_envelope {
    pd_bus_kind kind;
    pd_slice origin; /* instance id */
    pd_slice target; /* socket id, or empty for "nobody excluded" */
    pd_slice packet; /* the encoded Engine.IO packet */
    pd_slice room;   /* empty: the channel names the room */
} pd_bus_envelope;

/* Encode into a malloc'd buffer (caller frees); *len set. NULL on OOM or if
 * origin/target contain a space or newline. An empty target is written "-". */
char *pd_bus_encode(const pd_bus_envelope *env, size_t *len);

/* Only the header ("PD1 <kind> <origin> <target>\n", the packet follows
 * it) into buf: its length, or PD_ERR for what pd_bus_encode refuses or a
 * header longer than cap. Lets a publisher send header and packet as they
 * are, without joining them first. */
int pd_bus_encode_head(const pd_bus_envelope *env, char *buf, size_t cap);

/* Parse; slices point into msg. PD_ERR if malformed. */
int pd_bus_decode(pd_slice msg, pd_bus_envelope *out);

/* Write "pd:room:<room>" into buf; returns length or PD_ERR if too small. */
int pd_bus_channel(char *buf, size_t cap, pd_slice room);

#endif
