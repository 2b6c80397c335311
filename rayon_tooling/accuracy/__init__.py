"""Accuracy of locate on recorded data sets: converters, metrics, baselines, protocol."""
