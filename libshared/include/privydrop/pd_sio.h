/* pd_sio.h — Socket.IO v5 packets (docs/socket.io-protocol/v5-current.md,
 * "Packet format"): <type>[<attachments>-][<nsp>,][<ack id>][<JSON data>].
 * Pure functions over buffers, no I/O. */
#ifndef PD_SIO_H
#define PD_SIO_H

#include <jansson.h>

#include "privydrop/pd_common.h"

typedef enum pd_sio_type {
    PD_SIO_CONNECT = 0,
    PD_SIO_DISCONNECT = 1,
    PD_SIO_EVENT = 2,
    PD_SIO_ACK = 3,
    PD_SIO_CONNECT_ERROR = 4,
    PD_SIO_BINARY_EVENT = 5,
    PD_SIO_BINARY_ACK = 6,
} pd_sio_type;

#define PD_SIO_NO_ACK (-1)
/* Ack ids are bounded so they fit an int64 and never overflow on parse. */
#define PD_SIO_MAX_ACK_ID 999999999999LL

typedef struct pd_sio_packet {
    pd_sio_type type;
    long long attachments; /* binary types only, else 0 */
    pd_slice nsp;          /* namespace; "/" when absent */
    long long ack_id;      /* PD_SIO_NO_ACK when absent */
    pd_slice data;         /* JSON text, possibly empty (view into the input) */
} pd_sio_packet;

/* Parse the payload of an Engine.IO message packet. PD_ERR on anything that
 * does not follow the grammar (unknown type, bad attachment count, ack id too
 * long, a namespace without its comma, ...). `data` is not parsed here. */
int pd_sio_parse(pd_slice payload, pd_sio_packet *out);

/* Decode the data of an EVENT packet: a JSON array whose first element is a
 * string. Returns PD_OK and sets *args (new reference, caller json_decref) and
 * *name (borrowed from *args). PD_ERR for bad JSON, non-array, empty array,
 * non-string name, or input longer than max_bytes. Nesting is bounded by
 * jansson's parser depth limit. */
int pd_sio_decode_event(pd_slice data, size_t max_bytes, json_t **args, const char **name);

/* Encode `42["<event>",<payload>]` as a malloc'd NUL-terminated string
 * (caller frees), or NULL on allocation failure. `payload` is borrowed. */
char *pd_sio_encode_event(const char *event, const json_t *payload, size_t *len);

/* Encode `43<ack_id>[]` into buf; returns length or PD_ERR. */
int pd_sio_encode_ack_empty(char *buf, size_t cap, long long ack_id);

#endif
