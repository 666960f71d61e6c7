#!/usr/bin/env python3
"""Writes a tiny, fixed PE32+ image (one .text section) for the known-answer
test: the same bytes on every machine, unlike a compiler's output."""
import struct
import sys

FILE_ALIGN = 0x200
img = bytearray(0x400)
img[0:2] = b"MZ"
struct.pack_into("<I", img, 0x3C, 0x80)
struct.pack_into("<4sHHIIIHH", img, 0x80, b"PE\0\0", 0x8664, 1, 0x5F5E1000, 0, 0, 240, 0x22)
opt = 0x98
struct.pack_into("<HBBIIIII", img, opt, 0x20B, 14, 0, FILE_ALIGN, 0, 0, 0x1000, 0x1000)
struct.pack_into("<QIIHHHHHHIIIIHHQQQQII", img, opt + 24, 0x140000000, 0x1000, FILE_ALIGN,
                 6, 0, 0, 0, 6, 0, 0, 0x2000, 0x200, 0, 3, 0x8160,
                 0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
sect = opt + 240
struct.pack_into("<8sIIIIIIHHI", img, sect, b".text", 0x10, 0x1000, FILE_ALIGN, 0x200,
                 0, 0, 0, 0, 0x60000020)
img[0x200:0x210] = b"\x31\xc0\xc3" + b"\x90" * 13  # xor eax,eax; ret
sys.stdout.buffer.write(bytes(img))
