/* The get_room pool (pool.h) against a real redis-server: ids reserved in
 * batches, marked so that no join gets in, handed out once each, as many
 * as demand asks for, forgotten on a reset, never stale. (The claim that
 * follows a hand-out is the room API's: tests/integration/roompool.) */
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
    f->pool = pd_pool_create(f->r, &pc);
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

static long reserved(pool_fx *f, const char *id)
{
    return rfx_int(f->c, "HEXISTS room:%s reserved", id);
}

/* A get_room's take, and the refill the room API then starts if due. */
static int take(pool_fx *f, char id[PD_ROOM_RESERVED_ID_MAX + 1])
{
    pd_pool_demand(f->pool);
    int got = pd_pool_take(f->pool, id);
    pd_pool_refill(f->pool);
    return got;
}

/* Take until the pool answers: a miss starts a refill, then wait for it. */
static void take_hit(pool_fx *f, char id[PD_ROOM_RESERVED_ID_MAX + 1])
{
    for (int i = 0; i < 3; i++) {
        if (take(f, id))
            return;
        RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    }
    fail_msg("the pool never answered");
}

/* The ids of every room:<id> in Redis, as "a,b,c,". */
static void rooms_in_redis(pool_fx *f, char *buf, size_t cap)
{
    redisReply *rep = redisCommand(f->c, "KEYS room:*");
    assert_non_null(rep);
    buf[0] = '\0';
    for (size_t i = 0; i < rep->elements; i++) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s,", rep->element[i]->str + 5);
    }
    freeReplyObject(rep);
}

static void a_miss_starts_a_refill_and_the_next_take_gives_a_reserved_room(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1], redis_ids[64];
    assert_int_equal(take(f, id), 0); /* a miss starts a refill */
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    /* Reserved, not handed out: short-lived and closed to joins. */
    rooms_in_redis(f, redis_ids, sizeof redis_ids);
    redis_ids[strlen(redis_ids) - 1] = '\0';
    assert_int_equal(reserved(f, redis_ids), 1);
    assert_true(ttl(f, redis_ids) > 0 && ttl(f, redis_ids) <= PD_POOL_RESERVE_S);
    assert_int_equal(take(f, id), 1);
    assert_string_equal(id, redis_ids);
    assert_int_equal(pd_pool_hits(f->pool), 1);
}

static void demand_sets_the_size_and_every_id_goes_out_once(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    /* One get_room of demand: one id kept, not eight. */
    assert_int_equal(take(f, id), 0);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    rfx_run_for(&f->l, 20);
    assert_int_equal(pd_pool_size(f->pool), 1);
    assert_int_equal(rfx_int(f->c, "DBSIZE"), 4); /* the room and the short-id bookkeeping */
    /* A burst of 50 at once (most miss): the refills take the pool to its
     * maximum and no more. */
    for (int i = 0; i < 50; i++)
        if (take(f, id))
            assert_int_equal(rfx_int(f->c, "SADD test:seen %s", id), 1);
    take_hit(f, id);
    assert_int_equal(rfx_int(f->c, "SADD test:seen %s", id), 1);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) >= 7, 3000);
    assert_true(pd_pool_size(f->pool) >= 7 && pd_pool_size(f->pool) <= 8);
    for (int i = 0; i < 100; i++) {
        take_hit(f, id);
        assert_int_equal(rfx_int(f->c, "SADD test:seen %s", id), 1);
        assert_true(pd_pool_size(f->pool) <= 8);
    }
    /* Every id handed out was a reserved room. */
    redisReply *rep = redisCommand(f->c, "SMEMBERS test:seen");
    assert_non_null(rep);
    for (size_t i = 0; i < rep->elements; i++)
        assert_int_equal(reserved(f, rep->element[i]->str), 1);
    freeReplyObject(rep);
}

static void reset_forgets_the_ids_and_a_refill_still_on_its_way(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    assert_int_equal(take(f, id), 0); /* refill sent */
    pd_pool_reset(f->pool);
    rfx_run_for(&f->l, 50);
    assert_int_equal(pd_pool_size(f->pool), 0);
    assert_int_equal(take(f, id), 0);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    pd_pool_reset(f->pool);
    assert_int_equal(pd_pool_size(f->pool), 0);
    assert_int_equal(take(f, id), 0);
}

static void an_id_past_its_age_is_not_handed_out(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1], first[64];
    assert_int_equal(take(f, id), 0);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    assert_int_equal(pd_pool_size(f->pool), 1);
    rooms_in_redis(f, first, sizeof first);
    first[strlen(first) - 1] = '\0';
    rfx_run_for(&f->l, 150); /* older than max_age_ms (100): waiting longer only ages it more */
    /* Not handed out, and dropped from the pool (what comes back from the
     * refill this take starts is not looked at: how fresh it arrives
     * depends on how busy the machine is). */
    assert_int_equal(take(f, id), 0);
    /* The stale one is left to its reservation's life. */
    assert_int_equal(reserved(f, first), 1);
    assert_true(ttl(f, first) <= PD_POOL_RESERVE_S);
}

static void closed_it_hands_out_nothing(void **state)
{
    pool_fx *f = *state;
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    assert_int_equal(take(f, id), 0);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    pd_pool_close(f->pool);
    assert_int_equal(take(f, id), 0);
}

typedef struct ready_log {
    pool_fx *f;
    int calls;
    size_t size_seen, coming_seen;
    int due_seen;
} ready_log;

static void on_ready(void *data)
{
    ready_log *g = data;
    g->calls++;
    g->size_seen = pd_pool_size(g->f->pool);
    g->coming_seen = pd_pool_coming(g->f->pool);
    g->due_seen = pd_pool_refill_due(g->f->pool);
}

static void on_pong(redisReply *rep, void *data)
{
    *(int *)data = rep != NULL;
}

/* What the room API's get_rooms that find the pool empty wait on: the ids
 * on their way are counted, their answer is announced, and an id taken for
 * a get_room already counted adds no demand. */
static void ids_on_their_way_are_counted_and_their_answer_announced(void **state)
{
    pool_fx *f = *state;
    ready_log g = {f, 0, 0, 0, 0};
    pd_pool_on_ready(f->pool, on_ready, &g);
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    assert_int_equal(pd_pool_coming(f->pool), 0);
    assert_int_equal(take(f, id), 0); /* demand 1: one id asked for */
    assert_int_equal(pd_pool_coming(f->pool), 1);
    assert_int_equal(g.calls, 0);
    RFX_WAIT(&f->l, g.calls > 0, 3000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.size_seen, 1);
    assert_int_equal(g.coming_seen, 0);
    assert_int_equal(pd_pool_take(f->pool, id), 1);
    assert_int_equal(reserved(f, id), 1);
    assert_int_equal(pd_pool_hits(f->pool), 1);
    assert_int_equal(pd_pool_take(f->pool, id), 0);
    /* Takes alone add no demand: the target is still one id. */
    assert_int_equal(pd_pool_refill_due(f->pool), 1);
    pd_pool_refill(f->pool);
    assert_int_equal(pd_pool_coming(f->pool), 1);
    /* A reset forgets what is on its way, and says so; so does the close. */
    pd_pool_reset(f->pool);
    assert_int_equal(g.calls, 2);
    assert_int_equal(g.coming_seen, 0);
    /* The old answer comes (a PING behind it on the same link is answered
     * after it) and is not announced. */
    int ponged = 0;
    assert_int_equal(pd_redis_cmd(f->r, on_pong, &ponged, "PING"), PD_OK);
    RFX_WAIT(&f->l, ponged, 3000);
    assert_int_equal(g.calls, 2);
    assert_int_equal(pd_pool_size(f->pool), 0);
    pd_pool_close(f->pool);
    assert_int_equal(g.calls, 3);
    assert_int_equal(pd_pool_coming(f->pool), 0);
    pd_pool_close(f->pool);
    assert_int_equal(g.calls, 3);
}

/* Redis answering a reservation with an error (here: out of memory) while
 * the link stays up: the answer is announced with nothing on its way, and
 * no refill is due for a moment, so the room API's waiting get_rooms go
 * their own way instead of waiting on a reservation sent again and again. */
static void a_failed_reservation_is_not_sent_again_at_once(void **state)
{
    pool_fx *f = *state;
    ready_log g = {f, 0, 0, 0, 1};
    pd_pool_on_ready(f->pool, on_ready, &g);
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    freeReplyObject(redisCommand(f->c, "CONFIG SET maxmemory 1"));
    assert_int_equal(take(f, id), 0);
    assert_int_equal(pd_pool_coming(f->pool), 1);
    RFX_WAIT(&f->l, g.calls > 0, 3000);
    freeReplyObject(redisCommand(f->c, "CONFIG SET maxmemory 0"));
    assert_int_equal(g.coming_seen, 0);
    assert_int_equal(g.size_seen, 0);
    assert_int_equal(g.due_seen, 0);
    /* Later it is due again, and the next reservation fills the pool. */
    RFX_WAIT(&f->l, pd_pool_refill_due(f->pool), 3000);
    pd_pool_refill(f->pool);
    RFX_WAIT(&f->l, pd_pool_size(f->pool) > 0, 3000);
    pd_pool_on_ready(f->pool, NULL, NULL); /* g goes with this frame */
}

static void bad_configs_are_refused(void **state)
{
    pool_fx *f = *state;
    pd_pool_config zero = {0, 0}, big = {PD_POOL_MAX + 1, 0}, old = {8, (uint64_t)PD_POOL_RESERVE_S * 1000};
    assert_null(pd_pool_create(f->r, &zero));
    assert_null(pd_pool_create(f->r, &big));
    assert_null(pd_pool_create(f->r, &old));
}

#define POOL_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(a_miss_starts_a_refill_and_the_next_take_gives_a_reserved_room),
        POOL_TEST(demand_sets_the_size_and_every_id_goes_out_once),
        POOL_TEST(reset_forgets_the_ids_and_a_refill_still_on_its_way),
        cmocka_unit_test_setup_teardown(an_id_past_its_age_is_not_handed_out, fx_setup_short_age, fx_teardown),
        POOL_TEST(closed_it_hands_out_nothing),
        POOL_TEST(ids_on_their_way_are_counted_and_their_answer_announced),
        POOL_TEST(a_failed_reservation_is_not_sent_again_at_once),
        POOL_TEST(bad_configs_are_refused),
    };
    return cmocka_run_group_tests(tests, rfx_group_setup, rfx_group_teardown);
}
