/* backlog.c - a webhook's records on disk, between the event log and the receiver.
 *
 * Append-only segment files, one record per line, so that a receiver that is down for hours
 * costs disk and not memory; a read position (in memory: what was put in a batch) and an
 * acknowledged one (on disk, in "state": what the receiver answered 2xx for), so that a
 * restart resends from the first record not acknowledged. Every file is reached through the
 * directory's descriptor, opened while the server may still be root: the spool directory
 * above it need not be readable by the user it becomes.
 *
 * One mutex guards the positions and the list of segments. The appender (the event log's
 * writer) writes under it; the reader (the webhook's sender) reads the files outside it and
 * checks afterwards, by a generation number, that the bound did not drop what it read
 * meanwhile. Nothing is fsynced: a record reaches the disk as the event log's own records
 * do, and a crash that tears the last line is repaired at the next open.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/core.h"
#include "webhook/internal.h"

/* Records per writev(2): two iovecs each (the line, then "\n"), within IOV_MAX (1024). */
#define APPEND_BATCH 256
/* The reader reads this much at a time, more only for a longer line. */
#define READ_CHUNK (64 * 1024)
/* Drops are logged at once, then at most once a minute with the count since. */
#define DROP_LOG_INTERVAL_US (60 * USEC)

struct segment {
	uint64_t first; /* the id of its first record: its name */
	uint64_t bytes;
};

struct backlog {
	char *dir; /* for messages */
	int dirfd;
	bool chown;
	unsigned uid, gid;
	uint64_t max_bytes, segment_bytes, record_max;
	uint64_t epoch;

	pthread_mutex_t lock;
	struct segment *segs; /* oldest first; records are appended to the last one */
	size_t nsegs, segcap;
	int append_fd; /* the last segment's; -1: the next append starts a segment */
	uint64_t next_id;
	uint64_t total_bytes;
	/* The read position: the next record to put in a batch, its segment, where in it. */
	uint64_t rd_id, rd_seg, rd_off;
	uint64_t rd_gen; /* moved when the bound drops what the reader was at */
	/* The acknowledged position, as written to the state file. */
	uint64_t ack_id, ack_seg, ack_off;
	/* Records of the batch in flight whose segment the bound dropped: in memory only, still
	 * to be acknowledged (the acknowledged position moved past them). */
	uint64_t held;
	uint64_t dropped, damaged;
	uint64_t drops_unlogged, drop_logged_us;

	/* The reader's own (no lock): its descriptor, and the segment it is of. */
	int rd_fd;
	uint64_t rd_fd_seg;
	char *rdbuf;
	size_t rdcap;
};

static void
segment_name(uint64_t first, char *buf, size_t size)
{
	snprintf(buf, size, "%020" PRIu64 ".jsonl", first);
}

static void
give(struct backlog *b, int fd)
{
	/* Only root can, and only root needs to: files made before privileges are dropped. */
	if (b->chown && geteuid() == 0 && fchown(fd, b->uid, b->gid) < 0)
		log_warn("webhook backlog %s: chown: %s", b->dir, strerror(errno));
}

/* ---- Dropping, under the lock ---- */

static void
note_drops(struct backlog *b, uint64_t n, const char *why)
{
	uint64_t now = time_mono_us();

	if (n == 0)
		return;
	b->dropped += n;
	b->drops_unlogged += n;
	if (b->drop_logged_us != 0 && now - b->drop_logged_us < DROP_LOG_INTERVAL_US)
		return;
	log_warn("webhook backlog %s: %" PRIu64 " records dropped (%s; %" PRIu64 " in all)", b->dir,
	         b->drops_unlogged, why, b->dropped);
	b->drops_unlogged = 0;
	b->drop_logged_us = now;
}

/* Removes the oldest segment, whose records are all acknowledged, read or dropped: a
 * position at its end moves to the next one's start. */
static void
remove_first_segment(struct backlog *b)
{
	uint64_t first = b->segs[0].first;
	uint64_t next = b->nsegs > 1 ? b->segs[1].first : b->next_id;
	char name[32];

	segment_name(first, name, sizeof(name));
	if (unlinkat(b->dirfd, name, 0) < 0 && errno != ENOENT)
		log_warn("webhook backlog %s: remove %s: %s", b->dir, name, strerror(errno));
	b->total_bytes -= b->segs[0].bytes;
	if (b->nsegs == 1 && b->append_fd >= 0) {
		close(b->append_fd);
		b->append_fd = -1;
	}
	memmove(b->segs, b->segs + 1, (b->nsegs - 1) * sizeof(*b->segs));
	b->nsegs--;
	if (b->rd_seg == first) {
		b->rd_seg = next;
		b->rd_off = 0;
		if (b->rd_id < next)
			b->rd_id = next;
	}
	if (b->ack_seg == first) {
		b->ack_seg = next;
		b->ack_off = 0;
		if (b->ack_id < next)
			b->ack_id = next;
	}
}

/* The oldest segment goes, with the records in it not yet read (those read are in a batch,
 * in memory, and are sent). false if there is none. */
static bool
drop_oldest(struct backlog *b)
{
	uint64_t end;

	if (b->nsegs == 0)
		return false;
	end = b->nsegs > 1 ? b->segs[1].first : b->next_id;
	if (b->rd_id < end) {
		note_drops(b, end - (b->rd_id > b->segs[0].first ? b->rd_id : b->segs[0].first),
		           "backlog_max reached: the oldest go");
		b->rd_seg = b->segs[0].first; /* moved to the next segment's start below */
		b->rd_gen++;
	}
	if (b->ack_id < end) {
		b->held += (b->rd_id < end ? b->rd_id : end) - b->ack_id;
		b->ack_seg = b->segs[0].first;
	}
	remove_first_segment(b);
	return true;
}

/* ---- Appending, under the lock ---- */

static int
start_segment(struct backlog *b)
{
	char name[32];
	int fd;

	if (b->append_fd >= 0) {
		close(b->append_fd);
		b->append_fd = -1;
	}
	segment_name(b->next_id, name, sizeof(name));
	fd = openat(b->dirfd, name,
	            O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_warn("webhook backlog %s: create %s: %s", b->dir, name, strerror(errno));
		return -1;
	}
	give(b, fd);
	if (b->nsegs == b->segcap) {
		b->segcap = b->segcap ? 2 * b->segcap : 16;
		b->segs = xrealloc(b->segs, b->segcap * sizeof(*b->segs));
	}
	b->segs[b->nsegs++] = (struct segment){b->next_id, 0};
	b->append_fd = fd;
	return 0;
}

struct pending {
	struct iovec iov[2 * APPEND_BATCH];
	size_t n;     /* records */
	size_t bytes; /* their octets with the newlines */
};

/* Writes what is pending to the last segment. A short write (a full disk) is cut off again,
 * so that the segment holds whole lines only, and its records count as dropped. */
static size_t
flush(struct backlog *b, struct pending *p)
{
	struct segment *s;
	size_t done = 0;
	ssize_t w;

	if (p->n == 0)
		return 0;
	s = &b->segs[b->nsegs - 1];
	w = writev(b->append_fd, p->iov, (int)(2 * p->n));
	if (w == (ssize_t)p->bytes) {
		s->bytes += p->bytes;
		b->total_bytes += p->bytes;
		b->next_id += p->n;
		done = p->n;
	} else {
		log_warn("webhook backlog %s: write: %s", b->dir,
		         w < 0 ? strerror(errno) : "short write (disk full?)");
		if (w > 0 && ftruncate(b->append_fd, (off_t)s->bytes) < 0) {
			/* The segment now ends in a partial line: start another one. */
			log_warn("webhook backlog %s: truncate: %s", b->dir, strerror(errno));
			close(b->append_fd);
			b->append_fd = -1;
		}
		note_drops(b, p->n, "could not be written");
	}
	p->n = 0;
	p->bytes = 0;
	return done;
}

size_t
backlog_append(struct backlog *b, const struct backlog_item *items, size_t n)
{
	static char newline[] = "\n";
	struct pending p = {.n = 0};
	size_t appended = 0;

	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < n; i++) {
		uint64_t len = items[i].len + 1;
		struct segment *last;

		if (len > b->record_max) {
			note_drops(b, 1, "a record larger than the backlog takes");
			continue;
		}
		/* Room first: whole segments, oldest first. */
		while (b->total_bytes + p.bytes + len > b->max_bytes) {
			appended += flush(b, &p);
			if (!drop_oldest(b))
				break;
		}
		last = b->nsegs > 0 ? &b->segs[b->nsegs - 1] : NULL;
		if (b->append_fd < 0 || last == NULL ||
		    (last->bytes + p.bytes > 0 && last->bytes + p.bytes + len > b->segment_bytes)) {
			appended += flush(b, &p);
			if (start_segment(b) < 0) {
				note_drops(b, 1, "could not be written");
				continue;
			}
		}
		p.iov[2 * p.n] = (struct iovec){(void *)items[i].data, items[i].len};
		p.iov[2 * p.n + 1] = (struct iovec){newline, 1};
		p.n++;
		p.bytes += len;
		if (p.n == APPEND_BATCH)
			appended += flush(b, &p);
	}
	appended += flush(b, &p);
	pthread_mutex_unlock(&b->lock);
	return appended;
}

/* ---- Reading ---- */

static void
batch_add(struct backlog_batch *bt, uint64_t id, const char *line, size_t len)
{
	if (bt->n == bt->ncap) {
		bt->ncap = bt->ncap ? 2 * bt->ncap : 64;
		bt->recs = xrealloc(bt->recs, bt->ncap * sizeof(*bt->recs));
	}
	if (bt->len + len > bt->cap) {
		while (bt->len + len > bt->cap)
			bt->cap = bt->cap ? 2 * bt->cap : 64 * 1024;
		bt->buf = xrealloc(bt->buf, bt->cap);
	}
	memcpy(bt->buf + bt->len, line, len);
	bt->recs[bt->n++] = (struct backlog_rec){id, bt->len, len};
	bt->len += len;
}

static int
reader_open(struct backlog *b, uint64_t seg)
{
	char name[32];

	if (b->rd_fd >= 0 && b->rd_fd_seg == seg)
		return 0;
	if (b->rd_fd >= 0)
		close(b->rd_fd);
	segment_name(seg, name, sizeof(name));
	b->rd_fd = openat(b->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	b->rd_fd_seg = seg;
	return b->rd_fd >= 0 ? 0 : -1;
}

static ssize_t
read_at(int fd, char *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* What one pass over a chunk of a segment found. */
struct scan {
	uint64_t id, off; /* the position after what was taken */
	uint64_t damaged;
	bool full;      /* the batch is full */
	bool need_more; /* no whole line in the chunk: read a longer one */
};

static void
scan_chunk(const char *buf, size_t len, uint64_t limit, struct backlog_batch *bt,
           size_t max_records, size_t max_bytes, struct scan *sc)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t l;

		if (nl == NULL) {
			sc->need_more = pos == 0;
			return;
		}
		l = (size_t)(nl - (buf + pos));
		if (bt->n >= max_records || (bt->n > 0 && bt->len + l > max_bytes)) {
			sc->full = true;
			return;
		}
		/* Past limit, a segment has more lines than its successor's name leaves it ids
		 * for: damaged, and they take no id (the ids are the next segment's). */
		if (sc->id < limit && webhook_record_valid(buf + pos, l))
			batch_add(bt, sc->id, buf + pos, l);
		else
			sc->damaged++;
		if (sc->id < limit)
			sc->id++;
		sc->off += l + 1;
		pos += l + 1;
	}
}

size_t
backlog_read(struct backlog *b, struct backlog_batch *bt, size_t max_records, size_t max_bytes)
{
	size_t want = READ_CHUNK;

	bt->len = bt->n = 0;
	bt->ends = false;
	if (max_records == 0)
		return 0;
	for (;;) {
		uint64_t gen, seg, avail, limit;
		size_t n0 = bt->n, len0 = bt->len, i;
		struct scan sc = {0};
		bool last;
		ssize_t got;

		pthread_mutex_lock(&b->lock);
		if (b->rd_id >= b->next_id) {
			pthread_mutex_unlock(&b->lock);
			break;
		}
		for (i = 0; i < b->nsegs && b->segs[i].first != b->rd_seg; i++)
			;
		if (i == b->nsegs) {
			/* Cannot be (the bound moves the position with what it drops): start over
			 * at the oldest record rather than stop for good. */
			log_warn("webhook backlog %s: read position in no segment: skipping to the "
			         "oldest record",
			         b->dir);
			if (b->nsegs == 0) {
				b->rd_id = b->rd_seg = b->next_id;
				b->rd_off = 0;
				pthread_mutex_unlock(&b->lock);
				break;
			}
			b->rd_seg = b->rd_id = b->segs[0].first;
			b->rd_off = 0;
			b->rd_gen++;
			pthread_mutex_unlock(&b->lock);
			continue;
		}
		gen = b->rd_gen;
		seg = b->rd_seg;
		sc.id = b->rd_id;
		sc.off = b->rd_off;
		avail = b->segs[i].bytes;
		last = i + 1 == b->nsegs;
		limit = last ? b->next_id : b->segs[i + 1].first;
		pthread_mutex_unlock(&b->lock);

		if (sc.off >= avail) {
			if (last)
				break;
			/* The end of a finished segment: on to the next one. Ids it should have
			 * held and did not (a damaged file) are counted as damaged. */
			sc.damaged = sc.id < limit ? limit - sc.id : 0;
			sc.id = limit;
			sc.off = 0;
			seg = limit;
			goto commit;
		}
		if (reader_open(b, seg) < 0) {
			pthread_mutex_lock(&b->lock);
			bool moved = gen != b->rd_gen;
			pthread_mutex_unlock(&b->lock);
			if (moved) /* dropped meanwhile */
				continue;
			log_warn("webhook backlog %s: open segment %" PRIu64 ": %s: skipped",
			         b->dir, seg, strerror(errno));
			sc.damaged = limit > sc.id ? limit - sc.id : 0;
			sc.id = limit;
			sc.off = 0;
			if (last) { /* the records appended next go to a new segment */
				pthread_mutex_lock(&b->lock);
				if (gen == b->rd_gen && b->append_fd >= 0) {
					close(b->append_fd);
					b->append_fd = -1;
				}
				pthread_mutex_unlock(&b->lock);
			}
			seg = limit;
			goto commit;
		}
		if (want > avail - sc.off)
			want = (size_t)(avail - sc.off);
		if (want > b->rdcap) {
			b->rdcap = want;
			b->rdbuf = xrealloc(b->rdbuf, b->rdcap);
		}
		got = read_at(b->rd_fd, b->rdbuf, want, sc.off);
		if (got < 0) {
			log_warn("webhook backlog %s: read segment %" PRIu64 ": %s", b->dir, seg,
			         strerror(errno));
			break;
		}
		scan_chunk(b->rdbuf, (size_t)got, limit, bt, max_records, max_bytes, &sc);
		if (sc.need_more) {
			if ((size_t)got == want && want < b->record_max + 1 &&
			    sc.off + want < avail) {
				want = want * 4 > b->record_max + 1 ? (size_t)b->record_max + 1
				                                    : want * 4;
				continue;
			}
			/* No newline within the longest record there can be, or a last line
			 * without one: not a record. Skip to the next newline. */
			uint64_t o = sc.off + (uint64_t)got;
			bool found = false;

			if (last && sc.off + (uint64_t)got >= avail)
				break; /* the appender writes whole lines: damage, ended by the next
				        */

			while (o < avail && !found) {
				size_t w =
				    avail - o < READ_CHUNK ? (size_t)(avail - o) : READ_CHUNK;
				ssize_t r = read_at(b->rd_fd, b->rdbuf, w, o);
				char *nl;

				if (r <= 0)
					break;
				nl = memchr(b->rdbuf, '\n', (size_t)r);
				if (nl != NULL) {
					o += (uint64_t)(nl - b->rdbuf) + 1;
					found = true;
				} else
					o += (uint64_t)r;
			}
			sc.damaged++;
			if (sc.id < limit)
				sc.id++;
			sc.off = found ? o : avail;
		}
		want = READ_CHUNK;
	commit:
		pthread_mutex_lock(&b->lock);
		if (gen != b->rd_gen) {
			/* The bound dropped what was read: those records are not sent. */
			bt->n = n0;
			bt->len = len0;
			pthread_mutex_unlock(&b->lock);
			continue;
		}
		if (sc.damaged > 0)
			log_warn("webhook backlog %s: %" PRIu64 " damaged lines in segment %" PRIu64
			         ": skipped",
			         b->dir, sc.damaged, b->rd_seg);
		b->damaged += sc.damaged;
		b->rd_id = sc.id;
		b->rd_seg = seg;
		b->rd_off = sc.off;
		bt->end_id = sc.id;
		bt->end_seg = seg;
		bt->end_off = sc.off;
		bt->ends = true;
		pthread_mutex_unlock(&b->lock);
		if (sc.full || bt->n >= max_records)
			break;
	}
	return bt->n;
}

/* ---- Acknowledging ---- */

static int
write_state(struct backlog *b, const struct backlog_state *st)
{
	char line[BACKLOG_STATE_MAX];
	size_t len = backlog_state_format(st, line, sizeof(line));
	int fd = openat(b->dirfd, "state.tmp",
	                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		goto fail;
	give(b, fd);
	if (write(fd, line, len) != (ssize_t)len) {
		close(fd);
		goto fail;
	}
	close(fd);
	/* rename(2) replaces the old state whole: a crash leaves one or the other. */
	if (renameat(b->dirfd, "state.tmp", b->dirfd, "state") < 0)
		goto fail;
	return 0;
fail:
	log_warn("webhook backlog %s: cannot write the state file (acknowledged records would be "
	         "sent again after a restart): %s",
	         b->dir, strerror(errno));
	return -1;
}

int
backlog_ack(struct backlog *b, const struct backlog_batch *bt)
{
	struct backlog_state st;

	if (!bt->ends)
		return 0;
	pthread_mutex_lock(&b->lock);
	if (bt->end_id > b->ack_id) {
		b->ack_id = bt->end_id;
		b->ack_seg = bt->end_seg;
		b->ack_off = bt->end_off;
	}
	b->held = 0; /* one batch in flight at a time: this one */
	/* Segments whose every record is acknowledged; the last one is kept for appending. */
	while (b->nsegs > 1 && b->segs[1].first <= b->ack_id)
		remove_first_segment(b);
	st = (struct backlog_state){b->epoch, b->ack_id, b->ack_seg, b->ack_off};
	pthread_mutex_unlock(&b->lock);
	return write_state(b, &st);
}

void
backlog_rewind(struct backlog *b)
{
	pthread_mutex_lock(&b->lock);
	b->rd_id = b->ack_id;
	b->rd_seg = b->ack_seg;
	b->rd_off = b->ack_off;
	b->rd_gen++;
	b->held = 0; /* given up */
	pthread_mutex_unlock(&b->lock);
}

uint64_t
backlog_unread(struct backlog *b)
{
	uint64_t n;

	pthread_mutex_lock(&b->lock);
	n = b->next_id > b->rd_id ? b->next_id - b->rd_id : 0;
	pthread_mutex_unlock(&b->lock);
	return n;
}

void
backlog_stats(struct backlog *b, struct backlog_stats *st)
{
	pthread_mutex_lock(&b->lock);
	st->bytes = b->total_bytes;
	st->records = (b->next_id > b->ack_id ? b->next_id - b->ack_id : 0) + b->held;
	st->unread = b->next_id > b->rd_id ? b->next_id - b->rd_id : 0;
	st->dropped = b->dropped;
	st->damaged = b->damaged;
	pthread_mutex_unlock(&b->lock);
}

uint64_t
backlog_epoch(const struct backlog *b)
{
	return b->epoch;
}

void
backlog_batch_free(struct backlog_batch *bt)
{
	free(bt->buf);
	free(bt->recs);
	memset(bt, 0, sizeof(*bt));
}

/* ---- Opening: what a previous run (or a crash) left ---- */

static int
segment_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct segment *)a)->first, y = ((const struct segment *)b)->first;

	return x < y ? -1 : x > y;
}

/* The segments in the directory, sorted; other files are reported and left alone. */
static int
list_segments(struct backlog *b)
{
	int fd = dup(b->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		uint64_t id;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, "state") == 0)
			continue;
		if (strcmp(e->d_name, "state.tmp") == 0) { /* a write the last run did not finish */
			unlinkat(b->dirfd, e->d_name, 0);
			continue;
		}
		if (backlog_segment_id(e->d_name, &id) < 0 ||
		    fstatat(b->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode)) {
			log_warn("webhook backlog %s: %s: not a segment of the backlog: ignored",
			         b->dir, e->d_name);
			continue;
		}
		if (b->chown && geteuid() == 0 &&
		    fchownat(b->dirfd, e->d_name, b->uid, b->gid, AT_SYMLINK_NOFOLLOW) < 0)
			log_warn("webhook backlog %s: chown %s: %s", b->dir, e->d_name,
			         strerror(errno));
		if (b->nsegs == b->segcap) {
			b->segcap = b->segcap ? 2 * b->segcap : 16;
			b->segs = xrealloc(b->segs, b->segcap * sizeof(*b->segs));
		}
		b->segs[b->nsegs++] = (struct segment){id, (uint64_t)st.st_size};
	}
	closedir(d);
	if (b->nsegs > 1)
		qsort(b->segs, b->nsegs, sizeof(*b->segs), segment_cmp);
	for (size_t i = 0; i < b->nsegs; i++)
		b->total_bytes += b->segs[i].bytes;
	return 0;
}

/* Counts the lines of a segment up to its end, or up to max lines; *end is the offset after
 * the last newline counted. */
static int
count_lines(struct backlog *b, int fd, uint64_t max, uint64_t *lines, uint64_t *end)
{
	char buf[64 * 1024];
	uint64_t off = 0, n = 0;
	ssize_t r;

	*end = 0;
	while (n < max && (r = pread(fd, buf, sizeof(buf), (off_t)off)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (ssize_t i = 0; i < r && n < max; i++) {
			if (buf[i] == '\n') {
				n++;
				*end = off + (uint64_t)i + 1;
			}
		}
		off += (uint64_t)r;
	}
	*lines = n;
	return 0;
}

/* The last segment: its lines give the next id; a partial last line (the process died in the
 * middle of a write) is cut off. */
static int
recover_last(struct backlog *b)
{
	struct segment *s = &b->segs[b->nsegs - 1];
	char name[32];
	uint64_t lines, end;
	int fd;

	segment_name(s->first, name, sizeof(name));
	fd = openat(b->dirfd, name, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || count_lines(b, fd, UINT64_MAX, &lines, &end) < 0) {
		log_warn("webhook backlog %s: %s: %s", b->dir, name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (end < s->bytes) {
		log_warn("webhook backlog %s: %s: a partial record at the end (%" PRIu64
		         " octets, a write cut short): removed",
		         b->dir, name, s->bytes - end);
		if (ftruncate(fd, (off_t)end) < 0) {
			log_warn("webhook backlog %s: %s: truncate: %s", b->dir, name,
			         strerror(errno));
			close(fd);
			return -1;
		}
		b->total_bytes -= s->bytes - end;
		s->bytes = end;
		b->damaged++;
	}
	b->next_id = s->first + lines;
	b->append_fd = fd;
	return 0;
}

/* Where the state says the acknowledged record is, checked against the files: the offset
 * must be a line's start; if not, the lines are counted. */
static void
place_ack(struct backlog *b, const struct backlog_state *st)
{
	size_t i = 0;
	const struct segment *s;
	char name[32];
	uint64_t lines, end;
	int fd;

	if (b->nsegs == 0 || st->ack_id <= b->segs[0].first) {
		/* Before the oldest record there is (what was between was dropped): from there. */
		b->ack_id = b->nsegs > 0 ? b->segs[0].first : b->next_id;
		b->ack_seg = b->ack_id;
		b->ack_off = 0;
		return;
	}
	while (i + 1 < b->nsegs && b->segs[i + 1].first <= st->ack_id)
		i++;
	s = &b->segs[i];
	b->ack_id = st->ack_id;
	b->ack_seg = s->first;
	b->ack_off = 0;
	if (st->ack_id == s->first)
		return;
	/* The lines are counted, not the offset trusted: an offset at a line's start but not
	 * at the acknowledged record's would have new records taken as acknowledged. */
	segment_name(s->first, name, sizeof(name));
	fd = openat(b->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || count_lines(b, fd, st->ack_id - s->first, &lines, &end) < 0) {
		lines = 0;
		end = 0;
	}
	if (fd >= 0)
		close(fd);
	if (st->ack_seg != s->first || st->ack_off != end)
		log_warn("webhook backlog %s: the state's offset is not the acknowledged record's: "
		         "counted the lines",
		         b->dir);
	/* Fewer lines than that: the segment ends before the record; start at its end. */
	b->ack_id = s->first + lines;
	b->ack_off = end;
}

static void
recover(struct backlog *b)
{
	struct backlog_state st;
	bool have_state = false;
	char text[BACKLOG_STATE_MAX + 1];
	const char *why;
	int fd;

	fd = openat(b->dirfd, "state", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		ssize_t n = read(fd, text, sizeof(text));

		close(fd);
		if (n >= 0 && backlog_state_parse(text, (size_t)n, &st, &why) == 0)
			have_state = true;
		else
			log_warn(
			    "webhook backlog %s: state file damaged (%s): sending again from the "
			    "oldest record",
			    b->dir, n < 0 ? strerror(errno) : why);
	} else if (errno != ENOENT)
		log_warn("webhook backlog %s: state file: %s: sending again from the oldest record",
		         b->dir, strerror(errno));
	if (have_state) {
		b->epoch = st.epoch;
	} else if (getrandom(&b->epoch, sizeof(b->epoch), 0) != sizeof(b->epoch)) {
		b->epoch = time_now_us() ^ ((uint64_t)getpid() << 32);
	}

	b->next_id = have_state ? st.ack_id : 1;
	if (b->nsegs > 0 && recover_last(b) < 0) {
		/* Unusable: the next records go to a new segment after any id it can hold (a
		 * line is at least its newline). */
		b->next_id = b->segs[b->nsegs - 1].first + b->segs[b->nsegs - 1].bytes + 1;
		if (have_state && st.ack_id > b->next_id)
			b->next_id = st.ack_id;
	}
	if (have_state && st.ack_id > b->next_id) {
		/* The receiver has acknowledged more than there is: whatever is left was sent. */
		log_warn("webhook backlog %s: the state acknowledges record %" PRIu64
		         " and the files end at %" PRIu64 ": they were all sent",
		         b->dir, st.ack_id, b->next_id);
		while (b->nsegs > 0)
			remove_first_segment(b);
		b->next_id = st.ack_id;
	}
	if (have_state)
		place_ack(b, &st);
	else {
		b->ack_id = b->nsegs > 0 ? b->segs[0].first : b->next_id;
		b->ack_seg = b->ack_id;
		b->ack_off = 0;
	}
	b->rd_id = b->ack_id;
	b->rd_seg = b->ack_seg;
	b->rd_off = b->ack_off;
	/* A smaller backlog_max than the files take now: the bound applies at once. */
	while (b->total_bytes > b->max_bytes && b->nsegs > 0)
		drop_oldest(b);
	/* A new epoch is kept at once: records sent before the first acknowledgement keep their
	 * event_id if they are sent again after a restart. */
	if (!have_state) {
		st = (struct backlog_state){b->epoch, b->ack_id, b->ack_seg, b->ack_off};
		write_state(b, &st);
	}
}

struct backlog *
backlog_open(const char *dir, const struct run_user *owner, uint64_t max_bytes, char *err,
             size_t errlen)
{
	struct backlog *b;
	int dirfd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	b = xcalloc(1, sizeof(*b));
	b->dir = xstrdup(dir);
	b->dirfd = dirfd;
	b->append_fd = -1;
	b->rd_fd = -1;
	if (owner != NULL) {
		b->chown = true;
		b->uid = owner->uid;
		b->gid = owner->gid;
	}
	b->max_bytes = max_bytes < BACKLOG_SEGMENT_MIN ? BACKLOG_SEGMENT_MIN : max_bytes;
	b->segment_bytes = b->max_bytes / 16;
	if (b->segment_bytes < BACKLOG_SEGMENT_MIN)
		b->segment_bytes = BACKLOG_SEGMENT_MIN;
	if (b->segment_bytes > BACKLOG_SEGMENT_MAX)
		b->segment_bytes = BACKLOG_SEGMENT_MAX;
	b->record_max = b->max_bytes < BACKLOG_RECORD_MAX ? b->max_bytes : BACKLOG_RECORD_MAX;
	pthread_mutex_init(&b->lock, NULL);
	give(b, dirfd);
	if (list_segments(b) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		backlog_close(b);
		return NULL;
	}
	recover(b);
	return b;
}

void
backlog_close(struct backlog *b)
{
	if (b == NULL)
		return;
	if (b->append_fd >= 0)
		close(b->append_fd);
	if (b->rd_fd >= 0)
		close(b->rd_fd);
	close(b->dirfd);
	pthread_mutex_destroy(&b->lock);
	free(b->segs);
	free(b->rdbuf);
	free(b->dir);
	free(b);
}
