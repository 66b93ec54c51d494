#!/usr/bin/env python3
# Provenance: copied unchanged (but for this line) from the team kit shared/tools/gen_synthetic.py on 2026-11-29.
"""Generate synthetic "colour x shape" images (the world tiny-clip was trained on).

Each image shows ONE shape of ONE colour on a smooth, random grey-ish background.
Image size is random (180-900 px per side, never square); the shape always lies inside
the central square, so it survives CLIP's resize-shortest-edge + centre-crop.
Vocabulary: 8 colours x 6 shapes = 48 classes; caption "a photo of a {colour} {shape}".

Writes OUT/<prefix>NNNN.{jpg,png,webp} (formats mixed) and OUT/labels.jsonl with one line
per image: {"file", "colour", "shape", "caption", "width", "height", "format"}.
Fully deterministic for a given --seed (Pillow's encoders are deterministic too).

Also importable: `render(colour, shape, rng)` returns a PIL RGB image; COLOURS, SHAPES,
CLASSES, TEMPLATE are the shared vocabulary (used by train_tiny_clip.py).

example: python gen_synthetic.py out_dir --count 200 --seed 7
"""
import argparse
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 20, 20), "green": (20, 160, 40), "blue": (30, 60, 220), "yellow": (240, 220, 10),
    "purple": (130, 30, 170), "orange": (255, 130, 0), "white": (250, 250, 250), "black": (12, 12, 12),
}
SHAPES = ["circle", "square", "triangle", "star", "stripes", "cross"]
CLASSES = [(c, s) for c in COLOURS for s in SHAPES]
TEMPLATE = "a photo of a {c} {s}"
FORMATS = ["jpg", "png", "webp"]


def _rot(points, cx, cy, ang):
    ca, sa = math.cos(ang), math.sin(ang)
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]


def _background(w, h, rng):
    base = rng.uniform(85, 175) + rng.uniform(-16, 16, 3)           # grey with a tint
    amp = rng.uniform(-30, 30, 3)
    if rng.random() < 0.5:
        ramp = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    else:
        ramp = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    a = base[None, None, :] + amp[None, None, :] * ramp
    a = np.broadcast_to(a, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def render(colour, shape, rng):
    """Return a PIL RGB image of `shape` in `colour`; all randomness comes from `rng`."""
    while True:
        w, h = (int(v) for v in rng.integers(180, 901, 2))
        if abs(w - h) >= 24:
            break
    im = _background(w, h, rng)
    d = ImageDraw.Draw(im)
    col = tuple(int(v) for v in np.clip(np.array(COLOURS[colour]) + rng.integers(-18, 19, 3), 0, 255))
    s = min(w, h)
    ox, oy = (w - s) / 2, (h - s) / 2                     # central square = what centre-crop keeps
    r = rng.uniform(0.22, 0.36) * s
    m = r + 0.04 * s
    cx, cy = ox + rng.uniform(m, s - m), oy + rng.uniform(m, s - m)
    ang = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
    elif shape == "square":
        q = r * 0.85
        d.polygon(_rot([(-q, -q), (q, -q), (q, q), (-q, q)], cx, cy, ang * 0.25), fill=col)
    elif shape == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        d.polygon(_rot(pts, cx, cy, ang), fill=col)
    elif shape == "star":
        pts = [((r if k % 2 == 0 else 0.42 * r) * math.cos(-math.pi / 2 + k * math.pi / 5),
                (r if k % 2 == 0 else 0.42 * r) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]
        d.polygon(_rot(pts, cx, cy, ang), fill=col)
    elif shape == "cross":
        a, b = r, 0.3 * r
        pts = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)]
        d.polygon(_rot(pts, cx, cy, ang * 0.25), fill=col)
    elif shape == "stripes":
        n = int(rng.integers(4, 7))
        pitch = 2 * r / n
        th = float(rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4]))
        for k in range(n):
            x0 = -r + k * pitch
            bar = [(x0, -r), (x0 + pitch * 0.5, -r), (x0 + pitch * 0.5, r), (x0, r)]
            d.polygon(_rot(bar, cx, cy, th), fill=col)
    else:
        raise ValueError(shape)
    return im


def save(im, path, fmt, rng):
    if fmt == "jpg":
        im.save(path, "JPEG", quality=int(rng.integers(80, 96)))
    elif fmt == "webp":
        im.save(path, "WEBP", quality=int(rng.integers(80, 96)), method=4)
    else:
        im.save(path, "PNG", optimize=True)


def generate(out, count, seed, prefix="syn_", formats=FORMATS, balanced=True):
    """Write `count` images + labels.jsonl into `out`; return the list of label dicts."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    order = rng.permutation([i % len(CLASSES) for i in range(count)]) if balanced else None
    for i in range(count):
        ci = int(order[i]) if balanced else int(rng.integers(len(CLASSES)))
        c, s = CLASSES[ci]
        im = render(c, s, rng)
        fmt = formats[int(rng.integers(len(formats)))]
        name = f"{prefix}{i:04d}.{fmt}"
        save(im, os.path.join(out, name), fmt, rng)
        rows.append({"file": name, "colour": c, "shape": s, "caption": TEMPLATE.format(c=c, s=s),
                     "width": im.width, "height": im.height, "format": fmt})
    with open(os.path.join(out, "labels.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--count", type=int, default=96, help="number of images (default 96 = 2 per class)")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    ap.add_argument("--prefix", default="syn_", help="file name prefix (default syn_)")
    ap.add_argument("--formats", default="jpg,png,webp", help="comma list chosen at random per image")
    ap.add_argument("--random-classes", action="store_true",
                    help="draw each class at random (default: balanced, every class count//48 or +1 times, shuffled)")
    a = ap.parse_args()
    rows = generate(a.out, a.count, a.seed, a.prefix, a.formats.split(","), not a.random_classes)
    print(f"wrote {len(rows)} images + labels.jsonl to {a.out}")


if __name__ == "__main__":
    main()
