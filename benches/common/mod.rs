//! Helpers shared by the allocator benchmarks: a scratch directory on the local disk, medians,
//! and the machine/toolchain line that goes with every results table (STYLE.md, Benchmarks).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory under the system temp dir (`$TMPDIR` or `/tmp`), removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "persist-bench-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create the benchmark's temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The median of `v` (which it sorts). NaN-free input only.
pub fn median(v: &mut [f64]) -> f64 {
    assert!(!v.is_empty(), "median of nothing");
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// True when cargo runs this binary as a benchmark (`cargo bench` passes `--bench`); false
/// under `cargo test --benches`, where every measurement should be a short smoke run.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.lines().next().map(|l| l.trim().to_string())
}

/// "Model name" as lscpu prints it (falling back to /proc/cpuinfo).
fn cpu_model() -> String {
    if let Ok(out) = Command::new("lscpu").output() {
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(l) = s.lines().find(|l| l.starts_with("Model name:")) {
            return l["Model name:".len()..].trim().to_string();
        }
    }
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// The machine and toolchain, for the header of a results table.
pub fn machine_lines() -> Vec<String> {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = first_line("uname", &["-sr"]).unwrap_or_else(|| "?".into());
    let rustc = first_line("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".into());
    vec![
        format!(
            "machine: {} (lscpu model name), nproc {nproc}, {kernel}",
            cpu_model()
        ),
        format!("toolchain: {rustc}, bench profile (release + debug=1)"),
    ]
}

/// The command that reproduces this run: `cargo bench --bench NAME [-- ARGS]`.
pub fn command_line(bench: &str) -> String {
    let extra: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if extra.is_empty() {
        format!("cargo bench --bench {bench}")
    } else {
        format!("cargo bench --bench {bench} -- {}", extra.join(" "))
    }
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every figure, so
/// each results table says how busy the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}
