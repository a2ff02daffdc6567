/* test_suppress_store.c - the suppression list as the reception check and an operator see
 * it: add, check, remove; tenants and the global list; whole domains; case; expiry and the
 * sweep; listing; what survives a reopen. */
#include <lmdb.h>

#include "test_suppress_util.h"

/* ---- add, check, remove ---- */

static void
test_add_check_remove(void **state)
{
	char *dir = scratch_dir();
	struct fake_clock clk = {T0};
	struct suppress *list = open_list(dir, &clk);
	struct suppress_record rec = {.address = "bob@example.com",
	                              .reason = SUPPRESS_HARD_BOUNCE,
	                              .source = "550 5.1.1 <bob@example.com>: user unknown"};
	struct suppress_entry e;

	assert_int_equal(suppress_check(list, NULL, "bob@example.com", &e), 0);
	assert_int_equal(suppress_add(list, &rec, NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, NULL, "bob@example.com", &e), 1);
	assert_string_equal(e.tenant, "");
	assert_string_equal(e.address, "bob@example.com");
	assert_int_equal(e.reason, SUPPRESS_HARD_BOUNCE);
	assert_int_equal(e.added_us, T0); /* the injected clock */
	assert_int_equal(e.expires_us, 0);
	assert_string_equal(e.source, "550 5.1.1 <bob@example.com>: user unknown");
	/* NULL entry: only the answer. */
	assert_int_equal(suppress_check(list, "", "bob@example.com", NULL), 1);
	assert_int_equal(suppress_check(list, NULL, "bobby@example.com", NULL), 0);
	assert_int_equal(suppress_count(list), 1);

	/* An add replaces: the newest reason and source win. */
	rec.reason = SUPPRESS_COMPLAINT;
	rec.source = "ARF from fbl.example.net";
	assert_int_equal(suppress_add(list, &rec, NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, NULL, "bob@example.com", &e), 1);
	assert_int_equal(e.reason, SUPPRESS_COMPLAINT);
	assert_string_equal(e.source, "ARF from fbl.example.net");
	assert_int_equal(suppress_count(list), 1);

	assert_int_equal(suppress_remove(list, NULL, "bob@example.com", NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, NULL, "bob@example.com", NULL), 0);
	assert_int_equal(suppress_remove(list, NULL, "bob@example.com", NULL, 0),
	                 SUPPRESS_NOT_FOUND);
	assert_int_equal(suppress_count(list), 0);
	suppress_close(list);
	scratch_remove(dir);
}

/* What cannot be an entry is refused with a reason, and is never suppressed. */
static void
test_invalid(void **state)
{
	static const char *const bad[] = {
	    "",
	    "postmaster",
	    "bob@",
	    "bob@exa mple.com",
	    "bo b@example.com",
	    "bob\r@example.com",
	    "@",
	    "a@b@c.com",
	    "bob@.",
	    "b\xff@example.com",
	    "<>",
	};
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	char err[256];

	for (size_t i = 0; i < nitems(bad); i++) {
		struct suppress_record rec = {.address = bad[i], .reason = SUPPRESS_MANUAL};

		err[0] = '\0';
		assert_int_equal(suppress_add(list, &rec, err, sizeof(err)), SUPPRESS_INVALID);
		assert_true(err[0] != '\0');
		assert_int_equal(suppress_check(list, NULL, bad[i], NULL), 0);
	}
	{
		struct suppress_record rec = {.tenant = "has space", .address = "a@example.com"};

		assert_int_equal(suppress_add(list, &rec, err, sizeof(err)), SUPPRESS_INVALID);
		assert_non_null(strstr(err, "tenant"));
		rec.tenant = "acme";
		rec.reason = (enum suppress_reason)42;
		assert_int_equal(suppress_add(list, &rec, err, sizeof(err)), SUPPRESS_INVALID);
	}
	assert_int_equal(suppress_count(list), 0);
	suppress_close(list);
	scratch_remove(dir);
}

static void
test_normalize(void **state)
{
	static const struct {
		const char *in;
		bool fold;
		const char *out;
	} cases[] = {
	    {"Bob@Example.COM", true, "bob@example.com"},
	    {"Bob@Example.COM", false, "Bob@example.com"},
	    {"  <Bob@Example.com>  ", true, "bob@example.com"},
	    {"bob@example.com.", true, "bob@example.com"}, /* the FQDN's dot */
	    {"@Example.COM", true, "@example.com"},        /* a domain entry */
	    {"\"john doe\"@example.com", true, "\"john doe\"@example.com"},
	    {"\"a@b\"@example.com", true, "\"a@b\"@example.com"},
	    {"user+tag@[192.0.2.1]", true, "user+tag@[192.0.2.1]"},
	    {"JÖRG@BÜCHER.example", true, "jÖrg@bÜcher.example"}, /* ASCII only is folded */
	};
	char out[SUPPRESS_ADDRESS_MAX + 1], again[SUPPRESS_ADDRESS_MAX + 1];
	char longer[400];

	for (size_t i = 0; i < nitems(cases); i++) {
		int n =
		    suppress_address_normalize(cases[i].in, cases[i].fold, out, sizeof(out), NULL);

		assert_int_equal(n, (int)strlen(cases[i].out));
		assert_string_equal(out, cases[i].out);
		/* Idempotent: a stored form is its own stored form. */
		suppress_address_normalize(out, cases[i].fold, again, sizeof(again), NULL);
		assert_string_equal(again, out);
	}
	memset(longer, 'a', sizeof(longer));
	memcpy(longer + 370, "@example.com", 13); /* 382 octets */
	assert_int_equal(suppress_address_normalize(longer, true, out, sizeof(out), NULL), -1);
}

/* ---- tenants ---- */

static void
test_tenants_and_global(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct suppress_entry e;

	add(list, "acme", "ann@example.com", SUPPRESS_UNSUBSCRIBE, 0);
	add(list, NULL, "gus@example.com", SUPPRESS_HARD_BOUNCE, 0);

	/* A tenant's entry applies to that tenant only. */
	assert_int_equal(suppress_check(list, "acme", "ann@example.com", &e), 1);
	assert_string_equal(e.tenant, "acme");
	assert_int_equal(suppress_check(list, "globex", "ann@example.com", NULL), 0);
	assert_int_equal(suppress_check(list, NULL, "ann@example.com", NULL), 0);
	/* "acme" is not a prefix match: "acme2" and "acm" are other tenants. */
	assert_int_equal(suppress_check(list, "acme2", "ann@example.com", NULL), 0);
	assert_int_equal(suppress_check(list, "acm", "ann@example.com", NULL), 0);

	/* A global entry applies to every tenant. */
	assert_int_equal(suppress_check(list, NULL, "gus@example.com", NULL), 1);
	assert_int_equal(suppress_check(list, "acme", "gus@example.com", &e), 1);
	assert_string_equal(e.tenant, "");
	assert_int_equal(suppress_check(list, "globex", "gus@example.com", NULL), 1);

	/* Both: the tenant's own entry is the one reported (the more specific). */
	add(list, "acme", "gus@example.com", SUPPRESS_COMPLAINT, 0);
	assert_int_equal(suppress_check(list, "acme", "gus@example.com", &e), 1);
	assert_string_equal(e.tenant, "acme");
	assert_int_equal(e.reason, SUPPRESS_COMPLAINT);
	/* Removing the tenant's leaves the global one in force. */
	assert_int_equal(suppress_remove(list, "acme", "gus@example.com", NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, "acme", "gus@example.com", &e), 1);
	assert_string_equal(e.tenant, "");
	/* Removing under the wrong tenant removes nothing. */
	assert_int_equal(suppress_remove(list, "globex", "ann@example.com", NULL, 0),
	                 SUPPRESS_NOT_FOUND);
	assert_int_equal(suppress_check(list, "acme", "ann@example.com", NULL), 1);

	/* A tenant name that cannot exist has no entries of its own; global ones apply. */
	assert_int_equal(suppress_check(list, "no such tenant", "gus@example.com", NULL), 1);
	assert_int_equal(suppress_check(list, "no such tenant", "ann@example.com", NULL), 0);
	suppress_close(list);
	scratch_remove(dir);
}

/* ---- whole domains ---- */

static void
test_domain_entries(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct suppress_entry e;

	add(list, NULL, "@Dead.Example", SUPPRESS_MANUAL, 0);
	add(list, "acme", "@parked.example", SUPPRESS_HARD_BOUNCE, 0);

	assert_int_equal(suppress_check(list, NULL, "anyone@dead.example", &e), 1);
	assert_string_equal(e.address, "@dead.example");
	assert_int_equal(suppress_check(list, "acme", "ANYONE@DEAD.EXAMPLE", NULL), 1);
	/* Exactly that domain: not its subdomains, not a domain it ends with. */
	assert_int_equal(suppress_check(list, NULL, "a@mx.dead.example", NULL), 0);
	assert_int_equal(suppress_check(list, NULL, "a@undead.example", NULL), 0);

	assert_int_equal(suppress_check(list, "acme", "x@parked.example", &e), 1);
	assert_string_equal(e.tenant, "acme");
	assert_int_equal(suppress_check(list, "globex", "x@parked.example", NULL), 0);

	/* An address entry of a domain entry's domain is the one reported. */
	add(list, NULL, "joe@dead.example", SUPPRESS_COMPLAINT, 0);
	assert_int_equal(suppress_check(list, NULL, "joe@dead.example", &e), 1);
	assert_string_equal(e.address, "joe@dead.example");

	/* The domain entry itself can be checked and removed. */
	assert_int_equal(suppress_check(list, NULL, "@dead.example", NULL), 1);
	assert_int_equal(suppress_remove(list, NULL, "@DEAD.example", NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, NULL, "anyone@dead.example", NULL), 0);
	assert_int_equal(suppress_check(list, NULL, "joe@dead.example", NULL), 1);
	suppress_close(list);
	scratch_remove(dir);
}

/* ---- case ---- */

static void
test_local_part_folded_by_default(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct suppress_entry e;

	assert_false(suppress_local_exact(list));
	add(list, NULL, "Mary.Smith@Example.com", SUPPRESS_HARD_BOUNCE, 0);
	assert_int_equal(suppress_check(list, NULL, "mary.smith@example.com", &e), 1);
	assert_string_equal(e.address, "mary.smith@example.com");
	assert_int_equal(suppress_check(list, NULL, "MARY.SMITH@EXAMPLE.COM", NULL), 1);
	assert_int_equal(suppress_remove(list, NULL, "MARY.smith@example.COM", NULL, 0),
	                 SUPPRESS_OK);
	suppress_close(list);

	/* The rule is the store's: opening it asking for the other one keeps it. */
	list = open_list_opt(dir, NULL, SUPPRESS_LOCAL_EXACT, 0);
	assert_false(suppress_local_exact(list));
	suppress_close(list);
	scratch_remove(dir);
}

static void
test_local_part_exact(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list_opt(dir, NULL, SUPPRESS_LOCAL_EXACT, 0);
	struct suppress_entry e;

	assert_true(suppress_local_exact(list));
	add(list, NULL, "Mary.Smith@Example.COM", SUPPRESS_HARD_BOUNCE, 0);
	assert_int_equal(suppress_check(list, NULL, "Mary.Smith@example.com", &e), 1);
	assert_string_equal(e.address, "Mary.Smith@example.com"); /* domain still folded */
	assert_int_equal(suppress_check(list, NULL, "mary.smith@example.com", NULL), 0);
	/* Domain entries have no local part: they match every spelling. */
	add(list, NULL, "@Example.NET", SUPPRESS_MANUAL, 0);
	assert_int_equal(suppress_check(list, NULL, "MiXeD@example.net", NULL), 1);
	suppress_close(list);

	/* Kept across opens, read-only ones included. */
	list = open_list(dir, NULL);
	assert_true(suppress_local_exact(list));
	suppress_close(list);
	list = open_list_opt(dir, NULL, SUPPRESS_READONLY, 0);
	assert_true(suppress_local_exact(list));
	assert_int_equal(suppress_check(list, NULL, "Mary.Smith@EXAMPLE.com", NULL), 1);
	suppress_close(list);
	scratch_remove(dir);
}

/* ---- expiry ---- */

static void
test_expiry_and_sweep(void **state)
{
	char *dir = scratch_dir();
	struct fake_clock clk = {T0};
	struct suppress *list = open_list(dir, &clk);
	struct suppress_stats st;

	add(list, NULL, "soon@example.com", SUPPRESS_HARD_BOUNCE, T0 + HOUR);
	add(list, NULL, "later@example.com", SUPPRESS_HARD_BOUNCE, T0 + 48 * HOUR);
	add(list, NULL, "never@example.com", SUPPRESS_MANUAL, 0);
	add(list, NULL, "@soon.example", SUPPRESS_MANUAL, T0 + HOUR);
	/* An expired tenant entry must not hide a live global one. */
	add(list, "acme", "both@example.com", SUPPRESS_COMPLAINT, T0 + HOUR);
	add(list, NULL, "both@example.com", SUPPRESS_HARD_BOUNCE, 0);

	assert_int_equal(suppress_check(list, NULL, "soon@example.com", NULL), 1);
	assert_int_equal(suppress_check(list, NULL, "x@soon.example", NULL), 1);

	clk.now = T0 + HOUR; /* at the expiry: expired */
	assert_int_equal(suppress_check(list, NULL, "soon@example.com", NULL), 0);
	assert_int_equal(suppress_check(list, NULL, "x@soon.example", NULL), 0);
	assert_int_equal(suppress_check(list, NULL, "later@example.com", NULL), 1);
	assert_int_equal(suppress_check(list, NULL, "never@example.com", NULL), 1);
	{
		struct suppress_entry e;

		assert_int_equal(suppress_check(list, "acme", "both@example.com", &e), 1);
		assert_string_equal(e.tenant, "");
	}
	/* Expired, still stored until swept. */
	assert_int_equal(suppress_count(list), 6);
	assert_int_equal(suppress_sweep(list, clk.now), 3);
	assert_int_equal(suppress_count(list), 3);
	assert_int_equal(suppress_sweep(list, clk.now), 0);
	suppress_stats(list, &st);
	assert_int_equal(st.removed, 3);

	clk.now = T0 + 100 * HOUR;
	assert_int_equal(suppress_sweep(list, clk.now), 1); /* later@ */
	assert_int_equal(suppress_check(list, NULL, "never@example.com", NULL), 1);
	assert_int_equal(suppress_count(list), 2);
	suppress_close(list);
	scratch_remove(dir);
}

/* A sweep over more entries than one of its transactions looks at. */
static void
test_sweep_many(void **state)
{
	char *dir = scratch_dir();
	struct fake_clock clk = {T0};
	struct suppress *list = open_list_opt(dir, &clk, 0, 0);
	FILE *f = tmpfile();
	struct suppress_import_result res;
	struct suppress_record def = {.reason = SUPPRESS_HARD_BOUNCE, .expires_us = T0 + HOUR};
	char err[256];

	assert_non_null(f);
	for (int i = 0; i < 25000; i++)
		fprintf(f, "user%d@example.com\n", i);
	rewind(f);
	assert_int_equal(suppress_import(list, f, &def, NULL, NULL, &res, err, sizeof(err)), 0);
	fclose(f);
	add(list, NULL, "keep@example.com", SUPPRESS_MANUAL, 0);
	assert_int_equal(suppress_count(list), 25001);
	assert_int_equal(suppress_sweep(list, T0 + HOUR), 25000);
	assert_int_equal(suppress_count(list), 1);
	assert_int_equal(suppress_check(list, NULL, "keep@example.com", NULL), 1);
	suppress_close(list);
	scratch_remove(dir);
}

/* ---- iteration ---- */

struct collected {
	unsigned n;
	char addr[64][SUPPRESS_ADDRESS_MAX + SUPPRESS_TENANT_MAX + 2];
	unsigned stop_after;
};

static int
collect(void *arg, const struct suppress_entry *e)
{
	struct collected *c = arg;

	if (c->n < 64)
		snprintf(c->addr[c->n], sizeof(c->addr[0]), "%s/%s", e->tenant, e->address);
	c->n++;
	return c->stop_after != 0 && c->n == c->stop_after ? 7 : 0;
}

static void
test_foreach(void **state)
{
	char *dir = scratch_dir();
	struct fake_clock clk = {T0};
	struct suppress *list = open_list(dir, &clk);
	struct collected c = {0};

	add(list, "acme", "b@example.com", SUPPRESS_MANUAL, 0);
	add(list, "acme", "a@example.com", SUPPRESS_MANUAL, 0);
	add(list, "acme2", "c@example.com", SUPPRESS_MANUAL, 0);
	add(list, NULL, "z@example.com", SUPPRESS_MANUAL, 0);
	add(list, NULL, "old@example.com", SUPPRESS_MANUAL, T0 - 1);

	/* Every tenant, in key order: global first, then by tenant, then by address. */
	assert_int_equal(suppress_foreach(list, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.addr[0], "/z@example.com");
	assert_string_equal(c.addr[1], "acme/a@example.com");
	assert_string_equal(c.addr[2], "acme/b@example.com");
	assert_string_equal(c.addr[3], "acme2/c@example.com");

	memset(&c, 0, sizeof(c));
	assert_int_equal(suppress_foreach(list, NULL, SUPPRESS_FOREACH_EXPIRED, collect, &c), 0);
	assert_int_equal(c.n, 5);

	/* One tenant: not the tenant whose name it prefixes. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(suppress_foreach(list, "acme", 0, collect, &c), 0);
	assert_int_equal(c.n, 2);
	memset(&c, 0, sizeof(c));
	assert_int_equal(suppress_foreach(list, "", 0, collect, &c), 0);
	assert_int_equal(c.n, 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(suppress_foreach(list, "nobody", 0, collect, &c), 0);
	assert_int_equal(c.n, 0);

	/* Stopping early returns what the function returned. */
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(suppress_foreach(list, NULL, 0, collect, &c), 7);
	assert_int_equal(c.n, 2);
	suppress_close(list);
	scratch_remove(dir);
}

/* More entries than one read snapshot serves: each seen exactly once. */
static void
test_foreach_renews_snapshot(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct collected c = {0};
	FILE *f = tmpfile();
	char err[256];

	for (int i = 0; i < 23456; i++)
		fprintf(f, "u%05d@example.com\n", i);
	rewind(f);
	assert_int_equal(suppress_import(list, f, NULL, NULL, NULL, NULL, err, sizeof(err)), 0);
	fclose(f);
	assert_int_equal(suppress_foreach(list, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 23456);
	suppress_close(list);
	scratch_remove(dir);
}

/* ---- records ---- */

static void
test_source_kept_printable(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct suppress_record rec = {.address = "a@example.com"};
	struct suppress_entry e;
	char longsrc[600];

	rec.source = "550-5.1.1 first line\r\n550 5.1.1 second\tline \x01";
	assert_int_equal(suppress_add(list, &rec, NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, NULL, "a@example.com", &e), 1);
	assert_string_equal(e.source, "550-5.1.1 first line  550 5.1.1 second line  ");

	/* Stray 8-bit octets become '?'; well-formed UTF-8 stays. */
	rec.source = "Empf\xe4nger unbekannt / Empfänger";
	assert_int_equal(suppress_add(list, &rec, NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, NULL, "a@example.com", &e), 1);
	assert_string_equal(e.source, "Empf?nger unbekannt / Empfänger");

	/* Cut to SUPPRESS_SOURCE_MAX, never inside a UTF-8 sequence. */
	memset(longsrc, 'x', sizeof(longsrc));
	memcpy(longsrc + SUPPRESS_SOURCE_MAX - 1, "é", 2); /* straddles the limit */
	longsrc[sizeof(longsrc) - 1] = '\0';
	rec.source = longsrc;
	assert_int_equal(suppress_add(list, &rec, NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, NULL, "a@example.com", &e), 1);
	assert_int_equal(strlen(e.source), SUPPRESS_SOURCE_MAX - 1);

	rec.source = NULL;
	assert_int_equal(suppress_add(list, &rec, NULL, 0), SUPPRESS_OK);
	assert_int_equal(suppress_check(list, NULL, "a@example.com", &e), 1);
	assert_string_equal(e.source, "");
	suppress_close(list);
	scratch_remove(dir);
}

/* A damaged record (written behind the list's back) is skipped, never trusted. */
static void
test_damaged_record(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct collected c = {0};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {sizeof("\0bad@example.com") - 1, "\0bad@example.com"}, v = {3, "\x09\x00\x00"};

	add(list, NULL, "good@example.com", SUPPRESS_MANUAL, 0);
	suppress_close(list);
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 2);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	list = open_list(dir, NULL);
	assert_int_equal(suppress_foreach(list, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(suppress_check(list, NULL, "good@example.com", NULL), 1);
	assert_int_equal(suppress_check(list, NULL, "bad@example.com", NULL), 0);
	suppress_close(list);
	scratch_remove(dir);
}

/* ---- opening ---- */

static void
test_open_readonly(void **state)
{
	char *dir = scratch_dir();
	char missing[600], err[512] = "";
	struct suppress *list;
	struct suppress_record rec = {.address = "a@example.com"};

	/* Read-only never creates: a mistyped directory is an error, not an empty list. */
	snprintf(missing, sizeof(missing), "%s/nothing-here", dir);
	assert_null(suppress_open(missing, NULL, SUPPRESS_READONLY, err, sizeof(err)));
	assert_non_null(strstr(err, "nothing-here"));
	assert_int_equal(access(missing, F_OK), -1);

	/* Read-write creates the missing levels. */
	snprintf(missing, sizeof(missing), "%s/a/b/list", dir);
	list = open_list(missing, NULL);
	add(list, NULL, "a@example.com", SUPPRESS_MANUAL, 0);
	suppress_close(list);

	list = open_list_opt(missing, NULL, SUPPRESS_READONLY, 0);
	assert_int_equal(suppress_check(list, NULL, "a@example.com", NULL), 1);
	assert_int_equal(suppress_add(list, &rec, err, sizeof(err)), SUPPRESS_IO_ERROR);
	assert_int_equal(suppress_remove(list, NULL, "a@example.com", NULL, 0), SUPPRESS_IO_ERROR);
	assert_int_equal(suppress_sweep(list, T0), -1);
	assert_int_equal(suppress_count(list), 1);
	suppress_close(list);
	scratch_remove(dir);
}

static void
test_names(void **state)
{
	enum suppress_reason r;
	uint64_t t;

	for (unsigned i = 0; i < SUPPRESS_REASON_COUNT; i++) {
		assert_int_equal(suppress_reason_parse(suppress_reason_name(i), &r), 0);
		assert_int_equal(r, i);
	}
	assert_int_equal(suppress_reason_parse("Hard_Bounce", &r), 0);
	assert_int_equal(r, SUPPRESS_HARD_BOUNCE);
	assert_int_equal(suppress_reason_parse("bounce", &r), 0);
	assert_int_equal(r, SUPPRESS_HARD_BOUNCE);
	assert_int_equal(suppress_reason_parse("soft-bounce", &r), -1);
	assert_int_equal(suppress_reason_parse("", &r), -1);

	assert_int_equal(suppress_time_parse("2027-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(suppress_time_parse("2027-01-01 01:00:00.5+01:00", &t), 0);
	assert_int_equal(t, T0 + USEC / 2);
	assert_int_equal(suppress_time_parse("2026-12-31T23:00:00-01:00", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(suppress_time_parse("1798761600", &t), 0);
	assert_int_equal(t, T0);
	assert_int_equal(suppress_time_parse("2027-13-01T00:00:00Z", &t), -1);
	assert_int_equal(suppress_time_parse("2027-01-01", &t), -1);
	assert_int_equal(suppress_time_parse("2027-01-01T00:00:00Zjunk", &t), -1);
	assert_int_equal(suppress_time_parse("yesterday", &t), -1);
	assert_int_equal(suppress_time_parse("", &t), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_check_remove),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_tenants_and_global),
	    cmocka_unit_test(test_domain_entries),
	    cmocka_unit_test(test_local_part_folded_by_default),
	    cmocka_unit_test(test_local_part_exact),
	    cmocka_unit_test(test_expiry_and_sweep),
	    cmocka_unit_test(test_sweep_many),
	    cmocka_unit_test(test_foreach),
	    cmocka_unit_test(test_foreach_renews_snapshot),
	    cmocka_unit_test(test_source_kept_printable),
	    cmocka_unit_test(test_damaged_record),
	    cmocka_unit_test(test_open_readonly),
	    cmocka_unit_test(test_names),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
