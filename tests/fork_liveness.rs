//! Liveness follows processes, not descriptors: a participant that is SIGKILLed is seen dead and
//! recovered exactly once, and a child that merely *inherits* its parent's attachment through
//! `fork` never keeps the dead parent looking alive.
//!
//! The bug story. A participant is alive while the kernel holds an open-file-description lock
//! on its slot's byte of the lock file. After `fork`, the child shares the parent's open file
//! descriptions, and so that lock: if the parent is killed while a forked child (a worker pool,
//! a daemonised helper) runs on, the lock stays held, the dead parent's slot is never
//! recovered, and whatever it had in flight (a claimed page run, the store lock later) is stuck
//! for as long as the child lives. `region::open::fork_guard` closes inherited liveness
//! descriptors in the child (a `pthread_atfork` handler), and `Attached`'s drop must not free
//! the parent's slot from the child either. These tests kill real processes: the test process
//! re-executes its own binary (see `harness`), which attaches, forks, and is SIGKILLed.

mod harness;

use harness::{env, record, TempDir};
use persist::heap::Attached;
use persist::region::table::{STATUS_ATTACHED, STATUS_FREE};
use persist::sync::Liveness;
use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

/// The re-executed child of every test in this file (returns at once in a normal run).
#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("attach_and_wait") => attach_and_wait(),
        Some("attach_fork_and_wait") => attach_fork_and_wait(false),
        Some("attach_fork_reattach_and_wait") => attach_fork_and_wait(true),
        Some(other) => panic!("unknown role {other}"),
    }
}

/// Reads slot words only; never decides liveness.
struct Blind;
impl Liveness for Blind {
    fn is_alive(&self, _: u32) -> bool {
        true
    }
}

fn slot_status(att: &Attached, slot: u32) -> u64 {
    att.region()
        .table(&Blind)
        .status(slot)
        .expect("read slot status")
}

fn slot_pid(att: &Attached, slot: u32) -> u64 {
    att.region()
        .table(&Blind)
        .load(slot, persist::region::table::W_PID)
        .expect("read slot pid")
}

const LIFETIME: Duration = Duration::from_secs(60);

/// Child: attaches, leaves things in flight (unsettled blocks in its journals), reports its slot
/// and waits to be killed (or gives up after LIFETIME so nothing outlives a broken test).
fn attach_and_wait() {
    let att = Attached::open(Path::new(&env("STORE"))).expect("child open");
    let heap = att.heap();
    let small = heap.alloc_into(48, 0).expect("small alloc");
    let large = heap.alloc_into(40_000, 1).expect("large alloc");
    record(&format!(
        "SLOT {} {} {}",
        att.slot(),
        small.get(),
        large.get()
    ));
    std::thread::sleep(LIFETIME);
    std::process::exit(3);
}

/// Middle process: attaches, forks a grandchild, reports, and waits to be killed.
///
/// The grandchild drops the attachment it inherited (which must leave the middle's slot
/// alone), optionally opens the store as a participant of its own, then signals readiness by
/// creating a file and sleeps until the stop file appears (or LIFETIME passes).
fn attach_fork_and_wait(reattach: bool) {
    let store = env("STORE");
    let att = Attached::open(Path::new(&store)).expect("middle open");
    let _held = att.heap().alloc(100).expect("middle alloc");
    let ready = CString::new(env("READY")).unwrap();
    let stop = CString::new(env("STOP")).unwrap();
    let gc_out = env("GC_OUT");
    record(&format!("SLOT {}", att.slot()));
    // SAFETY: fork in a process whose other threads (libtest's main thread) hold no lock the
    // child needs: the child uses the allocator and the store code of this thread only.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The grandchild.
        drop(att);
        if reattach {
            let mine = Attached::open(Path::new(&store));
            let line = match &mine {
                Ok(a) => {
                    let b = a.heap().alloc(64).map(|b| b.get().to_string());
                    format!("GCSLOT {} {:?}\n", a.slot(), b)
                }
                Err(e) => format!("GCERR {e}\n"),
            };
            let _ = std::fs::write(&gc_out, line);
            std::mem::forget(mine); // keep the participant attached until this process dies
        }
        // SAFETY: plain system calls with valid C strings.
        unsafe {
            let fd = libc::open(ready.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
            libc::close(fd);
            for _ in 0..LIFETIME.as_millis() / 10 {
                if libc::access(stop.as_ptr(), libc::F_OK) == 0 {
                    libc::_exit(0);
                }
                libc::usleep(10_000);
            }
            libc::_exit(0);
        }
    }
    record(&format!("GRANDCHILD {pid}"));
    std::thread::sleep(LIFETIME);
    std::process::exit(3);
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A re-executed child attaches, takes blocks without settling them, and is SIGKILLed: the
/// parent sees it alive before (nothing to recover), dead after (exactly one slot recovered,
/// then none), its slot free again, and the allocator consistent.
#[test]
fn killed_participant_is_recovered_once() {
    let dir = TempDir::new("fork-liveness-kill");
    let store = dir.join("store");
    let att = Attached::open(&store).unwrap();
    let out = dir.join("child.out");
    let mut child = harness::spawn(
        "child",
        "attach_and_wait",
        &[("STORE", store.display().to_string())],
        &out,
        &dir.join("child.log"),
    );
    let mut slot = None;
    wait_for("the child to attach", Duration::from_secs(30), || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "child ended early ({}):\n{}",
                harness::describe(&st),
                harness::log_tail(&dir.join("child.log"))
            );
        }
        slot = harness::fields(&harness::read_records(&out), "SLOT")
            .first()
            .map(|f| harness::parse_u64(f[0]) as u32);
        slot.is_some()
    });
    let slot = slot.unwrap();
    assert_ne!(slot, att.slot());
    assert_eq!(slot_status(&att, slot), STATUS_ATTACHED);
    assert_eq!(slot_pid(&att, slot), child.id() as u64);
    assert_eq!(
        att.recover_dead().unwrap(),
        0,
        "a live participant must not be recovered"
    );
    assert_eq!(slot_status(&att, slot), STATUS_ATTACHED);

    harness::kill_and_reap(&mut child);
    assert_eq!(
        att.recover_dead().unwrap(),
        1,
        "the killed participant is recovered"
    );
    assert_eq!(slot_status(&att, slot), STATUS_FREE);
    assert_eq!(att.recover_dead().unwrap(), 0, "recovery happens once");
    let st = att.check().expect("allocator consistent after recovery");
    // The dead child's two blocks were allocated and are now unreachable leftovers (for the
    // object layer's sweep): still counted, never handed out again.
    assert_eq!(st.blocks_allocated, 1);
    assert_eq!(st.large_runs, 1);
    let b = att.heap().alloc(48).unwrap();
    let recs = harness::read_records(&out);
    let f = &harness::fields(&recs, "SLOT")[0];
    assert_ne!(
        b.get(),
        harness::parse_u64(f[1]),
        "a leftover block is not reused"
    );
}

struct Middle {
    slot: u32,
    grandchild: i32,
}

fn start_middle(dir: &TempDir, role: &str) -> (std::process::Child, Middle) {
    let out = dir.join("middle.out");
    let log = dir.join("middle.log");
    let ready = dir.join("gc.ready");
    let mut middle = harness::spawn(
        "child",
        role,
        &[
            ("STORE", dir.join("store").display().to_string()),
            ("READY", ready.display().to_string()),
            ("STOP", dir.join("gc.stop").display().to_string()),
            ("GC_OUT", dir.join("gc.out").display().to_string()),
        ],
        &out,
        &log,
    );
    let mut found = None;
    wait_for(
        "the middle process to fork and the grandchild to be ready",
        Duration::from_secs(30),
        || {
            if let Ok(Some(st)) = middle.try_wait() {
                panic!(
                    "middle process ended early ({}):\n{}",
                    harness::describe(&st),
                    harness::log_tail(&log)
                );
            }
            let recs = harness::read_records(&out);
            let slot = harness::fields(&recs, "SLOT")
                .first()
                .map(|f| f[0].to_string());
            let gc = harness::fields(&recs, "GRANDCHILD")
                .first()
                .map(|f| f[0].to_string());
            if let (Some(s), Some(g), true) = (slot, gc, ready.exists()) {
                found = Some(Middle {
                    slot: harness::parse_u64(&s) as u32,
                    grandchild: harness::parse_u64(&g) as i32,
                });
            }
            found.is_some()
        },
    );
    (middle, found.unwrap())
}

/// Stops the grandchild (asks, then kills it after a grace period) and reaps it if this
/// process became its reaper.
fn stop_grandchild(dir: &TempDir, pid: i32) {
    std::fs::write(dir.join("gc.stop"), b"").unwrap();
    let t0 = Instant::now();
    while harness::process_running(pid) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    if harness::process_running(pid) {
        // SAFETY: plain system call; `pid` is the grandchild this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // SAFETY: plain system call; ECHILD (not our child) is harmless.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
}

/// The test process re-executes a middle process that attaches and forks a grandchild; the
/// grandchild drops the attachment it inherited and sleeps. The middle is SIGKILLed while the
/// grandchild lives on: the middle's slot must still be attached until then (the grandchild's
/// drop did not free it) and recovered right after (the grandchild does not hold its
/// liveness lock).
#[test]
fn forked_child_does_not_keep_a_killed_parent_alive() {
    let dir = TempDir::new("fork-liveness-inherit");
    let att = Attached::open(&dir.join("store")).unwrap();
    let (mut middle, m) = start_middle(&dir, "attach_fork_and_wait");
    assert!(harness::process_running(m.grandchild));
    assert_eq!(
        slot_status(&att, m.slot),
        STATUS_ATTACHED,
        "the grandchild's drop of its inherited attachment freed the parent's slot"
    );
    assert_eq!(
        att.recover_dead().unwrap(),
        0,
        "the middle process is alive"
    );

    harness::kill_and_reap(&mut middle);
    assert!(
        harness::process_running(m.grandchild),
        "the grandchild must outlive the middle for this test to mean anything"
    );
    let recovered = att.recover_dead().unwrap();
    let still_running = harness::process_running(m.grandchild);
    stop_grandchild(&dir, m.grandchild);
    assert!(still_running, "the grandchild died during the check");
    assert_eq!(
        recovered, 1,
        "the killed middle process still looks alive while its forked child runs"
    );
    assert_eq!(slot_status(&att, m.slot), STATUS_FREE);
    att.check().expect("allocator consistent after recovery");
}

/// As above, but the grandchild opens the store again after the fork: it becomes a participant
/// of its own (another slot), which stays alive when the middle is killed and is recovered on
/// its own once the grandchild is killed too.
#[test]
fn forked_child_that_reattaches_is_its_own_participant() {
    let dir = TempDir::new("fork-liveness-reattach");
    let att = Attached::open(&dir.join("store")).unwrap();
    let (mut middle, m) = start_middle(&dir, "attach_fork_reattach_and_wait");
    let gc_line = std::fs::read_to_string(dir.join("gc.out")).unwrap_or_default();
    let gc_fields: Vec<&str> = gc_line.split_whitespace().collect();
    assert_eq!(
        gc_fields.first().copied(),
        Some("GCSLOT"),
        "the grandchild could not attach: {gc_line}"
    );
    let gc_slot = harness::parse_u64(gc_fields[1]) as u32;
    assert!(
        gc_line.contains("Ok("),
        "grandchild alloc failed: {gc_line}"
    );
    assert_ne!(gc_slot, m.slot, "the grandchild reused its parent's slot");
    assert_eq!(slot_pid(&att, gc_slot), m.grandchild as u64);
    assert_eq!(slot_status(&att, m.slot), STATUS_ATTACHED);

    harness::kill_and_reap(&mut middle);
    let first = att.recover_dead().unwrap();
    let gc_status = slot_status(&att, gc_slot);
    let still_running = harness::process_running(m.grandchild);
    // SAFETY: plain system call; `pid` is the grandchild this test started.
    unsafe { libc::kill(m.grandchild, libc::SIGKILL) };
    wait_for("the grandchild to die", Duration::from_secs(10), || {
        !harness::process_running(m.grandchild)
    });
    stop_grandchild(&dir, m.grandchild);
    assert!(still_running, "the grandchild died during the check");
    assert_eq!(first, 1, "only the killed middle process is recovered");
    assert_eq!(
        gc_status, STATUS_ATTACHED,
        "the grandchild's own slot was recovered while it lived"
    );
    assert_eq!(slot_status(&att, m.slot), STATUS_FREE);
    assert_eq!(
        att.recover_dead().unwrap(),
        1,
        "the killed grandchild is recovered"
    );
    assert_eq!(slot_status(&att, gc_slot), STATUS_FREE);
    att.check().expect("allocator consistent after recovery");
}
