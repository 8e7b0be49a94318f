/* test_sentinel.c — Sentinel discovery: the parsers and the sentinel order
 * (pure), then pd_sentinel against real processes: a redis-server run as a
 * sentinel (`--sentinel`), a port where nothing listens, and a plain
 * redis-server that refuses SENTINEL and carries a +switch-master we
 * publish ourselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "privydrop/pd_redis.h"
#include "privydrop/pd_sentinel.h"
#include "redis_fixture.h"

/* ---- pure helpers ------------------------------------------------------- */

static void list_bad(const char *spec)
{
    pd_sentinel_addr out[PD_SENTINEL_MAX];
    size_t n = 99;
    const char *err = NULL;
    if (pd_sentinel_parse_list(spec, out, PD_SENTINEL_MAX, &n, &err) == PD_OK)
        fail_msg("accepted bad sentinel list \"%s\"", spec);
    assert_non_null(err);
}

static void parse_list_good(void **state)
{
    (void)state;
    pd_sentinel_addr out[PD_SENTINEL_MAX];
    size_t n = 0;
    const char *err = NULL;
    assert_int_equal(pd_sentinel_parse_list("127.0.0.1:26379", out, PD_SENTINEL_MAX, &n, &err), PD_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].host, "127.0.0.1");
    assert_int_equal(out[0].port, 26379);

    assert_int_equal(pd_sentinel_parse_list(" s1.example:1 , [::1]:26380,\ts-3_x:65535 ", out, PD_SENTINEL_MAX, &n,
                                            &err),
                     PD_OK);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].host, "s1.example");
    assert_int_equal(out[0].port, 1);
    assert_string_equal(out[1].host, "::1");
    assert_int_equal(out[1].port, 26380);
    assert_string_equal(out[2].host, "s-3_x");
    assert_int_equal(out[2].port, 65535);

    /* Exactly the bound is fine. */
    char spec[16 * 20] = "";
    for (int i = 0; i < PD_SENTINEL_MAX; i++)
        snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%sh%d:%d", i ? "," : "", i, 26379 + i);
    assert_int_equal(pd_sentinel_parse_list(spec, out, PD_SENTINEL_MAX, &n, &err), PD_OK);
    assert_int_equal(n, PD_SENTINEL_MAX);
    assert_string_equal(out[15].host, "h15");
    assert_int_equal(out[15].port, 26394);
}

static void parse_list_bad(void **state)
{
    (void)state;
    list_bad("");
    list_bad(" ");
    list_bad("host");
    list_bad("host:");
    list_bad(":26379");
    list_bad("h:0");
    list_bad("h:65536");
    list_bad("h:123456");
    list_bad("h:12a");
    list_bad("h:-1");
    list_bad("h:1,,h:2");
    list_bad("h:1,");
    list_bad(",h:1");
    list_bad("::1:26379");     /* IPv6 needs brackets */
    list_bad("[::1]26379");
    list_bad("[::1]:");
    list_bad("[::1");
    list_bad("[]:1");
    list_bad("h/x:1");
    list_bad("h x:1");
    list_bad("h\n:1");
    /* One too many. */
    char spec[17 * 20] = "";
    for (int i = 0; i <= PD_SENTINEL_MAX; i++)
        snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%sh%d:1", i ? "," : "", i);
    list_bad(spec);
    /* A host one byte too long. */
    char longhost[PD_SENTINEL_HOST_MAX + 8];
    memset(longhost, 'a', PD_SENTINEL_HOST_MAX + 1);
    strcpy(longhost + PD_SENTINEL_HOST_MAX + 1, ":1");
    list_bad(longhost);
    longhost[PD_SENTINEL_HOST_MAX] = ':';
    longhost[PD_SENTINEL_HOST_MAX + 1] = '1';
    longhost[PD_SENTINEL_HOST_MAX + 2] = '\0';
    pd_sentinel_addr out[1];
    size_t n = 0;
    const char *err = NULL;
    assert_int_equal(pd_sentinel_parse_list(longhost, out, 1, &n, &err), PD_OK);
    assert_int_equal(strlen(out[0].host), PD_SENTINEL_HOST_MAX);
    assert_int_equal(pd_sentinel_parse_list(NULL, out, 1, &n, &err), PD_ERR);
}

static void master_names(void **state)
{
    (void)state;
    assert_true(pd_sentinel_name_valid("mymaster"));
    assert_true(pd_sentinel_name_valid("pd-master_1.x"));
    assert_false(pd_sentinel_name_valid(""));
    assert_false(pd_sentinel_name_valid(NULL));
    assert_false(pd_sentinel_name_valid("my master"));
    assert_false(pd_sentinel_name_valid("tab\there"));
    assert_false(pd_sentinel_name_valid("caf\xc3\xa9"));
    char name[PD_SENTINEL_NAME_MAX + 2];
    memset(name, 'm', sizeof(name) - 1);
    name[PD_SENTINEL_NAME_MAX + 1] = '\0';
    assert_false(pd_sentinel_name_valid(name));
    name[PD_SENTINEL_NAME_MAX] = '\0';
    assert_true(pd_sentinel_name_valid(name));
}

static int master_reply(const char *bytes, pd_sentinel_addr *out)
{
    redisReply *r = rfx_resp(bytes);
    int rc = pd_sentinel_parse_master_reply(r, out);
    freeReplyObject(r);
    return rc;
}

static void master_replies(void **state)
{
    (void)state;
    pd_sentinel_addr a;
    assert_int_equal(master_reply("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n", &a), PD_OK);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6380);
    assert_int_equal(master_reply("*2\r\n$7\r\nfe80::1\r\n$5\r\n65535\r\n", &a), PD_OK);
    assert_string_equal(a.host, "fe80::1");
    /* The sentinel does not know the master. */
    assert_int_equal(master_reply("*-1\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("$-1\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("-IDONTKNOW I'm not sure\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("-NOAUTH Authentication required.\r\n", &a), PD_ERR);
    /* Junk. */
    assert_int_equal(master_reply("*1\r\n$9\r\n127.0.0.1\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("*3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\n2\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("*2\r\n$9\r\n127.0.0.1\r\n:6380\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n70000\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("*2\r\n$0\r\n\r\n$4\r\n6380\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("*2\r\n$5\r\na b c\r\n$4\r\n6380\r\n", &a), PD_ERR);
    assert_int_equal(master_reply("+OK\r\n", &a), PD_ERR);
    assert_int_equal(pd_sentinel_parse_master_reply(NULL, &a), PD_ERR);
}

static int sw(const char *payload, pd_sentinel_addr *out)
{
    return pd_sentinel_parse_switch(pd_slice_cstr(payload), "pdmaster", out);
}

static void switch_messages(void **state)
{
    (void)state;
    pd_sentinel_addr a;
    assert_int_equal(sw("pdmaster 127.0.0.1 6379 127.0.0.1 6380", &a), PD_OK);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6380);
    assert_int_equal(sw("pdmaster 10.0.0.1 6379 10.0.0.2 7000", &a), PD_OK);
    assert_string_equal(a.host, "10.0.0.2");
    assert_int_equal(a.port, 7000);
    /* Another master's failover, or one whose name merely starts alike. */
    assert_int_equal(sw("other 127.0.0.1 6379 127.0.0.1 6380", &a), PD_ERR);
    assert_int_equal(sw("pdmaster2 127.0.0.1 6379 127.0.0.1 6380", &a), PD_ERR);
    assert_int_equal(sw("pdmaste 127.0.0.1 6379 127.0.0.1 6380", &a), PD_ERR);
    /* Malformed. */
    assert_int_equal(sw("pdmaster 127.0.0.1 6379 127.0.0.1", &a), PD_ERR);
    assert_int_equal(sw("pdmaster 127.0.0.1 6379 127.0.0.1 6380 extra", &a), PD_ERR);
    assert_int_equal(sw("pdmaster 127.0.0.1 6379 127.0.0.1 0", &a), PD_ERR);
    assert_int_equal(sw("pdmaster 127.0.0.1 6379 127.0.0.1 x", &a), PD_ERR);
    assert_int_equal(sw("pdmaster 127.0.0.1 6379 bad/host 6380", &a), PD_ERR);
    assert_int_equal(sw("", &a), PD_ERR);
    assert_int_equal(pd_sentinel_parse_switch(pd_slice_cstr("pdmaster a 1 b 2"), NULL, &a), PD_ERR);
    /* Extra spaces between fields are tolerated. */
    assert_int_equal(sw("  pdmaster  a 1  b  2 ", &a), PD_OK);
    assert_string_equal(a.host, "b");
    assert_int_equal(a.port, 2);
    /* Not NUL-terminated: only the slice counts. */
    const char buf[] = "pdmaster a 1 b 23456789";
    assert_int_equal(pd_sentinel_parse_switch(pd_slice_make(buf, sizeof(buf) - 1 - 6), "pdmaster", &a), PD_OK);
    assert_int_equal(a.port, 23);
}

static int role(const char *bytes)
{
    redisReply *r = rfx_resp(bytes);
    int m = pd_sentinel_role_is_master(r);
    freeReplyObject(r);
    return m;
}

static void roles(void **state)
{
    (void)state;
    assert_true(role("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"));
    assert_false(role("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:1\r\n"));
    assert_false(role("*2\r\n$8\r\nsentinel\r\n*0\r\n"));
    assert_false(role("*1\r\n$7\r\nmasters\r\n"));
    assert_false(role("*0\r\n"));
    assert_false(role("-NOPERM this user has no permissions to run the 'role' command\r\n"));
    assert_false(role("$6\r\nmaster\r\n"));
    assert_false(pd_sentinel_role_is_master(NULL));
}

static void order(void **state)
{
    (void)state;
    size_t o[4];
    pd_sentinel_order(3, 0, o);
    assert_int_equal(o[0], 0);
    assert_int_equal(o[1], 1);
    assert_int_equal(o[2], 2);
    pd_sentinel_order(3, 2, o);
    assert_int_equal(o[0], 2);
    assert_int_equal(o[1], 0);
    assert_int_equal(o[2], 1);
    pd_sentinel_order(4, 1, o);
    assert_int_equal(o[0], 1);
    assert_int_equal(o[1], 0);
    assert_int_equal(o[2], 2);
    assert_int_equal(o[3], 3);
    pd_sentinel_order(3, 7, o); /* out of range: configured order */
    assert_int_equal(o[0], 0);
    assert_int_equal(o[1], 1);
    pd_sentinel_order(1, 0, o);
    assert_int_equal(o[0], 0);
}

/* ---- against real processes ------------------------------------------- */

typedef struct seen {
    int calls;             /* master callbacks */
    pd_sentinel_addr last; /* the last address given */
} seen;

static void on_master(pd_sentinel *s, const pd_sentinel_addr *a, void *data)
{
    (void)s;
    seen *sn = data;
    sn->calls++;
    sn->last = *a;
}

/* A sentinel monitoring 127.0.0.1:master_port as "pdmaster", quorum 1;
 * dies with the test process. Its configuration lives in dir. */
static pid_t start_sentinel(int port, int master_port, char *dir)
{
    char conf[512];
    snprintf(conf, sizeof conf, "%s/sentinel.conf", dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nsentinel monitor pdmaster 127.0.0.1 %d 1\n", port,
            dir, master_port);
    fclose(f);
    char *argv[] = {"redis-server", conf, "--sentinel", NULL};
    pid_t pid = rfx_spawn(argv, port);
    assert_true(pid > 0);
    return pid;
}

static void discovers_through_a_real_sentinel(void **state)
{
    (void)state;
    rfx_server master = {0};
    assert_int_equal(rfx_start(&master), 0);
    char dir[] = "/tmp/pd-sentinel-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int sport = rfx_free_port();
    pid_t spid = start_sentinel(sport, master.port, dir);

    /* First in the list: a port where nothing listens (refused), then the
     * plain Redis (answers SENTINEL with an error), then the sentinel. */
    pd_sentinel_addr list[3] = {{"127.0.0.1", rfx_free_port()}, {"127.0.0.1", master.port}, {"127.0.0.1", sport}};
    rfx_loop l;
    rfx_loop_init(&l);
    seen sn = {0};
    pd_sentinel_options opt = {list, 3, "pdmaster", NULL, 500};
    pd_sentinel *s = pd_sentinel_create(&l.loop, &opt, on_master, &sn);
    assert_non_null(s);
    assert_false(pd_sentinel_discovering(s));
    pd_sentinel_discover(s);
    assert_true(pd_sentinel_discovering(s));
    pd_sentinel_discover(s); /* while running: no second round */
    RFX_WAIT(&l, sn.calls > 0, 20000);
    assert_int_equal(sn.calls, 1);
    assert_string_equal(sn.last.host, "127.0.0.1");
    assert_int_equal(sn.last.port, master.port);
    assert_int_equal(pd_sentinel_answers(s), 1);
    assert_false(pd_sentinel_discovering(s));

    /* Asked again: the sentinel that answered is asked first now, so the
     * answer comes without waiting out the dead port's deadline. */
    pd_sentinel_discover(s);
    RFX_WAIT(&l, sn.calls > 1, 20000);
    assert_int_equal(sn.calls, 2);
    assert_int_equal(sn.last.port, master.port);

    pd_sentinel_free(s);
    rfx_loop_close(&l);
    kill(spid, SIGKILL);
    waitpid(spid, NULL, 0);
    rfx_kill(&master);
    char conf[512];
    snprintf(conf, sizeof conf, "%s/sentinel.conf", dir);
    unlink(conf);
    rmdir(dir);
}

static long long numsub(redisContext *c)
{
    redisReply *r = rfx_cmd(c, "PUBSUB NUMSUB +switch-master");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    return n;
}

/* No sentinel answers: rounds repeat (paused) without a callback, until
 * one does; the +switch-master watch delivers only our master's switches. */
static void rounds_repeat_and_switches_arrive(void **state)
{
    (void)state;
    rfx_server plain = {0};
    assert_int_equal(rfx_start(&plain), 0);
    pd_sentinel_addr list[1] = {{"127.0.0.1", plain.port}};
    rfx_loop l;
    rfx_loop_init(&l);
    seen sn = {0};
    pd_sentinel_options opt = {list, 1, "pdmaster", NULL, 300};
    pd_sentinel *s = pd_sentinel_create(&l.loop, &opt, on_master, &sn);
    assert_non_null(s);
    pd_sentinel_discover(s);
    rfx_run_for(&l, 600);
    assert_int_equal(sn.calls, 0);
    assert_true(pd_sentinel_discovering(s)); /* still trying */

    /* The watch subscribed on the plain server (it accepts SUBSCRIBE): a
     * publish there stands in for the sentinel's event. */
    redisContext *c = rfx_sync(plain.port);
    assert_non_null(c);
    RFX_WAIT(&l, numsub(c) == 1, 5000);
    assert_int_equal(numsub(c), 1);
    rfx_int(c, "PUBLISH +switch-master %s", "other 127.0.0.1 1 127.0.0.1 2");
    rfx_int(c, "PUBLISH +switch-master %s", "pdmaster 127.0.0.1 6379 127.0.0.1 7777");
    RFX_WAIT(&l, sn.calls > 0, 5000);
    assert_int_equal(sn.calls, 1);
    assert_int_equal(sn.last.port, 7777);
    assert_int_equal(pd_sentinel_switches(s), 1);
    redisFree(c);

    pd_sentinel_free(s);
    rfx_loop_close(&l);
    rfx_kill(&plain);
}

/* pd_redis in sentinel mode, against a real sentinel: ready on the master
 * it names; when that server becomes a replica under it (REPLICAOF, which
 * unlike Sentinel's own reconfiguration keeps its clients), the -READONLY
 * write makes it leave, the ROLE check keeps it away while the sentinel
 * still names a replica, and it is back once the server is a master again. */
typedef struct cmd_result {
    int calls;  /* callbacks run */
    int type;   /* last reply's type, -1 for NULL */
    char text[64]; /* last error text */
} cmd_result;

static void on_cmd(redisReply *reply, void *data)
{
    cmd_result *res = data;
    res->calls++;
    res->type = reply ? reply->type : -1;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        snprintf(res->text, sizeof res->text, "%s", reply->str);
}

static void redis_leaves_a_master_turned_replica(void **state)
{
    (void)state;
    rfx_server master = {0}, other = {0};
    assert_int_equal(rfx_start(&master), 0);
    assert_int_equal(rfx_start(&other), 0);
    char dir[] = "/tmp/pd-sentinel-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int sport = rfx_free_port();
    pid_t spid = start_sentinel(sport, master.port, dir);
    char sentinels[64];
    snprintf(sentinels, sizeof sentinels, "127.0.0.1:%d", sport);

    rfx_loop l;
    rfx_loop_init(&l);
    /* REDIS_HOST/PORT point at the other server: sentinel mode ignores them. */
    pd_redis_options opt = {.host = "127.0.0.1", .port = other.port, .subscriber = 1, .sentinels = sentinels,
                            .sentinel_master = "pdmaster"};
    pd_redis *r = pd_redis_create(&l.loop, &opt, NULL, NULL, NULL);
    assert_non_null(r);
    RFX_WAIT(&l, pd_redis_ready(r), 20000);
    assert_true(pd_redis_ready(r));
    cmd_result res = {0};
    assert_int_equal(pd_redis_cmd(r, on_cmd, &res, "SET k %s", "v"), PD_OK);
    RFX_WAIT(&l, res.calls == 1, 5000);
    assert_int_equal(res.type, REDIS_REPLY_STATUS);
    redisContext *c = rfx_sync(master.port);
    assert_non_null(c);
    char got[8];
    assert_int_equal(rfx_str(c, got, sizeof got, "GET k"), 1);
    assert_string_equal(got, "v"); /* it wrote to the master, not to `other` */
    assert_int_equal(pd_redis_role_rejects(r), 0);

    rfx_ok(c, "REPLICAOF 127.0.0.1 %d", other.port);
    assert_int_equal(pd_redis_cmd(r, on_cmd, &res, "SET k %s", "w"), PD_OK);
    RFX_WAIT(&l, res.calls == 2, 5000);
    assert_int_equal(res.type, REDIS_REPLY_ERROR);
    assert_memory_equal(res.text, "READONLY", 8);
    assert_false(pd_redis_ready(r));
    /* Back on the same address, ROLE says replica: left again. */
    RFX_WAIT(&l, pd_redis_role_rejects(r) >= 2, 20000);
    assert_true(pd_redis_role_rejects(r) >= 2);
    assert_false(pd_redis_ready(r));
    assert_int_equal(pd_redis_cmd(r, on_cmd, &res, "PING"), PD_ERR); /* nothing reaches a replica */

    rfx_ok(c, "REPLICAOF NO ONE");
    RFX_WAIT(&l, pd_redis_ready(r), 20000);
    assert_true(pd_redis_ready(r));
    assert_int_equal(pd_redis_master_changes(r), 0); /* the same address all along */
    assert_int_equal(pd_redis_cmd(r, on_cmd, &res, "SET k %s", "x"), PD_OK);
    RFX_WAIT(&l, res.calls == 3, 5000);
    assert_int_equal(res.type, REDIS_REPLY_STATUS);

    redisFree(c);
    pd_redis_free(r);
    rfx_loop_close(&l);
    kill(spid, SIGKILL);
    waitpid(spid, NULL, 0);
    rfx_kill(&master);
    rfx_kill(&other);
    char conf[512];
    snprintf(conf, sizeof conf, "%s/sentinel.conf", dir);
    unlink(conf);
    rmdir(dir);
}

/* Connections a server has accepted since it started. */
static long long conns_received(redisContext *c)
{
    redisReply *r = rfx_cmd(c, "INFO stats");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "total_connections_received:");
    assert_non_null(p);
    long long n = atoll(p + strlen("total_connections_received:"));
    freeReplyObject(r);
    return n;
}

/* The watch notices a sentinel that stops answering (SIGSTOP: its TCP
 * link stays up) and moves to the next one, where a +switch-master then
 * reaches it. */
static void watch_leaves_a_silent_sentinel(void **state)
{
    (void)state;
    rfx_server a = {0}, b = {0};
    assert_int_equal(rfx_start(&a), 0);
    assert_int_equal(rfx_start(&b), 0);
    pd_sentinel_addr list[2] = {{"127.0.0.1", a.port}, {"127.0.0.1", b.port}};
    rfx_loop l;
    rfx_loop_init(&l);
    seen sn = {0};
    pd_sentinel_options opt = {list, 2, "pdmaster", NULL, 1000};
    pd_sentinel *s = pd_sentinel_create(&l.loop, &opt, on_master, &sn);
    assert_non_null(s);
    redisContext *ca = rfx_sync(a.port), *cb = rfx_sync(b.port);
    assert_non_null(ca);
    assert_non_null(cb);
    RFX_WAIT(&l, numsub(ca) == 1, 5000);
    assert_int_equal(numsub(ca), 1);
    assert_int_equal(numsub(cb), 0);
    /* Probes (one every 2 s here) keep it where it is while the sentinel
     * answers: nothing connects to the second one meanwhile. */
    long long b_conns = conns_received(cb);
    rfx_run_for(&l, 4500);
    assert_int_equal(numsub(ca), 1);
    assert_int_equal(conns_received(cb), b_conns);

    rfx_signal(&a, SIGSTOP);
    RFX_WAIT(&l, numsub(cb) == 1, 20000);
    assert_int_equal(numsub(cb), 1);
    rfx_int(cb, "PUBLISH +switch-master %s", "pdmaster 127.0.0.1 1 127.0.0.1 7778");
    RFX_WAIT(&l, sn.calls > 0, 5000);
    assert_int_equal(sn.calls, 1);
    assert_int_equal(sn.last.port, 7778);
    rfx_signal(&a, SIGCONT);

    redisFree(ca);
    redisFree(cb);
    pd_sentinel_free(s);
    rfx_loop_close(&l);
    rfx_kill(&a);
    rfx_kill(&b);
}

static void bad_options(void **state)
{
    (void)state;
    rfx_loop l;
    rfx_loop_init(&l);
    pd_sentinel_addr list[1] = {{"127.0.0.1", 1}};
    pd_sentinel_options none = {list, 0, "m", NULL, 0};
    assert_null(pd_sentinel_create(&l.loop, &none, on_master, NULL));
    pd_sentinel_options badname = {list, 1, "a b", NULL, 0};
    assert_null(pd_sentinel_create(&l.loop, &badname, on_master, NULL));
    pd_sentinel_options many = {list, PD_SENTINEL_MAX + 1, "m", NULL, 0};
    assert_null(pd_sentinel_create(&l.loop, &many, on_master, NULL));
    rfx_loop_close(&l);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_list_good),
        cmocka_unit_test(parse_list_bad),
        cmocka_unit_test(master_names),
        cmocka_unit_test(master_replies),
        cmocka_unit_test(switch_messages),
        cmocka_unit_test(roles),
        cmocka_unit_test(order),
        cmocka_unit_test(bad_options),
        cmocka_unit_test(discovers_through_a_real_sentinel),
        cmocka_unit_test(rounds_repeat_and_switches_arrive),
        cmocka_unit_test(redis_leaves_a_master_turned_replica),
        cmocka_unit_test(watch_leaves_a_silent_sentinel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
