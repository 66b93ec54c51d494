#!/usr/bin/env python3
"""Make tiny RANDOM-weight SigLIP and Chinese-CLIP model folders (for numerical parity tests, not quality).

Writes OUT/tiny-siglip and OUT/tiny-chinese-clip, each in Hugging Face export layout:
  config.json, preprocessor_config.json, tokenizer files, vision_model.onnx, text_model.onnx, README.md
and the PyTorch weights of both (for re-checking the export) to OUT/_weights/<name>.pt (not part of a model folder).

  vision_model.onnx: pixel_values f32 [batch,3,224,224] -> image_embeds f32 [batch,32]   (= get_image_features)
  text_model.onnx:   SigLIP       input_ids i64 [batch,seq]                             -> text_embeds f32 [batch,32]
                     Chinese-CLIP input_ids, attention_mask, token_type_ids i64 [batch,seq] -> text_embeds
  Embeddings are NOT L2-normalised (same as tiny-clip). ONNX opset 17, TorchScript exporter, dynamic batch/sequence.

Tokenizers:
  SigLIP: a SentencePiece Unigram model (spiece.model) trained here with the `sentencepiece` trainer on a
  deterministic multilingual caption corpus (captions() below), with T5/SigLIP's special-piece layout
  (<pad>=0, </s>=1, <unk>=2, no BOS, nmt_nfkc, dummy prefix) -> transformers SiglipTokenizer
  (needs `sentencepiece` + `protobuf` at run time). tokenizer.json is a `tokenizers` port of
  SiglipTokenizer (canonicalisation + Unigram + "$A </s>" + pad/truncate to 64), checked token-for-token here.
  Chinese-CLIP: the real Chinese BERT WordPiece vocabulary (21128 tokens, bert-base-chinese = the one the
  official Chinese-CLIP uses) taken from the PyPI package cn_clip==1.6.0 (cn_clip/clip/vocab.txt; the wheel
  declares no licence, upstream OFA-Sys/Chinese-CLIP is MIT, the vocabulary itself is Google BERT's, Apache-2.0)
  -> transformers BertTokenizer (tokenizer.json + tokenizer_config.json).

Run with a Python that has torch + transformers 5.24 + onnx + onnxruntime + sentencepiece + protobuf:
  python make_tiny_family.py OUT [--seed 0] [--cn-vocab path/to/vocab.txt]
"""
import argparse
import random
import glob
import hashlib
import io
import json
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CN_VOCAB_MD5 = "3b5b76c4aef48ecf8cb3abaafe960f09"
CN_CLIP_PKG = "cn_clip==1.6.0"
SIGLIP_VOCAB = 1400
SIGLIP_MAXLEN = 64
CN_MAXLEN = 52  # the official Chinese-CLIP context length (cn_clip.clip.tokenize default)
KW = dict(opset_version=17, dynamo=False, do_constant_folding=True)

# Python's str.isspace() / re "\s" set, written out (onig's \s lacks U+001C..U+001F)
PY_WS_CHAR = "[\\t\\n\\x0B\\x0C\\r\\x1C-\\x1F \\x85\\xA0\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]"
ASCII_PUNCT = "[!-/:-@\\[-`{-~]"  # == string.punctuation


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


# ----------------------------------------------------------------------------- caption corpus
# Deterministic multilingual captions (English, Spanish, Chinese simplified + traditional, Japanese, emoji), used
# only to train the tiny SigLIP SentencePiece vocabulary.
EN_ADJ = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "small", "large", "old", "young",
          "happy", "sleepy", "wet", "shiny", "striped", "spotted", "wooden", "broken", "tiny", "huge", "bright", "dark",
          "fluffy", "golden", "silver", "empty", "crowded", "quiet", "beautiful", "strange", "famous", "rusty",
          "colorful", "frozen", "ancient", "modern", "delicious", "muddy", "foggy", "sunny", "cloudy", "transparent",
          "enormous", "miniature", "wrinkled", "glowing", "abandoned", "cheerful", "elegant", "gigantic", "wild"]
EN_NOUN = ["cat", "dog", "bird", "horse", "car", "bicycle", "boat", "train", "airplane", "tree", "flower", "house",
           "bridge", "mountain", "river", "beach", "city", "street", "child", "woman", "man", "girl", "boy", "baby",
           "pizza", "cake", "apple", "banana", "sandwich", "cup", "chair", "table", "computer", "phone", "book",
           "guitar", "piano", "umbrella", "clock", "lamp", "elephant", "giraffe", "zebra", "bear", "kitten", "puppy",
           "sunset", "forest", "castle", "temple", "market", "kitchen", "garden", "window", "door", "painting",
           "motorcycle", "truck", "bus", "helicopter", "rocket", "lighthouse", "skyscraper", "waterfall", "volcano",
           "island", "desert", "glacier", "meadow", "village", "harbor", "stadium", "library", "museum", "hospital",
           "teacher", "doctor", "farmer", "musician", "dancer", "soldier", "astronaut", "chef", "pilot", "student",
           "strawberry", "watermelon", "pineapple", "hamburger", "noodles", "dumplings", "croissant", "cookie",
           "bottle", "backpack", "keyboard", "television", "camera", "microphone", "violin", "trumpet", "drum",
           "penguin", "dolphin", "octopus", "butterfly", "squirrel", "rabbit", "tiger", "lion", "monkey", "owl",
           "snowman", "dragon", "robot", "unicorn", "skateboard", "surfboard", "kite", "balloon", "candle"]
EN_PLACE = ["on the beach", "in the park", "on a table", "in the snow", "under a tree", "next to a window",
            "in the kitchen", "on the street", "at night", "in the rain", "near the river", "in a field",
            "on a sofa", "in the city", "at the station", "on the grass", "in front of a house", "by the sea"]
EN_TPL = ["a photo of a {a} {n}", "a {a} {n} {p}", "two {n}s {p}", "the {n} is {a}", "A {A} {N} {p}.",
          "close-up of a {a} {n}", "an old picture of a {n} {p}", "{N} {p}!", "a painting of a {a} {n}",
          "there is a {n} {p}, and it looks {a}", "a blurry photo of the {n}", "{a} {n}", "my {n} {p} :)",
          "Is this a {n}? It's {a}.", "a {n} and a {n2} {p}", "3 {n}s, 2 {n2}s & 1 {a} {n3}"]

ES_NOUN = [("gato", "m"), ("perro", "m"), ("pájaro", "m"), ("caballo", "m"), ("coche", "m"), ("árbol", "m"),
           ("flor", "f"), ("casa", "f"), ("montaña", "f"), ("playa", "f"), ("ciudad", "f"), ("niña", "f"),
           ("niño", "m"), ("manzana", "f"), ("pastel", "m"), ("silla", "f"), ("mesa", "f"), ("canción", "f"),
           ("puente", "m"), ("río", "m"), ("tren", "m"), ("bicicleta", "f"), ("ventana", "f"), ("corazón", "m"),
           ("avión", "m"), ("barco", "m"), ("jardín", "m"), ("mercado", "m"), ("castillo", "m"), ("iglesia", "f"),
           ("cocinero", "m"), ("mujer", "f"), ("hombre", "m"), ("paella", "f"), ("guitarra", "f"), ("reloj", "m"),
           ("pingüino", "m"), ("mariposa", "f"), ("conejo", "m"), ("tortuga", "f"), ("estrella", "f"), ("luna", "f")]
ES_ADJ = [("rojo", "roja"), ("verde", "verde"), ("azul", "azul"), ("amarillo", "amarilla"), ("pequeño", "pequeña"),
          ("grande", "grande"), ("viejo", "vieja"), ("bonito", "bonita"), ("mojado", "mojada"), ("oscuro", "oscura"),
          ("feliz", "feliz"), ("dormido", "dormida"),
          ("blanco", "blanca"), ("negro", "negra"), ("antiguo", "antigua"), ("moderno", "moderna"),
          ("delicioso", "deliciosa"), ("brillante", "brillante"), ("hermoso", "hermosa"), ("extraño", "extraña")]
ES_PLACE = ["en la playa", "en el parque", "sobre la mesa", "en la nieve", "bajo un árbol", "junto a la ventana",
            "en la cocina", "en la calle", "por la noche", "bajo la lluvia", "cerca del río", "en España"]
ES_TPL = ["una foto de {art} {n} {a}", "{Art} {n} {a} {p}", "¿Es {art} {n} {a}?", "¡Qué {n} tan {a}!",
          "dos {n}s {p}", "{art} {n} {a} y {art2} {n2} {p}", "Foto: {n} {a}, {p}."]

ZH = [  # (simplified, traditional)
    ("猫", "貓"), ("狗", "狗"), ("鸟", "鳥"), ("马", "馬"), ("汽车", "汽車"), ("自行车", "自行車"), ("船", "船"),
    ("火车", "火車"), ("飞机", "飛機"), ("树", "樹"), ("花", "花"), ("房子", "房子"), ("桥", "橋"), ("山", "山"),
    ("河", "河"), ("海滩", "海灘"), ("城市", "城市"), ("街道", "街道"), ("孩子", "孩子"), ("女人", "女人"),
    ("男人", "男人"), ("披萨", "披薩"), ("蛋糕", "蛋糕"), ("苹果", "蘋果"), ("香蕉", "香蕉"), ("杯子", "杯子"),
    ("椅子", "椅子"), ("桌子", "桌子"), ("电脑", "電腦"), ("手机", "手機"), ("书", "書"), ("吉他", "吉他"),
    ("钟", "鐘"), ("灯", "燈"), ("大象", "大象"), ("长颈鹿", "長頸鹿"), ("熊猫", "熊貓"), ("龙", "龍"),
    ("杰尼龟", "傑尼龜"), ("皮卡丘", "皮卡丘"), ("寺庙", "寺廟"), ("市场", "市場"), ("厨房", "廚房"), ("花园", "花園")]
ZH_COLOR = [("红色", "紅色"), ("绿色", "綠色"), ("蓝色", "藍色"), ("黄色", "黃色"), ("紫色", "紫色"), ("白色", "白色"),
            ("黑色", "黑色"), ("金色", "金色"), ("可爱", "可愛"), ("漂亮", "漂亮"), ("旧", "舊"), ("巨大", "巨大")]
ZH_PLACE = [("在海滩上", "在海灘上"), ("在公园里", "在公園裡"), ("在桌子上", "在桌子上"), ("在雪地里", "在雪地裡"),
            ("在树下", "在樹下"), ("在窗边", "在窗邊"), ("在厨房里", "在廚房裡"), ("在街上", "在街上"),
            ("在晚上", "在晚上"), ("在雨中", "在雨中"), ("在河边", "在河邊"), ("在北京", "在北京"), ("在台北", "在台北")]
ZH_TPL = ["一只{c}的{n}{p}", "{p}的{n}", "一张{n}的照片", "两个{n}和一个{n2}", "这是{c}的{n}。", "{n}，{p}！",
          "一幅{c}{n}的画", "{c}的{n}{p}，很{c2}", "照片：{n}{p}"]
ZH_TPL_T = ["一隻{c}的{n}{p}", "{p}的{n}", "一張{n}的照片", "兩個{n}和一個{n2}", "這是{c}的{n}。", "{n}，{p}！",
            "一幅{c}{n}的畫", "{c}的{n}{p}，很{c2}", "照片：{n}{p}"]

JA_NOUN = ["猫", "犬", "鳥", "馬", "車", "自転車", "電車", "飛行機", "木", "花", "家", "橋", "山", "川", "海", "町",
           "子供", "女性", "男性", "寿司", "ラーメン", "ケーキ", "りんご", "コーヒー", "椅子", "テーブル", "パソコン",
           "スマホ", "本", "ギター", "時計", "ランプ", "象", "パンダ", "桜", "富士山", "神社", "お寺", "東京タワー",
           "うさぎ", "きつね", "たぬき", "ペンギン", "イルカ", "チョコレート", "おにぎり", "天ぷら", "カメラ", "ロボット",
           "先生", "学生", "駅", "空港", "病院", "図書館", "公園", "花火", "雪だるま", "紅葉", "お城", "灯台"]
JA_ADJ = ["赤い", "青い", "白い", "黒い", "小さい", "大きい", "古い", "新しい", "かわいい", "きれいな", "静かな", "有名な"]
JA_PLACE = ["海辺の", "公園の", "テーブルの上の", "雪の中の", "木の下の", "窓のそばの", "台所の", "夜の", "雨の中の",
            "京都の", "東京の"]
JA_TPL = ["{a}{n}の写真", "{p}{a}{n}", "{n}と{n2}", "これは{a}{n}です。", "{p}{n}がいます", "{a}{n}！", "{n}の絵"]

EMOJI = ["🐱", "🐶", "🐦", "🐴", "🚗", "🚲", "🚆", "✈️", "🌳", "🌸", "🏠", "🌉", "⛰️", "🌊", "🏙️", "👶", "👩", "👨",
         "🍕", "🍰", "🍎", "🍌", "☕", "🪑", "💻", "📱", "📚", "🎸", "⏰", "🐘", "🦒", "🦓", "🐻", "🐼", "🍣", "🍜",
         "❤️", "👍", "👍🏽", "😀", "😂", "🥰", "🔥", "⭐", "🌈", "☀️", "🌙", "🎉", "👨‍👩‍👧", "🇯🇵", "🇪🇸", "🇨🇳"]


def _en(r):
    n, n2, n3 = r.sample(EN_NOUN, 3)
    a = r.choice(EN_ADJ)
    t = r.choice(EN_TPL).format(a=a, n=n, n2=n2, n3=n3, p=r.choice(EN_PLACE), A=a.capitalize(), N=n.capitalize())
    return t.upper() if r.random() < 0.04 else t


def _es(r):
    (n, g), (n2, g2) = r.sample(ES_NOUN, 2)
    adj = r.choice(ES_ADJ)[0 if g == "m" else 1]
    art = "un" if g == "m" else "una"
    art2 = "un" if g2 == "m" else "una"
    return r.choice(ES_TPL).format(art=art, Art=art.capitalize(), art2=art2, n=n, n2=n2, a=adj,
                                   p=r.choice(ES_PLACE))


def _zh(r, trad):
    i, j = r.sample(range(len(ZH)), 2)
    k = 1 if trad else 0
    c, c2 = (x[k] for x in r.sample(ZH_COLOR, 2))
    tpl = r.choice(ZH_TPL_T if trad else ZH_TPL)
    return tpl.format(c=c, c2=c2, n=ZH[i][k], n2=ZH[j][k], p=r.choice(ZH_PLACE)[k])


def _ja(r):
    n, n2 = r.sample(JA_NOUN, 2)
    return r.choice(JA_TPL).format(a=r.choice(JA_ADJ), n=n, n2=n2, p=r.choice(JA_PLACE))


def captions(count=6000, seed=0):
    r = random.Random(seed)
    gens = [(_en, 0.40), (_es, 0.15), (lambda q: _zh(q, False), 0.15), (lambda q: _zh(q, True), 0.10), (_ja, 0.15),
            (lambda q: " ".join(q.choice(EMOJI) for _ in range(q.randint(1, 3))), 0.05)]
    fns, weights = zip(*gens)
    out = []
    for _ in range(count):
        t = r.choices(fns, weights)[0](r)
        if r.random() < 0.15:
            t = t + " " + r.choice(EMOJI)
        if r.random() < 0.05:
            t = r.choice(EMOJI) + t
        out.append(t)
    return out


# ----------------------------------------------------------------------------- tokenizers
def canonicalize(t):
    """SiglipTokenizer.canonicalize_text (do_lower_case=True)."""
    t = t.lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", t).strip()


def train_siglip_spm(path, seed):
    import sentencepiece as spm
    corpus = [canonicalize(c) for c in captions(6000, seed)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=SIGLIP_VOCAB, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        normalization_rule_name="nmt_nfkc", character_coverage=0.9995, num_threads=1, add_dummy_prefix=True,
        remove_extra_whitespaces=True, split_by_whitespace=True, byte_fallback=False, split_digits=False,
        shuffle_input_sentence=False, minloglevel=2)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def siglip_tokenizer_json(spm_path, out_path):
    """`tokenizers` port of transformers' SiglipTokenizer (legacy=True, do_lower_case=True)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers.convert_slow_tokenizer import import_protobuf
    pb = import_protobuf()
    proto = pb.ModelProto()
    with open(spm_path, "rb") as f:
        proto.ParseFromString(f.read())
    assert proto.normalizer_spec.add_dummy_prefix and proto.normalizer_spec.remove_extra_whitespaces
    vocab = [(p.piece, p.score) for p in proto.pieces]
    tok = Tokenizer(Unigram(vocab, unk_id=proto.trainer_spec.unk_id, byte_fallback=False))
    junk = "(?:" + PY_WS_CHAR + "|" + ASCII_PUNCT + ")+"
    tok.normalizer = normalizers.Sequence([
        # SiglipTokenizer.tokenize: text.replace("▁", " ")
        normalizers.Replace("\u2581", " "),
        # canonicalize_text on "▁" + text: lower(), remove string.punctuation, re.sub(r"\s+", " "), strip();
        normalizers.Lowercase(),
        # A leading run of whitespace/punctuation must end up as just the dummy-prefix "▁". It is REPLACED by " "
        # (not deleted) so that the first character keeps original offset 0: Metaspace(prepend_scheme="first")
        # only adds the prefix to a chunk starting at offset 0.
        normalizers.Replace(Regex("\\A" + junk), " "),
        normalizers.Replace(Regex(ASCII_PUNCT), ""),
        normalizers.Replace(Regex(PY_WS_CHAR + "+"), " "),
        normalizers.Strip(left=False, right=True),
        # SentencePiece's own normalisation: nmt_nfkc charsmap (which also maps "▁" to " "), extra-whitespace
        # removal, escaping. Leading spaces become the prefix "▁" (SentencePiece sees "<unk>▁ ..." and collapses).
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        normalizers.Replace(Regex("\\A +"), "\u2581"),
        normalizers.Replace(Regex(" +\\z"), ""),
        normalizers.Replace(Regex(" {2,}"), " "),
        normalizers.Replace(" ", "\u2581"),
        normalizers.Replace(Regex("\u2581{2,}"), "\u2581"),
        normalizers.Replace(Regex("\\A\u2581\\z"), ""),
    ])
    # dummy prefix only on the first chunk: SiglipTokenizer prepends "▁" to the whole text, chunks after a
    # literal special token get none (the "<unk>"-prefix trick of _tokenize)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.add_special_tokens([AddedToken("</s>", lstrip=True, rstrip=True, normalized=False, special=True),
                            AddedToken("<unk>", lstrip=True, rstrip=True, normalized=False, special=True)])
    eos = proto.trainer_spec.eos_id
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", eos)])
    tok.enable_truncation(SIGLIP_MAXLEN)
    tok.enable_padding(direction="right", pad_id=eos, pad_token="</s>", length=SIGLIP_MAXLEN)
    tok.save(out_path)


def get_cn_vocab(path_arg, workdir):
    if path_arg:
        src = path_arg
    else:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", workdir, CN_CLIP_PKG],
                       check=True)
        whl = glob.glob(os.path.join(workdir, "cn_clip-*.whl"))[0]
        with zipfile.ZipFile(whl) as z:
            z.extract("cn_clip/clip/vocab.txt", workdir)
        src = os.path.join(workdir, "cn_clip/clip/vocab.txt")
    assert md5(src) == CN_VOCAB_MD5, f"unexpected vocab.txt {md5(src)}"
    return src


# ----------------------------------------------------------------------------- models
def siglip_model(vocab_size):
    from transformers import SiglipConfig, SiglipModel
    cfg = SiglipConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=SIGLIP_MAXLEN, pad_token_id=1,
                         bos_token_id=None, eos_token_id=1),
        vision_config=dict(image_size=224, patch_size=32, num_channels=3, hidden_size=32, intermediate_size=128,
                           num_hidden_layers=2, num_attention_heads=2))
    cfg._attn_implementation = "eager"
    return SiglipModel(cfg).eval()


def chinese_clip_model():
    from transformers import ChineseCLIPConfig, ChineseCLIPModel
    cfg = ChineseCLIPConfig(
        # text width 16 (not 32): the real 21128-token vocabulary dominates the file size (21128*16*4 B = 1.35 MB)
        text_config=dict(vocab_size=21128, hidden_size=16, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0),
        vision_config=dict(image_size=224, patch_size=32, num_channels=3, hidden_size=32, intermediate_size=128,
                           num_hidden_layers=2, num_attention_heads=2, projection_dim=32),
        projection_dim=32)
    cfg._attn_implementation = "eager"
    return ChineseCLIPModel(cfg).eval()


def spread_weights(model, seed):
    """Re-draw every parameter (deterministic): Linear/Conv/attention matrices ~N(0, 1/sqrt(fan_in)), nn.Embedding
    ~N(0, 1), LayerNorm weight 1+N(0, 0.1), other vectors N(0, 0.1). Random embeddings then depend strongly on
    their input, so small preprocessing/tokenisation errors show in parity tests."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            r = torch.randn(p.shape, generator=g)
            if isinstance(owner, torch.nn.LayerNorm):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * r)
            elif isinstance(owner, torch.nn.Embedding):
                p.copy_(r)
            elif p.ndim >= 2:
                p.copy_(r / np.sqrt(int(np.prod(p.shape[1:]))))
            else:
                p.copy_(0.1 * r)
    return model


def wrappers(family, model):
    import torch

    class Vision(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m.get_image_features(pixel_values=pixel_values).pooler_output

    if family == "siglip":
        class Text(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids):
                return self.m.get_text_features(input_ids=input_ids).pooler_output
    else:
        class Text(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m.get_text_features(input_ids=input_ids, attention_mask=attention_mask,
                                                token_type_ids=token_type_ids).pooler_output
    return Vision(model).eval(), Text(model).eval()


def export(family, model, out, vocab_size):
    import torch
    vis, txt = wrappers(family, model)
    g = torch.Generator().manual_seed(1234)
    px = torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        torch.onnx.export(vis, (px,), os.path.join(out, "vision_model.onnx"), input_names=["pixel_values"],
                          output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}, **KW)
        if family == "siglip":
            ids = torch.randint(3, vocab_size, (2, SIGLIP_MAXLEN), generator=g)
            ids[:, 10:] = 1
            torch.onnx.export(txt, (ids,), os.path.join(out, "text_model.onnx"), input_names=["input_ids"],
                              output_names=["text_embeds"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "text_embeds": {0: "batch"}},
                              **KW)
        else:
            ids = torch.randint(105, vocab_size, (2, 9), generator=g)
            ids[:, 0] = 101
            ids[0, 6], ids[1, 4] = 102, 102
            mask = (torch.arange(9)[None] <= torch.tensor([[6], [4]])).long()
            ids = ids * mask
            tt = torch.zeros_like(ids)
            names = ["input_ids", "attention_mask", "token_type_ids"]
            torch.onnx.export(txt, (ids, mask, tt), os.path.join(out, "text_model.onnx"), input_names=names,
                              output_names=["text_embeds"],
                              dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                            "text_embeds": {0: "batch"}}, **KW)
    check_export(family, out, vis, txt, vocab_size)


def check_export(family, out, vis, txt, vocab_size):
    import onnx
    import onnxruntime as ort
    import torch
    for f in ("vision_model.onnx", "text_model.onnx"):
        m = onnx.load(os.path.join(out, f))
        onnx.checker.check_model(m)
        assert not glob.glob(os.path.join(out, "*.data")), "external data written"
    sv = ort.InferenceSession(os.path.join(out, "vision_model.onnx"), providers=["CPUExecutionProvider"])
    st = ort.InferenceSession(os.path.join(out, "text_model.onnx"), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(99)
    worst = 0.0
    with torch.no_grad():
        for b in (1, 3):
            x = torch.randn(b, 3, 224, 224, generator=g)
            worst = max(worst, float(np.abs(sv.run(None, {"pixel_values": x.numpy()})[0] - vis(x).numpy()).max()))
        for b, s in ((1, 1), (1, 5), (3, 12), (2, 52), (2, 64)):
            ids = torch.randint(3 if family == "siglip" else 105, vocab_size, (b, s), generator=g)
            if family == "siglip":
                o = st.run(None, {"input_ids": ids.numpy()})[0]
                worst = max(worst, float(np.abs(o - txt(ids).numpy()).max()))
            else:
                ids[:, 0] = 101
                n = s // 2
                ids[:, n] = 102
                mk = torch.ones(b, s, dtype=torch.long)
                mk[:, n + 1:] = 0
                ids = ids * mk
                tt = torch.zeros_like(ids)
                feed = {"input_ids": ids.numpy(), "attention_mask": mk.numpy(), "token_type_ids": tt.numpy()}
                o = st.run(None, feed)[0]
                worst = max(worst, float(np.abs(o - txt(ids, mk, tt).numpy()).max()))
                # padding invariance (mask 0 on [PAD]) vs the unpadded sequence
                o2 = st.run(None, {k: v[:, :n + 1] for k, v in feed.items()})[0]
                worst = max(worst, float(np.abs(o - o2).max()))
    print(f"[{family}] onnx vs torch max abs diff: {worst:.2e}")
    assert worst < 1e-4, worst


# ----------------------------------------------------------------------------- layouts
def finish_processor_files(out, ip, processor_class):
    """transformers 5 saves a processor as processor_config.json; Hub checkpoints (and this layout) have the image
    processor in preprocessor_config.json instead (AutoProcessor finds the class via tokenizer_config.json)."""
    os.remove(os.path.join(out, "processor_config.json"))
    ip.save_pretrained(out)
    p = os.path.join(out, "preprocessor_config.json")
    with open(p) as f:
        d = json.load(f)
    d["processor_class"] = processor_class
    with open(p, "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


def write_siglip(out, seed, weights_dir):
    import torch
    from transformers import SiglipProcessor, SiglipTokenizer
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp()
    spm_path = os.path.join(tmp, "spiece.model")
    train_siglip_spm(spm_path, seed)
    # as transformers' convert_siglip_to_hf.py builds it: no attention_mask (the original model takes none)
    tok = SiglipTokenizer(vocab_file=spm_path, model_input_names=["input_ids"], model_max_length=SIGLIP_MAXLEN)
    ip = SiglipImageProcessorPil(size={"height": 224, "width": 224})
    SiglipProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    finish_processor_files(out, ip, "SiglipProcessor")
    siglip_tokenizer_json(os.path.join(out, "spiece.model"), os.path.join(out, "tokenizer.json"))
    vocab_size = tok.vocab_size
    torch.manual_seed(seed)
    m = spread_weights(siglip_model(vocab_size), seed)
    m.config.architectures = ["SiglipModel"]
    m.config.save_pretrained(out)
    os.makedirs(weights_dir, exist_ok=True)
    torch.save(m.state_dict(), os.path.join(weights_dir, "tiny-siglip.pt"))
    export("siglip", m, out, vocab_size)
    check_siglip_tokenizer_json(out)
    shutil.rmtree(tmp)
    return m


def write_chinese_clip(out, seed, weights_dir, cn_vocab):
    import torch
    from transformers import BertTokenizer, ChineseCLIPProcessor
    from transformers.models.chinese_clip.image_processing_pil_chinese_clip import ChineseCLIPImageProcessorPil
    os.makedirs(out, exist_ok=True)
    with open(cn_vocab, encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    assert len(vocab) == 21128 and vocab["[PAD]"] == 0 and vocab["[CLS]"] == 101 and vocab["[SEP]"] == 102
    tok = BertTokenizer(vocab=vocab, do_lower_case=True, tokenize_chinese_chars=True, strip_accents=None,
                        model_max_length=CN_MAXLEN)
    ip = ChineseCLIPImageProcessorPil()
    ChineseCLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    finish_processor_files(out, ip, "ChineseCLIPProcessor")
    # the Rust side reads tokenizer.json alone: put the reference truncation (52, [SEP] kept last) into it
    from tokenizers import Tokenizer
    tj = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    tj.no_padding()
    tj.enable_truncation(CN_MAXLEN)
    tj.save(os.path.join(out, "tokenizer.json"))
    torch.manual_seed(seed)
    m = spread_weights(chinese_clip_model(), seed)
    m.config.architectures = ["ChineseCLIPModel"]
    m.config.save_pretrained(out)
    os.makedirs(weights_dir, exist_ok=True)
    torch.save(m.state_dict(), os.path.join(weights_dir, "tiny-chinese-clip.pt"))
    export("chinese_clip", m, out, 21128)
    return m


def stress_texts():
    r = np.random.default_rng(7)
    alphabet = list("aAbB zZ0 9.,!?'\"-_/\\()[]{}<>@#$%^&*~`|;:+=\t\n\r\x0b\x0c\x1c\x1f\u00a0\u3000\u2003\u2581"
                    "éÉñÑüßçøΣσςΟΔİıﬁ！？。、，…‘’“”«»—–·•™©®½²³ｆｕｌＡ１２３"
                    "猫狗鳥貓龍の写真カメラ한국어abcñ🐱👍🏽❤️👨‍👩‍👧🇯🇵\u200d\ufe0f\u0301\u0300")
    out = ["", " ", "   ", "\t\n", "a", "A photo of a cat.", "a photo of a cat", "  leading and trailing  ",
           "multiple   spaces\tand\ttabs\nnewline", "Hello, World!!!", "don't stop-believing", "e-mail: x@y.z",
           "100% (maybe) [yes] {no} <tag>", "hello </s> world", "</s>", "<unk>", "a <pad> b", "▁cat", "cat ▁ dog",
           "ΟΔΟΣ", "İstanbul", "ﬁne", "Straße", "café Café CAFÉ", "一只猫在海滩上", "一隻貓在海灘上", "海辺の猫の写真",
           "¿Es un gato rojo?", "🐱🐶 emoji only 👍🏽", "👨‍👩‍👧", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３", "x\x1cy", "a\u00a0b",
           " ".join(["word"] * 500), "猫" * 300]
    out += captions(400, 12345)
    rnd = []
    for _ in range(400):
        n = int(r.integers(0, 30))
        rnd.append("".join(alphabet[int(i)] for i in r.integers(0, len(alphabet), n)))
    return out, rnd


def check_siglip_tokenizer_json(out):
    """tokenizer.json must give exactly SiglipTokenizer(padding="max_length", max_length=64, truncation=True).
    Known, accepted divergences (only in the random-garbage texts): (1) tokenizers' Precompiled normalizer maps a
    whole grapheme cluster < 6 bytes by its first matching prefix, dropping the rest (e.g. fullwidth/superscript/
    halfwidth-kana char + combining mark / ZWJ / dakuten: "ａ\u0300", "²\u200d", "ｶﾞ"); SentencePiece maps the
    prefix and keeps the rest. (2) a literal "</s>"/"<unk>" in the text followed by punctuation."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    ref = AutoTokenizer.from_pretrained(out)
    port = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    named, rnd = stress_texts()
    res = {}
    for kind, texts in (("realistic", named), ("random", rnd)):
        bad = []
        for t in texts:
            a = ref(t, padding="max_length", max_length=SIGLIP_MAXLEN, truncation=True)["input_ids"]
            b = port.encode(t).ids
            if a != b:
                bad.append((t, a, b))
        print(f"[siglip] tokenizer.json vs SiglipTokenizer, {kind} texts: {len(texts) - len(bad)}/{len(texts)} identical")
        for t, a, b in bad[:5]:
            i = next(k for k in range(len(a)) if a[k] != b[k])
            print(f"   mismatch {t!r}: from token {i} SiglipTokenizer {a[i:i + 4]} vs tokenizer.json {b[i:i + 4]}")
        res[kind] = (len(texts), len(bad))
    assert res["realistic"][1] == 0, "tokenizer.json port differs from SiglipTokenizer on realistic text"
    return res


def readme(family, out, seed, sizes_note):
    files = sorted(os.listdir(out))
    rows = "\n".join(f"| `{f}` | {os.path.getsize(os.path.join(out, f)) / 1e3:.0f} kB |" for f in files)
    cmd = f"python make_tiny_family.py OUT --seed {seed}"
    if family == "siglip":
        body = f"""# tiny-siglip — random-weight SigLIP (transformers `SiglipModel`) for parity tests

**Random weights: embeddings are meaningless.** Only for checking that a re-implementation of the SigLIP
pipeline (preprocessing, tokenisation, ONNX inference) reproduces the reference numbers.

{sizes_note}

| graph | inputs | output |
|---|---|---|
| `vision_model.onnx` | `pixel_values` f32 `[batch,3,224,224]` | `image_embeds` f32 `[batch,32]` = `SiglipModel.get_image_features(...).pooler_output` (MAP-head pooled) |
| `text_model.onnx` | `input_ids` i64 `[batch,seq]` (seq ≤ 64; the reference always uses 64) | `text_embeds` f32 `[batch,32]` = `get_text_features(input_ids).pooler_output` (`head(final_layer_norm(h)[:, -1])`) |

No attention mask (as in the original model and transformers' conversion: `model_input_names=["input_ids"]`).
Outputs are NOT L2-normalised. ONNX opset 17, exported with torch / transformers 5.24 (TorchScript exporter),
dynamic batch and sequence axes; checked against PyTorch (max abs diff < 1e-4).

Preprocessing (`preprocessor_config.json`, `SiglipImageProcessor`): convert to RGB (alpha composited on white),
resize to exactly 224x224 with PIL bicubic (aspect ratio NOT kept, no crop), x/255, (x-0.5)/0.5.

Tokenizer: `spiece.model` + `tokenizer_config.json` → transformers `SiglipTokenizer` (needs `sentencepiece`,
`protobuf`). Reference call: `tok(texts, padding="max_length", max_length=64, truncation=True)`:
lower-case, ASCII punctuation removed, whitespace collapsed/stripped, SentencePiece Unigram, `</s>` (id 1)
appended, padded with `</s>` (id 1) to 64; truncation keeps `</s>` last. `tokenizer.json` is a `tokenizers`
port of exactly that (padding/truncation to 64 built in), checked token-for-token against `SiglipTokenizer`
by `make_tiny_family.py`: identical on all 435 realistic texts (captions in 6 scripts, emoji, empty, whitespace,
punctuation, 500 words); on 400 random-garbage strings ~15 differ, all from two known causes: (1) `tokenizers`'
`Precompiled` normaliser maps a grapheme cluster shorter than 6 bytes by its first matching prefix and drops the
rest (compatibility char + combining mark / ZWJ / dakuten, e.g. "ｶﾞ", "ａ\u0300", "²\u200d"), where SentencePiece
maps the prefix and keeps the rest; (2) a literal `</s>`/`<unk>` in the text followed by punctuation.
Also: Python's `str.lower()` applies the Greek final-sigma rule, `tokenizers`' Lowercase does not.

The SentencePiece vocabulary ({SIGLIP_VOCAB} pieces, Unigram, `<pad>`=0 `</s>`=1 `<unk>`=2, no BOS, nmt_nfkc,
dummy prefix — the same layout as the T5/SigLIP English `spiece.model`) was trained by this script with the
`sentencepiece` trainer on 6000 generated captions (English, Spanish, Chinese simplified+traditional,
Japanese, emoji; `captions()` in the script, seed {seed}), lower-cased and punctuation-stripped like SigLIP's input.
It is NOT Google's vocabulary.

Architecture: vision ViT patch 32 @ 224 (49 patches, no CLS), width 32, 2 layers, 2 heads, MLP 128, MAP head;
text width 32, 2 layers, 2 heads, MLP 128, 64 positions, vocab {SIGLIP_VOCAB}; embedding dim 32.
Weights: transformers init, then every parameter redrawn ~N(0, 1/sqrt(fan_in)) (embeddings N(0,1), LayerNorm
weights 1+N(0,0.1)) with torch seed {seed}, so embeddings react strongly to their inputs.

## Files
| file | size |
|---|---|
{rows}

## How it was made
`{cmd}` (torch 2.15, transformers 5.24, onnx, onnxruntime 1.31.1, sentencepiece 0.2.3).
"""
    else:
        body = f"""# tiny-chinese-clip — random-weight Chinese-CLIP (transformers `ChineseCLIPModel`) for parity tests

**Random weights: embeddings are meaningless.** Only for checking that a re-implementation of the Chinese-CLIP
pipeline (preprocessing, tokenisation, ONNX inference) reproduces the reference numbers.

{sizes_note}

| graph | inputs | output |
|---|---|---|
| `vision_model.onnx` | `pixel_values` f32 `[batch,3,224,224]` | `image_embeds` f32 `[batch,32]` = `get_image_features(...).pooler_output` (`visual_projection(post_layernorm(CLS))`) |
| `text_model.onnx` | `input_ids`, `attention_mask`, `token_type_ids` i64 `[batch,seq]` (seq ≤ 512; tokenizer truncates to 52) | `text_embeds` f32 `[batch,32]` = `get_text_features(...).pooler_output` (`text_projection(last_hidden_state[:, 0])`, the [CLS] token) |

Outputs are NOT L2-normalised. ONNX opset 17 (TorchScript exporter), dynamic batch and sequence axes; checked
against PyTorch (max abs diff < 1e-4). The text tower is bidirectional BERT: padding with [PAD]=0 and
attention_mask 0 gives the same embedding as no padding (checked < 1e-4). token_type_ids are all 0.

Preprocessing (`preprocessor_config.json`, as `ChineseCLIPImageProcessor` writes it by default): convert to RGB
(alpha on white), PIL bicubic resize of the shortest edge to 224 (long edge int(224*long/short)), centre crop
224 (offset (size-224)//2), x/255, OpenAI CLIP mean/std — i.e. the same as CLIP.

Tokenizer: `tokenizer.json` + `tokenizer_config.json` → transformers `BertTokenizer` (WordPiece; BertNormalizer
clean_text, handle_chinese_chars, lowercase, strip accents (lowercase implies it); `[CLS]`=101 … `[SEP]`=102,
`[PAD]`=0, `[UNK]`=100). Reference call: `tok(texts, padding=True, truncation=True)` with model_max_length 52
(Chinese-CLIP's context length); `tokenizer.json` carries truncation 52 ([SEP] kept last), no padding.
Vocabulary: the real 21128-token Chinese BERT vocab.txt (bert-base-chinese, as used by OFA-Sys Chinese-CLIP),
from PyPI `{CN_CLIP_PKG}` (`cn_clip/clip/vocab.txt`, md5 {CN_VOCAB_MD5}; the wheel declares no licence,
upstream OFA-Sys/Chinese-CLIP is MIT, the vocabulary is Google BERT's bert-base-chinese, Apache-2.0).

Architecture: vision ViT patch 32 @ 224 (CLIP-style, CLS + 49 patches), width 32, 2 layers, 2 heads, MLP 128;
text BERT width 16, 2 layers, 2 heads, MLP 64, 512 positions, 2 token types; projection 32.
Weights: transformers init, then every parameter redrawn ~N(0, 1/sqrt(fan_in)) (embeddings N(0,1), LayerNorm
weights 1+N(0,0.1)) with torch seed {seed}.

## Files
| file | size |
|---|---|
{rows}

## How it was made
`{cmd}` (torch 2.15, transformers 5.24, onnx, onnxruntime 1.31.1).
"""
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output root: OUT/tiny-siglip, OUT/tiny-chinese-clip, OUT/_weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cn-vocab", help="Chinese BERT vocab.txt (default: pip download cn_clip==1.6.0)")
    ap.add_argument("--only", choices=["siglip", "chinese_clip"])
    a = ap.parse_args()
    import torch
    torch.set_num_threads(os.cpu_count())
    weights = os.path.join(a.out, "_weights")
    done = []
    if a.only in (None, "siglip"):
        d = os.path.join(a.out, "tiny-siglip")
        shutil.rmtree(d, ignore_errors=True)
        write_siglip(d, a.seed, weights)
        done.append(("siglip", d))
    if a.only in (None, "chinese_clip"):
        d = os.path.join(a.out, "tiny-chinese-clip")
        shutil.rmtree(d, ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            write_chinese_clip(d, a.seed, weights, get_cn_vocab(a.cn_vocab, tmp))
        done.append(("chinese_clip", d))
    for fam, d in done:
        readme(fam, d, a.seed, "Made by `make_tiny_family.py` (deterministic: a re-run gives the same bytes); "
               "PyTorch weights for re-checking go to `OUT/_weights/` (not part of this folder). "
               "`reference_check.py` (no torch) and `torch_compare.py` re-check the pipeline.")
        total = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{d}: {total / 1e6:.2f} MB")
        for f in sorted(os.listdir(d)):
            print(f"   {os.path.getsize(os.path.join(d, f)) / 1e3:9.1f} kB  {f}  {md5(os.path.join(d, f))}")


if __name__ == "__main__":
    main()
