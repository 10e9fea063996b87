"""training: in-context colouring training for SegGPT (``python -m training --config ...``).

Above ``seggpt`` (the model) and ``vos`` (its datasets, synthetic generator and metrics) in the
project's layers: ``training.config`` reads a run's settings, ``training.data`` makes the pairs,
``training.trainer`` runs the loop, ``training.evaluation`` scores it; ``python -m training`` is the command line.
"""
