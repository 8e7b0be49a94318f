/* pd_netaddr.h — trusted-proxy CIDR lists and the client address behind them.
 *
 * X-Forwarded-For is believed only when the TCP peer is a trusted proxy; the
 * client is then the rightmost address in the header that is not itself
 * trusted (everything left of it could have been written by the client). */
#ifndef PD_NETADDR_H
#define PD_NETADDR_H

#include <netinet/in.h>

#include "privydrop/pd_common.h"

typedef struct pd_cidr_list pd_cidr_list;

/* Parse a comma-separated list of addresses or CIDR blocks, IPv4 and IPv6
 * ("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8"). IPv4-mapped IPv6 peers match IPv4
 * entries. Empty or NULL text gives an empty list. NULL + *err on bad input. */
pd_cidr_list *pd_cidr_list_create(const char *text, const char **err);
void pd_cidr_list_free(pd_cidr_list *l);

/* 1 if the textual address `ip` falls in the list. */
int pd_cidr_list_contains(const pd_cidr_list *l, const char *ip);

/* The key per-address limits count `ip` under (NUL-terminated, at most
 * INET6_ADDRSTRLEN - 1 characters): IPv4 as is (also when written as
 * ::ffff:a.b.c.d), IPv6 reduced to its /64 prefix ("2001:db8:1:2::"), since
 * one host owns a whole /64. Text that is no address is kept as it is. */
void pd_addr_key(const char *ip, char out[INET6_ADDRSTRLEN]);

/* Write the client address for rate limiting into out (NUL-terminated), as
 * pd_addr_key() forms it: peer_ip itself unless it is trusted and xff (may be NULL) names a valid
 * address, in which case the rightmost untrusted entry (or the leftmost
 * entry if all are trusted). Invalid entries stop the walk. */
void pd_client_ip(const pd_cidr_list *trusted, const char *peer_ip, const pd_slice *xff,
                  char out[INET6_ADDRSTRLEN]);

#endif
