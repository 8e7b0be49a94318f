/* sigload.h — a load generator for the signaling cluster and the room API.
 *
 * One libuv loop per process. The pieces:
 *   ws.c     one client WebSocket connection: TCP connect from a chosen
 *            source address, the HTTP upgrade, masked client frames (RFC
 *            6455 §5.3), Engine.IO v4 open/heartbeat and the Socket.IO v5
 *            connect; events are handed to the mode.
 *   http.c   HTTP/1.1 keep-alive client connections for the room API and
 *            Engine.IO long-polling (Content-Length bodies only, which is
 *            what both stacks send).
 *   stats.c  a log-linear latency histogram, /proc readings of the server
 *            processes (CPU time, RSS) and of the kernel's socket memory.
 *   front.c  the balancer of the rolling mode: /readyz probes, round-robin
 *            over the ready workers.
 *   app.h    the scenarios (idle.c, relay.c, churn.c, api.c, rolling.c),
 *            what they share (app.c), the report (report.c) and main.c
 *            (options, dispatch).
 * Nothing here is locked: one loop, one thread. */
#ifndef SIGLOAD_H
#define SIGLOAD_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The struct holding `member` at address ptr (as container_of in Linux and
 * libuv's own code): offsetof-based, so the relation between an embedded
 * struct and its owner is stated rather than assumed from the layout. The
 * unevaluated branch makes the compiler check that ptr points to the
 * member's type. */
#define sl_container_of(ptr, type, member)                                                                     \
    ((type *)(void *)((char *)(1 ? (ptr) : &((type *)0)->member) - offsetof(type, member)))

#define SL_MAX_TARGETS 16
#define SL_MAX_PIDS 32
#define SL_MAX_CORES 64

/* ---- stats.c ----------------------------------------------------------- */

/* Latencies in nanoseconds, ~3 % resolution (32 sub-buckets per octave). */
#define SL_HIST_BUCKETS 1920
typedef struct sl_hist {
    uint64_t count;                /* samples */
    uint64_t min, max;             /* extremes, ns */
    double sum;                    /* for the mean */
    uint64_t b[SL_HIST_BUCKETS];   /* bucket counts */
} sl_hist;

void sl_hist_reset(sl_hist *h);
void sl_hist_add(sl_hist *h, uint64_t ns);
/* Add src's samples to dst (histograms of several generator processes). */
void sl_hist_merge(sl_hist *dst, const sl_hist *src);
/* The value at quantile q (0..1), in ns; 0 when empty. */
uint64_t sl_hist_quantile(const sl_hist *h, double q);

/* One reading of a process from /proc. */
typedef struct sl_proc {
    double cpu_s;                  /* user + system CPU seconds so far */
    long rss_kb;                   /* VmRSS */
    long fds;                      /* open descriptors, -1 unknown */
} sl_proc;
int sl_proc_read(int pid, sl_proc *out);
/* Each core's busy time (user, nice, system, irq, softirq, steal) and its
 * steal time alone, in seconds, from /proc/stat's cpuN lines, for at most
 * max cores; returns how many were read (0 if none). */
int sl_cores_read(double *busy_s, double *steal_s, int max);

/* Kernel TCP socket buffers in use (/proc/net/sockstat "mem", in bytes) and
 * sockets in use; system-wide, both ends of loopback connections included. */
int sl_sockstat(long *tcp_mem_bytes, long *tcp_inuse);

/* ---- account.c ---------------------------------------------------------- */

typedef enum sl_seq_verdict {
    SL_SEQ_NEW,       /* first time: counts as delivered */
    SL_SEQ_REPEAT,    /* at or below one already taken: a duplicate or reordered */
    SL_SEQ_UNSENT,    /* a number the sender has not sent */
} sl_seq_verdict;
/* The receiving end of one ordered path of numbered signals: *next is the
 * number it expects, sent how many the sender has sent so far. A number
 * ahead of *next means those in between are lost: added to *gaps. */
sl_seq_verdict sl_seq_take(uint64_t *next, uint64_t seq, uint64_t sent, uint64_t *gaps);

typedef enum sl_when {
    SL_WHEN_OUTSIDE,  /* due before the window (or not measured at all) */
    SL_WHEN_IN_TIME,  /* due in the window, arrived in it */
    SL_WHEN_LATE,     /* due in the window, arrived after it (the drain) */
} sl_when;
/* A signal due at t (hrtime) arriving now. The window starts at t_measure;
 * measuring: it is still open; ended: it closed at t_end. Only signals sent
 * while it was open can be due in it, so a due time at or after t_measure
 * is in it (t <= t_end once it closed). */
sl_when sl_window_when(uint64_t t, uint64_t t_measure, uint64_t t_end, int measuring, int ended);

/* A polling client's queue q (len bytes: packets joined by 0x1e): how many
 * bytes from its start one request body of at most room bytes carries —
 * all of it when it fits, else the whole packets that fit (0 when the
 * first alone does not); *packets their count. The separator after the
 * batch stays in q (the caller drops it). */
size_t sl_batch_len(const char *q, size_t len, size_t room, size_t *packets);

/* ---- ws.c ------------------------------------------------------------------ */

typedef struct sl_conn sl_conn;
typedef struct sl_run sl_run;

typedef enum sl_conn_state {
    SL_C_IDLE,        /* not connected (initial, or closed and reusable) */
    SL_C_CONNECTING,  /* TCP connect in flight */
    SL_C_UPGRADING,   /* upgrade request sent, waiting for 101 */
    SL_C_EIO,         /* waiting for the Engine.IO open packet */
    SL_C_SIO,         /* sent "40", waiting for the Socket.IO connect */
    SL_C_READY,       /* Socket.IO connected: sid known */
    SL_C_CLOSING,     /* uv_close in flight */
} sl_conn_state;

/* What a mode does with a connection's life. */
typedef struct sl_mode_ops {
    void (*on_ready)(sl_conn *c);  /* Socket.IO connected */
    /* An event `42["name",...]`: name (not NUL-terminated) and the whole
     * packet text; both valid during the call only. */
    void (*on_event)(sl_conn *c, const char *name, size_t name_len, const char *pkt, size_t len);
    /* The connection is gone (err = 0 after sl_conn_close, else a failure);
     * the struct may be reused with sl_conn_start from here on. */
    void (*on_closed)(sl_conn *c, int err);
} sl_mode_ops;

struct sl_conn {
    uv_tcp_t tcp;                 /* the stream; tcp.data == this */
    uv_connect_t creq;            /* the connect request */
    uv_write_t wreq;              /* the one write in flight */
    sl_run *run;                  /* owner */
    sl_conn_state state;
    int index;                    /* position in the mode's array */
    int target;                   /* index into run->targets */
    char sid[32];                 /* Socket.IO id once READY */
    char *rx;                     /* partial frame kept across reads */
    size_t rx_len, rx_cap;
    char *tx;                     /* frames waiting for the next flush */
    size_t tx_len, tx_cap;
    char *wbuf;                   /* bytes owned by the write in flight */
    int writing;                  /* wreq in use */
    int dirty;                    /* on run->dirty */
    sl_conn *dirty_next;
    int err;                      /* first failure, for on_closed */
    uint64_t t_start;             /* hrtime when connect began */
    /* mode fields */
    sl_conn *peer;                /* the other member of its room */
    int room;                     /* room index */
    int joined;                   /* joinResponse success seen */
    uint64_t sent, received;      /* signals; sent is also the next sequence number */
    uint64_t rx_next;             /* relay: the next sequence number expected from the peer */
};

/* Start connecting c (state must be IDLE) to run->targets[c->target]. */
int sl_conn_start(sl_conn *c);
/* Queue one Engine.IO packet as a masked text frame; flushed once per loop
 * turn. No-op unless the WebSocket is open. */
void sl_conn_send(sl_conn *c, const char *pkt, size_t len);
/* Send a close frame (if open) and close; on_closed(c, 0) follows. */
void sl_conn_close(sl_conn *c);
/* Flush every connection with queued output (called from a prepare handle). */
void sl_flush_dirty(sl_run *run);

/* ---- http.c ----------------------------------------------------------------- */

typedef struct sl_http sl_http;
/* Write the next request into buf (cap bytes); return its length, 0 when
 * this connection has nothing to send now. */
typedef size_t (*sl_http_next_fn)(sl_http *h, char *buf, size_t cap);
/* A response: status and body (valid during the call). */
typedef void (*sl_http_done_fn)(sl_http *h, int status, const char *body, size_t len);
/* The connection is gone (refused, reset, or an answer it could not
 * frame), after `done` (status -1) for a request it carried. Not called
 * for sl_http_close. */
typedef void (*sl_http_dead_fn)(sl_http *h);

struct sl_http {
    uv_tcp_t tcp;                 /* tcp.data == this */
    uv_connect_t creq;
    uv_write_t wreq;
    sl_run *run;
    int index;
    int connected;                /* TCP up */
    int busy;                     /* a request is outstanding */
    int closed;                   /* closing or closed */
    char *rx;                     /* response bytes so far */
    size_t rx_len, rx_cap;
    char wbuf[16384];             /* the request being written (a polling POST batches packets) */
    sl_http_next_fn next;
    sl_http_done_fn done;
    sl_http_dead_fn dead;         /* optional */
    uint64_t t_sched;             /* when the outstanding request was due (hrtime) */
    uint64_t t_sent;              /* when it was handed to the socket (hrtime) */
    void *data;                   /* mode context */
};

/* 0, or the connect's error: h is then closed and `dead` is not called. */
int sl_http_start(sl_http *h, const struct sockaddr_in *dst);
/* Ask h->next for a request and send it if h is idle. */
void sl_http_kick(sl_http *h);
void sl_http_close(sl_http *h);

/* ---- front.c ------------------------------------------------------------------ */

typedef struct sl_front sl_front;
/* Probe every run->targets[i] GET /readyz each interval_ms. Its handles are
 * closed with the loop's (finish walks them); free after uv_run returns. */
sl_front *sl_front_create(sl_run *run, int interval_ms, int leastconn);
/* The target for the next new connection among the ready ones (any when
 * none is ready): round-robin, or the one with the fewest connections
 * picked and not yet released. Each pick is released once, when that
 * connection is gone. */
int sl_front_pick(sl_front *f);
void sl_front_release(sl_front *f, int target);
int sl_front_ready_count(const sl_front *f);
void sl_front_free(sl_front *f);

/* ---- the run (app.h embeds it) -------------------------------------------------------- */

struct sl_run {
    uv_loop_t *loop;
    struct sockaddr_in targets[SL_MAX_TARGETS];  /* signal workers */
    char target_names[SL_MAX_TARGETS][64];       /* host:port for the Host header */
    int ntargets;
    struct in_addr src_base;      /* first source address */
    int src_count;                /* how many consecutive addresses to use */
    unsigned src_next;            /* round-robin cursor */
    int xff;                      /* send X-Forwarded-For with distinct addresses */
    const char *congestion;       /* TCP_CONGESTION for our sockets, NULL = system default */
    const sl_mode_ops *ops;
    sl_conn *dirty;               /* connections with queued output */
    uv_prepare_t flush;           /* flushes dirty connections before polling */
    uint8_t rbuf[256 * 1024];     /* shared read buffer */
    uint64_t rng;                 /* xorshift state (mask keys, upgrade keys) */
    /* counters */
    uint64_t connects_ok, connects_failed, closed_by_server, protocol_errors, pings;
    uint64_t upgrades_refused;    /* HTTP answers other than 101 to the upgrade */
};

uint64_t sl_rand(sl_run *run);

#endif
