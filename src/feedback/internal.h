/* feedback/internal.h - private to feedback/: the MIME reader, text helpers and the
 * plain-bounce heuristics that feedback_parse() is built from.
 *
 * Every reader here takes a pointer and a length (input is not NUL-terminated), looks at
 * each octet a bounded number of times, and never reads past the length.
 */
#ifndef DROVER_FEEDBACK_INTERNAL_H
#define DROVER_FEEDBACK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "feedback/feedback.h"

struct slice {
	const char *p;
	size_t len;
};

/* ---- text.c: bounded strings from hostile text ---- */

/* Copies s[0..len) into dst[size] as the header promises: controls and runs of white
 * space become one space, leading and trailing space go, malformed UTF-8 octets become '?',
 * cut at a character boundary. */
void text_put(char *dst, size_t size, const char *s, size_t len);
/* Like text_put(), for an address: also without surrounding "<>", "mailto:" and spaces. */
void addr_put(char *dst, size_t size, const char *s, size_t len);
/* "type; value" (RFC 3464 address-type, diagnostic-type, mta-name-type): splits at the ";"
 * when what comes before it is an atom; otherwise type is empty and value is all of s. */
void typed_split(const char *s, size_t len, struct slice *type, struct slice *value);
/* The first addr-spec-looking token (local@domain.tld) in s[0..len), from *pos on; true and
 * its place in *addr, *pos moved past it. */
bool addr_find(const char *s, size_t len, size_t *pos, struct slice *addr);
/* The address of a From/To-style field value: the first "<...@...>", else the first token
 * addr_find() sees; "" if none. */
void first_address(char *dst, size_t size, const char *s, size_t len);
/* The first SMTP reply code (2xx-5xx standing alone) and RFC 3463 status in a text; 0 / ""
 * when absent. status has SMTP_STATUS_MAX + 1 octets; *code_pos (if not NULL) is the code's
 * offset. */
void reply_scan(const char *s, size_t len, int *code, char *status, size_t *code_pos);
/* Case-insensitive search of an ASCII needle; the offset, or -1. */
long ci_find(const char *hay, size_t len, const char *needle);
bool ci_eq(struct slice s, const char *lit);
bool ci_prefix(const char *s, size_t len, const char *lit);

/* ---- mime.c: lines, header sections, multiparts, transfer encodings ---- */

/* The line at p (without its LF or CRLF); *next is where the following one starts. */
size_t line_next(const char *p, const char *end, const char **next);
bool line_blank(const char *p, size_t len);

struct header_iter {
	const char *p, *end;
	const char *limit; /* fields starting past it are skipped (FEEDBACK_HEADER_MAX) */
};
void header_begin(struct header_iter *, const char *p, size_t len);
/* The next field: its name and raw value (folded lines included, final line end not).
 * Lines without a colon are skipped (bounces carry broken headers). False at the end of
 * the section: an empty line, or the end of input. */
bool header_next(struct header_iter *, struct slice *name, struct slice *value);
/* After header_next() returned false: where the body starts (after the empty line). */
const char *header_body(const struct header_iter *);

#define BOUNDARY_MAX 200 /* RFC 2046 says 70; generators exceed it, nobody needs more */

struct content_type {
	char type[32];    /* lower case; "text" when absent */
	char subtype[64]; /* lower case; "plain" when absent */
	char boundary[BOUNDARY_MAX + 1];
	char report_type[64]; /* lower case */
};
void content_type_parse(const char *s, size_t len, struct content_type *);

enum cte { CTE_IDENTITY = 0, CTE_QP, CTE_BASE64 };
enum cte cte_parse(const char *s, size_t len);

/* A body decoded: p points into the input (identity) or into owned (free it). */
struct decoded {
	const char *p;
	size_t len;
	char *owned;
	bool cut; /* decoding stopped at max */
};
void body_decode(enum cte, const char *p, size_t len, size_t max, struct decoded *);
void decoded_free(struct decoded *);
/* The text of an HTML part for reading: tags dropped (block ends become line ends), style
 * and script contents dropped, the common entities decoded. Writes at most max octets;
 * returns the length. */
size_t html_to_text(const char *in, size_t len, char *out, size_t max);

/* The parts of a multipart body, between "--boundary" lines. */
struct part_iter {
	const char *p, *end;
	const char *boundary;
	size_t blen;
	const char *start; /* of the current part; NULL in the preamble */
	bool done;
};
void part_begin(struct part_iter *, const char *body, size_t len, const char *boundary);
/* The next part (headers and body); false when there is none. A missing close delimiter
 * ends the last part at the end of input (a truncated report is still read). */
bool part_next(struct part_iter *, struct slice *part);

/* ---- report.c, shared with plain.c ---- */

/* A new recipient entry, zeroed, or NULL once FEEDBACK_RCPT_MAX are kept (it is still
 * counted in rcpt_total, and FEEDBACK_CUT_RCPT set). */
struct feedback_rcpt *rcpt_add(struct feedback_report *);
/* Fills reply_code, and status when empty, from the diagnostic. */
void rcpt_diagnose(struct feedback_rcpt *);
/* Reads an original message's header section into r->original (once: the first wins). */
void original_read(struct feedback_report *, const char *p, size_t len, enum feedback_returned);

/* ---- plain.c: bounces without a delivery-status part ---- */

/* What the report's own header says that tells a bounce apart: its raw From (a display
 * name like "Mail Delivery Subsystem" counts) and Exim's X-Failed-Recipients. Empty slices
 * when absent. */
struct bounce_hints {
	struct slice from;
	struct slice failed;
	bool have_failed;
};

/* Reads the human-readable text of a message (decoded). True if it is a bounce, as told by
 * the report's subject, its hints or the text's wording; then the recipients found are
 * added to r, and a copy of the original after the text fills r->original if no part did. */
bool plain_read(struct feedback_report *r, const char *text, size_t len,
                const struct bounce_hints *hints);

#endif
