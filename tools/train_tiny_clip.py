#!/usr/bin/env python3
# Provenance: copied unchanged (but for this line) from the team kit shared/tools/train_tiny_clip.py on 2026-11-29 (make_vitb32_random.py imports its exporter).
"""Train the tiny CLIP on synthetic colour x shape images and export it in HF/ONNX layout.

It is NOT a general-purpose model: it only knows the 8 colours x 6 shapes of gen_synthetic.py,
so tests can assert meaningful rankings ("a photo of a red star" -> the red-star image).

Pipeline seen in training = the reference pipeline (reference.py): the synthetic image is
encoded in memory as JPEG/WebP/PNG, decoded by Pillow, exif-transposed, then run through
transformers' CLIPImageProcessor (PIL backend) built from the exported preprocessor_config.json.
Text = tokenizer.json (real CLIP BPE). Loss = image->class-text cross-entropy over all 48
captions (random template per step) + text->image over one image per class. The pre-rendered
pool is augmented with random flips/transposes (all shapes are invariant to them).

Output OUT_DIR (Hugging Face export layout):
  vision_model.onnx  pixel_values f32[B,3,224,224]              -> image_embeds f32[B,512]
  text_model.onnx    input_ids i64[B,S], attention_mask i64[B,S] -> text_embeds  f32[B,512]
                     (S <= 77; pooled at the first EOS 49407, as CLIPTextModelWithProjection)
  config.json, preprocessor_config.json, tokenizer.json, state.pt (--keep-state only)
Embeddings are NOT normalised.  torch is only needed here (training/export), not at runtime.

The published shared/models/tiny-clip was made in two stages (about 20 min on 2 CPU cores):
  python train_tiny_clip.py run2 --tokenizer tok/tokenizer.json --steps 2000 --per-class 250 --keep-state
  python train_tiny_clip.py tiny-clip --tokenizer tok/tokenizer.json --state run2/state.pt
         --seed 1 --steps 1400 --per-class 200 --lr 1e-3 --keep-state   # fresh images, lower LR
Re-export saved weights only:
  python train_tiny_clip.py OUT --tokenizer tok/tokenizer.json --export-only --state OUT/state.pt
"""
import argparse
import io
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_synthetic import CLASSES, TEMPLATE, render  # noqa: E402

PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
TEMPLATES = [TEMPLATE, "a {c} {s}", "{c} {s}", "a picture of a {c} {s}", "an image of a {c} {s}",
             "a photo of the {c} {s}", "a {s} that is {c}"]


def tiny_config():
    from transformers import CLIPConfig
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
        vision_config=dict(image_size=224, patch_size=32, num_channels=3, hidden_size=128,
                           intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                           hidden_act="quick_gelu"),
        projection_dim=512,
    )
    return cfg


def image_processor():
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    return CLIPImageProcessorPil(**{k: v for k, v in PREPROCESSOR.items() if k != "image_processor_type"})


def _make(args):
    """Render one training image and preprocess it exactly like reference.py (in a worker)."""
    from PIL import Image, ImageOps
    ci, seed = args
    rng = np.random.default_rng(seed)
    c, s = CLASSES[ci]
    im = render(c, s, rng)
    fmt = ["JPEG", "WEBP", "PNG"][seed % 3]
    buf = io.BytesIO()
    im.save(buf, fmt, **({} if fmt == "PNG" else {"quality": int(rng.integers(80, 96))}))
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue())))
    # resize + centre crop exactly as CLIPImageProcessor; /255 and mean/std are applied in torch
    # (same float32 formula) so the pool can be kept as uint8
    px = _make.proc(images=im, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]
    return np.asarray(px).astype(np.uint8)


def _init_worker():
    _make.proc = image_processor()


def normalise(x_uint8):
    import torch
    mean = torch.tensor(PREPROCESSOR["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(PREPROCESSOR["image_std"]).view(1, 3, 1, 1)
    return (x_uint8.float() * PREPROCESSOR["rescale_factor"] - mean) / std


def dihedral(x, g):
    """Random flips / 90-degree rotations per sample (every shape class is invariant to them)."""
    import torch
    out = x.clone()
    t = torch.randint(0, 8, (x.shape[0],), generator=g)
    for i in range(x.shape[0]):
        v = x[i]
        if t[i] & 1:
            v = v.flip(-1)
        if t[i] & 2:
            v = v.flip(-2)
        if t[i] & 4:
            v = v.transpose(-1, -2)
        out[i] = v
    return out


def make_pool(per_class, seed0, workers):
    from multiprocessing import Pool
    jobs = [(ci, seed0 + 1000 * ci + k) for k in range(per_class) for ci in range(len(CLASSES))]
    with Pool(workers, initializer=_init_worker) as p:
        arr = p.map(_make, jobs, chunksize=16)
    x = np.stack(arr).reshape(per_class, len(CLASSES), 3, 224, 224)
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3, 4))  # [C, K, 3, 224, 224]


def tokenize(tok, texts, length=16):
    encs = tok.encode_batch(texts)
    ids = np.full((len(texts), length), 49407, np.int64)
    mask = np.zeros((len(texts), length), np.int64)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = e.ids
        mask[i, :len(e.ids)] = 1
    return ids, mask


def export(model, out):
    import torch

    class Vision(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.vm, self.proj = m.vision_model, m.visual_projection

        def forward(self, pixel_values):
            return self.proj(self.vm(pixel_values=pixel_values).pooler_output)

    class Text(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.tm, self.proj = m.text_model, m.text_projection

        def forward(self, input_ids, attention_mask):
            return self.proj(self.tm(input_ids=input_ids, attention_mask=attention_mask).pooler_output)

    model.eval()
    os.makedirs(out, exist_ok=True)
    vis, txt = Vision(model), Text(model)
    px = torch.randn(2, 3, 224, 224)
    ids = torch.full((2, 9), 49407, dtype=torch.long)
    ids[:, 0] = 49406
    ids[0, 1:6] = torch.tensor([320, 1125, 539, 320, 736])
    ids[1, 1:4] = torch.tensor([320, 736, 2368])
    mask = (torch.arange(9)[None] <= torch.tensor([[6], [4]])).long()
    kw = dict(opset_version=17, dynamo=False, do_constant_folding=True)
    with torch.no_grad():
        torch.onnx.export(vis, (px,), os.path.join(out, "vision_model.onnx"), input_names=["pixel_values"],
                          output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}, **kw)
        torch.onnx.export(txt, (ids, mask), os.path.join(out, "text_model.onnx"),
                          input_names=["input_ids", "attention_mask"], output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"},
                                        "text_embeds": {0: "batch"}}, **kw)
    # merge external data if the exporter split it, and check parity vs torch at several shapes
    import onnx
    import onnxruntime as ort
    for f in ("vision_model.onnx", "text_model.onnx"):
        m = onnx.load(os.path.join(out, f))
        onnx.checker.check_model(m)
    sv = ort.InferenceSession(os.path.join(out, "vision_model.onnx"), providers=["CPUExecutionProvider"])
    st = ort.InferenceSession(os.path.join(out, "text_model.onnx"), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for b in (1, 3):
            x = torch.randn(b, 3, 224, 224)
            worst = max(worst, float(np.abs(sv.run(None, {"pixel_values": x.numpy()})[0] - vis(x).numpy()).max()))
        for b, s in ((1, 4), (3, 12), (2, 77)):
            i = torch.randint(1, 49000, (b, s))
            i[:, 0] = 49406
            i[:, s // 2:] = 49407
            mk = torch.ones(b, s, dtype=torch.long)
            mk[:, s // 2 + 1:] = 0
            o = st.run(None, {"input_ids": i.numpy(), "attention_mask": mk.numpy()})[0]
            worst = max(worst, float(np.abs(o - txt(i, mk).numpy()).max()))
            # padding invariance: the same text without padding gives the same embedding
            o2 = st.run(None, {"input_ids": i[:, :s // 2 + 1].numpy(),
                               "attention_mask": np.ones((b, s // 2 + 1), np.int64)})[0]
            worst = max(worst, float(np.abs(o - o2).max()))
    print(f"onnx vs torch (and padded vs unpadded text) max abs diff: {worst:.2e}")
    assert worst < 1e-4, worst


def write_layout(model, out, tokenizer_json):
    cfg = model.config.to_dict()
    cfg["architectures"] = ["CLIPModel"]
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=2, sort_keys=True)
    if os.path.abspath(tokenizer_json) != os.path.abspath(os.path.join(out, "tokenizer.json")):
        shutil.copy(tokenizer_json, os.path.join(out, "tokenizer.json"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output model folder")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json from make_tokenizer.py")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--per-class", type=int, default=250, help="pre-rendered training images per class")
    ap.add_argument("--batch-per-class", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--eval-per-class", type=int, default=10, help="held-out images per class for the final eval")
    ap.add_argument("--state", help="load weights (state_dict .pt) instead of training")
    ap.add_argument("--export-only", action="store_true", help="with --state: only export")
    ap.add_argument("--keep-state", action="store_true", help="save OUT/state.pt")
    a = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from tokenizers import Tokenizer
    from transformers import CLIPModel

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(os.cpu_count())
    tok = Tokenizer.from_file(a.tokenizer)
    cfg = tiny_config()
    cfg._attn_implementation = "eager"
    m = CLIPModel(cfg)
    C = len(CLASSES)
    if a.state:
        m.load_state_dict(torch.load(a.state, map_location="cpu"))
    t0 = time.time()
    if not a.export_only:
        pool = torch.from_numpy(make_pool(a.per_class, 1_000_000 * (a.seed + 1), a.workers))
        print(f"train data {tuple(pool.shape)} in {time.time() - t0:.0f}s", flush=True)
        caps = [[t.format(c=c, s=s) for t in TEMPLATES] for c, s in CLASSES]
        cap_ids, cap_mask = (torch.from_numpy(v).view(C, len(TEMPLATES), -1)
                             for v in tokenize(tok, sum(caps, [])))
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps, pct_start=0.1)
        g = torch.Generator().manual_seed(a.seed)
        ar = torch.arange(C)
        P = a.batch_per_class
        for step in range(a.steps):
            k = torch.stack([torch.randperm(pool.shape[1], generator=g)[:P] for _ in range(C)])  # [C,P]
            x = normalise(dihedral(pool[ar[:, None], k].reshape(C * P, 3, 224, 224), g))
            y = ar.repeat_interleave(P)
            tk = torch.randint(0, len(TEMPLATES), (C,), generator=g)
            te = m.text_projection(m.text_model(input_ids=cap_ids[ar, tk], attention_mask=cap_mask[ar, tk]).pooler_output)
            ie = m.visual_projection(m.vision_model(pixel_values=x).pooler_output)
            te, ie = F.normalize(te, dim=-1), F.normalize(ie, dim=-1)
            scale = m.logit_scale.clamp(max=4.6052).exp()
            li = scale * ie @ te.T                                   # [C*P, C]
            loss = F.cross_entropy(li, y) + F.cross_entropy(li[::P].T, ar)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0 or step == a.steps - 1:
                acc = (li.argmax(1) == y).float().mean().item()
                print(f"step {step:4d} loss {loss.item():.3f} batch-acc {acc:.2f} scale {scale.item():.1f} "
                      f"({time.time() - t0:.0f}s)", flush=True)
        del pool
    m.eval()
    # held-out zero-shot evaluation (fresh seeds, caption template only)
    ev = make_pool(a.eval_per_class, 777_000_000, a.workers)
    with torch.no_grad():
        ids, mask = (torch.from_numpy(v) for v in tokenize(tok, [TEMPLATE.format(c=c, s=s) for c, s in CLASSES]))
        te = F.normalize(m.text_projection(m.text_model(input_ids=ids, attention_mask=mask).pooler_output), dim=-1)
        correct = 0
        conf = {}
        for ci in range(C):
            x = normalise(torch.from_numpy(ev[ci]))
            ie = F.normalize(m.visual_projection(m.vision_model(pixel_values=x).pooler_output), dim=-1)
            pred = (ie @ te.T).argmax(1)
            correct += int((pred == ci).sum())
            for p in pred.tolist():
                if p != ci:
                    conf[(CLASSES[ci], CLASSES[p])] = conf.get((CLASSES[ci], CLASSES[p]), 0) + 1
    n = C * a.eval_per_class
    print(f"held-out zero-shot top-1 over {C} classes: {correct}/{n} = {100 * correct / n:.2f}%")
    for (t, p), v in sorted(conf.items(), key=lambda kv: -kv[1])[:8]:
        print(f"   confusion {t} -> {p}: {v}")
    os.makedirs(a.out, exist_ok=True)
    if a.keep_state:
        torch.save(m.state_dict(), os.path.join(a.out, "state.pt"))
    export(m, a.out)
    write_layout(m, a.out, a.tokenizer)
    print(f"params {sum(p.numel() for p in m.parameters()) / 1e6:.2f}M; total {time.time() - t0:.0f}s")
    for f in sorted(os.listdir(a.out)):
        print(f"{os.path.getsize(os.path.join(a.out, f)):>10}  {f}")


if __name__ == "__main__":
    main()
