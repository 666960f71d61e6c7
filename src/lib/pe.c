/*
 * pe.c - PE/COFF images (PE32 and PE32+: .exe, .dll, .sys, .efi).
 *
 * Implements the parts of the Microsoft PE Format specification that
 * Authenticode needs: the MS-DOS stub's e_lfanew, the COFF file header, the
 * optional header's CheckSum and data directories, the section table, and
 * the attribute certificate table (data directory 4, whose "virtual
 * address" is a file offset).  The Authenticode digest follows "Windows
 * Authenticode Portable Executable Signature Format": the file is hashed
 * in order, leaving out the CheckSum field, the certificate table's
 * directory entry and the certificate table itself; data after the last
 * section (overlay) is included, and so are the zero bytes that align the
 * certificate table to 8 bytes when signing.  Like signtool and
 * osslsigncode, we require the certificate table to be the last thing in
 * the file.  Section data is not reordered: hashing in file order gives
 * the same result for every well-formed file and is what Windows does.
 */
#include <stdlib.h>
#include <endian.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "format.h"
#include "internal.h"
#include "tee.h"

#define PE_MAX_FILE 0xffffffffull /* certificate table offset is 32-bit */
#define PE_DIR_SECURITY 4
#define WIN_CERT_REVISION_2_0 0x0200
#define WIN_CERT_TYPE_PKCS_SIGNED_DATA 0x0002
#define PE_MAX_SIG (64u << 20) /* no real signature comes near this */
#define PE_MAX_ENTRIES 8
#define PE_MIN_SIG 1024

typedef struct pe_file {
	const sg_reader *r;
	uint64_t checksum_off;  /* OptionalHeader.CheckSum */
	uint64_t certdir_off;   /* DataDirectory[4] (Certificate Table) */
	uint32_t cert_off;      /* its VirtualAddress: a file offset */
	uint32_t cert_size;
	uint64_t body_end;      /* where the certificate table starts or would */
	uint32_t pad;           /* zero bytes to align body_end to 8 */
	/* PKCS_SIGNED_DATA entries' bCertificate: a file may carry several
	 * (Debian's shim has two, one per Microsoft CA). */
	uint64_t sig_off[PE_MAX_ENTRIES];
	uint32_t sig_len[PE_MAX_ENTRIES];
	unsigned nsigs;
	int digested;           /* a digest() pass teed the body (cksum valid) */
	unsigned char orig_cksum[4], orig_dir[8]; /* as the input has them */
	uint64_t cksum;         /* word sum of the body, CheckSum and dir zeroed */
} pe_file;

static int pe_probe(const unsigned char *head, size_t len)
{
	return len >= 2 && head[0] == 'M' && head[1] == 'Z';
}

/* The PE checksum is an end-around-carry sum of little-endian 16-bit words
 * (a ones' complement sum), so it can be summed in pieces in any order as
 * long as each byte keeps the parity of its file offset. */
static uint64_t pe_sum_bytes(uint64_t sum, uint64_t off,
                             const unsigned char *p, size_t len)
{
	uint64_t lo = 0, hi = 0;
	size_t i = 0, n = 0;

	if(len && (off & 1)) {
		sum += (uint64_t)p[0] << 8;
		i = 1;
	}
	/* Eight bytes at a time: four words, summed in 32-bit lanes, flushed
	 * before a lane could overflow (32768 * 0xffff < 2^32). */
	for(; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		w = le64toh(w);
		lo += w & 0x0000ffff0000ffffull;
		hi += (w >> 16) & 0x0000ffff0000ffffull;
		if(++n == 32768) {
			sum += (lo & 0xffffffff) + (lo >> 32) + (hi & 0xffffffff) + (hi >> 32);
			lo = hi = 0;
			n = 0;
		}
	}
	sum += (lo & 0xffffffff) + (lo >> 32) + (hi & 0xffffffff) + (hi >> 32);
	for(; i + 1 < len; i += 2)
		sum += (uint64_t)p[i] | ((uint64_t)p[i + 1] << 8);
	if(i < len)
		sum += p[i];
	return sum;
}

static uint32_t pe_sum_final(uint64_t sum, uint64_t file_size)
{
	while(sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint32_t)(sum + file_size);
}

static sg_status pe_check_sections(pe_file *pe, uint64_t sect_off,
                                   unsigned nsect, uint64_t *image_end)
{
	unsigned char sh[40];
	uint64_t end = sect_off + 40ull * nsect;
	sg_status rc;

	for(unsigned i = 0; i < nsect; i++) {
		char name[9];
		uint32_t raw_size, raw_ptr;

		rc = sg_reader_read(pe->r, sect_off + 40ull * i, sh, sizeof(sh),
		                    "PE section table");
		if(rc)
			return rc;
		memcpy(name, sh, 8);
		name[8] = '\0';
		for(int k = 0; k < 8 && name[k]; k++)
			if(name[k] < 0x20 || name[k] > 0x7e)
				name[k] = '?';
		raw_size = sg_le32(sh + 16);
		raw_ptr = sg_le32(sh + 20);
		if(!raw_size || !raw_ptr)
			continue; /* uninitialized data: nothing in the file */
		if(!sg_in_bounds(raw_ptr, raw_size, pe->r->size))
			return sg_fail(SG_ERR_MALFORMED,
			               "%s: PE section %u (%s) raw data runs past end of file "
			               "(offset 0x%x + 0x%x > 0x%llx)",
			               pe->r->name, i + 1, name, raw_ptr, raw_size,
			               (unsigned long long)pe->r->size);
		if((uint64_t)raw_ptr + raw_size > end)
			end = (uint64_t)raw_ptr + raw_size;
	}
	*image_end = end;
	return SG_OK;
}

/* Walks the attribute certificate table: WIN_CERTIFICATE entries, each
 * starting on an 8-byte boundary (PE Format, "The Attribute Certificate
 * Table"). */
static sg_status pe_check_cert_table(pe_file *pe)
{
	uint64_t off = pe->cert_off, end = (uint64_t)pe->cert_off + pe->cert_size;
	unsigned char wc[8];
	unsigned idx = 0;
	sg_status rc;

	while(off < end) {
		uint32_t len;
		uint16_t rev, type;

		if(end - off < 8)
			return sg_fail(SG_ERR_MALFORMED,
			               "%s: certificate table: %llu stray bytes after entry %u "
			               "(directory size 0x%x disagrees with the entries)",
			               pe->r->name, (unsigned long long)(end - off), idx,
			               pe->cert_size);
		rc = sg_reader_read(pe->r, off, wc, sizeof(wc), "certificate table entry");
		if(rc)
			return rc;
		len = sg_le32(wc);
		rev = sg_le16(wc + 4);
		type = sg_le16(wc + 6);
		if(len <= 8)
			return sg_fail(SG_ERR_MALFORMED,
			               "%s: certificate table entry %u at 0x%llx has length %u "
			               "(no certificate)", pe->r->name, idx,
			               (unsigned long long)off, len);
		if(len > end - off)
			return sg_fail(SG_ERR_MALFORMED,
			               "%s: certificate table entry %u at 0x%llx has length 0x%x, "
			               "past the table's end at 0x%llx (directory size 0x%x "
			               "disagrees with the entry)", pe->r->name, idx,
			               (unsigned long long)off, len, (unsigned long long)end,
			               pe->cert_size);
		if(rev == WIN_CERT_REVISION_2_0 && type == WIN_CERT_TYPE_PKCS_SIGNED_DATA) {
			if(len - 8 > PE_MAX_SIG)
				return sg_fail(SG_ERR_TOO_LARGE,
				               "%s: signature of %u bytes is larger than %u",
				               pe->r->name, len - 8, PE_MAX_SIG);
			if(pe->nsigs == PE_MAX_ENTRIES)
				return sg_fail(SG_ERR_TOO_LARGE, "%s: more than %d signature entries",
				               pe->r->name, PE_MAX_ENTRIES);
			pe->sig_off[pe->nsigs] = off + 8;
			pe->sig_len[pe->nsigs++] = len - 8;
		}
		off += ((uint64_t)len + 7) & ~7ull;
		idx++;
	}
	return SG_OK;
}

static sg_status pe_open(const sg_reader *r, void **ctx)
{
	unsigned char dos[64], nt[24], opt[112], dir[8];
	uint64_t pe_off, opt_off, sect_off, image_end = 0, dirs_off;
	uint32_t ndirs, fixed;
	uint16_t nsect, opt_size, magic;
	pe_file *pe;
	sg_status rc;

	*ctx = NULL;
	if(r->size > PE_MAX_FILE)
		return sg_fail(SG_ERR_TOO_LARGE,
		               "%s: %llu bytes: a PE file can be signed only below 4 GiB "
		               "(the certificate table offset is 32-bit)",
		               r->name, (unsigned long long)r->size);
	pe = calloc(1, sizeof(*pe));
	if(!pe)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	pe->r = r;

	rc = sg_reader_read(r, 0, dos, sizeof(dos), "MS-DOS header");
	if(rc)
		goto out;
	pe_off = sg_le32(dos + 0x3c); /* e_lfanew */
	rc = sg_reader_read(r, pe_off, nt, sizeof(nt),
	                    "PE signature and COFF header (at e_lfanew)");
	if(rc)
		goto out;
	if(memcmp(nt, "PE\0\0", 4)) {
		rc = sg_fail(SG_ERR_MALFORMED, "%s: no PE signature at e_lfanew 0x%llx",
		             r->name, (unsigned long long)pe_off);
		goto out;
	}
	nsect = sg_le16(nt + 4 + 2);
	opt_size = sg_le16(nt + 4 + 16);
	opt_off = pe_off + 24;
	rc = sg_reader_read(r, opt_off, opt, 2, "optional header magic");
	if(rc)
		goto out;
	magic = sg_le16(opt);
	if(magic == 0x10b)
		fixed = 96;      /* PE32: standard + Windows-specific fields */
	else if(magic == 0x20b)
		fixed = 112;     /* PE32+ */
	else {
		rc = sg_fail(SG_ERR_MALFORMED,
		             "%s: optional header magic 0x%04x is neither PE32 (0x10b) nor PE32+ (0x20b)",
		             r->name, magic);
		goto out;
	}
	if(opt_size < fixed) {
		rc = sg_fail(SG_ERR_MALFORMED,
		             "%s: SizeOfOptionalHeader %u is smaller than the %u bytes of a %s header",
		             r->name, opt_size, fixed, magic == 0x10b ? "PE32" : "PE32+");
		goto out;
	}
	rc = sg_reader_read(r, opt_off, opt, fixed, "optional header");
	if(rc)
		goto out;
	pe->checksum_off = opt_off + 64;
	memcpy(pe->orig_cksum, opt + 64, 4);
	ndirs = sg_le32(opt + fixed - 4); /* NumberOfRvaAndSizes */
	dirs_off = opt_off + fixed;
	if(ndirs <= PE_DIR_SECURITY) {
		rc = sg_fail(SG_ERR_UNSUPPORTED,
		             "%s: NumberOfRvaAndSizes is %u: no certificate table directory",
		             r->name, ndirs);
		goto out;
	}
	if(fixed + 8ull * (ndirs > 16 ? 16 : ndirs) > opt_size) {
		rc = sg_fail(SG_ERR_MALFORMED,
		             "%s: %u data directories do not fit in SizeOfOptionalHeader %u",
		             r->name, ndirs, opt_size);
		goto out;
	}
	pe->certdir_off = dirs_off + 8 * PE_DIR_SECURITY;
	rc = sg_reader_read(r, pe->certdir_off, dir, sizeof(dir),
	                    "certificate table directory entry");
	if(rc)
		goto out;
	memcpy(pe->orig_dir, dir, 8);
	pe->cert_off = sg_le32(dir);
	pe->cert_size = sg_le32(dir + 4);

	sect_off = opt_off + opt_size;
	if(!sg_in_bounds(sect_off, 40ull * nsect, r->size)) {
		rc = sg_fail(SG_ERR_MALFORMED,
		             "%s: PE section table (%u sections at 0x%llx) runs past end of file (0x%llx)",
		             r->name, nsect, (unsigned long long)sect_off,
		             (unsigned long long)r->size);
		goto out;
	}
	rc = pe_check_sections(pe, sect_off, nsect, &image_end);
	if(rc)
		goto out;

	if(!pe->cert_off && !pe->cert_size) {
		pe->body_end = r->size;
	} else if(!pe->cert_off || !pe->cert_size) {
		rc = sg_fail(SG_ERR_MALFORMED,
		             "%s: certificate table directory has address 0x%x and size 0x%x: "
		             "one is zero, the other not", r->name, pe->cert_off, pe->cert_size);
		goto out;
	} else if(pe->cert_off < image_end) {
		rc = sg_fail(SG_ERR_MALFORMED,
		             "%s: certificate table at 0x%x points inside the image "
		             "(headers and sections end at 0x%llx)",
		             r->name, pe->cert_off, (unsigned long long)image_end);
		goto out;
	} else if(pe->cert_off & 7) {
		rc = sg_fail(SG_ERR_MALFORMED,
		             "%s: certificate table at 0x%x is not 8-byte aligned",
		             r->name, pe->cert_off);
		goto out;
	} else if(!sg_in_bounds(pe->cert_off, pe->cert_size, r->size)) {
		rc = sg_fail(SG_ERR_MALFORMED,
		             "%s: certificate table (0x%x + 0x%x) runs past end of file (0x%llx)",
		             r->name, pe->cert_off, pe->cert_size, (unsigned long long)r->size);
		goto out;
	} else if((uint64_t)pe->cert_off + pe->cert_size != r->size) {
		rc = sg_fail(SG_ERR_UNSUPPORTED,
		             "%s: %llu bytes follow the certificate table (0x%x + 0x%x); "
		             "it must be at the end of the file",
		             r->name,
		             (unsigned long long)(r->size - pe->cert_off - pe->cert_size),
		             pe->cert_off, pe->cert_size);
		goto out;
	} else {
		pe->body_end = pe->cert_off;
		rc = pe_check_cert_table(pe);
		if(rc)
			goto out;
	}
	pe->pad = (uint32_t)((8 - (pe->body_end & 7)) & 7);
	*ctx = pe;
	return SG_OK;
out:
	free(pe);
	return rc;
}

/* Hashes the bytes p[0, len) found at file offset off, leaving out the
 * CheckSum field and the certificate table's directory entry (Authenticode
 * PE format, "Calculating the PE Image Hash"). */
static void pe_feed(const pe_file *pe, EVP_MD_CTX **mctx, size_t n,
                    uint64_t off, const unsigned char *p, size_t len)
{
	const uint64_t skip[2][2] = {
		{ pe->checksum_off, pe->checksum_off + 4 },
		{ pe->certdir_off, pe->certdir_off + 8 },
	};
	uint64_t pos = off, end = off + len;

	for(int k = 0; k < 2 && pos < end; k++) {
		if(skip[k][1] <= pos || skip[k][0] >= end)
			continue;
		if(skip[k][0] > pos)
			for(size_t i = 0; i < n; i++)
				EVP_DigestUpdate(mctx[i], p + (pos - off), skip[k][0] - pos);
		pos = skip[k][1] < end ? skip[k][1] : end;
	}
	if(pos < end)
		for(size_t i = 0; i < n; i++)
			EVP_DigestUpdate(mctx[i], p + (pos - off), end - pos);
}

/* Writer-thread callback: the checksum runs over every byte written. */
static void pe_sum_chunk(void *arg, uint64_t off, const unsigned char *p, size_t len)
{
	pe_file *pe = arg;

	pe->cksum = pe_sum_bytes(pe->cksum, off, p, len);
}

static sg_status pe_digest(void *ctx, const sg_md *mds, size_t n, int tee_fd,
                           unsigned char (*out)[SG_MAX_MD])
{
	static const unsigned char zeros[8];
	pe_file *pe = ctx;
	EVP_MD_CTX *mctx[4] = { 0 };
	sg_tee *tee = NULL;
	uint64_t off = 0;
	sg_status rc = SG_OK, rc2;

	if(n == 0 || n > 4)
		return sg_fail(SG_ERR_INTERNAL, "pe_digest: %zu digests", n);
	pe->digested = 0;
	pe->cksum = 0;
	/* Writing a signed copy: fail now, not after hashing 4 GiB, when no
	 * signature (never under 1 KiB: it holds a certificate) could fit. */
	if(tee_fd >= 0 && pe->body_end + pe->pad + PE_MIN_SIG > PE_MAX_FILE)
		return sg_fail(SG_ERR_TOO_LARGE,
		               "%s: the signed file would reach 4 GiB, the PE limit",
		               pe->r->name);
	for(size_t i = 0; i < n; i++) {
		mctx[i] = EVP_MD_CTX_new();
		if(!mctx[i] || !EVP_DigestInit_ex(mctx[i], sg_md_evp(mds[i]), NULL)) {
			rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot start %s", sg_md_name(mds[i]));
			goto out;
		}
	}
	/* Hash here; write and checksum on the tee's thread. */
	rc = sg_tee_new(tee_fd, tee_fd >= 0 ? pe_sum_chunk : NULL, pe, &tee);
	if(rc)
		goto out;
	while(off < pe->body_end + pe->pad) {
		unsigned char *buf = sg_tee_buffer(tee);
		size_t want = SG_TEE_CHUNK, got = 0;

		if(off < pe->body_end) {
			if(want > pe->body_end - off)
				want = (size_t)(pe->body_end - off);
			rc = sg_reader_read(pe->r, off, buf, want, "file body");
			if(rc)
				goto out;
			got = want;
			pe_feed(pe, mctx, n, off, buf, got);
		}
		/* The zero padding that aligns the certificate table goes into
		 * the last chunk (it is hashed too). */
		if(off + got == pe->body_end && pe->pad && got + pe->pad <= SG_TEE_CHUNK) {
			memcpy(buf + got, zeros, pe->pad);
			for(size_t i = 0; i < n; i++)
				EVP_DigestUpdate(mctx[i], zeros, pe->pad);
			got += pe->pad;
		}
		rc = sg_tee_push(tee, buf, got, off);
		if(rc)
			goto out;
		off += got;
	}
	for(size_t i = 0; i < n; i++) {
		unsigned int len = 0;
		if(!EVP_DigestFinal_ex(mctx[i], out[i], &len)) {
			rc = sg_fail_ossl(SG_ERR_CRYPTO, "digest failed");
			goto out;
		}
	}
out:
	rc2 = sg_tee_finish(tee);
	if(!rc)
		rc = rc2;
	if(!rc && tee_fd >= 0) {
		/* The sum covered the header fields that signing replaces. */
		pe->cksum -= pe_sum_bytes(0, pe->checksum_off, pe->orig_cksum, 4);
		pe->cksum -= pe_sum_bytes(0, pe->certdir_off, pe->orig_dir, 8);
		pe->digested = 1;
	}
	for(size_t i = 0; i < n; i++)
		EVP_MD_CTX_free(mctx[i]);
	return rc;
}

static sg_status pe_get_signature(void *ctx, unsigned idx, unsigned char **der,
                                  size_t *len)
{
	pe_file *pe = ctx;
	unsigned char *p;
	sg_status rc;

	*der = NULL;
	*len = 0;
	if(!pe->nsigs)
		return sg_fail(SG_ERR_NOT_SIGNED, "%s: the file has no Authenticode signature",
		               pe->r->name);
	if(idx >= pe->nsigs)
		return sg_fail(SG_ERR_NOT_FOUND, "%s: no signature entry %u", pe->r->name, idx);
	p = malloc(pe->sig_len[idx]);
	if(!p)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	rc = sg_reader_read(pe->r, pe->sig_off[idx], p, pe->sig_len[idx], "signature");
	if(rc) {
		free(p);
		return rc;
	}
	*der = p;
	*len = pe->sig_len[idx];
	return SG_OK;
}

static sg_status pe_finish(void *ctx, int fd, const unsigned char *sig,
                           size_t siglen)
{
	pe_file *pe = ctx;
	uint64_t sum, table_off = pe->body_end + pe->pad, total;
	unsigned char dir[8] = { 0 }, wc[8], cks[4], zeros[8] = { 0 };
	uint32_t entry_len = 0, table_len = 0;
	sg_status rc;

	if(!pe->digested)
		return sg_fail(SG_ERR_INTERNAL, "pe_finish without a teed pe_digest");
	if(sig) {
		if(siglen > PE_MAX_SIG)
			return sg_fail(SG_ERR_TOO_LARGE, "signature of %zu bytes is too large", siglen);
		entry_len = (uint32_t)(8 + siglen);
		table_len = (entry_len + 7) & ~7u;
		if(table_off + table_len > PE_MAX_FILE)
			return sg_fail(SG_ERR_TOO_LARGE,
			               "%s: the signed file would reach 4 GiB, the PE limit",
			               pe->r->name);
		sg_put_le32(wc, entry_len);
		sg_put_le16(wc + 4, WIN_CERT_REVISION_2_0);
		sg_put_le16(wc + 6, WIN_CERT_TYPE_PKCS_SIGNED_DATA);
		rc = sg_pwrite_all(fd, wc, 8, table_off);
		if(!rc)
			rc = sg_pwrite_all(fd, sig, siglen, table_off + 8);
		if(!rc && table_len > entry_len)
			rc = sg_pwrite_all(fd, zeros, table_len - entry_len, table_off + entry_len);
		if(rc)
			return rc;
		sg_put_le32(dir, (uint32_t)table_off);
		sg_put_le32(dir + 4, table_len);
	}
	total = table_off + table_len;
	/* Removing the signature of an unsigned file gives it back unchanged,
	 * without the alignment padding. */
	if(!sig && pe->body_end == pe->r->size)
		total = pe->body_end;
	if(ftruncate(fd, (off_t)total))
		return sg_fail(SG_ERR_IO, "cannot size the output file");
	rc = sg_pwrite_all(fd, dir, sizeof(dir), pe->certdir_off);
	if(rc)
		return rc;
	sum = pe_sum_bytes(pe->cksum, pe->certdir_off, dir, sizeof(dir));
	if(sig) {
		sum = pe_sum_bytes(sum, table_off, wc, 8);
		sum = pe_sum_bytes(sum, table_off + 8, sig, siglen);
	}
	sg_put_le32(cks, pe_sum_final(sum, total));
	return sg_pwrite_all(fd, cks, sizeof(cks), pe->checksum_off);
}

static void pe_close(void *ctx)
{
	free(ctx);
}

const struct sg_format sg_format_pe = {
	.name = "pe",
	.probe = pe_probe,
	.open = pe_open,
	.digest = pe_digest,
	.get_signature = pe_get_signature,
	.finish = pe_finish,
	.close = pe_close,
};
