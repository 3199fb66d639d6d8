"""Draws the PNG charts from a results JSON. Runs in the ``tools`` venv (it
needs matplotlib, which s3pull's own environment does not carry).

Usage: python charts.py RESULTS_JSON OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen before this import

S3PULL_COLOR = "#d62728"
PEER_COLOR = "#7f7f7f"


def _ok(scenario: dict) -> list[dict]:
    return [c for c in scenario["clients"] if c["status"] == "ok"]


def _color(client: dict) -> str:
    return S3PULL_COLOR if client["name"].startswith("s3pull") else PEER_COLOR


#: Sweeps of one s3pull option, drawn as lines of their own, not as bars.
SWEEPS = ("concurrency-wan", "processes-medium-wan", "processes-tiny-wan")


def throughput(scenarios: list[dict], out: Path) -> None:
    shown = [s for s in scenarios if s["name"] not in SWEEPS and _ok(s)]
    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.2 * len(shown) + 0.5), squeeze=False)
    for ax, s in zip(axes[:, 0], shown, strict=True):
        clients = _ok(s)
        medians = [c["median"] for c in clients]
        errors = [
            [c["median"] - c["min"] for c in clients],
            [c["max"] - c["median"] for c in clients],
        ]
        ys = range(len(clients))
        ax.barh(ys, medians, xerr=errors, color=[_color(c) for c in clients], capsize=3)
        ax.set_yticks(list(ys), [c["label"] for c in clients], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{s['name']}: {s['title']}", fontsize=9, loc="left")
        ax.set_xlabel(f"median {s['unit']} (bar: min-max)", fontsize=8)
        for y, value in zip(ys, medians, strict=True):
            ax.text(value, y, f" {value:,.0f}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)


def peak_rss(scenarios: list[dict], out: Path) -> None:
    shown = [s for s in scenarios if _ok(s)]
    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.2 * len(shown) + 0.5), squeeze=False)
    for ax, s in zip(axes[:, 0], shown, strict=True):
        clients = _ok(s)
        values = [c["peak_rss"] / 1e6 for c in clients]
        ys = range(len(clients))
        ax.barh(ys, values, color=[_color(c) for c in clients])
        ax.set_yticks(list(ys), [c["label"] for c in clients], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{s['name']}: peak RSS", fontsize=9, loc="left")
        ax.set_xlabel("MB (max over counted runs)", fontsize=8)
        for y, value in zip(ys, values, strict=True):
            ax.text(value, y, f" {value:,.0f}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "peak_rss.png", dpi=110)
    plt.close(fig)


def _sweep_line(ax, points: list[tuple[int, dict]]) -> None:
    """s3pull's median (bars: min-max) at each value of the swept option."""
    ax.errorbar(
        [n for n, _ in points],
        [c["median"] for _, c in points],
        yerr=[
            [c["median"] - c["min"] for _, c in points],
            [c["max"] - c["median"] for _, c in points],
        ],
        marker="o",
        color=S3PULL_COLOR,
        capsize=3,
        label="s3pull",
    )


def concurrency(scenarios: list[dict], out: Path) -> None:
    sweep = next((s for s in scenarios if s["name"] == "concurrency-wan"), None)
    if sweep is None or not _ok(sweep):
        return
    points = sorted((int(c["name"].removeprefix("s3pull-c")), c) for c in _ok(sweep))
    xs = [n for n, _ in points]
    fig, ax = plt.subplots(figsize=(7, 5))
    _sweep_line(ax, points)
    top = max(c["max"] for _, c in points)
    # Context: what N paced connections could carry, and the peers on the same
    # object and profile (the large-wan-shm scenario), when it ran.
    ax.plot(xs, [n * 80 * 1.048576 for n in xs], ls=":", color="black", label="N x 80 MiB/s")
    peers = next((s for s in scenarios if s["name"] == "large-wan-shm"), None)
    others = [c for c in (_ok(peers) if peers else []) if not c["name"].startswith("s3pull")]
    for i, c in enumerate(others):
        color = plt.get_cmap("tab10")(i if i < 3 else i + 1)  # skip tab10's red (s3pull)
        ax.axhline(c["median"], ls="--", lw=1, color=color, label=c["label"])
        top = max(top, c["median"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_ylim(0, top * 1.15)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    ax.set_xlabel("--concurrency (ranged GETs in flight)")
    ax.set_ylabel("median MB/s")
    ax.set_title(sweep["title"], fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "concurrency.png", dpi=110)
    plt.close(fig)


def processes(scenarios: list[dict], out: Path) -> None:
    """Throughput vs ``--processes``, one panel per sweep, s5cmd's median of the
    same objects (its scenario without the sweep) as the reference line."""
    sweeps = [
        (s, next((t for t in scenarios if t["name"] == s["name"].removeprefix("processes-")), None))
        for s in scenarios
        if s["name"].startswith("processes-") and _ok(s)
    ]
    if not sweeps:
        return
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6 * len(sweeps), 4.5), squeeze=False)
    for ax, (sweep, peers) in zip(axes[0], sweeps, strict=True):
        points = sorted((int(c["name"].removeprefix("s3pull-p")), c) for c in _ok(sweep))
        xs = [n for n, _ in points]
        _sweep_line(ax, points)
        for c in _ok(peers) if peers else []:
            if c["name"] == "s5cmd":
                ax.axhline(c["median"], ls="--", lw=1, color=PEER_COLOR, label=c["label"])
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
        ax.set_xlabel("--processes")
        ax.set_ylabel(f"median {sweep['unit']}")
        ax.set_title(sweep["title"], fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "processes.png", dpi=110)
    plt.close(fig)


def main() -> None:
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("throughput.png", "peak_rss.png", "concurrency.png", "processes.png"):
        (out / stale).unlink(missing_ok=True)  # a chart this run cannot draw must not linger
    for draw in (throughput, peak_rss, concurrency, processes):
        draw(results["scenarios"], out)


if __name__ == "__main__":
    main()
