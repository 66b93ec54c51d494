#!/usr/bin/env python3
"""Export FULL-SIZE model-family exports with RANDOM weights, for speed benchmarks only.

Latency and memory depend on shapes, not weight values, so these stand in for the real models where their
weights cannot be downloaded (as make_vitb32_random.py does for CLIP ViT-B/32). The embeddings are
MEANINGLESS: transformers' own initialisation, seeded (torch.manual_seed(--seed)).

Families (architecture = the Hub checkpoint's transformers config; only the weights differ):
  siglip-base        google/siglip-base-patch16-224 (SiglipModel). Vision ViT-B/16 @ 224 (196 patches, no CLS),
                     width 768, 12 layers, 12 heads, MLP 3072, MAP head; text width 768, 12 layers, 12 heads,
                     MLP 3072, 64 positions, vocab 32000, head Linear(768 -> 768). Embedding dim 768.
  chinese-clip-base  OFA-Sys/chinese-clip-vit-base-patch16 (ChineseCLIPModel). Vision ViT-B/16 @ 224 (CLIP-style,
                     CLS + 196 patches), width 768, 12 layers, 12 heads, MLP 3072, quick_gelu; text
                     RoBERTa-wwm-ext-base-chinese (BERT): width 768, 12 layers, 12 heads, MLP 3072, vocab 21128,
                     512 positions, 2 token types; projection 512.
  multilingual-tower the text tower of sentence-transformers/clip-ViT-B-32-multilingual-v1: DistilBERT
                     multilingual cased (DistilBertModel: vocab 119547, width 768, 6 layers, 12 heads, MLP 3072,
                     512 positions) -> mean pooling over attention_mask -> Dense 768 -> 512 without bias. Text
                     only: its image side is CLIP ViT-B/32 (text_tower.json names `vitb32`, the folder
                     make_vitb32_random.py writes; bench.sh keeps both side by side in BENCH_DIR).

Same Hugging Face layout and I/O contract as the tiny fixtures (make_tiny_family.py, train_tiny_multilingual.py),
exported by their own export() functions (ONNX opset 17, TorchScript exporter, dynamic batch/sequence, checked
against PyTorch). Outputs are NOT L2-normalised.

Tokenizers are the tiny fixtures' (tests/fixtures/tiny-siglip, tiny-chinese-clip, tiny-multilingual), copied
unchanged, while config.json carries the full-size vocab_size: the embedding table's size matters for memory and
file size, not for speed. Speed does depend on how many tokens a text becomes:
  SigLIP always pads to 64, so its tokenizer does not matter; tiny-chinese-clip has the real bert-base-chinese
  vocabulary (the one Chinese-CLIP uses); tiny-multilingual's 414-piece WordPiece vocabulary splits most
  English words into letters (the 64 bench captions: mean 36 tokens, 16 cut at 64), where the real
  multilingual cased vocabulary gives roughly half that, so its text rate is a pessimistic bound.

Sizes on disk (fp32): siglip-base 813 MB (203.2 M parameters), chinese-clip-base 753 MB
(188.3 M), multilingual-tower 540 MB (135.1 M). Export ~20-95 s each, ~3.3 GB peak RSS. Do not commit.

example: python make_full_family_random.py siglip-base /tmp/clipsearch-bench/siglip-base
"""
import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "tests", "fixtures")
sys.path.insert(0, HERE)

FAMILIES = {  # name -> (tiny fixture whose tokenizer/preprocessor files are copied, files)
    "siglip-base": ("tiny-siglip", ["preprocessor_config.json", "spiece.model", "tokenizer.json",
                                    "tokenizer_config.json"]),
    "chinese-clip-base": ("tiny-chinese-clip", ["preprocessor_config.json", "tokenizer.json",
                                                "tokenizer_config.json"]),
    "multilingual-tower": ("tiny-multilingual", ["tokenizer.json", "tokenizer_config.json"]),
}
BASE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
VISION_B16 = dict(BASE, image_size=224, patch_size=16, num_channels=3)


def siglip_base():
    from transformers import SiglipConfig, SiglipModel
    cfg = SiglipConfig(
        text_config=dict(BASE, vocab_size=32000, max_position_embeddings=64, pad_token_id=1, bos_token_id=None,
                         eos_token_id=1, projection_size=768),
        vision_config=dict(VISION_B16, vision_use_head=True))
    cfg._attn_implementation = "eager"
    m = SiglipModel(cfg).eval()
    m.config.architectures = ["SiglipModel"]
    return m


def chinese_clip_base():
    from transformers import ChineseCLIPConfig, ChineseCLIPModel
    cfg = ChineseCLIPConfig(
        text_config=dict(BASE, vocab_size=21128, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0,
                         hidden_act="gelu"),
        vision_config=dict(VISION_B16, hidden_act="quick_gelu", projection_dim=512),
        projection_dim=512)
    cfg._attn_implementation = "eager"
    m = ChineseCLIPModel(cfg).eval()
    m.config.architectures = ["ChineseCLIPModel"]
    return m


def multilingual_tower():
    import torch
    from transformers import DistilBertConfig, DistilBertModel
    cfg = DistilBertConfig(vocab_size=119547, dim=768, n_layers=6, n_heads=12, hidden_dim=3072,
                           max_position_embeddings=512, activation="gelu", pad_token_id=0,
                           sinusoidal_pos_embds=False)
    cfg._attn_implementation = "eager"

    class Tower(torch.nn.Module):  # sentence-transformers: Transformer -> Pooling(mean) -> Dense(bias=False)
        def __init__(self):
            super().__init__()
            self.bert = DistilBertModel(cfg)
            self.projection = torch.nn.Linear(768, 512, bias=False)
            self.config = cfg

        def forward(self, input_ids, attention_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return self.projection((h * m).sum(1) / m.sum(1).clamp(min=1e-9))

    return Tower().eval()


def write_files(name, model, out, seed):
    tiny, files = FAMILIES[name]
    for f in files:
        shutil.copy(os.path.join(FIXTURES, tiny, f), os.path.join(out, f))
    if name != "multilingual-tower":
        model.config.save_pretrained(out)  # as make_tiny_family.py: the differences from the defaults
    else:
        cfg = model.config.to_dict()
        for k in ("_attn_implementation_autoset", "_name_or_path", "id2label", "label2id", "tie_word_embeddings",
                  "use_cache", "add_cross_attention", "is_decoder", "chunk_size_feed_forward", "problem_type",
                  "output_attentions", "output_hidden_states", "return_dict", "dtype", "is_encoder_decoder"):
            cfg.pop(k, None)
        cfg.update({"architectures": ["DistilBertModel"], "pooling": "mean", "projection_dim": 512,
                    "projection_bias": False,
                    "text_tower_note": "text_model.onnx = Linear(768->512, no bias)(mean-pool of last_hidden_state "
                                       "over attention_mask)"})
        with open(os.path.join(out, "text_tower.json"), "w") as f:
            json.dump({"image_model": "vitb32", "dimension": 512, "pooling": "mean", "normalized": False,
                       "note": "random weights: the vectors are NOT in vitb32's space; for speed benchmarks only"},
                      f, indent=2)
            f.write("\n")
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    nparams = sum(p.numel() for p in model.parameters())
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(f"# {name}: full-size architecture, RANDOM weights ({nparams / 1e6:.1f} M parameters)\n\n"
                "**For speed benchmarks only: the embeddings are meaningless.** Made by "
                f"`tools/make_full_family_random.py {name} OUT --seed {seed}` (see its docstring for the "
                f"architecture). Tokenizer and preprocessing files are copied from `tests/fixtures/{tiny}`; "
                "config.json has the full-size vocabulary.\n")
    return nparams


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("out", help="output model folder (outside the repository!)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(a.seed)
    t0 = time.time()
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    if a.family == "multilingual-tower":
        import train_tiny_multilingual
        m = multilingual_tower()
        print(f"params {sum(p.numel() for p in m.parameters()) / 1e6:.1f}M")
        train_tiny_multilingual.export(m, a.out, m.config.vocab_size)
    else:
        import make_tiny_family
        m = siglip_base() if a.family == "siglip-base" else chinese_clip_base()
        print(f"params {sum(p.numel() for p in m.parameters()) / 1e6:.1f}M")
        make_tiny_family.export(a.family.removesuffix("-base").replace("-", "_"), m, a.out,
                                m.config.text_config.vocab_size)
    write_files(a.family, m, a.out, a.seed)
    print(f"exported in {time.time() - t0:.0f}s")
    for f in sorted(os.listdir(a.out)):
        print(f"{os.path.getsize(os.path.join(a.out, f)) / 1e6:10.1f} MB  {f}")


if __name__ == "__main__":
    main()
