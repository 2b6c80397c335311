"""`rayon rules promote DRAFT_DIR`: put a draft rule set live.

1. The draft is checked as `rayon check` checks the rules (every file loads, every inline test
   passes); an error stops here and nothing changes.
2. Its backtest delta on the last day of the recording is shown (the live set and the draft,
   side by side: `rayon backtest --recorded --rules DRAFT_DIR`).
3. With `--yes` (or a "y" at the prompt), its rule files are copied into a new folder beside
   `rules_dir`, which then replaces `rules_dir` by a rename; the previous set is kept, renamed
   `<rules_dir>.bak-<UTC time>`.  A running gateway watches `rules_dir` and reloads the new set
   within seconds, all or nothing (docs/design.md §2): nothing to restart, no signal to send.
4. A JSON line says who promoted what and when, appended to `rules-promotions.log` beside
   `rules_dir`.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import hashlib
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gateway.config.commandline import config_of
from gateway.config.model import Config
from gateway.errors import InvalidInput, Severity
from gateway.offline.backtest.compare import Comparison, render_comparison
from gateway.offline.backtest.recorded import compare_recorded, last_day
from gateway.rules.selftest import check_rules
from gateway.textformat import Format

AUDIT_LOG = "rules-promotions.log"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon rules promote`."""
    parser.add_argument("draft", help="the folder of the draft rule set (rule files, policy.yaml)")
    parser.add_argument("--yes", action="store_true", help="promote without asking")


def run(args: argparse.Namespace) -> int:
    """`rayon rules promote` with the config that -c names."""
    config = config_of(args)
    return promote(config, Path(args.draft), yes=args.yes)


def promote(
    config: Config,
    draft: Path,
    *,
    yes: bool = False,
    out: TextIO | None = None,
    answer: TextIO | None = None,
) -> int:
    """Check, show the delta, then (with `yes` or a "y" on an interactive `answer`) install
    and log; 0 when promoted, 1 when not (with what to do on stderr)."""
    out = out if out is not None else sys.stdout
    live = config.rules_dir
    _refuse_odd_folders(draft, live)
    if not _checked(config, draft, out):
        return 1
    delta = _delta(config, draft, out)
    if not yes and not _confirmed(answer if answer is not None else sys.stdin, out):
        print(
            "rayon rules promote: not promoted, nothing changed: run again with --yes to "
            "promote (or answer y at the prompt)",
            file=sys.stderr,
        )
        return 1
    before = _digests(live)
    backup = install(draft, live)
    entry = audit_entry(draft, live, backup, before, _digests(live), delta)
    append_audit(live.parent / AUDIT_LOG, entry)
    print(
        f"promoted {draft} → {live} ({len(entry['rules'])} file(s); previous set kept in "
        f"{backup or 'nothing: there was none'}); a running gateway reloads it within seconds "
        f"(its gateway/status shows the rules in force); logged in {live.parent / AUDIT_LOG}",
        file=out,
    )
    return 0


def _refuse_odd_folders(draft: Path, live: Path) -> None:
    if not draft.is_dir():
        raise InvalidInput(f"{draft}: no such folder: give the folder of the draft rule files")
    if draft.resolve() == live.resolve():
        raise InvalidInput(f"{draft} is the live rules folder itself: nothing to promote")
    if live.resolve() in draft.resolve().parents:
        raise InvalidInput(
            f"{draft} lies inside the live rules folder {live}: move the draft out of it first"
        )


def _checked(config: Config, draft: Path, out: TextIO) -> bool:
    """`rayon check` on the draft's rules: every diagnostic printed; False on an error."""
    diagnostics = check_rules(dataclasses.replace(config, rules_dir=draft))
    for d in diagnostics:
        print(d, file=out)
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    if errors:
        print(f"{draft}: {errors} error(s): not promoted, nothing changed", file=sys.stderr)
        return False
    print(f"{draft}: the rules load and their tests pass", file=out)
    return True


def _delta(config: Config, draft: Path, out: TextIO) -> dict[str, int] | None:
    """Show the backtest delta on the last recorded day; its totals (None without one)."""
    stretch = last_day(config)
    if stretch is None:
        print(f"no recording in {config.record_dir} yet: no backtest delta to show", file=out)
        return None
    try:
        found = compare_recorded(config, stretch, draft, sys.stderr)
    except InvalidInput as exc:
        print(f"no backtest delta: {exc}", file=out)
        return None
    if found is None:
        return None
    print("\nthe last day of recording, live rules and draft side by side:\n", file=out)
    out.write(render_comparison(found, Format.TABLE))
    return _totals(found)


def _totals(found: Comparison) -> dict[str, int]:
    draft = found.draft.offers if found.draft is not None else 0
    return {"live_offers": found.live.offers, "draft_offers": draft}


def _confirmed(answer: TextIO, out: TextIO) -> bool:
    if not answer.isatty():
        return False
    print("promote this rule set? [y/N] ", end="", file=out, flush=True)
    return answer.readline().strip().lower() in ("y", "yes", "o", "oui")


def _rule_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.y*ml") if p.is_file())


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in _rule_files(folder)}


def install(draft: Path, live: Path) -> Path | None:
    """Copy the draft's rule files into a new folder beside `live`, then swap it in by
    renames; the previous folder (kept) or None when there was none."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staging = live.parent / f".{live.name}.promote-{stamp}"
    staging.mkdir(parents=True)
    try:
        if live.is_dir():
            shutil.copymode(live, staging)
        for path in _rule_files(draft):
            shutil.copyfile(path, staging / path.name)  # fresh times: the watcher sees a change
        backup = live.with_name(f"{live.name}.bak-{stamp}") if live.exists() else None
        if backup is not None:
            os.rename(live, backup)
        try:
            os.rename(staging, live)
        except OSError:
            if backup is not None:
                os.rename(backup, live)
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return backup


def audit_entry(
    draft: Path,
    live: Path,
    backup: Path | None,
    before: dict[str, str],
    after: dict[str, str],
    delta: dict[str, int] | None,
) -> dict[str, Any]:
    """Who, when and what: the files added, removed and changed, each file's digest."""
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "who": os.environ.get("SUDO_USER") or getpass.getuser(),
        "draft": str(draft.resolve()),
        "rules_dir": str(live.resolve()),
        "backup": str(backup) if backup is not None else None,
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(n for n in set(before) & set(after) if before[n] != after[n]),
        "rules": after,
        "backtest_last_day": delta,
    }


def append_audit(path: Path, entry: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


__all__ = ["AUDIT_LOG", "add_arguments", "install", "promote", "run"]
