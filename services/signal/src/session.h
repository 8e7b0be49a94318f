/* session.h — the WebSocket transport: one connection carrying one Engine.IO
 * session (frames by wslay, output corked per loop turn). The protocol it
 * carries is the engine's (eng.h), which reports to the layer above; this
 * layer knows nothing of rooms or Redis. */
#ifndef PD_SIGNAL_SESSION_H
#define PD_SIGNAL_SESSION_H

#include <uv.h>

#include "eng.h"
#include "poll.h"
#include "worker.h"

/* Prepare the worker-wide parts of the session layer (the flush idle, the
 * session clock, the resume timer); pd_sess_layer_close ends whatever is
 * left and closes them. */
void pd_sess_layer_init(pd_worker *w);
void pd_sess_layer_close(pd_worker *w);

/* Take over a detached TCP stream after the 101 response and start the
 * Engine.IO session: `leftover` (may be NULL) holds bytes already read. The
 * session owns `tcp` from here on and frees itself once closed. NULL on
 * allocation failure (tcp closed). */
pd_sess *pd_sess_create(pd_worker *w, uv_tcp_t *tcp, const char *client_ip, const char *leftover,
                        size_t leftover_len);

/* The same for a WebSocket that probes the upgrade of polling session `p`
 * on this worker (GET /socket.io/?transport=websocket&sid=…): no session of
 * its own until the client's "5" moves `p`'s here (poll.h). */
pd_sess *pd_sess_create_probe(pd_worker *w, uv_tcp_t *tcp, pd_poll *p, const char *leftover,
                              size_t leftover_len);

/* A WebSocket upgrade of session `sid` of another worker: a tunnel to its
 * owner (fwd.h). */
pd_sess *pd_sess_create_tunnel(pd_worker *w, uv_tcp_t *tcp, pd_slice sid, const char *client_ip,
                               const char *leftover, size_t leftover_len);
/* The owner's packet for, or close of, a tunnelled WebSocket (fwd.c). */
void pd_sess_tunnel_out(pd_sess *s, pd_slice pkt);
void pd_sess_tunnel_close(pd_sess *s, uint16_t code);

/* The polling session a probe was taking over closed (called by poll.c). */
void pd_sess_probe_lost(void *probe);

#endif
