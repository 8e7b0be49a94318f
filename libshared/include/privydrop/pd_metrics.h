/* pd_metrics.h — a tiny Prometheus registry: counters and gauges with at most
 * one label, rendered in the text exposition format (version 0.0.4).
 * Single-threaded (one loop per process). */
#ifndef PD_METRICS_H
#define PD_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct pd_metrics pd_metrics;
typedef struct pd_metric pd_metric; /* owned by its registry */

typedef enum pd_metric_kind { PD_METRIC_COUNTER, PD_METRIC_GAUGE } pd_metric_kind;

pd_metrics *pd_metrics_create(void);
void pd_metrics_free(pd_metrics *m);

/* Register a family. `label` is NULL for an unlabelled metric, else the label
 * name (e.g. "event"). Names must be valid Prometheus names. Returns a handle
 * valid for the registry's life, or NULL on allocation failure. */
pd_metric *pd_metrics_add(pd_metrics *m, pd_metric_kind kind, const char *name,
                          const char *help, const char *label);

/* Add `delta` to the series with label value `lv` (NULL for unlabelled). At
 * most 64 label values per family; further values are folded into "other". */
void pd_metric_add(pd_metric *metric, const char *lv, double delta);
void pd_metric_set(pd_metric *metric, const char *lv, double value);
double pd_metric_get(const pd_metric *metric, const char *lv);

/* Render everything; malloc'd NUL-terminated text (caller frees), NULL on OOM. */
char *pd_metrics_render(const pd_metrics *m, size_t *len);

#endif
