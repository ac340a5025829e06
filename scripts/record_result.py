"""Run a measurement and keep what it printed as a result file the docs include, so a page never retypes a
figure: `docs/results/NAME.md` says when, on which machine, at which commit and with which command it was
measured, then the command's result (its Markdown table lines, and sections of the reports it wrote).
A page includes it with `--8<-- "NAME.md"` (pymdownx.snippets; `mkdocs build --strict` fails on a missing one).

    .venv/bin/python scripts/record_result.py default_run \\
        --report "data/08_reporting/transfer_comparison.md/*/transfer_comparison.md" Verdict \\
        -- .venv/bin/kedro run

Each part is a named section, so a page can include one: `--8<-- "default_run.md:measured"` (where, when,
how long), `default_run.md:printed` (its tables), `default_run.md:transfer-comparison-verdict` (a report's
section: the report's file name and the section's title, in lower case joined by hyphens).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """The CPU's model name and the cores this process may use."""
    model = platform.processor() or platform.machine()
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


def commit(root: Path) -> str:
    """The commit measured, marked when the work tree differs from it (the figure is then of no commit)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True)
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def report_section(pattern: str, title: str, root: Path) -> str:
    """Section `title` (a `## ` heading) of the newest file matching `pattern`, without its heading."""
    files = sorted(glob.glob(pattern, root_dir=root))
    if not files:
        raise SystemExit(f"--report {pattern}: the command wrote no such file")
    text = (root / files[-1]).read_text()
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if not found:
        raise SystemExit(f"--section {title}: no '## {title}' in {files[-1]}")
    return found.group(1).strip()


def slug(text: str) -> str:
    """A snippet section's name: lower case, words joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def marked(name: str, lines: list[str]) -> list[str]:
    """`lines` as a named section a page can include alone: `--8<-- "RESULT.md:NAME"`."""
    return [f"<!-- --8<-- [start:{name}] -->", *lines, f"<!-- --8<-- [end:{name}] -->", ""]


def record(name: str, command: list[str], out_dir: Path, reports: list[list[str]]) -> Path:
    """Run `command`, then write docs/results/NAME.md: where and how it was measured, the Markdown table
    lines it printed, and each report's sections (`reports`: [glob, section, ...] each), every part a
    named snippet section."""
    load, measured_commit = os.getloadavg()[0], commit(PROJECT_ROOT)  # what ran: the tree as it starts
    started = time.perf_counter()
    # its log (stderr) passes through as it runs; what it prints is echoed and kept for its tables
    with subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True) as process:
        printed = []
        for line in process.stdout:
            sys.stdout.write(line)
            printed.append(line)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed (exit {process.returncode}); nothing recorded")
    measured = (
        f"Measured {datetime.date.today().isoformat()} on {machine()} (load average {load:.1f} when it started), "
        f"commit `{measured_commit}`: `{shlex.join(command)}` took **{wall:.1f} s** wall."
    )
    lines = [f"<!-- written by scripts/record_result.py {name}; measure again rather than edit -->"]
    lines += marked("measured", [measured, ""])
    table = [line.rstrip("\n") for line in printed if line.startswith("|")]
    if table:
        lines += marked("printed", [*table, ""])
    for pattern, *sections in reports:
        report = Path(pattern).name.split(".")[0]
        for section in sections:
            quoted = [f"**{section}**", "", *report_section(pattern, section, PROJECT_ROOT).split("\n")]
            lines += marked(f"{slug(report)}-{slug(section)}", [*(f"> {line}" if line else ">" for line in quoted), ""])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the result's name: docs/results/NAME.md")
    parser.add_argument(
        "--report",
        nargs="+",
        action="append",
        default=[],
        metavar=("GLOB", "SECTION"),
        help="a report the command writes (a glob from the project root), then the `## ` sections to keep; repeatable",
    )
    parser.add_argument("--out-dir", type=Path, default=PROJECT_ROOT / "docs" / "results")
    argv = sys.argv[1:]
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("give the command to measure after --")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    if any(len(report) < 2 for report in args.report):
        parser.error("--report GLOB SECTION [SECTION ...]: name at least one section of each report")
    print(record(args.name, argv[split + 1 :], args.out_dir, args.report))


if __name__ == "__main__":
    main()
