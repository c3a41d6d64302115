"""Writes a TF2 object-based checkpoint (tf.train.Checkpoint) of a whole
SimCLR model laid out with the attribute structure of the TF2 code:
`resnet_model` with the stem list `initial_conv_relu_max_pool`, the list
`block_groups`, each with a list `layers` of blocks; a basic block holds
`shortcut_layers`, `conv2d_bn_layers` and `se_layer`, a bottleneck block
`projection_layers` and `conv_relu_dropblock_layers` (a selective-kernel
layer inside it holds `conv2d_fixed_padding`, `batch_norm_relu`, `conv2d_0`,
`batch_norm_relu_1`, `conv2d_1`); convolutions sit in `conv2d`, batch norms
in `bn`; layers without variables (padding, pooling, DropBlock, identity)
keep their places in the lists. The heads are those of make_tf2_heads.py.

TensorFlow itself produces the checkpoint keys. The expected TF1 name of
each variable is counted here as the layers are created (TF1 numbers
convolutions and batch norms separately, in creation order), and every
variable's value is written to OUT_DIR/values.bin with OUT_DIR/values.json
keyed by that TF1 name.

    make_tf2_model.py OUT_DIR DEPTH WIDTH SK_RATIO SE_RATIO CIFAR_STEM(0|1) \
        NUM_PROJ_LAYERS PROJ_OUT_DIM NUM_CLASSES
"""
import os
import sys

import numpy as np
import tensorflow as tf

from make_tf2_heads import ProjHead, SupHead, write_values

LAYOUTS = {18: (False, [2, 2, 2, 2]), 34: (False, [3, 4, 6, 3]), 50: (True, [3, 4, 6, 3]),
           101: (True, [3, 4, 23, 3]), 152: (True, [3, 8, 36, 3]), 200: (True, [3, 24, 36, 3])}


class Namer:
    """TF1 names in creation order: separate counters for convs and BNs."""

    def __init__(self):
        self.counts = {"conv2d": 0, "batch_normalization": 0}
        self.names = {}  # id(variable) -> TF1 name

    def take(self, base, layer):
        k = self.counts[base]
        self.counts[base] += 1
        name = "base_model/%s%s" % (base, "" if k == 0 else "_%d" % k)
        for v in layer.weights:
            self.names[id(v)] = name + "/" + v.name.split("/")[-1].split(":")[0]


NAMER = Namer()


def keras_conv(filters, k, cin, bias=False):
    c = tf.keras.layers.Conv2D(filters, k, use_bias=bias)
    c.build((None, None, None, cin))
    NAMER.take("conv2d", c)
    return c


class Placeholder(tf.keras.layers.Layer):
    """Padding, pooling, DropBlock or identity: no variables, one list slot."""


class Conv(tf.keras.layers.Layer):
    def __init__(self, filters, k, cin):
        super().__init__()
        self.conv2d = keras_conv(filters, k, cin)


class BnRelu(tf.keras.layers.Layer):
    def __init__(self, c):
        super().__init__()
        self.bn = tf.keras.layers.BatchNormalization(epsilon=1e-5)
        self.bn.build((None, c))
        NAMER.take("batch_normalization", self.bn)


class SelectiveKernel(tf.keras.layers.Layer):
    def __init__(self, filters, cin, sk_ratio):
        super().__init__()
        self.conv2d_fixed_padding = Conv(2 * filters, 3, cin)
        self.batch_norm_relu = BnRelu(2 * filters)
        mid = max(int(filters * sk_ratio), 32)
        self.conv2d_0 = keras_conv(mid, 1, filters)
        self.batch_norm_relu_1 = BnRelu(mid)
        self.conv2d_1 = keras_conv(2 * filters, 1, mid)


class SqueezeExcite(tf.keras.layers.Layer):
    def __init__(self, filters, cin, se_ratio):
        super().__init__()
        squeezed = max(1, int(filters * se_ratio))
        self.se_reduce = keras_conv(squeezed, 1, cin, bias=True)
        self.se_expand = keras_conv(cin, 1, squeezed, bias=True)


def shortcut(filters_out, cin, strides, sk_ratio):
    layers = []
    if sk_ratio > 0:
        if strides > 1:
            layers.append(Placeholder())
        layers.append(Placeholder())
    layers.append(Conv(filters_out, 1, cin))
    layers.append(BnRelu(filters_out))
    return layers


class BasicBlock(tf.keras.layers.Layer):
    def __init__(self, filters, cin, strides, projection, sk_ratio, se_ratio):
        super().__init__()
        self.shortcut_layers = shortcut(filters, cin, strides, sk_ratio) if projection else []
        self.conv2d_bn_layers = [Conv(filters, 3, cin), BnRelu(filters),
                                 Conv(filters, 3, filters), BnRelu(filters)]
        if se_ratio > 0:
            self.se_layer = SqueezeExcite(filters, filters, se_ratio)
        self.out = filters


class Bottleneck(tf.keras.layers.Layer):
    def __init__(self, filters, cin, strides, projection, sk_ratio, se_ratio):
        super().__init__()
        self.projection_layers = shortcut(4 * filters, cin, strides, sk_ratio) if projection else []
        self.shortcut_dropblock = Placeholder()
        main = [Conv(filters, 1, cin), BnRelu(filters), Placeholder()]
        if sk_ratio > 0:
            main.append(SelectiveKernel(filters, filters, sk_ratio))
        else:
            main += [Conv(filters, 3, filters), BnRelu(filters)]
        main += [Placeholder(), Conv(4 * filters, 1, filters), BnRelu(4 * filters), Placeholder()]
        if se_ratio > 0:
            main.append(SqueezeExcite(filters, 4 * filters, se_ratio))
        self.conv_relu_dropblock_layers = main
        self.out = 4 * filters


class Group(tf.keras.layers.Layer):
    def __init__(self, block, filters, cin, blocks, strides, sk_ratio, se_ratio):
        super().__init__()
        self.layers = []
        for b in range(blocks):
            blk = block(filters, cin, strides if b == 0 else 1, b == 0, sk_ratio, se_ratio)
            self.layers.append(blk)
            cin = blk.out
        self.out = cin


class Resnet(tf.keras.layers.Layer):
    def __init__(self, depth, width, sk_ratio, se_ratio, cifar_stem):
        super().__init__()
        bottleneck, counts = LAYOUTS[depth]
        stem = 64 * width
        if cifar_stem:
            self.initial_conv_relu_max_pool = [Conv(stem, 3, 3), Placeholder(), BnRelu(stem),
                                               Placeholder()]
        elif sk_ratio > 0:
            half = stem // 2
            self.initial_conv_relu_max_pool = [
                Conv(half, 3, 3), BnRelu(half), Conv(half, 3, half), BnRelu(half),
                Conv(stem, 3, half), Placeholder(), BnRelu(stem), Placeholder(), Placeholder()]
        else:
            self.initial_conv_relu_max_pool = [Conv(stem, 7, 3), Placeholder(), BnRelu(stem),
                                               Placeholder(), Placeholder()]
        block = Bottleneck if bottleneck else BasicBlock
        self.block_groups = []
        cin = stem
        for g, n in enumerate(counts):
            grp = Group(block, 64 * width * 2 ** g, cin, n, 1 if g == 0 else 2, sk_ratio, se_ratio)
            self.block_groups.append(grp)
            cin = grp.out
        self.out = cin


class Model(tf.keras.layers.Layer):
    def __init__(self, depth, width, sk_ratio, se_ratio, cifar_stem, layers, out_dim, classes):
        super().__init__()
        self.resnet_model = Resnet(depth, width, sk_ratio, se_ratio, cifar_stem)
        dim = self.resnet_model.out
        self._projection_head = ProjHead(dim, layers, out_dim)
        self._projection_head(tf.zeros([2, dim]))
        self.supervised_head = SupHead(classes)
        self.supervised_head(tf.zeros([2, dim]))


def main():
    out_dir = sys.argv[1]
    depth, width = int(sys.argv[2]), int(sys.argv[3])
    sk_ratio, se_ratio = float(sys.argv[4]), float(sys.argv[5])
    cifar_stem = sys.argv[6] == "1"
    layers, out_dim, classes = (int(a) for a in sys.argv[7:10])
    os.makedirs(out_dir, exist_ok=True)
    model = Model(depth, width, sk_ratio, se_ratio, cifar_stem, layers, out_dim, classes)
    rng = np.random.default_rng(11)
    backbone = []
    for v in model.resnet_model.weights:
        v.assign(rng.standard_normal(v.shape).astype(np.float32))
        backbone.append((NAMER.names[id(v)], v))
    ckpt = tf.train.Checkpoint(model=model, global_step=tf.Variable(7, dtype=tf.int64))
    prefix = ckpt.write(os.path.join(out_dir, "ckpt-1"))
    write_values(out_dir, prefix,
                 ((name, v.numpy(), {"shape": list(v.shape)}) for name, v in backbone))
    print(prefix)


if __name__ == "__main__":
    main()
