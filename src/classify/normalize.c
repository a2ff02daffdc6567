/* normalize.c - the form of a reply's text that rules see and the cache is keyed by.
 *
 * The same rejection comes back with a different recipient address, client IP address, queue
 * id or time stamp in every reply. Masking those makes one cache entry serve them all, and
 * since rules match the masked text too, a cached answer is always the answer the rules give:
 * the cache can never change a classification, only make it faster.
 *
 * What is masked (docs/bounces.md, "What rules see"):
 * - runs of white space (line breaks of multi-line replies included) become one space, and
 *   leading and trailing space goes, so a regex never cares where a server wrapped its lines;
 * - an address (local part, '@', domain) inside a word (between spaces and the separators
 *   <>()[]{},;"') becomes "x@x", and the rest of the word stays;
 * - inside words, a compound (letters and digits, joined by . _ : -) that looks like an id
 *   becomes "#": a number of 5+ digits, digits and joiners in 4+ parts (IPv4, "4.16.55.1"),
 *   or a 12+ octet compound with letters and 4+ digits (queue ids, host names with serial
 *   numbers, IPv6, time stamps). Enhanced statuses ("4.7.28") are kept, and so are short reason
 *   codes that providers document (S3150, TSS04, OFR004_104, BL000001, AS(7555)).
 */
#include <stdbool.h>
#include <string.h>

#include "classify/internal.h"

/* Octet classes, in one table so that the scan costs a load per octet. */
enum {
	C_SPACE = 1,
	/* What replies put around addresses and ids: "<a@b>", "[192.0.2.1]", "(S3150)". */
	C_SEP = 2,
	C_DIGIT = 4,
	C_LETTER = 8,
	C_JOINER = 16, /* joins the parts of a compound: "192.0.2.1", "OFR004_104", "12:34" */
	C_LOCAL = 32,  /* RFC 5322 atext and '.': a local part (quotes are separators here) */
	C_DOMAIN = 64,
	C_STOP = 128, /* ends a word: NUL, space, separator */
};

static const unsigned char cls[256] = {
    ['\0'] = C_STOP,
    ['\t'] = C_SPACE | C_STOP,
    ['\n'] = C_SPACE | C_STOP,
    ['\v'] = C_SPACE | C_STOP,
    ['\f'] = C_SPACE | C_STOP,
    ['\r'] = C_SPACE | C_STOP,
    [' '] = C_SPACE | C_STOP,
    ['<'] = C_SEP | C_STOP,
    ['>'] = C_SEP | C_STOP,
    ['('] = C_SEP | C_STOP,
    [')'] = C_SEP | C_STOP,
    ['['] = C_SEP | C_STOP,
    [']'] = C_SEP | C_STOP,
    ['{'] = C_SEP | C_STOP,
    ['}'] = C_SEP | C_STOP,
    [','] = C_SEP | C_STOP,
    [';'] = C_SEP | C_STOP,
    ['"'] = C_SEP | C_STOP,
    ['\''] = C_SEP | C_STOP,
    ['0'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['1'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['2'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['3'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['4'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['5'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['6'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['7'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['8'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['9'] = C_DIGIT | C_LOCAL | C_DOMAIN,
    ['a'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['b'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['c'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['d'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['e'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['f'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['g'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['h'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['i'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['j'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['k'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['l'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['m'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['n'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['o'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['p'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['q'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['r'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['s'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['t'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['u'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['v'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['w'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['x'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['y'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['z'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['A'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['B'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['C'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['D'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['E'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['F'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['G'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['H'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['I'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['J'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['K'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['L'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['M'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['N'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['O'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['P'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['Q'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['R'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['S'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['T'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['U'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['V'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['W'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['X'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['Y'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['Z'] = C_LETTER | C_LOCAL | C_DOMAIN,
    ['.'] = C_JOINER | C_LOCAL | C_DOMAIN,
    ['-'] = C_JOINER | C_LOCAL | C_DOMAIN,
    ['_'] = C_JOINER | C_LOCAL,
    [':'] = C_JOINER,
    ['!'] = C_LOCAL,
    ['#'] = C_LOCAL,
    ['$'] = C_LOCAL,
    ['%'] = C_LOCAL,
    ['&'] = C_LOCAL,
    ['*'] = C_LOCAL,
    ['+'] = C_LOCAL,
    ['/'] = C_LOCAL,
    ['='] = C_LOCAL,
    ['?'] = C_LOCAL,
    ['^'] = C_LOCAL,
    ['`'] = C_LOCAL,
    ['|'] = C_LOCAL,
    ['~'] = C_LOCAL,
};

static bool
is_digit(unsigned char c)
{
	return cls[c] & C_DIGIT;
}

static bool
is_alnum(unsigned char c)
{
	return cls[c] & (C_DIGIT | C_LETTER);
}

/* "2.0.0" .. "5.999.999": an RFC 3463 status is a fact about the reply, never an id. */
static bool
status_like(const char *s, size_t len)
{
	size_t i = 0, part = 0, digits = 0;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	for (i = 2, part = 1; i < len; i++) {
		if (is_digit((unsigned char)s[i])) {
			if (++digits > 3)
				return false;
		} else if (s[i] == '.' && digits > 0 && part == 1) {
			part = 2;
			digits = 0;
		} else {
			return false;
		}
	}
	return part == 2 && digits > 0;
}

/* Is a compound of len octets, with these counts of digits, letters and alnum runs, an id? */
static bool
id_like(const char *s, size_t len, size_t digits, size_t letters, size_t parts)
{
	if (digits == 0 || status_like(s, len))
		return false;
	if (letters == 0)
		return digits >= 5 || parts >= 4;
	return len >= 12 && digits >= 4;
}

/* Copies the word w[0..len) to out with its id-like compounds masked; returns octets written
 * (never more than len). One pass: a compound is copied as it is scanned, and replaced by '#'
 * at its end if it turns out to be an id. */
static size_t
mask_word(const char *w, size_t len, char *out)
{
	size_t i = 0, o = 0;

	while (i < len) {
		size_t s = i, so = o, digits = 0, letters = 0, parts = 0;

		if (!is_alnum((unsigned char)w[i])) {
			out[o++] = w[i++];
			continue;
		}
		/* The compound: alnum runs joined by runs of joiners. */
		for (;;) {
			size_t j;

			parts++;
			for (; i < len; i++) {
				unsigned char k = cls[(unsigned char)w[i]];

				if (!(k & (C_DIGIT | C_LETTER)))
					break;
				digits += (k & C_DIGIT) != 0;
				letters += (k & C_LETTER) != 0;
				out[o++] = w[i];
			}
			for (j = i; j < len && (cls[(unsigned char)w[j]] & C_JOINER); j++)
				;
			if (j == i || j == len || !is_alnum((unsigned char)w[j]))
				break;
			memcpy(out + o, w + i, j - i);
			o += j - i;
			i = j;
		}
		if (id_like(w + s, i - s, digits, letters, parts)) {
			o = so;
			out[o++] = '#';
		}
	}
	return o;
}

/* Copies a word with its addresses replaced by "x@x" and the rest masked by mask_word(); an
 * address keeps what surrounds it in the word ("<a@b>:", "(a@b:blocked)", "mailto:a@b"). */
static size_t
norm_word(const char *w, size_t len, char *out)
{
	size_t o = 0, pos = 0;
	const char *at;

	while (pos < len && (at = memchr(w + pos, '@', len - pos)) != NULL) {
		size_t a = (size_t)(at - w), ls = a, de = a + 1;

		while (ls > pos && (cls[(unsigned char)w[ls - 1]] & C_LOCAL))
			ls--;
		while (de < len && (cls[(unsigned char)w[de]] & C_DOMAIN))
			de++;
		/* "a@example.com." ends a sentence: the dot is not the domain's. */
		while (de > a + 1 && (w[de - 1] == '.' || w[de - 1] == '-'))
			de--;
		if (ls < a && de > a + 1) {
			/* "a@b" is the shortest address, so this never grows the text. */
			o += mask_word(w + pos, ls - pos, out + o);
			memcpy(out + o, "x@x", 3);
			o += 3;
			pos = de;
		} else {
			o += mask_word(w + pos, a + 1 - pos, out + o);
			pos = a + 1;
		}
	}
	return o + mask_word(w + pos, len - pos, out + o);
}

size_t
classify_normalize(const char *text, char *out)
{
	size_t i = 0, o = 0;
	bool space = false;

	/* Bounded by CLASSIFY_TEXT_MAX as well as by the NUL: no strlen() of a text that may be
	 * long, and never more output than out holds. */
	while (i < CLASSIFY_TEXT_MAX && text[i] != '\0') {
		unsigned char c = (unsigned char)text[i];
		size_t w;
		bool at = false;

		if (cls[c] & C_SPACE) {
			space = o > 0;
			i++;
			continue;
		}
		if (space) {
			out[o++] = ' ';
			space = false;
		}
		if (cls[c] & C_SEP) {
			out[o++] = (char)c;
			i++;
			continue;
		}
		for (w = i; w < CLASSIFY_TEXT_MAX && !(cls[(unsigned char)text[w]] & C_STOP); w++)
			at |= text[w] == '@';
		o += at ? norm_word(text + i, w - i, out + o) : mask_word(text + i, w - i, out + o);
		i = w;
	}
	out[o] = '\0';
	return o;
}
