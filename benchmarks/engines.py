"""Where sequences run: ``local`` (one after the other in this process) or ``ray`` (one task each).

Both engines hand every sequence to ``harness.process_sequence`` and return one SequenceResult per
sequence in the order given; a sequence that fails becomes a "failed" result and the others go on.

Ray (imported only for ``--engine ray``): one task per sequence, ``num_gpus=1`` where the cluster
has GPUs and one CPU otherwise; a failed task (exception or lost worker) is retried once. Workers
write PNGs straight into the results folder, so on a multi-node cluster that folder and the dataset
must be on a shared file system and this package installed on every node. Scores are computed by
the workers (where the files are) and gathered in the driver with the timings.
"""

from __future__ import annotations

import socket
import sys
from typing import Callable, Iterable, Sequence as Seq

from tqdm import tqdm

from seggpt.errors import InputError
from vos.data.datasets import Sequence

from .harness import SequenceResult, describe_sequence_error, process_sequence
from .layout import ResultLayout
from .methods import MethodSpec

__all__ = ["ENGINES", "SequenceLoader", "run_local", "run_ray", "check_reachable"]

ENGINES = ("local", "ray")

#: A sequence name and a zero-argument callable that reads its description (may raise DatasetError).
SequenceLoader = tuple[str, Callable[[], Sequence]]


def _failed(name: str, err: BaseException, attempts: int = 1) -> SequenceResult:
    return SequenceResult(name, "failed", attempts=attempts, error=describe_sequence_error(err))


def _collect(results: Iterable[tuple[str, SequenceResult]], total: int, progress: bool,
             report: Callable[[SequenceResult], None] | None) -> dict[str, SequenceResult]:
    """Each (name, result) as it comes: reported (`report`) and counted on the progress bar; by name."""
    collected = {}
    bar = tqdm(total=total, desc="sequences", unit="seq", disable=not progress, file=sys.stderr)
    try:
        for name, result in results:
            collected[name] = result
            if report is not None:
                report(result)
            bar.update(1)
    finally:
        bar.close()
    return collected


def run_local(spec: MethodSpec, sequences: Seq[SequenceLoader], layout: ResultLayout, *, resume: bool = False,
              score: bool = True, progress: bool = True,
              report: Callable[[SequenceResult], None] | None = None) -> list[SequenceResult]:
    """Run every sequence in this process. ``report`` is called after each one (e.g. to print a failure)."""
    def results():
        for name, load in sequences:
            layout.reset_attempts(name)
            try:
                yield name, process_sequence(spec, load(), layout, resume=resume, score=score, progress=progress)
            except Exception as err:  # one bad sequence must not stop the benchmark
                yield name, _failed(name, err, max(1, layout.attempts(name)))
    return list(_collect(results(), len(sequences), progress, report).values())


def _ray_task(spec: MethodSpec, sequence: Sequence, layout: ResultLayout, resume: bool, score: bool) -> SequenceResult:
    """Body of one Ray task (module level so workers import it rather than unpickle code)."""
    return process_sequence(spec, sequence, layout, resume=resume, score=score, progress=False)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'seggpt-vos[distributed]'") from None
    return ray


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on a cluster address nobody listens at: ``ray.init`` would retry it for many minutes.

    None, "auto" and "local" are left to Ray (they find or start a local instance).
    """
    if address is None or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address!r}: expected host:port (or ray://host:port, auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise InputError(f"--address {address}: no Ray cluster reachable there ({err.strerror or err})") from None


def _ray_error_text(err: BaseException) -> str:
    """The task's own exception for RayTaskError (not Ray's multi-line traceback dump)."""
    cause = getattr(err, "cause", None)
    return describe_sequence_error(cause if isinstance(cause, BaseException) else err)


def run_ray(spec: MethodSpec, sequences: Seq[SequenceLoader], layout: ResultLayout, *, address: str | None = None,
            resume: bool = False, score: bool = True, progress: bool = True,
            report: Callable[[SequenceResult], None] | None = None) -> list[SequenceResult]:
    """One Ray task per sequence; joins a running Ray session, else ``ray.init(address)`` (and shuts it down)."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as err:  # a wrong address is user input: one line, not Ray's traceback
            raise InputError(f"cannot start or join Ray at {address or 'a new local instance'}: "
                               f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}") from None
    try:
        options = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) >= 1 else {"num_cpus": 1}
        task = ray.remote(_ray_task).options(max_retries=1, retry_exceptions=True, **options)
        failed, pending = [], {}
        for name, load in sequences:
            layout.reset_attempts(name)
            try:
                sequence = load()  # reading the description is cheap and reports a bad sequence here
            except Exception as err:
                failed.append((name, _failed(name, err)))
                continue
            pending[task.remote(spec, sequence, layout, resume, score)] = name

        def finished():
            yield from failed
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                name = pending.pop(done[0])
                try:
                    yield name, ray.get(done[0])
                except Exception as err:  # the task failed twice (or its worker died twice)
                    yield name, SequenceResult(name, "failed", attempts=layout.attempts(name),
                                               error=_ray_error_text(err))
        results = _collect(finished(), len(sequences), progress, report)
        return [results[name] for name, _ in sequences]
    finally:
        if started:
            ray.shutdown()
