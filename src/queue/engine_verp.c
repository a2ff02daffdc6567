/* engine_verp.c - VERP return paths (docs/feedback.md): with verp.domain set, every message
 * that has a sender goes out with MAIL FROM:<prefix+TOKEN@domain>, a token per recipient
 * naming the queue id, the recipient's index in the envelope and the message's tenant, so
 * that a bounce or complaint arriving days later at the bounce listener is tied to them.
 *
 * The cost: a return path per recipient means a transaction per recipient. A message to 50
 * recipients at one destination takes 50 MAIL/RCPT/DATA exchanges on the connection instead
 * of one, and its content crosses the network 50 times. That is the price of knowing which
 * recipient a bounce is about when the receiver does not say (plain bounces, redacted
 * complaints); transactional mail, mostly to one recipient, pays nothing.
 *
 * DSNs and other mail with the null sender keep <> (RFC 5321 §4.5.5: nothing may answer
 * them), and DSNs that Drover writes still go to the original sender, kept in the envelope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/core.h"
#include "feedback/feedback.h"
#include "queue/engine_internal.h"

struct engine_verp {
	struct feedback_verp_keys keys;
	char domain[SMTP_DOMAIN_MAX + 1];
};

int
engine_verp_init(struct queue_engine *e, char *err, size_t errlen)
{
	const struct config *cfg = e->cfg;
	struct engine_verp *v;
	char why[256];

	if (cfg->verp.domain == NULL)
		return 0;
	v = xcalloc(1, sizeof(*v));
	/* conf checked the same bounds: this fails only if the two disagree. */
	if (feedback_verp_keys_init(&v->keys, cfg->verp.prefix, cfg->verp.secret,
	                            cfg->verp.previous_secret, why, sizeof(why)) < 0 ||
	    strlcpy_s(v->domain, cfg->verp.domain, sizeof(v->domain)) >= sizeof(v->domain)) {
		snprintf(err, errlen, "delivery: verp: %s", why);
		feedback_verp_keys_wipe(&v->keys);
		free(v);
		return -1;
	}
	e->verp = v;
	log_info("delivery: VERP return paths %s+TOKEN@%s (one transaction per recipient)",
	         v->keys.prefix, v->domain);
	return 0;
}

void
engine_verp_free(struct queue_engine *e)
{
	if (e->verp == NULL)
		return;
	feedback_verp_keys_wipe(&e->verp->keys);
	free(e->verp);
	e->verp = NULL;
}

bool
engine_verp_slice(struct job *j)
{
	const struct engine_verp *v = j->e->verp;
	const struct envelope *env = j->env;
	char path[FEEDBACK_VERP_ADDR_MAX], *text;
	size_t *off, len = 0, cap = 0, failed = 0;
	char *buf = NULL;

	if (v == NULL || env->sender == NULL || env->sender[0] == '\0' || j->nr == 0)
		return false;
	/* Each path is encoded once, appended to buf (offsets kept), then copied after the
	 * transactions in the same allocation: job_free() frees j->txn and every path with it. */
	off = xcalloc(j->nr, sizeof(*off));
	for (size_t k = 0; k < j->nr; k++) {
		size_t i = j->ridx[k], n;

		if (feedback_verp_encode(&v->keys, j->id, (uint32_t)i, env->rcpt[i].address,
		                         env->tenant, v->domain, path, sizeof(path)) < 0) {
			/* An address or tenant the token cannot carry: this copy goes with the
			 * original sender, and its bounce comes back there. */
			path[0] = '\0';
			failed++;
		}
		n = strlen(path) + 1;
		if (len + n > cap) {
			cap = (len + n) * 2;
			buf = xrealloc(buf, cap);
		}
		memcpy(buf + len, path, n);
		off[k] = len;
		len += n;
	}
	if (failed > 0)
		log_warn("delivery: message %s: %zu of %zu recipients at %s without a VERP return "
		         "path (tenant \"%.80s\" longer than %d octets, or an address too long): "
		         "sent from <%s>",
		         j->id, failed, j->nr, j->domain, env->tenant != NULL ? env->tenant : "",
		         FEEDBACK_TENANT_MAX, env->sender);
	j->ntxn = j->nr;
	j->txn = xcalloc(1, j->nr * sizeof(*j->txn) + len);
	text = (char *)(j->txn + j->nr);
	memcpy(text, buf, len);
	for (size_t k = 0; k < j->nr; k++)
		j->txn[k] = (struct delivery_message){
		    .env = j->env,
		    .rcpt = j->ridx + k,
		    .nrcpt = 1,
		    .body = j->body,
		    .arg = j,
		    .return_path = text[off[k]] != '\0' ? text + off[k] : NULL,
		};
	free(buf);
	free(off);
	return true;
}
