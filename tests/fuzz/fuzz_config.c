/*
 * fuzz_config.c - libFuzzer harness for the servers' INI configuration
 * parser and the admin page's rewriter (src/server/config.c): any file
 * must give a config or a "FILE:LINE: reason", never a crash; and a file
 * that loads must still load after the admin page sets the proxy in it,
 * with that proxy and nothing else of [serve] lost.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int load(const char *path, const void *text, size_t len, sg_config **c)
{
	FILE *fp = fopen(path, "wb");

	*c = NULL;
	if(!fp)
		return -1;
	fwrite(text, 1, len, fp);
	fclose(fp);
	return sg_config_load(path, c) == SG_OK ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const sg_cfg_change ch[] = {
		{ "proxy", "http://127.0.0.1:3128" }, { "service_proxy", NULL },
		{ "timestamp_proxy", NULL }, { "program_name", NULL },
	};
	char path[64], *text = NULL;
	sg_config *c = NULL, *c2 = NULL;

	snprintf(path, sizeof(path), "/tmp/signgate-fuzz-cfg-%d.ini", (int)getpid());
	if(load(path, data, size, &c) == 0 &&
	   sg_config_rewrite((const char *)data, size, "serve", ch, 4, &text) == SG_OK) {
		if(load(path, text, strlen(text), &c2) != 0 || !c2->proxy_url ||
		   strcmp(c2->proxy_url, "http://127.0.0.1:3128") || c2->prog_name ||
		   (c->srv_root == NULL) != (c2->srv_root == NULL) ||
		   (c->srv_root && strcmp(c->srv_root, c2->srv_root)) || c->nkeys != c2->nkeys) {
			fprintf(stderr, "rewrite broke the config:\n--- before\n%.*s\n--- after\n%s\n--- %s\n",
			        (int)size, (const char *)data, text, sg_last_error());
			abort();
		}
	}
	free(text);
	sg_config_free(c);
	sg_config_free(c2);
	unlink(path);
	return 0;
}
