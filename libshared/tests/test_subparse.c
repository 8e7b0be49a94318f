/* test_subparse.c — the subscriber link's RESP parser (pd_subparse.h):
 * every shape a subscribed connection carries, the same stream split at
 * every byte boundary, bounds refused at the header, malformed frames, and
 * the buffer's zero-copy read path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_subparse.h"

/* One line per event, so that whole sequences compare as strings. */
static void describe(const pd_subparse_event *ev, char *out, size_t cap)
{
    static const char *names[] = {"?",       "message",     "pmessage",   "smessage",     "subscribe",
                                  "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe",
                                  "pong",    "status",      "error"};
    size_t n = strlen(out);
    int confirmation = ev->kind >= PD_SUB_SUBSCRIBE && ev->kind <= PD_SUB_SUNSUBSCRIBE;
    snprintf(out + n, cap - n, "%s|%s%.*s|%.*s|%.*s|%lld\n", names[ev->kind],
             confirmation && !ev->channel.base ? "(null)" : "",
             (int)ev->channel.len, ev->channel.base ? ev->channel.base : "", (int)ev->pattern.len,
             ev->pattern.base ? ev->pattern.base : "", (int)ev->payload.len,
             ev->payload.base ? ev->payload.base : "", ev->count);
}

/* Drain every complete event into out; the last return code. */
static int drain(pd_subparse *p, char *out, size_t cap)
{
    pd_subparse_event ev;
    int rc;
    while ((rc = pd_subparse_next(p, &ev)) == PD_SUBPARSE_EVENT)
        describe(&ev, out, cap);
    return rc;
}

/* Parse `in` in one go: the events, and the final code. */
static int parse_all(const char *in, size_t len, size_t max_message, char *out, size_t cap)
{
    pd_subparse *p = pd_subparse_create(max_message);
    assert_non_null(p);
    out[0] = '\0';
    assert_int_equal(pd_subparse_feed(p, in, len), PD_OK);
    int rc = drain(p, out, cap);
    pd_subparse_free(p);
    return rc;
}

/* A stream with every shape, confirmations interleaved with messages. */
static const char STREAM[] =
    "+OK\r\n"
    "*3\r\n$9\r\nsubscribe\r\n$10\r\npd:room:ab\r\n:1\r\n"
    "*3\r\n$7\r\nmessage\r\n$10\r\npd:room:ab\r\n$18\r\nPD1 S w1 s\n42[\"x\"]\r\n"
    "*3\r\n$9\r\nsubscribe\r\n$8\r\npd:probe\r\n:2\r\n"
    "*3\r\n$7\r\nmessage\r\n$8\r\npd:probe\r\n$1\r\np\r\n"
    "*4\r\n$8\r\npmessage\r\n$4\r\npd:*\r\n$4\r\npd:x\r\n$0\r\n\r\n"
    "*3\r\n$8\r\nsmessage\r\n$4\r\n{s}a\r\n$5\r\nhello\r\n"
    "*3\r\n$11\r\nunsubscribe\r\n$10\r\npd:room:ab\r\n:1\r\n"
    "*3\r\n$10\r\nssubscribe\r\n$4\r\n{s}a\r\n:1\r\n"
    "*3\r\n$12\r\nsunsubscribe\r\n$4\r\n{s}a\r\n:0\r\n"
    "*3\r\n$10\r\npsubscribe\r\n$4\r\npd:*\r\n:3\r\n"
    "*3\r\n$12\r\npunsubscribe\r\n$4\r\npd:*\r\n:2\r\n"
    "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    "-NOAUTH Authentication required.\r\n"
    "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$4\r\na\r\nb\r\n";

static const char STREAM_EVENTS[] =
    "status|||OK|0\n"
    "subscribe|pd:room:ab|||1\n"
    "message|pd:room:ab||PD1 S w1 s\n42[\"x\"]|0\n"
    "subscribe|pd:probe|||2\n"
    "message|pd:probe||p|0\n"
    "pmessage|pd:x|pd:*||0\n"
    "smessage|{s}a||hello|0\n"
    "unsubscribe|pd:room:ab|||1\n"
    "ssubscribe|{s}a|||1\n"
    "sunsubscribe|{s}a|||0\n"
    "psubscribe|pd:*|||3\n"
    "punsubscribe|pd:*|||2\n"
    "pong||||0\n"
    "error|||NOAUTH Authentication required.|0\n"
    "unsubscribe|(null)|||0\n"
    "message|c||a\r\nb|0\n";

static void every_shape_in_one_read(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(parse_all(STREAM, sizeof(STREAM) - 1, 1024, out, sizeof(out)), PD_SUBPARSE_MORE);
    assert_string_equal(out, STREAM_EVENTS);
}

/* The stream in two reads, split at every byte: the same events, and
 * nothing before its frame is complete. */
static void split_at_every_byte_boundary(void **state)
{
    (void)state;
    size_t len = sizeof(STREAM) - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        pd_subparse *p = pd_subparse_create(1024);
        assert_non_null(p);
        char out[4096] = "";
        assert_int_equal(pd_subparse_feed(p, STREAM, cut), PD_OK);
        assert_int_equal(drain(p, out, sizeof(out)), PD_SUBPARSE_MORE);
        /* What came out so far is a prefix of the whole. */
        assert_memory_equal(out, STREAM_EVENTS, strlen(out));
        assert_int_equal(pd_subparse_feed(p, STREAM + cut, len - cut), PD_OK);
        assert_int_equal(drain(p, out, sizeof(out)), PD_SUBPARSE_MORE);
        assert_string_equal(out, STREAM_EVENTS);
        assert_int_equal(pd_subparse_buffered(p), 0);
        pd_subparse_free(p);
    }
}

static void one_byte_at_a_time(void **state)
{
    (void)state;
    pd_subparse *p = pd_subparse_create(1024);
    assert_non_null(p);
    char out[4096] = "";
    for (size_t i = 0; i < sizeof(STREAM) - 1; i++) {
        assert_int_equal(pd_subparse_feed(p, STREAM + i, 1), PD_OK);
        assert_int_equal(drain(p, out, sizeof(out)), PD_SUBPARSE_MORE);
    }
    assert_string_equal(out, STREAM_EVENTS);
    pd_subparse_free(p);
}

/* The read path the link uses: bytes written into the parser's own space
 * in reads of every size from 1 to 97 bytes. */
static void reads_into_the_parsers_space(void **state)
{
    (void)state;
    size_t len = sizeof(STREAM) - 1;
    for (size_t step = 1; step < 98; step++) {
        pd_subparse *p = pd_subparse_create(1024);
        assert_non_null(p);
        char out[4096] = "";
        for (size_t at = 0; at < len;) {
            char *buf;
            size_t room;
            assert_int_equal(pd_subparse_space(p, &buf, &room), PD_OK);
            assert_true(room >= 1);
            size_t n = PD_MIN(PD_MIN(step, room), len - at);
            memcpy(buf, STREAM + at, n);
            pd_subparse_wrote(p, n);
            at += n;
            assert_int_equal(drain(p, out, sizeof(out)), PD_SUBPARSE_MORE);
        }
        assert_string_equal(out, STREAM_EVENTS);
        pd_subparse_free(p);
    }
}

/* Many messages: the buffer is reused (moved to the front) and every
 * payload comes out intact. */
static void many_messages_through_a_reused_buffer(void **state)
{
    (void)state;
    pd_subparse *p = pd_subparse_create(4096);
    assert_non_null(p);
    char frame[256], want[64];
    unsigned seen = 0;
    for (unsigned i = 0; i < 20000; i++) {
        char payload[64];
        int pl = snprintf(payload, sizeof(payload), "payload-%u", i);
        int n = snprintf(frame, sizeof(frame), "*3\r\n$7\r\nmessage\r\n$9\r\npd:room:1\r\n$%d\r\n%s\r\n", pl, payload);
        assert_int_equal(pd_subparse_feed(p, frame, (size_t)n), PD_OK);
        if (i % 7 != 6)
            continue; /* several frames per "read" */
        pd_subparse_event ev;
        while (pd_subparse_next(p, &ev) == PD_SUBPARSE_EVENT) {
            snprintf(want, sizeof(want), "payload-%u", seen++);
            assert_int_equal(ev.kind, PD_SUB_MESSAGE);
            assert_int_equal(ev.payload.len, strlen(want));
            assert_memory_equal(ev.payload.base, want, ev.payload.len);
        }
    }
    pd_subparse_event ev;
    while (pd_subparse_next(p, &ev) == PD_SUBPARSE_EVENT)
        seen++;
    assert_int_equal(seen, 20000);
    pd_subparse_free(p);
}

/* A payload of exactly the bound passes, across a grown buffer, in pieces;
 * one byte more is refused from the header alone. */
static void payload_at_and_over_the_bound(void **state)
{
    (void)state;
    size_t max = 200000; /* more than the first buffer */
    pd_subparse *p = pd_subparse_create(max);
    assert_non_null(p);
    char head[64];
    int hn = snprintf(head, sizeof(head), "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$%zu\r\n", max);
    char *body = malloc(max + 2);
    assert_non_null(body);
    for (size_t i = 0; i < max; i++)
        body[i] = (char)('a' + i % 26);
    memcpy(body + max, "\r\n", 2);
    pd_subparse_event ev;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(pd_subparse_feed(p, head, (size_t)hn), PD_OK);
        for (size_t at = 0; at < max + 2; at += 7000) {
            assert_int_equal(pd_subparse_next(p, &ev), PD_SUBPARSE_MORE);
            assert_int_equal(pd_subparse_feed(p, body + at, PD_MIN((size_t)7000, max + 2 - at)), PD_OK);
        }
        assert_int_equal(pd_subparse_next(p, &ev), PD_SUBPARSE_EVENT);
        assert_int_equal(ev.payload.len, max);
        assert_memory_equal(ev.payload.base, body, max);
        assert_int_equal(pd_subparse_next(p, &ev), PD_SUBPARSE_MORE);
    }
    hn = snprintf(head, sizeof(head), "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$%zu\r\n", max + 1);
    assert_int_equal(pd_subparse_feed(p, head, (size_t)hn), PD_OK);
    assert_int_equal(pd_subparse_next(p, &ev), PD_SUBPARSE_BAD);
    assert_non_null(pd_subparse_why(p));
    free(body);
    pd_subparse_free(p);
}

/* Header-only inputs that declare too much: refused before any body. */
static void oversize_refused_at_the_header(void **state)
{
    (void)state;
    char out[1024], in[1024];
    const char *cases[] = {
        "*3\r\n$7\r\nmessage\r\n$1025\r\n",                       /* channel */
        "*4\r\n$8\r\npmessage\r\n$99999\r\n",                     /* pattern */
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1001\r\n",            /* payload over 1000 */
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$99999999999999999999", /* too many digits */
        "*3\r\n$9\r\nsubscribe\r\n$2000\r\n",                      /* confirmed channel */
        "*2\r\n$4\r\npong\r\n$1025\r\n",                            /* pong argument */
        "*5\r\n",                                                  /* array */
        "*99999999999\r\n",
        "*3\r\n$13\r\n",                                           /* kind longer than any */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse_all(cases[i], strlen(cases[i]), 1000, out, sizeof(out));
        if (rc != PD_SUBPARSE_BAD)
            fail_msg("case %zu not refused: %s", i, cases[i]);
    }
    /* A status line without an end: refused once it passes the bound. */
    memset(in, 'x', sizeof(in));
    in[0] = '-';
    assert_int_equal(parse_all(in, PD_SUBPARSE_MAX_LINE + 1, 1000, out, sizeof(out)), PD_SUBPARSE_MORE);
    assert_int_equal(parse_all(in, PD_SUBPARSE_MAX_LINE + 2, 1000, out, sizeof(out)), PD_SUBPARSE_BAD);
    /* A channel of exactly the bound is fine. */
    char *big = malloc(PD_SUBPARSE_MAX_NAME + 64);
    assert_non_null(big);
    int n = snprintf(big, 64, "*3\r\n$9\r\nsubscribe\r\n$%d\r\n", PD_SUBPARSE_MAX_NAME);
    memset(big + n, 'c', PD_SUBPARSE_MAX_NAME);
    memcpy(big + n + PD_SUBPARSE_MAX_NAME, "\r\n:1\r\n", 6);
    assert_int_equal(parse_all(big, (size_t)n + PD_SUBPARSE_MAX_NAME + 6, 1000, out, sizeof(out)), PD_SUBPARSE_MORE);
    assert_int_equal(strncmp(out, "subscribe|ccc", 13), 0);
    free(big);
}

static void malformed_frames_are_refused(void **state)
{
    (void)state;
    char out[1024];
    const char *cases[] = {
        "$3\r\nabc\r\n",                                        /* a bulk string at the top */
        ":1\r\n",                                               /* an integer at the top */
        "*3\r\n:1\r\n",                                         /* kind not a bulk string */
        "*3\r\n$-1\r\n",                                        /* null kind */
        "*3\r\n$4\r\nnope\r\n",                                 /* unknown kind */
        "*3\r\n$7\r\nMESSAGE\r\n",                              /* kinds are lower case */
        "*2\r\n$7\r\nmessage\r\n",                              /* message, 2 elements */
        "*4\r\n$7\r\nmessage\r\n",                              /* message, 4 elements */
        "*3\r\n$8\r\npmessage\r\n",                             /* pmessage, 3 elements */
        "*3\r\n$4\r\npong\r\n",                                 /* pong, 3 elements */
        "*2\r\n$9\r\nsubscribe\r\n",                            /* confirmation, 2 */
        "*1\r\n$7\r\nmessage\r\n",                              /* too short */
        "*0\r\n",
        "*-1\r\n",
        "*3\r\n$7\r\nmessage\r\n$-1\r\n",                       /* null channel in a message */
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$-1\r\n",            /* null payload */
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:5\r\n",             /* integer payload */
        "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n$1\r\n1\r\n",      /* count not an integer */
        "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:-1\r\n",          /* negative count */
        "*3\r\n$7\r\nmessage\r\n$1\r\ncXX",                     /* no CRLF after a bulk */
        "*3\r\n$7\r\nmessage\r\n$1\r\nc\rX",
        "*3\r\n$7\r\nmessage\r\n$-2\r\n",                       /* negative length */
        "*3\r\n$7\r\nmessage\r\n$-10\r\n",
        "*3\r\n$7\r\nmessage\r\n$1x\r\n",                       /* not a digit */
        "*3\r\n$7\r\nmessage\r\n$\r\n",                         /* empty length */
        "*3\r\n$7\r\nmessage\r\n$1\rX",                         /* CR without LF */
        "*3x\r\n",
        "*3\r",
        "+OK\rX",
        "+O\nK\r\n",
        "%1\r\n",                                               /* RESP3 map */
        "\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Complete the input with harmless bytes: a frame still waiting
         * for more is not what is tested here. */
        char in[256];
        size_t n = strlen(cases[i]);
        memcpy(in, cases[i], n);
        memset(in + n, '\n', 64);
        int rc = parse_all(in, n + 64, 1000, out, sizeof(out));
        if (rc != PD_SUBPARSE_BAD || out[0] != '\0')
            fail_msg("case %zu not refused: %s (rc %d, events %s)", i, cases[i], rc, out);
    }
}

/* A refused stream stays refused, events before it came out, and a reset
 * (a new connection) starts clean. */
static void refused_until_reset(void **state)
{
    (void)state;
    pd_subparse *p = pd_subparse_create(100);
    assert_non_null(p);
    char out[512] = "";
    const char *in = "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n!garbage";
    assert_int_equal(pd_subparse_feed(p, in, strlen(in)), PD_OK);
    assert_int_equal(drain(p, out, sizeof(out)), PD_SUBPARSE_BAD);
    assert_string_equal(out, "subscribe|c|||1\n");
    const char *good = "+OK\r\n";
    assert_int_equal(pd_subparse_feed(p, good, strlen(good)), PD_OK);
    pd_subparse_event ev;
    assert_int_equal(pd_subparse_next(p, &ev), PD_SUBPARSE_BAD);
    pd_subparse_reset(p);
    assert_null(pd_subparse_why(p));
    assert_int_equal(pd_subparse_buffered(p), 0);
    assert_int_equal(pd_subparse_feed(p, good, strlen(good)), PD_OK);
    assert_int_equal(pd_subparse_next(p, &ev), PD_SUBPARSE_EVENT);
    assert_int_equal(ev.kind, PD_SUB_STATUS);
    pd_subparse_free(p);
}

static void bounds_of_create(void **state)
{
    (void)state;
    assert_null(pd_subparse_create(0));
    assert_null(pd_subparse_create(PD_SUBPARSE_MAX_MESSAGE + 1));
    pd_subparse *p = pd_subparse_create(1);
    assert_non_null(p);
    char out[256];
    out[0] = '\0';
    const char *in = "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n";
    assert_int_equal(pd_subparse_feed(p, in, strlen(in)), PD_OK);
    assert_int_equal(drain(p, out, sizeof(out)), PD_SUBPARSE_MORE);
    assert_string_equal(out, "message|c||x|0\n");
    pd_subparse_free(p);
    pd_subparse_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_shape_in_one_read),
        cmocka_unit_test(split_at_every_byte_boundary),
        cmocka_unit_test(one_byte_at_a_time),
        cmocka_unit_test(reads_into_the_parsers_space),
        cmocka_unit_test(many_messages_through_a_reused_buffer),
        cmocka_unit_test(payload_at_and_over_the_bound),
        cmocka_unit_test(oversize_refused_at_the_header),
        cmocka_unit_test(malformed_frames_are_refused),
        cmocka_unit_test(refused_until_reset),
        cmocka_unit_test(bounds_of_create),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
