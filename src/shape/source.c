/* source.c - the text libconfuse parses: the rules file with its include()s expanded and its
 * comments removed, a map from each line of that text back to a file and line, and the
 * section headers found in it (for the line where each section opens).
 *
 * This follows src/conf/source.c (which is private to conf/), for the same reasons: libconfuse
 * 3.3 miscounts lines after every comment, rejects comments inside lists, and keeps a global
 * include() stack that a parse error inside an included file leaves behind. Expanding here
 * makes every line number true and every include error reportable. Two additions: lists may
 * be written [ ... ] as well as { ... } (the brackets become braces outside strings), and the
 * section headers are recorded, because libconfuse gives a section only the line where it
 * ends.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "shape/internal.h"

/* A configuration bigger than this is a mistake (a log file given by accident). */
#define SOURCE_FILE_MAX (16 * 1024 * 1024)
/* Nesting deeper than this is reported without the line of each '{'. */
#define SOURCE_BRACES_MAX 32
/* Deeper than this is an include loop that realpath() did not catch, or a design to avoid. */
#define SOURCE_DEPTH_MAX 16

struct expander {
	struct source *src;
	struct load_ctx *ctx;
	bool no_include;                   /* text from memory: no directory to read from */
	char *chain[SOURCE_DEPTH_MAX + 1]; /* realpath()s of the files being expanded */
	int depth;
};

static void
emit(struct source *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->text = xrealloc(s->text, s->cap);
	}
	memcpy(s->text + s->len, p, n);
	s->len += n;
	s->text[s->len] = '\0';
	for (size_t i = 0; i < n; i++)
		s->line += p[i] == '\n';
}

static void
emitc(struct source *s, char c)
{
	emit(s, &c, 1);
}

/* From here on, text lines map to file's lines from file_line. */
static void
segment(struct source *s, const char *file, int file_line)
{
	s->segs = xrealloc(s->segs, (s->nsegs + 1) * sizeof(*s->segs));
	s->segs[s->nsegs].text_line = s->line;
	s->segs[s->nsegs].file = file;
	s->segs[s->nsegs].file_line = file_line;
	s->nsegs++;
}

/* Keeps the name for the segments (they point into s->files). */
static const char *
keep_name(struct source *s, const char *name)
{
	s->files = xrealloc(s->files, (s->nfiles + 1) * sizeof(*s->files));
	s->files[s->nfiles] = xstrdup(name);
	return s->files[s->nfiles++];
}

void
sh_source_where(const struct source *s, int text_line, const char **file, int *line)
{
	const struct source_segment *seg = NULL;

	for (size_t i = 0; i < s->nsegs && s->segs[i].text_line <= text_line; i++)
		seg = &s->segs[i];
	if (seg == NULL || text_line <= 0) {
		*file = s->nfiles > 0 ? s->files[0] : NULL;
		*line = 0;
		return;
	}
	*file = seg->file;
	*line = seg->file_line + (text_line - seg->text_line);
}

/* Reads a whole regular file. NULL with a reason. */
static char *
read_file(const char *path, size_t *len, const char **why)
{
	struct stat st;
	FILE *fp;
	char *buf;
	size_t n;

	/* stat() first: fopen() of a FIFO would wait for a writer. */
	if (stat(path, &st) != 0) {
		*why = strerror(errno);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		return NULL;
	}
	if ((fp = fopen(path, "r")) == NULL) {
		*why = strerror(errno);
		return NULL;
	}
	if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		fclose(fp);
		return NULL;
	}
	if (st.st_size > SOURCE_FILE_MAX) {
		*why = "larger than 16 MiB: not a configuration file";
		fclose(fp);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	n = fread(buf, 1, (size_t)st.st_size, fp);
	if (ferror(fp)) {
		*why = strerror(errno);
		free(buf);
		fclose(fp);
		return NULL;
	}
	fclose(fp);
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != NULL) {
		*why = "contains a NUL byte: not a text file";
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Characters that end an unquoted word in libconfuse's scanner. */
static bool
word_char(char c)
{
	return c != '\0' && strchr(" #\"'\t\n\r={}()+,*", c) == NULL;
}

static void expand(struct expander *, const char *file, const char *data, size_t n);

/* include("name") at data[*ip] (the word "include" is there). Returns false if this is not
 * an include directive after all (no parenthesis), leaving *ip alone. */
static bool
include_directive(struct expander *x, const char *file, const char *data, size_t n, size_t *ip,
                  int *linep)
{
	size_t i = *ip + 7;
	int line = *linep, start_line = *linep;
	char name[PATH_MAX];
	size_t nlen = 0;
	bool ok = true;

	while (i < n && (data[i] == ' ' || data[i] == '\t'))
		i++;
	if (i >= n || data[i] != '(')
		return false;
	i++;
	while (i < n && strchr(" \t\r\n", data[i]) != NULL)
		line += data[i++] == '\n';
	if (i < n && (data[i] == '"' || data[i] == '\'')) {
		char q = data[i++];

		while (i < n && data[i] != q && data[i] != '\n') {
			if (data[i] == '\\' && i + 1 < n && data[i + 1] != '\n')
				i++;
			if (nlen + 1 < sizeof(name))
				name[nlen++] = data[i];
			i++;
		}
		if (i < n && data[i] == q)
			i++;
		else
			ok = false;
	} else {
		while (i < n && word_char(data[i]) && nlen + 1 < sizeof(name))
			name[nlen++] = data[i++];
	}
	name[nlen] = '\0';
	while (i < n && strchr(" \t\r\n", data[i]) != NULL)
		line += data[i++] == '\n';
	if (i >= n || data[i] != ')' || nlen == 0)
		ok = false;

	if (ok && x->no_include) {
		sh_load_error_at(x->ctx, file, start_line,
		                 "include: not available in rules given as text (there is no "
		                 "directory to read \"%s\" from)",
		                 name);
		ok = false;
	} else if (!ok) {
		sh_load_error_at(
		    x->ctx, file, start_line,
		    "include: expected one file name in quotes, as in include(\"shaping.conf\")");
	}
	if (!ok) {
		/* Skip the rest of the line: whatever follows is part of the broken directive. */
		while (i < n && data[i] != '\n')
			i++;
		*ip = i;
		*linep = line;
		return true;
	}
	i++; /* ')' */

	/* Relative to the directory of the including file. */
	char *path;
	const char *slash = strrchr(file, '/');

	if (name[0] == '/' || slash == NULL)
		path = xstrdup(name);
	else
		path = xasprintf("%.*s/%s", (int)(slash - file), file, name);

	const char *why;
	size_t clen;
	char *content = read_file(path, &clen, &why);
	char *real = content != NULL ? realpath(path, NULL) : NULL;

	if (content == NULL) {
		sh_load_error_at(x->ctx, file, start_line, "include: \"%s\": %s", path, why);
	} else if (real == NULL) {
		sh_load_error_at(x->ctx, file, start_line, "include: \"%s\": %s", path,
		                 strerror(errno));
	} else {
		bool loop = false;

		for (int d = 0; d < x->depth; d++)
			loop |= strcmp(x->chain[d], real) == 0;
		if (loop)
			sh_load_error_at(
			    x->ctx, file, start_line,
			    "include: \"%s\": already being included (an include loop)", path);
		else if (x->depth >= SOURCE_DEPTH_MAX)
			sh_load_error_at(x->ctx, file, start_line,
			                 "include: \"%s\": nested more than %d deep", path,
			                 SOURCE_DEPTH_MAX);
		else {
			/* On lines of its own, so that the map stays line-for-line. */
			emitc(x->src, '\n');
			x->chain[x->depth++] = real;
			real = NULL;
			expand(x, keep_name(x->src, path), content, clen);
			free(x->chain[--x->depth]);
			emitc(x->src, '\n');
			segment(x->src, file, line);
		}
	}
	free(real);
	free(content);
	free(path);
	*ip = i;
	*linep = line;
	return true;
}

/* Copies data to the text without comments, expanding include()s. The scanner's rules are
 * followed: '#' and '//' start a comment to the end of the line, slash-star one to
 * star-slash; none of them inside "..." or '...' strings (where a backslash escapes the next
 * character) or inside ${VAR}. */
static void
expand(struct expander *x, const char *file, const char *data, size_t n)
{
	struct source *s = x->src;
	int line = 1, open[SOURCE_BRACES_MAX];
	size_t i = 0, depth = 0;

	segment(s, file, 1);
	while (i < n) {
		char c = data[i];

		/* [ ] lists are { } lists: libconfuse knows only braces. (Strings and comments
		 * start with other characters, so this changes nothing inside them.) */
		if (c == '[')
			c = '{';
		else if (c == ']')
			c = '}';

		if (c == '#' || (c == '/' && i + 1 < n && data[i + 1] == '/')) {
			while (i < n && data[i] != '\n')
				i++;
		} else if (c == '/' && i + 1 < n && data[i + 1] == '*') {
			int start = line;

			i += 2;
			while (i < n && !(data[i] == '*' && i + 1 < n && data[i + 1] == '/')) {
				if (data[i] == '\n') {
					emitc(s, '\n');
					line++;
				}
				i++;
			}
			if (i >= n)
				sh_load_error_at(x->ctx, file, start, "unterminated /* comment");
			else
				i += 2;
			emitc(s, ' ');
		} else if (c == '"' || c == '\'') {
			size_t from = i++;
			int start = line;

			while (i < n && data[i] != c) {
				if (data[i] == '\\' && i + 1 < n) {
					line += data[i + 1] == '\n';
					i++;
				}
				line += data[i] == '\n';
				i++;
			}
			emit(s, data + from, i - from);
			if (i < n) {
				emitc(s, c);
				i++;
			} else {
				/* Closed here so that the next file is not swallowed. */
				sh_load_error_at(x->ctx, file, start, "unterminated %s string",
				                 c == '"' ? "\"...\"" : "'...'");
				emitc(s, c);
			}
		} else if (c == '$' && i + 1 < n && data[i + 1] == '{') {
			size_t from = i;

			while (i < n && data[i] != '}') {
				line += data[i] == '\n';
				i++;
			}
			if (i < n)
				i++;
			emit(s, data + from, i - from);
		} else if (c == 'i' && (i == 0 || !word_char(data[i - 1])) && n - i >= 7 &&
		           memcmp(data + i, "include", 7) == 0 &&
		           (i + 7 == n || !word_char(data[i + 7]) || data[i + 7] == '(') &&
		           include_directive(x, file, data, n, &i, &line)) {
			/* expanded (or reported) */
		} else if (c == '}' && depth == 0) {
			/* Dropped, so that libconfuse does not close a section of another file. */
			sh_load_error_at(x->ctx, file, line, "'}' without a '{' to close");
			i++;
		} else {
			if (c == '{' && depth++ < SOURCE_BRACES_MAX)
				open[depth - 1] = line;
			else if (c == '}')
				depth--;
			emitc(s, c);
			line += c == '\n';
			i++;
		}
	}
	if (n > 0 && data[n - 1] != '\n')
		emitc(s, '\n');
	/* libconfuse takes the end of the text as the end of any open section: a missing '}'
	 * would silently pull the next settings into the section. */
	for (size_t d = 0; d < depth && d < SOURCE_BRACES_MAX; d++)
		sh_load_error_at(x->ctx, file, open[d], "'{' is never closed (in this file)");
	for (; depth > 0; depth--)
		emitc(s, '}');
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

	while (i < s->len && strchr(" \t\r\n", s->text[i]) != NULL)
		*linep += s->text[i++] == '\n';
	t->line = *linep;
	t->from = i;
	t->len = 0;
	if (i >= s->len) {
		t->type = T_OTHER;
	} else if (s->text[i] == '"' || s->text[i] == '\'') {
		char q = s->text[i++];

		t->type = T_STRING;
		t->from = i;
		while (i < s->len && s->text[i] != q) {
			if (s->text[i] == '\\' && i + 1 < s->len)
				*linep += s->text[++i] == '\n';
			else
				*linep += s->text[i] == '\n';
			i++;
		}
		t->len = i - t->from;
		if (i < s->len)
			i++;
	} else if (s->text[i] == '{' || s->text[i] == '}') {
		t->type = s->text[i] == '{' ? T_OPEN : T_CLOSE;
		i++;
	} else if (s->text[i] == '$' && i + 1 < s->len && s->text[i + 1] == '{') {
		t->type = T_OTHER; /* ${VAR}: a value, not a brace */
		while (i < s->len && s->text[i] != '}')
			*linep += s->text[i++] == '\n';
		if (i < s->len)
			i++;
	} else if (word_char(s->text[i])) {
		t->type = T_WORD;
		while (i < s->len && word_char(s->text[i]))
			i++;
		t->len = i - t->from;
	} else {
		t->type = s->text[i] == '=' ? T_EQUALS : T_OTHER;
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
		char c = s->text[t->from + i];

		if (t->type == T_STRING && c == '\\' && i + 1 < t->len)
			c = s->text[t->from + ++i];
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

	while (i < s->len) {
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
	struct expander x;
	const char *why;
	size_t n;
	char *data;

	memset(s, 0, sizeof(*s));
	memset(&x, 0, sizeof(x));
	s->line = 1;
	s->text = xstrdup("");
	if ((data = read_file(path, &n, &why)) == NULL) {
		sh_load_error_at(ctx, path, 0, "cannot read: %s", why);
		return -1;
	}
	x.src = s;
	x.ctx = ctx;
	x.chain[0] = realpath(path, NULL);
	x.depth = x.chain[0] != NULL ? 1 : 0;
	expand(&x, keep_name(s, path), data, n);
	free(x.chain[0]);
	free(data);
	find_headers(s);
	return 0;
}

int
sh_source_load_text(struct source *s, const char *name, const char *data, size_t n,
                    struct load_ctx *ctx)
{
	struct expander x;

	memset(s, 0, sizeof(*s));
	memset(&x, 0, sizeof(x));
	s->line = 1;
	s->text = xstrdup("");
	if (memchr(data, '\0', n) != NULL) {
		sh_load_error_at(ctx, name, 0, "contains a NUL byte: not a text file");
		return -1;
	}
	x.src = s;
	x.ctx = ctx;
	x.no_include = true;
	expand(&x, keep_name(s, name), data, n);
	find_headers(s);
	return 0;
}

void
sh_source_free(struct source *s)
{
	free(s->text);
	free(s->segs);
	for (size_t i = 0; i < s->nfiles; i++)
		free(s->files[i]);
	free(s->files);
	for (size_t i = 0; i < s->nheaders; i++) {
		free(s->headers[i].kind);
		free(s->headers[i].title);
	}
	free(s->headers);
	memset(s, 0, sizeof(*s));
}
