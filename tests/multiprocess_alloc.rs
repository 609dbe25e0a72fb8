//! Many processes allocate and free blocks of every size in one store while some of them are
//! SIGKILLed at random moments: no block is ever handed out twice, recovery accounts for every
//! page, and the allocator's own check passes.
//!
//! The bug story. The allocator is lock-free across processes: a pop from a segment's free
//! stack, a claim of pages in a chunk bitmap and the opening of a chunk are single CASes, and a
//! process may die between any two of them. The classic failures of such allocators are ABA on
//! a free-list head (a stale `next` read before a pop wins the CAS after the block was popped,
//! reused and pushed back, so one block is handed out twice), a page claim left half done by a
//! killed process (its pages claimed in the bitmap but described by no run, lost forever or,
//! worse, "repaired" under a live claimer), and a block freed by another process than the one
//! that took it (the ordinary case here) racing with the owner's segment. A block handed out
//! twice is invisible to counting: here every owner fills each block with its own pattern (its
//! pid, the block's offset and a counter, over the whole requested size) and checks it before
//! it frees or passes on the block, so a second owner's writes show as a torn pattern and the
//! child exits non-zero naming the offset.
//!
//! Four workers run at once: three are SIGKILLed every few milliseconds and replaced, one at a
//! time runs cleanly to its end and reports the blocks it still holds. Blocks also travel
//! between processes through a mailbox (a block the parent allocated; its offset is passed in
//! the environment), so most frees are of blocks another process allocated. Afterwards the
//! parent opens the store, which recovers every dead participant, and checks: `check()`
//! passes; the page map's runs account for exactly the used pages; every block that a clean
//! worker or the mailbox still holds is allocated and intact; blocks of killed workers are
//! leaked (allowed, reported), never reused. Finally everything is freed and only the
//! segments (kept by their size classes) remain.

mod harness;

use harness::{env, env_u64, record, TempDir};
use persist::heap::{Attached, Block, RUN_SEGMENT};
use persist::region::table::{STATUS_ATTACHED, STATUS_FREE};
use persist::sync::Liveness;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long workers are started and killed.
const STORM: Duration = Duration::from_secs(12);
/// How long a clean worker runs before it reports and exits.
const CLEAN_RUN: Duration = Duration::from_millis(2500);
const KILLABLE_WORKERS: usize = 3;
/// Blocks a worker holds at most (the rest of its ops free or pass blocks on).
const MAX_HELD: usize = 24;
/// Mailbox entries: [offset or EMPTY/BUSY, size, pid, counter].
const MAILBOX_SLOTS: u64 = 64;
const EMPTY: u64 = 0;
const BUSY: u64 = 1;
const SEED: u64 = 0x6d75_6c74_6970_726f;

/// The re-executed child.
#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("worker") => worker(),
        Some("churn") => churn(),
        Some(other) => panic!("unknown role {other}"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A block and the pattern it must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Held {
    off: u64,
    size: u64,
    pid: u64,
    counter: u64,
}

impl Held {
    fn seed(&self) -> u64 {
        harness::seed(self.pid, self.off, self.counter)
    }
}

/// Checks `b`'s pattern; a mismatch is a block that someone else wrote (handed out twice):
/// record it and exit non-zero at once.
fn verify_or_die(att: &Attached, b: &Held, when: &str) {
    let p = att
        .region()
        .store()
        .bytes(b.off, b.size)
        .unwrap_or_else(|e| panic!("block {b:?} out of bounds: {e}"));
    // SAFETY: the block is allocated and owned by this process until it frees or passes it on.
    if let Some(at) = unsafe { harness::mismatch(p, b.size, b.seed()) } {
        let line = format!(
            "TORN {when}: block at offset {:#x} ({} bytes, written by pid {} counter {}) differs \
             from its pattern at byte {at}: handed out twice?",
            b.off, b.size, b.pid, b.counter
        );
        record(&line);
        eprintln!("{line}");
        std::process::exit(3);
    }
}

/// Mostly small blocks, a fifth large runs (> 8 KiB), a few huge runs (> 2 MiB, whole chunks;
/// rare, because filling one takes long enough that a kill often lands in it and leaks it).
fn pick_size(rng: &mut StdRng) -> u64 {
    match rng.gen_range(0..3000) {
        0..=1799 => rng.gen_range(16..=512),
        1800..=2399 => rng.gen_range(513..=8192),
        2400..=2998 => rng.gen_range(8193..=65536),
        _ => rng.gen_range((2 << 20) + 1..=3 << 20),
    }
}

/// A worker: random alloc / free / give / take until its deadline (or until it is killed).
fn worker() {
    let path = PathBuf::from(env("STORE"));
    let mailbox = env_u64("MAILBOX");
    let id = env_u64("ID");
    let deadline = env_u64("DEADLINE_MS");
    let clean = env("CLEAN") == "1";
    let pid = std::process::id() as u64;
    let mut rng = StdRng::seed_from_u64(SEED ^ harness::mix(id));

    let att = Attached::open(&path).unwrap_or_else(|e| panic!("worker {id}: open: {e}"));
    let heap = att.heap();
    let store = att.region().store();
    let mb = store
        .bytes(mailbox, MAILBOX_SLOTS * 32)
        .expect("mailbox in bounds") as *const AtomicU64;
    // SAFETY: the mailbox block stays allocated for the whole test and its words are only
    // accessed atomically; i < 4 * MAILBOX_SLOTS.
    let word = |i: u64| unsafe { &*mb.add(i as usize) };
    record(&format!("START {id} pid {pid} slot {}", att.slot()));

    let mut held: Vec<Held> = Vec::new();
    let mut mine: HashSet<u64> = HashSet::new();
    let mut counter = 0u64;
    let mut ops = 0u64;
    let mut huge_ops = 0u64;
    let mut given = 0u64;
    let mut taken = 0u64;
    while now_ms() < deadline {
        ops += 1;
        if ops % 1000 == 0 {
            record(&format!("OPS {ops} {huge_ops}"));
        }
        let r = rng.gen_range(0..100);
        // A huge block is freed by the next operation (what a killed worker holds is leaked:
        // keep that small).
        let huge = held.iter().position(|b| b.size > 2 << 20);
        if huge.is_none() && (held.is_empty() || (r < 45 && held.len() < MAX_HELD)) {
            let size = pick_size(&mut rng);
            huge_ops += u64::from(size > 2 << 20);
            let off = heap
                .alloc(size)
                .unwrap_or_else(|e| panic!("worker {id}: alloc({size}): {e}"))
                .get();
            assert_eq!(off % 16, 0, "block {off:#x} is not 16-aligned");
            let usable = heap
                .usable_size(Block::from_word(off))
                .expect("usable_size");
            assert!(usable >= size, "block {off:#x}: {usable} < {size} bytes");
            if !mine.insert(off) {
                let line = format!("TORN alloc returned {off:#x}, which this process holds");
                record(&line);
                eprintln!("{line}");
                std::process::exit(3);
            }
            counter += 1;
            let b = Held {
                off,
                size,
                pid,
                counter,
            };
            let p = store.bytes(off, size).expect("new block in bounds");
            // SAFETY: a block just allocated, owned by this process.
            unsafe { harness::fill(p, size, b.seed()) };
            heap.settle(0).unwrap();
            held.push(b);
        } else if huge.is_some() || r < 75 {
            let i = huge.unwrap_or_else(|| rng.gen_range(0..held.len()));
            let b = held.swap_remove(i);
            verify_or_die(&att, &b, "before free");
            mine.remove(&b.off);
            heap.free(Block::from_word(b.off))
                .unwrap_or_else(|e| panic!("worker {id}: free {b:?}: {e}"));
        } else if r < 88 {
            // Give a block away through the mailbox (free it if the mailbox is full).
            let i = rng.gen_range(0..held.len());
            let b = held[i];
            verify_or_die(&att, &b, "before giving");
            let start = rng.gen_range(0..MAILBOX_SLOTS);
            let slot = (0..MAILBOX_SLOTS)
                .map(|k| (start + k) % MAILBOX_SLOTS)
                .find(|&s| {
                    word(4 * s)
                        .compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                });
            held.swap_remove(i);
            mine.remove(&b.off);
            match slot {
                Some(s) => {
                    word(4 * s + 1).store(b.size, Ordering::Relaxed);
                    word(4 * s + 2).store(b.pid, Ordering::Relaxed);
                    word(4 * s + 3).store(b.counter, Ordering::Relaxed);
                    // Release: the entry's words (and the block's bytes) before its offset.
                    word(4 * s).store(b.off, Ordering::Release);
                    given += 1;
                }
                None => heap.free(Block::from_word(b.off)).unwrap(),
            }
        } else {
            // Take a block another process gave, check it, then free or keep it.
            let start = rng.gen_range(0..MAILBOX_SLOTS);
            for k in 0..MAILBOX_SLOTS {
                let s = (start + k) % MAILBOX_SLOTS;
                let off = word(4 * s).load(Ordering::Acquire);
                if off <= BUSY
                    || word(4 * s)
                        .compare_exchange(off, BUSY, Ordering::Acquire, Ordering::Relaxed)
                        .is_err()
                {
                    continue;
                }
                let b = Held {
                    off,
                    size: word(4 * s + 1).load(Ordering::Relaxed),
                    pid: word(4 * s + 2).load(Ordering::Relaxed),
                    counter: word(4 * s + 3).load(Ordering::Relaxed),
                };
                word(4 * s).store(EMPTY, Ordering::Release);
                taken += 1;
                verify_or_die(&att, &b, "after taking from the mailbox");
                if held.len() < MAX_HELD && rng.gen_bool(0.3) {
                    mine.insert(b.off);
                    held.push(b);
                } else {
                    heap.free(Block::from_word(b.off))
                        .unwrap_or_else(|e| panic!("worker {id}: free given {b:?}: {e}"));
                }
                break;
            }
        }
    }
    for b in &held {
        verify_or_die(&att, b, "at the end");
    }
    if clean {
        for b in &held {
            record(&format!(
                "HELD {} {} {} {}",
                b.off, b.size, b.pid, b.counter
            ));
        }
    }
    record(&format!(
        "DONE {ops} {huge_ops} given {given} taken {taken}"
    ));
    att.close().unwrap();
}

/// Allocates and frees large runs and small blocks in a loop until it is killed.
fn churn() {
    let att = Attached::open(&PathBuf::from(env("STORE"))).expect("churn open");
    let heap = att.heap();
    let mut rng = StdRng::seed_from_u64(SEED ^ harness::mix(env_u64("ID")));
    record(&format!("START {}", att.slot()));
    let deadline = now_ms() + 30_000;
    let mut held = Vec::new();
    while now_ms() < deadline {
        if held.len() < 8 && rng.gen_bool(0.55) {
            let size = if rng.gen_bool(0.5) {
                rng.gen_range(8193..=131_072)
            } else {
                rng.gen_range(16..=8192)
            };
            held.push(heap.alloc(size).expect("churn alloc"));
            heap.settle(0).unwrap();
        } else if !held.is_empty() {
            let b = held.swap_remove(rng.gen_range(0..held.len()));
            heap.free(b).expect("churn free");
        }
    }
    std::process::exit(3); // never reached in a passing run: the parent kills it first
}

struct Worker {
    child: Child,
    id: u64,
    clean: bool,
    out: PathBuf,
    log: PathBuf,
}

struct Run<'a> {
    dir: &'a TempDir,
    store: PathBuf,
    mailbox: u64,
    next_id: u64,
    outs: Vec<(PathBuf, PathBuf)>,
}

impl Run<'_> {
    fn spawn(&mut self, clean: bool, deadline_ms: u64) -> Worker {
        let id = self.next_id;
        self.next_id += 1;
        let out = self.dir.join(&format!("w{id}.out"));
        let log = self.dir.join(&format!("w{id}.log"));
        let child = harness::spawn(
            "child",
            "worker",
            &[
                ("STORE", self.store.display().to_string()),
                ("MAILBOX", self.mailbox.to_string()),
                ("ID", id.to_string()),
                ("DEADLINE_MS", deadline_ms.to_string()),
                ("CLEAN", if clean { "1" } else { "0" }.to_string()),
            ],
            &out,
            &log,
        );
        self.outs.push((out.clone(), log.clone()));
        Worker {
            child,
            id,
            clean,
            out,
            log,
        }
    }
}

fn fail_worker(w: &Worker, st: &std::process::ExitStatus) -> ! {
    panic!(
        "worker {} ({}) ended with {}:\n{}",
        w.id,
        if w.clean { "clean" } else { "killable" },
        harness::describe(st),
        harness::log_tail(&w.log)
    );
}

fn deadline_in(d: Duration) -> u64 {
    now_ms() + d.as_millis() as u64
}

/// Reads slot words only; never decides liveness.
struct Blind;
impl Liveness for Blind {
    fn is_alive(&self, _: u32) -> bool {
        true
    }
}

#[test]
fn random_alloc_free_under_sigkill_never_hands_a_block_out_twice() {
    let dir = TempDir::new("multiprocess-alloc");
    let store = dir.join("store");
    let att = Attached::open(&store).unwrap();
    let mailbox = att.heap().alloc(MAILBOX_SLOTS * 32).unwrap().get();
    att.heap().settle(0).unwrap();
    let mb = att
        .region()
        .store()
        .bytes(mailbox, MAILBOX_SLOTS * 32)
        .unwrap();
    // SAFETY: the mailbox block was just allocated by this process; nobody else knows it yet.
    unsafe { std::ptr::write_bytes(mb, 0, (MAILBOX_SLOTS * 32) as usize) };

    let mut run = Run {
        dir: &dir,
        store: store.clone(),
        mailbox,
        next_id: 0,
        outs: Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(SEED);
    let t0 = Instant::now();
    let storm_end = t0 + STORM;
    let far = deadline_in(STORM + Duration::from_secs(120));
    let mut killable: Vec<Worker> = (0..KILLABLE_WORKERS)
        .map(|_| run.spawn(false, far))
        .collect();
    let mut clean = Some(run.spawn(true, deadline_in(CLEAN_RUN)));
    let mut clean_reports: Vec<PathBuf> = Vec::new();
    let mut kills = 0u64;
    let mut next_kill = Instant::now() + Duration::from_millis(rng.gen_range(5..60));
    while Instant::now() < storm_end {
        for w in &mut killable {
            if let Some(st) = w.child.try_wait().unwrap() {
                fail_worker(w, &st);
            }
        }
        if let Some(w) = clean.as_mut() {
            if let Some(st) = w.child.try_wait().unwrap() {
                if !st.success() {
                    fail_worker(w, &st);
                }
                clean_reports.push(w.out.clone());
                let left = storm_end.saturating_duration_since(Instant::now());
                clean = (left > Duration::from_millis(500))
                    .then(|| run.spawn(true, deadline_in(CLEAN_RUN.min(left))));
            }
        }
        if Instant::now() >= next_kill {
            let i = rng.gen_range(0..killable.len());
            let st = harness::kill_and_reap(&mut killable[i].child);
            if std::os::unix::process::ExitStatusExt::signal(&st) != Some(libc::SIGKILL) {
                fail_worker(&killable[i], &st);
            }
            kills += 1;
            killable[i] = run.spawn(false, far);
            next_kill = Instant::now() + Duration::from_millis(rng.gen_range(5..60));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for w in &mut killable {
        let st = harness::kill_and_reap(&mut w.child);
        if std::os::unix::process::ExitStatusExt::signal(&st) != Some(libc::SIGKILL) {
            fail_worker(w, &st);
        }
        kills += 1;
    }
    if let Some(mut w) = clean.take() {
        match harness::wait_timeout(&mut w.child, Duration::from_secs(60)) {
            Some(st) if st.success() => clean_reports.push(w.out.clone()),
            Some(st) => fail_worker(&w, &st),
            None => panic!("clean worker {} hung:\n{}", w.id, harness::log_tail(&w.log)),
        }
    }
    let storm_time = t0.elapsed();

    // Any torn pattern seen by any worker (also one killed right after seeing it) fails.
    // Operations done (at least: a killed worker reports every thousand).
    let (mut ops, mut huge_ops) = (0, 0);
    for (out, log) in &run.outs {
        let recs = harness::read_records(out);
        if let Some(t) = recs.iter().find(|r| r.starts_with("TORN")) {
            panic!("{t}\n{}", harness::log_tail(log));
        }
        let last = harness::fields(&recs, "DONE")
            .pop()
            .or_else(|| harness::fields(&recs, "OPS").pop());
        if let Some(f) = last {
            ops += harness::parse_u64(f[0]);
            huge_ops += harness::parse_u64(f[1]);
        }
    }
    let mut held: Vec<Held> = Vec::new();
    for out in &clean_reports {
        let recs = harness::read_records(out);
        let done = harness::fields(&recs, "DONE");
        assert_eq!(done.len(), 1, "clean worker did not finish its report");
        for f in harness::fields(&recs, "HELD") {
            held.push(Held {
                off: harness::parse_u64(f[0]),
                size: harness::parse_u64(f[1]),
                pid: harness::parse_u64(f[2]),
                counter: harness::parse_u64(f[3]),
            });
        }
    }
    assert!(!clean_reports.is_empty(), "no clean worker completed");
    // The mailbox's entries are held too; BUSY ones were being passed when a worker died.
    let word = |i: u64| {
        // SAFETY: inside the mailbox block, accessed atomically; all workers are gone.
        unsafe { &*(mb as *const AtomicU64).add(i as usize) }.load(Ordering::Acquire)
    };
    let mut stuck = 0;
    for s in 0..MAILBOX_SLOTS {
        match word(4 * s) {
            EMPTY => {}
            BUSY => stuck += 1,
            off => held.push(Held {
                off,
                size: word(4 * s + 1),
                pid: word(4 * s + 2),
                counter: word(4 * s + 3),
            }),
        }
    }

    // Every worker is dead or detached. Dead participants still mark their slots attached;
    // opening the store recovers all of them.
    let table = att.region().table(&Blind);
    let dead_slots = (0..table.slots)
        .filter(|&s| s != att.slot() && table.status(s).unwrap() == STATUS_ATTACHED)
        .count();
    drop(att);
    let att = Attached::open(&store).expect("open after the storm");
    let table = att.region().table(&Blind);
    let still = (0..table.slots)
        .filter(|&s| s != att.slot() && table.status(s).unwrap() != STATUS_FREE)
        .count();
    assert_eq!(still, 0, "open left {still} dead participants unrecovered");
    assert_eq!(att.recover_dead().unwrap(), 0);

    let st = att.check().expect("allocator check after recovery");
    let heap = att.heap();
    // The page map's runs account for exactly the used pages, and never overlap.
    let mut run_pages = 0;
    let mut last_end = 0;
    heap.pages
        .for_each_run(|r| {
            assert!(
                r.offset.get() >= last_end,
                "runs overlap at {:#x}",
                r.offset
            );
            last_end = r.offset.get() + r.pages * 4096;
            run_pages += r.pages;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        run_pages, st.pages.pages_used,
        "runs and used pages disagree"
    );
    assert_eq!(
        st.pages.pages_used + st.pages.pages_free,
        st.pages.pages_total
    );

    // Every held block is allocated, intact, and apart from every other.
    let mut allocated: BTreeMap<u64, u64> = BTreeMap::new();
    heap.for_each_allocated(|off, size| {
        assert!(
            allocated.insert(off.get(), size).is_none(),
            "{off:#x} listed twice"
        );
    })
    .unwrap();
    held.sort_by_key(|b| b.off);
    for w in held.windows(2) {
        assert!(
            w[0].off + w[0].size <= w[1].off,
            "held blocks overlap: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    let mut held_bytes = 0;
    for b in &held {
        let size = allocated.get(&b.off).copied();
        assert!(
            size.is_some_and(|s| s >= b.size),
            "held block {b:?} is not allocated (allocator says {size:?})"
        );
        let p = att.region().store().bytes(b.off, b.size).unwrap();
        // SAFETY: an allocated block no live process uses.
        if let Some(at) = unsafe { harness::mismatch(p, b.size, b.seed()) } {
            panic!("held block {b:?} was overwritten at byte {at}");
        }
        held_bytes += b.size;
    }
    let held_offs: HashSet<u64> = held.iter().map(|b| b.off).collect();
    let leaked: HashMap<u64, u64> = allocated
        .iter()
        .filter(|(o, _)| !held_offs.contains(o) && **o != mailbox)
        .map(|(o, s)| (*o, *s))
        .collect();
    println!(
        "{} workers ({} clean), {kills} SIGKILLs in {storm_time:?}; at least {ops} \
         operations ({huge_ops} huge); {dead_slots} dead slots left for the final open; held \
         at the end: {} blocks ({held_bytes} bytes), {stuck} mailbox entries stuck; leaked by \
         killed workers: {} blocks ({} bytes); store {} chunks, {} of {} pages used",
        run.next_id,
        clean_reports.len(),
        held.len(),
        leaked.len(),
        leaked.values().sum::<u64>(),
        st.pages.chunks,
        st.pages.pages_used,
        st.pages.pages_total,
    );
    assert!(kills > 10, "too few kills for the test to mean anything");

    // Free everything: what remains is exactly the segments, kept by their classes.
    for b in &held {
        heap.free(Block::from_word(b.off)).unwrap();
    }
    for off in leaked.keys() {
        heap.free(Block::from_word(*off)).unwrap();
    }
    heap.free(Block::from_word(mailbox)).unwrap();
    let end = att.check().expect("check after freeing everything");
    assert_eq!(end.blocks_allocated, 0);
    assert_eq!(end.large_runs, 0);
    let mut segment_pages = 0;
    heap.pages
        .for_each_run(|r| {
            assert_eq!(r.kind, RUN_SEGMENT, "a run is left: {r:?}");
            segment_pages += r.pages;
            Ok(())
        })
        .unwrap();
    assert_eq!(end.pages.pages_used, segment_pages);
}

/// The focused form of the storm above. A participant is SIGKILLed at a random moment while it
/// allocates and frees large runs; then a process that is not attached opens the store. It
/// takes over the dead participant's slot (the lowest one whose lock is free) and must recover
/// what the dead one left in flight, whichever step that was: afterwards `check()` passes.
///
/// Found this way: the opener recovered the slot it had just taken with its own liveness view,
/// in which its own slot is always alive, so the dead participant's page journal looked like a
/// live claim and protected the very pages recovery had to give back (a page run claimed in
/// the bitmap, described by no run, forever).
#[test]
fn a_slot_taken_over_from_a_killed_participant_is_recovered() {
    let dir = TempDir::new("multiprocess-takeover");
    let store = dir.join("store");
    Attached::open(&store).unwrap().close().unwrap();
    let mut rng = StdRng::seed_from_u64(SEED ^ 0x7a6e);
    for round in 0..40u64 {
        let out = dir.join(&format!("c{round}.out"));
        let log = dir.join(&format!("c{round}.log"));
        let mut child = harness::spawn(
            "child",
            "churn",
            &[
                ("STORE", store.display().to_string()),
                ("ID", round.to_string()),
            ],
            &out,
            &log,
        );
        let t0 = Instant::now();
        let slot = loop {
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "round {round}: child ended early with {}:\n{}",
                    harness::describe(&st),
                    harness::log_tail(&log)
                );
            }
            if let Some(f) = harness::fields(&harness::read_records(&out), "START").first() {
                break harness::parse_u64(f[0]) as u32;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "round {round}: no start"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..15_000)));
        let st = harness::kill_and_reap(&mut child);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL),
            "round {round}: {}:\n{}",
            harness::describe(&st),
            harness::log_tail(&log)
        );
        let att = Attached::open(&store).expect("open after the kill");
        assert_eq!(
            att.slot(),
            slot,
            "round {round}: the opener did not take over the slot"
        );
        if let Err(e) = att.check() {
            panic!(
                "round {round}: after taking over the slot of a participant killed mid-step, \
                 check() fails: {e}"
            );
        }
        assert_eq!(att.recover_dead().unwrap(), 0);
        att.close().unwrap();
    }
}
