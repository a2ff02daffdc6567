/* tls.c - the client side of STARTTLS (RFC 3207): the context every connection shares (the
 * CA store, read once; the minimum protocol version), and for one connection the SSL object
 * with the name it sends (SNI) and the name the certificate must carry, the bufferevent
 * filter that encrypts the existing connection, and what the handshake gave.
 *
 * The handshake never fails because of the certificate (SSL_VERIFY_NONE): the verification
 * still runs, and its result is read afterwards (SSL_get_verify_result). So required-verify
 * can say why a certificate was refused ("certificate has expired", "hostname mismatch"),
 * and opportunistic deliveries can log whether theirs would have verified. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "delivery/internal.h"

struct delivery_tls_ctx {
	SSL_CTX *ssl;
	bool cas; /* some CA certificate was loaded: a certificate can verify */
};

static void
openssl_reason(char *buf, size_t size, const char *dflt)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, size, "%s", r != NULL ? r : dflt);
	ERR_clear_error();
}

struct delivery_tls_ctx *
delivery_tls_ctx_new(const struct delivery_tls_options *o, char *err, size_t errlen)
{
	struct delivery_tls_ctx *t;
	SSL_CTX *ssl;
	unsigned min =
	    o != NULL && o->min_version != 0 ? o->min_version : DELIVERY_TLS_DEF_MIN_VERSION;
	char why[256];

	if (min != 12 && min != 13) {
		snprintf(err, errlen, "delivery: TLS minimum version %u: expected 12 or 13", min);
		return NULL;
	}
	ssl = SSL_CTX_new(TLS_client_method());
	if (ssl == NULL) {
		openssl_reason(why, sizeof(why), "unknown error");
		snprintf(err, errlen, "delivery: cannot create a TLS context: %s", why);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ssl, min == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	/* Compression leaks plaintext lengths (CRIME); renegotiation is of no use to SMTP and
	 * has had its own attacks. */
	SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Hundreds of connections mostly wait for replies: their 34 KB of TLS buffers are
	 * given back between records. */
	SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL); /* see the top of this file */

	t = xcalloc(1, sizeof(*t));
	t->ssl = ssl;
	if (o != NULL && o->ca_file != NULL) {
		if (SSL_CTX_load_verify_file(ssl, o->ca_file) != 1) {
			openssl_reason(why, sizeof(why), "no certificate found");
			snprintf(err, errlen,
			         "delivery.tls_ca_file \"%s\": cannot load CA certificates: %s",
			         o->ca_file, why);
			delivery_tls_ctx_free(t);
			return NULL;
		}
		t->cas = true;
		return t;
	}
	/* The system store as one file, read now. Not SSL_CTX_set_default_verify_paths(): its
	 * hashed directory is read certificate by certificate during each verification, which
	 * would be file reads on the event loop. */
	const char *env = getenv(X509_get_default_cert_file_env());
	const char *file = env != NULL && env[0] != '\0' ? env : X509_get_default_cert_file();

	if (SSL_CTX_load_verify_file(ssl, file) == 1) {
		t->cas = true;
	} else {
		openssl_reason(why, sizeof(why), "no certificate found");
		log_warn("delivery: no CA certificates in %s (%s): no server certificate will "
		         "verify (required-verify destinations wait); set delivery.tls_ca_file",
		         file, why);
	}
	return t;
}

void
delivery_tls_ctx_free(struct delivery_tls_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ssl);
	free(t);
}

/* The host's address when it is an IP literal: "192.0.2.1", "[192.0.2.1]",
 * "[IPv6:2001:db8::1]" (a domain literal destination), "2001:db8::1". */
static bool
ip_literal(const char *host, char *buf, size_t size)
{
	unsigned char a[16];
	size_t n = strlen(host);

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
		if (n >= 5 && strncasecmp(host, "ipv6:", 5) == 0) {
			host += 5;
			n -= 5;
		}
	}
	if (n == 0 || n >= size)
		return false;
	memcpy(buf, host, n);
	buf[n] = '\0';
	return inet_pton(AF_INET, buf, a) == 1 || inet_pton(AF_INET6, buf, a) == 1;
}

struct bufferevent *
tls_filter_new(struct delivery_client *c)
{
	const struct target *t = &c->targets[c->cur];
	SSL *ssl = SSL_new(c->tls_ctx->ssl);
	X509_VERIFY_PARAM *param;
	struct bufferevent *bev;
	char ip[INET6_ADDRSTRLEN + 8];

	if (ssl == NULL)
		fatal("delivery: SSL_new: out of memory");
	param = SSL_get0_param(ssl);
	if (ip_literal(t->host, ip, sizeof(ip))) {
		/* RFC 6066 §3: no SNI for an address; the certificate must name the address. */
		X509_VERIFY_PARAM_set1_ip_asc(param, ip);
	} else {
		SSL_set_tlsext_host_name(ssl, t->host);
		/* "*.example.com" covers "mx.example.com", never "m*.example.com" (RFC 6125
		 * §6.4.3 leaves partial wildcards to the client: refuse them). */
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		X509_VERIFY_PARAM_set1_host(param, t->host, 0);
	}
	/* Deferred callbacks: with a filter, adding to the output runs OpenSSL at once, and
	 * its events would otherwise call us back from inside our own writes. */
	bev = bufferevent_openssl_filter_new(c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) /* only out of memory; its cleanup may have freed c->bev */
		fatal("delivery: bufferevent_openssl_filter_new: out of memory");
	/* A server that closes without close_notify (most do, after QUIT) ends the session
	 * normally rather than with an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

void
tls_session_info(struct delivery_client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	struct client_tls *t = &c->tls;
	long vr;

	if (ssl == NULL)
		return;
	t->active = true;
	strlcpy_s(t->version, SSL_get_version(ssl), sizeof(t->version));
	strlcpy_s(t->cipher, SSL_get_cipher_name(ssl), sizeof(t->cipher));
	vr = SSL_get_verify_result(ssl);
	if (SSL_get0_peer_certificate(ssl) == NULL)
		strlcpy_s(t->verify_error, "no certificate presented", sizeof(t->verify_error));
	else if (vr != X509_V_OK)
		strlcpy_s(t->verify_error, X509_verify_cert_error_string(vr),
		          sizeof(t->verify_error));
	else if (!c->tls_ctx->cas)
		strlcpy_s(t->verify_error, "no CA certificates loaded", sizeof(t->verify_error));
	else
		t->verified = true;
}

void
tls_error_text(struct bufferevent *bev, const char *dflt, char *buf, size_t size)
{
	unsigned long e, first = 0;
	const char *r;

	/* The first error is the cause; drain the rest so none is left for the next. */
	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (first == 0)
			first = e;
	r = first != 0 ? ERR_reason_error_string(first) : NULL;
	snprintf(buf, size, "%s", r != NULL ? r : dflt);
}

struct delivery_tls
tls_result(const struct delivery_client *c)
{
	if (!c->established || !c->tls.active)
		return (struct delivery_tls){.active = false};
	return (struct delivery_tls){
	    .active = true,
	    .version = c->tls.version,
	    .cipher = c->tls.cipher,
	    .verified = c->tls.verified,
	};
}
