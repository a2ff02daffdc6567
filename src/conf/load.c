/* conf/load.c - config_load(): read the file into the schema, check what needs more than one
 * value, and copy the result into a plain struct config.
 */

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <unistd.h>

#include "conf/defaults.h"
#include "conf/internal.h"
#include "core/core.h"

/* libconfuse's scanner (flex) and the schema's callbacks keep global state: one load at a
 * time, from any thread. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/* Where errors without a file of their own (embedded defaults, the machine's name) point. */
#define DEFAULTS_NAME "(embedded defaults)"

void
load_error_at(struct load_ctx *ctx, const char *file, int line, const char *fmt, ...)
{
	char msg[1024], head[512];
	va_list ap;
	size_t n;

	if (ctx->nerrors++ >= LIM_ERRORS_REPORTED)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(head, sizeof(head), "%s:%d: ", file ? file : DEFAULTS_NAME, line);
	else
		snprintf(head, sizeof(head), "%s: ", file ? file : DEFAULTS_NAME);

	n = strlen(head) + strlen(msg) + 2;
	ctx->errors = xrealloc(ctx->errors, ctx->errors_len + n);
	snprintf(ctx->errors + ctx->errors_len, n, "%s%s%s", ctx->errors_len ? "\n" : "", head,
	         msg);
	ctx->errors_len += strlen(ctx->errors + ctx->errors_len);
}

static void
ctx_free(struct load_ctx *ctx)
{
	for (size_t i = 0; i < setting_count(); i++)
		free(ctx->where[i].file);
	free(ctx->where);
	for (size_t i = 0; i < ctx->nkeys; i++) {
		free(ctx->keys[i].title);
		free(ctx->keys[i].where);
	}
	free(ctx->keys);
	for (size_t i = 0; i < ctx->ncerts; i++) {
		free(ctx->certs[i].title);
		free(ctx->certs[i].where);
	}
	free(ctx->certs);
	free(ctx->users_where);
	for (size_t i = 0; i < ctx->negress; i++) {
		free(ctx->egress[i].title);
		free(ctx->egress[i].where);
	}
	free(ctx->egress);
	for (size_t i = 0; i < ctx->nlisteners; i++) {
		free(ctx->listeners[i].title);
		free(ctx->listeners[i].where.file);
	}
	free(ctx->listeners);
	free(ctx->errors);
}

/* The file, include()s expanded and comments removed (see source.c), through libconfuse. */
static bool
parse_file(cfg_t *cfg, const char *path, struct load_ctx *ctx)
{
	FILE *fp;
	int rc;

	if (source_load(ctx->src, path, ctx) != 0)
		return false;
	if ((fp = fmemopen(ctx->src->text, ctx->src->len, "r")) == NULL)
		fatal("conf: fmemopen: %s", strerror(errno));
	free(cfg->filename);
	cfg->filename = xstrdup(path);
	rc = cfg_parse_fp(cfg, fp);
	fclose(fp);
	if (rc != CFG_SUCCESS && ctx->nerrors == 0)
		load_error_at(ctx, path, 0, "cannot parse (libconfuse gave no reason)");
	return rc == CFG_SUCCESS;
}

/* gethostname(), fully qualified through the resolver (/etc/hosts first) if it has no dot. */
static char *
machine_hostname(void)
{
	char name[256];
	struct addrinfo hints, *res = NULL;
	char *out;

	if (gethostname(name, sizeof(name)) != 0)
		return xstrdup("");
	name[sizeof(name) - 1] = '\0';
	if (strchr(name, '.') != NULL)
		return xstrdup(name);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(name, NULL, &hints, &res) == 0 && res != NULL &&
	    res->ai_canonname != NULL && strchr(res->ai_canonname, '.') != NULL &&
	    hostname_valid(res->ai_canonname))
		out = xstrdup(res->ai_canonname);
	else
		out = xstrdup(name);
	if (res != NULL)
		freeaddrinfo(res);
	return out;
}

static unsigned
cpu_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > DEF_THREADS_CPU_CAP ? DEF_THREADS_CPU_CAP : (unsigned)n;
}

static int
log_level_value(const char *s)
{
	if (strcmp(s, "debug") == 0)
		return LOG_DEBUG;
	if (strcmp(s, "warn") == 0)
		return LOG_WARN;
	if (strcmp(s, "error") == 0)
		return LOG_ERROR;
	return LOG_INFO;
}

static void
copy_relay_networks(cfg_t *cfg, struct config *conf)
{
	unsigned n = cfg_size(cfg, "relay_networks");

	conf->relay_networks = xcalloc(n ? n : 1, sizeof(*conf->relay_networks));
	for (unsigned i = 0; i < n; i++) {
		struct netmask *m = &conf->relay_networks[conf->nrelay_networks];

		/* A bad one has been reported already; the load fails. */
		if (netmask_parse(cfg_getnstr(cfg, "relay_networks", i), m) != 0)
			continue;
		conf->nrelay_networks++;
		if (m->prefix == 0)
			log_warn("%s: relay_networks: \"%s\" lets every %s client relay: an open "
			         "relay",
			         conf->path ? conf->path : DEFAULTS_NAME,
			         cfg_getnstr(cfg, "relay_networks", i),
			         m->family == AF_INET ? "IPv4" : "IPv6");
	}
}

static struct listener_conf *
add_listener(struct config *conf, const char *name, const char *address)
{
	struct listener_conf *l;
	const char *why;

	conf->listeners = xrealloc(conf->listeners, (conf->nlisteners + 1) * sizeof(*l));
	l = &conf->listeners[conf->nlisteners];
	memset(l, 0, sizeof(*l));
	if (address == NULL || listen_address_parse(address, &l->sockaddr, &l->socklen, &why) != 0)
		return NULL; /* reported while parsing */
	l->name = xstrdup(name);
	l->address = xstrdup(address);
	l->dkim_sign = DEF_LISTENER_DKIM_SIGN;
	l->starttls = DEF_LISTENER_STARTTLS;
	l->auth_without_tls = DEF_LISTENER_AUTH_WITHOUT_TLS;
	conf->nlisteners++;
	return l;
}

static void
copy_listeners(cfg_t *cfg, struct config *conf)
{
	unsigned n = cfg_size(cfg, "listener");

	if (n == 0) {
		add_listener(conf, DEF_LISTENER_NAME, DEF_LISTENER_ADDRESS);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "listener", i);
		struct listener_conf *l =
		    add_listener(conf, cfg_title(sec), cfg_getstr(sec, "address"));

		if (l == NULL)
			continue;
		l->role = role_value(cfg_getstr(sec, "role")) < 0
		              ? ROLE_MX
		              : (enum listener_role)role_value(cfg_getstr(sec, "role"));
		l->starttls = cfg_getbool(sec, "starttls") == cfg_true;
		l->auth_without_tls = cfg_getbool(sec, "auth_without_tls") == cfg_true;
		l->dkim_sign = cfg_getbool(sec, "dkim_sign") == cfg_true;
		for (unsigned j = 0; j < cfg_size(sec, "verify"); j++)
			l->verify |= verify_value(cfg_getnstr(sec, "verify", j));
		/* DMARC is computed from the other two. */
		if (l->verify & VERIFY_DMARC)
			l->verify |= VERIFY_SPF | VERIFY_DKIM;
	}
}

/* The strings of a list setting, copied (a bad one has been reported already: the load fails
 * and config_free() takes them back), NULL-terminated as well as counted. */
char **
copy_list(cfg_t *sec, const char *name, size_t *n)
{
	unsigned size = cfg_size(sec, name);
	char **v = xcalloc(size + 1, sizeof(*v));

	for (unsigned i = 0; i < size; i++)
		v[i] = xstrdup(cfg_getnstr(sec, name, i));
	*n = size;
	return v;
}

void
free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int
enabled_value(const char *value)
{
	static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no",
	                                                                       "off"};

	if (value == NULL || strcasecmp(value, "auto") == 0)
		return -1;
	for (size_t i = 0; i < nitems(yes); i++) {
		if (strcasecmp(value, yes[i]) == 0)
			return 1;
		if (strcasecmp(value, no[i]) == 0)
			return 0;
	}
	return -2;
}

static void
copy_delivery(cfg_t *cfg, struct config *conf, struct load_ctx *ctx)
{
	cfg_t *sec = cfg_getsec(cfg, "delivery");
	struct delivery_conf *d = &conf->delivery;
	unsigned nretry = cfg_size(sec, "retry");
	int ipv = ip_version_value(cfg_getstr(sec, "ip_version"));

	d->helo_name = xstrdup(cfg_getstr(sec, "helo_name") != NULL ? cfg_getstr(sec, "helo_name")
	                                                            : conf->hostname);
	d->port = (unsigned)cfg_getint(sec, "port");
	d->enabled = enabled_value(cfg_getstr(sec, "enabled")) == 1;
	if (enabled_value(cfg_getstr(sec, "enabled")) == -1) /* auto */
		d->enabled = ctx->src != NULL && (source_has_section(ctx->src, "delivery") ||
		                                  cfg_size(cfg, "route") > 0);
	d->smarthost = copy_list(sec, "smarthost", &d->nsmarthost);
	d->dns_forwarders = copy_list(sec, "dns_forwarders", &d->ndns_forwarders);
	d->dns_timeout_s = (unsigned)cfg_getint(sec, "dns_timeout");
	d->ip_version = ipv < 0 ? 0 : ipv;

	for (unsigned i = 0; i < nretry && d->nretry < DELIVERY_RETRY_MAX; i++) {
		uint64_t v;

		/* A bad one has been reported already. */
		if (parse_duration_s(cfg_getnstr(sec, "retry", i), &v) == 0 && v > 0)
			d->retry_s[d->nretry++] = v;
	}
	if (nretry == 0) {
		/* retry = {} gives libconfuse's callbacks nothing to see: find the line. */
		const char *file = conf->path;
		int line = 0;

		if (ctx->src != NULL)
			cfgtext_where(ctx->src, source_last_assignment(ctx->src, "retry"), &file,
			              &line);
		load_error_at(
		    ctx, file, line,
		    "delivery.retry: empty: at least one interval is needed (the last one "
		    "repeats), as in retry = { \"5m\", \"1h\" }");
	}
	d->retry_jitter_pct = (unsigned)cfg_getint(sec, "retry_jitter");
	d->queue_lifetime_s = (uint64_t)cfg_getint(sec, "queue_lifetime");
	d->max_connections = (unsigned)cfg_getint(sec, "max_connections");
	d->initial_connections = (unsigned)cfg_getint(sec, "initial_connections");
	d->max_messages_per_connection = (unsigned)cfg_getint(sec, "max_messages_per_connection");
	d->max_recipients_per_transaction =
	    (unsigned)cfg_getint(sec, "max_recipients_per_transaction");
	d->dead_after = (unsigned)cfg_getint(sec, "dead_after");
	d->dead_cooldown_s = (uint64_t)cfg_getint(sec, "dead_cooldown");
	d->connect_timeout_s = (unsigned)cfg_getint(sec, "connect_timeout");
	d->greeting_timeout_s = (unsigned)cfg_getint(sec, "greeting_timeout");
	d->helo_timeout_s = (unsigned)cfg_getint(sec, "helo_timeout");
	d->mail_timeout_s = (unsigned)cfg_getint(sec, "mail_timeout");
	d->rcpt_timeout_s = (unsigned)cfg_getint(sec, "rcpt_timeout");
	d->data_timeout_s = (unsigned)cfg_getint(sec, "data_timeout");
	d->data_block_timeout_s = (unsigned)cfg_getint(sec, "data_block_timeout");
	d->dot_timeout_s = (unsigned)cfg_getint(sec, "dot_timeout");
	d->idle_timeout_s = (unsigned)cfg_getint(sec, "idle_timeout");
	d->postmaster =
	    cfg_getstr(sec, "postmaster") != NULL ? xstrdup(cfg_getstr(sec, "postmaster")) : NULL;
	d->shaping =
	    cfg_getstr(sec, "shaping")[0] != '\0' ? xstrdup(cfg_getstr(sec, "shaping")) : NULL;
	d->bounce_rules = cfg_getstr(sec, "bounce_rules")[0] != '\0'
	                      ? xstrdup(cfg_getstr(sec, "bounce_rules"))
	                      : NULL;
	d->dsn_return_max = (uint64_t)cfg_getint(sec, "dsn_return_max");
	d->max_connections_total = (unsigned)cfg_getint(sec, "max_connections_total");
	d->delay_notice_after_s = (uint64_t)cfg_getint(sec, "delay_notice_after");
	d->tls = tls_policy_value(cfg_getstr(sec, "tls"));
	if (d->tls == TLS_POLICY_UNSET) /* reported while parsing */
		d->tls = TLS_POLICY_OPPORTUNISTIC;
	d->tls_ca_file =
	    cfg_getstr(sec, "tls_ca_file") != NULL ? xstrdup(cfg_getstr(sec, "tls_ca_file")) : NULL;
	d->tls_min_version = tls_version_value(cfg_getstr(sec, "tls_min_version"));
	if (d->tls_min_version == 0) /* reported while parsing */
		d->tls_min_version = 0x0303;
	d->tls_failure_memory_s = (uint64_t)cfg_getint(sec, "tls_failure_memory");
}

static int
route_cmp(const void *a, const void *b)
{
	return strcmp(((const struct route_conf *)a)->domain,
	              ((const struct route_conf *)b)->domain);
}

/* Kept sorted by domain, so that config_route() is a binary search however many there are. */
static void
copy_routes(cfg_t *cfg, struct config *conf)
{
	unsigned n = cfg_size(cfg, "route");

	conf->routes = xcalloc(n ? n : 1, sizeof(*conf->routes));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "route", i);
		struct route_conf *r = &conf->routes[conf->nroutes];
		const char *title = cfg_title(sec);

		/* A bad title or no hosts: reported already (so is a domain given twice, which
		 * fails the load too). */
		if (!hostname_valid(title) || cfg_size(sec, "hosts") == 0)
			continue;
		r->domain = xstrdup(title);
		for (char *p = r->domain; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		r->hosts = copy_list(sec, "hosts", &r->nhosts);
		r->tls = tls_policy_value(cfg_getstr(sec, "tls")); /* UNSET when not set */
		conf->nroutes++;
	}
	qsort(conf->routes, conf->nroutes, sizeof(*conf->routes), route_cmp);
}

static int
route_key_cmp(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct route_conf *)elem)->domain);
}

const struct route_conf *
config_route(const struct config *conf, const char *domain)
{
	if (conf == NULL || domain == NULL || conf->nroutes == 0)
		return NULL;
	return bsearch(domain, conf->routes, conf->nroutes, sizeof(*conf->routes), route_key_cmp);
}

/* Checks across settings, once every value is known. Each names the setting as written in
 * the file (where it was set), so the operator knows which line to change. */
static bool
address_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

static void
check_across(struct config *conf, struct load_ctx *ctx)
{
	int i_spool = setting_index("spool", "max_size");
	int i_msg = setting_index("smtp", "max_message_size");

	if (conf->spool_max_size < conf->smtp.max_message_size) {
		char spool[32], msg[32];

		format_size(conf->spool_max_size, spool, sizeof(spool));
		format_size(conf->smtp.max_message_size, msg, sizeof(msg));
		if (ctx->where[i_spool].file != NULL)
			load_error_at(
			    ctx, ctx->where[i_spool].file, ctx->where[i_spool].line,
			    "spool.max_size: %s is smaller than smtp.max_message_size (%s): the "
			    "spool could not hold one message",
			    spool, msg);
		else
			load_error_at(
			    ctx, ctx->where[i_msg].file, ctx->where[i_msg].line,
			    "smtp.max_message_size: %s is larger than spool.max_size (%s): the "
			    "spool could not hold one message",
			    msg, spool);
	}
	if (conf->control.address[0] != '\0' && conf->control.token == NULL &&
	    !address_is_loopback(&conf->control.sockaddr))
		load_error_at(ctx, ctx->src != NULL ? conf->path : NULL, 0,
		              "control.address: %s is not a loopback address: set control.token "
		              "(anyone who reaches the API can steer the server)",
		              conf->control.address);
	for (size_t i = 0; i < conf->nlisteners; i++) {
		const struct listener_conf *l = &conf->listeners[i];

		if (l->role == ROLE_SUBMISSIONS && conf->ntls_certificates == 0)
			load_error_at(ctx, ctx->src != NULL ? conf->path : NULL, 0,
			              "listener \"%s\".role: submissions speaks TLS from the first "
			              "octet: it needs a tls_certificate section",
			              l->name);
		if (l->role != ROLE_MX && l->role != ROLE_BOUNCE && conf->auth.users_file == NULL)
			load_error_at(ctx, ctx->src != NULL ? conf->path : NULL, 0,
			              "listener \"%s\".role: %s requires AUTH: set auth.users_file",
			              l->name,
			              l->role == ROLE_SUBMISSION ? "submission" : "submissions");
	}
	if (conf->delivery.initial_connections > conf->delivery.max_connections) {
		const struct where *wi =
		    &ctx->where[setting_index("delivery", "initial_connections")];
		const struct where *wm = &ctx->where[setting_index("delivery", "max_connections")];

		/* The one set last is the one to change (or the one just changed). */
		if (wi->order > wm->order)
			load_error_at(ctx, wi->file, wi->line,
			              "delivery.initial_connections: %u is more than "
			              "delivery.max_connections (%u): the window starts at "
			              "initial_connections and opens up to max_connections",
			              conf->delivery.initial_connections,
			              conf->delivery.max_connections);
		else
			load_error_at(ctx, wm->file, wm->line,
			              "delivery.max_connections: %u is less than "
			              "delivery.initial_connections (%u): the window starts at "
			              "initial_connections and opens up to max_connections",
			              conf->delivery.max_connections,
			              conf->delivery.initial_connections);
	}
	if (conf->smtp.max_recipients < RFC_SMTP_MIN_RECIPIENTS) {
		const struct where *w = &ctx->where[setting_index("smtp", "max_recipients")];

		log_warn("%s:%d: smtp.max_recipients: %u is below the 100 that RFC 5321 "
		         "§4.5.3.1.8 requires servers to accept",
		         w->file ? w->file : DEFAULTS_NAME, w->line, conf->smtp.max_recipients);
	}
	/* Not an error: a configuration may shorten the lifetime for a test and keep the notice
	 * setting; but the operator should know that no notice can ever go out. */
	if (conf->delivery.delay_notice_after_s != 0 &&
	    conf->delivery.delay_notice_after_s >= conf->delivery.queue_lifetime_s) {
		const struct where *w =
		    &ctx->where[setting_index("delivery", "delay_notice_after")];

		log_warn("%s:%d: delivery.delay_notice_after: not shorter than "
		         "delivery.queue_lifetime: mail expires before any delay notice is due",
		         w->file ? w->file : DEFAULTS_NAME, w->line);
	}
}

static struct config *
build(cfg_t *cfg, struct load_ctx *ctx, const char *path)
{
	struct config *conf = xcalloc(1, sizeof(*conf));
	cfg_t *spool = cfg_getsec(cfg, "spool");
	cfg_t *smtp = cfg_getsec(cfg, "smtp");
	long threads = cfg_getint(cfg, "threads");

	atomic_init(&conf->refs, 1);
	conf->path = path != NULL ? xstrdup(path) : NULL;
	if (cfg_getstr(cfg, "hostname") != NULL) {
		conf->hostname = xstrdup(cfg_getstr(cfg, "hostname"));
	} else {
		conf->hostname = machine_hostname();
		if (!hostname_valid(conf->hostname))
			load_error_at(
			    ctx, path, 0,
			    "hostname: the machine's name \"%s\" is not a valid domain name; set "
			    "hostname",
			    conf->hostname);
	}
	conf->threads = threads == 0 ? cpu_threads() : (unsigned)threads;
	conf->user = xstrdup(cfg_getstr(cfg, "user"));

	conf->spool_directory = xstrdup(cfg_getstr(spool, "directory"));
	conf->spool_max_size = (uint64_t)cfg_getint(spool, "max_size");
	conf->spool_batch_max = (unsigned)cfg_getint(spool, "batch_max");

	conf->event_log = xstrdup(cfg_getstr(cfg, "event_log"));
	conf->log_level = xstrdup(cfg_getstr(cfg, "log_level"));
	conf->log_level_value = log_level_value(conf->log_level);

	copy_relay_networks(cfg, conf);
	copy_listeners(cfg, conf);

	conf->smtp.max_sessions = (unsigned)cfg_getint(smtp, "max_sessions");
	conf->smtp.max_sessions_per_ip = (unsigned)cfg_getint(smtp, "max_sessions_per_ip");
	conf->smtp.max_message_size = (uint64_t)cfg_getint(smtp, "max_message_size");
	conf->smtp.max_recipients = (unsigned)cfg_getint(smtp, "max_recipients");
	conf->smtp.max_errors = (unsigned)cfg_getint(smtp, "max_errors");
	conf->smtp.command_line_max = (unsigned)cfg_getint(smtp, "command_line_max");
	conf->smtp.data_line_max = (unsigned)cfg_getint(smtp, "data_line_max");
	conf->smtp.command_timeout_s = (unsigned)cfg_getint(smtp, "command_timeout");
	conf->smtp.data_timeout_s = (unsigned)cfg_getint(smtp, "data_timeout");
	conf->smtp.reject_8bit_without_8bitmime =
	    cfg_getbool(smtp, "reject_8bit_without_8bitmime") == cfg_true;

	copy_delivery(cfg, conf, ctx);
	copy_routes(cfg, conf);
	copy_domains(cfg, conf);
	copy_egress(cfg, conf, ctx);
	copy_routing(cfg, conf, ctx);
	copy_dkim(cfg, conf, ctx);
	copy_security(cfg, conf, ctx);
	copy_verp(cfg, conf, ctx);
	copy_webhooks(cfg, conf);
	config_digest_build(conf, cfg);

	check_across(conf, ctx);
	return conf;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	return config_reload(path, NULL, err, errlen);
}

struct config *
config_reload(const char *path, const struct config *running, char *err, size_t errlen)
{
	struct load_ctx ctx;
	struct cfgtext src;
	struct config *conf = NULL;
	cfg_t *cfg;
	bool parsed = true;

	memset(&ctx, 0, sizeof(ctx));
	memset(&src, 0, sizeof(src));
	ctx.src = path != NULL ? &src : NULL;
	ctx.running = running;
	ctx.where = xcalloc(setting_count(), sizeof(*ctx.where));
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	pthread_mutex_lock(&load_lock);
	cfg = schema_new(&ctx);
	if (path != NULL)
		parsed = parse_file(cfg, path, &ctx);
	/* A parse that stopped early (syntax) left values unread: checks across settings
	 * would judge defaults the file meant to change. */
	if (parsed)
		conf = build(cfg, &ctx, path);
	schema_free(cfg);
	pthread_mutex_unlock(&load_lock);

	if (ctx.nerrors > 0) {
		if (ctx.nerrors > LIM_ERRORS_REPORTED) {
			char more[64];

			snprintf(more, sizeof(more), "\n(%u more errors)",
			         ctx.nerrors - LIM_ERRORS_REPORTED);
			ctx.errors = xrealloc(ctx.errors, ctx.errors_len + strlen(more) + 1);
			memcpy(ctx.errors + ctx.errors_len, more, strlen(more) + 1);
		}
		if (err != NULL && errlen > 0)
			strlcpy_s(err, ctx.errors, errlen);
		config_free(conf);
		conf = NULL;
	}
	ctx_free(&ctx);
	cfgtext_free(&src);
	return conf;
}

struct config *
config_ref(const struct config *cfg)
{
	struct config *c = (struct config *)cfg; /* the count is not part of the value */

	if (c != NULL)
		atomic_fetch_add(&c->refs, 1);
	return c;
}

void
config_unref(const struct config *cfg)
{
	config_free((struct config *)cfg);
}

void
config_free(struct config *conf)
{
	if (conf == NULL || atomic_fetch_sub(&conf->refs, 1) > 1)
		return;
	free(conf->path);
	free(conf->hostname);
	free(conf->spool_directory);
	free(conf->event_log);
	free(conf->log_level);
	free(conf->relay_networks);
	for (size_t i = 0; i < conf->nlisteners; i++) {
		free(conf->listeners[i].name);
		free(conf->listeners[i].address);
	}
	free(conf->listeners);
	free(conf->delivery.helo_name);
	free_list(conf->delivery.smarthost, conf->delivery.nsmarthost);
	free_list(conf->delivery.dns_forwarders, conf->delivery.ndns_forwarders);
	free(conf->delivery.postmaster);
	free(conf->delivery.bounce_rules);
	free(conf->delivery.shaping);
	for (size_t i = 0; i < conf->nroutes; i++) {
		free(conf->routes[i].domain);
		free_list(conf->routes[i].hosts, conf->routes[i].nhosts);
	}
	free(conf->routes);
	free_domains(conf);
	free_egress(conf);
	free_routing(conf);
	free(conf->delivery.tls_ca_file);
	free_dkim(conf);
	free_security(conf);
	free_verp(conf);
	free_webhooks(conf);
	config_digest_free(conf);
	free(conf->user);
	free(conf);
}
