/* conf/verp.c - verp { }: the bounce domain, the local-part prefix and the secrets of VERP
 * return paths (docs/feedback.md), and what the bounce listener needs of them.
 *
 * The secrets are read here, while the configuration is loaded (as root, before the server
 * gives up its privileges), so that a missing, short or world-readable secret file is an
 * error at its file:line in `drover check-config` and at start, like any other value. The
 * value callbacks check each file where it is named; copy_verp() reads them again for the
 * struct (they are small), and config_free() wipes them.
 *
 * conf does not link the feedback component (it sits above conf): the bounds below are
 * feedback.h's, repeated in defaults.h, and a unit test holds the two together.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/defaults.h"
#include "conf/internal.h"
#include "core/core.h"

/* Reads a secret file into out (NUL-terminated, without a final line end): 0, or -1 with
 * why (a phrase; buf holds it when it needs the details). */
static int
secret_read(const char *path, char *out, size_t outsize, char *why, size_t whylen)
{
	char buf[LIM_VERP_SECRET_MAX + 3]; /* the secret, CR LF, and one more to see excess */
	struct stat st;
	ssize_t n;
	size_t len;
	int fd;

	/* O_NONBLOCK: a FIFO named by mistake must not hang the load (it is refused below). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, whylen, "cannot be read: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		close(fd);
		return -1;
	}
	/* Anyone who can read it can forge bounces and complaints, and have any address
	 * suppressed. */
	if (st.st_mode & S_IROTH) {
		snprintf(why, whylen,
		         "readable by every user (mode %04o): anyone who reads it can forge "
		         "bounces; chmod o-rwx it",
		         (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		snprintf(why, whylen, "cannot be read: %s", strerror(errno));
		return -1;
	}
	len = (size_t)n;
	/* One final line end is layout: `openssl rand -hex 32 > FILE` writes one. */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c < 0x21 || c > 0x7e) {
			explicit_bzero(buf, sizeof(buf));
			snprintf(why, whylen,
			         "octet %zu is not a printable character (the secret is %d to %d "
			         "printable ASCII characters, as in: openssl rand -hex 32 > FILE)",
			         i + 1, LIM_VERP_SECRET_MIN, LIM_VERP_SECRET_MAX);
			return -1;
		}
	}
	if (len < LIM_VERP_SECRET_MIN || len > LIM_VERP_SECRET_MAX) {
		explicit_bzero(buf, sizeof(buf));
		if (len > LIM_VERP_SECRET_MAX)
			snprintf(why, whylen, "longer than %d octets (HMAC-SHA256 gains nothing)",
			         LIM_VERP_SECRET_MAX);
		else
			snprintf(
			    why, whylen,
			    "%zu octets: at least %d are needed (a short secret can be guessed "
			    "offline from one token), as in: openssl rand -hex 32 > FILE",
			    len, LIM_VERP_SECRET_MIN);
		return -1;
	}
	if (len + 1 > outsize)
		fatal("conf: secret buffer too small");
	memcpy(out, buf, len);
	out[len] = '\0';
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* The prefix rules of feedback_verp_keys_init(): a dot-atom without '+'. */
static bool
prefix_valid(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > LIM_VERP_PREFIX_MAX)
		return false;
	if (strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return false;
	return p[0] != '.' && p[n - 1] != '.' && strstr(p, "..") == NULL;
}

static int
on_verp_domain(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	*(const char **)result = value;
	if (!hostname_valid(value))
		schema_report(cfg,
		              "verp.domain: \"%.80s\": not a domain name (the bounce domain, as in "
		              "bounces.example.com)",
		              value);
	return 0;
}

static int
on_verp_prefix(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	*(const char **)result = value;
	if (!prefix_valid(value))
		schema_report(cfg,
		              "verp.prefix: \"%.80s\": expected 1 to %d letters, digits, '.', '_' "
		              "or '-' (the token takes the other %d octets of the 64-octet local "
		              "part)",
		              value, LIM_VERP_PREFIX_MAX, 64 - LIM_VERP_PREFIX_MAX);
	return 0;
}

/* At a reload, the running configuration's secret read from path, NULL if none: the secrets
 * are read as root at start, and a root-only file (as they should be) cannot be read again. */
static const char *
running_secret(const char *path)
{
	const struct load_ctx *ctx = schema_current();
	const struct config *r = ctx != NULL ? ctx->running : NULL;

	if (r == NULL || r->verp.domain == NULL)
		return NULL;
	if (r->verp.secret_file != NULL && strcmp(r->verp.secret_file, path) == 0)
		return r->verp.secret;
	if (r->verp.previous_secret_file != NULL && strcmp(r->verp.previous_secret_file, path) == 0)
		return r->verp.previous_secret;
	return NULL;
}

/* secret_read(), or the running configuration's secret from the same file at a reload. */
static int
secret_get(const char *path, char *out, size_t outsize, char *why, size_t whylen)
{
	const char *kept;

	if (secret_read(path, out, outsize, why, whylen) == 0)
		return 0;
	if ((kept = running_secret(path)) == NULL || strlen(kept) >= outsize)
		return -1;
	strlcpy_s(out, kept, outsize);
	return 0;
}

static int
on_verp_secret_file(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char secret[LIM_VERP_SECRET_MAX + 1], why[256];

	*(const char **)result = value;
	if (value[0] == '\0') {
		schema_report(cfg, "verp.%s: must not be empty", opt->name);
		return 0;
	}
	if (secret_get(value, secret, sizeof(secret), why, sizeof(why)) < 0)
		schema_report(cfg, "verp.%s: \"%.200s\": %s", opt->name, value, why);
	explicit_bzero(secret, sizeof(secret));
	return 0;
}

cfg_opt_t verp_opts[] = {
    CFG_STR_CB("domain", NULL, CFGF_NODEFAULT, on_verp_domain),
    CFG_STR_CB("prefix", DEF_VERP_PREFIX, CFGF_NONE, on_verp_prefix),
    CFG_STR_CB("secret_file", NULL, CFGF_NODEFAULT, on_verp_secret_file),
    CFG_STR_CB("previous_secret_file", NULL, CFGF_NODEFAULT, on_verp_secret_file),
    CFG_END(),
};

/* After the verp section is read (cfg is the top level): what one setting needs of another.
 * The line is the section's end. */
int
verp_section_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, 0);
	const char *domain, *cur, *prev;

	if (sec == NULL)
		return 0;
	domain = cfg_getstr(sec, "domain");
	cur = cfg_getstr(sec, "secret_file");
	prev = cfg_getstr(sec, "previous_secret_file");
	if (domain != NULL && cur == NULL)
		schema_report(cfg, "verp.secret_file: required with verp.domain, as in secret_file "
		                   "= \"/etc/drover/verp.secret\" (made by: openssl rand -hex 32)");
	if (domain == NULL && (cur != NULL || prev != NULL))
		schema_report(cfg,
		              "verp.domain: required when a secret is set (VERP is off "
		              "without a bounce domain), as in domain = \"bounces.example.com\"");
	if (prev != NULL && cur == NULL)
		schema_report(cfg, "verp.previous_secret_file: set without verp.secret_file (the "
		                   "previous secret is only accepted; the current one signs)");
	if (cur != NULL && prev != NULL) {
		char a[LIM_VERP_SECRET_MAX + 1], b[LIM_VERP_SECRET_MAX + 1], why[256];

		if (secret_get(cur, a, sizeof(a), why, sizeof(why)) == 0 &&
		    secret_get(prev, b, sizeof(b), why, sizeof(why)) == 0 && strcmp(a, b) == 0)
			schema_report(cfg, "verp.previous_secret_file: holds the same secret as "
			                   "verp.secret_file (when rotating, make a new current "
			                   "secret)");
		explicit_bzero(a, sizeof(a));
		explicit_bzero(b, sizeof(b));
	}
	return 0;
}

static char *
secret_copy(const char *path, const char *setting, struct config *conf, struct load_ctx *ctx)
{
	char secret[LIM_VERP_SECRET_MAX + 1], why[256], *out;

	if (secret_get(path, secret, sizeof(secret), why, sizeof(why)) < 0) {
		/* Reported where it is written, unless the file changed since (then here). */
		if (ctx->nerrors == 0)
			load_error_at(ctx, ctx->src != NULL ? conf->path : NULL, 0,
			              "verp.%s: \"%.200s\": %s", setting, path, why);
		return NULL;
	}
	out = xstrdup(secret);
	explicit_bzero(secret, sizeof(secret));
	return out;
}

void
copy_verp(cfg_t *cfg, struct config *conf, struct load_ctx *ctx)
{
	cfg_t *sec = cfg_getsec(cfg, "verp");
	const char *domain = cfg_getstr(sec, "domain"), *cur = cfg_getstr(sec, "secret_file"),
	           *prev = cfg_getstr(sec, "previous_secret_file");

	conf->verp.prefix = xstrdup(cfg_getstr(sec, "prefix"));
	if (domain != NULL && hostname_valid(domain) && cur != NULL) {
		conf->verp.domain = xstrdup(domain);
		for (char *p = conf->verp.domain; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		conf->verp.secret_file = xstrdup(cur);
		conf->verp.secret = secret_copy(cur, "secret_file", conf, ctx);
		if (prev != NULL) {
			conf->verp.previous_secret_file = xstrdup(prev);
			conf->verp.previous_secret =
			    secret_copy(prev, "previous_secret_file", conf, ctx);
		}
	}
	for (size_t i = 0; i < conf->nlisteners; i++) {
		const struct listener_conf *l = &conf->listeners[i];

		if (l->role == ROLE_BOUNCE && conf->verp.domain == NULL)
			load_error_at(
			    ctx, ctx->src != NULL ? conf->path : NULL, 0,
			    "listener \"%s\".role: bounce needs a verp section with domain "
			    "and secret_file (the listener takes mail for the bounce domain "
			    "and checks its tokens)",
			    l->name);
	}
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
free_verp(struct config *conf)
{
	free(conf->verp.domain);
	free(conf->verp.prefix);
	free(conf->verp.secret_file);
	free(conf->verp.previous_secret_file);
	wipe_free(conf->verp.secret);
	wipe_free(conf->verp.previous_secret);
}
