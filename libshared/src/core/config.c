#include "privydrop/pd_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include <jansson.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_log.h"

const char *pd_env_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v && *v) ? v : def;
}

int pd_env_long(const char *name, long def, long min, long max, long *out, const char **err)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def;
        return PD_OK;
    }
    if (!((v[0] >= '0' && v[0] <= '9') || v[0] == '-' || v[0] == '+')) {
        *err = "not an integer";
        return PD_ERR;
    }
    errno = 0;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
        *err = "not an integer";
        return PD_ERR;
    }
    if (n < min || n > max) {
        *err = "out of range";
        return PD_ERR;
    }
    *out = n;
    return PD_OK;
}

int pd_env_flag(const char *name)
{
    const char *v = getenv(name);
    if (!v)
        return 0;
    return strcasecmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
           strcasecmp(v, "on") == 0;
}

int pd_cli_handle(int argc, char **argv, const char *program, const char *usage)
{
    if (argc < 2)
        return PD_CLI_RUN;
    if (argc == 2 && strcmp(argv[1], "--check-config") == 0)
        return PD_CLI_CHECK_CONFIG;
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s %s\n", program, PD_VERSION);
        return 0;
    }
    fprintf(stderr, "%s: unknown argument '%s'\n%s", program, argv[argc == 2 ? 1 : 2], usage);
    return 2;
}

/* ---- collected problems ---------------------------------------------------- */

struct pd_config_check {
    char *lines[PD_CONFIG_MAX_PROBLEMS]; /* the first problems, as printed */
    size_t count;                        /* all problems, kept or not */
};

pd_config_check *pd_config_check_create(void)
{
    return calloc(1, sizeof(pd_config_check));
}

void pd_config_check_free(pd_config_check *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < PD_CONFIG_MAX_PROBLEMS; i++)
        free(c->lines[i]);
    free(c);
}

/* The value as shown to the operator: at most 64 bytes, quotes, backslashes
 * and non-printable bytes escaped, so a line stays one line. */
static void quote_value(const char *v, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    for (; v[i] && i < 64 && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    if (v[i] && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

int pd_config_check_add(pd_config_check *c, const char *variable, const char *value, const char *error)
{
    if (!c)
        return PD_ERR;
    size_t i = c->count++;
    if (i >= PD_CONFIG_MAX_PROBLEMS)
        return PD_ERR;
    char shown[300] = "";
    if (value) {
        char q[280];
        quote_value(value, q, sizeof(q));
        snprintf(shown, sizeof(shown), "=\"%s\"", q);
    }
    size_t n = strlen(variable) + strlen(shown) + strlen(error) + 3;
    c->lines[i] = malloc(n);
    if (c->lines[i])
        snprintf(c->lines[i], n, "%s%s: %s", variable, shown, error);
    return PD_ERR;
}

size_t pd_config_check_count(const pd_config_check *c)
{
    return c ? c->count : 0;
}

const char *pd_config_check_line(const pd_config_check *c, size_t i)
{
    if (!c || i >= c->count || i >= PD_CONFIG_MAX_PROBLEMS)
        return NULL;
    return c->lines[i] ? c->lines[i] : "(out of memory describing this problem)";
}

int pd_config_long(pd_config_check *c, const char *name, long def, long min, long max, long *out)
{
    const char *err = NULL;
    if (pd_env_long(name, def, min, max, out, &err) == PD_OK)
        return PD_OK;
    *out = def;
    char why[128];
    snprintf(why, sizeof(why), "%s; expected an integer from %ld to %ld", err, min, max);
    return pd_config_check_add(c, name, getenv(name), why);
}

int pd_config_log_level(pd_config_check *c)
{
    const char *v = pd_env_str("PD_LOG_LEVEL", NULL);
    if (!v || strcmp(v, "debug") == 0 || strcmp(v, "info") == 0 || strcmp(v, "warn") == 0 ||
        strcmp(v, "error") == 0)
        return PD_OK;
    return pd_config_check_add(c, "PD_LOG_LEVEL", v, "not one of debug, info, warn, error");
}

int pd_config_listen_addr(pd_config_check *c, const char *def, const char **out)
{
    const char *v = pd_env_str("PD_LISTEN_ADDR", def);
    unsigned char buf[sizeof(struct in6_addr)];
    *out = v;
    if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
        return PD_OK;
    return pd_config_check_add(c, "PD_LISTEN_ADDR", v, "not an IPv4 or IPv6 address");
}

int pd_config_check_report(const pd_config_check *c, const char *program, int check_only)
{
    size_t n = pd_config_check_count(c);
    size_t shown = n < PD_CONFIG_MAX_PROBLEMS ? n : PD_CONFIG_MAX_PROBLEMS;
    for (size_t i = 0; i < shown; i++) {
        if (check_only)
            fprintf(stderr, "%s: %s\n", program, pd_config_check_line(c, i));
        else
            pd_log(PD_LOG_ERROR, "bad configuration", "{s:s}", "problem", pd_config_check_line(c, i));
    }
    if (n > shown) {
        if (check_only)
            fprintf(stderr, "%s: ... and %zu more problems\n", program, n - shown);
        else
            pd_log(PD_LOG_ERROR, "bad configuration", "{s:I}", "more_problems", (json_int_t)(n - shown));
    }
    if (check_only) {
        if (n == 0)
            printf("%s: configuration ok\n", program);
        return n == 0 ? 0 : 2;
    }
    return n == 0 ? -1 : 2;
}
