/* fuzz_smtp_command - any byte string as a command line; MAIL and RCPT lines go on through
 * the path and parameter parsers as the session would drive them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LINE_MAX_FUZZ 4096

static void
check_error(const struct smtp_error *err)
{
	if (err->code < 400 || err->code > 599 || err->status == NULL || err->text == NULL ||
	    strpbrk(err->text, "\r\n") != NULL || (err->status[0] - '0') != err->code / 100)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct smtp_offer offer = {true, true, true, true, true};
	char line[LINE_MAX_FUZZ + 1];
	struct smtp_command cmd;
	struct smtp_error err;
	struct smtp_path path;
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	const char *params;

	if (size > LINE_MAX_FUZZ)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';

	if (smtp_command_parse(line, size, &cmd, &err) < 0) {
		check_error(&err);
		if (err.code != 500 && err.code != 501)
			abort();
		return 0;
	}
	/* args must be a NUL-terminated suffix of the line (or the static ""). */
	if (cmd.args[0] != '\0' && (cmd.args < line || cmd.args > line + size))
		abort();
	if (strcmp(cmd.verb_text, smtp_verb_name(cmd.verb)) != 0)
		abort();

	if (cmd.verb == SMTP_EHLO || cmd.verb == SMTP_HELO) {
		(void)smtp_helo_valid(cmd.args);
	} else if (cmd.verb == SMTP_MAIL) {
		if (smtp_path_parse(cmd.args, true, true, true, &path, &params, &err) < 0) {
			check_error(&err);
			return 0;
		}
		if (smtp_mail_params_parse(params, &offer, &mp, &err) < 0)
			check_error(&err);
	} else if (cmd.verb == SMTP_RCPT) {
		if (smtp_path_parse(cmd.args, false, false, false, &path, &params, &err) < 0) {
			check_error(&err);
			return 0;
		}
		if (smtp_rcpt_params_parse(params, &offer, &rp, &err) < 0)
			check_error(&err);
	}
	return 0;
}
