/* redis_fixture.h — test helpers shared by the tests that need a real Redis:
 * start a private redis-server on a free port (killed with the test process
 * even if it crashes), a synchronous hiredis connection to inspect keys, and
 * a libuv loop that can be driven until a condition holds.
 *
 * Header-only (static functions) because the Makefile links one object per
 * test binary. Include after <cmocka.h>. */
#ifndef PD_TEST_REDIS_FIXTURE_H
#define PD_TEST_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_redis.h"

/* ---- redis-server process ---------------------------------------------- */

typedef struct rfx_server {
    pid_t pid; /* child process, 0 when not running */
    int port;  /* TCP port on 127.0.0.1 */
} rfx_server;

static inline void rfx_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A port the kernel just considered free. */
static inline int rfx_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* 1 once the server answers PING. */
static inline int rfx_ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

/* Start redis-server on s->port (a free one if 0) and wait until it answers.
 * 0 on success. */
/* Start argv (a redis-server in some role) that will listen on `port`,
 * killed with the test process even if it crashes, its output discarded;
 * returns its pid once it answers PING on the port, or -1. */
static inline pid_t rfx_spawn(char *const argv[], int port)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Die with the test process, whatever way it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < 250; i++) {
        if (rfx_ping(port))
            return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        rfx_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static inline int rfx_start(rfx_server *s)
{
    if (s->port == 0)
        s->port = rfx_free_port();
    if (s->port <= 0)
        return -1;
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    char *argv[] = {"redis-server", "--port", port, "--save", "", "--appendonly", "no", "--bind",
                    "127.0.0.1", "--daemonize", "no", "--dir", "/tmp", NULL};
    pid_t pid = rfx_spawn(argv, s->port);
    s->pid = pid > 0 ? pid : 0;
    return pid > 0 ? 0 : -1;
}

/* A reply as hiredis parses it from RESP bytes (free with freeReplyObject). */
static inline redisReply *rfx_resp(const char *bytes)
{
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, bytes, strlen(bytes)), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

/* SIGKILL and reap; keeps s->port so the server can be restarted on it. */
static inline void rfx_kill(rfx_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* One redis-server for a whole cmocka group: pass rfx_group_setup and
 * rfx_group_teardown to cmocka_run_group_tests; the tests reach it as
 * rfx_group_server (its port, or to stop and restart it). */
__attribute__((unused)) static rfx_server rfx_group_server;

static inline int rfx_group_setup(void **state)
{
    (void)state;
    return rfx_start(&rfx_group_server) == 0 ? 0 : -1;
}

static inline int rfx_group_teardown(void **state)
{
    (void)state;
    rfx_kill(&rfx_group_server);
    return 0;
}

static inline void rfx_signal(rfx_server *s, int sig)
{
    if (s->pid > 0)
        kill(s->pid, sig);
}

/* ---- synchronous inspection connection ------------------------------- */

static inline redisContext *rfx_sync(int port)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

static inline redisReply *rfx_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

/* An integer reply. */
static inline long long rfx_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* A string reply copied into buf (""), or 0 for nil. 1 when a string. */
static inline int rfx_str(redisContext *c, char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    buf[0] = '\0';
    int got = 0;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        snprintf(buf, cap, "%.*s", (int)r->len, r->str);
        got = 1;
    } else {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    }
    freeReplyObject(r);
    return got;
}

static inline void rfx_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis error: %s", r->str);
    freeReplyObject(r);
}

/* ---- a libuv loop that tests drive ------------------------------------ */

typedef struct rfx_loop {
    uv_loop_t loop;  /* the loop under test */
    uv_timer_t tick; /* keeps UV_RUN_ONCE from blocking longer than 5 ms */
} rfx_loop;

static inline void rfx_tick(uv_timer_t *t)
{
    (void)t;
}

static inline void rfx_loop_init(rfx_loop *l)
{
    assert_int_equal(uv_loop_init(&l->loop), 0);
    uv_timer_init(&l->loop, &l->tick);
    uv_timer_start(&l->tick, rfx_tick, 5, 5);
}

/* Close the tick, run until every handle is closed, close the loop. */
static inline void rfx_loop_close(rfx_loop *l)
{
    uv_close((uv_handle_t *)&l->tick, NULL);
    for (int i = 0; i < 1000 && uv_loop_alive(&l->loop); i++)
        uv_run(&l->loop, UV_RUN_ONCE);
    assert_int_equal(uv_loop_close(&l->loop), 0);
}

/* Run the loop until cond holds or ms pass; evaluates to cond. */
#define RFX_WAIT(l, cond, ms)                                                                      \
    do {                                                                                           \
        uint64_t rfx_deadline_ = pd_mono_ms() + (ms);                                              \
        while (!(cond) && pd_mono_ms() < rfx_deadline_)                                            \
            uv_run(&(l)->loop, UV_RUN_ONCE);                                                       \
    } while (0)

/* Run the loop for ms regardless. */
static inline void rfx_run_for(rfx_loop *l, unsigned ms)
{
    uint64_t deadline = pd_mono_ms() + ms;
    while (pd_mono_ms() < deadline)
        uv_run(&l->loop, UV_RUN_ONCE);
}

/* The group's server flushed, an async pd_redis on `l` that is ready, and
 * a synchronous connection to inspect keys: 0, or -1 (what was made is
 * left in *r and *c for the caller's teardown). */
static inline int rfx_store_open(rfx_loop *l, pd_redis **r, redisContext **c)
{
    pd_redis_options opt = {.host = "127.0.0.1", .port = rfx_group_server.port};
    *r = pd_redis_create(&l->loop, &opt, NULL, NULL, NULL);
    if (!*r)
        return -1;
    RFX_WAIT(l, pd_redis_ready(*r), 3000);
    *c = rfx_sync(rfx_group_server.port);
    if (!pd_redis_ready(*r) || !*c)
        return -1;
    redisReply *rep = redisCommand(*c, "FLUSHALL");
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}

#endif
