/* test_netaddr.c — trusted-proxy lists and client address resolution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_netaddr.h"

static pd_cidr_list *list_ok(const char *text)
{
    const char *err = "unset";
    pd_cidr_list *l = pd_cidr_list_create(text, &err);
    assert_non_null(l);
    assert_null(err);
    return l;
}

static void list_bad(const char *text)
{
    const char *err = NULL;
    pd_cidr_list *l = pd_cidr_list_create(text, &err);
    if (l != NULL)
        fail_msg("accepted bad list \"%s\"", text);
    assert_non_null(err);
}

static void empty_lists_trust_nobody(void **state)
{
    (void)state;
    const char *texts[] = {NULL, "", "   ", " \t "};
    for (size_t i = 0; i < PD_ARRAY_LEN(texts); i++) {
        pd_cidr_list *l = list_ok(texts[i]);
        assert_false(pd_cidr_list_contains(l, "127.0.0.1"));
        assert_false(pd_cidr_list_contains(l, "::1"));
        pd_cidr_list_free(l);
    }
    assert_false(pd_cidr_list_contains(NULL, "127.0.0.1"));
    pd_cidr_list_free(NULL);
}

static void single_addresses_and_blocks(void **state)
{
    (void)state;
    pd_cidr_list *l = list_ok("127.0.0.1, 10.0.0.0/8,::1 ,\tfd00::/8, 192.168.1.0/24");
    assert_true(pd_cidr_list_contains(l, "127.0.0.1"));
    assert_false(pd_cidr_list_contains(l, "127.0.0.2"));
    assert_true(pd_cidr_list_contains(l, "10.0.0.0"));
    assert_true(pd_cidr_list_contains(l, "10.255.255.255"));
    assert_false(pd_cidr_list_contains(l, "11.0.0.0"));
    assert_false(pd_cidr_list_contains(l, "9.255.255.255"));
    assert_true(pd_cidr_list_contains(l, "192.168.1.77"));
    assert_false(pd_cidr_list_contains(l, "192.168.2.1"));
    assert_true(pd_cidr_list_contains(l, "::1"));
    assert_true(pd_cidr_list_contains(l, "0:0:0:0:0:0:0:1"));
    assert_false(pd_cidr_list_contains(l, "::2"));
    assert_true(pd_cidr_list_contains(l, "fd12:3456::1"));
    assert_true(pd_cidr_list_contains(l, "FDFF:FFFF::"));
    assert_false(pd_cidr_list_contains(l, "fe00::1"));
    assert_false(pd_cidr_list_contains(l, "fc00::1"));
    /* Garbage in the probe is never trusted. */
    assert_false(pd_cidr_list_contains(l, ""));
    assert_false(pd_cidr_list_contains(l, NULL));
    assert_false(pd_cidr_list_contains(l, " 127.0.0.1"));
    assert_false(pd_cidr_list_contains(l, "127.0.0.1/32"));
    assert_false(pd_cidr_list_contains(l, "127.1"));
    assert_false(pd_cidr_list_contains(l, "::1%lo"));
    assert_false(pd_cidr_list_contains(l, "[::1]"));
    pd_cidr_list_free(l);
}

static void prefix_edges(void **state)
{
    (void)state;
    pd_cidr_list *l = list_ok("0.0.0.0/0");
    assert_true(pd_cidr_list_contains(l, "1.2.3.4"));
    assert_true(pd_cidr_list_contains(l, "255.255.255.255"));
    assert_false(pd_cidr_list_contains(l, "2001:db8::1")); /* family matters */
    assert_true(pd_cidr_list_contains(l, "::ffff:1.2.3.4"));
    pd_cidr_list_free(l);

    l = list_ok("::/0");
    assert_true(pd_cidr_list_contains(l, "2001:db8::1"));
    assert_false(pd_cidr_list_contains(l, "1.2.3.4"));
    pd_cidr_list_free(l);

    l = list_ok("10.1.2.3/32, 2001:db8::5/128");
    assert_true(pd_cidr_list_contains(l, "10.1.2.3"));
    assert_false(pd_cidr_list_contains(l, "10.1.2.2"));
    assert_true(pd_cidr_list_contains(l, "2001:db8::5"));
    assert_false(pd_cidr_list_contains(l, "2001:db8::4"));
    pd_cidr_list_free(l);

    /* Prefixes off a byte boundary. */
    l = list_ok("172.16.0.0/12, 2001:db8:8000::/33");
    assert_true(pd_cidr_list_contains(l, "172.16.0.1"));
    assert_true(pd_cidr_list_contains(l, "172.31.255.255"));
    assert_false(pd_cidr_list_contains(l, "172.32.0.0"));
    assert_false(pd_cidr_list_contains(l, "172.15.255.255"));
    assert_true(pd_cidr_list_contains(l, "2001:db8:8000::1"));
    assert_true(pd_cidr_list_contains(l, "2001:db8:ffff::1"));
    assert_false(pd_cidr_list_contains(l, "2001:db8:7fff::1"));
    pd_cidr_list_free(l);

    /* Host bits set: read as the enclosing network. */
    l = list_ok("10.9.8.7/8");
    assert_true(pd_cidr_list_contains(l, "10.0.0.1"));
    assert_false(pd_cidr_list_contains(l, "11.0.0.1"));
    pd_cidr_list_free(l);

    l = list_ok("1.2.3.4/1");
    assert_true(pd_cidr_list_contains(l, "127.255.255.255"));
    assert_false(pd_cidr_list_contains(l, "128.0.0.0"));
    pd_cidr_list_free(l);
}

static void ipv4_mapped_ipv6(void **state)
{
    (void)state;
    pd_cidr_list *l = list_ok("127.0.0.1, 10.0.0.0/8");
    assert_true(pd_cidr_list_contains(l, "::ffff:127.0.0.1"));
    assert_true(pd_cidr_list_contains(l, "::FFFF:10.20.30.40"));
    assert_true(pd_cidr_list_contains(l, "::ffff:a14:1e28")); /* 10.20.30.40 in hex */
    assert_false(pd_cidr_list_contains(l, "::ffff:11.0.0.1"));
    /* IPv4-compatible (deprecated) and NAT64 forms are not IPv4 peers. */
    assert_false(pd_cidr_list_contains(l, "::127.0.0.1"));
    assert_false(pd_cidr_list_contains(l, "64:ff9b::127.0.0.1"));
    pd_cidr_list_free(l);

    /* A mapped entry matches both spellings of the IPv4 peer. */
    l = list_ok("::ffff:192.168.0.0/112, ::ffff:1.2.3.4");
    assert_true(pd_cidr_list_contains(l, "192.168.7.7"));
    assert_true(pd_cidr_list_contains(l, "::ffff:192.168.7.7"));
    assert_false(pd_cidr_list_contains(l, "192.169.0.1"));
    assert_true(pd_cidr_list_contains(l, "1.2.3.4"));
    assert_false(pd_cidr_list_contains(l, "1.2.3.5"));
    pd_cidr_list_free(l);

    /* An IPv6 block covering the mapped range matches the mapped spelling. */
    l = list_ok("::ffff:0:0/96");
    assert_true(pd_cidr_list_contains(l, "::ffff:8.8.8.8"));
    assert_true(pd_cidr_list_contains(l, "8.8.8.8"));
    pd_cidr_list_free(l);
    l = list_ok("::/80");
    assert_true(pd_cidr_list_contains(l, "::ffff:8.8.8.8"));
    assert_false(pd_cidr_list_contains(l, "8.8.8.8"));
    pd_cidr_list_free(l);
}

static void bad_lists(void **state)
{
    (void)state;
    const char *bad[] = {
        "10.0.0.0/33",  "::/129",      "10.0.0.0/",     "10.0.0.0/-1",   "10.0.0.0/+8",
        "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0 /8",   "10.0.0.0/0008", "10.0.0.0/a",
        "256.0.0.1",    "10.0.0",      "1.2.3.4.5",     "localhost",     "::1::2",
        "fe80::1%eth0", "[::1]",       "1.2.3.4:80",    "/8",            "a,,b",
        "127.0.0.1,",   ",127.0.0.1",  "127.0.0.1,,::1", "127.0.0.1, ,::1", ",",
        "1.2.3.4 5.6.7.8", "10.0.0.0/4294967304",
    };
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++)
        list_bad(bad[i]);
    /* err may be NULL. */
    assert_null(pd_cidr_list_create("nope", NULL));
}

static void long_lists_are_bounded(void **state)
{
    (void)state;
    size_t n = 257;
    char *text = malloc(n * 10 + 1);
    assert_non_null(text);
    text[0] = '\0';
    for (size_t i = 0; i < n; i++)
        strcat(text, i ? ",127.0.0.1" : "127.0.0.1");
    list_bad(text);
    text[strlen(text) - strlen(",127.0.0.1")] = '\0'; /* 256 entries */
    pd_cidr_list *l = list_ok(text);
    assert_true(pd_cidr_list_contains(l, "127.0.0.1"));
    pd_cidr_list_free(l);
    free(text);
}

static const char *client(const pd_cidr_list *l, const char *peer, const char *xff)
{
    static char out[INET6_ADDRSTRLEN];
    memset(out, 'Z', sizeof out);
    pd_slice s = pd_slice_cstr(xff);
    pd_client_ip(l, peer, xff ? &s : NULL, out);
    return out;
}

static void xff_ignored_from_untrusted_peer(void **state)
{
    (void)state;
    pd_cidr_list *l = list_ok("10.0.0.0/8");
    assert_string_equal(client(l, "203.0.113.9", "1.1.1.1"), "203.0.113.9");
    assert_string_equal(client(l, "203.0.113.9", NULL), "203.0.113.9");
    pd_cidr_list *none = list_ok("");
    assert_string_equal(client(none, "10.0.0.1", "1.1.1.1"), "10.0.0.1");
    assert_string_equal(client(NULL, "10.0.0.1", "1.1.1.1"), "10.0.0.1");
    pd_cidr_list_free(none);
    pd_cidr_list_free(l);
}

static void xff_from_trusted_peer(void **state)
{
    (void)state;
    pd_cidr_list *l = list_ok("10.0.0.0/8, fd00::/8");
    /* No or empty header: the peer itself. */
    assert_string_equal(client(l, "10.0.0.1", NULL), "10.0.0.1");
    assert_string_equal(client(l, "10.0.0.1", ""), "10.0.0.1");
    assert_string_equal(client(l, "10.0.0.1", "   "), "10.0.0.1");
    /* One hop. */
    assert_string_equal(client(l, "10.0.0.1", "198.51.100.7"), "198.51.100.7");
    /* Client-written entries on the left are ignored. */
    assert_string_equal(client(l, "10.0.0.1", "6.6.6.6, 198.51.100.7"), "198.51.100.7");
    /* Trusted hops on the right are skipped. */
    assert_string_equal(client(l, "10.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.1.1, 10.2.2.2"),
                        "198.51.100.7");
    /* Spaces and tabs around entries, none around commas. */
    assert_string_equal(client(l, "10.0.0.1", "  198.51.100.7\t,\t10.1.1.1  "), "198.51.100.7");
    assert_string_equal(client(l, "10.0.0.1", "6.6.6.6,198.51.100.7,10.1.1.1"), "198.51.100.7");
    /* IPv6 clients and peers; an IPv6 client counts as its /64. */
    assert_string_equal(client(l, "fd00::1", "2001:db8::1"), "2001:db8::");
    assert_string_equal(client(l, "::ffff:10.0.0.1", "198.51.100.7"), "198.51.100.7");
    /* Canonical text, mapped addresses as IPv4. */
    assert_string_equal(client(l, "10.0.0.1", "2001:DB8:0:0::1"), "2001:db8::");
    assert_string_equal(client(l, "10.0.0.1", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
    assert_string_equal(client(l, "10.0.0.1", "::ffff:198.51.100.7"), "198.51.100.7");
    pd_cidr_list_free(l);
}

static void xff_all_trusted(void **state)
{
    (void)state;
    pd_cidr_list *l = list_ok("10.0.0.0/8");
    assert_string_equal(client(l, "10.0.0.1", "10.3.3.3, 10.2.2.2"), "10.3.3.3");
    assert_string_equal(client(l, "10.0.0.1", "10.2.2.2"), "10.2.2.2");
    pd_cidr_list_free(l);
}

static void xff_invalid_entries_stop_the_walk(void **state)
{
    (void)state;
    pd_cidr_list *l = list_ok("10.0.0.0/8");
    /* Rightmost entry invalid: nothing believable, use the peer. */
    assert_string_equal(client(l, "10.0.0.1", "198.51.100.7, bogus"), "10.0.0.1");
    assert_string_equal(client(l, "10.0.0.1", "unknown"), "10.0.0.1");
    assert_string_equal(client(l, "10.0.0.1", "198.51.100.7,"), "10.0.0.1");
    assert_string_equal(client(l, "10.0.0.1", "1.2.3.4:5678"), "10.0.0.1");
    assert_string_equal(client(l, "10.0.0.1", "[2001:db8::1]"), "10.0.0.1");
    assert_string_equal(client(l, "10.0.0.1", "198.51.100.7 203.0.113.1"), "10.0.0.1");
    /* Invalid entry behind trusted hops: the last trusted hop seen. */
    assert_string_equal(client(l, "10.0.0.1", "198.51.100.7, junk, 10.5.5.5"), "10.5.5.5");
    assert_string_equal(client(l, "10.0.0.1", ", 10.5.5.5"), "10.5.5.5");
    /* An untrusted valid entry to the right of junk wins. */
    assert_string_equal(client(l, "10.0.0.1", "junk, 198.51.100.7"), "198.51.100.7");
    /* Over-long entries are invalid, never truncated into something else. */
    assert_string_equal(
        client(l, "10.0.0.1", "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc"),
        "10.0.0.1");
    pd_cidr_list_free(l);
}

static void xff_huge_header(void **state)
{
    (void)state;
    pd_cidr_list *l = list_ok("10.0.0.0/8");
    size_t reps = 100000;
    const char *hop = "10.1.1.1,";
    char *h = malloc(reps * strlen(hop) + 32);
    assert_non_null(h);
    strcpy(h, "198.51.100.7,");
    size_t off = strlen(h);
    for (size_t i = 0; i < reps; i++, off += strlen(hop))
        memcpy(h + off, hop, strlen(hop));
    strcpy(h + off, "10.9.9.9");
    assert_string_equal(client(l, "10.0.0.1", h), "198.51.100.7");
    /* Not NUL-terminated within the slice: only len bytes are read. */
    char out[INET6_ADDRSTRLEN];
    pd_slice s = pd_slice_make(h, 12); /* "198.51.100.7" */
    pd_client_ip(l, "10.0.0.1", &s, out);
    assert_string_equal(out, "198.51.100.7");
    free(h);
    pd_cidr_list_free(l);
}

static void ipv6_hosts_count_as_their_64(void **state)
{
    (void)state;
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    /* Two interface ids of one /64: one key. */
    pd_addr_key("2001:db8:5:6:1111:2222:3333:4444", a);
    pd_addr_key("2001:db8:5:6::9", b);
    assert_string_equal(a, "2001:db8:5:6::");
    assert_string_equal(a, b);
    /* The neighbouring /64: another key. */
    pd_addr_key("2001:db8:5:7::9", b);
    assert_string_not_equal(a, b);
    /* IPv4, plain or mapped, stays a single host. */
    pd_addr_key("198.51.100.7", a);
    assert_string_equal(a, "198.51.100.7");
    pd_addr_key("::ffff:198.51.100.7", a);
    assert_string_equal(a, "198.51.100.7");
    /* An untrusted IPv6 peer is keyed the same way. */
    assert_string_equal(client(NULL, "2001:db8:5:6::abcd", NULL), "2001:db8:5:6::");
    /* Not an address: kept, bounded. */
    pd_addr_key("", a);
    assert_string_equal(a, "");
    pd_addr_key(NULL, a);
    assert_string_equal(a, "");
}

static void peer_text_is_bounded(void **state)
{
    (void)state;
    char out[INET6_ADDRSTRLEN];
    char longpeer[200];
    memset(longpeer, 'p', sizeof longpeer - 1);
    longpeer[sizeof longpeer - 1] = '\0';
    pd_client_ip(NULL, longpeer, NULL, out);
    assert_int_equal(strlen(out), INET6_ADDRSTRLEN - 1);
    pd_client_ip(NULL, NULL, NULL, out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_lists_trust_nobody),
        cmocka_unit_test(single_addresses_and_blocks),
        cmocka_unit_test(prefix_edges),
        cmocka_unit_test(ipv4_mapped_ipv6),
        cmocka_unit_test(bad_lists),
        cmocka_unit_test(long_lists_are_bounded),
        cmocka_unit_test(xff_ignored_from_untrusted_peer),
        cmocka_unit_test(xff_from_trusted_peer),
        cmocka_unit_test(xff_all_trusted),
        cmocka_unit_test(xff_invalid_entries_stop_the_walk),
        cmocka_unit_test(xff_huge_header),
        cmocka_unit_test(ipv6_hosts_count_as_their_64),
        cmocka_unit_test(peer_text_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
