"""``python -m benchmarks.vos``: run a method over DAVIS or YouTube-VOS, write official results, score them.

    python -m benchmarks.vos --dataset davis2017 --root DAVIS --out results/davis17 --weights BAAI/seggpt-vit-large
    python -m benchmarks.vos --dataset davis2016 --root DAVIS --out results/copy --method copy-first
    python -m benchmarks.vos --dataset ytvos --root YTVOS --out results/yt --engine ray --address auto

Writes, into ``--out``: the index PNGs in the official layout (``<seq>/<frame>.png``; YouTube-VOS
``Annotations/<vid>/<frame>.png`` plus ``submission.zip``), the official ``global_results-<split>.csv``
and ``per-sequence_results-<split>.csv`` where ground truth exists (DAVIS), and
``benchmark-<split>.json`` (config, weights, code version, per-sequence frames/s, time, memory).
Exit codes: 0 all sequences done, 1 some sequence failed or could not be scored (the others still ran;
the figures and CSVs are marked PARTIAL, see ``benchmarks.validate``), 2 bad input, 130 interrupted.
``--out`` is never an input and never a mix of runs (``seggpt.outputs``: an earlier run of ours is
emptied first or, with ``--resume``, kept; a folder holding any file that is not ours is refused).
Settings: the dataclass defaults < the weights' recommended settings < ``--config`` (a file, or a
packaged name such as ``benchmark_davis``) < flags and ``--set key=value``.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below: one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import argparse
import dataclasses
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from seggpt.cli import ArgumentParser, run_cli
from seggpt.errors import InputError
from seggpt.io import OutputError, atomic_write_text, ensure_output_dir
from seggpt.outputs import OVERWRITE_HELP
from seggpt.settings import ConfigError, option_layers, parse_assignments, setting
from vos.engine.config import RunConfig, load_run_config
from vos.data.datasets import DatasetError
from vos.data.metrics import MetricsError

from .engines import ENGINES, run_local, run_ray
from .harness import DATASETS, SequenceResult, open_benchmark
from .layout import ResultLayout
from .methods import METHODS, MethodSpec
from .report import code_version, format_table, peak_rss_mb
from . import validate

USER_ERRORS = (DatasetError, ConfigError, OutputError, MetricsError)  # besides seggpt.errors.UserError (run_cli)


@dataclass
class BenchmarkConfig(RunConfig):
    """A benchmark run: the method, and what `vos.run` reads (weights, device, dtype, engine).

    split: None means the dataset's own validation split (val for DAVIS, valid for YouTube-VOS).
    """

    method: str = setting("seggpt", choices=METHODS)
    split: Optional[str] = None
    resolution: str = "480p"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m benchmarks.vos", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--split", help="split name (default: val for DAVIS, valid for YouTube-VOS)")
    p.add_argument("--resolution", help="DAVIS resolution folder (default 480p)")
    p.add_argument("--all-frames", default="auto",
                   help="YouTube-VOS all-frames folder; auto: <root>/all_frames/<split>_all_frames if present; none")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--method", choices=METHODS, help="default: seggpt")
    p.add_argument("--weights", help="SegGPT weights: Hub id, small (packaged) or a file (default BAAI/seggpt-vit-large)")
    p.add_argument("--config", help="benchmark YAML: a file, or a packaged name (benchmark_davis, benchmark_ytvos); flags override it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set engine.objects=separate (repeatable)")
    p.add_argument("--memory", type=int, help="recent predicted frames kept as prompts (engine.memory)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--dtype", help="auto | fp32 | bf16 | fp16")
    p.add_argument("--sequences", nargs="+", metavar="NAME", help="run only these sequences")
    p.add_argument("--resume", action="store_true", help="skip sequences already finished in --out")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--engine", choices=ENGINES, default="local")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a new local instance)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def load_config(args: argparse.Namespace) -> BenchmarkConfig:
    """Defaults < the weights' recommended settings < --config < flags and --set."""
    flags = option_layers(args, {"method": "method", "weights": "weights", "device": "device", "dtype": "dtype",
                                 "split": "split", "resolution": "resolution", "memory": "engine.memory"})
    return load_run_config(BenchmarkConfig, args.config, [*flags, *parse_assignments(args.set)])


def make_spec(config: BenchmarkConfig) -> MethodSpec:
    """The method to run, with its settings resolved (what runs is what is recorded)."""
    if config.method == "copy-first":
        return MethodSpec("copy-first")
    # Ray workers may run elsewhere in the file tree: absolute paths travel
    weights = str(Path(config.weights).resolve()) if Path(config.weights).exists() else config.weights
    engine = json.dumps(dataclasses.asdict(config.engine), sort_keys=True)
    return MethodSpec("seggpt", weights, engine, config.device, config.dtype)


def _select(names: list[str], wanted: list[str] | None, root: str) -> list[str]:
    if not wanted:
        return names
    if unknown := [n for n in wanted if n not in names]:
        raise InputError(f"{root}: unknown sequence(s) {', '.join(unknown)} (the split has {len(names)}: "
                           f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''})")
    return list(dict.fromkeys(wanted))


def _print_failure(result: SequenceResult) -> None:
    if result.status == "failed":
        tqdm.write(f"{result.name}: FAILED: {result.error}", file=sys.stderr)


def benchmark(args: argparse.Namespace) -> int:
    """Run, score and report; returns the exit code (1 when any sequence failed)."""
    start = time.perf_counter()
    config = load_config(args)
    bench = open_benchmark(args.dataset, args.root, config.split, config.resolution, args.all_frames)
    names = _select(bench.names, args.sequences, args.root)
    spec_weights = config.weights if config.method == "seggpt" else None
    outputs = validate.claim_output(args, bench, spec_weights, names)  # never an input, never a mix of runs
    found = validate.problems(bench, names)  # sequences that cannot be run or scored, with the reason
    layout = ResultLayout(ensure_output_dir(args.out), bench.kind)
    spec = make_spec(config)
    if args.engine == "local" and spec.name == "seggpt":
        try:  # load the model once, up front: bad weights are one error, not one failure per sequence
            spec.build()
        except USER_ERRORS:
            raise
        except Exception as err:
            raise InputError(f"cannot load SegGPT weights {spec.weights!r}: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}") from None
    outputs.claim()  # our earlier run emptied (or kept: --resume), the manifest written
    loaders = validate.sequence_loaders(bench, names, found)
    engine = functools.partial(run_ray, address=args.address) if args.engine == "ray" else run_local
    results = engine(spec, loaders, layout, resume=args.resume, progress=not args.quiet, report=_print_failure)
    failed = [r for r in results if r.status == "failed"]

    scores = {r.name: r.scores for r in results if r.scores is not None}
    not_scored = {r.name: r.error or "not scored" for r in results if r.scores is None} if scores else {}
    global_results, csv_paths = validate.write_scores(layout.out, bench.split, scores, names, not_scored)
    zip_path = layout.write_zip([bench.reader[n] for n in names]) if bench.kind == "ytvos" and not failed else None

    records = [r.summary() for r in results]
    worker_peaks = [r.peak_rss_mb for r in results if r.peak_rss_mb is not None]
    cuda_peaks = [r.cuda_max_allocated_mb for r in results if r.cuda_max_allocated_mb is not None]
    report = {
        "command": ["python", "-m", "benchmarks.vos", *(sys.argv[1:] if args.argv is None else args.argv)],
        **bench.info,
        **spec.describe(),
        "engine_backend": args.engine,
        "code_version": code_version(),
        "sequences": records,
        "failed": [r.name for r in failed],
        "total_seconds": round(time.perf_counter() - start, 3),
        "frames": sum(r.frames for r in results),
        "peak_rss_mb": max([peak_rss_mb(), *worker_peaks]),
        "cuda_max_allocated_mb": max(cuda_peaks) if cuda_peaks else None,
        "global": global_results,
        "partial": bool(not_scored),
        "not_scored": not_scored,
        "csv": [str(p) for p in csv_paths] if csv_paths else None,
        "zip": str(zip_path) if zip_path else None,
    }
    json_path = layout.out / f"benchmark-{bench.split}.json"
    atomic_write_text(json_path, json.dumps(report, indent=1, default=str))

    print(format_table(records, global_results))
    print(f"\n{len(results) - len(failed)}/{len(results)} sequences ok in {report['total_seconds']:.1f} s; "
          f"report {json_path}" + (f"; submission {zip_path}" if zip_path else ""))
    if not_scored:
        print(validate.partial_note(len(names), not_scored))
    if failed:
        print(f"failed: {', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run_cli(lambda: benchmark(args), USER_ERRORS,
                   interrupted="finished sequences are kept; rerun with --resume")


if __name__ == "__main__":
    sys.exit(main())
