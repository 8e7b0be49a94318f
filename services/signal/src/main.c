/* privydrop-signal — a stateless signaling worker (docs/architecture.md;
 * its wire contract: docs/wire-protocol.md §Handshake, §Worker HTTP routes). */
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privydrop/pd_config.h"
#include "privydrop/pd_eio.h"
#include "privydrop/pd_log.h"
#include "privydrop/pd_room.h"
#include "hub.h"
#include "fwd.h"
#include "peer.h"
#include "poll.h"
#include "session.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static const char USAGE[] =
    "Usage: privydrop-signal [--help] [--version] [--check-config]\n"
    "\n"
    "--check-config validates the environment as start-up does, prints every\n"
    "problem to stderr and exits 0 (fine) or 2 (not), without starting.\n"
    "\n"
    "Signaling worker: Engine.IO v4 / Socket.IO v5 over WebSocket at\n"
    "/socket.io/, plus /healthz, /readyz and /metrics on the same port.\n"
    "Configuration comes from the environment:\n"
    "  PD_SIGNAL_PORT           listen port (3001)\n"
    "  PD_LISTEN_ADDR           listen address (0.0.0.0)\n"
    "  PD_WORKER_ID             instance id (host-pid)\n"
    "  PD_PING_INTERVAL_MS      Engine.IO ping interval (25000)\n"
    "  PD_PING_TIMEOUT_MS       Engine.IO ping timeout (20000)\n"
    "  PD_CONNECT_TIMEOUT_MS    time to send the Socket.IO connect (45000)\n"
    "  PD_MAX_MESSAGE_BYTES     largest accepted message (65536)\n"
    "  PD_MAX_SEND_QUEUE_BYTES  per-socket send queue before a slow reader is closed (1048576)\n"
    "  PD_MAX_CONNECTIONS       open sockets per worker (20000)\n"
    "  PD_MAX_CONNS_PER_IP      open sockets per client address per worker (200)\n"
    "  PD_EVENT_RATE            Socket.IO events per second per socket (50)\n"
    "  PD_EVENT_BURST           burst allowance for that rate (200)\n"
    "  PD_MAX_ROOM_PEERS        sockets per room, 0 = unbounded (32)\n"
    "  PD_DRAIN_TIMEOUT_MS      SIGTERM drain limit (10000)\n"
    "  PD_ROOM_REFRESH_MS       renew rooms with members here this often (3600000)\n"
    "  PD_DRAIN_NOTICE_MS       SIGTERM: not ready this long before closing sockets (1000)\n"
    "  PD_DRAIN_SPREAD_MS       SIGTERM: then close sockets evenly over this (3000)\n"
    "  PD_HTTP_REQUEST_TIMEOUT_MS  time to receive a whole HTTP request (10000)\n"
    "  PD_HTTP_IDLE_TIMEOUT_MS  idle keep-alive HTTP connection limit (30000)\n"
    "  PD_HTTP_MAX_CONNS_PER_IP  connections not (yet) upgraded per client address (32,\n"
    "                           at most PD_MAX_CONNS_PER_IP)\n"
    "  PD_HTTP_MAX_CONN_AGE_MS  keep-alive HTTP connections end after this (60000)\n"
    "  PD_PEER_LINKS            1: forwarded polling requests go on direct links between\n"
    "                           workers, Redis when none is up; 0: always Redis (1)\n"
    "  PD_PEER_PORT             the links' port, on PD_LISTEN_ADDR; 0 = any free one (0)\n"
    "  PD_PEER_ADVERTISE        the IP other workers reach this one at (the local address\n"
    "                           toward Redis, or PD_LISTEN_ADDR when that is not a wildcard)\n"
    "  PD_TRUSTED_PROXIES       CIDRs whose X-Forwarded-For is believed (127.0.0.1/32,::1/128)\n"
    "  REDIS_HOST, REDIS_PORT, REDIS_PASSWORD   Redis (127.0.0.1:6379)\n"
    "  REDIS_SENTINELS          Sentinel mode: host:port,... of the sentinels (REDIS_HOST/PORT\n"
    "                           then unused; REDIS_PASSWORD is the master's)\n"
    "  REDIS_SENTINEL_MASTER    the master's name in the sentinels (with REDIS_SENTINELS)\n"
    "  REDIS_SENTINEL_PASSWORD  AUTH for the sentinels (none)\n"
    "  REDIS_CLUSTER_NODES      Redis Cluster mode: host:port,... of some of its nodes\n"
    "                           (REDIS_HOST/PORT then unused; REDIS_PASSWORD is every node's)\n"
    "  CORS_ORIGIN              allowed WebSocket Origins, comma-separated (any)\n"
    "  NODE_ENV                 reported environment (production)\n"
    "  DISABLE_JOIN_RATE_LIMIT  1 turns the per-address join limit off\n"
    "  PD_LOG_LEVEL             debug, info, warn or error (info)\n";

static pd_worker *g_worker; /* for the signal handlers only */
static uv_signal_t sig_term, sig_int;
static uv_timer_t drain_timer;
static uint64_t drain_deadline;
static uint64_t drain_close_from; /* monotonic ms: first socket closes */
static uint64_t drain_spread;     /* ms over which sockets close */
static size_t drain_total;        /* sockets open at SIGTERM */
/* Where the drain is with removing this worker from the cluster keys. */
typedef enum retire_state {
    RETIRE_NOT_YET = 0, /* pd_cluster_retire not sent (Redis down, or not yet drained) */
    RETIRE_SENT,        /* sent, no answer yet */
    RETIRE_DONE,        /* answered (or failed): nothing left to wait for */
} retire_state;
static retire_state retire;

/* ---- configuration ------------------------------------------------------ */

static int worker_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 80)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* The HTTP listener's limits, read with the rest of the configuration. */
typedef struct http_config {
    long req_timeout, idle_timeout; /* PD_HTTP_REQUEST_TIMEOUT_MS, PD_HTTP_IDLE_TIMEOUT_MS */
    long per_ip, conn_age;          /* PD_HTTP_MAX_CONNS_PER_IP, PD_HTTP_MAX_CONN_AGE_MS */
} http_config;

/* Reads and checks every variable, recording each problem in chk rather than
 * stopping at the first: start-up and --check-config run exactly this. The
 * trusted proxy list goes to *trusted (owned by the caller; NULL if invalid). */
static void load_config(pd_worker_config *c, http_config *h, pd_cidr_list **trusted, pd_config_check *chk)
{
    pd_config_log_level(chk);
    pd_config_listen_addr(chk, "0.0.0.0", &c->listen_addr);
    pd_redis_config_load(chk, &c->redis);
    c->environment = pd_env_str("NODE_ENV", "production");
    c->cors_origin = pd_env_str("CORS_ORIGIN", NULL);
    c->join_rate_limit = !pd_env_flag("DISABLE_JOIN_RATE_LIMIT");
    pd_config_long(chk, "PD_SIGNAL_PORT", 3001, 1, 65535, &c->port);
    pd_config_long(chk, "PD_PING_INTERVAL_MS", 25000, 50, 3600000, &c->ping_interval_ms);
    pd_config_long(chk, "PD_PING_TIMEOUT_MS", 20000, 50, 3600000, &c->ping_timeout_ms);
    pd_config_long(chk, "PD_CONNECT_TIMEOUT_MS", 45000, 50, 3600000, &c->connect_timeout_ms);
    pd_config_long(chk, "PD_MAX_MESSAGE_BYTES", 65536, 256, 16 * 1024 * 1024, &c->max_message_bytes);
    pd_config_long(chk, "PD_MAX_SEND_QUEUE_BYTES", 1048576, 4096, 256 * 1024 * 1024, &c->max_send_queue_bytes);
    pd_config_long(chk, "PD_MAX_CONNECTIONS", 20000, 1, 10000000, &c->max_connections);
    pd_config_long(chk, "PD_MAX_CONNS_PER_IP", 200, 1, 10000000, &c->max_conns_per_ip);
    pd_config_long(chk, "PD_EVENT_RATE", 50, 1, 1000000, &c->event_rate);
    pd_config_long(chk, "PD_EVENT_BURST", 200, 1, 1000000, &c->event_burst);
    pd_config_long(chk, "PD_MAX_ROOM_PEERS", 32, 0, 100000, &c->max_room_peers);
    pd_config_long(chk, "PD_JOIN_RESERVED_WAIT_MS", 2000, 0, 60000, &c->join_reserved_wait_ms);
    pd_config_long(chk, "PD_DRAIN_TIMEOUT_MS", 10000, 0, 600000, &c->drain_timeout_ms);
    /* Well inside the rooms' 24 h life, so a refresh lost to a Redis outage
     * is made up long before a room could expire. */
    pd_config_long(chk, "PD_ROOM_REFRESH_MS", 3600000, 1000, 43200000, &c->room_refresh_ms);
    pd_config_long(chk, "PD_DRAIN_NOTICE_MS", 1000, 0, 600000, &c->drain_notice_ms);
    pd_config_long(chk, "PD_DRAIN_SPREAD_MS", 3000, 0, 600000, &c->drain_spread_ms);
    pd_config_long(chk, "PD_PEER_LINKS", 1, 0, 1, &c->peer_links);
    pd_config_long(chk, "PD_PEER_PORT", 0, 0, 65535, &c->peer_port);
    c->peer_advertise = pd_env_str("PD_PEER_ADVERTISE", NULL);
    if (c->peer_advertise) {
        unsigned char ab[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, c->peer_advertise, ab) != 1 && inet_pton(AF_INET6, c->peer_advertise, ab) != 1)
            pd_config_check_add(chk, "PD_PEER_ADVERTISE", c->peer_advertise, "not an IPv4 or IPv6 address");
    }
    pd_http_limits lim;
    pd_http_limits_default(&lim);
    pd_config_long(chk, "PD_HTTP_REQUEST_TIMEOUT_MS", (long)lim.request_timeout_ms, 100, 600000, &h->req_timeout);
    pd_config_long(chk, "PD_HTTP_IDLE_TIMEOUT_MS", (long)lim.idle_timeout_ms, 100, 3600000, &h->idle_timeout);
    pd_config_long(chk, "PD_HTTP_MAX_CONNS_PER_IP", (long)lim.max_conns_per_ip, 1, 1000000, &h->per_ip);
    pd_config_long(chk, "PD_HTTP_MAX_CONN_AGE_MS", (long)lim.max_conn_age_ms, 1000, 86400000, &h->conn_age);

    const char *id = pd_env_str("PD_WORKER_ID", NULL);
    if (id) {
        snprintf(c->worker_id, sizeof(c->worker_id), "%s", id);
    } else {
        char host[64] = "worker";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        for (char *p = host; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                  *p == '-' || *p == '.'))
                *p = '-';
        snprintf(c->worker_id, sizeof(c->worker_id), "%s-%ld", host, (long)getpid());
    }
    /* Checked on the whole value: the copy above may have cut a long one. */
    if (!worker_id_valid(id ? id : c->worker_id))
        pd_config_check_add(chk, "PD_WORKER_ID", id ? id : c->worker_id, "1-80 characters of [A-Za-z0-9._-]");

    const char *err = NULL;
    const char *proxies = pd_env_str("PD_TRUSTED_PROXIES", "127.0.0.1/32,::1/128");
    *trusted = pd_cidr_list_create(proxies, &err);
    if (!*trusted)
        pd_config_check_add(chk, "PD_TRUSTED_PROXIES", proxies, err ? err : "invalid");
}

/* ---- HTTP routes ---------------------------------------------------------- */

/* No CORS_ORIGIN, or no Origin header (not a browser): any. */
static int origin_allowed(const char *list, const pd_slice *origin)
{
    return !list || !origin || pd_http_origin_listed(list, *origin);
}

/* RFC 6455 §4.2.1: the key is base64 of 16 bytes: 22 symbols and "==". */
static int ws_key_valid(const pd_slice *key)
{
    if (!key || key->len != 24 || key->base[22] != '=' || key->base[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        char c = key->base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/'))
            return 0;
    }
    return 1;
}

static void ws_accept_value(const pd_slice *key, char out[32])
{
    char buf[64];
    memcpy(buf, key->base, 24);
    memcpy(buf + 24, WS_GUID, 36);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(buf, 60, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* CORS for polling answers (docs/wire-protocol.md §Long-polling): an
 * Origin the list names is echoed with credentials; "*" lets any origin in
 * without them. Written into buf; NULL if no header is needed. */
static const char *cors_headers(const pd_worker *w, const pd_slice *origin, char *buf, size_t cap)
{
    if (!origin || !w->cfg.cors_origin)
        return NULL;
    int how = pd_http_origin_listed(w->cfg.cors_origin, *origin);
    if (how == PD_ORIGIN_ANY)
        return "Access-Control-Allow-Origin: *\r\n";
    if (how != PD_ORIGIN_NAMED || origin->len > 512)
        return NULL;
    int n = snprintf(buf, cap,
                     "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n"
                     "Vary: Origin\r\n",
                     (int)origin->len, origin->base);
    return n > 0 && (size_t)n < cap ? buf : NULL;
}

/* Room for one more session on this worker, and for this address. Answers
 * the refusal itself and returns 0 when not. */
static int admit_session(pd_worker *w, pd_http_conn *c, const char *client_ip)
{
    /* Tunnels (another worker's sessions carried here) hold a socket and
     * memory here like sessions do, so they count against the same caps. */
    if (w->draining ||
        pd_hub_session_count(w->hub) + pd_fwd_tunnel_count(w, NULL) >= (size_t)w->cfg.max_connections) {
        pd_http_respond_json(c, 503, "Retry-After: 1\r\n",
                             "{\"error\":\"Server busy, try another instance\"}", 1);
        return 0;
    }
    if (pd_hub_ip_count(w->hub, client_ip) + pd_fwd_tunnel_count(w, client_ip) >= (size_t)w->cfg.max_conns_per_ip) {
        pd_metric_add(w->m_dropped, "ip_connection_cap", 1);
        pd_http_respond_json(c, 429, "Retry-After: 5\r\n", "{\"error\":\"Too many connections from this address\"}", 1);
        return 0;
    }
    return 1;
}

static void handle_polling(pd_worker *w, pd_http_conn *c, const pd_http_request *req, const pd_eio_query *q)
{
    const pd_slice *origin = pd_http_request_header(req, "Origin");
    if (!origin_allowed(w->cfg.cors_origin, origin)) {
        pd_http_respond_json(c, 403, NULL, "{\"code\":4,\"message\":\"Forbidden\"}", 0);
        return;
    }
    char cbuf[700];
    const char *cors = cors_headers(w, origin, cbuf, sizeof(cbuf));
    if (req->method == PD_HTTP_OPTIONS) {
        char pre[900];
        snprintf(pre, sizeof(pre), "%sAccess-Control-Allow-Methods: GET, POST\r\n"
                 "Access-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 600\r\n",
                 cors ? cors : "");
        pd_http_respond(c, 204, NULL, pre, NULL, 0, 0);
        return;
    }
    char client_ip[INET6_ADDRSTRLEN];
    pd_client_ip(w->trusted, req->peer_ip, pd_http_request_header(req, "X-Forwarded-For"), client_ip);
    if (!q->has_sid && req->method == PD_HTTP_GET && !admit_session(w, c, client_ip))
        return;
    /* No sticky sessions: a request for another worker's session is
     * forwarded to it (fwd.h). */
    if (q->has_sid && !pd_fwd_is_local(w, q->sid)) {
        pd_fwd_request(w, c, req, q->sid, client_ip, cors);
        return;
    }
    pd_poll_request(w, c, req, q, client_ip, cors);
}

static void handle_socketio(pd_worker *w, pd_http_conn *c, const pd_http_request *req)
{
    pd_eio_query q;
    const char *err = pd_eio_check_query(req->query, &q);
    if (err) {
        pd_http_respond_json(c, 400, NULL, err, 0);
        return;
    }
    if (q.transport == PD_EIO_POLLING) {
        handle_polling(w, c, req, &q);
        return;
    }
    if (req->method != PD_HTTP_GET) {
        pd_http_respond_json(c, 400, NULL, PD_EIO_ERR_BAD_REQUEST, 0);
        return;
    }
    const pd_slice *upgrade = pd_http_request_header(req, "Upgrade");
    if (!req->upgrade || !upgrade || !pd_slice_ieq(*upgrade, "websocket")) {
        pd_http_respond_json(c, 400, NULL, PD_EIO_ERR_BAD_REQUEST, 0);
        return;
    }
    const pd_slice *version = pd_http_request_header(req, "Sec-WebSocket-Version");
    if (!version || !pd_slice_eq(*version, "13")) {
        pd_http_respond_json(c, 426, "Sec-WebSocket-Version: 13\r\n",
                             "{\"error\":\"Unsupported WebSocket version\"}", 1);
        return;
    }
    const pd_slice *key = pd_http_request_header(req, "Sec-WebSocket-Key");
    if (!ws_key_valid(key)) {
        pd_http_respond_json(c, 400, NULL, "{\"error\":\"Invalid Sec-WebSocket-Key\"}", 1);
        return;
    }
    if (!origin_allowed(w->cfg.cors_origin, pd_http_request_header(req, "Origin"))) {
        pd_http_respond_json(c, 403, NULL, "{\"error\":\"Origin not allowed\"}", 1);
        return;
    }
    /* An upgrade names the polling session it takes over; a new session
     * must find room. */
    pd_poll *p = NULL;
    char client_ip[INET6_ADDRSTRLEN];
    pd_client_ip(w->trusted, req->peer_ip, pd_http_request_header(req, "X-Forwarded-For"), client_ip);
    int tunnel = 0;
    char tsid[PD_FWD_MAX_SID + 1];
    if (q.has_sid && !pd_fwd_is_local(w, q.sid)) {
        /* Another worker's session: this WebSocket tunnels to it. */
        if (q.sid.len > PD_FWD_MAX_SID || !pd_id_valid(q.sid)) {
            pd_http_respond_json(c, 400, NULL, PD_EIO_ERR_UNKNOWN_SID, 0);
            return;
        }
        if (!admit_session(w, c, client_ip))
            return;
        tunnel = 1;
        memcpy(tsid, q.sid.base, q.sid.len); /* the query goes with the detach */
        tsid[q.sid.len] = '\0';
    } else if (q.has_sid) {
        p = pd_poll_find(w, q.sid);
        if (!p) {
            pd_http_respond_json(c, 400, NULL, PD_EIO_ERR_UNKNOWN_SID, 0);
            return;
        }
    } else if (!admit_session(w, c, client_ip)) {
        return;
    }
    char accept[32];
    ws_accept_value(key, accept);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    char *left = NULL;
    size_t left_len = 0;
    uv_tcp_t *tcp = pd_http_conn_detach(c, head, (size_t)n, &left, &left_len);
    if (tcp) {
        if (tunnel)
            pd_sess_create_tunnel(w, tcp, pd_slice_cstr(tsid), client_ip, left, left_len);
        else if (p)
            pd_sess_create_probe(w, tcp, p, left, left_len);
        else
            pd_sess_create(w, tcp, client_ip, left, left_len);
    }
    free(left);
}

static void on_request(pd_http_conn *c, const pd_http_request *req, void *data)
{
    pd_worker *w = data;
    int get = req->method == PD_HTTP_GET || req->method == PD_HTTP_HEAD;
    if (pd_slice_eq(req->path, "/socket.io/") || pd_slice_eq(req->path, "/socket.io")) {
        handle_socketio(w, c, req);
        return;
    }
    if (!get) {
        pd_http_respond_json(c, 405, "Allow: GET, HEAD\r\n", "{\"error\":\"Method not allowed\"}", 0);
        return;
    }
    if (pd_slice_eq(req->path, "/healthz")) {
        pd_http_respond_json(c, 200, NULL, "{\"status\":\"ok\"}", 0);
    } else if (pd_slice_eq(req->path, "/readyz")) {
        int redis = pd_redis_ready(w->redis);
        char body[128];
        snprintf(body, sizeof(body), "{\"status\":\"%s\",\"redis\":\"%s\",\"draining\":%s}",
                 redis && !w->draining ? "ready" : "not ready", redis ? "connected" : "disconnected",
                 w->draining ? "true" : "false");
        pd_http_respond_json(c, redis && !w->draining ? 200 : 503, NULL, body, 0);
    } else if (pd_slice_eq(req->path, "/metrics")) {
        pd_metric_set(w->m_master_changes, NULL, (double)pd_redis_master_changes(w->redis));
        size_t len = 0;
        char *text = pd_metrics_render(w->metrics, &len);
        if (!text) {
            pd_http_respond_json(c, 500, NULL, "{\"error\":\"Internal server error\"}", 0);
            return;
        }
        pd_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text, len, 0);
        free(text);
    } else {
        pd_http_respond_json(c, 404, NULL, "{\"error\":\"Not found\"}", 0);
    }
}

/* ---- Redis wiring ---------------------------------------------------------- */

static void on_redis_state(pd_redis *r, int ready, void *data)
{
    (void)r;
    pd_worker *w = data;
    pd_log(ready ? PD_LOG_INFO : PD_LOG_WARN, ready ? "redis connected" : "redis unavailable", NULL);
    if (w->hub)
        pd_hub_on_redis_state(w->hub, ready);
}

static void on_bus(pd_slice channel, pd_slice message, void *data)
{
    pd_worker *w = data;
    if (channel.len > sizeof(PD_FWD_CHANNEL_PREFIX) - 1 &&
        memcmp(channel.base, PD_FWD_CHANNEL_PREFIX, sizeof(PD_FWD_CHANNEL_PREFIX) - 1) == 0) {
        /* Our own channel carries signals for our sockets as bus
         * envelopes, and the polling forwarder's messages (one letter). */
        if (message.len >= 4 && memcmp(message.base, "PD1 ", 4) == 0) {
            if (w->hub)
                pd_hub_on_worker_message(w->hub, message);
        } else {
            pd_fwd_on_message(w, message, pd_slice_make(NULL, 0));
        }
        return;
    }
    if (w->hub)
        pd_hub_on_bus_message(w->hub, channel, message);
}

/* ---- shutdown ---------------------------------------------------------------- */

static void shutdown_now(pd_worker *w)
{
    uv_timer_stop(&drain_timer);
    uv_close((uv_handle_t *)&drain_timer, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    pd_http_server_free(w->http);
    w->http = NULL;
    /* Redis first: its pending callbacks (run now, with NULL replies) still
     * find the hub alive. */
    pd_redis_free(w->redis);
    w->redis = NULL;
    pd_eng_layer_set_handler(w, NULL, NULL);
    pd_hub_free(w->hub);
    w->hub = NULL;
    pd_fwd_close(w);
    pd_peer_close(w);
    pd_poll_layer_close(w);
    pd_sess_layer_close(w);
    pd_eng_layer_close(w);
}

static void on_retired(long v, void *data)
{
    (void)v;
    (void)data;
    retire = RETIRE_DONE;
}

static void on_drain_tick(uv_timer_t *t)
{
    pd_worker *w = t->data;
    uint64_t now = pd_mono_ms();
    /* Gone from the hub, and their close frames (1001) handed to the kernel. */
    int sockets_gone = pd_hub_session_count(w->hub) == 0 && w->dirty == NULL;
    int redis_idle = !pd_redis_ready(w->redis) ||
                     (pd_redis_pending(w->redis) == 0 && pd_hub_pending_cleanups(w->hub) == 0);
    if (now >= drain_close_from && drain_total) {
        /* Evenly over the spread: the clients' reconnections do not all
         * arrive at once, and the later ones find the workers started since. */
        uint64_t el = now - drain_close_from;
        size_t upto = drain_total;
        if (el < drain_spread)
            upto = (size_t)((drain_total * el + drain_spread - 1) / drain_spread);
        pd_hub_drain_step(w->hub, upto);
    }
    if (now >= drain_deadline) {
        pd_log(PD_LOG_WARN, "drain timeout", "{s:I, s:I}", "sockets", (json_int_t)pd_hub_session_count(w->hub),
               "pending_redis", (json_int_t)pd_redis_pending(w->redis));
        pd_hub_close_all(w->hub); /* any still waiting for their credit: 1001 now */
        shutdown_now(w);
        return;
    }
    if (!sockets_gone || !redis_idle)
        return;
    if (retire == RETIRE_NOT_YET && pd_redis_ready(w->redis)) {
        /* From here no heartbeat goes out: one queued behind the retire
         * would register this worker again just before it exits. */
        w->retiring = 1;
        pd_peer_retire(w);
        if (pd_cluster_retire(w->redis, w->cfg.worker_id, on_retired, NULL) == PD_OK) {
            retire = RETIRE_SENT;
            return;
        }
    }
    if (retire == RETIRE_SENT)
        return;
    pd_log(PD_LOG_INFO, "drained", NULL);
    shutdown_now(w);
}

static void on_signal(uv_signal_t *h, int signum)
{
    pd_worker *w = h->data;
    if (w->draining)
        return;
    w->draining = 1;
    pd_log(PD_LOG_INFO, "draining", "{s:i, s:I}", "signal", signum, "sockets",
           (json_int_t)pd_hub_session_count(w->hub));
    pd_http_server_stop_accepting(w->http);
    /* /readyz answers 503 from now on; the sockets stay open for the notice
     * so a balancer polling readiness stops sending clients here before the
     * first one is told to move, then they close evenly over the spread.
     * Both together take at most half the drain limit (scaled down if
     * configured longer), leaving the rest for Redis cleanup. */
    uint64_t now = pd_mono_ms();
    uint64_t notice = (uint64_t)w->cfg.drain_notice_ms, spread = (uint64_t)w->cfg.drain_spread_ms;
    uint64_t budget = (uint64_t)w->cfg.drain_timeout_ms / 2;
    if (notice + spread > budget) {
        notice = notice * budget / (notice + spread);
        spread = budget - notice;
    }
    drain_total = pd_hub_drain_begin(w->hub);
    if (!drain_total)
        pd_hub_close_all(w->hub); /* none open, or no memory for the list */
    drain_close_from = now + notice;
    drain_spread = spread;
    drain_deadline = now + (uint64_t)w->cfg.drain_timeout_ms;
    uv_timer_start(&drain_timer, on_drain_tick, 20, 20);
}

/* ---- main ----------------------------------------------------------------------- */

static void add_metrics(pd_worker *w)
{
    pd_metrics *m = w->metrics;
    w->m_connections = pd_metrics_add(m, PD_METRIC_GAUGE, "privydrop_signal_connections",
                                      "Open Socket.IO connections on this worker.", NULL);
    w->m_messages = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_messages_total",
                                   "Socket.IO events received, by event.", "event");
    w->m_dropped = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_dropped_total",
                                  "Packets and signals dropped, by reason.", "reason");
    w->m_join_waits = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_join_waits_total",
                                     "Joins that found their room reserved by the room API's pool and waited for its "
                                     "claim, by result (joined, gone: the socket or the worker went first, "
                                     "timeout: answered \"Room does not exist\"; refused: handed out to a client that asked later).", "result");
    w->m_polls = pd_metrics_add(m, PD_METRIC_GAUGE, "privydrop_signal_polling_sessions",
                                "Long-polling sessions owned by this worker (not yet upgraded).", NULL);
    w->m_poll_gets = pd_metrics_add(m, PD_METRIC_GAUGE, "privydrop_signal_poll_gets_waiting",
                                    "Long-polling GETs waiting here for packets.", NULL);
    w->m_tunnels = pd_metrics_add(m, PD_METRIC_GAUGE, "privydrop_signal_tunnels",
                                  "WebSockets on this worker carrying another worker's session.", NULL);
    w->m_fwd_pending = pd_metrics_add(m, PD_METRIC_GAUGE, "privydrop_signal_poll_forward_pending",
                                      "Polling requests forwarded to their owner and not yet answered.", NULL);
    w->m_fwd_path = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_poll_forward_path_total",
                                   "Long-polling requests forwarded to their owner, by the way they went "
                                   "(link: the direct link between the workers; redis: pub/sub).", "path");
    w->m_peer_links = pd_metrics_add(m, PD_METRIC_GAUGE, "privydrop_signal_peer_links",
                                     "Links between workers for forwarded polling requests (in: opened by "
                                     "others to this one; out: this one's to their owners, up).", "dir");
    w->m_poll_forwarded = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_poll_forwarded_total",
                                         "Long-polling requests and tunnelled packets sent to the worker "
                                         "that owns their session.", NULL);
    w->m_publishes = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_bus_publishes_total",
                                    "Envelopes published on room channels.", NULL);
    w->m_bus_received = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_bus_received_total",
                                       "Envelopes from other instances handled here.", NULL);
    w->m_redis_up = pd_metrics_add(m, PD_METRIC_GAUGE, "privydrop_signal_redis_up",
                                   "1 while Redis is connected.", NULL);
    w->m_master_changes = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_redis_master_changes_total",
                                         "Redis master changes followed (Sentinel; Cluster: maps moving slots).", NULL);
    w->m_rooms = pd_metrics_add(m, PD_METRIC_GAUGE, "privydrop_signal_rooms",
                                "Rooms with sockets (or a grace period) on this worker.", NULL);
    w->m_closed = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_sessions_closed_total",
                                 "Sessions closed, by reason.", "reason");
    w->m_backpressure = pd_metrics_add(m, PD_METRIC_COUNTER, "privydrop_signal_backpressure_total",
                                       "Times this worker held back reading its clients, by cause "
                                       "(redis_behind: its own Redis link; peer_behind: another worker "
                                       "could not keep up with the bus; bus_behind: this worker asked the "
                                       "others to hold back).",
                                       "cause");
}

int main(int argc, char **argv)
{
    int rc = pd_cli_handle(argc, argv, "privydrop-signal", USAGE);
    if (rc >= 0)
        return rc;
    int check_only = rc == PD_CLI_CHECK_CONFIG;
    pd_log_init("signal", pd_env_str("PD_LOG_LEVEL", "info"));
    signal(SIGPIPE, SIG_IGN);

    pd_worker *w = calloc(1, sizeof(*w));
    pd_config_check *chk = pd_config_check_create();
    if (!w || !chk) {
        free(w);
        pd_config_check_free(chk);
        return 1;
    }
    http_config hc;
    load_config(&w->cfg, &hc, &w->trusted, chk);
    rc = pd_config_check_report(chk, "privydrop-signal", check_only);
    pd_config_check_free(chk);
    if (rc >= 0) {
        pd_cidr_list_free(w->trusted);
        free(w);
        return rc;
    }
    w->loop = uv_default_loop();
    w->started_ms = pd_now_ms();
    w->metrics = pd_metrics_create();
    add_metrics(w);
    pd_eng_layer_init(w);
    pd_sess_layer_init(w);
    if (pd_poll_layer_init(w) != PD_OK) {
        pd_log(PD_LOG_ERROR, "out of memory at start-up", NULL);
        return 1;
    }
    g_worker = w;

    pd_redis_options ro = w->cfg.redis;
    ro.subscriber = 1;
    ro.watchdog_ms = 1000;
    /* The longest bus message: an envelope around one packet, or a
     * forwarded long-polling answer (at most the send queue). */
    ro.sub_max_message = pd_worker_bus_max_packet(w) + PD_BUS_ENVELOPE_ROOM;
    w->redis = pd_redis_create(w->loop, &ro, on_redis_state, on_bus, w);
    w->hub = pd_hub_create(w);
    if (!w->redis || !w->hub || pd_fwd_init(w) != PD_OK) {
        pd_log(PD_LOG_ERROR, "out of memory at start-up", NULL);
        return 1;
    }
    if (pd_peer_init(w) != PD_OK)
        return 1; /* logged */
    pd_eng_layer_set_handler(w, &pd_hub_conn_handler, w->hub);

    pd_http_limits lim;
    pd_http_limits_default(&lim);
    lim.max_connections = (size_t)w->cfg.max_connections + 64;
    lim.request_timeout_ms = (uint64_t)hc.req_timeout;
    lim.idle_timeout_ms = (uint64_t)hc.idle_timeout;
    /* A connection that has not upgraded yet is an upgrade request or a
     * probe: short-lived, and never more per address than the sockets that
     * address may open. Slots for them are PD_MAX_CONNECTIONS + 64 in all,
     * so no single address can take the ones others need. */
    lim.max_conns_per_ip = (size_t)PD_MIN(hc.per_ip, w->cfg.max_conns_per_ip);
    lim.max_conn_age_ms = (uint64_t)hc.conn_age;
    /* A polling POST carries at most maxPayload bytes of packets. */
    lim.max_body_bytes = (size_t)w->cfg.max_message_bytes;
    lim.trusted = w->trusted;
    const char *err = NULL;
    w->http = pd_http_server_create(w->loop, w->cfg.listen_addr, (int)w->cfg.port, &lim, on_request, w, &err);
    if (!w->http) {
        pd_log(PD_LOG_ERROR, "cannot listen", "{s:s, s:i, s:s}", "addr", w->cfg.listen_addr, "port",
               (int)w->cfg.port, "error", err ? err : "unknown");
        return 1;
    }
    uv_signal_init(w->loop, &sig_term);
    uv_signal_init(w->loop, &sig_int);
    sig_term.data = sig_int.data = w;
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_timer_init(w->loop, &drain_timer);
    drain_timer.data = w;

    char redis_desc[600];
    pd_redis_describe(&w->cfg.redis, redis_desc, sizeof(redis_desc));
    pd_log(PD_LOG_INFO, "listening", "{s:s, s:i, s:s, s:s}", "addr", w->cfg.listen_addr, "port", (int)w->cfg.port,
           "worker", w->cfg.worker_id, "redis", redis_desc);
    uv_run(w->loop, UV_RUN_DEFAULT);
    uv_loop_close(w->loop);
    pd_cidr_list_free(w->trusted);
    pd_metrics_free(w->metrics);
    free(w);
    g_worker = NULL;
    pd_log(PD_LOG_INFO, "stopped", NULL);
    return 0;
}
