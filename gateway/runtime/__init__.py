"""The daemon's shell: its tasks around the pipeline, persistence, health, metrics, systemd,
logs."""
