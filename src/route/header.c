/* route/header.c - the header section of a message as classification reads it: its fields,
 * their unfolded values, where it ends, and the removal of the X-Drover-* fields.
 *
 * This reads network input (a client's message), so every loop is bounded by the buffer and
 * nothing is assumed about it: any octets, any line ends, a buffer that stops anywhere.
 */

#include <string.h>
#include <strings.h>

#include "route/route.h"

/* RFC 5322 §3.6.8 ftext: printable ASCII but ':'. */
static bool
ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static bool
blank(char c)
{
	return c == ' ' || c == '\t';
}

int
route_header_next(const char *p, size_t n, size_t *pos, struct route_field *f)
{
	size_t i = *pos, j, name_end;

	if (i >= n)
		return -1;
	/* The empty line that ends the section: CRLF, or a bare LF. */
	if (p[i] == '\n')
		return 0;
	if (p[i] == '\r') {
		if (i + 1 >= n)
			return -1;
		return 0; /* CRLF, or a CR that starts no field either */
	}
	for (j = i; j < n && ftext((unsigned char)p[j]); j++)
		;
	name_end = j;
	while (j < n && blank(p[j]))
		j++;
	if (j >= n)
		return -1;
	if (p[j] != ':' || name_end == i)
		return 0; /* not a field (a continuation line here has no field to continue) */
	*f = (struct route_field){
	    .start = i, .name_len = name_end - i, .value = j + 1, .complete = false};
	/* Its lines: up to a line end not followed by a blank. */
	for (j = j + 1;;) {
		const char *lf = memchr(p + j, '\n', n - j);

		if (lf == NULL || (size_t)(lf - p) + 1 >= n) {
			/* The buffer ends inside it, or right after a line end: whether a
			 * continuation follows is not known yet. */
			f->end = n;
			*pos = n;
			return 1;
		}
		j = (size_t)(lf - p) + 1;
		if (!blank(p[j]))
			break;
	}
	f->end = j;
	f->complete = true;
	*pos = j;
	return 1;
}

bool
route_field_is(const char *p, const struct route_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(p + f->start, name, n) == 0;
}

size_t
route_field_value(const char *p, const struct route_field *f, char *out, size_t size)
{
	size_t o = 0, i = f->value, end = f->end;

	if (size == 0)
		return 0;
	/* Trimmed at both ends, line ends included (the last line's CRLF). */
	while (i < end && (blank(p[i]) || p[i] == '\r' || p[i] == '\n'))
		i++;
	while (end > i && (blank(p[end - 1]) || p[end - 1] == '\r' || p[end - 1] == '\n'))
		end--;
	/* Unfolded (RFC 5322 §2.2.3): the CRLF before each continuation's blank goes. */
	for (; i < end && o + 1 < size; i++)
		if (p[i] != '\r' && p[i] != '\n')
			out[o++] = p[i];
	out[o] = '\0';
	return o;
}

bool
route_header_complete(const char *p, size_t n, bool final, size_t *end)
{
	struct route_field f;
	size_t pos = 0;
	int rc;

	while ((rc = route_header_next(p, n, &pos, &f)) == 1)
		if (!f.complete)
			break;
	if (rc == 0) {
		*end = pos;
		return true;
	}
	/* The buffer ended: only the end of the data makes that the end of the section. */
	*end = n;
	return final;
}

bool
route_field_is_drover(const char *p, const struct route_field *f)
{
	return route_field_is(p, f, ROUTE_FIELD_STREAM) || route_field_is(p, f, ROUTE_FIELD_POOL) ||
	       route_field_is(p, f, ROUTE_FIELD_TENANT) ||
	       route_field_is(p, f, ROUTE_FIELD_CAMPAIGN);
}

size_t
route_strip_drover_fields(char *buf, size_t len)
{
	struct route_field f;
	size_t pos = 0;

	while (route_header_next(buf, len, &pos, &f) == 1) {
		if (!route_field_is_drover(buf, &f))
			continue;
		memmove(buf + f.start, buf + f.end, len - f.end);
		len -= f.end - f.start;
		pos = f.start;
	}
	return len;
}
