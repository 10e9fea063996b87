"""``python -m benchmarks.evaluate``: score an existing DAVIS results folder, write the official CSVs.

    python -m benchmarks.evaluate --dataset davis2017 --root DAVIS --results results/davis17

The results folder holds ``<seq>/<frame>.png`` index PNGs (from any method or tool). Writes
``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv`` into it, prints the table
and how long scoring took. YouTube-VOS has no public ground truth: it is scored by the challenge
server from the zip that ``benchmarks.vos`` writes. Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below: one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import argparse
import os
import sys
import time

from seggpt.cli import ArgumentParser, run_cli
from seggpt.errors import InputError
from vos.data.datasets import DatasetError
from vos.data.metrics import MetricsError
from seggpt.outputs import check_not_inputs, claim_files

from .harness import SequenceResult, open_benchmark
from .layout import ResultLayout
from .report import format_table
from . import validate
from .scoring import evaluate_folder

USER_ERRORS = (DatasetError, MetricsError, OSError)  # besides seggpt.errors.UserError (run_cli)

#: Below this many frames one process is faster: a spawned worker spends ~3 s importing torch (through
#: the vos package) before it scores anything, while one process scores ~100 frames/s (DAVIS 480p, 2-core CPU).
PARALLEL_FROM_FRAMES = 2000


def choose_processes(requested: int, frames: int, sequences: int) -> int:
    """``requested`` if > 0, else one per CPU for large sets and 1 for small ones (see PARALLEL_FROM_FRAMES)."""
    if requested > 0:
        return requested
    return 1 if frames < PARALLEL_FROM_FRAMES else max(1, min(os.cpu_count() or 1, sequences))


def _processes(text: str) -> int:
    """--processes: 0 (auto) or a positive count (argparse type: a bad value is one line, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"must be 0 (auto) or a count of processes up to 1024, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m benchmarks.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, choices=("davis2016", "davis2017"))
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--results", required=True, help="results folder (<seq>/<frame>.png)")
    p.add_argument("--split", default="val")
    p.add_argument("--resolution", default="480p")
    p.add_argument("--sequences", nargs="+", metavar="NAME", help="score only these sequences")
    p.add_argument("--processes", type=_processes, default=0,
                   help="parallel scoring processes; 0 = auto (one per CPU from %d frames on, else 1)" % PARALLEL_FROM_FRAMES)
    p.add_argument("--overwrite", action="store_true",
                   help="also replace result CSVs that an earlier version or an unfinished run of ours listed without "
                        "a content hash (never a file we did not write)")
    return p


def evaluate(args: argparse.Namespace) -> int:
    bench = open_benchmark(args.dataset, args.root, args.split, args.resolution)
    names = args.sequences or bench.names
    if unknown := [n for n in names if n not in bench.names]:
        raise InputError(f"{args.root}: unknown sequence(s) {', '.join(unknown)}")
    if not os.path.isdir(args.results):
        raise InputError(f"{args.results}: results folder not found")
    check_not_inputs({"--results": args.results}, validate.benchmark_inputs(bench), folders=("--results",))
    validate.refuse_problems(validate.problems(bench, names), args.root)  # the dataset's own rules
    # the CSVs it may write: each new, or one a run of ours wrote and nobody changed since (seggpt.outputs)
    csvs = {f"the {kind} CSV{tag}": os.path.join(args.results, f"{kind}_results-{bench.split}{tag}.csv")
            for kind in ("global", "per-sequence") for tag in ("", "-PARTIAL")}
    claim_files(csvs, "benchmarks.evaluate", overwrite=args.overwrite)  # recorded in the folder's manifest at the end
    layout = ResultLayout(args.results, "davis")
    frames = sum(len(bench.reader[n].frame_names) for n in names)
    processes = choose_processes(args.processes, frames, len(names))
    start = time.perf_counter()
    scores = evaluate_folder(bench, layout, names, processes=processes)
    global_results, paths = validate.write_scores(layout.out, bench.split, scores, names, {})
    seconds = time.perf_counter() - start
    records = [SequenceResult(n, "scored", frames=len(bench.reader[n].frame_names), scores=scores[n]).summary()
               for n in names]
    print(format_table(records, global_results))
    print(f"\nscored {frames} frames of {len(names)} sequences in {seconds:.2f} s with {processes} process(es) "
          f"({frames / seconds:.1f} frames/s, {1000 * seconds / frames:.2f} s per 1,000 frames); "
          f"wrote {paths[0]} and {paths[1]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: evaluate(args), USER_ERRORS, interrupted="nothing was written")


if __name__ == "__main__":
    sys.exit(main())
