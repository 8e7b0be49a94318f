/* turn.c — TURN REST API credentials (coturn use-auth-secret) and the
 * /api/ice_servers answer. See pd_turn.h for the contract. */
#include "privydrop/pd_turn.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_id.h"

#define TURN_URL_MAX 300 /* "turns:" + "[" + 253 + "]" + ":65535?transport=tcp" */
#define TURN_HOST_MAX 253

struct pd_turn {
    char **stun_urls;   /* owned, n_stun entries, each malloc'd */
    size_t n_stun;      /* number of STUN URLs (0..PD_TURN_MAX_STUN_URLS) */
    char **turn_urls;   /* owned, n_turn entries; none when there is no relay */
    size_t n_turn;      /* 0, 2 (udp + tcp) or 3 (+ turns) */
    char *secret;       /* owned copy, wiped on free; NULL when there is no relay */
    size_t secret_len;  /* bytes in secret */
    uint32_t ttl_s;     /* credential lifetime */
};

int pd_turn_hmac(pd_slice secret, pd_slice username, char out[PD_TURN_CREDENTIAL_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (out == NULL)
        return PD_ERR;
    out[0] = '\0';
    if (secret.len == 0 || secret.base == NULL || secret.len > (size_t)INT32_MAX)
        return PD_ERR;
    if (username.len > 0 && username.base == NULL)
        return PD_ERR;
    /* HMAC() with an empty message needs a non-NULL data pointer on some
     * OpenSSL builds; point at the (unused) output buffer then. */
    const unsigned char *data = username.len ? (const unsigned char *)username.base : mac;
    if (HMAC(EVP_sha1(), secret.base, (int)secret.len, data, username.len, mac, &mac_len) ==
            NULL ||
        mac_len != 20)
        return PD_ERR;
    /* EVP_EncodeBlock writes 4 * ceil(20 / 3) = 28 characters + NUL. */
    int n = EVP_EncodeBlock((unsigned char *)out, mac, (int)mac_len);
    explicit_bzero(mac, sizeof mac);
    if (n != PD_TURN_CREDENTIAL_LEN) {
        out[0] = '\0';
        return PD_ERR;
    }
    return PD_OK;
}

static int turn_id_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

int pd_turn_credential_make(pd_turn_credential *out, pd_slice secret, uint64_t now_s,
                            uint32_t ttl_s, const char *id)
{
    char fresh[PD_TURN_ID_LEN + 1];

    if (out == NULL)
        return PD_ERR;
    memset(out, 0, sizeof *out);
    if (secret.len == 0 || ttl_s == 0 || now_s > UINT64_MAX - ttl_s)
        return PD_ERR;
    if (id != NULL) {
        size_t n = strlen(id);
        if (n == 0 || n > PD_TURN_ID_LEN)
            return PD_ERR;
        for (size_t i = 0; i < n; i++)
            if (!turn_id_char_ok((unsigned char)id[i]))
                return PD_ERR;
    } else {
        if (pd_id_random(fresh, PD_TURN_ID_LEN, PD_ALPHABET_ALNUM) != PD_OK)
            return PD_ERR;
        id = fresh;
    }
    out->expires_at = now_s + ttl_s;
    int n = snprintf(out->username, sizeof out->username, "%llu:%s",
                     (unsigned long long)out->expires_at, id);
    if (n < 0 || (size_t)n >= sizeof out->username ||
        pd_turn_hmac(secret, pd_slice_make(out->username, (size_t)n), out->credential) !=
            PD_OK) {
        memset(out, 0, sizeof *out);
        return PD_ERR;
    }
    return PD_OK;
}

/* ---- configuration ------------------------------------------------------ */

static void turn_free_urls(char **urls, size_t n)
{
    if (urls == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
}

void pd_turn_free(pd_turn *t)
{
    if (t == NULL)
        return;
    turn_free_urls(t->stun_urls, t->n_stun);
    turn_free_urls(t->turn_urls, t->n_turn);
    if (t->secret != NULL) {
        explicit_bzero(t->secret, t->secret_len);
        free(t->secret);
    }
    free(t);
}

static int turn_fail(const char **err, const char *msg)
{
    if (err != NULL)
        *err = msg;
    return PD_ERR;
}

/* A URL from PD_STUN_URLS: "stun:" or "stuns:" then printable ASCII without
 * spaces, quotes or commas (they were the separators). */
static int turn_stun_url_ok(pd_slice u)
{
    if (u.len == 0 || u.len >= TURN_URL_MAX)
        return 0;
    int prefix = (u.len > 5 && memcmp(u.base, "stun:", 5) == 0) ||
                 (u.len > 6 && memcmp(u.base, "stuns:", 6) == 0);
    if (!prefix)
        return 0;
    for (size_t i = 0; i < u.len; i++) {
        unsigned char c = (unsigned char)u.base[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == ',')
            return 0;
    }
    return 1;
}

static int turn_push_url(char ***urls, size_t *n, const char *base, size_t len)
{
    char **grown = realloc(*urls, (*n + 1) * sizeof **urls);
    if (grown == NULL)
        return PD_ERR;
    *urls = grown;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return PD_ERR;
    memcpy(copy, base, len);
    copy[len] = '\0';
    grown[(*n)++] = copy;
    return PD_OK;
}

static int turn_parse_stun(pd_turn *t, const char *list, const char **err)
{
    const char *p = list;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a < b) {
            if (!turn_stun_url_ok(pd_slice_make(a, (size_t)(b - a))))
                return turn_fail(err, "PD_STUN_URLS: each entry must be a stun: or stuns: URL");
            if (t->n_stun >= PD_TURN_MAX_STUN_URLS)
                return turn_fail(err, "PD_STUN_URLS: too many entries");
            if (turn_push_url(&t->stun_urls, &t->n_stun, a, (size_t)(b - a)) != PD_OK)
                return turn_fail(err, "out of memory");
        }
        p = *end ? end + 1 : end;
    }
    return PD_OK;
}

/* Writes the host as it goes into a URL into out (brackets around IPv6).
 * PD_OK, or PD_ERR when it is neither a DNS name / IPv4 nor an IPv6 literal. */
static int turn_host_format(const char *host, char *out, size_t cap)
{
    size_t n = strlen(host);
    const char *h = host;
    int bracketed = n >= 2 && host[0] == '[' && host[n - 1] == ']';
    if (bracketed) {
        h++;
        n -= 2;
    }
    if (n == 0 || n > TURN_HOST_MAX)
        return PD_ERR;
    int colon = memchr(h, ':', n) != NULL;
    if (bracketed && !colon)
        return PD_ERR;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        int ok;
        if (colon) /* IPv6, possibly with an embedded IPv4 tail */
            ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                 c == ':' || c == '.';
        else
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-';
        if (!ok)
            return PD_ERR;
    }
    if (h[0] == '.' || h[0] == '-')
        return PD_ERR;
    int w = colon ? snprintf(out, cap, "[%.*s]", (int)n, h) : snprintf(out, cap, "%.*s", (int)n, h);
    return (w > 0 && (size_t)w < cap) ? PD_OK : PD_ERR;
}

static int turn_push_fmt(char ***urls, size_t *n, const char *scheme, const char *host,
                         unsigned port, const char *transport)
{
    char buf[TURN_URL_MAX];
    int w = snprintf(buf, sizeof buf, "%s:%s:%u?transport=%s", scheme, host, port, transport);
    if (w < 0 || (size_t)w >= sizeof buf)
        return PD_ERR;
    return turn_push_url(urls, n, buf, (size_t)w);
}

pd_turn *pd_turn_create(const pd_turn_config *cfg, const char **err)
{
    char host[TURN_HOST_MAX + 3];
    int have_host = 0;

    if (err != NULL)
        *err = "ok";
    if (cfg == NULL) {
        turn_fail(err, "no TURN configuration");
        return NULL;
    }
    pd_turn *t = calloc(1, sizeof *t);
    if (t == NULL) {
        turn_fail(err, "out of memory");
        return NULL;
    }
    t->ttl_s = cfg->ttl_s ? cfg->ttl_s : PD_TURN_DEFAULT_TTL_S;
    unsigned port = cfg->port ? cfg->port : PD_TURN_DEFAULT_PORT;
    unsigned tls_port = cfg->tls_port ? cfg->tls_port : PD_TURN_DEFAULT_TLS_PORT;

    if (t->ttl_s < PD_TURN_MIN_TTL_S || t->ttl_s > PD_TURN_MAX_TTL_S) {
        turn_fail(err, "PD_TURN_TTL_S must be between 60 and 604800 seconds");
        goto fail;
    }
    if (cfg->host != NULL && cfg->host[0] != '\0') {
        if (turn_host_format(cfg->host, host, sizeof host) != PD_OK) {
            turn_fail(err, "PD_TURN_HOST must be a DNS name, an IPv4 address or an IPv6 literal");
            goto fail;
        }
        have_host = 1;
    }
    if (cfg->stun_urls != NULL && cfg->stun_urls[0] != '\0') {
        if (turn_parse_stun(t, cfg->stun_urls, err) != PD_OK)
            goto fail;
    } else if (have_host) {
        char buf[TURN_URL_MAX];
        int w = snprintf(buf, sizeof buf, "stun:%s:%u", host, port);
        if (w < 0 || (size_t)w >= sizeof buf ||
            turn_push_url(&t->stun_urls, &t->n_stun, buf, (size_t)w) != PD_OK) {
            turn_fail(err, "out of memory");
            goto fail;
        }
    }
    if (have_host && cfg->secret != NULL && cfg->secret[0] != '\0') {
        t->secret_len = strlen(cfg->secret);
        t->secret = malloc(t->secret_len + 1);
        if (t->secret == NULL ||
            turn_push_fmt(&t->turn_urls, &t->n_turn, "turn", host, port, "udp") != PD_OK ||
            turn_push_fmt(&t->turn_urls, &t->n_turn, "turn", host, port, "tcp") != PD_OK ||
            (cfg->tls &&
             turn_push_fmt(&t->turn_urls, &t->n_turn, "turns", host, tls_port, "tcp") != PD_OK)) {
            turn_fail(err, "out of memory");
            goto fail;
        }
        memcpy(t->secret, cfg->secret, t->secret_len + 1);
    }
    return t;

fail:
    pd_turn_free(t);
    return NULL;
}

int pd_turn_has_relay(const pd_turn *t)
{
    return t != NULL && t->secret != NULL && t->n_turn > 0;
}

uint32_t pd_turn_ttl(const pd_turn *t)
{
    return t ? t->ttl_s : 0;
}

static json_t *turn_url_array(char *const *urls, size_t n)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(arr, json_string(urls[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *pd_turn_ice_servers(const pd_turn *t, uint64_t now_s)
{
    if (t == NULL)
        return NULL;
    json_t *servers = json_array();
    json_t *root = json_object();
    if (servers == NULL || root == NULL)
        goto fail;
    if (json_object_set_new(root, "iceServers", servers) != 0) {
        servers = NULL; /* json_object_set_new dropped its reference */
        goto fail;
    }
    if (t->n_stun > 0) {
        json_t *urls = turn_url_array(t->stun_urls, t->n_stun);
        if (urls == NULL || json_array_append_new(servers, json_pack("{s:o}", "urls", urls)) != 0)
            goto fail_root;
    }
    if (pd_turn_has_relay(t)) {
        pd_turn_credential c;
        if (pd_turn_credential_make(&c, pd_slice_make(t->secret, t->secret_len), now_s,
                                    t->ttl_s, NULL) != PD_OK)
            goto fail_root;
        json_t *urls = turn_url_array(t->turn_urls, t->n_turn);
        json_t *entry = urls ? json_pack("{s:o, s:s, s:s}", "urls", urls, "username", c.username,
                                         "credential", c.credential)
                             : NULL;
        explicit_bzero(&c, sizeof c);
        if (json_array_append_new(servers, entry) != 0)
            goto fail_root;
    }
    if (json_object_set_new(root, "ttl", json_integer((json_int_t)t->ttl_s)) != 0)
        goto fail_root;
    return root;

fail:
    json_decref(servers);
fail_root:
    json_decref(root);
    return NULL;
}
