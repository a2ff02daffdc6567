/* test_control_exposition.c - the metrics as Prometheus reads them: the text is parsed back
 * line by line (every line a # HELP or # TYPE comment, or name{labels} value; one HELP and
 * TYPE per family, before its samples; no series twice), label values come back as they
 * were, histograms are cumulative with +Inf equal to _count, and the JSON says the same. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/exposition.h"
#include "core/core.h"

#define SERIES_MAX 256

struct series {
	char name[128];
	char labels[512]; /* as written between the braces, "" if none */
	double value;
};

struct parsed {
	struct series s[SERIES_MAX];
	size_t n;
	char typed[64][128]; /* families with # TYPE, in order */
	char types[64][16];
	size_t ntyped;
};

static bool
name_char(char c, bool first)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':' ||
	       (!first && isdigit((unsigned char)c));
}

/* The family a sample name belongs to: itself, or a histogram's without its suffix. */
static const char *
family_of(const struct parsed *p, const char *name)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};

	for (size_t i = 0; i < p->ntyped; i++) {
		size_t len = strlen(p->typed[i]);

		if (strcmp(p->typed[i], name) == 0)
			return p->typed[i];
		if (strcmp(p->types[i], "histogram") != 0 || strncmp(p->typed[i], name, len) != 0)
			continue;
		for (size_t k = 0; k < nitems(suffixes); k++)
			if (strcmp(name + len, suffixes[k]) == 0)
				return p->typed[i];
	}
	return NULL;
}

/* Parses the whole text strictly, failing the test at the first line that is not right. */
static void
parse(const char *text, struct parsed *p)
{
	char help_seen[64][128];
	size_t nhelp = 0;
	const char *line = text;

	memset(p, 0, sizeof(*p));
	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		char buf[1024];
		size_t len;

		assert_non_null(end); /* every line ends with \n, the last one too */
		len = (size_t)(end - line);
		assert_true(len > 0 && len < sizeof(buf));
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = end + 1;
		if (strncmp(buf, "# HELP ", 7) == 0) {
			char *name = buf + 7, *sp = strchr(name, ' ');

			assert_non_null(sp);
			*sp = '\0';
			for (size_t i = 0; i < nhelp; i++)
				assert_string_not_equal(help_seen[i], name);
			strlcpy_s(help_seen[nhelp++], name, sizeof(help_seen[0]));
			continue;
		}
		if (strncmp(buf, "# TYPE ", 7) == 0) {
			char *name = buf + 7, *sp = strchr(name, ' ');

			assert_non_null(sp);
			*sp = '\0';
			/* HELP comes first, for this family, and TYPE once. */
			assert_true(nhelp > 0);
			assert_string_equal(help_seen[nhelp - 1], name);
			for (size_t i = 0; i < p->ntyped; i++)
				assert_string_not_equal(p->typed[i], name);
			assert_true(strcmp(sp + 1, "counter") == 0 ||
			            strcmp(sp + 1, "gauge") == 0 ||
			            strcmp(sp + 1, "histogram") == 0);
			strlcpy_s(p->typed[p->ntyped], name, sizeof(p->typed[0]));
			strlcpy_s(p->types[p->ntyped++], sp + 1, sizeof(p->types[0]));
			continue;
		}
		assert_true(buf[0] != '#');
		{
			struct series *s = &p->s[p->n++];
			const char *c = buf, *fam;
			size_t k = 0;
			char *vend;

			assert_true(name_char(*c, true));
			while (name_char(*c, k == 0) && k + 1 < sizeof(s->name))
				s->name[k++] = *c++;
			if (*c == '{') {
				const char *open = ++c;

				/* name="value" pairs, values with \\ \" \n escapes only. */
				for (;;) {
					assert_true(name_char(*c, true));
					while (name_char(*c, false))
						c++;
					assert_true(*c++ == '=');
					assert_true(*c++ == '"');
					for (; *c != '"'; c++) {
						assert_true(*c != '\0');
						if (*c == '\\') {
							c++;
							assert_true(*c == '\\' || *c == '"' ||
							            *c == 'n');
						}
					}
					c++;
					if (*c == '}')
						break;
					assert_true(*c++ == ',');
				}
				memcpy(s->labels, open, (size_t)(c - open));
				c++;
			}
			assert_true(*c++ == ' ');
			s->value = strtod(c, &vend);
			assert_true(vend != c && *vend == '\0');
			/* Its family is typed before it, and this is the family's last typed. */
			fam = family_of(p, s->name);
			assert_non_null(fam);
			assert_string_equal(fam, p->typed[p->ntyped - 1]);
			for (size_t i = 0; i + 1 < p->n; i++)
				assert_false(strcmp(p->s[i].name, s->name) == 0 &&
				             strcmp(p->s[i].labels, s->labels) == 0);
		}
	}
}

static const struct series *
find(const struct parsed *p, const char *name, const char *labels)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->s[i].name, name) == 0 && strcmp(p->s[i].labels, labels) == 0)
			return &p->s[i];
	fail_msg("no series %s{%s}", name, labels);
	return NULL;
}

static void
build(struct exposition *x, struct histogram *h)
{
	struct expo_family *f;
	struct expo_sample *s;

	expo_scalar(x, "drover_things_total", EXPO_COUNTER, "Things.", 12345678901.0);
	expo_scalar(x, "drover_ratio", EXPO_GAUGE, "A fraction.", 0.25);
	f = expo_family(x, "drover_labelled", EXPO_GAUGE, "Labelled values.");
	s = expo_value(f, 3);
	expo_label(s, "site", "gmail");
	expo_label(s, "stream", "bulk");
	s = expo_value(f, 4);
	expo_label(s, "site", "odd \"name\" with \\ and\nline");
	expo_label(s, "stream", "bulk");
	expo_family(x, "drover_empty", EXPO_GAUGE, "Nothing to count now: its header only.");
	f = expo_family(x, "drover_wait_seconds", EXPO_HISTOGRAM, "Waits.");
	expo_label(expo_histogram(f, h, 1e6), "user", "delivery");
	expo_label(expo_histogram(f, NULL, 1e6), "user", "verify");
	f = expo_family(x, "drover_own", EXPO_COUNTER, "Shown in JSON elsewhere.");
	f->own_json = true;
	expo_value(f, 1);
}

static void
test_text_parses_back(void **state)
{
	static const uint64_t bounds[] = {100, 2500, 1000000};
	struct histogram *h = histogram_new(bounds, nitems(bounds));
	struct exposition x = {0};
	struct parsed *p = xcalloc(1, sizeof(*p));
	char *text;

	histogram_observe(h, 50);      /* 0.00005 s */
	histogram_observe(h, 2500);    /* on the bound: counted there */
	histogram_observe(h, 3000000); /* above all: +Inf only */
	build(&x, h);
	text = expo_text(&x);
	parse(text, p);

	assert_int_equal(p->ntyped, 6);
	assert_non_null(strstr(text, "# TYPE drover_empty gauge\n# HELP drover_wait_seconds"));
	assert_string_equal(p->types[0], "counter");
	assert_string_equal(p->types[4], "histogram");
	assert_true(find(p, "drover_things_total", "")->value == 12345678901.0);
	assert_non_null(strstr(text, "drover_things_total 12345678901\n"));
	assert_non_null(strstr(text, "drover_ratio 0.25\n"));
	assert_true(find(p, "drover_labelled", "site=\"gmail\",stream=\"bulk\"")->value == 3);
	assert_true(find(p, "drover_labelled",
	                 "site=\"odd \\\"name\\\" with \\\\ and\\nline\",stream=\"bulk\"")
	                ->value == 4);

	/* Bounds in seconds, cumulative, +Inf = _count, _sum in seconds. */
	assert_true(
	    find(p, "drover_wait_seconds_bucket", "user=\"delivery\",le=\"0.0001\"")->value == 1);
	assert_true(
	    find(p, "drover_wait_seconds_bucket", "user=\"delivery\",le=\"0.0025\"")->value == 2);
	assert_true(find(p, "drover_wait_seconds_bucket", "user=\"delivery\",le=\"1\"")->value ==
	            2);
	assert_true(find(p, "drover_wait_seconds_bucket", "user=\"delivery\",le=\"+Inf\"")->value ==
	            3);
	assert_true(find(p, "drover_wait_seconds_count", "user=\"delivery\"")->value == 3);
	assert_non_null(strstr(text, "drover_wait_seconds_sum{user=\"delivery\"} 3.00255\n"));
	assert_true(find(p, "drover_wait_seconds_count", "user=\"verify\"")->value == 0);
	assert_true(find(p, "drover_wait_seconds_bucket", "user=\"verify\",le=\"+Inf\"")->value ==
	            0);
	free(text);
	free(p);
	expo_free(&x);
	histogram_free(h);
}

static void
test_json(void **state)
{
	static const uint64_t bounds[] = {100, 2500};
	struct histogram *h = histogram_new(bounds, nitems(bounds));
	struct exposition x = {0};
	json_t *o = json_object(), *l, *w, *b;

	histogram_observe(h, 200);
	build(&x, h);
	expo_json(&x, o);
	assert_int_equal(json_integer_value(json_object_get(o, "things_total")), 12345678901LL);
	assert_true(json_real_value(json_object_get(o, "ratio")) == 0.25);
	l = json_object_get(o, "labelled");
	assert_true(json_is_array(l) && json_array_size(l) == 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "site")),
	                    "gmail");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(l, 1), "value")), 4);
	w = json_object_get(o, "wait_seconds");
	assert_true(json_is_array(w) && json_array_size(w) == 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(w, 0), "count")), 1);
	b = json_object_get(json_array_get(w, 0), "buckets");
	assert_int_equal(json_integer_value(json_object_get(b, "0.0001")), 0);
	assert_int_equal(json_integer_value(json_object_get(b, "0.0025")), 1);
	assert_int_equal(json_integer_value(json_object_get(b, "+Inf")), 1);
	assert_null(json_object_get(o, "own"));
	assert_int_equal(json_array_size(json_object_get(o, "empty")), 0);
	json_decref(o);
	expo_free(&x);
	histogram_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text_parses_back),
	    cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
