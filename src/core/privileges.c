/* privileges.c - running as root only as long as it takes: started as root, the server binds
 * its ports and reads its keys, certificates and users, then becomes the configured user for
 * good (docs/operations.md, "Privileges").
 *
 * setgid/setuid in glibc change every thread of the process at once, so the threads already
 * running (SMTP loops, the delivery engine, the spool) lose root with the main one.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/core.h"

int
privileges_lookup(const char *user, struct run_user *out, char *err, size_t errlen)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int rc;

	memset(out, 0, sizeof(*out));
	if (user == NULL || user[0] == '\0') {
		snprintf(
		    err, errlen,
		    "started as root but user is empty: set user = \"drover\" (the user to run "
		    "as once the ports are bound and the keys read)");
		return -1;
	}
	rc = getpwnam_r(user, &pw, buf, sizeof(buf), &found);
	if (found == NULL) {
		snprintf(err, errlen,
		         "user \"%s\": %s; create it (useradd --system --no-create-home --shell "
		         "/usr/sbin/nologin %s) or set user",
		         user, rc != 0 ? strerror(rc) : "no such user", user);
		return -1;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, errlen, "user \"%s\" is root: Drover does not run as root", user);
		return -1;
	}
	snprintf(out->name, sizeof(out->name), "%s", user);
	out->uid = pw.pw_uid;
	out->gid = pw.pw_gid;
	return 0;
}

int
privileges_drop(const struct run_user *u, char *err, size_t errlen)
{
	if (initgroups(u->name, u->gid) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0) {
		snprintf(err, errlen, "becoming user %s: %s", u->name, strerror(errno));
		return -1;
	}
	/* For good: root must not be regained. */
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
		snprintf(err, errlen, "becoming user %s: root could be regained", u->name);
		return -1;
	}
#if defined(__SANITIZE_ADDRESS__)
	/* A process that changed its user is not dumpable, and LeakSanitizer needs to attach to
	 * its own threads at exit. Sanitizer builds only: a release build keeps the kernel's
	 * protection of what root read (keys) from the unprivileged user. */
	prctl(PR_SET_DUMPABLE, 1);
#endif
	return 0;
}
