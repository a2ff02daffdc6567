/* control/inject.h - HTTP injection (POST /api/v1/inject, docs/injection.md): the request as
 * parsed, the substitution of {{name}}, and the messages built from it.
 *
 * Private to the control component. Pure: no I/O, no clock and no randomness of its own (the
 * caller passes the time and a token unique to each message), so the unit tests and the fuzz
 * target run exactly what the server runs. The SMTP side is inject.c.
 */
#ifndef DROVER_CONTROL_INJECT_H
#define DROVER_CONTROL_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Recipients in one request: far more than a platform's batch (KumoMTA's examples send a
 * few thousand); the request's size (control.max_request_size) bounds it first. */
#define INJECT_RECIPIENTS_MAX 100000
/* Fields in content.headers and attachments in content.attachments. */
#define INJECT_HEADERS_MAX     100
#define INJECT_ATTACHMENTS_MAX 100
/* A {{name}}: letters, digits, '_', '-', '.'; longer is not a placeholder, just text. */
#define INJECT_NAME_MAX 64
/* RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF. */
#define INJECT_LINE_MAX 998
/* The reply text kept for a recipient refused before any SMTP (its address syntax). */
#define INJECT_REPLY_MAX 256

/* A growing buffer, NUL-terminated once anything (even nothing) was added; allocation
 * failure is fatal (xmalloc). */
struct inject_buf {
	char *p;
	size_t len, cap;
};
void inject_buf_add(struct inject_buf *, const void *data, size_t len);
void inject_buf_str(struct inject_buf *, const char *s);
void inject_buf_free(struct inject_buf *);

struct inject_mailbox {
	char *email; /* NULL: not given */
	char *name;  /* NULL: none; a template */
};

struct inject_header {
	char *name;
	char *value; /* a template */
};

struct inject_attachment {
	char *content_type; /* "application/pdf"; default application/octet-stream */
	char *file_name;    /* NULL: none */
	unsigned char *data;
	size_t len;
};

struct inject_content {
	char *raw; /* non-NULL: raw RFC 5322 text (a template), else built from the rest */
	size_t raw_len;
	struct inject_mailbox from, reply_to;
	char *subject, *text_body, *html_body; /* templates; NULL: none */
	struct inject_header *headers;
	size_t nheaders;
	struct inject_attachment *attachments;
	size_t nattachments;
};

struct inject_recipient {
	char *email;
	char *name;    /* NULL: none; used in To: when the message is the recipient's alone */
	json_t *subst; /* an object (a reference), NULL: none */
	bool utf8;     /* a non-ASCII address: the transaction needs SMTPUTF8 */
	/* Refused before any SMTP, as RCPT would refuse it: code 0 if the address is fine. */
	int code;
	char reply[INJECT_REPLY_MAX]; /* "5.1.3 Error: ..." */
};

struct inject_request {
	char *sender;     /* "" for the null sender <> */
	bool sender_utf8; /* a non-ASCII sender: SMTPUTF8 */
	struct inject_recipient *rcpt;
	size_t nrcpt;
	json_t *subst; /* the global substitutions, an object (a reference), NULL: none */
	struct inject_content content;
	char *stream, *tenant, *campaign; /* X-Drover-* fields; NULL: none */
};

/* The request body. 0, or -1 with the reason for the 400 in err (and *req freed). A
 * recipient with a bad address is not an error: its code and reply say why. */
int inject_request_parse(const json_t *body, struct inject_request *, char *err, size_t errlen);
void inject_request_free(struct inject_request *);

/* The names the content uses ({{name}}), each once: a JSON array (a new reference). */
json_t *inject_names(const struct inject_request *);
/* What makes recipient i's message differ from another's: its values of names (a key;
 * recipients with equal keys get identical content and may share a message). */
void inject_group_key(const struct inject_request *, const json_t *names, size_t i,
                      struct inject_buf *key);

/* Where raw content's header section ends: the start of its empty line, or len. */
size_t inject_raw_header_len(const char *p, size_t len);
/* Appends tpl[0..len) to out with each {{name}} replaced by local's value, else global's,
 * else nothing (an unknown name is no error). In a header (header true), a value with CR or
 * LF is refused: -1 with err. Values are inserted as they are, unescaped. */
int inject_render(struct inject_buf *out, const char *tpl, size_t len, const json_t *local,
                  const json_t *global, bool header, char *err, size_t errlen);

struct inject_build_opts {
	const char *hostname; /* the Message-ID's domain */
	uint64_t now_us;      /* the Date */
	const char *unique;   /* unique to the message: Message-ID and MIME boundaries */
};

/* The message for recipients rcpt[0..n) of req (they share their substitution values): the
 * X-Drover-* fields, then the content: raw, substituted, with CRLF line ends; or built
 * (docs/injection.md, "Built content"). 0, or -1 with err. */
int inject_build(const struct inject_request *, const size_t *rcpt, size_t n,
                 const struct inject_build_opts *, struct inject_buf *out, char *err,
                 size_t errlen);

#endif
