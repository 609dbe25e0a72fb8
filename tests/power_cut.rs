//! Power cuts in durable mode, simulated from the real file at every flush.
//!
//! A durable store runs a workload of committed and rolled-back changes that allocate and free
//! blocks of many sizes (small blocks, segments, large runs), so the allocator's free stacks,
//! segment lists and page runs change between flushes. A flush hook copies the store file after
//! every flush: the disk then holds exactly that copy. A power cut between flush k and flush
//! k + 1 leaves the disk with copy k, except that any 512-byte sector written in between may
//! hold its new bytes instead (the kernel writes dirty pages back in any order, and a page
//! write may be torn at sector boundaries). For sampled k, the test builds such mixes (each
//! changed sector taken from copy k + 1 with a per-case probability), deletes the lock file (a
//! reboot makes it stale), and opens the mix. It must open, roll back the change in flight,
//! hold the state after the last change whose commit returned before flush k + 1 (or the one
//! in flight, if its commit point made it), pass `check()`, and then go on working: more
//! changes with allocation, whose results read back exactly (a free stack leading into a live
//! block would hand it out twice), and `check()` again.

mod harness;

use harness::TempDir;
use persist::object::dict::{Key, NO_HINT};
use persist::object::tree::{Node, Tree};
use persist::object::view::Value;
use persist::object::{value, Container, Error, Store};
use persist::region::set_flush_hook;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const ACCOUNTS: u64 = 10;
const START: i64 = 1000;
const TXNS: usize = 260;
const CASES: usize = 120;
const SECTOR: usize = 512;
/// The thread id the lock calls are made with.
const T: u64 = 1;

/// What the store holds, as the test expects it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    acct: Vec<i64>,
    hist: Vec<i64>,
    /// The note: a string of `len` copies of `byte`.
    note: (usize, u8),
    /// Keys `k<id>` of the dict `d`, with the length of their string value (all b'v').
    d: BTreeMap<u64, usize>,
    next_key: u64,
}

impl Model {
    /// The same contents (`next_key` is the test's own counter).
    fn holds(&self, other: &Model) -> bool {
        (&self.acct, &self.hist, self.note, &self.d)
            == (&other.acct, &other.hist, other.note, &other.d)
    }

    fn new() -> Model {
        Model {
            acct: vec![START; ACCOUNTS as usize],
            hist: Vec::new(),
            note: (0, b'n'),
            d: BTreeMap::new(),
            next_key: 0,
        }
    }
}

fn str_tree(bytes: Vec<u8>) -> Tree<'static> {
    Tree::scalar(Node::Str(bytes.into()))
}

fn with_key<R>(name: &str, f: impl FnOnce(&Key) -> R) -> R {
    let kt = str_tree(name.as_bytes().to_vec());
    let k = Key::new(&kt, kt.root).unwrap();
    f(&k)
}

fn lookup(st: &Store, name: &str) -> Container {
    let root = st.root().expect("root");
    let w = with_key(name, |k| st.dict_get(root, k, &mut NO_HINT.clone()))
        .expect("dict_get")
        .unwrap_or_else(|| panic!("no {name:?} in the root"));
    st.value(w)
        .expect("a value")
        .container()
        .unwrap_or_else(|| panic!("{name:?} is not a container"))
}

/// The bytes of a stored str value.
fn read_str(st: &Store, w: u64) -> Vec<u8> {
    assert!(value::is_block(w), "a long string is a block: {w:#x}");
    match st.value(w).unwrap() {
        Value::Str(p) => st.payload_bytes(p).unwrap(),
        v => panic!("a str block, found {v:?}"),
    }
}

fn set_str(st: &mut Store, c: Container, name: &str, bytes: Vec<u8>) -> Result<(), Error> {
    let w = st.encode(&str_tree(bytes))?;
    with_key(name, |k| st.dict_set(c, k, w, &mut NO_HINT.clone()))?;
    Ok(())
}

/// A string length: mostly small blocks of many classes, sometimes a large run.
fn some_len(rng: &mut StdRng) -> usize {
    match rng.gen_range(0..10) {
        0..=4 => rng.gen_range(8..200),
        5..=7 => rng.gen_range(200..3000),
        8 => rng.gen_range(3000..8000),
        _ => rng.gen_range(9000..20_000),
    }
}

/// One change, applied to the store and (if it commits) to the model.
fn transaction(st: &mut Store, m: &mut Model, rng: &mut StdRng) {
    let acct = lookup(st, "acct");
    let hist = lookup(st, "hist");
    let d = lookup(st, "d");
    let root = st.root().unwrap();
    let i = rng.gen_range(0..ACCOUNTS);
    let j = (i + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
    let x = rng.gen_range(1..50);
    let note = (some_len(rng), b'a' + rng.gen_range(0..26u8));
    let add = rng.gen_range(0..3) != 0;
    let del = (rng.gen_range(0..3) == 0 && !m.d.is_empty())
        .then(|| *m.d.keys().nth(rng.gen_range(0..m.d.len())).unwrap());
    let vlen = some_len(rng) / 4 + 8;
    let roll_back = rng.gen_range(0..6) == 0;

    let mut next = m.clone();
    let change = |st: &mut Store, next: &mut Model| -> Result<(), Error> {
        let a = value::small_int_value(st.list_get(acct, i)?.unwrap());
        st.list_set(acct, i, value::small_int(a - x).unwrap())?;
        next.acct[i as usize] -= x;
        st.list_append(hist, value::small_int(x).unwrap())?;
        next.hist.push(x);
        if st.list_len(hist)? > 48 {
            st.list_splice(hist, 0, 24, &[])?;
            next.hist.drain(0..24);
        }
        set_str(st, root, "note", vec![note.1; note.0])?;
        next.note = note;
        if add {
            let id = next.next_key;
            next.next_key += 1;
            set_str(st, d, &format!("k{id}"), vec![b'v'; vlen])?;
            next.d.insert(id, vlen);
        }
        if let Some(id) = del {
            let gone = with_key(&format!("k{id}"), |k| st.dict_del(d, k))?;
            assert!(gone.is_some());
            next.d.remove(&id);
        }
        let b = value::small_int_value(st.list_get(acct, j)?.unwrap());
        st.list_set(acct, j, value::small_int(b + x).unwrap())?;
        next.acct[j as usize] += x;
        Ok(())
    };
    if roll_back {
        // As `transaction()` does when its block raises: the section's changes are undone.
        st.lock_excl(T).unwrap();
        let mark = st.savepoint();
        st.begin_op(T).unwrap();
        change(st, &mut next).unwrap();
        st.end_op(true).unwrap();
        st.rollback_savepoint(mark).unwrap();
        st.unlock(T).unwrap();
    } else {
        st.begin_op(T).unwrap();
        change(st, &mut next).unwrap();
        st.end_op(true).unwrap();
        *m = next;
    }
}

/// What the store holds now.
fn read_model(st: &Store, keys_up_to: u64) -> Model {
    let acct = lookup(st, "acct");
    let hist = lookup(st, "hist");
    let d = lookup(st, "d");
    let root = st.root().unwrap();
    let acct: Vec<i64> = (0..ACCOUNTS)
        .map(|i| value::small_int_value(st.list_get(acct, i).unwrap().unwrap()))
        .collect();
    let hist: Vec<i64> = st
        .list_words(hist)
        .unwrap()
        .into_iter()
        .map(value::small_int_value)
        .collect();
    let note_w = with_key("note", |k| st.dict_get(root, k, &mut NO_HINT.clone()))
        .unwrap()
        .unwrap();
    let note = if note_w == value::NONE {
        (0, b'n')
    } else {
        let bytes = read_str(st, note_w);
        assert!(
            bytes.iter().all(|&b| b == bytes[0]),
            "a note of mixed bytes: a block shared by two values"
        );
        (bytes.len(), bytes[0])
    };
    let mut map = BTreeMap::new();
    for id in 0..keys_up_to {
        if let Some(w) = with_key(&format!("k{id}"), |k| {
            st.dict_get(d, k, &mut NO_HINT.clone())
        })
        .unwrap()
        {
            let bytes = read_str(st, w);
            assert!(bytes.iter().all(|&b| b == b'v'), "a dict value overwritten");
            map.insert(id, bytes.len());
        }
    }
    assert_eq!(st.dict_len(d).unwrap(), map.len() as u64, "stray keys in d");
    Model {
        acct,
        hist,
        note,
        d: map,
        next_key: keys_up_to,
    }
}

/// The flush hook's state: the store being copied, the flush count, and the cases built.
struct Recorder {
    path: PathBuf,
    dir: PathBuf,
    flushes: u64,
    rng: StdRng,
    /// Copy k of a sampled k, waiting for copy k + 1.
    pending: Option<(u64, Vec<u8>)>,
    cases: Vec<(u64, PathBuf)>,
}

static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);

fn on_flush() {
    let mut guard = RECORDER.lock().unwrap();
    let Some(r) = guard.as_mut() else { return };
    r.flushes += 1;
    let k = r.flushes;
    let now = std::fs::read(&r.path).unwrap();
    if let Some((k0, mut old)) = r.pending.take() {
        // A cut between flush k0 and flush k0 + 1 (this one).
        old.resize(now.len(), 0); // the file only grows; grown bytes were zero
        let p_new = [0.1, 0.5, 0.9][r.rng.gen_range(0..3)];
        for (o, n) in old.chunks_mut(SECTOR).zip(now.chunks(SECTOR)) {
            if o != n && r.rng.gen_bool(p_new) {
                o.copy_from_slice(n);
            }
        }
        let file = r.dir.join(format!("cut-{k0}.db"));
        std::fs::write(&file, &old).unwrap();
        r.cases.push((k0, file));
    }
    if r.cases.len() < CASES && r.rng.gen_range(0..40) == 0 {
        r.pending = Some((k, now));
    }
}

fn flushes() -> u64 {
    RECORDER.lock().unwrap().as_ref().unwrap().flushes
}

fn setup(path: &Path) {
    let mut st = Store::open_with(path, true).unwrap();
    let root = st.root().unwrap();
    st.begin_op(T).unwrap();
    let mut accounts = Tree::default();
    accounts.push(Node::List(0..ACCOUNTS as u32));
    for _ in 0..ACCOUNTS {
        let c = accounts.push(Node::Int(START));
        accounts.children.push(c);
    }
    let mut empty_list = Tree::default();
    empty_list.push(Node::List(0..0));
    let mut empty_dict = Tree::default();
    empty_dict.push(Node::Dict(0..0));
    for (name, tree) in [
        ("acct", accounts),
        ("hist", empty_list),
        ("d", empty_dict),
        ("note", Tree::scalar(Node::None)),
    ] {
        let w = st.encode(&tree).unwrap();
        with_key(name, |k| st.dict_set(root, k, w, &mut NO_HINT.clone())).unwrap();
    }
    st.end_op(true).unwrap();
    st.close().unwrap();
}

#[test]
fn durable_store_survives_simulated_power_cuts() {
    let dir = TempDir::new("power-cut");
    let path = dir.join("store.db");
    setup(&path);

    // The workload, every flush recorded.
    let mut rng = StdRng::seed_from_u64(0x0070_6f77_6572);
    let mut m = Model::new();
    *RECORDER.lock().unwrap() = Some(Recorder {
        path: path.clone(),
        dir: dir.path().to_path_buf(),
        flushes: 0,
        rng: StdRng::seed_from_u64(0x0063_7574),
        pending: None,
        cases: Vec::new(),
    });
    set_flush_hook(Some(on_flush));
    let mut st = Store::open_with(&path, true).unwrap();
    // states[t]: the model after t committed transactions; spans[t]: the flush counts
    // before transaction t began and after its commit returned.
    let mut states = vec![m.clone()];
    let mut spans = Vec::new();
    for _ in 0..TXNS {
        let before = flushes();
        transaction(&mut st, &mut m, &mut rng);
        spans.push((before, flushes()));
        states.push(m.clone());
    }
    st.close().unwrap();
    set_flush_hook(None);
    let Recorder {
        flushes: total,
        cases,
        ..
    } = RECORDER.lock().unwrap().take().unwrap();
    assert!(cases.len() >= CASES / 2, "only {} cut points", cases.len());

    let mut rolled_back = 0;
    for (k, file) in &cases {
        // Must hold: every transaction whose commit returned by flush k. May hold: the one
        // that had begun by then (its commit point may have reached the disk).
        let must = spans.iter().filter(|s| s.1 <= *k).count();
        let may = spans.iter().filter(|s| s.0 <= *k).count();
        let lock = PathBuf::from(format!("{}.lock", file.display()));
        let _ = std::fs::remove_file(&lock);
        let mut st = Store::open(file)
            .unwrap_or_else(|e| panic!("cut after flush {k} of {total}: open failed: {e}"));
        let keys = states[may].next_key;
        let got = read_model(&st, keys);
        let at = (must..=may)
            .find(|&t| states[t].holds(&got))
            .unwrap_or_else(|| {
                panic!(
                    "cut after flush {k}: the store holds none of states {must}..={may}\n\
                     got {got:?}\nexpected {:?}",
                    states[must]
                )
            });
        if at < may {
            rolled_back += 1;
        }
        let report = st
            .check(T)
            .unwrap_or_else(|e| panic!("cut after flush {k}: check failed: {e}"));
        st.gc(T).unwrap();
        assert_eq!(st.check(T).unwrap().unreachable_blocks, 0, "{report:?}");
        // The allocator must be whole: more changes, read back exactly.
        let mut m = states[at].clone();
        let mut rng = StdRng::seed_from_u64(*k);
        for _ in 0..25 {
            transaction(&mut st, &mut m, &mut rng);
        }
        let later = read_model(&st, m.next_key);
        assert!(
            later.holds(&m),
            "cut after flush {k}: later changes: {later:?} != {m:?}"
        );
        st.check(T)
            .unwrap_or_else(|e| panic!("cut after flush {k}: check after more changes: {e}"));
        st.close().unwrap();
        let _ = std::fs::remove_file(file);
        let _ = std::fs::remove_file(&lock);
    }
    eprintln!(
        "power cut: {} cut points over {total} flushes of {TXNS} transactions; \
         {rolled_back} of them rolled a change in flight back",
        cases.len()
    );
}
