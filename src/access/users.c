/* users.c - the users file: who may authenticate, with which password hash, as which sender
 * domains. Loaded whole and checked line by line; the first problem fails the load (a reload
 * then keeps the table in use), named "file:line: what". */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <crypt.h>

#include "access/internal.h"
#include "core/core.h"
#include "smtp/smtp.h"

/* Different costs in one table: an unknown user's dummy check copies the most common one
 * among the first few distinct ones (a table has one or two in practice). */
#define COST_CLASSES_MAX 8
#define COST_CLASS_MAX   64

/* When a table has no users at all, the unknown-user check still crypts something: this,
 * libxcrypt's default yescrypt cost, of a password nobody knows. */
static const char empty_table_setting[] =
    "$y$j9T$QAyx6Uc2oY8IZOSJ7rI6C.$BF0qHhdJn/SEan6DqTTjvM5MCEAJ4ayc03ajliO1kdA";

struct access_user {
	char *name;
	char *hash;
	char **domains; /* A-labels, lower case; none: any domain */
	size_t ndomains;
	unsigned line;
	uint32_t next; /* bucket chain */
};

struct access_users {
	atomic_uint refs;
	struct access_user *users;
	size_t n, alloc;
	uint32_t *bucket;
	size_t nbucket; /* a power of two */
	uint64_t key[2];
	const char *dummy; /* crypt setting for unknown users */
};

struct loader {
	const char *path;
	unsigned line;
	char *err;
	size_t errlen;
};

static int __attribute__((format(printf, 2, 3))) load_error(struct loader *ld, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (ld->line != 0)
		snprintf(ld->err, ld->errlen, "%s:%u: %s", ld->path, ld->line, what);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", ld->path, what);
	return -1;
}

/* ---- the hash table ---- */

static uint32_t *
bucket_of(const struct access_users *t, const char *name)
{
	return &t->bucket[siphash24(t->key, name, strlen(name)) & (t->nbucket - 1)];
}

/* Buckets double with the users, so chains stay about one long and duplicates are found as
 * each line is read. */
static void
index_user(struct access_users *t, size_t i)
{
	uint32_t *head;

	if (t->n > t->nbucket) {
		t->nbucket = t->nbucket == 0 ? 16 : t->nbucket * 2;
		free(t->bucket);
		t->bucket = xmalloc(t->nbucket * sizeof(*t->bucket));
		for (size_t b = 0; b < t->nbucket; b++)
			t->bucket[b] = KT_NIL;
		for (size_t k = 0; k < i; k++) {
			head = bucket_of(t, t->users[k].name);
			t->users[k].next = *head;
			*head = (uint32_t)k;
		}
	}
	head = bucket_of(t, t->users[i].name);
	t->users[i].next = *head;
	*head = (uint32_t)i;
}

const struct access_user *
access_users_find(const struct access_users *t, const char *name)
{
	if (t == NULL || t->n == 0 || strnlen(name, ACCESS_NAME_MAX + 1) > ACCESS_NAME_MAX)
		return NULL;
	for (uint32_t i = *bucket_of(t, name); i != KT_NIL; i = t->users[i].next)
		if (strcmp(t->users[i].name, name) == 0)
			return &t->users[i];
	return NULL;
}

/* ---- checking one line ---- */

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static char *
trim(char *s)
{
	size_t n;

	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int
check_name(struct loader *ld, const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return load_error(ld, "empty user name");
	if (n > ACCESS_NAME_MAX)
		return load_error(ld, "user name longer than %d octets", ACCESS_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= ' ' || c >= 0x7f)
			return load_error(
			    ld,
			    "user name \"%.64s\": only printable ASCII without spaces "
			    "(octet 0x%02x at %zu)",
			    name, c, i + 1);
	}
	return 0;
}

static bool
crypt_alphabet(const char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '/' || *s == '$' || *s == '='))
			return false;
	return true;
}

/* The part after the last '$'. */
static const char *
hash_tail(const char *h)
{
	const char *d = strrchr(h, '$');

	return d != NULL ? d + 1 : h;
}

static const char *const accepted =
    "accepted: $y$ (yescrypt), $2b$ or $2y$ (bcrypt), $6$ (sha512-crypt); make one with "
    "drover user add";

static int
check_hash(struct loader *ld, const char *h)
{
	size_t len = strlen(h), dollars = 0;
	bool bcrypt = strncmp(h, "$2b$", 4) == 0 || strncmp(h, "$2y$", 4) == 0;
	bool yescrypt = strncmp(h, "$y$", 3) == 0, sha512 = strncmp(h, "$6$", 3) == 0;

	if (len == 0)
		return load_error(ld, "empty password hash");
	if (len > ACCESS_HASH_MAX)
		return load_error(ld, "password hash longer than %d octets", ACCESS_HASH_MAX);
	if (strncmp(h, "$1$", 3) == 0)
		return load_error(
		    ld, "MD5-crypt hash ($1$) refused: too fast to resist guessing (%s)", accepted);
	/* Traditional DES: 13 characters; BSDi extended DES: "_" and 19. */
	if ((len == 13 && crypt_alphabet(h)) || (h[0] == '_' && len == 20))
		return load_error(ld,
		                  "DES-crypt hash refused: 8-character passwords, too fast to "
		                  "resist guessing (%s)",
		                  accepted);
	if (!bcrypt && !yescrypt && !sha512) {
		const char *end = h[0] == '$' ? strchr(h + 1, '$') : NULL;

		if (end != NULL && end - h < 16)
			return load_error(ld, "unsupported password hash \"%.*s\" (%s)",
			                  (int)(end - h + 1), h, accepted);
		return load_error(ld, "not a password hash (%s)", accepted);
	}
	for (const char *p = h; *p != '\0'; p++)
		dollars += *p == '$';
	/* crypt_checksalt() knows each method's salt and parameters; the hash part it does not
	 * look at, so check its length here: a setting alone, or a truncated paste, would never
	 * match any password and the user would only learn that at the first login. */
	if (!crypt_alphabet(h) || crypt_checksalt(h) != CRYPT_SALT_OK)
		return load_error(ld, "malformed password hash");
	/* Parameters crypt would refuse, or silently clamp (and then never match): bcrypt's cost
	 * is 4 to 31, sha512-crypt's rounds 1000 to 999999999. */
	if (bcrypt) {
		bool digits = h[4] >= '0' && h[4] <= '9' && h[5] >= '0' && h[5] <= '9';
		int cost = digits && h[6] == '$' ? (h[4] - '0') * 10 + (h[5] - '0') : -1;

		if (cost < 4 || cost > 31)
			return load_error(ld, "bcrypt cost must be 04 to 31");
	}
	if (sha512 && strncmp(h + 3, "rounds=", 7) == 0) {
		char *end;
		unsigned long rounds = strtoul(h + 10, &end, 10);

		if (h[10] < '1' || h[10] > '9' || *end != '$' || rounds < 1000 ||
		    rounds > 999999999)
			return load_error(ld, "sha512-crypt rounds must be 1000 to 999999999");
	}
	if ((bcrypt && (len != 60 || dollars != 3)) ||
	    (yescrypt && (dollars != 4 || strlen(hash_tail(h)) != 43)) ||
	    (sha512 && ((dollars != 3 && dollars != 4) || strlen(hash_tail(h)) != 86)))
		return load_error(ld, "incomplete password hash (a salt without its hash, or cut "
		                      "short?)");
	return 0;
}

static int
add_domain(struct loader *ld, struct access_user *u, char *d)
{
	char ascii[SMTP_DOMAIN_MAX + 1];
	const char *why = "";
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		d[--n] = '\0';
	if (n == 0)
		return load_error(ld, "empty domain in the domain list");
	if (!smtp_domain_valid(d, n, true) ||
	    smtp_domain_to_ascii(d, ascii, sizeof(ascii), &why) < 0)
		return load_error(ld, "bad domain \"%.255s\"%s%s", d, *why ? ": " : "", why);
	u->domains = xrealloc(u->domains, (u->ndomains + 1) * sizeof(*u->domains));
	u->domains[u->ndomains++] = xstrdup(ascii);
	return 0;
}

static void
user_clear(struct access_user *u)
{
	free(u->name);
	if (u->hash != NULL)
		explicit_bzero(u->hash, strlen(u->hash));
	free(u->hash);
	for (size_t i = 0; i < u->ndomains; i++)
		free(u->domains[i]);
	free(u->domains);
}

static int
parse_line(struct loader *ld, struct access_users *t, char *line)
{
	struct access_user u = {.line = ld->line};
	const struct access_user *dup;
	char *name, *hash, *domains, *sep;

	line = trim(line);
	if (*line == '\0' || *line == '#')
		return 0;
	name = line;
	if ((sep = strchr(name, ':')) == NULL)
		return load_error(ld, "expected name:hash[:domain,...]");
	*sep = '\0';
	hash = sep + 1;
	domains = NULL;
	if ((sep = strchr(hash, ':')) != NULL) {
		*sep = '\0';
		domains = sep + 1;
		if (strchr(domains, ':') != NULL)
			return load_error(ld, "too many fields: expected name:hash[:domain,...]");
	}
	name = trim(name);
	hash = trim(hash);
	if (check_name(ld, name) < 0 || check_hash(ld, hash) < 0)
		return -1;
	if ((dup = access_users_find(t, name)) != NULL)
		return load_error(ld, "duplicate user \"%s\" (first at line %u)", name, dup->line);
	u.name = xstrdup(name);
	u.hash = xstrdup(hash);
	if (domains != NULL && *trim(domains) != '\0') {
		char *d = trim(domains), *comma;

		for (;;) {
			comma = strchr(d, ',');
			if (comma != NULL)
				*comma = '\0';
			if (add_domain(ld, &u, trim(d)) < 0) {
				user_clear(&u);
				return -1;
			}
			if (comma == NULL)
				break;
			d = comma + 1;
		}
	}
	if (t->n == t->alloc) {
		t->alloc = t->alloc == 0 ? 16 : t->alloc * 2;
		t->users = xrealloc(t->users, t->alloc * sizeof(*t->users));
	}
	t->users[t->n++] = u;
	index_user(t, t->n - 1);
	return 0;
}

/* "$y$j9T$", "$2b$10$", "$6$rounds=N$" or "$6$": what decides the cost of a crypt. */
static void
cost_class(const char *h, char *out, size_t size)
{
	size_t n;

	if (h[1] == '2') {
		n = 7;
	} else if (h[1] == '6' && strncmp(h + 3, "rounds=", 7) == 0) {
		n = (size_t)(strchr(h + 3, '$') - h) + 1;
	} else if (h[1] == '6') {
		n = 3;
	} else {
		n = (size_t)(strchr(h + 3, '$') - h) + 1;
	}
	if (n >= size)
		n = size - 1;
	memcpy(out, h, n);
	out[n] = '\0';
}

/* An unknown user's check crypts with the hash of a user of the most common cost, so that it
 * takes as long as a known user's: the result is thrown away. */
static void
choose_dummy(struct access_users *t)
{
	struct {
		char class[COST_CLASS_MAX];
		size_t count, first;
	} c[COST_CLASSES_MAX];
	size_t nc = 0, best = 0;
	char cl[COST_CLASS_MAX];

	t->dummy = empty_table_setting;
	for (size_t i = 0; i < t->n; i++) {
		size_t k;

		cost_class(t->users[i].hash, cl, sizeof(cl));
		for (k = 0; k < nc && strcmp(c[k].class, cl) != 0; k++)
			;
		if (k == nc) {
			if (nc == COST_CLASSES_MAX)
				continue;
			strlcpy_s(c[nc].class, cl, sizeof(c[nc].class));
			c[nc].count = 0;
			c[nc].first = i;
			nc++;
		}
		c[k].count++;
	}
	for (size_t k = 1; k < nc; k++)
		if (c[k].count > c[best].count)
			best = k;
	if (nc > 0)
		t->dummy = t->users[c[best].first].hash;
}

/* ---- loading ---- */

/* One line into buf (without its newline). 1: a line; 0: end of file; -1: error set. */
static int
read_line(struct loader *ld, FILE *f, char *buf, size_t size)
{
	size_t n = 0;
	int c;

	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (c == '\0')
			return load_error(ld, "NUL octet (not a text file?)");
		if (n + 1 >= size)
			return load_error(ld, "line too long (more than %d octets)",
			                  ACCESS_USERS_LINE_MAX);
		buf[n++] = (char)c;
	}
	if (ferror(f))
		return load_error(ld, "read: %s", strerror(errno));
	if (c == EOF && n == 0)
		return 0;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return 1;
}

struct access_users *
access_users_load(const char *path, char *err, size_t errlen)
{
	struct loader ld = {.path = path, .err = err, .errlen = errlen};
	struct access_users *t = xcalloc(1, sizeof(*t));
	char *buf = xmalloc(ACCESS_USERS_LINE_MAX + 2);
	FILE *f;
	int rc = 0;

	atomic_init(&t->refs, 1);
	siphash_key_random(t->key);
	if ((f = fopen(path, "re")) == NULL) {
		load_error(&ld, "%s", strerror(errno));
		free(buf);
		free(t);
		return NULL;
	}
	for (;;) {
		ld.line++;
		if ((rc = read_line(&ld, f, buf, ACCESS_USERS_LINE_MAX + 1)) <= 0)
			break;
		if ((rc = parse_line(&ld, t, buf)) < 0)
			break;
	}
	fclose(f);
	explicit_bzero(buf, ACCESS_USERS_LINE_MAX + 2);
	free(buf);
	if (rc < 0) {
		access_users_unref(t);
		return NULL;
	}
	choose_dummy(t);
	return t;
}

struct access_users *
access_users_ref(struct access_users *t)
{
	atomic_fetch_add(&t->refs, 1);
	return t;
}

void
access_users_unref(struct access_users *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	for (size_t i = 0; i < t->n; i++)
		user_clear(&t->users[i]);
	free(t->users);
	free(t->bucket);
	free(t);
}

size_t
access_users_count(const struct access_users *t)
{
	return t->n;
}

const char *
access_user_name(const struct access_user *u)
{
	return u->name;
}

const char *
access_user_hash(const struct access_user *u)
{
	return u->hash;
}

const char *
access_users_dummy(const struct access_users *t)
{
	return t != NULL ? t->dummy : empty_table_setting;
}

bool
access_user_may_send_from(const struct access_user *u, const char *domain)
{
	char ascii[SMTP_DOMAIN_MAX + 1];
	const char *why;
	size_t n;

	if (u->ndomains == 0)
		return true;
	if (domain == NULL || smtp_domain_to_ascii(domain, ascii, sizeof(ascii), &why) < 0)
		return false;
	n = strlen(ascii);
	if (n > 0 && ascii[n - 1] == '.')
		ascii[--n] = '\0';
	for (size_t i = 0; i < u->ndomains; i++) {
		const char *d = u->domains[i];
		size_t dn = strlen(d);

		if (n == dn && memcmp(ascii, d, n) == 0)
			return true;
		if (n > dn && ascii[n - dn - 1] == '.' && memcmp(ascii + n - dn, d, dn) == 0)
			return true;
	}
	return false;
}
