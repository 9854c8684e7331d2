#!/usr/bin/env python3
"""Static INT8 quantisation of a YOLO ONNX model for `nsod quantize` (which writes the calibration tensors and runs
this in the virtualenv `scripts/setup.sh --quantize` makes: onnxruntime 1.31.1 and onnx, no PyTorch).

    quantize.py --model IN.onnx --calib DIR --out OUT.onnx --method minmax|entropy|percentile
                --provenance JSON [--reduce-range]
    quantize.py --fp16 --model IN.onnx --calib - --out OUT.onnx --provenance JSON

DIR holds `calibration.json` ({"input": NAME, "shape": [1, 3, H, W], "files": [...]}) and the tensors it lists:
raw little-endian float32, exactly as nsod feeds the model (its own slicing and letterbox).

The head stays in float: every node between the last learned convolution of each output branch and the outputs
(found by walking back from the outputs and stopping at convolutions whose weights are learned; the DFL's fixed
1x1 convolution, weights 0..15, is part of the head). Box coordinates in pixels and class scores in 0-1 would
otherwise share one quantisation scale (the whole graph quantised gives no detections at all).

Prints one JSON object on stdout (the nodes kept in float, the operators quantised). Exit status 3 with a message
on stderr when the model's head cannot be found; 2 for bad arguments or inputs.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper


def fail(code, message):
    print(message, file=sys.stderr)
    sys.exit(code)


def is_fixed_dfl(node, inits):
    """The DFL's 1x1 convolution: one output channel, weights 0, 1, ..., C-1 (not learned)."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return False
    w = numpy_helper.to_array(inits[node.input[1]])
    return (
        w.ndim == 4
        and w.shape[0] == 1
        and w.shape[2:] == (1, 1)
        and np.array_equal(w.reshape(-1), np.arange(w.shape[1], dtype=w.dtype))
    )


def find_head(model):
    """Node names from the last learned convolutions to the outputs, and those convolutions."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {}
    for n in g.node:
        for o in n.output:
            producer[o] = n
    head, stops, seen = [], set(), set()
    names = set()
    stack = [o.name for o in g.output]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        n = producer.get(t)
        if n is None:
            continue
        learned = n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in inits and not is_fixed_dfl(n, inits)
        if learned:
            stops.add(n.name)
            continue
        if n.name in names:
            continue
        names.add(n.name)
        head.append(n.name)
        stack.extend(i for i in n.input if i)
    convs = sum(1 for n in g.node if n.op_type == "Conv")
    if not stops:
        fail(3, "cannot find the model's head: no learned convolution feeds its outputs")
    if len(head) > len(g.node) // 2:
        fail(
            3,
            f"cannot find the model's head: {len(head)} of {len(g.node)} nodes lie after the last learned "
            "convolutions (not a YOLO detection head)",
        )
    if any(not n for n in head):
        fail(3, "cannot find the model's head: some of its nodes have no name to exclude them by")
    return head, sorted(stops), convs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"])
    ap.add_argument("--provenance", required=True)
    ap.add_argument("--reduce-range", action="store_true")
    ap.add_argument("--fp16", action="store_true")
    a = ap.parse_args()
    if a.fp16:
        return fp16(a)

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    try:
        model = onnx.load(a.model)
    except Exception as e:  # noqa: BLE001 - any load failure is the same answer
        fail(2, f"{a.model}: not an ONNX model ({e})")
    # Per-channel QDQ needs opset 13 (DequantizeLinear's axis): older exports are converted first.
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    converted_from = None
    if opset < 13:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, 13)
        except Exception as e:  # noqa: BLE001
            fail(2, f"{a.model}: opset {opset} cannot be converted to 13 for per-channel quantisation ({e})")
        converted_from = opset
    # Names for unnamed nodes (nodes_to_exclude goes by name), kept in the quantised model.
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"nsod_node_{i}"
    head, stops, convs = find_head(model)
    manifest = json.load(open(os.path.join(a.calib, "calibration.json")))
    shape = tuple(manifest["shape"])
    files = [os.path.join(a.calib, f) for f in manifest["files"]]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(files)

        def get_next(self):
            f = next(self.it, None)
            if f is None:
                return None
            return {manifest["input"]: np.fromfile(f, dtype="<f4").reshape(shape)}

        def rewind(self):
            self.it = iter(files)

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[a.method]
    # The calibrators print their progress: it goes to stderr, stdout carries only the report.
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        named = os.path.join(tmp, "named.onnx")
        onnx.save(model, named)
        quantize_static(
            named,
            a.out,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=a.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=head,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    # The Ultralytics metadata nsod reads, and the provenance.
    q = onnx.load(a.out)
    keep = {p.key: p.value for p in model.metadata_props}
    keep["nsod_quantized"] = a.provenance
    del q.metadata_props[:]
    for k in sorted(keep):
        p = q.metadata_props.add()
        p.key, p.value = k, keep[k]
    onnx.save(q, a.out)
    quantized = sum(1 for n in q.graph.node if n.op_type == "QuantizeLinear")
    print(
        json.dumps(
            {
                "head_nodes": len(head),
                "head_ops": sorted({n.op_type for n in model.graph.node if n.name in set(head)}),
                "last_convolutions": len(stops),
                "convolutions": convs,
                "quantize_nodes": quantized,
                "calibration": len(files),
                "opset_converted_from": converted_from,
            }
        )
    )


def fp16(a):
    """Weights and activations in float16, inputs and outputs kept float32 (for the GPU path; ONNX Runtime runs it
    on the CPU in float32 with casts)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = onnx.load(a.model)
    except Exception as e:  # noqa: BLE001
        fail(2, f"{a.model}: not an ONNX model ({e})")
    keep = {p.key: p.value for p in model.metadata_props}
    with contextlib.redirect_stdout(sys.stderr):
        half = convert_float_to_float16(model, keep_io_types=True)
    keep["nsod_quantized"] = a.provenance
    del half.metadata_props[:]
    for k in sorted(keep):
        p = half.metadata_props.add()
        p.key, p.value = k, keep[k]
    onnx.save(half, a.out)
    casts = sum(1 for n in half.graph.node if n.op_type == "Cast")
    print(json.dumps({"fp16": True, "casts": casts, "nodes": len(half.graph.node)}))


if __name__ == "__main__":
    main()
