/* test_shape_defaults.c - etc/shaping.conf: it loads (from the file and built in, the same),
 * its defaults { } are the built-in values, each provider is found from its real MX host
 * names, and each adaptive rule acts on a reply as that provider sends it (written from the
 * providers' postmaster pages and replies seen in the wild) - and no rule is left without
 * such a reply. */
#include "test_shape_util.h"

#define RULES DROVER_SOURCE_DIR "/etc/shaping.conf"

static struct shape_rules *
load_defaults(void)
{
	char err[8192];
	struct shape_rules *r = shape_rules_load(RULES, NULL, NULL, err, sizeof(err));

	if (r == NULL)
		fail_msg("%s", err);
	return r;
}

static void
test_loads_and_builtin_is_the_file(void **state)
{
	char err[8192], a[256], b[256];
	struct shape_rules *file = load_defaults();
	struct shape_rules *builtin = shape_rules_builtin(NULL, NULL, err, sizeof(err));
	struct shape_params pf, pb;
	struct shape_settings s;

	if (builtin == NULL)
		fail_msg("%s", err);
	assert_int_equal(shape_provider_count(file), 10);
	assert_int_equal(shape_provider_count(builtin), shape_provider_count(file));
	assert_int_equal(shape_adaptive_count(builtin), shape_adaptive_count(file));
	for (size_t i = 0; i <= shape_provider_count(file); i++) {
		const char *p = shape_provider_name(file, i); /* NULL at the end: no provider */

		shape_params(file, "ip-1", p, "example.org", &pf);
		shape_params(builtin, "ip-1", p, "example.org", &pb);
		for (int f = 0; f < SHAPE_FIELD_COUNT; f++) {
			shape_field_format(&pf.s, (enum shape_field)f, a, sizeof(a));
			shape_field_format(&pb.s, (enum shape_field)f, b, sizeof(b));
			assert_string_equal(a, b);
			assert_int_equal(pf.origin[f].line, pb.origin[f].line);
		}
	}
	/* The built-in rules have no defaults { }: a domain of no provider gets the base, every
	 * field from the built-in layer (drover.conf's delivery settings, in the engine). */
	shape_settings_builtin(&s);
	shape_params(file, NULL, NULL, "example.org", &pf);
	for (int f = 0; f < SHAPE_FIELD_COUNT; f++) {
		shape_field_format(&pf.s, (enum shape_field)f, a, sizeof(a));
		shape_field_format(&s, (enum shape_field)f, b, sizeof(b));
		if (strcmp(a, b) != 0)
			fail_msg("%s: the rules say %s, built in %s", shape_field_name(f), a, b);
		if (pf.origin[f].layer != SHAPE_LAYER_BUILTIN)
			fail_msg("%s is set by the built-in rules' %s layer", shape_field_name(f),
			         shape_layer_name(pf.origin[f].layer));
	}
	shape_rules_unref(file);
	shape_rules_unref(builtin);
}

static const struct {
	const char *domain, *mx, *provider;
} hosts[] = {
    {"gmail.com", NULL, "gmail"},
    {"workspace.example", "aspmx.l.google.com", "gmail"},
    {"workspace.example", "smtp.google.com.", "gmail"},
    {"x.example", "alt2.gmail-smtp-in.l.google.com", "gmail"},
    {"hotmail.com", NULL, "microsoft"},
    {"tenant.example", "tenant-example.mail.protection.outlook.com", "microsoft"},
    {"x.example", "hotmail-com.olc.protection.outlook.com", "microsoft"},
    {"aol.com", NULL, "yahoo"},
    {"x.example", "mta6.am0.yahoodns.net", "yahoo"},
    {"x.example", "mx-aol.mail.gm0.yahoodns.net", "yahoo"},
    {"me.com", NULL, "icloud"},
    {"custom.example", "mx01.mail.icloud.com", "icloud"},
    {"comcast.net", "mx1a1.comcast.net", "comcast"},
    {"web.de", NULL, "gmx"},
    {"x.example", "mx00.emig.gmx.net", "gmx"},
    {"wanadoo.fr", NULL, "orange"},
    {"x.example", "smtp-in.orange.fr", "orange"},
    {"bk.ru", NULL, "mailru"},
    {"x.example", "mxs.mail.ru", "mailru"},
    {"ya.ru", NULL, "yandex"},
    {"company.example", "mx.yandex.net", "yandex"},
    {"foxmail.com", NULL, "qq"},
    {"x.example", "mx3.qq.com", "qq"},
    {"x.example", "mx.example.net", NULL},
    {"x.example", "google.com.evil.example", NULL},
};

static void
test_providers_by_mx(void **state)
{
	struct shape_rules *r = load_defaults();

	for (size_t i = 0; i < nitems(hosts); i++) {
		const char *mx[1] = {hosts[i].mx};
		const char *got = shape_provider_of(r, hosts[i].domain, mx, hosts[i].mx ? 1 : 0);

		if ((got == NULL) != (hosts[i].provider == NULL) ||
		    (got != NULL && strcmp(got, hosts[i].provider) != 0))
			fail_msg("%s (MX %s): provider %s, want %s", hosts[i].domain,
			         hosts[i].mx ? hosts[i].mx : "-", got ? got : "none",
			         hosts[i].provider ? hosts[i].provider : "none");
	}
	shape_rules_unref(r);
}

#define GSMTP " 41be03b00d2f7-5c1a2b3c4d5si1234567a12.345 - gsmtp"
#define EOP   " [DM6NAM11FT012.eop-nam11.prod.protection.outlook.com 2024-05-08T09:12:33.456Z]"

static const struct reply_case {
	const char *domain, *mx; /* as a delivery would see them */
	int code;
	const char *status, *text;
	unsigned times;   /* observed this often (one second apart) before the action */
	const char *rule; /* the rule that acts on the last one; NULL: none does */
} replies[] = {
    /* ---- Gmail ---- */
    {"gmail.com", NULL, 421, "4.7.28",
     "[192.0.2.1      15] Our system has detected an unusual rate of\n"
     "unsolicited mail originating from your IP address. To protect our\n"
     "users from spam, mail sent from your IP address has been temporarily\n"
     "rate limited. Please visit\n"
     " https://support.google.com/mail/?p=UnsolicitedRateLimitError to\n"
     "review our Bulk Email Senders Guidelines." GSMTP,
     1, "gmail-rate-limited"},
    {"workspace.example", "aspmx.l.google.com", 421, "4.7.0",
     "[192.0.2.1] Our system has detected that this message is\n"
     "suspicious due to the very low reputation of the sending IP address.\n"
     "To protect our users from spam, mail sent from your IP address has\n"
     "been temporarily rate limited." GSMTP,
     1, "gmail-low-reputation"},
    {"gmail.com", NULL, 421, "4.7.0", "Try again later, closing connection. (EHLO)" GSMTP, 1,
     "gmail-low-reputation"},
    {"gmail.com", NULL, 450, "4.2.1",
     "The user you are trying to contact is receiving mail at a rate that\n"
     "prevents additional messages from being delivered. Please resend your\n"
     "message at a later point. If the user is able to receive mail at that\n"
     "time, your message will be delivered." GSMTP,
     10, "gmail-receiving-too-fast"},
    {"gmail.com", NULL, 550, "5.1.1",
     "The email account that you tried to reach does not exist." GSMTP, 1, NULL},
    /* ---- Microsoft ---- */
    {"hotmail.com", NULL, 451, "4.7.650",
     "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. "
     "For e-mail delivery information, see https://postmaster.live.com (S775)" EOP,
     1, "microsoft-rate-limited"},
    {"tenant.example", "tenant-example.mail.protection.outlook.com", 451, "4.7.500",
     "Server busy. Please try again later from [192.0.2.1]. (S77714)" EOP, 1,
     "microsoft-server-busy"},
    {"outlook.com", NULL, 550, "5.7.1",
     "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet "
     "service provider since part of their network is on our block list (S3150). You can "
     "also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors." EOP,
     1, "microsoft-blocked"},
    {"hotmail.com", NULL, 550, "5.5.0", "Requested action not taken: mailbox unavailable." EOP, 1,
     NULL},
    /* ---- Yahoo and AOL ---- */
    {"yahoo.com", NULL, 421, "4.7.0",
     "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     1, "yahoo-deferred"},
    {"aol.com", "mx-aol.mail.gm0.yahoodns.net", 421, "4.7.0",
     "[TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints - "
     "4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html",
     1, "yahoo-deferred"},
    {"ymail.com", NULL, 554, "5.7.9",
     "Message not accepted for policy reasons. [TS03] All messages from 192.0.2.1 will be "
     "permanently deferred; Retrying will NOT succeed. See "
     "https://postmaster.yahooinc.com/error-codes",
     1, "yahoo-blocked"},
    {"aol.com", NULL, 421, "4.7.1", ": (DYN:T1) https://postmaster.aol.com/error-codes#421dynt1", 1,
     "aol-deferred"},
    {"yahoo.com", NULL, 554, "5.7.9",
     "Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes", 1,
     NULL},
    /* ---- Apple iCloud ---- */
    {"icloud.com", "mx02.mail.icloud.com", 421, "4.7.0",
     "Too many concurrent SMTP connections from this IP address; please try again later.", 1,
     "icloud-rate-limited"},
    /* ---- Comcast ---- */
    {"comcast.net", "mx2c1.comcast.net", 421, "4.7.0",
     "resimta-po-12v.sys.comcast.net comcast 192.0.2.1 Too many sessions opened", 1,
     "comcast-rate-limited"},
    {"comcast.net", NULL, 452, "4.1.0",
     "resimta-ch2-18v.sys.comcast.net comcast 192.0.2.1 RL000010 Too many messages sent on "
     "this session",
     1, "comcast-rate-limited"},
    /* ---- GMX / WEB.DE ---- */
    {"gmx.de", "mx00.emig.gmx.net", 421, NULL,
     "gmx.net (mxgmx016) Nemesis ESMTP Service not available\n"
     "Requested action aborted: local error in processing\n"
     "Too many connections from your IP address",
     1, "gmx-too-many"},
    {"web.de", "mx-ha03.web.de", 450, "4.7.0",
     "Message temporarily deferred - 4.7.0 ... too many messages from your IP (192.0.2.1)", 1,
     "gmx-too-many"},
    /* ---- Orange ---- */
    {"orange.fr", "smtp-in.orange.fr", 421, NULL,
     "mwinf5c10 ME Service refuse. Veuillez essayer plus tard. Service refused, please try "
     "later. OFR004_104 [104]",
     1, "orange-deferred"},
    /* ---- Mail.ru ---- */
    {"mail.ru", "mxs.mail.ru", 421, "4.7.1", "Try again later, ratelimit exceeded for 192.0.2.1", 1,
     "mailru-ratelimit"},
    /* ---- Yandex ---- */
    {"yandex.ru", "mx.yandex.ru", 451, "4.7.1",
     "Sorry, the service is currently unavailable. Please come back later.", 1, "yandex-deferred"},
    /* ---- QQ ---- */
    {"qq.com", "mx3.qq.com", 550, NULL,
     "Ip frequency limited [MTXPmOXvqL+SFZ7m9Z0GHRhdzvzAY4KcCfNBPfK8gkr2z7JQPXmXlA==] "
     "http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022&&no=1000725",
     1, "qq-frequency-limited"},
    {"foxmail.com", NULL, 451, NULL,
     "Connection frequency limited. http://service.mail.qq.com/cgi-bin/help?subtype=1&&id="
     "20022&&no=1000722",
     1, "qq-frequency-limited"},
};

static void
test_every_rule_acts_on_its_reply(void **state)
{
	struct shape_rules *r = load_defaults();
	size_t nrules = shape_adaptive_count(r);
	bool *hit = calloc(nrules, sizeof(bool));

	for (size_t i = 0; i < nitems(replies); i++) {
		const struct reply_case *c = &replies[i];
		struct shape_state *st = shape_state_new(r, 0, 0);
		const char *mx[1] = {c->mx};
		const char *provider = shape_provider_of(r, c->domain, mx, c->mx ? 1 : 0);
		struct shape_event ev[4];
		size_t n = 0;

		for (unsigned k = 0; k < c->times; k++) {
			n = shape_observe(st, "ip-1", provider, c->domain, c->code, c->status,
			                  c->text, T0 + k * USEC, ev, nitems(ev));
			if (k + 1 < c->times && n != 0)
				fail_msg("%s %d: acted after %u of %u replies", c->domain, c->code,
				         k + 1, c->times);
		}
		if (c->rule == NULL) {
			if (n != 0)
				fail_msg("%s %d %s: rule \"%s\" acted, want none", c->domain,
				         c->code, c->status ? c->status : "-", ev[0].rule);
		} else {
			if (n != 1 || strcmp(ev[0].rule, c->rule) != 0)
				fail_msg("%s %d %s: %zu actions (%s), want rule \"%s\"", c->domain,
				         c->code, c->status ? c->status : "-", n,
				         n > 0 ? ev[0].rule : "none", c->rule);
			for (size_t k = 0; k < nrules; k++) {
				if (strcmp(shape_adaptive_name(r, k, NULL), c->rule) == 0)
					hit[k] = true;
			}
		}
		shape_state_free(st);
	}
	for (size_t k = 0; k < nrules; k++) {
		unsigned line;
		const char *name = shape_adaptive_name(r, k, &line);

		if (!hit[k])
			fail_msg("rule \"%s\" (line %u) has no sample reply here", name, line);
	}
	free(hit);
	shape_rules_unref(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_loads_and_builtin_is_the_file),
	    cmocka_unit_test(test_providers_by_mx),
	    cmocka_unit_test(test_every_rule_acts_on_its_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
