"""Decodes every *.jpg in a folder the way SimCLR's input pipeline does
(tf.io.decode_image with channels=3, through tensorflow_datasets; TF's
default JPEG settings), for simclr's decoder tests.

    decode_jpeg.py DIR

Writes DIR/NAME.jpg.tf.raw: the image as uint8 HWC bytes, and prints one
line per file: NAME HEIGHT WIDTH.
"""
import os
import sys

import tensorflow as tf

folder = sys.argv[1]
for name in sorted(os.listdir(folder)):
    if not name.endswith(".jpg"):
        continue
    with open(os.path.join(folder, name), "rb") as f:
        data = f.read()
    img = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    with open(os.path.join(folder, name + ".tf.raw"), "wb") as f:
        f.write(img.tobytes())
    print(name, img.shape[0], img.shape[1])
