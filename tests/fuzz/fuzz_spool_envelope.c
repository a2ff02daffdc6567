/* fuzz_spool_envelope.c - envelope_decode() on anything: it must never crash or leak, and
 * what it accepts must round-trip: the encoding is canonical, so encode(decode(x)) == x for
 * the current version, and decoding that again gives the same envelope (any version). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool.h"

static int
str_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
envelope_same(const struct envelope *a, const struct envelope *b)
{
	if (strcmp(a->id, b->id) != 0 || !str_same(a->sender, b->sender) ||
	    a->dsn_ret != b->dsn_ret || !str_same(a->envid, b->envid) ||
	    a->body_type != b->body_type || a->smtputf8 != b->smtputf8 ||
	    a->received_us != b->received_us || !str_same(a->client_ip, b->client_ip) ||
	    !str_same(a->helo, b->helo) || !str_same(a->listener, b->listener) ||
	    !str_same(a->protocol, b->protocol) || !str_same(a->auth_user, b->auth_user) ||
	    !str_same(a->headers, b->headers) || a->size != b->size || a->nrcpt != b->nrcpt)
		return 0;
	for (size_t i = 0; i < a->nrcpt; i++) {
		const struct envelope_rcpt *x = &a->rcpt[i], *y = &b->rcpt[i];

		if (!str_same(x->address, y->address) || !str_same(x->orcpt, y->orcpt) ||
		    x->notify != y->notify || x->state != y->state || x->flags != y->flags ||
		    x->attempts != y->attempts || x->next_attempt_us != y->next_attempt_us ||
		    !str_same(x->last_reply, y->last_reply))
			return 0;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope env, again;
	size_t len;
	void *buf;

	if (envelope_decode(data, size, &env) < 0) {
		/* Refused input leaves the envelope cleared. */
		if (env.sender != NULL || env.rcpt != NULL || env.nrcpt != 0)
			abort();
		return 0;
	}
	buf = envelope_encode(&env, &len);
	/* Only the current version (3) is written: older records come back as version 3. */
	if (data[0] == 3 && (len != size || memcmp(buf, data, size) != 0)) {
		fprintf(stderr, "encode(decode(x)) != x\n");
		abort();
	}
	if (envelope_decode(buf, len, &again) < 0 || !envelope_same(&env, &again)) {
		fprintf(stderr, "decode(encode(e)) != e\n");
		abort();
	}
	envelope_clear(&again);
	envelope_clear(&env);
	free(buf);
	return 0;
}
