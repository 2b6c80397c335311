"""Rayon's tooling: benchmarks and accuracy evaluation.  The product never imports it."""
