#!/usr/bin/env python3
# Provenance: copied from the team kit shared/tools/reference.py on 2026-11-29; since extended here to the
# SigLIP and Chinese-CLIP families (issue 12): family(), load_processor(), Clip.tokens/embed_texts/padded.
"""Reference CLIP embedding pipeline (Python) that the Rust implementation must match.

Model folder = Hugging Face export layout (vision_model.onnx, text_model.onnx, tokenizer.json,
preprocessor_config.json), e.g. shared/models/tiny-clip.

Images: Pillow open -> ImageOps.exif_transpose -> transformers CLIPImageProcessor (PIL backend,
built from preprocessor_config.json: convert to RGB compositing any transparency onto WHITE,
bicubic resize of the shortest edge to 224 with long edge = int(224*long/short), centre crop
224x224 with offset (size-224)//2, x/255, (x-mean)/std) -> onnxruntime vision_model -> L2-normalise.
Texts: `tokenizers` with tokenizer.json (truncation to 77, EOS kept last; no padding; identical
to transformers' CLIPTokenizerFast) -> text_model with attention_mask of ones -> L2-normalise.
Padding with 49407 (attention_mask 0) gives the same embedding: the text tower is causal and pools
at the first EOS.

Other families (chosen by preprocessor_config.json's image_processor_type, else config.json's model_type):
  SigLIP: SiglipImageProcessorPil (resize to exactly size, no crop, mean/std 0.5); texts through
    transformers' own tokenizer (AutoTokenizer: SiglipTokenizer, SentencePiece) with
    padding="max_length", max_length=model_max_length (64), truncation=True, input_ids only.
  Chinese-CLIP: ChineseCLIPImageProcessorPil; BertTokenizer with truncation=True (model_max_length),
    no padding, and the input_ids / attention_mask / token_type_ids the text graph declares.
  A text tower alone (text_tower.json, e.g. the multilingual one): texts as Chinese-CLIP's; no images.

Subcommands (all output JSON lines to --out or stdout):
  images MODEL PATH...     {"file": <path relative to --root>, "embedding": [512 floats]}
  texts  MODEL CAPTIONS    {"text": ..., "embedding": [...]}  (CAPTIONS: UTF-8, one per line,
                           lines are NOT stripped, an empty line is an empty caption; or .jsonl
                           with {"text": ...})
  tokens MODEL CAPTIONS    {"text", "input_ids" (padded to 77 with 49407), "attention_mask",
                           "length"}
  rank   MODEL IMAGE_DIR QUERIES.jsonl   top-k files per query ({"query", "relevant":[...]})
                           + R@1/R@5/R@10 (hit rate), precision@1, recall_frac@5/10; one JSON document
  bench  MODEL IMAGE_DIR   images/s for decode+preprocess, inference, end to end
  zeroshot MODEL DIR       top-1 of "a photo of a {colour} {shape}" over the 48 classes for a folder
                           written by gen_synthetic.py (uses its labels.jsonl)

example: python reference.py images shared/models/tiny-clip fixtures/parity/images --root fixtures/parity
"""
import argparse
import json
import os
import sys
import time

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


# ----------------------------------------------------------------------------- loading
FAMILY_OF_PROCESSOR = {"CLIPImageProcessor": "clip", "CLIPFeatureExtractor": "clip", "SiglipImageProcessor": "siglip",
                       "ChineseCLIPImageProcessor": "chinese_clip", "ChineseCLIPFeatureExtractor": "chinese_clip"}


def family(model_dir):
    if os.path.exists(os.path.join(model_dir, "text_tower.json")):
        return "text_tower"  # a text tower alone, e.g. tests/fixtures/tiny-multilingual
    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        kind = json.load(f).get("image_processor_type", "")
    kind = kind.removesuffix("Fast").removesuffix("Pil")
    if kind in FAMILY_OF_PROCESSOR:
        return FAMILY_OF_PROCESSOR[kind]
    try:
        with open(os.path.join(model_dir, "config.json")) as f:
            model_type = json.load(f).get("model_type", "clip")
    except FileNotFoundError:
        return "clip"
    return model_type.removesuffix("_text_model").removesuffix("_vision_model")


def load_processor(model_dir):
    fam = family(model_dir)
    if fam == "siglip":
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil as cls
    elif fam == "chinese_clip":
        from transformers.models.chinese_clip.image_processing_pil_chinese_clip import (
            ChineseCLIPImageProcessorPil as cls)
    else:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as cls
    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        cfg = json.load(f)
    cfg.pop("image_processor_type", None)
    cfg.pop("processor_class", None)
    return cls(**cfg)


def session(path, threads=0):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def l2n(x):
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def list_images(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            for d, _, fs in os.walk(p):
                out += [os.path.join(d, f) for f in fs if f.lower().endswith(IMAGE_EXTS)]
        else:
            out.append(p)
    return sorted(out)


def read_captions(path):
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f if line.strip()]
    with open(path, encoding="utf-8", newline="") as f:
        data = f.read()
    if data.endswith("\n"):
        data = data[:-1]
    return data.split("\n")


def fmt(v):
    return [float(f"{x:.8g}") for x in np.asarray(v, np.float32).tolist()]


# ----------------------------------------------------------------------------- pipeline
class Clip:
    def __init__(self, model_dir, threads=0):
        self.dir = model_dir
        self.threads = threads
        self.family = family(model_dir)
        self._proc = self._vis = self._txt = self._tok = None

    @property
    def proc(self):
        if self._proc is None:
            self._proc = load_processor(self.dir)
        return self._proc

    @property
    def vis(self):
        if self._vis is None:
            self._vis = session(os.path.join(self.dir, "vision_model.onnx"), self.threads)
        return self._vis

    @property
    def txt(self):
        if self._txt is None:
            self._txt = session(os.path.join(self.dir, "text_model.onnx"), self.threads)
        return self._txt

    @property
    def tok(self):
        if self._tok is None:
            if self.family == "clip":
                from tokenizers import Tokenizer
                self._tok = Tokenizer.from_file(os.path.join(self.dir, "tokenizer.json"))
                self._tok.no_padding()
                self._tok.enable_truncation(77)
            else:
                from transformers import AutoTokenizer
                self._tok = AutoTokenizer.from_pretrained(self.dir)
        return self._tok

    @property
    def context_length(self):
        return 77 if self.family == "clip" else self.tok.model_max_length

    @property
    def pad_id(self):
        return 49407 if self.family == "clip" else self.tok.pad_token_id

    @staticmethod
    def open_image(path):
        from PIL import Image, ImageOps
        im = Image.open(path)
        im = ImageOps.exif_transpose(im)  # returns a copy; applies Orientation 2..8
        return im

    def pixels(self, path):
        return self.proc(images=self.open_image(path), return_tensors="np")["pixel_values"][0].astype(np.float32)

    def embed_pixels(self, px):
        return l2n(self.vis.run(["image_embeds"], {"pixel_values": np.asarray(px, np.float32)})[0])

    def embed_images(self, paths, batch=1):
        out = []
        for i in range(0, len(paths), batch):
            out.append(self.embed_pixels(np.stack([self.pixels(p) for p in paths[i:i + batch]])))
        return np.concatenate(out) if out else np.zeros((0, 512), np.float32)

    def tokens(self, text):
        """The ids of one text, truncated to the context length, unpadded."""
        if self.family == "clip":
            return self.tok.encode(text).ids
        return self.tok(text, truncation=True, max_length=self.context_length)["input_ids"]

    def padded(self, text):
        """(input_ids, attention_mask) padded to the context length, as the family's processor pads."""
        if self.family == "clip":
            ids = self.tokens(text)
            n = len(ids)
            return ids + [self.pad_id] * (77 - n), [1] * n + [0] * (77 - n)
        enc = self.tok(text, padding="max_length", truncation=True, max_length=self.context_length,
                       return_attention_mask=True)
        return enc["input_ids"], enc["attention_mask"]

    def text_inputs(self, text):
        """The text graph's inputs for one text, as the family's reference usage builds them."""
        names = [i.name for i in self.txt.get_inputs()]
        if self.family == "clip":
            ids = np.array([self.tokens(text)], np.int64)
            enc = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        elif self.family == "siglip":
            # padding="max_length" as the model was trained (transformers' SigLIP docs and
            # zero-shot pipeline); SiglipTokenizer returns input_ids only.
            enc = self.tok([text], padding="max_length", truncation=True, max_length=self.context_length,
                           return_tensors="np")
        else:
            enc = self.tok([text], truncation=True, max_length=self.context_length, return_tensors="np")
        missing = [n for n in names if n not in enc]
        if missing:
            raise SystemExit(f"the text graph takes {missing}, which the {self.family} tokenizer does not give")
        return {n: np.asarray(enc[n], np.int64) for n in names}

    def embed_texts(self, texts):
        out = []
        for t in texts:  # one at a time: the simplest contract
            e = self.txt.run(["text_embeds"], self.text_inputs(t))[0]
            out.append(l2n(e)[0])
        return np.stack(out)


# ----------------------------------------------------------------------------- commands
def writer(path):
    return open(path, "w", encoding="utf-8") if path else sys.stdout


def cmd_images(a, clip):
    files = list_images(a.paths)
    root = a.root or os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    emb = clip.embed_images(files, a.batch)
    with writer(a.out) as f:
        for p, e in zip(files, emb):
            rel = os.path.relpath(os.path.abspath(p), os.path.abspath(root)).replace(os.sep, "/")
            f.write(json.dumps({"file": rel, "embedding": fmt(e)}) + "\n")


def cmd_texts(a, clip):
    texts = read_captions(a.captions)
    emb = clip.embed_texts(texts)
    with writer(a.out) as f:
        for t, e in zip(texts, emb):
            f.write(json.dumps({"text": t, "embedding": fmt(e)}, ensure_ascii=False) + "\n")


def cmd_tokens(a, clip):
    with writer(a.out) as f:
        for t in read_captions(a.captions):
            ids = clip.tokens(t)
            padded, mask = clip.padded(t)
            f.write(json.dumps({"text": t, "input_ids": padded, "attention_mask": mask, "length": len(ids)},
                               ensure_ascii=False) + "\n")


def rank(clip, image_dir, queries, top_k=10, batch=8):
    files = list_images([image_dir])
    names = [os.path.relpath(p, image_dir).replace(os.sep, "/") for p in files]
    ie = clip.embed_images(files, batch)
    te = clip.embed_texts([q["query"] for q in queries])
    sims = te @ ie.T
    res, r1, r5, r10, p1, f5, f10 = [], [], [], [], [], [], []
    for q, s in zip(queries, sims):
        order = np.argsort(-s, kind="stable")[:top_k]
        top = [{"file": names[i], "score": round(float(s[i]), 6)} for i in order]
        rel = set(q.get("relevant", []))
        hits = [names[i] in rel for i in order]
        if rel:
            r1.append(float(any(hits[:1]))); r5.append(float(any(hits[:5]))); r10.append(float(any(hits[:10])))
            p1.append(float(hits[0]))
            f5.append(sum(hits[:5]) / min(5, len(rel))); f10.append(sum(hits[:10]) / min(10, len(rel)))
        res.append({"query": q["query"], "top": top, "relevant_in_top": int(sum(hits)),
                    "n_relevant": len(rel)})
    metrics = {"queries": len(queries), "images": len(files), "top_k": top_k,
               "R@1": float(np.mean(r1)) if r1 else None, "R@5": float(np.mean(r5)) if r5 else None,
               "R@10": float(np.mean(r10)) if r10 else None, "precision@1": float(np.mean(p1)) if p1 else None,
               "recall_frac@5": float(np.mean(f5)) if f5 else None, "recall_frac@10": float(np.mean(f10)) if f10 else None,
               "definitions": "R@k = share of queries with >=1 relevant file in the top k (hit rate, as in the CLIP "
                              "paper); precision@1 = R@1; recall_frac@k = mean of |relevant in top k| / min(k, |relevant|)"}
    return {"metrics": metrics, "results": res}


def cmd_rank(a, clip):
    with open(a.queries, encoding="utf-8") as f:
        queries = [json.loads(line) for line in f if line.strip()]
    doc = rank(clip, a.image_dir, queries, a.top_k, a.batch)
    with writer(a.out) as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(doc["metrics"]), file=sys.stderr)


def cmd_bench(a, clip):
    files = list_images([a.image_dir])[: a.limit or None]
    if not files:
        raise SystemExit("no images")
    clip.embed_images(files[:2])  # warm-up (sessions, processor)
    t0 = time.perf_counter()
    px = [clip.pixels(p) for p in files]
    t1 = time.perf_counter()
    for i in range(0, len(px), a.batch):
        clip.embed_pixels(np.stack(px[i:i + a.batch]))
    t2 = time.perf_counter()
    n = len(files)
    import onnxruntime as ort
    r = {"images": n, "batch": a.batch, "threads": a.threads or "ort default (all cores)",
         "decode+preprocess_img_per_s": round(n / (t1 - t0), 2), "inference_img_per_s": round(n / (t2 - t1), 2),
         "end_to_end_img_per_s": round(n / (t2 - t0), 2), "ms_per_image_end_to_end": round(1e3 * (t2 - t0) / n, 2),
         "onnxruntime": ort.__version__, "cpu_count": os.cpu_count()}
    print(json.dumps(r, indent=1))


def cmd_zeroshot(a, clip):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_synthetic import CLASSES, TEMPLATE
    with open(os.path.join(a.image_dir, "labels.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    te = clip.embed_texts([TEMPLATE.format(c=c, s=s) for c, s in CLASSES])
    ie = clip.embed_images([os.path.join(a.image_dir, r["file"]) for r in rows], batch=16)
    pred = (ie @ te.T).argmax(1)
    truth = np.array([CLASSES.index((r["colour"], r["shape"])) for r in rows])
    ok = pred == truth
    colour_ok = np.array([CLASSES[p][0] == CLASSES[t][0] for p, t in zip(pred, truth)])
    shape_ok = np.array([CLASSES[p][1] == CLASSES[t][1] for p, t in zip(pred, truth)])
    print(json.dumps({"images": len(rows), "classes": len(CLASSES), "top1": round(float(ok.mean()), 4),
                      "colour_acc": round(float(colour_ok.mean()), 4), "shape_acc": round(float(shape_ok.mean()), 4)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = default)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("images", help="embed image files/folders")
    p.add_argument("model"); p.add_argument("paths", nargs="+")
    p.add_argument("--root", help="paths in the output are relative to this (default: common folder)")
    p.add_argument("--batch", type=int, default=1); p.add_argument("--out")
    p = sub.add_parser("texts", help="embed captions (one per line)")
    p.add_argument("model"); p.add_argument("captions"); p.add_argument("--out")
    p = sub.add_parser("tokens", help="token ids padded to the context length + attention mask")
    p.add_argument("model"); p.add_argument("captions"); p.add_argument("--out")
    p = sub.add_parser("rank", help="text->image retrieval over a folder")
    p.add_argument("model"); p.add_argument("image_dir"); p.add_argument("queries")
    p.add_argument("--top-k", type=int, default=10); p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out")
    p = sub.add_parser("bench", help="time images/s for a folder")
    p.add_argument("model"); p.add_argument("image_dir")
    p.add_argument("--batch", type=int, default=8); p.add_argument("--limit", type=int, default=0)
    p = sub.add_parser("zeroshot", help="zero-shot top-1 on a gen_synthetic.py folder")
    p.add_argument("model"); p.add_argument("image_dir")
    a = ap.parse_args()
    clip = Clip(a.model, a.threads)
    {"images": cmd_images, "texts": cmd_texts, "tokens": cmd_tokens, "rank": cmd_rank, "bench": cmd_bench,
     "zeroshot": cmd_zeroshot}[a.cmd](a, clip)


if __name__ == "__main__":
    main()
