//! Trust boundaries of opening (FORMAT.md §6.6): another local user cannot turn the lock file's
//! name against the store's owner, and the legitimate ways of sharing a store keep working.
//!
//! The bug story (issue 16). The lock file `<store>.lock` was opened by path, following
//! symbolic links, created with whatever was there, and truncated when its header did not
//! match: another user who planted `ln -s /path/precious /tmp/v.db.lock` made the owner's open
//! rewrite `precious`, a dangling link made the owner create a file where the attacker chose,
//! and a lock file the attacker created first (world-writable, theirs) was adopted, so they
//! could steer every process of the store. Here each attack is made by a second user (created
//! with `useradd`; these tests run as root, as CI does) and each must be refused with
//! `Error::Refused`, naming the file, with the planted name and its target left as they were.
//!
//! Ownership needs two users, so these tests need root; the reader's open runs the test binary
//! again as the second user (a copy of it in a directory that user may read, since the build
//! directory may be private).

mod harness;

use harness::users::{self, users, Users, OTHER};
use harness::{env, TempDir};
use persist::heap::{Attached, OpenError};
use persist::region::{self, lock_path, OpenOptionsRegion, Region};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const RW: OpenOptionsRegion = OpenOptionsRegion {
    create: true,
    durable: false,
    readonly: false,
};
const RO: OpenOptionsRegion = OpenOptionsRegion {
    create: false,
    durable: false,
    readonly: true,
};

/// The re-executed child: opens `STORE` (read-only if `READONLY` is 1) as whoever it runs as,
/// and reports `OK` or the error's Debug form to `OUT`.
#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("open") => {
            let opts = if env("READONLY") == "1" { RO } else { RW };
            let opened = Region::open(Path::new(&env("STORE")), opts)
                .map_err(OpenError::Region)
                .and_then(Attached::from_region);
            let line = match opened {
                Ok(att) => {
                    att.close().unwrap();
                    "OK".to_string()
                }
                Err(e) => format!("{e:?}"),
            };
            fs::write(env(harness::OUT_VAR), line).unwrap();
        }
        Some(other) => panic!("unknown role {other}"),
    }
}

/// A directory like /tmp (world-writable, sticky), where the attacker may plant names.
fn shared_dir(tag: &str) -> TempDir {
    let d = TempDir::new(tag);
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

/// Runs a shell command as `uid`:`gid` (its own group only): what the attacker does.
fn as_user(uid: u32, gid: u32, script: &str) {
    let (ok, stderr) = users::sh_as(uid, gid, &[gid], script);
    assert!(ok, "{script:?} as uid {uid} failed: {stderr}");
}

/// The reason of an `Error::Refused`, or a failure naming what came instead.
fn refused(r: Result<Region, region::Error>, path: &Path) -> String {
    match r {
        Err(region::Error::Refused { path: p, why }) => {
            assert_eq!(p, path, "the refusal names another file: {why}");
            why
        }
        Err(e) => panic!("expected a refusal naming {}, got {e:?}", path.display()),
        Ok(_) => panic!(
            "expected a refusal naming {}, but it opened",
            path.display()
        ),
    }
}

fn make_store(path: &Path) {
    Attached::open(path).unwrap().close().unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn a_symlink_at_the_lock_path_is_refused_and_its_target_left_alone() {
    let Users {
        other: uid,
        other_gid: gid,
        ..
    } = users();
    let d = shared_dir("trust-symlink");
    let store = d.join("v.db");
    let lock = lock_path(&store);
    let precious = d.join("precious");
    fs::write(&precious, b"the owner's data").unwrap();
    // Before the store exists, and beside an existing store whose lock file was removed.
    for existing in [false, true] {
        if existing {
            make_store(&store);
            fs::remove_file(&lock).unwrap();
        }
        as_user(
            uid,
            gid,
            &format!("ln -s {} {}", precious.display(), lock.display()),
        );
        for opts in [RW, RO] {
            if !existing && opts.readonly {
                continue; // a read-only open never creates the store
            }
            let why = refused(Region::open(&store, opts), &lock);
            assert!(why.contains("symbolic link"), "{why}");
            assert!(why.contains(&precious.display().to_string()), "{why}");
        }
        assert_eq!(fs::read(&precious).unwrap(), b"the owner's data");
        assert!(fs::symlink_metadata(&lock)
            .unwrap()
            .file_type()
            .is_symlink());
        fs::remove_file(&lock).unwrap();
        Region::open(&store, RW).expect("opens once the link is gone");
    }
}

#[test]
fn a_dangling_symlink_at_the_lock_path_creates_nothing() {
    let Users {
        other: uid,
        other_gid: gid,
        ..
    } = users();
    let d = shared_dir("trust-dangling");
    let store = d.join("v.db");
    let lock = lock_path(&store);
    let chosen = d.join("chosen-by-attacker");
    as_user(
        uid,
        gid,
        &format!("ln -s {} {}", chosen.display(), lock.display()),
    );
    let why = refused(Region::open(&store, RW), &lock);
    assert!(why.contains("symbolic link"), "{why}");
    assert!(
        fs::symlink_metadata(&chosen).is_err(),
        "a file was created where the attacker chose"
    );
}

#[test]
fn a_symlinked_store_is_refused_and_nothing_is_created_through_it() {
    let d = TempDir::new("trust-store-link");
    let real = d.join("real.db");
    make_store(&real);
    let link = d.join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for opts in [RW, RO] {
        let why = refused(Region::open(&link, opts), &link);
        assert!(why.contains("symbolic link"), "{why}");
        assert!(why.contains("real.db"), "{why}");
    }
    assert!(!lock_path(&link).exists());
    let dangling = d.join("dangling.db");
    let target = d.join("nowhere.db");
    std::os::unix::fs::symlink(&target, &dangling).unwrap();
    refused(Region::open(&dangling, RW), &dangling);
    assert!(
        !target.exists(),
        "a store was created through a dangling link"
    );
}

#[test]
fn a_lock_file_another_user_made_first_is_refused() {
    let Users {
        other: uid,
        other_gid: gid,
        ..
    } = users();
    let d = shared_dir("trust-foreign");
    let store = d.join("v.db");
    let lock = lock_path(&store);
    // As in the issue: created before the owner's store, world-writable, the attacker's.
    as_user(
        uid,
        gid,
        &format!("umask 000; printf planted > {}", lock.display()),
    );
    let why = refused(Region::open(&store, RW), &lock);
    assert!(
        why.contains(OTHER),
        "the refusal does not name the owner: {why}"
    );
    assert!(why.contains("may not write the store"), "{why}");
    assert_eq!(
        fs::read(&lock).unwrap(),
        b"planted",
        "the planted file changed"
    );
    refused(Region::open(&store, RO), &lock);
    // The fix the message gives: remove it while nobody has the store open.
    fs::remove_file(&lock).unwrap();
    let r = Region::open(&store, RW).unwrap();
    assert_eq!(fs::metadata(&lock).unwrap().uid(), 0);
    drop(r);

    // Also a copy of a valid lock file of this very store, handed to the attacker.
    fs::copy(&lock, d.join("copy")).unwrap();
    fs::remove_file(&lock).unwrap();
    fs::rename(d.join("copy"), &lock).unwrap();
    std::os::unix::fs::chown(&lock, Some(uid), Some(gid)).unwrap();
    refused(Region::open(&store, RW), &lock);
}

#[test]
fn a_lock_file_writable_by_every_user_is_refused_unless_the_store_is() {
    let d = TempDir::new("trust-world");
    let store = d.join("v.db");
    make_store(&store);
    let lock = lock_path(&store);
    fs::set_permissions(&store, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
    let before = fs::read(&lock).unwrap();
    let why = refused(Region::open(&store, RW), &lock);
    assert!(why.contains("writable by every user"), "{why}");
    assert!(why.contains("chmod o-w"), "{why}");
    assert_eq!(fs::read(&lock).unwrap(), before);
    // A store anyone may write may have a lock file anyone may write.
    fs::set_permissions(&store, fs::Permissions::from_mode(0o666)).unwrap();
    Region::open(&store, RW).unwrap();
}

#[test]
fn a_group_shares_a_store_and_an_outsider_cannot_join_it() {
    let Users {
        other,
        other_gid,
        mate,
        share,
    } = users();
    let d = shared_dir("trust-group");
    let store = d.join("team.db");
    let lock = lock_path(&store);
    make_store(&store);
    std::os::unix::fs::chown(&store, None, Some(share)).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o664)).unwrap();

    // A lock file made by a member of the store's group (the store is group-writable): the
    // owner's process adopts it.
    fs::remove_file(&lock).unwrap();
    fs::write(&lock, b"").unwrap();
    std::os::unix::fs::chown(&lock, Some(mate), Some(share)).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o664)).unwrap();
    Region::open(&store, RW).expect("a group member's lock file is adopted");

    // The same made by someone outside the group is refused.
    std::os::unix::fs::chown(&lock, Some(other), Some(other_gid)).unwrap();
    let why = refused(Region::open(&store, RW), &lock);
    assert!(why.contains(OTHER), "{why}");

    // A group-writable lock file whose group may not write the store, made by a member: its
    // owner is not the store's, so it may not grant that.
    std::os::unix::fs::chown(&lock, Some(mate), Some(other_gid)).unwrap();
    let why = refused(Region::open(&store, RW), &lock);
    assert!(why.contains("chmod g-w"), "{why}");
}

#[test]
fn a_new_lock_file_takes_the_store_files_owner_group_and_mode() {
    let Users { mate, share, .. } = users();
    let d = TempDir::new("trust-newlock");
    let store = d.join("v.db");
    make_store(&store);
    let lock = lock_path(&store);
    fs::remove_file(&lock).unwrap();
    std::os::unix::fs::chown(&store, Some(mate), Some(share)).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o640)).unwrap();
    // Root opens another user's store: the lock file it makes is that user's.
    drop(Region::open(&store, RW).unwrap());
    let m = fs::symlink_metadata(&lock).unwrap();
    assert_eq!((m.uid(), m.gid(), mode(&lock)), (mate, share, 0o640));
}

#[test]
fn a_directory_anyone_may_write_without_a_sticky_bit_is_refused() {
    let d = TempDir::new("trust-dir");
    let open_dir = d.join("open");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let store = open_dir.join("v.db");
    let why = refused(Region::open(&store, RW), &open_dir);
    assert!(why.contains("sticky"), "{why}");
    assert!(!store.exists());
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o1777)).unwrap();
    Region::open(&store, RW).unwrap();
}

#[test]
fn a_lock_file_that_is_not_persists_is_not_rewritten() {
    let d = TempDir::new("trust-rewrite");
    let store = d.join("v.db");
    make_store(&store);
    let lock = lock_path(&store);
    // Not a regular file: a directory, a named pipe.
    fs::remove_file(&lock).unwrap();
    fs::create_dir(&lock).unwrap();
    let why = refused(Region::open(&store, RW), &lock);
    assert!(why.contains("not a regular file but a directory"), "{why}");
    fs::remove_dir(&lock).unwrap();
    let c = std::ffi::CString::new(lock.to_str().unwrap()).unwrap();
    // SAFETY: plain system call with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let why = refused(Region::open(&store, RW), &lock);
    assert!(why.contains("not a regular file but a named pipe"), "{why}");
    fs::remove_file(&lock).unwrap();
    // Another file's second name, holding a persist lock file of another store.
    let other = d.join("other.db");
    make_store(&other);
    fs::hard_link(lock_path(&other), &lock).unwrap();
    let before = fs::read(&lock).unwrap();
    let why = refused(Region::open(&store, RW), &lock);
    assert!(why.contains("2 names"), "{why}");
    assert_eq!(fs::read(lock_path(&other)).unwrap(), before);
}

/// Copies the test binary where `uid` may run it; returns its path.
fn runnable_copy(d: &TempDir) -> PathBuf {
    let exe = d.join("trust-test");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    exe
}

/// Opens `store` in a child running as `uid`:`gid` with `groups`; returns what it reported.
fn open_as(d: &TempDir, exe: &Path, ids: (u32, u32, &[u32]), store: &Path, ro: bool) -> String {
    let out = d.join("out");
    fs::write(&out, b"").unwrap();
    std::os::unix::fs::chown(&out, Some(ids.0), None).unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(harness::ROLE_VAR, "open")
        .env(harness::OUT_VAR, &out)
        .env("STORE", store)
        .env("READONLY", if ro { "1" } else { "0" });
    users::run_as(&mut cmd, ids.0, ids.1, ids.2);
    let st = cmd.output().unwrap();
    assert!(
        st.status.success(),
        "the child failed: {}",
        String::from_utf8_lossy(&st.stdout)
    );
    fs::read_to_string(&out).unwrap()
}

#[test]
fn a_reader_opens_read_only_when_the_owner_lets_it_write_the_lock_file() {
    let Users {
        other, other_gid, ..
    } = users();
    let d = TempDir::new("trust-reader");
    let exe = runnable_copy(&d);
    let store = d.join("v.db");
    let lock = lock_path(&store);
    make_store(&store);
    fs::set_permissions(&store, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o644)).unwrap();
    let reader = (other, other_gid, &[other_gid][..]);

    // The lock file is not theirs to write: a clear refusal.
    let r = open_as(&d, &exe, reader, &store, true);
    assert!(
        r.contains("Refused") && r.contains("may not be written by this user"),
        "{r}"
    );
    // Nor is the store: a writable open fails as the system says.
    let r = open_as(&d, &exe, reader, &store, false);
    assert!(r.contains("PermissionDenied"), "{r}");

    // The owner lets the reader's group write the lock file: read-only opens work, and the
    // owner's own process still accepts the lock file (its owner chose that mode).
    std::os::unix::fs::chown(&lock, None, Some(other_gid)).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o664)).unwrap();
    assert_eq!(open_as(&d, &exe, reader, &store, true), "OK");
    drop(Region::open(&store, RW).unwrap());

    // A missing lock file is not made by someone who may not write the store (the store's
    // writers would refuse it): a clear refusal, and nothing is created.
    fs::remove_file(&lock).unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let r = open_as(&d, &exe, reader, &store, true);
    assert!(r.contains("Refused") && r.contains("does not exist"), "{r}");
    assert!(!lock.exists());
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Errors below the heap keep their kind through `Attached` (what the object layer and the
/// Python glue see).
#[test]
fn a_refusal_reaches_the_heap_layer_as_such() {
    let d = TempDir::new("trust-layer");
    let store = d.join("v.db");
    make_store(&store);
    let lock = lock_path(&store);
    fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(d.join("x"), &lock).unwrap();
    match Attached::open(&store) {
        Err(OpenError::Region(region::Error::Refused { path, .. })) => assert_eq!(path, lock),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("opened through a symlinked lock file"),
    }
}
