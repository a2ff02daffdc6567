/* dmarc_util.c - DMARC's vocabulary: result and policy names, the SPF domain it aligns, and
 * the resinfo for Authentication-Results (RFC 8601, RFC 7489 §11.2). */
#include <string.h>

#include "auth/dmarc_internal.h"
#include "core/core.h"

const char *
dmarc_result_name(enum dmarc_result r)
{
	static const char *const names[] = {
	    [DMARC_NONE] = "none",           [DMARC_PASS] = "pass",           [DMARC_FAIL] = "fail",
	    [DMARC_TEMPERROR] = "temperror", [DMARC_PERMERROR] = "permerror",
	};

	if ((unsigned)r >= nitems(names))
		return "?";
	return names[r];
}

const char *
dmarc_p_name(enum dmarc_p p)
{
	static const char *const names[] = {
	    [DMARC_P_NONE] = "none",
	    [DMARC_P_QUARANTINE] = "quarantine",
	    [DMARC_P_REJECT] = "reject",
	};

	if ((unsigned)p >= nitems(names))
		return "?";
	return names[p];
}

const char *
dmarc_spf_domain(const struct spf_outcome *o)
{
	const char *at;

	/* Not o->domain: after a redirect= that is the domain whose record decided, while DMARC
	 * aligns the identity itself (§3.1.2). */
	if (o->scope == NULL || o->identity == NULL || strcmp(o->scope, "pra") == 0)
		return NULL;
	at = strrchr(o->identity, '@');
	return at != NULL ? at + 1 : o->identity;
}

char *
dmarc_resinfo(const struct dmarc_outcome *o)
{
	struct dbuf b = {0};

	dbuf_printf(&b, "dmarc=%s", dmarc_result_name(o->result));
	if (o->result == DMARC_PASS || o->result == DMARC_FAIL) {
		dbuf_printf(&b, " (p=%s", o->record_p);
		if (o->subdomain)
			dbuf_printf(&b, " sp=%s", dmarc_p_name(o->policy));
		if (o->pct < 100)
			dbuf_printf(&b, " pct=%u", o->pct);
		dbuf_printf(&b, " dis=%s)", dmarc_p_name(o->disposition));
	}
	if (o->result != DMARC_PASS && o->reason[0] != '\0') {
		/* A quoted-string of ASCII (the field may travel without SMTPUTF8): '"' and '\'
		 * escaped, the "§" of RFC references spelt out, anything else outside printable
		 * ASCII dropped (reasons quote records with such octets shown as '?' already). */
		dbuf_adds(&b, " reason=\"");
		for (const unsigned char *p = (const unsigned char *)o->reason; *p; p++) {
			if (p[0] == 0xc2 && p[1] == 0xa7) {
				dbuf_adds(&b, "section ");
				p++;
				continue;
			}
			if (*p < 0x20 || *p >= 0x7f)
				continue;
			if (*p == '"' || *p == '\\')
				dbuf_addc(&b, '\\');
			dbuf_addc(&b, (char)*p);
		}
		dbuf_addc(&b, '"');
	}
	if (o->from_domain[0] != '\0')
		dbuf_printf(&b, " header.from=%s", o->from_domain);
	return dbuf_steal(&b);
}
