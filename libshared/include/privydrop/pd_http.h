/* pd_http.h — HTTP/1.1 server plumbing on libuv + llhttp, shared by the
 * signal workers and the room API.
 *
 * One pd_http_server owns a listening socket (SO_REUSEPORT, so several
 * processes may share a port) and its connections. Each complete request is
 * handed to the handler as a pd_http_request; the handler answers it, now or
 * later (after a Redis reply), with exactly one pd_http_respond() — or takes
 * the TCP stream away with pd_http_conn_detach() (WebSocket upgrade).
 *
 * Limits (all bounded, all from pd_http_limits): header bytes and count (431),
 * body bytes (413), time to receive a whole request (408 then close), idle
 * keep-alive time (close), a keep-alive connection's age (Connection: close
 * on its next answer), open connections in all (503 and close at accept) and
 * per client host (429 and close at accept). llhttp's lenient flags stay off,
 * and any header line that starts with SP or HTAB (obs-fold) is refused, so
 * smuggling shapes (Content-Length with Transfer-Encoding, bare LF, folded
 * headers, ...) are parse errors: 400 and close.
 *
 * A client that shuts its sending side after a request (half-close) still
 * gets its answer; the connection closes after it.
 *
 * Requests on one connection are answered in order: while one is pending the
 * parser is paused and later pipelined bytes wait.
 */
#ifndef PD_HTTP_H
#define PD_HTTP_H

#include <netinet/in.h>
#include <uv.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_netaddr.h"

#define PD_HTTP_MAX_HEADERS_CAP 64

typedef struct pd_http_server pd_http_server;
typedef struct pd_http_conn pd_http_conn;

typedef enum pd_http_method {
    PD_HTTP_OTHER = 0,
    PD_HTTP_GET,
    PD_HTTP_HEAD,
    PD_HTTP_POST,
    PD_HTTP_OPTIONS,
    PD_HTTP_PUT,
    PD_HTTP_DELETE,
} pd_http_method;

typedef struct pd_http_header {
    pd_slice name;  /* as received */
    pd_slice value; /* leading/trailing whitespace trimmed */
} pd_http_header;

/* A parsed request. All slices point into memory owned by the connection and
 * stay valid until pd_http_respond() or pd_http_conn_detach() is called for
 * this request. */
typedef struct pd_http_request {
    pd_http_method method;
    pd_slice target;             /* raw request-target, e.g. "/socket.io/?EIO=4" */
    pd_slice path;               /* target up to '?' */
    pd_slice query;              /* after '?', empty if none */
    pd_http_header headers[PD_HTTP_MAX_HEADERS_CAP];
    size_t nheaders;
    pd_slice body;               /* complete body (empty if none) */
    int keep_alive;              /* the connection may stay open after this request */
    int upgrade;                 /* client asked for an Upgrade */
    char peer_ip[INET6_ADDRSTRLEN]; /* TCP peer address, textual */
} pd_http_request;

/* Case-insensitive header lookup; first match, or NULL. */
const pd_slice *pd_http_request_header(const pd_http_request *req, const char *name);

/* Value of query parameter `name` (not percent-decoded); PD_OK if present. */
int pd_http_query_param(const pd_http_request *req, const char *name, pd_slice *out);

typedef struct pd_http_limits {
    size_t max_header_bytes;   /* request line + all headers; default 8192 */
    size_t max_headers;        /* header count; default 32, at most PD_HTTP_MAX_HEADERS_CAP */
    size_t max_body_bytes;     /* default 16384 */
    uint64_t request_timeout_ms; /* first byte to complete request; default 10000 */
    uint64_t idle_timeout_ms;    /* keep-alive idle; default 30000 */
    size_t max_connections;      /* per server; default 20000; beyond → 503 and close */
    size_t max_conns_per_ip;     /* open, not detached, per client host (pd_addr_key of
                                    the TCP peer); default 32; 0 = no cap; beyond → 429 */
    const pd_cidr_list *trusted; /* TCP peers exempt from max_conns_per_ip (proxies carry
                                    many clients); borrowed, must outlive the server; NULL = none */
    uint64_t max_conn_age_ms;    /* keep-alive ends with the first answer after this; default
                                    60000; 0 = no limit */
} pd_http_limits;

/* Fill `l` with the defaults above. */
void pd_http_limits_default(pd_http_limits *l);

/* Called once per complete request. `conn` stays valid until the handler's
 * matching pd_http_respond()/pd_http_conn_detach(), even if the peer goes away
 * meanwhile (the response is then dropped). */
typedef void (*pd_http_handler_fn)(pd_http_conn *conn, const pd_http_request *req, void *data);

/* Create a server on `loop`, bind and listen on addr:port with SO_REUSEPORT.
 * Returns NULL and sets *err (static string) on failure. `data` is passed to
 * the handler. The server does not own the loop. */
pd_http_server *pd_http_server_create(uv_loop_t *loop, const char *addr, int port,
                                      const pd_http_limits *limits,
                                      pd_http_handler_fn handler, void *data,
                                      const char **err);

/* Stop accepting new connections (SIGTERM drain); existing ones continue.
 * From then on every response carries Connection: close, so keep-alive
 * clients move to another replica after their current request. */
void pd_http_server_stop_accepting(pd_http_server *srv);

/* Port the listener is bound to (useful after asking for port 0), or -1. */
int pd_http_server_port(const pd_http_server *srv);

/* Number of open (not detached) connections. */
size_t pd_http_server_conn_count(const pd_http_server *srv);

/* Close the listener and every connection, then free the server once libuv
 * has finished closing handles (run the loop afterwards). Pending requests are
 * answered by nobody: their conns are freed when their handler responds. */
void pd_http_server_free(pd_http_server *srv);

/* Answer the current request. `extra_headers` is NULL or a block of complete
 * "Name: value\r\n" lines. Adds Content-Length, Content-Type (if non-NULL),
 * Connection, Date-less. `close_after` forces Connection: close. Copies
 * body; the caller keeps ownership of its buffers. */
void pd_http_respond(pd_http_conn *conn, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t body_len,
                     int close_after);

/* The pending request of `conn` will wait long (a long-poll) and is bounded
 * by the caller's own per-client cap: until it is answered, the connection
 * does not count against max_conns_per_ip, so a client behind one address
 * can hold as many waiting polls as the caller allows it sessions. */
void pd_http_conn_release_slot(pd_http_conn *conn);

/* Convenience: JSON body (already serialized) with Content-Type application/json. */
void pd_http_respond_json(pd_http_conn *conn, int status, const char *extra_headers,
                          const char *json, int close_after);

/* The peer of this connection, as text. */
const char *pd_http_conn_peer_ip(const pd_http_conn *conn);

/* Take the TCP stream away from the HTTP layer (after a 101 was decided).
 * Writes `head` (e.g. the 101 response; may be NULL) first, in order. Reading
 * is stopped. Ownership of the returned heap-allocated uv_tcp_t passes to the
 * caller, who must uv_close() it and free() it in the close callback; its
 * `data` field is the caller's. Bytes already read past the request are
 * copied to a malloc'd buffer in *leftover (caller frees; NULL if none).
 * The pd_http_conn is gone after this call. Returns NULL (and frees the
 * conn) if the peer already went away or no request is pending. */
uv_tcp_t *pd_http_conn_detach(pd_http_conn *conn, const char *head, size_t head_len,
                              char **leftover, size_t *leftover_len);

/* Whether `origin` (an Origin header value) is allowed by `list`, a
 * comma-separated CORS_ORIGIN setting where "*" matches any origin:
 * PD_ORIGIN_NAMED if the list names it, PD_ORIGIN_ANY if only "*" lets it
 * in, 0 if not allowed (or `list` is NULL). Both non-zero values are true. */
#define PD_ORIGIN_ANY 1
#define PD_ORIGIN_NAMED 2
int pd_http_origin_listed(const char *list, pd_slice origin);

/* Human text for a status code ("Not Found"). */
const char *pd_http_status_text(int status);

#endif
