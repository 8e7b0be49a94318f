/* pd_log.h — structured logs: one JSON object per line on stderr.
 *
 * Fields are given as a jansson pack format (json_pack), so every value is
 * escaped by the JSON encoder and a line can never be split or forged by the
 * data it carries. Privacy rule: callers never log SDP bodies, ICE
 * candidates or file names — only ids, counts, sizes and reasons. */
#ifndef PD_LOG_H
#define PD_LOG_H

typedef enum pd_log_level {
    PD_LOG_DEBUG = 0,
    PD_LOG_INFO = 1,
    PD_LOG_WARN = 2,
    PD_LOG_ERROR = 3,
} pd_log_level;

/* Set the service name written in every line and the minimum level, from
 * its name ("debug", "info", "warn", "error"; NULL or unknown → info).
 * Call once at start-up, before the loop runs. */
void pd_log_init(const char *service, const char *level);

/* 1 if lines at `level` are written. */
int pd_log_enabled(pd_log_level level);

/* Write {"ts":…,"level":…,"svc":…,"msg":msg, …fields}. `fmt` is a json_pack
 * object format such as "{s:s, s:i}" followed by its arguments, or NULL for
 * no fields. Never fails visibly: a line that cannot be built is dropped. */
void pd_log(pd_log_level level, const char *msg, const char *fmt, ...);

#endif
