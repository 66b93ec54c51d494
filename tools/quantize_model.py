#!/usr/bin/env python3
"""Turn a model directory (Hugging Face export layout) into an int8 one, and measure it.

Copies every file but the towers' ONNX graphs (and their external data), quantizes the vision and
text towers with onnxruntime.quantization and writes DST/quantization.json: per tower the mode, op
types, weight/activation types, per-channel, reduce_range, calibration set, sha256 of the source
graph, and the cosine to fp32 and the speed measured here; the onnxruntime version, the source dir.
Towers are found as clipsearch finds them (shared/src/clip/model_dir.rs: vision_model.onnx,
onnx/vision_model.onnx, visual.onnx, ..., text_model.onnx, onnx/text_model.onnx, textual.onnx, ...).

  dynamic  quantize_dynamic: int8 weights of the MatMul/Gemm/Attention nodes with a constant B
           (per channel by default), activations quantized to uint8 per tensor at run time; and the
           token embedding table (Gather: 100 of ViT-B/32's 254 MB text tower; --op-types).
  static   quantize_static, QDQ, MinMax ranges from the calibration set: the images under
           --calibration DIR (default tests/fixtures/parity: its 35 images, preprocessed by
           tools/reference.py's own pipeline) and DIR/captions.txt (51 captions), one text per run.
           The activation x activation MatMuls (attention) stay fp32, as in dynamic mode.
  auto     both; per tower keeps the faster (summed over --threads) of those whose minimum cosine
           to fp32 over the evaluation set is >= --min-cosine; neither: the tower stays fp32.
Graphs go through quant_pre_process first (symbolic shape inference + ORT basic optimisation).
The evaluation set (--eval, default tests/fixtures/parity) is, by default, the calibration set.

clipsearch names a model by its directory and stores the name with every vector, so DST's name
must differ from SRC's (vitb32 -> vitb32-int8); clipsearch also reads quantization.json's
"precision" and names the model NAME-int8 whatever the directory is called: int8 and fp32 vectors
never share an index.
Needs onnx (the bench venv, tools/requirements-bench.txt; sympy comes with torch).

example: .venv-bench/bin/python tools/quantize_model.py tests/fixtures/tiny-clip /tmp/tiny-clip-int8
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from reference import Clip, l2n, list_images, read_captions  # noqa: E402

# shared/src/clip/model_dir.rs VISION_CANDIDATES / TEXT_CANDIDATES, in the same order.
CANDIDATES = {
    "vision": ["vision_model.onnx", "onnx/vision_model.onnx", "visual.onnx", "onnx/visual.onnx",
               "image_encoder.onnx", "onnx/image_encoder.onnx"],
    "text": ["text_model.onnx", "onnx/text_model.onnx", "textual.onnx", "onnx/textual.onnx",
             "text_encoder.onnx", "onnx/text_encoder.onnx"],
}
OUTPUT = {"vision": "image_embeds", "text": "text_embeds"}
DEFAULT_SET = os.path.join(os.path.dirname(HERE), "tests/fixtures/parity")
INT8_OPS = ("MatMul", "Gemm", "Gather", "MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear")
TWO_GB = 2_000_000_000


def log(*a):
    print("[quantize]", *a, file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def external_data(root, rel):
    """Relative paths of the external-data files graph `rel` uses (and clipsearch's _data/.data names)."""
    import onnx
    m = onnx.load(os.path.join(root, rel), load_external_data=False)
    out = {rel + s for s in ("_data", ".data") if os.path.isfile(os.path.join(root, rel + s))}
    for t in list(m.graph.initializer) + [a.t for n in m.graph.node for a in n.attribute if a.HasField("t")]:
        out |= {os.path.normpath(os.path.join(os.path.dirname(rel), e.value)) for e in t.external_data
                if e.key == "location"}
    return sorted(out)


def op_counts(path):
    import onnx
    out = {}
    for n in onnx.load(path, load_external_data=False).graph.node:
        out[n.op_type] = out.get(n.op_type, 0) + 1
    return out


def cpu_info():
    flags, name = set(), platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                name = value.strip() if key.strip() == "model name" and not name else name
                flags |= set(value.split()) if key.strip() in ("flags", "Features") else set()
    except OSError:
        pass
    keep = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "sve"]
    return {"machine": platform.machine(), "model": name, "cpus": os.cpu_count(),
            "int8_flags": [k for k in keep if k in flags]}


def session(path, threads=1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- data
def images_dir(folder):
    sub = os.path.join(folder, "images")
    return os.path.abspath(sub if os.path.isdir(sub) else folder)


def image_feeds(clip, folder, limit=0):
    files = list_images([images_dir(folder)])[: limit or None]
    if not files:
        raise SystemExit(f"no images under {folder}")
    return {"images": images_dir(folder), "count": len(files)}, [{"pixel_values": clip.pixels(p)[None]} for p in files]


def text_feeds(clip, folder, limit=0):
    path = next((os.path.join(folder, n) for n in ("captions.txt", "captions.jsonl")
                 if os.path.isfile(os.path.join(folder, n))), None)
    if path is None:
        raise SystemExit(f"no captions.txt in {folder}")
    texts = read_captions(path)[: limit or None]
    return {"captions": os.path.abspath(path), "count": len(texts)}, [clip.text_inputs(t) for t in texts]


class Feeds:
    """CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds):
        self.feeds, self.it = feeds, iter(feeds)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.feeds)


def embed(sess, feeds, tower):
    names = [o.name for o in sess.get_outputs()]
    out = OUTPUT[tower] if OUTPUT[tower] in names else names[0]
    return l2n(np.concatenate([sess.run([out], f)[0] for f in feeds]))


def timing(paths, feeds, tower, threads, rounds):
    """Median ms per run of each graph in `paths`, the runs interleaved so that load drifts hit all alike.
    vision: one batch of 8 images per run; text: each text once, one at a time, ms per text."""
    if tower == "vision":
        work, per = [{"pixel_values": np.concatenate([feeds[i % len(feeds)]["pixel_values"] for i in range(8)])}], 1
    else:
        work, per = feeds, len(feeds)
    out = {k: {} for k in paths}
    for t in threads:
        sessions = {k: session(p, t) for k, p in paths.items()}
        samples = {k: [] for k in paths}
        for s in sessions.values():
            for f in work[:2]:
                s.run(None, f)  # warm-up
        for _ in range(rounds):
            for k, s in sessions.items():
                t0 = time.perf_counter()
                for f in work:
                    s.run(None, f)
                samples[k].append((time.perf_counter() - t0) * 1e3 / per)
        for k, v in samples.items():
            out[k][f"threads_{t}"] = round(float(np.median(v)), 3)
    return out


# ----------------------------------------------------------------------------- quantization
def preprocess(src, dst, big):
    """quant_pre_process into `dst`; returns how, or None (then the source graph is quantized as it is)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process
    for kw in ({}, {"auto_merge": True}, {"skip_symbolic_shape": True}):
        try:
            quant_pre_process(src, dst, save_as_external_data=big, all_tensors_to_one_file=True, **kw)
            return " ".join(["quant_pre_process"] + [f"{k}=True" for k in kw])
        except Exception as e:  # noqa: BLE001 - any failure: try the next variant
            log(f"quant_pre_process {kw or ''} failed on {src}: {e!r}")
    return None


def activation_matmuls(path, tmp, big):
    """(graph, names of its MatMuls whose B is not a constant); unnamed nodes get names in a copy under tmp."""
    import onnx
    m = onnx.load(path, load_external_data=False)
    if any(not n.name for n in m.graph.node):
        m = onnx.load(path)
        for i, n in enumerate(m.graph.node):
            n.name = n.name or f"{n.op_type}_q{i}"
        path = os.path.join(tmp, "named-" + os.path.basename(path))
        onnx.save(m, path, save_as_external_data=big, location=os.path.basename(path) + "_data")
    consts = {i.name for i in m.graph.initializer}
    return path, [n.name for n in m.graph.node if n.op_type == "MatMul" and n.input[1] not in consts]


def quantize(mode, src, dst, a, ops, calib, big, tmp):
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    qt = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
    rec = {"mode": mode, "op_types": ops, "weight_type": a.weight_type, "per_channel": a.per_channel,
           "reduce_range": a.reduce_range}
    if mode == "dynamic":
        quantize_dynamic(src, dst, op_types_to_quantize=ops, per_channel=a.per_channel, reduce_range=a.reduce_range,
                         weight_type=qt[a.weight_type], extra_options={"MatMulConstBOnly": True},
                         use_external_data_format=big)
        rec.update(activation_type="quint8 (per tensor, computed at run time)", matmul_const_b_only=True)
        return rec
    # MatMulConstBOnly binds only the QOperator quantizer: the QDQ one is given the attention MatMuls by name.
    src, exclude = activation_matmuls(src, tmp, big)
    calib["reader"].rewind()
    # Not CalibMaxIntermediateOutputs: this MinMaxCalibrater drops every full chunk unmerged.
    quantize_static(src, dst, calib["reader"], quant_format=QuantFormat.QDQ, op_types_to_quantize=ops,
                    per_channel=a.per_channel, reduce_range=a.reduce_range, activation_type=qt[a.activation_type],
                    weight_type=qt[a.weight_type], calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=exclude, use_external_data_format=big)
    rec.update(activation_type=a.activation_type, format="QDQ", calibrate_method="MinMax",
               excluded_activation_matmuls=len(exclude), calibration={k: v for k, v in calib.items() if k != "reader"})
    return rec


def do_tower(tower, src_dir, rel, dst_dir, a, clip, tmp):
    src = os.path.join(src_dir, rel)
    big = sum(os.path.getsize(os.path.join(src_dir, f)) for f in [rel] + external_data(src_dir, rel)) > TWO_GB
    if tower == "text":
        clip._txt = session(src)  # reference.py's text_inputs asks the graph for its input names
    feeds = image_feeds if tower == "vision" else text_feeds
    calib, cfeeds = feeds(clip, a.calibration, a.calibration_limit)
    eset, efeeds = (calib, cfeeds) if a.eval == a.calibration and not a.calibration_limit else feeds(clip, a.eval)
    calib = dict(calib, reader=Feeds(cfeeds), preprocessing="tools/reference.py (Clip.pixels / Clip.text_inputs)")
    ops = [o for o in a.op_types if o in op_counts(src)]
    how = None if a.no_preprocess else preprocess(src, os.path.join(tmp, f"{tower}-pre.onnx"), big)
    qin = os.path.join(tmp, f"{tower}-pre.onnx") if how else src
    modes = ["dynamic", "static"] if a.mode == "auto" else [a.mode]
    cands, paths = {}, {"fp32": src}
    for m in modes:
        paths[m] = os.path.join(tmp, f"{tower}-{m}.onnx")
        log(f"{tower}: {m} quantization of {rel}")
        t0 = time.perf_counter()
        cands[m] = quantize(m, qin, paths[m], a, ops, calib, big, tmp)
        cands[m].update(seconds_to_quantize=round(time.perf_counter() - t0, 1), bytes=os.path.getsize(paths[m]),
                        graph_ops={k: v for k, v in op_counts(paths[m]).items() if k in INT8_OPS})
    log(f"{tower}: cosine to fp32 on {eset}")
    ref = embed(session(src, a.threads[-1]), efeeds, tower)
    for m in modes:
        cos = (ref * embed(session(paths[m], a.threads[-1]), efeeds, tower)).sum(1)
        cands[m]["cosine_to_fp32"] = {"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6),
                                      "n": int(cos.size)}
    log(f"{tower}: timing {list(paths)} at threads {a.threads}")
    ms = timing(paths, efeeds, tower, a.threads, a.rounds)
    for m in modes:
        cands[m]["ms"] = ms[m]
    ok = [m for m in modes if cands[m]["cosine_to_fp32"]["min"] >= a.min_cosine]
    chosen = (min(ok, key=lambda m: sum(ms[m].values())) if ok else None) if a.mode == "auto" else modes[0]
    if chosen and chosen not in ok:
        log(f"WARNING {tower}: min cosine {cands[chosen]['cosine_to_fp32']['min']} < --min-cosine {a.min_cosine}")
    rec = {"file": rel, "source_sha256": sha256(src), "source_bytes": os.path.getsize(src),
           "source_external_data": external_data(src_dir, rel), "preprocess": how or "none", "evaluation": eset,
           "timing_unit": "ms per batch of 8 images" if tower == "vision" else "ms per text (one at a time)",
           "fp32_ms": ms["fp32"], "min_cosine_required": a.min_cosine}
    if chosen is None:
        log(f"{tower}: no int8 variant reaches min cosine {a.min_cosine}: kept fp32")
        copy_graph(src_dir, rel, dst_dir)
        return dict(rec, mode="fp32 (no int8 variant met min_cosine)", candidates=cands)
    dst = os.path.join(dst_dir, rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if big:
        import onnx
        onnx.save(onnx.load(paths[chosen]), dst, save_as_external_data=True, location=os.path.basename(rel) + "_data")
    else:
        shutil.copyfile(paths[chosen], dst)
    rec.update(cands[chosen], sha256=sha256(dst))
    if a.mode == "auto":
        rec["candidates"] = cands
    log(f"{tower}: -> {rec['mode']}")
    return rec


def copy_graph(src_dir, rel, dst_dir):
    for r in [rel] + external_data(src_dir, rel):
        os.makedirs(os.path.dirname(os.path.join(dst_dir, r)), exist_ok=True)
        shutil.copyfile(os.path.join(src_dir, r), os.path.join(dst_dir, r))


def build(a, src, work, found):
    """Copies SRC's other files into `work`, quantizes the towers there; returns quantization.json's content."""
    import onnx
    import onnxruntime
    graphs = {f for rel in found.values() if rel for f in [rel] + external_data(src, rel)}
    os.makedirs(work)
    copied, skipped = [], []
    for d, _, files in os.walk(src):
        for rel in sorted(os.path.relpath(os.path.join(d, f), src) for f in files):
            if rel in graphs:
                continue
            if rel.endswith((".onnx", ".onnx_data", ".onnx.data")):
                skipped.append(rel)  # another export of a tower (fp16, _quantized, combined model.onnx)
                continue
            os.makedirs(os.path.dirname(os.path.join(work, rel)), exist_ok=True)
            shutil.copy2(os.path.join(src, rel), os.path.join(work, rel))
            copied.append(rel)
    doc = {"tool": "tools/quantize_model.py", "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "name": None, "source": {"dir": src, "name": os.path.basename(src)},
        "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
        "cpu": cpu_info(), "argv": sys.argv[1:], "requested_mode": a.mode, "copied": copied,
        "not_copied_other_onnx": skipped, "towers": {}}
    clip, cwd = Clip(src, 1), os.getcwd()
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        os.chdir(tmp)  # the calibrator and the shape inference leave temporary models in the working directory
        try:
            for tower, rel in found.items():
                if rel and tower in a.towers:
                    doc["towers"][tower] = do_tower(tower, src, rel, work, a, clip, tmp)
                elif rel:
                    copy_graph(src, rel, work)
                    doc["towers"][tower] = {"file": rel, "mode": "fp32 (not requested)",
                                            "source_sha256": sha256(os.path.join(src, rel))}
        finally:
            os.chdir(cwd)
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst", help="new directory; its name must differ from SRC's (e.g. NAME-int8)")
    ap.add_argument("--mode", choices=["dynamic", "static", "auto"], default="auto")
    ap.add_argument("--towers", default="vision,text", help="comma-separated subset of vision,text")
    ap.add_argument("--calibration", default=DEFAULT_SET, help="folder: images (or images/) + captions.txt")
    ap.add_argument("--calibration-limit", type=int, default=0, help="only the first N images / captions")
    ap.add_argument("--eval", default=DEFAULT_SET, help="folder: images (or images/) + captions.txt")
    ap.add_argument("--op-types", default="MatMul,Gemm,Attention,Gather",
                    help="ops to quantize where present (Gather: the token embedding table, a third of a text tower)")
    ap.add_argument("--weight-type", choices=["qint8", "quint8"], default="qint8")
    ap.add_argument("--activation-type", choices=["qint8", "quint8"], default="quint8",
                    help="static mode (dynamic activations are always uint8)")
    ap.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=False,
                    help="7-bit weights, against u8s8 saturation on x86 without VNNI")
    ap.add_argument("--no-preprocess", action="store_true", help="skip quant_pre_process")
    ap.add_argument("--min-cosine", type=float, default=0.99, help="over the evaluation set, for auto")
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts to time")
    ap.add_argument("--rounds", type=int, default=10, help="timed runs per graph and thread count")
    ap.add_argument("--force", action="store_true", help="replace DST if it exists")
    a = ap.parse_args()
    a.threads = [int(t) for t in a.threads.split(",")]
    a.op_types = [o for o in a.op_types.split(",") if o]
    a.towers = [t for t in a.towers.split(",") if t]
    a.eval, a.calibration = os.path.abspath(a.eval), os.path.abspath(a.calibration)
    src, dst = os.path.abspath(a.src), os.path.abspath(a.dst)
    if set(a.towers) - set(CANDIDATES):
        raise SystemExit(f"--towers: unknown {set(a.towers) - set(CANDIDATES)}")
    if os.path.basename(src) == os.path.basename(dst):
        raise SystemExit("DST needs another name than SRC: clipsearch names a model by its directory "
                         f"(try {os.path.basename(src)}-int8)")
    if "int8" not in os.path.basename(dst):
        log(f"note: the name {os.path.basename(dst)} does not say int8")
    if os.path.exists(os.path.join(src, "quantization.json")):
        raise SystemExit(f"{src} is already quantized (quantization.json)")
    if dst.startswith(src + os.sep) or (os.path.exists(dst) and not a.force):
        raise SystemExit(f"{dst} is inside SRC or exists (--force replaces it)")
    found = {t: next((c for c in CANDIDATES[t] if os.path.isfile(os.path.join(src, c))), None) for t in CANDIDATES}
    if not any(found.values()):
        raise SystemExit(f"no tower ONNX file in {src}")
    work = f"{dst}.partial-{os.getpid()}"  # renamed to DST once complete: never a half-written model
    try:
        doc = build(a, src, work, found)
        if all(str(r["mode"]).startswith("fp32") for r in doc["towers"].values()):
            raise SystemExit("no tower met --min-cosine in int8: nothing to write (the model stays fp32)")
        # clipsearch reads this: the model is named NAME-int8 whatever DST is called, so its
        # vectors are never taken for the fp32 model's (shared/src/clip/model_dir.rs).
        doc["precision"] = "int8"
        doc["name"] = os.path.basename(dst)
        with open(os.path.join(work, "quantization.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.rename(work, dst)
    for t, r in doc["towers"].items():
        c = r.get("cosine_to_fp32", {})
        print(f"{t}: {r['mode']}  cos min {c.get('min')} mean {c.get('mean')}  int8 ms {r.get('ms')}  "
              f"fp32 ms {r.get('fp32_ms')}  {r.get('bytes', r.get('source_bytes'))} bytes")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
