/* privydrop-roomapi — the HTTP room API (docs/wire-protocol.md §Room API). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "privydrop/pd_config.h"
#include "privydrop/pd_log.h"
#include "privydrop/pd_room.h"

static const char USAGE[] =
    "Usage: privydrop-roomapi [--help] [--version] [--check-config]\n"
    "\n"
    "--check-config validates the environment as start-up does, prints every\n"
    "problem to stderr and exits 0 (fine) or 2 (not), without starting.\n"
    "\n"
    "Room API: PrivyDrop's /api/... routes, /health, /health/detailed,\n"
    "/api/ice_servers and /metrics. Configuration comes from the environment:\n"
    "  PD_API_PORT (or BACKEND_PORT)  listen port (3002)\n"
    "  PD_LISTEN_ADDR           listen address (0.0.0.0)\n"
    "  CORS_ORIGIN              allowed browser origins, comma-separated (none)\n"
    "  REDIS_HOST, REDIS_PORT, REDIS_PASSWORD   Redis (127.0.0.1:6379)\n"
    "  REDIS_SENTINELS          Sentinel mode: host:port,... of the sentinels (REDIS_HOST/PORT\n"
    "                           then unused; REDIS_PASSWORD is the master's)\n"
    "  REDIS_SENTINEL_MASTER    the master's name in the sentinels (with REDIS_SENTINELS)\n"
    "  REDIS_SENTINEL_PASSWORD  AUTH for the sentinels (none)\n"
    "  REDIS_CLUSTER_NODES      Redis Cluster mode: host:port,... of some of its nodes\n"
    "                           (REDIS_HOST/PORT then unused; REDIS_PASSWORD is every node's)\n"
    "  NODE_ENV                 reported environment (production)\n"
    "  PD_MAX_BODY_BYTES        largest request body (16384)\n"
    "  PD_TRUSTED_PROXIES       CIDRs whose X-Forwarded-For is believed (127.0.0.1/32,::1/128)\n"
    "  PD_API_RATE, PD_API_BURST   per-address limit on room routes (20/s, 100)\n"
    "  PD_LOG_RATE, PD_LOG_BURST   per-address limit on set_track and logs_debug (2/s, 20)\n"
    "  PD_ICE_RATE, PD_ICE_BURST   per-address limit on ice_servers (1/s, 10)\n"
    "  PD_API_MAX_INFLIGHT      requests waiting for Redis, all together; beyond: 503 (4096)\n"
    "  PD_RESTORE_HOLD_MS       room routes answer 503 this long after Redis returns (15000; 0 = off)\n"
    "  PD_ROOM_POOL             room ids reserved ahead of get_room, at most (256; 0 = off;\n"
    "                           none on a Redis Cluster)\n"
    "  PD_DRAIN_TIMEOUT_MS      SIGTERM drain limit (10000)\n"
    "  PD_HTTP_REQUEST_TIMEOUT_MS  time to receive a whole HTTP request (10000)\n"
    "  PD_HTTP_IDLE_TIMEOUT_MS  idle keep-alive HTTP connection limit (30000)\n"
    "  PD_HTTP_MAX_CONNS_PER_IP  open connections per client address (32)\n"
    "  PD_HTTP_MAX_CONN_AGE_MS  keep-alive HTTP connections end after this (60000)\n"
    "  PD_TURN_SECRET           coturn static-auth-secret; TURN is offered only with it\n"
    "  PD_TURN_HOST             public host or IP of coturn\n"
    "  PD_TURN_PORT, PD_TURNS_PORT, PD_TURN_TLS   TURN ports (3478, 5349) and TLS (0)\n"
    "  PD_TURN_TTL_S            TURN credential lifetime (86400)\n"
    "  PD_STUN_URLS             STUN URLs, comma-separated (stun:<PD_TURN_HOST>:<port>)\n"
    "  PD_LOG_LEVEL             debug, info, warn or error (info)\n";

typedef struct roomapi {
    uv_loop_t *loop;
    pd_redis *redis;
    pd_http_server *http;
    pd_api *api;
    pd_pool *pool; /* NULL when off */
    pd_claimq *claims; /* the pool's claims; NULL when off */
    pd_turn *turn;
    pd_metrics *metrics;
    uv_signal_t sig_term, sig_int;
    uv_timer_t drain, reaper;
    uint64_t drain_deadline;
    long drain_timeout_ms;
    int draining;
    char instance_id[96];
} roomapi;

/* Everything read from the environment, validated. */
typedef struct roomapi_config {
    long port, body_max, turn_ttl;
    pd_redis_options redis; /* strings borrowed from the environment */
    long room_rate, room_burst, log_rate, log_burst, ice_rate, ice_burst, req_timeout, idle_timeout;
    long http_per_ip, conn_age, max_inflight, restore_hold, pool;
    const char *listen_addr; /* borrowed from the environment */
    pd_cidr_list *trusted;   /* owned; NULL when invalid */
    pd_turn *turn;           /* owned; NULL when invalid */
} roomapi_config;

/* Reads and checks every variable, recording each problem in chk rather than
 * stopping at the first: start-up and --check-config run exactly this. */
static void load_config(roomapi_config *c, long *drain_timeout_ms, pd_config_check *chk)
{
    long backend_port, turn_port, turns_port;
    pd_config_log_level(chk);
    /* PD_API_PORT wins; PrivyDrop's BACKEND_PORT is honoured for drop-in use. */
    pd_config_long(chk, "BACKEND_PORT", 3002, 1, 65535, &backend_port);
    pd_config_long(chk, "PD_API_PORT", backend_port, 1, 65535, &c->port);
    pd_redis_config_load(chk, &c->redis);
    pd_config_long(chk, "PD_MAX_BODY_BYTES", 16384, 256, 1048576, &c->body_max);
    pd_config_long(chk, "PD_DRAIN_TIMEOUT_MS", 10000, 0, 600000, drain_timeout_ms);
    pd_config_long(chk, "PD_TURN_PORT", 3478, 1, 65535, &turn_port);
    pd_config_long(chk, "PD_TURNS_PORT", 5349, 1, 65535, &turns_port);
    pd_config_long(chk, "PD_TURN_TTL_S", 86400, 60, 7 * 86400, &c->turn_ttl);
    pd_config_long(chk, "PD_API_RATE", 20, 1, 1000000, &c->room_rate);
    pd_config_long(chk, "PD_API_BURST", 100, 1, 1000000, &c->room_burst);
    pd_config_long(chk, "PD_LOG_RATE", 2, 1, 1000000, &c->log_rate);
    pd_config_long(chk, "PD_LOG_BURST", 20, 1, 1000000, &c->log_burst);
    pd_config_long(chk, "PD_ICE_RATE", 1, 1, 1000000, &c->ice_rate);
    pd_config_long(chk, "PD_ICE_BURST", 10, 1, 1000000, &c->ice_burst);
    pd_config_long(chk, "PD_API_MAX_INFLIGHT", 4096, 1, 10000000, &c->max_inflight);
    /* Longer than a signal worker's longest reconnect delay (5 s, +25 %
     * jitter) plus its first refreshes (about 4 s for 20 000 rooms, its
     * socket limit), so that the rooms are back before
     * ids are handed out again (docs/architecture.md, "Rooms that outlive their TTL"). */
    pd_config_long(chk, "PD_RESTORE_HOLD_MS", 15000, 0, 600000, &c->restore_hold);
    pd_config_long(chk, "PD_ROOM_POOL", 256, 0, PD_POOL_MAX, &c->pool);
    pd_config_long(chk, "PD_HTTP_MAX_CONNS_PER_IP", 32, 1, 1000000, &c->http_per_ip);
    pd_config_long(chk, "PD_HTTP_MAX_CONN_AGE_MS", 60000, 1000, 86400000, &c->conn_age);
    pd_config_long(chk, "PD_HTTP_REQUEST_TIMEOUT_MS", 10000, 100, 600000, &c->req_timeout);
    pd_config_long(chk, "PD_HTTP_IDLE_TIMEOUT_MS", 30000, 100, 3600000, &c->idle_timeout);
    pd_config_listen_addr(chk, "0.0.0.0", &c->listen_addr);

    const char *err = NULL;
    const char *proxies = pd_env_str("PD_TRUSTED_PROXIES", "127.0.0.1/32,::1/128");
    c->trusted = pd_cidr_list_create(proxies, &err);
    if (!c->trusted)
        pd_config_check_add(chk, "PD_TRUSTED_PROXIES", proxies, err ? err : "invalid");

    /* The secret is never echoed: a TURN problem names the variables only. */
    pd_turn_config tc = {pd_env_str("PD_STUN_URLS", NULL), pd_env_str("PD_TURN_HOST", NULL), (uint16_t)turn_port,
                         (uint16_t)turns_port, pd_env_flag("PD_TURN_TLS"), pd_env_str("PD_TURN_SECRET", NULL),
                         (uint32_t)c->turn_ttl};
    err = NULL;
    c->turn = pd_turn_create(&tc, &err);
    if (!c->turn)
        pd_config_check_add(chk, "PD_TURN_*, PD_STUN_URLS", NULL, err ? err : "invalid");
}

static void on_redis_state(pd_redis *r, int ready, void *data)
{
    (void)r;
    roomapi *a = data;
    if (a->api)
        pd_api_on_redis_state(a->api, ready);
    if (a->claims)
        pd_claimq_on_redis_state(a->claims, ready);
    pd_log(ready ? PD_LOG_INFO : PD_LOG_WARN, ready ? "redis connected" : "redis unavailable", NULL);
}

/* A claim found its reservation gone (Redis lost data without the link
 * dropping): the pool's other reservations may be gone too. */
static void on_claims_lost(void *data)
{
    roomapi *a = data;
    if (a->pool)
        pd_pool_reset(a->pool);
}

/* The room API also reaps dead workers, so a cluster whose workers all
 * crashed still gets its rooms cleaned. */
static void on_reaped(const char *room, const char *sid, void *data)
{
    roomapi *a = data;
    pd_room_publish_left(a->redis, a->instance_id, pd_slice_cstr(room), pd_slice_cstr(sid));
    pd_log(PD_LOG_INFO, "reaped socket of a dead worker", "{s:s, s:s}", "room", room, "sid", sid);
}

static void on_reaper(uv_timer_t *t)
{
    roomapi *a = t->data;
    if (pd_redis_ready(a->redis) && !a->draining)
        pd_cluster_reap(a->redis, a->instance_id, on_reaped, NULL, a);
}

static void shutdown_now(roomapi *a)
{
    pd_pool_close(a->pool);
    pd_claimq_close(a->claims);
    uv_close((uv_handle_t *)&a->drain, NULL);
    uv_close((uv_handle_t *)&a->reaper, NULL);
    uv_close((uv_handle_t *)&a->sig_term, NULL);
    uv_close((uv_handle_t *)&a->sig_int, NULL);
    pd_http_server_free(a->http);
    pd_redis_free(a->redis);
}

static void on_drain_tick(uv_timer_t *t)
{
    roomapi *a = t->data;
    /* The claims of ids already answered too: their clients are about to
     * join those rooms. */
    pd_claimq_stats st = {0};
    if (a->claims)
        pd_claimq_get_stats(a->claims, &st);
    if ((pd_api_inflight(a->api) == 0 && st.pending == 0) || pd_mono_ms() >= a->drain_deadline) {
        pd_log(PD_LOG_INFO, "drained", "{s:I}", "inflight", (json_int_t)pd_api_inflight(a->api));
        uv_timer_stop(t);
        shutdown_now(a);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    roomapi *a = h->data;
    if (a->draining)
        return;
    a->draining = 1;
    pd_log(PD_LOG_INFO, "draining", "{s:i}", "signal", signum);
    pd_http_server_stop_accepting(a->http);
    a->drain_deadline = pd_mono_ms() + (uint64_t)a->drain_timeout_ms;
    uv_timer_start(&a->drain, on_drain_tick, 0, 20);
}

int main(int argc, char **argv)
{
    int rc = pd_cli_handle(argc, argv, "privydrop-roomapi", USAGE);
    if (rc >= 0)
        return rc;
    int check_only = rc == PD_CLI_CHECK_CONFIG;
    pd_log_init("roomapi", pd_env_str("PD_LOG_LEVEL", "info"));
    signal(SIGPIPE, SIG_IGN);

    static roomapi app;
    roomapi *a = &app;
    roomapi_config cfg = {0};
    pd_config_check *chk = pd_config_check_create();
    if (!chk)
        return 1;
    load_config(&cfg, &a->drain_timeout_ms, chk);
    rc = pd_config_check_report(chk, "privydrop-roomapi", check_only);
    pd_config_check_free(chk);
    if (rc >= 0) {
        pd_turn_free(cfg.turn);
        pd_cidr_list_free(cfg.trusted);
        return rc;
    }
    pd_cidr_list *trusted = cfg.trusted;
    a->turn = cfg.turn;

    char host[64] = "roomapi";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '.'))
            *p = '-';
    snprintf(a->instance_id, sizeof(a->instance_id), "roomapi-%s-%ld", host, (long)getpid());

    a->loop = uv_default_loop();
    a->metrics = pd_metrics_create();
    pd_redis_options ro = cfg.redis;
    ro.subscriber = 0;
    ro.watchdog_ms = 1000;
    a->redis = pd_redis_create(a->loop, &ro, on_redis_state, NULL, a);
    if (a->redis && cfg.pool && !pd_redis_is_cluster(a->redis)) {
        pd_pool_config pc = {(size_t)cfg.pool, 0};
        a->pool = pd_pool_create(a->redis, &pc);
        a->claims = pd_claimq_create(a->loop, a->redis, on_claims_lost, a);
    }
    pd_api_config ac = {pd_env_str("CORS_ORIGIN", NULL), pd_env_str("NODE_ENV", "production"), a->instance_id, 2048,
                        trusted, (double)cfg.room_rate, (double)cfg.room_burst, (double)cfg.log_rate,
                        (double)cfg.log_burst, (double)cfg.ice_rate, (double)cfg.ice_burst, (size_t)cfg.max_inflight,
                        (uint64_t)cfg.restore_hold, a->pool, a->claims};
    a->api = pd_api_create(&ac, a->redis, a->turn, a->metrics);
    if (!a->metrics || !a->redis || !a->api || (cfg.pool && !pd_redis_is_cluster(a->redis) && (!a->pool || !a->claims))) {
        pd_log(PD_LOG_ERROR, "out of memory at start-up", NULL);
        return 1;
    }

    pd_http_limits lim;
    pd_http_limits_default(&lim);
    lim.max_body_bytes = (size_t)cfg.body_max;
    lim.request_timeout_ms = (uint64_t)cfg.req_timeout;
    lim.idle_timeout_ms = (uint64_t)cfg.idle_timeout;
    lim.max_conns_per_ip = (size_t)cfg.http_per_ip;
    lim.max_conn_age_ms = (uint64_t)cfg.conn_age;
    lim.trusted = trusted;
    const char *listen_addr = cfg.listen_addr;
    const char *err = NULL;
    a->http = pd_http_server_create(a->loop, listen_addr, (int)cfg.port, &lim, pd_api_handle, a->api, &err);
    if (!a->http) {
        pd_log(PD_LOG_ERROR, "cannot listen", "{s:s, s:i, s:s}", "addr", listen_addr, "port", (int)cfg.port, "error",
               err ? err : "unknown");
        return 1;
    }
    uv_signal_init(a->loop, &a->sig_term);
    uv_signal_init(a->loop, &a->sig_int);
    a->sig_term.data = a->sig_int.data = a;
    uv_signal_start(&a->sig_term, on_signal, SIGTERM);
    uv_signal_start(&a->sig_int, on_signal, SIGINT);
    uv_timer_init(a->loop, &a->drain);
    a->drain.data = a;
    uv_timer_init(a->loop, &a->reaper);
    a->reaper.data = a;
    uv_timer_start(&a->reaper, on_reaper, 5000, 5000);

    pd_log(PD_LOG_INFO, "listening", "{s:s, s:i, s:b}", "addr", listen_addr, "port", (int)cfg.port, "turn",
           pd_turn_has_relay(a->turn));
    uv_run(a->loop, UV_RUN_DEFAULT);
    uv_loop_close(a->loop);
    pd_api_free(a->api);
    pd_pool_free(a->pool);
    pd_claimq_free(a->claims);
    pd_turn_free(a->turn);
    pd_cidr_list_free(trusted);
    pd_metrics_free(a->metrics);
    pd_log(PD_LOG_INFO, "stopped", NULL);
    return 0;
}
