/* mailbox.c - hand a function call from any thread to an event loop.
 *
 * Posts go on a mutex-protected list; the first post into an empty list writes the
 * loop's eventfd, so a burst of posts costs one wakeup. The loop swaps the whole list out
 * under the lock and runs it unlocked, in posting order. */
#include <errno.h>
#include <string.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/core.h"

struct mailbox_item {
	mailbox_fn *fn;
	void *arg;
	struct mailbox_item *next;
};

struct mailbox {
	pthread_mutex_t lock;
	struct mailbox_item *head, **tail;
	int fd;
	struct event *ev;
};

static void
mailbox_run(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	struct mailbox_item *item, *next;
	uint64_t n;

	/* Read first, then swap: a post racing with us either lands in the list we take or
	 * writes the eventfd again and we come back for it. */
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("mailbox: read: %s", strerror(errno));
	pthread_mutex_lock(&mb->lock);
	item = mb->head;
	mb->head = NULL;
	mb->tail = &mb->head;
	pthread_mutex_unlock(&mb->lock);
	for (; item != NULL; item = next) {
		next = item->next;
		item->fn(item->arg);
		free(item);
	}
}

struct mailbox *
mailbox_new(struct event_base *base)
{
	struct mailbox *mb = xcalloc(1, sizeof(*mb));

	pthread_mutex_init(&mb->lock, NULL);
	mb->tail = &mb->head;
	mb->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mb->fd < 0)
		fatal("mailbox: eventfd: %s", strerror(errno));
	mb->ev = event_new(base, mb->fd, EV_READ | EV_PERSIST, mailbox_run, mb);
	if (mb->ev == NULL || event_add(mb->ev, NULL) < 0)
		fatal("mailbox: cannot add event");
	return mb;
}

void
mailbox_post(struct mailbox *mb, mailbox_fn *fn, void *arg)
{
	struct mailbox_item *item = xmalloc(sizeof(*item));
	bool was_empty;
	uint64_t one = 1;

	item->fn = fn;
	item->arg = arg;
	item->next = NULL;
	pthread_mutex_lock(&mb->lock);
	was_empty = mb->head == NULL;
	*mb->tail = item;
	mb->tail = &item->next;
	pthread_mutex_unlock(&mb->lock);
	/* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
	if (was_empty && write(mb->fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("mailbox: write: %s", strerror(errno));
}

void
mailbox_free(struct mailbox *mb)
{
	struct mailbox_item *item, *next;

	if (mb == NULL)
		return;
	event_free(mb->ev);
	close(mb->fd);
	for (item = mb->head; item != NULL; item = next) {
		next = item->next;
		free(item);
	}
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}
