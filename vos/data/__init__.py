"""vos.data: datasets and scores, torch-free (worker processes of the benchmarks stay light).

DAVIS / YouTube-VOS / folder readers, the synthetic clip generator and its dataset writers, and J&F
computed as the official DAVIS tool computes it.
"""
