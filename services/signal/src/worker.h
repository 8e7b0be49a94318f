/* worker.h — one signaling worker process: its configuration, its state, and
 * the interfaces between its three layers:
 *   session.c  one WebSocket connection: frames (wslay), Engine.IO
 *              heartbeat, Socket.IO packets; knows nothing of rooms.
 *   hub.c      sockets and rooms of this worker, the Socket.IO events, the
 *              Redis room store and the pub/sub bus between workers.
 *   main.c     configuration, HTTP routes, the WebSocket handshake, signals.
 * One libuv loop per process, so nothing here is locked. */
#ifndef PD_SIGNAL_WORKER_H
#define PD_SIGNAL_WORKER_H

#include <jansson.h>
#include <netinet/in.h>
#include <uv.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_http.h"
#include "privydrop/pd_id.h"
#include "privydrop/pd_map.h"
#include "privydrop/pd_metrics.h"
#include "privydrop/pd_netaddr.h"
#include "privydrop/pd_redis.h"

typedef struct pd_worker_config {
    const char *listen_addr;      /* PD_LISTEN_ADDR */
    long port;                    /* PD_SIGNAL_PORT */
    char worker_id[96];           /* PD_WORKER_ID or <host>-<pid> */
    long ping_interval_ms;        /* PD_PING_INTERVAL_MS */
    long ping_timeout_ms;         /* PD_PING_TIMEOUT_MS */
    long connect_timeout_ms;      /* PD_CONNECT_TIMEOUT_MS: time allowed before Socket.IO connect */
    long max_message_bytes;       /* PD_MAX_MESSAGE_BYTES */
    long max_send_queue_bytes;    /* PD_MAX_SEND_QUEUE_BYTES: slow readers are closed beyond */
    long drain_timeout_ms;        /* PD_DRAIN_TIMEOUT_MS */
    long drain_notice_ms;         /* PD_DRAIN_NOTICE_MS: not ready, sockets still open */
    long drain_spread_ms;         /* PD_DRAIN_SPREAD_MS: sockets closed evenly over this */
    long max_connections;         /* PD_MAX_CONNECTIONS */
    long max_conns_per_ip;        /* PD_MAX_CONNS_PER_IP */
    long event_rate;              /* PD_EVENT_RATE: events per second per socket */
    long event_burst;             /* PD_EVENT_BURST */
    long max_room_peers;          /* PD_MAX_ROOM_PEERS */
    const char *redis_host;       /* REDIS_HOST */
    long redis_port;              /* REDIS_PORT */
    const char *redis_password;   /* REDIS_PASSWORD */
    const char *environment;      /* NODE_ENV */
    int join_rate_limit;          /* !DISABLE_JOIN_RATE_LIMIT */
    const char *cors_origin;      /* CORS_ORIGIN: allowed WebSocket Origins, NULL = any */
} pd_worker_config;

typedef struct pd_sess pd_sess;
typedef struct pd_hub pd_hub;
typedef struct hub_room hub_room; /* hub.c: one room's local members */

typedef struct pd_worker {
    uv_loop_t *loop;              /* the process loop */
    pd_worker_config cfg;         /* immutable after start */
    pd_cidr_list *trusted;        /* PD_TRUSTED_PROXIES */
    pd_http_server *http;         /* listener */
    pd_redis *redis;              /* commands + pub/sub */
    pd_hub *hub;                  /* sockets, rooms, bus */
    pd_metrics *metrics;          /* registry */
    pd_metric *m_connections;     /* gauge: open sockets */
    pd_metric *m_messages;        /* counter{event} */
    pd_metric *m_dropped;         /* counter{reason} */
    pd_metric *m_publishes;       /* counter: bus publishes */
    pd_metric *m_bus_received;    /* counter: bus envelopes delivered to us */
    pd_metric *m_redis_up;        /* gauge */
    pd_metric *m_rooms;           /* gauge: rooms with local members */
    pd_metric *m_closed;          /* counter{reason}: sessions closed */
    pd_metric *m_backpressure;    /* counter{cause}: times reading from clients was held back */
    uv_idle_t flush_idle;         /* runs once per loop turn while sessions have output */
    pd_sess *dirty;               /* sessions with queued output (intrusive list) */
    pd_sess *sessions;            /* every session not yet closed (intrusive list) */
    uv_timer_t sess_tick;         /* drives every session's deadlines */
    uv_timer_t resume_timer;      /* resumes reading once Redis has caught up */
    int draining;                 /* SIGTERM received */
    uint64_t started_ms;          /* wall clock at start */
    uint8_t read_buf[65536];      /* shared read buffer: frames are consumed at once */
    const uint8_t *feed_buf;      /* bytes being handed to wslay by one session's feed */
    size_t feed_len, feed_pos;    /* their length and how far wslay has taken them */
} pd_worker;

/* ---- session.c ---------------------------------------------------------- */

/* Prepare the worker-wide parts of the session layer (the flush idle). */
void pd_sess_layer_init(pd_worker *w);
void pd_sess_layer_close(pd_worker *w);

/* Take over a detached TCP stream after the 101 response and start the
 * Engine.IO session: `leftover` (may be NULL) holds bytes already read. The
 * session owns `tcp` from here on. NULL on allocation failure (tcp closed). */
pd_sess *pd_sess_create(pd_worker *w, uv_tcp_t *tcp, const char *client_ip, const char *leftover,
                        size_t leftover_len);

/* Queue one Engine.IO packet (text frame) for the peer. Silently dropped on
 * a closing session; a send queue over the cap closes the session. */
void pd_sess_send(pd_sess *s, const char *pkt, size_t len);

/* Close with a WebSocket close code (1000 normal, 1001 going away, 1002
 * protocol, 1003 unsupported data, 1007 bad payload, 1008 policy, 1009 too
 * big, 1011 server error). Room cleanup runs at once through the hub. */
void pd_sess_close(pd_sess *s, uint16_t code, const char *reason);

/* The Socket.IO connect answer `40{"sid":…}` is held until the hub says the
 * connection has been counted in Redis (/health/detailed must see it). */
void pd_sess_counted(pd_sess *s);

const char *pd_sess_id(const pd_sess *s);
/* The client address in text form, written into buf. */
const char *pd_sess_client_ip(const pd_sess *s, char buf[INET6_ADDRSTRLEN]);
/* The room this socket is bound to (NULL if none); a hub-owned field. The
 * hub keeps a room entry alive while any socket is bound to it. */
hub_room **pd_sess_room(pd_sess *s);
/* Joins in flight, for bounding them (hub-owned). */
uint8_t *pd_sess_joins_inflight(pd_sess *s);

/* ---- hub.c -------------------------------------------------------------- */

pd_hub *pd_hub_create(pd_worker *w);
/* Stop timers and free (after every session is gone). */
void pd_hub_free(pd_hub *h);

/* Session life cycle. */
void pd_hub_on_open(pd_hub *h, pd_sess *s);
void pd_hub_on_close(pd_hub *h, pd_sess *s);
/* A Socket.IO event: name and its argument array (borrowed). */
void pd_hub_on_event(pd_hub *h, pd_sess *s, const char *name, json_t *args);

/* The relay fast path: offer / answer / ice-candidate straight from the
 * packet's JSON text (validated by pd_jscan, never turned into a tree).
 * Returns 0 when the packet is anything else (another event, escapes in the
 * name or target, nesting beyond the scanner's bound) and the caller must use
 * the general path; 1 when it was handled (relayed or dropped). */
int pd_hub_on_event_raw(pd_hub *h, pd_sess *s, pd_slice data);

/* 1 while another instance has told us it cannot keep up with the bus:
 * sessions hold back reading their clients until it recovers. */
int pd_hub_peers_behind(const pd_hub *h);

/* Redis readiness and bus messages (wired to pd_redis). */
void pd_hub_on_redis_state(pd_hub *h, int ready);
void pd_hub_on_bus_message(pd_hub *h, pd_slice channel, pd_slice message);

size_t pd_hub_session_count(const pd_hub *h);
/* Open sockets from one client address on this worker. */
size_t pd_hub_ip_count(const pd_hub *h, const char *ip);
/* Close every session with 1001 (drain). */
void pd_hub_close_all(pd_hub *h);
/* A drain in steps: begin takes the list of open sockets (returns how many);
 * each step closes the listed sockets up to index `upto` (exclusive) that
 * are still open, with 1001 — a socket bound to a room only once its
 * re-join credit (pd_room_grant_rejoin) is in Redis. */
size_t pd_hub_drain_begin(pd_hub *h);
void pd_hub_drain_step(pd_hub *h, size_t upto);
/* Cleanups still waiting for Redis. */
size_t pd_hub_pending_cleanups(const pd_hub *h);

#endif
