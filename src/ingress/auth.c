/* auth.c - SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, and the limits on who may
 * send how much: the users file, failed attempts per client address, message rates.
 *
 * Passwords are checked by the access component's verifier threads (crypt is slow on
 * purpose: yescrypt costs ~100 ms), never on the event loop: the session waits in S_AUTH,
 * reading nothing, and the answer comes back through the worker's mailbox. A failure is
 * answered after a delay that grows with each failure from the same address, and enough of
 * them block the address (421 at connect) for a while: a person who mistyped loses a second,
 * a guesser its whole run.
 *
 * The SASL exchange reads its responses as lines through the command reader: while
 * auth_step is set, a line is a response, never a command. Passwords are wiped from every
 * buffer this file owns once used, and never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "access/access.h"
#include "ingress/internal.h"

/* ---- Base64 (RFC 4648), strict: SASL responses are short and must be exact ---- */

/* Decodes text into out (at least len * 3 / 4 + 1 octets, NUL-terminated, may hold NULs).
 * Returns the length, or -1 if it is not base64. */
static ssize_t
b64_decode(const char *text, size_t len, unsigned char *out)
{
	size_t o = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;

		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)text[i + k];

			if (c == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad > 0 || (v[k] = base64_value(c)) < 0) {
				return -1;
			}
		}
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] = (unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (unsigned char)((v[2] & 0x3) << 6 | v[3]);
	}
	out[o] = '\0';
	return (ssize_t)o;
}

/* ---- The server-wide state (ingress_start, SIGHUP) ---- */

int
auth_server_init(struct ingress *in, char *err, size_t errlen)
{
	const struct auth_conf *a = &in->cfg->auth;
	struct access_authfail_params p = {
	    .delay_first_us = ACCESS_AUTHFAIL_DELAY_FIRST_US,
	    .delay_max_us = ACCESS_AUTHFAIL_DELAY_MAX_US,
	    .block_after = a->failures_max,
	    .window_us = a->failure_window_s * 1000000,
	    .block_us = a->block_s * 1000000,
	};
	struct access_rate user = {a->user_rate.count, a->user_rate.per_s * 1000000,
	                           a->user_rate.count};
	struct access_rate client = {a->client_rate.count, a->client_rate.per_s * 1000000,
	                             a->client_rate.count};

	if (in->gen->users != NULL)
		in->verifier = access_verifier_new(0);
	in->authfail = access_authfail_new(&p);
	in->user_limiter = access_limiter_new(&user, 0);
	in->client_limiter = access_limiter_new(&client, 0);
	return 0;
}

/* A reload: the message rates of users and clients change; what each has used stays. (The
 * failed-AUTH blocking keeps the settings it started with: docs/operations.md.) */
void
auth_server_set_rates(struct ingress *in, const struct config *cfg)
{
	const struct auth_conf *a = &cfg->auth;
	struct access_rate user = {a->user_rate.count, a->user_rate.per_s * 1000000,
	                           a->user_rate.count};
	struct access_rate client = {a->client_rate.count, a->client_rate.per_s * 1000000,
	                             a->client_rate.count};

	access_limiter_set_rate(in->user_limiter, &user);
	access_limiter_set_rate(in->client_limiter, &client);
}

void
auth_server_free(struct ingress *in)
{
	access_verifier_free(in->verifier);
	access_authfail_free(in->authfail);
	access_limiter_free(in->user_limiter);
	access_limiter_free(in->client_limiter);
}

/* ---- Offering ---- */

bool
auth_offered(const struct session *s)
{
	return s->gen->users != NULL && s->auth_user == NULL &&
	       (s->ssl != NULL || s->listener->auth_without_tls);
}

bool
auth_blocked_at_connect(struct session *s)
{
	char key[64];
	uint64_t left;

	if (access_client_key((const struct sockaddr *)&s->peer, key, sizeof(key)) < 0)
		return false;
	if (!access_authfail_blocked(s->worker->ingress->authfail, key, time_mono_us(), &left))
		return false;
	session_reject_event(s, "CONNECT", NULL, "421 4.7.0 blocked after failed authentications");
	session_reply(s,
	              "421 4.7.0 %s Error: too many failed authentications from [%s], try again "
	              "in %llu seconds",
	              s->cfg->hostname, s->peer_ip, (unsigned long long)(left / 1000000 + 1));
	return true;
}

/* ---- The exchange ---- */

static void
auth_event(struct session *s, const char *mechanism, const char *user, const char *result)
{
	json_t *f = json_object();

	json_object_set_new(f, "session", json_integer((json_int_t)s->id));
	json_object_set_new(f, "client_ip", json_string(s->peer_ip));
	json_object_set_new(f, "listener", json_string(s->listener->name));
	json_object_set_new(f, "mechanism", json_string(mechanism));
	json_object_set_new(f, "user", user != NULL ? json_string(user) : json_null());
	json_object_set_new(f, "result", json_string(result));
	json_object_set_new(f, "tls", json_boolean(s->ssl != NULL));
	eventlog_write(s->worker->ingress->log, "Authentication", f);
}

static void
auth_clear(struct session *s)
{
	if (s->auth.password != NULL) {
		explicit_bzero(s->auth.password, strlen(s->auth.password));
		free(s->auth.password);
	}
	free(s->auth.name);
	s->auth.password = s->auth.name = NULL;
	s->auth.step = AUTH_STEP_NONE;
}

void
auth_session_end(struct session *s)
{
	if (s->auth.pending != NULL)
		access_verify_cancel(s->auth.pending);
	s->auth.pending = NULL;
	if (s->auth.delay != NULL)
		event_free(s->auth.delay);
	s->auth.delay = NULL;
	auth_clear(s);
}

/* The answer goes out (now, or after the failure delay), and the session reads again. */
static void
auth_answer(struct session *s, const char *reply, bool close)
{
	s->state = S_READY;
	session_reply(s, "%s", reply);
	if (close)
		session_close_after_reply(s);
	session_resume(s);
	session_flush(s); /* from the loop: nobody else will (a closing session is not resumed) */
}

static void
on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	session_ref(s);
	event_free(s->auth.delay); /* one timer per failure: the next one makes its own */
	s->auth.delay = NULL;
	auth_answer(s, "535 5.7.8 Error: authentication credentials invalid", false);
	session_unref(s);
}

static void
on_verified(void *arg, enum access_verify_result r)
{
	struct session *s = arg;
	struct ingress *in = s->worker->ingress;
	const char *mech = s->auth.mechanism;
	char key[64];

	s->auth.pending = NULL;
	session_ref(s);
	access_client_key((const struct sockaddr *)&s->peer, key, sizeof(key));
	if (r == ACCESS_VERIFY_OK) {
		auth_event(s, mech, s->auth.name, "ok");
		access_authfail_success(in->authfail, key, time_mono_us());
		s->auth_user = s->auth.name;
		s->auth.name = NULL;
		s->relay_allowed = true;
		auth_clear(s);
		auth_answer(s, "235 2.7.0 Authentication successful", false);
	} else if (r == ACCESS_VERIFY_TEMPFAIL) {
		auth_event(s, mech, s->auth.name, "tempfail");
		auth_clear(s);
		auth_answer(s, "454 4.7.0 Error: temporary authentication failure, try again later",
		            false);
	} else {
		struct access_authfail_verdict v =
		    access_authfail_record(in->authfail, key, time_mono_us());
		struct timeval tv = {(time_t)(v.delay_us / 1000000),
		                     (suseconds_t)(v.delay_us % 1000000)};

		/* "no-user" and "bad" are logged apart for the operator, answered alike. */
		auth_event(s, mech, s->auth.name, access_verify_result_name(r));
		auth_clear(s);
		if (v.blocked) {
			session_reject_event(s, "AUTH", NULL,
			                     "421 4.7.0 blocked after failed authentications");
			auth_answer(s,
			            "421 4.7.0 Error: too many failed authentications, try again "
			            "later",
			            true);
		} else {
			s->auth.delay = evtimer_new(s->worker->base, on_delay, s);
			evtimer_add(s->auth.delay, &tv);
		}
	}
	session_unref(s);
}

/* PLAIN: [authzid] NUL authcid NUL passwd (RFC 4616); an authzid other than the authcid is
 * refused (no user may act as another). */
static void
auth_plain(struct session *s, const unsigned char *resp, size_t len)
{
	const unsigned char *nul1 = memchr(resp, '\0', len), *nul2;

	if (nul1 == NULL ||
	    (nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - resp))) == NULL) {
		auth_clear(s);
		auth_answer(s, "501 5.5.2 Error: malformed PLAIN response", false);
		return;
	}
	if (nul1 != resp && ((size_t)(nul1 - resp) != (size_t)(nul2 - nul1 - 1) ||
	                     memcmp(resp, nul1 + 1, (size_t)(nul1 - resp)) != 0)) {
		auth_clear(s);
		auth_answer(s, "535 5.7.8 Error: authorization identity refused", false);
		return;
	}
	s->auth.name = xstrndup((const char *)nul1 + 1, (size_t)(nul2 - nul1 - 1));
	s->auth.password = xstrndup((const char *)nul2 + 1, len - (size_t)(nul2 + 1 - resp));
}

static void
auth_check(struct session *s)
{
	struct ingress *in = s->worker->ingress;
	struct access_users *users;

	if (s->auth.name == NULL || s->auth.password == NULL)
		return;
	s->auth.step = AUTH_STEP_NONE;
	s->state = S_AUTH;
	users = s->gen->users;
	s->auth.pending =
	    access_verify(in->verifier, users, s->auth.name, s->auth.password,
	                  strlen(s->auth.password), s->worker->mailbox, on_verified, s);
	explicit_bzero(s->auth.password, strlen(s->auth.password));
}

/* One SASL response (a line, or AUTH's initial response). */
static void
auth_response(struct session *s, const char *line, size_t len)
{
	unsigned char *buf;
	ssize_t n;

	if (len == 1 && line[0] == '*') {
		auth_clear(s);
		auth_answer(s, "501 5.0.0 Error: authentication cancelled", false);
		return;
	}
	buf = xmalloc(len / 4 * 3 + 4);
	n = b64_decode(line, len, buf);
	if (n < 0) {
		free(buf);
		auth_clear(s);
		auth_answer(s, "501 5.5.2 Error: cannot decode the response (base64)", false);
		return;
	}
	switch (s->auth.step) {
	case AUTH_STEP_PLAIN:
		auth_plain(s, buf, (size_t)n);
		break;
	case AUTH_STEP_LOGIN_USER:
		s->auth.name = xstrndup((const char *)buf, (size_t)n);
		s->auth.step = AUTH_STEP_LOGIN_PASSWORD;
		session_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		break;
	case AUTH_STEP_LOGIN_PASSWORD:
		s->auth.password = xstrndup((const char *)buf, (size_t)n);
		break;
	default:
		break;
	}
	explicit_bzero(buf, (size_t)n);
	free(buf);
	auth_check(s);
}

void
auth_line(struct session *s, char *line, size_t len)
{
	auth_response(s, line, len);
	explicit_bzero(line, len);
}

void
cmd_auth(struct session *s, const struct smtp_command *cmd)
{
	char mech[32], *arg;
	const char *sp = strchr(cmd->args, ' ');
	size_t mlen = sp != NULL ? (size_t)(sp - cmd->args) : strlen(cmd->args);

	if (s->gen->users == NULL) {
		session_error(s, "502 5.5.1 Error: AUTH is not offered here");
		return;
	}
	if (s->auth_user != NULL) {
		session_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (!s->esmtp) {
		session_error(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->state != S_READY) {
		session_error(s, "503 5.5.1 Error: AUTH is not allowed in a mail transaction");
		return;
	}
	if (!auth_offered(s)) {
		session_error(s, "538 5.7.11 Error: encryption required for authentication: use "
		                 "STARTTLS first");
		return;
	}
	if (mlen == 0 || mlen >= sizeof(mech)) {
		session_error(s, "501 5.5.4 Error: AUTH needs a mechanism");
		return;
	}
	memcpy(mech, cmd->args, mlen);
	mech[mlen] = '\0';
	arg = sp != NULL ? (char *)sp + 1 : NULL;
	if (strcasecmp(mech, "PLAIN") == 0) {
		s->auth.mechanism = "PLAIN";
		s->auth.step = AUTH_STEP_PLAIN;
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		s->auth.mechanism = "LOGIN";
		s->auth.step = AUTH_STEP_LOGIN_USER;
	} else {
		session_error(s, "504 5.5.4 Error: unrecognized authentication type");
		return;
	}
	if (arg != NULL && strcmp(arg, "=") == 0) {
		auth_response(s, "", 0); /* RFC 4954 §4: "=" is an empty initial response */
	} else if (arg != NULL) {
		auth_response(s, arg, strlen(arg));
		explicit_bzero(arg, strlen(arg));
	} else {
		session_reply(s, s->auth.step == AUTH_STEP_PLAIN ? "334 " : "334 VXNlcm5hbWU6");
	}
}

/* ---- Rates (at MAIL) ---- */

int
auth_rate_check(struct session *s, char *reply, size_t size)
{
	struct ingress *in = s->worker->ingress;
	uint64_t now = time_mono_us(), wait = 0;
	char key[64];

	if (s->auth_user != NULL && !access_rate_take(in->user_limiter, s->auth_user, now, &wait)) {
		snprintf(
		    reply, size,
		    "450 4.7.1 Error: message rate limit of user %s reached, try again in %llu "
		    "seconds",
		    s->auth_user, (unsigned long long)(wait / 1000000 + 1));
		return -1;
	}
	if (access_client_key((const struct sockaddr *)&s->peer, key, sizeof(key)) == 0 &&
	    !access_rate_take(in->client_limiter, key, now, &wait)) {
		snprintf(reply, size,
		         "450 4.7.1 Error: message rate limit of [%s] reached, try again in %llu "
		         "seconds",
		         s->peer_ip, (unsigned long long)(wait / 1000000 + 1));
		return -1;
	}
	return 0;
}

/* May the authenticated user send as this domain? Users without domain limits may, even
 * without a domain. */
bool
auth_may_send_from(struct session *s, const char *domain)
{
	struct access_users *users;
	const struct access_user *u;
	bool ok;

	if (s->auth_user == NULL)
		return true;
	/* No domain ("" or NULL): only a user without domain limits may. */
	if (domain == NULL)
		domain = "";
	users = s->gen->users;
	u = access_users_find(users, s->auth_user);
	/* Users are the session's generation's: a reload changes them for new sessions. */
	ok = u == NULL || access_user_may_send_from(u, domain);
	return ok;
}
