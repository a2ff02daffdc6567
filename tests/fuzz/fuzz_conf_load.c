/* Fuzz the configuration loader on arbitrary file contents: comment stripping, include()
 * expansion, libconfuse's parser and every value check. An operator's typo must give an
 * error naming file:line, never a crash or an exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/drover-fuzz-conf-XXXXXX", err[4096];
	struct config *cfg;
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	cfg = config_load(path, err, sizeof(err));
	config_free(cfg);
	unlink(path);
	return 0;
}
