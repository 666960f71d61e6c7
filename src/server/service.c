/* service.c - placeholder. */
#include <stdio.h>
#include "servers.h"
int sg_service_main(int argc, char **argv)
{
	fprintf(stderr, "signgate service: not built yet\n");
	return 2;
}
