//! Opening a file that is not a store, or a damaged or hostile store, gives an error value of
//! the right kind: never a panic, a SIGBUS or a hang, and never a change to the file.
//!
//! The bug story. The seed mapped whatever file it was given and trusted its header: a
//! truncated file faulted with SIGBUS on the first touch beyond its end, a header from another
//! build was used with the wrong layout, and "opening" a text file by mistake wrote a header
//! over it. Here every header field is checked with plain reads before anything is mapped
//! (magic, version, byte order, checksum, geometry, the published size against the file), a
//! file that is not a store is left byte for byte as it was, and an empty file becomes a new
//! store. The lock file beside a store is volatile state: one left by another store
//! is rebuilt when nobody uses it, and refused while somebody does.
//!
//! Each case runs in a re-executed child process (see `harness`) with a timeout, so a signal
//! or a hang fails the case instead of killing the test runner.

mod harness;

use harness::{env, record, TempDir};
use persist::heap::{Attached, OpenError};
use persist::region::{self, fnv1a, hdr, lock_path, lockfile, Header, FORMAT_VERSION};
use rand::{Rng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Children run at once (the cases are independent files).
const PARALLEL: usize = 4;

/// The re-executed child: opens `STORE` once and records what happened.
#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("open") => open_and_report(Path::new(&env("STORE"))),
        Some(other) => panic!("unknown role {other}"),
    }
}

fn open_and_report(path: &Path) {
    record("STARTED");
    let line = match Attached::open(path) {
        Ok(att) => {
            let id = att.region().header().store_id;
            let check = match att.check() {
                Ok(_) => "check-ok".to_string(),
                Err(e) => format!("check-err | {e}"),
            };
            // Using a damaged store gives errors too, never a panic: allocate and free a block
            // of each kind (small, from the segments the file describes; large; huge).
            let heap = att.heap();
            for size in [16, 3000, 20_000, 5 << 20] {
                if let Ok(b) = heap.alloc(size) {
                    let _ = heap.usable_size(b);
                    let _ = heap.free(b);
                }
            }
            format!("RESULT Ok {id} {check}")
        }
        Err(OpenError::Region(e)) => match &e {
            region::Error::NotAStore { .. } => format!("RESULT NotAStore | {e}"),
            region::Error::Version {
                found, expected, ..
            } => format!("RESULT Version {found} {expected} | {e}"),
            region::Error::Corrupt { .. } => format!("RESULT Corrupt | {e}"),
            other => format!("RESULT Other | {other:?}"),
        },
        Err(e) => format!("RESULT Other | {e:?}"),
    };
    record(&line.replace('\n', " "));
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    NotAStore,
    /// Refused as another format version: the version found.
    Version(u32),
    Corrupt,
    /// Opens; `check()` must then report damage (an error value) rather than pass.
    OkCheckFails,
    /// Opens and checks clean.
    Ok,
    /// Either a Corrupt error or an open whose check fails.
    CorruptOrCheckFails,
    /// Opens; `check()` may pass or fail (damage beyond the header that check need not see).
    OkAny,
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
}

/// A real store: created, given a few blocks (so it has a chunk, a segment and a large run),
/// closed. Returns its bytes.
fn real_store(dir: &TempDir) -> Vec<u8> {
    let path = dir.join("real");
    {
        let att = Attached::open(&path).unwrap();
        let heap = att.heap();
        for size in [16, 100, 3000, 20_000, 70_000] {
            heap.alloc(size).unwrap();
            heap.settle(0).unwrap();
        }
        att.close().unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(lock_path(&path)).unwrap();
    bytes
}

fn put32(b: &mut [u8], off: u64, v: u32) {
    b[off as usize..off as usize + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], off: u64, v: u64) {
    b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
}

fn reseal(b: &mut [u8]) {
    let sum = fnv1a(&b[..hdr::IMMUTABLE_END as usize]);
    put64(b, hdr::CHECKSUM, sum);
}

fn cases(real: &[u8]) -> Vec<Case> {
    let len = real.len() as u64;
    let mut v = Vec::new();
    let mut case = |name: String, bytes: Vec<u8>, expect: Expect| {
        v.push(Case {
            name,
            bytes,
            expect,
        })
    };

    // A real store cut short: first anywhere inside its first 64 bytes, then at many points
    // beyond (the published size then exceeds the file).
    for t in 1..64 {
        case(
            format!("real store truncated to {t} bytes"),
            real[..t].to_vec(),
            Expect::NotAStore,
        );
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x4057_11e0);
    let mut points = vec![
        64, 65, 100, 1000, 4095, 4096, 4097, 8191, 8192, 12288, 65536,
    ];
    points.extend([len / 2, len / 2 + 1, len - 4096, len - 8, len - 1]);
    points.extend((0..12).map(|_| rng.gen_range(64..len)));
    for t in points {
        case(
            format!("real store truncated to {t} of {len} bytes"),
            real[..t as usize].to_vec(),
            Expect::Corrupt,
        );
    }
    case("the real store, whole".into(), real.to_vec(), Expect::Ok);

    // Random bytes of many sizes.
    let mut sizes = vec![
        1usize, 7, 8, 9, 63, 64, 65, 100, 4095, 4096, 4097, 8192, 65536,
    ];
    sizes.extend((0..16).map(|_| rng.gen_range(1..300_000)));
    for n in sizes {
        let mut b = vec![0u8; n];
        rng.fill_bytes(&mut b);
        case(format!("{n} random bytes"), b, Expect::NotAStore);
    }
    // A zero-filled file (a preallocated or sparse file, not an empty one).
    case("4096 zero bytes".into(), vec![0; 4096], Expect::NotAStore);
    case(
        "text file".into(),
        b"hello, this is not a store\n".repeat(200),
        Expect::NotAStore,
    );

    // The magic, then random bytes: another version (the version word is random), or, with
    // the right version, damage (byte order or checksum).
    for i in 0..8 {
        let mut b = vec![0u8; [64, 4096, 5000, 1 << 20][i % 4]];
        rng.fill_bytes(&mut b);
        b[..8].copy_from_slice(&region::MAGIC);
        let mut found = u32::from_le_bytes(b[8..12].try_into().unwrap());
        if found == FORMAT_VERSION {
            found += 1;
            put32(&mut b, hdr::VERSION, found);
        }
        case(
            format!("magic then {} random bytes", b.len() - 8),
            b.clone(),
            Expect::Version(found),
        );
        put32(&mut b, hdr::VERSION, FORMAT_VERSION);
        case(
            format!("magic, version, then {} random bytes", b.len() - 12),
            b,
            Expect::Corrupt,
        );
    }

    // One field of a real header made wrong.
    let mut b = real.to_vec();
    b[3] ^= 0x20;
    case("wrong magic".into(), b, Expect::NotAStore);
    let mut b = real.to_vec();
    b[0..8].copy_from_slice(b"PERSISTL"); // a lock file's magic
    case("lock file magic".into(), b, Expect::NotAStore);
    let mut b = real.to_vec();
    b[3] ^= 0x20;
    put32(&mut b, hdr::VERSION, 9);
    case("wrong magic and version".into(), b, Expect::NotAStore);
    for version in [0, FORMAT_VERSION + 1, 77, u32::MAX] {
        let mut b = real.to_vec();
        put32(&mut b, hdr::VERSION, version);
        reseal(&mut b);
        case(
            format!("format version {version}"),
            b,
            Expect::Version(version),
        );
        let mut b = real.to_vec();
        put32(&mut b, hdr::VERSION, version);
        b[hdr::STORE_ID as usize] ^= 1;
        case(
            format!("format version {version} and a bad checksum"),
            b,
            Expect::Version(version),
        );
    }
    for (what, off) in [
        ("store id", hdr::STORE_ID),
        ("creation time", hdr::CREATED_NS + 3),
        ("flags", hdr::FLAGS),
        ("page size", hdr::PAGE_SIZE + 1),
        ("checksum", hdr::CHECKSUM),
        ("checksum top byte", hdr::CHECKSUM + 7),
    ] {
        let mut b = real.to_vec();
        b[off as usize] ^= 0x10;
        case(format!("one bit of the {what} flipped"), b, Expect::Corrupt);
    }
    let mut b = real.to_vec();
    put32(&mut b, hdr::ENDIAN, 0x0403_0201);
    reseal(&mut b);
    case("big-endian mark, valid checksum".into(), b, Expect::Corrupt);
    for (what, off, val) in [
        ("page size 8192", hdr::PAGE_SIZE, 8192),
        ("page size 0", hdr::PAGE_SIZE, 0),
        ("chunk pages 3", hdr::CHUNK_PAGES, 3),
        ("header bytes 64", hdr::HEADER_BYTES, 64),
        ("header bytes 2^31", hdr::HEADER_BYTES, 1 << 31),
    ] {
        let mut b = real.to_vec();
        put32(&mut b, off, val);
        reseal(&mut b);
        case(
            format!("geometry {what}, valid checksum"),
            b,
            Expect::Corrupt,
        );
    }

    // The published size (a mutable word, outside the checksum) lies.
    for (what, size) in [
        ("one page more than the file", len + 4096),
        ("far more than the file", 1 << 45),
        ("u64::MAX", u64::MAX),
        ("not page-aligned", len - 8),
        ("not page-aligned, just above the header", 4096 + 8),
        ("zero", 0),
        ("less than the header", 2048),
    ] {
        let mut b = real.to_vec();
        put64(&mut b, hdr::FILE_SIZE, size);
        case(format!("published size {what}"), b, Expect::Corrupt);
    }
    // Less than the file holds, but a whole number of pages: the header alone is consistent,
    // the allocator's words beyond it are out of bounds.
    let mut b = real.to_vec();
    put64(&mut b, hdr::FILE_SIZE, 8192);
    case(
        "published size smaller than the file".into(),
        b,
        Expect::CorruptOrCheckFails,
    );
    // Allocator words in the header that lie (not covered by the checksum: found by check).
    for (what, off, val) in [
        ("chunk count 2^40", hdr::CHUNK_COUNT, 1u64 << 40),
        ("chunk count beyond the file", hdr::CHUNK_COUNT, 1000),
        // The area table: chunk 0 in no area, an area of 2^40 chunks.
        ("area 0 missing", hdr::AREA_TABLE, 0),
        ("area 0 of 2^40 chunks", hdr::AREA_TABLE, 1 << 40),
        ("area 1 ends where area 0 does", hdr::AREA_TABLE + 8, 1),
        (
            "area 9 exists after a missing area 1",
            hdr::AREA_TABLE + 72,
            90,
        ),
        ("class list head in the header", hdr::CLASS_TABLE, 64),
        (
            "class list head beyond the file",
            hdr::CLASS_TABLE + 16,
            1 << 40,
        ),
    ] {
        let mut b = real.to_vec();
        put64(&mut b, off, val);
        case(what.to_string(), b, Expect::OkCheckFails);
    }
    // A chunk's kind word (in its meta block, beyond the header) that claims a huge run of
    // 2^55 chunks: every walk and lookup must bound it.
    let geo = region::Geometry::STANDARD;
    // A new store's first area is its first chunk alone.
    let first = region::Area {
        index: 0,
        first: 0,
        end: 1,
    };
    let mut b = real.to_vec();
    put64(&mut b, geo.meta_of(first, 0), 1 | (1 << 63));
    case(
        "chunk 0 claims to head a huge run of 2^55 chunks".into(),
        b,
        Expect::OkCheckFails,
    );
    let mut b = real.to_vec();
    put64(&mut b, geo.meta_of(first, 0), 2 | (1 << 63));
    case(
        "chunk 0 claims to be the tail of a huge run 2^55 chunks back".into(),
        b,
        Expect::OkCheckFails,
    );
    // Random bytes over a chunk's meta block (kind, bitmap, page map), or over the first data
    // page (the segment headers of the first blocks): opening only reads the store header, so
    // these open; what follows must be error values, whatever the bytes say.
    let meta = geo.meta_of(first, 0) as usize;
    let data = geo.data_of(first, 0) as usize;
    for i in 0..6 {
        let mut b = real.to_vec();
        let (at, n) = [(meta, 8192), (meta, 64), (meta + 192, 4096)][i % 3];
        rng.fill_bytes(&mut b[at..at + n]);
        case(format!("random chunk meta block #{i}"), b, Expect::OkAny);
        let mut b = real.to_vec();
        let n = [64, 4096][i % 2];
        rng.fill_bytes(&mut b[data..data + n]);
        case(format!("random first data page #{i}"), b, Expect::OkAny);
    }
    v
}

struct Running {
    name: String,
    path: PathBuf,
    out: PathBuf,
    log: PathBuf,
    child: Child,
}

/// What a child said: the words before ` | `, and the message after it (if any).
struct Outcome {
    words: Vec<String>,
    message: String,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} | {}", self.words.join(" "), self.message)
    }
}

impl Outcome {
    fn kind(&self) -> &str {
        &self.words[0]
    }
    fn word(&self, i: usize) -> &str {
        self.words.get(i).map(String::as_str).unwrap_or("")
    }
}

/// Waits for the child of a case and returns what it said, or why not (it died, hung or
/// said nothing).
fn finish(r: Running) -> Result<Outcome, String> {
    let Running {
        name,
        out,
        log,
        mut child,
        ..
    } = r;
    let Some(st) = harness::wait_timeout(&mut child, TIMEOUT) else {
        return Err(format!(
            "case {name:?}: the open hung (killed after {TIMEOUT:?})"
        ));
    };
    if !st.success() {
        // The panic message (two lines) says more than the backtrace after it.
        let tail = harness::log_tail(&log);
        let panic: Vec<&str> = tail
            .lines()
            .skip_while(|l| !l.contains("panicked at"))
            .take(2)
            .collect();
        return Err(format!(
            "case {name:?}: the child failed with {}: {}",
            harness::describe(&st),
            if panic.is_empty() {
                tail.clone()
            } else {
                panic.join(" ")
            }
        ));
    }
    let recs = harness::read_records(&out);
    let Some(line) = recs.iter().find_map(|l| l.strip_prefix("RESULT ")) else {
        return Err(format!(
            "case {name:?}: no result:\n{}",
            harness::log_tail(&log)
        ));
    };
    let (head, message) = line.split_once(" | ").unwrap_or((line, ""));
    Ok(Outcome {
        words: head.split_whitespace().map(str::to_string).collect(),
        message: message.to_string(),
    })
}

fn start(dir: &TempDir, i: usize, name: &str, path: &Path) -> Running {
    let out = dir.join(&format!("case-{i}.out"));
    let log = dir.join(&format!("case-{i}.log"));
    let child = harness::spawn(
        "child",
        "open",
        &[("STORE", path.display().to_string())],
        &out,
        &log,
    );
    Running {
        name: name.to_string(),
        path: path.to_path_buf(),
        out,
        log,
        child,
    }
}

/// Runs one child per case (a few at once) and checks each result.
#[test]
fn hostile_files_give_the_right_error_and_stay_unchanged() {
    let dir = TempDir::new("hostile-headers");
    let real = real_store(&dir);
    let all = cases(&real);
    let mut failures = Vec::new();
    let mut idx = 0;
    while idx < all.len() {
        let batch: Vec<(usize, &Case)> = all.iter().enumerate().skip(idx).take(PARALLEL).collect();
        idx += batch.len();
        let mut running = Vec::new();
        for &(i, c) in &batch {
            let path = dir.join(&format!("case-{i}"));
            std::fs::write(&path, &c.bytes).unwrap();
            running.push((c, start(&dir, i, &c.name, &path)));
        }
        for (c, r) in running {
            let path = r.path.clone();
            let lock = lock_path(&path);
            let result = match finish(r) {
                Ok(result) => result,
                Err(why) => {
                    failures.push(why);
                    continue;
                }
            };
            let kind = result.kind();
            let msg = format!("case {:?}: expected {:?}, got {result:?}", c.name, c.expect);
            let ok = match &c.expect {
                Expect::NotAStore => kind == "NotAStore",
                Expect::Corrupt => kind == "Corrupt",
                Expect::Version(v) => {
                    kind == "Version"
                        && result.word(1) == v.to_string()
                        && result.word(2) == FORMAT_VERSION.to_string()
                        && result.message.contains(&format!("version {v}"))
                        && result
                            .message
                            .contains(&format!("version {FORMAT_VERSION}"))
                }
                Expect::Ok => kind == "Ok" && result.word(2) == "check-ok",
                Expect::OkCheckFails => kind == "Ok" && result.word(2) == "check-err",
                Expect::OkAny => kind == "Ok",
                Expect::CorruptOrCheckFails => {
                    kind == "Corrupt" || (kind == "Ok" && result.word(2) == "check-err")
                }
            };
            if !ok {
                failures.push(msg);
                continue;
            }
            if kind != "Ok" {
                let after = std::fs::read(&path).unwrap();
                if after != c.bytes {
                    failures.push(format!(
                        "case {:?}: refused ({kind}) but the file changed ({} -> {} bytes)",
                        c.name,
                        c.bytes.len(),
                        after.len()
                    ));
                }
                if lock.exists() {
                    failures.push(format!(
                        "case {:?}: refused ({kind}) but a lock file was left beside it",
                        c.name
                    ));
                }
            }
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(&lock);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// Opens `path` in a child and returns what it said.
fn open_in_child(dir: &TempDir, name: &str, path: &Path) -> Outcome {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(10_000);
    let i = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    finish(start(dir, i, name, path)).unwrap_or_else(|why| panic!("{why}"))
}

/// An empty file becomes a new store; a second opener shares it.
#[test]
fn an_empty_file_becomes_a_store() {
    let dir = TempDir::new("hostile-empty");
    let path = dir.join("empty");
    std::fs::write(&path, b"").unwrap();
    let r = open_in_child(&dir, "empty file", &path);
    assert_eq!(r.kind(), "Ok", "an empty file was refused: {r:?}");
    assert_eq!(r.word(2), "check-ok", "{r:?}");
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() >= 4096,
        "the new store is {} bytes",
        bytes.len()
    );
    let h = Header::decode(&path, &bytes[..64]).expect("a valid header was written");
    assert_eq!(r.word(1), h.store_id.to_string());
    let again = Attached::open(&path).unwrap();
    assert_eq!(again.region().header().store_id, h.store_id);
}

fn lock_header(path: &Path) -> (Vec<u8>, u64) {
    let b = std::fs::read(lock_path(path)).unwrap();
    let id = u64::from_le_bytes(b[16..24].try_into().unwrap());
    (b, id)
}

/// A lock file that belongs to another store, or is damaged, is rebuilt when nobody uses it;
/// a foreign lock file that a live process uses is refused (Corrupt) and left alone, and so is
/// a file at the lock file's name that is not a persist lock file (Refused: persist rewrites
/// only its own files, FORMAT.md §6.6).
#[test]
fn a_foreign_lock_file_is_rebuilt_unless_in_use() {
    let dir = TempDir::new("hostile-lock");
    let a = dir.join("a");
    let b = dir.join("b");
    let id_b = {
        let att = Attached::open(&b).unwrap();
        att.region().header().store_id
    };
    let att_a = Attached::open(&a).unwrap();
    let id_a = att_a.region().header().store_id;
    assert_ne!(id_a, id_b);

    // Unused: b.lock replaced by a copy of a.lock (a's id, a's slots).
    std::fs::remove_file(lock_path(&b)).unwrap();
    std::fs::copy(lock_path(&a), lock_path(&b)).unwrap();
    assert_eq!(lock_header(&b).1, id_a);
    let r = open_in_child(&dir, "foreign lock file, unused", &b);
    assert_eq!(
        r.kind(),
        "Ok",
        "a stale foreign lock file was not rebuilt: {r:?}"
    );
    let (bytes, id) = lock_header(&b);
    assert_eq!(id, id_b, "the lock file was not rebuilt for its store");
    assert_eq!(&bytes[..8], &lockfile::MAGIC);
    assert_eq!(bytes.len() as u64, lockfile::FILE_BYTES);

    // Garbage is not persist's: refused and left as it is, until it is removed.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x10c4);
    let mut junk = vec![0u8; 5000];
    rng.fill_bytes(&mut junk);
    std::fs::write(lock_path(&b), &junk).unwrap();
    let r = open_in_child(&dir, "garbage lock file", &b);
    assert_eq!(r.kind(), "Other", "garbage lock file: {r:?}");
    assert!(
        r.message.contains("Refused") && r.message.contains("not a persist lock file"),
        "garbage lock file: {r:?}"
    );
    assert_eq!(
        std::fs::read(lock_path(&b)).unwrap(),
        junk,
        "the garbage was changed"
    );
    std::fs::remove_file(lock_path(&b)).unwrap();
    let r = open_in_child(&dir, "garbage lock file removed", &b);
    assert_eq!(r.kind(), "Ok", "removed lock file: {r:?}");

    // Truncated, empty and zeroed (a rebuild cut short) lock files are rebuilt.
    for (what, junk) in [
        ("truncated", bytes[..100].to_vec()),
        ("empty", Vec::new()),
        ("zeroed", vec![0u8; lockfile::FILE_BYTES as usize]),
    ] {
        std::fs::write(lock_path(&b), &junk).unwrap();
        let r = open_in_child(&dir, &format!("{what} lock file"), &b);
        assert_eq!(r.kind(), "Ok", "{what} lock file: {r:?}");
        assert_eq!(lock_header(&b).1, id_b, "{what} lock file was not rebuilt");
        assert_eq!(
            std::fs::metadata(lock_path(&b)).unwrap().len(),
            lockfile::FILE_BYTES
        );
    }

    // In use: b.lock is a.lock itself (a hard link), whose slot this process holds.
    std::fs::remove_file(lock_path(&b)).unwrap();
    std::fs::hard_link(lock_path(&a), lock_path(&b)).unwrap();
    let before = std::fs::read(lock_path(&a)).unwrap();
    let b_before = std::fs::read(&b).unwrap();
    let r = open_in_child(&dir, "foreign lock file in use", &b);
    assert_eq!(
        r.kind(),
        "Corrupt",
        "a lock file in use by another store was taken: {r:?}"
    );
    assert_eq!(
        std::fs::read(lock_path(&a)).unwrap(),
        before,
        "the lock file in use was changed"
    );
    assert_eq!(
        std::fs::read(&b).unwrap(),
        b_before,
        "the store was changed"
    );
    // The live user of a.lock is undisturbed.
    assert_eq!(att_a.recover_dead().unwrap(), 0);
    att_a.heap().alloc(64).unwrap();
    att_a.check().unwrap();
}
