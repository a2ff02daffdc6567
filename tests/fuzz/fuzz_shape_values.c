/* Fuzz what the shaping component parses from text that is not the operator's alone: rate
 * strings ("300/min burst 20", also set at runtime through the control API), trigger strings
 * ("3 in 5m"), durations, dates, code and status patterns, and the matching of adaptive rules
 * against replies (code, enhanced status and text as a remote server sent them). The first
 * octet chooses; the rest is the input. A rate that parses must format to text that parses
 * to the same rate. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char rules_text[] =
    "provider \"p\" { domains = [\"p.example\"] }\n"
    "adaptive \"ts\" { provider = \"p\" code = [\"421\", \"45x\"] status = [\"4.7.*\", \"5.7.1\"]\n"
    "  text = '\\[TSS?0[1-4]\\]|rate ?limit(ed)?|(a|aa)+$' action = \"suspend-source\"\n"
    "  duration = \"1h\" }\n"
    "adaptive \"count\" { code = \"4xx\" trigger = \"3 in 5m\" action = \"limit\"\n"
    "  max_connections = 1 duration = \"10m\" }\n"
    "adaptive \"any\" { status = \"*.*.*\" action = \"backoff\" duration = \"5m\" }\n";

static struct shape_rules *rules;

static void
check_rate(const char *text)
{
	struct shape_rate a, b;
	const char *why;
	char buf[128];

	if (shape_rate_parse(text, &a, &why) != 0)
		return;
	shape_rate_format(&a, buf, sizeof(buf));
	if (shape_rate_parse(buf, &b, &why) != 0 || a.count != b.count ||
	    (a.count != 0 && (a.per_s != b.per_s || a.burst != b.burst)))
		abort();
	if (a.count != 0 && (a.burst == 0 || a.burst > a.count || a.per_s == 0))
		abort();
}

static void
check_reply(const char *text, size_t len)
{
	struct shape_state *st = shape_state_new(rules, 16, 4);
	struct shape_event ev[4];
	char status[16];
	int code = len >= 3 ? (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0') : 0;
	size_t sl = len > 3 ? strcspn(text + 3, " ") : 0;

	if (sl >= sizeof(status))
		sl = sizeof(status) - 1;
	memcpy(status, len > 3 ? text + 3 : "", sl);
	status[sl] = '\0';
	for (int i = 0; i < 4; i++)
		shape_observe(st, "ip-1", i % 2 ? "p" : NULL, "p.example", code, status, text,
		              (uint64_t)i * 1000000, ev, 4);
	shape_state_free(st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	const char *why;
	uint64_t u;
	unsigned n;
	int64_t day;
	struct code_pat c;
	struct status_pat s;
	int16_t st[3];

	if (size < 1 || size > 8192)
		return 0;
	if (rules == NULL) {
		char err[1024];

		rules = shape_rules_parse("fuzz", rules_text, strlen(rules_text), NULL, NULL, err,
		                          sizeof(err));
		if (rules == NULL)
			abort();
	}
	text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 8) {
	case 0:
		check_rate(text);
		break;
	case 1:
		if (sh_parse_trigger(text, &n, &u, &why) == 0 &&
		    (n == 0 || n > SHAPE_TRIGGER_MAX || (n > 1 && u == 0)))
			abort();
		break;
	case 2:
		sh_parse_duration(text, &u, &why);
		break;
	case 3:
		if (sh_parse_date(text, &day, &why) == 0 && day < 0)
			abort();
		break;
	case 4:
		sh_parse_code_pat(text, &c, &why);
		sh_parse_status_pat(text, &s, &why);
		sh_status_parse(text, st);
		break;
	default:
		/* Replies: NULs cut the text as a C string would. */
		check_reply(text, strlen(text));
		break;
	}
	free(text);
	return 0;
}
