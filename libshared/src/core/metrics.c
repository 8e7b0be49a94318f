/* metrics.c — Prometheus registry rendered in the text exposition format,
 * version 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats).
 *
 * Label values can come from clients (event names, for instance), so each
 * family holds at most PD_METRICS_MAX_SERIES distinct values and folds the
 * rest, along with over-long or non-UTF-8 values, into "other". */
#include "privydrop/pd_metrics.h"

#include "privydrop/pd_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_SERIES 64   /* distinct label values per family (header) */
#define METRICS_MAX_LV 128      /* longest label value kept as is, in bytes */
#define METRICS_MAX_NAME 128    /* longest metric or label name */
#define METRICS_MAX_HELP 1024   /* longest help text */
#define METRICS_MAX_FAMILIES 1024
#define METRICS_OTHER "other"

typedef struct metrics_series {
    char *lv;     /* label value (malloc'd); NULL for the unlabelled series */
    double value; /* current value */
} metrics_series;

struct pd_metric {
    pd_metric_kind kind;                         /* counter or gauge */
    char *name;                                  /* metric name */
    char *help;                                  /* help text, NULL for none */
    char *label;                                 /* label name, NULL if unlabelled */
    size_t nseries;                              /* used slots in series */
    metrics_series series[METRICS_MAX_SERIES];   /* in first-use order */
    int has_other;                               /* 1 once "other" has been used */
    double other;                                /* value of the "other" series */
    struct pd_metric *next;                      /* next family, registration order */
};

struct pd_metrics {
    pd_metric *first;  /* families in registration order */
    pd_metric *last;   /* tail, for appending */
    size_t nfamilies;  /* number of families */
};

pd_metrics *pd_metrics_create(void)
{
    return calloc(1, sizeof(pd_metrics));
}

static void metrics_family_free(pd_metric *f)
{
    for (size_t i = 0; i < f->nseries; i++)
        free(f->series[i].lv);
    free(f->name);
    free(f->help);
    free(f->label);
    free(f);
}

void pd_metrics_free(pd_metrics *m)
{
    if (m == NULL)
        return;
    pd_metric *f = m->first;
    while (f != NULL) {
        pd_metric *next = f->next;
        metrics_family_free(f);
        f = next;
    }
    free(m);
}

static int metrics_name_char(char c, int first, int allow_colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    if (c == ':')
        return allow_colon;
    return !first && c >= '0' && c <= '9';
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*
 * and not starting with "__" (reserved for Prometheus itself). */
static int metrics_valid_name(const char *s, int is_label)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > METRICS_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!metrics_name_char(s[i], i == 0, !is_label))
            return 0;
    }
    return !(is_label && n >= 2 && s[0] == '_' && s[1] == '_');
}


pd_metric *pd_metrics_add(pd_metrics *m, pd_metric_kind kind, const char *name,
                          const char *help, const char *label)
{
    if (m == NULL || (kind != PD_METRIC_COUNTER && kind != PD_METRIC_GAUGE) ||
        !metrics_valid_name(name, 0) || (label != NULL && !metrics_valid_name(label, 1)) ||
        (help != NULL && strlen(help) > METRICS_MAX_HELP) ||
        m->nfamilies >= METRICS_MAX_FAMILIES)
        return NULL;
    /* Two families with one name would make the exposition invalid. */
    for (pd_metric *f = m->first; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0)
            return NULL;
    }
    pd_metric *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->kind = kind;
    f->name = strdup(name);
    f->help = help ? strdup(help) : NULL;
    f->label = label ? strdup(label) : NULL;
    if (f->name == NULL || (help && f->help == NULL) || (label && f->label == NULL)) {
        metrics_family_free(f);
        return NULL;
    }
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    m->nfamilies++;
    return f;
}

/* Where a label value is recorded: a slot in series, or the "other" value.
 * With `create`, a new slot is taken while there is room (NULL on OOM). */
static double *metrics_slot(pd_metric *f, const char *lv, int create)
{
    if (f->label == NULL) {
        /* Unlabelled: one series, kept in slot 0. */
        if (f->nseries == 0) {
            if (!create)
                return NULL;
            f->series[0].lv = NULL;
            f->series[0].value = 0;
            f->nseries = 1;
        }
        return &f->series[0].value;
    }
    if (lv == NULL)
        lv = "";
    size_t n = strlen(lv);
    /* Invalid UTF-8 is folded too: a scraper rejects the whole exposition
     * when one label value is invalid. */
    int fold = n > METRICS_MAX_LV || strcmp(lv, METRICS_OTHER) == 0 || !pd_utf8_valid((const uint8_t *)lv, n);
    if (!fold) {
        for (size_t i = 0; i < f->nseries; i++) {
            if (strcmp(f->series[i].lv, lv) == 0)
                return &f->series[i].value;
        }
        if (f->nseries < METRICS_MAX_SERIES) {
            if (!create)
                return NULL;
            char *copy = strdup(lv);
            if (copy == NULL)
                return NULL;
            f->series[f->nseries].lv = copy;
            f->series[f->nseries].value = 0;
            return &f->series[f->nseries++].value;
        }
    }
    if (!f->has_other) {
        if (!create)
            return NULL;
        f->has_other = 1;
        f->other = 0;
    }
    return &f->other;
}

void pd_metric_add(pd_metric *metric, const char *lv, double delta)
{
    if (metric == NULL || isnan(delta))
        return;
    /* Counters only go up; a decrease would read as a counter reset. */
    if (metric->kind == PD_METRIC_COUNTER && delta < 0)
        return;
    double *v = metrics_slot(metric, lv, 1);
    if (v != NULL)
        *v += delta;
}

void pd_metric_set(pd_metric *metric, const char *lv, double value)
{
    if (metric == NULL)
        return;
    double *v = metrics_slot(metric, lv, 1);
    if (v != NULL)
        *v = value;
}

double pd_metric_get(const pd_metric *metric, const char *lv)
{
    if (metric == NULL)
        return 0;
    /* Lookup without create never modifies the family. */
    double *v = metrics_slot((pd_metric *)metric, lv, 0);
    return v ? *v : 0;
}

/* Growable output buffer; `failed` sticks after the first OOM. */
typedef struct metrics_buf {
    char *data;   /* text so far, NUL-terminated when not failed */
    size_t len;   /* bytes used, excluding the NUL */
    size_t cap;   /* bytes allocated */
    int failed;   /* 1 after an allocation failure */
} metrics_buf;

static void metrics_reserve(metrics_buf *b, size_t extra)
{
    if (b->failed)
        return;
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->failed = 1;
        return;
    }
    b->data = d;
    b->cap = cap;
}

static void metrics_put(metrics_buf *b, const char *s, size_t n)
{
    metrics_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void metrics_puts(metrics_buf *b, const char *s)
{
    metrics_put(b, s, strlen(s));
}

/* Escaping per the 0.0.4 text format: HELP escapes backslash and newline;
 * label values also escape the double quote. */
static void metrics_put_escaped(metrics_buf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            metrics_puts(b, "\\\\");
        else if (*s == '\n')
            metrics_puts(b, "\\n");
        else if (quote && *s == '"')
            metrics_puts(b, "\\\"");
        else
            metrics_put(b, s, 1);
    }
}

/* Values are Go float literals. Integral values (all counters, most gauges)
 * are printed as plain integers: "%g" would turn 1234567 into 1.23457e+06. */
static void metrics_put_value(metrics_buf *b, double v)
{
    char tmp[64];
    if (isnan(v))
        snprintf(tmp, sizeof tmp, "NaN");
    else if (isinf(v))
        snprintf(tmp, sizeof tmp, v > 0 ? "+Inf" : "-Inf");
    else if (v == 0)
        snprintf(tmp, sizeof tmp, "0"); /* also -0 */
    else if (v == floor(v) && fabs(v) < 9.2e18)
        snprintf(tmp, sizeof tmp, "%.0f", v);
    else
        snprintf(tmp, sizeof tmp, "%.17g", v);
    metrics_puts(b, tmp);
}

static void metrics_put_series(metrics_buf *b, const pd_metric *f, const char *lv, double v)
{
    metrics_puts(b, f->name);
    if (f->label != NULL) {
        metrics_puts(b, "{");
        metrics_puts(b, f->label);
        metrics_puts(b, "=\"");
        metrics_put_escaped(b, lv, 1);
        metrics_puts(b, "\"}");
    }
    metrics_puts(b, " ");
    metrics_put_value(b, v);
    metrics_puts(b, "\n");
}

char *pd_metrics_render(const pd_metrics *m, size_t *len)
{
    metrics_buf b = {NULL, 0, 0, 0};
    metrics_reserve(&b, 0);
    if (b.failed)
        return NULL;
    b.data[0] = '\0';
    for (const pd_metric *f = m ? m->first : NULL; f != NULL; f = f->next) {
        if (f->help != NULL) {
            metrics_puts(&b, "# HELP ");
            metrics_puts(&b, f->name);
            metrics_puts(&b, " ");
            metrics_put_escaped(&b, f->help, 0);
            metrics_puts(&b, "\n");
        }
        metrics_puts(&b, "# TYPE ");
        metrics_puts(&b, f->name);
        metrics_puts(&b, f->kind == PD_METRIC_COUNTER ? " counter\n" : " gauge\n");
        if (f->label == NULL) {
            /* An unlabelled metric is always exposed, 0 before first use, so
             * dashboards see it from the first scrape. */
            metrics_put_series(&b, f, NULL, f->nseries ? f->series[0].value : 0);
            continue;
        }
        for (size_t i = 0; i < f->nseries; i++)
            metrics_put_series(&b, f, f->series[i].lv, f->series[i].value);
        if (f->has_other)
            metrics_put_series(&b, f, METRICS_OTHER, f->other);
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    if (len != NULL)
        *len = b.len;
    return b.data;
}
