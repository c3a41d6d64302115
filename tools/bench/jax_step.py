#!/usr/bin/env python3
"""Reference JAX implementation of the SimCLR pretraining step that
`simclr bench` times, for a side-by-side comparison.

The step: two views of B random images through a post-activation ResNet
(NHWC/HWIO; ResNet-18 with the CIFAR stem, or ResNet-50 with the 7x7/2 stem
and 3x3/2 'SAME' max pool), batch norm in training mode over both views
(eps 1e-5, biased variance, moving averages with momentum 0.9), projection
head D -> D (BN with beta, ReLU) -> 128 (BN without beta), NT-Xent with
hidden_norm, tau 0.5 and the 1e9 self-mask (loss = loss_a + loss_b), LARS
(momentum 0.9, eta 0.001, weight decay 1e-4 added to the gradient,
batch-norm parameters excluded from decay and trust ratio, lr inside the
velocity), learning rate from the step counter (linear warm-up, cosine).
f32 throughout. Jitted with every piece of state donated.

Prints JSON lines: one per timed step, then a summary with the same fields
as `simclr bench`.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

BN_EPS = 1e-5
BN_DECAY = 0.9
LARGE_NUM = 1e9
LARS_EETA = 0.001
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
TEMPERATURE = 0.5
EXCLUDE = ("batch_normalization", "bias", "head_supervised")

CONFIGS = {
    # name: (depth, image size, projection output width)
    "cifar_r18": (18, 32, 128),
    "r50_224": (50, 224, 128),
    "tiny": (18, 8, 16),
}
LAYOUTS = {18: ((2, 2, 2, 2), False), 50: ((3, 4, 6, 3), True)}


# ----------------------------------------------------------------------------
# Model definition: a list of layer specs is built once; parameters live in a
# flat dict keyed by TF-style names so the optimizer's exclusions are by name.


class Spec:
    """Collects variable shapes and initialisers while the model is laid out."""

    def __init__(self):
        self.params = {}  # name -> (shape, init kind)
        self.bn_stats = {}  # name -> (shape, init kind)
        self.count = {}

    def unique(self, kind):
        i = self.count.get(kind, 0)
        self.count[kind] = i + 1
        return kind if i == 0 else f"{kind}_{i}"

    def conv(self, k, cin, cout):
        name = "base_model/" + self.unique("conv2d")
        self.params[name + "/kernel"] = ((k, k, cin, cout), ("conv", k * k * cin))
        return name

    def bn(self, scope, c, zero_gamma=False, center=True):
        # TF1 names: the backbone's batch norms are numbered in creation
        # order, each head layer has its own unnumbered one.
        bn = "batch_normalization" if scope.startswith("head") else self.unique("batch_normalization")
        name = scope + "/" + bn
        self.params[name + "/gamma"] = ((c,), ("zeros" if zero_gamma else "ones", 0))
        if center:
            self.params[name + "/beta"] = ((c,), ("zeros", 0))
        self.bn_stats[name + "/moving_mean"] = ((c,), ("zeros", 0))
        self.bn_stats[name + "/moving_variance"] = ((c,), ("ones", 0))
        return name

    def dense(self, scope, cin, cout):
        name = scope + "/dense"
        self.params[name + "/kernel"] = ((cin, cout), ("normal", 0))
        return name


def layout_model(depth, image_size, proj_out):
    """Returns (spec, program): program is a list of ops interpreted by forward()."""
    spec = Spec()
    prog = []
    layout, bottleneck = LAYOUTS[depth]
    c = 64
    if image_size <= 32:
        prog.append(("conv", spec.conv(3, 3, c), 1))
        prog.append(("bn", spec.bn("base_model", c), True))
    else:
        prog.append(("conv", spec.conv(7, 3, c), 2))
        prog.append(("bn", spec.bn("base_model", c), True))
        prog.append(("maxpool",))
    for stage, blocks in enumerate(layout):
        f = 64 << stage
        for i in range(blocks):
            s = (1 if stage == 0 else 2) if i == 0 else 1
            out = 4 * f if bottleneck else f
            block = {"stride": s, "short": None, "main": []}
            if i == 0:
                conv = spec.conv(1, c, out)
                block["short"] = (conv, spec.bn("base_model", out))
            if bottleneck:
                block["main"] = [
                    (spec.conv(1, c, f), 1, spec.bn("base_model", f), True),
                    (spec.conv(3, f, f), s, spec.bn("base_model", f), True),
                    (spec.conv(1, f, out), 1, spec.bn("base_model", out, zero_gamma=True), False),
                ]
            else:
                block["main"] = [
                    (spec.conv(3, c, f), s, spec.bn("base_model", f), True),
                    (spec.conv(3, f, f), 1, spec.bn("base_model", f, zero_gamma=True), False),
                ]
            prog.append(("block", block))
            c = out
    prog.append(("avgpool",))
    d = c
    prog.append(("dense", spec.dense("head_contrastive/nl_0", d, d)))
    prog.append(("bn", spec.bn("head_contrastive/nl_0", d), True))
    prog.append(("dense", spec.dense("head_contrastive/nl_1", d, proj_out)))
    prog.append(("bn", spec.bn("head_contrastive/nl_1", proj_out, center=False), False))
    return spec, prog


def init_values(entries, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, (kind, fan_in)) in entries.items():
        if kind == "zeros":
            v = np.zeros(shape, np.float32)
        elif kind == "ones":
            v = np.ones(shape, np.float32)
        elif kind == "normal":
            v = rng.normal(0.0, 0.01, shape).astype(np.float32)
        else:  # truncated normal at 2 sigma, TF variance scaling (scale 1, fan in)
            sigma = math.sqrt(1.0 / fan_in) / 0.87962566103423978
            v = rng.normal(0.0, 1.0, shape)
            bad = np.abs(v) > 2.0
            while bad.any():
                v[bad] = rng.normal(0.0, 1.0, bad.sum())
                bad = np.abs(v) > 2.0
            v = (v * sigma).astype(np.float32)
        out[name] = v
    return out


# Arithmetic of the network (--precision): float32, or bfloat16 with f32
# parameters converted at use, f32 batch-norm statistics and f32 loss, as
# simclr's --precision=bfloat16.
COMPUTE = jnp.float32


def conv2d(x, w, stride):
    k = w.shape[0]
    lo = (k - 1) // 2
    hi = k - 1 - lo
    return lax.conv_general_dilated(
        x.astype(COMPUTE), w.astype(COMPUTE), (stride, stride), [(lo, hi), (lo, hi)],
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def batch_norm(x, params, stats, new_stats, name, relu):
    out_type = x.dtype
    x = x.astype(jnp.float32)
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    centered = x - mean
    var = jnp.mean(centered * centered, axis=axes)
    new_stats[name + "/moving_mean"] = (
        stats[name + "/moving_mean"] * BN_DECAY + lax.stop_gradient(mean) * (1 - BN_DECAY))
    new_stats[name + "/moving_variance"] = (
        stats[name + "/moving_variance"] * BN_DECAY + lax.stop_gradient(var) * (1 - BN_DECAY))
    y = centered * (lax.rsqrt(var + BN_EPS) * params[name + "/gamma"])
    beta = params.get(name + "/beta")
    if beta is not None:
        y = y + beta
    return (jax.nn.relu(y) if relu else y).astype(out_type)


def forward(prog, params, stats, x):
    new_stats = {}
    for op in prog:
        kind = op[0]
        if kind == "conv":
            x = conv2d(x, params[op[1] + "/kernel"], op[2])
        elif kind == "bn":
            x = batch_norm(x, params, stats, new_stats, op[1], op[2])
        elif kind == "maxpool":
            x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")
        elif kind == "block":
            blk = op[1]
            if blk["short"] is not None:
                conv, bn = blk["short"]
                short = conv2d(x, params[conv + "/kernel"], blk["stride"])
                short = batch_norm(short, params, stats, new_stats, bn, False)
            else:
                short = x
            h = x
            for conv, s, bn, relu in blk["main"]:
                h = conv2d(h, params[conv + "/kernel"], s)
                h = batch_norm(h, params, stats, new_stats, bn, relu)
            x = jax.nn.relu(h + short)
        elif kind == "avgpool":
            x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        elif kind == "dense":
            x = x.astype(COMPUTE) @ params[op[1] + "/kernel"].astype(COMPUTE)
    return x.astype(jnp.float32), new_stats


def nt_xent(z):
    two_n = z.shape[0]
    n = two_n // 2
    z = z * lax.rsqrt(jnp.maximum(jnp.sum(z * z, axis=1, keepdims=True), 1e-12))
    z1, z2 = z[:n], z[n:]
    mask = jnp.eye(n, dtype=jnp.float32)
    ab = (z1 @ z2.T) / TEMPERATURE
    ba = (z2 @ z1.T) / TEMPERATURE
    aa = (z1 @ z1.T) / TEMPERATURE - mask * LARGE_NUM
    bb = (z2 @ z2.T) / TEMPERATURE - mask * LARGE_NUM
    targets = jnp.concatenate([mask, jnp.zeros_like(mask)], axis=1)

    def xent(logits):
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.sum(targets * logits, axis=1))

    loss = xent(jnp.concatenate([ab, aa], 1)) + xent(jnp.concatenate([ba, bb], 1))
    ab_m = lax.stop_gradient(ab)
    acc = jnp.mean((jnp.argmax(ab_m, axis=1) == jnp.arange(n)).astype(jnp.float32))
    p = jax.nn.softmax(ab_m, axis=1)
    entropy = jnp.mean(-jnp.sum(p * jnp.log(p + 1e-8), axis=1))
    return loss, acc, entropy


def learning_rate(step, scaled_lr, warmup, total):
    s = step.astype(jnp.float32)
    t = float(max(total - warmup, 1))
    progress = jnp.clip(s - warmup, 0.0, t)
    cosine = scaled_lr * 0.5 * (1.0 + jnp.cos(math.pi * progress / t))
    if warmup <= 0:
        return cosine
    return jnp.where(s < warmup, s * (scaled_lr / warmup), cosine)


def excluded(name):
    return any(e in name for e in EXCLUDE)


def make_step(prog, scaled_lr, warmup=10, total=1000):
    def loss_fn(params, stats, images):
        z, new_stats = forward(prog, params, stats, images)
        loss, acc, entropy = nt_xent(z)
        return loss, (new_stats, acc, entropy)

    def step(params, stats, velocity, global_step, images):
        (loss, (new_stats, acc, entropy)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(params, stats, images)
        lr = learning_rate(global_step, scaled_lr, warmup, total)
        new_params, new_velocity = {}, {}
        for name, w in params.items():
            g = grads[name]
            if excluded(name):
                scaled = lr
            else:
                g = g + WEIGHT_DECAY * w
                wn = jnp.sqrt(jnp.sum(w * w))
                gn = jnp.sqrt(jnp.sum(g * g))
                trust = jnp.where((wn > 0) & (gn > 0), LARS_EETA * wn / jnp.maximum(gn, 1e-30), 1.0)
                scaled = lr * trust
            v = MOMENTUM * velocity[name] + scaled * g
            new_velocity[name] = v
            new_params[name] = w - v
        nonfinite = (~jnp.isfinite(loss)).astype(jnp.float32)
        zero = jnp.zeros((), jnp.float32)
        metrics = jnp.stack([loss, loss, acc, entropy, zero, zero, zero, lr, nonfinite])
        return new_params, new_stats, new_velocity, global_step + 1, metrics

    return step


def peak_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def forward_macs(depth, image_size, proj_out):
    layout, bottleneck = LAYOUTS[depth]
    down = lambda r: (r + 1) // 2  # noqa: E731
    conv = lambda r, k, cin, cout: r * r * k * k * cin * cout  # noqa: E731
    r = image_size
    c = 64
    if image_size <= 32:
        macs = conv(r, 3, 3, c)
    else:
        r = down(r)
        macs = conv(r, 7, 3, c)
        r = down(r)
    for stage, blocks in enumerate(layout):
        f = 64 << stage
        for i in range(blocks):
            s = 2 if (i == 0 and stage > 0) else 1
            ro = down(r) if s == 2 else r
            if bottleneck:
                macs += conv(r, 1, c, f) + conv(ro, 3, f, f) + conv(ro, 1, f, 4 * f)
                if i == 0:
                    macs += conv(ro, 1, c, 4 * f)
                c = 4 * f
            else:
                macs += conv(ro, 3, c, f) + conv(ro, 3, f, f)
                if i == 0:
                    macs += conv(ro, 1, c, f)
                c = f
            r = ro
    macs += c * c + c * proj_out
    return float(macs)


def cost_flops(compiled):
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else None
    if not ca:
        return None
    return ca.get("flops")


def memory_stats(compiled):
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    if m is None:
        return None
    keys = ["generated_code_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
            "alias_size_in_bytes", "temp_size_in_bytes", "peak_memory_in_bytes"]
    return {k: getattr(m, k) for k in keys if hasattr(m, k)}


def measure_peak(n):
    x = jnp.asarray(np.full((n, n), 0.01, np.float32))
    f = jax.jit(lambda a, b: a @ b)
    best = float("inf")
    for i in range(12):
        t = time.perf_counter()
        f(x, x).block_until_ready()
        dt = time.perf_counter() - t
        if i >= 2:
            best = min(best, dt)
    return 2.0 * n ** 3 / best


def load_init(folder, params, bn_stats):
    """Replaces every variable by the value simclr wrote (same TF1 names)."""
    with open(os.path.join(folder, "index.json")) as f:
        index = json.load(f)
    for table in (params, bn_stats):
        for name in table:
            if name not in index:
                raise SystemExit(f"--init_from {folder}: no value for {name}")
            v = np.load(os.path.join(folder, index[name]))
            if v.shape != table[name].shape:
                raise SystemExit(f"--init_from: {name} is {v.shape} there, {table[name].shape} here")
            table[name] = jnp.asarray(v)


def xorshift_images(n, size, seed):
    """The images of `simclr bench` (xorshift64, 24-bit uniform in [0, 1))."""
    mask = (1 << 64) - 1
    x = ((seed * 0x9E3779B97F4A7C15) & mask) | 1
    out = np.empty(n * size * size * 3, np.float32)
    for i in range(out.size):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        out[i] = (x >> 40) / float(1 << 24)
    return out.reshape(n, size, size, 3)


def stats(xs):
    v = sorted(xs)
    n = len(v)
    med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return {"median": med, "min": v[0], "max": v[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cifar_r18")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peak", action="store_true", help="also time an N^3 f32 dot")
    ap.add_argument("--peak_n", type=int, default=2048)
    ap.add_argument("--peak_only", action="store_true", help="only time the dot")
    ap.add_argument("--dump_hlo", default=None, help="write the optimized HLO text here")
    ap.add_argument("--init_from", default=None,
                    help="start from the variables `simclr bench --save_init DIR` wrote")
    ap.add_argument("--same_images", action="store_true",
                    help="the random images simclr bench uses (its xorshift), not numpy's")
    ap.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                    help="bfloat16: bf16 convolutions, matmuls and activations; f32 parameters, "
                         "batch-norm statistics, loss and optimizer")
    args = ap.parse_args()
    global COMPUTE
    COMPUTE = jnp.bfloat16 if args.precision == "bfloat16" else jnp.float32
    if args.peak_only:
        print(json.dumps({"event": "peak", "side": "jax", "peak_flops_per_s": measure_peak(args.peak_n),
                          "source": f"{args.peak_n}^3 f32 dot through jax",
                          "xla_flags": os.environ.get("XLA_FLAGS", ""), "loadavg": loadavg()}))
        return 0
    depth, size, proj_out = CONFIGS[args.config]
    batch = args.batch or {"r50_224": 16, "tiny": 2}.get(args.config, 64)

    spec, prog = layout_model(depth, size, proj_out)
    params = {k: jnp.asarray(v) for k, v in init_values(spec.params, args.seed).items()}
    bn_stats = {k: jnp.asarray(v) for k, v in init_values(spec.bn_stats, args.seed).items()}
    velocity = {k: jnp.zeros_like(v) for k, v in params.items()}
    global_step = jnp.zeros((), jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
    if args.init_from:
        load_init(args.init_from, params, bn_stats)
    if args.same_images:
        images = xorshift_images(2 * batch, size, args.seed)
    else:
        rng = np.random.default_rng(args.seed)
        images = rng.random((2 * batch, size, size, 3), dtype=np.float32)

    step = make_step(prog, 0.3 * batch / 256.0)
    jitted = jax.jit(step, donate_argnums=(0, 1, 2, 3))
    t = time.perf_counter()
    lowered = jitted.lower(params, bn_stats, velocity, global_step, images)
    trace_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    if args.dump_hlo:
        with open(args.dump_hlo, "w") as f:
            f.write(compiled.as_text())

    state = (params, bn_stats, velocity, global_step)
    times = []
    loss = float("nan")
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        *state, metrics = compiled(*state, images)
        loss = float(metrics[0])  # host sync, like simclr's metrics download
        dt = time.perf_counter() - t
        if i >= args.warmup:
            times.append(dt)
            print(json.dumps({"event": "step", "side": "jax", "step": i - args.warmup,
                              "seconds": dt, "loss": loss, "loadavg": loadavg()}), flush=True)

    st = stats(times)
    ips = stats([batch / x for x in times])
    flops = cost_flops(compiled)
    analytic = forward_macs(depth, size, proj_out) * 12.0
    peak = measure_peak(args.peak_n) if args.peak else None
    print(json.dumps({
        "event": "summary",
        "side": "jax",
        "config": args.config,
        "precision": args.precision,
        "batch": batch,
        "views": 2,
        "jax_version": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "trace_s": trace_s,
        "compile_s": compile_s,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "step_s": st,
        "images_per_s": ips,
        "memory": {"compiled": memory_stats(compiled), "peak_rss_bytes": peak_rss_bytes()},
        "flops_per_image": {"xla_cost_analysis": flops / batch if flops else None,
                            "analytic": analytic},
        "achieved_flops_per_s": analytic * ips["median"],
        "peak_flops_per_s": ({"value": peak, "source": f"{args.peak_n}^3 f32 dot through jax"}
                             if peak else None),
        "fraction_of_peak": analytic * ips["median"] / peak if peak else None,
        "final_loss": loss,
        "loadavg": loadavg(),
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
