/* test_turn.c — TURN REST credentials and the /api/ice_servers body.
 *
 * The expected MACs below were computed outside this code, with OpenSSL's
 * command line (the same computation tests/turn/run.sh uses against coturn):
 *   printf '%s' "$username" | openssl dgst -sha1 -hmac "$secret" -binary | openssl base64 -A
 * plus RFC 2202 test case 2 for HMAC-SHA1 itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "privydrop/pd_id.h"
#include "privydrop/pd_turn.h"

#define KAT_SECRET "pd-test-secret"

static const struct {
    const char *secret;
    const char *username;
    const char *b64;
} kat[] = {
    /* RFC 2202, HMAC-SHA1 test case 2: effcdf6ae5eb2fa2d27416d5f184df9c259a7c79 */
    {"Jefe", "what do ya want for nothing?", "7/zfauXrL6LSdBbV8YTfnCWafHk="},
    {KAT_SECRET, "1700086400:AbCdEfGh01234567", "FoQ0u4LTV6TlJItXAEfGSrNN6Vk="},
    {KAT_SECRET, "4102444800:pd-kat", "ot871tEWj33aYrRMDbtrQ9Xl3L4="},
    {KAT_SECRET, "", "ctwYmLzV0K+estmG16TVEchF/qE="},
    {"another secret", "1700086400:AbCdEfGh01234567", "03IYF2+jasUOK1oouoOxwoU1N9U="},
};

static void hmac_matches_openssl_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        char out[PD_TURN_CREDENTIAL_LEN + 1];
        assert_int_equal(pd_turn_hmac(pd_slice_cstr(kat[i].secret),
                                      pd_slice_cstr(kat[i].username), out),
                         PD_OK);
        assert_string_equal(out, kat[i].b64);
    }
}

static void hmac_refuses_empty_secret(void **state)
{
    (void)state;
    char out[PD_TURN_CREDENTIAL_LEN + 1] = "x";
    assert_int_equal(pd_turn_hmac(pd_slice_cstr(""), pd_slice_cstr("1:a"), out), PD_ERR);
    assert_string_equal(out, "");
}

static void credential_with_fixed_id_is_the_known_answer(void **state)
{
    (void)state;
    pd_turn_credential c;
    assert_int_equal(pd_turn_credential_make(&c, pd_slice_cstr(KAT_SECRET), 1700000000u, 86400u,
                                             "AbCdEfGh01234567"),
                     PD_OK);
    assert_string_equal(c.username, "1700086400:AbCdEfGh01234567");
    assert_string_equal(c.credential, "FoQ0u4LTV6TlJItXAEfGSrNN6Vk=");
    assert_true(c.expires_at == 1700086400u);
}

/* username is "<digits>:<PD_TURN_ID_LEN alnum>"; returns the expiry. */
static uint64_t check_username_shape(const char *u)
{
    const char *colon = strchr(u, ':');
    assert_non_null(colon);
    assert_true(colon > u);
    uint64_t v = 0;
    for (const char *p = u; p < colon; p++) {
        assert_true(*p >= '0' && *p <= '9');
        v = v * 10 + (uint64_t)(*p - '0');
    }
    assert_int_equal(strlen(colon + 1), PD_TURN_ID_LEN);
    for (const char *p = colon + 1; *p; p++)
        assert_non_null(strchr(PD_ALPHABET_ALNUM, *p));
    return v;
}

static void random_credentials_are_fresh_and_verifiable(void **state)
{
    (void)state;
    pd_turn_credential a, b;
    char check[PD_TURN_CREDENTIAL_LEN + 1];
    assert_int_equal(pd_turn_credential_make(&a, pd_slice_cstr("s3cret"), 1000, 600, NULL), PD_OK);
    assert_int_equal(pd_turn_credential_make(&b, pd_slice_cstr("s3cret"), 1000, 600, NULL), PD_OK);
    assert_true(check_username_shape(a.username) == 1600);
    assert_true(check_username_shape(b.username) == 1600);
    assert_string_not_equal(a.username, b.username);
    assert_int_equal(pd_turn_hmac(pd_slice_cstr("s3cret"), pd_slice_cstr(a.username), check), PD_OK);
    assert_string_equal(a.credential, check);
    assert_int_equal(strlen(a.credential), PD_TURN_CREDENTIAL_LEN);
}

static void credential_refuses_bad_arguments(void **state)
{
    (void)state;
    pd_turn_credential c;
    assert_int_equal(pd_turn_credential_make(&c, pd_slice_cstr(""), 1, 60, NULL), PD_ERR);
    assert_string_equal(c.username, "");
    assert_int_equal(pd_turn_credential_make(&c, pd_slice_cstr("k"), 1, 0, NULL), PD_ERR);
    assert_int_equal(pd_turn_credential_make(&c, pd_slice_cstr("k"), 1, 60, "a:b"), PD_ERR);
    assert_int_equal(pd_turn_credential_make(&c, pd_slice_cstr("k"), 1, 60, ""), PD_ERR);
    assert_int_equal(pd_turn_credential_make(&c, pd_slice_cstr("k"), 1, 60, "0123456789abcdefX"),
                     PD_ERR);
    assert_int_equal(pd_turn_credential_make(&c, pd_slice_cstr("k"), UINT64_MAX - 5, 60, NULL),
                     PD_ERR);
    assert_int_equal(pd_turn_credential_make(NULL, pd_slice_cstr("k"), 1, 60, NULL), PD_ERR);
}

/* ---- ice_servers ---------------------------------------------------------- */

static json_t *urls_of(json_t *root, size_t idx)
{
    json_t *servers = json_object_get(root, "iceServers");
    assert_true(json_is_array(servers));
    json_t *entry = json_array_get(servers, idx);
    assert_true(json_is_object(entry));
    json_t *urls = json_object_get(entry, "urls");
    assert_true(json_is_array(urls));
    return urls;
}

static void assert_urls(json_t *urls, const char *const *want, size_t n)
{
    assert_int_equal(json_array_size(urls), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_array_get(urls, i)), want[i]);
}

static void ice_servers_with_turn_udp_and_tcp(void **state)
{
    (void)state;
    pd_turn_config cfg = {.host = "turn.example.org", .secret = KAT_SECRET};
    const char *err = NULL;
    pd_turn *t = pd_turn_create(&cfg, &err);
    assert_non_null(t);
    assert_true(pd_turn_has_relay(t));
    assert_int_equal(pd_turn_ttl(t), 86400);

    json_t *root = pd_turn_ice_servers(t, 1700000000u);
    assert_non_null(root);
    assert_int_equal(json_object_size(root), 2);
    assert_int_equal(json_integer_value(json_object_get(root, "ttl")), 86400);
    assert_int_equal(json_array_size(json_object_get(root, "iceServers")), 2);

    static const char *const stun[] = {"stun:turn.example.org:3478"};
    assert_urls(urls_of(root, 0), stun, 1);
    assert_null(json_object_get(json_array_get(json_object_get(root, "iceServers"), 0),
                                "credential"));

    static const char *const turn[] = {"turn:turn.example.org:3478?transport=udp",
                                       "turn:turn.example.org:3478?transport=tcp"};
    assert_urls(urls_of(root, 1), turn, 2);
    json_t *entry = json_array_get(json_object_get(root, "iceServers"), 1);
    assert_int_equal(json_object_size(entry), 3);
    const char *user = json_string_value(json_object_get(entry, "username"));
    const char *cred = json_string_value(json_object_get(entry, "credential"));
    assert_non_null(user);
    assert_non_null(cred);
    assert_true(check_username_shape(user) == 1700000000u + 86400u);
    char check[PD_TURN_CREDENTIAL_LEN + 1];
    assert_int_equal(pd_turn_hmac(pd_slice_cstr(KAT_SECRET), pd_slice_cstr(user), check), PD_OK);
    assert_string_equal(cred, check);

    /* Every request mints a new username. */
    json_t *again = pd_turn_ice_servers(t, 1700000000u);
    assert_non_null(again);
    json_t *e2 = json_array_get(json_object_get(again, "iceServers"), 1);
    assert_string_not_equal(json_string_value(json_object_get(e2, "username")), user);
    json_decref(again);
    json_decref(root);
    pd_turn_free(t);
}

static void ice_servers_with_tls_ports_and_ttl(void **state)
{
    (void)state;
    pd_turn_config cfg = {.host = "203.0.113.7", .port = 3479, .tls_port = 443, .tls = 1,
                          .secret = "k", .ttl_s = 3600};
    pd_turn *t = pd_turn_create(&cfg, NULL);
    assert_non_null(t);
    json_t *root = pd_turn_ice_servers(t, 100);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "ttl")), 3600);
    static const char *const turn[] = {"turn:203.0.113.7:3479?transport=udp",
                                       "turn:203.0.113.7:3479?transport=tcp",
                                       "turns:203.0.113.7:443?transport=tcp"};
    assert_urls(urls_of(root, 1), turn, 3);
    json_t *entry = json_array_get(json_object_get(root, "iceServers"), 1);
    assert_true(check_username_shape(json_string_value(json_object_get(entry, "username"))) ==
                3700);
    json_decref(root);
    pd_turn_free(t);
}

static void ipv6_hosts_are_bracketed(void **state)
{
    (void)state;
    const char *hosts[] = {"2001:db8::1", "[2001:db8::1]"};
    for (size_t i = 0; i < 2; i++) {
        pd_turn_config cfg = {.host = hosts[i], .secret = "k"};
        pd_turn *t = pd_turn_create(&cfg, NULL);
        assert_non_null(t);
        json_t *root = pd_turn_ice_servers(t, 1);
        static const char *const stun[] = {"stun:[2001:db8::1]:3478"};
        static const char *const turn[] = {"turn:[2001:db8::1]:3478?transport=udp",
                                           "turn:[2001:db8::1]:3478?transport=tcp"};
        assert_urls(urls_of(root, 0), stun, 1);
        assert_urls(urls_of(root, 1), turn, 2);
        json_decref(root);
        pd_turn_free(t);
    }
}

static void stun_override_list_is_parsed(void **state)
{
    (void)state;
    pd_turn_config cfg = {.stun_urls = " stun:a.example:3478 ,stuns:b.example:5349,, ",
                          .host = "turn.example.org", .secret = "k"};
    pd_turn *t = pd_turn_create(&cfg, NULL);
    assert_non_null(t);
    json_t *root = pd_turn_ice_servers(t, 1);
    static const char *const stun[] = {"stun:a.example:3478", "stuns:b.example:5349"};
    assert_urls(urls_of(root, 0), stun, 2);
    json_decref(root);
    pd_turn_free(t);
}

static void no_secret_means_stun_only(void **state)
{
    (void)state;
    pd_turn_config cfg = {.host = "turn.example.org"};
    pd_turn *t = pd_turn_create(&cfg, NULL);
    assert_non_null(t);
    assert_false(pd_turn_has_relay(t));
    json_t *root = pd_turn_ice_servers(t, 1);
    assert_non_null(root);
    json_t *servers = json_object_get(root, "iceServers");
    assert_int_equal(json_array_size(servers), 1);
    static const char *const stun[] = {"stun:turn.example.org:3478"};
    assert_urls(urls_of(root, 0), stun, 1);
    char *text = json_dumps(root, JSON_COMPACT);
    assert_non_null(text);
    assert_null(strstr(text, "turn:"));
    assert_null(strstr(text, "credential"));
    free(text);
    json_decref(root);
    pd_turn_free(t);

    /* A secret without a host cannot name a relay either; nothing at all is
     * configured: an empty list (never a third-party server by default). */
    pd_turn_config none = {.secret = "k"};
    t = pd_turn_create(&none, NULL);
    assert_non_null(t);
    assert_false(pd_turn_has_relay(t));
    root = pd_turn_ice_servers(t, 1);
    assert_int_equal(json_array_size(json_object_get(root, "iceServers")), 0);
    assert_int_equal(json_integer_value(json_object_get(root, "ttl")), 86400);
    json_decref(root);
    pd_turn_free(t);
}

static void invalid_configuration_is_refused_with_a_message(void **state)
{
    (void)state;
    const pd_turn_config bad[] = {
        {.host = "turn example.org", .secret = "k"},
        {.host = "evil\"host", .secret = "k"},
        {.host = "[turn.example.org]", .secret = "k"},
        {.host = "-x.example", .secret = "k"},
        {.stun_urls = "http://x.example"},
        {.stun_urls = "stun:a.example:3478,turn:b.example"},
        {.stun_urls = "stun:a b"},
        {.stun_urls = "stun:1,stun:2,stun:3,stun:4,stun:5,stun:6,stun:7,stun:8,stun:9"},
        {.host = "h.example", .secret = "k", .ttl_s = 59},
        {.host = "h.example", .secret = "k", .ttl_s = 604801},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *err = NULL;
        assert_null(pd_turn_create(&bad[i], &err));
        assert_non_null(err);
        assert_true(strlen(err) > 0);
    }
    const char *err = NULL;
    assert_null(pd_turn_create(NULL, &err));
    assert_non_null(err);
    pd_turn_free(NULL);
    assert_null(pd_turn_ice_servers(NULL, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hmac_matches_openssl_vectors),
        cmocka_unit_test(hmac_refuses_empty_secret),
        cmocka_unit_test(credential_with_fixed_id_is_the_known_answer),
        cmocka_unit_test(random_credentials_are_fresh_and_verifiable),
        cmocka_unit_test(credential_refuses_bad_arguments),
        cmocka_unit_test(ice_servers_with_turn_udp_and_tcp),
        cmocka_unit_test(ice_servers_with_tls_ports_and_ttl),
        cmocka_unit_test(ipv6_hosts_are_bracketed),
        cmocka_unit_test(stun_override_list_is_parsed),
        cmocka_unit_test(no_secret_means_stun_only),
        cmocka_unit_test(invalid_configuration_is_refused_with_a_message),
    };
    return cmocka_run_group_tests_name("turn", tests, NULL, NULL);
}
