"""Parameters, MACs, FLOPs and latency of DARTS_V2 at its CIFAR-10 size.

Builds the DARTS (V2) evaluation network of Liu et al. ("DARTS:
Differentiable Architecture Search", ICLR 2019) with the paper's CIFAR-10
settings (36 initial channels, 20 cells, 32x32x3 inputs, 10 classes, no
auxiliary head) and prints what `keras_nas.estimation.hardware` measures:
trainable and total weights, MACs and FLOPs per image (by cell), and the
inference latency at batch sizes 1 and 32. Reference lines, not measured
here: the paper's 3.3M parameters and the ~530M multiply-adds commonly
reported for DARTS on CIFAR-10.

Then, as a check of the counter on plain Keras convolutional networks, the
same counts for three `keras.applications` models at 224x224x3 (random
weights, nothing downloaded) next to their papers' figures: MobileNet
(Howard et al., 2017: 569M mult-adds, 4.2M parameters), MobileNetV2
(Sandler et al., CVPR 2018: 300M, 3.4M) and ResNet-50 (He et al., CVPR
2016: 3.8 x 10^9 multiply-adds, reported as FLOPs).

Usage:

    python benchmarks/hardware_metrics.py
    python benchmarks/hardware_metrics.py --no-latency   # counts only
    KERAS_BACKEND=jax python benchmarks/hardware_metrics.py --runs 20
"""

import argparse
import collections
import os

PAPER_PARAMS = 3.3e6
REPORTED_MACS = 530e6
#: keras.applications name -> (paper MACs, paper parameters or None).
APPLICATIONS = {
    "MobileNet": (569e6, 4.2e6),
    "MobileNetV2": (300e6, 3.4e6),
    "ResNet50": (3.8e9, None),
}


def applications():
    """Counts of keras.applications models against their papers."""
    import keras

    from keras_nas.estimation import hardware

    for name, (paper_macs, paper_params) in APPLICATIONS.items():
        model = getattr(keras.applications, name)(
            weights=None, input_shape=(224, 224, 3)
        )
        costs = hardware.profile_model(model)
        macs = sum(c.macs for c in costs)
        params = hardware.count_params(model, trainable_only=True)
        uncounted = sorted({c.class_name for c in costs if not c.counted})
        reference = f"paper {paper_macs / 1e6:,.0f}M"
        if paper_params:
            reference += f", {paper_params / 1e6:.1f}M params"
        print(
            f"{name:<12} MACs {macs / 1e6:>8,.1f}M "
            f"({100 * (macs / paper_macs - 1):+.1f}% vs {reference}); "
            f"trainable params {params / 1e6:.2f}M; "
            f"uncounted: {uncounted or 'none'}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--filters", type=int, default=36)
    parser.add_argument("--num-cells", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--no-latency", action="store_true", help="counts only")
    args = parser.parse_args()

    import keras

    from keras_nas.blocks import DARTS_V2, build_network
    from keras_nas.estimation import hardware

    size = args.image_size
    model = build_network(
        DARTS_V2,
        (size, size, 3),
        10,
        filters=args.filters,
        num_cells=args.num_cells,
    )
    trainable = hardware.count_params(model, trainable_only=True)
    total = hardware.count_params(model)
    costs = hardware.profile_model(model)
    macs = sum(c.macs for c in costs)
    flops = sum(c.flops for c in costs)
    uncounted = sorted({c.class_name for c in costs if not c.counted})
    by_part = collections.defaultdict(int)
    for c in costs:
        by_part[c.path.split("/")[0]] += c.macs

    print(
        f"DARTS_V2, {args.filters} filters, {args.num_cells} cells, "
        f"{size}x{size}x3, backend {keras.backend.backend()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"trainable params  {trainable:>14,d}  ({trainable / 1e6:.3f}M)")
    print(f"all weights       {total:>14,d}  (+ batch-norm moving stats)")
    print(f"  reference: paper {PAPER_PARAMS / 1e6:.1f}M params")
    print(f"MACs / image      {macs:>14,d}  ({macs / 1e6:.1f}M)")
    print(f"  reference: ~{REPORTED_MACS / 1e6:.0f}M mult-adds reported")
    print(f"  relative difference {100 * (macs / REPORTED_MACS - 1):+.1f}%")
    print(f"FLOPs / image     {flops:>14,d}  ({flops / 1e6:.1f}M, 2*MACs+rest)")
    print(f"uncounted layer classes: {uncounted or 'none'}")
    parts = sorted(by_part.items(), key=lambda kv: -kv[1])[:5]
    print(
        "largest MAC shares: "
        + ", ".join(f"{k} {100 * v / macs:.1f}%" for k, v in parts)
    )
    for batch in [] if args.no_latency else args.batch_sizes:
        stats = hardware.measure_latency(
            model,
            batch_size=batch,
            warmup=args.warmup,
            runs=args.runs,
            jit_compile=args.jit_compile,
        )
        print(
            f"latency batch {batch:>3d}: median {stats['median_ms']:.1f} ms, "
            f"p90 {stats['p90_ms']:.1f} ms, min {stats['min_ms']:.1f} ms "
            f"({stats['runs']} runs, first call "
            f"{stats['first_call_ms'] / 1000:.1f} s, "
            f"jit_compile={stats['jit_compile']})"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    applications()


if __name__ == "__main__":
    main()
