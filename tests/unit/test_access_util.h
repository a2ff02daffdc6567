/* test_access_util.h - what the access tests share: hashes made by libxcrypt outside Drover,
 * users files written to scratch paths, and an event loop with a mailbox for answers. */
#ifndef DROVER_TEST_ACCESS_UTIL_H
#define DROVER_TEST_ACCESS_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "access/access.h"
#include "core/core.h"

/* Each of "correct horse battery", hashed by libxcrypt's crypt_gensalt_rn + crypt_rn (as
 * mkpasswd and chpasswd make them). */
#define PASSWORD "correct horse battery"
#define HASH_Y   "$y$j9T$3yhx9fx1xgkVNPRqrkKBz/$/HCXpQpmjdPl3b31cjmjAyBT5im7coRnJqqmkfps8c6"
#define HASH_2B  "$2b$10$Z6IinXYmEAbpHRkWcFMh8u.jamsRB3dOf5AuOKYGpmCeyo6w.17Hy"
#define HASH_2Y  "$2y$04$4q2jxr9sJzkdcfk3TUWukuAdXUr23hwOyw1OamSl4f0k0VfX2N/S2"
#define HASH_6                                                                                     \
	"$6$qEbSrgHxulJm0m1X$"                                                                     \
	"7o2yfJt2UxZJd9dLm7FiUnLb3dWIFD2kFl6ESTFj43UOxm6WISzroUxZy0YzH5MGNK37CPeOAzXLoXVbASyCM/"
#define HASH_6_ROUNDS                                                                              \
	"$6$rounds=10000$glyn8CQp/Loe0b.R$sXEncwp2ttQaPl4jMm70pwnMj1WsjhdDE7fXSGohezj0WWl9SIndYLK" \
	"GXrMn1PI8fNwU8j4.0G3OVjCV1L/W90"
#define HASH_MD5 "$1$0FY5J0XC$QCkYMVIZseUatCHUtZVD20"
#define HASH_DES "abiQ6Ep3EYTHc"

/* Writes text to a fresh file in the working directory (ctest's: the build tree); returns
 * its path, to unlink() and free(). */
static inline char *
users_file(const char *text, size_t len)
{
	char *path = xstrdup("./access-users-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

/* Loads text as a users file; NULL with the error in err (the scratch path replaced by
 * "users" so that tests can compare whole messages). */
static inline struct access_users *
load_text(const char *text, char *err, size_t errlen)
{
	char *path = users_file(text, strlen(text));
	char raw[1024] = "";
	struct access_users *t = access_users_load(path, raw, sizeof(raw));
	size_t n = strlen(path);

	if (strncmp(raw, path, n) == 0) {
		strlcpy_s(err, "users", errlen);
		strlcpy_s(err + strlen(err), raw + n, errlen - strlen(err));
	} else {
		strlcpy_s(err, raw, errlen);
	}
	unlink(path);
	free(path);
	return t;
}

/* An event loop and its mailbox, and the answers it has received. */
struct loop {
	struct event_base *base;
	struct mailbox *mbox;
	unsigned answers;
};

static inline void
loop_init(struct loop *l)
{
	l->base = event_base_new();
	assert_non_null(l->base);
	l->mbox = mailbox_new(l->base);
	l->answers = 0;
}

/* Runs what is already posted (answers of a freed verifier), then frees. */
static inline void
loop_free(struct loop *l)
{
	event_base_loop(l->base, EVLOOP_NONBLOCK);
	mailbox_free(l->mbox);
	event_base_free(l->base);
}

static inline void
loop_until(struct loop *l, unsigned n)
{
	while (l->answers < n)
		event_base_loop(l->base, EVLOOP_ONCE);
}

#endif
