#!/usr/bin/env python3
"""Makes a FRESH parity corpus (images and captions nobody tuned the Rust pipeline on) and the
reference pipeline's answers for it, for tests/parity_fresh.rs.

Every run with a new --seed gives new files: random photo-like content (smooth fields, shapes,
noise, text-like strokes) in every format and colour mode the product accepts, EXIF orientations
1-8, odd sizes, panoramas, tiny images, and one large JPEG that takes the DCT-scaled path;
captions mix vocabulary, case, punctuation, unicode, emoji and over-long texts.

Writes OUT/images/*, OUT/captions.txt, and the reference outputs in the same format as
tests/fixtures/parity/expected: image_embeddings.jsonl, text_embeddings.jsonl, token_ids.jsonl,
preprocessed/<file>.png (the 224x224 uint8 crop).

With --corpus DIR (e.g. tests/fixtures/parity) it answers that corpus's images and captions
instead, with any model: how the other families are checked on the shipped corpus.

example: python tools/parity_fresh.py /tmp/fresh --model tests/fixtures/tiny-clip --seed 1
"""
import argparse
import json
import shutil
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402


def photo(rng, w, h):
    """Photo-like content: a smooth colour field, a few soft shapes, fine noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 90 * np.sin(a * xx / w * 6 + b * yy / h * 6 + p * 3)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(rng.integers(3, 9)):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(5, max(6, w // 2)), y0 + rng.integers(5, max(6, h // 2))
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        [d.ellipse, d.rectangle][int(rng.integers(0, 2))]((x0, y0, x1, y1), fill=col)
        d.line((x0, y1, x1, y0), fill=tuple(255 - v for v in col), width=int(rng.integers(1, 6)))
    arr = np.asarray(im).astype(np.int16) + rng.integers(-12, 13, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def with_exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def make_images(out, rng):
    os.makedirs(out, exist_ok=True)
    files = []

    def save(name, im, **kw):
        im.save(os.path.join(out, name), **kw)
        files.append(name)

    for o in range(1, 9):  # every EXIF orientation, on portrait and landscape JPEGs
        w, h = (int(rng.integers(300, 700)), int(rng.integers(250, 500)))
        if o % 2:
            w, h = h, w
        save(f"exif_{o}.jpg", photo(rng, w, h), quality=int(rng.integers(70, 96)), exif=with_exif(o))
    save("exif_6.png", photo(rng, 400, 300), exif=with_exif(6))
    save("exif_8.webp", photo(rng, 360, 500), quality=85, exif=with_exif(8))
    save("q50_420.jpg", photo(rng, 800, 600), quality=50)
    save("q95_444.jpg", photo(rng, 640, 480), quality=95, subsampling=0)
    save("progressive.jpg", photo(rng, 900, 700), quality=85, progressive=True)
    save("large_2400x1800.jpg", photo(rng, 2400, 1800), quality=90)  # decoded at 1/2 in the DCT domain
    save("grey.jpg", photo(rng, 500, 420).convert("L"), quality=88)
    save("grey.png", photo(rng, 333, 517).convert("L"))
    save("grey_alpha.png", photo(rng, 300, 300).convert("LA"))
    pal = photo(rng, 450, 300).convert("P", palette=Image.Palette.ADAPTIVE, colors=48)
    save("palette.png", pal)
    pal_t = photo(rng, 380, 290).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal_t.info["transparency"] = 3
    save("palette_transparent.png", pal_t, transparency=3)
    rgba = photo(rng, 420, 360).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 420, dtype=np.uint8), (360, 1))
    rgba.putalpha(Image.fromarray(alpha))
    save("rgba_ramp.png", rgba)
    save("rgba.webp", rgba, lossless=True)
    save("lossy.webp", photo(rng, 700, 450), quality=70)
    save("lossless.webp", photo(rng, 512, 384), lossless=True)
    save("single.gif", photo(rng, 320, 240).convert("P", palette=Image.Palette.ADAPTIVE))
    frames = [photo(rng, 300, 200).convert("P", palette=Image.Palette.ADAPTIVE) for _ in range(3)]
    frames[0].save(os.path.join(out, "animated.gif"), save_all=True, append_images=frames[1:], duration=100)
    files.append("animated.gif")
    save("bitmap.bmp", photo(rng, 260, 300))
    save("tiff_rgb.tif", photo(rng, 310, 270))
    save("tiny_17x9.png", photo(rng, 17, 9))
    save("panorama.jpg", photo(rng, 2600, 260), quality=90)
    save("tall.png", photo(rng, 180, 1300))
    save("square_224.png", photo(rng, 224, 224))
    return sorted(files)


WORDS = ["a", "photo", "of", "the", "red", "green", "blue", "yellow", "purple", "orange", "white", "black",
         "circle", "square", "triangle", "star", "stripes", "cross", "cat", "dog", "on", "under", "tiny", "HUGE",
         "café", "naïve", "東京", "写真", "сова", "ελιά", "مرحبا", "🙂", "🚀", "1999", "3.5mm", "don't", "e-mail",
         "x_y", "#tag", "@user", "(note)", "!!!", "...", "\t", "  ",
         "猫", "海滩", "一只", "紅色", "圓形", "の", "写真です", "ネコ", "gato", "rojo", "cuadrado", "¿qué?",
         "שלום", "עולם", "👨‍👩‍👧", "👍🏽", "❤️", "Ünïcödé"]


def make_captions(rng, n=40):
    caps = []
    for i in range(n):
        k = int(rng.integers(1, 14)) if i % 10 else int(rng.integers(70, 120))  # every 10th is over-long
        caps.append(" ".join(str(w) for w in rng.choice(WORDS, size=k)))
    caps += ["  leading and trailing  ", "ALL CAPS CAPTION", "ｆｕｌｌｗｉｄｔｈ", "e\u0301te\u0301",
             "一只红色的圆形", "一隻紅色的圓形", "赤い丸の写真", "un círculo rojo", "שלום עולם مرحبا بالعالم",
             "🐱🐶 emoji 👍🏽 ❤️ 👨‍👩‍👧", "猫" * 300, "", " \t "]
    return [c.replace("\n", " ") for c in caps]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--model", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--corpus", help="answer this corpus (images/, captions.txt) instead of making one")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    img_dir = os.path.join(a.out, "images")
    exp = os.path.join(a.out, "expected")
    os.makedirs(os.path.join(exp, "preprocessed"), exist_ok=True)
    if a.corpus:
        # The shipped corpus, answered by this model: its images and captions, our expectations.
        shutil.copytree(os.path.join(a.corpus, "images"), img_dir, dirs_exist_ok=True)
        files = sorted(os.path.relpath(os.path.join(d, f), img_dir).replace(os.sep, "/")
                       for d, _, fs in os.walk(img_dir) for f in fs if f.lower().endswith(reference.IMAGE_EXTS))
    else:
        files = make_images(img_dir, rng)
    clip = reference.Clip(a.model)
    if clip.family == "text_tower":
        files = []  # a text tower alone has no image side
    with open(os.path.join(exp, "image_embeddings.jsonl"), "w") as f:
        for name in files:
            path = os.path.join(img_dir, name)
            im = clip.open_image(path)
            crop = clip.proc(images=im, return_tensors="np", do_rescale=False, do_normalize=False)["pixel_values"][0]
            crop = np.clip(np.round(crop), 0, 255).astype(np.uint8).transpose(1, 2, 0)
            target = os.path.join(exp, "preprocessed", name + ".png")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            Image.fromarray(crop).save(target)
            emb = clip.embed_images([path])[0]
            f.write(json.dumps({"file": name, "embedding": reference.fmt(emb)}) + "\n")
    caps = reference.read_captions(os.path.join(a.corpus, "captions.txt")) if a.corpus else make_captions(rng)
    with open(os.path.join(a.out, "captions.txt"), "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(caps) + "\n")
    with open(os.path.join(exp, "text_embeddings.jsonl"), "w", encoding="utf-8") as f:
        for t, e in zip(caps, clip.embed_texts(caps)):
            f.write(json.dumps({"text": t, "embedding": reference.fmt(e)}, ensure_ascii=False) + "\n")
    with open(os.path.join(exp, "token_ids.jsonl"), "w", encoding="utf-8") as f:
        for t in caps:
            padded, mask = clip.padded(t)
            f.write(json.dumps({"text": t, "input_ids": padded, "attention_mask": mask, "length": len(clip.tokens(t))},
                               ensure_ascii=False) + "\n")
    print(json.dumps({"images": len(files), "captions": len(caps)}))


if __name__ == "__main__":
    main()
