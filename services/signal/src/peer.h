/* peer.h — direct TCP links between workers for forwarded long-polling
 * requests and their answers (docs/architecture.md §Long-polling across
 * workers, docs/wire-protocol.md §Links between workers).
 *
 * A polling request that reaches a worker other than its session's owner
 * is forwarded (fwd.h). Through Redis that costs two extra hops, each
 * waiting its turn on Redis; so each worker also listens on a port of its
 * own (PD_PEER_PORT, default any free one) and announces it in Redis as
 * pd:peer:<tag> = "<ip> <port> <token>" (expiring unless renewed every few
 * seconds, deleted when the worker retires). A forwarding worker connects
 * to the owner, proves it read that record (the token), and from the
 * owner's acknowledgement on sends requests (Q) over the link; the owner
 * sends its answers (A) back on the same link. Anything that is not up —
 * no record yet, a link being set up, one that failed, a queue too long —
 * leaves the message on Redis as before, so links only ever make a
 * forwarded request faster, never possible or impossible. Signals and
 * tunnelled WebSocket packets always go through Redis.
 *
 * Frames: a 4-byte big-endian length, then that many bytes:
 *     H <token> <tag>    forwarder → owner, first frame (token 32 chars)
 *     K <tag>            owner → forwarder: hello accepted (the owner's tag)
 *     Q ...              forwarder → owner, a request as on Redis (fwd.h)
 *     A ...              owner → forwarder, an answer as on Redis (fwd.h)
 * Anything else, a frame longer than a bus message, a hello that is late
 * (2 s), wrong or too long, or a request whose sender tag is not the
 * hello's closes the link.
 * One libuv loop per process: nothing here is locked. */
#ifndef PD_SIGNAL_PEER_H
#define PD_SIGNAL_PEER_H

#include <sys/socket.h>

#include "worker.h"

#define PD_PEER_TOKEN_LEN 32

typedef struct pd_peer pd_peer;

/* Listen (unless w->cfg.peer_links is 0: then nothing, and every send
 * below says PD_ERR) and start the timer that announces this worker and
 * watches its links. PD_ERR if the port cannot be bound. Needs w->eio_tag
 * and w->redis. */
int pd_peer_init(pd_worker *w);
/* Close every link and the listener; free. */
void pd_peer_close(pd_worker *w);

/* The worker is retiring: delete its record (no renewal follows). */
void pd_peer_retire(pd_worker *w);

/* Send a request (head + body, one message as fwd.h writes for Redis) to
 * the owner `owner` (a tag) over its link. PD_OK: on its way. PD_ERR: no
 * link is up (setting one up may have started) — send it through Redis. */
int pd_peer_send_query(pd_worker *w, pd_slice owner, const char *head, size_t hlen, const char *body,
                       size_t blen);
/* Send an answer to forwarder `to` over the link it opened to us. PD_ERR:
 * none is up or its queue is full — send it through Redis. */
int pd_peer_send_answer(pd_worker *w, pd_slice to, const char *head, size_t hlen, const char *body,
                        size_t blen);

/* A record's parts: "<ip> <port> <token>" with an IPv4 or IPv6 literal,
 * a port 1-65535 and a token of PD_PEER_TOKEN_LEN letters and digits,
 * nothing more. PD_ERR if it is anything else (it comes from Redis, but a
 * worker of another version, or anyone with Redis access, wrote it). */
int pd_peer_parse_record(pd_slice rec, struct sockaddr_storage *addr, char token[PD_PEER_TOKEN_LEN + 1]);
/* The first Redis address configured (the first of REDIS_CLUSTER_NODES or
 * REDIS_SENTINELS, else REDIS_HOST/REDIS_PORT), host without brackets:
 * the address this worker reaches Redis from is the one it announces by
 * default. PD_ERR if it does not fit or does not parse. */
int pd_peer_redis_host(const pd_redis_options *o, char *host, size_t hsize, char *port, size_t psize);

/* The address other workers reach this one at ("ip port"), empty until
 * known. For logs and tests. */
const char *pd_peer_advertised(const pd_worker *w);

#endif
