/* spf_check.c - check_host() (RFC 7208 §4 to §6, and RFC 4406's pra scope) as a state machine
 * over asynchronous DNS lookups.
 *
 * A check is a stack of frames, one per check_host() in progress: the identity's domain at the
 * bottom, one more for each include: being evaluated (redirect= replaces the top frame, it does
 * not return to it). Each step either decides something or starts one lookup and waits; the
 * lookup's answer (now, or later from the event loop) is copied and the steps go on. A
 * trampoline (run) keeps the stack flat whichever way the answers come.
 *
 * Every error ends the whole check at once (§4.6, §5): a temperror or permerror inside an
 * include is the result of the check, as is exceeding a limit of §4.6.4.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "auth/spf_internal.h"
#include "core/core.h"

/* The bottom frame, and one per include: each include is a DNS mechanism, so at most
 * SPF_DNS_MECHANISMS_MAX of them can be open before the limit ends the check. */
#define FRAMES_MAX (SPF_DNS_MECHANISMS_MAX + 2)

enum state {
	S_FETCH,         /* look up the TXT records of the top frame's domain */
	S_FETCHED,       /* choose the record, parse it */
	S_TERMS,         /* evaluate the top frame's next term */
	S_A_DONE,        /* a: the target's addresses */
	S_EXISTS_DONE,   /* exists: the target's A records */
	S_MX_DONE,       /* mx: the target's MX names */
	S_MX_ADDR,       /* mx: the next host's addresses */
	S_MX_ADDR_DONE,  /* */
	S_PTR_DONE,      /* ptr: the client's PTR names */
	S_PTR_ADDR,      /* ptr: validate the next name within the target */
	S_PTR_ADDR_DONE, /* */
	S_P_START,       /* %{p}: the client's PTR names, then each one validated */
	S_P_PTR_DONE,    /* */
	S_P_ADDR,        /* */
	S_P_ADDR_DONE,   /* */
	S_EXP,           /* fail: the exp= target */
	S_EXP_DONE,      /* its TXT record */
	S_EXP_TEXT,      /* its expansion */
};

enum kind { K_TXT, K_A, K_ADDR /* A or AAAA, as the client's family */, K_MX, K_PTR };

struct frame {
	char *domain; /* <domain> of this check_host() */
	struct spf_record rec;
	size_t next;     /* the next term to evaluate */
	bool include;    /* its result goes back to the include: of the frame below */
	bool redirected; /* reached through redirect=: no record is a permerror (§6.1) */
};

/* The last answer, copied: an answer lives only during its callback. */
struct held {
	enum spf_dns_status status;
	char error[96];
	size_t n;
	char **strs;  /* TXT data (lengths in lens), MX or PTR names */
	size_t *lens; /* */
	struct dns_address *addrs;
};

struct spf_check {
	struct spf_dns dns;
	spf_check_cb *cb;
	void *arg;
	struct event *deliver;  /* dns.base: the outcome goes out from the loop */
	struct event *deadline; /* dns.base: SPF_CHECK_TIMEOUT_MS */
	unsigned timeout_ms;
	bool delivering;

	enum spf_scope scope;
	struct dns_address ip;
	char *identity; /* <sender>: local@domain */
	char *local;
	char *sender_domain;
	char *helo;
	char *receiver; /* NULL: "unknown" */
	int64_t now;

	struct frame frames[FRAMES_MAX];
	size_t depth;
	unsigned dns_terms, voids;

	enum state state;
	enum kind kind;
	void *query;  /* the lookup in flight */
	bool waiting; /* for the answer to query */
	bool running; /* inside run(): an answer only records itself */
	bool finished;
	bool concluded; /* the result is known, its explanation may not be yet */
	struct held ans;

	const struct spf_term *term; /* being evaluated */
	char *target;                /* its expanded target name, SPF_EXPANSION_MAX + 1 bytes */
	char **names;                /* mx: hosts, ptr: names within the target, to look up */
	size_t nnames, iname;

	/* %{p}: the client's validated names, computed once when first needed */
	bool p_done;
	enum state p_return;
	char **p_names, **p_valid;
	size_t np_names, ip_name, np_valid;

	char *exp_text; /* the explanation's TXT record, before its expansion */

	enum spf_result result;
	char *result_domain;
	char *mechanism;
	char *explanation;
	bool default_explanation;
	char reason[512];
};

static void step(struct spf_check *);

/* ---- Small helpers ---- */

static struct frame *
top(struct spf_check *c)
{
	return &c->frames[c->depth - 1];
}

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static void
held_clear(struct held *h)
{
	strv_free(h->strs, h->n);
	free(h->lens);
	free(h->addrs);
	memset(h, 0, sizeof(*h));
}

/* A name from an answer, without its trailing dot; the root ("" or ".") stays ".". */
static char *
name_dup(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || (n == 1 && name[0] == '.'))
		return xstrdup(".");
	if (name[n - 1] == '.')
		n--;
	return xstrndup(name, n);
}

static void __attribute__((format(printf, 2, 3)))
set_reason(struct spf_check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
}

static void
vars_of(struct spf_check *c, struct spf_macro_vars *v)
{
	const char *domain = c->depth > 0 ? top(c)->domain : c->sender_domain;
	const char *p = NULL;

	/* §7.3: the validated name equal to <domain>, else one within it, else any. */
	for (size_t i = 0; i < c->np_valid && p == NULL; i++)
		if (strcasecmp(c->p_valid[i], domain) == 0)
			p = c->p_valid[i];
	for (size_t i = 0; i < c->np_valid && p == NULL; i++)
		if (spf_name_within(c->p_valid[i], domain))
			p = c->p_valid[i];
	if (p == NULL && c->np_valid > 0)
		p = c->p_valid[0];
	*v = (struct spf_macro_vars){
	    .sender = c->identity,
	    .local = c->local,
	    .sender_domain = c->sender_domain,
	    .domain = domain,
	    .ip = c->ip,
	    .ptr = p,
	    .helo = c->helo,
	    .receiver = c->receiver,
	    .now = c->now,
	};
}

/* ---- Ending ---- */

/* The check is over: a temperror or permerror from anywhere, or a result at the bottom. */
static void __attribute__((format(printf, 3, 4)))
finish(struct spf_check *c, enum spf_result r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->result = r;
	if (c->result_domain == NULL)
		c->result_domain = xstrdup(c->depth > 0 ? top(c)->domain : c->sender_domain);
	c->finished = true;
}

static void
explain_default(struct spf_check *c)
{
	struct spf_macro_vars v;
	char err[128];

	vars_of(c, &v);
	if (spf_macro_expand(SPF_DEFAULT_EXPLANATION, strlen(SPF_DEFAULT_EXPLANATION),
	                     SPF_MACRO_EXPLAIN, &v, c->target, SPF_EXPANSION_MAX + 1, err,
	                     sizeof(err)) < 0)
		c->target[0] = '\0';
	free(c->explanation);
	c->explanation = xstrdup(c->target);
	c->default_explanation = true;
	c->finished = true;
}

/* A result at the bottom frame: done, but for fail's explanation. */
static void
conclude(struct spf_check *c, enum spf_result r, const struct spf_term *t)
{
	c->result = r;
	c->concluded = true;
	free(c->result_domain);
	c->result_domain = xstrdup(top(c)->domain);
	if (t != NULL)
		c->mechanism = xstrdup(t->text);
	if (r == SPF_FAIL)
		c->state = S_EXP;
	else
		c->finished = true;
}

/* ---- Frames ---- */

static void
push_frame(struct spf_check *c, const char *domain, bool include)
{
	struct frame *f;

	if (c->depth == FRAMES_MAX) /* cannot happen: the lookup limit ends the check first */
		fatal("spf: include depth over %d", FRAMES_MAX);
	f = &c->frames[c->depth++];
	memset(f, 0, sizeof(*f));
	f->domain = name_dup(domain);
	f->include = include;
	c->state = S_FETCH;
}

static void
pop_frame(struct spf_check *c)
{
	struct frame *f = top(c);

	free(f->domain);
	spf_record_free(&f->rec);
	c->depth--;
}

/* A frame's result (pass, fail, softfail, neutral or none; errors finish()). t: the term that
 * matched, NULL for the default. §5.2: an include matches when its check_host() passes, does
 * not when it fails, softfails or is neutral, and is a permerror when it finds no record. */
static void
frame_result(struct spf_check *c, enum spf_result r, const struct spf_term *t)
{
	struct frame *f = top(c);

	if (t != NULL && t->mech == SPF_M_INCLUDE) {
		char inner[sizeof(c->reason)];

		memcpy(inner, c->reason, sizeof(inner));
		set_reason(c, "%s: \"%s\" matched (%s)", f->domain, t->text, inner);
	} else if (t != NULL)
		set_reason(c, "%s: \"%s\" matched", f->domain, t->text);
	else
		set_reason(c, "%s: no mechanism matched (neutral by default)", f->domain);
	if (!f->include) {
		conclude(c, r, t);
		return;
	}
	pop_frame(c);
	f = top(c);
	t = &f->rec.terms[f->next - 1]; /* the include: that pushed the frame */
	if (r == SPF_PASS) {
		frame_result(c, t->qualifier, t);
		return;
	}
	c->state = S_TERMS;
}

/* No record for the top frame: none for the identity's domain, a permerror below an include
 * or a redirect (§5.2, §6.1). */
static void __attribute__((format(printf, 2, 3)))
frame_none(struct spf_check *c, const char *fmt, ...)
{
	struct frame *f = top(c);
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (f->include) {
		finish(c, SPF_PERMERROR, "include:%s: %s", f->domain, why);
		return;
	}
	if (f->redirected) {
		finish(c, SPF_PERMERROR, "redirect=%s: %s", f->domain, why);
		return;
	}
	set_reason(c, "%s", why);
	conclude(c, SPF_NONE, NULL);
}

/* ---- Lookups ---- */

static void
on_answer(void *arg, const struct spf_dns_answer *a)
{
	struct spf_check *c = arg;
	struct held *h = &c->ans;

	held_clear(h);
	h->status = a->status == SPF_DNS_OK && a->n == 0 ? SPF_DNS_NODATA : a->status;
	if (a->status != SPF_DNS_OK)
		snprintf(h->error, sizeof(h->error), "%s",
		         a->error != NULL                ? a->error
		         : a->status == SPF_DNS_NXDOMAIN ? "no such domain"
		         : a->status == SPF_DNS_NODATA   ? "no records"
		                                         : "DNS error");
	if (h->status == SPF_DNS_OK) {
		h->n = a->n;
		switch (c->kind) {
		case K_TXT:
			h->strs = xcalloc(a->n, sizeof(*h->strs));
			h->lens = xcalloc(a->n, sizeof(*h->lens));
			for (size_t i = 0; i < a->n; i++) {
				h->strs[i] = xmalloc(a->txt[i].len + 1);
				memcpy(h->strs[i], a->txt[i].data, a->txt[i].len);
				h->strs[i][a->txt[i].len] = '\0';
				h->lens[i] = a->txt[i].len;
			}
			break;
		case K_A:
		case K_ADDR:
			h->addrs = xcalloc(a->n, sizeof(*h->addrs));
			memcpy(h->addrs, a->addrs, a->n * sizeof(*h->addrs));
			break;
		case K_MX:
		case K_PTR:
			h->strs = xcalloc(a->n, sizeof(*h->strs));
			for (size_t i = 0; i < a->n; i++)
				h->strs[i] = name_dup(a->names[i] != NULL ? a->names[i] : "");
			break;
		}
	}
	c->query = NULL;
	c->waiting = false;
	if (!c->running)
		step(c);
}

static void
lookup(struct spf_check *c, enum kind k, const char *name, enum state next)
{
	void *q = NULL;

	c->state = next;
	c->kind = k;
	c->waiting = true;
	switch (k) {
	case K_TXT:
		q = c->dns.txt(c->dns.ctx, name, on_answer, c);
		break;
	case K_A:
		q = c->dns.a(c->dns.ctx, name, on_answer, c);
		break;
	case K_ADDR:
		q = c->ip.family == AF_INET ? c->dns.a(c->dns.ctx, name, on_answer, c)
		                            : c->dns.aaaa(c->dns.ctx, name, on_answer, c);
		break;
	case K_MX:
		q = c->dns.mx(c->dns.ctx, name, on_answer, c);
		break;
	case K_PTR:
		q = c->dns.ptr(c->dns.ctx, &c->ip, on_answer, c);
		break;
	}
	if (c->waiting) /* else it has answered already */
		c->query = q;
}

static bool
answered_void(const struct spf_check *c)
{
	return c->ans.status == SPF_DNS_NODATA || c->ans.status == SPF_DNS_NXDOMAIN;
}

/* §4.6.4: a DNS mechanism answered by NXDOMAIN or no records. -1 once over the limit. */
static int
void_lookup(struct spf_check *c, const char *name)
{
	if (++c->voids <= SPF_VOID_LOOKUPS_MAX)
		return 0;
	finish(c, SPF_PERMERROR,
	       "%s: \"%s\": %s gave void lookup number %u (no such name or no records), over "
	       "the limit of %d (RFC 7208 §4.6.4)",
	       top(c)->domain, c->term != NULL ? c->term->text : "", name, c->voids,
	       SPF_VOID_LOOKUPS_MAX);
	return -1;
}

static bool
addr_matches(const struct spf_check *c, unsigned cidr4, unsigned cidr6)
{
	for (size_t i = 0; i < c->ans.n; i++)
		if (spf_ip_in(&c->ip, &c->ans.addrs[i], c->ip.family == AF_INET ? cidr4 : cidr6))
			return true;
	return false;
}

/* ---- %{p} ---- */

/* Before expanding text: if it uses %{p} and the client's names are not known yet, look them
 * up first and come back to the current state. */
static bool
need_p(struct spf_check *c, const char *text, size_t len)
{
	if (c->p_done || !spf_macro_uses_p(text, len))
		return false;
	c->p_return = c->state;
	c->state = S_P_START;
	return true;
}

static void
p_step(struct spf_check *c)
{
	switch (c->state) {
	case S_P_START:
		lookup(c, K_PTR, NULL, S_P_PTR_DONE);
		return;
	case S_P_PTR_DONE:
		/* §7.3: errors leave p "unknown"; at most SPF_PTR_NAMES_MAX names are tried. */
		if (c->ans.status == SPF_DNS_OK) {
			c->np_names = c->ans.n < SPF_PTR_NAMES_MAX ? c->ans.n : SPF_PTR_NAMES_MAX;
			c->p_names = xcalloc(c->np_names + 1, sizeof(char *));
			c->p_valid = xcalloc(c->np_names + 1, sizeof(char *));
			for (size_t i = 0; i < c->np_names; i++)
				c->p_names[i] = xstrdup(c->ans.strs[i]);
		}
		c->ip_name = 0;
		c->state = S_P_ADDR;
		return;
	case S_P_ADDR:
		while (c->ip_name < c->np_names && !spf_name_is_valid(c->p_names[c->ip_name]))
			c->ip_name++;
		if (c->ip_name == c->np_names) {
			strv_free(c->p_names, c->np_names);
			c->p_names = NULL;
			c->np_names = 0;
			c->p_done = true;
			c->state = c->p_return;
			return;
		}
		lookup(c, K_ADDR, c->p_names[c->ip_name], S_P_ADDR_DONE);
		return;
	case S_P_ADDR_DONE:
		if (c->ans.status == SPF_DNS_OK && addr_matches(c, 128, 128))
			c->p_valid[c->np_valid++] = xstrdup(c->p_names[c->ip_name]);
		c->ip_name++;
		c->state = S_P_ADDR;
		return;
	default:
		return;
	}
}

/* ---- Terms ---- */

/* The term's target name into c->target: its domain-spec expanded (§7.3), or <domain>. -1
 * (the check is over) if the expansion fails. */
static int
expand_target(struct spf_check *c, const char *spec, const char *what)
{
	struct spf_macro_vars v;
	char err[160];

	if (spec == NULL) {
		strlcpy_s(c->target, top(c)->domain, SPF_EXPANSION_MAX + 1);
		return 0;
	}
	vars_of(c, &v);
	if (spf_macro_expand(spec, strlen(spec), SPF_MACRO_DOMAIN, &v, c->target,
	                     SPF_EXPANSION_MAX + 1, err, sizeof(err)) < 0) {
		finish(c, SPF_PERMERROR, "%s: \"%s\": %s", top(c)->domain, what, err);
		return -1;
	}
	return 0;
}

/* §4.6.4: the terms that query the DNS, counted as they are evaluated. */
static int
count_dns_term(struct spf_check *c, const char *what)
{
	if (++c->dns_terms <= SPF_DNS_MECHANISMS_MAX)
		return 0;
	finish(c, SPF_PERMERROR,
	       "%s: \"%s\" is DNS-querying term number %u, over the limit of %d (RFC 7208 §4.6.4)",
	       top(c)->domain, what, c->dns_terms, SPF_DNS_MECHANISMS_MAX);
	return -1;
}

static void
redirect(struct spf_check *c)
{
	struct frame *f = top(c);
	char what[300];

	snprintf(what, sizeof(what), "redirect=%s", f->rec.redirect);
	if (need_p(c, f->rec.redirect, strlen(f->rec.redirect)))
		return;
	if (count_dns_term(c, what) == -1 || expand_target(c, f->rec.redirect, what) == -1)
		return;
	if (!spf_name_is_valid(c->target)) {
		finish(c, SPF_PERMERROR, "%s: \"%s\": \"%s\" is not a valid domain name", f->domain,
		       what, c->target);
		return;
	}
	/* §6.1: the result is the target's, its exp= included, this record's is dropped. */
	free(f->domain);
	spf_record_free(&f->rec);
	f->domain = name_dup(c->target);
	f->next = 0;
	f->redirected = true;
	c->state = S_FETCH;
}

static void
next_term(struct spf_check *c)
{
	struct frame *f = top(c);
	const struct spf_term *t;

	if (f->next == f->rec.nterms) {
		if (f->rec.redirect != NULL)
			redirect(c);
		else
			frame_result(c, SPF_NEUTRAL, NULL); /* §4.7 */
		return;
	}
	t = &f->rec.terms[f->next];
	if (t->spec != NULL && need_p(c, t->spec, strlen(t->spec)))
		return;
	f->next++;
	c->term = t;
	switch (t->mech) {
	case SPF_M_ALL:
		frame_result(c, t->qualifier, t);
		return;
	case SPF_M_IP4:
	case SPF_M_IP6:
		/* §5.6: an IPv4 client never matches ip6:, an IPv6 one never ip4:. */
		if (spf_ip_in(&c->ip, &t->net, t->mech == SPF_M_IP4 ? t->cidr4 : t->cidr6))
			frame_result(c, t->qualifier, t);
		return;
	default:
		break;
	}
	if (count_dns_term(c, t->text) == -1 || expand_target(c, t->spec, t->text) == -1)
		return;
	if (!spf_name_is_valid(c->target)) {
		/* A name no DNS query can carry (empty or long label, §4.3 by analogy): an
		 * include of it finds no record; the other mechanisms do not match. */
		if (t->mech == SPF_M_INCLUDE)
			finish(c, SPF_PERMERROR,
			       "%s: \"%s\": \"%.300s\" is not a valid domain name", f->domain,
			       t->text, c->target);
		return;
	}
	switch (t->mech) {
	case SPF_M_INCLUDE:
		push_frame(c, c->target, true);
		return;
	case SPF_M_A:
		lookup(c, K_ADDR, c->target, S_A_DONE);
		return;
	case SPF_M_EXISTS:
		/* §5.7: an A lookup whatever the client's family. */
		lookup(c, K_A, c->target, S_EXISTS_DONE);
		return;
	case SPF_M_MX:
		lookup(c, K_MX, c->target, S_MX_DONE);
		return;
	case SPF_M_PTR:
		lookup(c, K_PTR, NULL, S_PTR_DONE);
		return;
	default:
		return;
	}
}

/* §5: a DNS error other than NXDOMAIN ends the check with temperror. */
static bool
tempfailed(struct spf_check *c, const char *what, const char *name)
{
	if (c->ans.status != SPF_DNS_TEMPFAIL)
		return false;
	finish(c, SPF_TEMPERROR, "%s: \"%s\": %s lookup of %s: %s", top(c)->domain, c->term->text,
	       what, name, c->ans.error);
	return true;
}

static const char *
addr_type(const struct spf_check *c)
{
	return c->ip.family == AF_INET ? "A" : "AAAA";
}

static void
mechanism_step(struct spf_check *c)
{
	const struct spf_term *t = c->term;

	switch (c->state) {
	case S_A_DONE:
		if (tempfailed(c, addr_type(c), c->target))
			return;
		c->state = S_TERMS;
		if (answered_void(c))
			(void)void_lookup(c, c->target);
		else if (addr_matches(c, t->cidr4, t->cidr6))
			frame_result(c, t->qualifier, t);
		return;
	case S_EXISTS_DONE:
		if (tempfailed(c, "A", c->target))
			return;
		c->state = S_TERMS;
		if (answered_void(c))
			(void)void_lookup(c, c->target);
		else
			frame_result(c, t->qualifier, t);
		return;
	case S_MX_DONE:
		if (tempfailed(c, "MX", c->target))
			return;
		c->state = S_TERMS;
		if (answered_void(c)) {
			(void)void_lookup(c, c->target);
			return;
		}
		/* §4.6.4: "if [more than 10 MX names], the "mx" mechanism MUST produce a
		 * "permerror" result". */
		if (c->ans.n > SPF_MX_NAMES_MAX) {
			finish(c, SPF_PERMERROR,
			       "%s: \"%s\": %s has %zu MX records, over the limit of %d "
			       "(RFC 7208 §4.6.4)",
			       top(c)->domain, t->text, c->target, c->ans.n, SPF_MX_NAMES_MAX);
			return;
		}
		c->names = c->ans.strs;
		c->nnames = c->ans.n;
		c->ans.strs = NULL;
		c->ans.n = 0;
		c->iname = 0;
		c->state = S_MX_ADDR;
		return;
	case S_MX_ADDR:
	case S_PTR_ADDR:
		/* The null MX ("."), and names no query can carry, have no addresses. */
		while (c->iname < c->nnames && !spf_name_is_valid(c->names[c->iname]))
			c->iname++;
		if (c->iname == c->nnames) {
			strv_free(c->names, c->nnames);
			c->names = NULL;
			c->nnames = 0;
			c->state = S_TERMS;
			return;
		}
		lookup(c, K_ADDR, c->names[c->iname],
		       c->state == S_MX_ADDR ? S_MX_ADDR_DONE : S_PTR_ADDR_DONE);
		return;
	case S_MX_ADDR_DONE:
		if (tempfailed(c, addr_type(c), c->names[c->iname]))
			return;
		if (c->ans.status == SPF_DNS_OK && addr_matches(c, t->cidr4, t->cidr6)) {
			strv_free(c->names, c->nnames);
			c->names = NULL;
			c->nnames = 0;
			frame_result(c, t->qualifier, t);
			return;
		}
		c->iname++;
		c->state = S_MX_ADDR;
		return;
	case S_PTR_DONE:
		c->state = S_TERMS;
		/* §5.5: "If a DNS error occurs while doing the PTR RR lookup, then this
		 * mechanism fails to match." */
		if (c->ans.status == SPF_DNS_TEMPFAIL)
			return;
		if (answered_void(c)) {
			(void)void_lookup(c, "the client's PTR");
			return;
		}
		/* §4.6.4: the first SPF_PTR_NAMES_MAX names; only those within the target can
		 * make the mechanism match, so only they are validated. */
		c->names = xcalloc(SPF_PTR_NAMES_MAX, sizeof(char *));
		c->nnames = 0;
		for (size_t i = 0; i < c->ans.n && i < SPF_PTR_NAMES_MAX; i++)
			if (spf_name_within(c->ans.strs[i], c->target))
				c->names[c->nnames++] = xstrdup(c->ans.strs[i]);
		c->iname = 0;
		c->state = S_PTR_ADDR;
		return;
	case S_PTR_ADDR_DONE:
		/* §5.5: a DNS error validating a name skips that name. */
		if (c->ans.status == SPF_DNS_OK && addr_matches(c, 128, 128)) {
			strv_free(c->names, c->nnames);
			c->names = NULL;
			c->nnames = 0;
			frame_result(c, t->qualifier, t);
			return;
		}
		c->iname++;
		c->state = S_PTR_ADDR;
		return;
	default:
		return;
	}
}

/* ---- Records ---- */

/* The record for the scope among the TXT records: -1 (permerror, why in err), 0 (none), 1. */
static int
select_record(struct spf_check *c, size_t *index, size_t *vlen, char *err, size_t errlen)
{
	size_t n1 = 0, n2 = 0, i1 = 0, i2 = 0, v1 = 0, v2 = 0;

	for (size_t i = 0; i < c->ans.n; i++) {
		size_t v = spf_version_len(c->ans.strs[i], c->ans.lens[i]);
		bool pra, mfrom;

		if (v > 0) {
			i1 = n1++ == 0 ? i : i1;
			v1 = v;
		}
		if (c->scope == SPF_SCOPE_PRA &&
		    (v = senderid_version_len(c->ans.strs[i], c->ans.lens[i], &pra, &mfrom)) > 0 &&
		    pra) {
			i2 = n2++ == 0 ? i : i2;
			v2 = v;
		}
	}
	/* RFC 4406 §3.4: spf2.0 records covering pra first, v=spf1 otherwise. */
	if (n2 > 0) {
		if (n2 > 1) {
			snprintf(err, errlen,
			         "%zu spf2.0 records cover the pra scope (RFC 4406 §3.4)", n2);
			return -1;
		}
		*index = i2;
		*vlen = v2;
		return 1;
	}
	if (n1 == 0)
		return 0;
	if (n1 > 1) {
		snprintf(err, errlen, "%zu v=spf1 records (RFC 7208 §4.5: one at most)", n1);
		return -1;
	}
	*index = i1;
	*vlen = v1;
	return 1;
}

static void
fetched(struct spf_check *c)
{
	struct frame *f = top(c);
	size_t i, v;
	char err[300];
	int rc;

	if (c->ans.status == SPF_DNS_TEMPFAIL) {
		finish(c, SPF_TEMPERROR, "TXT lookup of %s: %s", f->domain, c->ans.error);
		return;
	}
	if (c->ans.status == SPF_DNS_NXDOMAIN) {
		/* RFC 4406: for Sender ID, a PRA whose domain does not exist fails. */
		if (c->scope == SPF_SCOPE_PRA && c->depth == 1 && !f->redirected) {
			set_reason(c, "%s does not exist (Sender ID: fail, RFC 4406)", f->domain);
			conclude(c, SPF_FAIL, NULL);
			return;
		}
		frame_none(c, "%s does not exist", f->domain);
		return;
	}
	if ((rc = select_record(c, &i, &v, err, sizeof(err))) == 0) {
		frame_none(c, "no SPF record at %s", f->domain);
		return;
	}
	if (rc == -1) {
		finish(c, SPF_PERMERROR, "%s: %s", f->domain, err);
		return;
	}
	if (spf_record_parse(c->ans.strs[i] + v, c->ans.lens[i] - v, &f->rec, err, sizeof(err)) ==
	    -1) {
		finish(c, SPF_PERMERROR, "%s: %s", f->domain, err);
		return;
	}
	f->next = 0;
	c->state = S_TERMS;
}

/* ---- The explanation (§6.2) ---- */

static bool
printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* §6.2: any problem (expansion, DNS, not exactly one record, syntax, non-ASCII) means "as if
 * no exp modifier was given"; the lookup counts against no limit. */
static void
exp_step(struct spf_check *c)
{
	struct frame *f = top(c);
	struct spf_macro_vars v;
	char err[160];

	switch (c->state) {
	case S_EXP:
		if (f->rec.exp == NULL) {
			explain_default(c);
			return;
		}
		if (need_p(c, f->rec.exp, strlen(f->rec.exp)))
			return;
		vars_of(c, &v);
		if (spf_macro_expand(f->rec.exp, strlen(f->rec.exp), SPF_MACRO_DOMAIN, &v,
		                     c->target, SPF_EXPANSION_MAX + 1, err, sizeof(err)) < 0 ||
		    !spf_name_is_valid(c->target)) {
			explain_default(c);
			return;
		}
		lookup(c, K_TXT, c->target, S_EXP_DONE);
		return;
	case S_EXP_DONE:
		if (c->ans.status != SPF_DNS_OK || c->ans.n != 1 ||
		    !printable(c->ans.strs[0], c->ans.lens[0])) {
			explain_default(c);
			return;
		}
		c->exp_text = xstrdup(c->ans.strs[0]);
		c->state = S_EXP_TEXT;
		return;
	case S_EXP_TEXT:
		if (need_p(c, c->exp_text, strlen(c->exp_text)))
			return;
		vars_of(c, &v);
		if (spf_macro_expand(c->exp_text, strlen(c->exp_text), SPF_MACRO_EXPLAIN, &v,
		                     c->target, SPF_EXPANSION_MAX + 1, err, sizeof(err)) < 0) {
			explain_default(c);
			return;
		}
		c->explanation = xstrdup(c->target);
		c->finished = true;
		return;
	default:
		return;
	}
}

/* ---- Running ---- */

static void
check_free(struct spf_check *c)
{
	if (c->query != NULL)
		c->dns.cancel(c->dns.ctx, c->query);
	while (c->depth > 0)
		pop_frame(c);
	held_clear(&c->ans);
	strv_free(c->names, c->nnames);
	strv_free(c->p_names, c->np_names);
	strv_free(c->p_valid, c->np_valid);
	if (c->deliver != NULL)
		event_free(c->deliver);
	if (c->deadline != NULL)
		event_free(c->deadline);
	free(c->identity);
	free(c->local);
	free(c->sender_domain);
	free(c->helo);
	free(c->receiver);
	free(c->target);
	free(c->exp_text);
	free(c->result_domain);
	free(c->mechanism);
	free(c->explanation);
	free(c);
}

static void
deliver_now(struct spf_check *c)
{
	struct spf_outcome o = {
	    .result = c->result,
	    .scope = spf_scope_name(c->scope),
	    .identity = c->identity != NULL ? c->identity : "",
	    .domain = c->result_domain != NULL ? c->result_domain : "",
	    .mechanism = c->mechanism,
	    .explanation = c->result == SPF_FAIL ? c->explanation : NULL,
	    .default_explanation = c->result == SPF_FAIL && c->default_explanation,
	    .reason = c->reason,
	};

	c->delivering = true;
	c->cb(c->arg, &o);
	check_free(c);
}

static void
on_deliver(evutil_socket_t fd, short what, void *arg)
{
	deliver_now(arg);
}

/* The whole check took too long: whatever is in flight is dropped (§4.6.4: temperror). */
static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct spf_check *c = arg;

	if (c->finished)
		return; /* the outcome is on its way */
	if (c->query != NULL) {
		c->dns.cancel(c->dns.ctx, c->query);
		c->query = NULL;
	}
	c->waiting = false;
	if (c->concluded) /* fail, waiting for the explanation: §6.2, as if there were none */
		explain_default(c);
	else
		finish(c, SPF_TEMPERROR, "the check took over %u ms (RFC 7208 §4.6.4), at %s",
		       c->timeout_ms, c->depth > 0 ? top(c)->domain : c->sender_domain);
	deliver_now(c);
}

/* Steps until a lookup is in flight or the check is over. Returns false if the check was
 * delivered and freed. */
static bool
run(struct spf_check *c)
{
	c->running = true;
	while (!c->waiting && !c->finished) {
		switch (c->state) {
		case S_FETCH:
			lookup(c, K_TXT, top(c)->domain, S_FETCHED);
			break;
		case S_FETCHED:
			fetched(c);
			break;
		case S_TERMS:
			next_term(c);
			break;
		case S_P_START:
		case S_P_PTR_DONE:
		case S_P_ADDR:
		case S_P_ADDR_DONE:
			p_step(c);
			break;
		case S_EXP:
		case S_EXP_DONE:
		case S_EXP_TEXT:
			exp_step(c);
			break;
		default:
			mechanism_step(c);
		}
	}
	c->running = false;
	if (!c->finished)
		return true;
	if (c->deliver != NULL) {
		event_active(c->deliver, EV_TIMEOUT, 0);
		return true;
	}
	deliver_now(c);
	return false;
}

static void
step(struct spf_check *c)
{
	(void)run(c);
}

/* §4.3: a domain to check is a multi-label host name of at most 253 octets (A-labels for an
 * internationalized one): otherwise, none. */
static bool
identity_domain_ok(const char *d)
{
	size_t len = strlen(d), labels = 0, label = 0;

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)d[i];

		if (ch == '.') {
			if (label == 0)
				return false;
			labels++;
			label = 0;
			continue;
		}
		if (!isalnum(ch) && ch != '-' && ch != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && labels >= 1;
}

struct spf_check *
spf_check_start(const struct spf_dns *dns, const struct spf_request *req, spf_check_cb *cb,
                void *arg)
{
	struct spf_check *c = xcalloc(1, sizeof(*c));
	const char *sender = req->sender != NULL ? req->sender : "", *at;

	c->dns = *dns;
	c->cb = cb;
	c->arg = arg;
	c->timeout_ms = req->timeout_ms != 0 ? req->timeout_ms : SPF_CHECK_TIMEOUT_MS;
	if (dns->base != NULL) {
		struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};

		if ((c->deliver = evtimer_new(dns->base, on_deliver, c)) == NULL ||
		    (c->deadline = evtimer_new(dns->base, on_deadline, c)) == NULL ||
		    evtimer_add(c->deadline, &tv) == -1)
			fatal("spf: cannot arm the check's timers");
	}
	c->scope = req->scope;
	c->ip = req->ip;
	spf_ip_normalize(&c->ip);
	c->helo = xstrdup(req->helo != NULL ? req->helo : "");
	c->receiver = req->receiver != NULL ? xstrdup(req->receiver) : NULL;
	c->now = req->now != 0 ? req->now : (int64_t)time(NULL);
	c->target = xmalloc(SPF_EXPANSION_MAX + 1);
	c->state = S_FETCH;

	/* §2.3: the helo identity is postmaster@HELO; §2.4: so is a null MAIL FROM. */
	if (c->scope == SPF_SCOPE_HELO || (c->scope == SPF_SCOPE_MFROM && sender[0] == '\0')) {
		c->local = xstrdup("postmaster");
		c->sender_domain = xstrdup(c->helo);
	} else if ((at = strrchr(sender, '@')) != NULL) {
		/* §4.3: "If the <sender> has no local-part, substitute the string
		 * "postmaster" for the local-part." */
		c->local =
		    at == sender ? xstrdup("postmaster") : xstrndup(sender, (size_t)(at - sender));
		c->sender_domain = xstrdup(at + 1);
	} else {
		c->local = xstrdup("postmaster");
		c->sender_domain = xstrdup(sender);
	}
	c->identity = xasprintf("%s@%s", c->local, c->sender_domain);

	if (c->ip.family != AF_INET && c->ip.family != AF_INET6)
		finish(c, SPF_NONE, "no client IP address to check");
	else if (c->scope == SPF_SCOPE_PRA && sender[0] == '\0')
		finish(c, SPF_PERMERROR, "no Purported Responsible Address (RFC 4407 §2)");
	else if (strlen(c->identity) > SPF_IDENTITY_MAX)
		finish(c, SPF_NONE, "the %s identity is longer than %d octets",
		       spf_scope_name(c->scope), SPF_IDENTITY_MAX);
	else if (!identity_domain_ok(c->sender_domain))
		finish(c, SPF_NONE, "\"%.300s\" is not a valid domain name (RFC 7208 §4.3)",
		       c->sender_domain);
	else
		push_frame(c, c->sender_domain, false);
	return run(c) ? c : NULL;
}

void
spf_check_cancel(struct spf_check *c)
{
	if (c == NULL || c->delivering)
		return;
	check_free(c);
}
