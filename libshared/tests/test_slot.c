/* test_slot.c — Redis Cluster key routing: CRC16 and hash tags against the
 * values Redis itself computes, CLUSTER SLOTS maps (hand-written replies,
 * hostile ones, and a real cluster-enabled redis-server's), MOVED / ASK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "privydrop/pd_id.h"
#include "privydrop/pd_slot.h"
#include "redis_fixture.h"

static unsigned slot(const char *key)
{
    return pd_slot_of(pd_slice_cstr(key));
}

static void crc16_check_value(void **state)
{
    (void)state;
    /* The cluster specification's reference output for "123456789". */
    assert_int_equal(pd_slot_crc16("123456789", 9), 0x31C3);
    assert_int_equal(pd_slot_crc16("", 0), 0);
}

/* Each value below was printed by `redis-cli cluster keyslot <key>` against
 * redis-server 7.0.15 started with --cluster-enabled yes (Debian 12);
 * live_keyslot_agrees checks the same keys, and many random ones, against
 * the redis-server on this machine at test time. */
static const struct {
    const char *key;
    unsigned slot;
} KNOWN[] = {
    {"foo", 12182},
    {"bar", 5061},
    {"somekey", 11058},
    {"foo{hash_tag}", 2515},
    {"{user1000}.following", 3443},
    {"{user1000}.followers", 3443},
    {"user1000", 3443},
    {"foo{}{bar}", 8363},     /* the first "{}" is empty: whole key */
    {"foo{{bar}}zap", 4015},  /* tag is "{bar" */
    {"foo{bar}{zap}", 5061},  /* only the first tag counts: "bar" */
    {"{}", 15257},
    {"{", 4092},
    {"}", 12090},
    {"", 0},
    {"a{b", 13340},
    {"pd:room:abc123", 882},
    {"{pd}:room:abc", 9339},
    {"123456789", 12739},     /* 0x31C3 & 16383 */
};

static void known_slots(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        if (slot(KNOWN[i].key) != KNOWN[i].slot)
            fail_msg("slot(\"%s\") = %u, Redis says %u", KNOWN[i].key, slot(KNOWN[i].key), KNOWN[i].slot);
    /* Bytes after the key's end are not part of it. */
    assert_int_equal(pd_slot_of(pd_slice_make("foo{bar}", 3)), 12182);
    assert_int_equal(pd_slot_of(pd_slice_make("{bar}x", 4)), slot("{bar"));
    assert_int_equal(pd_slot_of(pd_slice_make(NULL, 0)), 0);
}

/* ---- a real cluster-enabled redis-server ------------------------------- */

typedef struct cluster_node {
    pid_t pid;
    int port;
    char dir[64];
} cluster_node;

static int cluster_start(cluster_node *n)
{
    snprintf(n->dir, sizeof n->dir, "/tmp/pd-slot-test-XXXXXX");
    if (!mkdtemp(n->dir))
        return -1;
    n->port = rfx_free_port();
    int bus = rfx_free_port(); /* its own port: port + 10000 may not exist */
    char port[16], busport[16], conf[128];
    snprintf(port, sizeof port, "%d", n->port);
    snprintf(busport, sizeof busport, "%d", bus);
    snprintf(conf, sizeof conf, "%s/nodes.conf", n->dir);
    char *argv[] = {"redis-server", "--port", port, "--cluster-port", busport, "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-config-file", conf, "--dir", n->dir, "--save", "",
                    "--appendonly", "no", "--daemonize", "no", NULL};
    n->pid = rfx_spawn(argv, n->port);
    return n->pid > 0 ? 0 : -1;
}

static void cluster_stop(cluster_node *n)
{
    if (n->pid > 0) {
        kill(n->pid, SIGKILL);
        waitpid(n->pid, NULL, 0);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/nodes.conf", n->dir);
    unlink(path);
    rmdir(n->dir);
}

static unsigned redis_keyslot(redisContext *c, const char *key, size_t len)
{
    redisReply *r = redisCommand(c, "CLUSTER KEYSLOT %b", key, len);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    unsigned s = (unsigned)r->integer;
    freeReplyObject(r);
    return s;
}

static void live_keyslot_agrees(void **state)
{
    (void)state;
    cluster_node n = {0};
    assert_int_equal(cluster_start(&n), 0);
    redisContext *c = rfx_sync(n.port);
    assert_non_null(c);
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        assert_int_equal(redis_keyslot(c, KNOWN[i].key, strlen(KNOWN[i].key)), KNOWN[i].slot);
    /* Random keys, binary, with braces often enough to hit every tag rule. */
    static const char alphabet[] = "{}{}ab\0\xff:x";
    for (int i = 0; i < 3000; i++) {
        uint8_t rnd[40];
        assert_int_equal(pd_random_bytes(rnd, sizeof rnd), PD_OK);
        size_t len = rnd[0] % 24;
        char key[24];
        for (size_t j = 0; j < len; j++)
            key[j] = (rnd[1 + j] & 1) ? alphabet[(rnd[1 + j] >> 1) % (sizeof(alphabet) - 1)] : (char)rnd[1 + j];
        unsigned want = redis_keyslot(c, key, len);
        if (pd_slot_of(pd_slice_make(key, len)) != want)
            fail_msg("key #%d (%zu bytes): we say %u, Redis says %u", i, len, pd_slot_of(pd_slice_make(key, len)),
                     want);
    }

    /* Its own CLUSTER SLOTS, once it owns every slot: one master. */
    rfx_ok(c, "CLUSTER ADDSLOTSRANGE 0 16383");
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    assert_non_null(r);
    const char *err = NULL;
    pd_slot_map *m = pd_slot_map_from_reply(r, &err);
    freeReplyObject(r);
    if (!m)
        fail_msg("CLUSTER SLOTS of a real node refused: %s", err);
    assert_int_equal(pd_slot_map_covered(m), PD_SLOT_COUNT);
    assert_int_equal(pd_slot_map_node_count(m), 1);
    const pd_slot_node *node = pd_slot_map_for_key(m, pd_slice_cstr("foo"));
    assert_non_null(node);
    assert_int_equal(node->port, n.port);
    assert_int_equal(strlen(node->id), 40);
    pd_slot_map_free(m);
    redisFree(c);
    cluster_stop(&n);
}

/* ---- CLUSTER SLOTS, hand-written ------------------------------------------ */

static pd_slot_map *map_of(const char *bytes, const char **err)
{
    redisReply *r = rfx_resp(bytes);
    pd_slot_map *m = pd_slot_map_from_reply(r, err);
    freeReplyObject(r);
    return m;
}

/* Three masters with replicas (and Redis 7's metadata element); node B
 * owns two ranges. */
#define THREE_MASTERS                                                                                           \
    "*4\r\n"                                                                                                     \
    "*4\r\n:0\r\n:5460\r\n*4\r\n$8\r\n10.0.0.1\r\n:7000\r\n$2\r\nid\r\n*0\r\n*3\r\n$8\r\n10.0.0.4\r\n:7003\r\n$3\r\nid4\r\n" \
    "*3\r\n:5461\r\n:10922\r\n*3\r\n$8\r\n10.0.0.2\r\n:7001\r\n$3\r\nidb\r\n"                                  \
    "*3\r\n:10923\r\n:16000\r\n*3\r\n$8\r\n10.0.0.3\r\n:7002\r\n$3\r\nidc\r\n"                                 \
    "*3\r\n:16001\r\n:16383\r\n*3\r\n$8\r\n10.0.0.2\r\n:7001\r\n$3\r\nidb\r\n"

static void map_from_slots(void **state)
{
    (void)state;
    const char *err = NULL;
    pd_slot_map *m = map_of(THREE_MASTERS, &err);
    assert_non_null(m);
    assert_int_equal(pd_slot_map_node_count(m), 3); /* replicas are not masters; B once */
    assert_int_equal(pd_slot_map_covered(m), PD_SLOT_COUNT);
    assert_int_equal(pd_slot_map_lookup(m, 0)->port, 7000);
    assert_int_equal(pd_slot_map_lookup(m, 5460)->port, 7000);
    assert_int_equal(pd_slot_map_lookup(m, 5461)->port, 7001);
    assert_int_equal(pd_slot_map_lookup(m, 16000)->port, 7002);
    assert_int_equal(pd_slot_map_lookup(m, 16383)->port, 7001);
    assert_string_equal(pd_slot_map_lookup(m, 16383)->id, "idb");
    assert_null(pd_slot_map_lookup(m, 16384));
    /* Keys: "foo" is slot 12182 → C, "bar" 5061 → A, "{user1000}…" 3443 → A. */
    assert_string_equal(pd_slot_map_for_key(m, pd_slice_cstr("foo"))->host, "10.0.0.3");
    assert_string_equal(pd_slot_map_for_key(m, pd_slice_cstr("bar"))->host, "10.0.0.1");
    assert_ptr_equal(pd_slot_map_for_key(m, pd_slice_cstr("{user1000}.following")),
                     pd_slot_map_for_key(m, pd_slice_cstr("{user1000}.followers")));
    assert_null(pd_slot_map_node(m, 3));
    pd_slot_map_free(m);

    /* Part of the slots only; no id; "?" for an unknown endpoint. */
    m = map_of("*1\r\n*3\r\n:100\r\n:199\r\n*2\r\n$1\r\n?\r\n:7000\r\n", &err);
    assert_non_null(m);
    assert_int_equal(pd_slot_map_covered(m), 100);
    assert_null(pd_slot_map_lookup(m, 99));
    assert_string_equal(pd_slot_map_lookup(m, 150)->host, "");
    assert_string_equal(pd_slot_map_lookup(m, 150)->id, "");
    pd_slot_map_free(m);

    /* Empty: a cluster with no slots assigned. */
    m = map_of("*0\r\n", &err);
    assert_non_null(m);
    assert_int_equal(pd_slot_map_covered(m), 0);
    assert_null(pd_slot_map_for_key(m, pd_slice_cstr("foo")));
    pd_slot_map_free(m);
}

static void map_bad(const char *bytes, const char *why)
{
    const char *err = NULL;
    pd_slot_map *m = map_of(bytes, &err);
    if (m) {
        pd_slot_map_free(m);
        fail_msg("accepted a bad CLUSTER SLOTS reply (%s)", why);
    }
    assert_non_null(err);
}

static void hostile_slots_replies(void **state)
{
    (void)state;
    map_bad("-ERR This instance has cluster support disabled\r\n", "error");
    map_bad("$3\r\nfoo\r\n", "string");
    map_bad("*1\r\n:1\r\n", "range not an array");
    map_bad("*1\r\n*2\r\n:0\r\n:1\r\n", "range without a master");
    map_bad("*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\na\r\n:1\r\n", "reversed range");
    map_bad("*1\r\n*3\r\n:-1\r\n:4\r\n*2\r\n$1\r\na\r\n:1\r\n", "negative slot");
    map_bad("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n", "slot past the end");
    map_bad("*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n", "start not an integer");
    map_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:0\r\n", "port 0");
    map_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:65536\r\n", "port too big");
    map_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n$4\r\n7000\r\n", "port as a string");
    map_bad("*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\na\r\n", "node without a port");
    map_bad("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na b\r\n:1\r\n", "host with a space");
    map_bad("*2\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\na\r\n:1\r\n*3\r\n:10\r\n:20\r\n*2\r\n$1\r\nb\r\n:2\r\n",
            "overlap");
    /* More masters than the bound: 1025 one-slot ranges, each its own node. */
    size_t cap = 64 * 1100;
    char *big = malloc(cap), *p = big;
    assert_non_null(big);
    p += sprintf(p, "*%d\r\n", PD_SLOT_MAX_NODES + 1);
    for (int i = 0; i <= PD_SLOT_MAX_NODES; i++)
        p += sprintf(p, "*3\r\n:%d\r\n:%d\r\n*2\r\n$1\r\nh\r\n:%d\r\n", i, i, 1 + i);
    map_bad(big, "too many masters");
    free(big);
    assert_null(pd_slot_map_from_reply(NULL, &(const char *){NULL}));
}

/* ---- MOVED / ASK --------------------------------------------------------- */

static int redirect(const char *text, pd_slot_redirect *r)
{
    return pd_slot_parse_redirect(pd_slice_cstr(text), r);
}

static void redirects(void **state)
{
    (void)state;
    pd_slot_redirect r;
    assert_int_equal(redirect("MOVED 3999 127.0.0.1:6381", &r), PD_OK);
    assert_int_equal(r.kind, PD_SLOT_MOVED);
    assert_int_equal(r.slot, 3999);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 6381);
    assert_int_equal(redirect("-ASK 16383 10.1.2.3:7000", &r), PD_OK);
    assert_int_equal(r.kind, PD_SLOT_ASK);
    assert_int_equal(r.slot, 16383);
    assert_int_equal(redirect("MOVED 0 ::1:7000", &r), PD_OK); /* IPv6: last colon */
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 7000);
    assert_int_equal(redirect("MOVED 12182 :7002", &r), PD_OK); /* endpoint unknown */
    assert_string_equal(r.host, "");
    assert_int_equal(redirect("MOVED 1 node-3.cluster.local:6379", &r), PD_OK);
    assert_string_equal(r.host, "node-3.cluster.local");

    assert_int_equal(redirect("ERR wrong number of arguments", &r), PD_ERR);
    assert_int_equal(redirect("MOVED", &r), PD_ERR);
    assert_int_equal(redirect("MOVED ", &r), PD_ERR);
    assert_int_equal(redirect("MOVED 16384 a:1", &r), PD_ERR);
    assert_int_equal(redirect("MOVED -1 a:1", &r), PD_ERR);
    assert_int_equal(redirect("MOVED 1x a:1", &r), PD_ERR);
    assert_int_equal(redirect("MOVED 1 a", &r), PD_ERR);
    assert_int_equal(redirect("MOVED 1 a:", &r), PD_ERR);
    assert_int_equal(redirect("MOVED 1 a:0", &r), PD_ERR);
    assert_int_equal(redirect("MOVED 1 a:65536", &r), PD_ERR);
    assert_int_equal(redirect("MOVED 1 a b:1", &r), PD_ERR);
    assert_int_equal(redirect("MOVED 99999999999 a:1", &r), PD_ERR);
    assert_int_equal(redirect("ASKING 1 a:1", &r), PD_ERR);
    assert_int_equal(redirect("moved 1 a:1", &r), PD_ERR);
    char longhost[PD_SLOT_HOST_MAX + 32] = "MOVED 1 ";
    memset(longhost + 8, 'h', PD_SLOT_HOST_MAX + 1);
    strcpy(longhost + 8 + PD_SLOT_HOST_MAX + 1, ":1");
    assert_int_equal(redirect(longhost, &r), PD_ERR);
}

static void moved_updates_the_map(void **state)
{
    (void)state;
    const char *err = NULL;
    pd_slot_map *m = map_of(THREE_MASTERS, &err);
    assert_non_null(m);
    pd_slot_redirect r;
    /* ASK: this once only; the map stays. */
    assert_int_equal(redirect("ASK 12182 10.0.0.9:7009", &r), PD_OK);
    assert_int_equal(pd_slot_map_apply(m, &r), PD_OK);
    assert_string_equal(pd_slot_map_for_key(m, pd_slice_cstr("foo"))->host, "10.0.0.3");
    /* MOVED to a node we know. */
    assert_int_equal(redirect("MOVED 12182 10.0.0.1:7000", &r), PD_OK);
    assert_int_equal(pd_slot_map_apply(m, &r), PD_OK);
    assert_string_equal(pd_slot_map_for_key(m, pd_slice_cstr("foo"))->host, "10.0.0.1");
    assert_int_equal(pd_slot_map_node_count(m), 3);
    /* MOVED to a new node: added; only that slot moves. */
    assert_int_equal(redirect("MOVED 5061 10.0.0.9:7009", &r), PD_OK);
    assert_int_equal(pd_slot_map_apply(m, &r), PD_OK);
    assert_int_equal(pd_slot_map_node_count(m), 4);
    assert_int_equal(pd_slot_map_for_key(m, pd_slice_cstr("bar"))->port, 7009);
    assert_int_equal(pd_slot_map_lookup(m, 5060)->port, 7000);
    assert_int_equal(pd_slot_map_lookup(m, 5062)->port, 7000);
    assert_int_equal(pd_slot_map_covered(m), PD_SLOT_COUNT);
    pd_slot_map_free(m);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc16_check_value),
        cmocka_unit_test(known_slots),
        cmocka_unit_test(live_keyslot_agrees),
        cmocka_unit_test(map_from_slots),
        cmocka_unit_test(hostile_slots_replies),
        cmocka_unit_test(redirects),
        cmocka_unit_test(moved_updates_the_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
