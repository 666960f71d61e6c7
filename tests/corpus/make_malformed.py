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

with open(os.path.join(out, "EXPECT"), "w") as f:
    for name, code, regex in cases:
        f.write(f"{name}\t{code}\t{regex}\n")
