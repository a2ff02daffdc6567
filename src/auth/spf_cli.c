/* spf_cli.c - `drover spf`: one SPF or Sender ID check from live DNS, for scripts and for
 * operators asking "would mail from this address, sent from this IP, pass?".
 *
 * The first line is the result keyword alone (none, neutral, pass, fail, softfail, temperror,
 * permerror), so that `drover spf ... | head -1` is all a script needs; then "key: value"
 * lines for people. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/spf_internal.h"
#include "core/core.h"

#define CLI_FORWARDERS_MAX 8
/* A header section larger than this is not read further (the PRA is near the top). */
#define CLI_MESSAGE_MAX (1024 * 1024)

struct cli {
	const char *ip, *sender, *helo, *scope, *message, *receiver, *timeout;
	const char *forwarders[CLI_FORWARDERS_MAX + 1];
	size_t nforwarders;
	bool help;
};

struct cli_result {
	bool done;
	enum spf_result result;
	char *explanation, *mechanism, *reason, *domain, *identity;
};

static void
cli_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: drover spf --ip IP --sender ADDRESS --helo NAME [--scope mfrom|helo|pra]\n"
	    "                  [--message FILE] [--dns IP[@PORT]]... [--timeout MS]\n"
	    "                  [--receiver NAME]\n"
	    "\n"
	    "Checks SPF (RFC 7208) for the MAIL FROM address (mfrom, the default; an empty\n"
	    "--sender is the null sender, checked as postmaster@HELO) or the HELO name (helo),\n"
	    "or Sender ID (RFC 4406) for the Purported Responsible Address (pra: from the\n"
	    "header section of --message FILE if given, else --sender), from live DNS.\n"
	    "Prints the result on the first line: none, neutral, pass, fail, softfail,\n"
	    "temperror or permerror; then the explanation (fail), the mechanism that matched\n"
	    "and the reason. --dns: servers to ask instead of /etc/resolv.conf's.\n"
	    "Exit status: 0 with a result, 2 for a usage error, 1 if DNS cannot be set up.\n");
}

static int
cli_parse(int argc, char **argv, struct cli *o)
{
	static const struct {
		const char *name;
		size_t off;
	} opts[] = {
	    {"--ip", offsetof(struct cli, ip)},
	    {"--sender", offsetof(struct cli, sender)},
	    {"--helo", offsetof(struct cli, helo)},
	    {"--scope", offsetof(struct cli, scope)},
	    {"--message", offsetof(struct cli, message)},
	    {"--receiver", offsetof(struct cli, receiver)},
	    {"--timeout", offsetof(struct cli, timeout)},
	    {"--dns", 0},
	};

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *value = NULL, *eq = strchr(arg, '=');
		size_t k, nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			o->help = true;
			continue;
		}
		for (k = 0; k < nitems(opts); k++)
			if (strlen(opts[k].name) == nlen && strncmp(arg, opts[k].name, nlen) == 0)
				break;
		if (k == nitems(opts)) {
			fprintf(stderr, "drover spf: unknown argument \"%s\"\n", arg);
			return -1;
		}
		if (eq != NULL)
			value = eq + 1;
		else if (i + 1 < argc)
			value = argv[++i];
		else {
			fprintf(stderr, "drover spf: %s needs a value\n", arg);
			return -1;
		}
		if (strcmp(opts[k].name, "--dns") == 0) {
			if (o->nforwarders == CLI_FORWARDERS_MAX) {
				fprintf(stderr, "drover spf: at most %d --dns servers\n",
				        CLI_FORWARDERS_MAX);
				return -1;
			}
			o->forwarders[o->nforwarders++] = value;
		} else
			*(const char **)((char *)o + opts[k].off) = value;
	}
	return 0;
}

static void
on_result(void *arg, const struct spf_outcome *out)
{
	struct cli_result *r = arg;

	r->done = true;
	r->result = out->result;
	r->explanation = out->explanation != NULL ? xstrdup(out->explanation) : NULL;
	r->mechanism = out->mechanism != NULL ? xstrdup(out->mechanism) : NULL;
	r->reason = xstrdup(out->reason);
	r->domain = xstrdup(out->domain);
	r->identity = xstrdup(out->identity);
}

/* The header section of a message file, for the PRA. NULL with a message on stderr. */
static char *
read_message(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;

	if (f == NULL) {
		fprintf(stderr, "drover spf: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(CLI_MESSAGE_MAX);
	*len = fread(buf, 1, CLI_MESSAGE_MAX, f);
	if (ferror(f)) {
		fprintf(stderr, "drover spf: %s: read error\n", path);
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	return buf;
}

/* pra_field: the header field the PRA came from, or NULL. */
static int
cli_check(const struct cli *o, struct spf_request *req, const char *pra_field)
{
	struct event_base *base = NULL;
	struct dns_resolver *resolver = NULL;
	struct dns_options dopt = {0};
	struct cli_result r = {0};
	struct spf_dns dns;
	char err[512];
	int rc = 1;

	if (o->timeout != NULL) {
		char *end;
		unsigned long ms = strtoul(o->timeout, &end, 10);

		if (*end != '\0' || ms == 0 || ms > 600000) {
			fprintf(stderr, "drover spf: --timeout %s: milliseconds, 1 to 600000\n",
			        o->timeout);
			return 2;
		}
		dopt.timeout_ms = (unsigned)ms;
	}
	dopt.forwarders = o->nforwarders > 0 ? o->forwarders : NULL;
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "drover spf: cannot create an event loop\n");
		return 1;
	}
	if ((resolver = dns_resolver_new(base, &dopt, err, sizeof(err))) == NULL) {
		fprintf(stderr, "drover spf: %s\n", err);
		goto out;
	}
	spf_dns_use_resolver(&dns, resolver, base);
	(void)spf_check_start(&dns, req, on_result, &r);
	while (!r.done && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	if (!r.done) {
		fprintf(stderr, "drover spf: the check did not finish\n");
		goto out;
	}
	printf("%s\n", spf_result_name(r.result));
	if (r.explanation != NULL)
		printf("explanation: %s\n", r.explanation);
	if (r.mechanism != NULL)
		printf("mechanism: %s\n", r.mechanism);
	if (r.identity != NULL && r.identity[0] != '\0')
		printf("identity: %s%s%s%s\n", r.identity, pra_field != NULL ? " (" : "",
		       pra_field != NULL ? pra_field : "", pra_field != NULL ? " field)" : "");
	if (r.domain != NULL && r.domain[0] != '\0')
		printf("domain: %s\n", r.domain);
	printf("reason: %s\n", r.reason);
	rc = 0;
out:
	dns_resolver_free(resolver);
	event_base_free(base);
	free(r.explanation);
	free(r.mechanism);
	free(r.reason);
	free(r.domain);
	free(r.identity);
	return rc;
}

int
spf_cli(int argc, char **argv)
{
	struct cli o = {0};
	struct spf_request req = {0};
	struct senderid_pra pra;
	char *message = NULL;
	const char *pra_field = NULL;
	int rc;

	if (cli_parse(argc, argv, &o) == -1) {
		cli_usage(stderr);
		return 2;
	}
	if (o.help) {
		cli_usage(stdout);
		return 0;
	}
	if (o.scope != NULL && spf_scope_parse(o.scope, &req.scope) == -1) {
		fprintf(stderr, "drover spf: --scope %s: expected mfrom, helo or pra\n", o.scope);
		return 2;
	}
	if (o.ip == NULL || spf_ip_parse(o.ip, &req.ip) == -1) {
		fprintf(stderr, "drover spf: --ip %s: expected an IPv4 or IPv6 address\n",
		        o.ip != NULL ? o.ip : "is missing;");
		return 2;
	}
	if (o.helo == NULL && (req.scope == SPF_SCOPE_HELO || (req.scope == SPF_SCOPE_MFROM &&
	                                                       (o.sender == NULL || !*o.sender)))) {
		fprintf(stderr,
		        "drover spf: --helo is needed for the helo scope and a null sender\n");
		return 2;
	}
	if (req.scope != SPF_SCOPE_HELO && o.sender == NULL && o.message == NULL) {
		fprintf(stderr, "drover spf: --sender is needed (\"\" for the null sender)\n");
		return 2;
	}
	req.sender = o.sender;
	req.helo = o.helo;
	req.receiver = o.receiver;
	if (req.scope == SPF_SCOPE_PRA && o.message != NULL) {
		char err[256];
		size_t len;

		if ((message = read_message(o.message, &len)) == NULL)
			return 2;
		if (senderid_pra(message, len, &pra, err, sizeof(err)) == -1) {
			/* RFC 4407 §2 step 6: the message is ill-formed. */
			printf("permerror\nreason: no Purported Responsible Address: %s\n", err);
			free(message);
			return 0;
		}
		req.sender = pra.address;
		pra_field = pra.header;
	}
	rc = cli_check(&o, &req, pra_field);
	free(message);
	return rc;
}
