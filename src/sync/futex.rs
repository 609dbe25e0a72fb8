//! Cross-process wait and wake on a word of shared memory (Linux futex, not process-private).
//!
//! Waits always carry a timeout: a waiter wakes up now and then to check whether the process it
//! waits for is still alive (kernel robust lists belong to glibc's threads and are not ours).

use super::AtomicU64;
use std::time::Duration;

/// The futex word is the low half of a 64-bit atomic: on a little-endian machine (the only kind
/// persist supports) its address is the address of the 64-bit word.
fn futex_addr(word: &AtomicU64) -> *const u32 {
    word.as_ptr() as *const u32
}

/// Sleeps while the low 32 bits of `word` equal `expected`, for at most `timeout`.
/// Returns early on a wake, a signal, or when the value already differs.
pub fn wait(word: &AtomicU64, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the address points into a live mapping (`word` is a reference), is 4-aligned
    // (8-aligned word), and FUTEX_WAIT only reads it; the timespec outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex_addr(word),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes up to `n` waiters sleeping on `word` in any process.
pub fn wake(word: &AtomicU64, n: i32) {
    // SAFETY: as in `wait`; FUTEX_WAKE does not touch the memory at all.
    unsafe {
        libc::syscall(libc::SYS_futex, futex_addr(word), libc::FUTEX_WAKE, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wait_returns_at_once_when_value_differs_and_wake_wakes() {
        let w = Arc::new(AtomicU64::new(5));
        let start = Instant::now();
        wait(&w, 4, Duration::from_secs(5));
        assert!(start.elapsed() < Duration::from_secs(4));

        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::SeqCst) == 5 {
                wait(&w2, 5, Duration::from_secs(10));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        w.store(6, Ordering::SeqCst);
        wake(&w, i32::MAX);
        t.join().unwrap();
    }
}
