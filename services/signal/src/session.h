/* session.h — the WebSocket transport: one connection carrying one Engine.IO
 * v4 session and its Socket.IO v5 socket on the main namespace (frames by
 * wslay, the Engine.IO heartbeat, the Socket.IO CONNECT handshake, the
 * per-socket event rate). It implements conn.h: it reports to the handler
 * set with pd_sess_layer_set_handler and knows nothing of rooms or Redis. */
#ifndef PD_SIGNAL_SESSION_H
#define PD_SIGNAL_SESSION_H

#include <uv.h>

#include "conn.h"
#include "worker.h"

/* Prepare the worker-wide parts of the session layer (the flush idle, the
 * session clock, the resume timer); pd_sess_layer_close ends whatever is
 * left and closes them. */
void pd_sess_layer_init(pd_worker *w);
void pd_sess_layer_close(pd_worker *w);

/* The layer above: `h` (static) and `ud` are kept until changed; NULL
 * detaches it (at shutdown, before the layer above is freed). */
void pd_sess_layer_set_handler(pd_worker *w, const pd_conn_handler *h, void *ud);

/* Take over a detached TCP stream after the 101 response and start the
 * Engine.IO session: `leftover` (may be NULL) holds bytes already read. The
 * session owns `tcp` from here on and frees itself once closed. NULL on
 * allocation failure (tcp closed). */
pd_sess *pd_sess_create(pd_worker *w, uv_tcp_t *tcp, const char *client_ip, const char *leftover,
                        size_t leftover_len);

#endif
