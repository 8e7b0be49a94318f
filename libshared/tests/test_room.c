/* test_room.c — the room schema (pd_room_*, pd_cluster_*) against a real
 * redis-server started by the test: keys, TTLs, join ordering, the join
 * rate limit, leave bits, free ids, referrer counts and the reaper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "redis_fixture.h"

#include "privydrop/pd_redis.h"
#include "privydrop/pd_room.h"
#include "privydrop/pd_script.h"


typedef struct room_fx {
    rfx_loop l;        /* loop the store runs on */
    pd_redis *r;       /* store connection */
    redisContext *c;   /* inspection connection */
} room_fx;

static int fx_setup(void **state)
{
    room_fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    rfx_loop_init(&f->l);
    if (rfx_store_open(&f->l, &f->r, &f->c) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    room_fx *f = *state;
    if (!f)
        return 0;
    pd_redis_free(f->r);
    rfx_loop_close(&f->l);
    redisFree(f->c);
    free(f);
    return 0;
}

/* ---- synchronous wrappers over the async store ---------------------------- */

typedef struct join_wait {
    int done;
    pd_join_result res;
    char error[64];
} join_wait;

static void on_join_done(const pd_join_result *res, void *data)
{
    join_wait *w = data;
    w->done++;
    w->res = *res;
    snprintf(w->error, sizeof w->error, "%s", res->error ? res->error : "");
    w->res.error = NULL;
}

static join_wait join_max(room_fx *f, const char *sid, const char *room, const char *ip, int rate_limit,
                          long max_peers, const char *owner)
{
    join_wait w = {0};
    assert_int_equal(pd_room_join(f->r, pd_slice_cstr(sid), pd_slice_cstr(room), ip, rate_limit, max_peers, owner,
                                  on_join_done, &w),
                     PD_OK);
    RFX_WAIT(&f->l, w.done, 3000);
    assert_int_equal(w.done, 1);
    return w;
}

static join_wait join_ex(room_fx *f, const char *sid, const char *room, const char *ip, int rate_limit,
                         const char *owner)
{
    return join_max(f, sid, room, ip, rate_limit, 0, owner);
}

static pd_join_status join(room_fx *f, const char *sid, const char *room, const char *ip, int rate_limit)
{
    return join_ex(f, sid, room, ip, rate_limit, "w1").res.status;
}

typedef struct long_wait {
    int done;
    long v;
} long_wait;

static void on_long_done(long v, void *data)
{
    long_wait *w = data;
    w->done++;
    w->v = v;
}

static long wait_long(room_fx *f, long_wait *w)
{
    RFX_WAIT(&f->l, w->done, 3000);
    assert_int_equal(w->done, 1);
    return w->v;
}

static long leave(room_fx *f, const char *sid, const char *room, const char *owner)
{
    long_wait w = {0};
    assert_int_equal(pd_room_leave(f->r, pd_slice_cstr(sid), pd_slice_cstr(room), owner, on_long_done, &w),
                     PD_OK);
    return wait_long(f, &w);
}

static long create(room_fx *f, const char *room)
{
    long_wait w = {0};
    assert_int_equal(pd_room_create(f->r, pd_slice_cstr(room), on_long_done, &w), PD_OK);
    return wait_long(f, &w);
}

static long exists(room_fx *f, const char *room)
{
    long_wait w = {0};
    assert_int_equal(pd_room_exists(f->r, pd_slice_cstr(room), on_long_done, &w), PD_OK);
    return wait_long(f, &w);
}

/* Commands on one connection complete in order: once this PING is
 * answered, every fire-and-forget command sent before it has run. */
static void on_ping(redisReply *rep, void *data)
{
    (void)rep;
    (*(int *)data)++;
}

static void barrier(room_fx *f)
{
    int done = 0;
    assert_int_equal(pd_redis_cmd(f->r, on_ping, &done, "PING"), PD_OK);
    RFX_WAIT(&f->l, done, 3000);
    assert_int_equal(done, 1);
}

static void assert_between(long long v, long long lo, long long hi)
{
    if (v < lo || v > hi)
        fail_msg("%lld not in [%lld, %lld]", v, lo, hi);
}

/* ---- join ----------------------------------------------------------------- */

static void join_binds_socket_and_sets_every_key_and_ttl(void **state)
{
    room_fx *f = *state;
    assert_int_equal(create(f, "1234"), 1);
    rfx_ok(f->c, "EXPIRE room:1234 100"); /* join must refresh it */
    join_wait w = join_ex(f, "sockA", "1234", "10.0.0.1", 1, "worker-7");
    assert_int_equal(w.res.status, PD_JOIN_OK);

    char buf[64];
    assert_true(rfx_str(f->c, buf, sizeof buf, "GET socket:sockA"));
    assert_string_equal(buf, "1234");
    assert_between(rfx_int(f->c, "TTL socket:sockA"), PD_SOCKET_TTL_S - 10, PD_SOCKET_TTL_S);
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:1234:sockets sockA"), 1);
    assert_between(rfx_int(f->c, "TTL room:1234"), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    assert_between(rfx_int(f->c, "TTL room:1234:sockets"), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:worker-7:sockets sockA"), 1);
    /* The rate limiter recorded the attempt, with a short TTL. */
    assert_int_equal(rfx_int(f->c, "ZCARD ratelimit:join:10.0.0.1"), 1);
    assert_between(rfx_int(f->c, "TTL ratelimit:join:10.0.0.1"), 1, PD_JOIN_WINDOW_S);
}

static void join_copies_its_arguments_before_returning(void **state)
{
    room_fx *f = *state;
    create(f, "copyroom");
    char sid[16] = "sockCopy", room[16] = "copyroom", ip[16] = "10.9.9.9", owner[16] = "wcopy";
    join_wait w = {0};
    assert_int_equal(pd_room_join(f->r, pd_slice_cstr(sid), pd_slice_cstr(room), ip, 1, 0, owner, on_join_done, &w),
                     PD_OK);
    memset(sid, 'x', sizeof sid - 1);
    memset(room, 'y', sizeof room - 1);
    memset(ip, 'z', sizeof ip - 1);
    memset(owner, 'q', sizeof owner - 1);
    RFX_WAIT(&f->l, w.done, 3000);
    assert_int_equal(w.res.status, PD_JOIN_OK);
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:copyroom:sockets sockCopy"), 1);
    assert_int_equal(rfx_int(f->c, "EXISTS ratelimit:join:10.9.9.9"), 1);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:wcopy:sockets sockCopy"), 1);
}

static void rejoin_same_room_is_reported_and_never_rate_limited(void **state)
{
    room_fx *f = *state;
    create(f, "5555");
    assert_int_equal(join(f, "s1", "5555", "10.0.0.2", 1), PD_JOIN_OK);
    rfx_ok(f->c, "EXPIRE room:5555 100");
    for (int i = 0; i < 5; i++)
        assert_int_equal(join(f, "s1", "5555", "10.0.0.2", 1), PD_JOIN_REJOIN);
    /* A re-join refreshes the room TTL ... */
    assert_between(rfx_int(f->c, "TTL room:5555"), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    /* ... and did not count against the address: one more new join fits. */
    assert_int_equal(rfx_int(f->c, "ZCARD ratelimit:join:10.0.0.2"), 1);
    assert_int_equal(join(f, "s2", "5555", "10.0.0.2", 1), PD_JOIN_OK);
    assert_int_equal(join(f, "s3", "5555", "10.0.0.2", 1), PD_JOIN_RATE_LIMITED);
    /* Even with the address over its limit, a re-join still succeeds. */
    assert_int_equal(join(f, "s1", "5555", "10.0.0.2", 1), PD_JOIN_REJOIN);
    assert_int_equal(rfx_int(f->c, "SCARD room:5555:sockets"), 2);
}

static void join_while_bound_elsewhere_is_refused_first(void **state)
{
    room_fx *f = *state;
    create(f, "roomA");
    create(f, "roomB");
    assert_int_equal(join(f, "sx", "roomA", "10.0.0.3", 1), PD_JOIN_OK);
    assert_int_equal(join(f, "sx", "roomB", "10.0.0.3", 1), PD_JOIN_BOUND_ELSEWHERE);
    char buf[64];
    rfx_str(f->c, buf, sizeof buf, "GET socket:sx");
    assert_string_equal(buf, "roomA");
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:roomB:sockets sx"), 0);
    /* Bound-elsewhere comes before the rate limit and the existence check:
     * exhaust the address, then try a room that does not exist. */
    join(f, "other1", "roomA", "10.0.0.3", 1);
    assert_int_equal(join(f, "other2", "roomA", "10.0.0.3", 1), PD_JOIN_RATE_LIMITED);
    assert_int_equal(join(f, "sx", "nosuchroom", "10.0.0.3", 1), PD_JOIN_BOUND_ELSEWHERE);
}

static void join_missing_room_changes_nothing(void **state)
{
    room_fx *f = *state;
    join_wait w = join_ex(f, "lonely", "9999", "10.0.0.4", 1, "w1");
    assert_int_equal(w.res.status, PD_JOIN_NO_ROOM);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:lonely"), 0);
    assert_int_equal(rfx_int(f->c, "EXISTS room:9999"), 0);
    assert_int_equal(rfx_int(f->c, "EXISTS room:9999:sockets"), 0);
    assert_int_equal(rfx_int(f->c, "EXISTS pd:worker:w1:sockets"), 0);
    /* A room hash without created_at does not count as a room either. */
    rfx_ok(f->c, "HSET room:9999 other 1");
    assert_int_equal(join(f, "lonely", "9999", "10.0.0.4", 1), PD_JOIN_NO_ROOM);
}

static void rate_limit_is_checked_before_room_existence(void **state)
{
    room_fx *f = *state;
    assert_int_equal(join(f, "m1", "missing", "10.0.0.5", 1), PD_JOIN_NO_ROOM);
    assert_int_equal(join(f, "m2", "missing", "10.0.0.5", 1), PD_JOIN_NO_ROOM);
    assert_int_equal(join(f, "m3", "missing", "10.0.0.5", 1), PD_JOIN_RATE_LIMITED);
}

static void third_new_join_from_one_address_is_rate_limited(void **state)
{
    room_fx *f = *state;
    create(f, "rl");
    assert_int_equal(join(f, "r1", "rl", "192.0.2.1", 1), PD_JOIN_OK);
    assert_int_equal(join(f, "r2", "rl", "192.0.2.1", 1), PD_JOIN_OK);
    join_wait w = join_ex(f, "r3", "rl", "192.0.2.1", 1, "w1");
    assert_int_equal(w.res.status, PD_JOIN_RATE_LIMITED);
    assert_int_equal(w.res.remaining, 0);
    assert_between(w.res.reset_after_s, 1, PD_JOIN_WINDOW_S);
    /* The refused socket was not bound. */
    assert_int_equal(rfx_int(f->c, "EXISTS socket:r3"), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:rl:sockets r3"), 0);
    /* Another address has its own budget. */
    assert_int_equal(join(f, "r4", "rl", "192.0.2.2", 1), PD_JOIN_OK);
    assert_int_equal(join(f, "r5", "rl", "192.0.2.2", 1), PD_JOIN_OK);
    assert_int_equal(join(f, "r6", "rl", "192.0.2.2", 1), PD_JOIN_RATE_LIMITED);
}

/* A re-join credit pays for one join of its own room from its own address
 * (not counted by the limit); it never pays for another room or address. */
static void rejoin_credit_pays_one_join_of_its_room_only(void **state)
{
    room_fx *f = *state;
    create(f, "cr");
    create(f, "cr2");
    assert_int_equal(join(f, "c1", "cr", "192.0.2.50", 1), PD_JOIN_OK);
    assert_int_equal(join(f, "c2", "cr", "192.0.2.50", 1), PD_JOIN_OK);
    long_wait g = {0};
    assert_int_equal(pd_room_grant_rejoin(f->r, pd_slice_cstr("cr"), "192.0.2.50", on_long_done, &g), PD_OK);
    assert_int_equal(wait_long(f, &g), 1);
    assert_between(rfx_int(f->c, "TTL pd:rejoin:cr:192.0.2.50"), 1, PD_REJOIN_GRACE_S);
    /* Another room or another address: no credit, the limit decides. */
    assert_int_equal(join(f, "c3", "cr2", "192.0.2.50", 1), PD_JOIN_RATE_LIMITED);
    assert_int_equal(rfx_int(f->c, "EXISTS pd:rejoin:cr:192.0.2.50"), 1);
    assert_int_equal(rfx_int(f->c, "EXISTS pd:rejoin:cr:192.0.2.51"), 0);
    /* Its room from its address: paid by the credit, which is then gone. */
    long counted = rfx_int(f->c, "ZCARD ratelimit:join:192.0.2.50");
    assert_int_equal(join(f, "c4", "cr", "192.0.2.50", 1), PD_JOIN_OK);
    assert_int_equal(rfx_int(f->c, "EXISTS pd:rejoin:cr:192.0.2.50"), 0);
    assert_int_equal(rfx_int(f->c, "ZCARD ratelimit:join:192.0.2.50"), counted);
    assert_int_equal(join(f, "c5", "cr", "192.0.2.50", 1), PD_JOIN_RATE_LIMITED);
}

static void rate_limit_off_lets_every_join_through(void **state)
{
    room_fx *f = *state;
    create(f, "free");
    char sid[16];
    for (int i = 0; i < 6; i++) {
        snprintf(sid, sizeof sid, "n%d", i);
        assert_int_equal(join(f, sid, "free", "192.0.2.9", 0), PD_JOIN_OK);
    }
    assert_int_equal(rfx_int(f->c, "SCARD room:free:sockets"), 6);
    /* Nothing was recorded for the address either. */
    assert_int_equal(rfx_int(f->c, "EXISTS ratelimit:join:192.0.2.9"), 0);
}

static void rate_limit_window_slides_and_reports_time_to_reset(void **state)
{
    room_fx *f = *state;
    create(f, "slide");
    unsigned long long now = (unsigned long long)pd_now_ms();
    /* Attempts older than the window no longer count. */
    rfx_ok(f->c, "ZADD ratelimit:join:198.51.100.1 %llu old1 %llu old2", now - 6000, now - 5500);
    assert_int_equal(join(f, "w1", "slide", "198.51.100.1", 1), PD_JOIN_OK);
    assert_int_equal(rfx_int(f->c, "ZCARD ratelimit:join:198.51.100.1"), 1);

    /* Two attempts 3.5 s and 1 s ago: the oldest frees its slot in 1.5 s,
     * reported rounded up. */
    rfx_ok(f->c, "ZADD ratelimit:join:198.51.100.2 %llu a %llu b", now - 3500, now - 1000);
    join_wait w = join_ex(f, "w2", "slide", "198.51.100.2", 1, "w1");
    assert_int_equal(w.res.status, PD_JOIN_RATE_LIMITED);
    assert_int_equal(w.res.remaining, 0);
    assert_int_equal(w.res.reset_after_s, 2);
}

static void join_reports_error_when_redis_fails_the_script(void **state)
{
    room_fx *f = *state;
    rfx_ok(f->c, "SET room:broken notahash");
    join_wait w = join_ex(f, "sb", "broken", "10.0.0.6", 0, "w1");
    assert_int_equal(w.res.status, PD_JOIN_ERROR);
    assert_true(strlen(w.error) > 0);
}

static void full_room_refuses_new_sockets_but_not_rejoins(void **state)
{
    room_fx *f = *state;
    create(f, "duo");
    assert_int_equal(join_max(f, "p1", "duo", "10.2.0.1", 0, 2, "w1").res.status, PD_JOIN_OK);
    assert_int_equal(join_max(f, "p2", "duo", "10.2.0.2", 0, 2, "w1").res.status, PD_JOIN_OK);
    assert_int_equal(join_max(f, "p3", "duo", "10.2.0.3", 0, 2, "w1").res.status, PD_JOIN_FULL);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:p3"), 0);
    assert_int_equal(rfx_int(f->c, "SCARD room:duo:sockets"), 2);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:w1:sockets p3"), 0);
    /* A member re-joining a full room is fine. */
    assert_int_equal(join_max(f, "p1", "duo", "10.2.0.1", 0, 2, "w1").res.status, PD_JOIN_REJOIN);
    /* Once someone leaves there is space again. */
    leave(f, "p2", "duo", "w1");
    assert_int_equal(join_max(f, "p3", "duo", "10.2.0.3", 0, 2, "w1").res.status, PD_JOIN_OK);
    /* max_peers 0 (or negative) means unbounded. */
    assert_int_equal(join_max(f, "p4", "duo", "10.2.0.4", 0, 0, "w1").res.status, PD_JOIN_OK);
    assert_int_equal(join_max(f, "p5", "duo", "10.2.0.5", 0, -1, "w1").res.status, PD_JOIN_OK);
    assert_int_equal(rfx_int(f->c, "SCARD room:duo:sockets"), 4);
}

static void room_size_is_checked_after_existence_and_rate_limit(void **state)
{
    room_fx *f = *state;
    /* A missing room is reported as missing, not full. */
    assert_int_equal(join_max(f, "q1", "absent", "10.3.0.1", 0, 1, "w1").res.status, PD_JOIN_NO_ROOM);
    create(f, "solo");
    assert_int_equal(join_max(f, "q1", "solo", "10.3.0.1", 1, 1, "w1").res.status, PD_JOIN_OK);
    assert_int_equal(join_max(f, "q2", "solo", "10.3.0.1", 1, 1, "w1").res.status, PD_JOIN_FULL);
    assert_int_equal(join_max(f, "q3", "solo", "10.3.0.1", 1, 1, "w1").res.status, PD_JOIN_RATE_LIMITED);
}

/* ---- leave ------------------------------------------------------------------ */

static void leave_reports_bits_and_empties_room_to_short_ttl(void **state)
{
    room_fx *f = *state;
    create(f, "lv");
    assert_int_equal(join(f, "a", "lv", "10.1.0.1", 0), PD_JOIN_OK);
    assert_int_equal(join(f, "b", "lv", "10.1.0.1", 0), PD_JOIN_OK);

    assert_int_equal(leave(f, "a", "lv", "w1"), PD_LEAVE_WAS_MEMBER | PD_LEAVE_ROOM_EXISTS);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:a"), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:lv:sockets a"), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:w1:sockets a"), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:w1:sockets b"), 1);
    /* Not empty yet: the room keeps its long TTL. */
    assert_true(rfx_int(f->c, "TTL room:lv") > PD_ROOM_EMPTY_TTL_S);

    assert_int_equal(leave(f, "b", "lv", "w1"), PD_LEAVE_WAS_MEMBER | PD_LEAVE_ROOM_EXISTS);
    assert_between(rfx_int(f->c, "TTL room:lv"), 1, PD_ROOM_EMPTY_TTL_S);
    assert_int_equal(rfx_int(f->c, "EXISTS room:lv:sockets"), 0);

    /* Leaving again: the room exists, the socket is no member. */
    assert_int_equal(leave(f, "a", "lv", "w1"), PD_LEAVE_ROOM_EXISTS);
    /* A room that does not exist. */
    assert_int_equal(leave(f, "a", "nope", "w1"), 0);
}

/* Only a member's leave shortens a room's life: a leave naming anyone else
 * of a room without members leaves its TTL alone. */
static void leave_by_non_member_keeps_room_lifetime(void **state)
{
    room_fx *f = *state;
    create(f, "keep");
    long long ttl = rfx_int(f->c, "TTL room:keep");
    assert_true(ttl > PD_ROOM_EMPTY_TTL_S);
    assert_int_equal(leave(f, "nobody", "keep", NULL), PD_LEAVE_ROOM_EXISTS);
    assert_true(rfx_int(f->c, "TTL room:keep") > PD_ROOM_EMPTY_TTL_S);
    /* Also with members present: a stranger's leave changes nothing. */
    assert_int_equal(join(f, "m", "keep", "10.1.0.9", 0), PD_JOIN_OK);
    assert_int_equal(leave(f, "nobody", "keep", NULL), PD_LEAVE_ROOM_EXISTS);
    assert_true(rfx_int(f->c, "TTL room:keep") > PD_ROOM_EMPTY_TTL_S);
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:keep:sockets m"), 1);
}

static void leave_keeps_socket_key_that_points_to_another_room(void **state)
{
    room_fx *f = *state;
    create(f, "home");
    create(f, "away");
    assert_int_equal(join(f, "s", "home", "10.1.0.2", 0), PD_JOIN_OK);
    assert_int_equal(leave(f, "s", "away", NULL), PD_LEAVE_ROOM_EXISTS);
    char buf[64];
    assert_true(rfx_str(f->c, buf, sizeof buf, "GET socket:s"));
    assert_string_equal(buf, "home");
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:home:sockets s"), 1);
}

static void leave_without_owner_keeps_owner_set(void **state)
{
    room_fx *f = *state;
    create(f, "own");
    assert_int_equal(join(f, "s", "own", "10.1.0.3", 0), PD_JOIN_OK);
    assert_int_equal(leave(f, "s", "own", NULL), PD_LEAVE_WAS_MEMBER | PD_LEAVE_ROOM_EXISTS);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:s"), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:w1:sockets s"), 1);
}

static void leave_reports_error_on_redis_failure(void **state)
{
    room_fx *f = *state;
    rfx_ok(f->c, "SET room:bad:sockets notaset");
    assert_int_equal(leave(f, "s", "bad", NULL), -1);
}

/* ---- create / exists --------------------------------------------------------- */

static void create_is_atomic_once_and_sets_created_at_and_ttl(void **state)
{
    room_fx *f = *state;
    unsigned long long before = (unsigned long long)pd_now_ms();
    assert_int_equal(create(f, "newroom"), 1);
    assert_int_equal(create(f, "newroom"), 0);
    assert_between(rfx_int(f->c, "TTL room:newroom"), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    char buf[64];
    assert_true(rfx_str(f->c, buf, sizeof buf, "HGET room:newroom created_at"));
    unsigned long long at = strtoull(buf, NULL, 10);
    assert_true(at >= before && at <= before + 60000);
    /* A second create does not touch created_at. */
    rfx_ok(f->c, "HSET room:newroom created_at 1");
    assert_int_equal(create(f, "newroom"), 0);
    rfx_str(f->c, buf, sizeof buf, "HGET room:newroom created_at");
    assert_string_equal(buf, "1");
}

static void exists_follows_created_at(void **state)
{
    room_fx *f = *state;
    assert_int_equal(exists(f, "e1"), 0);
    assert_int_equal(create(f, "e1"), 1);
    assert_int_equal(exists(f, "e1"), 1);
    rfx_ok(f->c, "HSET room:e2 something 1");
    assert_int_equal(exists(f, "e2"), 0);
    rfx_ok(f->c, "SET room:e3 string");
    assert_int_equal(exists(f, "e3"), -1);
}

/* ---- get_free --------------------------------------------------------------- */

typedef struct free_slot {
    int done;    /* callback count */
    char id[16]; /* room id, "" for NULL */
} free_slot;

static void on_free_done(const char *room, void *data)
{
    free_slot *s = data;
    s->done++;
    snprintf(s->id, sizeof s->id, "%s", room ? room : "");
}

static int all_done(const free_slot *slots, int n)
{
    for (int i = 0; i < n; i++)
        if (!slots[i].done)
            return 0;
    return 1;
}

static void get_free_hands_out_distinct_4_digit_ids_under_concurrency(void **state)
{
    room_fx *f = *state;
    enum { N = 200 };
    free_slot *slots = calloc(N, sizeof *slots);
    assert_non_null(slots);
    for (int i = 0; i < N; i++)
        assert_int_equal(pd_room_get_free(f->r, on_free_done, &slots[i]), PD_OK);
    RFX_WAIT(&f->l, all_done(slots, N), 5000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(slots[i].done, 1);
        assert_int_equal(strlen(slots[i].id), 4);
        assert_int_equal(strspn(slots[i].id, "0123456789"), 4);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(slots[i].id, slots[j].id);
        assert_int_equal(rfx_int(f->c, "HEXISTS room:%s created_at", slots[i].id), 1);
        assert_between(rfx_int(f->c, "TTL room:%s", slots[i].id), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    }
    free(slots);
}

/* Fill the 4-digit space: room:<id> for every id with taken(id) true, with
 * PrivyDrop's 24 h TTL. Pipelined. */
static void fill_short(room_fx *f, int (*taken)(int id))
{
    int n = 0;
    for (int i = 0; i < 10000; i++)
        if (taken(i)) {
            redisAppendCommand(f->c, "HSET room:%04d created_at 1", i);
            redisAppendCommand(f->c, "EXPIRE room:%04d 86400", i);
            n += 2;
        }
    for (int i = 0; i < n; i++) {
        redisReply *rep = NULL;
        assert_int_equal(redisGetReply(f->c, (void **)&rep), REDIS_OK);
        freeReplyObject(rep);
    }
}

static int fill_all(int id) { (void)id; return 1; }
static int fill_90(int id) { return id % 10 != 3; }      /* 1 000 free */
static int fill_99_9(int id) { return id % 1000 != 7; }  /* 10 free */

static int is_digits4(const char *id) { return strlen(id) == 4 && strspn(id, "0123456789") == 4; }

/* n calls at once; every answer must be an id never answered before in
 * this test (test:seen). Returns the slots (caller frees). */
static free_slot *get_many(room_fx *f, int n)
{
    free_slot *slots = calloc((size_t)n, sizeof *slots);
    assert_non_null(slots);
    for (int i = 0; i < n; i++)
        assert_int_equal(pd_room_get_free(f->r, on_free_done, &slots[i]), PD_OK);
    RFX_WAIT(&f->l, all_done(slots, n), 20000);
    redisContext *c = f->c;
    for (int i = 0; i < n; i++) {
        assert_int_equal(slots[i].done, 1);
        assert_true(pd_id_valid(pd_slice_cstr(slots[i].id)));
        redisAppendCommand(c, "SADD test:seen %s", slots[i].id);
    }
    for (int i = 0; i < n; i++) { /* SADD answers 0 for an id seen before */
        redisReply *rep = NULL;
        assert_int_equal(redisGetReply(c, (void **)&rep), REDIS_OK);
        assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
        assert_int_equal(rep->integer, 1);
        freeReplyObject(rep);
    }
    return slots;
}

static void get_free_hands_out_every_4_digit_id_once_from_empty(void **state)
{
    room_fx *f = *state;
    for (int k = 0; k < 10; k++) {
        free_slot *b = get_many(f, 1000);
        for (int i = 0; i < 1000; i++)
            assert_true(is_digits4(b[i].id));
        free(b);
    }
    assert_int_equal(rfx_int(f->c, "SCARD pd:short:free"), 0);
    assert_int_equal(rfx_int(f->c, "ZCARD pd:short:used"), 10000);
    /* The space is now full: the next one is 4 alphanumeric characters. */
    free_slot *s = get_many(f, 1);
    assert_int_equal(strlen(s[0].id), 4);
    assert_false(is_digits4(s[0].id));
    free(s);
}

/* Calls of one command in INFO commandstats, 0 when it never ran. */
static long cmd_calls(room_fx *f, const char *cmd)
{
    redisReply *rep = redisCommand(f->c, "INFO commandstats");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
    const char *at = strstr(rep->str, needle);
    long n = at ? atol(at + strlen(needle)) : 0;
    freeReplyObject(rep);
    return n;
}

static void scripts_go_by_digest_and_survive_an_emptied_cache(void **state)
{
    room_fx *f = *state;
    redisReply *rep = redisCommand(f->c, "SCRIPT FLUSH");
    freeReplyObject(rep);
    rep = redisCommand(f->c, "CONFIG RESETSTAT");
    freeReplyObject(rep);
    unsigned long sends = pd_script_text_sends();
    for (int i = 0; i < 3; i++)
        free(get_many(f, 1));
    /* The text went at most once (on a connection it had not reached, or
     * after a NOSCRIPT); the other calls were 40-byte digests. */
    assert_true(cmd_calls(f, "eval") <= 1);
    assert_true(cmd_calls(f, "evalsha") >= 2);
    assert_true(pd_script_text_sends() - sends <= 1);
    /* Emptied under a live connection: the digest is refused, the text
     * follows, and the caller sees only the script's answer. */
    rep = redisCommand(f->c, "SCRIPT FLUSH");
    freeReplyObject(rep);
    sends = pd_script_text_sends();
    free_slot *s = get_many(f, 1);
    assert_true(is_digits4(s[0].id));
    free(s);
    assert_int_equal(pd_script_text_sends() - sends, 1);
    free(get_many(f, 1));
    assert_int_equal(pd_script_text_sends() - sends, 1);
}

static void get_free_at_90_percent_hands_out_exactly_the_free_ids(void **state)
{
    room_fx *f = *state;
    fill_short(f, fill_90);
    free_slot *s = get_many(f, 1000);
    for (int i = 0; i < 1000; i++) {
        assert_true(is_digits4(s[i].id));
        assert_int_equal(atoi(s[i].id) % 10, 3);
        assert_between(rfx_int(f->c, "TTL room:%s", s[i].id), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    }
    free(s);
    s = get_many(f, 3);
    for (int i = 0; i < 3; i++)
        assert_false(is_digits4(s[i].id));
    free(s);
}

static void get_free_at_99_9_percent_finds_the_last_ten(void **state)
{
    room_fx *f = *state;
    fill_short(f, fill_99_9);
    /* The first 20 calls sort the space, 500 ids each; a call whose step
     * found no free id falls back. By the 30th, every free id is out. */
    free_slot *s = get_many(f, 30);
    int digits = 0;
    for (int i = 0; i < 30; i++)
        if (is_digits4(s[i].id)) {
            digits++;
            assert_int_equal(atoi(s[i].id) % 1000, 7);
        }
    assert_int_equal(digits, 10);
    free(s);
}

static void get_free_when_full_falls_back_to_alphanumeric(void **state)
{
    room_fx *f = *state;
    fill_short(f, fill_all);
    free_slot *s = get_many(f, 20);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(strlen(s[i].id), 4);
        assert_false(is_digits4(s[i].id));
        assert_int_equal(rfx_int(f->c, "HEXISTS room:%s created_at", s[i].id), 1);
        assert_between(rfx_int(f->c, "TTL room:%s", s[i].id), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    }
    free(s);
    /* Sorting the space is done once, in 20 bounded steps. */
    char seeded[16];
    assert_true(rfx_str(f->c, seeded, sizeof seeded, "GET pd:short:seeded"));
    assert_string_equal(seeded, "10000");
    assert_int_equal(rfx_int(f->c, "ZCARD pd:short:used"), 10000);
}

static long long zscore(room_fx *f, const char *id)
{
    char buf[32];
    if (!rfx_str(f->c, buf, sizeof buf, "ZSCORE pd:short:used %s", id))
        return -1;
    return atoll(buf);
}

/* ---- reserve and claim (the room API's pool) ------------------------------ */

static long long redis_now_ms(room_fx *f)
{
    return rfx_int(f->c, "EVAL %s 0", "local t = redis.call('TIME') return t[1] * 1000");
}

typedef struct reserve_slot {
    int done, n;
    char ids[PD_ROOM_RESERVE_MAX][PD_ROOM_RESERVED_ID_MAX + 1];
} reserve_slot;

static void on_reserved(const char *const *ids, int n, void *data)
{
    reserve_slot *s = data;
    s->done++;
    s->n = n;
    for (int i = 0; i < n; i++)
        snprintf(s->ids[i], sizeof s->ids[i], "%s", ids[i]);
}

static reserve_slot reserve(room_fx *f, int want, long ttl)
{
    reserve_slot s = {0};
    assert_int_equal(pd_room_reserve(f->r, want, ttl, on_reserved, &s), PD_OK);
    RFX_WAIT(&f->l, s.done, 5000);
    assert_int_equal(s.done, 1);
    return s;
}

typedef struct claim_wait {
    int done;
    long claimed, created;
    long long redis_ms;
} claim_wait;

static void on_claim_done(const pd_room_claimed *res, void *data)
{
    claim_wait *w = data;
    w->done++;
    w->claimed = res->claimed;
    w->created = res->created;
    w->redis_ms = res->redis_ms;
}

/* Claims ids answered age_ms ago; returns how many were claimed, and in
 * *created how many were created again. */
static long claim_when(room_fx *f, const char *const *ids, size_t n, uint64_t handed_ms, uint64_t age_ms,
                       long *created)
{
    pd_room_claim_id cl[PD_ROOM_CLAIM_MAX];
    for (size_t i = 0; i < n; i++)
        cl[i] = (pd_room_claim_id){pd_slice_cstr(ids[i]), handed_ms, age_ms};
    claim_wait w = {0};
    assert_int_equal(pd_room_claim(f->r, cl, n, on_claim_done, &w), PD_OK);
    RFX_WAIT(&f->l, w.done, 5000);
    assert_int_equal(w.done, 1);
    assert_true(w.redis_ms > 0);
    *created = w.created;
    return w.claimed;
}

static long claim_aged(room_fx *f, const char *const *ids, size_t n, uint64_t age_ms, long *created)
{
    return claim_when(f, ids, n, 0, age_ms, created);
}

static long claim(room_fx *f, const char *const *ids, size_t n, long *created)
{
    return claim_aged(f, ids, n, 0, created);
}

/* A join that found the room reserved, asked again: pd_room_join_again. */
static pd_join_result join_again(room_fx *f, const char *sid, const char *room, long long seen_ms)
{
    join_wait w = {0};
    assert_int_equal(pd_room_join_again(f->r, pd_slice_cstr(sid), pd_slice_cstr(room), "10.0.0.9", seen_ms, 0, "w1",
                                        on_join_done, &w),
                     PD_OK);
    RFX_WAIT(&f->l, w.done, 3000);
    assert_int_equal(w.done, 1);
    return w.res;
}

static void a_join_waiting_since_before_the_hand_out_is_refused(void **state)
{
    room_fx *f = *state;
    reserve_slot a = reserve(f, 2, 120);
    assert_int_equal(a.n, 2);
    /* Both found reserved; Redis says when. */
    join_wait w = {0};
    assert_int_equal(pd_room_join(f->r, pd_slice_cstr("owner"), pd_slice_cstr(a.ids[0]), "10.0.0.9", 0, 0, "w1",
                                  on_join_done, &w),
                     PD_OK);
    RFX_WAIT(&f->l, w.done, 3000);
    assert_int_equal(w.res.status, PD_JOIN_RESERVED);
    long long seen = w.res.seen_ms;
    assert_true(seen > redis_now_ms(f) - 10000 && seen < redis_now_ms(f) + 1000); /* that is in whole seconds */
    /* The first id was answered 10 s ago (its claim came late): a join
     * that found it reserved since is the client's. */
    long created = -1;
    assert_int_equal(claim_aged(f, (const char *const *)&(const char *){a.ids[0]}, 1, 10000, &created), 1);
    long long handed = rfx_int(f->c, "EVAL %s 1 room:%s", "return tonumber(redis.call('HGET', KEYS[1], 'handed_at'))",
                               a.ids[0]);
    assert_true(handed < seen);
    assert_int_equal(join_again(f, "owner", a.ids[0], seen).status, PD_JOIN_OK);
    /* The second is answered well after the join first found it: that
     * join was waiting before the hand-out, a stranger's. */
    rfx_run_for(&f->l, PD_JOIN_HANDED_SLACK_MS * 4);
    assert_int_equal(claim_aged(f, (const char *const *)&(const char *){a.ids[1]}, 1, 0, &created), 1);
    assert_int_equal(join_again(f, "stranger", a.ids[1], seen).status, PD_JOIN_HANDED_BEFORE);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:stranger"), 0);
    /* The room API's estimate of the hand-out's time, on Redis's clock,
     * is what the room records when it has one. */
    reserve_slot b = reserve(f, 3, 120);
    assert_int_equal(b.n, 3);
    assert_int_equal(claim_when(f, (const char *const *)&(const char *){b.ids[0]}, 1, (uint64_t)seen - 10000, 0,
                                &created),
                     1);
    assert_int_equal(join_again(f, "owner3", b.ids[0], seen).status, PD_JOIN_OK);
    assert_int_equal(claim_when(f, (const char *const *)&(const char *){b.ids[1]}, 1, (uint64_t)seen + 1000, 0,
                                &created),
                     1);
    assert_int_equal(join_again(f, "stranger2", b.ids[1], seen).status, PD_JOIN_HANDED_BEFORE);
    /* A room made since by other means (create_room after Redis lost the
     * reserved one) is not the one the join waited for. */
    rfx_ok(f->c, "DEL room:%s", b.ids[2]);
    long_wait lw = {0};
    assert_int_equal(pd_room_create(f->r, pd_slice_cstr(b.ids[2]), on_long_done, &lw), PD_OK);
    RFX_WAIT(&f->l, lw.done, 3000);
    assert_int_equal(join_again(f, "stranger3", b.ids[2], seen).status, PD_JOIN_HANDED_BEFORE);
    /* A first try (no seen time) is an ordinary join. */
    assert_int_equal(join(f, "owner2", a.ids[1], "10.0.0.9", 0), PD_JOIN_OK);
    assert_int_equal(pd_room_join_again(f->r, pd_slice_cstr("x"), pd_slice_cstr(a.ids[1]), "10.0.0.9", 0, 0, "w1",
                                        on_join_done, &w),
                     PD_ERR);
}

static void reserve_takes_distinct_free_ids_with_a_short_life(void **state)
{
    room_fx *f = *state;
    fill_short(f, fill_90);
    for (int k = 0; k < 20; k++) /* sort the space first (20 steps) */
        free(get_many(f, 1));
    reserve_slot a = reserve(f, 64, 120), b = reserve(f, 64, 120);
    assert_int_equal(a.n, 64);
    assert_int_equal(b.n, 64);
    long long now = redis_now_ms(f);
    for (int i = 0; i < 128; i++) {
        const char *id = i < 64 ? a.ids[i] : b.ids[i - 64];
        assert_true(is_digits4(id));
        assert_int_equal(atoi(id) % 10, 3); /* only the free ones */
        assert_int_equal(rfx_int(f->c, "SADD test:seen %s", id), 1);
        assert_int_equal(rfx_int(f->c, "HEXISTS room:%s created_at", id), 1);
        assert_between(rfx_int(f->c, "TTL room:%s", id), 110, 120);
        /* Due when the reservation lapses, not 24 h on. */
        assert_between(zscore(f, id), now + 110000, now + 121000);
    }
    /* get_room afterwards never hands out a reserved id. */
    free_slot *s = get_many(f, 100);
    free(s);
}

static void claim_gives_a_reserved_room_24_hours_and_leaves_the_rest(void **state)
{
    room_fx *f = *state;
    reserve_slot a = reserve(f, 4, 120);
    assert_int_equal(a.n, 4);
    /* Reserved: nobody can join it before it is handed out. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(rfx_int(f->c, "HEXISTS room:%s reserved", a.ids[i]), 1);
    assert_int_equal(join(f, "early", a.ids[0], "10.0.0.9", 0), PD_JOIN_RESERVED);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:early"), 0);
    /* Redis lost the third's reservation and someone else created that id
     * by name; the fourth is gone. The claim takes the first, leaves the
     * third to its owner, and creates the fourth again (its id has gone to
     * a client). */
    rfx_ok(f->c, "HDEL room:%s reserved", a.ids[2]);
    rfx_ok(f->c, "EXPIRE room:%s 500", a.ids[2]);
    rfx_ok(f->c, "DEL room:%s", a.ids[3]);
    if (is_digits4(a.ids[3])) /* as a FLUSHALL and a re-seed would leave it */
        rfx_ok(f->c, "SADD pd:short:free %s", a.ids[3]);
    const char *ids[3] = {a.ids[0], a.ids[2], a.ids[3]};
    long created = -1;
    assert_int_equal(claim(f, ids, 3, &created), 1);
    assert_int_equal(created, 1);
    long long now = redis_now_ms(f);
    assert_int_equal(rfx_int(f->c, "HEXISTS room:%s reserved", a.ids[0]), 0);
    assert_between(rfx_int(f->c, "TTL room:%s", a.ids[0]), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    assert_between(zscore(f, a.ids[0]), now + 86390000, now + 86401000);
    assert_between(rfx_int(f->c, "TTL room:%s", a.ids[1]), 110, 120); /* not handed out */
    assert_between(zscore(f, a.ids[1]), now + 110000, now + 121000);
    assert_between(rfx_int(f->c, "TTL room:%s", a.ids[2]), 490, 500);
    assert_int_equal(rfx_int(f->c, "HEXISTS room:%s reserved", a.ids[3]), 0);
    assert_between(rfx_int(f->c, "TTL room:%s", a.ids[3]), PD_ROOM_TTL_S - 10, PD_ROOM_TTL_S);
    if (is_digits4(a.ids[3])) {
        assert_int_equal(rfx_int(f->c, "SISMEMBER pd:short:free %s", a.ids[3]), 0);
        assert_between(zscore(f, a.ids[3]), now + 86390000, now + 86401000);
    }
    /* Claimed: joined like any room; a second claim (one sent again after
     * its answer was lost) changes nothing, even once the room emptied. */
    assert_int_equal(join(f, "early", a.ids[0], "10.0.0.9", 0), PD_JOIN_OK);
    assert_int_equal(join(f, "late", a.ids[3], "10.0.0.9", 0), PD_JOIN_OK);
    rfx_ok(f->c, "EXPIRE room:%s 900", a.ids[0]);
    assert_int_equal(claim(f, ids, 1, &created), 0);
    assert_int_equal(created, 0);
    assert_between(rfx_int(f->c, "TTL room:%s", a.ids[0]), 890, 900);
}

static void reserve_when_full_takes_alphanumeric_ids_and_bounds_its_arguments(void **state)
{
    room_fx *f = *state;
    fill_short(f, fill_all);
    for (int k = 0; k < 20; k++) /* sort the space first (20 steps) */
        free(get_many(f, 1));
    reserve_slot a = reserve(f, 16, 120);
    assert_true(a.n >= 12); /* one 4-character guess per id, 4 six-character ones */
    for (int i = 0; i < a.n; i++) {
        assert_false(is_digits4(a.ids[i]));
        assert_true(pd_id_valid(pd_slice_cstr(a.ids[i])));
        assert_between(rfx_int(f->c, "TTL room:%s", a.ids[i]), 110, 120);
    }
    assert_int_equal(pd_room_reserve(f->r, 0, 120, on_reserved, &a), PD_ERR);
    assert_int_equal(pd_room_reserve(f->r, PD_ROOM_RESERVE_MAX + 1, 120, on_reserved, &a), PD_ERR);
    assert_int_equal(pd_room_reserve(f->r, 1, 0, on_reserved, &a), PD_ERR);
    pd_slice none[1] = {pd_slice_cstr("x")};
    pd_room_claim_id cl[1] = {{none[0], 0, 0}};
    assert_int_equal(pd_room_claim(f->r, cl, 0, NULL, NULL), PD_ERR);
    assert_int_equal(pd_room_claim(f->r, cl, PD_ROOM_CLAIM_MAX + 1, NULL, NULL), PD_ERR);
}

static void get_free_skips_an_id_taken_by_name_and_remembers_it(void **state)
{
    room_fx *f = *state;
    fill_short(f, fill_all);
    free_slot *s = get_many(f, 20); /* sorts the whole space */
    free(s);
    /* 0001 and 0002 come due with their rooms gone: one call reclaims both
     * and hands out one. */
    rfx_ok(f->c, "DEL room:0001 room:0002");
    rfx_ok(f->c, "ZADD pd:short:used XX 0 0001");
    rfx_ok(f->c, "ZADD pd:short:used XX 0 0002");
    s = get_many(f, 1);
    assert_true(strcmp(s[0].id, "0001") == 0 || strcmp(s[0].id, "0002") == 0);
    const char *other = strcmp(s[0].id, "0001") == 0 ? "0002" : "0001";
    free(s);
    /* The other one is known free; create_room takes it by name. */
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:short:free %s", other), 1);
    long_wait w = {0};
    assert_int_equal(pd_room_create(f->r, pd_slice_cstr(other), on_long_done, &w), PD_OK);
    RFX_WAIT(&f->l, w.done, 3000);
    s = get_many(f, 1);
    assert_false(is_digits4(s[0].id));
    free(s);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:short:free %s", other), 0);
    assert_true(zscore(f, other) > redis_now_ms(f) + (PD_ROOM_TTL_S - 10) * 1000LL);
}

static void get_free_reclaims_an_expired_id_and_rescores_a_living_one(void **state)
{
    room_fx *f = *state;
    fill_short(f, fill_all);
    free_slot *s = get_many(f, 20); /* sorts the whole space */
    free(s);
    /* 0042's room is gone and its time has come; 0043's has come too but
     * its room lives on (a join lengthened it). */
    rfx_ok(f->c, "DEL room:0042");
    rfx_ok(f->c, "ZADD pd:short:used XX 0 0042");
    rfx_ok(f->c, "ZADD pd:short:used XX 0 0043");
    s = get_many(f, 2);
    assert_string_equal(s[0].id, "0042");
    assert_false(is_digits4(s[1].id));
    free(s);
    assert_true(zscore(f, "0043") > redis_now_ms(f) + (PD_ROOM_TTL_S - 10) * 1000LL);
}

static void leave_that_empties_a_short_room_moves_its_due_time(void **state)
{
    room_fx *f = *state;
    free_slot *s = get_many(f, 1);
    char room[16];
    snprintf(room, sizeof room, "%s", s[0].id);
    free(s);
    long long now_ms = redis_now_ms(f);
    assert_true(zscore(f, room) > now_ms + (PD_ROOM_TTL_S - 10) * 1000LL);
    join_wait j = join_max(f, "sidA", room, "10.0.0.1", 0, 0, "w1");
    assert_int_equal(j.res.status, PD_JOIN_OK);
    long_wait w = {0};
    assert_int_equal(pd_room_leave(f->r, pd_slice_cstr("sidA"), pd_slice_cstr(room), "w1", on_long_done, &w), PD_OK);
    RFX_WAIT(&f->l, w.done, 3000);
    long long due = zscore(f, room);
    assert_between(due, now_ms + (PD_ROOM_EMPTY_TTL_S - 10) * 1000LL, now_ms + (PD_ROOM_EMPTY_TTL_S + 10) * 1000LL);
    assert_true(due <= now_ms + 1000 + rfx_int(f->c, "PTTL room:%s", room));
}

/* ---- track -------------------------------------------------------------------- */

static void track_counts_referrers_per_day_with_30_day_ttl(void **state)
{
    room_fx *f = *state;
    const char *ref = "https://example.com/page?a=b c";
    for (int i = 0; i < 2; i++) {
        long_wait w = {0};
        assert_int_equal(pd_room_track(f->r, pd_slice_cstr("2024-05-01"), pd_slice_cstr(ref), on_long_done, &w),
                         PD_OK);
        assert_int_equal(wait_long(f, &w), 0);
    }
    long_wait w = {0};
    pd_room_track(f->r, pd_slice_cstr("2024-05-01"), pd_slice_cstr("direct"), on_long_done, &w);
    assert_int_equal(wait_long(f, &w), 0);
    char buf[64];
    rfx_str(f->c, buf, sizeof buf, "HGET referrers:daily:2024-05-01 %s", ref);
    assert_string_equal(buf, "2");
    rfx_str(f->c, buf, sizeof buf, "HGET referrers:daily:2024-05-01 direct");
    assert_string_equal(buf, "1");
    assert_between(rfx_int(f->c, "TTL referrers:daily:2024-05-01"), PD_REFERRER_TTL_S - 10, PD_REFERRER_TTL_S);
    assert_int_equal(rfx_int(f->c, "EXISTS referrers:daily:2024-05-02"), 0);
}

/* ---- cluster bookkeeping ---------------------------------------------------- */

static long conn_total(room_fx *f)
{
    long_wait w = {0};
    assert_int_equal(pd_cluster_conn_total(f->r, on_long_done, &w), PD_OK);
    return wait_long(f, &w);
}

static void forget_socket_drops_it_from_the_instance_set_only(void **state)
{
    room_fx *f = *state;
    rfx_ok(f->c, "SADD pd:worker:fs-1:sockets sockA sockB");
    rfx_ok(f->c, "SADD pd:worker:fs-2:sockets sockA");
    assert_int_equal(pd_cluster_forget_socket(f->r, "fs-1", pd_slice_cstr("sockA")), PD_OK);
    barrier(f);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:fs-1:sockets sockA"), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:fs-1:sockets sockB"), 1);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:fs-2:sockets sockA"), 1);
}

static void heartbeat_registers_instance_with_short_ttl(void **state)
{
    room_fx *f = *state;
    assert_int_equal(pd_cluster_heartbeat(f->r, "hb-1", 5), PD_OK);
    barrier(f);
    assert_int_equal(rfx_int(f->c, "EXISTS pd:worker:hb-1:hb"), 1);
    assert_between(rfx_int(f->c, "PTTL pd:worker:hb-1:hb"), 1, PD_CLUSTER_HB_TTL_MS);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:workers hb-1"), 1);
    char buf[32];
    rfx_str(f->c, buf, sizeof buf, "HGET pd:conns hb-1");
    assert_string_equal(buf, "5");
    /* A later heartbeat overwrites the count. */
    pd_cluster_heartbeat(f->r, "hb-1", 2);
    barrier(f);
    rfx_str(f->c, buf, sizeof buf, "HGET pd:conns hb-1");
    assert_string_equal(buf, "2");
}

static void conn_delta_and_total_count_only_live_instances(void **state)
{
    room_fx *f = *state;
    pd_cluster_heartbeat(f->r, "c1", 6);
    pd_cluster_heartbeat(f->r, "c2", 4);
    barrier(f);
    rfx_ok(f->c, "HSET pd:conns ghost 100"); /* no heartbeat: not counted */
    assert_int_equal(conn_total(f), 10);

    long_wait w = {0};
    assert_int_equal(pd_cluster_conn_delta(f->r, "c1", 3, on_long_done, &w), PD_OK);
    assert_int_equal(wait_long(f, &w), 9);
    w.done = 0;
    assert_int_equal(pd_cluster_conn_delta(f->r, "c1", -2, on_long_done, &w), PD_OK);
    assert_int_equal(wait_long(f, &w), 7);
    assert_int_equal(pd_cluster_conn_delta(f->r, "c2", 1, NULL, NULL), PD_OK);
    barrier(f);
    assert_int_equal(conn_total(f), 12);

    /* When c2's heartbeat expires its count no longer adds up. */
    rfx_ok(f->c, "DEL pd:worker:c2:hb");
    assert_int_equal(conn_total(f), 7);
}

static void conn_total_of_empty_cluster_is_zero(void **state)
{
    room_fx *f = *state;
    assert_int_equal(conn_total(f), 0);
}

typedef struct reaped_log {
    int n;             /* reaped_cb calls */
    char rooms[8][16]; /* room per call */
    char sids[8][16];  /* socket per call */
} reaped_log;

static void on_reaped(const char *room, const char *sid, void *data)
{
    reaped_log *log = data;
    if (log->n < 8) {
        snprintf(log->rooms[log->n], sizeof log->rooms[0], "%s", room);
        snprintf(log->sids[log->n], sizeof log->sids[0], "%s", sid);
    }
    log->n++;
}

typedef struct reap_wait {
    reaped_log log;
    int done;
    long n;
} reap_wait;

static void on_reap_done(long n, void *data)
{
    reap_wait *w = data;
    w->done++;
    w->n = n;
}

static reap_wait *reap(room_fx *f, const char *owner)
{
    reap_wait *w = calloc(1, sizeof *w);
    assert_non_null(w);
    /* The same data pointer reaches both callbacks. */
    assert_int_equal(pd_cluster_reap(f->r, owner, on_reaped, on_reap_done, w), PD_OK);
    RFX_WAIT(&f->l, w->done, 3000);
    assert_int_equal(w->done, 1);
    return w;
}

static int log_has(const reaped_log *log, const char *room, const char *sid)
{
    for (int i = 0; i < log->n && i < 8; i++)
        if (strcmp(log->rooms[i], room) == 0 && strcmp(log->sids[i], sid) == 0)
            return 1;
    return 0;
}

static void reaper_unbinds_sockets_of_dead_instances_only(void **state)
{
    room_fx *f = *state;
    pd_cluster_heartbeat(f->r, "live", 1);
    pd_cluster_heartbeat(f->r, "dead", 3);
    barrier(f);
    create(f, "r1");
    create(f, "r2");
    assert_int_equal(join_ex(f, "s1", "r1", "ip", 0, "dead").res.status, PD_JOIN_OK);
    assert_int_equal(join_ex(f, "s2", "r1", "ip", 0, "dead").res.status, PD_JOIN_OK);
    assert_int_equal(join_ex(f, "s3", "r2", "ip", 0, "dead").res.status, PD_JOIN_OK);
    assert_int_equal(join_ex(f, "s4", "r2", "ip", 0, "live").res.status, PD_JOIN_OK);
    rfx_ok(f->c, "DEL pd:worker:dead:hb"); /* the instance died */

    reap_wait *w = reap(f, "live");
    assert_int_equal(w->n, 3);
    assert_int_equal(w->log.n, 3);
    assert_true(log_has(&w->log, "r1", "s1"));
    assert_true(log_has(&w->log, "r1", "s2"));
    assert_true(log_has(&w->log, "r2", "s3"));
    free(w);

    /* The dead instance's sockets are unbound ... */
    for (int i = 1; i <= 3; i++)
        assert_int_equal(rfx_int(f->c, "EXISTS socket:s%d", i), 0);
    assert_int_equal(rfx_int(f->c, "EXISTS room:r1:sockets"), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:r2:sockets s3"), 0);
    /* ... the room it emptied drops to the short TTL, the other keeps its own ... */
    assert_between(rfx_int(f->c, "TTL room:r1"), 1, PD_ROOM_EMPTY_TTL_S);
    assert_true(rfx_int(f->c, "TTL room:r2") > PD_ROOM_EMPTY_TTL_S);
    /* ... and the instance itself is forgotten. */
    assert_int_equal(rfx_int(f->c, "EXISTS pd:worker:dead:sockets"), 0);
    assert_int_equal(rfx_int(f->c, "HEXISTS pd:conns dead"), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:workers dead"), 0);
    /* The live instance is untouched. */
    assert_int_equal(rfx_int(f->c, "SISMEMBER room:r2:sockets s4"), 1);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:s4"), 1);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:workers live"), 1);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:worker:live:sockets s4"), 1);
}

static void reaper_lock_prevents_a_second_reap_within_its_ttl(void **state)
{
    room_fx *f = *state;
    pd_cluster_heartbeat(f->r, "live", 0);
    barrier(f);
    reap_wait *w = reap(f, "live");
    assert_int_equal(w->n, 0);
    free(w);
    char buf[32];
    rfx_str(f->c, buf, sizeof buf, "GET pd:reaper:lock");
    assert_string_equal(buf, "live");
    assert_between(rfx_int(f->c, "PTTL pd:reaper:lock"), 1, 4000);

    /* An instance dies while the lock is held: nobody reaps it yet. */
    pd_cluster_heartbeat(f->r, "dead2", 1);
    barrier(f);
    create(f, "r3");
    assert_int_equal(join_ex(f, "s5", "r3", "ip", 0, "dead2").res.status, PD_JOIN_OK);
    rfx_ok(f->c, "DEL pd:worker:dead2:hb");
    w = reap(f, "other");
    assert_int_equal(w->n, 0);
    assert_int_equal(w->log.n, 0);
    free(w);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:s5"), 1);

    /* Once the lock is gone the next reap cleans up. */
    rfx_ok(f->c, "DEL pd:reaper:lock");
    w = reap(f, "other");
    assert_int_equal(w->n, 1);
    assert_true(log_has(&w->log, "r3", "s5"));
    free(w);
    assert_int_equal(rfx_int(f->c, "EXISTS socket:s5"), 0);
}

static void retire_removes_the_instance_keys(void **state)
{
    room_fx *f = *state;
    pd_cluster_heartbeat(f->r, "bye", 4);
    pd_cluster_heartbeat(f->r, "stay", 1);
    barrier(f);
    create(f, "rr");
    assert_int_equal(join_ex(f, "sr", "rr", "ip", 0, "bye").res.status, PD_JOIN_OK);
    long_wait w = {0};
    assert_int_equal(pd_cluster_retire(f->r, "bye", on_long_done, &w), PD_OK);
    assert_int_equal(wait_long(f, &w), 0);
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:workers bye"), 0);
    assert_int_equal(rfx_int(f->c, "HEXISTS pd:conns bye"), 0);
    assert_int_equal(rfx_int(f->c, "EXISTS pd:worker:bye:hb"), 0);
    assert_int_equal(rfx_int(f->c, "EXISTS pd:worker:bye:sockets"), 0);
    /* Other instances keep theirs. */
    assert_int_equal(rfx_int(f->c, "SISMEMBER pd:workers stay"), 1);
    assert_int_equal(rfx_int(f->c, "EXISTS pd:worker:stay:hb"), 1);
}

/* ---- not connected ------------------------------------------------------------ */

static int never_called;

static void count_join(const pd_join_result *res, void *data)
{
    (void)res;
    (void)data;
    never_called++;
}

static void count_long(long v, void *data)
{
    (void)v;
    (void)data;
    never_called++;
}

static void count_str(const char *s, void *data)
{
    (void)s;
    (void)data;
    never_called++;
}

static void count_reaped(const char *room, const char *sid, void *data)
{
    (void)room;
    (void)sid;
    (void)data;
    never_called++;
}

static void every_call_fails_fast_without_callback_when_disconnected(void **state)
{
    (void)state;
    rfx_loop l;
    rfx_loop_init(&l);
    pd_redis_options opt = {.host = "127.0.0.1", .port = rfx_free_port()};
    pd_redis *r = pd_redis_create(&l.loop, &opt, NULL, NULL, NULL);
    assert_non_null(r);
    rfx_run_for(&l, 50);
    assert_false(pd_redis_ready(r));
    never_called = 0;
    pd_slice s = pd_slice_cstr("sid"), room = pd_slice_cstr("room");
    assert_int_equal(pd_room_join(r, s, room, "ip", 1, 0, "w", count_join, NULL), PD_ERR);
    assert_int_equal(pd_room_leave(r, s, room, "w", count_long, NULL), PD_ERR);
    assert_int_equal(pd_room_grant_rejoin(r, room, "10.0.0.1", count_long, NULL), PD_ERR);
    assert_int_equal(pd_room_exists(r, room, count_long, NULL), PD_ERR);
    assert_int_equal(pd_room_create(r, room, count_long, NULL), PD_ERR);
    assert_int_equal(pd_room_get_free(r, count_str, NULL), PD_ERR);
    assert_int_equal(pd_room_track(r, pd_slice_cstr("2024-01-01"), s, count_long, NULL), PD_ERR);
    assert_int_equal(pd_cluster_heartbeat(r, "w", 1), PD_ERR);
    assert_int_equal(pd_cluster_conn_delta(r, "w", 1, count_long, NULL), PD_ERR);
    assert_int_equal(pd_cluster_conn_total(r, count_long, NULL), PD_ERR);
    assert_int_equal(pd_cluster_reap(r, "w", count_reaped, count_long, NULL), PD_ERR);
    assert_int_equal(pd_cluster_retire(r, "w", count_long, NULL), PD_ERR);
    rfx_run_for(&l, 50);
    assert_int_equal(never_called, 0);
    assert_int_equal(pd_redis_pending(r), 0);
    pd_redis_free(r);
    rfx_loop_close(&l);
}

#define ROOM_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ROOM_TEST(join_binds_socket_and_sets_every_key_and_ttl),
        ROOM_TEST(join_copies_its_arguments_before_returning),
        ROOM_TEST(rejoin_same_room_is_reported_and_never_rate_limited),
        ROOM_TEST(join_while_bound_elsewhere_is_refused_first),
        ROOM_TEST(join_missing_room_changes_nothing),
        ROOM_TEST(rate_limit_is_checked_before_room_existence),
        ROOM_TEST(third_new_join_from_one_address_is_rate_limited),
        ROOM_TEST(rejoin_credit_pays_one_join_of_its_room_only),
        ROOM_TEST(rate_limit_off_lets_every_join_through),
        ROOM_TEST(rate_limit_window_slides_and_reports_time_to_reset),
        ROOM_TEST(join_reports_error_when_redis_fails_the_script),
        ROOM_TEST(full_room_refuses_new_sockets_but_not_rejoins),
        ROOM_TEST(room_size_is_checked_after_existence_and_rate_limit),
        ROOM_TEST(leave_reports_bits_and_empties_room_to_short_ttl),
        ROOM_TEST(leave_by_non_member_keeps_room_lifetime),
        ROOM_TEST(leave_keeps_socket_key_that_points_to_another_room),
        ROOM_TEST(leave_without_owner_keeps_owner_set),
        ROOM_TEST(leave_reports_error_on_redis_failure),
        ROOM_TEST(create_is_atomic_once_and_sets_created_at_and_ttl),
        ROOM_TEST(exists_follows_created_at),
        ROOM_TEST(get_free_hands_out_distinct_4_digit_ids_under_concurrency),
        ROOM_TEST(get_free_hands_out_every_4_digit_id_once_from_empty),
        ROOM_TEST(get_free_at_90_percent_hands_out_exactly_the_free_ids),
        ROOM_TEST(scripts_go_by_digest_and_survive_an_emptied_cache),
        ROOM_TEST(get_free_at_99_9_percent_finds_the_last_ten),
        ROOM_TEST(get_free_when_full_falls_back_to_alphanumeric),
        ROOM_TEST(get_free_skips_an_id_taken_by_name_and_remembers_it),
        ROOM_TEST(reserve_takes_distinct_free_ids_with_a_short_life),
        ROOM_TEST(claim_gives_a_reserved_room_24_hours_and_leaves_the_rest),
        ROOM_TEST(a_join_waiting_since_before_the_hand_out_is_refused),
        ROOM_TEST(reserve_when_full_takes_alphanumeric_ids_and_bounds_its_arguments),
        ROOM_TEST(get_free_reclaims_an_expired_id_and_rescores_a_living_one),
        ROOM_TEST(leave_that_empties_a_short_room_moves_its_due_time),
        ROOM_TEST(track_counts_referrers_per_day_with_30_day_ttl),
        ROOM_TEST(heartbeat_registers_instance_with_short_ttl),
        ROOM_TEST(forget_socket_drops_it_from_the_instance_set_only),
        ROOM_TEST(conn_delta_and_total_count_only_live_instances),
        ROOM_TEST(conn_total_of_empty_cluster_is_zero),
        ROOM_TEST(reaper_unbinds_sockets_of_dead_instances_only),
        ROOM_TEST(reaper_lock_prevents_a_second_reap_within_its_ttl),
        ROOM_TEST(retire_removes_the_instance_keys),
        cmocka_unit_test(every_call_fails_fast_without_callback_when_disconnected),
    };
    return cmocka_run_group_tests(tests, rfx_group_setup, rfx_group_teardown);
}
