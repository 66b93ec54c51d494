#!/usr/bin/env python3
"""Makes the tiny ONNX graphs of tests/fixtures/bad-models: towers whose inputs clipsearch cannot
fill, for the load-time refusal tests (tests/parity_families.rs). Needs the `onnx` package
(.venv-bench, tools/requirements-bench.txt).

  text_unfillable_input.onnx    input_ids + `langs` (int64 [B,T]) -> text_embeds
  vision_extra_input.onnx       pixel_values + `interpolate_pos_encoding` (bool) -> image_embeds

example: .venv-bench/bin/python tools/make_bad_models.py tests/fixtures/bad-models
"""
import os
import sys

import onnx
from onnx import TensorProto, helper


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="clipsearch")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main(out):
    os.makedirs(out, exist_ok=True)
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    langs = helper.make_tensor_value_info("langs", TensorProto.INT64, ["batch", "seq"])
    text = helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["batch", "seq"])
    save(helper.make_graph([helper.make_node("Add", ["input_ids", "langs"], ["sum"]),
                            helper.make_node("Cast", ["sum"], ["text_embeds"], to=TensorProto.FLOAT)],
                           "text_unfillable_input", [ids, langs], [text]),
         os.path.join(out, "text_unfillable_input.onnx"))
    pixels = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])
    flag = helper.make_tensor_value_info("interpolate_pos_encoding", TensorProto.BOOL, [])
    image = helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", 3])
    save(helper.make_graph([helper.make_node("ReduceMean", ["pixel_values"], ["image_embeds"], axes=[2, 3],
                                             keepdims=0)],
                           "vision_extra_input", [pixels, flag], [image]),
         os.path.join(out, "vision_extra_input.onnx"))


if __name__ == "__main__":
    main(sys.argv[1])
