"""`rayon`, the command line."""
