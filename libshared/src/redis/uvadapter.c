#include "uvadapter.h"

#include <stdlib.h>
#include <sys/ioctl.h>

/* Reads per wake-up while the kernel still holds bytes: enough to drain a
 * burst of pub/sub messages, bounded so one link cannot starve the loop. */
#define PD_REDIS_UV_MAX_READS 32

/* Commands are not written as they are issued: hiredis asks for a write
 * with every command, and the adapter writes the whole output buffer once
 * per loop turn, just before the loop polls (a prepare handle). Only what
 * the socket would not take waits for writability. That is one write
 * syscall per turn however many commands the turn issued, and no epoll
 * change per command. */
typedef struct pd_redis_uv {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    uv_poll_t poll;        /* watches the context's socket */
    uv_prepare_t flush;    /* writes the output buffer before the loop polls */
    int events;            /* UV_READABLE | UV_WRITABLE wanted */
    int polled;            /* the events the poll was last started with */
    int flushing;          /* inside the prepare callback's write */
    int open_handles;      /* handles not yet closed */
    int fd;                /* the socket */
    pd_redis_uv_read_fn read; /* reads in place of hiredis once connected, or NULL */
    void *read_data;
} pd_redis_uv;

static void on_poll(uv_poll_t *h, int status, int events)
{
    pd_redis_uv *p = h->data;
    if (!p->ac)
        return;
    if (status < 0) {
        /* Let hiredis meet the error itself: the connect check (on write)
         * or the read fails, and it disconnects with callbacks. */
        if (!(p->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(p->ac);
        else if (p->read)
            p->read(p->read_data, p->fd);
        else
            redisAsyncHandleRead(p->ac);
        return;
    }
    if ((events & UV_WRITABLE) && p->ac) {
        p->flushing = 1;
        redisAsyncHandleWrite(p->ac);
        p->flushing = 0;
    }
    if (!(events & UV_READABLE))
        return;
    if (p->read && p->ac && (p->ac->c.flags & REDIS_CONNECTED)) {
        /* The reader knows when it drained the socket (a short read): no
         * FIONREAD needed. */
        for (int i = 0; i < PD_REDIS_UV_MAX_READS && p->ac; i++)
            if (p->read(p->read_data, p->fd) != 1)
                break;
        return;
    }
    for (int i = 0; i < PD_REDIS_UV_MAX_READS && p->ac; i++) {
        redisAsyncHandleRead(p->ac);
        int avail = 0;
        if (!p->ac || ioctl(p->fd, FIONREAD, &avail) != 0 || avail <= 0)
            break;
    }
}

/* hiredis asks for reading again after every read and every write. libuv's
 * uv_poll_start stops the watcher before starting it, which costs an
 * EPOLL_CTL_DEL and an EPOLL_CTL_ADD each time (strace: four per
 * cross-worker signal); so the poll is only touched when what it watches
 * changes. An error stops the poll inside libuv (uv_is_active turns 0),
 * and the next request starts it again. */
static void update(pd_redis_uv *p)
{
    int active = uv_is_active((uv_handle_t *)&p->poll);
    if (p->events) {
        if (active && p->polled == p->events)
            return;
        uv_poll_start(&p->poll, p->events, on_poll);
    } else if (active) {
        uv_poll_stop(&p->poll);
    }
    p->polled = p->events;
}

static void add_read(void *data) { pd_redis_uv *p = data; p->events |= UV_READABLE; update(p); }
static void del_read(void *data) { pd_redis_uv *p = data; p->events &= ~UV_READABLE; update(p); }
static void on_flush(uv_prepare_t *h)
{
    pd_redis_uv *p = h->data;
    uv_prepare_stop(h);
    if (!p->ac)
        return;
    p->flushing = 1;
    redisAsyncHandleWrite(p->ac); /* asks for add_write again if the socket was full */
    p->flushing = 0;
}

static void add_write(void *data)
{
    pd_redis_uv *p = data;
    /* Until connected, writability is how the connect completes; and a
     * write the socket could not finish waits for room. */
    if (!(p->ac->c.flags & REDIS_CONNECTED) || p->flushing) {
        p->events |= UV_WRITABLE;
        update(p);
        return;
    }
    if (!(p->events & UV_WRITABLE) && !uv_is_active((uv_handle_t *)&p->flush))
        uv_prepare_start(&p->flush, on_flush);
}

static void del_write(void *data)
{
    pd_redis_uv *p = data;
    uv_prepare_stop(&p->flush);
    if (p->events & UV_WRITABLE) {
        p->events &= ~UV_WRITABLE;
        update(p);
    }
}

static void on_closed(uv_handle_t *h)
{
    pd_redis_uv *p = h->data;
    if (--p->open_handles == 0)
        free(p);
}

static void cleanup(void *data)
{
    pd_redis_uv *p = data;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_closed);
    uv_close((uv_handle_t *)&p->flush, on_closed);
}

void pd_redis_uv_set_reader(redisAsyncContext *ac, pd_redis_uv_read_fn read, void *data)
{
    pd_redis_uv *p = ac->ev.data;
    if (!p)
        return;
    p->read = read;
    p->read_data = data;
}

int pd_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data)
        return REDIS_ERR;
    pd_redis_uv *p = calloc(1, sizeof(*p));
    if (!p)
        return REDIS_ERR;
    p->ac = ac;
    p->fd = ac->c.fd;
    if (uv_poll_init(loop, &p->poll, p->fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->poll.data = p;
    uv_prepare_init(loop, &p->flush);
    p->flush.data = p;
    p->open_handles = 2;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}
