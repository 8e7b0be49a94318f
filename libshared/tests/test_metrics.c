/* test_metrics.c — registry semantics and the Prometheus 0.0.4 text output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_metrics.h"

static pd_metrics *reg;

static int setup(void **state)
{
    (void)state;
    reg = pd_metrics_create();
    return reg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pd_metrics_free(reg);
    reg = NULL;
    return 0;
}

static char *render(void)
{
    size_t len = 0;
    char *s = pd_metrics_render(reg, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    return s;
}

static void empty_registry_renders_empty(void **state)
{
    (void)state;
    char *s = render();
    assert_string_equal(s, "");
    free(s);
    pd_metrics_free(NULL);
}

static void unlabelled_counter_and_gauge(void **state)
{
    (void)state;
    pd_metric *c = pd_metrics_add(reg, PD_METRIC_COUNTER, "pd_joins_total", "Joins.", NULL);
    pd_metric *g = pd_metrics_add(reg, PD_METRIC_GAUGE, "pd_sockets", "Open sockets.", NULL);
    assert_non_null(c);
    assert_non_null(g);
    char *s = render();
    /* Unlabelled series are shown as 0 before first use. */
    assert_string_equal(s, "# HELP pd_joins_total Joins.\n"
                           "# TYPE pd_joins_total counter\n"
                           "pd_joins_total 0\n"
                           "# HELP pd_sockets Open sockets.\n"
                           "# TYPE pd_sockets gauge\n"
                           "pd_sockets 0\n");
    free(s);

    pd_metric_add(c, NULL, 1);
    pd_metric_add(c, NULL, 2);
    pd_metric_add(c, "ignored", 1); /* no label: lv is irrelevant */
    pd_metric_set(g, NULL, 7);
    pd_metric_add(g, NULL, -10);
    assert_true(pd_metric_get(c, NULL) == 4);
    assert_true(pd_metric_get(g, NULL) == -3);
    s = render();
    assert_non_null(strstr(s, "\npd_joins_total 4\n"));
    assert_non_null(strstr(s, "\npd_sockets -3\n"));
    free(s);
}

static void counters_never_decrease(void **state)
{
    (void)state;
    pd_metric *c = pd_metrics_add(reg, PD_METRIC_COUNTER, "c_total", "c", NULL);
    pd_metric_add(c, NULL, 5);
    pd_metric_add(c, NULL, -1);
    pd_metric_add(c, NULL, NAN);
    assert_true(pd_metric_get(c, NULL) == 5);
}

static void labelled_series(void **state)
{
    (void)state;
    pd_metric *m = pd_metrics_add(reg, PD_METRIC_COUNTER, "pd_events_total", "Events by name.",
                                  "event");
    assert_non_null(m);
    char *s = render();
    assert_string_equal(s, "# HELP pd_events_total Events by name.\n"
                           "# TYPE pd_events_total counter\n");
    free(s);
    pd_metric_add(m, "join", 1);
    pd_metric_add(m, "offer", 2);
    pd_metric_add(m, "join", 1);
    assert_true(pd_metric_get(m, "join") == 2);
    assert_true(pd_metric_get(m, "offer") == 2);
    assert_true(pd_metric_get(m, "answer") == 0);
    s = render();
    assert_string_equal(s, "# HELP pd_events_total Events by name.\n"
                           "# TYPE pd_events_total counter\n"
                           "pd_events_total{event=\"join\"} 2\n"
                           "pd_events_total{event=\"offer\"} 2\n");
    free(s);
}

static void label_values_are_escaped(void **state)
{
    (void)state;
    pd_metric *m = pd_metrics_add(reg, PD_METRIC_GAUGE, "g", "a \\ help\nline \"q\"", "l");
    pd_metric_set(m, "a\"b\\c\nd", 1);
    pd_metric_set(m, "", 2);
    pd_metric_set(m, NULL, 3); /* same as "" */
    pd_metric_set(m, "caf\xc3\xa9", 4);
    char *s = render();
    assert_string_equal(s, "# HELP g a \\\\ help\\nline \"q\"\n"
                           "# TYPE g gauge\n"
                           "g{l=\"a\\\"b\\\\c\\nd\"} 1\n"
                           "g{l=\"\"} 3\n"
                           "g{l=\"caf\xc3\xa9\"} 4\n");
    free(s);
}

static void label_cardinality_is_capped(void **state)
{
    (void)state;
    pd_metric *m = pd_metrics_add(reg, PD_METRIC_COUNTER, "e_total", "e", "event");
    char lv[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(lv, sizeof lv, "ev%d", i);
        pd_metric_add(m, lv, 1);
    }
    assert_true(pd_metric_get(m, "ev0") == 1);
    assert_true(pd_metric_get(m, "ev63") == 1);
    /* Folded values read back as "other". */
    assert_true(pd_metric_get(m, "ev64") == 936);
    assert_true(pd_metric_get(m, "other") == 936);
    assert_true(pd_metric_get(m, "never-seen") == 936);
    /* Existing values keep counting after the cap. */
    pd_metric_add(m, "ev5", 1);
    assert_true(pd_metric_get(m, "ev5") == 2);

    char *s = render();
    size_t lines = 0;
    for (char *p = s; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2 + 64 + 1);
    assert_non_null(strstr(s, "e_total{event=\"other\"} 936\n"));
    assert_null(strstr(s, "ev64"));
    free(s);
}

static void hostile_label_values_fold_into_other(void **state)
{
    (void)state;
    pd_metric *m = pd_metrics_add(reg, PD_METRIC_COUNTER, "h_total", "h", "event");
    char *big = malloc(1 << 20);
    assert_non_null(big);
    memset(big, 'x', (1 << 20) - 1);
    big[(1 << 20) - 1] = '\0';
    pd_metric_add(m, big, 1);
    pd_metric_add(m, "\xff\xfe", 1);           /* not UTF-8 */
    pd_metric_add(m, "\xc0\xaf", 1);           /* overlong '/' */
    pd_metric_add(m, "\xed\xa0\x80", 1);       /* surrogate */
    pd_metric_add(m, "\xe2\x82", 1);           /* truncated */
    pd_metric_add(m, "other", 1);              /* explicit "other" is the same series */
    free(big);
    char *s = render();
    assert_string_equal(s, "# HELP h_total h\n"
                           "# TYPE h_total counter\n"
                           "h_total{event=\"other\"} 6\n");
    free(s);
}

static void values_have_no_exponent_when_integral(void **state)
{
    (void)state;
    pd_metric *m = pd_metrics_add(reg, PD_METRIC_GAUGE, "v", NULL, "k");
    pd_metric_set(m, "big", 1234567890123.0);
    pd_metric_set(m, "million", 1e6);
    pd_metric_set(m, "neg", -42);
    pd_metric_set(m, "negzero", -0.0);
    pd_metric_set(m, "half", 0.5);
    pd_metric_set(m, "nan", NAN);
    pd_metric_set(m, "inf", INFINITY);
    pd_metric_set(m, "ninf", -INFINITY);
    pd_metric_set(m, "huge", 1e300);
    char *s = render();
    /* No HELP line without help text. */
    assert_true(strncmp(s, "# TYPE v gauge\n", 15) == 0);
    assert_non_null(strstr(s, "v{k=\"big\"} 1234567890123\n"));
    assert_non_null(strstr(s, "v{k=\"million\"} 1000000\n"));
    assert_non_null(strstr(s, "v{k=\"neg\"} -42\n"));
    assert_non_null(strstr(s, "v{k=\"negzero\"} 0\n"));
    assert_non_null(strstr(s, "v{k=\"half\"} 0.5\n"));
    assert_non_null(strstr(s, "v{k=\"nan\"} NaN\n"));
    assert_non_null(strstr(s, "v{k=\"inf\"} +Inf\n"));
    assert_non_null(strstr(s, "v{k=\"ninf\"} -Inf\n"));
    /* Beyond int64 range a float literal is fine, and parses back. */
    char *h = strstr(s, "v{k=\"huge\"} ");
    assert_non_null(h);
    assert_true(strtod(h + strlen("v{k=\"huge\"} "), NULL) == 1e300);
    free(s);
}

static void names_are_validated(void **state)
{
    (void)state;
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "", "h", NULL));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, NULL, "h", NULL));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "1abc", "h", NULL));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "a-b", "h", NULL));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "a b", "h", NULL));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "a{b}", "h", NULL));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "ok", "h", "1l"));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "ok", "h", "a:b"));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "ok", "h", "__name"));
    assert_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "ok", "h", ""));
    assert_null(pd_metrics_add(reg, (pd_metric_kind)7, "ok", "h", NULL));
    assert_null(pd_metrics_add(NULL, PD_METRIC_COUNTER, "ok", "h", NULL));
    assert_non_null(pd_metrics_add(reg, PD_METRIC_COUNTER, "ns:sub_total", "h", "_l1"));
    assert_non_null(pd_metrics_add(reg, PD_METRIC_GAUGE, "_x", "h", NULL));
    /* Duplicate family names would be an invalid exposition. */
    assert_null(pd_metrics_add(reg, PD_METRIC_GAUGE, "_x", "other help", NULL));
    char *s = render();
    assert_null(strstr(s, "ok"));
    assert_null(strstr(s, "other help"));
    free(s);
    /* NULL handles are ignored. */
    pd_metric_add(NULL, "x", 1);
    pd_metric_set(NULL, "x", 1);
    assert_true(pd_metric_get(NULL, "x") == 0);
}

static void render_many_families(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "m%d", i);
        pd_metric *m = pd_metrics_add(reg, PD_METRIC_GAUGE, name, "help text", "k");
        assert_non_null(m);
        for (int j = 0; j < 64; j++) {
            snprintf(name, sizeof name, "value-%d", j);
            pd_metric_set(m, name, j * 1.25);
        }
    }
    char *s = render();
    assert_non_null(strstr(s, "m199{k=\"value-63\"} 78.75\n"));
    assert_non_null(strstr(s, "m0{k=\"value-0\"} 0\n"));
    assert_int_equal(s[strlen(s) - 1], '\n');
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(empty_registry_renders_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(unlabelled_counter_and_gauge, setup, teardown),
        cmocka_unit_test_setup_teardown(counters_never_decrease, setup, teardown),
        cmocka_unit_test_setup_teardown(labelled_series, setup, teardown),
        cmocka_unit_test_setup_teardown(label_values_are_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(label_cardinality_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_label_values_fold_into_other, setup, teardown),
        cmocka_unit_test_setup_teardown(values_have_no_exponent_when_integral, setup, teardown),
        cmocka_unit_test_setup_teardown(names_are_validated, setup, teardown),
        cmocka_unit_test_setup_teardown(render_many_families, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
