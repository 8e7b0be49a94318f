/* test_hub.c — the hub through its transport seam (conn.h), without sockets:
 * a fake transport records what the hub asks of it (packets, closes), and a
 * real redis-server (started by the test) holds the rooms. Covers the relay
 * authorization (not in a room, bad target, other room) on both the fast
 * and the general path, the room broadcasts and who hears them, and a
 * disconnect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../../libshared/tests/redis_fixture.h"

#include "../src/hub.h"
#include "privydrop/pd_room.h"
#include "privydrop/pd_sio.h"


/* ---- the fake transport --------------------------------------------------- */

#define FAKE_MAX_SENT 32

typedef struct fake_conn {
    pd_conn conn;                    /* what the hub sees */
    void *hub;                       /* the handler's user data */
    char *sent[FAKE_MAX_SENT];       /* packets the hub queued, in order (owned) */
    int nsent;
    int closed;                      /* ops->close was called */
    uint16_t close_code;             /* with this code */
    int counted;                     /* ops->counted was called */
} fake_conn;

static fake_conn *fake_of(pd_conn *c)
{
    return (fake_conn *)((char *)c - offsetof(fake_conn, conn));
}

static void fake_send(pd_conn *c, const char *pkt, size_t len)
{
    fake_conn *f = fake_of(c);
    if (f->closed)
        return; /* as the transport promises: dropped on a closing connection */
    assert_true(f->nsent < FAKE_MAX_SENT);
    f->sent[f->nsent] = malloc(len + 1);
    assert_non_null(f->sent[f->nsent]);
    memcpy(f->sent[f->nsent], pkt, len);
    f->sent[f->nsent][len] = '\0';
    f->nsent++;
}

static void fake_close(pd_conn *c, uint16_t code, const char *reason)
{
    (void)reason;
    fake_conn *f = fake_of(c);
    if (f->closed)
        return;
    f->closed = 1;
    f->close_code = code;
    pd_hub_conn_handler.on_close(f->hub, c); /* from inside close, as session.c does */
}

static void fake_counted(pd_conn *c)
{
    fake_of(c)->counted = 1;
}

static const pd_conn_ops FAKE_OPS = {fake_send, fake_close, fake_counted};

static void fake_forget(fake_conn *f)
{
    for (int i = 0; i < f->nsent; i++)
        free(f->sent[i]);
    f->nsent = 0;
}

/* 1 if a packet containing every one of the (NULL-terminated) parts was sent. */
static int fake_got(const fake_conn *f, const char *part, ...)
{
    for (int i = 0; i < f->nsent; i++) {
        int all = strstr(f->sent[i], part) != NULL;
        va_list ap;
        va_start(ap, part);
        for (const char *p = va_arg(ap, const char *); p && all; p = va_arg(ap, const char *))
            all = strstr(f->sent[i], p) != NULL;
        va_end(ap);
        if (all)
            return 1;
    }
    return 0;
}

/* ---- fixture ------------------------------------------------------------------ */

typedef struct hub_fx {
    rfx_loop l;          /* the loop the hub and Redis run on */
    pd_worker *w;        /* a worker without HTTP or sessions */
    pd_hub *hub;         /* under test */
    redisContext *c;     /* inspection connection */
    fake_conn *conns[8]; /* opened by fx_open, closed at teardown */
    int nconns;
} hub_fx;

static void on_bus(pd_slice channel, pd_slice message, void *data)
{
    hub_fx *f = data;
    if (f->hub)
        pd_hub_on_bus_message(f->hub, channel, message);
}

static int fx_setup(void **state)
{
    hub_fx *f = calloc(1, sizeof *f);
    pd_worker *w = calloc(1, sizeof *w);
    if (!f || !w)
        return -1;
    f->w = w;
    rfx_loop_init(&f->l);
    w->loop = &f->l.loop;
    snprintf(w->cfg.worker_id, sizeof w->cfg.worker_id, "hub-test");
    w->cfg.max_message_bytes = 65536;
    w->cfg.max_room_peers = 8;
    w->cfg.join_rate_limit = 0;
    w->metrics = pd_metrics_create();
    pd_metrics *m = w->metrics;
    w->m_connections = pd_metrics_add(m, PD_METRIC_GAUGE, "c", "c", NULL);
    w->m_messages = pd_metrics_add(m, PD_METRIC_COUNTER, "m", "m", "event");
    w->m_dropped = pd_metrics_add(m, PD_METRIC_COUNTER, "d", "d", "reason");
    w->m_join_waits = pd_metrics_add(m, PD_METRIC_COUNTER, "jw", "jw", "result");
    w->cfg.join_reserved_wait_ms = 60000;
    w->m_publishes = pd_metrics_add(m, PD_METRIC_COUNTER, "p", "p", NULL);
    w->m_bus_received = pd_metrics_add(m, PD_METRIC_COUNTER, "b", "b", NULL);
    w->m_redis_up = pd_metrics_add(m, PD_METRIC_GAUGE, "u", "u", NULL);
    w->m_rooms = pd_metrics_add(m, PD_METRIC_GAUGE, "r", "r", NULL);
    w->m_closed = pd_metrics_add(m, PD_METRIC_COUNTER, "x", "x", "reason");
    w->m_backpressure = pd_metrics_add(m, PD_METRIC_COUNTER, "k", "k", "cause");
    pd_redis_options opt = {.host = "127.0.0.1", .port = rfx_group_server.port, .subscriber = 1};
    w->redis = pd_redis_create(w->loop, &opt, NULL, on_bus, f);
    if (!w->redis)
        return -1;
    RFX_WAIT(&f->l, pd_redis_ready(w->redis), 5000);
    if (!pd_redis_ready(w->redis))
        return -1;
    f->c = rfx_sync(rfx_group_server.port);
    if (!f->c)
        return -1;
    redisReply *rep = redisCommand(f->c, "FLUSHALL");
    if (!rep)
        return -1;
    freeReplyObject(rep);
    f->hub = pd_hub_create(w);
    if (!f->hub)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    hub_fx *f = *state;
    if (!f)
        return 0;
    for (int i = 0; i < f->nconns; i++)
        fake_close(&f->conns[i]->conn, 1001, "test over");
    /* Redis first, so its pending callbacks still find the hub. */
    pd_redis_free(f->w->redis);
    pd_hub_free(f->hub);
    f->hub = NULL;
    rfx_loop_close(&f->l);
    for (int i = 0; i < f->nconns; i++) {
        fake_forget(f->conns[i]);
        free(f->conns[i]);
    }
    pd_metrics_free(f->w->metrics);
    redisFree(f->c);
    free(f->w);
    free(f);
    return 0;
}

/* A connection the hub has opened and counted in Redis. */
static fake_conn *fx_open(hub_fx *f, const char *ip)
{
    fake_conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_true(f->nconns < (int)PD_ARRAY_LEN(f->conns));
    f->conns[f->nconns++] = c;
    c->conn.ops = &FAKE_OPS;
    c->hub = f->hub;
    assert_int_equal(pd_id_socket(c->conn.sid), PD_OK);
    pd_conn_set_ip(&c->conn, ip);
    pd_hub_conn_handler.on_open(f->hub, &c->conn);
    assert_non_null(c->conn.data);
    RFX_WAIT(&f->l, c->counted, 5000);
    assert_true(c->counted);
    return c;
}

/* Hand the hub one Socket.IO EVENT's JSON text, as a transport does. */
static void fx_event(hub_fx *f, fake_conn *c, long long ack_id, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    pd_hub_conn_handler.on_event(f->hub, &c->conn, pd_slice_make(buf, (size_t)n), ack_id);
}

static void on_created(long v, void *data)
{
    *(long *)data = v;
}

static void fx_create_room(hub_fx *f, const char *room)
{
    long v = -2;
    assert_int_equal(pd_room_create(f->w->redis, pd_slice_cstr(room), on_created, &v), PD_OK);
    RFX_WAIT(&f->l, v != -2, 5000);
    assert_int_equal(v, 1);
}

/* Join and wait for the joinResponse. */
static void fx_join(hub_fx *f, fake_conn *c, const char *room)
{
    fx_event(f, c, PD_SIO_NO_ACK, "[\"join\",{\"roomId\":\"%s\"}]", room);
    RFX_WAIT(&f->l, fake_got(c, "joinResponse", NULL), 5000);
    assert_true(fake_got(c, "42[\"joinResponse\"", "\"success\":true", room, NULL));
}

static double dropped(hub_fx *f, const char *reason)
{
    return pd_metric_get(f->w->m_dropped, reason);
}

/* Two sockets in room 4321, a third alone in 8765. */
typedef struct trio {
    fake_conn *a, *b, *other;
} trio;

static trio fx_trio(hub_fx *f)
{
    trio t;
    fx_create_room(f, "4321");
    fx_create_room(f, "8765");
    t.a = fx_open(f, "10.0.0.1");
    t.b = fx_open(f, "10.0.0.2");
    t.other = fx_open(f, "10.0.0.3");
    fx_join(f, t.a, "4321");
    fx_join(f, t.b, "4321");
    fx_join(f, t.other, "8765");
    fake_forget(t.a);
    fake_forget(t.b);
    fake_forget(t.other);
    return t;
}

/* ---- tests ------------------------------------------------------------------------ */

static void join_is_told_to_the_room_and_bound_in_redis(void **state)
{
    hub_fx *f = *state;
    fx_create_room(f, "4321");
    fake_conn *a = fx_open(f, "10.0.0.1"), *b = fx_open(f, "10.0.0.2");
    fx_join(f, a, "4321");
    fx_join(f, b, "4321");
    /* the earlier member hears the newcomer is ready; the newcomer hears nothing of itself */
    assert_true(fake_got(a, "42[\"ready\"", b->conn.sid, NULL));
    assert_false(fake_got(b, "42[\"ready\"", NULL));
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:4321:sockets %s", a->conn.sid), 1);
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:4321:sockets %s", b->conn.sid), 1);
    assert_int_equal(pd_hub_session_count(f->hub), 2);
    assert_int_equal(pd_hub_ip_count(f->hub, "10.0.0.1"), 1);
}

static void join_of_a_missing_room_or_a_bad_id_is_refused(void **state)
{
    hub_fx *f = *state;
    fake_conn *a = fx_open(f, "10.0.0.1");
    fx_event(f, a, PD_SIO_NO_ACK, "[\"join\",{\"roomId\":\"9999\"}]");
    RFX_WAIT(&f->l, fake_got(a, "joinResponse", NULL), 5000);
    assert_true(fake_got(a, "\"success\":false", "Room does not exist", NULL));
    fake_forget(a);
    fx_event(f, a, PD_SIO_NO_ACK, "[\"join\",{\"roomId\":\"no spaces allowed\"}]");
    assert_true(fake_got(a, "\"success\":false", "Room does not exist", NULL)); /* at once: no Redis */
    double before = dropped(f, "bad_payload");
    fx_event(f, a, PD_SIO_NO_ACK, "[\"join\",{\"roomId\":42}]");
    assert_true(dropped(f, "bad_payload") == before + 1);
}

static void relay_reaches_the_target_only(void **state)
{
    hub_fx *f = *state;
    trio t = fx_trio(f);
    /* fast path (no ack): the exact packet */
    fx_event(f, t.a, PD_SIO_NO_ACK, "[\"offer\",{\"peerId\":\"%s\",\"offer\":{\"sdp\":\"v=0\"}}]", t.b->conn.sid);
    assert_int_equal(t.b->nsent, 1);
    char want[256];
    snprintf(want, sizeof want, "42[\"offer\",{\"offer\":{\"sdp\":\"v=0\"},\"from\":\"%s\",\"peerId\":\"%s\"}]",
             t.a->conn.sid, t.a->conn.sid);
    assert_string_equal(t.b->sent[0], want);
    assert_int_equal(t.a->nsent, 0);
    assert_int_equal(t.other->nsent, 0);
    /* general path (an ack was asked for): acked to the sender, relayed */
    fx_event(f, t.a, 7, "[\"ice-candidate\",{\"peerId\":\"%s\",\"candidate\":{\"c\":1}}]", t.b->conn.sid);
    assert_int_equal(t.a->nsent, 1);
    assert_string_equal(t.a->sent[0], "437[]");
    assert_int_equal(t.b->nsent, 2);
    assert_true(fake_got(t.b, "42[\"ice-candidate\"", "\"candidate\":{\"c\":1}", "\"from\":", NULL));
    assert_int_equal(t.other->nsent, 0);
}

/* The three refusals, on the fast path (no ack) and on the general path
 * (ack asked: the packet is decoded with jansson). */
static void relay_refusals(hub_fx *f, long long ack)
{
    trio t = fx_trio(f);
    fake_conn *loner = fx_open(f, "10.0.0.4");
    double nir = dropped(f, "not_in_room"), bad = dropped(f, "bad_target"), other = dropped(f, "other_room");

    fx_event(f, loner, ack, "[\"offer\",{\"peerId\":\"%s\",\"offer\":{}}]", t.a->conn.sid);
    assert_true(dropped(f, "not_in_room") == nir + 1);

    fx_event(f, t.a, ack, "[\"answer\",{\"peerId\":\"not an id!\",\"answer\":{}}]");
    assert_true(dropped(f, "bad_target") == bad + 1);

    fx_event(f, t.a, ack, "[\"offer\",{\"peerId\":\"%s\",\"offer\":{}}]", t.other->conn.sid);
    assert_true(dropped(f, "other_room") == other + 1);

    /* nobody heard anything but, on the general path, the sender its acks */
    assert_int_equal(t.b->nsent, 0);
    assert_int_equal(t.other->nsent, 0);
    assert_int_equal(t.a->nsent, ack == PD_SIO_NO_ACK ? 0 : 2);
}

static void relay_refused_on_the_fast_path(void **state)
{
    relay_refusals(*state, PD_SIO_NO_ACK);
}

static void relay_refused_on_the_general_path(void **state)
{
    relay_refusals(*state, 3);
}

static void room_broadcasts_go_to_the_others_in_the_own_room(void **state)
{
    hub_fx *f = *state;
    trio t = fx_trio(f);
    fx_event(f, t.a, PD_SIO_NO_ACK, "[\"initiator-online\",{\"roomId\":\"4321\"}]");
    assert_int_equal(t.b->nsent, 1);
    assert_string_equal(t.b->sent[0], "42[\"initiator-online\",{\"roomId\":\"4321\"}]");
    assert_int_equal(t.a->nsent, 0);
    assert_int_equal(t.other->nsent, 0);

    /* another room's id: stricter than PrivyDrop, dropped */
    double other = dropped(f, "other_room");
    fx_event(f, t.a, PD_SIO_NO_ACK, "[\"initiator-online\",{\"roomId\":\"8765\"}]");
    assert_true(dropped(f, "other_room") == other + 1);
    assert_int_equal(t.other->nsent, 0);

    /* recipient-ready names the sender itself, never whom it claims */
    fx_event(f, t.b, PD_SIO_NO_ACK, "[\"recipient-ready\",{\"roomId\":\"4321\"}]");
    assert_int_equal(t.a->nsent, 1);
    char want[128];
    snprintf(want, sizeof want, "42[\"recipient-ready\",{\"peerId\":\"%s\"}]", t.b->conn.sid);
    assert_string_equal(t.a->sent[0], want);
    double forged = dropped(f, "forged_peer");
    fx_event(f, t.b, PD_SIO_NO_ACK, "[\"recipient-ready\",{\"roomId\":\"4321\",\"peerId\":\"%s\"}]",
             t.a->conn.sid);
    assert_true(dropped(f, "forged_peer") == forged + 1);
    assert_int_equal(t.a->nsent, 1);

    double unknown = dropped(f, "unknown_event");
    fx_event(f, t.a, PD_SIO_NO_ACK, "[\"no-such-event\",{}]");
    assert_true(dropped(f, "unknown_event") == unknown + 1);
}

static void disconnect_tells_the_room_and_leaves_redis(void **state)
{
    hub_fx *f = *state;
    trio t = fx_trio(f);
    char sid[PD_SOCKET_ID_LEN + 1];
    memcpy(sid, t.b->conn.sid, sizeof sid);
    fake_close(&t.b->conn, 1000, "bye");
    assert_null(t.b->conn.data); /* the hub dropped its record */
    assert_int_equal(pd_hub_session_count(f->hub), 2);
    assert_int_equal(pd_hub_ip_count(f->hub, "10.0.0.2"), 0);
    assert_int_equal(t.a->nsent, 1);
    char want[128];
    snprintf(want, sizeof want, "42[\"peer-disconnected\",{\"peerId\":\"%s\"}]", sid);
    assert_string_equal(t.a->sent[0], want);
    assert_int_equal(t.other->nsent, 0);
    RFX_WAIT(&f->l, rfx_int(f->c, "SISMEMBER room:4321:sockets %s", sid) == 0, 5000);
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:4321:sockets %s", sid), 0);
    /* a signal to the one who left now goes nowhere local */
    fx_event(f, t.a, PD_SIO_NO_ACK, "[\"offer\",{\"peerId\":\"%s\",\"offer\":{}}]", sid);
    assert_int_equal(t.b->nsent, 0);
}

static void draining_hub_closes_a_joiner_with_1001(void **state)
{
    hub_fx *f = *state;
    fx_create_room(f, "4321");
    fake_conn *a = fx_open(f, "10.0.0.1");
    f->w->draining = 1;
    fx_event(f, a, PD_SIO_NO_ACK, "[\"join\",{\"roomId\":\"4321\"}]");
    assert_true(a->closed);
    assert_int_equal(a->close_code, 1001);
    assert_null(a->conn.data);
    assert_int_equal(pd_hub_session_count(f->hub), 0);
}

/* A room as the room API's pool reserves it (GET_FREE_LUA with reserve). */
static void fx_reserve_room(hub_fx *f, const char *room)
{
    rfx_ok(f->c, "HSET room:%s created_at 1 reserved 1", room);
    rfx_ok(f->c, "EXPIRE room:%s 120", room);
}

/* Join `room` with the rate limit on, and wait until Redis has answered
 * the first try (it recorded the attempt): the room was reserved then. */
static void fx_join_reserved(hub_fx *f, fake_conn *c, const char *room, const char *ip)
{
    f->w->cfg.join_rate_limit = 1;
    fx_event(f, c, PD_SIO_NO_ACK, "[\"join\",{\"roomId\":\"%s\"}]", room);
    RFX_WAIT(&f->l, rfx_int(f->c, "ZCARD ratelimit:join:%s", ip) == 1, 5000);
    assert_int_equal(rfx_int(f->c, "ZCARD ratelimit:join:%s", ip), 1);
}

/* The room API's claim of an id it answered a minute ago (CLAIM_LUA):
 * the mark goes, `handed_at` says when; `create` also makes the room
 * again, as a claim does for a room Redis lost. */
static void fx_claim(hub_fx *f, const char *room, int create)
{
    rfx_ok(f->c, "EVAL %s 1 room:%s %d",
           "local t = redis.call('TIME') "
           "if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'created_at', t[1]) end "
           "redis.call('HDEL', KEYS[1], 'reserved') "
           "redis.call('HSET', KEYS[1], 'handed_at', tonumber(t[1]) * 1000 - 60000) return 1",
           room, create);
}

static double join_waits(hub_fx *f, const char *result)
{
    return pd_metric_get(f->w->m_join_waits, result);
}

static void join_waits_for_a_reserved_room_until_it_is_claimed(void **state)
{
    hub_fx *f = *state;
    fx_reserve_room(f, "5555");
    fake_conn *a = fx_open(f, "10.0.0.1");
    fx_join_reserved(f, a, "5555", "10.0.0.1");
    /* It keeps asking, without counting against the client's join limit
     * (2 per 5 s): the wait goes on past several tries. */
    rfx_run_for(&f->l, 600);
    assert_false(fake_got(a, "joinResponse", NULL));
    assert_int_equal(rfx_int(f->c, "ZCARD ratelimit:join:10.0.0.1"), 1);
    fx_claim(f, "5555", 0); /* the claim lands */
    RFX_WAIT(&f->l, fake_got(a, "joinResponse", NULL), 5000);
    assert_true(fake_got(a, "42[\"joinResponse\"", "\"success\":true", "5555", NULL));
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:5555:sockets %s", a->conn.sid), 1);
    assert_true(join_waits(f, "joined") == 1);
}

static void join_waiting_from_before_the_hand_out_is_refused(void **state)
{
    hub_fx *f = *state;
    fx_reserve_room(f, "5560");
    fake_conn *eve = fx_open(f, "10.0.0.5");
    fx_join_reserved(f, eve, "5560", "10.0.0.5");
    rfx_run_for(&f->l, PD_JOIN_HANDED_SLACK_MS * 4);
    /* Handed out now, well after eve first found it reserved. */
    rfx_ok(f->c, "EVAL %s 1 room:5560",
           "local t = redis.call('TIME') redis.call('HDEL', KEYS[1], 'reserved') "
           "redis.call('HSET', KEYS[1], 'handed_at', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) "
           "return 1");
    RFX_WAIT(&f->l, fake_got(eve, "joinResponse", NULL), 5000);
    assert_true(fake_got(eve, "\"success\":false", "Room does not exist", NULL));
    assert_int_equal(rfx_int(f->c, "SCARD room:5560:sockets"), 0);
    assert_true(join_waits(f, "refused") == 1);
    assert_true(join_waits(f, "timeout") == 0); /* told at once, not when the wait ran out */
}

static void join_waits_through_the_loss_of_its_reserved_room(void **state)
{
    hub_fx *f = *state;
    fx_reserve_room(f, "5558");
    fake_conn *a = fx_open(f, "10.0.0.1");
    fx_join_reserved(f, a, "5558", "10.0.0.1");
    /* Redis loses the room (restarted empty), then the room API's claim,
     * sent again, creates it again. */
    rfx_ok(f->c, "DEL room:5558");
    rfx_run_for(&f->l, 300);
    assert_false(fake_got(a, "joinResponse", NULL));
    fx_claim(f, "5558", 1);
    RFX_WAIT(&f->l, fake_got(a, "joinResponse", NULL), 5000);
    assert_true(fake_got(a, "42[\"joinResponse\"", "\"success\":true", "5558", NULL));
    /* A room never seen reserved is refused at once, as before. */
    fake_conn *b = fx_open(f, "10.0.0.2");
    f->w->cfg.join_rate_limit = 0;
    fx_event(f, b, PD_SIO_NO_ACK, "[\"join\",{\"roomId\":\"5559\"}]");
    RFX_WAIT(&f->l, fake_got(b, "joinResponse", NULL), 5000);
    assert_true(fake_got(b, "\"success\":false", "Room does not exist", NULL));
    assert_true(join_waits(f, "timeout") == 0);
}

static void join_to_a_reserved_room_nobody_claims_is_refused_in_the_end(void **state)
{
    hub_fx *f = *state;
    f->w->cfg.join_reserved_wait_ms = 50;
    fx_reserve_room(f, "5556");
    fake_conn *a = fx_open(f, "10.0.0.1");
    fx_join_reserved(f, a, "5556", "10.0.0.1");
    RFX_WAIT(&f->l, fake_got(a, "joinResponse", NULL), 5000);
    assert_true(fake_got(a, "\"success\":false", "Room does not exist", NULL));
    assert_int_equal(rfx_int(f->c, "SCARD room:5556:sockets"), 0);
    assert_true(join_waits(f, "timeout") == 1);
    /* The socket can join another room: nothing of the wait is left. */
    fx_create_room(f, "4321");
    fake_forget(a);
    f->w->cfg.join_rate_limit = 0;
    fx_join(f, a, "4321");
}

static void socket_closed_while_its_join_waits_leaves_nothing(void **state)
{
    hub_fx *f = *state;
    fx_reserve_room(f, "5557");
    fake_conn *a = fx_open(f, "10.0.0.1"), *b = fx_open(f, "10.0.0.2");
    fx_join_reserved(f, a, "5557", "10.0.0.1");
    fx_join_reserved(f, b, "5557", "10.0.0.2");
    fake_close(&a->conn, 1000, "gone");
    RFX_WAIT(&f->l, join_waits(f, "gone") == 1, 5000);
    assert_true(join_waits(f, "gone") == 1);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:%s", a->conn.sid), 0);
    /* b still waits when the hub is freed (teardown): freed with it. */
    assert_false(fake_got(b, "joinResponse", NULL));
}

static void may_read_while_redis_keeps_up(void **state)
{
    hub_fx *f = *state;
    assert_int_equal(pd_hub_conn_handler.may_read(f->hub, 0), 1);
    assert_int_equal(pd_hub_conn_handler.may_read(f->hub, 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(join_is_told_to_the_room_and_bound_in_redis, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(join_of_a_missing_room_or_a_bad_id_is_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(relay_reaches_the_target_only, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(relay_refused_on_the_fast_path, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(relay_refused_on_the_general_path, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(room_broadcasts_go_to_the_others_in_the_own_room, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(disconnect_tells_the_room_and_leaves_redis, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(draining_hub_closes_a_joiner_with_1001, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(join_waits_for_a_reserved_room_until_it_is_claimed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(join_waiting_from_before_the_hand_out_is_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(join_waits_through_the_loss_of_its_reserved_room, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(join_to_a_reserved_room_nobody_claims_is_refused_in_the_end, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(socket_closed_while_its_join_waits_leaves_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(may_read_while_redis_keeps_up, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, rfx_group_setup, rfx_group_teardown);
}
