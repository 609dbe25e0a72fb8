"""Plots throughput against the number of processes from the peer harness's JSON results.

    python benches/python/scaling_plot.py OUT.png RESULTS.json [RESULTS.json ...]

Each RESULTS.json is what ``../shared/bench/peers.py --out DIR`` writes (DIR/results.json),
from a run with ``--procs 1,2,...``. One panel per workload row family (for example "W3
kv-multi 0/100" or "W1 counter"), one line per backend: the median of the run's repeats at
each P, with every repeat drawn as a dot. The title of each panel gives the machine's measured
parallelism from that run's metadata, since on a machine with few cores a flat line shows
contention, not a limit of the store. Needs matplotlib (the bench venv has it).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path


def family_and_procs(row: str) -> tuple[str, int] | None:
    """("W3 kv-multi 0/100", 2) from "W3 kv-multi 0/100 P=2 N=100000 M=50000"."""
    m = re.match(r"(.*?) P=(\d+)\b", row)
    return (m.group(1).strip(), int(m.group(2))) if m else None


def load(paths: list[str]) -> tuple[dict, list[str]]:
    # family -> backend -> P -> (median, repeats)
    series: dict = defaultdict(lambda: defaultdict(dict))
    notes = []
    for p in paths:
        doc = json.loads(Path(p).read_text())
        par = doc.get("meta", {}).get("cpu_parallelism_2_procs")
        for r in doc["results"]:
            fp = family_and_procs(r.get("row", ""))
            if r.get("status") != "ok" or fp is None:
                continue
            family, procs = fp
            series[family][r["backend"]][procs] = (r["value"], r.get("values", [r["value"]]))
            unit = r.get("unit", "")
            series[family]["_unit"] = unit
        if par is not None:
            name = Path(p).stem if Path(p).stem != "results" else Path(p).parent.name
            notes.append(f"{name}: 2 busy processes do {par:.2f}x one")
    return series, notes


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, paths = sys.argv[1], sys.argv[2:]
    series, notes = load(paths)
    if not series:
        sys.exit("no multi-process rows (P=...) with status ok in the results given")
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 4), squeeze=False)
    for ax, (family, backends) in zip(axes[0], sorted(series.items()), strict=True):
        unit = backends.pop("_unit", "")
        for name, points in sorted(backends.items()):
            ps = sorted(points)
            (line,) = ax.plot(ps, [points[p][0] for p in ps], marker="o", label=name)
            for p in ps:
                reps = points[p][1]
                ax.scatter([p] * len(reps), reps, s=8, alpha=0.4, color=line.get_color())
        ax.set_title(family)
        ax.set_xlabel("processes")
        ax.set_ylabel(unit)
        ax.set_yscale("log")
        ax.set_xticks(sorted({p for pts in backends.values() for p in pts}))
        ax.legend()
    if notes:
        fig.suptitle("; ".join(notes), fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
