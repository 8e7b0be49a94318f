/* privydrop-sigload — load generator for privydrop-signal / privydrop-roomapi
 * (and anything wire-compatible, such as the Node reference in
 * loadtest/reference). See USAGE below and loadtest/README.md.
 *
 * This file: the options, the scenario table, and the loop around the chosen
 * scenario (its tick every millisecond, a progress line every second,
 * SIGINT, the report and the exit status). The scenarios are in their own
 * files; app.h says which. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "app.h"
#include "probe.h"

static const char USAGE[] =
    "Usage: privydrop-sigload MODE [options]\n"
    "\n"
    "Modes:\n"
    "  idle    open --conns connections, join them in rooms of two, hold them\n"
    "          (answering Engine.IO pings) and read the servers' memory\n"
    "  relay   --rooms rooms of two peers exchange offer/answer, then ICE\n"
    "          candidates at --rate per second (0: closed loop, --window in\n"
    "          flight per peer); latency from a timestamp in each payload\n"
    "  churn   --conns pairs in flight, each cycle: connect, join, offer, leave\n"
    "  api     HTTP keep-alive load on the room API (--route), --conns connections\n"
    "  rolling --rooms rooms of two peers behind a front that probes every --target's\n"
    "          /readyz and sends each new connection to the next ready one; peers\n"
    "          reconnect and re-join as PrivyDrop's client does while the caller\n"
    "          restarts the workers in turn, then sends SIGUSR1; signals at --rate\n"
    "          (default 2 per room per second). Exit 1 unless every room met again\n"
    "          and no signal was lost outside a reconnect window\n"
    "  poll    relay's rooms and signals over Engine.IO long-polling only (handshake\n"
    "          GET, POST 40, a waiting GET loop, POSTs batching packets); --layout\n"
    "          owner: every request to the session's worker; rotate: each request\n"
    "          to the next --target in turn (no affinity)\n"
    "\n"
    "Options:\n"
    "  --target H:P[,H:P...]  signal workers, used round-robin (127.0.0.1:3001)\n"
    "  --api H:P              room API; rooms are created through it (127.0.0.1:3002)\n"
    "  --conns N              idle: sockets; churn: pairs; api: connections (100)\n"
    "  --rooms N              relay, rolling, poll: rooms (100)\n"
    "  --cross                relay/churn: the two peers on different targets\n"
    "  --rate R               relay, poll: signals/s; api: requests/s; 0 = as fast as answered (0)\n"
    "  --window W             closed-loop relay, poll: signals in flight per peer (4)\n"
    "  --layout owner|rotate  poll: requests to the session's worker, or round-robin (owner)\n"
    "  --signals N            relay: send N ICE candidates in all, end once all arrived\n"
    "                         (--duration stays the limit); for fixed-count cost runs\n"
    "  --route NAME           api: check_room or get_room (check_room)\n"
    "  --duration S           measured seconds (10); idle: seconds to hold; rolling: the\n"
    "                         whole run's limit (a hang guard)\n"
    "  --warmup S             seconds before measuring (1)\n"
    "  --procs N              relay: N generator processes, each with its share of the\n"
    "                         rooms and of --rate, merged into one report (1)\n"
    "  --drain S              relay, poll: seconds at most, after the window, to wait for the\n"
    "                         signals still in flight (5)\n"
    "  --connect-rate N       new connections per second (4000)\n"
    "  --inflight N           handshakes in flight at most (200)\n"
    "  --src-base A.B.C.D     first source address (127.0.0.1)\n"
    "  --src-count N          consecutive source addresses to spread over (1)\n"
    "  --congestion NAME      TCP congestion control of the generator's own sockets\n"
    "                         (e.g. cubic; default: the system's)\n"
    "  --xff                  a distinct X-Forwarded-For per connection\n"
    "  --no-join              idle: connect only, no rooms\n"
    "  --pids P[,P...]        server processes whose CPU time and RSS are read\n"
    "  --probe-cpu N          api: a thread pinned to core N (SCHED_FIFO where allowed)\n"
    "                         wakes every 1 ms and reports how late each wake-up came:\n"
    "                         the core taken from the servers pinned there\n"
    "  --label TEXT           free text copied into the JSON report\n"
    "  --json FILE            also write the report as JSON (- for stdout)\n"
    "  --ready-file FILE      rolling: written once every room has met (start the rollout then)\n"
    "  --settle S             rolling: seconds after SIGUSR1 for every room to meet again (15)\n"
    "  --health-interval MS   rolling: the front's /readyz probe period (100)\n"
    "  --front rr|leastconn   rolling: among ready workers the next one, or the one\n"
    "                         holding the fewest of our connections (rr)\n"
    "  --quiet                no progress lines\n";

/* Every scenario, by the name given as MODE. */
static const sl_scenario *const SCENARIOS[] = {&SL_IDLE, &SL_RELAY, &SL_CHURN, &SL_API, &SL_ROLLING, &SL_POLL};

/* ---- options ------------------------------------------------------------------------------- */

static int parse_hostport(const char *s, struct sockaddr_in *out, char *name, size_t cap)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535 || uv_ip4_addr(host, port, out) != 0)
        return -1;
    snprintf(name, cap, "%.40s:%d", host, port);
    return 0;
}

static int die_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "privydrop-sigload: %s%s%s\n\n%s", msg, arg ? " " : "", arg ? arg : "", USAGE);
    return 2;
}

static int parse_args(app *a, int argc, char **argv)
{
    opts *o = &a->o;
    sl_run *r = &a->run;
    o->conns = 100;
    o->rooms = 100;
    o->window = 4;
    o->duration = 10;
    o->warmup = 1;
    o->connect_rate = 4000;
    o->inflight = 200;
    o->route = "check_room";
    o->join = 1;
    o->settle = 15;
    o->drain = 5;
    o->procs = 1;
    o->health_interval = 100;
    o->probe_cpu = -1;
    parse_hostport("127.0.0.1:3001", &r->targets[0], r->target_names[0], sizeof(r->target_names[0]));
    r->ntargets = 1;
    parse_hostport("127.0.0.1:3002", &o->api, o->api_name, sizeof(o->api_name));
    inet_pton(AF_INET, "127.0.0.1", &r->src_base);
    if (argc < 2)
        return die_usage("a mode is required", NULL);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, stdout);
        exit(0);
    }
    a->sc = NULL;
    for (size_t i = 0; i < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); i++)
        if (strcmp(argv[1], SCENARIOS[i]->name) == 0)
            a->sc = SCENARIOS[i];
    if (!a->sc)
        return die_usage("unknown mode", argv[1]);
    int duration_set = 0;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                                                                    \
    do {                                                                                                          \
        if (!v)                                                                                                   \
            return die_usage("missing value for", k);                                                           \
        i++;                                                                                                      \
    } while (0)
        if (strcmp(k, "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (strcmp(k, "--target") == 0) {
            NEED();
            char tmp[1024];
            snprintf(tmp, sizeof(tmp), "%s", v);
            r->ntargets = 0;
            for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (r->ntargets == SL_MAX_TARGETS ||
                    parse_hostport(t, &r->targets[r->ntargets], r->target_names[r->ntargets],
                                   sizeof(r->target_names[0])) != 0)
                    return die_usage("bad --target", t);
                r->ntargets++;
            }
        } else if (strcmp(k, "--api") == 0) {
            NEED();
            if (parse_hostport(v, &o->api, o->api_name, sizeof(o->api_name)) != 0)
                return die_usage("bad --api", v);
        } else if (strcmp(k, "--conns") == 0) {
            NEED();
            o->conns = atoi(v);
        } else if (strcmp(k, "--rooms") == 0) {
            NEED();
            o->rooms = atoi(v);
        } else if (strcmp(k, "--cross") == 0) {
            o->cross = 1;
        } else if (strcmp(k, "--layout") == 0) {
            NEED();
            if (strcmp(v, "rotate") == 0)
                o->rotate = 1;
            else if (strcmp(v, "owner") != 0)
                return die_usage("unknown --layout", v);
        } else if (strcmp(k, "--rate") == 0) {
            NEED();
            o->rate = atof(v);
        } else if (strcmp(k, "--window") == 0) {
            NEED();
            o->window = atoi(v);
        } else if (strcmp(k, "--signals") == 0) {
            NEED();
            o->signals = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--route") == 0) {
            NEED();
            o->route = v;
        } else if (strcmp(k, "--duration") == 0) {
            NEED();
            o->duration = atof(v);
            duration_set = 1;
        } else if (strcmp(k, "--warmup") == 0) {
            NEED();
            o->warmup = atof(v);
        } else if (strcmp(k, "--procs") == 0) {
            NEED();
            o->procs = atoi(v);
        } else if (strcmp(k, "--drain") == 0) {
            NEED();
            o->drain = atof(v);
        } else if (strcmp(k, "--connect-rate") == 0) {
            NEED();
            o->connect_rate = atoi(v);
        } else if (strcmp(k, "--inflight") == 0) {
            NEED();
            o->inflight = atoi(v);
        } else if (strcmp(k, "--src-base") == 0) {
            NEED();
            if (inet_pton(AF_INET, v, &r->src_base) != 1)
                return die_usage("bad --src-base", v);
            if (!r->src_count)
                r->src_count = 1;
        } else if (strcmp(k, "--src-count") == 0) {
            NEED();
            r->src_count = atoi(v);
        } else if (strcmp(k, "--congestion") == 0) {
            NEED();
            r->congestion = v;
        } else if (strcmp(k, "--xff") == 0) {
            r->xff = 1;
        } else if (strcmp(k, "--no-join") == 0) {
            o->join = 0;
        } else if (strcmp(k, "--pids") == 0) {
            NEED();
            char tmp[1024];
            snprintf(tmp, sizeof(tmp), "%s", v);
            for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t && o->npids < SL_MAX_PIDS;
                 t = strtok_r(NULL, ",", &save))
                o->pids[o->npids++] = atoi(t);
        } else if (strcmp(k, "--probe-cpu") == 0) {
            NEED();
            char *end;
            long c = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || c < 0 || c > 4095)
                return die_usage("bad --probe-cpu", v);
            o->probe_cpu = (int)c;
        } else if (strcmp(k, "--label") == 0) {
            NEED();
            o->label = v;
        } else if (strcmp(k, "--json") == 0) {
            NEED();
            o->json = v;
        } else if (strcmp(k, "--ready-file") == 0) {
            NEED();
            o->ready_file = v;
        } else if (strcmp(k, "--settle") == 0) {
            NEED();
            o->settle = atof(v);
        } else if (strcmp(k, "--front") == 0) {
            NEED();
            if (strcmp(v, "leastconn") == 0)
                o->leastconn = 1;
            else if (strcmp(v, "rr") != 0)
                return die_usage("unknown --front", v);
        } else if (strcmp(k, "--health-interval") == 0) {
            NEED();
            o->health_interval = atoi(v);
        } else if (strcmp(k, "--quiet") == 0) {
            o->quiet = 1;
        } else {
            return die_usage("unknown option", k);
        }
#undef NEED
    }
    if (o->conns < 1 || o->rooms < 1 || o->window < 1 || o->duration <= 0 || o->warmup < 0 ||
        o->connect_rate < 1 || o->inflight < 1 || r->src_count < 0 || o->settle < 0 || o->health_interval < 1 ||
        o->drain < 0 || o->procs < 1 || o->procs > 64)
        return die_usage("a count or time is out of range", NULL);
    if (a->sc == &SL_ROLLING) {
        if (o->rate <= 0)
            o->rate = 2.0 * o->rooms;
        if (!duration_set)
            o->duration = 600;
    }
    if (strcmp(o->route, "check_room") != 0 && strcmp(o->route, "get_room") != 0)
        return die_usage("unknown --route", o->route);
    if (o->probe_cpu >= 0 && a->sc != &SL_API)
        return die_usage("--probe-cpu is for api only", NULL);
    if (o->probe_cpu >= 0 && o->warmup + o->duration + SL_PROBE_SLACK_S > SL_PROBE_MAX_S) {
        char lim[64];
        snprintf(lim, sizeof(lim), "(%d s at most with --probe-cpu)", SL_PROBE_MAX_S - SL_PROBE_SLACK_S);
        return die_usage("--warmup + --duration too long", lim);
    }
    if (o->procs > 1 && a->sc != &SL_RELAY)
        return die_usage("--procs is for relay only", NULL);
    if (o->procs > o->rooms)
        return die_usage("--procs needs at least one room per process", NULL);
    if (o->rotate && r->ntargets < 2)
        return die_usage("--layout rotate needs two --target addresses", NULL);
    if (o->cross && r->ntargets < 2)
        return die_usage("--cross needs two --target addresses", NULL);
    return 0;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    app *a = t->data;
    /* Not before the scenario has started (its rooms exist), or early
     * joins would find no room. */
    if (!a->finished && a->started)
        a->sc->tick(a);
}

static void on_progress(uv_timer_t *t)
{
    app *a = t->data;
    if (!a->finished)
        a->sc->progress(a);
}

static void on_flush(uv_prepare_t *p)
{
    sl_flush_dirty(p->data);
}

static void on_sigint(uv_signal_t *s, int sig)
{
    (void)sig;
    app *a = s->data;
    app_say(a, "interrupted\n");
    if (a->measuring)
        app_measure_end(a);
    app_finish(a);
}

int main(int argc, char **argv)
{
    app *a = calloc(1, sizeof(*a));
    if (!a)
        return 1;
    a->procs_up = a->procs_down = -1;
    int rc = parse_args(a, argc, argv);
    if (rc) {
        free(a);
        return rc;
    }
    if (a->o.procs > 1) {
        /* Before any loop or handle exists: the children build their own. */
        rc = sl_procs_fork(a);
        if (rc >= 0) {
            free(a);
            return rc;
        }
    }
    sl_run *r = &a->run;
    r->loop = uv_default_loop();
    if (getrandom(&r->rng, sizeof(r->rng), 0) != sizeof(r->rng) || r->rng == 0)
        r->rng = (uint64_t)uv_hrtime() | 1;
    static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    memcpy(a->prefix, "sl", 2);
    for (int i = 2; i < 10; i++)
        a->prefix[i] = ALNUM[sl_rand(r) % 36];
    a->prefix[10] = '\0';
    signal(SIGPIPE, SIG_IGN);

    app_read_procs(a, a->proc_base);
    sl_sockstat(&a->sock_mem_base, &a->sock_inuse_base);
    uv_prepare_init(r->loop, &r->flush);
    r->flush.data = r;
    uv_prepare_start(&r->flush, on_flush);
    uv_timer_init(r->loop, &a->tick);
    a->tick.data = a;
    uv_timer_start(&a->tick, on_tick, 1, 1);
    uv_idle_init(r->loop, &a->pace);
    a->pace.data = a;
    uv_timer_init(r->loop, &a->progress);
    a->progress.data = a;
    uv_timer_start(&a->progress, on_progress, 1000, 1000);
    uv_signal_init(r->loop, &a->sigint);
    a->sigint.data = a;
    uv_signal_start(&a->sigint, on_sigint, SIGINT);

    a->sc->setup(a);
    uv_run(r->loop, UV_RUN_DEFAULT);
    if (a->procs_up >= 0)
        sl_procs_send_tally(a);
    else
        app_report(a);
    int bad = a->run.protocol_errors > 0 || a->sc->failed(a);
    uv_loop_close(r->loop);
    if (a->sc->free)
        a->sc->free(a);
    free(a->conns);
    free(a->https);
    free(a->room_https);
    free(a);
    return bad ? 1 : 0;
}
