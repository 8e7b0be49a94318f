/* Room API routes (docs/wire-protocol.md §Room API): PrivyDrop's api and
 * health routes plus our /api/ice_servers and /metrics. Every answer is
 * JSON; every bad input is a 4xx with {"error": …}; Redis trouble is a 503,
 * never a hang. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>

#include "privydrop/pd_bus.h"
#include "privydrop/pd_log.h"
#include "privydrop/pd_ratelimit.h"
#include "privydrop/pd_room.h"
#include "privydrop/pd_sio.h"

#define CORS_HDR_MAX 512

struct pd_api {
    pd_api_config cfg;       /* borrowed strings */
    pd_redis *redis;         /* borrowed */
    const pd_turn *turn;     /* borrowed */
    pd_metric *m_requests;   /* counter{route} */
    pd_metric *m_errors;     /* counter{class} for 4xx/5xx */
    pd_metric *m_redis_up;   /* gauge, set when scraped */
    pd_metric *m_inflight;   /* gauge, set when scraped */
    pd_metric *m_master_changes; /* counter, set when scraped: Sentinel master changes followed */
    pd_metric *m_held;       /* gauge, set when scraped: room routes held after Redis came back */
    pd_metric *m_pool_ids;   /* gauge, set when scraped: ids ready in the get_room pool */
    pd_metric *m_pool_hits;  /* counter, set when scraped: get_rooms answered from the pool */
    pd_metric *m_claims;     /* counter{result}, set when scraped: claims of pooled ids */
    pd_metric *m_claims_pending; /* gauge, set when scraped: pooled ids not yet claimed */
    pd_metric *m_pool_waits; /* counter{result}: get_rooms that waited for the pool's ids on their way */
    pd_metrics *metrics;     /* borrowed registry */
    pd_ratelimit *room_limit; /* per-address buckets, room routes */
    pd_ratelimit *log_limit;  /* per-address buckets, track and log routes */
    pd_ratelimit *ice_limit;  /* per-address buckets, TURN credentials */
    pd_ratelimit *detailed_limit; /* per-address buckets, /health/detailed (a Redis script each) */
    size_t inflight;         /* requests waiting for Redis */
    uint64_t started_ms;     /* monotonic start */
    int redis_was_ready;     /* Redis has been ready at least once */
    uint64_t hold_until_ms;  /* room routes answer 503 until then (monotonic) */
    struct api_req *wait_head, *wait_tail; /* get_rooms waiting for the pool's ids on their way */
    size_t waiting;
};

/* One request that waits for Redis. */
typedef struct api_req {
    pd_api *api;
    struct api_req *next; /* in api->wait_head's queue */
    pd_http_conn *conn;
    char cors[CORS_HDR_MAX]; /* extra response headers */
    char room[PD_ID_MAX + 1];
    char sid[PD_ID_MAX + 1];
} api_req;

/* ---- pure helpers ------------------------------------------------------- */

typedef struct route_def {
    const char *path;
    pd_http_method method;
    pd_api_route route;
} route_def;

static const route_def ROUTES[] = {
    {"/api/get_room", PD_HTTP_GET, PD_ROUTE_GET_ROOM},
    {"/api/create_room", PD_HTTP_POST, PD_ROUTE_CREATE_ROOM},
    {"/api/check_room", PD_HTTP_POST, PD_ROUTE_CHECK_ROOM},
    {"/api/leave_room", PD_HTTP_POST, PD_ROUTE_LEAVE_ROOM},
    {"/api/set_track", PD_HTTP_POST, PD_ROUTE_SET_TRACK},
    {"/api/logs_debug", PD_HTTP_POST, PD_ROUTE_LOGS_DEBUG},
    {"/api/ice_servers", PD_HTTP_GET, PD_ROUTE_ICE_SERVERS},
    {"/health", PD_HTTP_GET, PD_ROUTE_HEALTH},
    {"/api/health", PD_HTTP_GET, PD_ROUTE_HEALTH},
    {"/health/detailed", PD_HTTP_GET, PD_ROUTE_HEALTH_DETAILED},
    {"/metrics", PD_HTTP_GET, PD_ROUTE_METRICS},
};

pd_api_route pd_api_route_match(pd_http_method method, pd_slice path)
{
    if (method == PD_HTTP_OPTIONS)
        return PD_ROUTE_PREFLIGHT;
    /* Express ignores one trailing slash; so do we. */
    if (path.len > 1 && path.base[path.len - 1] == '/')
        path.len--;
    for (size_t i = 0; i < PD_ARRAY_LEN(ROUTES); i++) {
        if (!pd_slice_eq(path, ROUTES[i].path))
            continue;
        if (method == ROUTES[i].method || (method == PD_HTTP_HEAD && ROUTES[i].method == PD_HTTP_GET))
            return ROUTES[i].route;
        return PD_ROUTE_BAD_METHOD;
    }
    return PD_ROUTE_NOT_FOUND;
}

json_t *pd_api_parse_body(pd_slice body, const char **err)
{
    size_t i = 0;
    while (i < body.len && (body.base[i] == ' ' || body.base[i] == '\t' || body.base[i] == '\r' ||
                            body.base[i] == '\n'))
        i++;
    if (i == body.len)
        return json_object();
    json_error_t jerr;
    json_t *v = json_loadb(body.base, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        *err = "Invalid JSON body";
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        *err = "Request body must be a JSON object";
        return NULL;
    }
    return v;
}

int pd_api_get_id(json_t *obj, const char *field, const char *required_msg, const char **out,
                  const char **err)
{
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        *err = required_msg;
        return PD_ERR;
    }
    if (!json_is_string(v)) {
        *err = strcmp(field, "roomId") == 0 ? "roomId must be a string" : "socketId must be a string";
        return PD_ERR;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v) || !pd_id_valid(pd_slice_make(s, json_string_length(v)))) {
        *err = strcmp(field, "roomId") == 0
                   ? "Invalid room ID: use 1-64 characters of A-Z, a-z, 0-9, _ and -"
                   : "Invalid socket ID: use 1-64 characters of A-Z, a-z, 0-9, _ and -";
        return PD_ERR;
    }
    *out = s;
    return PD_OK;
}

static int date_prefix_ok(const char *s, size_t len)
{
    if (len < 10)
        return 0;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (s[i] != '-')
                return 0;
        } else if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int month = (s[5] - '0') * 10 + (s[6] - '0'), day = (s[8] - '0') * 10 + (s[9] - '0');
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int max = days[month - 1] + (month == 2 && leap);
    return day <= max && (len == 10 || s[10] == 'T' || s[10] == ' ');
}

int pd_api_track_date(json_t *ts, uint64_t now_ms, char out[11])
{
    double ms;
    if (!ts || json_is_null(ts)) {
        ms = (double)now_ms;
    } else if (json_is_number(ts)) {
        ms = json_number_value(ts);
        /* Years 1970..9999: anything else is not a date a browser sends. */
        if (!(ms >= 0 && ms < 253402300800000.0))
            return PD_ERR;
    } else if (json_is_string(ts)) {
        const char *s = json_string_value(ts);
        if (!date_prefix_ok(s, json_string_length(ts)))
            return PD_ERR;
        memcpy(out, s, 10);
        out[10] = '\0';
        return PD_OK;
    } else {
        return PD_ERR;
    }
    time_t t = (time_t)(ms / 1000.0);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return PD_ERR;
    char tmp[48];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday);
    memcpy(out, tmp, 10);
    out[10] = '\0';
    return PD_OK;
}

int pd_api_origin_allowed(const char *list, pd_slice origin)
{
    return pd_http_origin_listed(list, origin);
}

/* ---- responses ------------------------------------------------------------ */

static void respond_json(pd_api *api, pd_http_conn *conn, const char *cors, int status, json_t *body)
{
    if (status >= 400)
        pd_metric_add(api->m_errors, status >= 500 ? "5xx" : "4xx", 1);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!text) {
        pd_http_respond_json(conn, 500, cors, "{\"error\":\"Internal server error\"}", 0);
        return;
    }
    pd_http_respond_json(conn, status, cors, text, 0);
    free(text);
}

static void respond_error(pd_api *api, pd_http_conn *conn, const char *cors, int status, const char *msg)
{
    respond_json(api, conn, cors, status, json_pack("{s:s}", "error", msg));
}

static void respond_unavailable(pd_api *api, pd_http_conn *conn, const char *cors)
{
    respond_json(api, conn, cors, 503, json_pack("{s:s}", "error", "Service temporarily unavailable"));
}

/* A request that waits for Redis holds memory (and its connection) until
 * Redis answers, even once its client has gone: while Redis is slow, the
 * number waiting is bounded for everyone together, and beyond it the answer
 * is 503 at once. */
static api_req *req_new(pd_api *api, pd_http_conn *conn, const char *cors)
{
    if (api->inflight >= api->cfg.max_inflight)
        return NULL;
    api_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->api = api;
    r->conn = conn;
    snprintf(r->cors, sizeof(r->cors), "%s", cors);
    api->inflight++;
    return r;
}

static void req_done(api_req *r)
{
    r->api->inflight--;
    free(r);
}

static void iso_now(char out[48])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000) % 1000);
}

static json_t *health_base(pd_api *api, const char *status)
{
    char when[48];
    iso_now(when);
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "status", status, "timestamp", when, "uptime",
                     (json_int_t)((pd_mono_ms() - api->started_ms) / 1000), "service",
                     "privydrop-backend", "version", PD_VERSION, "environment", api->cfg.environment);
}

/* Whole seconds (rounded up) until the room routes open again after Redis
 * came back (pd_api_on_redis_state); 0 when they are open. Once Redis has
 * been ready, a link that is not ready again yet counts as the whole hold
 * still ahead: a reconnected link carries commands before its PING is
 * answered (and a Redis still loading its data answers none), and Redis
 * may be empty. */
static uint64_t hold_left_s(const pd_api *api)
{
    if (!api->cfg.restore_hold_ms || !api->redis_was_ready)
        return 0;
    if (!pd_redis_ready(api->redis))
        return (api->cfg.restore_hold_ms + 999) / 1000;
    uint64_t now = pd_mono_ms();
    return now < api->hold_until_ms ? (api->hold_until_ms - now + 999) / 1000 : 0;
}

/* ---- handlers ------------------------------------------------------------- */

static void on_get_room(const char *room, void *data)
{
    api_req *r = data;
    if (room)
        respond_json(r->api, r->conn, r->cors, 200, json_pack("{s:s}", "roomId", room));
    else
        respond_error(r->api, r->conn, r->cors, 500, "Internal server error");
    req_done(r);
}

static void on_create_room(long v, void *data)
{
    api_req *r = data;
    if (v < 0)
        respond_unavailable(r->api, r->conn, r->cors);
    else if (v == 1)
        respond_json(r->api, r->conn, r->cors, 200,
                     json_pack("{s:b, s:s}", "success", 1, "message", "create room success"));
    else if (strlen(r->room) >= 8) /* long ids are private enough to re-join */
        respond_json(r->api, r->conn, r->cors, 200,
                     json_pack("{s:b, s:s}", "success", 1, "message", "room exists (rejoin allowed)"));
    else
        respond_json(r->api, r->conn, r->cors, 200,
                     json_pack("{s:b, s:s}", "success", 0, "message", "roomId is already exists"));
    req_done(r);
}

static void on_check_room(long v, void *data)
{
    api_req *r = data;
    if (v < 0)
        respond_unavailable(r->api, r->conn, r->cors);
    else
        respond_json(r->api, r->conn, r->cors, 200, json_pack("{s:b}", "available", v == 0));
    req_done(r);
}

static void on_leave_room(long v, void *data)
{
    api_req *r = data;
    if (v < 0) {
        respond_unavailable(r->api, r->conn, r->cors);
    } else if (!(v & PD_LEAVE_ROOM_EXISTS)) {
        respond_json(r->api, r->conn, r->cors, 200,
                     json_pack("{s:b, s:s}", "success", 1, "message", "Room does not exist."));
    } else if (!(v & PD_LEAVE_WAS_MEMBER)) {
        /* Nothing changed (the room keeps its lifetime); a client racing
         * its own disconnect lands here too, so this is no error. */
        respond_json(r->api, r->conn, r->cors, 200,
                     json_pack("{s:b, s:s}", "success", 0, "message", "Socket is not in the room."));
    } else {
        pd_room_publish_left(r->api->redis, r->api->cfg.instance_id, pd_slice_cstr(r->room),
                             pd_slice_cstr(r->sid));
        respond_json(r->api, r->conn, r->cors, 200,
                     json_pack("{s:b, s:s}", "success", 1, "message", "Successfully left the room"));
    }
    req_done(r);
}

static void on_track(long v, void *data)
{
    api_req *r = data;
    if (v < 0)
        respond_unavailable(r->api, r->conn, r->cors);
    else
        respond_json(r->api, r->conn, r->cors, 200, json_pack("{s:b}", "success", 1));
    req_done(r);
}

static json_t *system_info(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct utsname un;
    const char *arch = uname(&un) == 0 ? un.machine : "unknown";
    return json_pack("{s:{s:I}, s:{s:f}, s:s, s:s}", "memory", "maxRssBytes", (json_int_t)ru.ru_maxrss * 1024,
                     "cpu", "seconds", (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                                           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6,
                     "platform", "linux", "arch", arch);
}

static void detailed_respond(api_req *r, long connections)
{
    pd_api *api = r->api;
    int healthy = connections >= 0;
    json_t *body = health_base(api, healthy ? "healthy" : "unhealthy");
    json_object_set_new(body, "dependencies",
                        json_pack("{s:{s:s}, s:{s:s, s:I}}", "redis", "status",
                                  healthy ? "connected" : "disconnected", "socketio", "status", "running",
                                  "connections", (json_int_t)(connections < 0 ? 0 : connections)));
    /* Not a health matter (Redis is fine): operators and tests see why the
     * room routes answer 503 for a while after Redis came back. */
    uint64_t hold_s = hold_left_s(api);
    if (hold_s)
        json_object_set_new(body, "rooms",
                            json_pack("{s:s, s:I}", "status", "restoring", "retry_after_s", (json_int_t)hold_s));
    else
        json_object_set_new(body, "rooms", json_pack("{s:s}", "status", "open"));
    json_object_set_new(body, "system", system_info());
    if (!healthy)
        json_object_set_new(body, "errors", json_pack("[s]", "Redis connection failed"));
    respond_json(api, r->conn, r->cors, healthy ? 200 : 503, body);
    req_done(r);
}

static void on_conn_total(long v, void *data)
{
    detailed_respond(data, v);
}

/* Cut a UTF-8 string to at most `max` bytes without splitting a character:
 * a cut inside one would make the log line's JSON packing fail and lose it. */
static void utf8_cut(char *s, size_t max)
{
    if (strlen(s) <= max)
        return;
    size_t n = max;
    /* s[n] is the first byte left out: back off over continuation bytes
     * (10xxxxxx) so the lead byte of that character goes too. */
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    s[n] = '\0';
}

static void cors_headers(pd_api *api, const pd_http_request *req, char out[CORS_HDR_MAX], int preflight)
{
    out[0] = '\0';
    const pd_slice *origin = pd_http_request_header(req, "Origin");
    int allowed = origin && origin->len <= 200 ? pd_api_origin_allowed(api->cfg.cors_origin, *origin) : 0;
    if (!allowed)
        return;
    /* Credentials only for origins the operator named. "*" lets every site
     * read the answers, so it gets the plain wildcard without credentials:
     * echoing any origin with credentials would hand every site whatever a
     * cookie or HTTP auth in front of the API ever unlocks. Our routes need
     * no credentials either way. */
    int n = allowed == PD_ORIGIN_NAMED
                ? snprintf(out, CORS_HDR_MAX,
                           "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n"
                           "Vary: Origin\r\n",
                           (int)origin->len, origin->base)
                : snprintf(out, CORS_HDR_MAX, "Access-Control-Allow-Origin: *\r\n");
    if (preflight && n > 0 && n < CORS_HDR_MAX)
        snprintf(out + n, (size_t)(CORS_HDR_MAX - n),
                 "Access-Control-Allow-Methods: GET,HEAD,POST,OPTIONS\r\n"
                 "Access-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 600\r\n");
}

/* ---- route handlers ------------------------------------------------------- */

/* One handler per route; each answers exactly once (now, or when Redis has
 * answered through an api_req). `cors` holds the response's CORS lines. */
typedef void (*route_fn)(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors);

/* A Redis-backed request has been started (rc) with r, or could not be. */
static void route_started(pd_api *api, pd_http_conn *conn, const char *cors, api_req *r, int rc)
{
    if (r && rc == PD_OK)
        return;
    if (r)
        req_done(r);
    respond_unavailable(api, conn, cors);
}

/* Answer 400 with `err` and let the request body go. */
static void route_refuse(pd_api *api, pd_http_conn *conn, const char *cors, json_t *body, const char *err)
{
    respond_error(api, conn, cors, 400, err);
    json_decref(body);
}

/* The request body as a JSON object, or NULL after answering 400. */
static json_t *route_body(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    const char *err = NULL;
    json_t *body = pd_api_parse_body(req->body, &err);
    if (!body)
        respond_error(api, conn, cors, 400, err);
    return body;
}

static void route_not_found(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    (void)req;
    respond_error(api, conn, cors, 404, "Not found");
}

static void route_bad_method(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    (void)req;
    respond_error(api, conn, cors, 405, "Method not allowed");
}

static void route_preflight(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    (void)api;
    (void)req;
    pd_http_respond(conn, 204, NULL, cors, NULL, 0, 0);
}

static void route_health(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    (void)req;
    respond_json(api, conn, cors, 200, health_base(api, "healthy"));
}

static void route_health_detailed(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    (void)req;
    api_req *r = req_new(api, conn, cors);
    if (!r) {
        respond_unavailable(api, conn, cors);
        return;
    }
    /* On a Redis Cluster the count's one slot answering says nothing of the
     * other masters: healthy also needs every master linked (pd_rcluster.h). */
    if ((pd_redis_is_cluster(api->redis) && !pd_redis_ready(api->redis)) ||
        pd_cluster_conn_total(api->redis, on_conn_total, r) != PD_OK)
        detailed_respond(r, -1);
}

static void route_metrics(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    (void)req;
    pd_metric_set(api->m_redis_up, NULL, pd_redis_ready(api->redis) ? 1 : 0);
    pd_metric_set(api->m_inflight, NULL, (double)api->inflight);
    pd_metric_set(api->m_master_changes, NULL, (double)pd_redis_master_changes(api->redis));
    pd_metric_set(api->m_held, NULL, hold_left_s(api) ? 1 : 0);
    pd_metric_set(api->m_pool_ids, NULL, api->cfg.pool ? (double)pd_pool_size(api->cfg.pool) : 0);
    pd_metric_set(api->m_pool_hits, NULL, api->cfg.pool ? (double)pd_pool_hits(api->cfg.pool) : 0);
    if (api->cfg.claims) {
        pd_claimq_stats st;
        pd_claimq_get_stats(api->cfg.claims, &st);
        pd_metric_set(api->m_claims_pending, NULL, (double)st.pending);
        pd_metric_set(api->m_claims, "claimed", (double)st.claimed);
        pd_metric_set(api->m_claims, "created", (double)st.created);
        pd_metric_set(api->m_claims, "taken", (double)st.taken);
        pd_metric_set(api->m_claims, "lost", (double)st.lost);
    }
    size_t len = 0;
    char *text = pd_metrics_render(api->metrics, &len);
    if (!text) {
        respond_error(api, conn, cors, 500, "Internal server error");
        return;
    }
    pd_http_respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", cors, text, len, 0);
    free(text);
}

static void route_ice_servers(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    (void)req;
    json_t *body = pd_turn_ice_servers(api->turn, pd_now_ms() / 1000);
    if (!body) {
        respond_error(api, conn, cors, 500, "Internal server error");
        return;
    }
    char extra[CORS_HDR_MAX + 64];
    snprintf(extra, sizeof(extra), "%sCache-Control: no-store\r\n", cors);
    respond_json(api, conn, extra, 200, body);
}

/* A pooled id for a get_room: answered at once, and its claim (taking
 * the room out of reserve) goes with the others of this loop turn. A join
 * that reaches Redis before the claim finds the room still reserved, and
 * the signal worker asks again for a moment. */
static void answer_pooled(pd_api *api, pd_http_conn *conn, const char *cors, const char *id)
{
    respond_json(api, conn, cors, 200, json_pack("{s:s}", "roomId", id));
}

/* Claims before a refill's reservation, on the one connection: after
 * Redis lost its data, a reservation that ran first could take one of the
 * ids already answered. */
static void pool_refill(pd_api *api)
{
    if (pd_pool_refill_due(api->cfg.pool)) {
        pd_claimq_flush_now(api->cfg.claims);
        pd_pool_refill(api->cfg.pool);
    }
}

/* A get_room through its own Redis call (GET_FREE_LUA). The claims of ids
 * already answered run first: after Redis lost its data, the search could
 * otherwise take one of them. */
static int get_room_from_redis(pd_api *api, api_req *r)
{
    pd_claimq_flush_now(api->cfg.claims);
    if (pd_room_get_free(api->redis, on_get_room, r) == PD_OK)
        return PD_OK;
    respond_unavailable(api, r->conn, r->cors);
    req_done(r);
    return PD_ERR;
}

static int pool_open(const pd_api *api)
{
    return api->cfg.pool && api->cfg.claims && !pd_pool_closed(api->cfg.pool) && pd_redis_ready(api->redis);
}

static api_req *wait_pop(pd_api *api)
{
    api_req *r = api->wait_head;
    api->wait_head = r->next;
    if (!api->wait_head)
        api->wait_tail = NULL;
    api->waiting--;
    return r;
}

/* The pool has had an answer, been reset or closed (pd_pool_on_ready):
 * the get_rooms waiting for ids take those ready, in turn. Those for whom
 * no id is on its way any more go to Redis one by one; with Redis away or
 * the pool closing, 503. */
static void on_pool_ready(void *data)
{
    pd_api *api = data;
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    if (!api->wait_head)
        return; /* refills only for get_rooms: a reset at link-up comes during the restore hold */
    int open = pool_open(api);
    while (api->wait_head && open && pd_pool_size(api->cfg.pool) && pd_claimq_has_room(api->cfg.claims)) {
        if (!pd_pool_take(api->cfg.pool, id))
            break; /* the rest were too old */
        api_req *r = wait_pop(api);
        if (pd_claimq_push(api->cfg.claims, id) == PD_OK) {
            pd_metric_add(api->m_pool_waits, "pooled", 1);
            answer_pooled(api, r->conn, r->cors, id);
        } else {
            pd_metric_add(api->m_pool_waits, "unavailable", 1);
            respond_unavailable(api, r->conn, r->cors);
        }
        req_done(r);
    }
    if (open)
        pool_refill(api);
    size_t coming = open && pd_claimq_has_room(api->cfg.claims) ? pd_pool_coming(api->cfg.pool) : 0;
    while (api->waiting > coming) {
        api_req *r = wait_pop(api);
        int started = 0;
        if (open) {
            started = get_room_from_redis(api, r) == PD_OK;
        } else {
            respond_unavailable(api, r->conn, r->cors);
            req_done(r);
        }
        pd_metric_add(api->m_pool_waits, started ? "redis" : "unavailable", 1);
    }
}

static void route_get_room(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    (void)req;
    /* From the pool when it has an id (the room routes are open here:
     * pd_api_handle checked the hold first). */
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    int pooled = 0, wait = 0;
    if (pool_open(api) && pd_claimq_has_room(api->cfg.claims)) {
        pd_pool_demand(api->cfg.pool);
        /* Behind get_rooms already waiting, none may jump the queue. */
        if (!api->wait_head)
            pooled = pd_pool_take(api->cfg.pool, id) && pd_claimq_push(api->cfg.claims, id) == PD_OK;
        pool_refill(api);
        /* None ready but some on their way, not all promised to earlier
         * get_rooms: wait for them. Their one reservation comes back no
         * later than a call of this get_room's own sent now (one
         * connection, in order), and one script call carries up to 64
         * ids: a pool that ran dry under load does not turn each get_room
         * into a script of its own just when Redis is behind. */
        wait = !pooled && pd_pool_coming(api->cfg.pool) > api->waiting;
    }
    if (pooled) {
        answer_pooled(api, conn, cors, id);
        return;
    }
    api_req *r = req_new(api, conn, cors);
    if (!r) {
        respond_unavailable(api, conn, cors);
        return;
    }
    if (wait) {
        if (api->wait_tail)
            api->wait_tail->next = r;
        else
            api->wait_head = r;
        api->wait_tail = r;
        api->waiting++;
        return; /* on_pool_ready answers it */
    }
    get_room_from_redis(api, r);
}

/* create_room and check_room: one roomId, one Redis call. */
static void route_room_id(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors,
                          int create)
{
    json_t *body = route_body(api, conn, req, cors);
    if (!body)
        return;
    const char *room = NULL, *err = NULL;
    if (pd_api_get_id(body, "roomId", "Room ID is required", &room, &err) != PD_OK) {
        route_refuse(api, conn, cors, body, err);
        return;
    }
    api_req *r = req_new(api, conn, cors);
    int rc = PD_ERR;
    if (r) {
        if (create)
            pd_claimq_flush_now(api->cfg.claims); /* as before a per-request get_room */
        snprintf(r->room, sizeof(r->room), "%s", room);
        rc = create ? pd_room_create(api->redis, pd_slice_cstr(room), on_create_room, r)
                    : pd_room_exists(api->redis, pd_slice_cstr(room), on_check_room, r);
    }
    json_decref(body);
    route_started(api, conn, cors, r, rc);
}

static void route_create_room(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    route_room_id(api, conn, req, cors, 1);
}

static void route_check_room(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    route_room_id(api, conn, req, cors, 0);
}

static void route_leave_room(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    json_t *body = route_body(api, conn, req, cors);
    if (!body)
        return;
    const char *msg = "Room ID and Socket ID are required";
    const char *room = NULL, *sid = NULL, *err = NULL;
    if (pd_api_get_id(body, "roomId", msg, &room, &err) != PD_OK ||
        pd_api_get_id(body, "socketId", msg, &sid, &err) != PD_OK) {
        route_refuse(api, conn, cors, body, err);
        return;
    }
    api_req *r = req_new(api, conn, cors);
    int rc = PD_ERR;
    if (r) {
        snprintf(r->room, sizeof(r->room), "%s", room);
        snprintf(r->sid, sizeof(r->sid), "%s", sid);
        rc = pd_room_leave(api->redis, pd_slice_cstr(sid), pd_slice_cstr(room), NULL, on_leave_room, r);
    }
    json_decref(body);
    route_started(api, conn, cors, r, rc);
}

static void route_set_track(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    json_t *body = route_body(api, conn, req, cors);
    if (!body)
        return;
    json_t *ref = json_object_get(body, "ref");
    char date[11];
    const char *err = NULL;
    if (!json_is_string(ref) || json_string_length(ref) == 0 || json_string_length(ref) > 128 ||
        strlen(json_string_value(ref)) != json_string_length(ref))
        err = "ref must be a string of 1-128 characters";
    else if (pd_api_track_date(json_object_get(body, "timestamp"), pd_now_ms(), date) != PD_OK)
        err = "Invalid timestamp";
    if (err) {
        route_refuse(api, conn, cors, body, err);
        return;
    }
    api_req *r = req_new(api, conn, cors);
    int rc = r ? pd_room_track(api->redis, pd_slice_cstr(date), pd_slice_cstr(json_string_value(ref)), on_track, r)
               : PD_ERR;
    json_decref(body);
    route_started(api, conn, cors, r, rc);
}

static void route_logs_debug(pd_api *api, pd_http_conn *conn, const pd_http_request *req, const char *cors)
{
    json_t *body = route_body(api, conn, req, cors);
    if (!body)
        return;
    json_t *msg = json_object_get(body, "message");
    json_t *ts = json_object_get(body, "timestamp");
    char *text = json_is_string(msg) ? strdup(json_string_value(msg))
                                     : (msg ? json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY) : NULL);
    if (!text) {
        route_refuse(api, conn, cors, body, "message is required");
        return;
    }
    utf8_cut(text, api->cfg.max_log_bytes);
    char *tstext = ts ? json_dumps(ts, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (tstext)
        utf8_cut(tstext, 64);
    pd_log(PD_LOG_INFO, "client log", "{s:s, s:s, s:s}", "client_message", text, "client_timestamp",
           tstext ? tstext : "", "peer", req->peer_ip);
    free(tstext);
    free(text);
    json_decref(body);
    respond_json(api, conn, cors, 200, json_pack("{s:b}", "success", 1));
}

/* ---- dispatch -------------------------------------------------------------- */

/* Which per-address bucket a route draws from before its handler runs. */
typedef enum route_limit { LIMIT_NONE = 0, LIMIT_ROOM, LIMIT_LOG, LIMIT_ICE, LIMIT_DETAILED } route_limit;

/* One row per route, indexed by pd_api_route: the metric label, the rate
 * limit and the handler, so adding a route is one line here (plus its path
 * in ROUTES). */
typedef struct route_info {
    const char *metric; /* label of privydrop_roomapi_requests_total */
    route_limit limit;  /* bucket checked first */
    route_fn fn;        /* the handler */
} route_info;

static const route_info ROUTE_INFO[] = {
    [PD_ROUTE_NOT_FOUND] = {"not_found", LIMIT_NONE, route_not_found},
    [PD_ROUTE_BAD_METHOD] = {"bad_method", LIMIT_NONE, route_bad_method},
    [PD_ROUTE_PREFLIGHT] = {"preflight", LIMIT_NONE, route_preflight},
    [PD_ROUTE_GET_ROOM] = {"get_room", LIMIT_ROOM, route_get_room},
    [PD_ROUTE_CREATE_ROOM] = {"create_room", LIMIT_ROOM, route_create_room},
    [PD_ROUTE_CHECK_ROOM] = {"check_room", LIMIT_ROOM, route_check_room},
    [PD_ROUTE_LEAVE_ROOM] = {"leave_room", LIMIT_ROOM, route_leave_room},
    [PD_ROUTE_SET_TRACK] = {"set_track", LIMIT_LOG, route_set_track},
    [PD_ROUTE_LOGS_DEBUG] = {"logs_debug", LIMIT_LOG, route_logs_debug},
    [PD_ROUTE_HEALTH] = {"health", LIMIT_NONE, route_health},
    [PD_ROUTE_HEALTH_DETAILED] = {"health_detailed", LIMIT_DETAILED, route_health_detailed},
    [PD_ROUTE_ICE_SERVERS] = {"ice_servers", LIMIT_ICE, route_ice_servers},
    [PD_ROUTE_METRICS] = {"metrics", LIMIT_NONE, route_metrics},
};
_Static_assert(PD_ARRAY_LEN(ROUTE_INFO) == PD_ROUTE_COUNT, "ROUTE_INFO needs one row per pd_api_route");

void pd_api_handle(pd_http_conn *conn, const pd_http_request *req, void *data)
{
    pd_api *api = data;
    pd_api_route route = pd_api_route_match(req->method, req->path);
    const route_info *ri = &ROUTE_INFO[route];
    char cors[CORS_HDR_MAX];
    cors_headers(api, req, cors, route == PD_ROUTE_PREFLIGHT);
    pd_metric_add(api->m_requests, ri->metric, 1);

    uint64_t hold_s = ri->limit == LIMIT_ROOM ? hold_left_s(api) : 0;
    if (hold_s) {
        /* The same answer as Redis being down, which to a client it is:
         * the rooms are not all there yet. Before the rate limit, so the
         * client's allowance is left for when they are, and it hears one
         * Retry-After. */
        char extra[CORS_HDR_MAX + 48]; /* room for any 64-bit number */
        snprintf(extra, sizeof(extra), "%sRetry-After: %llu\r\n", cors, (unsigned long long)hold_s);
        respond_unavailable(api, conn, extra);
        return;
    }

    pd_ratelimit *const limits[] = {[LIMIT_NONE] = NULL, [LIMIT_ROOM] = api->room_limit,
                                    [LIMIT_LOG] = api->log_limit, [LIMIT_ICE] = api->ice_limit,
                                    [LIMIT_DETAILED] = api->detailed_limit};
    pd_ratelimit *limit = limits[ri->limit];
    if (limit) {
        char ip[INET6_ADDRSTRLEN];
        pd_client_ip(api->cfg.trusted, req->peer_ip, pd_http_request_header(req, "X-Forwarded-For"), ip);
        if (!pd_ratelimit_take(limit, pd_slice_cstr(ip), pd_mono_ms())) {
            char extra[CORS_HDR_MAX + 32];
            snprintf(extra, sizeof(extra), "%sRetry-After: 1\r\n", cors);
            respond_error(api, conn, extra, 429, "Too many requests");
            return;
        }
    }
    ri->fn(api, conn, req, cors);
}

void pd_api_on_redis_state(pd_api *api, int ready)
{
    /* The reserved ids may not be in the Redis that answers next (one
     * restarted empty, a replica promoted without them). */
    if (api->cfg.pool)
        pd_pool_reset(api->cfg.pool);
    if (!ready)
        return;
    if (api->redis_was_ready && api->cfg.restore_hold_ms)
        api->hold_until_ms = pd_mono_ms() + api->cfg.restore_hold_ms;
    api->redis_was_ready = 1;
}

/* ---- life cycle ---------------------------------------------------------- */

pd_api *pd_api_create(const pd_api_config *cfg, pd_redis *redis, const pd_turn *turn, pd_metrics *metrics)
{
    pd_api *api = calloc(1, sizeof(*api));
    if (!api)
        return NULL;
    api->cfg = *cfg;
    if (!api->cfg.max_log_bytes)
        api->cfg.max_log_bytes = 2048;
    api->redis = redis;
    api->turn = turn;
    api->started_ms = pd_mono_ms();
    api->m_requests = pd_metrics_add(metrics, PD_METRIC_COUNTER, "privydrop_roomapi_requests_total",
                                     "HTTP requests, by route.", "route");
    api->m_errors = pd_metrics_add(metrics, PD_METRIC_COUNTER, "privydrop_roomapi_errors_total",
                                   "HTTP error answers, by class.", "class");
    api->m_redis_up = pd_metrics_add(metrics, PD_METRIC_GAUGE, "privydrop_roomapi_redis_up",
                                     "1 while Redis is connected.", NULL);
    api->m_inflight = pd_metrics_add(metrics, PD_METRIC_GAUGE, "privydrop_roomapi_requests_inflight",
                                     "Requests waiting for Redis.", NULL);
    api->m_master_changes = pd_metrics_add(metrics, PD_METRIC_COUNTER, "privydrop_roomapi_redis_master_changes_total",
                                           "Redis master changes followed (Sentinel; Cluster: maps moving slots).", NULL);
    api->m_held = pd_metrics_add(metrics, PD_METRIC_GAUGE, "privydrop_roomapi_rooms_held",
                                 "1 while the room routes answer 503 after Redis came back (PD_RESTORE_HOLD_MS).", NULL);
    api->m_pool_ids = pd_metrics_add(metrics, PD_METRIC_GAUGE, "privydrop_roomapi_pool_ids",
                                     "Room ids reserved ahead of get_room and ready to hand out.", NULL);
    api->m_pool_hits = pd_metrics_add(metrics, PD_METRIC_COUNTER, "privydrop_roomapi_pool_hits_total",
                                      "get_room requests answered with a reserved id from the pool.", NULL);
    api->m_claims = pd_metrics_add(metrics, PD_METRIC_COUNTER, "privydrop_roomapi_pool_claims_total",
                                   "Pooled ids' claims by result: claimed; created (Redis had lost the reservation); "
                                   "taken (the room was somebody's, or the claim was sent again); lost (never reached Redis).",
                                   "result");
    api->m_claims_pending = pd_metrics_add(metrics, PD_METRIC_GAUGE, "privydrop_roomapi_pool_claims_pending",
                                           "Pooled ids handed out whose claim Redis has not answered yet.", NULL);
    api->m_pool_waits = pd_metrics_add(metrics, PD_METRIC_COUNTER, "privydrop_roomapi_pool_waits_total",
                                       "get_room requests that found the pool empty and waited for the ids on their way, "
                                       "by how they were answered: pooled; redis (no id came for them: a call of their own); "
                                       "unavailable (Redis went away or the room API was stopping).",
                                       "result");
    api->metrics = metrics;
    api->room_limit = pd_ratelimit_create(cfg->room_rate > 0 ? cfg->room_rate : 20,
                                          cfg->room_burst > 0 ? cfg->room_burst : 100, 100000);
    api->log_limit = pd_ratelimit_create(cfg->log_rate > 0 ? cfg->log_rate : 2,
                                         cfg->log_burst > 0 ? cfg->log_burst : 20, 100000);
    /* A page needs one set of TURN credentials per peer connection; minting
     * them faster than that is no browser's doing. */
    api->ice_limit = pd_ratelimit_create(cfg->ice_rate > 0 ? cfg->ice_rate : 1,
                                         cfg->ice_burst > 0 ? cfg->ice_burst : 10, 100000);
    /* /health/detailed runs a Lua script over every worker's count: enough
     * for probes and dashboards, not a way to keep Redis busy. */
    api->detailed_limit = pd_ratelimit_create(10, 100, 100000);
    if (!api->cfg.max_inflight)
        api->cfg.max_inflight = 4096;
    if (!api->room_limit || !api->log_limit || !api->ice_limit || !api->detailed_limit) {
        pd_api_free(api);
        return NULL;
    }
    if (api->cfg.pool)
        pd_pool_on_ready(api->cfg.pool, on_pool_ready, api);
    return api;
}

void pd_api_free(pd_api *api)
{
    if (!api)
        return;
    pd_ratelimit_free(api->room_limit);
    pd_ratelimit_free(api->log_limit);
    pd_ratelimit_free(api->ice_limit);
    pd_ratelimit_free(api->detailed_limit);
    free(api);
}

size_t pd_api_inflight(const pd_api *api)
{
    return api->inflight;
}
