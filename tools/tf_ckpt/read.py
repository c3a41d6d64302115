"""Reads a checkpoint with TensorFlow's own reader (tf.train.load_checkpoint,
which checks every tensor's CRC) and dumps every tensor, for simclr's
writer tests.

    read.py CKPT_PREFIX OUT_DIR
    read.py FILE.safetensors OUT_DIR   (Python's safetensors reader instead;
                                        values.json also gets "metadata")

Writes OUT_DIR/values.json ({name: {dtype, shape, offset, size}} or, for
strings, {dtype, shape, strings: [hex]}) and OUT_DIR/values.bin (the
little-endian bytes, concatenated). Also restores every float32 variable
into a tf.compat.v1 graph with Saver.restore, which must succeed.
"""
import json
import os
import sys

import numpy as np
import tensorflow as tf


def dump(arrays, out_dir, extra):
    manifest = {}
    offset = 0
    with open(os.path.join(out_dir, "values.bin"), "wb") as blob:
        for name in sorted(arrays):
            value = np.asarray(arrays[name])
            raw = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
            blob.write(raw)
            manifest[name] = {"dtype": value.dtype.name, "shape": list(value.shape),
                              "offset": offset, "size": len(raw)}
            offset += len(raw)
    extra["tensors"] = manifest
    with open(os.path.join(out_dir, "values.json"), "w") as f:
        json.dump(extra, f)
    print(len(manifest))


def read_safetensors(path, out_dir):
    from safetensors import safe_open
    from safetensors.numpy import load_file
    with safe_open(path, framework="np") as f:
        metadata = f.metadata()
    dump(load_file(path), out_dir, {"metadata": metadata})


def main():
    prefix, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    if prefix.endswith(".safetensors"):
        return read_safetensors(prefix, out_dir)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    manifest = {}
    offset = 0
    with open(os.path.join(out_dir, "values.bin"), "wb") as blob:
        for name in sorted(shapes):
            value = reader.get_tensor(name)
            dtype = dtypes[name].name
            entry = {"dtype": dtype, "shape": list(shapes[name])}
            if dtype == "string":
                flat = np.asarray(value, dtype=object).reshape(-1).tolist()
                entry["strings"] = [s.hex() for s in flat]
            else:
                value = np.asarray(value)
                raw = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
                blob.write(raw)
                entry["offset"] = offset
                entry["size"] = len(raw)
                offset += len(raw)
            manifest[name] = entry
    # Saver.restore into a graph of the float32 variables.
    graph = tf.Graph()
    with graph.as_default():
        vs = [tf.compat.v1.Variable(tf.zeros(shapes[n], tf.float32), name=n, use_resource=False)
              for n in sorted(shapes) if dtypes[n] == tf.float32]
        saver = tf.compat.v1.train.Saver(var_list={v.op.name: v for v in vs})
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, prefix)
            restored = sum(1 for _ in vs)
    with open(os.path.join(out_dir, "values.json"), "w") as f:
        json.dump({"tensors": manifest, "saver_restored": restored}, f)
    print(len(manifest))


if __name__ == "__main__":
    main()
