/* exposition.c - metric families, rendered as Prometheus text (0.0.4) and as JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/exposition.h"
#include "core/core.h"

/* 2^53: every integer below it is a double exactly. */
#define EXACT_MAX 9007199254740992.0

static const char *const type_names[] = {
    [EXPO_COUNTER] = "counter",
    [EXPO_GAUGE] = "gauge",
    [EXPO_HISTOGRAM] = "histogram",
};

struct expo_family *
expo_family(struct exposition *x, const char *name, enum expo_type type, const char *help)
{
	struct expo_family *f;

	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 32;
		x->f = xrealloc(x->f, x->cap * sizeof(*x->f));
	}
	f = &x->f[x->n++];
	*f = (struct expo_family){.name = name, .type = type, .help = help};
	return f;
}

static struct expo_sample *
sample_new(struct expo_family *f)
{
	struct expo_sample *s;

	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 4;
		f->s = xrealloc(f->s, f->cap * sizeof(*f->s));
	}
	s = &f->s[f->n++];
	memset(s, 0, sizeof(*s));
	return s;
}

struct expo_sample *
expo_value(struct expo_family *f, double v)
{
	struct expo_sample *s = sample_new(f);

	s->v = v;
	return s;
}

struct expo_sample *
expo_histogram(struct expo_family *f, const struct histogram *h, double per_unit)
{
	struct expo_sample *s = sample_new(f);

	s->h = xmalloc(sizeof(*s->h));
	histogram_snapshot(h, s->h);
	s->per_unit = per_unit > 0 ? per_unit : 1;
	return s;
}

void
expo_label(struct expo_sample *s, const char *name, const char *value)
{
	if (s->nlabels == EXPO_LABELS_MAX)
		return;
	s->label[s->nlabels] = name;
	s->value[s->nlabels++] = xstrdup(value);
}

void
expo_scalar(struct exposition *x, const char *name, enum expo_type type, const char *help, double v)
{
	expo_value(expo_family(x, name, type, help), v);
}

void
expo_free(struct exposition *x)
{
	for (size_t i = 0; i < x->n; i++) {
		for (size_t j = 0; j < x->f[i].n; j++) {
			struct expo_sample *s = &x->f[i].s[j];

			for (size_t k = 0; k < s->nlabels; k++)
				free(s->value[k]);
			free(s->h);
		}
		free(x->f[i].s);
	}
	free(x->f);
	*x = (struct exposition){0};
}

/* ---- Text ---- */

/* A value as Go's strconv.ParseFloat (Prometheus) reads it: integers without a fraction or
 * an exponent (counters up to 2^53 exactly), others with 15 significant digits (enough for
 * microseconds over years, and without the noise of a 17-digit binary rendering). */
static void
put_number(FILE *out, double v)
{
	if (isnan(v))
		fputs("NaN", out);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", out);
	else if (v > -EXACT_MAX && v < EXACT_MAX && v == (double)(long long)v)
		fprintf(out, "%lld", (long long)v);
	else
		fprintf(out, "%.15g", v);
}

static void
put_escaped(FILE *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '"')
			fputs("\\\"", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

/* {a="x",b="y"} with le="..." last when le is not NULL; nothing when there is no label. */
static void
put_labels(FILE *out, const struct expo_sample *s, const char *le)
{
	if (s->nlabels == 0 && le == NULL)
		return;
	fputc('{', out);
	for (size_t k = 0; k < s->nlabels; k++) {
		fprintf(out, "%s%s=\"", k > 0 ? "," : "", s->label[k]);
		put_escaped(out, s->value[k]);
		fputc('"', out);
	}
	if (le != NULL)
		fprintf(out, "%sle=\"%s\"", s->nlabels > 0 ? "," : "", le);
	fputc('}', out);
}

static void
le_text(double bound, char *buf, size_t size)
{
	snprintf(buf, size, "%.15g", bound);
}

static void
put_histogram(FILE *out, const char *name, const struct expo_sample *s)
{
	const struct histogram_snapshot *h = s->h;
	char le[64];

	for (size_t i = 0; i < h->nbounds; i++) {
		le_text((double)h->bounds[i] / s->per_unit, le, sizeof(le));
		fprintf(out, "%s_bucket", name);
		put_labels(out, s, le);
		fprintf(out, " %llu\n", (unsigned long long)h->cumulative[i]);
	}
	fprintf(out, "%s_bucket", name);
	put_labels(out, s, "+Inf");
	fprintf(out, " %llu\n%s_sum", (unsigned long long)h->count, name);
	put_labels(out, s, NULL);
	fputc(' ', out);
	put_number(out, (double)h->sum / s->per_unit);
	fprintf(out, "\n%s_count", name);
	put_labels(out, s, NULL);
	fprintf(out, " %llu\n", (unsigned long long)h->count);
}

char *
expo_text(const struct exposition *x)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	if (out == NULL)
		fatal("metrics: open_memstream: out of memory");
	for (size_t i = 0; i < x->n; i++) {
		const struct expo_family *f = &x->f[i];

		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
		        type_names[f->type]);
		for (size_t j = 0; j < f->n; j++) {
			const struct expo_sample *s = &f->s[j];

			if (f->type == EXPO_HISTOGRAM) {
				put_histogram(out, f->name, s);
				continue;
			}
			fputs(f->name, out);
			put_labels(out, s, NULL);
			fputc(' ', out);
			put_number(out, s->v);
			fputc('\n', out);
		}
	}
	if (fclose(out) != 0)
		fatal("metrics: writing the text: out of memory");
	return buf;
}

/* ---- JSON ---- */

static json_t *
json_number(double v)
{
	if (v > -EXACT_MAX && v < EXACT_MAX && v == (double)(json_int_t)v)
		return json_integer((json_int_t)v);
	return json_real(v);
}

static json_t *
histogram_json(const struct expo_sample *s)
{
	const struct histogram_snapshot *h = s->h;
	json_t *o = json_object(), *b = json_object();
	char le[64];

	for (size_t i = 0; i < h->nbounds; i++) {
		le_text((double)h->bounds[i] / s->per_unit, le, sizeof(le));
		json_object_set_new(b, le, json_integer((json_int_t)h->cumulative[i]));
	}
	json_object_set_new(b, "+Inf", json_integer((json_int_t)h->count));
	json_object_set_new(o, "count", json_integer((json_int_t)h->count));
	json_object_set_new(o, "sum", json_number((double)h->sum / s->per_unit));
	json_object_set_new(o, "buckets", b);
	return o;
}

static json_t *
sample_json(const struct expo_family *f, const struct expo_sample *s)
{
	json_t *o;

	if (f->type == EXPO_HISTOGRAM)
		o = histogram_json(s);
	else if (s->nlabels == 0)
		return json_number(s->v);
	else {
		o = json_object();
		json_object_set_new(o, "value", json_number(s->v));
	}
	for (size_t k = 0; k < s->nlabels; k++)
		json_object_set_new(o, s->label[k], json_string(s->value[k]));
	return o;
}

void
expo_json(const struct exposition *x, json_t *o)
{
	for (size_t i = 0; i < x->n; i++) {
		const struct expo_family *f = &x->f[i];
		const char *key = strncmp(f->name, "drover_", 7) == 0 ? f->name + 7 : f->name;
		json_t *list;

		if (f->own_json)
			continue;
		if (f->n == 1 && f->s[0].nlabels == 0) {
			json_object_set_new(o, key, sample_json(f, &f->s[0]));
			continue;
		}
		list = json_array();
		for (size_t j = 0; j < f->n; j++)
			json_array_append_new(list, sample_json(f, &f->s[j]));
		json_object_set_new(o, key, list);
	}
}
