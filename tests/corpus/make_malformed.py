#!/usr/bin/env python3
"""Makes malformed and tricky PE files from a good one, and a table of what
signgate must answer for each: exit code and a pattern of the message.

usage: make_malformed.py GOOD.exe SIGNED.exe OUTDIR
Writes OUTDIR/<case>.bin and OUTDIR/EXPECT (case<TAB>exit<TAB>regex).
"""
import os
import struct
import sys

good_path, signed_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
good = open(good_path, "rb").read()
signed = open(signed_path, "rb").read()
pe = struct.unpack_from("<I", good, 0x3C)[0]
nsect = struct.unpack_from("<H", good, pe + 6)[0]
optsize = struct.unpack_from("<H", good, pe + 20)[0]
opt = pe + 24
magic = struct.unpack_from("<H", good, opt)[0]
dirs = opt + (96 if magic == 0x10B else 112)
certdir = dirs + 4 * 8
sect = opt + optsize
spe = struct.unpack_from("<I", signed, 0x3C)[0]
sopt = spe + 24
smagic = struct.unpack_from("<H", signed, sopt)[0]
scertdir = sopt + (96 if smagic == 0x10B else 112) + 32
cert_off, cert_size = struct.unpack_from("<II", signed, scertdir)

cases = []


def case(name, data, code, regex):
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(data)
    cases.append((name, code, regex))


def patch(data, off, fmt, *vals):
    b = bytearray(data)
    struct.pack_into(fmt, b, off, *vals)
    return bytes(b)


case("empty", b"", 2, r"not a file format signgate can sign")
case("not-pe", b"hello, world\n" * 10, 2, r"not a file format signgate can sign")
case("mz-only", b"MZ", 2, r"MS-DOS header runs past end of file")
case("truncated-dos", good[:40], 2, r"MS-DOS header runs past end of file")
case("lfanew-past-eof", patch(good[:0x200], 0x3C, "<I", 0x7FFFFFF0), 2,
     r"PE signature and COFF header \(at e_lfanew\) runs past end of file")
case("no-pe-signature", patch(good, pe, "<I", 0x12345678), 2, r"no PE signature at e_lfanew")
case("truncated-coff", good[:pe + 10], 2, r"COFF header .*runs past end of file")
case("bad-magic", patch(good, opt, "<H", 0x999), 2, r"optional header magic 0x0999")
case("truncated-optional", good[:opt + 50], 2, r"optional header runs past end of file")
case("small-optional-size", patch(good, pe + 20, "<H", 20), 2, r"SizeOfOptionalHeader 20 is smaller")
case("few-directories", patch(good, dirs - 4, "<I", 3), 2, r"NumberOfRvaAndSizes is 3")
case("directories-past-header", patch(good, dirs - 4, "<I", 16) if optsize >= (dirs - opt) + 128 else good, 0, r"")
case("truncated-in-directories", good[:dirs + 20], 2, r"runs past end of file")
case("section-table-past-eof", patch(good, pe + 6, "<H", 0xFFFF), 2,
     r"PE section table \(65535 sections.*runs past end of file")
big_raw = patch(good, sect + 16, "<I", 0x7FFFFFFF)
case("section-data-past-eof", big_raw, 2, r"PE section 1 \(.*\) raw data runs past end of file")
case("cert-inside-image", patch(good, certdir, "<II", 0x200, 0x100), 2,
     r"certificate table at 0x200 points inside the image")
case("cert-past-eof", patch(good, certdir, "<II", (len(good) + 7) // 8 * 8, 0x1000), 2,
     r"certificate table .* runs past end of file")
case("cert-addr-no-size", patch(good, certdir, "<II", (len(good) + 7) // 8 * 8, 0), 2,
     r"one is zero, the other not")
case("cert-unaligned", patch(signed, scertdir, "<II", cert_off + 4, cert_size - 4), 2,
     r"not 8-byte aligned")
zero_entry = bytearray(signed)
struct.pack_into("<I", zero_entry, cert_off, 0)
case("cert-entry-length-0", bytes(zero_entry), 2, r"certificate table entry 0 .* has length 0")
case("cert-dir-size-too-big", patch(signed, scertdir, "<II", cert_off, cert_size + 8) + b"\0" * 8, 2,
     r"has length 0|stray bytes|disagrees")
long_entry = bytearray(signed)
struct.pack_into("<I", long_entry, cert_off, cert_size + 64)
case("cert-entry-longer-than-dir", bytes(long_entry), 2, r"past the table's end .*disagrees with the entry")
case("data-after-cert-table", signed + b"trailing", 2, r"8 bytes follow the certificate table")
garbage_sig = bytearray(signed)
garbage_sig[cert_off + 8:cert_off + 40] = b"\x30\x82\xff\xff" + b"\x00" * 28
case("garbage-signature", bytes(garbage_sig), 1, r"not a DER PKCS#7")
# Unsigned data hidden after the DER inside the certificate entry
# (CVE-2013-3900 pattern): invalid.
payload = b"EVIL-PAYLOAD" * 8
sig_len = struct.unpack_from("<I", signed, cert_off)[0]
der_end = cert_off + sig_len
# The table is padded to 8; rebuild it with the payload inside the entry.
hidden = bytearray(signed[:der_end]) + payload
pad = (8 - len(hidden) % 8) % 8
hidden += b"\0" * pad
struct.pack_into("<I", hidden, cert_off, sig_len + len(payload))
struct.pack_into("<II", hidden, scertdir, cert_off, len(hidden) - cert_off)
case("payload-after-signature", bytes(hidden), 1, r"bytes follow the signature's DER")

# ---- Tricky but valid layouts (issue 6).  Exit 0 for `hash`; malformed.sh
# also signs each one and wants osslsigncode to accept the signature, find
# no checksum mismatch, and compute the digest `signgate hash` gives (the
# digest osslsigncode computes when it signs the same file itself).
file_align = struct.unpack_from("<I", good, opt + 36)[0]
size_of_headers = struct.unpack_from("<I", good, opt + 60)[0]
checksum_off = opt + 64
sections = []
for i in range(nsect):
    vsize, va, rsize, rptr = struct.unpack_from("<IIII", good, sect + 40 * i + 8)
    sections.append((i, rsize, rptr))
raw = [s for s in sections if s[1] and s[2]]
first_raw = min(s[2] for s in raw)
last = max(raw, key=lambda s: s[2])


def pe_checksum(data):
    """The PE image checksum (ImageHlp's CheckSumMappedFile): 16-bit
    one's-complement-style sum of the file with the field itself taken as
    zero, an odd last byte padded with zero, plus the file's length."""
    b = bytearray(data)
    b[checksum_off:checksum_off + 4] = b"\0\0\0\0"
    if len(b) % 2:
        b += b"\0"
    total = 0
    for (w,) in struct.iter_unpack("<H", bytes(b)):
        total += w
        total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


# Overlays of 1 to 8 bytes, so the end of file is every misalignment to 8
# (the corpus has 1, 3, 7, 8 and 1000: these fill the gaps).
for n in (2, 4, 5, 6):
    case(f"valid-overlay{n}", good + bytes(range(0xA0, 0xA0 + n)), 0, r"")
# Bytes between the end of the headers and the first section: a whole
# FileAlignment block of junk inserted there, every PointerToRawData moved.
gap = bytearray(good[:size_of_headers]) + bytes((i * 7 + 1) & 0xFF for i in range(file_align)) + good[size_of_headers:]
for i, rsize, rptr in sections:
    if rptr:
        struct.pack_into("<I", gap, sect + 40 * i + 20, rptr + file_align)
case("valid-gap-after-headers", bytes(gap), 0, r"")
# The last section's raw data not padded to FileAlignment and the file
# ending with it: odd length, so the signer must pad to 8 before the table.
i, rsize, rptr = last
short = rsize - 0x1FF if rsize > 0x200 else rsize - 3
unpadded = bytearray(good[:rptr + short])
struct.pack_into("<I", unpadded, sect + 40 * i + 16, short)
case("valid-last-section-unpadded", bytes(unpadded), 0, r"")
# SizeOfHeaders running past the first section's raw data: the headers'
# hash then covers the start of the first section too (as osslsigncode's).
case("valid-headers-overlap-section", patch(good, opt + 60, "<I", first_raw + file_align), 0, r"")
# PE checksums: zero, stale and right, on even and odd file lengths.
odd = good + b"\x5a"
for tag, data in (("even", good), ("odd", odd)):
    case(f"valid-checksum-zero-{tag}", patch(data, checksum_off, "<I", 0), 0, r"")
    case(f"valid-checksum-stale-{tag}", patch(data, checksum_off, "<I", pe_checksum(data) ^ 0x1234), 0, r"")
    case(f"valid-checksum-right-{tag}", patch(data, checksum_off, "<I", pe_checksum(data)), 0, r"")

with open(os.path.join(out, "EXPECT"), "w") as f:
    for name, code, regex in cases:
        f.write(f"{name}\t{code}\t{regex}\n")
