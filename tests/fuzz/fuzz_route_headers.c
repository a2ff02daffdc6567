/* fuzz_route_headers - the header section parser of classification (route/header.c) and a
 * classification (route/rules.c) on arbitrary bytes, as a client may send them. Whatever
 * comes out must honour route.h's promises: fields in order, inside the buffer, not
 * overlapping; a value without line ends or blanks at its ends, never longer than asked; a
 * section complete at one length stays complete, at the same place, with more data; removing
 * the X-Drover-* fields leaves none, keeps every other field as it was, and a second removal
 * changes nothing; a classification's names are the configuration's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/conf.h"
#include "route/route.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 65536

static struct config *cfg;
static struct route_rules *rules;

static const char config_text[] =
    "source \"a\" { address = \"192.0.2.10\" }\n"
    "pool \"tx\" { source \"a\" { } }\n"
    "pool \"bulk\" { source \"a\" { } }\n"
    "stream \"bulk\" { pool = \"bulk\" }\n"
    "tenant \"acme\" { }\n"
    "classification {\n"
    "  rule { header = { \"Precedence: ^(bulk|list|junk)$\", \"List-Unsubscribe:\" }\n"
    "         stream = \"bulk\" campaign_header = \"X-Campaign-Id\" }\n"
    "  rule { from_domain = { \"example.com\" } tenant = \"acme\" }\n"
    "  rule { header = { \"Subject: (a+)+$\" } campaign = \"backtrack\" }\n"
    "  rule { trust_headers = true }\n"
    "}\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/drover-fuzz-route-XXXXXX", err[4096];
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, config_text, sizeof(config_text) - 1) < 0)
		abort();
	close(fd);
	cfg = config_load(path, err, sizeof(err));
	unlink(path);
	if (cfg == NULL) {
		fprintf(stderr, "fuzz_route_headers: %s\n", err);
		abort();
	}
	rules = route_rules_new(cfg);
	return 0;
}

static bool
is_drover(const char *p, const struct route_field *f)
{
	return route_field_is_drover(p, f);
}

static void
check_fields(const char *p, size_t n)
{
	struct route_field f;
	size_t pos = 0, last_end = 0;
	char value[64];
	int rc;

	while ((rc = route_header_next(p, n, &pos, &f)) == 1) {
		size_t len;

		if (f.start != last_end || f.start >= f.end || f.end > n || f.name_len == 0 ||
		    f.start + f.name_len >= f.value || f.value > f.end || pos != f.end)
			abort();
		if (f.complete &&
		    (f.end >= n || p[f.end] == ' ' || p[f.end] == '\t' || p[f.end - 1] != '\n'))
			abort();
		if (!f.complete && f.end != n)
			abort();
		len = route_field_value(p, &f, value, sizeof(value));
		if (len >= sizeof(value) || value[len] != '\0')
			abort();
		if (memchr(value, '\r', len) != NULL || memchr(value, '\n', len) != NULL)
			abort();
		if (len > 0 && (value[0] == ' ' || value[0] == '\t'))
			abort();
		/* Trimmed at its end too, unless it was cut there. */
		if (len > 0 && len + 1 < sizeof(value) &&
		    (value[len - 1] == ' ' || value[len - 1] == '\t'))
			abort();
		last_end = f.end;
	}
	if (rc != 0 && rc != -1)
		abort();
	if (pos != last_end || pos > n)
		abort();
}

static void
check_complete(const char *p, size_t n)
{
	size_t end, end_all;
	bool complete = route_header_complete(p, n / 2, false, &end);

	if (end > n / 2)
		abort();
	if (!route_header_complete(p, n / 2, true, &end_all))
		abort(); /* final: always complete */
	if (complete && end_all != end)
		abort();
	/* More data does not move an end already found. */
	if (complete && (!route_header_complete(p, n, false, &end_all) || end_all != end))
		abort();
}

/* The fields other than X-Drover-* of p[0..n), concatenated, into out; their length. */
static size_t
others(const char *p, size_t n, char *out)
{
	struct route_field f;
	size_t pos = 0, o = 0;

	while (route_header_next(p, n, &pos, &f) == 1)
		if (!is_drover(p, &f)) {
			memcpy(out + o, p + f.start, f.end - f.start);
			o += f.end - f.start;
		}
	return o;
}

static void
check_strip(const char *p, size_t n)
{
	char *copy = malloc(n + 1), *before = malloc(n + 1), *after = malloc(n + 1);
	size_t len, kept, kept_after, pos = 0;
	struct route_field f;

	memcpy(copy, p, n);
	kept = others(p, n, before);
	len = route_strip_drover_fields(copy, n);
	if (len > n)
		abort();
	while (route_header_next(copy, len, &pos, &f) == 1)
		if (is_drover(copy, &f))
			abort();
	kept_after = others(copy, len, after);
	/* Removing a field may join what follows it to the section (a line that ended it), so
	 * compare what was there: it must be kept, in order. */
	if (kept_after < kept || memcmp(before, after, kept) != 0)
		abort();
	if (route_strip_drover_fields(copy, len) != len)
		abort();
	free(copy);
	free(before);
	free(after);
}

static bool
named_in_config(const char *name, bool stream)
{
	if (name == NULL)
		return true;
	if (stream)
		return strcmp(name, "default") == 0 || config_stream(cfg, name) != NULL;
	return config_pool(cfg, name) != NULL;
}

static void
check_classify(const char *p, size_t n)
{
	struct route_result r;
	struct route_message m = {
	    .listener = "smtp",
	    .sender = "a@example.com",
	    .nrcpt = 1 + n % 3,
	    .headers = p,
	    .headers_len = n,
	};
	int lines[8];

	route_classify(rules, &m, &r);
	if (r.error == ROUTE_OK &&
	    (!named_in_config(r.stream, true) || !named_in_config(r.pool, false)))
		abort();
	if (r.tenant != NULL && config_tenant(cfg, r.tenant) == NULL)
		abort();
	if (r.campaign[0] != '\0') {
		size_t len = strlen(r.campaign);

		if (len > ROUTE_CAMPAIGN_MAX)
			abort();
		for (size_t i = 0; i < len; i++)
			if (r.campaign[i] < 0x20 || r.campaign[i] > 0x7e)
				abort();
	}
	if (strlen(r.bad_value) > ROUTE_SHOWN_MAX + 3)
		abort();
	for (const char *s = r.bad_value; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"')
			abort();
	if ((r.stream_from_field || r.pool_from_field || r.tenant_from_field ||
	     r.campaign_from_field) &&
	    !r.trusted)
		abort();
	if (route_result_lines(rules, &r, lines, 8) > 5)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p;

	if (size > INPUT_MAX)
		return 0;
	/* Exactly size octets: any read past the end is caught. */
	p = malloc(size ? size : 1);
	memcpy(p, data, size);
	check_fields(p, size);
	check_complete(p, size);
	check_strip(p, size);
	check_classify(p, size);
	free(p);
	return 0;
}
