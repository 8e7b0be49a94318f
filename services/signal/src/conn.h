/* conn.h — the seam between a transport and the rooms above it.
 *
 * A transport (the engine, eng.c, carried by WebSocket, session.c, or HTTP
 * long-polling, poll.c) owns the connection, its framing, the Engine.IO
 * heartbeat, the Socket.IO CONNECT handshake and the per-socket event
 * rate. It knows nothing of
 * rooms or Redis: it hands every Socket.IO EVENT up through a
 * pd_conn_handler and is driven back through the pd_conn_ops it fills in —
 * the shape of wslay's callbacks plus user data, or h2o's websocket conn.
 *
 * What a transport promises the handler:
 *   - on_open once, before anything else about the connection; on_close at
 *     most once, as soon as the connection stops being usable (before its
 *     memory goes), never from inside ops->send.
 *   - on_event only between the two, only after the Socket.IO CONNECT was
 *     answered, only for events within the socket's rate.
 *   - may_read is asked after taking input from a client; while it answers
 *     0 the transport stops taking input (a polling transport answers its
 *     POSTs later) and asks again, with `resuming` set, until it answers 1.
 *   - ops->send never re-enters the handler and never frees the connection
 *     (overflow is acted on later), so a handler may send to many
 *     connections from one callback.
 * The handler owns conn->data (its per-connection record) and must drop it
 * in on_close.
 * One libuv loop per process: nothing here is locked. */
#ifndef PD_SIGNAL_CONN_H
#define PD_SIGNAL_CONN_H

#include <netinet/in.h>
#include <stdint.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_id.h"

typedef struct pd_conn pd_conn;

/* What the layer above may ask of a connection. */
typedef struct pd_conn_ops {
    /* Queue one Engine.IO packet for the client, as pd_sio_* encodes it
     * ("42[...]": a message carrying a Socket.IO event). Dropped on a closing connection; a queue over its cap closes the
     * connection later, never inside this call. */
    void (*send)(pd_conn *c, const char *pkt, size_t len);
    /* Close with a WebSocket close code (PD_WS_CLOSE_*); on_close runs from
     * inside this call if it has not run yet. */
    void (*close)(pd_conn *c, uint16_t code, const char *reason);
    /* The connection is counted in Redis: the held Socket.IO CONNECT
     * answer may go out (/health/detailed must already see it). */
    void (*counted)(pd_conn *c);
} pd_conn_ops;

/* Embedded in the transport's own record (container_of gets back to it). */
struct pd_conn {
    const pd_conn_ops *ops;          /* the transport's, static */
    void *data;                      /* the handler's record, NULL outside open..close */
    char sid[PD_SOCKET_ID_MAX + 1];  /* Socket.IO socket id: the worker's tag, then random */
    uint8_t ip[16];                  /* client address; IPv4 as ::ffff:a.b.c.d */
};

/* What a transport reports to the layer above; `ud` is the pointer given
 * along with the handler. */
typedef struct pd_conn_handler {
    void (*on_open)(void *ud, pd_conn *c);
    /* A Socket.IO EVENT on the main namespace: `data` is the packet's JSON
     * text (borrowed, valid for the call only), ack_id its ack id or
     * PD_SIO_NO_ACK. */
    void (*on_event)(void *ud, pd_conn *c, pd_slice data, long long ack_id);
    void (*on_close)(void *ud, pd_conn *c);
    /* 1 if clients may be read from; see above for `resuming`. */
    int (*may_read)(void *ud, int resuming);
    /* The connection continues at another address (a polling session
     * upgraded to WebSocket): `c` is the new one, its data the handler's
     * record. The old one is never mentioned again. */
    void (*on_moved)(void *ud, pd_conn *c);
} pd_conn_handler;

static inline void pd_conn_send(pd_conn *c, const char *pkt, size_t len) { c->ops->send(c, pkt, len); }
static inline void pd_conn_close(pd_conn *c, uint16_t code, const char *reason) { c->ops->close(c, code, reason); }

/* Store the text form of a client address (from pd_client_ip) in c->ip;
 * anything unparseable becomes "::", one bucket for all of them. */
void pd_conn_set_ip(pd_conn *c, const char *text);
/* The client address in text form, written into buf. */
const char *pd_conn_client_ip(const pd_conn *c, char buf[INET6_ADDRSTRLEN]);

#endif
