/* poll.h — the Engine.IO v4 HTTP long-polling transport
 * (docs/wire-protocol.md §Long-polling): a session whose packets travel in
 * HTTP requests. GET /socket.io/?EIO=4&transport=polling opens it (the
 * answer is the open packet, advertising the WebSocket upgrade); GETs with
 * its sid wait for packets (at most until the next ping); POSTs carry the
 * client's packets, joined by 0x1e. The protocol is the engine's (eng.h);
 * this layer knows nothing of rooms or Redis.
 *
 * A session lives on the worker that opened it. The WebSocket upgrade of a
 * session on this worker moves its engine into the WebSocket session
 * (pd_poll_probe_*, called by session.c).
 * One libuv loop per process: nothing here is locked. */
#ifndef PD_SIGNAL_POLL_H
#define PD_SIGNAL_POLL_H

#include "privydrop/pd_eio.h"
#include "privydrop/pd_http.h"
#include "eng.h"
#include "worker.h"

typedef struct pd_poll pd_poll;

/* The worker-wide parts (the session table, the flush handle); close ends
 * every session still open and frees them. */
int pd_poll_layer_init(pd_worker *w);
void pd_poll_layer_close(pd_worker *w);

/* Sessions open on this worker. */
size_t pd_poll_count(const pd_worker *w);

/* Serve one /socket.io/ request whose query asked for polling (`q`, from
 * pd_eio_check_query). `client_ip` is the client's address (trusted proxies
 * resolved); `cors` is NULL or the CORS header lines to add to every answer.
 * Answers now or later (a waiting GET). */
void pd_poll_request(pd_worker *w, pd_http_conn *c, const pd_http_request *req, const pd_eio_query *q,
                     const char *client_ip, const char *cors);

/* A polling request forwarded by another worker (fwd.h): `kind` 'G' (a
 * GET: answered through pd_fwd_reply when there is something to say) or
 * 'P' (a POST with `body`); `from` and `id` name it there. */
void pd_poll_remote(pd_worker *w, char kind, pd_slice from, pd_slice id, pd_slice sid, pd_slice body);

/* A WebSocket on worker `from` carries (or probes to carry) session `sid`:
 * a packet from it, or its end (fwd.h). */
void pd_poll_tunnel_in(pd_worker *w, pd_slice from, pd_slice sid, pd_slice pkt);
void pd_poll_tunnel_gone(pd_worker *w, pd_slice from, pd_slice sid);

/* The polling session with this sid on this worker, NULL if none (closed,
 * or upgraded). */
pd_poll *pd_poll_find(pd_worker *w, pd_slice sid);

/* The upgrade, driven by the WebSocket transport (session.c), which holds
 * the probing connection `probe` (opaque here):
 *   attach   a WebSocket asks to upgrade this session; PD_ERR if another
 *            probe is in progress (the caller refuses the new one).
 *   ping     "2probe" arrived: a waiting GET is answered with a noop so the
 *            client can pause polling.
 *   upgrade  "5" arrived: the engine moves into `dst` (the WebSocket's own,
 *            carried by `tp`); packets still queued here are sent through it;
 *            the polling session is gone afterwards. PD_ERR if it closed.
 *   detach   the probing connection went away before "5".
 * While attached, a polling session that closes calls
 * pd_sess_probe_lost(probe). */
int pd_poll_probe_attach(pd_poll *p, void *probe);
void pd_poll_probe_ping(pd_poll *p);
int pd_poll_probe_upgrade(pd_poll *p, pd_eng *dst, const pd_eng_transport *tp);
void pd_poll_probe_detach(pd_poll *p);

#endif
