"""`rayon backtest`: what the rules would have done over a trace."""
