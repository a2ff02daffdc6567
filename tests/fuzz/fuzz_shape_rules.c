/* Fuzz the shaping rules file on arbitrary contents (read from disk, as a reload does):
 * sections, titles, lists, include(), every setting's value. A bad file must give errors
 * naming the file, never a crash or a leak; what loads must answer every question (layers,
 * providers, adaptive rules on a few replies, warm-up caps) without trouble. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shape/shape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
	int code;
	const char *status, *text;
} replies[] = {
    {421, "4.7.0", "[TS01] Messages from 192.0.2.1 temporarily deferred"},
    {451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited"},
    {550, "5.7.1", "blocked using zen.spamhaus.org"},
    {0, NULL, NULL},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/drover-fuzz-shaping-XXXXXX", err[4096];
	const char *mx[] = {"gmail-smtp-in.l.google.com", "mx.example.net."};
	struct shape_rules *r;
	struct shape_state *st;
	struct shape_params p;
	struct shape_event ev[8];
	uint64_t now = 1796083200ULL * 1000000ULL, cap, when;
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	r = shape_rules_load(path, NULL, NULL, err, sizeof(err));
	unlink(path);
	if (r == NULL) {
		if (strncmp(err, path, strlen(path)) != 0)
			abort(); /* every error names the file */
		return 0;
	}
	st = shape_state_new(r, 64, 16);
	for (size_t i = 0; i <= shape_provider_count(r) && i < 4; i++) {
		const char *prov = shape_provider_name(r, i); /* NULL at the end: none */

		for (size_t k = 0; k < sizeof(replies) / sizeof(replies[0]); k++) {
			shape_observe(st, "ip-1", prov, "example.com", replies[k].code,
			              replies[k].status, replies[k].text, now, ev, 8);
			shape_observe(st, NULL, prov, "example.com", replies[k].code,
			              replies[k].status, replies[k].text, now + 1, ev, 8);
		}
		shape_effective(st, "ip-1", prov, "example.com", now, &p);
		if (p.s.initial_connections > p.s.max_connections || p.s.nretry > SHAPE_RETRY_MAX)
			abort();
		if (shape_conn_acquire(st, "ip-1", &p, now, &when) == SHAPE_GO)
			shape_conn_release(st, "ip-1", p.dest);
		shape_message_take(st, "ip-1", &p, now, &when);
		shape_warmup_allow(st, "ip-1", p.dest, now, &when);
		shape_warmup_count(st, "ip-1", p.dest, now, 1);
		shape_warmup_cap(r, "ip-1", p.dest, now, &cap);
		shape_observe_success(st, "ip-1", p.dest, now, ev, 8);
	}
	shape_provider_of(r, "gmail.com", mx, 2);
	shape_provider_of(r, "example.com", mx, 2);
	shape_active(st, now, ev, 8);
	while (shape_expire(st, now + 400ULL * 86400 * 1000000, ev, 8) == 8)
		;
	shape_state_free(st);
	shape_rules_unref(r);
	return 0;
}
