//! Processes that create the same store at the same moment all end up in one store, and a
//! creator killed while creating leaves no half-made store and no temporary file behind.
//!
//! The bug story. "Create if missing" done as open(O_CREAT), then write a header, lets two
//! processes that start together each see an empty file and each write a header with its own
//! store id (and its own idea of the lock file): both then allocate from "their" fresh store,
//! handing out the same offsets, and the loser's header is silently replaced under it. A creator
//! killed between creating the file and writing the header leaves a file that every later open
//! rejects. The engine writes a new store into an unnamed file (O_TMPFILE) and links it into
//! place with `linkat`, which fails if the name exists (the loser opens the winner's store), and
//! initialises an existing empty file under a lock.
//!
//! Here N re-executed children (see `harness`) wait at a barrier (a file that appears), then
//! all open the same path at once, some rounds with the path missing and some with an empty
//! file already there. Each allocates and fills blocks and reports its store id and offsets:
//! all ids must be one, the file's; the blocks of all processes must be disjoint, allocated and
//! intact; `check()` must pass with exactly their count; and the directory must hold nothing
//! but the store and its lock file. Then the same storm with creators SIGKILLed at random
//! moments: whatever is left must open and check clean, with no temporary files.

mod harness;

use harness::{env, env_u64, record, TempDir};
use persist::heap::Attached;
use persist::region::{lock_path, Header};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const PROCS: usize = 6;
const BLOCKS_EACH: u64 = 24;
const TIMEOUT: Duration = Duration::from_secs(60);
const SEED: u64 = 0xc4ea_7105;

/// The re-executed child.
#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("create") => create(),
        Some(other) => panic!("unknown role {other}"),
    }
}

/// Waits at the barrier, opens (creating) the store, allocates and fills blocks, reports.
fn create() {
    let store = PathBuf::from(env("STORE"));
    let go = PathBuf::from(env("GO"));
    let id = env_u64("ID");
    let pid = std::process::id() as u64;
    record("READY");
    let t0 = Instant::now();
    while !go.exists() {
        assert!(t0.elapsed() < TIMEOUT, "no go signal");
        std::thread::sleep(Duration::from_micros(50));
    }
    let att = Attached::open(&store).unwrap_or_else(|e| panic!("child {id}: open: {e}"));
    record(&format!(
        "ID {} {}",
        att.region().header().store_id,
        att.slot()
    ));
    let heap = att.heap();
    let mut rng = StdRng::seed_from_u64(SEED ^ harness::mix(id));
    let mut blocks = Vec::new();
    for counter in 0..BLOCKS_EACH {
        let size = match counter % 6 {
            0 => rng.gen_range(8193..=100_000),
            1 => rng.gen_range(1025..=8192),
            _ => rng.gen_range(16..=1024),
        };
        let off = heap.alloc(size).expect("alloc").get();
        let p = att.region().store().bytes(off, size).expect("in bounds");
        // SAFETY: a block this process just allocated.
        unsafe { harness::fill(p, size, harness::seed(pid, off, counter)) };
        heap.settle(0).unwrap();
        record(&format!("BLOCK {off} {size} {pid} {counter}"));
        blocks.push((off, size, counter));
    }
    for (off, size, counter) in blocks {
        let p = att.region().store().bytes(off, size).expect("in bounds");
        // SAFETY: a block this process allocated and still holds.
        if let Some(at) = unsafe { harness::mismatch(p, size, harness::seed(pid, off, counter)) } {
            panic!("child {id}: block {off:#x} ({size} bytes) overwritten at byte {at}");
        }
    }
    record("DONE");
    att.close().unwrap();
}

struct Storm {
    children: Vec<(Child, PathBuf, PathBuf)>,
}

/// Starts `PROCS` creators of `store`, waits until all are at the barrier, and lets them go.
fn start_storm(logs: &TempDir, round: usize, store: &Path) -> Storm {
    let go = logs.join(&format!("go-{round}"));
    let mut children = Vec::new();
    for i in 0..PROCS {
        let out = logs.join(&format!("r{round}-c{i}.out"));
        let log = logs.join(&format!("r{round}-c{i}.log"));
        let child = harness::spawn(
            "child",
            "create",
            &[
                ("STORE", store.display().to_string()),
                ("GO", go.display().to_string()),
                ("ID", (round * 100 + i).to_string()),
            ],
            &out,
            &log,
        );
        children.push((child, out, log));
    }
    let t0 = Instant::now();
    for (child, out, log) in &mut children {
        while !harness::read_records(out).iter().any(|r| r == "READY") {
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "round {round}: creator ended before the barrier with {}:\n{}",
                    harness::describe(&st),
                    harness::log_tail(log)
                );
            }
            assert!(
                t0.elapsed() < TIMEOUT,
                "round {round}: creators never got ready"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::fs::write(&go, b"").unwrap();
    Storm { children }
}

/// Names in the store's directory other than the store and its lock file.
fn strays(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "store" && n != "store.lock")
        .collect()
}

#[test]
fn simultaneous_creators_share_one_store() {
    let logs = TempDir::new("creation-race-logs");
    for round in 0..8 {
        let dir = TempDir::new("creation-race");
        let store = dir.join("store");
        let empty_file = round % 2 == 1;
        if empty_file {
            std::fs::write(&store, b"").unwrap();
        }
        let storm = start_storm(&logs, round, &store);
        let mut ids = Vec::new();
        let mut blocks = Vec::new();
        for (mut child, out, log) in storm.children {
            let st = harness::wait_timeout(&mut child, TIMEOUT)
                .unwrap_or_else(|| panic!("round {round}: a creator hung"));
            assert!(
                st.success(),
                "round {round}: a creator failed with {}:\n{}",
                harness::describe(&st),
                harness::log_tail(&log)
            );
            let recs = harness::read_records(&out);
            assert!(recs.iter().any(|r| r == "DONE"));
            ids.push(harness::parse_u64(harness::fields(&recs, "ID")[0][0]));
            for f in harness::fields(&recs, "BLOCK") {
                let v: Vec<u64> = f.iter().map(|s| harness::parse_u64(s)).collect();
                blocks.push((v[0], v[1], v[2], v[3]));
            }
        }
        let bytes = std::fs::read(&store).unwrap();
        let header = Header::decode(&store, &bytes[..64.min(bytes.len())]).unwrap();
        let lock = std::fs::read(lock_path(&store)).unwrap();
        let lock_id = u64::from_le_bytes(lock[16..24].try_into().unwrap());
        assert!(
            ids.iter().all(|&id| id == header.store_id),
            "round {round} (empty file: {empty_file}): the creators ended in different stores: \
             {ids:x?}, the file's id is {:x}",
            header.store_id
        );
        assert_eq!(
            lock_id, header.store_id,
            "the lock file belongs to another store"
        );

        blocks.sort_unstable();
        for w in blocks.windows(2) {
            assert!(
                w[0].0 + w[0].1 <= w[1].0,
                "round {round}: blocks of pids {} and {} overlap: {w:?}",
                w[0].2,
                w[1].2
            );
        }
        let att = Attached::open(&store).unwrap();
        let st = att.check().expect("check after the creation storm");
        let large = blocks.iter().filter(|b| b.1 > 8192).count() as u64;
        assert_eq!(st.large_runs, large, "round {round}");
        assert_eq!(
            st.blocks_allocated,
            blocks.len() as u64 - large,
            "round {round}"
        );
        let mut allocated = BTreeMap::new();
        att.heap()
            .for_each_allocated(|off, size| {
                allocated.insert(off.get(), size);
            })
            .unwrap();
        for &(off, size, pid, counter) in &blocks {
            assert!(
                allocated.get(&off).is_some_and(|&s| s >= size),
                "round {round}: block {off:#x} of pid {pid} is not allocated"
            );
            let p = att.region().store().bytes(off, size).unwrap();
            // SAFETY: an allocated block that no live process uses.
            let bad = unsafe { harness::mismatch(p, size, harness::seed(pid, off, counter)) };
            assert_eq!(
                bad, None,
                "round {round}: block {off:#x} of pid {pid} overwritten"
            );
        }
        drop(att);
        assert_eq!(
            strays(dir.path()),
            Vec::<String>::new(),
            "round {round}: files left beside the store"
        );
    }
}

#[test]
fn creators_killed_mid_creation_leave_no_half_made_store() {
    let logs = TempDir::new("creation-kill-logs");
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut opened_existing = 0;
    let mut killed_before_open = 0;
    let mut killed_before_done = 0;
    for round in 0..20 {
        let dir = TempDir::new("creation-kill");
        let store = dir.join("store");
        if round % 3 == 2 {
            std::fs::write(&store, b"").unwrap();
        }
        let mut storm = start_storm(&logs, round, &store);
        // Kill every creator within a few hundred microseconds of the go signal: most land
        // while they open or create, some while they allocate.
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..300)));
        for (child, _, _) in &mut storm.children {
            let _ = child.kill();
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..100)));
        }
        for (mut child, out, log) in storm.children {
            let st = child.wait().unwrap();
            let recs = harness::read_records(&out);
            killed_before_open += u64::from(harness::fields(&recs, "ID").is_empty());
            killed_before_done += u64::from(!recs.iter().any(|r| r == "DONE"));
            // A creator that finished before its kill exits cleanly; anything else is a bug.
            let killed = std::os::unix::process::ExitStatusExt::signal(&st) == Some(libc::SIGKILL);
            assert!(
                killed || st.success(),
                "round {round}: a creator failed with {}:\n{}",
                harness::describe(&st),
                harness::log_tail(&log)
            );
        }
        assert_eq!(
            strays(dir.path()),
            Vec::<String>::new(),
            "round {round}: killed creators left files beside the store"
        );
        opened_existing += u64::from(store.exists());
        let att = Attached::open(&store)
            .unwrap_or_else(|e| panic!("round {round}: the store left by killed creators: {e}"));
        let bytes = std::fs::read(&store).unwrap();
        let header = Header::decode(&store, &bytes[..64]).expect("a whole header");
        assert_eq!(header.store_id, att.region().header().store_id);
        att.check().expect("check after killed creators");
        assert_eq!(
            att.recover_dead().unwrap(),
            0,
            "open recovered every dead creator"
        );
    }
    println!(
        "{opened_existing} of 20 rounds left a store to open; of {} creators, \
         {killed_before_open} were killed before their open returned, {killed_before_done} \
         before they finished",
        20 * PROCS
    );
}
