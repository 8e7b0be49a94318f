/* test_api.c — the room API's pure helpers (docs/wire-protocol.md
 * §Room API): routing, body parsing, id validation, set_track dates and the
 * CORS origin list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../src/api.h"

/* ---- pd_api_route_match ------------------------------------------------- */

typedef struct route_case {
    const char *path;
    pd_http_method method; /* the one method the route accepts (GET also takes HEAD) */
    pd_api_route route;
} route_case;

static const route_case ROUTE_CASES[] = {
    {"/api/get_room", PD_HTTP_GET, PD_ROUTE_GET_ROOM},
    {"/api/create_room", PD_HTTP_POST, PD_ROUTE_CREATE_ROOM},
    {"/api/check_room", PD_HTTP_POST, PD_ROUTE_CHECK_ROOM},
    {"/api/leave_room", PD_HTTP_POST, PD_ROUTE_LEAVE_ROOM},
    {"/api/set_track", PD_HTTP_POST, PD_ROUTE_SET_TRACK},
    {"/api/logs_debug", PD_HTTP_POST, PD_ROUTE_LOGS_DEBUG},
    {"/api/ice_servers", PD_HTTP_GET, PD_ROUTE_ICE_SERVERS},
    {"/health", PD_HTTP_GET, PD_ROUTE_HEALTH},
    {"/api/health", PD_HTTP_GET, PD_ROUTE_HEALTH},
    {"/health/detailed", PD_HTTP_GET, PD_ROUTE_HEALTH_DETAILED},
    {"/metrics", PD_HTTP_GET, PD_ROUTE_METRICS},
};

static const pd_http_method ALL_METHODS[] = {PD_HTTP_OTHER, PD_HTTP_GET,     PD_HTTP_HEAD,  PD_HTTP_POST,
                                             PD_HTTP_OPTIONS, PD_HTTP_PUT, PD_HTTP_DELETE};

static pd_api_route match(pd_http_method m, const char *path)
{
    return pd_api_route_match(m, pd_slice_cstr(path));
}

static void every_route_matches_its_method(void **state)
{
    (void)state;
    for (size_t i = 0; i < PD_ARRAY_LEN(ROUTE_CASES); i++)
        assert_int_equal(match(ROUTE_CASES[i].method, ROUTE_CASES[i].path), ROUTE_CASES[i].route);
}

static void head_is_accepted_on_get_routes_only(void **state)
{
    (void)state;
    for (size_t i = 0; i < PD_ARRAY_LEN(ROUTE_CASES); i++) {
        pd_api_route want = ROUTE_CASES[i].method == PD_HTTP_GET ? ROUTE_CASES[i].route : PD_ROUTE_BAD_METHOD;
        assert_int_equal(match(PD_HTTP_HEAD, ROUTE_CASES[i].path), want);
    }
}

static void other_methods_on_known_paths_are_405(void **state)
{
    (void)state;
    for (size_t i = 0; i < PD_ARRAY_LEN(ROUTE_CASES); i++) {
        for (size_t k = 0; k < PD_ARRAY_LEN(ALL_METHODS); k++) {
            pd_http_method m = ALL_METHODS[k];
            if (m == ROUTE_CASES[i].method || m == PD_HTTP_OPTIONS ||
                (m == PD_HTTP_HEAD && ROUTE_CASES[i].method == PD_HTTP_GET))
                continue;
            assert_int_equal(match(m, ROUTE_CASES[i].path), PD_ROUTE_BAD_METHOD);
        }
    }
    /* The common mistakes explicitly. */
    assert_int_equal(match(PD_HTTP_POST, "/api/get_room"), PD_ROUTE_BAD_METHOD);
    assert_int_equal(match(PD_HTTP_GET, "/api/create_room"), PD_ROUTE_BAD_METHOD);
    assert_int_equal(match(PD_HTTP_POST, "/health"), PD_ROUTE_BAD_METHOD);
    assert_int_equal(match(PD_HTTP_DELETE, "/api/leave_room/"), PD_ROUTE_BAD_METHOD);
}

static void options_is_preflight_on_any_path(void **state)
{
    (void)state;
    for (size_t i = 0; i < PD_ARRAY_LEN(ROUTE_CASES); i++)
        assert_int_equal(match(PD_HTTP_OPTIONS, ROUTE_CASES[i].path), PD_ROUTE_PREFLIGHT);
    assert_int_equal(match(PD_HTTP_OPTIONS, "/no/such/path"), PD_ROUTE_PREFLIGHT);
    assert_int_equal(match(PD_HTTP_OPTIONS, "/"), PD_ROUTE_PREFLIGHT);
    assert_int_equal(match(PD_HTTP_OPTIONS, "*"), PD_ROUTE_PREFLIGHT);
}

static void one_trailing_slash_is_ignored(void **state)
{
    (void)state;
    char path[64];
    for (size_t i = 0; i < PD_ARRAY_LEN(ROUTE_CASES); i++) {
        snprintf(path, sizeof path, "%s/", ROUTE_CASES[i].path);
        assert_int_equal(match(ROUTE_CASES[i].method, path), ROUTE_CASES[i].route);
        snprintf(path, sizeof path, "%s//", ROUTE_CASES[i].path);
        assert_int_equal(match(ROUTE_CASES[i].method, path), PD_ROUTE_NOT_FOUND);
    }
}

static void unknown_paths_are_not_found(void **state)
{
    (void)state;
    const char *paths[] = {"/", "", "/api", "/api/", "/api/get_roo", "/api/get_roomX", "/API/get_room",
                           "/Health", "/health/detailed/x", "//health", "/api/get_room/x", "health",
                           "/metrics.txt", "/socket.io/"};
    for (size_t i = 0; i < PD_ARRAY_LEN(paths); i++) {
        assert_int_equal(match(PD_HTTP_GET, paths[i]), PD_ROUTE_NOT_FOUND);
        assert_int_equal(match(PD_HTTP_POST, paths[i]), PD_ROUTE_NOT_FOUND);
        assert_int_equal(match(PD_HTTP_PUT, paths[i]), PD_ROUTE_NOT_FOUND);
    }
}

static void route_match_reads_only_slice_length(void **state)
{
    (void)state;
    const char buf[] = "/healthXYZ";
    assert_int_equal(pd_api_route_match(PD_HTTP_GET, pd_slice_make(buf, 7)), PD_ROUTE_HEALTH);
    const char buf2[] = "/metrics/garbage";
    assert_int_equal(pd_api_route_match(PD_HTTP_GET, pd_slice_make(buf2, 9)), PD_ROUTE_METRICS);
    assert_int_equal(pd_api_route_match(PD_HTTP_GET, pd_slice_make(NULL, 0)), PD_ROUTE_NOT_FOUND);
}

/* ---- pd_api_parse_body --------------------------------------------------- */

static json_t *parse(const char *body, const char **err)
{
    *err = NULL;
    return pd_api_parse_body(pd_slice_cstr(body), err);
}

static void empty_or_blank_body_is_an_empty_object(void **state)
{
    (void)state;
    const char *blank[] = {"", " ", "\r\n", "\t \n\r  "};
    for (size_t i = 0; i < PD_ARRAY_LEN(blank); i++) {
        const char *err = NULL;
        json_t *v = parse(blank[i], &err);
        assert_non_null(v);
        assert_true(json_is_object(v));
        assert_int_equal(json_object_size(v), 0);
        assert_null(err);
        json_decref(v);
    }
    const char *err = NULL;
    json_t *v = pd_api_parse_body(pd_slice_make(NULL, 0), &err);
    assert_non_null(v);
    assert_true(json_is_object(v));
    json_decref(v);
}

static void json_object_body_is_parsed_with_surrounding_whitespace(void **state)
{
    (void)state;
    const char *err = NULL;
    json_t *v = parse("  \n{\"roomId\": \"1234\", \"n\": 5}\r\n ", &err);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "roomId")), "1234");
    assert_int_equal(json_integer_value(json_object_get(v, "n")), 5);
    json_decref(v);
}

static void bad_json_is_refused(void **state)
{
    (void)state;
    const char *bad[] = {"{", "}", "{\"a\":}", "{'a':1}", "{\"a\":1,}", "{} {}", "{}x", "nul",
                         "{\"a\":\"\\u0000\"}", "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++) {
        const char *err = NULL;
        assert_null(parse(bad[i], &err));
        assert_non_null(err);
        assert_string_equal(err, "Invalid JSON body");
    }
}

static void duplicate_keys_are_refused(void **state)
{
    (void)state;
    const char *err = NULL;
    assert_null(parse("{\"roomId\":\"a\",\"roomId\":\"b\"}", &err));
    assert_string_equal(err, "Invalid JSON body");
    /* Nested duplicates too. */
    assert_null(parse("{\"x\":{\"k\":1,\"k\":2}}", &err));
    assert_non_null(err);
}

static void json_that_is_not_an_object_is_refused(void **state)
{
    (void)state;
    const char *err = NULL;
    assert_null(parse("[]", &err));
    assert_string_equal(err, "Request body must be a JSON object");
    assert_null(parse(" [{\"roomId\":\"1\"}] ", &err));
    assert_string_equal(err, "Request body must be a JSON object");
    /* Bare scalars are refused one way or the other. */
    const char *scalars[] = {"1", "\"str\"", "null", "true"};
    for (size_t i = 0; i < PD_ARRAY_LEN(scalars); i++) {
        err = NULL;
        assert_null(parse(scalars[i], &err));
        assert_non_null(err);
    }
}

static void body_slice_is_not_read_past_its_length(void **state)
{
    (void)state;
    const char buf[] = "{\"a\":1}GARBAGE";
    const char *err = NULL;
    json_t *v = pd_api_parse_body(pd_slice_make(buf, 7), &err);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    json_decref(v);
    /* A raw NUL inside the slice is not a silent terminator. */
    const char nul[] = "{\"a\":1}\0{";
    assert_null(pd_api_parse_body(pd_slice_make(nul, sizeof nul - 1), &err));
}

/* ---- pd_api_get_id ------------------------------------------------------- */

static const char *REQ = "Room ID is required";
static const char *BAD_ROOM = "Invalid room ID: use 1-64 characters of A-Z, a-z, 0-9, _ and -";
static const char *BAD_SOCK = "Invalid socket ID: use 1-64 characters of A-Z, a-z, 0-9, _ and -";

/* Parse body, read roomId, return PD_OK/PD_ERR and the message. */
static int room_id_of(const char *body, const char **out, const char **err)
{
    const char *perr = NULL;
    json_t *obj = parse(body, &perr);
    assert_non_null(obj);
    *out = NULL;
    *err = NULL;
    int rc = pd_api_get_id(obj, "roomId", REQ, out, err);
    json_decref(obj);
    return rc;
}

static void valid_ids_are_returned_borrowed(void **state)
{
    (void)state;
    json_t *obj = json_pack("{s:s, s:s}", "roomId", "Ab_9-z", "socketId", "Zm9vYmFyYmF6cXV4MTIz");
    const char *out = NULL, *err = NULL;
    assert_int_equal(pd_api_get_id(obj, "roomId", REQ, &out, &err), PD_OK);
    assert_string_equal(out, "Ab_9-z");
    assert_ptr_equal(out, json_string_value(json_object_get(obj, "roomId")));
    assert_int_equal(pd_api_get_id(obj, "socketId", "x", &out, &err), PD_OK);
    assert_string_equal(out, "Zm9vYmFyYmF6cXV4MTIz");
    json_decref(obj);
}

static void missing_null_or_empty_id_gives_the_required_message(void **state)
{
    (void)state;
    const char *bodies[] = {"{}", "{\"roomId\":null}", "{\"roomId\":\"\"}", "{\"roomid\":\"1234\"}"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bodies); i++) {
        const char *out, *err;
        assert_int_equal(room_id_of(bodies[i], &out, &err), PD_ERR);
        assert_ptr_equal(err, REQ);
        assert_null(out);
    }
    /* The caller's message is used verbatim. */
    json_t *obj = json_object();
    const char *out = NULL, *err = NULL;
    assert_int_equal(pd_api_get_id(obj, "socketId", "Room ID and Socket ID are required", &out, &err), PD_ERR);
    assert_string_equal(err, "Room ID and Socket ID are required");
    json_decref(obj);
}

static void non_string_id_says_it_must_be_a_string(void **state)
{
    (void)state;
    const char *bodies[] = {"{\"roomId\":1234}", "{\"roomId\":12.5}", "{\"roomId\":true}",
                            "{\"roomId\":false}", "{\"roomId\":{}}", "{\"roomId\":[\"1234\"]}"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bodies); i++) {
        const char *out, *err;
        assert_int_equal(room_id_of(bodies[i], &out, &err), PD_ERR);
        assert_string_equal(err, "roomId must be a string");
        assert_null(out);
    }
    json_t *obj = json_pack("{s:i}", "socketId", 7);
    const char *out = NULL, *err = NULL;
    assert_int_equal(pd_api_get_id(obj, "socketId", REQ, &out, &err), PD_ERR);
    assert_string_equal(err, "socketId must be a string");
    json_decref(obj);
}

static void id_length_is_limited_to_64(void **state)
{
    (void)state;
    char id[PD_ID_MAX + 2];
    memset(id, 'a', sizeof id);
    id[PD_ID_MAX] = '\0';
    json_t *obj = json_pack("{s:s}", "roomId", id);
    const char *out = NULL, *err = NULL;
    assert_int_equal(pd_api_get_id(obj, "roomId", REQ, &out, &err), PD_OK);
    assert_int_equal(strlen(out), PD_ID_MAX);
    json_decref(obj);

    id[PD_ID_MAX] = 'a';
    id[PD_ID_MAX + 1] = '\0';
    obj = json_pack("{s:s}", "roomId", id);
    out = NULL;
    assert_int_equal(pd_api_get_id(obj, "roomId", REQ, &out, &err), PD_ERR);
    assert_string_equal(err, BAD_ROOM);
    assert_null(out);
    json_decref(obj);

    obj = json_pack("{s:s}", "socketId", id);
    assert_int_equal(pd_api_get_id(obj, "socketId", REQ, &out, &err), PD_ERR);
    assert_string_equal(err, BAD_SOCK);
    json_decref(obj);
}

static void ids_with_characters_outside_the_alphabet_are_refused(void **state)
{
    (void)state;
    const char *bodies[] = {"{\"roomId\":\"ab cd\"}",       "{\"roomId\":\"a/b\"}",
                            "{\"roomId\":\"room:1\"}",      "{\"roomId\":\"caf\\u00e9\"}",
                            "{\"roomId\":\"a\\nb\"}",       "{\"roomId\":\"*\"}",
                            "{\"roomId\":\" 1234\"}",       "{\"roomId\":\"1234 \"}",
                            "{\"roomId\":\"a.b\"}",         "{\"roomId\":\"{x}\"}"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bodies); i++) {
        const char *out, *err;
        assert_int_equal(room_id_of(bodies[i], &out, &err), PD_ERR);
        assert_string_equal(err, BAD_ROOM);
        assert_null(out);
    }
}

static void embedded_nul_cannot_hide_the_rest_of_an_id(void **state)
{
    (void)state;
    /* From the wire, "\u0000" never gets past the JSON parser ... */
    const char *err = NULL;
    assert_null(parse("{\"roomId\":\"ab\\u0000cd\"}", &err));
    assert_string_equal(err, "Invalid JSON body");
    /* ... and a string holding a NUL is refused by the id check itself. */
    json_t *obj = json_object();
    json_object_set_new(obj, "roomId", json_stringn("ab\0cd", 5));
    json_object_set_new(obj, "socketId", json_stringn("\0", 1));
    const char *out = NULL;
    assert_int_equal(pd_api_get_id(obj, "roomId", REQ, &out, &err), PD_ERR);
    assert_string_equal(err, BAD_ROOM);
    assert_null(out);
    assert_int_equal(pd_api_get_id(obj, "socketId", REQ, &out, &err), PD_ERR);
    assert_string_equal(err, BAD_SOCK);
    json_decref(obj);
}

/* ---- pd_api_track_date ---------------------------------------------------- */

#define MAY_1_2024_MS 1714521600000ULL /* 2024-05-01T00:00:00Z */

static int date_of(json_t *ts, uint64_t now_ms, char out[11])
{
    memset(out, 'X', 11);
    int rc = pd_api_track_date(ts, now_ms, out);
    json_decref(ts);
    return rc;
}

static void numeric_timestamps_are_utc_dates(void **state)
{
    (void)state;
    char out[11];
    assert_int_equal(date_of(json_integer((json_int_t)MAY_1_2024_MS), 0, out), PD_OK);
    assert_string_equal(out, "2024-05-01");
    assert_int_equal(date_of(json_integer((json_int_t)MAY_1_2024_MS - 1), 0, out), PD_OK);
    assert_string_equal(out, "2024-04-30");
    assert_int_equal(date_of(json_real((double)MAY_1_2024_MS + 43200000.75), 0, out), PD_OK);
    assert_string_equal(out, "2024-05-01");
    assert_int_equal(date_of(json_integer(0), 0, out), PD_OK);
    assert_string_equal(out, "1970-01-01");
    assert_int_equal(date_of(json_integer(951782400000LL), 0, out), PD_OK); /* leap day */
    assert_string_equal(out, "2000-02-29");
    assert_int_equal(date_of(json_integer(253402300799999LL), 0, out), PD_OK);
    assert_string_equal(out, "9999-12-31");
}

static void negative_or_huge_numbers_are_refused(void **state)
{
    (void)state;
    char out[11];
    assert_int_equal(date_of(json_integer(-1), 0, out), PD_ERR);
    assert_int_equal(date_of(json_real(-0.5), 0, out), PD_ERR);
    assert_int_equal(date_of(json_integer(253402300800000LL), 0, out), PD_ERR);
    assert_int_equal(date_of(json_real(1e20), 0, out), PD_ERR);
    assert_int_equal(date_of(json_real(1.7976931348623157e308), 0, out), PD_ERR);
    assert_int_equal(date_of(json_integer(INT64_MAX), 0, out), PD_ERR);
    assert_int_equal(date_of(json_integer(INT64_MIN), 0, out), PD_ERR);
}

static void missing_or_null_timestamp_means_now(void **state)
{
    (void)state;
    char out[11];
    uint64_t now = MAY_1_2024_MS + 3600000;
    assert_int_equal(pd_api_track_date(NULL, now, out), PD_OK);
    assert_string_equal(out, "2024-05-01");
    assert_int_equal(date_of(json_null(), now - 7200000, out), PD_OK);
    assert_string_equal(out, "2024-04-30");
}

static void iso_strings_give_their_date_prefix(void **state)
{
    (void)state;
    const char *ok[] = {"2024-05-01T12:34:56.789Z", "2024-05-01", "2024-05-01 08:00", "2024-05-01T",
                        "2024-05-01T23:59:59+14:00"};
    for (size_t i = 0; i < PD_ARRAY_LEN(ok); i++) {
        char out[11];
        assert_int_equal(date_of(json_string(ok[i]), 0, out), PD_OK);
        assert_string_equal(out, "2024-05-01");
    }
    char out[11];
    assert_int_equal(date_of(json_string("1999-12-31T00:00:00Z"), 0, out), PD_OK);
    assert_string_equal(out, "1999-12-31");
}

static void malformed_date_strings_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"",           "yesterday",  "2024-5-01",   "24-05-01",    "2024/05/01",
                         "2024-13-01", "2024-00-10", "2024-05-00",  "2024-05-32",  "2024-05-01X",
                         "2024-05-1",  " 2024-05-01", "2024-05-01Z", "abcd-ef-gh", "1714521600000",
                         "2024-05-01\n"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++) {
        char out[11];
        assert_int_equal(date_of(json_string(bad[i]), 0, out), PD_ERR);
    }
    /* An embedded NUL right after the date is not a separator. */
    char out[11];
    assert_int_equal(date_of(json_stringn("2024-05-01\0junk", 15), 0, out), PD_ERR);
}

static void other_json_types_are_refused(void **state)
{
    (void)state;
    char out[11];
    assert_int_equal(date_of(json_true(), 0, out), PD_ERR);
    assert_int_equal(date_of(json_false(), 0, out), PD_ERR);
    assert_int_equal(date_of(json_object(), 0, out), PD_ERR);
    assert_int_equal(date_of(json_pack("[I]", (json_int_t)MAY_1_2024_MS), 0, out), PD_ERR);
}

/* ---- pd_api_origin_allowed -------------------------------------------------- */

static int allowed(const char *list, const char *origin)
{
    return pd_api_origin_allowed(list, pd_slice_cstr(origin));
}

static void no_list_allows_nothing(void **state)
{
    (void)state;
    assert_false(allowed(NULL, "https://a.example"));
    assert_false(allowed("", "https://a.example"));
    assert_false(allowed(" , ,, ", "https://a.example"));
    assert_false(allowed("", ""));
}

static void exact_origins_from_a_comma_list_with_spaces(void **state)
{
    (void)state;
    const char *list = " https://a.example , https://b.example:8443,http://localhost:3000 ";
    assert_true(allowed(list, "https://a.example"));
    assert_true(allowed(list, "https://b.example:8443"));
    assert_true(allowed(list, "http://localhost:3000"));
    assert_false(allowed(list, "https://b.example"));
    assert_false(allowed(list, "https://a.exampl"));
    assert_false(allowed(list, "https://a.example.evil"));
    assert_false(allowed(list, "evil.https://a.example"));
    assert_false(allowed(list, "HTTPS://A.EXAMPLE"));
    assert_false(allowed(list, " https://a.example"));
    assert_false(allowed(list, ""));
    assert_false(allowed(list, "null"));
    assert_true(allowed("https://a.example,", "https://a.example"));
    assert_true(allowed(",https://a.example", "https://a.example"));
}

static void star_allows_any_origin(void **state)
{
    (void)state;
    assert_true(allowed("*", "https://anything.example"));
    assert_true(allowed(" * ", "http://x"));
    assert_true(allowed("https://a.example, *", "https://other.example"));
    /* Only a named origin is NAMED (credentials); "*" alone is ANY. */
    assert_int_equal(allowed("*", "https://anything.example"), PD_ORIGIN_ANY);
    assert_int_equal(allowed("https://a.example, *", "https://a.example"), PD_ORIGIN_NAMED);
    assert_int_equal(allowed("*, https://a.example", "https://a.example"), PD_ORIGIN_NAMED);
    assert_int_equal(allowed("https://a.example, *", "https://b.example"), PD_ORIGIN_ANY);
    assert_int_equal(allowed("https://a.example", "https://a.example"), PD_ORIGIN_NAMED);
    assert_int_equal(allowed("*", "*"), PD_ORIGIN_ANY); /* an Origin reading "*" is named by nobody */
    /* '*' only as a whole item. */
    assert_false(allowed("https://*.example", "https://a.example"));
    assert_false(allowed("**", "https://a.example"));
}

static void origin_slice_is_compared_by_length(void **state)
{
    (void)state;
    const char buf[] = "https://a.exampleXYZ";
    assert_true(pd_api_origin_allowed("https://a.example", pd_slice_make(buf, 17)));
    assert_false(pd_api_origin_allowed("https://a.example", pd_slice_make(buf, 18)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_route_matches_its_method),
        cmocka_unit_test(head_is_accepted_on_get_routes_only),
        cmocka_unit_test(other_methods_on_known_paths_are_405),
        cmocka_unit_test(options_is_preflight_on_any_path),
        cmocka_unit_test(one_trailing_slash_is_ignored),
        cmocka_unit_test(unknown_paths_are_not_found),
        cmocka_unit_test(route_match_reads_only_slice_length),
        cmocka_unit_test(empty_or_blank_body_is_an_empty_object),
        cmocka_unit_test(json_object_body_is_parsed_with_surrounding_whitespace),
        cmocka_unit_test(bad_json_is_refused),
        cmocka_unit_test(duplicate_keys_are_refused),
        cmocka_unit_test(json_that_is_not_an_object_is_refused),
        cmocka_unit_test(body_slice_is_not_read_past_its_length),
        cmocka_unit_test(valid_ids_are_returned_borrowed),
        cmocka_unit_test(missing_null_or_empty_id_gives_the_required_message),
        cmocka_unit_test(non_string_id_says_it_must_be_a_string),
        cmocka_unit_test(id_length_is_limited_to_64),
        cmocka_unit_test(ids_with_characters_outside_the_alphabet_are_refused),
        cmocka_unit_test(embedded_nul_cannot_hide_the_rest_of_an_id),
        cmocka_unit_test(numeric_timestamps_are_utc_dates),
        cmocka_unit_test(negative_or_huge_numbers_are_refused),
        cmocka_unit_test(missing_or_null_timestamp_means_now),
        cmocka_unit_test(iso_strings_give_their_date_prefix),
        cmocka_unit_test(malformed_date_strings_are_refused),
        cmocka_unit_test(other_json_types_are_refused),
        cmocka_unit_test(no_list_allows_nothing),
        cmocka_unit_test(exact_origins_from_a_comma_list_with_spaces),
        cmocka_unit_test(star_allows_any_origin),
        cmocka_unit_test(origin_slice_is_compared_by_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
