/* pd_rcluster: the pure helpers (a formatted command back into arguments,
 * where a command goes), then a real two-master cluster (two
 * cluster-enabled redis-servers, half the slots each) driven through
 * pd_redis in cluster mode: routing, sharded pub/sub, the NUMSUB fan-out,
 * -MOVED after a slot moved under the client, -ASK during a migration, a
 * subscription following its slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "privydrop/pd_rcluster.h"
#include "privydrop/pd_redis.h"
#include "privydrop/pd_slot.h"
#include "redis_fixture.h"

/* ---- pd_rcluster_split ---------------------------------------------------- */

static void split_round_trips_hiredis_format(void **state)
{
    (void)state;
    char *buf = NULL;
    int len = redisFormatCommand(&buf, "EVAL %s %d %b %s", "return 1", 1, "k\r\n{x}", (size_t)7, "arg");
    assert_true(len > 0);
    const char *argv[8];
    size_t lens[8];
    assert_int_equal(pd_rcluster_split(buf, (size_t)len, argv, lens, 8), 5);
    assert_int_equal(lens[0], 4);
    assert_memory_equal(argv[0], "EVAL", 4);
    assert_int_equal(lens[3], 7);
    assert_memory_equal(argv[3], "k\r\n{x}", 7);
    assert_memory_equal(argv[4], "arg", 3);
    /* Too many for the caller's arrays. */
    assert_int_equal(pd_rcluster_split(buf, (size_t)len, argv, lens, 4), -1);
    /* Truncated anywhere, or followed by anything. */
    for (int cut = 0; cut < len; cut++)
        assert_int_equal(pd_rcluster_split(buf, (size_t)cut, argv, lens, 8), -1);
    char *longer = malloc((size_t)len + 1);
    memcpy(longer, buf, (size_t)len);
    longer[len] = '*';
    assert_int_equal(pd_rcluster_split(longer, (size_t)len + 1, argv, lens, 8), -1);
    free(longer);
    free(buf);
}

static void split_refuses_malformed(void **state)
{
    (void)state;
    const char *argv[4];
    size_t lens[4];
    static const char *const bad[] = {
        "",  "*0\r\n", "*1\r\n$3\r\nabc", "*1\r\n$3\r\nabcd\r\n", "+OK\r\n", "*1\r\n:3\r\n",
        "*-1\r\n", "*1\r\n$-1\r\n", "*1\r\n$99999999999\r\nx\r\n", "*x\r\n", "*1\n$1\nx\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pd_rcluster_split(bad[i], strlen(bad[i]), argv, lens, 4), -1);
    assert_int_equal(pd_rcluster_split("*1\r\n$0\r\n\r\n", 10, argv, lens, 4), 1);
    assert_int_equal(lens[0], 0);
}

/* ---- pd_rcluster_route ------------------------------------------------------ */

static pd_rcluster_route_kind route(const char *line, pd_slice *key)
{
    /* Space-separated words (no empty ones) into arguments. */
    static char copy[256];
    const char *argv[16];
    size_t lens[16];
    int argc = 0;
    snprintf(copy, sizeof copy, "%s", line);
    for (char *tok = strtok(copy, " "); tok && argc < 16; tok = strtok(NULL, " ")) {
        argv[argc] = tok;
        lens[argc++] = strlen(tok);
    }
    *key = pd_slice_make(NULL, 0);
    return pd_rcluster_route(argc, argv, lens, key);
}

static void route_finds_the_key(void **state)
{
    (void)state;
    pd_slice key;
    static const struct {
        const char *line;
        pd_rcluster_route_kind kind;
        const char *key;
    } cases[] = {
        {"GET room:{a}", PD_RCL_KEY, "room:{a}"},
        {"hincrby pd:{fleet}:conns w 1", PD_RCL_KEY, "pd:{fleet}:conns"},
        {"EVAL script 2 k1 k2 a", PD_RCL_KEY, "k1"},
        {"evalsha abc 1 k1", PD_RCL_KEY, "k1"},
        {"EVAL script 0 a b", PD_RCL_ANY, NULL},
        {"EVAL script 3 k1 k2", PD_RCL_REFUSED, NULL},  /* more keys than arguments */
        {"EVAL script -1 k1", PD_RCL_REFUSED, NULL},
        {"EVAL script x k1", PD_RCL_REFUSED, NULL},
        {"EVAL script", PD_RCL_REFUSED, NULL},
        {"PUBLISH pd:room:x payload", PD_RCL_KEY, "pd:room:x"},
        {"SPUBLISH pd:eio:t payload", PD_RCL_KEY, "pd:eio:t"},
        {"PUBSUB NUMSUB a b c", PD_RCL_NUMSUB, NULL},
        {"PUBSUB NUMSUB", PD_RCL_NUMSUB, NULL},
        {"PUBSUB SHARDNUMSUB a", PD_RCL_KEY, "a"},
        {"PUBSUB CHANNELS", PD_RCL_REFUSED, NULL},
        {"PING", PD_RCL_ANY, NULL},
        {"CLUSTER SLOTS", PD_RCL_ANY, NULL},
        {"SUBSCRIBE a", PD_RCL_REFUSED, NULL},
        {"SSUBSCRIBE a", PD_RCL_REFUSED, NULL},
        {"MULTI", PD_RCL_REFUSED, NULL},
        {"GET", PD_RCL_REFUSED, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pd_rcluster_route_kind k = route(cases[i].line, &key);
        if (k != cases[i].kind)
            fail_msg("%s: kind %d, want %d", cases[i].line, (int)k, (int)cases[i].kind);
        if (cases[i].key) {
            assert_int_equal(key.len, strlen(cases[i].key));
            assert_memory_equal(key.base, cases[i].key, key.len);
        }
    }
    /* A NUMSUB over the fan-out bound is refused rather than truncated. */
    const char *argv[PD_RCLUSTER_MAX_NUMSUB + 3];
    size_t lens[PD_RCLUSTER_MAX_NUMSUB + 3];
    argv[0] = "PUBSUB";
    argv[1] = "NUMSUB";
    lens[0] = 6;
    lens[1] = 6;
    for (int i = 2; i < PD_RCLUSTER_MAX_NUMSUB + 3; i++) {
        argv[i] = "c";
        lens[i] = 1;
    }
    assert_int_equal(pd_rcluster_route(PD_RCLUSTER_MAX_NUMSUB + 2, argv, lens, &key), PD_RCL_NUMSUB);
    assert_int_equal(pd_rcluster_route(PD_RCLUSTER_MAX_NUMSUB + 3, argv, lens, &key), PD_RCL_REFUSED);
}

/* ---- a real two-master cluster ------------------------------------------------ */

typedef struct cnode {
    pid_t pid;
    int port;
    int bus;
    char dir[64];
    char id[64];
    redisContext *c;
} cnode;

static int cnode_start_pw(cnode *n, const char *password);

static int cnode_start(cnode *n)
{
    return cnode_start_pw(n, NULL);
}

static int cnode_start_pw(cnode *n, const char *password)
{
    snprintf(n->dir, sizeof n->dir, "/tmp/pd-rcl-test-XXXXXX");
    if (!mkdtemp(n->dir))
        return -1;
    n->port = rfx_free_port();
    int bus = rfx_free_port(); /* its own port: port + 10000 may not exist */
    n->bus = bus;
    char port[16], busport[16], conf[128];
    snprintf(port, sizeof port, "%d", n->port);
    snprintf(busport, sizeof busport, "%d", bus);
    snprintf(conf, sizeof conf, "%s/nodes.conf", n->dir);
    char *argv[] = {"redis-server", "--port", port, "--cluster-port", busport, "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-config-file", conf, "--dir", n->dir, "--save", "",
                    "--appendonly", "no", "--daemonize", "no", NULL, NULL, NULL};
    if (password) {
        argv[19] = "--requirepass";
        argv[20] = (char *)password;
    }
    /* rfx_spawn waits for PONG, which a password-protected server refuses:
     * spawn, then wait for an answer to AUTH. */
    if (!password) {
        n->pid = rfx_spawn(argv, n->port);
        if (n->pid <= 0)
            return -1;
    } else {
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int devnull = open("/dev/null", O_RDWR);
            if (devnull >= 0) {
                dup2(devnull, 1);
                dup2(devnull, 2);
            }
            execvp(argv[0], argv);
            _exit(127);
        }
        n->pid = pid;
    }
    for (int i = 0; i < 250 && !n->c; i++) {
        n->c = rfx_sync(n->port);
        if (n->c && password) {
            redisReply *r = redisCommand(n->c, "AUTH %s", password);
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            if (!ok) {
                redisFree(n->c);
                n->c = NULL;
            }
        }
        if (!n->c)
            rfx_sleep_ms(20);
    }
    if (!n->c)
        return -1;
    rfx_str(n->c, n->id, sizeof n->id, "CLUSTER MYID");
    return 0;
}

static void cnode_stop(cnode *n)
{
    if (n->c)
        redisFree(n->c);
    if (n->pid > 0) {
        kill(n->pid, SIGKILL);
        waitpid(n->pid, NULL, 0);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/nodes.conf", n->dir);
    unlink(path);
    rmdir(n->dir);
}

static int cluster_ok(cnode *n)
{
    redisReply *r = rfx_cmd(n->c, "CLUSTER INFO");
    int ok = r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") != NULL;
    freeReplyObject(r);
    return ok;
}

/* Both nodes agree on who serves `slot`. */
static int slot_owner_is(cnode *ask, unsigned slot, const char *id)
{
    redisReply *r = rfx_cmd(ask->c, "CLUSTER SLOTS");
    int ok = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if ((unsigned)e->element[0]->integer <= slot && slot <= (unsigned)e->element[1]->integer &&
            e->element[2]->elements >= 3 && strcmp(e->element[2]->element[2]->str, id) == 0)
            ok = 1;
    }
    freeReplyObject(r);
    return ok;
}

/* A counter of INFO stats, e.g. total_connections_received. */
static long long info_stat(cnode *n, const char *name)
{
    redisReply *r = rfx_cmd(n->c, "INFO stats");
    long long v = -1;
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, name) : NULL;
    if (p && p[strlen(name)] == ':')
        v = atoll(p + strlen(name) + 1);
    freeReplyObject(r);
    return v;
}

/* SSUBSCRIBEs a node received since CONFIG RESETSTAT, refused ones
 * (-MOVED) included. */
static long long ssubscribe_calls(cnode *n)
{
    redisReply *r = rfx_cmd(n->c, "INFO commandstats");
    long long v = 0;
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_ssubscribe:") : NULL;
    if (p) {
        const char *calls = strstr(p, "calls="), *rej = strstr(p, "rejected_calls=");
        const char *eol = strchr(p, '\n');
        if (calls && (!eol || calls < eol))
            v += atoll(calls + 6);
        if (rej && (!eol || rej < eol))
            v += atoll(rej + 15);
    }
    freeReplyObject(r);
    return v;
}

/* A key (or channel) name with `prefix` whose slot is in [lo, hi]. */
static void name_in(char *buf, size_t cap, const char *prefix, unsigned lo, unsigned hi)
{
    for (int i = 0;; i++) {
        snprintf(buf, cap, "%s%d", prefix, i);
        unsigned s = pd_slot_of(pd_slice_cstr(buf));
        if (s >= lo && s <= hi)
            return;
    }
}

typedef struct live {
    rfx_loop l;
    pd_redis *r;
    char got_chan[64];
    char got_msg[64];
    int messages;
    int replies;
    int last_type;
    char last_str[128];
    long long last_int;
    long long numsub[4];
    char numsub_names[4][32];
    size_t numsub_n;
    int lost; /* times readiness went from 1 to 0 */
} live;

static void on_state(pd_redis *r, int ready, void *data)
{
    (void)r;
    live *v = data;
    if (!ready)
        v->lost++;
}

static void on_msg(pd_slice channel, pd_slice message, void *data)
{
    live *v = data;
    snprintf(v->got_chan, sizeof v->got_chan, "%.*s", (int)channel.len, channel.base);
    snprintf(v->got_msg, sizeof v->got_msg, "%.*s", (int)message.len, message.base);
    v->messages++;
}

static void on_rep(redisReply *rep, void *data)
{
    live *v = data;
    v->replies++;
    v->last_type = rep ? rep->type : -1;
    v->last_str[0] = '\0';
    v->numsub_n = 0;
    if (rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_ERROR))
        snprintf(v->last_str, sizeof v->last_str, "%.*s", (int)rep->len, rep->str);
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        v->last_int = rep->integer;
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < rep->elements && v->numsub_n < 4; i += 2, v->numsub_n++) {
            snprintf(v->numsub_names[v->numsub_n], 32, "%.*s", (int)rep->element[i]->len, rep->element[i]->str);
            v->numsub[v->numsub_n] = rep->element[i + 1]->integer;
        }
    }
}

/* Wait (running the client's loop) until `n` counts `want` subscribers
 * of the sharded channel `ch`; 0 if it never does. */
static int wait_numsub(cnode *n, live *v, const char *ch, long long want)
{
    for (int i = 0; i < 500; i++) {
        redisReply *r = rfx_cmd(n->c, "PUBSUB SHARDNUMSUB %s", ch);
        int ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->integer == want;
        freeReplyObject(r);
        if (ok)
            return 1;
        rfx_run_for(&v->l, 10);
    }
    return 0;
}

static void cmd_wait(live *v, const char *fmt, ...)
{
    int before = v->replies;
    va_list ap;
    va_start(ap, fmt);
    char *buf = NULL;
    int len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    const char *argv[16];
    size_t lens[16];
    int argc = pd_rcluster_split(buf, (size_t)len, argv, lens, 16);
    assert_true(argc > 0);
    assert_int_equal(pd_redis_cmd_argv(v->r, on_rep, v, argc, argv, lens), PD_OK);
    free(buf);
    RFX_WAIT(&v->l, v->replies > before, 5000);
    assert_int_equal(v->replies, before + 1);
}

static void live_cluster(void **state)
{
    (void)state;
    cnode a = {0}, b = {0};
    assert_int_equal(cnode_start(&a), 0);
    assert_int_equal(cnode_start(&b), 0);
    rfx_ok(a.c, "CLUSTER ADDSLOTSRANGE 0 8191");
    rfx_ok(b.c, "CLUSTER ADDSLOTSRANGE 8192 16383");
    rfx_ok(a.c, "CLUSTER MEET 127.0.0.1 %d %d", b.port, b.bus);
    for (int i = 0; i < 500 && !(cluster_ok(&a) && cluster_ok(&b) && slot_owner_is(&a, 9000, b.id) &&
                                 slot_owner_is(&b, 100, a.id));
         i++)
        rfx_sleep_ms(20);
    assert_true(cluster_ok(&a) && cluster_ok(&b));

    live v = {0};
    rfx_loop_init(&v.l);
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", a.port); /* b is learnt from the map */
    pd_redis_options opt = {0};
    opt.cluster_nodes = seeds;
    opt.subscriber = 1;
    opt.watchdog_ms = 200;
    v.r = pd_redis_create(&v.l.loop, &opt, on_state, on_msg, &v);
    assert_non_null(v.r);
    assert_true(pd_redis_is_cluster(v.r));
    RFX_WAIT(&v.l, pd_redis_ready(v.r), 10000);
    assert_true(pd_redis_ready(v.r));

    /* Routing: each key lands on its slot's master. */
    char ka[32], kb[32];
    name_in(ka, sizeof ka, "ka", 0, 8191);
    name_in(kb, sizeof kb, "kb", 8192, 16383);
    cmd_wait(&v, "SET %s va", ka);
    assert_string_equal(v.last_str, "OK");
    cmd_wait(&v, "SET %s vb", kb);
    assert_string_equal(v.last_str, "OK");
    char buf[64];
    assert_true(rfx_str(a.c, buf, sizeof buf, "GET %s", ka));
    assert_string_equal(buf, "va");
    assert_true(rfx_str(b.c, buf, sizeof buf, "GET %s", kb));
    assert_string_equal(buf, "vb");
    cmd_wait(&v, "EVAL %s 1 %s", "return redis.call('GET', KEYS[1])", kb);
    assert_string_equal(v.last_str, "vb");

    /* Sharded pub/sub on b's slots: SSUBSCRIBE there, PUBLISH sent as SPUBLISH. */
    char cha[32], chb[32];
    name_in(cha, sizeof cha, "cha", 0, 8191);
    name_in(chb, sizeof chb, "chb", 8192, 16383);
    assert_int_equal(pd_redis_subscribe(v.r, pd_slice_cstr(chb)), PD_OK);
    assert_true(wait_numsub(&b, &v, chb, 1));
    cmd_wait(&v, "PUBLISH %s hello", chb);
    assert_int_equal(v.last_type, REDIS_REPLY_INTEGER);
    assert_int_equal(v.last_int, 1); /* SPUBLISH counts the shard's subscribers */
    RFX_WAIT(&v.l, v.messages == 1, 5000);
    assert_string_equal(v.got_chan, chb);
    assert_string_equal(v.got_msg, "hello");

    /* PUBSUB NUMSUB across both shards: one reply, NUMSUB-shaped. */
    cmd_wait(&v, "PUBSUB NUMSUB %s %s", cha, chb);
    assert_int_equal(v.last_type, REDIS_REPLY_ARRAY);
    assert_int_equal(v.numsub_n, 2);
    assert_string_equal(v.numsub_names[0], cha);
    assert_int_equal(v.numsub[0], 0);
    assert_string_equal(v.numsub_names[1], chb);
    assert_int_equal(v.numsub[1], 1);

    /* -ASK: slot S of a being migrated to b, its key already moved. */
    unsigned s = pd_slot_of(pd_slice_cstr(ka));
    rfx_ok(b.c, "CLUSTER SETSLOT %u IMPORTING %s", s, a.id);
    rfx_ok(a.c, "CLUSTER SETSLOT %u MIGRATING %s", s, b.id);
    rfx_ok(a.c, "MIGRATE 127.0.0.1 %d %s 0 5000", b.port, ka);
    cmd_wait(&v, "GET %s", ka);
    assert_int_equal(v.last_type, REDIS_REPLY_STRING);
    assert_string_equal(v.last_str, "va");

    /* -MOVED: the slot now belongs to b; the client's map still says a.
     * A subscription in that slot follows it too. */
    char chs[32];
    for (int i = 0;; i++) {
        snprintf(chs, sizeof chs, "chs%d", i);
        if (pd_slot_of(pd_slice_cstr(chs)) == s)
            break;
    }
    assert_int_equal(pd_redis_subscribe(v.r, pd_slice_cstr(chs)), PD_OK);
    assert_true(wait_numsub(&a, &v, chs, 1));
    rfx_ok(b.c, "CLUSTER SETSLOT %u NODE %s", s, b.id);
    rfx_ok(a.c, "CLUSTER SETSLOT %u NODE %s", s, b.id);
    cmd_wait(&v, "SET %s moved", ka);
    assert_string_equal(v.last_str, "OK");
    assert_true(rfx_str(b.c, buf, sizeof buf, "GET %s", ka));
    assert_string_equal(buf, "moved");
    /* a gave the slot away and dropped its subscribers there; the client
     * asks for the map and subscribes on b. */
    assert_true(wait_numsub(&b, &v, chs, 1));
    int before = v.messages;
    cmd_wait(&v, "PUBLISH %s there", chs);
    assert_int_equal(v.last_int, 1);
    RFX_WAIT(&v.l, v.messages > before, 5000);
    assert_string_equal(v.got_chan, chs);
    assert_string_equal(v.got_msg, "there");

    /* A subscription sent on a stale map. Slot s2 (no keys, nobody
     * subscribed) moves from a to b without the client hearing of it, so
     * its map still says a: the SSUBSCRIBE goes there and comes back
     * -MOVED. The client subscribes on b, and neither drops a's link nor
     * stops being ready (a worker that is not ready refuses joins). */
    char ch2[32];
    unsigned s2 = s;
    for (int i = 0; s2 == s || s2 > 8191; i++) {
        snprintf(ch2, sizeof ch2, "cht%d", i);
        s2 = pd_slot_of(pd_slice_cstr(ch2));
    }
    rfx_ok(b.c, "CLUSTER SETSLOT %u NODE %s", s2, b.id);
    rfx_ok(a.c, "CLUSTER SETSLOT %u NODE %s", s2, b.id);
    assert_true(pd_redis_ready(v.r));
    int lost_before = v.lost;
    long long conns_before = info_stat(&a, "total_connections_received");
    assert_int_equal(pd_redis_subscribe(v.r, pd_slice_cstr(ch2)), PD_OK);
    assert_true(wait_numsub(&b, &v, ch2, 1));
    assert_true(info_stat(&a, "total_connections_received") == conns_before); /* a's links kept */
    assert_int_equal(v.lost, lost_before);
    assert_true(pd_redis_ready(v.r));
    before = v.messages;
    cmd_wait(&v, "PUBLISH %s stale", ch2);
    assert_int_equal(v.last_int, 1);
    RFX_WAIT(&v.l, v.messages > before, 5000);
    assert_string_equal(v.got_chan, ch2);
    assert_string_equal(v.got_msg, "stale");
    assert_int_equal(pd_redis_unsubscribe(v.r, pd_slice_cstr(ch2)), PD_OK);

    /* Two masters that each name the other for slot s3 (a gave it to b, b
     * still believes a has it; neither claims it, so gossip leaves both
     * views as they are). Each -MOVED re-homes the channel once per map,
     * not at network speed: the SSUBSCRIBEs both receive in a second stay
     * a handful per map (one asked every REFRESH_MIN_GAP_MS, 200 ms), and
     * the client stays ready. */
    char ch3[32];
    unsigned s3 = s;
    for (int i = 0; s3 == s || s3 == s2 || s3 > 8191; i++) {
        snprintf(ch3, sizeof ch3, "chu%d", i);
        s3 = pd_slot_of(pd_slice_cstr(ch3));
    }
    rfx_ok(a.c, "CLUSTER SETSLOT %u NODE %s", s3, b.id);
    rfx_ok(b.c, "CLUSTER SETSLOT %u NODE %s", s3, a.id);
    rfx_ok(a.c, "CONFIG RESETSTAT");
    rfx_ok(b.c, "CONFIG RESETSTAT");
    lost_before = v.lost;
    uint64_t t0 = pd_mono_ms();
    assert_int_equal(pd_redis_subscribe(v.r, pd_slice_cstr(ch3)), PD_OK);
    /* It does go back and forth: waited for, so a slow machine only waits
     * longer. Then a second more; the bound is per second actually run. */
    RFX_WAIT(&v.l, ssubscribe_calls(&a) + ssubscribe_calls(&b) >= 2, 10000);
    rfx_run_for(&v.l, 1000);
    long long tries = ssubscribe_calls(&a) + ssubscribe_calls(&b);
    long long secs = (long long)((pd_mono_ms() - t0 + 999) / 1000);
    assert_true(tries >= 2);
    assert_true(tries <= 60 * secs); /* about 15 a second; unbounded, thousands */
    assert_int_equal(v.lost, lost_before);
    assert_true(pd_redis_ready(v.r));
    assert_int_equal(pd_redis_unsubscribe(v.r, pd_slice_cstr(ch3)), PD_OK);
    rfx_ok(a.c, "CLUSTER SETSLOT %u NODE %s", s3, a.id);

    /* Many channels refused at once: 200 channels in 8 slots the two
     * masters again disagree on, so every map sends each one to a master
     * that answers -MOVED, then to the other, which answers -MOVED too. A
     * -MOVED does not say which channel it refuses; finding out is a walk
     * of every channel, and one walk per -MOVED would be channels squared
     * per map (seconds of a stopped loop with a few thousand). The
     * refusals heard between two ticks share one walk: a handful of walks
     * per map, whatever the number of channels. A client of its own, for
     * its counters. */
    {
        unsigned lo = 100;
        while ((s >= lo && s < lo + 8) || (s2 >= lo && s2 < lo + 8) || (s3 >= lo && s3 < lo + 8))
            lo += 8;
        for (unsigned k = lo; k < lo + 8; k++) {
            rfx_ok(a.c, "CLUSTER SETSLOT %u NODE %s", k, b.id);
            rfx_ok(b.c, "CLUSTER SETSLOT %u NODE %s", k, a.id);
        }
        pd_rcluster *rc = pd_rcluster_create(&v.l.loop, &opt, NULL, NULL, NULL, NULL);
        assert_non_null(rc);
        RFX_WAIT(&v.l, pd_rcluster_ready(rc), 10000);
        assert_true(pd_rcluster_ready(rc));
        rfx_ok(a.c, "CONFIG RESETSTAT");
        rfx_ok(b.c, "CONFIG RESETSTAT");
        unsigned long walks0 = pd_rcluster_chan_walks(rc), maps0 = pd_rcluster_map_refreshes(rc);
        char chv[32];
        for (int i = 0, got = 0; got < 200; i++) {
            snprintf(chv, sizeof chv, "chv%d", i);
            unsigned sl = pd_slot_of(pd_slice_cstr(chv));
            if (sl >= lo && sl < lo + 8) {
                assert_int_equal(pd_rcluster_subscribe(rc, pd_slice_cstr(chv)), PD_OK);
                got++;
            }
        }
        rfx_run_for(&v.l, 1000);
        long long refused = ssubscribe_calls(&a) + ssubscribe_calls(&b);
        unsigned long walks = pd_rcluster_chan_walks(rc) - walks0, maps = pd_rcluster_map_refreshes(rc) - maps0;
        assert_true(refused >= 200);              /* every channel did go to a master that refused it */
        /* a map, then two rounds of refusals, each heard over a tick or
         * two: a handful per map. One walk per -MOVED: 400 per map. */
        assert_true(walks <= 8 * (maps + 1));
        pd_rcluster_free(rc);
        rfx_run_for(&v.l, 50);
        for (unsigned k = lo; k < lo + 8; k++) {
            rfx_ok(a.c, "CLUSTER SETSLOT %u NODE %s", k, a.id);
            rfx_ok(b.c, "CLUSTER SETSLOT %u NODE %s", k, a.id);
        }
    }

    /* Unsubscribed: the shard forgets us. */
    assert_int_equal(pd_redis_unsubscribe(v.r, pd_slice_cstr(chb)), PD_OK);
    assert_true(wait_numsub(&b, &v, chb, 0));
    assert_int_equal(pd_redis_subscription_count(v.r), 1);

    /* Commands a cluster cannot route are refused up front. */
    assert_int_equal(pd_redis_cmd(v.r, NULL, NULL, "MULTI"), PD_ERR);

    pd_redis_free(v.r);
    rfx_loop_close(&v.l);
    cnode_stop(&a);
    cnode_stop(&b);
}

/* REDIS_PASSWORD in cluster mode: the command links and the subscriber
 * links both AUTH; a wrong password is never ready. */
static void live_password(void **state)
{
    (void)state;
    cnode a = {0};
    assert_int_equal(cnode_start_pw(&a, "s3cret-pw"), 0);
    rfx_ok(a.c, "CLUSTER ADDSLOTSRANGE 0 16383");
    for (int i = 0; i < 500 && !cluster_ok(&a); i++)
        rfx_sleep_ms(20);
    assert_true(cluster_ok(&a));
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", a.port);

    live v = {0};
    rfx_loop_init(&v.l);
    pd_redis_options opt = {0};
    opt.cluster_nodes = seeds;
    opt.subscriber = 1;
    opt.watchdog_ms = 200;
    opt.password = "wrong";
    v.r = pd_redis_create(&v.l.loop, &opt, NULL, on_msg, &v);
    assert_non_null(v.r);
    rfx_run_for(&v.l, 1000);
    assert_false(pd_redis_ready(v.r));
    pd_redis_free(v.r);
    rfx_loop_close(&v.l);

    memset(&v, 0, sizeof v);
    rfx_loop_init(&v.l);
    opt.password = "s3cret-pw";
    v.r = pd_redis_create(&v.l.loop, &opt, NULL, on_msg, &v);
    assert_non_null(v.r);
    RFX_WAIT(&v.l, pd_redis_ready(v.r), 10000);
    assert_true(pd_redis_ready(v.r));
    assert_int_equal(pd_redis_subscribe(v.r, pd_slice_cstr("pd:room:pw")), PD_OK);
    assert_true(wait_numsub(&a, &v, "pd:room:pw", 1));
    cmd_wait(&v, "PUBLISH pd:room:pw %s", "authed");
    RFX_WAIT(&v.l, v.messages == 1, 5000);
    assert_string_equal(v.got_msg, "authed");
    pd_redis_free(v.r);
    rfx_loop_close(&v.l);
    cnode_stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_round_trips_hiredis_format),
        cmocka_unit_test(split_refuses_malformed),
        cmocka_unit_test(route_finds_the_key),
        cmocka_unit_test(live_cluster),
        cmocka_unit_test(live_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
