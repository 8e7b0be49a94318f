/* test_config.c — configuration from the environment (pd_env_*) and the
 * structured logger's level filter and JSON lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_config.h"
#include "privydrop/pd_log.h"

#define VAR "PD_TEST_CONFIG_VALUE"

static int env_teardown(void **state)
{
    (void)state;
    unsetenv(VAR);
    return 0;
}

/* ---- pd_env_str ------------------------------------------------------- */

static void env_str_unset_or_empty_gives_default(void **state)
{
    (void)state;
    unsetenv(VAR);
    assert_string_equal(pd_env_str(VAR, "dflt"), "dflt");
    assert_null(pd_env_str(VAR, NULL));
    setenv(VAR, "", 1);
    assert_string_equal(pd_env_str(VAR, "dflt"), "dflt");
}

static void env_str_set_gives_the_value(void **state)
{
    (void)state;
    setenv(VAR, "redis.internal", 1);
    assert_string_equal(pd_env_str(VAR, "dflt"), "redis.internal");
    /* Borrowed from the environment, not copied. */
    assert_ptr_equal(pd_env_str(VAR, NULL), getenv(VAR));
    setenv(VAR, " ", 1);
    assert_string_equal(pd_env_str(VAR, "dflt"), " ");
}

/* ---- pd_env_long ------------------------------------------------------ */

static void env_long_unset_or_empty_gives_default(void **state)
{
    (void)state;
    long v = -1;
    const char *err = NULL;
    unsetenv(VAR);
    assert_int_equal(pd_env_long(VAR, 3001, 1, 65535, &v, &err), PD_OK);
    assert_int_equal(v, 3001);
    assert_null(err);
    v = -1;
    setenv(VAR, "", 1);
    assert_int_equal(pd_env_long(VAR, 42, 1, 65535, &v, &err), PD_OK);
    assert_int_equal(v, 42);
    assert_null(err);
}

static void env_long_parses_numbers_in_range_inclusive(void **state)
{
    (void)state;
    long v = 0;
    const char *err = NULL;
    setenv(VAR, "6379", 1);
    assert_int_equal(pd_env_long(VAR, 1, 1, 65535, &v, &err), PD_OK);
    assert_int_equal(v, 6379);
    setenv(VAR, "1", 1);
    assert_int_equal(pd_env_long(VAR, 5, 1, 65535, &v, &err), PD_OK);
    assert_int_equal(v, 1);
    setenv(VAR, "65535", 1);
    assert_int_equal(pd_env_long(VAR, 5, 1, 65535, &v, &err), PD_OK);
    assert_int_equal(v, 65535);
    setenv(VAR, "-20", 1);
    assert_int_equal(pd_env_long(VAR, 0, -100, 100, &v, &err), PD_OK);
    assert_int_equal(v, -20);
    setenv(VAR, "+7", 1);
    assert_int_equal(pd_env_long(VAR, 0, 0, 100, &v, &err), PD_OK);
    assert_int_equal(v, 7);
    assert_null(err);
}

static void env_long_rejects_out_of_range(void **state)
{
    (void)state;
    const char *bad[] = {"0", "65536", "-1", "9223372036854775807"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++) {
        long v = 777;
        const char *err = NULL;
        setenv(VAR, bad[i], 1);
        assert_int_equal(pd_env_long(VAR, 10, 1, 65535, &v, &err), PD_ERR);
        assert_non_null(err);
        assert_string_equal(err, "out of range");
        assert_int_equal(v, 777); /* untouched on error */
    }
}

static void env_long_rejects_garbage(void **state)
{
    (void)state;
    const char *bad[] = {"abc", "12abc", "12 ", "1.5", "0x10", "1e3", "-", "+", " ",
                         "99999999999999999999999", "--1", "12\n"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++) {
        long v = 777;
        const char *err = NULL;
        setenv(VAR, bad[i], 1);
        assert_int_equal(pd_env_long(VAR, 10, -1000000, 1000000, &v, &err), PD_ERR);
        assert_non_null(err);
        assert_string_equal(err, "not an integer");
        assert_int_equal(v, 777);
    }
}

/* ---- pd_env_flag ------------------------------------------------------ */

static void env_flag_accepts_truthy_words_in_any_case(void **state)
{
    (void)state;
    const char *yes[] = {"1", "true", "TRUE", "True", "yes", "YES", "on", "On"};
    for (size_t i = 0; i < PD_ARRAY_LEN(yes); i++) {
        setenv(VAR, yes[i], 1);
        assert_int_equal(pd_env_flag(VAR), 1);
    }
}

static void env_flag_is_off_for_unset_and_everything_else(void **state)
{
    (void)state;
    unsetenv(VAR);
    assert_int_equal(pd_env_flag(VAR), 0);
    const char *no[] = {"", "0", "false", "no", "off", "2", "truee", "y", " 1", "1 ", "enable"};
    for (size_t i = 0; i < PD_ARRAY_LEN(no); i++) {
        setenv(VAR, no[i], 1);
        assert_int_equal(pd_env_flag(VAR), 0);
    }
}

/* ---- pd_log ----------------------------------------------------------- */

/* stderr captured into a temporary file while a test logs. */
typedef struct capture {
    FILE *file;   /* temporary file receiving fd 2 */
    int saved_fd; /* the real stderr */
} capture;

static void capture_start(capture *c)
{
    fflush(stderr);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved_fd = dup(2);
    assert_true(c->saved_fd >= 0);
    assert_int_equal(dup2(fileno(c->file), 2), 2);
}

/* Restore stderr and return what was written (caller frees). */
static char *capture_stop(capture *c)
{
    fflush(stderr);
    dup2(c->saved_fd, 2);
    close(c->saved_fd);
    fseek(c->file, 0, SEEK_END);
    long n = ftell(c->file);
    if (n < 0)
        n = 0;
    rewind(c->file);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    size_t got = fread(text, 1, (size_t)n, c->file);
    text[got] = '\0';
    fclose(c->file);
    return text;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        if (*p == '\n')
            n++;
    return n;
}

/* Parse line `idx` (0-based) as a JSON object; NULL if absent or invalid. */
static json_t *line_json(const char *text, size_t idx)
{
    const char *p = text;
    for (size_t i = 0; i < idx && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || !*p)
        return NULL;
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    json_error_t err;
    json_t *v = json_loadb(p, len, 0, &err);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int log_teardown(void **state)
{
    (void)state;
    pd_log_init("privydrop", "info");
    return 0;
}

static void log_level_filter_drops_lines_below_minimum(void **state)
{
    (void)state;
    pd_log_init("svc-test", "warn");
    assert_false(pd_log_enabled(PD_LOG_DEBUG));
    assert_false(pd_log_enabled(PD_LOG_INFO));
    assert_true(pd_log_enabled(PD_LOG_WARN));
    assert_true(pd_log_enabled(PD_LOG_ERROR));
    capture c;
    capture_start(&c);
    pd_log(PD_LOG_DEBUG, "d", NULL);
    pd_log(PD_LOG_INFO, "i", NULL);
    pd_log(PD_LOG_WARN, "w", NULL);
    pd_log(PD_LOG_ERROR, "e", NULL);
    char *out = capture_stop(&c);
    assert_int_equal(count_lines(out), 2);
    json_t *l0 = line_json(out, 0), *l1 = line_json(out, 1);
    assert_non_null(l0);
    assert_non_null(l1);
    assert_string_equal(jstr(l0, "level"), "warn");
    assert_string_equal(jstr(l0, "msg"), "w");
    assert_string_equal(jstr(l1, "level"), "error");
    assert_string_equal(jstr(l1, "msg"), "e");
    json_decref(l0);
    json_decref(l1);
    free(out);
}

static void log_level_names_and_unknown_default_to_info(void **state)
{
    (void)state;
    pd_log_init(NULL, "debug");
    assert_true(pd_log_enabled(PD_LOG_DEBUG));
    pd_log_init(NULL, "error");
    assert_false(pd_log_enabled(PD_LOG_WARN));
    assert_true(pd_log_enabled(PD_LOG_ERROR));
    pd_log_init(NULL, "verbose");
    assert_false(pd_log_enabled(PD_LOG_DEBUG));
    assert_true(pd_log_enabled(PD_LOG_INFO));
    pd_log_init(NULL, NULL);
    assert_false(pd_log_enabled(PD_LOG_DEBUG));
    assert_true(pd_log_enabled(PD_LOG_INFO));
}

static void log_writes_one_json_line_with_fixed_keys_and_fields(void **state)
{
    (void)state;
    pd_log_init("roomapi", "debug");
    capture c;
    capture_start(&c);
    pd_log(PD_LOG_INFO, "joined", "{s:s, s:i, s:b}", "room", "1234", "count", 3, "ok", 1);
    char *out = capture_stop(&c);
    assert_int_equal(count_lines(out), 1);
    json_t *l = line_json(out, 0);
    assert_non_null(l);
    assert_string_equal(jstr(l, "level"), "info");
    assert_string_equal(jstr(l, "svc"), "roomapi");
    assert_string_equal(jstr(l, "msg"), "joined");
    assert_string_equal(jstr(l, "room"), "1234");
    assert_int_equal(json_integer_value(json_object_get(l, "count")), 3);
    assert_true(json_is_true(json_object_get(l, "ok")));
    /* ts is an ISO-8601 UTC timestamp with milliseconds. */
    const char *ts = jstr(l, "ts");
    assert_non_null(ts);
    assert_int_equal(strlen(ts), strlen("2024-05-01T12:34:56.789Z"));
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[23], 'Z');
    /* The fixed keys come first in the raw line. */
    assert_true(strncmp(out, "{\"ts\":", 6) == 0);
    json_decref(l);
    free(out);
}

static void log_escapes_content_so_a_line_cannot_be_split_or_forged(void **state)
{
    (void)state;
    pd_log_init("svc", "info");
    const char *evil = "line1\n{\"level\":\"error\"}\r\n\"quoted\"\\ \t\x01";
    capture c;
    capture_start(&c);
    pd_log(PD_LOG_INFO, "multi\nline \"msg\"", "{s:s}", "client_message", evil);
    char *out = capture_stop(&c);
    assert_int_equal(count_lines(out), 1);
    json_t *l = line_json(out, 0);
    assert_non_null(l);
    assert_string_equal(jstr(l, "client_message"), evil);
    assert_string_equal(jstr(l, "msg"), "multi\nline \"msg\"");
    assert_string_equal(jstr(l, "level"), "info");
    json_decref(l);
    free(out);
}

static void log_fields_cannot_override_fixed_keys(void **state)
{
    (void)state;
    pd_log_init("real-svc", "info");
    capture c;
    capture_start(&c);
    pd_log(PD_LOG_INFO, "real", "{s:s, s:s, s:s}", "level", "error", "svc", "fake", "msg", "forged");
    char *out = capture_stop(&c);
    assert_int_equal(count_lines(out), 1);
    json_t *l = line_json(out, 0);
    assert_non_null(l);
    assert_string_equal(jstr(l, "level"), "info");
    assert_string_equal(jstr(l, "svc"), "real-svc");
    assert_string_equal(jstr(l, "msg"), "real");
    json_decref(l);
    free(out);
}

static void log_with_null_msg_and_bad_fields_still_writes_valid_json(void **state)
{
    (void)state;
    pd_log_init("svc", "info");
    capture c;
    capture_start(&c);
    pd_log(PD_LOG_WARN, NULL, NULL);
    /* A NULL string for "s" cannot be packed: the fields are dropped. */
    pd_log(PD_LOG_WARN, "bad fields", "{s:s}", "k", (const char *)NULL);
    char *out = capture_stop(&c);
    assert_true(count_lines(out) >= 1 && count_lines(out) <= 2);
    json_t *l = line_json(out, 0);
    assert_non_null(l);
    assert_string_equal(jstr(l, "msg"), "");
    json_decref(l);
    if (count_lines(out) == 2) {
        l = line_json(out, 1);
        assert_non_null(l);
        assert_string_equal(jstr(l, "msg"), "bad fields");
        assert_null(json_object_get(l, "k"));
        json_decref(l);
    }
    free(out);
}

static void log_service_name_is_bounded(void **state)
{
    (void)state;
    char longname[100];
    memset(longname, 's', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    pd_log_init(longname, "info");
    capture c;
    capture_start(&c);
    pd_log(PD_LOG_ERROR, "x", NULL);
    char *out = capture_stop(&c);
    json_t *l = line_json(out, 0);
    assert_non_null(l);
    const char *svc = jstr(l, "svc");
    assert_non_null(svc);
    assert_true(strlen(svc) > 0 && strlen(svc) < sizeof longname - 1);
    assert_int_equal(strspn(svc, "s"), strlen(svc));
    json_decref(l);
    free(out);
}


/* ---- pd_config_check: every problem, not the first ---------------------- */

static void config_check_collects_every_problem_with_its_range(void **state)
{
    (void)state;
    pd_config_check *c = pd_config_check_create();
    assert_non_null(c);
    long a = 0, b = 0, d = 0;
    setenv(VAR, "1.048576e+06", 1);
    setenv("PD_TEST_CONFIG_OTHER", "0", 1);
    assert_int_equal(pd_config_long(c, VAR, 65536, 256, 16777216, &a), PD_ERR);
    assert_int_equal(pd_config_long(c, "PD_TEST_CONFIG_OTHER", 7, 1, 65535, &b), PD_ERR);
    unsetenv("PD_TEST_CONFIG_UNSET");
    assert_int_equal(pd_config_long(c, "PD_TEST_CONFIG_UNSET", 9, 1, 10, &d), PD_OK);
    unsetenv("PD_TEST_CONFIG_OTHER");
    /* A refused value leaves the default, so checking can go on. */
    assert_int_equal(a, 65536);
    assert_int_equal(b, 7);
    assert_int_equal(d, 9);
    assert_int_equal(pd_config_check_count(c), 2);
    assert_string_equal(pd_config_check_line(c, 0),
                        VAR "=\"1.048576e+06\": not an integer; expected an integer from 256 to 16777216");
    assert_string_equal(pd_config_check_line(c, 1),
                        "PD_TEST_CONFIG_OTHER=\"0\": out of range; expected an integer from 1 to 65535");
    assert_null(pd_config_check_line(c, 2));
    pd_config_check_free(c);
}

static void config_check_escapes_values_and_hides_secrets(void **state)
{
    (void)state;
    pd_config_check *c = pd_config_check_create();
    assert_int_equal(pd_config_check_add(c, "A", "x\n\"y\\", "bad"), PD_ERR);
    assert_int_equal(pd_config_check_add(c, "SECRET", NULL, "too short"), PD_ERR);
    char longv[200];
    memset(longv, 'v', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    pd_config_check_add(c, "LONG", longv, "bad");
    assert_string_equal(pd_config_check_line(c, 0), "A=\"x\\x0a\\\"y\\\\\": bad");
    assert_string_equal(pd_config_check_line(c, 1), "SECRET: too short");
    /* Cut at 64 bytes of value. */
    const char *l = pd_config_check_line(c, 2);
    assert_non_null(strstr(l, "vvv...\": bad"));
    assert_true(strlen(l) < 90);
    pd_config_check_free(c);
}

static void config_check_is_bounded(void **state)
{
    (void)state;
    pd_config_check *c = pd_config_check_create();
    for (int i = 0; i < PD_CONFIG_MAX_PROBLEMS + 10; i++)
        pd_config_check_add(c, "V", "x", "bad");
    assert_int_equal(pd_config_check_count(c), PD_CONFIG_MAX_PROBLEMS + 10);
    assert_non_null(pd_config_check_line(c, PD_CONFIG_MAX_PROBLEMS - 1));
    assert_null(pd_config_check_line(c, PD_CONFIG_MAX_PROBLEMS));
    pd_config_check_free(c);
    pd_config_check_free(NULL);
}

static void config_log_level_and_listen_addr(void **state)
{
    (void)state;
    pd_config_check *c = pd_config_check_create();
    const char *addr = NULL;
    unsetenv("PD_LOG_LEVEL");
    unsetenv("PD_LISTEN_ADDR");
    assert_int_equal(pd_config_log_level(c), PD_OK);
    assert_int_equal(pd_config_listen_addr(c, "0.0.0.0", &addr), PD_OK);
    assert_string_equal(addr, "0.0.0.0");
    setenv("PD_LOG_LEVEL", "warn", 1);
    setenv("PD_LISTEN_ADDR", "::1", 1);
    assert_int_equal(pd_config_log_level(c), PD_OK);
    assert_int_equal(pd_config_listen_addr(c, "0.0.0.0", &addr), PD_OK);
    assert_string_equal(addr, "::1");
    assert_int_equal(pd_config_check_count(c), 0);
    setenv("PD_LOG_LEVEL", "verbose", 1);
    setenv("PD_LISTEN_ADDR", "localhost", 1);
    assert_int_equal(pd_config_log_level(c), PD_ERR);
    assert_int_equal(pd_config_listen_addr(c, "0.0.0.0", &addr), PD_ERR);
    assert_int_equal(pd_config_check_count(c), 2);
    assert_string_equal(pd_config_check_line(c, 1), "PD_LISTEN_ADDR=\"localhost\": not an IPv4 or IPv6 address");
    unsetenv("PD_LOG_LEVEL");
    unsetenv("PD_LISTEN_ADDR");
    pd_config_check_free(c);
}

static void cli_recognises_check_config(void **state)
{
    (void)state;
    char *run[] = {"p", NULL};
    char *check[] = {"p", "--check-config", NULL};
    assert_int_equal(pd_cli_handle(1, run, "p", "usage\n"), PD_CLI_RUN);
    assert_int_equal(pd_cli_handle(2, check, "p", "usage\n"), PD_CLI_CHECK_CONFIG);
}

#define ENV_TEST(fn) cmocka_unit_test_teardown(fn, env_teardown)
#define LOG_TEST(fn) cmocka_unit_test_teardown(fn, log_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ENV_TEST(env_str_unset_or_empty_gives_default),
        ENV_TEST(env_str_set_gives_the_value),
        ENV_TEST(env_long_unset_or_empty_gives_default),
        ENV_TEST(env_long_parses_numbers_in_range_inclusive),
        ENV_TEST(env_long_rejects_out_of_range),
        ENV_TEST(env_long_rejects_garbage),
        ENV_TEST(env_flag_accepts_truthy_words_in_any_case),
        ENV_TEST(env_flag_is_off_for_unset_and_everything_else),
        ENV_TEST(config_check_collects_every_problem_with_its_range),
        ENV_TEST(config_check_escapes_values_and_hides_secrets),
        ENV_TEST(config_check_is_bounded),
        ENV_TEST(config_log_level_and_listen_addr),
        ENV_TEST(cli_recognises_check_config),
        LOG_TEST(log_level_filter_drops_lines_below_minimum),
        LOG_TEST(log_level_names_and_unknown_default_to_info),
        LOG_TEST(log_writes_one_json_line_with_fixed_keys_and_fields),
        LOG_TEST(log_escapes_content_so_a_line_cannot_be_split_or_forged),
        LOG_TEST(log_fields_cannot_override_fixed_keys),
        LOG_TEST(log_with_null_msg_and_bad_fields_still_writes_valid_json),
        LOG_TEST(log_service_name_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
