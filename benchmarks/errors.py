"""The benchmark harness's error type: the CLIs turn it into a one-line message and exit code 2."""


class HarnessError(ValueError):
    """Bad benchmark input or a sequence that cannot be run (one-line message naming what is wrong)."""
