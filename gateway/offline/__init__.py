"""Tools over recorded traces: replay, backtest, calibrate, explain."""
