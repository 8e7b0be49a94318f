#include "privydrop/pd_log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Set once at start-up (pd_log_init), read-only afterwards. */
static char log_service[32] = "privydrop";
static pd_log_level log_min = PD_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void pd_log_init(const char *service, const char *level)
{
    if (service)
        snprintf(log_service, sizeof(log_service), "%s", service);
    log_min = PD_LOG_INFO;
    if (level) {
        for (int i = 0; i < 4; i++)
            if (strcmp(level, level_names[i]) == 0)
                log_min = (pd_log_level)i;
    }
}

int pd_log_enabled(pd_log_level level)
{
    return level >= log_min;
}

void pd_log(pd_log_level level, const char *msg, const char *fmt, ...)
{
    if (!pd_log_enabled(level))
        return;
    json_t *obj = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        json_error_t jerr;
        obj = json_vpack_ex(&jerr, 0, fmt, ap);
        va_end(ap);
    }
    if (!obj)
        obj = json_object();
    if (!obj)
        return;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);

    /* The fixed keys come first in the output for people reading raw logs. */
    json_t *line = json_pack("{s:s, s:s, s:s, s:s}", "ts", when, "level", level_names[level],
                             "svc", log_service, "msg", msg ? msg : "");
    if (line) {
        json_object_update_missing(line, obj);
        char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text) {
            fprintf(stderr, "%s\n", text);
            free(text);
        }
        json_decref(line);
    }
    json_decref(obj);
}
