"""Trial logs and success-rate reports.

``TrialLog`` appends one JSON line per attempt and flushes it at once, so a crash loses nothing that was
logged. ``summarise`` turns the lines into success rates with 95% Wilson intervals per depth source.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
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


# Why an attempt failed: the fixed list every summary counts by (a reason's text up to its first colon).
FAILURES = ("no grasp found", "perception", "completion", "hit an object on the way down",
            "arm hit the scene on the way down", "empty gripper", "dropped", "picked an opaque distractor",
            "IK failure", "limit", "aborted", "dry run")


def failure_kind(reason: str) -> str:
    """The entry of ``FAILURES`` a failed attempt's reason belongs to ("other" for none: a bug to report)."""
    kind = reason.split(":")[0]
    return kind if kind in FAILURES else "other"


def _median(values: list) -> float | None:
    return float(np.median(values)) if values else None


def _failures(rows: list[dict]) -> dict[str, int]:
    """How many of ``rows`` failed for each ``FAILURES`` kind."""
    return dict(Counter(failure_kind(r["reason"]) for r in rows if not r["success"]))


def _failure_text(failures: dict[str, int]) -> str:
    """"7 empty gripper, 2 no grasp found", most frequent first ("-" for none)."""
    return ", ".join(f"{n} {why}" for why, n in sorted(failures.items(), key=lambda kv: -kv[1])) or "-"


def summarise(records: list[dict]) -> dict:
    """Per depth source over the given single-pick attempts: ``trials``, ``successes``, ``rate`` and ``ci95``
    of the first try (the single-pick figure); ``within_tries`` (successes, rate, ci95 and the most tries a
    scene was given) for the closed loop that retries a failed pick; the failure reasons of the first try; the
    median perception time and the median of each perception stage; for a network, the median over attempts of
    perception time over the network's own time in the same look (``perception_per_network_median``: what
    perception costs beyond the network, free of the machine's drift between separate timings)."""
    out: dict = {}
    for source in dict.fromkeys(r["depth"] for r in records):
        rows = [r for r in records if r["depth"] == source]
        n, k = len(rows), sum(bool(r["success"]) for r in rows)
        k_within = sum(bool(r.get("success_within", r["success"])) for r in rows)
        ms = [r["perception_ms"] for r in rows if r.get("perception_ms") is not None]
        stages = {s: _median([r["stages_ms"][s] for r in rows if s in r.get("stages_ms", {})])
                  for s in dict.fromkeys(s for r in rows for s in r.get("stages_ms", {}))}
        ratios = [r["perception_ms"] / r["stages_ms"]["network"] for r in rows
                  if r.get("perception_ms") is not None and r.get("stages_ms", {}).get("network")]
        lo, hi = wilson_interval(k, n)
        wlo, whi = wilson_interval(k_within, n)
        out[source] = {"trials": n, "successes": k, "rate": k / n if n else 0.0, "ci95": [lo, hi],
                       "within_tries": {"tries": max((r.get("tries", 1) for r in rows), default=1),
                                        "successes": k_within, "rate": k_within / n if n else 0.0,
                                        "ci95": [wlo, whi]},
                       "perception_ms_median": _median(ms), "stages_ms_median": stages, "failures": _failures(rows)}
        if ratios:
            out[source]["perception_per_network_median"] = _median(ratios)
    return out


def markdown_table(summary: dict) -> str:
    """The summary as a markdown table (what the README shows)."""
    rows = ["| depth source | first try | 95% interval | within tries | perception median | failures (first try) |",
            "|---|---|---|---|---|---|"]
    for source, r in summary.items():
        lo, hi = r["ci95"]
        ms = r["perception_ms_median"]
        w = r.get("within_tries", {"successes": r["successes"], "tries": 1})
        per_net = r.get("perception_per_network_median")
        timing = "-" if ms is None else f"{ms:.0f} ms" + ("" if per_net is None else f", {per_net:.2f}x the network")
        rows.append(f"| {source} | {r['successes']}/{r['trials']} ({r['rate']:.0%}) | {lo:.0%}-{hi:.0%} | "
                    f"{w['successes']}/{r['trials']} in {w['tries']} | {timing} | "
                    f"{_failure_text(r.get('failures', {}))} |")
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


def summarise_clutter(records: list[dict]) -> dict:
    """Per depth source over clutter-removal rounds (``grasping.clutter``; only rounds whose end line is logged
    count): ``rounds``, ``attempts``, ``successes``, ``rate`` (successful picks / attempts) with ``rate_ci95``,
    ``objects`` (placed), ``removed`` (by successful picks), ``cleared`` (removed / placed) with
    ``cleared_ci95``, ``gone`` (left the workspace unpicked, e.g. knocked off the table), ``rounds_cleared``
    (every object placed removed by the robot), how the rounds ended (``ends``), the failure reasons and the
    median perception time."""
    ends = [r for r in records if r.get("round_end")]
    complete = {(r["scene_seed"], r["depth"]) for r in ends}
    picks = [r for r in records if not r.get("round_end") and (r.get("scene_seed"), r.get("depth")) in complete]
    out: dict = {}
    for source in dict.fromkeys(r["depth"] for r in ends):
        rounds = [r for r in ends if r["depth"] == source]
        rows = [r for r in picks if r["depth"] == source]
        n, k = len(rows), sum(bool(r["success"]) for r in rows)
        placed = sum(r.get("objects_placed") or 0 for r in rounds)
        removed = sum(r.get("objects_removed", 0) for r in rounds)
        ms = [r["perception_ms"] for r in rows if r.get("perception_ms") is not None]
        out[source] = {"rounds": len(rounds), "attempts": n, "successes": k, "rate": k / n if n else 0.0,
                       "rate_ci95": list(wilson_interval(k, n)), "objects": placed, "removed": removed,
                       "cleared": removed / placed if placed else 0.0,
                       "cleared_ci95": list(wilson_interval(removed, placed)),
                       "gone": sum(r.get("objects_gone", 0) for r in rounds),
                       "rounds_cleared": sum(bool(r.get("objects_placed")) and r.get("objects_removed") ==
                                             r.get("objects_placed") for r in rounds),
                       "ends": dict(Counter(r["end"] for r in rounds)), "failures": _failures(rows),
                       "perception_ms_median": _median(ms)}
    return out


def clutter_markdown_table(summary: dict) -> str:
    """A clutter-removal summary as a markdown table."""
    rows = [("| depth source | rounds | picks | success rate | 95% interval | cleared | 95% interval | "
             "rounds cleared | failures |"), "|---|---|---|---|---|---|---|---|---|"]
    for source, r in summary.items():
        (lo, hi), (clo, chi) = r["rate_ci95"], r["cleared_ci95"]
        rows.append(f"| {source} | {r['rounds']} | {r['successes']}/{r['attempts']} | {r['rate']:.0%} | "
                    f"{lo:.0%}-{hi:.0%} | {r['removed']}/{r['objects']} ({r['cleared']:.0%}) | {clo:.0%}-{chi:.0%} | "
                    f"{r['rounds_cleared']}/{r['rounds']} | {_failure_text(r['failures'])} |")
    return "\n".join(rows)


def plot_clutter(summary: dict, path: str | Path) -> None:
    """Two bars per depth source: pick success rate and share of objects cleared, with 95% Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(1.8 * len(names) + 2, 5.0), 3.5))
    for shift, key, ci, label, colour in ((-0.2, "rate", "rate_ci95", "pick success", "#4a7fb0"),
                                          (0.2, "cleared", "cleared_ci95", "objects cleared", "#6aa56a")):
        vals = np.array([summary[n][key] * 100 for n in names])
        err = [vals - [summary[n][ci][0] * 100 for n in names], [summary[n][ci][1] * 100 for n in names] - vals]
        ax.bar(x + shift, vals, 0.38, yerr=err, capsize=4, color=colour, label=label)
    for i, n in enumerate(names):
        s = summary[n]
        ax.text(i - 0.2, 2, f"{s['successes']}/{s['attempts']}", ha="center", color="white", fontsize=8)
        ax.text(i + 0.2, 2, f"{s['removed']}/{s['objects']}", ha="center", color="white", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_xlim(-0.75, len(names) - 0.25)
    ax.set_ylim(0, 122)  # room above 100% for the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("%")
    ax.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)
    ax.set_title("clutter removal per depth source\n(95% Wilson intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
