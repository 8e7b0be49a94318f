/* fuzz_json.c — the room API's input checks (services/roomapi/src/api.c):
 * the request body as JSON (pd_api_parse_body), the id fields
 * (pd_api_get_id), the set_track timestamp (pd_api_track_date), and the
 * routing and CORS decisions on text taken from the input.
 *
 * The input is used three ways at once:
 *   - whole, as a request body;
 *   - as "<METHOD> <path>[?query]" (first line) for pd_api_route_match;
 *   - as an Origin header value, and (up to the first newline) as a
 *     CORS_ORIGIN list matched against the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/roomapi/src/api.h"

#define FZ_CHECK(cond)                                                                       \
    do {                                                                                     \
        if (!(cond))                                                                         \
            __builtin_trap();                                                                \
    } while (0)

/* 2024-01-01T00:00:00Z: a fixed "now" keeps runs deterministic. */
#define FZ_NOW_MS 1704067200000ULL

static int fz_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void fz_check_date(const char d[11])
{
    FZ_CHECK(d[10] == '\0');
    for (int i = 0; i < 10; i++)
        FZ_CHECK(i == 4 || i == 7 ? d[i] == '-' : fz_digit(d[i]));
    int year = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
    int month = (d[5] - '0') * 10 + (d[6] - '0'), day = (d[8] - '0') * 10 + (d[9] - '0');
    /* A real calendar date, whichever way it was obtained. */
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    FZ_CHECK(month >= 1 && month <= 12 && day >= 1);
    FZ_CHECK(day <= days[month - 1] + (month == 2 && leap));
}

static void fz_body(const uint8_t *data, size_t size)
{
    const char *err = NULL;
    json_t *obj = pd_api_parse_body(pd_slice_make((const char *)data, size), &err);
    if (!obj) {
        FZ_CHECK(err != NULL);
        return;
    }
    FZ_CHECK(json_is_object(obj));

    static const char *const fields[] = {"roomId", "socketId"};
    for (size_t i = 0; i < PD_ARRAY_LEN(fields); i++) {
        const char *id = NULL;
        err = NULL;
        if (pd_api_get_id(obj, fields[i], "required", &id, &err) == PD_OK) {
            /* What reaches Redis keys: a bounded id from the safe alphabet. */
            FZ_CHECK(id != NULL && pd_id_valid(pd_slice_cstr(id)));
        } else {
            FZ_CHECK(err != NULL && id == NULL);
        }
    }

    char date[11];
    memset(date, 'x', sizeof date);
    if (pd_api_track_date(json_object_get(obj, "timestamp"), FZ_NOW_MS, date) == PD_OK)
        fz_check_date(date);

    /* The same again on any value nested one level down, so array and
     * object timestamps of every type are tried too. */
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        (void)key;
        memset(date, 'x', sizeof date);
        if (pd_api_track_date(val, FZ_NOW_MS, date) == PD_OK)
            fz_check_date(date);
    }
    json_decref(obj);
}

static pd_http_method fz_method(pd_slice m)
{
    static const struct {
        const char *name;
        pd_http_method method;
    } methods[] = {{"GET", PD_HTTP_GET},     {"HEAD", PD_HTTP_HEAD}, {"POST", PD_HTTP_POST},
                   {"OPTIONS", PD_HTTP_OPTIONS}, {"PUT", PD_HTTP_PUT},   {"DELETE", PD_HTTP_DELETE}};
    for (size_t i = 0; i < PD_ARRAY_LEN(methods); i++)
        if (pd_slice_eq(m, methods[i].name))
            return methods[i].method;
    return PD_HTTP_OTHER;
}

static void fz_route(const char *s, size_t size)
{
    const char *nl = memchr(s, '\n', size);
    size_t line = nl ? (size_t)(nl - s) : size;
    const char *sp = memchr(s, ' ', line);
    if (!sp)
        return;
    pd_http_method m = fz_method(pd_slice_make(s, (size_t)(sp - s)));
    const char *p = sp + 1;
    size_t plen = line - (size_t)(p - s);
    const char *q = memchr(p, '?', plen);
    if (q)
        plen = (size_t)(q - p);
    pd_slice path = pd_slice_make(p, plen);
    pd_api_route r = pd_api_route_match(m, path);
    FZ_CHECK(r <= PD_ROUTE_METRICS);
    FZ_CHECK((m == PD_HTTP_OPTIONS) == (r == PD_ROUTE_PREFLIGHT));
    /* One trailing slash is ignored: "/health/" routes as "/health". */
    if (plen > 1 && p[plen - 1] != '/') {
        char *slashed = malloc(plen + 1);
        FZ_CHECK(slashed != NULL);
        memcpy(slashed, p, plen);
        slashed[plen] = '/';
        FZ_CHECK(pd_api_route_match(m, pd_slice_make(slashed, plen + 1)) == r);
        free(slashed);
    }
    /* Every known route answers HEAD like GET or refuses it. */
    pd_api_route head = pd_api_route_match(PD_HTTP_HEAD, path);
    pd_api_route get = pd_api_route_match(PD_HTTP_GET, path);
    FZ_CHECK(head == get || head == PD_ROUTE_BAD_METHOD);
}

static void fz_origin(const char *s, size_t size)
{
    pd_slice origin = pd_slice_make(s, size);
    FZ_CHECK(pd_api_origin_allowed("*", origin) == PD_ORIGIN_ANY);
    FZ_CHECK(pd_api_origin_allowed(NULL, origin) == 0);
    FZ_CHECK(pd_api_origin_allowed("", origin) == 0);
    (void)pd_api_origin_allowed("https://privydrop.app, http://localhost:3002", origin);

    /* The first line as the configured list, the rest as the Origin. The
     * list is a C string, so it ends at the first NUL as in getenv(). */
    const char *nl = memchr(s, '\n', size);
    if (!nl)
        return;
    size_t llen = (size_t)(nl - s);
    char *list = malloc(llen + 1);
    FZ_CHECK(list != NULL);
    memcpy(list, s, llen);
    list[llen] = '\0';
    pd_slice rest = pd_slice_make(nl + 1, size - llen - 1);
    int allowed = pd_api_origin_allowed(list, rest);
    /* Allowed means the list names "*" or this exact origin; an origin
     * with a comma can never be a list item. */
    if (allowed && !strstr(list, "*"))
        FZ_CHECK(rest.len > 0 && memchr(rest.base, ',', rest.len) == NULL &&
                 memmem(list, strlen(list), rest.base, rest.len) != NULL);
    free(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Bound parse work the same way the HTTP layer does (max_body_bytes). */
    if (size > 16384)
        return 0;
    fz_body(data, size);
    fz_route((const char *)data, size);
    fz_origin((const char *)data, size);
    return 0;
}
