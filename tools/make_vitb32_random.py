#!/usr/bin/env python3
# Provenance: copied unchanged (but for this line) from the team kit shared/tools/make_vitb32_random.py on 2026-11-29.
"""Export a FULL-SIZE CLIP ViT-B/32 with RANDOM weights, for speed benchmarks only.

Architecture = transformers CLIPConfig of openai/clip-vit-base-patch32 (text: 12 layers, width 512,
8 heads; vision: 12 layers, width 768, 12 heads, patch 32, 224 px; projection 512; quick_gelu).
Latency/memory depend on shapes, not weight values, so this stands in for the real model where its
weights cannot be downloaded. The embeddings are MEANINGLESS (seeded random init).

Same Hugging Face layout and I/O contract as tiny-clip (see train_tiny_clip.py):
  vision_model.onnx (pixel_values -> image_embeds [B,512]), text_model.onnx (input_ids,
  attention_mask -> text_embeds [B,512]), config.json, preprocessor_config.json, tokenizer.json.
Size on disk ~600 MB (fp32). Do not commit it.

example: python make_vitb32_random.py /tmp/vitb32 --tokenizer tok/tokenizer.json
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def vitb32_config():
    from transformers import CLIPConfig
    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
        vision_config=dict(image_size=224, patch_size=32, num_channels=3, hidden_size=768, intermediate_size=3072,
                           num_hidden_layers=12, num_attention_heads=12, hidden_act="quick_gelu"),
        projection_dim=512, logit_scale_init_value=2.6592,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output model folder (outside the repository!)")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json from make_tokenizer.py")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch
    from transformers import CLIPModel
    from train_tiny_clip import export, write_layout
    torch.manual_seed(a.seed)
    t0 = time.time()
    cfg = vitb32_config()
    cfg._attn_implementation = "eager"
    m = CLIPModel(cfg).eval()
    print(f"params {sum(p.numel() for p in m.parameters()) / 1e6:.1f}M")
    export(m, a.out)
    write_layout(m, a.out, a.tokenizer)
    print(f"exported in {time.time() - t0:.0f}s")
    for f in sorted(os.listdir(a.out)):
        print(f"{os.path.getsize(os.path.join(a.out, f)) / 1e6:10.1f} MB  {f}")


if __name__ == "__main__":
    main()
