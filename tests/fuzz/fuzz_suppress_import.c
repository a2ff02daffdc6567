/* fuzz_suppress_import.c - the import file parser on anything: suppress_import_parse() line
 * by line (a header line changes how later lines are read), then what the import does with
 * a record: the address normalised, the time fields parsed. It must never crash, read or
 * write outside the line, or leak; what it returns must hold together:
 *  - a record's strings point into the line;
 *  - a normalised address has one unquoted '@' split, fits SUPPRESS_ADDRESS_MAX, and is
 *    its own normal form (normalising twice changes nothing), in both case rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suppress/suppress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
inside(const char *p, const char *buf, size_t len)
{
	return p == NULL ||
	       (p >= buf && p <= buf + len && memchr(p, '\0', len + 1 - (size_t)(p - buf)));
}

static void
check_address(const char *address)
{
	char a[SUPPRESS_ADDRESS_MAX + 1], b[SUPPRESS_ADDRESS_MAX + 1];
	const char *why = NULL;

	for (int fold = 0; fold <= 1; fold++) {
		int n = suppress_address_normalize(address, fold, a, sizeof(a), &why);

		if (n < 0) {
			if (why == NULL)
				abort(); /* a refusal always says why */
			continue;
		}
		if ((size_t)n != strlen(a) || n > SUPPRESS_ADDRESS_MAX || strrchr(a, '@') == NULL)
			abort();
		if (suppress_address_normalize(a, fold, b, sizeof(b), NULL) != n ||
		    strcmp(a, b) != 0) {
			fprintf(stderr, "not idempotent: \"%s\" -> \"%s\"\n", a, b);
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct suppress_columns cols = {0};
	size_t start = 0;

	while (start < size) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t len = nl != NULL ? (size_t)(nl - data) - start + 1 : size - start;
		/* Exactly len + 1 octets: ASan sees any access past the line's room. */
		char *line = malloc(len + 1);
		struct suppress_record rec = {.reason = SUPPRESS_IMPORT};
		char err[256];
		uint64_t t;
		int r;

		memcpy(line, data + start, len);
		line[len] = '\0';
		err[0] = '\0';
		r = suppress_import_parse(&cols, line, len, &rec, err, sizeof(err));
		if (r < -1 || r > 1 || (r < 0 && err[0] == '\0'))
			abort();
		if (r == 1) {
			if (rec.address == NULL || !inside(rec.address, line, len) ||
			    !inside(rec.tenant, line, len) || !inside(rec.source, line, len) ||
			    (unsigned)rec.reason >= SUPPRESS_REASON_COUNT)
				abort();
			check_address(rec.address);
		}
		/* The whole line as a time, as a CSV field might be. */
		if (memchr(data + start, '\0', len) == NULL) {
			memcpy(line, data + start, len);
			line[len] = '\0';
			suppress_time_parse(line, &t);
		}
		free(line);
		start += len;
	}
	return 0;
}
