"""Writes a TF1-style checkpoint with real TensorFlow (tf.compat.v1 graph
variables saved by tf.compat.v1.train.Saver), for simclr's importer tests.

    make.py SPEC.json OUT_DIR

SPEC.json: {"prefix": "model.ckpt", "global_step": 7, "seed": 0,
            "variables": [{"name": "base_model/conv2d/kernel",
                           "shape": [3, 3, 3, 64], "dtype": "float32",
                           "fill": "random" | "zeros" | "ones" | "formula",
                           "k": 0, "scale": 1.0}, ...]}
"scale" multiplies a random float fill (e.g. 1/sqrt(fan_in), for a network
whose activations must stay finite).
"formula" is the fixture weight formula of shared/fixtures/tf-reference/README.md
for index k (float32 only): 1 + v for gamma, 1 + |v| for moving_variance, else v.
dtypes: float32 float64 float16 bfloat16 int32 int64 uint8 bool string.

Writes OUT_DIR/<prefix>-<global_step>.{index,data-*,meta} and OUT_DIR/checkpoint
(by the Saver), plus OUT_DIR/values.json + OUT_DIR/values.bin: for every
variable its dtype, shape and the little-endian bytes TensorFlow was given
(offset/size into values.bin; string variables list their values in hex;
"zeros": true for variables filled with zeros and "formula_k": k for formula
ones, which are not dumped).
"""
import json
import os
import sys

import numpy as np
import tensorflow as tf


def lowbias32(x):
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def formula(name, shape, k):
    n = int(np.prod(shape)) if shape else 1
    base = np.uint32((0x9E3779B9 * (k + 1)) & 0xFFFFFFFF)
    with np.errstate(over="ignore"):
        h = lowbias32(np.arange(n, dtype=np.uint32) + base)
    v = 0.05 * (2.0 * ((h >> np.uint32(8)).astype(np.float64) / 2.0**24) - 1.0)
    if name.endswith("/gamma"):
        v = 1.0 + v
    elif name.endswith("/moving_variance"):
        v = 1.0 + np.abs(v)
    return v.astype(np.float32).reshape(shape)


def make_value(rng, shape, dtype, fill, name="", k=0, scale=1.0):
    if fill == "formula":
        if dtype != "float32":
            raise SystemExit("fill 'formula' is for float32 variables, not %s" % dtype)
        return formula(name, shape, k)
    if dtype == "string":
        n = int(np.prod(shape)) if shape else 1
        vals = [("s%d-" % i).encode() + bytes(rng.integers(0, 256, size=i % 5, dtype=np.uint8))
                for i in range(n)]
        return np.array(vals, dtype=object).reshape(shape)
    np_dtype = tf.dtypes.as_dtype(dtype).as_numpy_dtype
    if fill == "zeros":
        return np.zeros(shape, dtype=np_dtype)
    if fill == "ones":
        return np.ones(shape, dtype=np_dtype)
    if dtype in ("float32", "float64", "float16", "bfloat16"):
        values = rng.standard_normal(shape).astype(np.float32) * np.float32(scale)
        return values.astype(np_dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    info = np.iinfo(np_dtype)
    return rng.integers(max(info.min, -(2**31)), min(info.max, 2**31 - 1), size=shape,
                        endpoint=True).astype(np_dtype)


def main():
    spec_path, out_dir = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(spec.get("seed", 0))
    step = int(spec.get("global_step", 0))
    graph = tf.Graph()
    manifest = {}
    offset = 0
    with graph.as_default(), open(os.path.join(out_dir, "values.bin"), "wb") as blob:
        tf.compat.v1.train.create_global_step()
        variables = []
        for v in spec["variables"]:
            shape = [int(d) for d in v["shape"]]
            value = make_value(rng, shape, v["dtype"], v.get("fill", "random"), v["name"],
                               int(v.get("k", 0)), float(v.get("scale", 1.0)))
            tf_dtype = tf.string if v["dtype"] == "string" else tf.dtypes.as_dtype(v["dtype"])
            var = tf.compat.v1.Variable(
                tf.zeros(shape, dtype=tf_dtype) if v["dtype"] != "string" else tf.fill(shape, ""),
                name=v["name"], use_resource=False)
            if var.op.name != v["name"]:
                raise SystemExit("TensorFlow renamed %s to %s" % (v["name"], var.op.name))
            entry = {"dtype": v["dtype"], "shape": shape}
            if v.get("fill", "random") == "zeros":
                entry["zeros"] = True  # the initial value; nothing to load or dump
            else:
                variables.append((var, value))
            if v.get("fill") == "formula":
                entry["formula_k"] = int(v.get("k", 0))  # reproducible: not dumped
            if "zeros" in entry or "formula_k" in entry:
                pass
            elif v["dtype"] == "string":
                entry["strings"] = [s.hex() for s in value.reshape(-1).tolist()]
            else:
                raw = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
                blob.write(raw)
                entry["offset"] = offset
                entry["size"] = len(raw)
                offset += len(raw)
            manifest[v["name"]] = entry
        saver = tf.compat.v1.train.Saver(max_to_keep=None)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            # One run feeds every initial value (what Variable.load does one
            # variable at a time; per-variable runs cost O(graph) each).
            if variables:
                sess.run([var.initializer for var, _ in variables],
                         {var.initializer.inputs[1]: value for var, value in variables})
            sess.run(tf.compat.v1.assign(tf.compat.v1.train.get_global_step(), step))
            prefix = saver.save(sess, os.path.join(out_dir, spec.get("prefix", "model.ckpt")),
                                global_step=step)
    manifest["global_step"] = {"dtype": "int64", "shape": [], "value": step}
    with open(os.path.join(out_dir, "values.json"), "w") as f:
        json.dump({"prefix": prefix, "tensors": manifest}, f)
    print(prefix)


if __name__ == "__main__":
    main()
