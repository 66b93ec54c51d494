#!/usr/bin/env python3
"""Writes the hostile and broken inputs used by tests/bad_input.rs into tests/fixtures/bad/.

Deterministic; run `python tools/make_bad_inputs.py tests/fixtures/bad` to rebuild.
  empty.jpg            zero bytes
  truncated.jpg        the first 40 % of a valid JPEG
  truncated.png        the first 40 % of a valid PNG
  notes.txt            a text file
  huge_30000x30000.png a real, valid 30000x30000 1-bit PNG (112 MB of pixels, ~110 kB on disk)
  real.avif            a real AVIF (Pillow's encoder)
  header.heic          the ISO-BMFF header of a HEIC file (no HEIC encoder is available here)
  drawing.svg          an SVG document
  doc.pdf              the start of a PDF
  garbage.bin          random bytes
"""
import os
import struct
import sys
import zlib

from PIL import Image


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path, w=30000, h=30000):
    # 1 bit per pixel, all zero: each row is a filter byte + ceil(w/8) bytes.
    row = b"\0" * (1 + (w + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(h)] + [comp.flush()]
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    img = Image.new("RGB", (320, 240))
    for y in range(240):
        for x in range(320):
            img.putpixel((x, y), (x % 256, y % 256, (x * y) % 256))
    open(os.path.join(out, "empty.jpg"), "wb").close()
    img.save(os.path.join(out, "full.jpg"), quality=90)
    img.save(os.path.join(out, "full.png"))
    for ext in ("jpg", "png"):
        data = open(os.path.join(out, f"full.{ext}"), "rb").read()
        open(os.path.join(out, f"truncated.{ext}"), "wb").write(data[: len(data) * 2 // 5])
        os.remove(os.path.join(out, f"full.{ext}"))
    open(os.path.join(out, "notes.txt"), "w").write("These are my notes.\nNot an image at all.\n")
    huge_png(os.path.join(out, "huge_30000x30000.png"))
    img.save(os.path.join(out, "real.avif"))
    # ftyp box: size, 'ftyp', major brand 'heic', minor version, compatible brands
    open(os.path.join(out, "header.heic"), "wb").write(
        struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0" + b"mif1heic" + b"\0" * 64)
    open(os.path.join(out, "drawing.svg"), "w").write(
        '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        '<rect width="10" height="10" fill="red"/></svg>\n')
    open(os.path.join(out, "doc.pdf"), "wb").write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    open(os.path.join(out, "garbage.bin"), "wb").write(bytes((i * 7919 + 13) % 256 for i in range(4096)))


if __name__ == "__main__":
    main()
