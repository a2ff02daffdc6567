/* smtp/command.c - split a command line into verb and arguments (RFC 5321 §4.1.1). */
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"

static const char *const verb_names[SMTP_VERB_COUNT] = {
    [SMTP_UNKNOWN] = "",  [SMTP_EHLO] = "EHLO",         [SMTP_HELO] = "HELO", [SMTP_MAIL] = "MAIL",
    [SMTP_RCPT] = "RCPT", [SMTP_DATA] = "DATA",         [SMTP_BDAT] = "BDAT", [SMTP_RSET] = "RSET",
    [SMTP_NOOP] = "NOOP", [SMTP_QUIT] = "QUIT",         [SMTP_VRFY] = "VRFY", [SMTP_EXPN] = "EXPN",
    [SMTP_HELP] = "HELP", [SMTP_STARTTLS] = "STARTTLS", [SMTP_AUTH] = "AUTH",
};

static const struct smtp_error err_control = {500, "5.5.2", "Control character in command"};
static const struct smtp_error err_unknown = {500, "5.5.2", "Command unrecognized"};
static const struct smtp_error err_mail = {501, "5.5.4", "Syntax: MAIL FROM:<address>"};
static const struct smtp_error err_rcpt = {501, "5.5.4", "Syntax: RCPT TO:<address>"};

static int
fail(struct smtp_error *err, const struct smtp_error *what)
{
	if (err != NULL)
		*err = *what;
	return -1;
}

const char *
smtp_verb_name(enum smtp_verb verb)
{
	if (verb <= SMTP_UNKNOWN || verb >= SMTP_VERB_COUNT)
		return "?";
	return verb_names[verb];
}

static enum smtp_verb
verb_lookup(const char *s, size_t len)
{
	for (int v = SMTP_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
		if (strlen(verb_names[v]) == len && strncasecmp(s, verb_names[v], len) == 0)
			return (enum smtp_verb)v;
	}
	return SMTP_UNKNOWN;
}

/* "MAIL" must be followed by exactly " FROM:" (any case); the path after it, with its one
 * optional space, is smtp_path_parse's business. */
static bool
keyword_follows(const char *line, size_t len, size_t at, const char *kw)
{
	size_t n = strlen(kw);

	return len - at >= n && strncasecmp(line + at, kw, n) == 0;
}

int
smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd, struct smtp_error *err)
{
	size_t i;

	cmd->verb = SMTP_UNKNOWN;
	cmd->verb_text = verb_names[SMTP_UNKNOWN];
	cmd->args = "";

	/* A NUL would silently cut the line short for every C string consumer downstream, and
	 * other controls (bare CR, ESC, TAB) have no place in a command: refuse the line
	 * rather than guess what the client meant. */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7F)
			return fail(err, &err_control);
	}

	for (i = 0; i < len && line[i] != ' '; i++)
		;
	cmd->verb = verb_lookup(line, i);
	if (cmd->verb == SMTP_UNKNOWN)
		return fail(err, &err_unknown);
	cmd->verb_text = verb_names[cmd->verb];

	if (cmd->verb == SMTP_MAIL) {
		if (!keyword_follows(line, len, i, " FROM:"))
			return fail(err, &err_mail);
		i += strlen(" FROM:");
		cmd->args = i < len ? line + i : "";
		return 0;
	}
	if (cmd->verb == SMTP_RCPT) {
		if (!keyword_follows(line, len, i, " TO:"))
			return fail(err, &err_rcpt);
		i += strlen(" TO:");
		cmd->args = i < len ? line + i : "";
		return 0;
	}
	while (i < len && line[i] == ' ')
		i++;
	if (i < len)
		cmd->args = line + i;
	return 0;
}
