#!/usr/bin/env python3
"""Where a Larson op's time goes: a table (and, where matplotlib is installed, a stacked bar
chart) of nanoseconds per op by part of the work, for persist's `larson` workers and the
system allocator's, from a perf profile of `cargo bench --bench larson` and that run's output.

    cargo build --release --benches
    perf record -F 2000 -o larson.data target/release/deps/larson-HASH --bench --procs 1 \\
        > larson-run.txt
    perf report -i larson.data --no-children --sort pid,symbol --stdio | grep '%' \\
        > larson-report.txt
    python3 benches/larson_breakdown.py larson-report.txt larson-run.txt [--plot FILE.png]

Every worker is a process of its own; the script tells a worker's mode by its symbols (the
system allocator's workers run glibc's malloc, persist's `local` workers never hand arrays
over, so they never take the remote-free path, which is not told apart here: `local` and
`larson` workers are both counted as persist, and the `larson` figure of the run's output
gives the ns per op). A symbol's share of its workers' samples times the median ns per CPU-op
of that mode (from "ops per CPU-s" in the run's per-run lines) is its cost per op. Nothing
here is measured: it only reshapes what perf and the bench printed.
"""

import re
import statistics
import sys

from larson_report import pyplot  # this folder is on sys.path when run as a script

# Parts of the work, by symbol (first match wins). persist's functions are named by module;
# what inlines into another function is counted where perf found it.
PARTS = [
    ("find the block's segment (known-segment index)", r"known::|find_by_page|segment::"),
    ("size class", r"class_of|classes::"),
    ("alloc: cache pop, segment free list", r"alloc::|alloc_into|alloc_from|cache::.*pop"),
    ("free: cache push, segment free list", r"free::|free_found|cache::.*push"),
    ("shared words: journal, settle, records", r"WordStore|sync::|settle|journal"),
    ("glibc malloc/free", r"malloc|_int_free|cfree|free@|unlink_chunk|tcache"),
    ("bench loop: random slot, write a word, hand-off", r"^larson::|child_worker"),
    ("kernel", r"^\[k\]"),
]
OTHER = "other"


def parse_report(text):
    """{pid: {symbol: percent of all samples}} from `perf report --sort pid,symbol`."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\d+):\S+\s+(\[[.k]\])\s+(.+?)(\s+-\s+-\s*)?$", line)
        if not m:
            continue
        pct, pid, space, sym = float(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        sym = sym.strip()
        key = "[k] " + sym if space == "[k]" else sym
        rows.setdefault(pid, {})
        rows[pid][key] = rows[pid].get(key, 0.0) + pct
    return rows


def mode_of(symbols):
    """'system' for glibc's workers, 'persist' for persist's, None for the parent and tools."""
    if any(re.search(r"persist::heap", s) for s in symbols):
        return "persist"
    if any(re.search(r"_int_free|_int_malloc|^malloc$", s) for s in symbols) and any(
        s.startswith("larson::") for s in symbols
    ):
        return "system"
    return None


def ns_per_op(run_text, mode):
    """Median ns per op of CPU time for `mode` ('larson' or 'system') at P = 1."""
    vals = [
        float(m.group(1))
        for m in re.finditer(rf"^run \d+/\d+ {mode}\s+P=1:.*?(\d+) ops per CPU-s", run_text, re.M)
    ]
    if not vals:
        sys.exit(f"larson_breakdown: no '{mode} P=1' lines with ops per CPU-s in the run output")
    return 1e9 / statistics.median(vals)


def part_of(symbol):
    for name, pattern in PARTS:
        if re.search(pattern, symbol):
            return name
    return OTHER


def breakdown(rows, mode):
    """{part: share of the mode's worker samples}."""
    totals = {}
    for symbols in rows.values():
        if mode_of(symbols) != mode:
            continue
        for sym, pct in symbols.items():
            totals[part_of(sym)] = totals.get(part_of(sym), 0.0) + pct
    whole = sum(totals.values())
    return {k: v / whole for k, v in totals.items()} if whole else {}


def main(argv):
    plot = None
    if "--plot" in argv:
        i = argv.index("--plot")
        plot = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    if len(argv) != 2:
        sys.exit(__doc__)
    rows = parse_report(open(argv[0]).read())
    run = open(argv[1]).read()
    modes = {
        "persist (larson)": (breakdown(rows, "persist"), ns_per_op(run, "larson")),
        "system allocator": (breakdown(rows, "system"), ns_per_op(run, "system")),
    }
    parts = [name for name, _ in PARTS] + [OTHER]
    print("| part of the op | " + " | ".join(f"{m} ns" for m in modes) + " |")
    print("|---|" + "---:|" * len(modes))
    for part in parts:
        cells = [shares.get(part, 0.0) * ns for shares, ns in modes.values()]
        if any(c >= 0.05 for c in cells):
            print(f"| {part} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    wholes = " | ".join(f"**{ns:.1f}**" for _, ns in modes.values())
    print(f"| **whole op (CPU time)** | {wholes} |")
    plt = pyplot() if plot else None
    if plt:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        names = list(modes)
        bottoms = [0.0] * len(names)
        for part in parts:
            heights = [modes[m][0].get(part, 0.0) * modes[m][1] for m in names]
            if not any(h >= 0.05 for h in heights):
                continue
            ax.bar(names, heights, bottom=bottoms, label=part)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        ax.set_ylabel("ns per op (CPU time), P = 1")
        ax.set_title("Larson op cost by part: persist against the system allocator")
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(plot)
        print(f"plot: {plot}")


if __name__ == "__main__":
    main(sys.argv[1:])
