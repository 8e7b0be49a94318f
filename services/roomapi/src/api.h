/* api.h — the room API's routes (docs/wire-protocol.md §Room API) and the
 * pure helpers they use, kept apart from the server so they can be tested
 * without sockets. */
#ifndef PD_ROOMAPI_API_H
#define PD_ROOMAPI_API_H

#include <jansson.h>
#include <uv.h>

#include "privydrop/pd_http.h"
#include "privydrop/pd_metrics.h"
#include "privydrop/pd_netaddr.h"
#include "privydrop/pd_redis.h"
#include "privydrop/pd_turn.h"
#include "claim.h"
#include "pool.h"

typedef enum pd_api_route {
    PD_ROUTE_NOT_FOUND = 0,
    PD_ROUTE_BAD_METHOD,
    PD_ROUTE_PREFLIGHT,
    PD_ROUTE_GET_ROOM,
    PD_ROUTE_CREATE_ROOM,
    PD_ROUTE_CHECK_ROOM,
    PD_ROUTE_LEAVE_ROOM,
    PD_ROUTE_SET_TRACK,
    PD_ROUTE_LOGS_DEBUG,
    PD_ROUTE_HEALTH,
    PD_ROUTE_HEALTH_DETAILED,
    PD_ROUTE_ICE_SERVERS,
    PD_ROUTE_METRICS,
    PD_ROUTE_COUNT /* number of routes, not a route */
} pd_api_route;

/* Map method + path to a route. Known path with another method →
 * PD_ROUTE_BAD_METHOD; OPTIONS on any path → PD_ROUTE_PREFLIGHT. */
pd_api_route pd_api_route_match(pd_http_method method, pd_slice path);

/* Parse a request body as a JSON object (an empty body counts as {}).
 * Returns a new reference, or NULL with *err set to the 400 message. */
json_t *pd_api_parse_body(pd_slice body, const char **err);

/* Read a required room-style id field. PD_OK with *out borrowed from obj;
 * else PD_ERR and *err is the 400 message (`required_msg` when absent). */
int pd_api_get_id(json_t *obj, const char *field, const char *required_msg, const char **out,
                  const char **err);

/* The UTC date "YYYY-MM-DD" of a set_track timestamp: a number of ms since
 * the epoch, or a string starting with such a date; a missing timestamp
 * means now. PD_ERR for anything else. */
int pd_api_track_date(json_t *timestamp, uint64_t now_ms, char out[11]);

/* Whether `origin` is allowed by CORS_ORIGIN (comma list, "*" = any):
 * PD_ORIGIN_NAMED, PD_ORIGIN_ANY or 0, as pd_http_origin_listed(). */
int pd_api_origin_allowed(const char *list, pd_slice origin);

typedef struct pd_api_config {
    const char *cors_origin;   /* CORS_ORIGIN or NULL */
    const char *environment;   /* NODE_ENV */
    const char *instance_id;   /* envelope origin for the bus */
    size_t max_log_bytes;      /* logs_debug message cap */
    const pd_cidr_list *trusted; /* proxies whose X-Forwarded-For is believed (borrowed) */
    double room_rate, room_burst; /* per-address limit on the room routes */
    double log_rate, log_burst;   /* per-address limit on set_track and logs_debug */
    double ice_rate, ice_burst;   /* per-address limit on ice_servers */
    size_t max_inflight;          /* requests waiting for Redis, all together; 0 = 4096 */
    uint64_t restore_hold_ms;     /* room routes answer 503 this long after Redis returns; 0 = never */
    pd_pool *pool;                /* ids reserved ahead of get_room (borrowed); NULL = none */
    pd_claimq *claims;            /* their claims (borrowed); set with pool */
} pd_api_config;

typedef struct pd_api pd_api;

/* The routes over a Redis connection and TURN settings (both borrowed, must
 * outlive the api). */
pd_api *pd_api_create(const pd_api_config *cfg, pd_redis *redis, const pd_turn *turn,
                      pd_metrics *metrics);
void pd_api_free(pd_api *api);

/* pd_http handler; data is the pd_api. */
void pd_api_handle(pd_http_conn *conn, const pd_http_request *req, void *data);

/* The Redis link's readiness changed (the pd_redis state callback). Once
 * Redis is ready again after having been ready before, the room routes
 * answer 503 for cfg.restore_hold_ms: Redis may have come back empty, and
 * until the signal workers have written back the rooms their members are
 * in, an id handed out, created or reported free could be a live room's
 * (docs/architecture.md, "Rooms that outlive their TTL"). */
void pd_api_on_redis_state(pd_api *api, int ready);

/* Requests waiting for Redis. */
size_t pd_api_inflight(const pd_api *api);

#endif
