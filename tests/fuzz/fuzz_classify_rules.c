/* Fuzz the bounce rules file parser on arbitrary file contents (read from disk, as a reload
 * does): directives, providers and their names, code and status lists, regexes. A mistake in
 * the file must give an error naming the file, never a crash; what loads must classify (with
 * and without its cache, to the same answer), map names to providers and decide. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify/classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const replies[] = {
    "The email account that you tried to reach does not exist. (someone@example.com)",
    "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume",
    "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
    "",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/drover-fuzz-rules-XXXXXX", err[1024];
	struct classify_table *t;
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	t = classify_load(path, 64, err, sizeof(err));
	unlink(path);
	if (t == NULL) {
		if (strncmp(err, path, strlen(path)) != 0)
			abort(); /* every error names the file */
		return 0;
	}
	for (size_t p = 0; p <= classify_provider_count(t) && p < 4; p++) {
		const char *prov = classify_provider_name(t, p); /* NULL at the end: none */

		for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
			struct classify_result a, b;

			classify_reply(t, prov, 550, "5.1.1", replies[i], &a);
			classify_reply(t, prov, 550, "5.1.1", replies[i], &b);
			if (a.category != b.category || a.rule != b.rule || !b.cached)
				abort(); /* the cache must give the rules' answer */
			if (a.rule >= (int)classify_rule_count(t) ||
			    (a.rule >= 0 && a.line != classify_rule_line(t, (size_t)a.rule)))
				abort();
			classify_reply(t, prov, 421, "4.7.0", replies[i], &a);
			classify_reply(t, prov, 0, NULL, replies[i], &a);
			classify_decide(t, prov, a.category, 421, NULL);
			classify_decide(t, prov, a.category, 550, NULL);
		}
	}
	classify_provider_of(t, "gmail-smtp-in.l.google.com");
	classify_provider_of(t, "example.com.");
	classify_unref(t);
	return 0;
}
