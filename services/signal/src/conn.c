/* conn.c — the transport-independent parts of a connection. */
#include "conn.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Tens of thousands of connections sit idle on a worker: the address is
 * kept as 16 bytes and written out again on demand. */
void pd_conn_set_ip(pd_conn *c, const char *text)
{
    memset(c->ip, 0, sizeof(c->ip));
    if (inet_pton(AF_INET, text, c->ip + 12) == 1)
        memcpy(c->ip, V4_MAPPED, sizeof(V4_MAPPED));
    else if (inet_pton(AF_INET6, text, c->ip) != 1)
        memset(c->ip, 0, sizeof(c->ip));
}

const char *pd_conn_client_ip(const pd_conn *c, char buf[INET6_ADDRSTRLEN])
{
    if (memcmp(c->ip, V4_MAPPED, sizeof(V4_MAPPED)) == 0)
        inet_ntop(AF_INET, c->ip + 12, buf, INET6_ADDRSTRLEN);
    else
        inet_ntop(AF_INET6, c->ip, buf, INET6_ADDRSTRLEN);
    return buf;
}
