//! Larson-style multi-process throughput of persist's heap, and the cost of a remote free.
//!
//! Larson and Krishnan's server benchmark ("Memory allocation for long-running server
//! applications", ISMM 1998) gives each thread an array of live blocks; the thread repeatedly
//! frees a random slot and allocates a new block of random size into it, and after a round it
//! hands its whole array to a new thread, so that many frees are of blocks that another thread
//! allocated. Here the threads are processes on one store file:
//!
//! - P = 1, 2, 4 worker processes by default (`--procs 1,2,4,8,16` or
//!   `PERSIST_LARSON_PROCS_LIST` names others, up to `MAX_PROCS`; this binary re-executed with `PERSIST_LARSON_ROLE=worker`;
//!   no fork, so every worker attaches as a participant of its own), each with `SLOTS` live
//!   blocks of 16..=512 bytes (xorshift, fixed seed per process). One *op* is a free of a
//!   random slot plus an alloc (+ `settle`) into it, and a one-word write into the new block.
//! - After every `ROUND_OPS` ops, process i takes the array that process i - 1 left in
//!   mailbox i, and leaves its own in mailbox (i + 1) % P (mailboxes live in a control block in
//!   the store, allocated by the parent, its offset passed in the environment), so about the
//!   first `SLOTS` frees of a round are remote. The hand-off never waits: if the successor has
//!   not taken the last array yet, the process frees its own array and continues with the one
//!   it took (*dropped*); if the predecessor has not delivered, it hands its array on and
//!   allocates a fresh one, as a new Larson thread does (*fresh*). Waiting would couple the
//!   processes, and then a neighbour descheduled by the OS would stall everyone: the bench
//!   would measure the scheduler instead of the allocator. With P = 1 a process hands its
//!   array to itself (same copying, no remote frees).
//! - One *op* is one free plus one alloc: throughput is (frees + allocs) / 2 per second of the
//!   run window (from the parent's GO to its STOP), summed over processes. Each run is repeated
//!   `runs` times, interleaved over P and mode.
//! - After each run the parent frees what is left (workers free the arrays they hold, the
//!   parent the arrays in mailboxes) and checks the heap: no block may be lost or doubled.
//! - Baselines in the same run: `local` (persist, no hand-off: each process frees only its own
//!   blocks) and `system` (`std::alloc::System`, no hand-off).
//!
//! The machine's real parallelism is measured as `../shared/bench` does: N processes spinning on
//! pure CPU work, total work / the work of one (N = 2, and 4), before every run, because the
//! CPU a VM gets drifts with its neighbours' load. Scaling is reported as speedup over P = 1
//! (median over runs of each run's ratio) and as that speedup divided by the parallelism the
//! machine gave in that run. Ops per CPU-second (the workers' own CPU time) shows the
//! allocator's efficiency whatever share of the CPUs the workers got.
//!
//! Remote vs local free: the parent (bound to CPU 0) allocates a batch of 64 B blocks (writing
//! each, as a user would) and hands their offsets to a second process (bound to CPU 1), which
//! times freeing them (remote), then allocates and writes a batch of its own and times freeing
//! those (local). Medians over many batches.

mod common;

use common::{bench_mode, command_line, loadavg, machine_lines, median, TempDir};
use persist::heap::{Attached, Block};
use persist::sync::{futex, AtomicU64, Ordering, WordStore};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "PERSIST_LARSON_ROLE";
const ENV_STORE: &str = "PERSIST_LARSON_STORE";
const ENV_CTL: &str = "PERSIST_LARSON_CTL";
const ENV_INDEX: &str = "PERSIST_LARSON_INDEX";
const ENV_PROCS: &str = "PERSIST_LARSON_PROCS";
const ENV_SECS: &str = "PERSIST_LARSON_SECS";
const ENV_ROUNDS: &str = "PERSIST_LARSON_ROUNDS";
const ENV_MODE: &str = "PERSIST_LARSON_MODE";

/// Live blocks per process (Larson's "chunks per thread").
const SLOTS: usize = 1000;
/// Ops per round, between two hand-offs: 10 x SLOTS, so about 1 in 10 frees is remote.
const ROUND_OPS: u64 = 10_000;
const MIN_SIZE: u64 = 16;
const MAX_SIZE: u64 = 512;
const SEED: u64 = 0x5eed_1a25_0123_4567;
/// The worker process counts measured unless `PERSIST_LARSON_PROCS_LIST` or `--procs` says
/// otherwise (a bigger machine: `cargo bench --bench larson -- --procs 1,2,4,8,16`).
const DEFAULT_PROCS: [usize; 3] = [1, 2, 4];
const ENV_PROCS_LIST: &str = "PERSIST_LARSON_PROCS_LIST";
/// The most worker processes the control block has room for (its state area's size).
const MAX_PROCS: u64 = 64;
/// The size of the remote/local free measurement, and its batch.
const FREE_SIZE: u64 = 64;
const FREE_BATCH: usize = SLOTS;
/// Targets we are judged by.
const SCALING_TARGET: f64 = 0.9;
const REMOTE_TARGET: f64 = 2.0;

/// Control block, byte offsets. Every word that one process writes while others poll it has a
/// cache line of its own.
///
/// | offset | word |
/// |---|---|
/// | 0 | GO: set by the parent once every worker is ready |
/// | 64 | STOP: set by the parent at the end of the run |
/// | 128 | READY: count of workers set up |
/// | 192 | REQ: remote-free batch number published by the allocating side |
/// | 256 | ACK: batch number the freeing side has finished |
/// | 512 + 64 i | mailbox i state: 0 empty, 1 holds an array (i < `MAX_PROCS`) |
/// | `C_ARRAYS` + 8 SLOTS i | mailbox i: SLOTS entries `offset \| owner << 56` |
const C_GO: u64 = 0;
const C_STOP: u64 = 64;
const C_READY: u64 = 128;
const C_REQ: u64 = 192;
const C_ACK: u64 = 256;
const C_STATE: u64 = 512;
const C_ARRAYS: u64 = C_STATE + 64 * MAX_PROCS;
const OWNER_SHIFT: u64 = 56;
const OFF_MASK: u64 = (1 << OWNER_SHIFT) - 1;

/// The control block's bytes for up to `procs` workers.
fn ctl_bytes(procs: usize) -> u64 {
    C_ARRAYS + procs as u64 * SLOTS as u64 * 8
}

/// The process counts to measure: `--procs 1,2,4` (or `--procs=...`), else
/// `PERSIST_LARSON_PROCS_LIST`, else `DEFAULT_PROCS`. Sorted, without repeats, each in
/// 1..=`MAX_PROCS`, and 1 always among them (scaling is measured against it).
fn procs_list() -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--procs=")
            .map(str::to_string)
            .or_else(|| (a == "--procs").then(|| args.get(i + 1).cloned().unwrap_or_default()))
    });
    let Some(text) = from_args.or_else(|| std::env::var(ENV_PROCS_LIST).ok()) else {
        return DEFAULT_PROCS.to_vec();
    };
    let mut v: Vec<usize> = match text.split(',').map(|x| x.trim().parse()).collect() {
        Ok(v) => v,
        Err(_) => {
            eprintln!(
                "larson: --procs wants a comma-separated list of process counts, got {text:?}"
            );
            std::process::exit(2);
        }
    };
    v.push(1);
    v.sort_unstable();
    v.dedup();
    if v[0] == 0 || *v.last().unwrap() as u64 > MAX_PROCS {
        eprintln!("larson: process counts must lie in 1..={MAX_PROCS}, got {text:?}");
        std::process::exit(2);
    }
    v
}

fn state_of(i: usize) -> u64 {
    C_STATE + 64 * i as u64
}
fn mailbox_of(i: usize) -> u64 {
    C_ARRAYS + (SLOTS * 8 * i) as u64
}

/// xorshift64*: cheap enough not to weigh on the op it drives, deterministic per seed.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in 0..n (n < 2^32).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }
}

fn word<W: WordStore>(s: &W, off: u64) -> &AtomicU64 {
    s.word(off).expect("control word inside the store")
}

/// Waits until `w` holds `want`, spinning briefly and then sleeping on the word's futex (so a
/// waiting process gives its CPU to the others instead of burning it: on a VM whose vCPUs
/// share less than a core each, spinning would slow the very process it waits for). Whoever
/// changes `w` wakes its waiters (`set_and_wake`); the timeout is only a backstop.
fn wait_for(w: &AtomicU64, want: u64) {
    let mut spins = 0u32;
    loop {
        // Acquire: pairs with the Release store in `set_and_wake` that published the data
        // this wait is for.
        let v = w.load(Ordering::Acquire);
        if v == want {
            return;
        }
        spins += 1;
        if spins < 100 {
            std::hint::spin_loop();
        } else {
            futex::wait(w, v as u32, Duration::from_millis(5));
        }
    }
}

/// Stores `v` into `w` (Release: publishes everything written before) and wakes its waiters.
fn set_and_wake(w: &AtomicU64, v: u64) {
    w.store(v, Ordering::Release);
    futex::wake(w, i32::MAX);
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set")))
}

fn spawn(role: &str, envs: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("path of this bench binary");
    let mut cmd = Command::new(exe);
    cmd.env(ROLE, role).stdout(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn a child process")
}

/// Waits for a child and returns the numbers on its last stdout line.
fn finish(child: Child) -> Vec<f64> {
    let out = child.wait_with_output().expect("wait for a child");
    assert!(out.status.success(), "child failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().expect("child printed its result");
    line.split_whitespace()
        .map(|x| x.parse().expect("a number"))
        .collect()
}

// ---- children ---------------------------------------------------------------------------

/// Pure CPU work for `PERSIST_LARSON_SECS`; prints how many rounds of 10,000 steps it made.
fn child_spin() {
    let secs = std::env::var(ENV_SECS)
        .expect("secs")
        .parse::<f64>()
        .expect("secs");
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut x = 0x1234_5678u64;
    let mut rounds = 0u64;
    while Instant::now() < end {
        for _ in 0..10_000 {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        rounds += 1;
    }
    println!("{rounds}");
}

/// This process's CPU time (user + system).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on our stack.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What a worker allocates with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// persist, with the hand-off of arrays between processes (the Larson benchmark).
    Larson,
    /// persist, each process keeping its own array (no hand-off, no waiting): the allocator's
    /// own multi-process scaling.
    Local,
    /// `std::alloc::System` in each process, no hand-off (private heaps cannot take each
    /// other's blocks): the machine's scaling for the same loop and memory footprint.
    System,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Larson => "larson",
            Mode::Local => "local",
            Mode::System => "system",
        }
    }
    fn parse(s: &str) -> Mode {
        match s {
            "larson" => Mode::Larson,
            "local" => Mode::Local,
            "system" => Mode::System,
            _ => panic!("unknown mode {s}"),
        }
    }
}

fn system_layout(size: u64) -> Layout {
    Layout::from_size_align(size as usize, 16).expect("layout")
}

/// One Larson worker; prints `ops remote_frees rounds elapsed_ns waited_ns cpu_ns`.
fn child_worker() {
    let mode = Mode::parse(&std::env::var(ENV_MODE).expect("mode"));
    let path = env_path(ENV_STORE);
    let ctl = env_u64(ENV_CTL);
    let me = env_u64(ENV_INDEX) as usize;
    let procs = env_u64(ENV_PROCS) as usize;
    let att = Attached::open(&path).expect("worker: open the store");
    let h = att.heap();
    let s = att.region().store();
    let go = word(s, ctl + C_GO);
    let stop = word(s, ctl + C_STOP);
    let mut rng = Rng::new(SEED ^ (me as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let tag = (me as u64) << OWNER_SHIFT;
    // Every block's first word holds its size (the "use" of the block, and what System's
    // dealloc needs to rebuild the layout).
    let alloc = |rng: &mut Rng| -> u64 {
        let size = MIN_SIZE + rng.below(MAX_SIZE - MIN_SIZE + 1);
        if mode == Mode::System {
            let layout = system_layout(size);
            // SAFETY: a non-zero-size layout; the block is 16-aligned and at least 16 bytes,
            // so its first word may be written; it is given back in `free` with this layout.
            unsafe {
                let p = System.alloc(layout);
                assert!(!p.is_null(), "System.alloc failed");
                (p as *mut u64).write(size);
                p as u64 | tag
            }
        } else {
            let b = h.alloc(size).expect("alloc").get();
            h.settle(0).expect("settle");
            s.store(b, size, Ordering::Relaxed)
                .expect("write the block");
            b | tag
        }
    };
    let free = |e: u64| {
        let b = e & OFF_MASK;
        if mode == Mode::System {
            // SAFETY: `b` came from `alloc` above in this process (System mode never hands
            // blocks over) and is freed once; its first word holds the size it was made with.
            unsafe {
                let size = (b as *const u64).read();
                System.dealloc(b as *mut u8, system_layout(size));
            }
        } else {
            h.free(Block::from_word(b)).expect("free");
        }
    };
    let mut arr: Vec<u64> = (0..SLOTS).map(|_| alloc(&mut rng)).collect();
    let mut incoming: Vec<u64> = Vec::with_capacity(SLOTS);
    // Release: our set-up happens before the parent's GO (it only counts, though).
    word(s, ctl + C_READY).fetch_add(1, Ordering::AcqRel);
    wait_for(go, 1);
    let t0 = Instant::now();
    let cpu0 = cpu_time();
    let mut n = Counts::default();
    let next = (me + 1) % procs;
    let out_state = word(s, ctl + state_of(next));
    let in_state = word(s, ctl + state_of(me));
    let free_counted = |e: u64, n: &mut Counts| {
        if e & !OFF_MASK != tag {
            n.remote += 1;
        }
        free(e);
        n.frees += 1;
    };
    'run: loop {
        for i in 0..ROUND_OPS {
            // Relaxed: STOP only ends the loop; no data travels with it.
            if i % 64 == 0 && stop.load(Ordering::Relaxed) != 0 {
                break 'run;
            }
            let slot = rng.below(SLOTS as u64) as usize;
            free_counted(arr[slot], &mut n);
            arr[slot] = alloc(&mut rng);
            n.allocs += 1;
        }
        n.rounds += 1;
        if mode != Mode::Larson {
            continue;
        }
        // The hand-off never waits (a process that waited for a descheduled neighbour would
        // measure the scheduler, not the allocator). Mailbox i is single-producer (process
        // i - 1) single-consumer (process i); its state word says whether it holds an array.
        // Take the predecessor's array if it left one. Acquire: pairs with its Release store
        // of 1, which published the entries.
        let took = in_state.load(Ordering::Acquire) == 1;
        if took {
            let inb = ctl + mailbox_of(me);
            incoming.clear();
            for k in 0..SLOTS {
                let e = s
                    .load(inb + 8 * k as u64, Ordering::Relaxed)
                    .expect("mailbox");
                incoming.push(e);
            }
            // Release: our reads of the mailbox happen before its producer's next writes
            // (which follow its Acquire load of this 0).
            in_state.store(0, Ordering::Release);
        }
        // Hand ours on if the successor took the last one. Acquire: pairs with its Release
        // store of 0 above.
        let put = out_state.load(Ordering::Acquire) == 0;
        if put {
            let out = ctl + mailbox_of(next);
            for (k, &e) in arr.iter().enumerate() {
                s.store(out + 8 * k as u64, e, Ordering::Relaxed)
                    .expect("mailbox");
            }
            // Release: publishes the entries stored above.
            out_state.store(1, Ordering::Release);
            n.puts += 1;
        }
        match (took, put) {
            // Larson's case: continue with the predecessor's blocks.
            (true, true) => std::mem::swap(&mut arr, &mut incoming),
            // The successor lags: drop our own array (free it all), take the predecessor's.
            (true, false) => {
                for &e in &arr {
                    free_counted(e, &mut n);
                }
                n.dropped += 1;
                std::mem::swap(&mut arr, &mut incoming);
            }
            // The predecessor lags: start a fresh array, as a new Larson thread does.
            (false, true) => {
                for e in arr.iter_mut() {
                    *e = alloc(&mut rng);
                }
                n.allocs += SLOTS as u64;
                n.fresh += 1;
            }
            (false, false) => {}
        }
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    // Whatever we hold is ours to free; arrays left in mailboxes are the parent's.
    for e in arr {
        free(e);
    }
    println!(
        "{} {} {} {} {} {} {} {} {}",
        n.frees,
        n.allocs,
        n.remote,
        n.rounds,
        n.puts,
        n.fresh,
        n.dropped,
        elapsed.as_nanos(),
        cpu.as_nanos()
    );
}

/// What a worker did during the run.
#[derive(Default)]
struct Counts {
    frees: u64,
    allocs: u64,
    /// Frees of blocks another process allocated.
    remote: u64,
    rounds: u64,
    /// Arrays handed on; arrays started afresh; own arrays freed because the successor lagged.
    puts: u64,
    fresh: u64,
    dropped: u64,
}

/// The freeing side of the remote/local free measurement; prints `remote_ns local_ns pinned`
/// (medians per free; pinned = 1 when it ran bound to CPU 1).
fn child_freer() {
    let path = env_path(ENV_STORE);
    let ctl = env_u64(ENV_CTL);
    let rounds = env_u64(ENV_ROUNDS);
    // On another CPU than the allocating parent (CPU 0), so that a remote free really takes
    // the block's cache line from another core.
    let pinned = pin_to(1).is_some();
    let att = Attached::open(&path).expect("freer: open the store");
    let h = att.heap();
    let s = att.region().store();
    let req = word(s, ctl + C_REQ);
    let ack = word(s, ctl + C_ACK);
    let mut blocks = Vec::with_capacity(FREE_BATCH);
    let (mut remote, mut local) = (Vec::new(), Vec::new());
    for r in 1..=rounds {
        // The allocator's `set_and_wake` of REQ publishes the offsets.
        wait_for(req, r);
        blocks.clear();
        for k in 0..FREE_BATCH {
            let e = s
                .load(ctl + C_ARRAYS + 8 * k as u64, Ordering::Relaxed)
                .expect("batch");
            blocks.push(e);
        }
        let t = Instant::now();
        for &b in &blocks {
            h.free(black_box(Block::from_word(b))).expect("remote free");
        }
        let dr = t.elapsed();
        blocks.clear();
        for k in 0..FREE_BATCH {
            let b = h.alloc(FREE_SIZE).expect("alloc").get();
            h.settle(0).expect("settle");
            s.store(b, k as u64, Ordering::Relaxed).expect("write");
            blocks.push(b);
        }
        let t = Instant::now();
        for &b in &blocks {
            h.free(black_box(Block::from_word(b))).expect("local free");
        }
        let dl = t.elapsed();
        if r > 2 {
            // the first two batches warm up
            remote.push(dr.as_nanos() as f64 / FREE_BATCH as f64);
            local.push(dl.as_nanos() as f64 / FREE_BATCH as f64);
        }
        // Our frees happen before the allocator's next batch.
        set_and_wake(ack, r);
    }
    println!(
        "{} {} {}",
        median(&mut remote),
        median(&mut local),
        u8::from(pinned)
    );
}

// ---- parent -----------------------------------------------------------------------------

/// Binds this process to CPU `cpu` and returns its previous CPU mask; `None` when the machine
/// has a single CPU or the call fails (then nothing changed).
fn pin_to(cpu: usize) -> Option<libc::cpu_set_t> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is a valid (empty) set; the
    // CPU_* helpers and sched_{get,set}affinity only read and write the sets passed to them.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut old) != 0 || !libc::CPU_ISSET(cpu, &old) {
            return None;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size, &set) != 0 {
            return None;
        }
        Some(old)
    }
}

/// Gives back the CPU mask that `pin_to` returned.
fn unpin(old: Option<libc::cpu_set_t>) {
    if let Some(old) = old {
        // SAFETY: `old` is a mask the kernel gave us in `pin_to`.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old);
        }
    }
}

/// Work of `n` processes spinning together, divided by the work of one.
fn parallelism(n: usize, secs: f64) -> f64 {
    let run = |n: usize| -> f64 {
        let kids: Vec<Child> = (0..n)
            .map(|_| spawn("spin", &[(ENV_SECS, secs.to_string())]))
            .collect();
        kids.into_iter().map(|c| finish(c)[0]).sum()
    };
    let one = run(1);
    run(n) / one
}

/// A store in a fresh temp dir, the parent attached, and a zeroed control block.
struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    att: Attached,
    ctl: u64,
}

impl Fixture {
    /// A store with a zeroed control block for up to `procs` workers.
    fn new(tag: &str, procs: usize) -> Fixture {
        let dir = TempDir::new(tag);
        let path = dir.path().join("larson.db");
        let att = Attached::open(&path).expect("open the store");
        let ctl = {
            let h = att.heap();
            let ctl = h.alloc(ctl_bytes(procs)).expect("control block").get();
            h.settle(0).expect("settle");
            let s = att.region().store();
            for off in (0..ctl_bytes(procs)).step_by(8) {
                s.store(ctl + off, 0, Ordering::Relaxed).expect("zero");
            }
            ctl
        };
        Fixture {
            _dir: dir,
            path,
            att,
            ctl,
        }
    }

    fn w(&self, off: u64) -> &AtomicU64 {
        word(self.att.region().store(), self.ctl + off)
    }

    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_STORE, self.path.display().to_string()),
            (ENV_CTL, self.ctl.to_string()),
        ]
    }

    /// Frees the control block and checks that nothing else is left allocated.
    fn finish(self) {
        let h = self.att.heap();
        h.free(Block::from_word(self.ctl))
            .expect("free the control block");
        let st = self.att.check().expect("heap check after the run");
        assert_eq!(
            (st.blocks_allocated, st.large_runs),
            (0, 0),
            "every block was freed exactly once"
        );
    }
}

struct LarsonRun {
    /// (allocations + frees) / 2 per second of the run window: one op = one free + one alloc.
    ops_per_sec: f64,
    ops: f64,
    remote: u64,
    frees: u64,
    puts: u64,
    fresh: u64,
    dropped: u64,
    /// Seconds of the run window, and the CPU seconds the workers used.
    window: f64,
    cpu: f64,
}

fn larson_run(mode: Mode, procs: usize, secs: f64) -> LarsonRun {
    let f = Fixture::new("larson", procs);
    let kids: Vec<Child> = (0..procs)
        .map(|i| {
            let mut envs = f.envs();
            envs.push((ENV_MODE, mode.name().to_string()));
            envs.push((ENV_INDEX, i.to_string()));
            envs.push((ENV_PROCS, procs.to_string()));
            spawn("worker", &envs)
        })
        .collect();
    let ready = f.w(C_READY);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::Acquire) < procs as u64 {
        assert!(Instant::now() < deadline, "workers did not get ready");
        std::thread::sleep(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    set_and_wake(f.w(C_GO), 1);
    std::thread::sleep(Duration::from_secs_f64(secs));
    // Release: nothing travels with STOP; the workers' results come through their pipes.
    f.w(C_STOP).store(1, Ordering::Release);
    let window = t0.elapsed();
    let mut v = [0f64; 9];
    for k in kids {
        for (acc, x) in v.iter_mut().zip(finish(k)) {
            *acc += x;
        }
    }
    let [frees, allocs, remote, _rounds, puts, fresh, dropped, _elapsed, cpu] = v;
    // Arrays left in mailboxes belong to nobody: free them.
    {
        let h = f.att.heap();
        let s = f.att.region().store();
        for i in 0..procs {
            if f.w(state_of(i)).load(Ordering::Acquire) == 1 {
                for k in 0..SLOTS {
                    let e = s
                        .load(f.ctl + mailbox_of(i) + 8 * k as u64, Ordering::Relaxed)
                        .expect("mailbox");
                    h.free(Block::from_word(e & OFF_MASK))
                        .expect("free a mailbox block");
                }
            }
        }
    }
    f.finish();
    let ops = (frees + allocs) / 2.0;
    LarsonRun {
        ops_per_sec: ops / window.as_secs_f64(),
        ops,
        remote: remote as u64,
        frees: frees as u64,
        puts: puts as u64,
        fresh: fresh as u64,
        dropped: dropped as u64,
        window: window.as_secs_f64(),
        cpu: cpu / 1e9,
    }
}

/// Remote vs local free across processes: (remote ns, local ns) per free, and whether the
/// two processes were bound to two different CPUs.
fn remote_free(rounds: u64) -> (f64, f64, bool) {
    let f = Fixture::new("remote", 2);
    let mut envs = f.envs();
    envs.push((ENV_ROUNDS, rounds.to_string()));
    let kid = spawn("freer", &envs);
    // After the spawn: the child must not inherit the binding.
    let old = pin_to(0);
    let pinned = old.is_some();
    {
        let h = f.att.heap();
        let s = f.att.region().store();
        let ack = f.w(C_ACK);
        for r in 1..=rounds {
            for k in 0..FREE_BATCH {
                let b = h.alloc(FREE_SIZE).expect("alloc").get();
                h.settle(0).expect("settle");
                s.store(b, k as u64, Ordering::Relaxed).expect("write");
                s.store(f.ctl + C_ARRAYS + 8 * k as u64, b, Ordering::Relaxed)
                    .expect("batch");
            }
            // Publishes the batch to the freer.
            set_and_wake(f.w(C_REQ), r);
            wait_for(ack, r);
        }
    }
    let v = finish(kid);
    f.finish();
    unpin(old);
    (v[0], v[1], pinned && v[2] == 1.0)
}

const MODES: [Mode; 3] = [Mode::Larson, Mode::Local, Mode::System];

fn parent() {
    let full = bench_mode();
    let (secs, runs, spin_secs, free_rounds) = if full {
        (1.5, 5, 0.5, 302)
    } else {
        (0.2, 1, 0.1, 5)
    };
    let t_all = Instant::now();
    let load_start = loadavg();
    let procs = procs_list();
    // results[mode][P index][run]; par[run][P index] = the parallelism P busy processes got
    // (1 for P = 1). Each run measures the machine's parallelism and then every (P, mode)
    // cell, so that a cell is compared with P = 1 and with the machine as they were at about
    // the same time (the CPU a VM gets drifts with its neighbours' load).
    let mut results: Vec<Vec<Vec<LarsonRun>>> = MODES
        .iter()
        .map(|_| procs.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut par: Vec<Vec<f64>> = Vec::new();
    for run in 0..runs {
        let gives: Vec<f64> = procs
            .iter()
            .map(|&p| {
                if p == 1 {
                    1.0
                } else {
                    parallelism(p, spin_secs)
                }
            })
            .collect();
        println!(
            "run {}/{runs}: CPU parallelism {}",
            run + 1,
            procs
                .iter()
                .zip(&gives)
                .filter(|(&p, _)| p > 1)
                .map(|(p, g)| format!("{p} processes {g:.2}x"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        par.push(gives);
        for (pi, &p) in procs.iter().enumerate() {
            for (mi, &mode) in MODES.iter().enumerate() {
                let r = larson_run(mode, p, secs);
                println!(
                    "run {}/{runs} {:<6} P={p}: {:>9.0} ops/s, {:.2} CPUs busy, {:>9.0} ops per \
                     CPU-s, {:>4.1}% remote frees, hand-offs {} (fresh {}, dropped {})",
                    run + 1,
                    mode.name(),
                    r.ops_per_sec,
                    r.cpu / r.window,
                    r.ops / r.cpu,
                    100.0 * r.remote as f64 / r.frees.max(1) as f64,
                    r.puts,
                    r.fresh,
                    r.dropped,
                );
                results[mi][pi].push(r);
            }
        }
    }
    println!("measuring remote vs local free ({free_rounds} batches of {FREE_BATCH})...");
    let (remote_ns, local_ns, pinned) = remote_free(free_rounds);

    let med_of = |v: Vec<f64>| median(&mut v.clone());
    let ops_s = |r: &LarsonRun| r.ops_per_sec;
    // Median over runs of f(run of this cell, run of the P = 1 cell of the same mode, run index).
    let paired = |mi: usize, pi: usize, f: &dyn Fn(&LarsonRun, &LarsonRun, usize) -> f64| {
        med_of(
            (0..runs)
                .map(|r| f(&results[mi][pi][r], &results[mi][0][r], r))
                .collect(),
        )
    };
    let machine = |pi: usize, r: usize| par[r][pi];

    println!();
    println!("== persist Larson benchmark: processes on one store ==");
    for l in machine_lines() {
        println!("{l}");
    }
    println!("command: {}", command_line("larson"));
    println!(
        "load average (1/5/15 min): {load_start} at start, {} at end",
        loadavg()
    );
    println!(
        "workload: per process {SLOTS} live blocks of {MIN_SIZE}..={MAX_SIZE} B (xorshift, fixed \
         seed); op = free a random slot + alloc + settle + write one word; every {ROUND_OPS} ops \
         process i takes the array process i-1 left for it and leaves its own for process \
         (i+1) % P, never waiting (fresh: started a new array as the predecessor lagged; \
         dropped: freed its own as the successor lagged); {secs} s per run, {runs} runs"
    );
    println!(
        "CPU parallelism (as ../shared/bench: busy processes for {spin_secs} s, total work / work \
         of one), per run: {}",
        procs
            .iter()
            .enumerate()
            .filter(|(_, &p)| p > 1)
            .map(|(pi, p)| format!(
                "{p} processes {}",
                par.iter()
                    .map(|g| format!("{:.2}x", g[pi]))
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
            .collect::<Vec<_>>()
            .join("; "),
    );
    println!(
        "vs P=1 and vs machine are medians over runs of per-run ratios (each run against the \
         P=1 run and the parallelism measured just before it)"
    );
    println!();
    println!(
        "| P | ops/s (median) | all runs | vs P=1 | target >= {SCALING_TARGET} | machine gives \
         | vs machine | ops per CPU-s | remote frees | hand-offs (fresh, dropped) |"
    );
    println!("|---:|---:|---|---:|---|---:|---:|---:|---:|---|");
    for (pi, &p) in procs.iter().enumerate() {
        let rs = &results[0][pi];
        let all: Vec<String> = rs
            .iter()
            .map(|r| format!("{:.2}M", r.ops_per_sec / 1e6))
            .collect();
        let m = med_of(rs.iter().map(ops_s).collect());
        let speedup = paired(0, pi, &|a, b, _| a.ops_per_sec / b.ops_per_sec);
        let vs_machine = paired(0, pi, &|a, b, r| {
            a.ops_per_sec / b.ops_per_sec / machine(pi, r)
        });
        let gives = med_of((0..runs).map(|r| machine(pi, r)).collect());
        let target = if p == 1 {
            "-"
        } else if speedup >= SCALING_TARGET {
            "met"
        } else {
            "MISSED"
        };
        let sum = |f: &dyn Fn(&LarsonRun) -> f64| rs.iter().map(f).sum::<f64>();
        println!(
            "| {p} | {m:.0} | {} | {speedup:.2}x | {target} | {gives:.2}x | {vs_machine:.2} | \
             {:.2}M | {:.1}% | {:.0} ({:.0}, {:.0}) |",
            all.join(" "),
            med_of(rs.iter().map(|r| r.ops / r.cpu).collect()) / 1e6,
            100.0 * sum(&|r| r.remote as f64) / sum(&|r| r.frees as f64),
            sum(&|r| r.puts as f64),
            sum(&|r| r.fresh as f64),
            sum(&|r| r.dropped as f64),
        );
    }
    println!();
    println!(
        "baselines in the same runs, no hand-off: persist `local` (each process frees only its \
         own blocks) and `system` (std::alloc::System in each process); ops/s medians, vs P=1 \
         paired as above"
    );
    println!();
    println!(
        "| P | larson ops/s | vs P=1 | local ops/s | vs P=1 | system ops/s | vs P=1 | \
         larson/system | larson scaling / system scaling |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (pi, &p) in procs.iter().enumerate() {
        let cells: Vec<String> = (0..MODES.len())
            .map(|mi| {
                let m = med_of(results[mi][pi].iter().map(ops_s).collect());
                let v = paired(mi, pi, &|a, b, _| a.ops_per_sec / b.ops_per_sec);
                format!("{:.2}M | {v:.2}x", m / 1e6)
            })
            .collect();
        let ratio = med_of(
            (0..runs)
                .map(|r| results[0][pi][r].ops_per_sec / results[2][pi][r].ops_per_sec)
                .collect(),
        );
        // How larson's speedup over P = 1 compares with the system allocator's in the same run:
        // the machine's drift cancels out.
        let rel = med_of(
            (0..runs)
                .map(|r| {
                    let sp =
                        |mi: usize| results[mi][pi][r].ops_per_sec / results[mi][0][r].ops_per_sec;
                    sp(0) / sp(2)
                })
                .collect(),
        );
        println!("| {p} | {} | {ratio:.2}x | {rel:.2} |", cells.join(" | "));
    }
    println!();
    println!(
        "remote vs local free, {FREE_SIZE} B blocks, two processes{} (median of {} batches of \
         {FREE_BATCH}):",
        if pinned {
            " bound to CPUs 0 and 1"
        } else {
            " (not bound to CPUs)"
        },
        free_rounds - 2
    );
    println!();
    println!("| free | ns/op |");
    println!("|---|---:|");
    println!("| local (the freeing process allocated and wrote the block) | {local_ns:.1} |");
    println!("| remote (another process allocated and wrote it) | {remote_ns:.1} |");
    let ratio = remote_ns / local_ns;
    let ok = if ratio <= REMOTE_TARGET {
        "met"
    } else {
        "MISSED"
    };
    println!("remote/local = {ratio:.2}x (target <= {REMOTE_TARGET:.1}x: {ok})");
    println!("total bench time {:.1} s", t_all.elapsed().as_secs_f64());
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("spin") => child_spin(),
        Ok("worker") => child_worker(),
        Ok("freer") => child_freer(),
        Ok(other) => panic!("unknown {ROLE}={other}"),
        Err(_) => parent(),
    }
}
