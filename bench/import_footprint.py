"""What `rayon run` loads: modules of the product (and in all) after `rayon run --help`, and up
to the point where `rayon run` would connect; each in a fresh interpreter.

    .venv/bin/python bench/import_footprint.py [TREE ...]

With source trees (git worktrees), each is measured with `PYTHONPATH=<tree>`, side by side; a
tree from before the package layout (the CLI and the daemon as single modules) is understood.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_trees import in_tree  # noqa: E402  (the script beside this one)

CHILD = """
import contextlib, importlib, io, sys
def parser():
    for name in ("gateway.cli.main", "gateway.cli"):
        try:
            return importlib.import_module(name).build_parser()
        except (ImportError, AttributeError):
            continue
    raise SystemExit("no build_parser")
if sys.argv[1] == "help":
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        parser().parse_args(["run", "--help"])
else:
    for name in ("gateway.runtime.daemon", "gateway.daemon"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
            break
    parser().parse_args(["run", "-c", "config.example.yaml"])
ours = [m for m in sys.modules if m.split(".")[0] in ("gateway", "rayon_tooling")]
print(len(ours), len(sys.modules))
"""


def count(tree: Path, what: str) -> tuple[int, int]:
    ours, total = in_tree(tree, CHILD, what).split()
    return int(ours), int(total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path, default=[ROOT], help="source trees")
    args = parser.parse_args(argv)
    print(f"{'tree':<40} {'run --help: ours (all)':>24} {'run, to connecting: ours (all)':>32}")
    for tree in args.trees:
        modules = sum(1 for p in tree.glob("gateway/**/*.py"))
        modules += sum(1 for p in tree.glob("rayon_tooling/**/*.py"))
        (h_ours, h_all), (r_ours, r_all) = count(tree, "help"), count(tree, "run")
        help_text = f"{h_ours} of {modules} ({h_all})"
        run_text = f"{r_ours} of {modules} ({r_all})"
        print(f"{tree!s:<40} {help_text:>24} {run_text:>32}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
