/* fuzz_smtp_path - the first byte picks the parser's flags and the server's offer, the rest is
 * the text after "MAIL FROM:" / "RCPT TO:". Whatever is accepted must honour the header's
 * promises: RFC 5321 lengths, well-formed UTF-8, mailbox = local@domain, valid xtext kept. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARGS_MAX_FUZZ 4096

static void
check_error(const struct smtp_error *err)
{
	if (err->code < 400 || err->code > 599 || err->status == NULL || err->text == NULL ||
	    strpbrk(err->text, "\r\n") != NULL || (err->status[0] - '0') != err->code / 100)
		abort();
}

static void
check_path(const struct smtp_path *path, bool utf8_ok)
{
	size_t local = strlen(path->local), domain = strlen(path->domain);
	size_t mailbox = strlen(path->mailbox);

	if (path->null) {
		if (local != 0 || domain != 0 || mailbox != 0)
			abort();
		return;
	}
	if (local > SMTP_LOCAL_PART_MAX || domain == 0 || domain > SMTP_DOMAIN_MAX ||
	    mailbox != local + 1 + domain || mailbox + 2 > SMTP_PATH_MAX)
		abort();
	if (memcmp(path->mailbox, path->local, local) != 0 || path->mailbox[local] != '@' ||
	    strcmp(path->mailbox + local + 1, path->domain) != 0)
		abort();
	if (path->utf8 && !utf8_ok)
		abort();
	if (!smtp_utf8_valid(path->mailbox, mailbox))
		abort();
	if (path->quoted != (path->local[0] == '"'))
		abort();
	if (path->domain[0] == '[' ? !smtp_address_literal_valid(path->domain, domain)
	                           : !smtp_domain_valid(path->domain, domain, utf8_ok))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char args[ARGS_MAX_FUZZ + 1], decoded[ARGS_MAX_FUZZ + 1];
	struct smtp_offer offer;
	struct smtp_path path;
	struct smtp_error err;
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	const char *params;
	bool is_sender, utf8_ok;
	int n;

	if (size < 1 || size - 1 > ARGS_MAX_FUZZ)
		return 0;
	is_sender = data[0] & 0x01;
	utf8_ok = data[0] & 0x02;
	offer.size = data[0] & 0x04;
	offer.eightbitmime = data[0] & 0x08;
	offer.smtputf8 = data[0] & 0x10;
	offer.dsn = data[0] & 0x20;
	offer.binarymime = data[0] & 0x40;
	memcpy(args, data + 1, size - 1);
	args[size - 1] = '\0';

	/* The small grammars get the raw bytes too. */
	(void)smtp_utf8_valid(args, size - 1);
	(void)smtp_helo_valid(args);
	n = smtp_xtext_decode(args, strlen(args), decoded, sizeof(decoded));
	if (n >= 0 && (decoded[n] != '\0' || !smtp_xtext_valid(args, strlen(args))))
		abort();

	if (smtp_path_parse(args, is_sender, is_sender, utf8_ok, &path, &params, &err) < 0) {
		check_error(&err);
		return 0;
	}
	check_path(&path, utf8_ok);
	if (params < args || params > args + strlen(args) || (params > args && params[0] == ' '))
		abort();

	if (is_sender) {
		if (smtp_mail_params_parse(params, &offer, &mp, &err) < 0) {
			check_error(&err);
			return 0;
		}
		if (mp.envid_given && (strlen(mp.envid) > SMTP_ENVID_MAX * 3 ||
		                       !smtp_xtext_valid(mp.envid, strlen(mp.envid))))
			abort();
		if (mp.body == SMTP_BODY_BINARYMIME && !offer.binarymime)
			abort();
	} else {
		if (smtp_rcpt_params_parse(params, &offer, &rp, &err) < 0) {
			check_error(&err);
			return 0;
		}
		if ((rp.notify & SMTP_NOTIFY_NEVER) && rp.notify != SMTP_NOTIFY_NEVER)
			abort();
		if (rp.orcpt_given && (strlen(rp.orcpt) > SMTP_ORCPT_MAX || !strchr(rp.orcpt, ';')))
			abort();
	}
	return 0;
}
