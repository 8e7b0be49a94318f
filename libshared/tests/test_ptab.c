/* test_ptab.c — the pointer hash set: lookups, replacement, deletion with
 * backward shifting (checked against pd_map over random operations), growth
 * and shrinking, and iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_map.h"
#include "privydrop/pd_ptab.h"

typedef struct item {
    char key[16];
    int value;
} item;

static pd_slice item_key(const void *p)
{
    return pd_slice_cstr(((const item *)p)->key);
}

static void put_get_replace_delete(void **state)
{
    (void)state;
    pd_ptab *t = pd_ptab_create(item_key);
    assert_non_null(t);
    item a = {"alpha", 1}, b = {"beta", 2}, a2 = {"alpha", 3}, empty = {"", 4};
    assert_null(pd_ptab_get(t, pd_slice_cstr("alpha")));
    assert_int_equal(pd_ptab_put(t, &a), PD_OK);
    assert_int_equal(pd_ptab_put(t, &b), PD_OK);
    assert_int_equal(pd_ptab_put(t, &empty), PD_OK);
    assert_ptr_equal(pd_ptab_get(t, pd_slice_cstr("alpha")), &a);
    assert_ptr_equal(pd_ptab_get(t, pd_slice_cstr("")), &empty);
    assert_int_equal(pd_ptab_put(t, &a2), PD_OK); /* same key: replaces */
    assert_int_equal(pd_ptab_count(t), 3);
    assert_ptr_equal(pd_ptab_get(t, pd_slice_cstr("alpha")), &a2);
    assert_ptr_equal(pd_ptab_del(t, pd_slice_cstr("alpha")), &a2);
    assert_null(pd_ptab_del(t, pd_slice_cstr("alpha")));
    assert_null(pd_ptab_get(t, pd_slice_cstr("alph")));
    assert_int_equal(pd_ptab_count(t), 2);
    pd_ptab_free(t);
}

static int count_visit(pd_slice key, void *p, void *data)
{
    assert_true(pd_slice_eq(key, ((item *)p)->key));
    (*(size_t *)data)++;
    return 0;
}

/* Random puts and deletes over a small key space (long probe runs, many
 * shifts), checked step by step against pd_map; the table grows to hold
 * thousands and shrinks again as they go. */
static void agrees_with_pd_map_under_random_operations(void **state)
{
    (void)state;
    enum { KEYS = 6000, OPS = 200000 };
    item *items = calloc(KEYS, sizeof(*items));
    assert_non_null(items);
    for (int i = 0; i < KEYS; i++) {
        snprintf(items[i].key, sizeof(items[i].key), "k%d", i);
        items[i].value = i;
    }
    pd_ptab *t = pd_ptab_create(item_key);
    pd_map *m = pd_map_create();
    uint64_t rng = 88172645463325252ULL;
    for (int op = 0; op < OPS; op++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        /* First fill up, then mostly delete: both growth and shrinking. */
        int span = op < OPS / 2 ? KEYS : KEYS / 10;
        item *it = &items[rng % (uint64_t)span];
        pd_slice k = pd_slice_cstr(it->key);
        int del = op < OPS / 2 ? (rng >> 32) % 4 == 0 : (rng >> 32) % 4 != 0;
        if (del) {
            assert_ptr_equal(pd_ptab_del(t, k), pd_map_del(m, k));
        } else {
            assert_int_equal(pd_ptab_put(t, it), PD_OK);
            assert_int_equal(pd_map_put(m, k, it), PD_OK);
        }
        if (op == OPS / 2 - 1) {
            for (int i = 0; i < KEYS; i++)
                assert_ptr_equal(pd_ptab_get(t, pd_slice_cstr(items[i].key)),
                                 pd_map_get(m, pd_slice_cstr(items[i].key)));
            /* Then empty everything beyond the small span. */
            for (int i = KEYS / 10; i < KEYS; i++)
                assert_ptr_equal(pd_ptab_del(t, pd_slice_cstr(items[i].key)),
                                 pd_map_del(m, pd_slice_cstr(items[i].key)));
        }
        assert_int_equal(pd_ptab_count(t), pd_map_count(m));
    }
    for (int i = 0; i < KEYS; i++)
        assert_ptr_equal(pd_ptab_get(t, pd_slice_cstr(items[i].key)), pd_map_get(m, pd_slice_cstr(items[i].key)));
    size_t seen = 0;
    pd_ptab_foreach(t, count_visit, &seen);
    assert_int_equal(seen, pd_map_count(m));
    pd_ptab_free(t);
    pd_map_free(m);
    free(items);
}

static int stop_visit(pd_slice key, void *p, void *data)
{
    (void)key;
    (void)p;
    return ++*(int *)data == 2;
}

static void foreach_stops_early(void **state)
{
    (void)state;
    pd_ptab *t = pd_ptab_create(item_key);
    item a = {"a", 1}, b = {"b", 2}, c = {"c", 3};
    pd_ptab_put(t, &a);
    pd_ptab_put(t, &b);
    pd_ptab_put(t, &c);
    int n = 0;
    pd_ptab_foreach(t, stop_visit, &n);
    assert_int_equal(n, 2);
    pd_ptab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_replace_delete),
        cmocka_unit_test(agrees_with_pd_map_under_random_operations),
        cmocka_unit_test(foreach_stops_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
