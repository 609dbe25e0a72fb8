//! Shared helpers of the multi-process integration tests: re-executing the test binary as a
//! child process, waiting for it with a timeout, temporary directories, and the block patterns
//! that make a block handed out twice visible.
//!
//! A child is the test binary itself, run as `<exe> --exact <child test> --nocapture` with
//! [`ROLE_VAR`] set. The child "test" (a `#[test]` function of the same file) calls [`role`],
//! which is `None` in a normal run, so under `cargo test` or `cargo nextest run` it passes at
//! once; in a child it does the work the role names. This works under both runners because
//! both run the same libtest harness binary.
//!
//! A child reports to a file of its own ([`OUT_VAR`]), one line per record, written whole with
//! one `write` so that a child killed at any moment leaves only complete lines behind (a torn
//! last line is ignored by [`read_records`]).

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod dying;
pub mod users;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Names the role of a re-executed child; absent in the test process itself.
pub const ROLE_VAR: &str = "PERSIST_TEST_ROLE";
/// The file a child writes its records to.
pub const OUT_VAR: &str = "PERSIST_TEST_OUT";

/// The role this process was started with, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A variable the parent passed to this child; panics (the child fails) when missing.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child started without {name}"))
}

pub fn env_u64(name: &str) -> u64 {
    env(name)
        .parse()
        .unwrap_or_else(|e| panic!("{name} is not a number: {e}"))
}

/// A directory under the system temporary directory, unique to this process and call,
/// removed (with everything in it) when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("persist-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temporary directory");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Starts this test binary as a child running the `#[test]` function `test` in role `role`,
/// with `vars` in its environment. Its stdout and stderr go to `log` (for failure messages);
/// its records go to `out`. The child is killed if the thread that started it ends (so a
/// failed test never leaves workers behind).
pub fn spawn(test: &str, role: &str, vars: &[(&str, String)], out: &Path, log: &Path) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let log_file = File::create(log).expect("create child log");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(OUT_VAR, out)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup log"))
        .stderr(log_file);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().expect("spawn child process")
}

/// Waits for `child` at most `timeout`. On timeout it is SIGKILLed and reaped, and `None`
/// is returned.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// SIGKILLs a child this test started (by its own pid) and reaps it.
pub fn kill_and_reap(child: &mut Child) -> ExitStatus {
    let _ = child.kill();
    child.wait().expect("wait")
}

/// The kill loop of the crash tests: keeps `workers` children of `role` (the `#[test]` function
/// `child` of the calling file) at work on the store at `path`, and `kills` times SIGKILLs a
/// random one and starts another in its place; at the end kills the rest. Mostly the victim is
/// at work (it has written its first record) and is killed a random 0..10 ms later; one time
/// in five it is killed at once, while it may still be opening the store or recovering others.
/// Each child gets `STORE` and a random `SEED` in its environment. Panics if a child ends by
/// itself, never gets ready within 30 s, or the whole loop takes longer than `budget`.
pub fn kill_loop(
    dir: &TempDir,
    path: &Path,
    role: &str,
    workers: usize,
    kills: usize,
    seed: u64,
    budget: Duration,
) {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    let mut start = |rng: &mut StdRng| {
        n += 1;
        let out = dir.join(&format!("{role}{n}.out"));
        let log = dir.join(&format!("{role}{n}.log"));
        let vars = [
            ("STORE", path.display().to_string()),
            ("SEED", rng.gen::<u32>().to_string()),
        ];
        (spawn("child", role, &vars, &out, &log), out, log)
    };
    let mut running: Vec<_> = (0..workers).map(|_| start(&mut rng)).collect();
    let deadline = Instant::now() + budget;
    for _ in 0..kills {
        assert!(Instant::now() < deadline, "the kills took too long");
        let (mut child, out, log) = running.swap_remove(rng.gen_range(0..running.len()));
        if rng.gen_range(0..5) != 0 {
            let since = Instant::now();
            while read_records(&out).is_empty() {
                if let Some(st) = child.try_wait().unwrap() {
                    panic!(
                        "a worker ended by itself ({}): {}",
                        describe(&st),
                        log_tail(&log)
                    );
                }
                assert!(
                    since.elapsed() < Duration::from_secs(30),
                    "a worker never got ready (a lock, part or active word left held?): {}",
                    log_tail(&log)
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..10_000)));
        }
        kill_and_reap(&mut child);
        running.push(start(&mut rng));
    }
    for (mut child, _, _) in running {
        kill_and_reap(&mut child);
    }
}

/// "exit code 3", "signal 7 (SIGBUS)", ...
pub fn describe(st: &ExitStatus) -> String {
    if let Some(code) = st.code() {
        return format!("exit code {code}");
    }
    match st.signal() {
        Some(sig) => {
            // SAFETY: strsignal returns a pointer to a static or thread-local string.
            let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) };
            format!("signal {sig} ({})", name.to_string_lossy())
        }
        None => format!("{st:?}"),
    }
}

/// The child's stdout and stderr, for a failure message (the last 4000 bytes).
pub fn log_tail(log: &Path) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let start = s.len().saturating_sub(4000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

/// Appends one record line to this child's out file (one `write`, so a kill leaves whole
/// lines or nothing).
pub fn record(line: &str) {
    static OUT: std::sync::OnceLock<std::sync::Mutex<File>> = std::sync::OnceLock::new();
    let f = OUT.get_or_init(|| {
        let path = env(OUT_VAR);
        std::sync::Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("open {path}: {e}")),
        )
    });
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    f.lock()
        .unwrap()
        .write_all(buf.as_bytes())
        .expect("write record");
}

/// The complete lines of a child's out file (a line torn by a kill is dropped).
pub fn read_records(out: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(out).unwrap_or_default();
    let complete = match s.rfind('\n') {
        Some(i) => &s[..=i],
        None => "",
    };
    complete.lines().map(str::to_string).collect()
}

/// The whitespace-separated fields after `tag` of every record that starts with `tag`.
pub fn fields<'a>(records: &'a [String], tag: &str) -> Vec<Vec<&'a str>> {
    records
        .iter()
        .filter_map(|r| {
            let mut it = r.split_whitespace();
            (it.next() == Some(tag)).then(|| it.collect())
        })
        .collect()
}

pub fn parse_u64(s: &str) -> u64 {
    if let Some(hex) = s.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("bad number {s:?}: {e}"))
    } else {
        s.parse()
            .unwrap_or_else(|e| panic!("bad number {s:?}: {e}"))
    }
}

/// Is `pid` a running (not zombie) process?
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

// ---- block patterns --------------------------------------------------------------------------

/// SplitMix64's finaliser: a cheap, well-mixed function of one word.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of the pattern a writer puts into a block: its pid, the block's offset and the
/// writer's counter, so that two writers (or two uses of one block) never write the same bytes.
pub fn seed(pid: u64, offset: u64, counter: u64) -> u64 {
    mix(mix(pid ^ 0x5eed) ^ mix(offset).rotate_left(17) ^ counter)
}

fn word_at(seed: u64, i: u64) -> u64 {
    seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ (i << 1)
}

/// Fills `len` bytes at `p` (16-aligned) with the pattern of `seed`.
///
/// # Safety
/// `p..p+len` must be writable memory that this process owns for the moment (a block it
/// allocated and has not freed).
pub unsafe fn fill(p: *mut u8, len: u64, seed: u64) {
    let words = len / 8;
    let w = p as *mut u64;
    for i in 0..words {
        // SAFETY: i < len / 8, inside the block (caller's contract); p is 8-aligned.
        unsafe { w.add(i as usize).write_volatile(word_at(seed, i)) };
    }
    let last = word_at(seed, words).to_le_bytes();
    for j in 0..len % 8 {
        // SAFETY: inside the block.
        unsafe {
            p.add((words * 8 + j) as usize)
                .write_volatile(last[j as usize])
        };
    }
}

/// The first byte (relative to `p`) where the `len` bytes at `p` differ from the pattern of
/// `seed`, or `None` when all match.
///
/// # Safety
/// `p..p+len` must be readable memory inside the mapping.
pub unsafe fn mismatch(p: *const u8, len: u64, seed: u64) -> Option<u64> {
    let words = len / 8;
    let w = p as *const u64;
    for i in 0..words {
        // SAFETY: inside the block (caller's contract); p is 8-aligned.
        let v = unsafe { w.add(i as usize).read_volatile() };
        if v != word_at(seed, i) {
            let diff = (v ^ word_at(seed, i)).trailing_zeros() as u64 / 8;
            return Some(i * 8 + diff);
        }
    }
    let last = word_at(seed, words).to_le_bytes();
    for j in 0..len % 8 {
        // SAFETY: inside the block.
        let b = unsafe { p.add((words * 8 + j) as usize).read_volatile() };
        if b != last[j as usize] {
            return Some(words * 8 + j);
        }
    }
    None
}
