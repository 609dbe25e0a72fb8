//! The store grows without configuration, every process sees another's growth without
//! reopening, and a store that cannot grow any more is an error value: never a SIGBUS, never
//! a lost block.
//!
//! The bug story. A store mapped at its size when opened must be remapped when another process
//! grows it; a process that misses the growth either faults on the new bytes (SIGBUS past the
//! end of its mapping) or, in stores with a fixed map size (LMDB's "map full"), refuses to grow
//! at all. And growing by `ftruncate` alone makes a sparse file: when the disk fills, the
//! first touch of a new page is a SIGBUS in whatever process touches it. Here the file is
//! mapped once over a large reservation, growth reserves the disk space (`posix_fallocate`)
//! before it publishes the new size in the header, and every access is checked against the
//! published size, re-read when needed.
//!
//! The tests: a process that opened the store early reads blocks that a child allocated far
//! beyond the size it saw at open; a child under a file-size limit (RLIMIT_FSIZE, SIGXFSZ
//! ignored, the kernel's stand-in for a full disk) allocates until it gets `Full`, and then
//! nothing it stored before is lost; and the same through `Region::set_size_limit`.

mod harness;

use harness::{env, env_u64, record, TempDir};
use persist::heap::{Attached, Block as HeapBlock, Error as HeapError};
use persist::region::{OpenOptionsRegion, Region};
use persist::sync::{AccessError, WordStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);
const CHUNK: u64 = 2 << 20;
const SEED: u64 = 0x6720_7774;

/// The re-executed child.
#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("grow") => grow(),
        Some("fill_to_limit") => fill_to_limit(),
        Some("use_up") => use_up(),
        Some(other) => panic!("unknown role {other}"),
    }
}

/// A block a child allocated and what it wrote into it.
#[derive(Clone, Copy, Debug)]
struct Block {
    off: u64,
    size: u64,
    pid: u64,
    counter: u64,
}

impl Block {
    fn seed(&self) -> u64 {
        harness::seed(self.pid, self.off, self.counter)
    }
    fn record(&self) {
        record(&format!(
            "BLOCK {} {} {} {}",
            self.off, self.size, self.pid, self.counter
        ));
    }
}

fn blocks(records: &[String]) -> Vec<Block> {
    harness::fields(records, "BLOCK")
        .into_iter()
        .map(|f| Block {
            off: harness::parse_u64(f[0]),
            size: harness::parse_u64(f[1]),
            pid: harness::parse_u64(f[2]),
            counter: harness::parse_u64(f[3]),
        })
        .collect()
}

/// The first and last page of `b` (the whole of a small block) hold its pattern. The
/// children fill whole blocks; for big ones two pages stand for the rest.
fn sample(b: &Block) -> [(u64, u64); 2] {
    if b.size <= 8192 {
        [(b.off, b.size), (b.off, 0)]
    } else {
        [(b.off, 4096), (b.off + b.size - 4096, 4096)]
    }
}

fn write_sample(att: &Attached, b: &Block) {
    for (i, (off, len)) in sample(b).into_iter().enumerate() {
        let p = att
            .region()
            .store()
            .bytes(off, len)
            .expect("block in bounds");
        // SAFETY: a block this process allocated and holds.
        unsafe { harness::fill(p, len, b.seed() ^ i as u64) };
    }
}

/// Where the sample of `b` differs from what was written (None: intact).
fn check_sample(att: &Attached, b: &Block) -> Result<Option<u64>, AccessError> {
    for (i, (off, len)) in sample(b).into_iter().enumerate() {
        let p = att.region().store().bytes(off, len)?;
        // SAFETY: an allocated block no other process writes now.
        if let Some(at) = unsafe { harness::mismatch(p, len, b.seed() ^ i as u64) } {
            return Ok(Some(off - b.off + at));
        }
    }
    Ok(None)
}

/// Child: grows the store by about `GROW` bytes with whole-chunk runs (and some small blocks
/// in new segments at the end), writing a sample of each.
fn grow() {
    let att = Attached::open(Path::new(&env("STORE"))).expect("grow: open");
    let heap = att.heap();
    let pid = std::process::id() as u64;
    let target = att.region().store().size() + env_u64("GROW");
    let mut counter = 0;
    while att.region().store().size() < target {
        counter += 1;
        let b = Block {
            off: heap.alloc(CHUNK).expect("grow: alloc").get(),
            size: CHUNK,
            pid,
            counter,
        };
        heap.settle(0).unwrap();
        write_sample(&att, &b);
        b.record();
    }
    for size in [48, 3000, 40_000, 5 << 20] {
        counter += 1;
        let b = Block {
            off: heap.alloc(size).expect("grow: alloc").get(),
            size,
            pid,
            counter,
        };
        heap.settle(0).unwrap();
        write_sample(&att, &b);
        b.record();
    }
    record(&format!("SIZE {}", att.region().store().size()));
    att.close().unwrap();
}

/// Free space of the file system holding `dir`, in bytes.
fn available(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs fills the zeroed struct; `c` is a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return 0;
        }
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

fn run_child(dir: &TempDir, role: &str, vars: &[(&str, String)]) -> Vec<String> {
    let out = dir.join(&format!("{role}.out"));
    let log = dir.join(&format!("{role}.log"));
    let mut child = harness::spawn("child", role, vars, &out, &log);
    let st = harness::wait_timeout(&mut child, TIMEOUT)
        .unwrap_or_else(|| panic!("{role} hung:\n{}", harness::log_tail(&log)));
    assert!(
        st.success(),
        "{role} failed with {}:\n{}",
        harness::describe(&st),
        harness::log_tail(&log)
    );
    harness::read_records(&out)
}

#[test]
fn growth_by_another_process_is_seen_without_reopening() {
    let dir = TempDir::new("growth-seen");
    let store = dir.join("store");
    // 200 MB, or an eighth of the free space on a small disk.
    let grow_by = (200u64 << 20).min(available(dir.path()) / 8);
    assert!(
        grow_by >= 4 << 20,
        "less than 32 MiB free in {}",
        dir.path().display()
    );
    let att = Attached::open(&store).unwrap();
    let early = att.heap().alloc(100).unwrap();
    att.heap().settle(0).unwrap();
    let seen_at_open = att.region().store().size();
    let probe = seen_at_open + grow_by / 2;
    assert!(
        att.region().store().bytes(probe, 8).is_err(),
        "bytes beyond the size seen at open are reachable before anyone grew the store"
    );

    let recs = run_child(
        &dir,
        "grow",
        &[
            ("STORE", store.display().to_string()),
            ("GROW", grow_by.to_string()),
        ],
    );
    let grown: Vec<Block> = blocks(&recs);
    let child_size = harness::parse_u64(harness::fields(&recs, "SIZE")[0][0]);
    assert!(child_size >= seen_at_open + grow_by);
    let beyond: Vec<&Block> = grown.iter().filter(|b| b.off >= seen_at_open).collect();
    assert!(
        beyond.len() * 2 >= grown.len(),
        "the child's blocks should lie mostly beyond the size seen at open"
    );

    // Without reopening: every block of the child is readable and holds its pattern.
    for b in &grown {
        match check_sample(&att, b) {
            Ok(None) => {}
            Ok(Some(at)) => panic!("block {b:?} reads back wrong at byte {at}"),
            Err(e) => panic!(
                "block {b:?} beyond the size seen at open ({seen_at_open}) is out of reach \
                 for the early opener: {e}"
            ),
        }
    }
    assert!(att.region().store().size() >= child_size);
    println!(
        "seen at open {seen_at_open} bytes; the child grew the store to {child_size} with {} \
         blocks, {} of them beyond",
        grown.len(),
        beyond.len()
    );
    // The early opener uses the grown part: its allocator frees the child's blocks and
    // allocates there, and its check walks all of it.
    let st = att.check().expect("check after growth");
    assert_eq!(
        st.blocks_allocated, 3,
        "the early block and the child's two small ones"
    );
    assert_eq!(st.large_runs as usize, grown.len() - 2);
    let heap = att.heap();
    for b in &grown {
        heap.free(HeapBlock::from_word(b.off)).unwrap();
    }
    let again = heap.alloc(CHUNK).unwrap();
    heap.settle(0).unwrap();
    assert!(again.get() + CHUNK <= att.region().store().size());
    let p = att.region().store().bytes(again.get(), CHUNK).unwrap();
    // SAFETY: a block this process just allocated.
    unsafe { harness::fill(p, CHUNK, 7) };
    heap.free(again).unwrap();
    heap.free(early).unwrap();
    let st = att.check().unwrap();
    assert_eq!((st.blocks_allocated, st.large_runs), (0, 0));
}

/// Child: under RLIMIT_FSIZE = LIMIT (SIGXFSZ ignored), allocates filled blocks of mixed sizes
/// until the store is full, then checks that everything is still there and that the store
/// still works within its space.
fn fill_to_limit() {
    let limit = env_u64("LIMIT");
    // SAFETY: plain system calls; ignoring SIGXFSZ turns a write past the limit into EFBIG.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rl), 0);
    }
    let att = Attached::open(Path::new(&env("STORE"))).expect("open under the limit");
    let (full, kept) = fill_until_full(&att, limit);
    record(&full);
    for b in &kept {
        b.record();
    }
    att.close().unwrap();
}

/// Allocates filled blocks until `alloc` fails, which must be `Full`; then checks the blocks,
/// frees some and allocates again within the space. Returns the `Full` error (as text) and the
/// blocks it holds at the end.
fn fill_until_full(att: &Attached, limit: u64) -> (String, Vec<Block>) {
    let heap = att.heap();
    let pid = std::process::id() as u64;
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut held: Vec<Block> = Vec::new();
    let mut full = None;
    for counter in 0..100_000 {
        let size = match rng.gen_range(0..100) {
            0..=59 => rng.gen_range(16..=2048),
            60..=89 => rng.gen_range(8193..=200_000),
            _ => rng.gen_range(CHUNK + 1..=3 * CHUNK / 2),
        };
        match heap.alloc(size) {
            Ok(b) => {
                heap.settle(0).unwrap();
                let off = b.get();
                let b = Block {
                    off,
                    size,
                    pid,
                    counter,
                };
                let p = att
                    .region()
                    .store()
                    .bytes(off, size)
                    .expect("new block in bounds");
                // SAFETY: a block this process just allocated.
                unsafe { harness::fill(p, size, b.seed()) };
                held.push(b);
            }
            Err(HeapError::Access(AccessError::Full { wanted, reason })) => {
                full = Some(format!("FULL {size} {wanted} | {reason}"));
                break;
            }
            Err(e) => panic!("alloc({size}) past the limit failed with {e:?}, not Full"),
        }
    }
    let full = full.expect("the store never became full");
    assert!(att.region().store().size() <= limit);
    let verify = |held: &[Block]| {
        for b in held {
            let p = att.region().store().bytes(b.off, b.size).unwrap();
            // SAFETY: a block this process holds.
            let bad = unsafe { harness::mismatch(p, b.size, b.seed()) };
            assert_eq!(bad, None, "block {b:?} damaged after the store became full");
        }
    };
    verify(&held);
    att.check().expect("check of a full store");
    // Space inside the store is still used: free every other block and take the same sizes
    // again (each fits where its predecessor was).
    let mut kept = Vec::new();
    let mut again = Vec::new();
    for (i, b) in held.into_iter().enumerate() {
        if i % 2 == 0 {
            heap.free(HeapBlock::from_word(b.off)).unwrap();
            again.push(b.size);
        } else {
            kept.push(b);
        }
    }
    for (i, size) in again.into_iter().enumerate() {
        let off = heap
            .alloc(size)
            .unwrap_or_else(|e| panic!("re-allocating {size} freed bytes in a full store: {e}"))
            .get();
        heap.settle(0).unwrap();
        let b = Block {
            off,
            size,
            pid,
            counter: 1_000_000 + i as u64,
        };
        let p = att.region().store().bytes(off, size).unwrap();
        // SAFETY: a block this process just allocated.
        unsafe { harness::fill(p, size, b.seed()) };
        kept.push(b);
    }
    verify(&kept);
    let st = att.check().expect("check after reuse in a full store");
    let large = kept.iter().filter(|b| b.size > 8192).count() as u64;
    assert_eq!(st.large_runs, large);
    assert_eq!(st.blocks_allocated, kept.len() as u64 - large);
    (full, kept)
}

/// After a `fill_until_full` run: a fresh opener without any limit finds every block intact,
/// a clean check, and room to grow.
fn reopen_and_verify(store: &Path, kept: &[Block]) {
    assert!(
        kept.len() > 10,
        "too few blocks for the test to mean anything"
    );
    let att = Attached::open(store).unwrap();
    let st = att.check().expect("check after reopening a full store");
    let large = kept.iter().filter(|b| b.size > 8192).count() as u64;
    assert_eq!(st.large_runs, large);
    assert_eq!(st.blocks_allocated, kept.len() as u64 - large);
    let mut allocated = BTreeMap::new();
    att.heap()
        .for_each_allocated(|o, s| {
            allocated.insert(o.get(), s);
        })
        .unwrap();
    for b in kept {
        assert!(allocated.get(&b.off).is_some_and(|&s| s >= b.size));
        let p = att.region().store().bytes(b.off, b.size).unwrap();
        // SAFETY: an allocated block no process uses.
        let bad = unsafe { harness::mismatch(p, b.size, b.seed()) };
        assert_eq!(bad, None, "block {b:?} lost after the store was full");
    }
    let size = att.region().store().size();
    let big = att
        .heap()
        .alloc(4 * CHUNK)
        .expect("growth after the limit is gone");
    assert!(
        big.get() + 4 * CHUNK > size,
        "the new block should need growth"
    );
}

#[test]
fn a_file_size_limit_makes_alloc_fail_with_full_and_loses_nothing() {
    let dir = TempDir::new("growth-rlimit");
    let store = dir.join("store");
    let limit: u64 = 40 << 20;
    let recs = run_child(
        &dir,
        "fill_to_limit",
        &[
            ("STORE", store.display().to_string()),
            ("LIMIT", limit.to_string()),
        ],
    );
    let full: Vec<&String> = recs.iter().filter(|r| r.starts_with("FULL")).collect();
    assert_eq!(full.len(), 1, "the child never reported Full: {recs:?}");
    println!("{} (limit {limit})", full[0]);
    let file_len = std::fs::metadata(&store).unwrap().len();
    assert!(
        file_len <= limit,
        "the file grew past the limit: {file_len}"
    );
    reopen_and_verify(&store, &blocks(&recs));
}

/// Child: under RLIMIT_FSIZE = LIMIT, allocates SIZE-byte blocks until `Full`; records the
/// room the file had left then.
fn use_up() {
    let limit = env_u64("LIMIT");
    let size = env_u64("SIZE");
    // SAFETY: plain system calls, as in `fill_to_limit`.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rl), 0);
    }
    let store = PathBuf::from(env("STORE"));
    let att = Attached::open(&store).expect("open under the limit");
    let heap = att.heap();
    for n in 0.. {
        match heap.alloc(size) {
            Ok(_) => heap.settle(0).unwrap(),
            Err(HeapError::Access(AccessError::Full { wanted, reason })) => {
                let len = std::fs::metadata(&store).unwrap().len();
                record(&format!(
                    "ROOM {} {n} {wanted} | {reason}",
                    limit.saturating_sub(len)
                ));
                break;
            }
            Err(e) => panic!("alloc({size}) failed with {e:?}, not Full"),
        }
    }
    att.close().unwrap();
}

/// `Full` means full: when an allocation of 50 KB fails, the file-size limit leaves no room
/// for it (at most the request, the metadata of a new chunk and a growth step's rounding).
#[test]
fn full_comes_only_when_the_room_is_used_up() {
    let dir = TempDir::new("growth-room");
    let store = dir.join("store");
    let limit: u64 = 120 << 20;
    let size: u64 = 50_000;
    let recs = run_child(
        &dir,
        "use_up",
        &[
            ("STORE", store.display().to_string()),
            ("LIMIT", limit.to_string()),
            ("SIZE", size.to_string()),
        ],
    );
    let line = recs
        .iter()
        .find(|r| r.starts_with("ROOM"))
        .expect("no Full reported");
    let f: Vec<&str> = line.split_whitespace().collect();
    let room = harness::parse_u64(f[1]);
    assert!(
        room < size + CHUNK / 2 + (1 << 20),
        "alloc({size}) failed with Full while the file could still grow by {room} bytes \
         (limit {limit}): {line}"
    );
}

#[test]
fn a_region_size_limit_makes_alloc_fail_with_full_and_loses_nothing() {
    let dir = TempDir::new("growth-limit");
    let store: PathBuf = dir.join("store");
    let limit: u64 = 24 << 20;
    let mut region = Region::open(
        &store,
        OpenOptionsRegion {
            create: true,
            durable: false,
            readonly: false,
        },
    )
    .unwrap();
    region.set_size_limit(limit);
    let att = Attached::from_region(region).unwrap();
    let (full, kept) = fill_until_full(&att, limit);
    assert!(full.starts_with("FULL"));
    println!("{full} (limit {limit}, {} blocks kept)", kept.len());
    att.close().unwrap();
    reopen_and_verify(&store, &kept);
}
