/* pd_eio.h — Engine.IO v4 packets (docs/engine.io-protocol/v4-current.md,
 * "Protocol" → "Packet encoding"). Pure functions over buffers, no I/O.
 *
 * Over WebSocket one text frame carries exactly one packet: a type digit
 * followed by the payload. Over HTTP long-polling a body carries one or
 * more packets joined by PD_EIO_SEPARATOR. */
#ifndef PD_EIO_H
#define PD_EIO_H

#include "privydrop/pd_common.h"

typedef enum pd_eio_type {
    PD_EIO_OPEN = 0,
    PD_EIO_CLOSE = 1,
    PD_EIO_PING = 2,
    PD_EIO_PONG = 3,
    PD_EIO_MESSAGE = 4,
    PD_EIO_UPGRADE = 5,
    PD_EIO_NOOP = 6,
} pd_eio_type;

typedef struct pd_eio_packet {
    pd_eio_type type; /* packet type */
    pd_slice data;    /* payload after the type digit (view into the input) */
} pd_eio_packet;

/* Parse one packet from a text frame. PD_ERR on an empty frame or a type
 * outside 0..6. */
int pd_eio_parse(pd_slice frame, pd_eio_packet *out);

/* Write the open packet
 *   0{"sid":"<sid>","upgrades":[],"pingInterval":<i>,"pingTimeout":<t>,"maxPayload":<m>}
 * into buf (NUL-terminated), with "upgrades":["websocket"] when
 * `can_upgrade`. Returns its length, or PD_ERR if buf is too small. */
int pd_eio_encode_open(char *buf, size_t cap, const char *sid, unsigned ping_interval_ms,
                       unsigned ping_timeout_ms, size_t max_payload, int can_upgrade);

/* The Engine.IO HTTP error bodies (docs/wire-protocol.md §Handshake),
 * static strings. */
#define PD_EIO_ERR_TRANSPORT "{\"code\":0,\"message\":\"Transport unknown\"}"
#define PD_EIO_ERR_BAD_REQUEST "{\"code\":3,\"message\":\"Bad request\"}"
#define PD_EIO_ERR_PROTOCOL "{\"code\":5,\"message\":\"Unsupported protocol version\"}"

#define PD_EIO_ERR_UNKNOWN_SID "{\"code\":1,\"message\":\"Session ID unknown\"}"
#define PD_EIO_ERR_HANDSHAKE_METHOD "{\"code\":2,\"message\":\"Bad handshake method\"}"

typedef enum pd_eio_transport { PD_EIO_POLLING = 1, PD_EIO_WEBSOCKET = 2 } pd_eio_transport;

/* What the query of a /socket.io/ request asks for. */
typedef struct pd_eio_query {
    pd_eio_transport transport;
    int has_sid;     /* a sid parameter was given (possibly empty) */
    pd_slice sid;    /* its raw value (a view into the query) */
} pd_eio_query;

/* Check the query of GET|POST /socket.io/?EIO=4&transport=…[&sid=…]
 * (`query` raw, no '?'). Returns NULL and fills *out (if not NULL) when
 * acceptable, else the error body to send with HTTP 400: transport missing,
 * repeated or other than "websocket"/"polling" → TRANSPORT; EIO missing or
 * != 4 → PROTOCOL; sid repeated → BAD_REQUEST. Whether a sid exists is the
 * caller's to decide (UNKNOWN_SID). */
const char *pd_eio_check_query(pd_slice query, pd_eio_query *out);

/* Engine.IO v4 polling payloads join packets with this byte (0x1e, the
 * record separator), which no text packet contains. */
#define PD_EIO_SEPARATOR '\x1e'

#endif
