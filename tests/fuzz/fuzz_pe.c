/*
 * fuzz_pe.c - libFuzzer harness for the PE parser, the Authenticode digest
 * and signature verification (PKCS#7, SpcIndirectDataContent, nested
 * signatures): every byte of the input is hostile.  Built with clang
 * -fsanitize=fuzzer by `make fuzz`; replayed over the committed corpus by
 * ctest through replay.c.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "signgate/signgate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Trust store: the known-answer test's certificate (SG_FUZZ_CA, set by
 * the build), cheap to load on every input. */
#ifndef SG_FUZZ_CA
#define SG_FUZZ_CA "tests/kat/cert.pem"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char digest[SG_MAX_MD], *sig = NULL;
	sg_sig_report reps[4];
	size_t dlen, siglen, n;
	sg_verify_opts vo = { 0 };
	sg_file *f = NULL;
	int fd;

	fd = memfd_create("fuzz-pe", MFD_CLOEXEC);
	if(fd < 0)
		return 0;
	if(write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	if(sg_file_open_fd(fd, "fuzz.exe", &f) == SG_OK) {
		(void)sg_file_digest(f, SG_MD_SHA256, -1, digest, &dlen);
		if(sg_file_get_signature(f, &sig, &siglen) == SG_OK)
			sg_free(sig);
		vo.ca_file = SG_FUZZ_CA;
		(void)sg_verify_file(f, &vo, reps, sizeof(reps) / sizeof(reps[0]), &n);
		sg_file_close(f);
	}
	close(fd);
	return 0;
}
