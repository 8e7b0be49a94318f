/* hub.h — the rooms of one worker: its sockets (as conn.h connections, of
 * whatever transport), their rooms, the Socket.IO events
 * (docs/wire-protocol.md §Events), the Redis room store and the pub/sub bus
 * between workers (docs/architecture.md §Bus). */
#ifndef PD_SIGNAL_HUB_H
#define PD_SIGNAL_HUB_H

#include "conn.h"
#include "worker.h"

typedef struct pd_hub pd_hub;

/* Uses w's loop, configuration, metrics and Redis (w->redis, which may be
 * down but must exist). NULL on allocation failure. */
pd_hub *pd_hub_create(pd_worker *w);
/* Stop its periodic duties (maint.h) and free. Connections still open lose
 * their record here: detach the handler from their transport first; Redis
 * callbacks still pending must have run (free w->redis first). */
void pd_hub_free(pd_hub *h);

/* What transports report to the hub: pass with the pd_hub as `ud`. The hub
 * keeps its per-socket record (room, joins in flight) in conn->data. */
extern const pd_conn_handler pd_hub_conn_handler;

/* Redis readiness and bus messages (wired to pd_redis). */
void pd_hub_on_redis_state(pd_hub *h, int ready);
void pd_hub_on_bus_message(pd_hub *h, pd_slice channel, pd_slice message);
/* A bus envelope ("PD1 ...") on this worker's own channel: a signal for
 * one of its sockets, naming its room (docs/architecture.md §Signals). */
void pd_hub_on_worker_message(pd_hub *h, pd_slice message);

size_t pd_hub_session_count(const pd_hub *h);
/* Open sockets from one client address on this worker. */
size_t pd_hub_ip_count(const pd_hub *h, const char *ip);
/* Close every session with 1001 (drain). */
void pd_hub_close_all(pd_hub *h);
/* A drain in steps: begin takes the list of open sockets (returns how many);
 * each step closes the listed sockets up to index `upto` (exclusive) that
 * are still open, with 1001 — a socket bound to a room only once its
 * re-join credit (pd_room_grant_rejoin) is in Redis. */
size_t pd_hub_drain_begin(pd_hub *h);
void pd_hub_drain_step(pd_hub *h, size_t upto);
/* Cleanups still waiting for Redis. */
size_t pd_hub_pending_cleanups(const pd_hub *h);

#endif
