#!/usr/bin/env python3
"""Train a tiny MULTILINGUAL text tower aligned to tiny-clip's text/image space (test fixture).

The recipe of sentence-transformers' clip-ViT-B-32-multilingual-v1, shrunk to the synthetic world of
tiny-clip (8 colours x 6 shapes): a small BERT encoder (transformers BertModel) -> mean pooling over the
attention mask -> Dense (Linear) to 512, trained by multilingual knowledge distillation:
    student(caption in any language)  ~=  teacher(English caption of the same class)
where teacher = tiny-clip's own text tower (text_model.onnx run with onnxruntime, tokenizer.json with the
`tokenizers` library: no padding, attention_mask of ones, L2-normalised). The English captions themselves are
trained too (student(English) ~= teacher(English)).

Languages: en, zh-Hans, zh-Hant, ja, es. Every language has training templates and 2 HELD-OUT templates
(never trained on; new combinations of words seen in training) used for evaluation (tools/eval_multilingual.py).
The translation tables below (COLOURS/SHAPES per language, TEMPLATES) are the single source of the captions;
OUT/queries.jsonl lists every caption with {"lang","text","colour","shape","held_out","template","teacher"}.

Tokenizer: a WordPiece vocabulary trained here with `tokenizers` on the caption corpus (+ ASCII / common
punctuation alphabet): BertNormalizer(clean_text, handle_chinese_chars, lowercase, strip_accents = lowercase,
i.e. BERT-uncased), BertPreTokenizer, "[CLS] $A [SEP]", truncation 64, no padding.
[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4.

Output OUT (default tests/fixtures/tiny-multilingual):
  text_model.onnx   input_ids i64[B,S], attention_mask i64[B,S] (S <= 64) -> text_embeds f32[B,512]
                    = Linear(mean-pool(last_hidden_state, attention_mask)), NOT L2-normalised
  tokenizer.json, tokenizer_config.json (BertTokenizer), config.json (BertConfig + projection fields),
  text_tower.json, README.md, queries.jsonl
torch is only needed here; tools/eval_multilingual.py runs without torch.

example (about 2-3 min on one CPU core):
  .venv-bench/bin/python tools/train_tiny_multilingual.py --teacher tests/fixtures/tiny-clip
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

# ----------------------------------------------------------------------------- vocabulary (tiny-clip's world)
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["circle", "square", "triangle", "star", "stripes", "cross"]
CLASSES = [(c, s) for c in COLOURS for s in SHAPES]
LANGS = ["en", "zh-Hans", "zh-Hant", "ja", "es"]

# English templates tiny-clip's text tower was trained on (= teacher templates). Keys are used below.
TEACHER = {
    "photo": "a photo of a {c} {s}",          # canonical query template
    "a": "a {c} {s}",
    "bare": "{c} {s}",
    "picture": "a picture of a {c} {s}",
    "image": "an image of a {c} {s}",
    "the": "a photo of the {c} {s}",
    "that": "a {s} that is {c}",
}

# --- Chinese. Per colour / shape: list of synonyms, the FIRST is the primary form (held-out templates use it).
ZH_HANS_COLOUR = {"red": ["红色"], "green": ["绿色"], "blue": ["蓝色"], "yellow": ["黄色"], "purple": ["紫色"],
                  "orange": ["橙色", "橘色"], "white": ["白色"], "black": ["黑色"]}
ZH_HANS_SHAPE = {"circle": ["圆形", "圆圈", "圆"], "square": ["正方形", "方形", "方块"], "triangle": ["三角形", "三角"],
                 "star": ["星形", "星星", "五角星"], "stripes": ["条纹"], "cross": ["十字", "十字形"]}
ZH_HANT_COLOUR = {"red": ["紅色"], "green": ["綠色"], "blue": ["藍色"], "yellow": ["黃色"], "purple": ["紫色"],
                  "orange": ["橘色", "橙色"], "white": ["白色"], "black": ["黑色"]}
ZH_HANT_SHAPE = {"circle": ["圓形", "圓圈", "圓"], "square": ["正方形", "方形", "方塊"], "triangle": ["三角形", "三角"],
                 "star": ["星形", "星星", "五角星"], "stripes": ["條紋"], "cross": ["十字", "十字形"]}
# (template, teacher key, held_out)
ZH_HANS_TPL = [("一张{c}{s}的照片", "photo", False), ("{c}的{s}", "a", False), ("{c}{s}", "bare", False),
               ("一张{c}{s}的图片", "picture", False), ("一张{c}{s}的图像", "image", False),
               ("这张照片里是{c}的{s}", "photo", False), ("颜色是{c}的{s}", "that", False), ("这是{c}的{s}", "a", False),
               ("{c}{s}的图片", "picture", True), ("这是一张{c}{s}的照片", "photo", True)]
ZH_HANT_TPL = [("一張{c}{s}的照片", "photo", False), ("{c}的{s}", "a", False), ("{c}{s}", "bare", False),
               ("一張{c}{s}的圖片", "picture", False), ("一張{c}{s}的圖像", "image", False),
               ("這張照片裡是{c}的{s}", "photo", False), ("顏色是{c}的{s}", "that", False), ("這是{c}的{s}", "a", False),
               ("{c}{s}的圖片", "picture", True), ("這是一張{c}{s}的照片", "photo", True)]

# --- Japanese. Colour forms: ca = attributive (赤い / 緑の), cc = "…色の" (赤色の / 黄色の), cn = noun (赤 / 黄色).
JA_COLOUR = {"red": ("赤い", "赤色の", "赤"), "green": ("緑の", "緑色の", "緑"), "blue": ("青い", "青色の", "青"),
             "yellow": ("黄色い", "黄色の", "黄色"), "purple": ("紫の", "紫色の", "紫"),
             "orange": ("オレンジの", "オレンジ色の", "オレンジ"), "white": ("白い", "白色の", "白"),
             "black": ("黒い", "黒色の", "黒")}
JA_SHAPE = {"circle": ["円", "丸"], "square": ["四角", "正方形", "四角形"], "triangle": ["三角", "三角形"],
            "star": ["星", "星形"], "stripes": ["しま模様", "ストライプ", "縞模様"], "cross": ["十字", "十字形"]}
JA_TPL = [("{ca}{s}の写真", "photo", False), ("{ca}{s}", "a", False), ("{cc}{s}", "bare", False),
          ("{ca}{s}の画像", "image", False), ("{ca}{s}の絵", "picture", False), ("色が{cn}の{s}", "that", False),
          ("{ca}{s}が写っている写真", "photo", False), ("これは{ca}{s}です", "a", False),
          ("{cc}{s}の写真", "photo", True), ("これは{ca}{s}の画像です", "image", True)]

# --- Spanish. Nouns with gender/number; adjectives agree (m sg, f sg, m pl, f pl); "de color X" uses m sg.
ES_SHAPE = {"circle": [("círculo", "m", "sg")], "square": [("cuadrado", "m", "sg")],
            "triangle": [("triángulo", "m", "sg")], "star": [("estrella", "f", "sg")],
            "stripes": [("rayas", "f", "pl"), ("franjas", "f", "pl")], "cross": [("cruz", "f", "sg")]}
ES_COLOUR = {"red": [("rojo", "roja", "rojos", "rojas")], "green": [("verde", "verde", "verdes", "verdes")],
             "blue": [("azul", "azul", "azules", "azules")],
             "yellow": [("amarillo", "amarilla", "amarillos", "amarillas")],
             "purple": [("morado", "morada", "morados", "moradas"), ("violeta", "violeta", "violetas", "violetas")],
             "orange": [("naranja", "naranja", "naranjas", "naranjas"),
                        ("anaranjado", "anaranjada", "anaranjados", "anaranjadas")],
             "white": [("blanco", "blanca", "blancos", "blancas")], "black": [("negro", "negra", "negros", "negras")]}
ES_TPL = [("una foto de {un} {n} {adj}", "photo", False), ("{un} {n} {adj}", "a", False), ("{n} {adj}", "bare", False),
          ("una imagen de {un} {n} {adj}", "image", False), ("una ilustración de {un} {n} {adj}", "picture", False),
          ("una foto {del_} {n} {adj}", "the", False), ("{un} {n} de color {cm}", "that", False),
          ("esto es {un} {n} {adj}", "a", False),
          ("una imagen {del_} {n} {adj}", "image", True), ("foto de {un} {n} {adj}", "photo", True)]

# --- English (student side). Teacher templates + a few variants built from the same words.
EN_TPL = [(TEACHER["photo"], "photo", False), (TEACHER["a"], "a", False), (TEACHER["bare"], "bare", False),
          (TEACHER["image"], "image", False), (TEACHER["that"], "that", False), ("the {c} {s}", "a", False),
          ("a picture of the {c} {s}", "picture", False), ("this is a {c} {s}", "a", False),
          (TEACHER["picture"], "picture", True), (TEACHER["the"], "the", True)]


def _es_slots(c, s):
    for n, g, num in ES_SHAPE[s]:
        for forms in ES_COLOUR[c]:
            adj = forms[{("m", "sg"): 0, ("f", "sg"): 1, ("m", "pl"): 2, ("f", "pl"): 3}[(g, num)]]
            un = {("m", "sg"): "un", ("f", "sg"): "una", ("m", "pl"): "unos", ("f", "pl"): "unas"}[(g, num)]
            del_ = {("m", "sg"): "del", ("f", "sg"): "de la", ("m", "pl"): "de los", ("f", "pl"): "de las"}[(g, num)]
            yield {"n": n, "adj": adj, "un": un, "del_": del_, "cm": forms[0]}


def _slots(lang, c, s):
    """All slot fillings for class (c, s) in `lang`; the first one uses the primary forms."""
    if lang == "en":
        return [{"c": c, "s": s}]
    if lang in ("zh-Hans", "zh-Hant"):
        col, shp = (ZH_HANS_COLOUR, ZH_HANS_SHAPE) if lang == "zh-Hans" else (ZH_HANT_COLOUR, ZH_HANT_SHAPE)
        return [{"c": a, "s": b} for b in shp[s] for a in col[c]]
    if lang == "ja":
        ca, cc, cn = JA_COLOUR[c]
        return [{"ca": ca, "cc": cc, "cn": cn, "s": b} for b in JA_SHAPE[s]]
    if lang == "es":
        return list(_es_slots(c, s))
    raise ValueError(lang)


TEMPLATES = {"en": EN_TPL, "zh-Hans": ZH_HANS_TPL, "zh-Hant": ZH_HANT_TPL, "ja": JA_TPL, "es": ES_TPL}


def captions():
    """Every caption: dicts lang, text, colour, shape, held_out, template, teacher (English teacher caption).
    Training templates use every synonym combination; held-out templates only the primary forms."""
    out, seen = [], set()
    for lang in LANGS:
        for ti, (tpl, key, held) in enumerate(TEMPLATES[lang]):
            for c, s in CLASSES:
                slots = _slots(lang, c, s)
                for sl in (slots[:1] if held else slots):
                    text = tpl.format(**sl)
                    if (lang, text) in seen:
                        continue
                    seen.add((lang, text))
                    out.append({"lang": lang, "text": text, "colour": c, "shape": s, "held_out": held,
                                "template": tpl, "teacher": TEACHER[key].format(c=c, s=s)})
    return out


def augment(rows, seed):
    """Deterministic light augmentation of TRAINING captions: trailing punctuation, capitalised first letter."""
    r = random.Random(seed)
    out = []
    for row in rows:
        if r.random() < 0.3:
            t = row["text"]
            if row["lang"] in ("en", "es"):
                t = (t[0].upper() + t[1:]) if r.random() < 0.5 else t
                t = t + r.choice([".", "!", ""])
            else:
                t = t + r.choice(["。", "！", "."])
            if t != row["text"]:
                out.append(dict(row, text=t, augmented=True))
    return out


# ----------------------------------------------------------------------------- tokenizer
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_LEN = 64
EXTRA_ALPHABET = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?;:'\"()[]{}-_/\\&%#@*+=<>~`|^$¡¿…。、，！？：；（）「」『』・ー〜")


def _is_kana(ch):
    o = ord(ch)
    return 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F


def train_tokenizer(texts, vocab_size):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import WordPiece
    tok = Tokenizer(WordPiece(unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tr = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIALS,
                                   initial_alphabet=EXTRA_ALPHABET, continuing_subword_prefix="##",
                                   show_progress=False)
    tok.train_from_iterator(texts, tr)
    # Canonicalise (the trainer is not deterministic across processes: Rust HashMap order decides ties between
    # intermediate merges and the ids): keep the specials, every single character (word-initial and "##"), and
    # the complete words of the corpus; drop intermediate pieces; sort. The corpus is small enough that the
    # trainer merges every word completely (vocab_size is never reached; asserted below).
    # Kana runs are not split by BertPreTokenizer ("赤いストライプの写真" -> 赤 / いストライプの / 写 / 真), so
    # whole-run tokens would not generalise to new particle+word combinations: kana stay at character level.
    words = {w for t in texts for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(t))}
    learned = set(tok.get_vocab())
    assert len(learned) < vocab_size and words <= learned, "vocab_size reached: raise --vocab-size"
    chars = {ch for t in learned | set(EXTRA_ALPHABET) for ch in t.removeprefix("##") if t not in SPECIALS}
    keep = {ch for ch in chars} | {"##" + ch for ch in chars}
    keep |= {w for w in words if not any(map(_is_kana, w))}
    keep = SPECIALS + sorted(keep - set(SPECIALS), key=lambda t: (t.startswith("##"), t))
    tok.model = WordPiece({t: i for i, t in enumerate(keep)}, unk_token="[UNK]", continuing_subword_prefix="##",
                          max_input_chars_per_word=100)
    ids = [tok.token_to_id(t) for t in SPECIALS]
    assert ids == [0, 1, 2, 3, 4], ids
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.no_padding()
    tok.enable_truncation(MAX_LEN)
    return tok


TOKENIZER_CONFIG = {
    "backend": "tokenizers", "tokenizer_class": "BertTokenizer", "do_lower_case": True, "strip_accents": None,
    "tokenize_chinese_chars": True, "model_max_length": MAX_LEN, "pad_token": "[PAD]", "unk_token": "[UNK]",
    "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
    "model_input_names": ["input_ids", "attention_mask"], "clean_up_tokenization_spaces": True,
}


def encode(tok, texts):
    encs = [tok.encode(t) for t in texts]
    n = max(len(e.ids) for e in encs)
    ids = np.zeros((len(texts), n), np.int64)
    mask = np.zeros((len(texts), n), np.int64)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = e.ids
        mask[i, :len(e.ids)] = 1
    return ids, mask


# ----------------------------------------------------------------------------- teacher
def teacher_embeddings(teacher_dir, texts):
    import onnxruntime as ort
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(teacher_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(77)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(teacher_dir, "text_model.onnx"), so, providers=["CPUExecutionProvider"])
    out = {}
    for t in texts:
        ids = np.array([tok.encode(t).ids], np.int64)
        e = sess.run(["text_embeds"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        out[t] = (e / np.linalg.norm(e)).astype(np.float32)
    return out


# ----------------------------------------------------------------------------- student
def make_model(vocab_size, a):
    import torch
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=a.hidden, num_hidden_layers=a.layers,
                     num_attention_heads=a.heads, intermediate_size=a.intermediate, max_position_embeddings=MAX_LEN,
                     type_vocab_size=1, pad_token_id=0, hidden_dropout_prob=a.dropout,
                     attention_probs_dropout_prob=a.dropout, hidden_act="gelu")
    cfg._attn_implementation = "eager"

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(cfg, add_pooling_layer=False)
            self.projection = torch.nn.Linear(a.hidden, 512)

        def forward(self, input_ids, attention_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return self.projection(pooled)

    return Tower(), cfg


def export(model, out, vocab_size):
    import onnx
    import onnxruntime as ort
    import torch
    model.eval()
    path = os.path.join(out, "text_model.onnx")
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(5, vocab_size, (2, 9), generator=g)
    ids[:, 0] = 2
    ids[0, 6], ids[1, 4] = 3, 3
    mask = (torch.arange(9)[None] <= torch.tensor([[6], [4]])).long()
    ids = ids * mask
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask), path, input_names=["input_ids", "attention_mask"],
                          output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"}, "text_embeds": {0: "batch"}},
                          opset_version=17, dynamo=False, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    assert not [f for f in os.listdir(out) if f.endswith(".data")], "external data written"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    worst_torch = worst_pad = 0.0
    with torch.no_grad():
        for b, s in ((1, 1), (1, 2), (1, 5), (3, 12), (4, 33), (2, MAX_LEN)):
            i = torch.randint(5, vocab_size, (b, s), generator=g)
            i[:, 0] = 2
            n = s // 2                                          # [CLS] ... [SEP] at n, then padding
            if n > 0:
                i[:, n] = 3
            mk = torch.ones(b, s, dtype=torch.long)
            mk[:, n + 1:] = 0
            i = i * mk                                          # [PAD] = 0 after [SEP]
            o = sess.run(None, {"input_ids": i.numpy(), "attention_mask": mk.numpy()})[0]
            worst_torch = max(worst_torch, float(np.abs(o - model(i, mk).numpy()).max()))
            o2 = sess.run(None, {"input_ids": i[:, :n + 1].numpy(), "attention_mask": mk[:, :n + 1].numpy()})[0]
            worst_pad = max(worst_pad, float(np.abs(o - o2).max()))
    print(f"onnx vs torch max abs diff {worst_torch:.2e}; padded vs unpadded (onnx) {worst_pad:.2e}; "
          f"ir_version {m.ir_version}, opset {[o.version for o in m.opset_import]}")
    assert worst_torch < 1e-4 and worst_pad < 1e-4, (worst_torch, worst_pad)
    return {"onnx_vs_torch": worst_torch, "padded_vs_unpadded": worst_pad, "ir_version": m.ir_version}


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/tiny-multilingual")
    ap.add_argument("--teacher", default="tests/fixtures/tiny-clip", help="tiny-clip model folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=192)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--vocab-size", type=int, default=2000, help="WordPiece vocabulary size upper bound")
    ap.add_argument("--contrastive", type=float, default=0.1, help="weight of the 48-class InfoNCE term")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-python", default=".venv/bin/python",
                    help="python (no torch needed) to run eval.py after training; '' to skip")
    a = ap.parse_args()

    import torch
    import torch.nn.functional as F
    t_start = time.time()
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out, exist_ok=True)

    rows = captions()
    train_rows = [r for r in rows if not r["held_out"]]
    held_rows = [r for r in rows if r["held_out"]]
    aug = augment(train_rows, a.seed)
    print(f"captions: {len(rows)} ({len(train_rows)} train + {len(aug)} augmented, {len(held_rows)} held-out)")
    with open(os.path.join(a.out, "queries.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    # tokenizer: trained on every caption (held-out ones only add word combinations, no new words)
    tok = train_tokenizer([r["text"] for r in rows + aug], a.vocab_size)
    tok.save(os.path.join(a.out, "tokenizer.json"))
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump(TOKENIZER_CONFIG, f, indent=2, sort_keys=True)
        f.write("\n")
    V = tok.get_vocab_size()
    seen = {i for r in train_rows for i in tok.encode(r["text"]).ids}
    new_in_held = sorted({tok.id_to_token(i) for r in held_rows for i in tok.encode(r["text"]).ids} -
                         {tok.id_to_token(i) for i in seen})
    assert not new_in_held, f"held-out captions use tokens never trained on: {new_in_held}"
    unk = sum(tok.encode(r["text"]).ids.count(1) for r in rows)
    print(f"tokenizer: vocab {V}, [UNK] in captions: {unk}")

    # teacher targets
    t0 = time.time()
    tmap = teacher_embeddings(a.teacher, sorted({r["teacher"] for r in rows} |
                                                {TEACHER["photo"].format(c=c, s=s) for c, s in CLASSES}))
    canon = torch.from_numpy(np.stack([tmap[TEACHER["photo"].format(c=c, s=s)] for c, s in CLASSES]))
    print(f"teacher: {len(tmap)} English captions embedded in {time.time() - t0:.1f}s")

    def tensors(rs):
        ids, mask = encode(tok, [r["text"] for r in rs])
        tgt = np.stack([tmap[r["teacher"]] for r in rs])
        cls = np.array([CLASSES.index((r["colour"], r["shape"])) for r in rs])
        return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(tgt), torch.from_numpy(cls)

    tr = tensors(train_rows + aug)
    model, cfg = make_model(V, a)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"student: {nparams / 1e6:.3f}M params, max train length {tr[0].shape[1]}")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(a.seed)
    N = tr[0].shape[0]

    def evaluate(rs):
        model.eval()
        out = {}
        with torch.no_grad():
            for lang in LANGS:
                sub = [r for r in rs if r["lang"] == lang]
                ids, mask, tgt, cls = tensors(sub)
                e = F.normalize(model(ids, mask), dim=-1)
                out[lang] = {"cos": round(float((e * tgt).sum(-1).mean()), 4),
                             "text_top1": round(float(((e @ canon.T).argmax(1) == cls).float().mean()), 4)}
        model.train()
        return out

    t0 = time.time()
    model.train()
    perm, pos = torch.randperm(N, generator=g), 0
    for step in range(a.steps):
        if pos + a.batch > N:
            perm, pos = torch.randperm(N, generator=g), 0
        b = perm[pos:pos + a.batch]
        pos += a.batch
        ids, mask, tgt, cls = (x[b] for x in tr)
        L = int(mask.sum(1).max())
        e = F.normalize(model(ids[:, :L], mask[:, :L]), dim=-1)
        loss_d = (1 - (e * tgt).sum(-1)).mean()
        loss_c = F.cross_entropy(e @ canon.T / 0.05, cls)
        loss = loss_d + a.contrastive * loss_c
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == a.steps - 1:
            print(f"step {step:5d} loss {loss.item():.4f} (1-cos {loss_d.item():.4f}, nce {loss_c.item():.3f}) "
                  f"({time.time() - t0:.0f}s)", flush=True)
    train_time = time.time() - t0
    model.eval()
    ev_held, ev_train = evaluate(held_rows), evaluate(train_rows)
    print("held-out (text side: cos to teacher, top-1 vs 48 canonical teacher captions):", json.dumps(ev_held))
    print("train:", json.dumps(ev_train))

    checks = export(model, a.out, V)
    cfgd = cfg.to_dict()
    for k in ("_attn_implementation_autoset", "_name_or_path", "id2label", "label2id", "tie_word_embeddings",
              "use_cache", "add_cross_attention", "is_decoder", "chunk_size_feed_forward", "problem_type",
              "output_attentions", "output_hidden_states", "return_dict", "dtype", "is_encoder_decoder"):
        cfgd.pop(k, None)
    cfgd.update({"architectures": ["BertModel"], "pooling": "mean", "projection_dim": 512,
                 "projection_bias": True, "text_tower_note": "text_model.onnx = Linear(hidden->512)(mean-pool of "
                 "last_hidden_state over attention_mask); token_type_ids are implicitly 0 (type_vocab_size 1)"})
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfgd, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(a.out, "text_tower.json"), "w") as f:
        json.dump({"image_model": "tiny-clip", "dimension": 512, "pooling": "mean", "languages": LANGS,
                   "teacher": "tiny-clip text tower", "normalized": False, "max_length": MAX_LEN}, f, indent=2)
        f.write("\n")
    total = time.time() - t_start

    evalres = []
    if a.eval_python and os.path.exists(a.eval_python):
        here = os.path.dirname(os.path.abspath(__file__))
        for count, seed in ((96, 77), (960, 555)):
            r = subprocess.run([a.eval_python, "-B", os.path.join(here, "eval_multilingual.py"), "--model", a.out,
                                "--teacher", a.teacher, "--images", os.path.join(here, f"eval_images_seed{seed}_{count}"),
                                "--count", str(count), "--seed", str(seed), "--json"], capture_output=True, text=True)
            if r.returncode != 0:
                sys.stderr.write(r.stderr[-3000:])
                raise SystemExit("eval.py failed")
            evalres.append(json.loads(r.stdout.strip().splitlines()[-1]))
    write_readme(a, V, nparams, train_time, total, ev_held, checks, evalres, len(train_rows), len(aug), len(held_rows))
    for f in sorted(os.listdir(a.out)):
        print(f"{os.path.getsize(os.path.join(a.out, f)):>10}  {f}")
    print(f"total {total:.0f}s (training {train_time:.0f}s)")
    if evalres:
        print(evalres[0]["table_md"])


def write_readme(a, V, nparams, train_time, total, ev_held, checks, evalres, n_train, n_aug, n_held):
    langs = ", ".join(LANGS)
    lines = [
        "# tiny-multilingual — a multilingual text tower in tiny-clip's space (test fixture)",
        "",
        "A tiny BERT-style text encoder + mean pooling + Dense(→512), trained **here** by multilingual knowledge",
        "distillation from tiny-clip's English text tower (the recipe of sentence-transformers'",
        "`clip-ViT-B-32-multilingual-v1`, shrunk): `student(caption in any language) ≈ teacher(English caption)`.",
        "It maps text into **tiny-clip's** image/text space (pair it with tiny-clip's `vision_model.onnx`).",
        f"Languages: {langs}. It only knows tiny-clip's synthetic vocabulary (8 colours × 6 shapes and a few caption",
        "templates per language); anything else gives a valid but meaningless vector. Weights are random-init and",
        "trained from scratch here; no pretrained weights or external data are used.",
        "",
        "## Files",
        "| file | what |",
        "|---|---|",
        f"| `text_model.onnx` | `input_ids` i64 `[batch,seq]`, `attention_mask` i64 `[batch,seq]` (seq ≤ {MAX_LEN}) → "
        "`text_embeds` f32 `[batch,512]` = Linear(mean-pool of the last hidden state over attention_mask); "
        "**not** L2-normalised |",
        f"| `tokenizer.json` | WordPiece, {V} tokens, trained on the caption corpus; [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 "
        f"[MASK]=4; `[CLS] $A [SEP]`; truncation {MAX_LEN} ([SEP] kept last); no padding |",
        "| `tokenizer_config.json` | transformers `BertTokenizer` (do_lower_case, tokenize_chinese_chars, "
        f"strip_accents null = follows lowercase), model_max_length {MAX_LEN}, model_input_names "
        "[input_ids, attention_mask] |",
        "| `config.json` | transformers `BertConfig` of the encoder (+ pooling / projection fields) |",
        "| `text_tower.json` | which image model's space this tower maps into (`tiny-clip`, 512, mean pooling) |",
        "| `queries.jsonl` | every caption: `lang, text, colour, shape, held_out, template, teacher` |",
        "",
        "## Architecture",
        f"BertModel: hidden {a.hidden}, {a.layers} layers, {a.heads} heads, intermediate {a.intermediate}, GELU, "
        f"max_position_embeddings {MAX_LEN}, type_vocab_size 1 (no token_type_ids input), vocab {V}; "
        f"mean pooling over attention_mask (includes [CLS]/[SEP]); Linear({a.hidden}→512, bias). "
        f"{nparams / 1e6:.3f} M parameters. ONNX opset 17, IR {checks['ir_version']}, one graph, dynamic batch and "
        f"sequence axes, exported with torch 2.15 / transformers 5.24 (dynamo=False), checked in onnxruntime.",
        f"ONNX vs PyTorch max abs diff {checks['onnx_vs_torch']:.1e}; padding a row with [PAD]=0 / mask 0 vs no padding: "
        f"{checks['padded_vs_unpadded']:.1e}. Trap: a sequence longer than {MAX_LEN} fails in onnxruntime (Expand on the "
        "position/token-type buffers): always truncate (tokenizer.json and model_max_length do).",
        "",
        "## Tokenizer",
        "BertNormalizer(clean_text, handle_chinese_chars=True, lowercase=True, strip_accents=None → strips, as BERT "
        "uncased), BertPreTokenizer, WordPiece (`##` continuation, max 100 chars/word, unknown word → [UNK]). CJK "
        "ideographs become one token each. BertPreTokenizer does not split kana runs (`赤いストライプの写真` → `赤` / "
        "`いストライプの` / `写` / `真`), so kana are kept at character level (`い ##ス ##ト ##ラ ##イ ##フ ##の`): "
        "whole-run tokens would not generalise to new particle + word combinations. The vocabulary is the "
        "`tokenizers` WordPieceTrainer's, canonicalised for determinism (specials, every character as word-initial and "
        "`##` piece, every complete non-kana corpus word; intermediate merges dropped; sorted). Trap: strip_accents also removes the Japanese "
        "(han)dakuten (NFD + drop combining marks): `オレンジ` → `オレンシ`, `ストライプ` → `ストライフ`; consistent in "
        "tokenizer.json and transformers' BertTokenizer, so harmless here, but it is lossy. Spanish accents are "
        "stripped too (`círculo` = `circulo`). Emoji and characters outside the corpus alphabet → [UNK].",
        "",
        "## Data",
        f"Captions of the 48 classes in {langs}: per language 8 training templates (with synonyms: e.g. 圆形/圆圈/圆, "
        "星形/星星/五角星, 橙色/橘色, 円/丸, 四角/正方形/四角形, rayas/franjas, morado/violeta, naranja/anaranjado) "
        f"and 2 held-out templates (primary words only, never trained on). {n_train} training captions + {n_aug} "
        f"augmented copies (trailing punctuation, capitalised first letter), {n_held} held-out captions. Target of every "
        "caption = tiny-clip's L2-normalised text embedding of the corresponding English teacher template "
        "(one of the 7 templates tiny-clip was trained on). Translation tables: `train_tiny_multilingual.py`.",
        "",
        "## How it was made",
        "```",
        f"/tmp/modeldelivery/venv/bin/python train_tiny_multilingual.py --teacher <tiny-clip> --seed {a.seed} "
        f"--steps {a.steps} --batch {a.batch} --lr {a.lr} --hidden {a.hidden} --layers {a.layers} --heads {a.heads} "
        f"--intermediate {a.intermediate} --contrastive {a.contrastive} --threads {a.threads}",
        "```",
        f"AdamW (wd 0.01), one-cycle LR {a.lr}, batch {a.batch}, {a.steps} steps, dropout {a.dropout}; loss = mean(1 − cos"
        f"(normalised student, teacher)) + {a.contrastive} × InfoNCE (τ 0.05) of the normalised student against the "
        "48 canonical teacher captions `a photo of a {c} {s}`. Deterministic (fixed seeds, "
        f"torch.use_deterministic_algorithms, {a.threads} thread). Training {train_time:.0f} s, whole script {total:.0f} s "
        "on one CPU core (torch 2.15 CPU).",
        "",
        "## Metrics",
        "Text side, held-out templates (mean cosine to the teacher target / top-1 among the 48 canonical teacher "
        "captions): " + ", ".join(f"{k} {v['cos']:.3f} / {v['text_top1']:.3f}" for k, v in ev_held.items()) + ".",
        "",
    ]
    if evalres:
        e96, e960 = evalres
        lines += ["Text→image precision@1 (`eval.py`, no torch: 96 fresh images `gen_synthetic.py --count 96 --seed 77`, "
                  "tiny-clip vision tower, CLIPImageProcessorPil; tower texts through transformers' AutoTokenizer; one "
                  "query per class and held-out template; precision@1 = the top image has the query's class, averaged "
                  "over the 48 classes; recall_frac@2 = share of the class's 2 images in the top 2; zero-shot = "
                  "image → best of the 48 queries of that template):", "", e96["table_md"], "",
                  "Harder check, 960 images (`--count 960 --seed 555`, the set of tiny-clip's README), zero-shot top-1 "
                  "per held-out template: " + ", ".join(f"{r['lang']} `{r['template']}` {r['zeroshot_top1']:.3f}"
                                                        for r in e960["per_template"]) +
                  "; tiny-clip's own tower: " + ", ".join(f"`{k}` {v:.3f}" for k, v in
                                                         e960["baseline_tiny_clip_zeroshot_top1"].items()) +
                  f". Text→image precision@1 there: min {min(r['precision@1'] for r in e960['per_template']):.3f} over "
                  "every language and held-out template.", "",
                  f"Checks (tools/eval_multilingual.py): AutoTokenizer ids == tokenizers `Tokenizer.from_file(tokenizer.json).encode` ids for "
                  f"{e96['tokenizer_parity']['texts']} texts (all captions + emoji, empty, whitespace-only, very long, "
                  f"mixed scripts, NFD accents, literal [MASK]/[CLS]): {e96['tokenizer_parity']['mismatches']} mismatches; "
                  f"batched with [PAD] + mask 0 (longest and padded to 64) vs one-by-one unpadded: max abs diff "
                  f"{e96['padding_invariance_max_abs']:.1e} (normalised).", ""]
    with open(os.path.join(a.out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
