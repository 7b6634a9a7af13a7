"""Benchmark of one DC / DSA outer matching step against its floor and the per-class loop (a script, not a test).

Setting (the speed figure of the DC reference): MNIST, default ConvNet (width 128, depth 3, instance norm),
IPC 10, 256 real images per class, distance "layerwise". One *outer step* = for every class, forward+backward of its
256 real images and of its 10 synthetic images, the layer-wise distance, its backward to the images (second
order through the synthetic gradients), then one image update. Prints one JSON object; per method (``dc``,
``dsa``), measured in the same process:

- ``unit_s``: one forward+backward of the ConvNet on 256 MNIST images (the course's calibration unit);
- ``floor_s`` / ``floor_units``: the 10 real-class forward+backward passes (256 images each) that no
  implementation can avoid (10 units by definition; the measured ratio checks the timer);
- ``ours_s`` / ``ours_units``: ``GradientMatching.match`` + the image step with ``implementation="auto"`` (CPU:
  the per-class loop; CUDA: one batched pass over all classes); ``ours_units_floor_based`` = 10 × ours / floor
  (a steadier estimate) and ``ours_over_floor``; on CUDA also ``ours_loop_*`` (``implementation="loop"``), on
  CPU with ``--all-variants`` also ``ours_batched_*``;
- ``baseline_loop_s`` / ``baseline_loop_units``: the straightforward per-class loop of the reference's
  structure (per class: real forward/backward for every parameter, synthetic forward/backward with
  ``create_graph``, distance; one ``backward`` through everything, parameters included; one image step), and
  ``ours_vs_baseline`` = ours / baseline;
- ``loss_values`` / ``max_rel_loss_diff``: the loss of every variant from the same network, images, real batch
  and DSA draws, and their largest relative difference from the baseline's;
- ``iteration``: one WHOLE outer iteration (a fresh network, ``outer_loop`` matching steps, ``inner_loop`` epochs of
  network training between them) at ``--iteration-ipc`` (default 1, the setting of the side-by-side run with the
  official code): ``ours_s`` = ``GradientMatching.step``, ``baseline_s`` = the same iteration with the reference's
  structure (its per-class matching step above, and its inner loop over a ``DataLoader`` of the synthetic set),
  and ``ours_vs_baseline``, measured in the same rounds.

Targets: CPU ``ours_units <= 11`` (the official DC code: about 11.4 units for DC, 11.7 for DSA, on a 2-core
CPU); CUDA ``ours_vs_baseline <= 0.5``. Every round times the unit, the floor and each variant back to back, and
ratios are taken within a round (medians over rounds), so that load from other processes hits them alike.

    python benchmarks/bench_gradient_matching.py [--device cpu|cuda] [--repeats 5] [--ipc 10] [--methods dc,dsa]
                                                 [--iteration-ipc 1]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from timing import (
    interleaved,
    paired_ratio,
    timed,
    unit_floor_figures,
    variant_figures,
)  # benchmarks/timing.py, beside this script

from course_utils.core import repro
from course_utils.data import datasets as data
from course_utils.methods import matching
from course_utils.methods.dc import Config, DSAConfig, GradientMatching
from course_utils.methods.dsa import SiameseGradientMatching
from course_utils.nets import samplers
from course_utils.records import results

#: The distiller and its settings per method (DSA's config draws the dataset's augmentation).
DISTILLERS = {"dc": (GradientMatching, Config), "dsa": (SiameseGradientMatching, DSAConfig)}


def baseline_step(matcher: GradientMatching, net: torch.nn.Module, real: torch.Tensor | None = None) -> torch.Tensor:
    """The straightforward per-class loop (the reference's structure), for one outer step."""
    K, ipc = matcher.num_classes, matcher.ipc
    params = list(net.parameters())
    real = matcher.sample_real(matcher.batch_real) if real is None else real
    loss = torch.zeros((), device=matcher.device)
    for c in range(K):
        x_real, x_syn = real[c], matcher.images[c * ipc : (c + 1) * ipc]
        if matcher.dsa is not None:
            s = matcher.dsa.sample(1, matcher.generator, device=matcher.device)
            x_real, x_syn = matcher.dsa.apply(x_real, s), matcher.dsa.apply(x_syn, s)
        y_real = torch.full((len(x_real),), c, device=matcher.device)
        g_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)]
        g_syn = torch.autograd.grad(
            F.cross_entropy(net(x_syn), matcher.labels[c * ipc : (c + 1) * ipc]), params, create_graph=True
        )
        loss = loss + matching.gradient_distance(g_real, g_syn, matcher.config.distance)
    matcher.optimizer.zero_grad(set_to_none=True)
    net.zero_grad(set_to_none=True)
    loss.backward()
    matcher.optimizer.step()
    return loss.detach()


def baseline_inner_loop(matcher: GradientMatching, net: torch.nn.Module, epochs: int) -> None:
    """The reference's inner loop: epochs over a shuffled DataLoader of the (detached) synthetic set, plain SGD."""
    dataset = torch.utils.data.TensorDataset(matcher.images.detach().clone(), matcher.labels)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=matcher.config.batch_train, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    opt = torch.optim.SGD(net.parameters(), lr=matcher.config.lr_net)
    for _ in range(epochs):
        for x, y in loader:
            if matcher.dsa is not None:
                x = matcher.dsa(x, matcher.generator)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()


def baseline_iteration(matcher: GradientMatching) -> None:
    """One outer iteration with the reference's structure."""
    net = matcher.sampler.sample(matcher.generator)
    for ol in range(matcher.outer_loop):
        baseline_step(matcher, net)
        if ol < matcher.outer_loop - 1:
            baseline_inner_loop(matcher, net, matcher.inner_loop)


def bench_iteration(name: str, train: data.ImageSet, args, device: torch.device) -> dict:
    """Whole outer iterations, ours against the reference's structure, in interleaved rounds."""
    distiller, config = DISTILLERS[name]
    make = lambda impl: distiller(  # noqa: E731
        train,
        args.iteration_ipc,
        generator=repro.make_generator(0),
        config=config(implementation=impl, batch_real=args.batch_real),
        sampler=samplers.FreshInit("convnet"),
    )
    ours, base = make("auto"), make("loop")
    times = {"ours": [], "baseline": []}
    for r in range(args.repeats + 1):
        row = {"ours": timed(lambda: ours.step(1), device), "baseline": timed(lambda: baseline_iteration(base), device)}
        if r:
            for key, t in row.items():
                times[key].append(t)
    return {
        "ipc": args.iteration_ipc,
        "outer_loop": ours.outer_loop,
        "inner_loop": ours.inner_loop,
        "ours_s": round(statistics.median(times["ours"]), 4),
        "baseline_s": round(statistics.median(times["baseline"]), 4),
        "ours_vs_baseline": round(statistics.median(a / b for a, b in zip(times["ours"], times["baseline"])), 3),
        "rounds_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }


def variants(device: torch.device, args) -> tuple[str, ...]:
    """Which implementations to time besides the baseline. "auto" is "batched" on CUDA and "loop" on CPU; on CPU
    "batched" is timed only when asked for (its one forward over all 2 560 real images holds ~5 GB of activations)."""
    if device.type == "cuda":
        return ("auto", "loop", "baseline")
    return ("auto", "batched", "baseline") if args.all_variants else ("auto", "baseline")


def bench_method(name: str, train: data.ImageSet, args, device: torch.device, unit_net) -> dict:
    distiller, config = DISTILLERS[name]
    matchers = {
        impl: distiller(
            train,
            args.ipc,
            generator=repro.make_generator(0),
            config=config(implementation="loop" if impl == "baseline" else impl, batch_real=args.batch_real),
            sampler=samplers.FreshInit("convnet"),
        )
        for impl in variants(device, args)
    }
    net = matchers["auto"].sampler.sample(matchers["auto"].generator)

    # same loss values: the same network, images and real batch (and DSA draws) for every implementation
    losses = {}
    for impl, m in matchers.items():
        g = repro.make_generator(123)
        m.generator = g
        if impl == "baseline":
            losses[impl] = float(baseline_step(m, net))
        else:
            loss, _ = m.match(net)
            m.optimizer.step()
            losses[impl] = float(loss)
    ref = losses["baseline"]
    max_rel = max(abs(v - ref) / abs(ref) for v in losses.values())

    # floor: the 10 real-class forward+backward passes
    real = matchers["auto"].sample_real(matchers["auto"].batch_real)
    labels = matchers["auto"].real_labels
    x_unit, y_unit = train.images[:256], train.labels[:256]

    def unit_pass():
        F.cross_entropy(unit_net(x_unit), y_unit).backward()

    def floor():
        for c in range(real.shape[0]):
            F.cross_entropy(net(real[c]), labels[c]).backward()

    steps = {
        impl: (lambda m=m: (m.match(net), m.optimizer.step())) for impl, m in matchers.items() if impl != "baseline"
    }
    steps["baseline"] = lambda: baseline_step(matchers["baseline"], net)
    # Interleaved rounds: every round times the unit (median of 3 passes), the floor and each variant back to
    # back, and ratios are taken within a round, so that load from other processes hits them alike.
    times = interleaved({"unit": unit_pass, "floor": floor, **steps}, device, args.repeats)
    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(key: str, base: str) -> float:
        return paired_ratio(times, key, base)

    out = unit_floor_figures(times)
    for impl in [v for v in matchers if v != "baseline"]:
        key = "ours" if impl == "auto" else f"ours_{impl}"
        out.update(variant_figures(times, impl, key))
        out[f"{key}_units_floor_based"] = round(10 * ratio(impl, "floor"), 2)
    out.update(
        {
            "auto_is": matchers["auto"].implementation,
            "baseline_loop_s": round(med["baseline"], 4),
            "baseline_loop_units": round(ratio("baseline", "unit"), 2),
            "ours_vs_baseline": round(ratio("auto", "baseline"), 3),
            "rounds_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "loss_values": {k: round(v, 6) for k, v in losses.items()},
            "max_rel_loss_diff": float(f"{max_rel:.2e}"),
            "reference_dc_code_units": 11.4 if name == "dc" else 11.7,
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--methods", default="dc,dsa")
    parser.add_argument(
        "--all-variants", action="store_true", help="on CPU also time 'batched' (needs ~5 GB of memory)"
    )
    parser.add_argument("--iteration-ipc", type=int, default=1, help="IPC of the whole-iteration figure (0: skip it)")
    args = parser.parse_args()

    device = repro.resolve_device(args.device)
    repro.seed_everything(0)
    train, _ = data.load("mnist")
    train = train.to(device)
    unit_net = samplers.build_network("convnet", train.info, 0, device)
    report = {
        "setting": {
            "dataset": "mnist",
            "model": "convnet (width 128, depth 3, instance norm)",
            "ipc": args.ipc,
            "batch_real": args.batch_real,
            "distance": "layerwise",
        }
    }
    for name in args.methods.split(","):
        report[name] = bench_method(name, train, args, device, unit_net)
        if args.iteration_ipc:
            report[name]["iteration"] = bench_iteration(name, train, args, device)
    report["targets"] = {"cpu_ours_units_max": 11, "cuda_ours_vs_baseline_max": 0.5}
    report["environment"] = results.environment(device)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
