"""TensorFlow's 2×2 average pool with 'SAME' padding (the SK shortcut's
pool at stride 1) and at stride 2, on fixed random inputs.

    avg_pool.py OUT_DIR

Writes OUT_DIR/<case>_x.npy and OUT_DIR/<case>_y.npy (float32, NHWC) for
the cases s1_7x6 (stride 1 over 7×6), s2_7x6 (stride 2) and s1_56 (stride 1
over 56×56, the size of ResNet's first block group at 224²), and prints
OUT_DIR.
"""
import os
import sys

import numpy as np
import tensorflow as tf

CASES = {
    "s1_7x6": ((2, 7, 6, 3), 1),
    "s2_7x6": ((2, 7, 6, 3), 2),
    "s1_56": ((1, 56, 56, 4), 1),
}


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[0]
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(7)
    for name, (shape, stride) in CASES.items():
        x = rng.standard_normal(shape).astype(np.float32)
        y = tf.nn.avg_pool2d(x, ksize=2, strides=stride, padding="SAME").numpy()
        np.save(os.path.join(out, f"{name}_x.npy"), x)
        np.save(os.path.join(out, f"{name}_y.npy"), y.astype(np.float32))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
