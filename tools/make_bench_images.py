#!/usr/bin/env python3
"""Write realistic 12-megapixel JPEGs (4000x3000, quality 90, 4:2:0, baseline) for `make bench`.

Deterministic: image i is a seeded crop of one of the colour photos in
tests/fixtures/parity/images, upscaled (bicubic) to 4000x3000, then given what a phone photo
has and an upscale lacks so it compresses like one (2-4 MB): fine sensor-like noise (luma and a
little chroma), mid-frequency texture, a soft vignette and a gentle light gradient. Every fourth
image is portrait (3000x4000) and every image carries an EXIF block (Make/Model, orientation 1),
as phone photos do. The same Pillow (pinned in tools/requirements.txt) writes the same bytes.

Output goes OUTSIDE the repository (16 files are ~50 MB):
  python tools/make_bench_images.py /tmp/clipsearch-bench/jpeg12mp --count 16
"""
import argparse
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = os.path.join(HERE, "..", "tests", "fixtures", "parity", "images")
# Colour photographs only (no palettes, alpha, greyscale or synthetic art).
PHOTOS = ["astronaut.webp", "chelsea.jpg", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
          "motorcycle_progressive.jpg", "immunohistochemistry.webp", "large_4000x3000.jpg",
          "retina_q60.jpg", "color.png"]
W, H = 4000, 3000


def crop_box(rng, sw, sh, aspect):
    """A random crop of 60-100% of the largest `aspect` rectangle that fits in sw x sh."""
    if sw / sh > aspect:
        ch, cw = sh, sh * aspect
    else:
        cw, ch = sw, sw / aspect
    s = rng.uniform(0.6, 1.0)
    cw, ch = cw * s, ch * s
    x = rng.uniform(0, sw - cw)
    y = rng.uniform(0, sh - ch)
    return (x, y, x + cw, y + ch)


def make(i, seed, W=W, H=H):
    rng = np.random.default_rng(seed * 1000 + i)
    name = PHOTOS[i % len(PHOTOS)]
    src = Image.open(os.path.join(SOURCES, name)).convert("RGB")
    portrait = i % 4 == 3
    w, h = (H, W) if portrait else (W, H)
    box = crop_box(rng, src.width, src.height, w / h)
    img = src.resize((w, h), Image.BICUBIC, box=box)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    a = np.asarray(img, dtype=np.float32)

    # Light: a gentle linear gradient and a soft vignette (lens fall-off).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(-0.08, 0.08, size=2)
    light = 1.0 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    light *= 1.0 - 0.18 * r2 / 2.0
    a *= light[..., None]
    del xx, yy, r2, light

    # Mid-frequency texture (surfaces, foliage): small noise field upscaled, mostly luma.
    tex = rng.normal(0.0, 1.0, size=(h // 6, w // 6)).astype(np.float32)
    tex = np.asarray(Image.fromarray(tex, mode="F").resize((w, h), Image.BICUBIC), dtype=np.float32)
    a += (4.0 * tex)[..., None]
    del tex

    # Sensor-like fine noise: luma plus weaker per-channel chroma noise.
    luma = rng.normal(0.0, 3.8, size=(h, w)).astype(np.float32)
    a += luma[..., None]
    del luma
    a += rng.normal(0.0, 1.2, size=(h, w, 3)).astype(np.float32)

    out = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x010F] = "clipsearch"          # Make
    exif[0x0110] = "bench-12mp"          # Model
    exif[0x0112] = 1                     # Orientation: upright
    exif[0x0131] = f"make_bench_images.py {name}"  # Software
    return out, exif, name


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder (outside the repository)")
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default=f"{W}x{H}", help="landscape WxH (portrait images swap it); 1152x864 is 1 MP")
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.lower().split("x"))
    os.makedirs(a.out, exist_ok=True)
    total = 0
    for i in range(a.count):
        img, exif, name = make(i, a.seed, width, height)
        path = os.path.join(a.out, f"bench_{i:03d}.jpg")
        tmp = path + ".tmp"
        img.save(tmp, "JPEG", quality=a.quality, subsampling="4:2:0", optimize=False, progressive=False,
                 exif=exif.tobytes())
        os.replace(tmp, path)
        size = os.path.getsize(path)
        total += size
        print(f"{path}  {img.width}x{img.height}  {size / 1e6:.2f} MB  (from {name})")
    print(f"{a.count} images, {total / 1e6:.1f} MB, mean {total / max(a.count, 1) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
