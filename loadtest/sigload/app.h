/* app.h — what the scenarios of privydrop-sigload share.
 *
 * main.c parses the options and drives one scenario through its entry in
 * sl_scenarios (one table: name, connection callbacks, setup, tick, pacing,
 * progress line, report, verdict). Each scenario lives in its own file:
 *   idle.c     sockets held joined in rooms of two: server memory per socket
 *   relay.c    rooms of two relaying ICE candidates: throughput, latency,
 *              and every signal accounted for (in time, late, lost)
 *   churn.c    pairs cycling connect → join → offer → leave: cycles per second
 *   api.c      keep-alive HTTP load on the room API: requests per second
 *   rolling.c  peers behind a /readyz-following front while the workers are
 *              restarted in turn: rooms that meet again, signals lost
 *   poll.c     relay's rooms over Engine.IO long-polling instead of
 *              WebSocket, with or without worker affinity
 * app.c holds what they share (room creation, the connection ramp, the
 * measured window, shutdown), report.c the report around each scenario's
 * own part, procs.c relay's --procs (several generator processes, one
 * report). One loop, one thread per process: nothing here is locked. */
#ifndef SIGLOAD_APP_H
#define SIGLOAD_APP_H

#include <stddef.h>
#include <stdint.h>

#include "sigload.h"

typedef struct app app;

typedef struct opts {
    int scenario;                 /* index into sl_scenarios */
    int conns, rooms, cross, window, join, quiet;
    double rate, duration, warmup;
    uint64_t signals;             /* relay: candidates to send in all, 0 = no limit */
    double drain;                 /* relay: seconds at most to wait for signals in flight */
    int connect_rate, inflight;
    const char *route, *json, *label;
    const char *ready_file;       /* rolling: written once every room has met */
    double settle;                /* rolling: seconds allowed after the rollout */
    int health_interval;          /* rolling: the front's /readyz probe period, ms */
    int leastconn;                /* rolling: the front picks the least-loaded ready worker */
    struct sockaddr_in api;
    char api_name[64];
    int pids[SL_MAX_PIDS];
    int npids;
    int procs;                    /* relay: generator processes (1) */
    int rotate;                   /* poll: each request to the next worker in turn (no affinity) */
    int probe_cpu;                /* api: core the lateness probe runs on (probe.h), -1: none */
} opts;

/* Growable text for the JSON report. */
typedef struct sl_sbuf {
    char *p;
    size_t len, cap;
} sl_sbuf;

/* What the measured window came to, for the scenarios' reports. */
/* api: the window's slowest answer per 100 ms, for 10 minutes at most. */
#define SL_API_SLOTS 6000

typedef struct sl_measured {
    double window_s;              /* length of the measured window */
    double cpu_s;                 /* server CPU over it (all --pids) */
    long rss_base, rss0, rss1;    /* server RSS before anything, at its start, at its end (kB) */
} sl_measured;

/* One scenario. main.c calls setup once; tick (every millisecond) and
 * progress (every second) only after app_begin, pace on every loop turn
 * between app_pace_start and app_pace_stop. */
typedef struct sl_scenario {
    const char *name;
    void (*setup)(app *a);        /* allocate, create rooms; app_begin once ready */
    void (*tick)(app *a);
    void (*pace)(app *a);         /* open loop only, NULL otherwise */
    void (*progress)(app *a);
    /* Appends its JSON member (ending with a comma) and prints its text
     * lines; returns the histogram the common "latency" line shows. */
    const sl_hist *(*report)(app *a, sl_sbuf *j, const sl_measured *m);
    int (*failed)(const app *a);  /* 1: exit status 1 */
    void (*free)(app *a);         /* scenario state; NULL when it has none */
} sl_scenario;

extern const sl_scenario SL_IDLE, SL_RELAY, SL_CHURN, SL_API, SL_ROLLING, SL_POLL;

struct roll_state;
struct poll_state;

/* The whole program state. The sl_run the transport layer sees is embedded;
 * app_of() gets back here from it. */
struct app {
    sl_run run;
    opts o;
    const sl_scenario *sc;
    char prefix[16];              /* room id prefix, random per run */
    sl_conn *conns;               /* idle/relay/churn/rolling */
    int nconns;
    sl_http *https;               /* api load */
    int nhttps;
    sl_http *room_https;          /* room creation, closed once the rooms exist */
    int nroom_https;
    uv_timer_t tick;              /* 1 ms: rates, ramps, phases */
    uv_idle_t pace;               /* open loop: issues what is due on every loop turn */
    uv_timer_t progress;          /* 1 s */
    uv_signal_t sigint;
    int phase;                    /* scenario-specific, see each scenario */
    int started;                  /* app_begin ran: the scenario's tick may run */
    int finished;
    uint64_t t0;                  /* start of the current phase (hrtime) */
    uint64_t t_measure, t_end;    /* measured window: scheduled, then as it really was */
    int measuring;
    /* ramp */
    int next_conn, handshakes, ramp_done;
    uint64_t ramp_t0;
    /* room creation */
    int rooms_total, rooms_next, rooms_ok, rooms_failed, rooms_done;
    int rooms_conns_gone;         /* room-creation connections dead or never started */
    void (*after_rooms)(app *a);
    /* counters */
    uint64_t sent, received, received_window, errors;
    uint64_t joined, join_failed, established, dropped, cycles, cycles_failed;
    uint64_t issued;              /* open loop: signals or requests scheduled so far */
    uint64_t ok, ok_window;
    int sending;
    /* relay: where every signal went (relay.c) */
    uint64_t sent_window;         /* sent inside the measured window */
    uint64_t in_time, late;       /* of those: arrived inside it, during the drain */
    uint64_t delivered;           /* whole run, each sequence number once */
    uint64_t lost_gaps;           /* skipped on an ordered path: a later one arrived */
    uint64_t duplicates;          /* a sequence number again, or out of order */
    double drain_s;               /* from the window's end until all arrived or the drain timed out */
    int drain_timed_out;
    sl_hist hist;                 /* latency (relay: of the signals in time) */
    sl_hist hist_with_late;       /* relay: of every signal sent in the window that arrived */
    sl_hist hist_connect;         /* idle: connect+join time */
    sl_hist hist_lag;             /* open loop (relay, poll, api): how late each signal or request left
                                   * (the generator's own delay) */
    sl_hist hist_service;         /* api: from a request leaving to its answer */
    uint64_t slot_max[SL_API_SLOTS]; /* api: slowest answer (ns from due) per 100 ms of the window */
    float slot_steal[SL_API_SLOTS];  /* api: most steal time of any one core per 100 ms (s) */
    double slot_steal_prev[SL_MAX_CORES]; /* api: each core's steal at the current slot's start */
    uint64_t slot_next;              /* api: index of the next slot whose steal is read */
    struct sl_probe *probe;          /* api: --probe-cpu's probe (probe.h), NULL without it */
    /* readings */
    sl_proc proc0[SL_MAX_PIDS], proc1[SL_MAX_PIDS], proc_base[SL_MAX_PIDS];
    double self_cpu0, self_cpu1;
    /* Every core's busy and steal time (/proc/stat) at the window's two
     * ends: what else ran beside the servers and the generator. */
    double core_busy0[SL_MAX_CORES], core_busy1[SL_MAX_CORES], core_steal0[SL_MAX_CORES], core_steal1[SL_MAX_CORES];
    int ncores;
    long sock_mem_base, sock_mem, sock_inuse_base, sock_inuse;
    double ramp_s;
    uint64_t open_at_end;
    struct roll_state *roll;      /* rolling.c's own state */
    struct poll_state *poll;      /* poll.c's own state */
    /* --procs (procs.c): in a child, its pipes to the parent; -1 otherwise */
    int procs_index, procs_up, procs_down;
    int procs_said_ready;         /* 'R' sent */
    uint64_t procs_t0;            /* the common start time, 0 until received */
};

static inline app *app_of(sl_run *r) { return sl_container_of(r, app, run); }

/* ---- app.c ------------------------------------------------------------------ */

/* A progress line on stderr, unless --quiet. */
void app_say(const app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
double app_self_cpu(void);
/* calloc, or the process ends with a message: a load generator out of
 * memory has no run left to report. */
void *app_calloc(size_t n, size_t size);
void app_read_procs(app *a, sl_proc *out);
void app_room_id(const app *a, int i, char *buf, size_t cap);

/* Allocate n connections; peers of a room are (2i, 2i+1). spread: plain
 * round-robin over the targets (idle); otherwise a room's peers share a
 * target, or sit on neighbouring ones with --cross. Exits on no memory. */
void app_conns(app *a, int n, int spread);
/* Create n rooms through the room API (16 connections), then call then();
 * a failed room ends the run, and so does losing every connection before
 * all rooms are answered. */
void app_create_rooms(app *a, int n, void (*then)(app *));
/* Connect n keep-alive clients (already allocated) to the room API;
 * returns how many could not even start (closed at once; `dead` is not
 * called for those). */
int app_start_https(app *a, sl_http *https, int n, sl_http_next_fn next, sl_http_done_fn done,
                    sl_http_dead_fn dead);

/* Start connections at --connect-rate with at most --inflight handshakes. */
void app_ramp_step(app *a);
void app_handshake_over(app *a, int ok);
void app_send_join(app *a, sl_conn *c);
int app_join_ok(const char *pkt, size_t len);
/* An offer or answer with a browser-sized SDP, from c to its peer. */
void app_send_sdp(sl_conn *from, const char *kind);
/* The same packet as text in pkt (cap bytes), from one socket id to another;
 * returns its length. */
int app_sdp(char *pkt, size_t cap, const char *kind, const char *to, const char *from);

/* Relayed signals, the same over WebSocket (relay.c) and long-polling
 * (poll.c). app_candidate writes one ICE candidate event carrying its due
 * time t and the sender's sequence number seq, returns its length;
 * app_signal_sent counts one as sent (and in the window if due in it);
 * app_signal_arrived accounts for one that arrived at now from the peer
 * whose next expected number is *rx_next and who has sent peer_sent (new,
 * duplicate, lost before it; in time or late), and returns its latency in
 * ns when it counted in the measured window's latencies (UINT64_MAX
 * otherwise); app_signals_report writes the accounting as JSON member key
 * and the text lines. */
int app_candidate(char *buf, size_t cap, const char *to, const char *from, uint64_t t, uint64_t seq);
void app_signal_sent(app *a, uint64_t t);
uint64_t app_signal_arrived(app *a, uint64_t *rx_next, uint64_t peer_sent, const char *pkt, size_t len, uint64_t now);
const sl_hist *app_signals_report(app *a, sl_sbuf *j, const sl_measured *m, const char *key);
/* The "candidate" text every ICE candidate carries (browser-sized). */
extern const char APP_CANDIDATE[];
/* The decimal number after key (e.g. "\"t\":") in pkt, UINT64_MAX if none. */
uint64_t app_payload_u64(const char *pkt, size_t len, const char *key);

/* The measured window: server and generator CPU (and server memory) read
 * at its start and end; t_measure and t_end become the moments they were
 * read, so every rate divides by the time its counts were taken in. */
void app_measure_begin(app *a);
void app_measure_end(app *a);
/* Open loop: when the k-th signal or request of the run is due (hrtime):
 * k / --rate seconds after the start. It leaves as soon as now reaches
 * that time, not one interval later. */
uint64_t app_due_at(const app *a, uint64_t k);
void app_pace_start(app *a);
void app_pace_stop(app *a);
/* The signal scenarios' (relay, poll) shared clock. app_signals_start, once
 * every room is ready: the warm-up, then the measured window, begin now;
 * with --rate the pacing starts, and it returns 1 when the caller must fill
 * its closed loop instead (no --rate). app_signals_step, every tick after
 * that: the window (ended early by --signals), then the drain until every
 * signal sent has arrived or is known lost, or --drain has passed. */
int app_signals_start(app *a, uint64_t now);
void app_signals_step(app *a, uint64_t now);
/* Stop everything: close every connection and handle; uv_run returns. */
void app_finish(app *a);

/* ---- procs.c ------------------------------------------------------------------ */

/* Fork --procs children and run the parent's side: wait for them, merge
 * their tallies, report. Returns the exit status in the parent; in a child
 * returns -1, and the child goes on as a generator with its share. */
int sl_procs_fork(app *a);
/* A child: 1 once every child is ready and the common start time has
 * come (always 1 outside --procs). Called every tick while waiting. */
int sl_procs_may_start(app *a);
/* A child: send its tally to the parent (instead of a report). */
void sl_procs_send_tally(app *a);

/* ---- report.c ----------------------------------------------------------------- */

void sl_sb(sl_sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_sb_hist(sl_sbuf *s, const char *key, const sl_hist *h);
/* Print the summary to stdout and, with --json, write the JSON. */
void app_report(app *a);

#endif
