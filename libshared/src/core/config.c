#include "privydrop/pd_config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include "privydrop/pd_common.h"

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
        return -1;
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s %s\n", program, PD_VERSION);
        return 0;
    }
    fprintf(stderr, "%s: unknown argument '%s'\n%s", program, argv[1], usage);
    return 2;
}
