/* core/cfgtext.c - the text libconfuse parses: a configuration file with its include()s
 * expanded and its comments removed, and a map from each line of that text back to a file
 * and line. drover.conf (conf/) and the shaping rules (shape/) are both read this way.
 *
 * Why not let libconfuse read the files: libconfuse 3.3 miscounts lines after every comment
 * (each "# ..." line counts as three), so its line numbers would point at the wrong line, and
 * it rejects comments inside lists (libconfuse issue #150). Its include() keeps a global
 * stack that a parse error inside an included file leaves behind. Removing comments here
 * (outside quoted strings, exactly where libconfuse's scanner sees them) and expanding
 * include() textually makes every line number true and every include error reportable.
 * Braces are checked per file too: libconfuse ends an unclosed section silently at the end
 * of the text, and an included file holds whole settings and sections.
 */

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"

/* A configuration bigger than this is a mistake (a log file given by accident). */
#define SOURCE_FILE_MAX (16 * 1024 * 1024)
/* Nesting deeper than this is reported without the line of each '{'. */
#define SOURCE_BRACES_MAX 32
/* Deeper than this is an include loop that realpath() did not catch, or a design to avoid. */
#define SOURCE_DEPTH_MAX 16

struct expander {
	struct cfgtext *src;
	const struct cfgtext_opts *opts;
	char *chain[SOURCE_DEPTH_MAX + 1]; /* realpath()s of the files being expanded */
	int depth;
	bool no_include; /* text from memory: no directory to read from */
};

static void report(const struct expander *, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
report(const struct expander *x, const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x->opts->error(x->opts->arg, file, line, msg);
}

static void
emit(struct cfgtext *s, const char *p, size_t n)
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
emitc(struct cfgtext *s, char c)
{
	emit(s, &c, 1);
}

/* From here on, text lines map to file's lines from file_line. */
static void
segment(struct cfgtext *s, const char *file, int file_line)
{
	s->segs = xrealloc(s->segs, (s->nsegs + 1) * sizeof(*s->segs));
	s->segs[s->nsegs].text_line = s->line;
	s->segs[s->nsegs].file = file;
	s->segs[s->nsegs].file_line = file_line;
	s->nsegs++;
}

/* Keeps the name for the segments (they point into s->files). */
static const char *
keep_name(struct cfgtext *s, const char *name)
{
	s->files = xrealloc(s->files, (s->nfiles + 1) * sizeof(*s->files));
	s->files[s->nfiles] = xstrdup(name);
	return s->files[s->nfiles++];
}

void
cfgtext_where(const struct cfgtext *s, int text_line, const char **file, int *line)
{
	const struct cfgtext_segment *seg = NULL;

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
bool
cfgtext_word_char(char c)
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
		while (i < n && cfgtext_word_char(data[i]) && nlen + 1 < sizeof(name))
			name[nlen++] = data[i++];
	}
	name[nlen] = '\0';
	while (i < n && strchr(" \t\r\n", data[i]) != NULL)
		line += data[i++] == '\n';
	if (i >= n || data[i] != ')' || nlen == 0)
		ok = false;

	if (ok && x->no_include) {
		report(x, file, start_line,
		       "include: not available in rules given as text (there is no directory to "
		       "read \"%s\" from)",
		       name);
		ok = false;
	} else if (!ok) {
		report(
		    x, file, start_line,
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
		report(x, file, start_line, "include: \"%s\": %s", path, why);
	} else if (real == NULL) {
		report(x, file, start_line, "include: \"%s\": %s", path, strerror(errno));
	} else {
		bool loop = false;

		for (int d = 0; d < x->depth; d++)
			loop |= strcmp(x->chain[d], real) == 0;
		if (loop)
			report(x, file, start_line,
			       "include: \"%s\": already being included (an include loop)", path);
		else if (x->depth >= SOURCE_DEPTH_MAX)
			report(x, file, start_line, "include: \"%s\": nested more than %d deep",
			       path, SOURCE_DEPTH_MAX);
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
	struct cfgtext *s = x->src;
	int line = 1, open[SOURCE_BRACES_MAX];
	size_t i = 0, depth = 0;

	segment(s, file, 1);
	while (i < n) {
		char c = data[i];

		/* [ ] lists are { } lists: libconfuse knows only braces. (Strings and comments
		 * start with other characters, so this changes nothing inside them.) */
		if (x->opts->brackets && c == '[')
			c = '{';
		else if (x->opts->brackets && c == ']')
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
				report(x, file, start, "unterminated /* comment");
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
				report(x, file, start, "unterminated %s string",
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
		} else if (c == 'i' && (i == 0 || !cfgtext_word_char(data[i - 1])) && n - i >= 7 &&
		           memcmp(data + i, "include", 7) == 0 &&
		           (i + 7 == n || !cfgtext_word_char(data[i + 7]) || data[i + 7] == '(') &&
		           include_directive(x, file, data, n, &i, &line)) {
			/* expanded (or reported) */
		} else if (c == '}' && depth == 0) {
			/* Dropped, so that libconfuse does not close a section of another file. */
			report(x, file, line, "'}' without a '{' to close");
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
		report(x, file, open[d], "'{' is never closed (in this file)");
	for (; depth > 0; depth--)
		emitc(s, '}');
}

static void
begin(struct cfgtext *s, struct expander *x, const struct cfgtext_opts *opts)
{
	memset(s, 0, sizeof(*s));
	memset(x, 0, sizeof(*x));
	s->line = 1;
	s->text = xstrdup("");
	x->src = s;
	x->opts = opts;
}

int
cfgtext_load(struct cfgtext *s, const char *path, const struct cfgtext_opts *opts)
{
	struct expander x;
	const char *why;
	size_t n;
	char *data;

	begin(s, &x, opts);
	if ((data = read_file(path, &n, &why)) == NULL) {
		report(&x, path, 0, "cannot read: %s", why);
		return -1;
	}
	x.chain[0] = realpath(path, NULL);
	x.depth = x.chain[0] != NULL ? 1 : 0;
	expand(&x, keep_name(s, path), data, n);
	free(x.chain[0]);
	free(data);
	return 0;
}

int
cfgtext_load_text(struct cfgtext *s, const char *name, const char *data, size_t n,
                  const struct cfgtext_opts *opts)
{
	struct expander x;

	begin(s, &x, opts);
	if (memchr(data, '\0', n) != NULL) {
		report(&x, name, 0, "contains a NUL byte: not a text file");
		return -1;
	}
	x.no_include = true;
	expand(&x, keep_name(s, name), data, n);
	return 0;
}

void
cfgtext_free(struct cfgtext *s)
{
	free(s->text);
	free(s->segs);
	for (size_t i = 0; i < s->nfiles; i++)
		free(s->files[i]);
	free(s->files);
	memset(s, 0, sizeof(*s));
}
