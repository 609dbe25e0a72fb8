//! A short tour of the engine: several processes share one store file, allocate and free
//! blocks in it at once (freeing each other's blocks too), one of them is SIGKILLed in the
//! middle of its work, and the survivors recover what it left in flight.
//!
//!     cargo run --release --example demo
//!
//! Each worker writes its own pattern into every block it allocates and verifies it before the
//! block is freed: a block handed out twice would show up as a torn pattern.

use persist::heap::{Attached, Block};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
const RUN: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--worker" {
        worker(Path::new(&args[2]), args[3].parse().expect("worker number"));
        return;
    }
    let dir = std::env::temp_dir().join(format!("persist-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("demo.db");
    println!(
        "persist engine demo: {} processes share {}",
        WORKERS,
        path.display()
    );
    println!();

    let store = Attached::open(&path).unwrap_or_else(|e| fail(&e));
    println!(
        "1. created the store: {} bytes on disk, this process is participant {}",
        file_len(&path),
        store.slot()
    );

    println!(
        "2. starting {WORKERS} worker processes; each allocates and frees blocks of 16 B .. 64 KiB"
    );
    println!(
        "   for {} s, writing a pattern into each block and checking it before the free",
        RUN.as_secs()
    );
    let mut children: Vec<Child> = (0..WORKERS).map(|i| spawn(&path, i)).collect();
    std::thread::sleep(RUN / 2);
    let victim = children.remove(0);
    let pid = victim.id();
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let _ = wait(victim);
    println!("3. SIGKILLed worker 0 (pid {pid}) in the middle of its work");

    let mut total_ops = 0u64;
    for (i, child) in children.into_iter().enumerate() {
        let (ok, ops) = wait(child);
        if !ok {
            eprintln!("worker {} failed", i + 1);
            std::process::exit(1);
        }
        total_ops += ops;
    }
    println!(
        "4. the other {} workers finished: {} alloc/free pairs, every pattern intact",
        WORKERS - 1,
        total_ops
    );

    let recovered = store.recover_dead().unwrap_or_else(|e| fail(&e));
    println!("5. recovery: {recovered} dead participant(s) found and their in-flight steps finished or undone");
    match store.check() {
        Ok(st) => {
            println!("6. allocator check passed:");
            println!("     file size      {} bytes", file_len(&path));
            println!(
                "     chunks         {} ({} pages, {} used, {} free)",
                st.pages.chunks, st.pages.pages_total, st.pages.pages_used, st.pages.pages_free
            );
            println!("     segments       {}", st.segments);
            println!(
                "     blocks         {} allocated, {} free",
                st.blocks_allocated, st.blocks_free
            );
            println!("     large runs     {}", st.large_runs);
            println!("   The blocks still allocated are the killed worker's (its live blocks and its cache):");
            println!(
                "   unreachable, since nothing links them (there is no object graph in this demo),"
            );
        }
        Err(e) => fail(&e),
    }
    let freed = store.heap().sweep(|_| true).unwrap_or_else(|e| fail(&e));
    println!("7. so a sweep frees them while the store stays open: {freed} blocks and runs freed");
    match store.check() {
        Ok(st) => println!(
            "8. check passed again: {} blocks and {} large runs allocated, {} of {} pages in use (segments stay with their size class)",
            st.blocks_allocated, st.large_runs, st.pages.pages_used, st.pages.pages_total
        ),
        Err(e) => fail(&e),
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn spawn(path: &Path, i: usize) -> Child {
    Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--worker",
            path.to_str().expect("utf-8 path"),
            &i.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn worker")
}

/// Waits for a worker; returns whether it succeeded and the operations it reported.
fn wait(mut child: Child) -> (bool, u64) {
    let out = child.stdout.take().expect("piped");
    let mut ops = 0;
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("ops ") {
            ops = n.parse().unwrap_or(0);
        }
    }
    let status = child.wait().expect("wait");
    (status.success(), ops)
}

fn worker(path: &Path, me: usize) {
    let store = Attached::open(path).unwrap_or_else(|e| fail(&e));
    let heap = store.heap();
    let region = store.region();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (me as u64 + 1);
    let mut live: Vec<(Block, u64, u8)> = Vec::new();
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..256 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if live.len() < 200 {
                let size = 16 + seed % if seed % 16 == 0 { 65536 } else { 512 };
                let off = heap.alloc(size).unwrap_or_else(|e| fail(&e));
                heap.settle(0).unwrap_or_else(|e| fail(&e));
                let pattern = (off.get() as u8) ^ (me as u8).wrapping_mul(31);
                let p = region
                    .store()
                    .bytes(off.get(), size)
                    .unwrap_or_else(|e| fail(&e));
                // SAFETY: the block [off, off + size) was just allocated to us and is inside
                // the published mapping (checked by `bytes`); nobody else writes it.
                unsafe { std::ptr::write_bytes(p, pattern, size as usize) };
                live.push((off, size, pattern));
            } else {
                let (off, size, pattern) = live.swap_remove((seed % live.len() as u64) as usize);
                let p = region
                    .store()
                    .bytes(off.get(), size)
                    .unwrap_or_else(|e| fail(&e));
                // SAFETY: as above; the block is still ours until the free below.
                let bytes = unsafe { std::slice::from_raw_parts(p, size as usize) };
                if let Some(i) = bytes.iter().position(|&b| b != pattern) {
                    eprintln!("worker {me}: block {off:#x} torn at byte {i}: handed out twice?");
                    std::process::exit(2);
                }
                heap.free(off).unwrap_or_else(|e| fail(&e));
                ops += 1;
            }
        }
    }
    // A clean exit: give every block back, so that what stays allocated afterwards is exactly
    // what killed workers left.
    for (off, _, _) in live {
        heap.free(off).unwrap_or_else(|e| fail(&e));
    }
    println!("ops {ops}");
    std::io::stdout().flush().ok();
}

fn file_len(path: &PathBuf) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1);
}
