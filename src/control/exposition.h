/* control/exposition.h - private to the control component: metric families as the metrics
 * endpoints show them, and their two renderings (exposition.c).
 *
 * A family is one metric name with its type and help (one # HELP and one # TYPE line in the
 * Prometheus text format 0.0.4), and its samples: a value, or a histogram, each with its own
 * set of labels. metrics.c gathers the families from the components' counters; the text
 * rendering is /metrics, the JSON one /api/v1/status. Nothing here checks that label sets
 * are distinct within a family: the gathering makes them so.
 */
#ifndef DROVER_CONTROL_EXPOSITION_H
#define DROVER_CONTROL_EXPOSITION_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct histogram;

/* Labels of one sample (the histogram's le is added by the rendering). */
#define EXPO_LABELS_MAX 3

enum expo_type { EXPO_COUNTER, EXPO_GAUGE, EXPO_HISTOGRAM };

struct expo_sample {
	const char *label[EXPO_LABELS_MAX]; /* names: static strings */
	char *value[EXPO_LABELS_MAX];       /* owned */
	size_t nlabels;
	double v;                     /* counter, gauge */
	struct histogram_snapshot *h; /* histogram: owned */
	double per_unit;              /* histogram: observed units per shown unit (1e6: us) */
};

struct expo_family {
	const char *name, *help; /* static strings */
	enum expo_type type;
	/* Shown in the JSON by a function of its own (bounces, webhooks), not by expo_json. */
	bool own_json;
	struct expo_sample *s;
	size_t n, cap;
};

struct exposition {
	struct expo_family *f;
	size_t n, cap;
};

/* A new family (at the end: families render in the order added). */
struct expo_family *expo_family(struct exposition *, const char *name, enum expo_type,
                                const char *help);
/* A sample of a counter or gauge family, without labels yet. */
struct expo_sample *expo_value(struct expo_family *, double v);
/* A sample of a histogram family: what h holds now (NULL: empty), its bounds and sum
 * divided by per_unit (1e6 shows microseconds as seconds; 1 shows them as they are). */
struct expo_sample *expo_histogram(struct expo_family *, const struct histogram *h,
                                   double per_unit);
/* Adds a label (at most EXPO_LABELS_MAX; more are ignored); value is copied. */
void expo_label(struct expo_sample *, const char *name, const char *value);
/* A family of one unlabelled value. */
void expo_scalar(struct exposition *, const char *name, enum expo_type, const char *help, double v);

/* The Prometheus text format 0.0.4 (malloc'd): for each family # HELP and # TYPE (a family
 * without samples too: a labelled gauge with nothing to count now still says it exists),
 * then its samples; a histogram's as _bucket{...,le="..."} (cumulative, +Inf last), _sum
 * and _count. Label values escaped (\\, \", \n). */
char *expo_text(const struct exposition *);
/* Into o, for each family not own_json, under its name without "drover_": an unlabelled
 * value as a number; a labelled family as an array of {label: value, ..., "value": v}; a
 * histogram as {"count": n, "sum": s, "buckets": {"0.005": n, ..., "+Inf": n}}, or an array
 * of those with their labels when it has labels; an empty array for a family without
 * samples. */
void expo_json(const struct exposition *, json_t *o);
void expo_free(struct exposition *);

#endif
