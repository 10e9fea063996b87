"""Score a results folder against DAVIS ground truth (`validate.write_scores` writes the official CSVs).

Used by ``python -m benchmarks.evaluate`` (sequences scored in parallel processes) and by the harness
(which scores each sequence as it finishes), so both write the same files from the same numbers.
"""

from __future__ import annotations

import functools

import numpy as np

from seggpt.errors import InputError
from vos.data.metrics import EvalJob, evaluate_many

from .harness import Benchmark, has_ground_truth
from .layout import ResultLayout, load_prediction

__all__ = ["evaluate_folder", "Scores"]

Scores = dict[str, dict[int, dict[str, np.ndarray]]]


def evaluate_folder(benchmark: Benchmark, layout: ResultLayout, names: list[str], processes: int = 1) -> Scores:
    """J/F of every sequence in ``names`` from the PNGs in ``layout``; all must be complete and scorable.

    Checked up front (cheap file tests) so that a missing sequence is one clear error, not a
    failure deep inside a worker process after minutes of scoring.
    """
    jobs = []
    problems = []
    for name in names:
        sequence = benchmark.reader[name]
        if not has_ground_truth(sequence):
            problems.append(f"{name} (no ground truth for every frame)")
            continue
        missing = layout.missing_frames(sequence)
        if missing:
            problems.append(f"{name} ({len(missing)} of {len(sequence.frames_to_save)} frames missing, e.g. "
                            f"{layout.frame_path(name, missing[0])})")
            continue
        pred = functools.partial(load_prediction, layout.sequence_dir(name), sequence.frame_names, sequence.size,
                                 sequence.binary_masks)
        gt = functools.partial(sequence.load_ground_truth, sequence.frame_names)
        jobs.append(EvalJob(name, gt, pred, object_ids=tuple(sequence.object_ids)))
    if problems:
        raise InputError(f"{layout.out}: cannot evaluate {len(problems)} sequence(s): {'; '.join(problems[:5])}"
                           f"{' ...' if len(problems) > 5 else ''}")
    return evaluate_many(jobs, processes=processes)
