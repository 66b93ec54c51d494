#!/usr/bin/env python3
"""Evaluate the tiny multilingual text tower against tiny-clip's images (no torch needed).

Runs in the CI/reference environment (.venv: transformers, tokenizers, onnxruntime, numpy, pillow):
  * images: `gen_synthetic.py IMAGES --count 96 --seed 77` (generated if IMAGES/labels.jsonl is missing),
    embedded with tiny-clip's vision_model.onnx after Pillow open -> exif_transpose -> CLIPImageProcessorPil
    (from tiny-clip's preprocessor_config.json), L2-normalised (as tools/reference.py);
  * multilingual tower: transformers AutoTokenizer.from_pretrained(MODEL) (truncation at model_max_length, no
    padding), text_model.onnx fed the inputs the graph declares, L2-normalised;
  * baseline: tiny-clip's own text tower (tokenizers + tokenizer.json, no padding, mask of ones) on English.
precision@1 per (language, template) = mean over the 48 classes of [class of the top-1 image == query's class].
Also checks: AutoTokenizer ids == tokenizers.Tokenizer.from_file(tokenizer.json).encode ids (captions + stress
texts), padding invariance, batched == single.

example: .venv/bin/python tools/eval_multilingual.py --model tests/fixtures/tiny-multilingual --images /tmp/ml-images
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.dont_write_bytecode = True


def l2n(x):
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def image_embeddings(teacher, image_dir):
    from PIL import Image, ImageOps
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    with open(os.path.join(teacher, "preprocessor_config.json")) as f:
        cfg = json.load(f)
    cfg.pop("image_processor_type", None)
    cfg.pop("processor_class", None)
    proc = CLIPImageProcessorPil(**cfg)
    vis = session(os.path.join(teacher, "vision_model.onnx"))
    with open(os.path.join(image_dir, "labels.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    out = []
    for r in rows:
        im = ImageOps.exif_transpose(Image.open(os.path.join(image_dir, r["file"])))
        px = proc(images=im, return_tensors="np")["pixel_values"].astype(np.float32)
        out.append(vis.run(["image_embeds"], {"pixel_values": px})[0][0])
    return rows, l2n(np.stack(out))


class Tower:
    """The multilingual tower exactly as a reader of the folder would use it (AutoTokenizer + onnxruntime)."""

    def __init__(self, model_dir):
        from transformers import AutoTokenizer
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.sess = session(os.path.join(model_dir, "text_model.onnx"))
        self.names = [i.name for i in self.sess.get_inputs()]

    def ids(self, text):
        return self.tok(text, truncation=True, max_length=self.tok.model_max_length)["input_ids"]

    def embed(self, texts):
        out = []
        for t in texts:
            ids = np.array([self.ids(t)], np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            out.append(self.sess.run(["text_embeds"], {n: feed[n] for n in self.names})[0][0])
        return l2n(np.stack(out))

    def embed_padded(self, texts, length=None):
        enc = self.tok(texts, truncation=True, max_length=length or self.tok.model_max_length,
                       padding="max_length" if length else "longest", return_tensors="np")
        feed = {n: np.asarray(enc[n], np.int64) for n in self.names}
        return l2n(self.sess.run(["text_embeds"], feed)[0]), feed


class Teacher:
    def __init__(self, teacher):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(os.path.join(teacher, "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(77)
        self.sess = session(os.path.join(teacher, "text_model.onnx"))

    def embed(self, texts):
        out = []
        for t in texts:
            ids = np.array([self.tok.encode(t).ids], np.int64)
            out.append(self.sess.run(["text_embeds"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0])
        return l2n(np.stack(out))


def stress_texts(tok_max):
    return ["", " ", "   ", "\t\n", "\u3000", "a", "🐱", "🐱🐶 emoji only 👍🏽", "👨‍👩‍👧", "a red star ⭐", "红色的星星⭐",
            "A PHOTO OF A RED STAR", "Una Foto De Una Estrella Roja.", "una foto de una estrella roja",
            "una foto de una estrella roja".replace("í", "i\u0301"), "círculo", "circulo", "ci\u0301rculo",
            "CÍRCULO", "¿Es una cruz azul?", "¡Qué estrella tan roja!", "赤い丸の写真", "赤い丸の写真。", "オレンジ色の星",
            "ｵﾚﾝｼﾞ色の星", "ｒｅｄ ｓｔａｒ", "ＲＥＤ", "一张红色圆形的照片", "一張紅色圓形的照片", "紅色的圓形 and a red circle",
            "红色 circle ロジョ rojo 赤い", "red\u00a0star", "red\u200bstar", "red\x1cstar", "x\x00y", "[MASK] star",
            "[CLS] red [SEP] star [PAD]", "[mask]", "##ed", "Straße", "İstanbul", "ΟΔΟΣ", "한국어 빨간 별",
            "a " * 200, "red " * 100, "红" * 300, "赤い" * 80, "x" * 150, " ".join(["círculo"] * 70),
            "a photo of a red star " * 10 + "🐱"]


def check_tokenizer(model_dir, tower, texts):
    from tokenizers import Tokenizer
    tj = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    bad = []
    for t in texts:
        a = tj.encode(t).ids                           # tokenizer.json as saved: truncation 64, no padding
        b = tower.ids(t)
        if a != b:
            bad.append({"text": t[:80], "tokenizers": a[:20], "transformers": b[:20]})
    return {"texts": len(texts), "mismatches": len(bad), "examples": bad[:5],
            "max_len_seen": max(len(tj.encode(t).ids) for t in texts),
            "special_ids": {s: tower.tok.convert_tokens_to_ids(s) for s in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]},
            "pad_token_id": tower.tok.pad_token_id, "tokenizer_class": type(tower.tok).__name__}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tests/fixtures/tiny-multilingual")
    ap.add_argument("--teacher", default="tests/fixtures/tiny-clip")
    ap.add_argument("--images", default=".local/multilingual-eval-images")
    ap.add_argument("--gen", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen_synthetic.py"))
    ap.add_argument("--count", type=int, default=96, help="images to generate if IMAGES has no labels.jsonl")
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--json", action="store_true", help="print one JSON document as the last line")
    a = ap.parse_args()
    log = sys.stderr if a.json else sys.stdout

    if not os.path.exists(os.path.join(a.images, "labels.jsonl")):
        subprocess.run([sys.executable, "-B", a.gen, a.images, "--count", str(a.count), "--seed", str(a.seed)], check=True,
                       stdout=log)
    rows, ie = image_embeddings(a.teacher, a.images)
    img_cls = [(r["colour"], r["shape"]) for r in rows]

    with open(os.path.join(a.model, "queries.jsonl"), encoding="utf-8") as f:
        queries = [json.loads(line) for line in f if line.strip()]
    tower, teacher = Tower(a.model), Teacher(a.teacher)

    def p_at_1(emb, qs):
        top = (emb @ ie.T).argmax(1)
        return float(np.mean([img_cls[i] == (q["colour"], q["shape"]) for i, q in zip(top, qs)]))

    def zeroshot(emb, qs):
        """image -> the 48 class queries of one template: share of images whose best query has their class"""
        cls = [(q["colour"], q["shape"]) for q in qs]
        best = (ie @ emb.T).argmax(1)
        return float(np.mean([cls[b] == c for b, c in zip(best, img_cls)]))

    def recall2(emb, qs):
        """share of the class's images (2 per class with --count 96) found in the top 2: harder than p@1"""
        order = np.argsort(-(emb @ ie.T), axis=1, kind="stable")[:, :2]
        return float(np.mean([np.mean([img_cls[i] == (q["colour"], q["shape"]) for i in o]) for o, q in zip(order, qs)]))

    langs = list(dict.fromkeys(q["lang"] for q in queries))
    res = {"images": len(rows), "per_template": [], "per_lang": {}}
    for lang in langs:
        for held in (True, False):
            tpls = list(dict.fromkeys(q["template"] for q in queries if q["lang"] == lang and q["held_out"] == held))
            vals = []
            for tpl in tpls:
                qs = [q for q in queries if q["lang"] == lang and q["template"] == tpl]
                if held:      # one query per class (primary forms); training templates: every synonym variant
                    assert len(qs) == 48, (lang, tpl, len(qs))
                e = tower.embed([q["text"] for q in qs])
                v = p_at_1(e, qs)
                vals.append(v)
                if held:
                    res["per_template"].append({"lang": lang, "template": tpl, "tower": "tiny-multilingual",
                                                "precision@1": v, "recall_frac@2": recall2(e, qs),
                                                "zeroshot_top1": zeroshot(e, qs)})
            res["per_lang"].setdefault(lang, {})["held_out" if held else "train_templates"] = float(np.mean(vals))
    # baseline: tiny-clip's own text tower on the English held-out templates and the canonical template
    en_held = list(dict.fromkeys(q["template"] for q in queries if q["lang"] == "en" and q["held_out"]))
    base, base2, base3 = {}, {}, {}
    for tpl in en_held + ["a photo of a {c} {s}"]:
        qs = [q for q in queries if q["lang"] == "en" and q["template"] == tpl]
        e = teacher.embed([q["text"] for q in qs])
        base[tpl] = p_at_1(e, qs)
        base2[tpl] = recall2(e, qs)
        base3[tpl] = zeroshot(e, qs)
    res["baseline_tiny_clip"] = base
    res["baseline_tiny_clip_recall_frac@2"] = base2
    res["baseline_tiny_clip_zeroshot_top1"] = base3
    base_held = float(np.mean([base[t] for t in en_held]))
    res["baseline_held_out_mean"] = base_held
    res["within_0.05_of_baseline"] = {l: res["per_lang"][l]["held_out"] >= base_held - 0.05 for l in langs}

    # checks
    texts = [q["text"] for q in queries] + stress_texts(tower.tok.model_max_length)
    res["tokenizer_parity"] = check_tokenizer(a.model, tower, texts)
    sample = [q["text"] for q in queries[::7]][:64] + ["", "🐱", "红" * 300]
    single = tower.embed(sample)
    batched, feed = tower.embed_padded(sample)
    padded64, _ = tower.embed_padded(sample, length=tower.tok.model_max_length)
    res["padding_invariance_max_abs"] = float(max(np.abs(single - batched).max(), np.abs(single - padded64).max()))
    res["onnx_inputs"] = tower.names
    res["onnx_outputs"] = [o.name for o in tower.sess.get_outputs()]
    # cosine of the multilingual English vs the teacher on the canonical captions (alignment sanity)
    canon = [q for q in queries if q["lang"] == "en" and q["template"] == "a photo of a {c} {s}"]
    res["cos_student_teacher_en_canonical"] = float(np.mean(np.sum(
        tower.embed([q["text"] for q in canon]) * teacher.embed([q["text"] for q in canon]), -1)))

    # markdown table
    md = [f"| language | held-out template | precision@1 (text→image) | recall_frac@2 | zero-shot top-1 "
          f"(image→48 queries) |", "|---|---|---|---|---|"]
    for r in res["per_template"]:
        md.append(f"| {r['lang']} (tiny-multilingual) | `{r['template']}` | {r['precision@1']:.3f} | "
                  f"{r['recall_frac@2']:.3f} | {r['zeroshot_top1']:.3f} |")
    for tpl, v in base.items():
        md.append(f"| en (**tiny-clip own text tower**, baseline) | `{tpl}` | {v:.3f} | {base2[tpl]:.3f} | "
                  f"{base3[tpl]:.3f} |")
    md += ["", "| language | mean p@1 held-out templates | mean p@1 training templates (all synonyms) | "
           "≥ baseline − 0.05 |", "|---|---|---|---|"]
    for l in langs:
        md.append(f"| {l} | {res['per_lang'][l]['held_out']:.3f} | {res['per_lang'][l]['train_templates']:.3f} | "
                  f"{'yes' if res['within_0.05_of_baseline'][l] else 'NO'} |")
    md.append(f"| baseline: tiny-clip, English held-out templates | {base_held:.3f} | | |")
    res["table_md"] = "\n".join(md)
    print(res["table_md"], file=log)
    summary = {k: v for k, v in res.items() if k not in ("table_md", "per_template")}
    print(json.dumps(summary, indent=1, ensure_ascii=False), file=log)
    if a.json:
        print(json.dumps(res, ensure_ascii=False))


if __name__ == "__main__":
    main()
