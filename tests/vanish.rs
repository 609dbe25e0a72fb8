//! A page that vanishes under a running process gives an error, not a SIGBUS.
//!
//! The bug story (issue 16, item 4): another process (or user) truncates the store file or its
//! lock file while a process has the store open; the next step of that process touches a page
//! beyond the new end of the file, the kernel sends SIGBUS, and the process dies (exit 135)
//! instead of getting an error. Now the handler of `region::vanish` maps a zero page over the
//! faulting page and poisons the mapping, and the step fails with `Error::Corrupt` naming the
//! truncated file; every later step fails the same way and the process runs on.
//!
//! Each test runs a child (this test binary re-executed, see `harness`) that opens a store,
//! fills it, says it is ready, and waits; the test truncates one of the two files, tells the
//! child to go on, and the child reads or writes (the first step touches the vanished page),
//! then tries the other kind of step, then closes, recording each outcome. The child must exit
//! normally; without the handler it dies of SIGBUS at its first step.

mod harness;

use harness::{env, fields, read_records, record, users, TempDir};
use persist::object::dict::{Key, NO_HINT};
use persist::object::tree::{Node, Tree};
use persist::object::view::Value;
use persist::object::{Error, Plain, SharedStore, Store};
use persist::region::OpenOptionsRegion;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TEST: &str = "child";

/// The re-executed child of every test in this file (returns at once in a normal run).
#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("read_first") => use_after_truncation(true),
        Some("write_first") => use_after_truncation(false),
        Some("foreign_fault") => foreign_fault(),
        Some(other) => panic!("unknown role {other}"),
    }
}

fn with_key<T>(name: &str, f: impl FnOnce(&Key) -> T) -> T {
    let t = Tree::scalar(Node::Str(name.as_bytes().into()));
    let k = Key::new(&t, t.root).expect("key");
    f(&k)
}

fn get_str(st: &Store, name: &str) -> Result<Option<String>, Error> {
    let root = st.root()?;
    let Some(w) = with_key(name, |k| st.dict_get(root, k, &mut NO_HINT.clone()))? else {
        return Ok(None);
    };
    match st.value(w)? {
        Value::Str(p) => Ok(Some(
            String::from_utf8_lossy(&st.payload_bytes(p)?).into_owned(),
        )),
        v => panic!("{name} holds a {}", v.type_name()),
    }
}

fn set_str(st: &mut Store, name: &str, v: &str) -> Result<(), Error> {
    let root = st.root()?;
    let w = st.encode(&Tree::scalar(Node::Str(v.as_bytes().into())))?;
    with_key(name, |k| st.dict_set(root, k, w, &mut NO_HINT.clone()))?;
    Ok(())
}

/// One line per outcome: "ok" or the error, on one line.
fn outcome<T>(r: Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("err {}", e.to_string().replace('\n', " ")),
    }
}

fn use_after_truncation(read_first: bool) {
    let path = PathBuf::from(env("VANISH_STORE"));
    let go = PathBuf::from(env("VANISH_GO"));
    let shared = SharedStore::open(
        path,
        OpenOptionsRegion {
            create: true,
            durable: false,
            readonly: false,
        },
    )
    .expect("open");
    // Values spread over many pages: whatever the step reads lies past the new end.
    let big = "x".repeat(3000);
    shared
        .write(&Plain, |st| {
            for i in 0..200 {
                set_str(st, &format!("k{i}"), &big)?;
            }
            Ok::<_, Error>(())
        })
        .expect("fill");
    record("ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(Instant::now() < deadline, "never told to go on");
        std::thread::sleep(Duration::from_millis(2));
    }
    let read = || outcome(shared.read(&Plain, |st| get_str(st, "k150")));
    let write = || outcome(shared.write(&Plain, |st| set_str(st, "k7", "new")));
    let (first, second) = if read_first {
        (read(), write())
    } else {
        (write(), read())
    };
    record(&format!("first {first}"));
    record(&format!("second {second}"));
    record(&format!("later {}", read()));
    record(&format!("caught {}", persist::region::vanish::caught()));
    // Closing a store whose files are damaged may fail; it must not kill the process.
    let closed = shared.close(&Plain);
    record(&format!("close {}", outcome(closed)));
    record("alive");
}

/// Who truncates the file under the child (the store's owner, root, runs the child).
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    /// The owner itself (another of its processes).
    Owner,
    /// A second user, a member of the group the owner shares the store with (both files in
    /// that group with group write, as `umask 002` and a group directory give): the only way
    /// another user may write these files since the lock file's trust checks (FORMAT.md
    /// §6.6). Run as a separate process under that user's uid (`truncate(1)`).
    GroupMember,
}

/// Runs a child in `role`, truncates `victim` ("store" or "lock") to `len` bytes once it is
/// ready, and checks that it got errors naming the truncation and exited normally.
fn truncate_under_child(role: &str, victim: &str, len: u64, by: By) {
    let dir = TempDir::new("vanish");
    let store = dir.join("s.db");
    let go = dir.join("go");
    let out = dir.join("out");
    let log = dir.join("log");
    let mut child = harness::spawn(
        TEST,
        role,
        &[
            ("VANISH_STORE", store.display().to_string()),
            ("VANISH_GO", go.display().to_string()),
        ],
        &out,
        &log,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !read_records(&out).iter().any(|r| r == "ready") {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!(
                "child ended before it was ready: {}\n{}",
                harness::describe(&st),
                harness::log_tail(&log)
            );
        }
        assert!(Instant::now() < deadline, "child never got ready");
        std::thread::sleep(Duration::from_millis(2));
    }
    let target: PathBuf = match victim {
        "store" => store.clone(),
        _ => lock_path(&store),
    };
    let before = std::fs::metadata(&target).expect("stat").len();
    assert!(before > len + 8192, "{victim} file is only {before} bytes");
    match by {
        By::Owner => std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .expect("open victim")
            .set_len(len)
            .expect("truncate"),
        By::GroupMember => truncate_as_group_member(&dir, &store, &target, len),
    }
    std::fs::write(&go, b"go").expect("write go");
    let status = harness::wait_timeout(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        panic!(
            "child hung after the truncation\n{}",
            harness::log_tail(&log)
        )
    });
    let records = read_records(&out);
    assert!(
        status.success(),
        "child died after its {victim} file was truncated: {}\nrecords: {records:?}\n{}",
        harness::describe(&status),
        harness::log_tail(&log)
    );
    let name = target.display().to_string();
    for tag in ["first", "second", "later"] {
        let f = fields(&records, tag);
        assert_eq!(f.len(), 1, "{tag}: {records:?}");
        let line = f[0].join(" ");
        assert!(
            line.starts_with("err ") && line.contains("was truncated by another process"),
            "{tag} step after the truncation of the {victim} file: {line}"
        );
        assert!(
            line.contains(&name),
            "{tag}: the error names {name}: {line}"
        );
    }
    let caught = harness::parse_u64(fields(&records, "caught")[0][0]);
    assert!(caught >= 1, "no SIGBUS was caught: {records:?}");
    assert!(records.iter().any(|r| r == "alive"), "{records:?}");
}

/// Shares the store with the group [`users::GROUP`] (both files in it, mode 0660), checks that
/// a user outside it may not truncate `target`, and has a member truncate it to `len`.
fn truncate_as_group_member(dir: &TempDir, store: &Path, target: &Path, len: u64) {
    let u = users::users();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in [store.to_path_buf(), lock_path(store)] {
        std::os::unix::fs::chown(&f, None, Some(u.share)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o660)).unwrap();
    }
    let before = std::fs::metadata(target).unwrap().len();
    let script = format!("truncate -s {len} '{}'", target.display());
    let (ok, stderr) = users::sh_as(u.other, u.other_gid, &[u.other_gid], &script);
    assert!(
        !ok && stderr.contains("Permission denied"),
        "a user outside the group truncated the file (ok {ok}): {stderr}"
    );
    assert_eq!(std::fs::metadata(target).unwrap().len(), before);
    let (ok, stderr) = users::sh_as(u.mate, u.share, &[u.share], &script);
    assert!(ok, "the group member could not truncate: {stderr}");
    assert_eq!(std::fs::metadata(target).unwrap().len(), len);
}

fn lock_path(store: &Path) -> PathBuf {
    let mut s = store.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

#[test]
fn store_truncated_to_nothing_under_a_reader() {
    truncate_under_child("read_first", "store", 0, By::Owner);
}

#[test]
fn store_truncated_to_its_header_under_a_writer() {
    truncate_under_child("write_first", "store", 4096, By::Owner);
}

#[test]
fn lock_file_truncated_to_nothing_under_a_reader() {
    truncate_under_child("read_first", "lock", 0, By::Owner);
}

#[test]
fn lock_file_truncated_to_nothing_under_a_writer() {
    truncate_under_child("write_first", "lock", 0, By::Owner);
}

// The same attacks by a second user, a member of the store's group (issue 16: each attack
// made by another user). These need root to create the user, as the trust tests do.

#[test]
fn store_truncated_by_a_group_member_under_a_reader() {
    truncate_under_child("read_first", "store", 0, By::GroupMember);
}

#[test]
fn store_truncated_by_a_group_member_under_a_writer() {
    truncate_under_child("write_first", "store", 4096, By::GroupMember);
}

#[test]
fn lock_file_truncated_by_a_group_member_under_a_reader() {
    truncate_under_child("read_first", "lock", 0, By::GroupMember);
}

#[test]
fn lock_file_truncated_by_a_group_member_under_a_writer() {
    truncate_under_child("write_first", "lock", 0, By::GroupMember);
}

/// Opens a store (installing the handler), then touches a vanished page of a mapping that is
/// not persist's: the handler must pass the fault on (here to the Rust runtime's own SIGBUS
/// handler, an SA_SIGINFO one, which restores the default), and the process dies of SIGBUS as
/// before. (A SIGBUS sent with kill is tested from Python: in a Rust program the runtime's
/// handler swallows a sent one, persist or not.)
fn foreign_fault() {
    let store = PathBuf::from(env("VANISH_STORE"));
    let _shared = SharedStore::open(
        store.clone(),
        OpenOptionsRegion {
            create: true,
            durable: false,
            readonly: false,
        },
    )
    .expect("open");
    let other = store.with_file_name("other");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&other)
        .expect("create");
    f.set_len(8192).expect("set_len");
    // SAFETY: a fresh shared mapping of a file this function owns.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    f.set_len(0).expect("truncate");
    record("touching");
    // SAFETY: the page is mapped; touching it past the file's end is the SIGBUS under test.
    let v = unsafe { std::ptr::read_volatile(p as *const u8) };
    record(&format!("survived {v}"));
}

/// Runs `role` and expects it to die of SIGBUS, as it would without persist.
fn dies_of_sigbus(role: &str) {
    let dir = TempDir::new("vanish-foreign");
    let out = dir.join("out");
    let log = dir.join("log");
    let mut child = harness::spawn(
        TEST,
        role,
        &[("VANISH_STORE", dir.join("s.db").display().to_string())],
        &out,
        &log,
    );
    let status = harness::wait_timeout(&mut child, Duration::from_secs(60)).expect("child hung");
    let records = read_records(&out);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGBUS),
        "{}: {records:?}\n{}",
        harness::describe(&status),
        harness::log_tail(&log)
    );
    assert!(
        !records.iter().any(|r| r.starts_with("survived")),
        "{records:?}"
    );
}

#[test]
fn a_fault_outside_persist_mappings_still_kills() {
    dies_of_sigbus("foreign_fault");
}
