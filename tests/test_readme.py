"""The documents say what is true: the README's Python example runs and prints what it says, and every report
and page the README and docs/ point to exists."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXPECTED = "# -> "  # a line of the example that starts so gives a line the example prints


def readme_example() -> tuple[str, list[str]]:
    """The README's first ```python block, and the output its ``# -> `` lines promise."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert match, "README.md has no ```python block"
    code = match.group(1)
    expected = [line[len(EXPECTED):] for line in code.splitlines() if line.startswith(EXPECTED)]
    assert expected, f"the README's example promises no output (no line starting with {EXPECTED!r})"
    return code, expected


def test_readme_example_runs_and_prints_what_it_says():
    code, expected = readme_example()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the README's example failed:\n{proc.stderr}"
    assert proc.stdout.splitlines() == expected, f"printed {proc.stdout!r}, the README says {expected!r}"


def _cited_reports() -> list[tuple[str, str]]:
    """(path, document) for every ``reports/...`` path the documents cite; templates with NAME or S skipped."""
    found = []
    for doc in DOCUMENTS:
        # (a path written `c767398:reports/...` is a report kept in the history only: `git show` reads it)
        for path in re.findall(r"(?<![:\w])reports/[A-Za-z0-9_./*-]*", doc.read_text()):
            path = path.rstrip(".,;:)/")
            if path != "reports" and not re.search(r"NAME|seedS|PATH|WxH", path):
                found.append((path, doc.name))
    return found


def test_every_cited_report_exists():
    assert _cited_reports(), "no reports cited"
    missing = [(path, doc) for path, doc in _cited_reports() if not list(ROOT.glob(path))]
    assert not missing, f"cited but not in reports/: {missing}"


def test_every_linked_page_and_image_exists():
    missing = []
    for doc in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                missing.append((doc.name, target))
    assert not missing, f"links to missing files: {missing}"
