"""Writes a TF2 object-based checkpoint (tf.train.Checkpoint) whose model
has SimCLR's TF2 head structure — attribute names `_projection_head`,
`linear_layers[j]`, `dense`, `bn_relu`, `bn`, `supervised_head`,
`linear_layer` — so that simclr's TF2 → TF1 head-name mapping is checked
against TensorFlow's real object-path keys.

    make_tf2_heads.py OUT_DIR FEATURE_DIM NUM_PROJ_LAYERS PROJ_OUT_DIM NUM_CLASSES

Writes OUT_DIR/ckpt-1.{index,data-*} and OUT_DIR/values.json +
OUT_DIR/values.bin keyed by the TF1 name each variable corresponds to.
"""
import json
import os
import sys

import numpy as np
import tensorflow as tf


class BnRelu(tf.keras.layers.Layer):
    def __init__(self, center):
        super().__init__()
        self.bn = tf.keras.layers.BatchNormalization(center=center, epsilon=1e-5)

    def call(self, x, training=False):
        return self.bn(x, training=training)


class Linear(tf.keras.layers.Layer):
    def __init__(self, units, use_bias, use_bn):
        super().__init__()
        self.dense = tf.keras.layers.Dense(units, use_bias=use_bias and not use_bn)
        self.use_bn = use_bn
        if use_bn:
            self.bn_relu = BnRelu(center=use_bias)

    def call(self, x, training=False):
        x = self.dense(x)
        return self.bn_relu(x, training=training) if self.use_bn else x


class ProjHead(tf.keras.layers.Layer):
    def __init__(self, dim, layers, out_dim):
        super().__init__()
        self.linear_layers = [Linear(dim if j < layers - 1 else out_dim, j < layers - 1, True)
                              for j in range(layers)]

    def call(self, x, training=False):
        for layer in self.linear_layers:
            x = layer(x, training=training)
        return x


class SupHead(tf.keras.layers.Layer):
    def __init__(self, classes):
        super().__init__()
        self.linear_layer = Linear(classes, True, False)

    def call(self, x, training=False):
        return self.linear_layer(x, training=training)


class Model(tf.keras.Model):
    def __init__(self, dim, layers, out_dim, classes):
        super().__init__()
        self._projection_head = ProjHead(dim, layers, out_dim)
        self.supervised_head = SupHead(classes)

    def call(self, x, training=False):
        return self._projection_head(x, training=training), self.supervised_head(x)


def tf1_name(path):
    """TF1 name of a variable from its object path inside the model."""
    parts = path.split("/")
    if parts[0] == "_projection_head":
        j = parts[2]
        rest = parts[3:]
        if rest[0] == "bn_relu":
            rest = ["batch_normalization"] + rest[2:]
        return "head_contrastive/nl_%s/%s" % (j, "/".join(rest))
    return "head_supervised/" + "/".join(parts[1:])


def write_values(out_dir, prefix, items):
    """Writes OUT_DIR/values.bin (little-endian f32 of each array) and
    OUT_DIR/values.json ({prefix, tensors: {TF1 name: {offset, size, ...}}})
    from (TF1 name, array, extra fields) items."""
    manifest = {}
    offset = 0
    with open(os.path.join(out_dir, "values.bin"), "wb") as blob:
        for name, value, extra in items:
            raw = np.ascontiguousarray(value).astype("<f4").tobytes()
            blob.write(raw)
            manifest[name] = dict(extra, offset=offset, size=len(raw))
            offset += len(raw)
    with open(os.path.join(out_dir, "values.json"), "w") as f:
        json.dump({"prefix": prefix, "tensors": manifest}, f)


def main():
    out_dir = sys.argv[1]
    dim, layers, out_dim, classes = (int(a) for a in sys.argv[2:6])
    os.makedirs(out_dir, exist_ok=True)
    model = Model(dim, layers, out_dim, classes)
    model(tf.zeros([2, dim]), training=False)
    rng = np.random.default_rng(5)
    for v in model.variables:
        v.assign(rng.standard_normal(v.shape).astype(np.float32))
    ckpt = tf.train.Checkpoint(model=model, global_step=tf.Variable(3, dtype=tf.int64))
    prefix = ckpt.write(os.path.join(out_dir, "ckpt-1"))
    reader = tf.train.load_checkpoint(prefix)
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    keys = [k for k in sorted(reader.get_variable_to_shape_map())
            if k.startswith("model/") and k.endswith(suffix)]
    write_values(out_dir, prefix, ((tf1_name(k[len("model/"):-len(suffix)]),
                                    reader.get_tensor(k), {"key": k}) for k in keys))
    print(prefix)


if __name__ == "__main__":
    main()
