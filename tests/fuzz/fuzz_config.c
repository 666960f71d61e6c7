/*
 * fuzz_config.c - libFuzzer harness for the servers' INI configuration
 * parser (src/server/config.c): any file must give a config or a
 * "FILE:LINE: reason", never a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	sg_config *c = NULL;
	FILE *fp;

	snprintf(path, sizeof(path), "/tmp/signgate-fuzz-cfg-%d.ini", (int)getpid());
	fp = fopen(path, "wb");
	if(!fp)
		return 0;
	fwrite(data, 1, size, fp);
	fclose(fp);
	if(sg_config_load(path, &c) == SG_OK)
		sg_config_free(c);
	unlink(path);
	return 0;
}
