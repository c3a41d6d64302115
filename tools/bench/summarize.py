#!/usr/bin/env python3
"""Prints the table of a `tools/bench/run` result folder: per configuration
and side, images/s (median over all timed steps of all rounds, min-max),
the per-round medians, compile seconds, memory, FLOPs per image, % of the
measured peak and the ratios against the JAX side."""

import argparse
import json
import os
import statistics
import sys

import glob


def read(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def gib(b):
    return f"{b / 2**30:.2f}" if b else "-"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


def side_stats(lines):
    steps = [x for x in lines if x.get("event") == "step"]
    sums = [x for x in lines if x.get("event") == "summary"]
    if not sums:
        return None
    batch = sums[0]["batch"]
    ips = [batch / x["seconds"] for x in steps]
    loads = [float(x["loadavg"].split()[0]) for x in steps if x.get("loadavg")]
    first = sums[0]
    temp = (first["memory"].get("compiled") or {}).get("temp_size_in_bytes")
    return {
        "batch": batch,
        "ips_median": statistics.median(ips),
        "ips_min": min(ips),
        "ips_max": max(ips),
        "round_medians": [s["images_per_s"]["median"] for s in sums],
        "compile_s": statistics.median(s["compile_s"] for s in sums),
        "rss": max(s["memory"]["peak_rss_bytes"] or 0 for s in sums),
        "temp": temp,
        "xla_flops": first["flops_per_image"]["xla_cost_analysis"],
        "analytic": first["flops_per_image"]["analytic"],
        "load": statistics.mean(loads) if loads else None,
        "steps": len(ips),
        "options": first.get("options", first.get("xla_flags")),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--configs", default="cifar_r18:64 cifar_r18:256 r50_224:16")
    ap.add_argument("--precisions", default="float32 bfloat16",
                    help="--precision values run (bfloat16 results are tagged <config>_b<batch>_bf16)")
    ap.add_argument("--ref_peak", type=float, default=289e9,
                    help="reference peak FLOP/s (BENCHMARKS.md: numpy 4096^3, both cores, idle machine); "
                         "0 leaves the column out")
    args = ap.parse_args()
    peaks = {x["side"]: x["peak_flops_per_s"] for x in read(os.path.join(args.folder, "peak.jsonl"))}
    peak = peaks.get("simclr")
    print(f"peak f32 FLOP/s (N^3 dot): simclr plugin {peak / 1e9:.0f} G" if peak else "peak: -",
          end="")
    print(f", jax {peaks['jax'] / 1e9:.0f} G" if "jax" in peaks else "")
    if args.ref_peak:
        print(f"reference peak: {args.ref_peak / 1e9:.0f} G")
    print()
    print("| config | side | img/s median (min-max) | per-round medians | compile s | peak RSS GiB "
          "| XLA temp GiB | GFLOP/img XLA / analytic | % of measured peak | % of ref peak | mean load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    options = {}
    by_precision = {}
    runs = []
    for c in args.configs.split():
        name, batch = c.split(":")[:2]
        for precision in args.precisions.split():
            runs.append((name, batch, precision))
    for name, batch, precision in runs:
        tag = f"{name}_b{batch}" + ("" if precision == "float32" else "_bf16")
        label = f"{name} B{batch}" + ("" if precision == "float32" else " bf16")
        got = {}
        found = sorted({os.path.basename(p)[len(tag) + 1:-len(".jsonl")]
                        for p in glob.glob(os.path.join(args.folder, f"{tag}.*.jsonl"))})
        sides = [x for x in ("simclr",) if x in found] + [x for x in found if x not in ("simclr", "jax")]
        sides += [x for x in ("jax",) if x in found]
        for side in sides:
            s = side_stats(read(os.path.join(args.folder, f"{tag}.{side}.jsonl")))
            if s is None:
                continue
            got[side] = s
            options.setdefault(side, s["options"])
            frac = f"{100 * s['analytic'] * s['ips_median'] / peak:.0f} %" if peak else "-"
            ref = f"{100 * s['analytic'] * s['ips_median'] / args.ref_peak:.0f} %" if args.ref_peak else "-"
            xf = f"{s['xla_flops'] / 1e9:.2f}" if s["xla_flops"] else "-"
            rm = ", ".join(f"{v:.2f}" for v in s["round_medians"])
            load = f"{s['load']:.2f}" if s["load"] is not None else "-"
            print(f"| {label} | {side} | {s['ips_median']:.2f} ({s['ips_min']:.2f}-{s['ips_max']:.2f}) "
                  f"| {rm} | {s['compile_s']:.1f} | {gib(s['rss'])} | {gib(s['temp'])} "
                  f"| {xf} / {s['analytic'] / 1e9:.2f} | {frac} | {ref} | {load} |")
        if "jax" in got:
            j = got["jax"]
            for side in sides:
                if side != "jax" and side in got:
                    s = got[side]
                    per_round = ", ".join(
                        f"{a / b:.2f}" for a, b in zip(s["round_medians"], j["round_medians"]))
                    ratios.append(
                        f"| {label} | {side}/jax | {s['ips_median'] / j['ips_median']:.2f} "
                        f"| {per_round} | {s['compile_s'] / j['compile_s']:.2f} "
                        f"| {s['rss'] / j['rss']:.2f} | {ratio(s['temp'], j['temp'])} |")
        for side in sides:
            if side in ("simclr", "jax") or side not in got or "simclr" not in got:
                continue
            v, s = got[side], got["simclr"]
            per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(v["round_medians"], s["round_medians"]))
            ratios.append(f"| {label} | {side}/simclr | {v['ips_median'] / s['ips_median']:.2f} "
                          f"| {per_round} | {v['compile_s'] / s['compile_s']:.2f} | {v['rss'] / s['rss']:.2f} "
                          f"| {ratio(v['temp'], s['temp'])} |")
        by_precision[(name, batch, precision)] = got
    for (name, batch, precision), got in by_precision.items():
        base = by_precision.get((name, batch, "float32"))
        if precision == "float32" or not base:
            continue
        for side, v in got.items():
            s = base.get(side)
            if not s:
                continue
            per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(v["round_medians"], s["round_medians"]))
            ratios.append(f"| {name} B{batch} | {side} {precision}/float32 | "
                          f"{v['ips_median'] / s['ips_median']:.2f} | {per_round} "
                          f"| {v['compile_s'] / s['compile_s']:.2f} | {v['rss'] / s['rss']:.2f} "
                          f"| {ratio(v['temp'], s['temp'])} |")
    if ratios:
        print()
        print("| config | ratio | img/s (pooled medians) | img/s per round | compile s | peak RSS "
              "| XLA temp |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(ratios))
    print()
    for side, o in options.items():
        print(f"{side} options: {json.dumps(o)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
