/* eng.h — one Engine.IO v4 session and the Socket.IO v5 socket it carries
 * on the main namespace, whatever transport carries its packets
 * (docs/wire-protocol.md §Handshake, §Heartbeat, §Socket.IO packets).
 *
 * The engine owns the protocol: the heartbeat (pings leave on time, from
 * one deadline heap per worker), the Socket.IO CONNECT handshake, the
 * per-socket rate of everything a client makes us do, and what a client may
 * send when. It is the pd_conn the layer above sees (conn.h) and reports to
 * the handler set with pd_eng_layer_set_handler.
 *
 * A transport embeds a pd_eng in its own record (WebSocket: session.c;
 * HTTP long-polling: poll.c), hands it every Engine.IO packet the client
 * sent (pd_eng_input) and gives it a pd_eng_transport to send and close
 * with. The engine never frees anything: the transport owns the memory and
 * calls pd_eng_release before freeing it.
 * One libuv loop per process: nothing here is locked. */
#ifndef PD_SIGNAL_ENG_H
#define PD_SIGNAL_ENG_H

#include "privydrop/pd_ratelimit.h"
#include "conn.h"
#include "worker.h"

typedef struct pd_eng pd_eng;

/* What the engine asks of the transport carrying it. */
typedef struct pd_eng_transport {
    /* Queue one Engine.IO packet (text, e.g. "2" or "42[...]") for the
     * client. Never re-enters the engine or frees anything; over its cap
     * the transport closes later. */
    void (*send)(pd_eng *e, const char *pkt, size_t len);
    /* The session is over (the handler has heard on_close): end the
     * transport's side with this WebSocket close code (PD_WS_CLOSE_*; a
     * polling transport maps it) and reason. */
    void (*close)(pd_eng *e, uint16_t code, const char *reason);
    /* A deadline the transport armed after the session closed (a linger)
     * has passed. */
    void (*expired)(pd_eng *e);
} pd_eng_transport;

/* Embedded in the transport's record; fields are the engine's, read-only
 * to the transport except where said. */
struct pd_eng {
    pd_conn conn;                  /* what the handler sees */
    pd_worker *w;                  /* owning worker */
    const pd_eng_transport *tp;    /* the carrying transport (may change on upgrade) */
    uint64_t deadline;             /* monotonic ms, 0 = none */
    uint32_t heap_idx;             /* slot in the worker's deadline heap */
    uint32_t opened;               /* monotonic ms at open, truncated (differences wrap safely) */
    uint32_t limited_in_row;       /* takes refused since the last allowed one */
    pd_bucket events;              /* the socket's rate */
    unsigned closed : 1;           /* the session is over; only the transport lingers */
    unsigned sio_connected : 1;    /* answered 40 */
    unsigned connect_pending : 1;  /* 40 received, waiting to be counted */
    unsigned counted : 1;          /* the handler called ops->counted: 40 may go out */
    unsigned awaiting_pong : 1;    /* ping sent, no pong yet */
    unsigned handler_open : 1;     /* the handler heard on_open and not yet on_close */
};

/* The worker-wide parts: the deadline heap and its timer. Close frees the
 * heap; sessions must have been released by then. */
int pd_eng_layer_init(pd_worker *w);
void pd_eng_layer_close(pd_worker *w);

/* The layer above: `h` (static) and `ud` are kept until changed; NULL
 * detaches it (at shutdown, before the layer above is freed). */
void pd_eng_layer_set_handler(pd_worker *w, const pd_conn_handler *h, void *ud);

/* Start a session in `e` (zeroed by the caller): a fresh socket id, the
 * handler's on_open, the open packet through tp->send (advertising the
 * WebSocket upgrade when `can_upgrade`), the heartbeat armed. `eio_sid` is
 * the Engine.IO session id the client will quote. PD_ERR (nothing
 * started, nothing to release) on failure. */
int pd_eng_open(pd_eng *e, pd_worker *w, const pd_eng_transport *tp, const char *client_ip,
                const char *eio_sid, int can_upgrade);

/* One Engine.IO packet from the client (its bytes borrowed for the call).
 * May close the session. */
void pd_eng_input(pd_eng *e, pd_slice pkt);

/* Draw one unit of work from the socket's rate (`what` labels a refusal
 * in the metrics). 1 if allowed; a client that keeps going after being
 * refused is closed (1008). */
int pd_eng_take(pd_eng *e, const char *what);

/* End the session: the handler hears on_close (once), then tp->close. A
 * no-op on a closed session. */
void pd_eng_close(pd_eng *e, uint16_t code, const char *reason);

/* The transport ended on its own (the client closed, the connection
 * died): the handler hears on_close if it has not; tp->close is not
 * called. */
void pd_eng_mark_closed(pd_eng *e);

/* Deadlines: the engine's heartbeat while open; the transport's own (a
 * linger, reported through tp->expired) once closed. */
void pd_eng_arm(pd_eng *e, uint64_t ms);

/* No deadline for `e` any more. */
void pd_eng_disarm(pd_eng *e);

/* Take `e` out of the worker's structures (its deadline) before the
 * transport frees it; marks it closed first. */
void pd_eng_release(pd_eng *e);

/* The WebSocket upgrade of a polling session: the session continues in
 * `dst` (the new transport's own engine, not opened), carried by `tp`; the
 * handler hears on_moved; `src` is left closed, for its transport to free
 * without the handler hearing on_close. */
void pd_eng_move(pd_eng *dst, pd_eng *src, const pd_eng_transport *tp);

/* The engine a pd_conn belongs to. */
static inline pd_eng *pd_eng_of(pd_conn *c)
{
    return (pd_eng *)(void *)((char *)c - offsetof(pd_eng, conn));
}

#endif
