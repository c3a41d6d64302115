"""Writes a TFDS-style cifar10 shard with real TensorFlow, for the reader test.

usage: write_tfrecord.py OUT_DIR N

Creates OUT_DIR/cifar10/3.0.2/cifar10-train.tfrecord-00000-of-00001 with N
tf.train.Example records {image: PNG bytes of a 32x32x3 image, label: int64,
id: bytes}, and OUT_DIR/expected.json with each record's label and the sum of
its pixel values, so the Rust side can check what it decoded.
"""
import json
import os
import sys

import numpy as np
import tensorflow as tf


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    shard_dir = os.path.join(out, "cifar10", "3.0.2")
    os.makedirs(shard_dir, exist_ok=True)
    path = os.path.join(shard_dir, "cifar10-train.tfrecord-00000-of-00001")
    expected = []
    with tf.io.TFRecordWriter(path) as w:
        for i in range(n):
            img = ((np.arange(32 * 32 * 3).reshape(32, 32, 3) * (i + 3)) % 251).astype(np.uint8)
            png = tf.io.encode_png(img).numpy()
            label = (i * 7) % 10
            ex = tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"train_%05d" % i])),
            }))
            w.write(ex.SerializeToString())
            expected.append({"label": label, "pixel_sum": int(img.astype(np.int64).sum())})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
