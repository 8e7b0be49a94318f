#include "privydrop/pd_bus.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int bus_token_ok(pd_slice s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.base[i] == ' ' || s.base[i] == '\n' || s.base[i] == '\r')
            return 0;
    return 1;
}

int pd_bus_encode_head(const pd_bus_envelope *env, char *buf, size_t cap)
{
    pd_slice target = env->target.len ? env->target : pd_slice_cstr("-");
    if (env->origin.len == 0 || env->origin.len > PD_BUS_MAX_ORIGIN || !bus_token_ok(env->origin) ||
        !bus_token_ok(target) || !bus_token_ok(env->room) || env->room.len > PD_ID_MAX)
        return PD_ERR;
    size_t n = 4 + 2 + env->origin.len + 1 + target.len + (env->room.len ? 1 + env->room.len : 0) + 1;
    if (n > cap || n > INT32_MAX)
        return PD_ERR;
    char *p = buf;
    memcpy(p, "PD1 ", 4);
    p += 4;
    *p++ = (char)env->kind;
    *p++ = ' ';
    memcpy(p, env->origin.base, env->origin.len);
    p += env->origin.len;
    *p++ = ' ';
    memcpy(p, target.base, target.len);
    p += target.len;
    if (env->room.len) {
        *p++ = ' ';
        memcpy(p, env->room.base, env->room.len);
        p += env->room.len;
    }
    *p = '\n';
    return (int)n;
}

char *pd_bus_encode(const pd_bus_envelope *env, size_t *len)
{
    pd_slice target = env->target.len ? env->target : pd_slice_cstr("-");
    size_t head = 4 + 2 + env->origin.len + 1 + target.len + (env->room.len ? 1 + env->room.len : 0) + 1;
    char *buf = malloc(head + env->packet.len + 1);
    if (!buf)
        return NULL;
    if (pd_bus_encode_head(env, buf, head) != (int)head) {
        free(buf);
        return NULL;
    }
    if (env->packet.len)
        memcpy(buf + head, env->packet.base, env->packet.len);
    buf[head + env->packet.len] = '\0';
    *len = head + env->packet.len;
    return buf;
}

int pd_bus_decode(pd_slice msg, pd_bus_envelope *out)
{
    const char *p = msg.base, *end = msg.base + msg.len;
    if (msg.len < 8 || memcmp(p, "PD1 ", 4) != 0)
        return PD_ERR;
    p += 4;
    char kind = *p++;
    if (kind != PD_BUS_TO_SOCKET && kind != PD_BUS_BROADCAST && kind != PD_BUS_LEAVE)
        return PD_ERR;
    if (p >= end || *p++ != ' ')
        return PD_ERR;
    const char *o = p;
    while (p < end && *p != ' ' && *p != '\n' && *p != '\r')
        p++;
    if (p >= end || *p != ' ' || p == o || (size_t)(p - o) > PD_BUS_MAX_ORIGIN)
        return PD_ERR;
    out->origin = pd_slice_make(o, (size_t)(p - o));
    p++;
    const char *t = p;
    while (p < end && *p != '\n' && *p != ' ' && *p != '\r')
        p++;
    if (p >= end || (*p != '\n' && *p != ' ') || p == t)
        return PD_ERR;
    out->target = pd_slice_make(t, (size_t)(p - t));
    if (pd_slice_eq(out->target, "-"))
        out->target = pd_slice_make(NULL, 0);
    out->room = pd_slice_make(NULL, 0);
    if (*p == ' ') {
        const char *r = ++p;
        while (p < end && *p != '\n' && *p != ' ' && *p != '\r')
            p++;
        if (p >= end || *p != '\n' || p == r || (size_t)(p - r) > PD_ID_MAX)
            return PD_ERR;
        out->room = pd_slice_make(r, (size_t)(p - r));
    }
    p++;
    out->kind = (pd_bus_kind)kind;
    out->packet = pd_slice_make(p, (size_t)(end - p));
    return PD_OK;
}

int pd_bus_channel(char *buf, size_t cap, pd_slice room)
{
    size_t pre = sizeof(PD_BUS_CHANNEL_PREFIX) - 1;
    if (pre + room.len + 1 > cap)
        return PD_ERR;
    memcpy(buf, PD_BUS_CHANNEL_PREFIX, pre);
    if (room.len)
        memcpy(buf + pre, room.base, room.len);
    buf[pre + room.len] = '\0';
    return (int)(pre + room.len);
}
