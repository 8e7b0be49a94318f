/* test_redis.c — the libuv Redis client against a real redis-server that
 * each test starts, kills, restarts, stops and continues: readiness,
 * replies, failures of pending commands, reconnects, resubscription and the
 * PING watchdog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "redis_fixture.h"

#include "privydrop/pd_redis.h"

typedef struct rd_fx {
    rfx_server srv;      /* private redis-server */
    rfx_loop l;          /* loop the client runs on */
    pd_redis *r;         /* client under test, NULL when freed */
    redisContext *c;     /* inspection / publishing connection */
    int ups;             /* state callbacks with ready = 1 */
    int downs;           /* state callbacks with ready = 0 */
    int msgs;            /* messages received */
    char chan[64];       /* channel of the last message */
    char msg[256];       /* payload of the last message */
    size_t msg_len;      /* its length */
    int burst_next;      /* next sequence number expected on pd:room:burst */
    int burst_bad;       /* burst messages out of order or damaged */
    size_t sub_max;      /* sub_max_message for client_create, 0 for the default */
} rd_fx;

/* The burst test's message n: "%06d" n, then filler up to a length that
 * varies from 7 bytes to past the subscriber's first buffer (64 KiB),
 * ending 'z'. */
static size_t burst_len(int n)
{
    return 7 + ((size_t)n * 7919u) % 70000u;
}

static void on_state(pd_redis *r, int ready, void *data)
{
    rd_fx *f = data;
    assert_ptr_equal(r, f->r);
    assert_int_equal(pd_redis_ready(r), ready);
    if (ready)
        f->ups++;
    else
        f->downs++;
}

static void on_message(pd_slice channel, pd_slice message, void *data)
{
    rd_fx *f = data;
    f->msgs++;
    if (pd_slice_eq(channel, "pd:room:burst")) {
        int n = (int)strtol(message.base, NULL, 10);
        if (n != f->burst_next || message.len != burst_len(n) || message.base[message.len - 1] != 'z')
            f->burst_bad++;
        f->burst_next = n + 1;
    }
    snprintf(f->chan, sizeof f->chan, "%.*s", (int)channel.len, channel.base);
    f->msg_len = PD_MIN(message.len, sizeof f->msg);
    memcpy(f->msg, message.base, f->msg_len);
}

static int fx_setup(void **state)
{
    rd_fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (rfx_start(&f->srv) != 0) {
        free(f);
        return -1;
    }
    rfx_loop_init(&f->l);
    f->c = rfx_sync(f->srv.port);
    *state = f;
    return f->c ? 0 : -1;
}

static int fx_teardown(void **state)
{
    rd_fx *f = *state;
    if (!f)
        return 0;
    if (f->r)
        pd_redis_free(f->r);
    f->r = NULL;
    rfx_loop_close(&f->l);
    if (f->c)
        redisFree(f->c);
    rfx_kill(&f->srv);
    free(f);
    return 0;
}

static void client_create(rd_fx *f, int subscriber, unsigned watchdog_ms, const char *password)
{
    pd_redis_options opt = {.host = "127.0.0.1", .port = f->srv.port, .password = password,
                            .subscriber = subscriber, .watchdog_ms = watchdog_ms,
                            .sub_max_message = f->sub_max};
    f->r = pd_redis_create(&f->l.loop, &opt, on_state, on_message, f);
    assert_non_null(f->r);
}

static void wait_ready(rd_fx *f, int ups, unsigned ms)
{
    RFX_WAIT(&f->l, f->ups >= ups && pd_redis_ready(f->r), ms);
    assert_true(pd_redis_ready(f->r));
    assert_true(f->ups >= ups);
}

/* Replace the inspection connection (after a restart). */
static void resync(rd_fx *f)
{
    if (f->c)
        redisFree(f->c);
    f->c = rfx_sync(f->srv.port);
    assert_non_null(f->c);
}

/* Publish repeatedly until the client receives one (subscriptions become
 * active asynchronously), then check the payload. */
static void publish_until_received(rd_fx *f, const char *chan, const char *msg, unsigned ms)
{
    int before = f->msgs;
    uint64_t deadline = pd_mono_ms() + ms;
    while (f->msgs == before && pd_mono_ms() < deadline) {
        rfx_int(f->c, "PUBLISH %s %s", chan, msg);
        rfx_run_for(&f->l, 20);
    }
    if (f->msgs == before)
        fail_msg("no message on %s within %u ms", chan, ms);
    assert_string_equal(f->chan, chan);
    assert_int_equal(f->msg_len, strlen(msg));
    assert_memory_equal(f->msg, msg, f->msg_len);
}

static long long numsub(rd_fx *f, const char *chan)
{
    redisReply *rep = rfx_cmd(f->c, "PUBSUB NUMSUB %s", chan);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 2);
    long long n = rep->element[1]->integer;
    freeReplyObject(rep);
    return n;
}

static void wait_numsub(rd_fx *f, const char *chan, long long want, unsigned ms)
{
    uint64_t deadline = pd_mono_ms() + ms;
    while (numsub(f, chan) != want && pd_mono_ms() < deadline)
        rfx_run_for(&f->l, 10);
    assert_int_equal(numsub(f, chan), want);
}

/* ---- one command's outcome ------------------------------------------------ */

typedef struct reply_box {
    int calls;          /* callback invocations */
    int null_reply;     /* reply was NULL */
    int type;           /* reply type */
    long long integer;  /* integer replies */
    char str[128];      /* string / status / error text */
    size_t len;         /* its length */
} reply_box;

static void on_reply_box(redisReply *rep, void *data)
{
    reply_box *b = data;
    b->calls++;
    b->null_reply = rep == NULL;
    if (!rep)
        return;
    b->type = rep->type;
    b->integer = rep->integer;
    if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_ERROR) {
        b->len = PD_MIN((size_t)rep->len, sizeof b->str - 1);
        memcpy(b->str, rep->str, b->len);
        b->str[b->len] = '\0';
    }
}

static void roundtrip(rd_fx *f, reply_box *b, const char *cmd)
{
    memset(b, 0, sizeof *b);
    assert_int_equal(pd_redis_cmd(f->r, on_reply_box, b, cmd), PD_OK);
    RFX_WAIT(&f->l, b->calls, 3000);
    assert_int_equal(b->calls, 1);
}

/* ---- tests ---------------------------------------------------------------- */

static void connects_and_reports_ready_once(void **state)
{
    rd_fx *f = *state;
    client_create(f, 0, 100, NULL);
    assert_false(pd_redis_ready(f->r));
    wait_ready(f, 1, 3000);
    assert_int_equal(pd_redis_connects(f->r), 1);
    /* The watchdog's PINGs are answered: no flapping while idle. */
    rfx_run_for(&f->l, 600);
    assert_int_equal(f->ups, 1);
    assert_int_equal(f->downs, 0);
    assert_int_equal(pd_redis_connects(f->r), 1);
    assert_true(pd_redis_ready(f->r));
}

static void subscriber_client_is_ready_only_with_both_links(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 0, NULL);
    wait_ready(f, 1, 3000);
    assert_int_equal(pd_redis_connects(f->r), 2);
    assert_int_equal(f->ups, 1);
}

static void command_replies_arrive_with_their_types(void **state)
{
    rd_fx *f = *state;
    client_create(f, 0, 60000, NULL);
    wait_ready(f, 1, 3000);
    reply_box b;
    roundtrip(f, &b, "SET greeting hello");
    assert_int_equal(b.type, REDIS_REPLY_STATUS);
    assert_string_equal(b.str, "OK");
    roundtrip(f, &b, "GET greeting");
    assert_int_equal(b.type, REDIS_REPLY_STRING);
    assert_string_equal(b.str, "hello");
    roundtrip(f, &b, "INCRBY counter 41");
    assert_int_equal(b.type, REDIS_REPLY_INTEGER);
    assert_int_equal(b.integer, 41);
    roundtrip(f, &b, "GET nothing");
    assert_int_equal(b.type, REDIS_REPLY_NIL);
    /* A Redis error is a reply, not a transport failure. */
    roundtrip(f, &b, "NOSUCHCOMMAND x");
    assert_false(b.null_reply);
    assert_int_equal(b.type, REDIS_REPLY_ERROR);

    /* Binary-safe argv. */
    const char val[] = {'a', '\0', 'b', '\n', ' '};
    const char *argv[3] = {"SET", "bin", val};
    size_t lens[3] = {3, 3, sizeof val};
    memset(&b, 0, sizeof b);
    assert_int_equal(pd_redis_cmd_argv(f->r, on_reply_box, &b, 3, argv, lens), PD_OK);
    RFX_WAIT(&f->l, b.calls, 3000);
    roundtrip(f, &b, "GET bin");
    assert_int_equal(b.len, sizeof val);
    assert_memory_equal(b.str, val, sizeof val);
}

static void pending_counts_commands_until_answered(void **state)
{
    rd_fx *f = *state;
    client_create(f, 0, 60000, NULL);
    wait_ready(f, 1, 3000);
    reply_box b[3];
    memset(b, 0, sizeof b);
    assert_int_equal(pd_redis_pending(f->r), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pd_redis_cmd(f->r, on_reply_box, &b[i], "PING"), PD_OK);
    assert_int_equal(pd_redis_pending(f->r), 3);
    /* A command without callback is counted too. */
    assert_int_equal(pd_redis_cmd(f->r, NULL, NULL, "SET fire forget"), PD_OK);
    assert_int_equal(pd_redis_pending(f->r), 4);
    RFX_WAIT(&f->l, pd_redis_pending(f->r) == 0, 3000);
    assert_int_equal(pd_redis_pending(f->r), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(b[i].calls, 1);
    char buf[16];
    assert_true(rfx_str(f->c, buf, sizeof buf, "GET fire"));
    assert_string_equal(buf, "forget");
}

static void commands_fail_fast_when_not_connected(void **state)
{
    rd_fx *f = *state;
    rfx_kill(&f->srv); /* nothing listens on the port */
    client_create(f, 1, 100, NULL);
    reply_box b = {0};
    assert_int_equal(pd_redis_cmd(f->r, on_reply_box, &b, "PING"), PD_ERR);
    rfx_run_for(&f->l, 300);
    assert_false(pd_redis_ready(f->r));
    assert_int_equal(pd_redis_connects(f->r), 0);
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    assert_int_equal(pd_redis_cmd(f->r, on_reply_box, &b, "PING"), PD_ERR);
    assert_int_equal(pd_redis_cmd_argv(f->r, on_reply_box, &b, 1, argv, lens), PD_ERR);
    rfx_run_for(&f->l, 50);
    assert_int_equal(b.calls, 0);
    assert_int_equal(pd_redis_pending(f->r), 0);
    assert_int_equal(f->ups, 0);
    assert_int_equal(f->downs, 0);
}

static void free_fails_pending_commands_synchronously(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 60000, NULL);
    wait_ready(f, 1, 3000);
    reply_box b = {0};
    assert_int_equal(pd_redis_cmd(f->r, on_reply_box, &b, "BLPOP never-filled 10"), PD_OK);
    rfx_run_for(&f->l, 30); /* the command is on the wire */
    assert_int_equal(b.calls, 0);
    pd_redis_free(f->r);
    f->r = NULL;
    assert_int_equal(b.calls, 1);
    assert_true(b.null_reply);
    /* No state callback after free. */
    assert_int_equal(f->downs, 0);
}

static void server_death_reports_down_and_fails_pending(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 60000, NULL);
    wait_ready(f, 1, 3000);
    reply_box b = {0};
    assert_int_equal(pd_redis_cmd(f->r, on_reply_box, &b, "BLPOP never-filled 10"), PD_OK);
    rfx_run_for(&f->l, 30);
    rfx_kill(&f->srv);
    RFX_WAIT(&f->l, f->downs >= 1 && b.calls, 3000);
    assert_int_equal(f->downs, 1);
    assert_false(pd_redis_ready(f->r));
    assert_int_equal(b.calls, 1);
    assert_true(b.null_reply);
    assert_int_equal(pd_redis_pending(f->r), 0);
    reply_box b2 = {0};
    assert_int_equal(pd_redis_cmd(f->r, on_reply_box, &b2, "PING"), PD_ERR);
}

static void reconnects_after_restart_and_resubscribes(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 200, NULL);
    wait_ready(f, 1, 3000);
    assert_int_equal(pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:r1")), PD_OK);
    assert_int_equal(pd_redis_subscription_count(f->r), 1);
    publish_until_received(f, "pd:room:r1", "before", 3000);
    unsigned long connects = pd_redis_connects(f->r);

    rfx_kill(&f->srv);
    RFX_WAIT(&f->l, f->downs >= 1, 3000);
    assert_int_equal(f->downs, 1);
    rfx_run_for(&f->l, 300); /* a few failed reconnect attempts */
    assert_false(pd_redis_ready(f->r));

    assert_int_equal(rfx_start(&f->srv), 0); /* same port */
    resync(f);
    uint64_t t0 = pd_mono_ms();
    wait_ready(f, 2, 6000);
    assert_true(pd_mono_ms() - t0 < 6000);
    assert_int_equal(pd_redis_connects(f->r), connects + 2);
    /* Commands work again ... */
    reply_box b;
    roundtrip(f, &b, "PING");
    assert_int_equal(b.type, REDIS_REPLY_STATUS);
    /* ... and the subscription was re-established on the new server. */
    wait_numsub(f, "pd:room:r1", 1, 3000);
    publish_until_received(f, "pd:room:r1", "after restart", 3000);
    assert_int_equal(pd_redis_subscription_count(f->r), 1);
}

static void subscribe_unsubscribe_subscribe_in_a_row_still_receives(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 0, NULL);
    wait_ready(f, 1, 3000);
    pd_slice ch = pd_slice_cstr("pd:room:flip");
    /* All three before the server answers anything. */
    assert_int_equal(pd_redis_subscribe(f->r, ch), PD_OK);
    assert_int_equal(pd_redis_unsubscribe(f->r, ch), PD_OK);
    assert_int_equal(pd_redis_subscribe(f->r, ch), PD_OK);
    assert_int_equal(pd_redis_subscription_count(f->r), 1);
    wait_numsub(f, "pd:room:flip", 1, 3000);
    rfx_run_for(&f->l, 50); /* let every confirmation arrive */
    wait_numsub(f, "pd:room:flip", 1, 100);
    publish_until_received(f, "pd:room:flip", "m1", 3000);

    /* Again once the subscription is settled. */
    assert_int_equal(pd_redis_unsubscribe(f->r, ch), PD_OK);
    assert_int_equal(pd_redis_subscribe(f->r, ch), PD_OK);
    rfx_run_for(&f->l, 100);
    wait_numsub(f, "pd:room:flip", 1, 3000);
    publish_until_received(f, "pd:room:flip", "m2", 3000);

    /* Exactly one delivery per publish: no duplicate subscription. */
    int before = f->msgs;
    assert_int_equal(rfx_int(f->c, "PUBLISH pd:room:flip once"), 1);
    rfx_run_for(&f->l, 100);
    assert_int_equal(f->msgs, before + 1);
    /* Subscribing twice is idempotent. */
    assert_int_equal(pd_redis_subscribe(f->r, ch), PD_OK);
    assert_int_equal(pd_redis_subscription_count(f->r), 1);
}

static void unsubscribe_stops_messages_and_forgets_channel(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 0, NULL);
    wait_ready(f, 1, 3000);
    pd_slice a = pd_slice_cstr("pd:room:a"), b = pd_slice_cstr("pd:room:b");
    pd_redis_subscribe(f->r, a);
    pd_redis_subscribe(f->r, b);
    assert_int_equal(pd_redis_subscription_count(f->r), 2);
    wait_numsub(f, "pd:room:a", 1, 3000);
    wait_numsub(f, "pd:room:b", 1, 3000);
    assert_int_equal(pd_redis_unsubscribe(f->r, a), PD_OK);
    wait_numsub(f, "pd:room:a", 0, 3000);
    RFX_WAIT(&f->l, pd_redis_subscription_count(f->r) == 1, 1000);
    assert_int_equal(pd_redis_subscription_count(f->r), 1);
    int before = f->msgs;
    assert_int_equal(rfx_int(f->c, "PUBLISH pd:room:a ignored"), 0);
    rfx_run_for(&f->l, 100);
    assert_int_equal(f->msgs, before);
    /* The other channel is unaffected. */
    publish_until_received(f, "pd:room:b", "still here", 3000);
    /* Unsubscribing an unknown channel is a no-op. */
    assert_int_equal(pd_redis_unsubscribe(f->r, pd_slice_cstr("pd:room:zzz")), PD_OK);
    assert_int_equal(pd_redis_subscription_count(f->r), 1);
}

static void subscribe_while_disconnected_takes_effect_on_connect(void **state)
{
    rd_fx *f = *state;
    rfx_kill(&f->srv);
    client_create(f, 1, 0, NULL);
    assert_int_equal(pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:early")), PD_OK);
    assert_int_equal(pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:gone")), PD_OK);
    assert_int_equal(pd_redis_unsubscribe(f->r, pd_slice_cstr("pd:room:gone")), PD_OK);
    rfx_run_for(&f->l, 150);
    assert_int_equal(rfx_start(&f->srv), 0);
    resync(f);
    wait_ready(f, 1, 6000);
    wait_numsub(f, "pd:room:early", 1, 3000);
    publish_until_received(f, "pd:room:early", "hi", 3000);
    assert_int_equal(numsub(f, "pd:room:gone"), 0);
    assert_int_equal(pd_redis_subscription_count(f->r), 1);
}

static void killed_pubsub_link_alone_recovers_and_resubscribes(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 0, NULL);
    wait_ready(f, 1, 3000);
    pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:k"));
    publish_until_received(f, "pd:room:k", "one", 3000);
    assert_true(rfx_int(f->c, "CLIENT KILL TYPE pubsub") >= 1);
    RFX_WAIT(&f->l, f->downs >= 1, 3000);
    assert_int_equal(f->downs, 1);
    wait_ready(f, 2, 6000);
    publish_until_received(f, "pd:room:k", "two", 3000);
}

static void watchdog_declares_stopped_server_dead_and_recovers(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 200, NULL);
    wait_ready(f, 1, 3000);
    pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:w"));
    publish_until_received(f, "pd:room:w", "alive", 3000);

    rfx_signal(&f->srv, SIGSTOP);
    uint64_t t0 = pd_mono_ms();
    reply_box b = {0};
    assert_int_equal(pd_redis_cmd(f->r, on_reply_box, &b, "GET k"), PD_OK);
    RFX_WAIT(&f->l, f->downs >= 1 && b.calls, 4000);
    uint64_t took = pd_mono_ms() - t0;
    assert_true(f->downs >= 1);
    assert_int_equal(b.calls, 1);
    assert_true(b.null_reply);
    /* 3 unanswered periods of 200 ms, checked once per period. */
    if (took > 3000)
        fail_msg("watchdog took %llu ms", (unsigned long long)took);

    rfx_signal(&f->srv, SIGCONT);
    /* Recovered: a command round-trips and messages flow again. */
    uint64_t deadline = pd_mono_ms() + 8000;
    int ok = 0;
    while (!ok && pd_mono_ms() < deadline) {
        reply_box p = {0};
        if (pd_redis_ready(f->r) && pd_redis_cmd(f->r, on_reply_box, &p, "PING") == PD_OK) {
            RFX_WAIT(&f->l, p.calls, 1000);
            ok = p.calls && !p.null_reply && p.type == REDIS_REPLY_STATUS;
        } else {
            rfx_run_for(&f->l, 20);
        }
    }
    assert_true(ok);
    assert_true(pd_redis_ready(f->r));
    publish_until_received(f, "pd:room:w", "back", 5000);
}

static void password_is_sent_on_every_link(void **state)
{
    rd_fx *f = *state;
    rfx_ok(f->c, "CONFIG SET requirepass s3cret");
    client_create(f, 1, 0, "s3cret");
    wait_ready(f, 1, 3000);
    reply_box b;
    roundtrip(f, &b, "SET authed yes");
    assert_int_equal(b.type, REDIS_REPLY_STATUS);
    assert_string_equal(b.str, "OK");
    pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:auth"));
    publish_until_received(f, "pd:room:auth", "secret ok", 3000);
}

static void wrong_password_is_never_ready_and_commands_get_errors(void **state)
{
    rd_fx *f = *state;
    rfx_ok(f->c, "CONFIG SET requirepass s3cret");
    client_create(f, 0, 0, "wrong");
    /* Connected, but the PING that proves the link is refused: not ready,
     * so /readyz tells operators about the bad password. */
    uint64_t until = pd_mono_ms() + 1000;
    while (pd_mono_ms() < until)
        uv_run(&f->l.loop, UV_RUN_NOWAIT);
    assert_false(pd_redis_ready(f->r));
    reply_box b;
    roundtrip(f, &b, "GET x");
    assert_false(b.null_reply);
    assert_int_equal(b.type, REDIS_REPLY_ERROR);
    RFX_WAIT(&f->l, pd_redis_pending(f->r) == 0, 1000);
    assert_int_equal(pd_redis_pending(f->r), 0);
}

/* A payload over the subscriber's bound: the link is dropped (the message
 * never delivered), reconnects, resubscribes, and carries messages again. */
static void oversize_message_drops_the_sub_link_which_resubscribes(void **state)
{
    rd_fx *f = *state;
    f->sub_max = 100;
    client_create(f, 1, 0, NULL);
    wait_ready(f, 1, 3000);
    pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:big"));
    publish_until_received(f, "pd:room:big", "small", 3000);
    unsigned long connects = pd_redis_connects(f->r);
    int msgs = f->msgs;
    char big[102];
    memset(big, 'b', 101);
    big[101] = '\0';
    assert_int_equal(rfx_int(f->c, "PUBLISH pd:room:big %s", big), 1);
    RFX_WAIT(&f->l, f->downs >= 1, 3000);
    assert_int_equal(f->downs, 1);
    assert_int_equal(f->msgs, msgs);
    wait_ready(f, 2, 6000);
    assert_true(pd_redis_connects(f->r) > connects);
    publish_until_received(f, "pd:room:big", "small again", 3000);
    assert_int_equal(f->downs, 1);
}

/* Thousands of messages of every length up to past the subscriber's first
 * buffer, published faster than one read takes them: each arrives whole,
 * once, in order. */
static void burst_of_messages_arrives_whole_and_in_order(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 0, NULL);
    wait_ready(f, 1, 3000);
    pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:burst"));
    wait_numsub(f, "pd:room:burst", 1, 3000);
    /* In batches (the loop does not read while this publishes, and Redis
     * drops a subscriber more than 8 MB behind for long). */
    const int total = 1000, batch = 100;
    char *buf = malloc(burst_len(0) + 100000);
    assert_non_null(buf);
    for (int first = 0; first < total; first += batch) {
        for (int n = first; n < first + batch; n++) {
            size_t len = burst_len(n);
            snprintf(buf, 8, "%06d", n);
            memset(buf + 6, 'x', len - 7);
            buf[len - 1] = 'z';
            redisAppendCommand(f->c, "PUBLISH pd:room:burst %b", buf, len);
        }
        for (int n = first; n < first + batch; n++) {
            redisReply *rep = NULL;
            assert_int_equal(redisGetReply(f->c, (void **)&rep), REDIS_OK);
            freeReplyObject(rep);
        }
        RFX_WAIT(&f->l, f->burst_next >= first + batch, 10000);
    }
    free(buf);
    RFX_WAIT(&f->l, f->burst_next >= total, 20000);
    assert_int_equal(f->burst_next, total);
    assert_int_equal(f->burst_bad, 0);
    assert_int_equal(f->downs, 0);
}

/* pd_redis_publish: the parts arrive joined, byte for byte, short (on the
 * stack) and long (allocated), and the reply counts the subscribers. */
static void publish_joins_parts_and_counts_receivers(void **state)
{
    rd_fx *f = *state;
    client_create(f, 1, 0, NULL);
    wait_ready(f, 1, 3000);
    pd_redis_subscribe(f->r, pd_slice_cstr("pd:room:pub"));
    wait_numsub(f, "pd:room:pub", 1, 3000);
    pd_slice parts[3] = {pd_slice_cstr("PD1 S w "), pd_slice_make(NULL, 0), pd_slice_cstr("s\n42[]")};
    reply_box b = {0};
    assert_int_equal(pd_redis_publish(f->r, pd_slice_cstr("pd:room:pub"), parts, 3, on_reply_box, &b), PD_OK);
    RFX_WAIT(&f->l, b.calls && f->msgs, 3000);
    assert_int_equal(b.type, REDIS_REPLY_INTEGER);
    assert_int_equal(b.integer, 1);
    assert_string_equal(f->chan, "pd:room:pub");
    assert_int_equal(f->msg_len, strlen("PD1 S w s\n42[]"));
    assert_memory_equal(f->msg, "PD1 S w s\n42[]", f->msg_len);

    /* Without a callback (no allocation of ours): still counted pending
     * until answered, and delivered. */
    int msgs = f->msgs;
    size_t before = pd_redis_pending(f->r); /* the watchdog's PING may be out */
    pd_slice one = pd_slice_cstr("fire and forget");
    assert_int_equal(pd_redis_publish(f->r, pd_slice_cstr("pd:room:pub"), &one, 1, NULL, NULL), PD_OK);
    assert_int_equal(pd_redis_pending(f->r), before + 1);
    RFX_WAIT(&f->l, f->msgs > msgs && pd_redis_pending(f->r) == 0, 3000);
    assert_int_equal(pd_redis_pending(f->r), 0);
    assert_int_equal(f->msg_len, strlen("fire and forget"));
    assert_memory_equal(f->msg, "fire and forget", f->msg_len);

    /* Past the stack buffer: checked on the server's copy. */
    size_t big = 50000;
    char *payload = malloc(big);
    assert_non_null(payload);
    for (size_t i = 0; i < big; i++)
        payload[i] = (char)(i * 31);
    redisReply *sub = rfx_cmd(f->c, "SUBSCRIBE pd:room:pubbig");
    freeReplyObject(sub);
    pd_slice two[2] = {pd_slice_make(payload, 10), pd_slice_make(payload + 10, big - 10)};
    memset(&b, 0, sizeof b);
    assert_int_equal(pd_redis_publish(f->r, pd_slice_cstr("pd:room:pubbig"), two, 2, on_reply_box, &b), PD_OK);
    RFX_WAIT(&f->l, b.calls, 3000);
    assert_int_equal(b.type, REDIS_REPLY_INTEGER);
    assert_int_equal(b.integer, 1);
    redisReply *m = NULL;
    assert_int_equal(redisGetReply(f->c, (void **)&m), REDIS_OK);
    assert_int_equal(m->type, REDIS_REPLY_ARRAY);
    assert_int_equal(m->element[2]->len, big);
    assert_memory_equal(m->element[2]->str, payload, big);
    freeReplyObject(m);
    redisFree(f->c);
    f->c = NULL;
    free(payload);
}

#define RD_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    /* A PUBLISH to a dead server must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        RD_TEST(connects_and_reports_ready_once),
        RD_TEST(subscriber_client_is_ready_only_with_both_links),
        RD_TEST(command_replies_arrive_with_their_types),
        RD_TEST(pending_counts_commands_until_answered),
        RD_TEST(commands_fail_fast_when_not_connected),
        RD_TEST(free_fails_pending_commands_synchronously),
        RD_TEST(server_death_reports_down_and_fails_pending),
        RD_TEST(reconnects_after_restart_and_resubscribes),
        RD_TEST(subscribe_unsubscribe_subscribe_in_a_row_still_receives),
        RD_TEST(unsubscribe_stops_messages_and_forgets_channel),
        RD_TEST(subscribe_while_disconnected_takes_effect_on_connect),
        RD_TEST(killed_pubsub_link_alone_recovers_and_resubscribes),
        RD_TEST(watchdog_declares_stopped_server_dead_and_recovers),
        RD_TEST(password_is_sent_on_every_link),
        RD_TEST(wrong_password_is_never_ready_and_commands_get_errors),
        RD_TEST(oversize_message_drops_the_sub_link_which_resubscribes),
        RD_TEST(burst_of_messages_arrives_whole_and_in_order),
        RD_TEST(publish_joins_parts_and_counts_receivers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
