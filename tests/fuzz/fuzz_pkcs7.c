/*
 * fuzz_pkcs7.c - libFuzzer harness for the Authenticode signature parser
 * and verifier: the input is the DER of a signature (the bCertificate of a
 * WIN_CERTIFICATE), embedded as the only signature of a known good PE
 * (SG_FUZZ_PE), then read back and verified as `signgate verify` does:
 * PKCS#7 SignedData, SpcIndirectDataContent, signer and its attributes,
 * chain and EKU, nested signatures, timestamps.  fuzz_pe reaches the same
 * code only through a PE it must first get right; here every byte goes to
 * the signature.  Built by `make fuzz`, replayed by ctest through replay.c.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "signgate/signgate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SG_FUZZ_CA
#define SG_FUZZ_CA "tests/kat/cert.pem"
#endif
#ifndef SG_FUZZ_PE
#define SG_FUZZ_PE "tests/fuzz/corpus/pe/tiny.exe"
#endif

/* A memfd holding len bytes of p, at offset 0; -1 on failure. */
static int fuzz_memfd(const char *name, const void *p, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if(fd < 0)
		return -1;
	if((len && write(fd, p, len) != (ssize_t)len) || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char *pe;
	static size_t pelen;
	sg_sig_report reps[4];
	sg_verify_opts vo = { 0 };
	sg_file *f = NULL;
	size_t n;
	int in, out;

	if(!pe && sg_read_file(SG_FUZZ_PE, 1 << 20, &pe, &pelen) != SG_OK) {
		fprintf(stderr, "fuzz_pkcs7: cannot read %s: %s\n", SG_FUZZ_PE, sg_last_error());
		abort();
	}
	if(size == 0)
		return 0;
	in = fuzz_memfd("fuzz-pkcs7-in", pe, pelen);
	out = memfd_create("fuzz-pkcs7-out", MFD_CLOEXEC);
	if(in >= 0 && out >= 0 && sg_file_open_fd(in, "tiny.exe", &f) == SG_OK) {
		sg_status rc = sg_file_write_fd(f, data, size, out, 0);
		sg_file_close(f);
		f = NULL;
		if(rc == SG_OK && lseek(out, 0, SEEK_SET) == 0 &&
		   sg_file_open_fd(out, "fuzz.exe", &f) == SG_OK) {
			vo.ca_file = SG_FUZZ_CA;
			(void)sg_verify_file(f, &vo, reps, sizeof(reps) / sizeof(reps[0]), &n);
			sg_file_close(f);
		}
	}
	if(in >= 0)
		close(in);
	if(out >= 0)
		close(out);
	return 0;
}
