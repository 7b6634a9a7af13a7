"""The GPU check (``make gpu-check``): everything CPU-only CI cannot see, in one run of a few minutes on one GPU.

1. the unit tests with CUDA visible (``pytest tests``);
2. every notebook in the quick profile with ``device=cuda`` (papermill), each with its time and, on failure, its error;
3. bit-identity on CUDA: every registered method (its registry entry's tiny settings) distilled twice with the same
   seed gives identical images, experts trained twice identical trajectories, the same set evaluated twice (DSA
   protocol) identical accuracies, and the evaluation's random draws equal the CPU's;
4. the GPU benchmarks of gradient matching and of distribution matching (``benchmarks/bench_gradient_matching.py``
   and ``benchmarks/bench_dm.py``, ``--device cuda``; each against its CUDA target).

Writes ``output/gpu_check/summary.json`` (and the benchmark's JSON and the executed notebooks beside it), prints a
one-line verdict per part, and exits non-zero if any part failed. Parts can be skipped (``--skip tests,bench``).

    python tools/gpu_check.py [--out output/gpu_check] [--skip tests,notebooks,identity,bench] [--timeout 420]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("tests", "notebooks", "identity", "bench")
#: what each part imports beyond torch and torchvision; a GPU machine without network may lack some (CONTRIBUTING.md)
NEEDS = {
    "tests": ("pytest", "yaml", "papermill", "nbformat", "ipykernel", "matplotlib", "numpy", "tqdm"),
    "notebooks": ("papermill", "ipykernel", "matplotlib", "numpy", "tqdm"),
    "identity": ("numpy", "tqdm"),
    "bench": ("numpy", "tqdm"),
}


def missing_packages(parts) -> list[str]:
    """The modules the given parts import that this Python cannot find, each named once."""
    import importlib.util

    names = dict.fromkeys(n for part in parts for n in NEEDS[part])
    return [n for n in names if importlib.util.find_spec(n) is None]


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_tests(out: Path, timeout: int) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            "--no-header",
            "-o",
            "addopts=",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    (out / "tests.log").write_text(proc.stdout + proc.stderr)
    return {"ok": proc.returncode == 0, "seconds": round(time.perf_counter() - t0, 1), "summary": _tail(proc.stdout, 3)}


def run_notebooks(out: Path, timeout: int) -> dict:
    from course_utils.ops import notebooks

    books = {}
    os.environ["COURSE_OUTPUT_DIR"] = str(out / "course_output")
    for book in notebooks.list_notebooks():  # keep going: every notebook gets its line
        parameters = {"profile": "quick", "device": "cuda"}
        run = notebooks.execute(book, out / "notebooks" / book.name, parameters, cell_timeout=timeout)
        books[book.stem] = {
            "ok": run.ok,
            **({"error": run.error} if run.error else {}),
            "seconds": round(run.seconds, 1),
        }
    return {"ok": all(b["ok"] for b in books.values()), "notebooks": books}


def identity_methods() -> list[str]:
    """The methods whose same-seed identity the check runs: every registered one (``methods.REGISTRY``)."""
    from course_utils import methods

    return list(methods.REGISTRY)


def check_identity(device: str = "cuda", names: list[str] | None = None) -> dict:
    """Same seed twice on ``device``: bit-identical sets for every registered method (its tiny settings, from its
    registry entry), bit-identical expert trajectories, the same accuracies from the same set, and the evaluation's
    random draws (batch orders) equal to the CPU's."""
    import torch

    from course_utils import data, methods
    from course_utils.core import repro
    from course_utils.evaluation import training
    from course_utils.nets import samplers, trajectories

    repro.seed_everything(0)
    train, test = data.load("mnist")
    train = train.balanced_subset(20, repro.make_generator(0)).to(device)
    test = test.balanced_subset(20, repro.make_generator(0)).to(device)
    out = {}
    with tempfile.TemporaryDirectory() as root:
        buffers = [
            trajectories.train_experts(
                train, 2, model=samplers.FreshInit("convnet", width=8), epochs=2, root=f"{root}/{i}", device=device
            )
            for i in range(2)
        ]
        out["experts"] = {
            "trajectories_identical": all(torch.equal(a, b) for a, b in zip(*(b.trajectories for b in buffers)))
        }
        for name in identity_methods() if names is None else names:
            kwargs = methods.info(name).tiny.kwargs(train, root)
            a, b = (methods.distill(name, train, 1, generator=repro.make_generator(0), **kwargs) for _ in range(2))
            out[name] = {
                "images_identical": bool(torch.equal(a.images, b.images)),
                "history_identical": a.meta["history"] == b.meta["history"],
            }
    syn = methods.distill("random", train, 1, generator=repro.make_generator(0))
    orders: dict[str, list] = {}

    def evaluate(on: str, run: str) -> list[float]:
        seen = orders.setdefault(run, [])
        result = training.evaluate_set(
            syn.to(on),
            test.to(on),
            protocol="dsa",
            epochs=3,
            num_models=2,
            model=samplers.FreshInit("convnet", width=8),
            device=on,
            on_batch=lambda idx, *_: seen.append(idx.cpu()),
        )
        return result.accuracies

    first, second = evaluate(device, "first"), evaluate(device, "second")
    evaluate("cpu", "cpu")
    out["evaluate_dsa_protocol"] = {
        "accuracies_identical": first == second,
        "accuracies": first,
        "draws_equal_to_cpu": len(orders["first"]) == len(orders["cpu"])
        and all(torch.equal(a, b) for a, b in zip(orders["first"], orders["cpu"])),
    }
    ok = all(all(v for k, v in d.items() if k != "accuracies") for d in out.values())
    return {"ok": ok, **out}


#: the benchmarks of the GPU check: script, the JSON it writes under --out, its methods
BENCHMARKS = {
    "gradient_matching": ("bench_gradient_matching.py", "gradient_matching_cuda.json", ("dc", "dsa")),
    "dm": ("bench_dm.py", "dm_cuda.json", ("dm",)),
    "mtt": ("bench_mtt.py", "mtt_cuda.json", ("iteration",)),
    "zen": ("bench_zen.py", "zen_cuda.json", ()),
}


def run_bench(out: Path, timeout: int) -> dict:
    t0 = time.perf_counter()
    parts = {}
    for name, (script, json_name, keys) in BENCHMARKS.items():
        proc = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / script), "--device", "cuda", "--repeats", "3"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            parts[name] = {"ok": False, "error": _tail(proc.stderr)}
            continue
        report = json.loads(proc.stdout)
        (out / json_name).write_text(json.dumps(report, indent=2))
        target = report["targets"].get("cuda_ours_vs_baseline_max")  # None: recorded, no GPU target
        ratios = {m: report[m]["ours_vs_baseline"] for m in keys if m in report}
        ok = target is None or all(r <= target for r in ratios.values())
        parts[name] = {"ok": ok, "ours_vs_baseline": ratios, "target": target}
    return {"ok": all(p["ok"] for p in parts.values()), **parts, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "output" / "gpu_check")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to skip: {', '.join(PARTS)}")
    parser.add_argument("--timeout", type=int, default=420, help="seconds allowed to each part's longest command")
    args = parser.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(PARTS):
        parser.error(f"unknown part(s) {sorted(skip - set(PARTS))}; valid: {', '.join(PARTS)}")
    missing = missing_packages(p for p in PARTS if p not in skip)
    if missing:
        print(
            f"gpu-check needs {', '.join(missing)}, which {sys.executable} cannot import: install requirements.txt, "
            "or on a machine without network carry their wheels (CONTRIBUTING.md, 'The GPU check'), or --skip parts"
        )
        return 2
    import torch

    if not torch.cuda.is_available():
        print("gpu-check needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)")
        return 2
    sys.path.insert(0, str(ROOT))
    args.out.mkdir(parents=True, exist_ok=True)
    from course_utils.records import results

    summary: dict = {"environment": results.environment("cuda"), "parts": {}}
    steps = {
        "tests": lambda: run_tests(args.out, args.timeout),
        "notebooks": lambda: run_notebooks(args.out, args.timeout),
        "identity": check_identity,
        "bench": lambda: run_bench(args.out, args.timeout),
    }
    for part, fn in steps.items():
        if part in skip:
            continue
        t0 = time.perf_counter()
        try:
            summary["parts"][part] = fn()
        except Exception as exc:  # a part that crashes is a failed part, the others still run
            summary["parts"][part] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        summary["parts"][part].setdefault("seconds", round(time.perf_counter() - t0, 1))
        print(
            f"[gpu-check] {part}: {'ok' if summary['parts'][part]['ok'] else 'FAILED'} "
            f"in {summary['parts'][part]['seconds']} s",
            flush=True,
        )
    summary["ok"] = all(p["ok"] for p in summary["parts"].values())
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"[gpu-check] {'all parts passed' if summary['ok'] else 'FAILED'}; summary: {args.out / 'summary.json'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
