/* policy.c - who gets a DSN: RFC 3461 NOTIFY, and no DSN to a null sender. */
#include "bounce/bounce.h"
#include "smtp/smtp.h"
#include "spool/spool.h"

const char *
dsn_action_name(enum dsn_action action)
{
	switch (action) {
	case DSN_FAILED:
		return "failed";
	case DSN_DELAYED:
		return "delayed";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_RELAYED:
		return "relayed";
	case DSN_EXPANDED:
		return "expanded";
	}
	return "?";
}

bool
dsn_notify_wants(unsigned notify, enum dsn_action action)
{
	/* RFC 3461 §4.1: NEVER stands alone and wins; without NOTIFY the MTA behaves as if
	 * FAILURE,DELAY had been given. */
	if (notify & SMTP_NOTIFY_NEVER)
		return false;
	if (notify == 0)
		notify = SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY;
	switch (action) {
	case DSN_FAILED:
		return (notify & SMTP_NOTIFY_FAILURE) != 0;
	case DSN_DELAYED:
		return (notify & SMTP_NOTIFY_DELAY) != 0;
	case DSN_DELIVERED:
	case DSN_RELAYED: /* §5.2.2: "relayed" is the success a non-DSN hop lets us report */
	case DSN_EXPANDED:
		return (notify & SMTP_NOTIFY_SUCCESS) != 0;
	}
	return false;
}

enum dsn_to
dsn_route(const struct envelope *env, size_t rcpt, enum dsn_action action, bool have_postmaster)
{
	unsigned notify;

	if (env == NULL || rcpt >= env->nrcpt)
		return DSN_TO_NOBODY;
	notify = env->rcpt[rcpt].notify;
	if (env->sender == NULL || env->sender[0] == '\0') {
		/* Mail from the null sender is usually a DSN itself: answering it could loop
		 * between two MTAs forever (RFC 3461 §6.1, RFC 5321 §4.5.5). The postmaster hears
		 * of a failure, once, and the DSN about it goes nowhere else. */
		if (action == DSN_FAILED && have_postmaster && !(notify & SMTP_NOTIFY_NEVER))
			return DSN_TO_POSTMASTER;
		return DSN_TO_NOBODY;
	}
	return dsn_notify_wants(notify, action) ? DSN_TO_SENDER : DSN_TO_NOBODY;
}
