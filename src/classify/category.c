/* category.c - category and action names, as rules files, logs and metrics spell them. */
#include <string.h>

#include "classify/classify.h"
#include "core/core.h"

/* The names are PowerMTA's bounce categories, which the operators we replace already have in
 * their log pipelines and dashboards. */
static const char *const category_names[CLASSIFY_CATEGORY_COUNT] = {
    [CLASSIFY_OTHER] = "other",
    [CLASSIFY_BAD_MAILBOX] = "bad-mailbox",
    [CLASSIFY_BAD_DOMAIN] = "bad-domain",
    [CLASSIFY_INACTIVE_MAILBOX] = "inactive-mailbox",
    [CLASSIFY_QUOTA_ISSUES] = "quota-issues",
    [CLASSIFY_SPAM_RELATED] = "spam-related",
    [CLASSIFY_POLICY_RELATED] = "policy-related",
    [CLASSIFY_CONTENT_RELATED] = "content-related",
    [CLASSIFY_VIRUS_RELATED] = "virus-related",
    [CLASSIFY_ROUTING_ERRORS] = "routing-errors",
    [CLASSIFY_RELAYING_ISSUES] = "relaying-issues",
    [CLASSIFY_NO_ANSWER_FROM_HOST] = "no-answer-from-host",
    [CLASSIFY_BAD_CONNECTION] = "bad-connection",
    [CLASSIFY_PROTOCOL_ERRORS] = "protocol-errors",
    [CLASSIFY_DNS_FAILURE] = "dns-failure",
    [CLASSIFY_AUTH_FAILED] = "auth-failed",
    [CLASSIFY_RATE_LIMITED] = "rate-limited",
    [CLASSIFY_MESSAGE_EXPIRED] = "message-expired",
};

static const char *const action_names[] = {
    [CLASSIFY_TRANSIENT] = "transient",
    [CLASSIFY_PERMANENT] = "permanent",
    [CLASSIFY_SUPPRESS] = "suppress",
};

const char *
classify_category_name(enum classify_category c)
{
	return (unsigned)c < CLASSIFY_CATEGORY_COUNT ? category_names[c] : "?";
}

int
classify_category_parse(const char *name, enum classify_category *out)
{
	for (unsigned i = 0; i < CLASSIFY_CATEGORY_COUNT; i++) {
		if (strcmp(name, category_names[i]) == 0) {
			*out = (enum classify_category)i;
			return 0;
		}
	}
	return -1;
}

const char *
classify_action_name(enum classify_action a)
{
	return (unsigned)a < nitems(action_names) ? action_names[a] : "?";
}
