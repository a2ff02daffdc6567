/* conf/source.c - drover.conf as libconfuse parses it: read by core's cfgtext (include()s
 * expanded, comments removed, each line mapped back to its file and line), its problems
 * reported as "file:line: problem", and two scans of the text for what libconfuse does not
 * tell (whether a section is written, where a setting was last assigned).
 */

#include <string.h>

#include "conf/internal.h"
#include "core/core.h"

static void
report(void *arg, const char *file, int line, const char *msg)
{
	load_error_at(arg, file, line, "%s", msg);
}

int
source_load(struct cfgtext *s, const char *path, struct load_ctx *ctx)
{
	const struct cfgtext_opts opts = {.error = report, .arg = ctx};

	return cfgtext_load(s, path, &opts);
}

int
source_last_assignment(const struct cfgtext *s, const char *name)
{
	size_t n = strlen(name);
	int line = 1, found = 0;

	/* The text has no comments left (cfgtext removed them): only strings to skip. */
	for (size_t i = 0; i < s->len; i++) {
		char c = s->text[i];

		if (c == '\n') {
			line++;
		} else if (c == '"' || c == '\'') {
			for (i++; i < s->len && s->text[i] != c; i++) {
				if (s->text[i] == '\\' && i + 1 < s->len)
					line += s->text[++i] == '\n';
				else
					line += s->text[i] == '\n';
			}
		} else if (c == name[0] && (i == 0 || !cfgtext_word_char(s->text[i - 1])) &&
		           s->len - i > n && memcmp(s->text + i, name, n) == 0 &&
		           !cfgtext_word_char(s->text[i + n])) {
			size_t j = i + n;

			while (j < s->len && strchr(" \t\r\n", s->text[j]) != NULL)
				j++;
			if (j < s->len && s->text[j] == '=')
				found = line;
		}
	}
	return found;
}

bool
source_has_section(const struct cfgtext *s, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < s->len; i++) {
		char c = s->text[i];

		if (c == '"' || c == '\'') {
			for (i++; i < s->len && s->text[i] != c; i++)
				if (s->text[i] == '\\')
					i++;
		} else if (c == name[0] && (i == 0 || !cfgtext_word_char(s->text[i - 1])) &&
		           s->len - i > n && memcmp(s->text + i, name, n) == 0 &&
		           !cfgtext_word_char(s->text[i + n])) {
			size_t j = i + n;

			while (j < s->len && strchr(" \t\r\n", s->text[j]) != NULL)
				j++;
			if (j < s->len && s->text[j] == '{')
				return true;
		}
	}
	return false;
}
