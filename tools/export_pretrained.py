#!/usr/bin/env python3
"""Export downloaded pretrained weights to the ONNX towers clipsearch runs (scripts/download-model.sh
calls this for the named models that have no ready ONNX export).

  --family clip          DIR/config.json + DIR/source/model.safetensors (a transformers CLIPModel, e.g.
                         laion/CLIP-ViT-B-32-laion2B-s34B-b79K) -> vision_model.onnx (image_embeds) and
                         text_model.onnx (input_ids, attention_mask -> text_embeds)
  --family chinese_clip  DIR/config.json + DIR/source/pytorch_model.bin or model.safetensors (ChineseCLIPModel)
                         -> the same, the text graph also taking token_type_ids
  --family siglip        DIR/config.json + DIR/source/model.safetensors (SiglipModel) -> input_ids only
  --family text_tower    DIR/source/ = a sentence-transformers folder (modules.json: Transformer, Pooling,
                         Dense[, Normalize]) -> one text_model.onnx (input_ids, attention_mask -> text_embeds)
                         computing all of it, plus config.json, tokenizer.json, tokenizer_config.json (model_max_length =
                         the folder's max_seq_length, as SentenceTransformer truncates) and text_tower.json
                         (--image-model, the dimension)

Each export is checked before it is kept: ONNX Runtime against the PyTorch modules at several batch and
sequence shapes (relative max error < 1e-4), padded against unpadded text; a text tower also against
SentenceTransformer.encode when sentence-transformers is installed. Weights never leave DIR.
Needs tools/requirements-bench.txt (torch, onnx, transformers, safetensors).
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
OPSET = dict(opset_version=17, dynamo=False, do_constant_folding=True)


def load_state(dir_):
    import torch
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = os.path.join(dir_, name)
        if os.path.exists(path):
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file
                return load_file(path)
            return torch.load(path, map_location="cpu", weights_only=True)
    sys.exit(f"export_pretrained: no model.safetensors or pytorch_model.bin in {dir_}")


def load_pretrained(cls, config_cls, dir_):
    config = config_cls.from_json_file(os.path.join(dir_, "config.json"))
    config._attn_implementation = "eager"
    model = cls(config).eval()
    missing, unexpected = model.load_state_dict(load_state(os.path.join(dir_, "source")), strict=False)
    # Buffers such as position_ids may be absent from a checkpoint; weights may not.
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        sys.exit(f"export_pretrained: the checkpoint lacks {len(missing)} weights, e.g. {missing[:5]}")
    if unexpected:
        print(f"ignoring {len(unexpected)} checkpoint entries the model does not use, e.g. {unexpected[:3]}")
    return model


def relative_error(onnx_out, torch_out):
    return float(np.abs(onnx_out - torch_out).max() / max(np.abs(torch_out).max(), 1e-12))


def export_pair(family, dir_):
    """CLIP, Chinese-CLIP and SigLIP: the same wrappers and checks as the tiny fixtures of those families."""
    import transformers
    import train_tiny_clip
    import make_tiny_family
    classes = {"clip": ("CLIPModel", "CLIPConfig"), "chinese_clip": ("ChineseCLIPModel", "ChineseCLIPConfig"),
               "siglip": ("SiglipModel", "SiglipConfig")}[family]
    model = load_pretrained(getattr(transformers, classes[0]), getattr(transformers, classes[1]), dir_)
    print(f"{classes[0]}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    if family == "clip":
        train_tiny_clip.export(model, dir_)  # checks ONNX against torch itself
    else:
        make_tiny_family.export(family, model, dir_, model.config.text_config.vocab_size)


def sentence_transformer_modules(src):
    with open(os.path.join(src, "modules.json")) as f:
        modules = json.load(f)
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:3] != ["Transformer", "Pooling", "Dense"] or any(k != "Normalize" for k in kinds[3:]):
        sys.exit(f"export_pretrained: expected Transformer, Pooling, Dense[, Normalize] in modules.json, got {kinds}")
    paths = [os.path.join(src, m["path"]) for m in modules]
    return paths, "Normalize" in kinds


def text_tower(src):
    import torch
    from transformers import AutoConfig, AutoModel
    paths, normalize = sentence_transformer_modules(src)
    with open(os.path.join(paths[1], "config.json")) as f:
        pooling = json.load(f)
    with open(os.path.join(paths[2], "config.json")) as f:
        dense_cfg = json.load(f)
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
        sys.exit(f"export_pretrained: pooling {modes} is not exported (mean or cls tokens only)")
    activation = dense_cfg.get("activation_function", "torch.nn.modules.linear.Identity").rsplit(".", 1)[-1]
    if activation not in ("Identity", "Tanh"):
        sys.exit(f"export_pretrained: Dense activation {activation} is not exported (Identity, Tanh)")
    config = AutoConfig.from_pretrained(src)
    config._attn_implementation = "eager"
    encoder = AutoModel.from_config(config).eval()
    state = load_state(src)
    state = {k.split(".", 1)[1] if k.split(".", 1)[0] in ("bert", "distilbert", "roberta") else k: v
             for k, v in state.items()}
    missing, _ = encoder.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        sys.exit(f"export_pretrained: the transformer checkpoint lacks {missing[:5]}")
    dense = torch.nn.Linear(dense_cfg["in_features"], dense_cfg["out_features"], bias=dense_cfg.get("bias", True))
    dense_state = load_state(paths[2])
    dense.load_state_dict({k.removeprefix("linear."): v for k, v in dense_state.items()})
    mean = modes == ["pooling_mode_mean_tokens"]

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.dense = encoder, dense

        def forward(self, input_ids, attention_mask):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if mean:  # sentence-transformers' masked mean
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            else:
                pooled = h[:, 0]
            out = self.dense(pooled)
            if activation == "Tanh":
                out = torch.tanh(out)
            return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    return Tower().eval(), config, dense_cfg["out_features"]


def export_text_tower(dir_, image_model):
    import onnx
    import onnxruntime as ort
    import torch
    src = os.path.join(dir_, "source")
    tower, config, dimension = text_tower(src)
    with open(os.path.join(src, "sentence_bert_config.json")) as f:
        max_len = json.load(f)["max_seq_length"]
    with open(os.path.join(src, "tokenizer_config.json")) as f:
        tokenizer_config = json.load(f)
    tokenizer_config["model_max_length"] = min(max_len, config.max_position_embeddings)
    path = os.path.join(dir_, "text_model.onnx")
    vocab = config.vocab_size
    low = min(1000, vocab // 2)  # past the special tokens of any BERT-like vocabulary
    ids = torch.randint(low, vocab, (2, 9))
    mask = (torch.arange(9)[None] <= torch.tensor([[6], [4]])).long()
    names = ["input_ids", "attention_mask"]
    with torch.no_grad():
        torch.onnx.export(tower, (ids * mask, mask), path, input_names=names, output_names=["text_embeds"],
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                        "text_embeds": {0: "batch"}}, **OPSET)
    onnx.checker.check_model(onnx.load(path))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    worst = 0.0
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for b, s in ((1, 1), (1, 5), (3, 12), (2, min(max_len, 128))):
            i = torch.randint(low, vocab, (b, s), generator=g)
            n = s // 2 + 1
            mk = torch.zeros(b, s, dtype=torch.long)
            mk[:, :n] = 1
            feed = {"input_ids": (i * mk).numpy(), "attention_mask": mk.numpy()}
            out = session.run(None, feed)[0]
            worst = max(worst, relative_error(out, tower(i * mk, mk).numpy()))
            unpadded = session.run(None, {k: v[:, :n] for k, v in feed.items()})[0]
            worst = max(worst, relative_error(out, unpadded))
    print(f"text tower: ONNX vs torch and padded vs unpadded, max relative error {worst:.2e}")
    assert worst < 1e-4, worst
    check_against_sentence_transformers(src, session, tokenizer_config["model_max_length"])
    config.to_json_file(os.path.join(dir_, "config.json"))
    shutil.copy(os.path.join(src, "tokenizer.json"), os.path.join(dir_, "tokenizer.json"))
    with open(os.path.join(dir_, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f, indent=2, sort_keys=True)
    with open(os.path.join(dir_, "text_tower.json"), "w") as f:
        json.dump({"image_model": image_model, "dimension": dimension, "source": src_name(dir_)}, f, indent=2)


def check_against_sentence_transformers(src, session, max_len):
    try:
        from sentence_transformers import SentenceTransformer
        from transformers import AutoTokenizer
    except ImportError:
        print("sentence-transformers is not installed: checked against the PyTorch modules only")
        return
    texts = ["a photo of a dog", "一只猫的照片", "una foto de un perro rojo", "🙂 " * 200]
    expected = SentenceTransformer(src, device="cpu").encode(texts, convert_to_numpy=True)
    tok = AutoTokenizer.from_pretrained(src)
    enc = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="np")
    got = session.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                             "attention_mask": enc["attention_mask"].astype(np.int64)})[0]
    worst = relative_error(got, expected)
    print(f"text tower vs SentenceTransformer.encode: max relative error {worst:.2e}")
    assert worst < 1e-4, worst


def src_name(dir_):
    try:
        with open(os.path.join(dir_, "SOURCE")) as f:
            return f.read().strip()
    except OSError:
        return os.path.basename(os.path.abspath(dir_))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="the model folder scripts/download-model.sh filled")
    ap.add_argument("--family", required=True, choices=["clip", "chinese_clip", "siglip", "text_tower"])
    ap.add_argument("--image-model", help="text_tower: the name of the image model it maps into")
    a = ap.parse_args()
    if a.family == "text_tower":
        if not a.image_model:
            ap.error("--image-model is required for a text tower")
        export_text_tower(a.dir, a.image_model)
    else:
        export_pair(a.family, a.dir)
    print(f"exported to {a.dir}")


if __name__ == "__main__":
    main()
