/* api_reload.c - POST /api/v1/reload: the server reloads its configuration and says what
 * changed (docs/operations.md, "Reloading").
 *
 * The reload runs on the server's main thread (it swaps the listeners and the engine's
 * settings, which belong to it); the request waits, without holding the control thread,
 * until the report comes back through the control thread's mailbox. */
#include <stdlib.h>

#include <event2/http.h>

#include "control/internal.h"
#include "core/core.h"

struct control_reload {
	struct control *c;
	struct evhttp_request *req;
	json_t *report;
};

static void
reload_reply(void *arg)
{
	struct control_reload *t = arg;
	json_t *ok = json_object_get(t->report, "reloaded");

	if (json_is_true(ok))
		control_reply_json(t->req, 200, "OK", t->report);
	else
		control_reply_json(t->req, 422, "Unprocessable Entity", t->report);
	free(t);
}

void
control_reload_done(struct control_reload *t, json_t *report)
{
	t->report = report;
	mailbox_post(t->c->mailbox, reload_reply, t);
}

void
control_handle_reload(struct control *c, struct evhttp_request *req, const char *path)
{
	struct control_reload *t;

	if (c->src.reload == NULL) {
		control_reply_error(req, 503, "Service Unavailable", "reload is not available");
		return;
	}
	t = xcalloc(1, sizeof(*t));
	t->c = c;
	t->req = req;
	c->src.reload(c->src.reload_arg, t);
}
