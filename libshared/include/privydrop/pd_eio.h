/* pd_eio.h — Engine.IO v4 packets (docs/engine.io-protocol/v4-current.md,
 * "Protocol" → "Packet encoding"). Pure functions over buffers, no I/O.
 *
 * Over WebSocket one text frame carries exactly one packet: a type digit
 * followed by the payload. We only speak the WebSocket transport. */
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

/* Validate the handshake query of GET /socket.io/?EIO=4&transport=websocket.
 * Returns NULL if acceptable, else the error body to send with HTTP 400:
 * EIO missing or != 4 → PROTOCOL; transport missing or not "websocket" →
 * TRANSPORT; a "sid" parameter (we never hand one out for polling) →
 * BAD_REQUEST. `query` is the raw query string (no '?'). */
const char *pd_eio_check_handshake(pd_slice query);

#endif
