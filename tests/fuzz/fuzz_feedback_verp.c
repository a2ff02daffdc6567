/* fuzz_feedback_verp - two things per input. First, the input as an address mail came back
 * to: decoding must answer one of the four statuses and never accept it (no one can make a
 * MAC without the secret). Second, the input as the makings of a token - a queue id (12
 * octets), a recipient index (3), a tenant (its length from the next octet, 0 for none,
 * then its octets) and an address (the rest): encoding must succeed, decoding what it made
 * must give them back whatever the case of its letters (chosen by the input), the address
 * must match its tag (an empty one matches nothing), the tenant its own (and no other name),
 * and a token with one character replaced must be refused. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feedback/feedback.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feedback_verp_keys keys;
	char text[512], qid[FEEDBACK_QUEUE_ID_LEN + 1], rcpt[200], addr[FEEDBACK_VERP_ADDR_MAX],
	    err[128], tenant[FEEDBACK_TENANT_MAX + 2];
	struct feedback_verp v;
	enum feedback_verp_status s;
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1, rlen = 0, tlen = 0, plen, i;
	uint32_t index;
	int len;

	if (feedback_verp_keys_init(&keys, NULL, "fuzz-secret-current-0001",
	                            "fuzz-secret-previous-01", err, sizeof(err)) != 0)
		abort();

	memcpy(text, data, n);
	text[n] = '\0';
	s = feedback_verp_decode(&keys, text, &v);
	if (s == FEEDBACK_VERP_OK || s > FEEDBACK_VERP_MALFORMED)
		abort();

	if (size < 16)
		return 0;
	for (i = 0; i < 12; i++)
		snprintf(qid + 2 * i, 3, "%02x", data[i]);
	index = ((uint32_t)data[12] << 16 | (uint32_t)data[13] << 8 | data[14]);
	for (i = 16; i < size && tlen < data[15] % (FEEDBACK_TENANT_MAX + 1); i++)
		if (data[i] != '\0')
			tenant[tlen++] = (char)data[i];
	tenant[tlen] = '\0';
	for (; i < size && rlen < sizeof(rcpt) - 1; i++)
		if (data[i] != '\0')
			rcpt[rlen++] = (char)data[i];
	rcpt[rlen] = '\0';
	len = feedback_verp_encode(&keys, qid, index, rcpt, tenant, "bounces.example.com", addr,
	                           sizeof(addr));
	if (len <= 0 || (size_t)len != strlen(addr))
		abort();
	/* Change the case of the letters the input's bits say. */
	plen = strlen(keys.prefix) + 1;
	for (i = 0; i < (size_t)len; i++)
		if (data[i % 15] & (1u << (i % 8)))
			addr[i] = (char)toupper((unsigned char)addr[i]);
	if (feedback_verp_decode(&keys, addr, &v) != FEEDBACK_VERP_OK ||
	    strcmp(v.queue_id, qid) != 0 || v.rcpt != index || v.key != 0 || v.version != 2 ||
	    (rlen > 0 && !feedback_verp_rcpt_matches(&keys, &v, rcpt)) ||
	    !feedback_verp_tenant_matches(&keys, &v, tenant))
		abort();
	/* Another name (one octet more) is another tenant. */
	tenant[tlen] = 'x';
	tenant[tlen + 1] = '\0';
	if (feedback_verp_tenant_matches(&keys, &v, tenant))
		abort();
	/* One token character replaced by another of the alphabet. */
	{
		size_t at = plen + data[0] % FEEDBACK_VERP_TOKEN_LEN;
		char c = alphabet[data[1] % 32];

		if (tolower((unsigned char)addr[at]) != c) {
			addr[at] = c;
			if (feedback_verp_decode(&keys, addr, &v) == FEEDBACK_VERP_OK)
				abort();
		}
	}
	return 0;
}
