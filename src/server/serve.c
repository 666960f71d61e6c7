/* serve.c - placeholder. */
#include <stdio.h>
#include "servers.h"
int sg_serve_main(int argc, char **argv)
{
	fprintf(stderr, "signgate serve: not built yet\n");
	return 2;
}
