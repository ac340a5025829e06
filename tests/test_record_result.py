"""scripts/record_result.py: a measured result is a file that says when, where, at which commit and with
which command it was measured, then what the command printed; the docs include it, never retype it."""

import re
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

SCRIPT = str(PROJECT_ROOT / "scripts" / "record_result.py")


def record(tmp_path, *arguments):
    return subprocess.run(
        [sys.executable, SCRIPT, "demo", "--out-dir", str(tmp_path), *arguments],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def test_a_result_says_when_where_and_how_then_the_table_and_the_reports_sections(tmp_path):
    report = tmp_path / "report.md"
    sections = "## Verdict\n\nBetter by 2 points.\n\nOpen: one.\n\n## Protocol\n\nsplits\n\n## Cost\n\n9 s\n"
    report.write_text(f"# Report\n\n{sections}")
    measuring = tmp_path / "measure.py"
    measuring.write_text("print('a log line')\nprint('| stage | s |')\nprint('| ingest | 3.1 |')\n")
    command = [sys.executable, str(measuring)]
    done = record(tmp_path, "--report", str(report), "Verdict", "Cost", "--", *command)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "demo.md").read_text()
    assert "Measured 20" in text and "started), commit `" in text and "s** wall" in text and "measure.py`" in text
    assert "| ingest | 3.1 |" in text and "a log line" not in text
    assert "> Better by 2 points.\n>\n> Open: one." in text and "> 9 s" in text and "splits" not in text
    assert text.index("**Verdict**") < text.index("Better") < text.index("**Cost**") < text.index("9 s")
    assert "a log line" in done.stdout  # the command's output passes through as it runs
    # each part a named section a page can include alone
    for name in ("measured", "printed", "report-verdict", "report-cost"):
        assert f"<!-- --8<-- [start:{name}] -->" in text and f"<!-- --8<-- [end:{name}] -->" in text
    assert "(load average " in text


def test_a_command_that_fails_records_nothing(tmp_path):
    done = record(tmp_path, "--", sys.executable, "-c", "raise SystemExit(3)")
    assert done.returncode != 0 and "failed (exit 3)" in done.stderr and not (tmp_path / "demo.md").exists()


def test_the_readme_quotes_the_recorded_default_run_and_stays_one_screenful():
    """The README (read on its own, where no snippet is included) quotes the default run's verdict: every
    figure of its quote is in the recorded run's verdict (docs/results), so it cannot drift from it."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    quote = "\n".join(line for line in readme.splitlines() if line.startswith("> "))
    recorded = (PROJECT_ROOT / "docs" / "results" / "default_run_reports.md").read_text()
    verdict = recorded.split("[start:transfer-comparison-verdict]")[1].split("[end:transfer-comparison-verdict]")[0]
    figures = re.findall(r"[-+−]?\d+\.\d+", quote)
    assert len(figures) >= 10 and "docs/results/default_run_reports.md" in readme
    assert [figure for figure in figures if figure.replace("−", "-") not in verdict.replace("−", "-")] == []
