/* Fuzz the users-file parser on arbitrary file contents: line splitting, names, every hash
 * check, domain lists (IDNA included). A typo in the file must give an error naming
 * file:line, never a crash; what loads must answer lookups and domain checks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access/access.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/drover-fuzz-users-XXXXXX", err[1024], name[ACCESS_NAME_MAX + 1];
	struct access_users *t;
	const struct access_user *u;
	int fd = mkstemp(path);
	size_t n;

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	t = access_users_load(path, err, sizeof(err));
	unlink(path);
	if (t == NULL) {
		if (strncmp(err, path, strlen(path)) != 0)
			abort(); /* every error names the file */
		return 0;
	}
	/* The first line's name, if it is one, must be found, and may send as something. */
	for (n = 0; n < size && n < ACCESS_NAME_MAX && data[n] != ':' && data[n] != '\n'; n++)
		name[n] = data[n] == '\0' ? '_' : (char)data[n];
	name[n] = '\0';
	if ((u = access_users_find(t, name)) != NULL) {
		access_user_may_send_from(u, "example.com");
		access_user_may_send_from(u, "mail.xn--bcher-kva.example");
		access_user_may_send_from(u, (const char *)name);
	}
	access_users_unref(t);
	return 0;
}
