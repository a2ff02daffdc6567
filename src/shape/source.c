/* shape/source.c - a rules file as libconfuse parses it: read by core's cfgtext (include()s
 * expanded, comments removed, [ ] lists made { } lists, each line mapped back to its file
 * and line), its problems reported into the load, and the section headers found in it (for
 * the line where each section opens: libconfuse gives a section only the line where it
 * ends).
 */

#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

/* Headers nested deeper than this are still found, without their parent. */
#define SOURCE_BRACES_MAX 32

static void
report(void *arg, const char *file, int line, const char *msg)
{
	sh_load_error_at(arg, file, line, "%s", msg);
}

/* ---- Section headers ---- */

/* The text is comment-free: tokens are words, strings, braces and punctuation. A header is a
 * word followed by '{', or by a title (word or string) and '{'. */
enum tok { T_WORD, T_STRING, T_OPEN, T_CLOSE, T_EQUALS, T_OTHER };

struct token {
	enum tok type;
	size_t from, len; /* the word, or the string between its quotes */
	int line;
};

static void
next_token(const struct source *s, size_t *ip, int *linep, struct token *t)
{
	size_t i = *ip;

	while (i < s->t.len && strchr(" \t\r\n", s->t.text[i]) != NULL)
		*linep += s->t.text[i++] == '\n';
	t->line = *linep;
	t->from = i;
	t->len = 0;
	if (i >= s->t.len) {
		t->type = T_OTHER;
	} else if (s->t.text[i] == '"' || s->t.text[i] == '\'') {
		char q = s->t.text[i++];

		t->type = T_STRING;
		t->from = i;
		while (i < s->t.len && s->t.text[i] != q) {
			if (s->t.text[i] == '\\' && i + 1 < s->t.len)
				*linep += s->t.text[++i] == '\n';
			else
				*linep += s->t.text[i] == '\n';
			i++;
		}
		t->len = i - t->from;
		if (i < s->t.len)
			i++;
	} else if (s->t.text[i] == '{' || s->t.text[i] == '}') {
		t->type = s->t.text[i] == '{' ? T_OPEN : T_CLOSE;
		i++;
	} else if (s->t.text[i] == '$' && i + 1 < s->t.len && s->t.text[i + 1] == '{') {
		t->type = T_OTHER; /* ${VAR}: a value, not a brace */
		while (i < s->t.len && s->t.text[i] != '}')
			*linep += s->t.text[i++] == '\n';
		if (i < s->t.len)
			i++;
	} else if (cfgtext_word_char(s->t.text[i])) {
		t->type = T_WORD;
		while (i < s->t.len && cfgtext_word_char(s->t.text[i]))
			i++;
		t->len = i - t->from;
	} else {
		t->type = s->t.text[i] == '=' ? T_EQUALS : T_OTHER;
		i++;
	}
	*ip = i;
}

/* A title as libconfuse will see it: backslash escapes resolved the simple way (\x -> x),
 * which is all a comparison of titles needs. */
static char *
token_text(const struct source *s, const struct token *t)
{
	char *out = xmalloc(t->len + 1);
	size_t o = 0;

	for (size_t i = 0; i < t->len; i++) {
		char c = s->t.text[t->from + i];

		if (t->type == T_STRING && c == '\\' && i + 1 < t->len)
			c = s->t.text[t->from + ++i];
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

static void
find_headers(struct source *s)
{
	struct token win[3] = {{T_OTHER, 0, 0, 0}, {T_OTHER, 0, 0, 0}, {T_OTHER, 0, 0, 0}};
	int stack[SOURCE_BRACES_MAX], line = 1, depth = 0;
	size_t i = 0, alloc = 0;

	while (i < s->t.len) {
		struct token t;

		next_token(s, &i, &line, &t);
		if (t.type == T_OPEN) {
			const struct token *kind = NULL, *title = NULL;

			/* "kind title {" or "kind {"; not "name = {" (a list) nor "name = value
			 * kind {" taken for a titled one. */
			if ((win[2].type == T_STRING || win[2].type == T_WORD) &&
			    win[1].type == T_WORD && win[0].type != T_EQUALS) {
				kind = &win[1];
				title = &win[2];
			} else if (win[2].type == T_WORD && win[1].type != T_EQUALS) {
				kind = &win[2];
			}
			if (kind != NULL) {
				struct source_header *h;

				if (s->nheaders == alloc) {
					alloc = alloc ? alloc * 2 : 32;
					s->headers = xrealloc(s->headers, alloc * sizeof(*h));
				}
				h = &s->headers[s->nheaders];
				h->kind = token_text(s, kind);
				h->title = title != NULL ? token_text(s, title) : NULL;
				h->text_line = kind->line;
				h->depth = depth;
				h->parent =
				    depth > 0 && depth <= SOURCE_BRACES_MAX ? stack[depth - 1] : -1;
				if (depth < SOURCE_BRACES_MAX)
					stack[depth] = (int)s->nheaders;
				s->nheaders++;
			} else if (depth < SOURCE_BRACES_MAX) {
				stack[depth] = -1; /* a list: no header */
			}
			depth++;
		} else if (t.type == T_CLOSE && depth > 0) {
			depth--;
		}
		win[0] = win[1];
		win[1] = win[2];
		win[2] = t;
	}
}

int
sh_source_load(struct source *s, const char *path, struct load_ctx *ctx)
{
	const struct cfgtext_opts opts = {.error = report, .arg = ctx, .brackets = true};

	memset(s, 0, sizeof(*s));
	if (cfgtext_load(&s->t, path, &opts) != 0)
		return -1;
	find_headers(s);
	return 0;
}

int
sh_source_load_text(struct source *s, const char *name, const char *data, size_t n,
                    struct load_ctx *ctx)
{
	const struct cfgtext_opts opts = {.error = report, .arg = ctx, .brackets = true};

	memset(s, 0, sizeof(*s));
	if (cfgtext_load_text(&s->t, name, data, n, &opts) != 0)
		return -1;
	find_headers(s);
	return 0;
}

void
sh_source_free(struct source *s)
{
	cfgtext_free(&s->t);
	for (size_t i = 0; i < s->nheaders; i++) {
		free(s->headers[i].kind);
		free(s->headers[i].title);
	}
	free(s->headers);
	memset(s, 0, sizeof(*s));
}
