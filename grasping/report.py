"""Trial logs and success-rate reports.

``TrialLog`` appends one JSON line per attempt and flushes it at once, so a crash loses nothing that was
logged. ``summarise`` turns the lines into success rates with 95% Wilson intervals per depth source.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from pipeline.cli import finite_json
from pipeline.errors import DistillGraspError

logger = logging.getLogger(__name__)


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion ((0, 1) for no trials)."""
    if trials == 0:
        return (0.0, 1.0)
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    lo = 0.0 if successes == 0 else float(ci.low)  # exact at the ends
    hi = 1.0 if successes == trials else float(ci.high)
    return (lo, hi)


class TrialLogError(DistillGraspError):
    """A trial log that cannot be read, or a folder another run is writing to."""


class TrialLog:
    """Append-only JSON-lines file of attempts, one flushed line each.

    A last line cut short by a killed run is removed (with a warning) before the next append, so it can neither
    swallow the next record nor count; any other unreadable line stops with its line number. ``lock()`` holds
    the folder for one run at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = None
        self._repaired = False

    def _lines(self) -> tuple[list[str], bool, str]:
        """The file's lines, whether its last line is torn (no newline and not a JSON record), and its text."""
        if not self.path.is_file():
            return [], False, ""
        text = self.path.read_text()
        lines = text.split("\n")
        last = lines.pop()  # "" when the file ends with a newline
        torn = False
        if last.strip():
            try:
                json.loads(last)
                lines.append(last)
            except json.JSONDecodeError:
                torn = True
        return lines, torn, text

    def records(self) -> list[dict]:
        lines, _, _ = self._lines()
        out, bad = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad.append(number)
                continue
            if not isinstance(record, dict):
                bad.append(number)
                continue
            out.append(record)
        if bad:
            raise TrialLogError(f"{self.path}: line(s) {', '.join(map(str, bad))} are not attempt records; "
                                "repair or remove them, or use another --out")
        return out

    def done(self, records: list[dict] | None = None) -> set[tuple[int, str]]:
        """(scene seed, depth source) of every logged attempt (of ``records`` when already read)."""
        records = self.records() if records is None else records
        return {(r["scene_seed"], r["depth"]) for r in records if "scene_seed" in r and "depth" in r}

    def repair(self) -> None:
        """Cut a torn last line (a run killed mid-write); that attempt is made again."""
        lines, torn, text = self._lines()
        if torn:
            kept = "".join(line + "\n" for line in lines)
            logger.warning("%s: removed a torn last line (%d bytes) left by a run that was stopped mid-write",
                           self.path, len(text) - len(kept))
            self.path.write_text(kept)
        elif text and not text.endswith("\n"):
            with open(self.path, "a") as fh:
                fh.write("\n")

    def append(self, record: dict) -> None:
        if not self._repaired:
            self.repair()
            self._repaired = True
        with open(self.path, "a") as fh:
            fh.write(json.dumps(finite_json(record), allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def lock(self) -> TrialLog:
        """Hold the log's folder for this run (released by ``unlock`` or at exit); a second run is refused."""
        import fcntl

        fh = open(self.path.parent / ".lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise TrialLogError(f"{self.path.parent} is in use by another run; wait for it to end or use "
                                "another --out") from None
        self._lock = fh
        return self

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> TrialLog:
        return self.lock()

    def __exit__(self, *exc) -> None:
        self.unlock()


def summarise(records: list[dict]) -> dict:
    """{SOURCE: {"trials", "successes", "rate", "ci95", "perception_ms_median"}} over the given attempts."""
    out: dict = {}
    for source in dict.fromkeys(r["depth"] for r in records):
        rows = [r for r in records if r["depth"] == source]
        n, k = len(rows), sum(bool(r["success"]) for r in rows)
        ms = [r["perception_ms"] for r in rows if r.get("perception_ms") is not None]
        reasons: dict[str, int] = {}
        for r in rows:
            if not r["success"]:
                key = r["reason"].split(":")[0]
                reasons[key] = reasons.get(key, 0) + 1
        lo, hi = wilson_interval(k, n)
        out[source] = {"trials": n, "successes": k, "rate": k / n if n else 0.0, "ci95": [lo, hi],
                       "perception_ms_median": float(np.median(ms)) if ms else None, "failures": reasons}
    return out


def markdown_table(summary: dict) -> str:
    """The summary as a markdown table (what the README shows)."""
    rows = ["| depth source | successes | rate | 95% interval | perception median | failures |",
            "|---|---|---|---|---|---|"]
    for source, r in summary.items():
        lo, hi = r["ci95"]
        fails = ", ".join(f"{n} {why}" for why, n in sorted(r.get("failures", {}).items(), key=lambda kv: -kv[1]))
        ms = r["perception_ms_median"]
        rows.append(f"| {source} | {r['successes']}/{r['trials']} | {r['rate']:.0%} | {lo:.0%}-{hi:.0%} | "
                    f"{'-' if ms is None else f'{ms:.0f} ms'} | {fails or '-'} |")
    return "\n".join(rows)


def success_figure(summary: dict):
    """A bar per depth source: success rate with its 95% Wilson interval and successes/trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    rates = [summary[n]["rate"] * 100 for n in names]
    lo = [r - summary[n]["ci95"][0] * 100 for n, r in zip(names, rates)]
    hi = [summary[n]["ci95"][1] * 100 - r for n, r in zip(names, rates)]
    fig, ax = plt.subplots(figsize=(max(1.4 * len(names) + 2, 5.0), 3.5))
    ax.bar(names, rates, yerr=[lo, hi], capsize=5, color="#4a7fb0")
    for i, n in enumerate(names):
        ax.text(i, 2, f"{summary[n]['successes']}/{summary[n]['trials']}", ha="center", color="white")
    ax.set_xlim(-0.75, len(names) - 0.25)
    ax.set_ylim(0, 100)
    ax.set_ylabel("grasp success (%)")
    ax.set_title("success per depth source\n(95% Wilson interval)")
    fig.tight_layout()
    return fig


def plot_success(summary: dict, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    fig = success_figure(summary)
    fig.savefig(path, dpi=120)
    plt.close(fig)
