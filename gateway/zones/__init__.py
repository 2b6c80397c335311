"""Position fixes to zone, visit and geofence events, with hysteresis and dwell.  Pure."""
