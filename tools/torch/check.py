"""Checks simclr's PyTorch conversions with real PyTorch (run it through
tools/torch/run, which provides the pinned venv).

    check.py compare WEIGHTS.safetensors FEATURES_DIR
        Builds the model that WEIGHTS.json describes (simclr_resnet.py, or
        torchvision's resnetN for --layout=torchvision), loads WEIGHTS with
        strict=True, runs it in eval mode on FEATURES_DIR/input.npy (what
        `simclr features --outputs=input,...` wrote) and compares its
        final_avg_pool, proj_head_output and logits_sup with simclr's .npy
        files. Prints JSON with the relative errors (max |a-b| / max |b|);
        exits 1 above 1e-4. For torchvision it also reports the error of the
        unmodified model (its max pool pads both sides) and checks the model
        with the one-line max-pool change.
    check.py torchvision_state_dict DEPTH OUT.safetensors
        Writes the state dict of a torchvision resnetDEPTH with random
        weights, random BN statistics and num_batches_tracked = 7.
    check.py load_torchvision DEPTH WEIGHTS.safetensors
        Loads WEIGHTS into torchvision's resnetDEPTH with strict=True.
"""
import json
import os
import sys

import numpy as np
import safetensors.torch
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclr_resnet import SimCLRResNet  # noqa: E402

TOLERANCE = 1e-4


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise SystemExit("shape %s != simclr's %s" % (a.shape, b.shape))
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def torchvision_model(depth, num_classes):
    # Imported here: torchvision's import costs twice torch's (about 7 s of
    # CPU), and most checks do not need it.
    import torchvision

    model = getattr(torchvision.models, "resnet%d" % depth)(
        weights=None, num_classes=num_classes or 1000)
    if not num_classes:
        model.fc = nn.Identity()
    return model


def torchvision_forward(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    h = torch.flatten(model.avgpool(x), 1)
    return {"final_avg_pool": h, "logits_sup": model.fc(h)}


def compare(weights, features):
    arch = json.load(open(os.path.splitext(weights)[0] + ".json"))
    state = safetensors.torch.load_file(weights)
    x = torch.from_numpy(np.load(os.path.join(features, "input.npy"))).permute(0, 3, 1, 2)
    report = {"layout": arch["layout"], "resnet_depth": arch["resnet_depth"],
              "width_multiplier": arch["width_multiplier"], "sk_ratio": arch["sk_ratio"],
              "image_size": list(x.shape[2:]), "errors": {}}
    with torch.no_grad():
        if arch["layout"] == "torchvision":
            with torch.device("meta"):  # no random initialisation: every tensor is loaded
                model = torchvision_model(arch["resnet_depth"], arch["num_classes"])
            model.load_state_dict(state, strict=True, assign=True)
            model.eval()
            plain = torchvision_forward(model, x)
            # The one-line change: TF 'SAME' pads only the end of an even size.
            model.maxpool = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(3, 2))
            out = torchvision_forward(model, x)
            report["unmodified_torchvision_errors"] = {}
        else:
            with torch.device("meta"):
                model = SimCLRResNet.from_arch(arch)
            model.load_state_dict(state, strict=True, assign=True)
            model.eval()
            out, plain = model(x), None
    names = ["final_avg_pool", "proj_head_output", "logits_sup"]
    ok = True
    for name in names:
        path = os.path.join(features, name + ".npy")
        if name not in out:
            continue
        want = np.load(path)
        if name == "logits_sup" and not arch.get("num_classes"):
            continue
        err = rel_err(out[name].numpy(), want)
        report["errors"][name] = err
        ok &= err <= TOLERANCE
        if plain is not None:
            report["unmodified_torchvision_errors"][name] = rel_err(plain[name].numpy(), want)
    if not report["errors"]:
        ok = False
    report["ok"] = ok
    print(json.dumps(report))
    if not ok:
        sys.exit(1)


def torchvision_state_dict(depth, out):
    torch.manual_seed(0)
    model = torchvision_model(depth, 1000)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
            m.num_batches_tracked.fill_(7)
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    print(json.dumps({"tensors": len(model.state_dict())}))


def load_torchvision(depth, weights):
    state = safetensors.torch.load_file(weights)
    num_classes = state["fc.weight"].shape[0] if "fc.weight" in state else None
    with torch.device("meta"):
        model = torchvision_model(depth, num_classes)
    model.load_state_dict(state, strict=True, assign=True)
    print(json.dumps({"loaded": len(state)}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "compare":
        compare(*args)
    elif cmd == "torchvision_state_dict":
        torchvision_state_dict(int(args[0]), args[1])
    elif cmd == "load_torchvision":
        load_torchvision(int(args[0]), args[1])
    else:
        raise SystemExit("unknown command %s" % cmd)
