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
 * client gets "Session ID unknown" at once and reconnects.
 *
 * Messages (one PUBLISH payload each, text):
 *     Q <G|P> <from tag> <request id> <sid>\n<POST body>
 *     A <request id> <status> <t|h|j>\n<body>
 * (t text/plain, h text/html, j application/json).
 * One libuv loop per process: nothing here is locked. */
#ifndef PD_SIGNAL_FWD_H
#define PD_SIGNAL_FWD_H

#include "privydrop/pd_http.h"
#include "worker.h"

#define PD_FWD_TAG_LEN 8
#define PD_FWD_CHANNEL_PREFIX "pd:eio:"

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
                    const char *cors);

/* A message on a pd:eio: channel (ours). */
void pd_fwd_on_message(pd_worker *w, pd_slice message);

/* The owner's answer to a forwarded request (`to` and `id` from its Q). */
void pd_fwd_reply(pd_worker *w, pd_slice to, pd_slice id, int status, char type, const char *body,
                  size_t len);

/* Requests forwarded by this worker and not yet answered. */
size_t pd_fwd_pending(const pd_worker *w);

#endif
