//! Allocator micro-benchmarks: persist's heap against the system allocator, in the same
//! criterion group and the same run (STYLE.md, Benchmarks).
//!
//! - `alloc_free/{persist,system}/SIZE`: one alloc + free pair of 16 B, 64 B, 256 B and 4 KiB.
//!   persist's pair is `alloc`, `settle(0)` (clears the block journal, as every real caller
//!   must once it has linked the block) and `free`, on a store file in a temp dir on the local
//!   disk; the system's is `System.alloc` + `System.dealloc` with the same `Layout` (16-aligned,
//!   as persist's blocks are).
//! - `free/{local,remote}/64`: the cost of one `free` of a 64 B block that the freeing
//!   participant allocated itself, against one that another participant allocated. Both
//!   participants live in this process (two `Attached` handles on one file hold two slots), so
//!   this isolates the software path; `benches/larson.rs` measures the cross-process
//!   (cross-core) cost.
//!
//! After criterion, the bench prints a table of ratios persist/System per size, from its own
//! interleaved timing loop (medians of many short runs, persist and System alternating), next to
//! the ratio of criterion's own median estimates as a cross-check.

mod common;

use common::{bench_mode, command_line, loadavg, machine_lines, median, TempDir};
use criterion::{black_box, BenchmarkId, Criterion};
use persist::heap::{Attached, Block, Heap};
use persist::sync::{Liveness, Ordering, WordStore};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const SIZES: [u64; 4] = [16, 64, 256, 4096];
/// The size of the remote/local free measurement.
const FREE_SIZE: u64 = 64;
/// Blocks per batch in the free measurement: enough to average over, few enough to stay in L2.
const FREE_BATCH: usize = 1000;
/// The target the 64 B pair is judged by: persist at most this many times System's time.
const PAIR_TARGET: f64 = 2.0;
/// The target for remote free: at most this many times a local free.
const REMOTE_TARGET: f64 = 2.0;

/// One persist alloc + settle + free pair.
#[inline(always)]
fn persist_pair<W: WordStore, L: Liveness>(h: &Heap<'_, W, L>, size: u64) {
    let b = h.alloc(black_box(size)).expect("alloc");
    h.settle(0).expect("settle");
    h.free(black_box(b)).expect("free");
}

/// One System alloc + dealloc pair with the same layout.
#[inline(always)]
fn system_pair(layout: Layout) {
    // SAFETY: `layout` has a non-zero size (every size in SIZES is >= 16); the pointer is
    // checked for null and given back with the same layout it was allocated with.
    unsafe {
        let p = System.alloc(black_box(layout));
        assert!(!p.is_null(), "System.alloc failed");
        System.dealloc(black_box(p), layout);
    }
}

fn layout_of(size: u64) -> Layout {
    Layout::from_size_align(size as usize, 16).expect("valid layout")
}

/// Allocates `n` blocks with `alloc_h` (touching each, as a user would), then frees them all
/// with `free_h`; returns the time of the frees alone.
fn free_batch<W: WordStore, L: Liveness>(
    store: &W,
    alloc_h: &Heap<'_, W, L>,
    free_h: &Heap<'_, W, L>,
    n: usize,
    blocks: &mut Vec<Block>,
) -> Duration {
    blocks.clear();
    for i in 0..n {
        let b = alloc_h.alloc(FREE_SIZE).expect("alloc");
        alloc_h.settle(0).expect("settle");
        store
            .store(b.get(), i as u64, Ordering::Relaxed)
            .expect("write block");
        blocks.push(b);
    }
    let t = Instant::now();
    for &b in blocks.iter() {
        free_h.free(black_box(b)).expect("free");
    }
    t.elapsed()
}

fn criterion_benches(c: &mut Criterion, a: &Attached, b: &Attached) {
    let ha = a.heap();
    let hb = b.heap();
    let store = a.region().store();

    let mut g = c.benchmark_group("alloc_free");
    for &size in &SIZES {
        g.bench_with_input(BenchmarkId::new("persist", size), &size, |bch, &s| {
            bch.iter(|| persist_pair(&ha, s))
        });
        let layout = layout_of(size);
        g.bench_with_input(BenchmarkId::new("system", size), &layout, |bch, &l| {
            bch.iter(|| system_pair(l))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("free");
    let mut blocks = Vec::with_capacity(FREE_BATCH);
    for (name, free_h) in [("local", &ha), ("remote", &hb)] {
        g.bench_function(BenchmarkId::new(name, FREE_SIZE), |bch| {
            bch.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(FREE_BATCH as u64) as usize;
                    total += free_batch(store, &ha, free_h, n, &mut blocks);
                    left -= n as u64;
                }
                total
            })
        });
    }
    g.finish();
}

/// ns per call of `f`, over `iters` calls.
#[inline(always)]
fn ns_per_op(iters: u64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// Where criterion writes its estimates (as criterion 0.5 decides it, minus `cargo metadata`).
fn criterion_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    // target/release/deps/alloc-HASH -> target/criterion
    std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Criterion's median point estimate (ns) for `group/id`, if it was written by this run.
fn criterion_median(group: &str, id: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None; // stale: filtered out of this run
    }
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.find("\"median\"")?..];
    let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.1}"))
}

fn main() {
    let full = bench_mode();
    let load_start = loadavg();
    let started = SystemTime::now();
    let dir = TempDir::new("alloc");
    let path = dir.path().join("alloc.db");
    let a = Attached::open(&path).expect("open the store (participant A)");
    let b = Attached::open(&path).expect("open the store again (participant B)");
    assert_ne!(
        a.slot(),
        b.slot(),
        "two Attached handles in one process must be two participants"
    );

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(40)
        .configure_from_args();
    criterion_benches(&mut c, &a, &b);
    c.final_summary();

    // ---- own interleaved measurement: the ratio table -----------------------------------
    let (rounds, iters) = if full { (31, 50_000) } else { (3, 1_000) };
    let ha = a.heap();
    let hb = b.heap();
    let store = a.region().store();
    let mut rows = Vec::new();
    for &size in &SIZES {
        let layout = layout_of(size);
        // Warm both paths (segment creation, page faults, glibc's bins).
        ns_per_op(iters, || persist_pair(&ha, size));
        ns_per_op(iters, || system_pair(layout));
        let mut p = Vec::new();
        let mut s = Vec::new();
        for r in 0..rounds {
            if r % 2 == 0 {
                p.push(ns_per_op(iters, || persist_pair(&ha, size)));
                s.push(ns_per_op(iters, || system_pair(layout)));
            } else {
                s.push(ns_per_op(iters, || system_pair(layout)));
                p.push(ns_per_op(iters, || persist_pair(&ha, size)));
            }
        }
        let best = |v: &[f64]| v.iter().cloned().fold(f64::MAX, f64::min);
        let best_ratio = best(&p) / best(&s);
        let (pm, sm) = (median(&mut p), median(&mut s));
        let cp = criterion_median("alloc_free", &format!("persist/{size}"), started);
        let cs = criterion_median("alloc_free", &format!("system/{size}"), started);
        let cr = cp.zip(cs).map(|(p, s)| p / s);
        rows.push((size, sm, pm, pm / sm, best_ratio, cr));
    }

    let free_rounds = if full { 201 } else { 3 };
    let mut blocks = Vec::with_capacity(FREE_BATCH);
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for r in 0..free_rounds + 2 {
        let order: [(&mut Vec<f64>, _); 2] = if r % 2 == 0 {
            [(&mut local, &ha), (&mut remote, &hb)]
        } else {
            [(&mut remote, &hb), (&mut local, &ha)]
        };
        for (out, free_h) in order {
            let d = free_batch(store, &ha, free_h, FREE_BATCH, &mut blocks);
            if r >= 2 {
                out.push(d.as_nanos() as f64 / FREE_BATCH as f64); // the first two warm up
            }
        }
    }
    let (lm, rm) = (median(&mut local), median(&mut remote));
    let cl = criterion_median("free", &format!("local/{FREE_SIZE}"), started);
    let cr = criterion_median("free", &format!("remote/{FREE_SIZE}"), started);

    let st = a.check().expect("allocator check after the run");
    assert_eq!(st.blocks_allocated, 0, "every block was freed");

    println!();
    println!("== persist allocator vs System: alloc+free pair (ns, median) ==");
    for l in machine_lines() {
        println!("{l}");
    }
    println!("command: {}", command_line("alloc"));
    println!("store: {} (temp dir on the local disk)", path.display());
    println!(
        "load average (1/5/15 min): {load_start} at start, {} at end",
        loadavg()
    );
    println!(
        "own loop: {rounds} interleaved runs x {iters} pairs per size (medians; best-of: fastest \
         run of each); criterion: ratio of its median estimates"
    );
    println!();
    println!(
        "| size | System ns | persist ns | persist/System | best-of ratio | criterion ratio | target |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|");
    for (size, sm, pm, ratio, best_ratio, cr) in &rows {
        let target = if *size == 64 {
            let ok = if *ratio <= PAIR_TARGET {
                "met"
            } else {
                "MISSED"
            };
            format!("<= {PAIR_TARGET:.1}x: {ok}")
        } else {
            String::new()
        };
        let crs = cr.map_or_else(|| "n/a".into(), |x| format!("{x:.2}x"));
        println!(
            "| {size} B | {sm:.1} | {pm:.1} | {ratio:.2}x | {best_ratio:.2}x | {crs} | {target} |"
        );
    }
    println!();
    println!(
        "== free of a {FREE_SIZE} B block: local (own block) vs remote (another participant's), \
         both participants in this process =="
    );
    println!("own loop: {free_rounds} interleaved batches of {FREE_BATCH} frees each");
    println!();
    println!("| free | own loop ns | criterion ns |");
    println!("|---|---:|---:|");
    println!("| local | {lm:.1} | {} |", fmt_opt(cl));
    println!(
        "| remote (other participant, same process) | {rm:.1} | {} |",
        fmt_opt(cr)
    );
    let ratio = rm / lm;
    let ok = if ratio <= REMOTE_TARGET {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "remote/local = {ratio:.2}x (target <= {REMOTE_TARGET:.1}x: {ok}; the cross-process \
         figure is in `cargo bench --bench larson`)"
    );
    drop(b);
    drop(a);
}
