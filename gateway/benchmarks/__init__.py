"""`rayon bench`: the figures the targets are checked against, printed, never asserted.

Each benchmark takes the loaded config, measures side by side in one run, and prints medians
of several repetitions; the machines are shared and noisy (docs/performance.md).
"""
