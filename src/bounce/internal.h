/* bounce/internal.h - private to bounce/: the text helpers the DSN composer builds on.
 *
 * Every string a DSN carries that came from elsewhere (remote replies, addresses, ENVID,
 * ORCPT) goes through text_clean() or the address encoders before it is written, and every
 * field or text line through put_field() / put_wrapped(), which keep lines within RFC 5322
 * §2.1.1's limits.
 */
#ifndef DROVER_BOUNCE_INTERNAL_H
#define DROVER_BOUNCE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* RFC 5322 §2.1.1: a line MUST be at most 998 octets (without CRLF) and SHOULD be at most
 * 78. Lines are folded at 78 where there is a space to fold at; a word longer than
 * WORD_MAX octets is broken (at a UTF-8 character boundary), so no line passes 998. */
#define LINE_SHOULD 78
#define LINE_MAX    998
#define WORD_MAX    900

/* Appending; allocation failure is fatal, like xmalloc(). */
void put(struct evbuffer *, const void *, size_t);
void put_str(struct evbuffer *, const char *);
void putf(struct evbuffer *, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends name, then text folded (RFC 5322 §2.2.3: CRLF inserted before a space, so
 * unfolding gives text back), then CRLF. first is written as is ("Diagnostic-Code: smtp; ")
 * and must be short (< 60 octets); text must have been through text_clean(). */
void put_field(struct evbuffer *, const char *first, const char *text);
/* Appends text wrapped at 76 columns: first before the first line, cont before the others,
 * CRLF after each. Same inputs as put_field(). */
void put_wrapped(struct evbuffer *, const char *first, const char *cont, const char *text);

/* A copy of s[0..len) fit for one header field or text line: CR LF and every other control
 * become a space, runs of spaces collapse to one, leading and trailing spaces go; octets of
 * malformed UTF-8 become '?', and so does every non-ASCII octet unless utf8. Past max
 * octets the text is cut (at a character boundary) and "..." appended. malloc'd. */
char *text_clean(const char *s, size_t len, bool utf8, size_t max);

bool text_is_ascii(const char *s, size_t len);
/* Only octets 0x20..0x7e. */
bool text_is_printable(const char *s, size_t len);
/* Only octets 0x21..0x7e: an RFC 3464 address-type or diagnostic-type must be an atom;
 * this is the looser check that keeps a field intact. */
bool text_is_token(const char *s, size_t len);

/* RFC 6533 §3: a UTF-8 address as utf-8-addr-xtext (unitext false: pure ASCII, every
 * non-ASCII character and every ASCII one outside QCHAR as "\x{HEX}") or utf-8-addr-unitext
 * (unitext true: non-ASCII characters stay as they are). s must be valid UTF-8.
 * malloc'd. */
char *utf8_addr_encode(const char *s, size_t len, bool unitext);

#endif
