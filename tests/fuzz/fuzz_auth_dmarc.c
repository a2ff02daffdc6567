/* fuzz_auth_dmarc - DMARC record parsing, From domain extraction, organizational domains and
 * alignment, and discovery plus evaluation of any records, on arbitrary bytes. The first byte
 * picks what to run; the rest is a TXT record, a header section, two domain names, or records
 * (one per line) published at _dmarc.example.com. Whatever comes out must honour auth.h's
 * promises: a record's values in range, messages printable and terminated, a From domain a
 * valid lower-case name, an organizational domain a suffix of its domain, strict alignment
 * implying relaxed, a disposition never harsher than the policy, a printable resinfo. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dmarc_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX   16384
#define RECORDS_MAX 8

static struct dmarc_psl *psl;

/* Terminated, and no control character (a reason may cite "RFC 7489 §6.6.3" in UTF-8). */
static void
printable(const char *s, size_t size)
{
	if (memchr(s, '\0', size) == NULL)
		abort();
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			abort();
}

/* What goes into a header field: printable ASCII only. */
static void
ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

static void
check_record(const char *text, size_t len)
{
	struct dmarc_record rec;
	char err[256];
	int rc = dmarc_record_parse(text, len, &rec, err, sizeof(err));

	printable(err, sizeof(err));
	if (rc == 0 && (dmarc_version_len(text, len) != 0 || err[0] != '\0'))
		abort();
	if (rc == -1 && (dmarc_version_len(text, len) == 0 || err[0] == '\0' || rec.nrua != 0))
		abort();
	if (rc == 1) {
		if (rec.p > DMARC_P_REJECT || rec.sp > DMARC_P_REJECT || rec.pct > 100 ||
		    rec.fo == 0 || rec.fo > 0xf)
			abort();
		if ((rec.nrua > 0) != (rec.rua[0] != '\0') ||
		    (rec.nruf > 0) != (rec.ruf[0] != '\0'))
			abort();
		if (strlen(rec.rua) > DMARC_URIS_TEXT_MAX || strlen(rec.ruf) > DMARC_URIS_TEXT_MAX)
			abort();
		if (rec.p_fallback != (err[0] != '\0'))
			abort();
		if (rec.p_fallback && (rec.p != DMARC_P_NONE || rec.nrua == 0))
			abort();
		if (!rec.sp_given && rec.sp != rec.p)
			abort();
	}
}

static void
check_from(const char *text, size_t len)
{
	char out[DNS_NAME_MAX + 1], err[256];

	if (dmarc_from_domain(text, len, out, err, sizeof(err)) == 0) {
		if (!dkim_domain_valid(out, strlen(out)))
			abort();
		for (const char *p = out; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
	} else if (out[0] != '\0' || err[0] == '\0') {
		abort();
	}
	printable(err, sizeof(err));
}

static void
check_domains(const char *a, const char *b)
{
	char org[DNS_NAME_MAX + 1], norm[DNS_NAME_MAX + 1];

	if (dmarc_org_domain(psl, a, org) == 0) {
		size_t n, o = strlen(org);

		if (dmarc_domain_norm(a, norm) != 0)
			abort();
		n = strlen(norm);
		if (o == 0 || o > n || strcmp(norm + n - o, org) != 0 ||
		    (o < n && norm[n - o - 1] != '.'))
			abort();
	}
	bool strict = dmarc_aligned(psl, DMARC_ALIGN_STRICT, a, b);
	bool relaxed = dmarc_aligned(psl, DMARC_ALIGN_RELAXED, a, b);
	if (strict && !relaxed)
		abort();
	if (relaxed != dmarc_aligned(psl, DMARC_ALIGN_RELAXED, b, a))
		abort();
}

static void
on_outcome(void *arg, const struct dmarc_outcome *o)
{
	char *info;

	*(int *)arg += 1;
	if (o->result > DMARC_PERMERROR || o->disposition > o->policy || o->pct > 100)
		abort();
	if (o->result == DMARC_PASS &&
	    (o->disposition != DMARC_P_NONE || (!o->spf_aligned && !o->dkim_aligned)))
		abort();
	if (o->result != DMARC_PASS && o->result != DMARC_FAIL && o->policy != DMARC_P_NONE)
		abort();
	printable(o->reason, sizeof(o->reason));
	info = dmarc_resinfo(o);
	ascii(info);
	free(info);
}

static void
check_discovery(const char *text, size_t len, uint8_t flags)
{
	static const char *pairs[2 * RECORDS_MAX + 3];
	static char copies[RECORDS_MAX][INPUT_MAX + 1];
	struct dkim_sig_result sig = {.result = DKIM_RESULT_PASS};
	struct dkim_results dr = {.n = 1, .sigs = &sig};
	struct dmarc_request req = {.spf = (flags & 0x10) ? SPF_PASS : SPF_FAIL,
	                            .spf_domain =
	                                (flags & 0x20) ? "bounce.example.com" : "x.example",
	                            .dkim = (flags & 0x40) ? &dr : NULL,
	                            .pct_roll = 1 + (flags & 0x7) * 14};
	struct dkim_lookup lookup;
	size_t n = 0, start = 0;
	int calls = 0;

	strcpy(sig.domain, (flags & 0x80) ? "mail.example.com" : "example.net");
	/* One record per line, at the From domain or (flag 0x08) its organizational domain. */
	for (size_t i = 0; i <= len && n < RECORDS_MAX; i++) {
		if (i < len && text[i] != '\n')
			continue;
		memcpy(copies[n], text + start, i - start);
		copies[n][i - start] = '\0';
		pairs[2 * n] = (flags & 0x08) ? "_dmarc.example.com" : "_dmarc.mail.example.com";
		pairs[2 * n + 1] = copies[n];
		n++;
		start = i + 1;
	}
	pairs[2 * n] = NULL;
	dmarc_lookup_table(&lookup, pairs);
	if (dmarc_check_start(&lookup, psl, "mail.example.com", &req, on_outcome, &calls) != NULL ||
	    calls != 1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[INPUT_MAX + 1];
	size_t len;

	if (psl == NULL && (psl = dmarc_psl_load(NULL, NULL, 0)) == NULL)
		abort();
	if (size < 1 || size - 1 > INPUT_MAX)
		return 0;
	len = size - 1;
	memcpy(text, data + 1, len);
	text[len] = '\0';

	switch (data[0] & 0x03) {
	case 0:
		check_record(text, len);
		break;
	case 1:
		check_from(text, len);
		break;
	case 2: {
		/* Two names separated by a NUL or a newline (the rest, if no separator). */
		char *sep = memchr(text, '\n', len);

		if (sep != NULL)
			*sep = '\0';
		check_domains(text, sep != NULL ? sep + 1 : "");
		break;
	}
	default:
		check_discovery(text, len, data[0]);
		break;
	}
	return 0;
}
