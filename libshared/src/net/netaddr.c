/* netaddr.c — trusted-proxy CIDR lists and X-Forwarded-For resolution.
 *
 * Addresses are kept as 16 bytes plus a family. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) is the IPv4 host a dual-stack listener
 * reports, so it is matched against IPv4 entries as well as IPv6 ones. */
#include "privydrop/pd_netaddr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Bounds a configuration string; a trusted-proxy list is a handful of
 * entries, so anything larger is a mistake. */
#define NETADDR_MAX_ENTRIES 256

typedef struct netaddr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char bytes[16]; /* address; IPv4 uses the first 4 */
} netaddr;

typedef struct cidr_entry {
    netaddr net;     /* network address, host bits cleared */
    unsigned prefix; /* prefix length: 0..32 for IPv4, 0..128 for IPv6 */
} cidr_entry;

struct pd_cidr_list {
    size_t count;        /* entries in use */
    cidr_entry *entries; /* count entries, NULL when empty */
};

static const unsigned char netaddr_v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int netaddr_is_space(char c)
{
    return c == ' ' || c == '\t';
}

static pd_slice netaddr_trim(pd_slice s)
{
    while (s.len > 0 && netaddr_is_space(s.base[0])) {
        s.base++;
        s.len--;
    }
    while (s.len > 0 && netaddr_is_space(s.base[s.len - 1]))
        s.len--;
    return s;
}

/* Parse a bare address (no brackets, port or zone id). */
static int netaddr_parse(pd_slice s, netaddr *out)
{
    char tmp[INET6_ADDRSTRLEN];
    if (s.len == 0 || s.len >= sizeof tmp)
        return PD_ERR;
    memcpy(tmp, s.base, s.len);
    tmp[s.len] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, tmp, out->bytes) == 1) {
        out->family = AF_INET;
        return PD_OK;
    }
    if (inet_pton(AF_INET6, tmp, out->bytes) == 1) {
        out->family = AF_INET6;
        return PD_OK;
    }
    return PD_ERR;
}

static int netaddr_is_v4mapped(const netaddr *a)
{
    return a->family == AF_INET6 &&
           memcmp(a->bytes, netaddr_v4mapped_prefix, sizeof netaddr_v4mapped_prefix) == 0;
}

static netaddr netaddr_unmap(const netaddr *a)
{
    netaddr v4;
    memset(&v4, 0, sizeof v4);
    v4.family = AF_INET;
    memcpy(v4.bytes, a->bytes + 12, 4);
    return v4;
}

/* 1 if the first `prefix` bits of a and b agree. */
static int netaddr_prefix_eq(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

static void netaddr_clear_host_bits(unsigned char *bytes, unsigned prefix, unsigned total_bits)
{
    for (unsigned bit = prefix; bit < total_bits; bit++)
        bytes[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
}

/* One entry: an address, optionally "/<prefix>". Host bits are cleared, so
 * "10.1.2.3/8" means 10.0.0.0/8 (as nginx's set_real_ip_from reads it). */
static int netaddr_parse_cidr(pd_slice s, cidr_entry *out, const char **err)
{
    size_t slash = 0;
    while (slash < s.len && s.base[slash] != '/')
        slash++;
    if (netaddr_parse(pd_slice_make(s.base, slash), &out->net) != PD_OK) {
        *err = "invalid address in trusted proxy list";
        return PD_ERR;
    }
    unsigned max = out->net.family == AF_INET ? 32 : 128;
    unsigned prefix = max;
    if (slash < s.len) {
        size_t ndig = s.len - slash - 1;
        if (ndig == 0 || ndig > 3) {
            *err = "invalid prefix length in trusted proxy list";
            return PD_ERR;
        }
        prefix = 0;
        for (size_t i = slash + 1; i < s.len; i++) {
            char c = s.base[i];
            if (c < '0' || c > '9') {
                *err = "invalid prefix length in trusted proxy list";
                return PD_ERR;
            }
            prefix = prefix * 10 + (unsigned)(c - '0');
        }
        if (prefix > max) {
            *err = "prefix length too large in trusted proxy list";
            return PD_ERR;
        }
    }
    /* "::ffff:10.0.0.0/104" names IPv4 space; store it as IPv4 so it
     * matches plain IPv4 peers too. */
    if (netaddr_is_v4mapped(&out->net) && prefix >= 96) {
        out->net = netaddr_unmap(&out->net);
        prefix -= 96;
        max = 32;
    }
    netaddr_clear_host_bits(out->net.bytes, prefix, max);
    out->prefix = prefix;
    return PD_OK;
}

pd_cidr_list *pd_cidr_list_create(const char *text, const char **err)
{
    const char *dummy;
    if (err == NULL)
        err = &dummy;
    *err = NULL;
    pd_cidr_list *l = calloc(1, sizeof *l);
    if (l == NULL) {
        *err = "out of memory";
        return NULL;
    }
    pd_slice all = netaddr_trim(pd_slice_cstr(text));
    if (all.len == 0)
        return l;

    size_t n = 1;
    for (size_t i = 0; i < all.len; i++)
        n += all.base[i] == ',';
    if (n > NETADDR_MAX_ENTRIES) {
        *err = "too many entries in trusted proxy list";
        free(l);
        return NULL;
    }
    l->entries = calloc(n, sizeof *l->entries);
    if (l->entries == NULL) {
        *err = "out of memory";
        free(l);
        return NULL;
    }
    size_t i = 0;
    while (i <= all.len) {
        size_t start = i;
        while (i < all.len && all.base[i] != ',')
            i++;
        /* An empty item ("a,,b" or a trailing comma) is reported rather than
         * skipped: this list decides whom we believe. */
        pd_slice item = netaddr_trim(pd_slice_make(all.base + start, i - start));
        if (item.len == 0) {
            *err = "empty entry in trusted proxy list";
            pd_cidr_list_free(l);
            return NULL;
        }
        if (netaddr_parse_cidr(item, &l->entries[l->count], err) != PD_OK) {
            pd_cidr_list_free(l);
            return NULL;
        }
        l->count++;
        i++; /* skip ',' (or step past the end) */
    }
    return l;
}

void pd_cidr_list_free(pd_cidr_list *l)
{
    if (l == NULL)
        return;
    free(l->entries);
    free(l);
}

static int netaddr_list_has(const pd_cidr_list *l, const netaddr *a)
{
    for (size_t i = 0; i < l->count; i++) {
        const cidr_entry *e = &l->entries[i];
        if (e->net.family == a->family && netaddr_prefix_eq(e->net.bytes, a->bytes, e->prefix))
            return 1;
    }
    return 0;
}

static int netaddr_trusted(const pd_cidr_list *l, const netaddr *a)
{
    if (l == NULL)
        return 0;
    if (netaddr_list_has(l, a))
        return 1;
    if (netaddr_is_v4mapped(a)) {
        netaddr v4 = netaddr_unmap(a);
        return netaddr_list_has(l, &v4);
    }
    return 0;
}

int pd_cidr_list_contains(const pd_cidr_list *l, const char *ip)
{
    netaddr a;
    if (l == NULL || ip == NULL || netaddr_parse(pd_slice_cstr(ip), &a) != PD_OK)
        return 0;
    return netaddr_trusted(l, &a);
}

/* Canonical text of the host a limit counts: a mapped address is written as
 * plain IPv4, so one client gets one key whatever form the proxy wrote, and
 * an IPv6 address keeps only its /64 prefix. A /64 is one subnet, routinely
 * one household or one machine (RFC 4291 §2.5.4, SLAAC, privacy addresses):
 * counting each of its 2^64 addresses apart would let one host dodge every
 * per-address limit by changing its interface id. */
static void netaddr_format_key(const netaddr *a, char out[INET6_ADDRSTRLEN])
{
    netaddr v = netaddr_is_v4mapped(a) ? netaddr_unmap(a) : *a;
    if (v.family == AF_INET6)
        memset(v.bytes + 8, 0, 8);
    if (inet_ntop(v.family, v.bytes, out, INET6_ADDRSTRLEN) == NULL)
        out[0] = '\0';
}

void pd_addr_key(const char *ip, char out[INET6_ADDRSTRLEN])
{
    netaddr a;
    size_t n = ip ? strnlen(ip, INET6_ADDRSTRLEN) : 0;
    if (n < INET6_ADDRSTRLEN && netaddr_parse(pd_slice_make(ip, n), &a) == PD_OK) {
        netaddr_format_key(&a, out);
        return;
    }
    /* Not an address (a unix socket, a failed getpeername): one shared key,
     * bounded in length. */
    n = PD_MIN(n, (size_t)INET6_ADDRSTRLEN - 1);
    if (n > 0)
        memcpy(out, ip, n);
    out[n] = '\0';
}

/* X-Forwarded-For is walked right to left: each trusted hop appended the
 * address it received the request from, so the first untrusted address from
 * the right is the client, and anything further left is unverified. */
void pd_client_ip(const pd_cidr_list *trusted, const char *peer_ip, const pd_slice *xff,
                  char out[INET6_ADDRSTRLEN])
{
    if (!pd_cidr_list_contains(trusted, peer_ip) || xff == NULL || xff->len == 0 ||
        xff->base == NULL) {
        pd_addr_key(peer_ip, out);
        return;
    }
    netaddr found = {0, {0}};
    int have = 0;
    size_t end = xff->len;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff->base[start - 1] != ',')
            start--;
        netaddr a;
        if (netaddr_parse(netaddr_trim(pd_slice_make(xff->base + start, end - start)), &a) !=
            PD_OK)
            break; /* unparseable: nothing left of it can be trusted either */
        found = a;
        have = 1;
        if (!netaddr_trusted(trusted, &a))
            break;
        if (start == 0)
            break; /* all trusted: the leftmost is the best we know */
        end = start - 1;
    }
    if (have)
        netaddr_format_key(&found, out);
    else
        pd_addr_key(peer_ip, out);
}
