/* test_map.c — the string-keyed hash map: insert, replace, delete, visit,
 * growth, binary and empty keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_map.h"

static int map_setup(void **state)
{
    pd_map *m = pd_map_create();
    if (!m)
        return -1;
    *state = m;
    return 0;
}

static int map_teardown(void **state)
{
    pd_map_free(*state);
    return 0;
}

static void new_map_is_empty_and_finds_nothing(void **state)
{
    pd_map *m = *state;
    assert_int_equal(pd_map_count(m), 0);
    assert_null(pd_map_get(m, pd_slice_cstr("missing")));
    assert_null(pd_map_del(m, pd_slice_cstr("missing")));
    assert_int_equal(pd_map_count(m), 0);
}

static void put_then_get_returns_the_stored_pointer(void **state)
{
    pd_map *m = *state;
    int a = 1, b = 2;
    assert_int_equal(pd_map_put(m, pd_slice_cstr("alpha"), &a), PD_OK);
    assert_int_equal(pd_map_put(m, pd_slice_cstr("beta"), &b), PD_OK);
    assert_int_equal(pd_map_count(m), 2);
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("alpha")), &a);
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("beta")), &b);
    /* Prefixes and extensions of a key are different keys. */
    assert_null(pd_map_get(m, pd_slice_cstr("alph")));
    assert_null(pd_map_get(m, pd_slice_cstr("alphaa")));
    assert_null(pd_map_get(m, pd_slice_cstr("ALPHA")));
}

static void put_on_existing_key_replaces_value_without_growing_count(void **state)
{
    pd_map *m = *state;
    int a = 1, b = 2;
    assert_int_equal(pd_map_put(m, pd_slice_cstr("k"), &a), PD_OK);
    assert_int_equal(pd_map_put(m, pd_slice_cstr("k"), &b), PD_OK);
    assert_int_equal(pd_map_count(m), 1);
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("k")), &b);
}

static void del_returns_old_value_and_forgets_key(void **state)
{
    pd_map *m = *state;
    int a = 1, b = 2;
    pd_map_put(m, pd_slice_cstr("one"), &a);
    pd_map_put(m, pd_slice_cstr("two"), &b);
    assert_ptr_equal(pd_map_del(m, pd_slice_cstr("one")), &a);
    assert_int_equal(pd_map_count(m), 1);
    assert_null(pd_map_get(m, pd_slice_cstr("one")));
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("two")), &b);
    /* A second delete of the same key is a no-op. */
    assert_null(pd_map_del(m, pd_slice_cstr("one")));
    assert_int_equal(pd_map_count(m), 1);
    /* And the key can be inserted again. */
    assert_int_equal(pd_map_put(m, pd_slice_cstr("one"), &b), PD_OK);
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("one")), &b);
    assert_int_equal(pd_map_count(m), 2);
}

static void map_copies_keys_so_caller_buffer_can_change(void **state)
{
    pd_map *m = *state;
    int a = 1;
    char buf[16];
    strcpy(buf, "room-1");
    pd_map_put(m, pd_slice_cstr(buf), &a);
    strcpy(buf, "XXXXXX");
    assert_null(pd_map_get(m, pd_slice_cstr("XXXXXX")));
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("room-1")), &a);
}

static void only_slice_length_bytes_form_the_key(void **state)
{
    pd_map *m = *state;
    int a = 1;
    pd_map_put(m, pd_slice_make("abcdef", 3), &a);
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("abc")), &a);
    assert_null(pd_map_get(m, pd_slice_cstr("abcdef")));
}

static void binary_keys_with_nul_bytes_are_distinct(void **state)
{
    pd_map *m = *state;
    int a = 1, b = 2, c = 3;
    pd_map_put(m, pd_slice_make("a\0b", 3), &a);
    pd_map_put(m, pd_slice_make("a\0c", 3), &b);
    pd_map_put(m, pd_slice_make("a", 1), &c);
    assert_int_equal(pd_map_count(m), 3);
    assert_ptr_equal(pd_map_get(m, pd_slice_make("a\0b", 3)), &a);
    assert_ptr_equal(pd_map_get(m, pd_slice_make("a\0c", 3)), &b);
    assert_ptr_equal(pd_map_get(m, pd_slice_make("a", 1)), &c);
    assert_null(pd_map_get(m, pd_slice_make("a\0", 2)));
    static const char bytes[] = {(char)0xff, (char)0x00, (char)0x80, (char)0x7f};
    pd_map_put(m, pd_slice_make(bytes, sizeof bytes), &a);
    assert_ptr_equal(pd_map_get(m, pd_slice_make(bytes, sizeof bytes)), &a);
    assert_ptr_equal(pd_map_del(m, pd_slice_make("a\0b", 3)), &a);
    assert_ptr_equal(pd_map_get(m, pd_slice_make("a\0c", 3)), &b);
}

static void empty_key_is_a_valid_key_with_or_without_base(void **state)
{
    pd_map *m = *state;
    int a = 1, b = 2;
    assert_int_equal(pd_map_put(m, pd_slice_cstr(""), &a), PD_OK);
    assert_int_equal(pd_map_count(m), 1);
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("")), &a);
    /* pd_slice allows base == NULL when len == 0: the same empty key. */
    assert_ptr_equal(pd_map_get(m, pd_slice_make(NULL, 0)), &a);
    assert_int_equal(pd_map_put(m, pd_slice_make(NULL, 0), &b), PD_OK);
    assert_int_equal(pd_map_count(m), 1);
    assert_ptr_equal(pd_map_get(m, pd_slice_cstr("")), &b);
    assert_null(pd_map_get(m, pd_slice_cstr("x")));
    assert_ptr_equal(pd_map_del(m, pd_slice_make(NULL, 0)), &b);
    assert_int_equal(pd_map_count(m), 0);
}

static void null_value_is_stored_and_counted(void **state)
{
    pd_map *m = *state;
    assert_int_equal(pd_map_put(m, pd_slice_cstr("k"), NULL), PD_OK);
    assert_int_equal(pd_map_count(m), 1);
    assert_null(pd_map_get(m, pd_slice_cstr("k")));
    assert_null(pd_map_del(m, pd_slice_cstr("k")));
    assert_int_equal(pd_map_count(m), 0);
}

typedef struct visit_log {
    int seen[64];   /* times each value index was visited */
    size_t visits;  /* total callback calls */
    size_t stop_at; /* return non-zero at this visit (0 = never) */
    int bad_key;    /* a key did not match its value */
} visit_log;

static int record_visit(pd_slice key, void *value, void *data)
{
    visit_log *log = data;
    int idx = (int)(intptr_t)value;
    char want[16];
    snprintf(want, sizeof want, "key%d", idx);
    if (!pd_slice_eq(key, want))
        log->bad_key = 1;
    log->seen[idx]++;
    log->visits++;
    return log->stop_at && log->visits == log->stop_at;
}

static void foreach_visits_every_entry_once_with_its_key(void **state)
{
    pd_map *m = *state;
    for (int i = 1; i <= 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%d", i);
        pd_map_put(m, pd_slice_cstr(k), (void *)(intptr_t)i);
    }
    pd_map_del(m, pd_slice_cstr("key7"));
    visit_log log = {0};
    pd_map_foreach(m, record_visit, &log);
    assert_false(log.bad_key);
    assert_int_equal(log.visits, 39);
    for (int i = 1; i <= 40; i++)
        assert_int_equal(log.seen[i], i == 7 ? 0 : 1);
}

static void foreach_stops_when_callback_returns_nonzero(void **state)
{
    pd_map *m = *state;
    for (int i = 1; i <= 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%d", i);
        pd_map_put(m, pd_slice_cstr(k), (void *)(intptr_t)i);
    }
    visit_log log = {0};
    log.stop_at = 5;
    pd_map_foreach(m, record_visit, &log);
    assert_int_equal(log.visits, 5);
}

static int count_visit(pd_slice key, void *value, void *data)
{
    (void)key;
    (void)value;
    (*(size_t *)data)++;
    return 0;
}

static void foreach_on_empty_map_calls_nothing(void **state)
{
    pd_map *m = *state;
    size_t n = 0;
    pd_map_foreach(m, count_visit, &n);
    assert_int_equal(n, 0);
}

static void grows_to_100k_keys_and_keeps_every_entry_reachable(void **state)
{
    pd_map *m = *state;
    enum { N = 100000 };
    char k[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "sock-%d", i);
        assert_int_equal(pd_map_put(m, pd_slice_make(k, (size_t)n), (void *)(intptr_t)(i + 1)), PD_OK);
    }
    assert_int_equal(pd_map_count(m), N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "sock-%d", i);
        assert_int_equal((intptr_t)pd_map_get(m, pd_slice_make(k, (size_t)n)), i + 1);
    }
    size_t visited = 0;
    pd_map_foreach(m, count_visit, &visited);
    assert_int_equal(visited, N);
    /* Delete the even half; the odd half must survive untouched. */
    for (int i = 0; i < N; i += 2) {
        int n = snprintf(k, sizeof k, "sock-%d", i);
        assert_int_equal((intptr_t)pd_map_del(m, pd_slice_make(k, (size_t)n)), i + 1);
    }
    assert_int_equal(pd_map_count(m), N / 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "sock-%d", i);
        void *v = pd_map_get(m, pd_slice_make(k, (size_t)n));
        if (i % 2)
            assert_int_equal((intptr_t)v, i + 1);
        else
            assert_null(v);
    }
}

static void free_of_null_map_is_harmless(void **state)
{
    (void)state;
    pd_map_free(NULL);
}

static void two_maps_are_independent(void **state)
{
    pd_map *m = *state;
    pd_map *other = pd_map_create();
    assert_non_null(other);
    int a = 1;
    pd_map_put(m, pd_slice_cstr("shared"), &a);
    assert_null(pd_map_get(other, pd_slice_cstr("shared")));
    assert_int_equal(pd_map_count(other), 0);
    pd_map_free(other);
}

#define MAP_TEST(fn) cmocka_unit_test_setup_teardown(fn, map_setup, map_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        MAP_TEST(new_map_is_empty_and_finds_nothing),
        MAP_TEST(put_then_get_returns_the_stored_pointer),
        MAP_TEST(put_on_existing_key_replaces_value_without_growing_count),
        MAP_TEST(del_returns_old_value_and_forgets_key),
        MAP_TEST(map_copies_keys_so_caller_buffer_can_change),
        MAP_TEST(only_slice_length_bytes_form_the_key),
        MAP_TEST(binary_keys_with_nul_bytes_are_distinct),
        MAP_TEST(empty_key_is_a_valid_key_with_or_without_base),
        MAP_TEST(null_value_is_stored_and_counted),
        MAP_TEST(foreach_visits_every_entry_once_with_its_key),
        MAP_TEST(foreach_stops_when_callback_returns_nonzero),
        MAP_TEST(foreach_on_empty_map_calls_nothing),
        MAP_TEST(grows_to_100k_keys_and_keeps_every_entry_reachable),
        cmocka_unit_test(free_of_null_map_is_harmless),
        MAP_TEST(two_maps_are_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
