/* fwd.h — long-polling without sticky sessions (docs/architecture.md
 * §Long-polling across workers).
 *
 * A polling session lives on the worker that opened it, and its Engine.IO
 * sid starts with that worker's tag (PD_FWD_TAG_LEN characters, random at
 * start). A polling request that reaches another worker is forwarded
 * through Redis: the receiving worker publishes it on the owner's channel
 * pd:eio:<tag>, keeps the HTTP request waiting, and answers it with what
 * the owner publishes back on the receiver's own channel. Nobody listening
 * on the owner's channel (PUBLISH answers 0) means the owner is gone: the
 * client gets "Session ID unknown" at once and reconnects. While anything
 * waits on another worker, a sweep (every 500 ms) asks Redis how many
 * listen on each owner's channel (PUBSUB NUMSUB): Redis drops a dead
 * worker's subscription at once, so requests and tunnels waiting on a
 * worker that died are answered (or closed) within a sweep.
 *
 * The WebSocket upgrade of a session reaches any worker too. One that
 * lands elsewhere becomes a tunnel: the WebSocket's worker passes every
 * Engine.IO packet to the owner (the probe and "5" included) and writes
 * what the owner sends back; the session never moves, so no signal is lost
 * on the way, at the price of one Redis hop each way per packet.
 *
 * Messages (one PUBLISH payload each, text):
 *     Q <G|P> <from tag> <request id> <sid>\n<POST body>   request → owner
 *     A <request id> <status> <t|h|j>\n<body>             owner → request
 *       (t text/plain, h text/html, j application/json)
 *     T <from tag> <sid>\n<packet>     a packet from a tunnelled WebSocket → owner
 *     X <from tag> <sid>\n             that WebSocket closed → owner
 *     O <sid>\n<packet>                owner → the tunnelled WebSocket
 *     C <sid> <code>\n                 owner closes it (a WebSocket close code)
 * The same channel carries signals for this worker's sockets, whose ids
 * begin with its tag too: bus envelopes ("PD1 S ...", pd_bus.h), handed to
 * the hub (docs/architecture.md §Signals).
 * One libuv loop per process: nothing here is locked. */
#ifndef PD_SIGNAL_FWD_H
#define PD_SIGNAL_FWD_H

#include "privydrop/pd_http.h"
#include "privydrop/pd_id.h"
#include "worker.h"

#define PD_FWD_TAG_LEN PD_ID_TAG_LEN
#define PD_FWD_CHANNEL_PREFIX "pd:eio:"
/* Longest Engine.IO sid accepted from a client. */
#define PD_FWD_MAX_SID 64

typedef struct pd_sess pd_sess;

typedef struct pd_fwd pd_fwd;

/* Pick this worker's tag (w->eio_tag), subscribe to its channel and set up
 * the table of forwarded requests. PD_ERR on allocation failure. */
int pd_fwd_init(pd_worker *w);
/* Answer every request still waiting (503) and free. */
void pd_fwd_close(pd_worker *w);

/* 1 if `sid` names a session of this worker (by its tag). */
int pd_fwd_is_local(const pd_worker *w, pd_slice sid);

/* Forward a polling GET or POST whose sid belongs to another worker; the
 * request is answered when the owner replies (or with "Session ID
 * unknown" if it is gone, or 503 if Redis is). `cors` as in
 * pd_poll_request. */
void pd_fwd_request(pd_worker *w, pd_http_conn *c, const pd_http_request *req, pd_slice sid,
                    const char *client_ip, const char *cors);

/* A message on a pd:eio: channel (ours; `via` empty), or a frame from a
 * link between workers (peer.h; `via` the tag of the worker at its other
 * end: an answer is taken only from the owner its request went to). */
void pd_fwd_on_message(pd_worker *w, pd_slice message, pd_slice via);

/* The owner's answer to a forwarded request (`to` and `id` from its Q). */
void pd_fwd_reply(pd_worker *w, pd_slice to, pd_slice id, int status, char type, const char *body,
                  size_t len);

/* Publish head+body on the channel of worker `to` (a tag); cb may be NULL.
 * PD_ERR if Redis is not available (cb not called). */
int pd_fwd_publish(pd_worker *w, pd_slice to, const char *head, size_t hlen, const char *body, size_t blen,
                   void (*cb)(redisReply *, void *), void *data);

/* Tunnels, for session.c: `s` (a WebSocket on this worker) carries session
 * `sid` of another worker from begin to end (PD_ERR: refuse it). Packets
 * go through pd_fwd_tunnel_packet; the owner's come back through
 * pd_sess_tunnel_out / pd_sess_tunnel_close. */
int pd_fwd_tunnel_begin(pd_worker *w, pd_slice sid, const char *client_ip, pd_sess *s);
/* Tunnels open on this worker: all (client_ip NULL) or from that client's
 * address (its IPv6 /64); they count against the same caps as sessions. */
size_t pd_fwd_tunnel_count(const pd_worker *w, const char *client_ip);
void pd_fwd_tunnel_packet(pd_worker *w, pd_slice sid, pd_slice pkt);
void pd_fwd_tunnel_end(pd_worker *w, pd_slice sid);

/* For the sweep that notices dead owners: the channels of up to `cap`
 * tunnel owners not already in `have`; and every tunnel of a dead owner
 * closed (1001). */
size_t pd_fwd_tunnel_owners(pd_worker *w, char (*out)[sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN], size_t cap,
                            char (*have)[sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN], size_t nhave);
void pd_fwd_tunnels_owner_gone(pd_worker *w, pd_slice owner);

/* Requests forwarded by this worker and not yet answered. */
size_t pd_fwd_pending(const pd_worker *w);

#endif
