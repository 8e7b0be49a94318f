/* The get_room pool (pool.h) against a real redis-server: ids reserved in
 * batches with a short life, handed out once each, claimed for 24 h soon
 * after, forgotten when the Redis link goes, never handed out stale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../../libshared/tests/redis_fixture.h"
#include "../src/pool.h"

typedef struct pool_fx {
    rfx_loop l;
    pd_redis *r;
    redisContext *c;
    pd_pool *pool;
} pool_fx;

static int setup_with(void **state, uint64_t max_age_ms)
{
    pool_fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    rfx_loop_init(&f->l);
    if (rfx_store_open(&f->l, &f->r, &f->c) != 0)
        return -1;
    pd_pool_config pc = {8, max_age_ms};
    f->pool = pd_pool_create(&f->l.loop, f->r, &pc);
    if (!f->pool)
        return -1;
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    return setup_with(state, 0);
}

static int fx_setup_short_age(void **state)
{
    return setup_with(state, 100);
}

static int fx_teardown(void **state)
{
    pool_fx *f = *state;
    if (!f)
        return 0;
    pd_pool_close(f->pool);
    pd_redis_free(f->r);
    rfx_loop_close(&f->l);
    pd_pool_free(f->pool);
    redisFree(f->c);
    free(f);
    return 0;
}

static long ttl(pool_fx *f, const char *id)
{
    return rfx_int(f->c, "TTL room:%s", id);
}

/* Take until the pool answers (a refill is on its way after a miss). */
static void take_hit(pool_fx *f, char id[PD_ROOM_RESERVED_ID_MAX + 1])
{
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    assert_int_equal(pd_pool_take(f->pool, id), 1);
}

static void a_miss_starts_a_refill_and_the_next_take_is_claimed_for_a_day(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    assert_int_equal(pd_pool_take(f->pool, id), 0);
    take_hit(f, id);
    assert_int_equal(pd_pool_hits(f->pool), 1);
    assert_int_equal(rfx_int(f->c, "HEXISTS room:%s created_at", id), 1);
    /* Reserved, not yet claimed: the reservation's life; the claim is
     * queued and counts as pending until Redis has answered it. */
    assert_true(ttl(f, id) > 0 && ttl(f, id) <= PD_POOL_RESERVE_S);
    assert_int_equal(pd_pool_pending(f->pool), 1);
    RFX_WAIT(&f->l, pd_pool_pending(f->pool) == 0, 3000);
    assert_int_equal(pd_pool_pending(f->pool), 0);
    assert_true(ttl(f, id) > 86400 - 10);
}

static void demand_sets_the_size_and_every_id_goes_out_once(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    /* One get_room of demand: one id kept, not eight. */
    assert_int_equal(pd_pool_take(f->pool, id), 0);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    rfx_run_for(&f->l, 20);
    assert_int_equal(pd_pool_size(f->pool), 1);
    assert_int_equal(rfx_int(f->c, "DBSIZE"), 4); /* the room and the short-id bookkeeping */
    /* A burst of 50 at once (one refill is on its way at a time, so most
     * miss): the next refill takes the pool to its maximum and no more. */
    for (int i = 0; i < 50; i++)
        if (pd_pool_take(f->pool, id))
            assert_int_equal(rfx_int(f->c, "SADD test:seen %s", id), 1);
    take_hit(f, id);
    assert_int_equal(rfx_int(f->c, "SADD test:seen %s", id), 1);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) >= 7, 3000);
    assert_true(pd_pool_size(f->pool) >= 7 && pd_pool_size(f->pool) <= 8);
    /* Every id goes out once. */
    for (int i = 0; i < 100; i++) {
        take_hit(f, id);
        assert_int_equal(rfx_int(f->c, "SADD test:seen %s", id), 1);
        assert_true(pd_pool_size(f->pool) <= 8);
    }
    RFX_WAIT(&f->l, pd_pool_pending(f->pool) == 0, 3000);
    /* Every id handed out was claimed; those still in the pool were not. */
    redisReply *rep = redisCommand(f->c, "SMEMBERS test:seen");
    assert_non_null(rep);
    for (size_t i = 0; i < rep->elements; i++)
        assert_true(ttl(f, rep->element[i]->str) > 86400 - 10);
    freeReplyObject(rep);
}

static void reset_forgets_the_ids_and_a_refill_still_on_its_way(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    assert_int_equal(pd_pool_take(f->pool, id), 0); /* refill sent */
    pd_pool_reset(f->pool);
    rfx_run_for(&f->l, 50);
    assert_int_equal(pd_pool_size(f->pool), 0);
    /* Filled, then the link goes: nothing is handed out of what it held. */
    assert_int_equal(pd_pool_take(f->pool, id), 0);
    take_hit(f, id);
    assert_int_equal(pd_pool_pending(f->pool), 1);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    pd_pool_reset(f->pool);
    assert_int_equal(pd_pool_size(f->pool), 0);
    /* The claim queued before the reset was dropped: its room keeps the
     * reservation's life for its client to join. */
    assert_int_equal(pd_pool_pending(f->pool), 0);
    rfx_run_for(&f->l, 50);
    assert_true(ttl(f, id) <= PD_POOL_RESERVE_S);
    assert_int_equal(pd_pool_take(f->pool, id), 0);
}

static void an_id_past_its_age_is_not_handed_out(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1], first[PD_ROOM_RESERVED_ID_MAX + 1];
    assert_int_equal(pd_pool_take(f->pool, id), 0);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    assert_int_equal(pd_pool_size(f->pool), 1);
    redisReply *rep = redisCommand(f->c, "KEYS room:*");
    assert_non_null(rep);
    assert_int_equal(rep->elements, 1);
    snprintf(first, sizeof first, "%s", rep->element[0]->str + 5);
    freeReplyObject(rep);
    rfx_run_for(&f->l, 150); /* older than max_age_ms (100) */
    assert_int_equal(pd_pool_take(f->pool, id), 0);
    take_hit(f, id);
    assert_string_not_equal(id, first);
    /* The stale one is left to its reservation's life, unclaimed. */
    RFX_WAIT(&f->l, pd_pool_pending(f->pool) == 0, 3000);
    assert_true(ttl(f, first) <= PD_POOL_RESERVE_S);
}

static void flush_and_close_send_the_queued_claims_at_once(void **state)
{
    pool_fx *f = *state;
    char a[PD_ROOM_RESERVED_ID_MAX + 1], b[PD_ROOM_RESERVED_ID_MAX + 1];
    assert_int_equal(pd_pool_take(f->pool, a), 0);
    take_hit(f, a);
    pd_pool_flush(f->pool);
    assert_int_equal(pd_pool_pending(f->pool), 1); /* sent, not answered */
    RFX_WAIT(&f->l, ttl(f, a) > PD_POOL_RESERVE_S, 3000);
    take_hit(f, b);
    pd_pool_close(f->pool); /* sends b's claim; takes nothing more */
    assert_int_equal(pd_pool_take(f->pool, a), 0);
    RFX_WAIT(&f->l, pd_pool_pending(f->pool) == 0, 3000);
    assert_true(ttl(f, b) > 86400 - 10);
}

static void bad_configs_are_refused(void **state)
{
    pool_fx *f = *state;
    pd_pool_config zero = {0, 0}, big = {PD_POOL_MAX + 1, 0},
                   old = {8, (uint64_t)PD_POOL_RESERVE_S * 1000};
    assert_null(pd_pool_create(&f->l.loop, f->r, &zero));
    assert_null(pd_pool_create(&f->l.loop, f->r, &big));
    assert_null(pd_pool_create(&f->l.loop, f->r, &old));
}

#define POOL_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(a_miss_starts_a_refill_and_the_next_take_is_claimed_for_a_day),
        POOL_TEST(demand_sets_the_size_and_every_id_goes_out_once),
        POOL_TEST(reset_forgets_the_ids_and_a_refill_still_on_its_way),
        cmocka_unit_test_setup_teardown(an_id_past_its_age_is_not_handed_out, fx_setup_short_age, fx_teardown),
        POOL_TEST(flush_and_close_send_the_queued_claims_at_once),
        POOL_TEST(bad_configs_are_refused),
    };
    return cmocka_run_group_tests(tests, rfx_group_setup, rfx_group_teardown);
}
