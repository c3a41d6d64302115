"""Prints what TensorBoard reads from the event files of one directory.

Usage: read_events.py DIR

Output (JSON on stdout):
  {"file_version": 2.0,
   "scalars": {tag: [[step, value], ...]},
   "images": {tag: [{"step", "width", "height", "mode", "pixels"}]},
   "events_per_file": {file name: number of events}}
"""

import io
import json
import os
import sys

from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import event_file_loader


def main(directory):
    acc = ea.EventAccumulator(
        directory, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    scalars = {
        tag: [[e.step, e.value] for e in acc.Scalars(tag)]
        for tag in tags[ea.SCALARS]
    }
    images = {}
    for tag in tags[ea.IMAGES]:
        images[tag] = []
        for e in acc.Images(tag):
            img = Image.open(io.BytesIO(e.encoded_image_string))
            img.load()
            images[tag].append(
                {
                    "step": e.step,
                    "width": e.width,
                    "height": e.height,
                    "mode": img.mode,
                    "size": list(img.size),
                    "pixels": list(img.tobytes()),
                }
            )
    per_file = {}
    for name in sorted(os.listdir(directory)):
        if "tfevents" in name:
            loader = event_file_loader.EventFileLoader(os.path.join(directory, name))
            per_file[name] = sum(1 for _ in loader.Load())
    json.dump(
        {
            "file_version": acc.file_version,
            "scalars": scalars,
            "images": images,
            "events_per_file": per_file,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: read_events.py DIR")
    main(sys.argv[1])
