/* tls.c - the SMTP server's TLS: certificates chosen by SNI, STARTTLS (RFC 3207) and implicit
 * TLS (RFC 8314) on the sessions' own sockets; each reload reads the certificates again.
 *
 * One SSL_CTX per tls_certificate section, all with the same protocol settings (TLS 1.2 at
 * least by default, no compression, no renegotiation, server cipher preference). The first
 * is every session's default; the servername callback moves a session to the context whose
 * certificate names the host the client asked for (exact, or a "*." wildcard over one label).
 *
 * A reload builds a whole new server (a new configuration generation); sessions keep the
 * context they started with (OpenSSL counts the references), so a bad file on disk never
 * breaks a handshake in progress, and a generation whose files cannot be read shares the one
 * in use (tls_server_ref) when its certificate settings are the same.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ingress/internal.h"

#define TLS_NAMES_MAX 64 /* names kept per certificate (SAN entries) */

struct tls_cert {
	SSL_CTX *ctx;
	char *names[TLS_NAMES_MAX];
	size_t nnames;
};

struct tls_set {
	struct tls_cert *certs;
	size_t ncerts;
};

struct tls_server {
	_Atomic unsigned refs;    /* generations sharing it (tls_server_ref) */
	const struct config *cfg; /* a reference: the files' names */
	pthread_mutex_t lock;
	struct tls_set *set; /* under lock */
};

static void
openssl_error(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s: %s", what, e != 0 ? buf : "unknown error");
	ERR_clear_error();
}

static void
set_free(struct tls_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->ncerts; i++) {
		SSL_CTX_free(set->certs[i].ctx);
		for (size_t j = 0; j < set->certs[i].nnames; j++)
			free(set->certs[i].names[j]);
	}
	free(set->certs);
	free(set);
}

/* The DNS names of the certificate (subjectAltName; the CN only when there is none, as
 * RFC 6125 says), lower case. */
static void
cert_names(struct tls_cert *c, X509 *x)
{
	GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

	if (san != NULL) {
		for (int i = 0; i < sk_GENERAL_NAME_num(san) && c->nnames < TLS_NAMES_MAX; i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);

			if (g->type == GEN_DNS)
				c->names[c->nnames++] =
				    xstrndup((const char *)ASN1_STRING_get0_data(g->d.dNSName),
				             (size_t)ASN1_STRING_length(g->d.dNSName));
		}
		GENERAL_NAMES_free(san);
	} else {
		char cn[256];

		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
		                              sizeof(cn)) > 0)
			c->names[c->nnames++] = xstrdup(cn);
	}
	for (size_t i = 0; i < c->nnames; i++)
		for (char *p = c->names[i]; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
}

static bool
name_matches(const char *pattern, const char *host)
{
	if (strcasecmp(pattern, host) == 0)
		return true;
	/* "*.example.com" covers one label: "mx.example.com", not "example.com" or "a.b...". */
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(host, '.');

		return dot != NULL && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return false;
}

static int on_servername(SSL *ssl, int *alert, void *arg);

static SSL_CTX *
context_new(const struct config *cfg, const struct tls_certificate_conf *cc, struct tls_cert *c,
            struct tls_server *server, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char what[1200];

	if (ctx == NULL) {
		openssl_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, (int)cfg->tls_min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Writes of part of a buffer, from a buffer that moves between calls: the session's
	 * output is an evbuffer drained as the socket takes it. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	if (cfg->tls_ciphers != NULL && SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		snprintf(what, sizeof(what), "tls.ciphers \"%s\"", cfg->tls_ciphers);
		openssl_error(err, errlen, what);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cc->certificate) != 1) {
		snprintf(what, sizeof(what), "%s: tls_certificate \"%s\".certificate %s", cc->where,
		         cc->name, cc->certificate);
		openssl_error(err, errlen, what);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cc->key, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "%s: tls_certificate \"%s\".key %s", cc->where,
		         cc->name, cc->key);
		openssl_error(err, errlen, what);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof(what),
		         "%s: tls_certificate \"%s\": the key does not belong to the certificate",
		         cc->where, cc->name);
		openssl_error(err, errlen, what);
		goto fail;
	}
	cert_names(c, SSL_CTX_get0_certificate(ctx));
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, server);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static struct tls_set *
set_load(struct tls_server *server, char *err, size_t errlen)
{
	const struct config *cfg = server->cfg;
	struct tls_set *set = xcalloc(1, sizeof(*set));

	set->certs =
	    xcalloc(cfg->ntls_certificates ? cfg->ntls_certificates : 1, sizeof(*set->certs));
	for (size_t i = 0; i < cfg->ntls_certificates; i++) {
		struct tls_cert *c = &set->certs[set->ncerts];

		c->ctx = context_new(cfg, &cfg->tls_certificates[i], c, server, err, errlen);
		if (c->ctx == NULL) {
			set_free(set);
			return NULL;
		}
		set->ncerts++;
	}
	return set;
}

/* SNI: move the session to the certificate for the name asked, if another one has it. */
static int
on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_server *server = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	if (host == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	pthread_mutex_lock(&server->lock);
	for (size_t i = 0; i < server->set->ncerts; i++) {
		struct tls_cert *c = &server->set->certs[i];

		for (size_t j = 0; j < c->nnames; j++) {
			if (name_matches(c->names[j], host)) {
				if (SSL_get_SSL_CTX(ssl) != c->ctx)
					SSL_set_SSL_CTX(ssl, c->ctx);
				pthread_mutex_unlock(&server->lock);
				return SSL_TLSEXT_ERR_OK;
			}
		}
	}
	pthread_mutex_unlock(&server->lock);
	/* No certificate names it: the default one answers (the client decides). */
	return SSL_TLSEXT_ERR_OK;
}

struct tls_server *
tls_server_new(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_server *server;

	if (cfg->ntls_certificates == 0)
		return NULL;
	server = xcalloc(1, sizeof(*server));
	atomic_init(&server->refs, 1);
	server->cfg = config_ref(cfg);
	pthread_mutex_init(&server->lock, NULL);
	server->set = set_load(server, err, errlen);
	if (server->set == NULL) {
		tls_server_free(server);
		return NULL;
	}
	return server;
}

struct tls_server *
tls_server_ref(struct tls_server *server)
{
	atomic_fetch_add(&server->refs, 1);
	return server;
}

void
tls_server_free(struct tls_server *server)
{
	if (server == NULL || atomic_fetch_sub(&server->refs, 1) > 1)
		return;
	if (server->set != NULL)
		set_free(server->set); /* sessions hold their own references to the contexts */
	pthread_mutex_destroy(&server->lock);
	config_unref(server->cfg);
	free(server);
}

SSL *
tls_server_session(struct tls_server *server, int fd)
{
	SSL *ssl;

	pthread_mutex_lock(&server->lock);
	ssl = SSL_new(server->set->certs[0].ctx);
	pthread_mutex_unlock(&server->lock);
	if (ssl == NULL)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

int
tls_check_config(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_server *server;

	if (cfg->ntls_certificates == 0)
		return 0;
	server = tls_server_new(cfg, err, errlen);
	if (server == NULL)
		return -1;
	tls_server_free(server);
	return 0;
}
