/* test_peer.c — what a worker reads before it opens a link to another
 * (docs/wire-protocol.md §Links between workers): the other's record from
 * Redis, and the Redis address it finds its own announced address by. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>

#include "../src/peer.h"

#define TOKEN "abcdefghijABCDEFGHIJ0123456789xy"

static int parse(const char *rec, struct sockaddr_storage *sa, char *tok)
{
    return pd_peer_parse_record(pd_slice_cstr(rec), sa, tok);
}

static void test_record_ipv4_and_ipv6(void **state)
{
    (void)state;
    struct sockaddr_storage sa;
    char tok[PD_PEER_TOKEN_LEN + 1];
    assert_int_equal(parse("10.1.2.3 3011 " TOKEN, &sa, tok), PD_OK);
    assert_int_equal(sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 3011);
    assert_string_equal(tok, TOKEN);
    assert_int_equal(parse("fd00::1 65535 " TOKEN, &sa, tok), PD_OK);
    assert_int_equal(sa.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&sa)->sin6_port), 65535);
}

static void test_record_malformed(void **state)
{
    (void)state;
    struct sockaddr_storage sa;
    char tok[PD_PEER_TOKEN_LEN + 1];
    static const char *bad[] = {
        "",
        "10.1.2.3 3011",                              /* no token */
        "10.1.2.3 3011 " TOKEN "z",                   /* token too long */
        "10.1.2.3 3011 abc",                          /* token too short */
        "10.1.2.3 3011 " TOKEN " more",               /* something after it */
        "10.1.2.3 0 " TOKEN,                          /* port 0 */
        "10.1.2.3 65536 " TOKEN,                      /* port out of range */
        "10.1.2.3 -1 " TOKEN,
        "redis.example 3011 " TOKEN,                  /* a name, not an address */
        "10.1.2.3.4 3011 " TOKEN,
        "10.1.2.3 3011 abcdefghijABCDEFGHIJ0123456789x!", /* not a letter or digit */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &sa, tok), PD_ERR);
    /* A NUL inside, and one longer than any record could be. */
    assert_int_equal(pd_peer_parse_record(pd_slice_make("10.1.2.3\0 3011", 14), &sa, tok), PD_ERR);
    char longrec[300];
    memset(longrec, '1', sizeof(longrec) - 1);
    longrec[sizeof(longrec) - 1] = '\0';
    assert_int_equal(parse(longrec, &sa, tok), PD_ERR);
}

static void test_redis_host(void **state)
{
    (void)state;
    char host[64], port[8];
    pd_redis_options o;
    memset(&o, 0, sizeof(o));
    o.host = "redis";
    o.port = 6380;
    assert_int_equal(pd_peer_redis_host(&o, host, sizeof(host), port, sizeof(port)), PD_OK);
    assert_string_equal(host, "redis");
    assert_string_equal(port, "6380");

    o.sentinels = "sentinel-0:26379,sentinel-1:26379";
    assert_int_equal(pd_peer_redis_host(&o, host, sizeof(host), port, sizeof(port)), PD_OK);
    assert_string_equal(host, "sentinel-0");
    assert_string_equal(port, "26379");

    o.cluster_nodes = "[fd00::7]:7000,10.0.0.2:7001";
    assert_int_equal(pd_peer_redis_host(&o, host, sizeof(host), port, sizeof(port)), PD_OK);
    assert_string_equal(host, "fd00::7");
    assert_string_equal(port, "7000");

    o.cluster_nodes = "no-port";
    assert_int_equal(pd_peer_redis_host(&o, host, sizeof(host), port, sizeof(port)), PD_ERR);
    o.cluster_nodes = ":7000";
    assert_int_equal(pd_peer_redis_host(&o, host, sizeof(host), port, sizeof(port)), PD_ERR);
    o.cluster_nodes = "host:";
    assert_int_equal(pd_peer_redis_host(&o, host, sizeof(host), port, sizeof(port)), PD_ERR);
    o.cluster_nodes = "host:123456789";
    assert_int_equal(pd_peer_redis_host(&o, host, sizeof(host), port, sizeof(port)), PD_ERR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_ipv4_and_ipv6),
        cmocka_unit_test(test_record_malformed),
        cmocka_unit_test(test_redis_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
