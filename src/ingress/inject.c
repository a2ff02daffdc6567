/* inject.c - SMTP sessions for the control plane's HTTP injection (POST /api/v1/inject).
 *
 * An injected message goes through the very pipeline an SMTP client's does (classification,
 * suppression, DKIM signing, the spool's group commit, the 250 after the fsync): the control
 * thread speaks SMTP to a session of its own on a socketpair. So no second reception path
 * exists that could drift from the first. The session belongs to the internal listener
 * "api": its client counts as 127.0.0.1, it may relay, its X-Drover-* fields are trusted, and
 * it is not counted against the session limits of real clients (it never enters the client
 * table: the control plane bounds its own sessions).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingress/internal.h"

#define API_LISTENER_NAME "api"

struct internal_start {
	struct worker *worker;
	int fd;
};

static struct sockaddr_in
loopback(void)
{
	return (struct sockaddr_in){.sin_family = AF_INET,
	                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

void
internal_listener_init(struct ingress *in)
{
	struct listener_conf *l = &in->api_listener;
	struct sockaddr_in sin = loopback();

	/* Plain ESMTP on a socket no one else can reach: no TLS, no AUTH, no checks of our own
	 * mail; signed as every listener signs by default. */
	*l = (struct listener_conf){
	    .name = API_LISTENER_NAME,
	    .role = ROLE_MX,
	    .address = "(control plane)",
	    .socklen = sizeof(sin),
	    .dkim_sign = true,
	};
	memcpy(&l->sockaddr, &sin, sizeof(sin));
}

/* On the worker's loop. */
static void
internal_start(void *arg)
{
	struct internal_start *is = arg;
	struct worker *w = is->worker;
	struct sockaddr_in peer = loopback();
	int fd = is->fd;

	free(is);
	if (w->stopping) {
		close(fd); /* the control side reads the end of the connection */
		return;
	}
	session_start(w, fd, (const struct sockaddr *)&peer, sizeof(peer),
	              &w->ingress->api_listener);
}

int
ingress_connect_internal(struct ingress *in, char *err, size_t errlen)
{
	struct internal_start *is;
	unsigned n;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	/* Round robin over the SMTP threads, from any thread. */
	n = __atomic_fetch_add(&in->next_worker, 1, __ATOMIC_RELAXED);
	is = xmalloc(sizeof(*is));
	is->worker = &in->workers[n % in->nworkers];
	is->fd = sv[1];
	mailbox_post(is->worker->mailbox, internal_start, is);
	return sv[0];
}
