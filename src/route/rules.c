/* route/rules.c - the classification rules compiled once per configuration, and the judgement
 * of one message against them.
 *
 * The configuration keeps each rule as written (conf.h struct classification_rule_conf);
 * here its header patterns are compiled with PCRE2 (the JIT where it works), once, and kept
 * beside it. conf/ compiled them only to report a bad one with its line, so it hands out no
 * PCRE2 objects and needs no PCRE2 after loading.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "core/core.h"
#include "route/route.h"

#define STREAM_DEFAULT "default"

struct compiled_rule {
	const struct classification_rule_conf *conf;
	pcre2_code **headers; /* one per conf->headers entry; NULL for "the field is there" */
};

struct route_rules {
	const struct config *cfg;
	struct compiled_rule *rules;
	size_t nrules;
	pcre2_match_context *mctx; /* read-only once made: shared by every thread */
	bool any_from_domain;      /* some rule looks at the header From's domain */
};

struct route_rules *
route_rules_new(const struct config *cfg)
{
	struct route_rules *rr = xcalloc(1, sizeof(*rr));

	rr->cfg = cfg;
	rr->nrules = cfg->nclassification_rules;
	rr->rules = xcalloc(rr->nrules ? rr->nrules : 1, sizeof(*rr->rules));
	for (size_t i = 0; i < rr->nrules; i++) {
		const struct classification_rule_conf *c = &cfg->classification_rules[i];
		struct compiled_rule *r = &rr->rules[i];

		r->conf = c;
		r->headers = xcalloc(c->nheaders ? c->nheaders : 1, sizeof(*r->headers));
		for (size_t k = 0; k < c->nheaders; k++) {
			size_t off;
			int rc;

			if (c->headers[k].pattern[0] == '\0')
				continue;
			/* Byte mode, never UTF: header values are not always valid UTF-8, and a UTF
			 * pattern would refuse to match those instead of matching what it can. The
			 * same options conf/routing.c checks the pattern with. */
			r->headers[k] =
			    pcre2_compile((PCRE2_SPTR)c->headers[k].pattern, PCRE2_ZERO_TERMINATED,
			                  PCRE2_CASELESS | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP |
			                      PCRE2_NO_AUTO_CAPTURE,
			                  &rc, &off, NULL);
			if (r->headers[k] == NULL)
				fatal("route: %s: header pattern \"%s\" does not compile (it did "
				      "when "
				      "the configuration was loaded)",
				      c->where, c->headers[k].pattern);
			/* Without JIT (unsupported CPU, no executable memory) PCRE2 interprets the
			 * same pattern: slower, same answers. */
			(void)pcre2_jit_compile(r->headers[k], PCRE2_JIT_COMPLETE);
		}
		rr->any_from_domain |= c->nfrom_domains > 0;
	}
	if ((rr->mctx = pcre2_match_context_create(NULL)) == NULL)
		fatal("out of memory for a PCRE2 match context");
	pcre2_set_match_limit(rr->mctx, ROUTE_MATCH_LIMIT);
	pcre2_set_depth_limit(rr->mctx, ROUTE_MATCH_LIMIT / 10);
	return rr;
}

void
route_rules_free(struct route_rules *rr)
{
	if (rr == NULL)
		return;
	for (size_t i = 0; i < rr->nrules; i++) {
		for (size_t k = 0; k < rr->rules[i].conf->nheaders; k++)
			pcre2_code_free(rr->rules[i].headers[k]);
		free(rr->rules[i].headers);
	}
	free(rr->rules);
	pcre2_match_context_free(rr->mctx);
	free(rr);
}

/* ---- One message ---- */

/* What is worked out once per message, when a rule first needs it. */
struct judgement {
	const struct route_rules *rr;
	const struct route_message *msg;
	const char *head; /* the header section */
	size_t head_len;  /* its octets, up to its end */
	struct route_field fields[ROUTE_FIELDS_MAX];
	size_t nfields;
	int from_state; /* 0 not looked up, 1 found, -1 none */
	char from_domain[DNS_NAME_MAX + 1];
	pcre2_match_data *md;
	char *value; /* scratch: one unfolded value */
};

/* domain is entry, or a subdomain of it (both lower case but domain's case is ignored). */
static bool
domain_within(const char *domain, const char *entry)
{
	size_t d = strlen(domain), e = strlen(entry);

	if (d < e || strcasecmp(domain + (d - e), entry) != 0)
		return false;
	return d == e || domain[d - e - 1] == '.';
}

static bool
any_domain(char *const *entries, size_t n, const char *domain)
{
	for (size_t i = 0; domain != NULL && i < n; i++)
		if (domain_within(domain, entries[i]))
			return true;
	return false;
}

static bool
any_string(char *const *entries, size_t n, const char *s)
{
	for (size_t i = 0; s != NULL && i < n; i++)
		if (strcmp(entries[i], s) == 0)
			return true;
	return false;
}

static const char *
from_domain(struct judgement *j)
{
	if (j->from_state == 0)
		j->from_state =
		    dmarc_from_domain(j->head, j->head_len, j->from_domain, NULL, 0) == 0 ? 1 : -1;
	return j->from_state == 1 ? j->from_domain : NULL;
}

/* One "Name: pattern" condition: some field of that name whose value matches. */
static bool
header_holds(struct judgement *j, const struct rule_header_conf *h, pcre2_code *re)
{
	for (size_t i = 0; i < j->nfields; i++) {
		const struct route_field *f = &j->fields[i];
		size_t len;

		if (!route_field_is(j->head, f, h->name))
			continue;
		if (re == NULL)
			return true;
		len = route_field_value(j->head, f, j->value, ROUTE_VALUE_MAX + 1);
		if (j->md == NULL && (j->md = pcre2_match_data_create(1, NULL)) == NULL)
			fatal("out of memory for PCRE2 match data");
		/* Errors (the match limit) count as no match: a condition that cannot decide
		 * does not hold. */
		if (pcre2_match(re, (PCRE2_SPTR)j->value, len, 0, 0, j->md, j->rr->mctx) >= 0)
			return true;
	}
	return false;
}

static bool
rule_matches(struct judgement *j, const struct compiled_rule *r)
{
	const struct classification_rule_conf *c = r->conf;
	const struct route_message *m = j->msg;

	if (c->nlisteners > 0 && !any_string(c->listeners, c->nlisteners, m->listener))
		return false;
	if (c->nauth_users > 0 && !any_string(c->auth_users, c->nauth_users, m->auth_user))
		return false;
	if (c->nclients > 0 &&
	    (m->client == NULL || !netmask_match_any(c->clients, c->nclients, m->client)))
		return false;
	if (c->min_recipients > 0 && m->nrcpt < c->min_recipients)
		return false;
	if (c->max_recipients > 0 && m->nrcpt > c->max_recipients)
		return false;
	if (c->nmail_from_domains > 0) {
		const char *at = m->sender != NULL ? strrchr(m->sender, '@') : NULL;

		if (!any_domain(c->mail_from_domains, c->nmail_from_domains,
		                at != NULL ? at + 1 : NULL))
			return false;
	}
	if (c->nfrom_domains > 0 && !any_domain(c->from_domains, c->nfrom_domains, from_domain(j)))
		return false;
	if (c->nheaders > 0) {
		bool any = false;

		for (size_t k = 0; k < c->nheaders && !any; k++)
			any = header_holds(j, &c->headers[k], r->headers[k]);
		if (!any)
			return false;
	}
	return true;
}

/* A campaign name as it may be stored and logged (conf/routing.c campaign_valid). */
static bool
campaign_valid(const char *s, size_t n)
{
	if (n == 0 || n > ROUTE_CAMPAIGN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* The campaign a rule's campaign_header gives: the first field of that name whose value is a
 * valid campaign. */
static bool
campaign_from_header(struct judgement *j, const char *name, struct route_result *res)
{
	for (size_t i = 0; i < j->nfields; i++) {
		char value[ROUTE_CAMPAIGN_MAX + 2];
		size_t len;

		if (!route_field_is(j->head, &j->fields[i], name))
			continue;
		/* One octet more than a campaign may have: a longer value is not cut short (two
		 * campaigns would become one), it is no campaign. */
		len = route_field_value(j->head, &j->fields[i], value, sizeof(value));
		if (!campaign_valid(value, len))
			continue;
		memcpy(res->campaign, value, len + 1);
		return true;
	}
	return false;
}

/* The value of the first field named name, or NULL; in buf. A NUL inside it (the reception
 * refuses such data, but this is a parser of anything) makes it a name of nothing: "tx\0x"
 * must not pass for "tx". */
static const char *
drover_field(struct judgement *j, const char *name, char *buf, size_t size)
{
	size_t pos = 0, len;
	struct route_field f;

	/* Every field, not only the first ROUTE_FIELDS_MAX. */
	while (route_header_next(j->head, j->head_len, &pos, &f) == 1)
		if (route_field_is(j->head, &f, name)) {
			len = route_field_value(j->head, &f, buf, size);
			for (size_t i = 0; i < len; i++)
				if (buf[i] == '\0')
					buf[i] = '\x01';
			return buf;
		}
	return NULL;
}

/* The value of an unknown name, as it may be echoed: printable, cut. */
static void
show(const char *value, char *out)
{
	size_t i = 0;

	for (; value[i] != '\0' && i < ROUTE_SHOWN_MAX; i++)
		out[i] = value[i] >= 0x20 && value[i] < 0x7f && value[i] != '"' ? value[i] : '?';
	if (value[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

/* A trusted sender's X-Drover-* fields: they override the rules. A value that names nothing
 * is an error (the message is refused), never silently ignored. */
static void
apply_trusted_fields(struct judgement *j, struct route_result *res)
{
	const struct config *cfg = j->rr->cfg;
	/* Longer than any section title (64): a longer value names nothing, and is shown cut. */
	char value[ROUTE_SHOWN_MAX + 2];

	if (drover_field(j, ROUTE_FIELD_STREAM, value, sizeof(value)) != NULL) {
		const struct stream_conf *s = config_stream(cfg, value);

		if (s == NULL && strcmp(value, STREAM_DEFAULT) != 0) {
			res->error = ROUTE_UNKNOWN_STREAM;
			show(value, res->bad_value);
			return;
		}
		res->stream = s != NULL ? s->name : STREAM_DEFAULT;
		res->stream_rule = ROUTE_NO_RULE;
		res->stream_from_field = true;
	}
	if (drover_field(j, ROUTE_FIELD_POOL, value, sizeof(value)) != NULL) {
		const struct pool_conf *p = config_pool(cfg, value);

		if (p == NULL) {
			res->error = ROUTE_UNKNOWN_POOL;
			show(value, res->bad_value);
			return;
		}
		res->pool = p->name;
		res->pool_rule = ROUTE_NO_RULE;
		res->pool_from_field = true;
	}
	if (drover_field(j, ROUTE_FIELD_TENANT, value, sizeof(value)) != NULL) {
		const struct tenant_conf *t = config_tenant(cfg, value);

		if (t == NULL) {
			res->error = ROUTE_UNKNOWN_TENANT;
			show(value, res->bad_value);
			return;
		}
		res->tenant = t->name;
		res->tenant_rule = ROUTE_NO_RULE;
		res->tenant_from_field = true;
	}
	if (drover_field(j, ROUTE_FIELD_CAMPAIGN, value, sizeof(value)) != NULL) {
		size_t len = strlen(value);

		if (!campaign_valid(value, len)) {
			res->error = ROUTE_BAD_CAMPAIGN;
			show(value, res->bad_value);
			return;
		}
		memcpy(res->campaign, value, len + 1);
		res->campaign_rule = ROUTE_NO_RULE;
		res->campaign_from_field = true;
	}
}

void
route_classify(const struct route_rules *rr, const struct route_message *msg,
               struct route_result *res)
{
	struct judgement *j = xcalloc(1, sizeof(*j));
	size_t pos = 0,
	       n = msg->headers_len < ROUTE_HEADERS_MAX ? msg->headers_len : ROUTE_HEADERS_MAX;
	int trust = -1;
	struct route_field f;

	memset(res, 0, sizeof(*res));
	res->stream_rule = res->tenant_rule = res->campaign_rule = res->pool_rule =
	    res->trust_rule = ROUTE_NO_RULE;
	j->rr = rr;
	j->msg = msg;
	j->head = msg->headers != NULL ? msg->headers : "";
	/* The section, not what follows it: no condition may read the body as fields. */
	route_header_complete(j->head, msg->headers != NULL ? n : 0, true, &j->head_len);
	while (j->nfields < ROUTE_FIELDS_MAX &&
	       route_header_next(j->head, j->head_len, &pos, &f) == 1)
		j->fields[j->nfields++] = f;
	j->value = xmalloc(ROUTE_VALUE_MAX + 1);

	for (size_t i = 0; i < rr->nrules; i++) {
		const struct compiled_rule *r = &rr->rules[i];
		const struct classification_rule_conf *c = r->conf;

		if (!rule_matches(j, r))
			continue;
		if (res->stream == NULL && c->stream != NULL) {
			res->stream = c->stream;
			res->stream_rule = (int)i;
		}
		if (res->tenant == NULL && c->tenant != NULL) {
			res->tenant = c->tenant;
			res->tenant_rule = (int)i;
		}
		/* Campaigns in the configuration were checked to fit (LIM_CAMPAIGN_MAX). */
		if (res->campaign[0] == '\0' && c->campaign != NULL) {
			strlcpy_s(res->campaign, c->campaign, sizeof(res->campaign));
			res->campaign_rule = (int)i;
		} else if (res->campaign[0] == '\0' && c->campaign_header != NULL &&
		           campaign_from_header(j, c->campaign_header, res)) {
			res->campaign_rule = (int)i;
		}
		if (res->pool == NULL && c->pool != NULL) {
			res->pool = c->pool;
			res->pool_rule = (int)i;
		}
		if (trust < 0 && c->trust_headers >= 0) {
			trust = c->trust_headers;
			res->trust_rule = (int)i;
		}
		if (c->final)
			break;
	}
	res->trusted = trust == 1 || msg->trusted;
	if (res->trusted)
		apply_trusted_fields(j, res);
	pcre2_match_data_free(j->md);
	free(j->value);
	free(j);
}

size_t
route_result_lines(const struct route_rules *rr, const struct route_result *res, int *lines,
                   size_t max)
{
	bool used[5] = {false};
	int idx[5] = {res->stream_rule, res->tenant_rule, res->campaign_rule, res->pool_rule,
	              res->stream_from_field || res->pool_from_field || res->tenant_from_field ||
	                      res->campaign_from_field
	                  ? res->trust_rule
	                  : ROUTE_NO_RULE};
	size_t n = 0;

	/* Smallest index first: the order of the file. */
	for (;;) {
		int best = -1;

		for (size_t k = 0; k < nitems(idx); k++)
			if (!used[k] && idx[k] >= 0 && (best < 0 || idx[k] < idx[best]))
				best = (int)k;
		if (best < 0 || n >= max)
			break;
		for (size_t k = 0; k < nitems(idx); k++)
			if (idx[k] == idx[best])
				used[k] = true;
		if ((size_t)idx[best] < rr->nrules)
			lines[n++] = rr->rules[idx[best]].conf->line;
	}
	return n;
}
