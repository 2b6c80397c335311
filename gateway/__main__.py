"""`python -m gateway` is the `rayon` command."""

from __future__ import annotations

from gateway.cli.main import main

raise SystemExit(main())
