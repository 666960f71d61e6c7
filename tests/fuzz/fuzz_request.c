/*
 * fuzz_request.c - libFuzzer harness for the signing service's request
 * parsing (POST /v1/sign bodies, src/server/sign_request.c): any bytes
 * must give a parsed request or a 400 with a message, never a crash.
 */
#include <stdint.h>
#include <string.h>

#include "sign_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sg_sign_request rq;
	char msg[300];
	int code;

	code = sg_sign_request_parse((const char *)data, size, &rq, msg, sizeof(msg));
	if(code && !memchr(msg, '\0', sizeof(msg)))
		__builtin_trap(); /* an unterminated message */
	sg_sign_request_free(&rq);
	return 0;
}
