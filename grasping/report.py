"""Trial logs and success-rate reports.

``TrialLog`` appends one JSON line per attempt and flushes it at once, so a crash loses nothing that was
logged. ``summarise`` turns the lines into success rates with 95% Wilson intervals per depth source.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from scipy.stats import binomtest


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion ((0, 1) for no trials)."""
    if trials == 0:
        return (0.0, 1.0)
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    lo = 0.0 if successes == 0 else float(ci.low)  # exact at the ends
    hi = 1.0 if successes == trials else float(ci.high)
    return (lo, hi)


class TrialLog:
    """Append-only JSON-lines file of attempts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write: that attempt is redone
        return out

    def done(self) -> set[tuple[int, str]]:
        return {(r["scene_seed"], r["depth"]) for r in self.records()}

    def append(self, record: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


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
