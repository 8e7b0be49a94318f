/* test_jscan.c — the relay's validating JSON scanner: it must accept what
 * RFC 8259 accepts (checked against jansson on many inputs), refuse the
 * rest, bound nesting, and find object members the way JSON.parse does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_jscan.h"

static int valid(const char *s)
{
    return pd_jscan_valid(pd_slice_cstr(s), 64);
}

static void accepts_valid_json(void **state)
{
    (void)state;
    const char *ok[] = {"0", "-0", "1.5e10", "-12.25E-3", "true", "false", "null", "\"\"", "\"a\\u00e9\\n\\\"\"",
                        "[]", "{}", " [1, {\"a\": [null, \"x\"]}] ", "{\"a\":1,\"a\":2}", "\"\xc3\xa9\""};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!valid(ok[i]))
            fail_msg("refused valid JSON %s", ok[i]);
}

static void refuses_invalid_json(void **state)
{
    (void)state;
    const char *bad[] = {"", " ", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "[1,]", "[,1]", "{\"a\"}",
                         "{\"a\":}", "{a:1}", "{\"a\":1,}", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\x01\"",
                         "[1] [2]", "[1]]", "{\"a\":1}}", "NaN", "Infinity", "[\"a\" \"b\"]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (valid(bad[i]))
            fail_msg("accepted invalid JSON '%s'", bad[i]);
}

static void agrees_with_jansson_on_mutations(void **state)
{
    (void)state;
    const char *seed = "[\"offer\",{\"peerId\":\"abc\",\"offer\":{\"sdp\":\"v=0\\r\\n\",\"type\":\"offer\"},"
                       "\"n\":[1,-2.5e3,true,false,null]}]";
    size_t n = strlen(seed);
    const char alphabet[] = "[]{}\",:\\ 0-1.eEtrufalsn\x01";
    char buf[256];
    srand(7);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, seed, n + 1);
        int edits = 1 + rand() % 3;
        for (int e = 0; e < edits; e++)
            buf[rand() % n] = alphabet[rand() % (sizeof(alphabet) - 1)];
        json_error_t err;
        /* jansson refuses \u0000 by default; the scanner has no such rule. */
        json_t *j = json_loadb(buf, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        int jv = j != NULL;
        json_decref(j);
        int sv = pd_jscan_valid(pd_slice_make(buf, n), 64);
        if (jv != sv)
            fail_msg("disagreement (jansson %d, scanner %d) on %s", jv, sv, buf);
    }
}

static void nesting_beyond_the_bound_is_invalid(void **state)
{
    (void)state;
    char deep[202];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    assert_true(pd_jscan_valid(pd_slice_cstr(deep), 100));
    assert_false(pd_jscan_valid(pd_slice_cstr(deep), 99));
    /* 100 000 deep never recurses more than the bound. */
    size_t big = 100000;
    char *huge = malloc(2 * big + 1);
    memset(huge, '[', big);
    memset(huge + big, ']', big);
    huge[2 * big] = '\0';
    assert_false(pd_jscan_valid(pd_slice_make(huge, 2 * big), 32));
    free(huge);
}

static void event_gives_name_and_payload_spans(void **state)
{
    (void)state;
    pd_slice name, payload;
    int esc = -1;
    const char *d = " [ \"ice-candidate\" , {\"peerId\":\"x\"} , 3 ] ";
    assert_int_equal(pd_jscan_event(pd_slice_cstr(d), 8, &name, &esc, &payload), PD_OK);
    assert_true(pd_slice_eq(name, "ice-candidate"));
    assert_int_equal(esc, 0);
    assert_true(pd_slice_eq(payload, "{\"peerId\":\"x\"}"));
    assert_int_equal(pd_jscan_event(pd_slice_cstr("[\"a\\u0062\"]"), 8, &name, &esc, &payload), PD_OK);
    assert_int_equal(esc, 1);
    assert_int_equal(payload.len, 0);
    assert_int_equal(pd_jscan_event(pd_slice_cstr("[1,2]"), 8, &name, &esc, &payload), PD_ERR);
    assert_int_equal(pd_jscan_event(pd_slice_cstr("{\"a\":1}"), 8, &name, &esc, &payload), PD_ERR);
    assert_int_equal(pd_jscan_event(pd_slice_cstr("[\"a\""), 8, &name, &esc, &payload), PD_ERR);
    assert_int_equal(pd_jscan_event(pd_slice_cstr("[]"), 8, &name, &esc, &payload), PD_ERR);
}

static void object_members_last_wins_and_escaped_keys_never_match(void **state)
{
    (void)state;
    pd_jscan_member m[3] = {{"peerId", {NULL, 0}}, {"offer", {NULL, 0}}, {"missing", {NULL, 0}}};
    const char *o = "{\"peerId\":\"a\",\"offer\": {\"x\":[1,2]} ,\"peerId\":\"b\",\"peer\\u0049d\":\"c\"}";
    assert_int_equal(pd_jscan_object(pd_slice_cstr(o), m, 3), PD_OK);
    assert_true(pd_slice_eq(m[0].value, "\"b\""));
    assert_true(pd_slice_eq(m[1].value, "{\"x\":[1,2]}"));
    assert_null(m[2].value.base);
    assert_int_equal(pd_jscan_object(pd_slice_cstr("[1]"), m, 3), PD_ERR);
    assert_int_equal(pd_jscan_object(pd_slice_cstr("\"s\""), m, 3), PD_ERR);
}

/* A raw span of JSON equals a jansson value. */
static int span_is(pd_slice span, const json_t *want)
{
    json_error_t err;
    json_t *got = json_loadb(span.base, span.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    int eq = got && want && json_equal(got, want);
    json_decref(got);
    return eq;
}

/* The one-pass form (validate, take the event apart, look into the
 * payload) against the validator and jansson, on mutated packets and at
 * every nesting bound. */
static void event_members_agrees_with_validator_and_jansson(void **state)
{
    (void)state;
    const char *seed = "[\"offer\",{\"peerId\":\"abc\",\"offer\":{\"sdp\":\"v=0\\r\\n\",\"type\":\"offer\"},"
                       "\"n\":[1,{\"a\":[true]}],\"peerId\":\"d\"},3]";
    size_t n = strlen(seed);
    const char alphabet[] = "[]{}\",:\\ 0-1.eEtrfalsn\x01";
    char buf[256];
    int members_seen = 0;
    srand(11);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, seed, n + 1);
        if (iter > 0) {
            int edits = 1 + rand() % 3;
            for (int e = 0; e < edits; e++)
                buf[rand() % n] = alphabet[rand() % (sizeof(alphabet) - 1)];
        }
        int depth = 1 + iter % 6;
        pd_slice d = pd_slice_make(buf, n);
        pd_slice name, payload;
        int esc = 0;
        pd_jscan_member m[3] = {{"peerId", {NULL, 0}}, {"offer", {NULL, 0}}, {"n", {NULL, 0}}};
        int r = pd_jscan_event_members(d, depth, &name, &esc, &payload, m, 3);
        json_error_t err;
        json_t *j = pd_jscan_valid(d, depth) ? json_loadb(buf, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err) : NULL;
        int want_ok = j && json_is_array(j) && json_array_size(j) >= 1 && json_is_string(json_array_get(j, 0));
        if ((r == PD_OK) != want_ok)
            fail_msg("result %d, expected %s, at depth %d on %s", r, want_ok ? "OK" : "ERR", depth, buf);
        if (!want_ok) {
            for (int i = 0; i < 3; i++)
                assert_null(m[i].value.base);
            json_decref(j);
            continue;
        }
        if (!esc)
            assert_true(pd_slice_eq(name, json_string_value(json_array_get(j, 0))));
        const json_t *p = json_array_get(j, 1);
        if (!p)
            assert_int_equal(payload.len, 0);
        else
            assert_true(span_is(payload, p));
        for (int i = 0; i < 3; i++) {
            const json_t *v = json_is_object(p) ? json_object_get(p, m[i].key) : NULL;
            if (!v)
                assert_null(m[i].value.base);
            else if (!span_is(m[i].value, v))
                fail_msg("member %s differs at depth %d on %s", m[i].key, depth, buf);
            members_seen += v != NULL;
        }
        json_decref(j);
    }
    assert_true(members_seen > 1000); /* the comparison did compare */
}

/* The string scan skips eight bytes at a time: a byte it must stop at is
 * found wherever it falls, and bytes that only look alike in their low
 * seven bits (0xa2, 0xdc) or are UTF-8 do not end the string. */
static void string_scan_finds_stops_at_every_offset(void **state)
{
    (void)state;
    char buf[64];
    for (size_t k = 0; k < 24; k++) {
        const struct {
            const char *ins;
            int valid;
        } cases[] = {{"\x01", 0}, {"\x1f", 0}, {"\"", 0}, {"\\", 0}, {"\\n", 1},
                     {"\xa2", 1}, {"\xdc", 1}, {"\xe2\x82\xac", 1}, {" ", 1}, {"\x7f", 1}};
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            memset(buf, 0, sizeof(buf));
            buf[0] = '"';
            memset(buf + 1, 'x', k);
            strcat(buf, cases[i].ins);
            strcat(buf, "yyyyyyyyyyyy\"");
            assert_int_equal(pd_jscan_valid(pd_slice_cstr(buf), 4), cases[i].valid);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_valid_json),
        cmocka_unit_test(refuses_invalid_json),
        cmocka_unit_test(agrees_with_jansson_on_mutations),
        cmocka_unit_test(nesting_beyond_the_bound_is_invalid),
        cmocka_unit_test(event_gives_name_and_payload_spans),
        cmocka_unit_test(object_members_last_wins_and_escaped_keys_never_match),
        cmocka_unit_test(string_scan_finds_stops_at_every_offset),
        cmocka_unit_test(event_members_agrees_with_validator_and_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
