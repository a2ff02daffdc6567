/* test_suppress_import.c - lists in bulk: the line format (plain, CSV with a header, other
 * senders' exports), refused lines with their numbers, batches, duplicates, and appending
 * after what is stored. */
#include "test_suppress_util.h"

/* Parses one line as the import does (defaults: global, import, no expiry, no source). */
static int
parse(struct suppress_columns *c, const char *text, struct suppress_record *rec, char *buf,
      size_t size, char *err)
{
	size_t len = strlen(text);

	assert_true(len + 1 <= size);
	memcpy(buf, text, len + 1);
	*rec = (struct suppress_record){.reason = SUPPRESS_IMPORT};
	return suppress_import_parse(c, buf, len, rec, err, 256);
}

static void
test_parse_plain(void **state)
{
	struct suppress_columns c = {0};
	struct suppress_record rec;
	char buf[512], err[256];

	assert_int_equal(parse(&c, "bob@example.com\n", &rec, buf, sizeof(buf), err), 1);
	assert_string_equal(rec.address, "bob@example.com");
	assert_int_equal(rec.reason, SUPPRESS_IMPORT);
	assert_null(rec.source);
	assert_null(rec.tenant);

	assert_int_equal(
	    parse(&c, "  bob@example.com , complaint \r\n", &rec, buf, sizeof(buf), err), 1);
	assert_string_equal(rec.address, "bob@example.com");
	assert_int_equal(rec.reason, SUPPRESS_COMPLAINT);

	assert_int_equal(parse(&c, "bob@example.com,hard-bounce,550 5.1.1 unknown user", &rec, buf,
	                       sizeof(buf), err),
	                 1);
	assert_int_equal(rec.reason, SUPPRESS_HARD_BOUNCE);
	assert_string_equal(rec.source, "550 5.1.1 unknown user");

	/* A source with commas is quoted; "" is a quote. */
	assert_int_equal(parse(&c, "bob@example.com,,\"550, \"\"no\"\" such user\"", &rec, buf,
	                       sizeof(buf), err),
	                 1);
	assert_int_equal(rec.reason, SUPPRESS_IMPORT); /* empty: the default */
	assert_string_equal(rec.source, "550, \"no\" such user");

	/* Nothing to import. */
	assert_int_equal(parse(&c, "", &rec, buf, sizeof(buf), err), 0);
	assert_int_equal(parse(&c, "   \r\n", &rec, buf, sizeof(buf), err), 0);
	assert_int_equal(parse(&c, "# exported 2026-12-01", &rec, buf, sizeof(buf), err), 0);
	assert_int_equal(parse(&c, "  # indented comment", &rec, buf, sizeof(buf), err), 0);
}

static void
test_parse_refused(void **state)
{
	static const struct {
		const char *line;
		const char *why;
	} cases[] = {
	    {"bob@example.com,resigned", "unknown reason"},
	    {"bob@example.com,manual,src,extra", "more than 3 fields"},
	    {"bob@example.com,manual,\"open", "not closed"},
	    {"bob@example.com,manual,\"quoted\" tail", "after a closing quote"},
	    {"bob@example.com,man\"ual", "quote inside"},
	    {",manual", "no address"},
	};
	struct suppress_record rec;
	char buf[512], err[256];

	for (size_t i = 0; i < nitems(cases); i++) {
		struct suppress_columns c = {0};

		err[0] = '\0';
		assert_int_equal(parse(&c, cases[i].line, &rec, buf, sizeof(buf), err), -1);
		if (strstr(err, cases[i].why) == NULL)
			fail_msg("\"%s\": \"%s\" does not say \"%s\"", cases[i].line, err,
			         cases[i].why);
	}
	{
		struct suppress_columns c = {0};
		char nul[] = "bob@exa\0mple.com";

		rec = (struct suppress_record){0};
		assert_int_equal(suppress_import_parse(&c, nul, sizeof(nul) - 1, &rec, err, 256),
		                 -1);
	}
}

static void
test_parse_header(void **state)
{
	struct suppress_columns c = {0};
	struct suppress_record rec;
	char buf[512], err[256];

	/* Our own export's header. */
	assert_int_equal(
	    parse(&c, "tenant,address,reason,added,expires,source", &rec, buf, sizeof(buf), err),
	    0);
	assert_true(c.header);
	assert_int_equal(parse(&c, "acme,bob@example.com,complaint,2027-01-01T00:00:00Z,,FBL", &rec,
	                       buf, sizeof(buf), err),
	                 1);
	assert_string_equal(rec.tenant, "acme");
	assert_string_equal(rec.address, "bob@example.com");
	assert_int_equal(rec.reason, SUPPRESS_COMPLAINT);
	assert_int_equal(rec.added_us, T0);
	assert_int_equal(rec.expires_us, 0);
	assert_string_equal(rec.source, "FBL");
	/* Empty fields keep the defaults; missing trailing fields too. */
	assert_int_equal(parse(&c, ",ann@example.com", &rec, buf, sizeof(buf), err), 1);
	assert_null(rec.tenant);
	assert_int_equal(rec.reason, SUPPRESS_IMPORT);
	assert_int_equal(parse(&c, ",a@example.com,,,1798765200,", &rec, buf, sizeof(buf), err), 1);
	assert_int_equal(rec.expires_us, T0 + HOUR);
	assert_int_equal(parse(&c, ",a@example.com,,,never,", &rec, buf, sizeof(buf), err), 1);
	assert_int_equal(rec.expires_us, 0);
	assert_int_equal(parse(&c, ",a@example.com,,yesterday,,", &rec, buf, sizeof(buf), err), -1);
	assert_int_equal(parse(&c, ",a@example.com,,,soon,", &rec, buf, sizeof(buf), err), -1);
	assert_int_equal(parse(&c, "a,b@example.com,c,d,e,f,g", &rec, buf, sizeof(buf), err), -1);
	assert_non_null(strstr(err, "header"));

	/* Another sender's export: other names, columns we do not know are skipped. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse(&c, "Email,Created_At,Status,Reason", &rec, buf, sizeof(buf), err),
	                 0);
	assert_int_equal(
	    parse(&c, "Bob@Example.com,1798761600,active,unsubscribe", &rec, buf, sizeof(buf), err),
	    1);
	assert_string_equal(rec.address, "Bob@Example.com");
	assert_int_equal(rec.added_us, T0);
	assert_int_equal(rec.reason, SUPPRESS_UNSUBSCRIBE);

	/* A header needs an address column. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse(&c, "tenant,reason", &rec, buf, sizeof(buf), err), -1);
	/* Only the first record line can be a header. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(parse(&c, "bob@example.com", &rec, buf, sizeof(buf), err), 1);
	assert_int_equal(parse(&c, "address", &rec, buf, sizeof(buf), err), 1);
	assert_false(c.header);
}

/* ---- importing ---- */

struct refusals {
	unsigned n;
	uint64_t lineno[16];
	char why[16][256];
};

static void
on_error(void *arg, uint64_t lineno, const char *why)
{
	struct refusals *r = arg;

	if (r->n < 16) {
		r->lineno[r->n] = lineno;
		strlcpy_s(r->why[r->n], why, sizeof(r->why[0]));
	}
	r->n++;
}

static FILE *
file_of(const char *text)
{
	FILE *f = tmpfile();

	assert_non_null(f);
	fputs(text, f);
	rewind(f);
	return f;
}

static void
test_import_lines(void **state)
{
	char *dir = scratch_dir();
	struct fake_clock clk = {T0};
	struct suppress *list = open_list(dir, &clk);
	struct suppress_import_result res;
	struct refusals r = {0};
	struct suppress_record def = {.tenant = "acme", .reason = SUPPRESS_UNSUBSCRIBE};
	struct suppress_entry e;
	char err[256];
	FILE *f = file_of("# from the old MTA\n"
	                  "one@example.com\n"
	                  "Two@Example.com,hard-bounce,550 5.1.1\n"
	                  "\n"
	                  "not an address\n"
	                  "three@example.com,nonsense\n"
	                  "@blocked.example,manual\n"
	                  "one@example.com,complaint\n" /* later line wins */
	                  "last@example.com");          /* no final newline */

	assert_int_equal(suppress_import(list, f, &def, on_error, &r, &res, err, sizeof(err)), 0);
	fclose(f);
	assert_int_equal(res.lines, 9);
	assert_int_equal(res.imported, 4);
	assert_int_equal(res.malformed, 2);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.lineno[0], 5);
	assert_non_null(strstr(r.why[0], "not an address"));
	assert_int_equal(r.lineno[1], 6);
	assert_non_null(strstr(r.why[1], "unknown reason"));

	assert_int_equal(suppress_count(list), 4);
	assert_int_equal(suppress_check(list, "acme", "one@example.com", &e), 1);
	assert_int_equal(e.reason, SUPPRESS_COMPLAINT);
	assert_int_equal(e.added_us, T0);
	assert_int_equal(suppress_check(list, "acme", "two@example.com", &e), 1);
	assert_int_equal(e.reason, SUPPRESS_HARD_BOUNCE);
	assert_string_equal(e.source, "550 5.1.1");
	assert_int_equal(suppress_check(list, "acme", "last@example.com", &e), 1);
	assert_int_equal(e.reason, SUPPRESS_UNSUBSCRIBE); /* the default */
	assert_int_equal(suppress_check(list, "acme", "x@blocked.example", NULL), 1);
	assert_int_equal(suppress_check(list, NULL, "one@example.com", NULL), 0); /* tenant's */
	suppress_close(list);
	scratch_remove(dir);
}

/* A file with a tenant column files each line under its own tenant. */
static void
test_import_csv_tenants(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct suppress_import_result res;
	struct suppress_entry e;
	char err[256];
	FILE *f =
	    file_of("tenant,address,reason,added,expires,source\n"
	            ",g@example.com,hard-bounce,2027-01-01T00:00:00.000000Z,,\"550, gone\"\n"
	            "acme,a@example.com,complaint,2027-01-01T00:00:00Z,2099-01-01T00:00:00Z,\n"
	            "\"bad tenant\",b@example.com,,,,\n");

	assert_int_equal(suppress_import(list, f, NULL, NULL, NULL, &res, err, sizeof(err)), 0);
	fclose(f);
	assert_int_equal(res.imported, 2);
	assert_int_equal(res.malformed, 1);
	assert_int_equal(suppress_check(list, "other", "g@example.com", &e), 1);
	assert_string_equal(e.tenant, "");
	assert_string_equal(e.source, "550, gone");
	assert_int_equal(e.added_us, T0);
	assert_int_equal(suppress_check(list, "acme", "a@example.com", &e), 1);
	assert_int_equal(e.expires_us, 4070908800ULL * USEC);
	assert_int_equal(suppress_check(list, NULL, "a@example.com", NULL), 0);
	suppress_close(list);
	scratch_remove(dir);
}

/* Batches smaller than the file: every record lands once, whatever the order, with keys
 * before, between and after those already stored (the put and the append paths). */
static void
test_import_batches_and_append(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list_opt(dir, NULL, 0, 1000);
	struct suppress_import_result res;
	struct suppress_stats st;
	char err[256];
	FILE *f = tmpfile();
	unsigned n = 0;

	/* Already stored: the middle of the key range. */
	add(list, NULL, "m0000@example.com", SUPPRESS_MANUAL, 0);
	add(list, NULL, "m9999@example.com", SUPPRESS_MANUAL, 0);
	/* 4500 records in a scrambled order, from "a…" to "z…", and a duplicate of a stored
	 * key, which must replace it. */
	for (unsigned i = 0; i < 4500; i++) {
		unsigned k = (unsigned)((uint64_t)i * 2654435761u % 4500);

		fprintf(f, "%c%04u@example.com,complaint\n", 'a' + k % 26, k);
	}
	fprintf(f, "m0000@example.com,hard-bounce\n");
	rewind(f);
	assert_int_equal(suppress_import(list, f, NULL, NULL, NULL, &res, err, sizeof(err)), 0);
	fclose(f);
	assert_int_equal(res.imported, 4501);
	assert_int_equal(suppress_count(list), 4502);
	suppress_stats(list, &st);
	assert_int_equal(st.commits, 2 + 5); /* two adds, then ceil(4501 / 1000) batches */
	for (unsigned k = 0; k < 4500; k++) {
		char a[64];

		snprintf(a, sizeof(a), "%c%04u@example.com", 'a' + k % 26, k);
		n += suppress_check(list, NULL, a, NULL) == 1;
	}
	assert_int_equal(n, 4500);
	{
		struct suppress_entry e;

		assert_int_equal(suppress_check(list, NULL, "m0000@example.com", &e), 1);
		assert_int_equal(e.reason, SUPPRESS_HARD_BOUNCE);
		assert_int_equal(suppress_check(list, NULL, "m9999@example.com", &e), 1);
		assert_int_equal(e.reason, SUPPRESS_MANUAL);
	}
	/* A second import of keys all after the stored ones (another tenant): appended. */
	f = tmpfile();
	for (unsigned i = 0; i < 2500; i++)
		fprintf(f, "u%u@example.com\n", i);
	rewind(f);
	{
		struct suppress_record def = {.tenant = "zz", .reason = SUPPRESS_IMPORT};

		assert_int_equal(suppress_import(list, f, &def, NULL, NULL, &res, err, sizeof(err)),
		                 0);
	}
	fclose(f);
	assert_int_equal(suppress_count(list), 4502 + 2500);
	assert_int_equal(suppress_check(list, "zz", "u2499@example.com", NULL), 1);
	assert_int_equal(suppress_check(list, "zz", "u0@example.com", NULL), 1);
	suppress_close(list);
	scratch_remove(dir);
}

static void
test_import_readonly(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	char err[256] = "";
	FILE *f = file_of("a@example.com\n");

	suppress_close(list);
	list = open_list_opt(dir, NULL, SUPPRESS_READONLY, 0);
	assert_int_equal(suppress_import(list, f, NULL, NULL, NULL, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "read-only"));
	fclose(f);
	suppress_close(list);
	scratch_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_plain),
	    cmocka_unit_test(test_parse_refused),
	    cmocka_unit_test(test_parse_header),
	    cmocka_unit_test(test_import_lines),
	    cmocka_unit_test(test_import_csv_tenants),
	    cmocka_unit_test(test_import_batches_and_append),
	    cmocka_unit_test(test_import_readonly),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
