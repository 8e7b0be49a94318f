/* worker.h — one signaling worker process: its configuration and the state
 * its layers share (loop, Redis, metrics). The layers, each with its own
 * header:
 *   conn.h     the seam: a connection as the layer above sees it, and the
 *              handler a transport reports to.
 *   eng.h      one Engine.IO session and its Socket.IO socket, whatever
 *              carries it: heartbeat, CONNECT, rates; the pd_conn the hub
 *              sees. Knows nothing of rooms or Redis.
 *   session.h  the WebSocket transport (session.c): frames (wslay),
 *              output corked per loop turn.
 *   poll.h     the HTTP long-polling transport (poll.c) and the upgrade
 *              from it to WebSocket.
 *   hub.h      sockets and rooms of this worker, the Socket.IO events, the
 *              Redis room store and the pub/sub bus between workers.
 *   main.c     configuration, HTTP routes, the WebSocket handshake, signals;
 *              it wires the hub to the transport.
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
    long room_refresh_ms;         /* PD_ROOM_REFRESH_MS */
    long drain_notice_ms;         /* PD_DRAIN_NOTICE_MS: not ready, sockets still open */
    long drain_spread_ms;         /* PD_DRAIN_SPREAD_MS: sockets closed evenly over this */
    long max_connections;         /* PD_MAX_CONNECTIONS */
    long max_conns_per_ip;        /* PD_MAX_CONNS_PER_IP */
    long event_rate;              /* PD_EVENT_RATE: events per second per socket */
    long event_burst;             /* PD_EVENT_BURST */
    long max_room_peers;          /* PD_MAX_ROOM_PEERS */
    long join_reserved_wait_ms;   /* PD_JOIN_RESERVED_WAIT_MS: a join waits this long for a pooled room's claim */
    pd_redis_options redis;       /* REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_SENTINEL* */
    const char *environment;      /* NODE_ENV */
    int join_rate_limit;          /* !DISABLE_JOIN_RATE_LIMIT */
    const char *cors_origin;      /* CORS_ORIGIN: allowed WebSocket Origins, NULL = any */
    long peer_links;              /* PD_PEER_LINKS: links between workers for forwarded polling (peer.h) */
    long peer_port;               /* PD_PEER_PORT: their port, 0 = any free one */
    const char *peer_advertise;   /* PD_PEER_ADVERTISE: the address others reach it at, NULL = found */
} pd_worker_config;

typedef struct pd_sess pd_sess;       /* session.h */
typedef struct pd_hub pd_hub;         /* hub.h */
typedef struct pd_conn_handler pd_conn_handler; /* conn.h */
typedef struct pd_eng pd_eng;         /* eng.h */

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
    pd_metric *m_join_waits;      /* counter{result}: joins that found their room reserved */
    pd_metric *m_publishes;       /* counter: bus publishes */
    pd_metric *m_poll_forwarded;  /* counter: polling requests / tunnelled packets sent to their owner */
    pd_metric *m_polls;           /* gauge: polling sessions owned here */
    pd_metric *m_tunnels;         /* gauge: tunnels carried here */
    pd_metric *m_fwd_pending;     /* gauge: forwarded requests waiting */
    pd_metric *m_fwd_path;        /* counter{path}: forwarded requests by the way they went (link, redis) */
    pd_metric *m_peer_links;      /* gauge{dir}: links between workers (peer.h) */
    pd_metric *m_poll_gets;       /* gauge: polling GETs waiting here */
    size_t poll_gets;             /* its value */
    pd_metric *m_bus_received;    /* counter: bus envelopes delivered to us */
    pd_metric *m_redis_up;        /* gauge */
    pd_metric *m_master_changes;  /* counter, set when scraped: Sentinel master changes followed */
    pd_metric *m_rooms;           /* gauge: rooms with local members */
    pd_metric *m_closed;          /* counter{reason}: sessions closed */
    pd_metric *m_backpressure;    /* counter{cause}: times reading from clients was held back */
    uv_idle_t flush_idle;         /* runs once per loop turn while sessions have output */
    pd_sess *dirty;               /* sessions with queued output (intrusive list) */
    pd_sess *sessions;            /* every session not yet closed (intrusive list) */
    uv_timer_t sess_tick;         /* gives back idle sessions' output buffers */
    uv_timer_t eng_timer;         /* due at the earliest engine deadline */
    uint64_t eng_timer_due;       /* when it is due (monotonic ms), 0 = not armed */
    pd_eng **eng_heap;            /* engines with a deadline, a binary min-heap */
    uint32_t eng_heap_n, eng_heap_cap;
    struct pd_ptab *polls;        /* long-polling sessions by Engine.IO sid (poll.h) */
    struct pd_poll *poll_dirty;   /* polling sessions with output or closing (intrusive list) */
    uv_idle_t poll_idle;          /* answers their waiting GETs once per loop turn */
    struct pd_fwd *fwd;           /* polling requests forwarded to other workers (fwd.h) */
    struct pd_peer *peer;         /* direct links to the other workers (peer.h), NULL if off */
    char eio_tag[9];              /* this worker's tag: the start of its polling sids */
    uv_timer_t resume_timer;      /* asks the handler to resume reading, once per ms */
    const pd_conn_handler *conn_handler; /* what sessions report to (the hub), NULL at shutdown */
    void *conn_ud;                /* its user data */
    int draining;                 /* SIGTERM received */
    int retiring;                 /* the drain sent pd_cluster_retire: no heartbeat may follow it */
    uint64_t started_ms;          /* wall clock at start */
    uint8_t read_buf[65536];      /* shared read buffer: frames are consumed at once */
    const uint8_t *feed_buf;      /* bytes being handed to wslay by one session's feed */
    size_t feed_len, feed_pos;    /* their length and how far wslay has taken them */
} pd_worker;

/* The longest packet a bus message may carry: what every worker's
 * subscriber link accepts (main.c adds room for the envelope's header).
 * A packet the general path re-encoded can be several times longer than
 * the message it came in (a number such as 1e16 comes out as
 * 10000000000000000.0), so publishers check it: one longer message would
 * make every subscribed worker drop its link (docs/architecture.md §Redis). */
#define PD_BUS_ENVELOPE_ROOM 4096
static inline size_t pd_worker_bus_max_packet(const pd_worker *w)
{
    return (size_t)PD_MAX(w->cfg.max_message_bytes, w->cfg.max_send_queue_bytes);
}

#endif
