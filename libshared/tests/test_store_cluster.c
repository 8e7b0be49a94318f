/* The room schema in cluster mode (store_cluster.c) against a real
 * cluster-enabled redis-server serving every slot, through pd_redis with
 * REDIS_CLUSTER_NODES semantics: every join outcome of the per-slot steps
 * (bound, re-join, bound elsewhere, full, rate limited, no room, a re-join
 * credit), the undo of a failed join's binding, leave from a worker and
 * from the room API, the reaper's steps over a dead worker, heartbeats,
 * counts, retire and get_room — checked on the hash-tagged keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "privydrop/pd_redis.h"
#include "privydrop/pd_room.h"
#include "redis_fixture.h"

typedef struct fx {
    rfx_loop l;
    pd_redis *r;
    redisContext *c;
    pid_t pid;
    char dir[64];
    int done;
    pd_join_status status;
    long num;
    char str[64];
    int reaped;
    char reaped_room[64], reaped_sid[64];
} fx;

static fx F;

static int group_setup(void **state)
{
    (void)state;
    snprintf(F.dir, sizeof F.dir, "/tmp/pd-cstore-test-XXXXXX");
    if (!mkdtemp(F.dir))
        return -1;
    int port = rfx_free_port(), bus = rfx_free_port();
    char p[16], b[16], conf[128];
    snprintf(p, sizeof p, "%d", port);
    snprintf(b, sizeof b, "%d", bus);
    snprintf(conf, sizeof conf, "%s/nodes.conf", F.dir);
    char *argv[] = {"redis-server", "--port", p, "--cluster-port", b, "--bind", "127.0.0.1", "--cluster-enabled",
                    "yes", "--cluster-config-file", conf, "--dir", F.dir, "--save", "", "--appendonly", "no",
                    "--daemonize", "no", NULL};
    F.pid = rfx_spawn(argv, port);
    if (F.pid <= 0)
        return -1;
    F.c = rfx_sync(port);
    if (!F.c)
        return -1;
    redisReply *rep = redisCommand(F.c, "CLUSTER ADDSLOTSRANGE 0 16383");
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        return -1;
    freeReplyObject(rep);
    for (int i = 0; i < 500; i++) {
        rep = redisCommand(F.c, "CLUSTER INFO");
        int ok = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, "cluster_state:ok");
        freeReplyObject(rep);
        if (ok)
            break;
        rfx_sleep_ms(20);
    }
    rfx_loop_init(&F.l);
    char seeds[32];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", port);
    pd_redis_options opt = {0};
    opt.cluster_nodes = seeds;
    opt.watchdog_ms = 200;
    F.r = pd_redis_create(&F.l.loop, &opt, NULL, NULL, NULL);
    if (!F.r)
        return -1;
    RFX_WAIT(&F.l, pd_redis_ready(F.r), 10000);
    return pd_redis_ready(F.r) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    pd_redis_free(F.r);
    rfx_loop_close(&F.l);
    redisFree(F.c);
    kill(F.pid, SIGKILL);
    waitpid(F.pid, NULL, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/nodes.conf", F.dir);
    unlink(path);
    rmdir(F.dir);
    return 0;
}

static void on_join(const pd_join_result *res, void *data)
{
    (void)data;
    F.status = res->status;
    F.done = 1;
}

static void on_num(long v, void *data)
{
    (void)data;
    F.num = v;
    F.done = 1;
}

static void on_str(const char *room, void *data)
{
    (void)data;
    snprintf(F.str, sizeof F.str, "%s", room ? room : "");
    F.done = 1;
}

static void on_reaped(const char *room, const char *sid, void *data)
{
    (void)data;
    F.reaped++;
    snprintf(F.reaped_room, sizeof F.reaped_room, "%s", room);
    snprintf(F.reaped_sid, sizeof F.reaped_sid, "%s", sid);
}

#define WAIT_DONE()                                                                                 \
    do {                                                                                            \
        RFX_WAIT(&F.l, F.done, 5000);                                                               \
        assert_true(F.done);                                                                        \
        F.done = 0;                                                                                 \
    } while (0)

static pd_join_status join(const char *sid, const char *room, const char *ip, long maxp, const char *owner)
{
    assert_int_equal(pd_room_join(F.r, pd_slice_cstr(sid), pd_slice_cstr(room), ip, 1, maxp, owner, on_join, NULL),
                     PD_OK);
    WAIT_DONE();
    return F.status;
}

static long create(const char *room)
{
    assert_int_equal(pd_room_create(F.r, pd_slice_cstr(room), on_num, NULL), PD_OK);
    WAIT_DONE();
    return F.num;
}

/* Let fire-and-forget steps (an undo, an unbind) land. */
static void settle(void)
{
    assert_int_equal(pd_room_exists(F.r, pd_slice_cstr("settle"), on_num, NULL), PD_OK);
    WAIT_DONE();
    rfx_run_for(&F.l, 20);
}

static void joins(void **state)
{
    (void)state;
    assert_int_equal(create("r1"), 1);
    assert_int_equal(create("r1"), 0);
    assert_int_equal(create("r2"), 1);
    assert_int_equal(rfx_int(F.c, "HEXISTS room:{r1} created_at"), 1);
    assert_int_equal(rfx_int(F.c, "EXISTS room:r1"), 0); /* PrivyDrop's name is not used on a cluster */
    assert_int_equal(pd_room_exists(F.r, pd_slice_cstr("r1"), on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, 1);

    /* Bound: binding and worker set written, member of the room. */
    assert_int_equal(join("s1", "r1", "10.0.0.1", 2, "w1"), PD_JOIN_OK);
    char buf[64];
    assert_true(rfx_str(F.c, buf, sizeof buf, "GET socket:{w1}:s1"));
    assert_string_equal(buf, "r1");
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:worker:{w1}:sockets s1"), 1);
    assert_int_equal(rfx_int(F.c, "SISMEMBER room:{r1}:sockets s1"), 1);
    assert_true(rfx_int(F.c, "TTL room:{r1}:sockets") > 86000);
    /* Again: a re-join, not counted by the rate limit, the binding's TTL
     * left as it was. */
    rfx_ok(F.c, "EXPIRE socket:{w1}:s1 1000");
    assert_int_equal(join("s1", "r1", "10.0.0.1", 2, "w1"), PD_JOIN_REJOIN);
    assert_true(rfx_int(F.c, "TTL socket:{w1}:s1") <= 1000);
    assert_int_equal(rfx_int(F.c, "ZCARD ratelimit:join:10.0.0.1"), 1);
    /* Another room: refused, the binding kept. */
    assert_int_equal(join("s1", "r2", "10.0.0.1", 2, "w1"), PD_JOIN_BOUND_ELSEWHERE);
    assert_true(rfx_str(F.c, buf, sizeof buf, "GET socket:{w1}:s1"));
    assert_string_equal(buf, "r1");
    assert_int_equal(join("s2", "r1", "10.0.0.1", 2, "w1"), PD_JOIN_OK);
    /* Full at 2: the failed join leaves no binding. */
    assert_int_equal(join("s3", "r1", "10.0.0.2", 2, "w1"), PD_JOIN_FULL);
    settle();
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:s3"), 0);
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:worker:{w1}:sockets s3"), 0);
    /* A third attempt from 10.0.0.1 in the window: limited before the room is looked at. */
    assert_int_equal(join("s4", "nope", "10.0.0.1", 2, "w1"), PD_JOIN_RATE_LIMITED);
    settle();
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:s4"), 0);
    /* No room. */
    assert_int_equal(join("s5", "nope", "10.0.0.3", 2, "w1"), PD_JOIN_NO_ROOM);
    settle();
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:s5"), 0);
    /* A re-join credit pays where the limit would refuse. */
    assert_int_equal(pd_room_grant_rejoin(F.r, pd_slice_cstr("r2"), "10.0.0.1", on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, 1);
    assert_int_equal(rfx_int(F.c, "EXISTS pd:rejoin:{r2}:10.0.0.1"), 1);
    assert_int_equal(join("s4", "r2", "10.0.0.1", 0, "w1"), PD_JOIN_OK);
    assert_int_equal(rfx_int(F.c, "EXISTS pd:rejoin:{r2}:10.0.0.1"), 0);
}

static void leaves(void **state)
{
    (void)state;
    /* From the socket's worker: room first, then binding and worker set. */
    assert_int_equal(pd_room_leave(F.r, pd_slice_cstr("s2"), pd_slice_cstr("r1"), "w1", on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, PD_LEAVE_WAS_MEMBER | PD_LEAVE_ROOM_EXISTS);
    settle();
    assert_int_equal(rfx_int(F.c, "SISMEMBER room:{r1}:sockets s2"), 0);
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:s2"), 0);
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:worker:{w1}:sockets s2"), 0);
    /* From the room API (no worker): the room only; the worker forgets the
     * binding when the leave envelope reaches it. */
    assert_int_equal(pd_room_leave(F.r, pd_slice_cstr("s4"), pd_slice_cstr("r2"), NULL, on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, PD_LEAVE_WAS_MEMBER | PD_LEAVE_ROOM_EXISTS);
    assert_true(rfx_int(F.c, "TTL room:{r2}") <= PD_ROOM_EMPTY_TTL_S); /* emptied */
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:s4"), 1);
    assert_int_equal(pd_cluster_forget_socket(F.r, "w1", pd_slice_cstr("s4")), PD_OK);
    settle();
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:s4"), 0);
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:worker:{w1}:sockets s4"), 0);
}

static void refresh(const char *room, const char *owner, int restore, const char *sid)
{
    pd_slice sids[1] = {pd_slice_cstr(sid)};
    assert_int_equal(pd_room_refresh(F.r, pd_slice_cstr(room), owner, restore, sids, 1), PD_OK);
}

/* The refresh's steps run one after another on their slots; on this one
 * node, a chain sent later ends later, so waiting for the last one's
 * effect waits for all. */
static void refreshes(void **state)
{
    (void)state;
    /* Renewing: the binding and the room, while the member is in it. */
    assert_int_equal(create("rf1"), 1);
    assert_int_equal(join("f1", "rf1", "10.0.1.1", 0, "w1"), PD_JOIN_OK);
    rfx_ok(F.c, "EXPIRE room:{rf1} 100");
    rfx_ok(F.c, "EXPIRE socket:{w1}:f1 100");
    refresh("rf1", "w1", 0, "f1");
    RFX_WAIT(&F.l, rfx_int(F.c, "TTL room:{rf1}") > 86000, 5000);
    assert_true(rfx_int(F.c, "TTL room:{rf1}") > 86000);
    assert_true(rfx_int(F.c, "TTL socket:{w1}:f1") > 89000);

    /* Restoring, after Redis lost a room with a live member (f2) and a room
     * (rf3) whose member (f3) lost its binding while someone else created
     * rf3 anew: rf2 comes back with f2; f3 is bound to nothing, so a later
     * join of another room is not refused as bound elsewhere. */
    assert_int_equal(create("rf3"), 1);
    refresh("rf3", "w1", 1, "f3");
    refresh("rf2", "w1", 1, "f2");
    /* Its last step gives the restored room its 24 h (900 s until then). */
    RFX_WAIT(&F.l, rfx_int(F.c, "TTL room:{rf2}") > 86000, 5000);
    assert_int_equal(rfx_int(F.c, "SISMEMBER room:{rf2}:sockets f2"), 1);
    assert_int_equal(rfx_int(F.c, "HEXISTS room:{rf2} restored"), 1);
    assert_true(rfx_int(F.c, "TTL room:{rf2}") > 86000);
    char buf[64];
    assert_true(rfx_str(F.c, buf, sizeof buf, "GET socket:{w1}:f2"));
    assert_string_equal(buf, "rf2");
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:worker:{w1}:sockets f2"), 1);
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:f3"), 0);
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:worker:{w1}:sockets f3"), 0);
    assert_int_equal(rfx_int(F.c, "SCARD room:{rf3}:sockets"), 0);
    assert_int_equal(rfx_int(F.c, "HEXISTS room:{rf3} restored"), 0);

    /* A member whose socket closes while its room is restored: the leave's
     * steps land between the refresh's (room, leave's room step, binding,
     * leave's unbind, room), and it must not end up in the set again. Two
     * round trips after the leave's answer, every step has run. */
    assert_int_equal(create("rf4"), 1);
    assert_int_equal(join("f4", "rf4", "10.0.1.4", 0, "w1"), PD_JOIN_OK);
    rfx_ok(F.c, "DEL room:{rf4} room:{rf4}:sockets");
    refresh("rf4", "w1", 1, "f4");
    assert_int_equal(pd_room_leave(F.r, pd_slice_cstr("f4"), pd_slice_cstr("rf4"), "w1", on_num, NULL), PD_OK);
    WAIT_DONE();
    settle();
    settle();
    assert_int_equal(rfx_int(F.c, "SISMEMBER room:{rf4}:sockets f4"), 0);
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:f4"), 0);
    assert_int_equal(rfx_int(F.c, "HEXISTS room:{rf4} restored"), 1);
    long long ttl4 = rfx_int(F.c, "TTL room:{rf4}");
    assert_true(ttl4 > 0 && ttl4 <= PD_ROOM_EMPTY_TTL_S);

    /* A member that left through the room API meanwhile (its binding gone,
     * the room's set without it) is not renewed back in. */
    assert_int_equal(pd_room_leave(F.r, pd_slice_cstr("f1"), pd_slice_cstr("rf1"), NULL, on_num, NULL), PD_OK);
    WAIT_DONE();
    rfx_ok(F.c, "DEL socket:{w1}:f1");
    rfx_ok(F.c, "EXPIRE room:{rf2} 100");
    refresh("rf1", "w1", 0, "f1");
    refresh("rf2", "w1", 0, "f2");
    RFX_WAIT(&F.l, rfx_int(F.c, "TTL room:{rf2}") > 86000, 5000);
    assert_true(rfx_int(F.c, "TTL room:{rf1}") <= PD_ROOM_EMPTY_TTL_S);
    assert_int_equal(rfx_int(F.c, "SISMEMBER room:{rf1}:sockets f1"), 0);
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:f1"), 0);
}

static void fleet_and_reaper(void **state)
{
    (void)state;
    assert_int_equal(pd_cluster_heartbeat(F.r, "w1", 5), PD_OK);
    assert_int_equal(pd_cluster_conn_delta(F.r, "w1", 1, on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, 6);
    assert_int_equal(rfx_int(F.c, "EXISTS pd:{fleet}:hb:w1"), 1);
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:{fleet}:workers w1"), 1);
    /* w9: registered, a socket in r1, no heartbeat: dead. */
    assert_int_equal(join("s9", "r1", "10.0.0.9", 0, "w9"), PD_JOIN_OK);
    rfx_ok(F.c, "SADD pd:{fleet}:workers w9");
    rfx_ok(F.c, "HSET pd:{fleet}:conns w9 4");
    assert_int_equal(pd_cluster_conn_total(F.r, on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, 6); /* the dead worker's count is not in the total */
    assert_int_equal(pd_cluster_reap(F.r, "roomapi-test", on_reaped, on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, 1);
    assert_int_equal(F.reaped, 1);
    assert_string_equal(F.reaped_room, "r1");
    assert_string_equal(F.reaped_sid, "s9");
    settle();
    assert_int_equal(rfx_int(F.c, "SISMEMBER room:{r1}:sockets s9"), 0);
    assert_int_equal(rfx_int(F.c, "SISMEMBER room:{r1}:sockets s1"), 1); /* the live worker's stays */
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w9}:s9"), 0);
    assert_int_equal(rfx_int(F.c, "EXISTS pd:worker:{w9}:sockets"), 0);
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:{fleet}:workers w9"), 0);
    assert_int_equal(rfx_int(F.c, "HEXISTS pd:{fleet}:conns w9"), 0);
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:{fleet}:workers w1"), 1);
    /* The lock is held for a while: a second reaper does nothing. */
    F.reaped = 0;
    assert_int_equal(pd_cluster_reap(F.r, "other", on_reaped, on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, 0);
    assert_int_equal(F.reaped, 0);
    /* Retire: the worker's keys and its fleet entry. */
    assert_int_equal(pd_cluster_retire(F.r, "w1", on_num, NULL), PD_OK);
    WAIT_DONE();
    assert_int_equal(F.num, 0);
    assert_int_equal(rfx_int(F.c, "EXISTS pd:{fleet}:hb:w1"), 0);
    assert_int_equal(rfx_int(F.c, "SISMEMBER pd:{fleet}:workers w1"), 0);
    assert_int_equal(rfx_int(F.c, "EXISTS pd:worker:{w1}:sockets"), 0);
    assert_int_equal(rfx_int(F.c, "EXISTS socket:{w1}:s1"), 0);
}

static void get_room(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pd_room_get_free(F.r, on_str, NULL), PD_OK);
        WAIT_DONE();
        assert_int_equal(strlen(F.str), 4);
        assert_int_equal(rfx_int(F.c, "HEXISTS room:{%s} created_at", F.str), 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(joins),
        cmocka_unit_test(leaves),
        cmocka_unit_test(refreshes),
        cmocka_unit_test(fleet_and_reaper),
        cmocka_unit_test(get_room),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
