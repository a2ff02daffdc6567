/* bench/classify.c - what the bounce classifier costs: classifications per second of real
 * replies against etc/bounce-rules.conf, uncached (every reply matched against the rules),
 * cached on one thread, and cached on N threads sharing one table. Built and run by
 * bench/classify.sh.
 *
 *   classify RULES [SECONDS] [THREADS]      (defaults: 2, the number of CPUs)
 *
 * The replies are those of tests/unit/test_classify_defaults.c's kind, each with a per-message
 * part (recipient, client IP address, queue id) that changes with every reply, as in real
 * traffic: the cache only helps because normalising masks those parts. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "classify/classify.h"

/* %u: a number that differs per message; used as a recipient, an IP octet or in an id. */
static const struct {
	const char *mx;
	int code;
	const char *status;
	const char *fmt;
} templates[] = {
    {"gmail-smtp-in.l.google.com", 550, "5.1.1",
     "The email account that you tried to reach does not exist. Please try\ndouble-checking the "
     "recipient's email address for typos or\nunnecessary spaces. For more information, go "
     "to\n https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-5c1a2b3c4d5si%07ua12.345 "
     "- gsmtp"},
    {"gmail-smtp-in.l.google.com", 421, "4.7.28",
     "[192.0.2.%u      15] Our system has detected an unusual rate of\nunsolicited mail "
     "originating from your IP address. To protect our\nusers from spam, mail sent from your IP "
     "address has been temporarily\nrate limited. Please visit\n "
     "https://support.google.com/mail/?p=UnsolicitedRateLimitError to\nreview our Bulk Email "
     "Senders Guidelines. d2e1a72fcca58-6e2b3c4b8f0si%06upfb.123 - gsmtp"},
    {"gmail-smtp-in.l.google.com", 452, "4.2.2",
     "The email account that you tried to reach is over quota. Please direct\nthe recipient "
     "to\n https://support.google.com/mail/?p=OverQuotaTemp 5b1f17b1804b1-42f%07usi123456f8.789 "
     "- gsmtp"},
    {"hotmail-com.olc.protection.outlook.com", 550, "5.7.1",
     "Unfortunately, messages from [192.0.2.%u] weren't sent. Please contact your Internet "
     "service provider since part of their network is on our block list (S3150). You can also "
     "refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. "
     "[DB3EUR04FT007.eop-eur04.prod.protection.outlook.com 2024-05-08T09:12:33.456Z "
     "08DC6D1A2B3C4D5E]"},
    {"hotmail-com.olc.protection.outlook.com", 550, "5.5.0",
     "Requested action not taken: mailbox unavailable. [AM4PEPF0%07u.EURPRD83.prod.outlook.com "
     "2024-05-08T09:12:33.456Z 08DC6D1A2B3C4D5E]"},
    {"mta7.am0.yahoodns.net", 421, "4.7.0",
     "[TSS04] Messages from 192.0.2.%u temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"},
    {"mta7.am0.yahoodns.net", 554, "",
     "delivery error: dd This user doesn't have a yahoo.com account (user%u@yahoo.com) [0] - "
     "mta1147.mail.ir2.yahoo.com"},
    {"mx01.mail.icloud.com", 550, "5.1.1", "<user%u@icloud.com>: user does not exist"},
    {"mx1a1.comcast.net", 554, "",
     "resimta-ch2-05v.sys.comcast.net resimta-ch2-05v.sys.comcast.net 192.0.2.%u found on one "
     "or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001"},
    {"mx00.emig.gmx.net", 550, "",
     "<user%u@gmx.de>: Requested action not taken: mailbox "
     "unavailable"},
    {"smtp-in.orange.fr", 421, "",
     "mwinf5c%02u ME Trop de connexions, veuillez verifier votre configuration. Too many "
     "connections, slow down. OFR004_104 [104]"},
    {"mx.example.com", 550, "5.1.1",
     "<user%u@example.com>: Recipient address rejected: User unknown in local recipient table"},
    {"mx.example.com", 554, "5.7.1",
     "Service unavailable; Client host [192.0.2.%u] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/192.0.2.1"},
    {"mx.example.com", 450, "4.2.0",
     "<user%u@example.com>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.com.html"},
    {"mx.example.com", 451, "4.4.1",
     "connect to mx.example.com[192.0.2.%u]:25: Connection "
     "refused"},
    {"mx.example.com", 552, "5.3.4", "Message size exceeds fixed limit (queue id 4Tz8%07uz9A)"},
};

#define NREPLIES 20000

struct reply {
	const char *provider;
	int code;
	const char *status;
	char text[1024];
};

static struct reply replies[NREPLIES];

struct run {
	struct classify_table *t;
	double seconds;
	unsigned start; /* first reply, so threads do not walk in step */
	unsigned long long n;
	unsigned sink; /* the answers, summed: keeps the loop from being optimised away */
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
loop(void *arg)
{
	struct run *r = arg;
	unsigned long long n = 0;
	unsigned i = r->start;
	double end = now() + r->seconds;
	struct classify_result res;
	unsigned sink = 0;

	do {
		/* Check the clock every 256 replies: now() is not free either. */
		for (int k = 0; k < 256; k++, n++, i = (i + 1) % NREPLIES) {
			const struct reply *p = &replies[i];

			classify_reply(r->t, p->provider, p->code, p->status, p->text, &res);
			sink += (unsigned)res.category;
		}
	} while (now() < end);
	r->n = n;
	r->sink = sink;
	return NULL;
}

static double
rate(struct classify_table *t, double seconds, int threads)
{
	pthread_t th[64];
	struct run runs[64];
	unsigned long long total = 0;
	double t0 = now();

	for (int i = 0; i < threads; i++) {
		runs[i] = (struct run){
		    .t = t, .seconds = seconds, .start = (unsigned)i * (NREPLIES / 64)};
		pthread_create(&th[i], NULL, loop, &runs[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		total += runs[i].n;
	}
	return (double)total / (now() - t0);
}

int
main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "etc/bounce-rules.conf";
	double seconds = argc > 2 ? atof(argv[2]) : 2;
	int threads = argc > 3 ? atoi(argv[3]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
	struct classify_table *cached, *uncached;
	struct classify_stats st;
	char err[1024];
	double r;

	if (threads < 1 || threads > 64)
		threads = 1;
	cached = classify_load(path, CLASSIFY_DEF_CACHE_ENTRIES, err, sizeof(err));
	uncached = classify_load(path, 0, err, sizeof(err));
	if (cached == NULL || uncached == NULL) {
		fprintf(stderr, "classify: %s\n", err);
		return 1;
	}
	for (unsigned i = 0; i < NREPLIES; i++) {
		unsigned k = i % (sizeof(templates) / sizeof(templates[0]));

		replies[i].provider = classify_provider_of(cached, templates[k].mx);
		replies[i].code = templates[k].code;
		replies[i].status = templates[k].status;
		snprintf(replies[i].text, sizeof(replies[i].text), templates[k].fmt,
		         (i * 2654435761u) % (templates[k].fmt[0] == 'm' ? 100 : 10000000));
	}
	printf("rules: %s, %zu rules, %zu providers; %d distinct replies (%zu kinds)\n", path,
	       classify_rule_count(cached), classify_provider_count(cached), NREPLIES,
	       sizeof(templates) / sizeof(templates[0]));
	r = rate(uncached, seconds, 1);
	printf("uncached, 1 thread:   %10.0f classifications/s (%.2f us each)\n", r, 1e6 / r);
	if (threads > 1) {
		r = rate(uncached, seconds, threads);
		printf("uncached, %d threads: %10.0f classifications/s\n", threads, r);
	}
	r = rate(cached, seconds, 1);
	printf("cached,   1 thread:   %10.0f classifications/s (%.2f us each)\n", r, 1e6 / r);
	if (threads > 1) {
		r = rate(cached, seconds, threads);
		printf("cached,   %d threads: %10.0f classifications/s\n", threads, r);
	}
	classify_stats(cached, &st);
	printf("cache: %llu lookups, %.4f%% hits, %zu entries of %zu\n",
	       (unsigned long long)st.lookups, 100.0 * (double)st.hits / (double)st.lookups,
	       st.entries, st.capacity);
	classify_unref(cached);
	classify_unref(uncached);
	return 0;
}
