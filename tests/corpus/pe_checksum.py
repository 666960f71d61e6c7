#!/usr/bin/env python3
"""usage: pe_checksum.py FILE
Exits 0 if FILE's PE CheckSum field equals the checksum of its bytes
(ImageHlp's CheckSumMappedFile: 16-bit sums with carries folded, the field
taken as zero, an odd last byte padded with zero, plus the file length);
1 with both values on stderr otherwise."""
import struct
import sys

data = open(sys.argv[1], "rb").read()
off = struct.unpack_from("<I", data, 0x3C)[0] + 24 + 64
have = struct.unpack_from("<I", data, off)[0]
b = bytearray(data)
b[off:off + 4] = b"\0\0\0\0"
if len(b) % 2:
    b += b"\0"
total = 0
for (w,) in struct.iter_unpack("<H", bytes(b)):
    total += w
    total = (total & 0xFFFF) + (total >> 16)
total = (total & 0xFFFF) + (total >> 16)
want = (total + len(data)) & 0xFFFFFFFF
if have != want:
    sys.stderr.write(f"{sys.argv[1]}: CheckSum 0x{have:08x}, computed 0x{want:08x}\n")
    sys.exit(1)
