#!/usr/bin/env python3
"""Tables (and, where matplotlib is installed, a plot) from saved outputs of
`cargo bench --bench larson` and `cargo bench --bench alloc`, one pair per build.

    python3 benches/larson_report.py LABEL=LARSON_OUT[,ALLOC_OUT] ... [--plot FILE.png]

Each LABEL names a build (say `main` and `branch`) whose bench outputs were saved to files,
run in the same session so that the ratios compare like with like. The script reads the
"baselines in the same runs" table of the Larson output (larson, local and system ops/s per P)
and, if given, the 64 B row of the alloc output, and prints one markdown table: ops/s per P,
persist / system, and the scaling ratio (persist's speedup over P = 1 divided by the system
allocator's, from the same runs), plus the 64 B pair ratio. Nothing here is measured: it only
reshapes what the benches printed.
"""

import re
import sys


def _num(cell):
    """A table cell such as "1.23M" or "0.98x" as a number."""
    return float(cell.rstrip("Mx")) * (1e6 if cell.endswith("M") else 1)


def parse_larson(text):
    """Rows of the baselines table: {P: (larson, local, system, scaling)} in ops/s."""
    rows = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("| P | larson ops/s |"):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                if rows:
                    break
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not cells[0].isdigit():
                continue
            p = int(cells[0])
            rows[p] = (_num(cells[1]), _num(cells[3]), _num(cells[5]), float(cells[8]))
    return rows


def parse_alloc(text):
    """(system ns, persist ns, ratio) of the 64 B pair, or None."""
    m = re.search(r"^\| 64 B \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x", text, re.M)
    return tuple(float(x) for x in m.groups()) if m else None


def pyplot():
    """matplotlib.pyplot drawing to files, or None (said on stderr) where it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib: no plot)", file=sys.stderr)
        return None
    return plt


def main(argv):
    plot = None
    if "--plot" in argv:
        i = argv.index("--plot")
        plot = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    builds = []
    for arg in argv:
        label, _, files = arg.partition("=")
        paths = files.split(",")
        larson = parse_larson(open(paths[0]).read())
        alloc = parse_alloc(open(paths[1]).read()) if len(paths) > 1 else None
        builds.append((label, larson, alloc))
    print(
        "| build | P | persist larson ops/s | persist local ops/s | system ops/s "
        "| larson / system | scaling / system's | 64 B pair / system |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, larson, alloc in builds:
        for p, (lar, loc, s, scaling) in sorted(larson.items()):
            pair = f"{alloc[2]:.2f}x" if alloc and p == min(larson) else ""
            print(
                f"| {label} | {p} | {lar / 1e6:.2f}M | {loc / 1e6:.2f}M | {s / 1e6:.2f}M "
                f"| {lar / s:.2f}x | {scaling:.2f} | {pair} |"
            )
    plt = pyplot() if plot else None
    if plt:
        fig, ax = plt.subplots()
        for label, larson, _ in builds:
            ps = sorted(larson)
            ax.plot(ps, [larson[p][0] / 1e6 for p in ps], "o-", label=f"{label}: persist larson")
            ax.plot(ps, [larson[p][1] / 1e6 for p in ps], "s--", label=f"{label}: persist local")
        last = builds[-1][1]
        ps = sorted(last)
        ax.plot(ps, [last[p][2] / 1e6 for p in ps], "k^:", label="system allocator")
        ax.set_xlabel("processes P")
        ax.set_ylabel("M ops/s")
        ax.legend()
        fig.savefig(plot)


if __name__ == "__main__":
    main(sys.argv[1:])
