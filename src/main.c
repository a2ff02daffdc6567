/* main.c - the drover command: serve, check-config, queue, help.
 *
 * Every subcommand takes --config FILE; without it the embedded defaults apply, so that
 * `drover serve` on a fresh machine does something useful and safe (loopback only). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "access/access.h"
#include "auth/auth.h"
#include "classify/classify.h"
#include "conf/conf.h"
#include "control/control.h"
#include "delivery/delivery.h"
#include "core/core.h"
#include "ingress/ingress.h"
#include "preflight/preflight.h"
#include "queue/queue.h"
#include "shape/shape.h"
#include "smtp/smtp.h"
#include "spool/spool.h"
#include "suppress/suppress.h"
#include "webhook/webhook.h"

/* Seconds a stopping server gives clients in the middle of a message before cutting them. */
#define SHUTDOWN_GRACE_S 10

struct options {
	const char *config;
	bool json;
	int argc; /* positional arguments after the subcommand */
	char **argv;
};

static void
usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: drover <command> [--config FILE] [arguments]\n"
	    "\n"
	    "commands:\n"
	    "  serve                      run the server in the foreground\n"
	    "  check-config [FILE]        validate a configuration file; errors name file:line\n"
	    "  queue summary [--by KEY[,KEY]] [--json]\n"
	    "                             queued mail by queue (or by stream, pool, tenant,\n"
	    "                             campaign, destination, provider): counts, oldest\n"
	    "                             message, last error; through the server if it runs\n"
	    "  queue list [--json]        list queued messages (id, size, age, sender, "
	    "recipients)\n"
	    "  queue show ID              print a queued message's envelope and content\n"
	    "  inspect ID [--json]        a queued message: envelope, recipients' states, "
	    "headers\n"
	    "  top [--by destination|provider] [--limit N] [--json]\n"
	    "                             destinations with the most mail pending (in memory)\n"
	    "  adaptive [--json]          adaptive actions, what shaping allows per site now\n"
	    "  override set --provider P|--domain D [--source S] --SETTING VALUE [--for 30m]\n"
	    "  override list | override remove ID\n"
	    "                             temporary shaping overrides (docs/shaping.md)\n"
	    "  suspend destination|provider|source|pool|stream|tenant|campaign NAME\n"
	    "          [--for 2h] [--reason TEXT]\n"
	    "  resume SELECTOR NAME | resume --id N | suspensions [--json]\n"
	    "                             hold mail without spending its attempts, and let it go\n"
	    "  bounce|delete|retry [--id ID] [--domain D] [--sender A|@D] [--tenant T]\n"
	    "          [--campaign C] [--stream S] [--pool P] [--older-than 1h]\n"
	    "                             bounce (DSN), delete (no DSN) or retry now what matches\n"
	    "                             (bounce: [--reason TEXT]; retry: no filter = all)\n"
	    "  reload [--json]            the running server reloads its configuration, says\n"
	    "                             what changed (errors name file:line)\n"
	    "  inject [FILE|-] [--json]   POST /api/v1/inject with the JSON in FILE (stdin)\n"
	    "  status                     the server's counters (GET /api/v1/status)\n"
	    "  dkim keygen --domain D --selector S [--algorithm rsa2048|rsa1024|rsa4096|ed25519]\n"
	    "                             write a DKIM key, print the DNS TXT record to publish\n"
	    "  spf --ip IP --sender ADDR --helo NAME [--scope mfrom|helo|pra] [--dns HOST@PORT]\n"
	    "                             SPF / Sender ID check; the result on the first line\n"
	    "  auth check --from ADDR [--source NAME|IP] [--config FILE] [--dns HOST@PORT]\n"
	    "                             will mail from ADDR pass SPF, DKIM and DMARC? (live "
	    "DNS)\n"
	    "  suppress add|remove|list|import|export|check ...\n"
	    "                             the suppression list (docs/suppression.md)\n"
	    "  user add NAME [--method M] [--domains D,D]\n"
	    "                             hash the password on stdin: a line for auth.users_file\n"
	    "  help                       this list\n"
	    "  version                    print the version\n"
	    "\n"
	    "Without --config, the embedded defaults apply: SMTP on 127.0.0.1:2525, spool in\n"
	    "./var/spool, relaying for 127.0.0.0/8 and ::1. See docs/configuration.md.\n");
}

/* Takes --config FILE / --config=FILE and --json from anywhere on the line. */
static int
parse_options(int argc, char **argv, struct options *o)
{
	o->argv = xcalloc((size_t)argc + 1, sizeof(char *));
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "drover: %s needs a file name\n", argv[i]);
				return -1;
			}
			o->config = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0)
			o->config = argv[i] + 9;
		else if (strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			o->argv[o->argc++] = "help";
		else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "drover: unknown option %s\n", argv[i]);
			return -1;
		} else
			o->argv[o->argc++] = argv[i];
	}
	return 0;
}

static struct config *
load_config(const char *path)
{
	char err[8192];
	struct config *cfg = config_load(path, err, sizeof(err));

	if (cfg == NULL)
		fprintf(stderr, "%s%s", err, err[0] && err[strlen(err) - 1] != '\n' ? "\n" : "");
	return cfg;
}

/* mkdir -p for the directories the defaults put under ./var. */
static int
make_dirs(const char *path, mode_t mode)
{
	char buf[4096];

	if (strlcpy_s(buf, path, sizeof(buf)) >= sizeof(buf))
		return -1;
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int
make_parent_dir(const char *file)
{
	const char *slash = strrchr(file, '/');
	char dir[4096];

	if (slash == NULL || slash == file)
		return 0;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - file), file);
	return make_dirs(dir, 0750);
}

struct server {
	int lock_fd;
	struct event_base *base;
	struct ingress *ingress;
	struct ingress_hooks hooks;
	struct queue_engine *engine;
	struct spool *spool;
	struct eventlog *log;
	const struct config *cfg; /* the configuration in force (a reference): reloads swap it */
	struct mailbox *mailbox;  /* the control thread's reload requests */
	struct preflight_background *preflight; /* the signing domains' DNS, checked */
	const struct config *preflight_cfg;     /* ... from this configuration (a reference) */
	struct control *control;                /* metrics and the admin API */
	struct suppress *suppress;              /* the suppression list */
	struct webhooks *webhooks;              /* event records POSTed (docs/webhooks.md) */
	struct classify_slot *bounce_rules;     /* the engine's and the bounce listener's */
};

/* One server per spool: a second one would run recovery on the first one's messages in
 * transit. The lock is held for the process's life (flock: released by the kernel on any
 * exit, kill -9 included, so it never goes stale). */
static int
lock_spool(const char *dir, int *fd_out)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/drover.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("spool lock %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("spool %s is in use by another drover serve (%s)", dir,
		          errno == EWOULDBLOCK ? "locked" : strerror(errno));
		close(fd);
		return -1;
	}
	*fd_out = fd;
	return 0;
}

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	log_info("signal %d: stopping", (int)sig);
	event_base_loopbreak(srv->base);
}

/* ---- Reload (SIGHUP, POST /api/v1/reload, drover reload) ----
 *
 * The whole configuration again: read and checked in full first — the file, and every file it
 * names (bounce rules, shaping rules, CA store, certificates, users; new listeners' addresses
 * bound) — and on any error nothing changes and the error names file:line. Then each part is
 * swapped at once: new SMTP sessions and new delivery connections use the new configuration,
 * those in flight finish on the one they started with. docs/operations.md, "Reloading". */

struct reload_report {
	json_t *changes; /* [{"what", "change", "applied"}] */
	json_t *restart; /* what only a restart takes: ["threads", ...] */
};

static void
on_change(void *arg, const char *key, enum config_change change, bool restart)
{
	struct reload_report *r = arg;
	static const char *const names[] = {"added", "changed", "removed"};

	json_array_append_new(r->changes, json_pack("{s:s, s:s, s:b}", "what", key, "change",
	                                            names[change], "applied", !restart));
	if (restart)
		json_array_append_new(r->restart, json_string(key));
}

static json_t *
reload_refused(const char *why)
{
	log_error("reload refused, the running configuration stays: %s", why);
	return json_pack("{s:b, s:s}", "reloaded", false, "error", why);
}

/* The bounce rules of cfg, compiled: NULL with the reason in err. */
static struct classify_table *
bounce_rules_load(const struct config *cfg, char *err, size_t errlen)
{
	char why[1024];
	struct classify_table *t =
	    cfg->delivery.bounce_rules != NULL
	        ? classify_load(cfg->delivery.bounce_rules, CLASSIFY_DEF_CACHE_ENTRIES, why,
	                        sizeof(why))
	        : classify_builtin(CLASSIFY_DEF_CACHE_ENTRIES, why, sizeof(why));

	if (t == NULL)
		snprintf(err, errlen, "delivery.bounce_rules: %s", why);
	return t;
}

static json_t *
server_reload(struct server *srv)
{
	struct reload_report rep = {json_array(), json_array()};
	struct engine_reload *er = NULL;
	struct classify_table *rules = NULL;
	struct config *cfg;
	json_t *out;
	char err[8192];
	size_t n;

	cfg = config_reload(srv->cfg->path, srv->cfg, err, sizeof(err));
	if (cfg == NULL)
		goto refused;
	if (srv->bounce_rules != NULL && (rules = bounce_rules_load(cfg, err, sizeof(err))) == NULL)
		goto refused;
	if (srv->engine != NULL &&
	    (er = queue_engine_reload_prepare(srv->engine, cfg, err, sizeof(err))) == NULL)
		goto refused;
	/* The last check (certificates, users, new listeners' sockets) swaps the SMTP side in
	 * when it passes: nothing after it can fail. */
	if (ingress_reconfigure(srv->ingress, cfg, err, sizeof(err)) < 0)
		goto refused;
	if (er != NULL)
		queue_engine_reload_commit(er);
	if (rules != NULL)
		classify_slot_set(srv->bounce_rules, rules);
	control_set_config(srv->control, cfg);
	log_set_level((enum log_level)cfg->log_level_value);
	eventlog_reopen(srv->log);

	n = config_changes(srv->cfg, cfg, on_change, &rep);
	for (size_t i = 0; i < json_array_size(rep.restart); i++)
		log_warn("reload: %s changed: it takes effect at the next restart",
		         json_string_value(json_array_get(rep.restart, i)));
	log_info("reload: configuration from %s in force (%zu change%s); files it names read "
	         "again",
	         cfg->path != NULL ? cfg->path : "the embedded defaults", n, n == 1 ? "" : "s");
	config_unref(srv->cfg);
	srv->cfg = cfg;
	/* The DNS may have been fixed (or broken) since: check the signing domains again. */
	if (preflight_background_running(srv->preflight)) {
		log_info("preflight: the previous check still runs; not started again");
	} else {
		preflight_background_wait(srv->preflight);
		config_unref(srv->preflight_cfg);
		srv->preflight_cfg = config_ref(cfg);
		srv->preflight = preflight_background_start(srv->preflight_cfg);
	}
	out = json_pack("{s:b, s:s?, s:o, s:o}", "reloaded", true, "config", cfg->path, "changes",
	                rep.changes, "restart_required", rep.restart);
	return out;
refused:
	queue_engine_reload_cancel(er);
	classify_unref(rules);
	config_free(cfg);
	json_decref(rep.changes);
	json_decref(rep.restart);
	return reload_refused(err);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	log_info("SIGHUP: reloading the configuration");
	json_decref(server_reload(arg));
}

/* POST /api/v1/reload: from the control thread to this one, and the report back. */
struct reload_ticket {
	struct server *srv;
	struct control_reload *ticket;
};

static void
reload_from_control(void *arg)
{
	struct reload_ticket *t = arg;

	log_info("reload requested through the control API");
	control_reload_done(t->ticket, server_reload(t->srv));
	free(t);
}

static void
request_reload(void *arg, struct control_reload *ticket)
{
	struct server *srv = arg;
	struct reload_ticket *t = xmalloc(sizeof(*t));

	t->srv = srv;
	t->ticket = ticket;
	mailbox_post(srv->mailbox, reload_from_control, t);
}

static int
cmd_serve(struct options *o)
{
	struct config *cfg = load_config(o->config);
	struct spool_options sopt;
	struct server srv = {.lock_fd = -1};
	struct event *sigs[3];
	struct run_user run_as = {0};
	sigset_t held_signals;
	char err[512] = "";
	int rc = 1;

	if (cfg == NULL)
		return 2;
	log_set_level((enum log_level)cfg->log_level_value);
	signal(SIGPIPE, SIG_IGN);
	/* The stop and reload signals wait (blocked, pending) until their handlers exist: the
	 * listeners accept connections from the moment they are bound, so a client (or a test)
	 * may take the server for started and signal it while the rest still starts. Threads
	 * started meanwhile keep them blocked, so they reach the main loop's handlers only. */
	sigemptyset(&held_signals);
	sigaddset(&held_signals, SIGTERM);
	sigaddset(&held_signals, SIGINT);
	sigaddset(&held_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &held_signals, NULL);
	/* Who to become is checked first: a missing user is a configuration error, not
	 * something to find after the spool was opened. */
	if (geteuid() == 0 && privileges_lookup(cfg->user, &run_as, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	if (make_dirs(cfg->spool_directory, 0700) < 0) {
		log_error("spool directory %s: %s", cfg->spool_directory, strerror(errno));
		goto out;
	}
	if (cfg->event_log[0] != '\0' && strcmp(cfg->event_log, "-") != 0 &&
	    make_parent_dir(cfg->event_log) < 0) {
		log_error("event log %s: %s", cfg->event_log, strerror(errno));
		goto out;
	}
	if (lock_spool(cfg->spool_directory, &srv.lock_fd) < 0)
		goto out;
	srv.log = eventlog_open(cfg->event_log, err, sizeof(err));
	if (srv.log == NULL) {
		log_error("%s", err);
		goto out;
	}
	/* Webhooks follow the log from its first record; their backlogs (under the spool) are
	 * given to the user the server becomes. */
	srv.webhooks =
	    webhooks_open(cfg, srv.log, run_as.uid != 0 ? &run_as : NULL, err, sizeof(err));
	if (srv.webhooks == NULL && err[0] != '\0') {
		log_error("%s", err);
		goto out;
	}
	sopt = (struct spool_options){.max_size = cfg->spool_max_size,
	                              .batch_max = cfg->spool_batch_max};
	srv.spool = spool_open(cfg->spool_directory, &sopt, 0, err, sizeof(err));
	if (srv.spool == NULL) {
		log_error("spool: %s", err);
		goto out;
	}
	/* The suppression list: opened as root, with the spool. */
	srv.suppress = suppress_open(cfg->suppression.directory, NULL, 0, err, sizeof(err));
	if (srv.suppress == NULL) {
		log_error("suppression list %s: %s", cfg->suppression.directory, err);
		goto out;
	}
	if (cfg->delivery.enabled) {
		srv.engine = queue_engine_start(cfg, srv.spool, srv.log, err, sizeof(err));
		if (srv.engine == NULL) {
			log_error("%s", err);
			goto out;
		}
		queue_engine_set_suppression(srv.engine, srv.suppress);
		srv.hooks =
		    (struct ingress_hooks){.accepted = queue_engine_accepted, .arg = srv.engine};
	} else
		log_warn("delivery is off: mail is queued, not sent (set delivery.enabled, or "
		         "configure a delivery { } section or a route)");
	srv.base = event_base_new();
	srv.ingress = ingress_start(srv.base, cfg, srv.spool, srv.log,
	                            srv.engine != NULL ? &srv.hooks : NULL, err, sizeof(err));
	if (srv.ingress == NULL) {
		log_error("%s", err);
		goto out;
	}
	ingress_set_suppression(srv.ingress, srv.suppress);
	/* One table of bounce rules for the engine and the bounce listener, swapped on SIGHUP. */
	if (srv.engine != NULL || cfg->verp.domain != NULL) {
		struct classify_table *t =
		    cfg->delivery.bounce_rules != NULL
		        ? classify_load(cfg->delivery.bounce_rules, CLASSIFY_DEF_CACHE_ENTRIES, err,
		                        sizeof(err))
		        : classify_builtin(CLASSIFY_DEF_CACHE_ENTRIES, err, sizeof(err));

		if (t == NULL) {
			log_error("delivery.bounce_rules: %s", err);
			ingress_stop(srv.ingress, 0);
			srv.ingress = NULL;
			goto out;
		}
		srv.bounce_rules = classify_slot_new(t);
		if (srv.engine != NULL)
			queue_engine_set_bounce_rules(srv.engine, srv.bounce_rules);
		ingress_set_bounce_rules(srv.ingress, srv.bounce_rules);
	}
	sigs[0] = evsignal_new(srv.base, SIGTERM, on_stop_signal, &srv);
	sigs[1] = evsignal_new(srv.base, SIGINT, on_stop_signal, &srv);
	sigs[2] = evsignal_new(srv.base, SIGHUP, on_hup, &srv);
	for (size_t i = 0; i < nitems(sigs); i++)
		event_add(sigs[i], NULL);
	pthread_sigmask(SIG_UNBLOCK, &held_signals, NULL);
	srv.cfg = config_ref(cfg);
	srv.mailbox = mailbox_new(srv.base);
	{
		struct control_sources cs = {srv.ingress,  srv.engine,     srv.spool,
		                             srv.webhooks, request_reload, &srv};

		srv.control = control_start(cfg, &cs, err, sizeof(err));
		if (srv.control == NULL && cfg->control.address[0] != '\0') {
			log_error("%s", err);
			ingress_stop(srv.ingress, 0);
			srv.ingress = NULL;
			goto out;
		}
	}
	srv.preflight_cfg = config_ref(cfg);
	srv.preflight = preflight_background_start(srv.preflight_cfg);
	/* Everything that needs root is done: ports bound, spool and log open, keys,
	 * certificates and users read. */
	if (run_as.uid != 0) {
		if (privileges_drop(&run_as, err, sizeof(err)) < 0) {
			log_error("%s", err);
			abort(); /* threads run: no orderly way back, and never on as root */
		}
		log_info("running as user %s (uid %u)", run_as.name, run_as.uid);
	}
	/* Only now does anything from the network get read: never by root. */
	ingress_open(srv.ingress);
	control_run(srv.control);
	webhooks_run(srv.webhooks);
	log_info("%s %s ready: %s, spool %s (%llu messages)", DROVER_NAME, DROVER_VERSION,
	         cfg->path ? cfg->path : "embedded defaults", cfg->spool_directory,
	         (unsigned long long)spool_message_count(srv.spool));

	event_base_dispatch(srv.base);

	control_stop(srv.control);
	srv.control = NULL;

	ingress_stop(srv.ingress, SHUTDOWN_GRACE_S);
	srv.ingress = NULL;
	preflight_background_wait(srv.preflight);
	srv.preflight = NULL;
	config_unref(srv.preflight_cfg);
	if (srv.engine != NULL)
		queue_engine_stop(srv.engine, SHUTDOWN_GRACE_S);
	srv.engine = NULL;
	for (size_t i = 0; i < nitems(sigs); i++)
		event_free(sigs[i]);
	rc = 0;
out:
	if (srv.engine != NULL)
		queue_engine_stop(srv.engine, 0);
	classify_slot_free(srv.bounce_rules); /* after the engine and the ingress: theirs */
	if (srv.suppress != NULL)
		suppress_close(srv.suppress); /* after the engine, which adds to it */
	if (srv.spool != NULL) {
		struct spool_stats st;
		spool_stats(srv.spool, &st);
		log_info("spool: %llu messages committed in %llu transactions (largest batch %llu)",
		         (unsigned long long)st.messages, (unsigned long long)st.commits,
		         (unsigned long long)st.largest_batch);
		spool_close(srv.spool);
	}
	if (srv.mailbox != NULL)
		mailbox_free(srv.mailbox);
	if (srv.base != NULL)
		event_base_free(srv.base);
	config_unref(srv.cfg);
	webhooks_stop(srv.webhooks); /* before the log: they write to it */
	eventlog_close(srv.log);
	webhooks_close(srv.webhooks); /* after it: its last records went to their backlogs */
	if (srv.lock_fd >= 0)
		close(srv.lock_fd);
	config_free(cfg);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

static int
cmd_check_config(struct options *o)
{
	const char *path = o->argc > 1 ? o->argv[1] : o->config;
	struct config *cfg;

	if (path == NULL) {
		fprintf(stderr, "usage: drover check-config FILE\n");
		return 2;
	}
	cfg = load_config(path);
	if (cfg == NULL)
		return 1;
	if (cfg->delivery.bounce_rules != NULL) {
		char err[1024];
		struct classify_table *t =
		    classify_load(cfg->delivery.bounce_rules, 0, err, sizeof(err));

		if (t == NULL) {
			fprintf(stderr, "%s: delivery.bounce_rules: %s\n", path, err);
			config_free(cfg);
			return 1;
		}
		classify_unref(t);
	}
	if (cfg->delivery.shaping != NULL && strcmp(cfg->delivery.shaping, "none") != 0) {
		char err[4096];
		struct shape_rules *r =
		    shape_rules_load(cfg->delivery.shaping, NULL, NULL, err, sizeof(err));

		if (r == NULL) {
			fprintf(stderr, "%s: delivery.shaping: %s\n", path, err);
			config_free(cfg);
			return 1;
		}
		shape_rules_unref(r);
	}
	if (cfg->delivery.tls_ca_file != NULL) {
		struct delivery_tls_options topt = {.ca_file = cfg->delivery.tls_ca_file};
		char err[1024];
		struct delivery_tls_ctx *ctx = delivery_tls_ctx_new(&topt, err, sizeof(err));

		if (ctx == NULL) {
			fprintf(stderr, "%s: %s\n", path, err);
			config_free(cfg);
			return 1;
		}
		delivery_tls_ctx_free(ctx);
	}
	if (cfg->auth.users_file != NULL) {
		char err[2048];
		struct access_users *u = access_users_load(cfg->auth.users_file, err, sizeof(err));

		if (u == NULL) {
			fprintf(stderr, "%s: auth.users_file: %s\n", cfg->auth.users_where, err);
			config_free(cfg);
			return 1;
		}
		access_users_unref(u);
	}
	{
		char err[2048];

		if (tls_check_config(cfg, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			config_free(cfg);
			return 1;
		}
	}
	if (cfg->ndkim_keys > 0) {
		char err[8192];
		unsigned nbad;
		struct dkim_signing *sg = dkim_signing_new(cfg, err, sizeof(err), &nbad);

		dkim_signing_free(sg);
		if (nbad > 0) {
			fprintf(stderr, "%s\n", err);
			config_free(cfg);
			return 1;
		}
	}
	printf("%s: ok\n", path);
	config_free(cfg);
	return 0;
}

static struct spool *
open_spool_readonly(const struct config *cfg)
{
	struct spool_options sopt = {.max_size = cfg->spool_max_size,
	                             .batch_max = cfg->spool_batch_max};
	char err[512] = "";
	struct spool *sp =
	    spool_open(cfg->spool_directory, &sopt, SPOOL_READONLY, err, sizeof(err));

	if (sp == NULL)
		fprintf(stderr, "drover: spool %s: %s\n", cfg->spool_directory, err);
	return sp;
}

static int
cmd_queue(struct options *o)
{
	const char *what = o->argc > 1 ? o->argv[1] : "list";
	struct config *cfg = load_config(o->config);
	struct spool *sp;
	int rc = 0;

	if (cfg == NULL)
		return 2;
	sp = open_spool_readonly(cfg);
	if (sp == NULL) {
		config_free(cfg);
		return 1;
	}
	if (strcmp(what, "list") == 0) {
		rc = queue_cli_list(cfg, sp, o->json);
	} else if (strcmp(what, "show") == 0 && o->argc > 2) {
		rc = queue_cli_show(cfg, sp, o->argv[2]);
	} else {
		fprintf(stderr,
		        "usage: drover queue list [--json] | queue summary [--json] | queue "
		        "show ID\n");
		rc = 2;
	}
	spool_close(sp);
	config_free(cfg);
	return rc;
}

/* drover user add NAME [--method yescrypt|bcrypt|sha512-crypt] [--domains D,D]: reads the
 * password from standard input (its first line) and prints the users-file line. */
static int
cmd_user(int argc, char **argv)
{
	const char *method_name = "yescrypt", *domains = NULL;
	enum access_hash_method method;
	char password[ACCESS_PASSWORD_MAX + 2], hash[ACCESS_HASH_MAX + 1], err[256];
	size_t len;

	if (argc < 2 || strcmp(argv[0], "add") != 0)
		goto usage;
	for (int i = 2; i < argc; i++) {
		const char **o = strcmp(argv[i], "--method") == 0    ? &method_name
		                 : strcmp(argv[i], "--domains") == 0 ? &domains
		                                                     : NULL;
		if (o == NULL || i + 1 >= argc)
			goto usage;
		*o = argv[++i];
	}
	if (strlen(argv[1]) == 0 || strlen(argv[1]) > ACCESS_NAME_MAX ||
	    strpbrk(argv[1], ": \t") != NULL) {
		fprintf(stderr,
		        "drover: user name \"%s\": 1 to %d printable characters, no ':' or "
		        "space\n",
		        argv[1], ACCESS_NAME_MAX);
		return 2;
	}
	if (access_hash_method_parse(method_name, &method) < 0) {
		fprintf(stderr, "drover: --method %s: expected yescrypt, bcrypt or sha512-crypt\n",
		        method_name);
		return 2;
	}
	if (fgets(password, sizeof(password), stdin) == NULL) {
		fprintf(stderr, "drover: no password on standard input\n");
		return 2;
	}
	len = strcspn(password, "\r\n");
	password[len] = '\0';
	if (access_hash_password(password, method, hash, sizeof(hash), err, sizeof(err)) < 0) {
		explicit_bzero(password, sizeof(password));
		fprintf(stderr, "drover: %s\n", err);
		return 1;
	}
	explicit_bzero(password, sizeof(password));
	printf("%s:%s%s%s\n", argv[1], hash, domains != NULL ? ":" : "", domains ? domains : "");
	return 0;
usage:
	fprintf(stderr, "usage: echo PASSWORD | drover user add NAME [--method "
	                "yescrypt|bcrypt|sha512-crypt] [--domains DOMAIN,DOMAIN]\n");
	return 2;
}

struct auth_check_state {
	bool done;
	int rc;
};

static void
on_auth_report(void *arg, const struct preflight_report *rep)
{
	struct auth_check_state *st = arg;
	char *text = preflight_report_text(rep);

	fputs(text, stdout);
	free(text);
	st->rc = rep->failures > 0 ? 1 : 0;
	st->done = true;
}

/* drover auth check --from ADDRESS [--source NAME|IP] [--config FILE] [--dns HOST@PORT]:
 * the preflight of preflight/preflight.h, printed. 0 all pass, 1 a check fails, 2 usage. */
static int
cmd_auth(int argc, char **argv)
{
	const char *from = NULL, *source = NULL, *config = NULL, *dns = NULL;
	const char *fwd[2] = {NULL, NULL};
	struct auth_check_state st = {false, 2};
	struct preflight_request req;
	struct dns_options opt = {0};
	struct dns_resolver *resolver;
	struct event_base *base;
	struct config *cfg;
	char err[1024];

	if (argc < 1 || strcmp(argv[0], "check") != 0)
		goto usage;
	for (int i = 1; i < argc; i++) {
		const char **o = strcmp(argv[i], "--from") == 0     ? &from
		                 : strcmp(argv[i], "--source") == 0 ? &source
		                 : strcmp(argv[i], "--config") == 0 ? &config
		                 : strcmp(argv[i], "--dns") == 0    ? &dns
		                                                    : NULL;
		if (o == NULL || i + 1 >= argc)
			goto usage;
		*o = argv[++i];
	}
	if (from == NULL)
		goto usage;
	cfg = load_config(config);
	if (cfg == NULL)
		return 2;
	if (dns != NULL) {
		fwd[0] = dns;
		opt.forwarders = fwd;
	} else {
		opt.forwarders = (const char *const *)cfg->delivery.dns_forwarders;
	}
	opt.timeout_ms = cfg->delivery.dns_timeout_s * 1000;
	base = event_base_new();
	resolver = dns_resolver_new(base, &opt, err, sizeof(err));
	if (resolver == NULL) {
		fprintf(stderr, "drover: %s\n", err);
		event_base_free(base);
		config_free(cfg);
		return 2;
	}
	req = (struct preflight_request){.from = from, .source = source, .cfg = cfg};
	if (preflight_run(base, resolver, &req, on_auth_report, &st, err, sizeof(err)) < 0)
		fprintf(stderr, "drover: %s\n", err);
	else
		while (!st.done && event_base_loop(base, EVLOOP_ONCE) == 0)
			;
	dns_resolver_free(resolver);
	event_base_free(base);
	config_free(cfg);
	return st.rc;
usage:
	fprintf(stderr,
	        "usage: drover auth check --from ADDRESS [--source NAME|IP] [--config FILE] "
	        "[--dns HOST@PORT]\n");
	return 2;
}

/* drover dkim keygen --domain D --selector S [--algorithm rsa2048|rsa1024|rsa4096|ed25519]
 *                    [--key FILE]
 * Writes a new private key (PKCS#8 PEM, mode 0600, never over an existing file; default
 * ./S.D.pem) and prints the DNS TXT record that publishes it. Its own options: dispatched
 * before parse_options(), which does not know them. */
static int
cmd_dkim(int argc, char **argv)
{
	const char *domain = NULL, *selector = NULL, *alg = "rsa2048", *key = NULL;
	enum dkim_keygen_type type;
	char err[1024], path[1024], *record, *zone;

	if (argc < 1 || strcmp(argv[0], "keygen") != 0)
		goto usage;
	for (int i = 1; i < argc; i++) {
		const char **opt = strcmp(argv[i], "--domain") == 0      ? &domain
		                   : strcmp(argv[i], "--selector") == 0  ? &selector
		                   : strcmp(argv[i], "--algorithm") == 0 ? &alg
		                   : strcmp(argv[i], "--key") == 0       ? &key
		                                                         : NULL;
		if (opt == NULL || i + 1 >= argc)
			goto usage;
		*opt = argv[++i];
	}
	if (domain == NULL || selector == NULL)
		goto usage;
	if (dkim_check_names(domain, selector, err, sizeof(err)) < 0) {
		fprintf(stderr, "drover: %s\n", err);
		return 2;
	}
	if (dkim_keygen_type_parse(alg, &type) < 0) {
		fprintf(stderr,
		        "drover: --algorithm %s: expected rsa2048, rsa1024, rsa4096 or "
		        "ed25519\n",
		        alg);
		return 2;
	}
	if (key == NULL) {
		snprintf(path, sizeof(path), "%s.%s.pem", selector, domain);
		key = path;
	}
	if (dkim_keygen(type, key, &record, err, sizeof(err)) < 0) {
		fprintf(stderr, "drover: %s\n", err);
		return 1;
	}
	zone = dkim_dns_zone_line(selector, domain, record);
	printf("Wrote the private key to %s (%s, mode 0600).\n"
	       "Publish this DNS TXT record, then sign with selector \"%s\":\n"
	       "\n"
	       "  name:  %s._domainkey.%s\n"
	       "  value: %s\n"
	       "\n"
	       "As a zone file line:\n"
	       "\n"
	       "%s\n",
	       key, dkim_keygen_type_name(type), selector, selector, domain, record, zone);
	free(zone);
	free(record);
	return 0;
usage:
	fprintf(stderr, "usage: drover dkim keygen --domain DOMAIN --selector SELECTOR\n"
	                "         [--algorithm rsa2048|rsa1024|rsa4096|ed25519] [--key FILE]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct options o = {0};
	const char *cmd;
	int rc;

	/* spf has options of its own (--ip, --sender, --helo, --scope, --dns). */
	if (argc > 1 && strcmp(argv[1], "spf") == 0)
		return spf_cli(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "dkim") == 0)
		return cmd_dkim(argc - 2, argv + 2);
	if (argc > 1 && strcmp(argv[1], "auth") == 0)
		return cmd_auth(argc - 2, argv + 2);
	if (argc > 1 && strcmp(argv[1], "user") == 0)
		return cmd_user(argc - 2, argv + 2);
	/* suppress has options of its own (--dir, --tenant, --reason, --json). */
	if (argc > 1 && strcmp(argv[1], "suppress") == 0)
		return suppress_cli(argc - 1, argv + 1, NULL);
	/* The admin API's commands (control/cli.c) have options of their own (--by, --limit). */
	if (argc > 1 && control_cli_handles(argc - 1, argv + 1))
		return control_cli(argc - 1, argv + 1);
	if (parse_options(argc - 1, argv + 1, &o) < 0) {
		usage(stderr);
		return 2;
	}
	cmd = o.argc > 0 ? o.argv[0] : "help";
	if (strcmp(cmd, "serve") == 0)
		rc = cmd_serve(&o);
	else if (strcmp(cmd, "check-config") == 0)
		rc = cmd_check_config(&o);
	else if (strcmp(cmd, "queue") == 0)
		rc = cmd_queue(&o);
	else if (strcmp(cmd, "version") == 0) {
		printf("%s %s\n", DROVER_NAME, DROVER_VERSION);
		rc = 0;
	} else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0) {
		usage(stdout);
		rc = 0;
	} else {
		fprintf(stderr, "drover: unknown command \"%s\"\n", cmd);
		usage(stderr);
		rc = 2;
	}
	free(o.argv);
	return rc;
}
