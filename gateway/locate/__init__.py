"""Observations to position fixes: RSSI filters, the centroid, the grid.  Pure."""
