/* test_access_users.c - the users file: what loads, what each mistake says and where, lookups,
 * sender domains, reload by swapping tables. */
#include "test_access_util.h"

static void
test_load_every_method(void **state)
{
	char err[512];
	struct access_users *t = load_text("# submission users\n"
	                                   "\n"
	                                   "ann:" HASH_Y "\n"
	                                   "  bob:" HASH_2B ":example.com\n"
	                                   "carl:" HASH_2Y ":example.com, Example.NET\r\n"
	                                   "dora@example.org:" HASH_6 ":\n"
	                                   "\t# indented comment\n"
	                                   "eve:" HASH_6_ROUNDS,
	                                   err, sizeof(err));
	const struct access_user *u;

	assert_non_null(t);
	assert_int_equal(access_users_count(t), 5);
	assert_non_null(u = access_users_find(t, "ann"));
	assert_string_equal(access_user_name(u), "ann");
	assert_non_null(access_users_find(t, "bob"));
	assert_non_null(access_users_find(t, "carl"));
	assert_non_null(access_users_find(t, "dora@example.org"));
	assert_non_null(access_users_find(t, "eve"));
	/* Names are case-sensitive, and nothing is found by prefix. */
	assert_null(access_users_find(t, "Ann"));
	assert_null(access_users_find(t, "an"));
	assert_null(access_users_find(t, ""));
	access_users_unref(t);
}

static void
test_empty_file(void **state)
{
	char err[512];
	struct access_users *t = load_text("# nobody yet\n\n", err, sizeof(err));

	assert_non_null(t);
	assert_int_equal(access_users_count(t), 0);
	assert_null(access_users_find(t, "ann"));
	access_users_unref(t);
	t = load_text("", err, sizeof(err));
	assert_non_null(t);
	access_users_unref(t);
}

static void
test_many_users(void **state)
{
	size_t n = 20000, len = 0;
	char *text = xmalloc(n * 100), err[512], name[32];
	struct access_users *t;

	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "user%zu:%s\n", i, HASH_Y);
	t = load_text(text, err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(access_users_count(t), n);
	for (size_t i = 0; i < n; i += 97) {
		snprintf(name, sizeof(name), "user%zu", i);
		assert_non_null(access_users_find(t, name));
	}
	assert_null(access_users_find(t, "user20000"));
	access_users_unref(t);
	free(text);
}

struct bad {
	const char *text;
	const char *err;
};

/* Every refusal, at the line where it is. */
static const struct bad bad_files[] = {
    {"ann:" HASH_Y "\n# x\nann:" HASH_6 "\n", "users:3: duplicate user \"ann\" (first at line 1)"},
    {"ann:" HASH_MD5 "\n", "users:1: MD5-crypt hash ($1$) refused: too fast to resist guessing "
                           "(accepted: $y$ (yescrypt), $2b$ or $2y$ (bcrypt), $6$ (sha512-crypt); "
                           "make one with drover user add)"},
    {"\nann:" HASH_DES "\n", "users:2: DES-crypt hash refused: 8-character passwords, too fast "
                             "to resist guessing (accepted: $y$ (yescrypt), $2b$ or $2y$ "
                             "(bcrypt), $6$ (sha512-crypt); make one with drover user add)"},
    {"ann:$5$rounds=5000$abc$def\n",
     "users:1: unsupported password hash \"$5$\" (accepted: $y$ (yescrypt), $2b$ or $2y$ "
     "(bcrypt), $6$ (sha512-crypt); make one with drover user add)"},
    {"ann:$2a$10$Z6IinXYmEAbpHRkWcFMh8u.jamsRB3dOf5AuOKYGpmCeyo6w.17Hy\n",
     "users:1: unsupported password hash \"$2a$\" (accepted: $y$ (yescrypt), $2b$ or $2y$ "
     "(bcrypt), $6$ (sha512-crypt); make one with drover user add)"},
    {"ann:secret\n", "users:1: not a password hash (accepted: $y$ (yescrypt), $2b$ or $2y$ "
                     "(bcrypt), $6$ (sha512-crypt); make one with drover user add)"},
    {"ann:\n", "users:1: empty password hash"},
    {"ann\n", "users:1: expected name:hash[:domain,...]"},
    {":" HASH_Y "\n", "users:1: empty user name"},
    {"a nn:" HASH_Y "\n",
     "users:1: user name \"a nn\": only printable ASCII without spaces (octet 0x20 at 2)"},
    {"\xc3\xa9mile:" HASH_Y "\n", "users:1: user name \"\xc3\xa9mile\": only printable ASCII "
                                  "without spaces (octet 0xc3 at 1)"},
    {"ann:" HASH_Y ":example.com:x\n", "users:1: too many fields: expected name:hash[:domain,...]"},
    {"ann:" HASH_Y ":exa mple.com\n", "users:1: bad domain \"exa mple.com\""},
    {"ann:" HASH_Y ":-example.com\n", "users:1: bad domain \"-example.com\""},
    {"ann:" HASH_Y ":example.com,,example.net\n", "users:1: empty domain in the domain list"},
    {"ann:" HASH_Y ":[192.0.2.1]\n", "users:1: bad domain \"[192.0.2.1]\""},
    {"ann:$y$j9T$3yhx9fx1xgkVNPRqrkKBz/\n",
     "users:1: incomplete password hash (a salt without its hash, or cut short?)"},
    {"ann:$y$j9T$3yhx9fx1xgkVNPRqrkKBz/$/HCXpQpmjdPl3b31cjmjAyBT5im7coRnJqqmkf\n",
     "users:1: incomplete password hash (a salt without its hash, or cut short?)"},
    {"ann:$2b$10$Z6IinXYmEAbpHRkWcFMh8u.jamsRB3dOf5AuOKYGpmCeyo6w\n",
     "users:1: incomplete password hash (a salt without its hash, or cut short?)"},
    {"ann:$6$qEbSrgHxulJm0m1X\n",
     "users:1: incomplete password hash (a salt without its hash, or cut short?)"},
    {"ann:$y$!!$3yhx9fx1xgkVNPRqrkKBz/$/HCXpQpmjdPl3b31cjmjAyBT5im7coRnJqqmkfps8c6\n",
     "users:1: malformed password hash"},
    {"ann:$2b$99$Z6IinXYmEAbpHRkWcFMh8u.jamsRB3dOf5AuOKYGpmCeyo6w.17Hy\n",
     "users:1: bcrypt cost must be 04 to 31"},
    {"ann:$2b$03$Z6IinXYmEAbpHRkWcFMh8u.jamsRB3dOf5AuOKYGpmCeyo6w.17Hy\n",
     "users:1: bcrypt cost must be 04 to 31"},
    {"ann:$6$rounds=999$glyn8CQp/Loe0b.R$sXEncwp2ttQaPl4jMm70pwnMj1WsjhdDE7fXSGohezj0WWl9SIndYLK"
     "GXrMn1PI8fNwU8j4.0G3OVjCV1L/W90\n",
     "users:1: sha512-crypt rounds must be 1000 to 999999999"},
    {"ann:$6$rounds=01000$glyn8CQp/Loe0b.R$sXEncwp2ttQaPl4jMm70pwnMj1WsjhdDE7fXSGohezj0WWl9SIndY"
     "LKGXrMn1PI8fNwU8j4.0G3OVjCV1L/W90\n",
     "users:1: sha512-crypt rounds must be 1000 to 999999999"},
};

static void
test_errors_name_the_line(void **state)
{
	for (size_t i = 0; i < nitems(bad_files); i++) {
		char err[1024] = "";
		struct access_users *t = load_text(bad_files[i].text, err, sizeof(err));

		if (t != NULL)
			fail_msg("case %zu loaded: %s", i, bad_files[i].text);
		if (strcmp(err, bad_files[i].err) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, err, bad_files[i].err);
	}
}

static void
test_long_lines_and_names(void **state)
{
	char *text = xmalloc(ACCESS_USERS_LINE_MAX + 512), err[1024];
	struct access_users *t;
	size_t n;

	/* A line of exactly the limit loads (a comment here); one octet more is refused, at its
	 * line. */
	n = (size_t)sprintf(text, "ann:%s\n#", HASH_Y);
	memset(text + n, 'x', ACCESS_USERS_LINE_MAX - 1);
	strcpy(text + n + ACCESS_USERS_LINE_MAX - 1, "\nbob:" HASH_Y "\n");
	t = load_text(text, err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(access_users_count(t), 2);
	access_users_unref(t);
	memset(text + n, 'x', ACCESS_USERS_LINE_MAX);
	strcpy(text + n + ACCESS_USERS_LINE_MAX, "\nbob:" HASH_Y "\n");
	assert_null(load_text(text, err, sizeof(err)));
	assert_string_equal(err, "users:2: line too long (more than 4096 octets)");

	/* A name of 255 octets is allowed, 256 are not. */
	memset(text, 'n', 255);
	sprintf(text + 255, ":%s\n", HASH_Y);
	t = load_text(text, err, sizeof(err));
	assert_non_null(t);
	text[255] = '\0';
	assert_non_null(access_users_find(t, text));
	access_users_unref(t);
	memset(text, 'n', 256);
	sprintf(text + 256, ":%s\n", HASH_Y);
	assert_null(load_text(text, err, sizeof(err)));
	assert_string_equal(err, "users:1: user name longer than 255 octets");
	free(text);
}

static void
test_nul_and_missing_file(void **state)
{
	static const char text[] = "ann:" HASH_Y "\nb\0b:" HASH_Y "\n";
	char *path = users_file(text, sizeof(text) - 1), err[512];
	size_t n = strlen(path);

	assert_null(access_users_load(path, err, sizeof(err)));
	assert_memory_equal(err, path, n);
	assert_string_equal(err + n, ":2: NUL octet (not a text file?)");
	unlink(path);
	assert_null(access_users_load(path, err, sizeof(err)));
	assert_memory_equal(err, path, n);
	assert_string_equal(err + n, ": No such file or directory");
	free(path);
}

static void
test_sender_domains(void **state)
{
	char err[512];
	struct access_users *t = load_text("ann:" HASH_Y "\n"
	                                   "bob:" HASH_Y ":example.com,Mail.Example.NET.\n"
	                                   "carl:" HASH_Y ":b\xc3\xbc"
	                                   "cher.example\n",
	                                   err, sizeof(err));
	const struct access_user *ann, *bob, *carl;

	assert_non_null(t);
	ann = access_users_find(t, "ann");
	bob = access_users_find(t, "bob");
	carl = access_users_find(t, "carl");
	/* No list: any domain. */
	assert_true(access_user_may_send_from(ann, "example.com"));
	assert_true(access_user_may_send_from(ann, "anything.example"));
	/* A domain covers itself and its subdomains, in any case, nothing else. */
	assert_true(access_user_may_send_from(bob, "example.com"));
	assert_true(access_user_may_send_from(bob, "EXAMPLE.com"));
	assert_true(access_user_may_send_from(bob, "news.example.com"));
	assert_true(access_user_may_send_from(bob, "a.b.example.com"));
	assert_true(access_user_may_send_from(bob, "mail.example.net"));
	assert_false(access_user_may_send_from(bob, "example.net"));
	assert_false(access_user_may_send_from(bob, "badexample.com"));
	assert_false(access_user_may_send_from(bob, "example.com.evil.test"));
	assert_false(access_user_may_send_from(bob, "com"));
	assert_false(access_user_may_send_from(bob, ""));
	assert_false(access_user_may_send_from(bob, "[192.0.2.1]"));
	/* U-labels match their A-labels either way. */
	assert_true(access_user_may_send_from(carl, "xn--bcher-kva.example"));
	assert_true(access_user_may_send_from(carl, "news.b\xc3\xbc"
	                                            "cher.example"));
	assert_false(access_user_may_send_from(carl, "bucher.example"));
	access_users_unref(t);
}

/* A reload loads a new table and drops the old one; a session holding a reference keeps
 * the old one usable until it lets go. */
static void
test_reload_by_swap(void **state)
{
	char err[512];
	struct access_users *cur = load_text("ann:" HASH_Y "\n", err, sizeof(err));
	struct access_users *session = access_users_ref(cur), *next;

	next = load_text("bob:" HASH_Y "\n", err, sizeof(err));
	assert_non_null(next);
	access_users_unref(cur);
	cur = next;
	assert_non_null(access_users_find(session, "ann"));
	assert_null(access_users_find(cur, "ann"));
	assert_non_null(access_users_find(cur, "bob"));
	access_users_unref(session);

	/* A failed reload leaves nothing to swap in. */
	assert_null(load_text("bob:x\n", err, sizeof(err)));
	assert_non_null(access_users_find(cur, "bob"));
	access_users_unref(cur);
	access_users_unref(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_every_method),
	    cmocka_unit_test(test_empty_file),
	    cmocka_unit_test(test_many_users),
	    cmocka_unit_test(test_errors_name_the_line),
	    cmocka_unit_test(test_long_lines_and_names),
	    cmocka_unit_test(test_nul_and_missing_file),
	    cmocka_unit_test(test_sender_domains),
	    cmocka_unit_test(test_reload_by_swap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
