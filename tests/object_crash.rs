//! The object layer under SIGKILL, with real processes: the bank invariant.
//!
//! A list of accounts holds a constant sum. Worker processes (this test binary re-executed,
//! see `harness`) move money between random accounts inside lockExcl sections, each section
//! also appending to a history list and replacing a string (allocations and releases), and
//! some sections rolled back on purpose (a savepoint, as `transaction()` does when its block
//! raises). The parent SIGKILLs a random worker every few milliseconds and starts another,
//! hundreds of times. A killed worker may be anywhere: inside a section, in its commit, in an
//! allocation, opening, or recovering another dead worker. At the end the sum is unchanged,
//! the lock is free, and `check()` passes; `gc()` then takes back what the kills leaked, and
//! nothing else.

mod harness;

use harness::{env, record, TempDir};
use persist::object::dict::{Key, NO_HINT};
use persist::object::tree::{Node, Tree};
use persist::object::{value, Container, Error, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::{Duration, Instant};

const ACCOUNTS: u64 = 10;
const START: i64 = 1000;
const KILLS: usize = 400;
const WORKERS: usize = 3;
/// The thread id the lock calls are made with (one thread per worker).
const T: u64 = 1;

#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("bank_worker") => bank_worker(),
        Some(other) => panic!("unknown role {other}"),
    }
}

fn key(s: &str) -> Tree<'_> {
    Tree::scalar(Node::Str(s.as_bytes().into()))
}

/// The container stored under `name` in the root dict.
fn lookup(st: &Store, name: &str) -> Container {
    let root = st.root().expect("root");
    let kt = key(name);
    let w = st
        .dict_get(root, &Key::new(&kt, kt.root).unwrap(), &mut NO_HINT.clone())
        .expect("dict_get")
        .unwrap_or_else(|| panic!("no {name:?} in the root"));
    st.value(w)
        .expect("a value")
        .container()
        .unwrap_or_else(|| panic!("{name:?} is not a container"))
}

fn balance(st: &Store, acct: Container, i: u64) -> i64 {
    value::small_int_value(st.list_get(acct, i).unwrap().expect("an account"))
}

/// Waits out another process's hold of the store lock (as the Python layer does).
fn retry<T>(st: &mut Store, mut f: impl FnMut(&mut Store) -> Result<T, Error>) -> T {
    let start = Instant::now();
    loop {
        match f(st) {
            Ok(v) => return v,
            Err(Error::Busy(b)) => {
                assert!(start.elapsed() < Duration::from_secs(30), "stuck on {b:?}");
                st.wait(b, Duration::from_millis(2));
                st.recover_dead().expect("recover_dead");
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn bank_worker() {
    let path = env("STORE");
    let seed: u64 = env("SEED").parse().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut st = Store::open(Path::new(&path)).expect("worker open");
    let acct = lookup(&st, "acct");
    let hist = lookup(&st, "hist");
    let root = st.root().unwrap();
    record("READY");
    loop {
        let i = rng.gen_range(0..ACCOUNTS);
        let j = (i + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
        let x = rng.gen_range(1..50);
        retry(&mut st, |s| s.lock_excl(T));
        let mark = st.savepoint();
        let note_len = rng.gen_range(8..200);
        let op = |st: &mut Store| -> Result<(), Error> {
            st.begin_op(T)?;
            let a = balance(st, acct, i);
            st.list_set(acct, i, value::small_int(a - x).unwrap())?;
            st.list_append(hist, value::small_int(x).unwrap())?;
            if st.list_len(hist)? > 64 {
                st.list_splice(hist, 0, 32, &[])?;
            }
            let note = "n".repeat(note_len);
            let w = st.encode(&Tree::scalar(Node::Str(note.as_bytes().into())))?;
            let kt = key("note");
            st.dict_set(root, &Key::new(&kt, kt.root)?, w, &mut NO_HINT.clone())?;
            let b = balance(st, acct, j);
            st.list_set(acct, j, value::small_int(b + x).unwrap())?;
            st.end_op(true)
        };
        op(&mut st).expect("a transfer");
        if rng.gen_range(0..4) == 0 {
            st.rollback_savepoint(mark).expect("rollback");
        }
        st.unlock(T).expect("unlock");
    }
}

#[test]
fn bank_invariant_survives_hundreds_of_kills() {
    if harness::role().is_some() {
        return;
    }
    let dir = TempDir::new("object-crash");
    let path = dir.join("bank.db");
    {
        let mut st = Store::open(&path).unwrap();
        let root = st.root().unwrap();
        st.begin_op(T).unwrap();
        let mut accounts = Tree::default();
        accounts.push(Node::List(0..ACCOUNTS as u32));
        for _ in 0..ACCOUNTS {
            let c = accounts.push(Node::Int(START));
            accounts.children.push(c);
        }
        for (name, tree) in [
            ("acct", accounts),
            ("hist", {
                let mut t = Tree::default();
                t.push(Node::List(0..0));
                t
            }),
            ("note", Tree::scalar(Node::None)),
        ] {
            let w = st.encode(&tree).unwrap();
            let kt = key(name);
            st.dict_set(
                root,
                &Key::new(&kt, kt.root).unwrap(),
                w,
                &mut NO_HINT.clone(),
            )
            .unwrap();
        }
        st.end_op(true).unwrap();
        st.close().unwrap();
    }
    harness::kill_loop(
        &dir,
        &path,
        "bank_worker",
        WORKERS,
        KILLS,
        0x6b69_6c6c,
        Duration::from_secs(240),
    );

    let mut st = Store::open(&path).unwrap();
    let acct = lookup(&st, "acct");
    let sum: i64 = (0..ACCOUNTS).map(|i| balance(&st, acct, i)).sum();
    assert_eq!(sum, START * ACCOUNTS as i64, "money appeared or vanished");
    let moved: Vec<i64> = (0..ACCOUNTS).map(|i| balance(&st, acct, i)).collect();
    assert!(
        moved.iter().any(|&b| b != START),
        "no transfer was ever committed"
    );
    assert!(st.list_len(lookup(&st, "hist")).unwrap() > 0);
    let report = st.check(T).expect("check after the kills");
    let freed = st.gc(T).unwrap();
    assert_eq!(
        freed.blocks, report.unreachable_blocks,
        "{report:?} {freed:?}"
    );
    let after = st.check(T).unwrap();
    assert_eq!(after.unreachable_blocks, 0, "{after:?}");
    // The lock is free: a change goes through at once.
    st.lock_excl(T).expect("the lock after the kills");
    st.unlock(T).unwrap();
    eprintln!("bank (Rust): {KILLS} kills survived; check {report:?}; gc {freed:?}");
}
