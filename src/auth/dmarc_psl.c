/* dmarc_psl.c - the Public Suffix List (libpsl), the organizational domain it defines
 * (RFC 7489 §3.2) and identifier alignment (§3.1). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/dmarc_internal.h"
#include "core/core.h"

struct dmarc_psl *
dmarc_psl_load(const char *path, char *err, size_t errlen)
{
	struct dmarc_psl *p = xcalloc(1, sizeof(*p));

	if (path != NULL) {
		/* psl_load_file() says nothing of why it failed: ask the file system first. */
		if (access(path, R_OK) != 0) {
			snprintf(err, errlen, "public suffix list \"%s\": %s", path,
			         strerror(errno));
			free(p);
			return NULL;
		}
		p->ctx = psl_load_file(path);
		/* A text file that is not a list parses to no suffix at all. */
		if (p->ctx == NULL || psl_suffix_count(p->ctx) == 0) {
			snprintf(err, errlen, "public suffix list \"%s\": not a public suffix list",
			         path);
			psl_free(p->ctx);
			free(p);
			return NULL;
		}
		p->use = p->ctx;
		snprintf(p->source, sizeof(p->source), "%s", path);
		return p;
	}
	p->ctx = psl_latest(NULL);
	if (p->ctx != NULL && p->ctx != (psl_ctx_t *)psl_builtin()) {
		p->use = p->ctx;
		snprintf(p->source, sizeof(p->source), "%s", psl_dist_filename());
		return p;
	}
	/* psl_latest() hands back the built-in list itself when it is the newer one; it is not
	 * ours to free. */
	p->ctx = NULL;
	p->use = psl_builtin();
	if (p->use == NULL) {
		snprintf(err, errlen,
		         "public suffix list: none in %s and none built into libpsl (install "
		         "Debian's publicsuffix package)",
		         psl_dist_filename());
		free(p);
		return NULL;
	}
	time_t t = psl_builtin_file_time();
	struct tm tm;
	char date[16] = "unknown date";

	if (t > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	snprintf(p->source, sizeof(p->source), "libpsl built-in list (%s)", date);
	return p;
}

void
dmarc_psl_free(struct dmarc_psl *p)
{
	if (p == NULL)
		return;
	psl_free(p->ctx);
	free(p);
}

const char *
dmarc_psl_source(const struct dmarc_psl *p)
{
	return p->source;
}

int
dmarc_domain_norm(const char *domain, char out[DNS_NAME_MAX + 1])
{
	size_t n;

	if (domain == NULL)
		return -1;
	n = strlen(domain);
	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (!dkim_domain_valid(domain, n))
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = ascii_lower(domain[i]);
	out[n] = '\0';
	return 0;
}

int
dmarc_org_domain(const struct dmarc_psl *p, const char *domain, char out[DNS_NAME_MAX + 1])
{
	char name[DNS_NAME_MAX + 1];
	const char *reg;

	if (dmarc_domain_norm(domain, name) != 0)
		return -1;
	/* libpsl wants lower-case names (ours are ASCII: A-labels stay as they are). NULL means
	 * the name is a public suffix itself, which is then its own organizational domain:
	 * nothing above it may speak for it. */
	reg = psl_registrable_domain(p->use, name);
	snprintf(out, DNS_NAME_MAX + 1, "%s", reg != NULL ? reg : name);
	return 0;
}

bool
dmarc_aligned(const struct dmarc_psl *p, enum dmarc_align mode, const char *from_domain,
              const char *domain)
{
	char a[DNS_NAME_MAX + 1], b[DNS_NAME_MAX + 1];

	if (dmarc_domain_norm(from_domain, a) != 0 || dmarc_domain_norm(domain, b) != 0)
		return false;
	if (strcmp(a, b) == 0)
		return true;
	if (mode == DMARC_ALIGN_STRICT)
		return false;
	if (dmarc_org_domain(p, a, a) != 0 || dmarc_org_domain(p, b, b) != 0)
		return false;
	return strcmp(a, b) == 0;
}
