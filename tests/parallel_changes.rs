//! Single changes of many processes on their containers' part locks (FORMAT.md §10.9), with
//! real processes (this test binary re-executed, see `harness`).
//!
//! 1. `random_single_changes_lose_nothing`: worker processes make random single changes at
//!    once (`SharedStore::write_in`) on one dict and two lists: keys of their own (set,
//!    delete), keys and list slots all of them write, appends, str values (allocated and
//!    freed), and lockExcl sections that add 1 to a counter. Each worker records what it last
//!    wrote. The final store must be what a serial order of all those changes leaves: every
//!    own key and slot holds its owner's last write, every shared key and slot one worker's
//!    last write, every append is in the list once and in its worker's order, the counter
//!    counts every section, and `check()` finds nothing amiss. The store-wide sequence word
//!    must have moved for the sections only (so the single changes did run on parts).
//! 3. `unlocked_reads_see_a_single_change_whole`: two processes write two keys of one dict in
//!    one single change and read both in one unlocked read, pausing in between: no read may
//!    see one key from one change and the other from another (no section runs, so only the
//!    dict's version tells the read that it raced a change).
//! 2. `bank_invariant_with_single_changes_and_kills`: lockExcl transfers between accounts (a
//!    constant sum) mixed with single changes that each write two words of one container with
//!    a pause between them (two appends to the history the sections trim; two str values set,
//!    or deleted, together) and unlocked reads of the two notes, while the parent SIGKILLs a random worker every few
//!    milliseconds, hundreds of times: a worker killed holding a part must be rolled back and
//!    its part and `active` word released by whoever notices, or the next section waits for
//!    ever. At the end the sum holds, every single change is whole or absent (the history
//!    holds pairs, the two notes agree), `check()` passes (no
//!    container version left odd), and `gc()` takes back only what the kills leaked.

mod harness;

use harness::{env, env_u64, record, TempDir};
use persist::object::dict::{Key, NO_HINT};
use persist::object::tree::{Node, Tree};
use persist::object::view::Value;
use persist::object::{thread_id, value, Container, Error, Plain, SharedStore, Store};
use persist::region::OpenOptionsRegion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OPEN: OpenOptionsRegion = OpenOptionsRegion {
    create: false,
    durable: false,
    readonly: false,
};

#[test]
fn child() {
    match harness::role().as_deref() {
        None => {}
        Some("changer") => changer(),
        Some("bank") => bank_worker(),
        Some("pairs") => pairs_worker(),
        Some(other) => panic!("unknown role {other}"),
    }
}

fn key_tree(s: &str) -> Tree<'_> {
    Tree::scalar(Node::Str(s.as_bytes().into()))
}

fn with_key<T>(name: &str, f: impl FnOnce(&Key) -> T) -> T {
    let t = key_tree(name);
    let k = Key::new(&t, t.root).expect("key");
    f(&k)
}

fn get(st: &Store, d: Container, name: &str) -> Option<u64> {
    try_get(st, d, name).expect("dict_get")
}

/// For unlocked reads: what a read racing a change finds may be damaged, and is dropped by
/// the validation that follows, so it must not panic.
fn try_get(st: &Store, d: Container, name: &str) -> Result<Option<u64>, Error> {
    with_key(name, |k| st.dict_get(d, k, &mut NO_HINT.clone()))
}

fn lookup(st: &Store, name: &str) -> Container {
    try_lookup(st, name)
        .expect("lookup")
        .unwrap_or_else(|| panic!("no container {name:?} in the root"))
}

/// `lookup` for unlocked reads (see `try_get`).
fn try_lookup(st: &Store, name: &str) -> Result<Option<Container>, Error> {
    let root = st.root()?;
    Ok(match try_get(st, root, name)? {
        Some(w) => st.value(w)?.container(),
        None => None,
    })
}

/// The containers named in the root, read unlocked (retried until a read is valid).
fn containers<const N: usize>(shared: &SharedStore, names: [&str; N]) -> [Container; N] {
    let found = shared
        .read(&Plain, |st| {
            let mut out = [None; N];
            for (o, name) in out.iter_mut().zip(names) {
                *o = try_lookup(st, name)?;
            }
            Ok::<_, Error>(out)
        })
        .unwrap();
    found.map(|c| c.expect("a container in the root"))
}

fn set(st: &mut Store, d: Container, name: &str, node: Node) -> Result<(), Error> {
    let w = st.encode(&Tree::scalar(node))?;
    with_key(name, |k| st.dict_set(d, k, w, &mut NO_HINT.clone()))?;
    Ok(())
}

/// `d[name] = v` for a small int `v`, as the Python proxy makes it: a publication (one CAS on
/// the value word, no part) when the key exists with an inline value, else a single change on
/// the dict's part. Returns whether it was published.
fn put_int(shared: &SharedStore, d: Container, name: &str, v: i64) -> bool {
    let w = value::small_int(v).unwrap();
    shared
        .publish_or_write_in(
            &Plain,
            d,
            |st| {
                with_key(name, |k| {
                    st.publish_dict_value(d, k, &mut NO_HINT.clone(), |_| Some((w, true)))
                })
            },
            |st| set(st, d, name, Node::Int(v)).map(|()| false),
        )
        .unwrap()
}

fn int(w: u64) -> i64 {
    value::small_int_value(w)
}

fn seq_word(path: &Path) -> u64 {
    let lock = std::fs::read(path.with_extension("db.lock")).expect("read the lock file");
    u64::from_le_bytes(lock[128..136].try_into().unwrap())
}

/// Builds the store: root["d"] = {}, root["l"] = [], root["m"] = [0] * 16, root["c"] = 0,
/// root["acct"] = [START] * ACCOUNTS, root["hist"] = [].
fn create(path: &Path) {
    let mut st = Store::open(path).unwrap();
    let root = st.root().unwrap();
    let t = thread_id();
    st.begin_op(t).unwrap();
    let list_of = |n: u32, v: i64| {
        let mut tree = Tree::default();
        tree.push(Node::List(0..n));
        for _ in 0..n {
            let c = tree.push(Node::Int(v));
            tree.children.push(c);
        }
        tree
    };
    let mut dict = Tree::default();
    dict.push(Node::Dict(0..0));
    for (name, tree) in [
        ("d", dict),
        ("l", list_of(0, 0)),
        ("m", list_of(16, 0)),
        ("c", Tree::scalar(Node::Int(0))),
        ("acct", list_of(ACCOUNTS as u32, START)),
        ("hist", list_of(0, 0)),
        ("notes", {
            let mut t = Tree::default();
            t.push(Node::Dict(0..0));
            t
        }),
        ("recs", list_of(0, 0)),
    ] {
        let w = st.encode(&tree).unwrap();
        with_key(name, |k| st.dict_set(root, k, w, &mut NO_HINT.clone())).unwrap();
    }
    st.end_op(true).unwrap();
    st.close().unwrap();
}

/// A record as a worker stores it, a new container: `{"w": me, "items": [n, "record n of
/// worker me"]}`.
fn record_tree(me: u64, n: u64) -> Tree<'static> {
    let mut t = Tree::default();
    let (_, at) = t.push_parent(4, Node::Dict);
    let kw = t.push(Node::Str(b"w".as_slice().into()));
    let vw = t.push(Node::Int(me as i64));
    let ki = t.push(Node::Str(b"items".as_slice().into()));
    let (vi, at_items) = t.push_parent(2, Node::List);
    let n_item = t.push(Node::Int(n as i64));
    let s_item = t.push(Node::Str(record_text(me, n).into_bytes().into()));
    t.children[at_items as usize..at_items as usize + 2].copy_from_slice(&[n_item, s_item]);
    t.children[at as usize..at as usize + 4].copy_from_slice(&[kw, vw, ki, vi]);
    t
}

fn record_text(me: u64, n: u64) -> String {
    format!("record {n} of worker {me}")
}

/// Whether value word `w` is `record_tree(me, n)`, whole.
fn is_record(st: &Store, w: u64, me: u64, n: u64) -> bool {
    let Some(r) = st.value(w).unwrap().container() else {
        return false;
    };
    let items = get(st, r, "items").and_then(|w| st.value(w).unwrap().container());
    let Some(items) = items else {
        return false;
    };
    let words = st.list_words(items).unwrap();
    get(st, r, "w").map(int) == Some(me as i64)
        && words.len() == 2
        && int(words[0]) == n as i64
        && matches!(st.value(words[1]).unwrap(),
            Value::Str(p) if st.read_bytes(p.block + 8, p.len).unwrap() == record_text(me, n).as_bytes())
}

/// A lockExcl section running `f` (one change inside it), waiting as long as it takes.
fn section<T>(
    shared: &SharedStore,
    f: impl FnMut(&mut Store) -> Result<T, Error>,
) -> Result<T, Error> {
    let t = thread_id();
    shared.blocking(&Plain, None, |st| st.lock_excl(t))?;
    let r = shared.write(&Plain, f);
    shared.with(&Plain, |st| st.unlock(t))?;
    r
}

// ---- 1. random single changes ------------------------------------------------------------

const OPS: u64 = 20000;
const OWN_KEYS: u64 = 16;
const SHARED_KEYS: u64 = 4;

fn changer() {
    let path = env("STORE");
    let me = env_u64("WORKER");
    let mut rng = StdRng::seed_from_u64(env_u64("SEED"));
    let shared = SharedStore::open(path.into(), OPEN).expect("worker open");
    let [d, l, m, recs] = containers(&shared, ["d", "l", "m", "recs"]);
    let root = shared.read(&Plain, |st| st.root()).unwrap();
    let mut own: HashMap<u64, Option<i64>> = HashMap::new();
    let mut last_shared: HashMap<u64, i64> = HashMap::new();
    let mut own_m: HashMap<u64, i64> = HashMap::new();
    let mut last_m15 = None;
    let mut own_recs: HashMap<u64, Option<u64>> = HashMap::new();
    let (mut sections, mut appends, mut singles, mut published) = (0u64, 0u64, 0u64, 0u64);
    for n in 0..OPS {
        let v = ((me << 20) | n) as i64;
        match rng.gen_range(0..100) {
            0..=29 => {
                let k = rng.gen_range(0..OWN_KEYS);
                let name = format!("w{me}k{k}");
                published += u64::from(put_int(&shared, d, &name, v));
                own.insert(k, Some(v));
            }
            30..=39 => {
                let k = rng.gen_range(0..OWN_KEYS);
                let name = format!("w{me}k{k}");
                let gone = shared
                    .write_in(&Plain, d, |st| with_key(&name, |key| st.dict_del(d, key)))
                    .unwrap();
                assert_eq!(
                    gone.map(|(_, w)| int(w)),
                    own.get(&k).copied().flatten(),
                    "deleting {name} found another value than its owner last wrote"
                );
                own.insert(k, None);
            }
            40..=54 => {
                let s = rng.gen_range(0..SHARED_KEYS);
                let name = format!("s{s}");
                published += u64::from(put_int(&shared, d, &name, v));
                last_shared.insert(s, v);
            }
            55..=74 => {
                shared
                    .write_in(&Plain, l, |st| {
                        let w = value::small_int(v).unwrap();
                        st.list_append(l, w)
                    })
                    .unwrap();
                appends += 1;
            }
            75..=89 => {
                let idx = if rng.gen_range(0..4) == 0 {
                    15
                } else {
                    me * 3 + rng.gen_range(0..3)
                };
                shared
                    .write_in(&Plain, m, |st| {
                        st.list_set(m, idx, value::small_int(v).unwrap())
                    })
                    .unwrap();
                if idx == 15 {
                    last_m15 = Some(v);
                } else {
                    own_m.insert(idx, v);
                }
            }
            90..=92 => {
                // A new container, under a new key or appended: written on the part of the
                // container it goes into.
                let t = record_tree(me, n);
                let how = rng.gen_range(0..4);
                if how >= 2 {
                    // A record of its own replaced by a new one, or deleted: the old record
                    // (no reference but this key's, held by no process) is freed on the part.
                    let j = rng.gen_range(0..4u64);
                    let name = format!("q{me}k{j}");
                    let last = if how == 2 {
                        shared
                            .write_in(&Plain, d, |st| {
                                let w = st.encode(&t)?;
                                with_key(&name, |k| st.dict_set(d, k, w, &mut NO_HINT.clone()))
                            })
                            .unwrap();
                        Some(n)
                    } else {
                        shared
                            .write_in(&Plain, d, |st| with_key(&name, |k| st.dict_del(d, k)))
                            .unwrap();
                        None
                    };
                    own_recs.insert(j, last);
                } else if how == 0 {
                    shared
                        .write_in(&Plain, d, |st| {
                            let w = st.encode(&t)?;
                            with_key(&format!("r{me}n{n}"), |k| {
                                st.dict_set(d, k, w, &mut NO_HINT.clone())
                            })
                        })
                        .unwrap();
                    record(&format!("REC {me} {n}"));
                } else {
                    shared
                        .write_in(&Plain, recs, |st| {
                            let w = st.encode(&t)?;
                            st.list_append(recs, w)
                        })
                        .unwrap();
                    record(&format!("RECA {me} {n}"));
                }
            }
            93..=94 => {
                let name = format!("t{me}");
                let s = format!("{n}:{}", "x".repeat(rng.gen_range(8..300)));
                shared
                    .write_in(&Plain, d, |st| {
                        set(st, d, &name, Node::Str(s.as_bytes().into()))
                    })
                    .unwrap();
            }
            _ => {
                // The section also appends to the list and writes a shared key, which single
                // changes of other workers change at the same time: the gate must keep them
                // apart.
                section(&shared, |st| {
                    let c = int(get(st, root, "c").expect("c"));
                    set(st, root, "c", Node::Int(c + 1))?;
                    st.list_append(l, value::small_int(v).unwrap())?;
                    let s = rng.gen_range(0..SHARED_KEYS);
                    last_shared.insert(s, v);
                    set(st, d, &format!("s{s}"), Node::Int(v))
                })
                .unwrap();
                sections += 1;
                appends += 1;
                continue;
            }
        }
        singles += 1;
        if n % 16 == 0 {
            // An unlocked read racing the others' changes: the list in each worker's order,
            // this worker's own keys exactly as it last wrote them.
            let (items, mine) = shared
                .read(&Plain, |st| {
                    let items = st.list_words(l)?;
                    let mut mine = Vec::new();
                    for k in 0..OWN_KEYS {
                        mine.push(try_get(st, d, &format!("w{me}k{k}"))?.map(int));
                    }
                    Ok::<_, Error>((items, mine))
                })
                .unwrap();
            let mut next: HashMap<i64, i64> = HashMap::new();
            for w in items {
                let v = int(w);
                let prev = next.insert(v >> 20, v & 0xfffff);
                assert!(
                    (v >> 20) < 8 && prev.is_none_or(|p| p < (v & 0xfffff)),
                    "a read saw the list torn ({v:#x} after {prev:x?})"
                );
            }
            for (k, found) in mine.into_iter().enumerate() {
                assert_eq!(
                    found,
                    own.get(&(k as u64)).copied().flatten(),
                    "a read saw another value of w{me}k{k} than its only writer wrote"
                );
            }
        }
    }
    for (k, v) in own {
        record(&format!(
            "OWN {me} {k} {}",
            v.map_or("none".into(), |v| v.to_string())
        ));
    }
    for (s, v) in last_shared {
        record(&format!("SHARED {me} {s} {v}"));
    }
    for (i, v) in own_m {
        record(&format!("M {me} {i} {v}"));
    }
    if let Some(v) = last_m15 {
        record(&format!("M15 {me} {v}"));
    }
    for (j, n) in own_recs {
        record(&format!(
            "QREC {me} {j} {}",
            n.map_or("none".into(), |n| n.to_string())
        ));
    }
    record(&format!(
        "DONE {me} {sections} {appends} {singles} {published}"
    ));
    shared.close(&Plain).unwrap();
}

#[test]
fn random_single_changes_lose_nothing() {
    if harness::role().is_some() {
        return;
    }
    const WORKERS: u64 = 3;
    let dir = TempDir::new("parallel-changes");
    let path = dir.join("s.db");
    create(&path);
    // Parts come on only once a second participant attaches: the parent stays attached.
    let keeper = Store::open(&path).unwrap();
    let seq_before = seq_word(&path);
    let mut children: Vec<_> = (0..WORKERS)
        .map(|i| {
            let out = dir.join(&format!("w{i}.out"));
            let log = dir.join(&format!("w{i}.log"));
            let child = harness::spawn(
                "child",
                "changer",
                &[
                    ("STORE", path.display().to_string()),
                    ("WORKER", i.to_string()),
                    ("SEED", (0x5eed + i).to_string()),
                ],
                &out,
                &log,
            );
            (child, out, log)
        })
        .collect();
    let mut records = Vec::new();
    for (child, out, log) in &mut children {
        let st = harness::wait_timeout(child, Duration::from_secs(240))
            .unwrap_or_else(|| panic!("a worker hung: {}", harness::log_tail(log)));
        assert!(
            st.success(),
            "a worker failed ({}): {}",
            harness::describe(&st),
            harness::log_tail(log)
        );
        records.extend(harness::read_records(out));
    }
    let seq_moves = seq_word(&path).wrapping_sub(seq_before);
    drop(keeper);

    let mut st = Store::open(&path).unwrap();
    let d = lookup(&st, "d");
    let l = lookup(&st, "l");
    let m = lookup(&st, "m");
    let root = st.root().unwrap();
    for f in harness::fields(&records, "OWN") {
        let name = format!("w{}k{}", f[0], f[1]);
        let found = get(&st, d, &name).map(int);
        let want = (f[2] != "none").then(|| f[2].parse::<i64>().unwrap());
        assert_eq!(found, want, "{name}: a write of its owner was lost");
    }
    let mut last_of: HashMap<String, HashSet<i64>> = HashMap::new();
    for f in harness::fields(&records, "SHARED") {
        last_of
            .entry(format!("s{}", f[1]))
            .or_default()
            .insert(f[2].parse().unwrap());
    }
    for (name, lasts) in &last_of {
        let v = int(get(&st, d, name).expect("a shared key"));
        assert!(
            lasts.contains(&v),
            "{name} holds {v:#x}, no worker's last write ({lasts:x?}): no serial order explains it"
        );
    }
    for f in harness::fields(&records, "M") {
        let i: u64 = f[1].parse().unwrap();
        let v = int(st.list_get(m, i).unwrap().unwrap());
        assert_eq!(v, f[2].parse::<i64>().unwrap(), "m[{i}]: a write was lost");
    }
    let m15: HashSet<i64> = harness::fields(&records, "M15")
        .iter()
        .map(|f| f[1].parse().unwrap())
        .collect();
    if !m15.is_empty() {
        let v = int(st.list_get(m, 15).unwrap().unwrap());
        assert!(
            m15.contains(&v),
            "m[15] holds {v:#x}, no worker's last write"
        );
    }
    for f in harness::fields(&records, "REC") {
        let (me, n) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let w = get(&st, d, &format!("r{me}n{n}")).expect("a record stored under its key");
        assert!(is_record(&st, w, me, n), "record r{me}n{n} is not whole");
    }
    for f in harness::fields(&records, "QREC") {
        let name = format!("q{}k{}", f[0], f[1]);
        match (get(&st, d, &name), f[2]) {
            (None, "none") => {}
            (Some(w), n) if n != "none" => assert!(
                is_record(&st, w, f[0].parse().unwrap(), n.parse().unwrap()),
                "{name} does not hold its owner's last record"
            ),
            (found, want) => panic!("{name}: found {found:?}, its owner left {want}"),
        }
    }
    let recs = lookup(&st, "recs");
    let mut appended: Vec<(u64, u64)> = harness::fields(&records, "RECA")
        .iter()
        .map(|f| (f[0].parse().unwrap(), f[1].parse().unwrap()))
        .collect();
    let rec_words = st.list_words(recs).unwrap();
    assert_eq!(
        rec_words.len(),
        appended.len(),
        "appended records lost or doubled"
    );
    let mut found = Vec::new();
    for w in rec_words {
        let r = st.value(w).unwrap().container().expect("a record");
        let me = int(get(&st, r, "w").expect("w")) as u64;
        let items = st
            .value(get(&st, r, "items").unwrap())
            .unwrap()
            .container()
            .unwrap();
        let n = int(st.list_words(items).unwrap()[0]) as u64;
        assert!(
            is_record(&st, w, me, n),
            "appended record {me}/{n} is not whole"
        );
        found.push((me, n));
    }
    appended.sort_unstable();
    found.sort_unstable();
    assert_eq!(
        found, appended,
        "appended records differ from those the workers appended"
    );
    let done = harness::fields(&records, "DONE");
    assert_eq!(done.len() as u64, WORKERS);
    let sections: u64 = done.iter().map(|f| f[1].parse::<u64>().unwrap()).sum();
    let appends: u64 = done.iter().map(|f| f[2].parse::<u64>().unwrap()).sum();
    let singles: u64 = done.iter().map(|f| f[3].parse::<u64>().unwrap()).sum();
    let published: u64 = done.iter().map(|f| f[4].parse::<u64>().unwrap()).sum();
    // Puts of an int into a key that holds one are publications (one CAS, no part) when no
    // part holder or section is in the way: most of them.
    assert!(published > 0, "no put was published");
    assert_eq!(
        int(get(&st, root, "c").unwrap()),
        sections as i64,
        "a section's increment was lost"
    );
    let items = st.list_words(l).unwrap();
    assert_eq!(items.len() as u64, appends, "appends lost or doubled");
    let mut next: HashMap<i64, i64> = HashMap::new();
    for w in items {
        let v = int(w);
        let (who, n) = (v >> 20, v & 0xfffff);
        let prev = next.insert(who, n);
        assert!(
            prev.is_none_or(|p| p < n),
            "worker {who}'s appends out of its order"
        );
    }
    // Each store-wide change moves the sequence by 2: sections, the workers' opens and
    // closes. Had the single changes run store-wide, it would have moved 2 * singles more.
    assert!(
        seq_moves <= 2 * (sections + 20 * WORKERS),
        "the sequence moved {seq_moves} times for {sections} sections and {singles} single \
         changes: the single changes did not run on parts"
    );
    let report = st.check(thread_id()).expect("check");
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(report.leaked_references, 0, "{report:?}");
    eprintln!(
        "parallel changes: {singles} single changes ({published} published), {sections} \
         sections, sequence moved {seq_moves}; {report:?}"
    );
}

// ---- 3. unlocked reads see a single change whole ---------------------------------------

const PAIR_OPS: u64 = 1500;

/// Writes two keys of one dict in one single change (a pause between the two writes), or
/// reads both in one unlocked read (a longer pause between the two reads): the read must see
/// both from the same change. No section runs, so only the dict's version can tell.
fn pairs_worker() {
    let path = env("STORE");
    let me = env_u64("WORKER");
    let mut rng = StdRng::seed_from_u64(env_u64("SEED"));
    let shared = SharedStore::open(path.into(), OPEN).expect("worker open");
    let [notes] = containers(&shared, ["notes"]);
    let mut reads = 0;
    for n in 0..PAIR_OPS {
        let k = 0;
        if rng.gen_range(0..2) == 0 {
            let s = format!("{me}:{n}:{}", "p".repeat(n as usize % 40));
            shared
                .write_in(&Plain, notes, |st| {
                    set(st, notes, &format!("n{k}"), Node::Str(s.as_bytes().into()))?;
                    pause_for(20);
                    set(st, notes, &format!("m{k}"), Node::Str(s.as_bytes().into()))
                })
                .unwrap();
            // The part free most of the time: a read's second look finds it free.
            pause_for(200);
        } else {
            let (a, b) = shared
                .read(&Plain, |st| {
                    let a = try_note(st, notes, &format!("n{k}"))?;
                    pause_for(500);
                    let b = try_note(st, notes, &format!("m{k}"))?;
                    Ok::<_, Error>((a, b))
                })
                .unwrap();
            assert_eq!(a, b, "a read saw half a single change");
            reads += 1;
        }
    }
    record(&format!("DONE {reads}"));
}

#[test]
fn unlocked_reads_see_a_single_change_whole() {
    if harness::role().is_some() {
        return;
    }
    let dir = TempDir::new("parallel-pairs");
    let path = dir.join("s.db");
    create(&path);
    let mut children: Vec<_> = (0..2u64)
        .map(|i| {
            let out = dir.join(&format!("p{i}.out"));
            let log = dir.join(&format!("p{i}.log"));
            let child = harness::spawn(
                "child",
                "pairs",
                &[
                    ("STORE", path.display().to_string()),
                    ("WORKER", i.to_string()),
                    ("SEED", (0xa1 + i).to_string()),
                ],
                &out,
                &log,
            );
            (child, out, log)
        })
        .collect();
    for (child, out, log) in &mut children {
        let st = harness::wait_timeout(child, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("a worker hung: {}", harness::log_tail(log)));
        assert!(
            st.success(),
            "a worker failed ({}): {}",
            harness::describe(&st),
            harness::log_tail(log)
        );
        assert_eq!(
            harness::fields(&harness::read_records(out), "DONE").len(),
            1
        );
    }
}

// ---- 2. the bank invariant under SIGKILL -----------------------------------------------

const ACCOUNTS: u64 = 10;
const START: i64 = 1000;
const KILLS: usize = 200;

fn bank_worker() {
    let path = env("STORE");
    let mut rng = StdRng::seed_from_u64(env_u64("SEED"));
    let shared: Arc<SharedStore> = SharedStore::open(path.into(), OPEN).expect("worker open");
    let [acct, hist, notes] = containers(&shared, ["acct", "hist", "notes"]);
    record("READY");
    loop {
        match rng.gen_range(0..5) {
            0 => {
                let i = rng.gen_range(0..ACCOUNTS);
                let j = (i + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                let x = rng.gen_range(1..50);
                section(&shared, |st| {
                    let a = int(st.list_get(acct, i)?.unwrap());
                    st.list_set(acct, i, value::small_int(a - x).unwrap())?;
                    if st.list_len(hist)? > 64 {
                        st.list_splice(hist, 0, 32, &[])?;
                    }
                    let b = int(st.list_get(acct, j)?.unwrap());
                    st.list_set(acct, j, value::small_int(b + x).unwrap())
                })
                .unwrap();
            }
            1 => {
                // Two appends in one single change, with a pause between them where kills
                // land: a change cut short must be rolled back (the history holds pairs).
                let x = rng.gen_range(1..1000);
                shared
                    .write_in(&Plain, hist, |st| {
                        st.list_append(hist, value::small_int(x).unwrap())?;
                        pause();
                        st.list_append(hist, value::small_int(x).unwrap())
                    })
                    .unwrap();
            }
            2 => {
                let k = rng.gen_range(0..8);
                let len = rng.gen_range(8..400);
                let s = format!("{len}:{}", "v".repeat(len));
                shared
                    .write_in(&Plain, notes, |st| {
                        set(st, notes, &format!("n{k}"), Node::Str(s.as_bytes().into()))?;
                        pause();
                        set(st, notes, &format!("m{k}"), Node::Str(s.as_bytes().into()))
                    })
                    .unwrap();
            }
            3 => {
                // An unlocked read of the two notes one single change writes, with a pause
                // between them: it must see both from one change (validated by the dict's
                // version), never one old and one new.
                let k = rng.gen_range(0..8);
                let (n, m) = shared
                    .read(&Plain, |st| {
                        let n = try_note(st, notes, &format!("n{k}"))?;
                        pause_for(1000);
                        let m = try_note(st, notes, &format!("m{k}"))?;
                        Ok::<_, Error>((n, m))
                    })
                    .unwrap();
                assert_eq!(n, m, "a read saw half a single change");
            }
            _ => {
                let k = rng.gen_range(0..8);
                shared
                    .write_in(&Plain, notes, |st| {
                        with_key(&format!("n{k}"), |key| st.dict_del(notes, key))?;
                        pause();
                        with_key(&format!("m{k}"), |key| st.dict_del(notes, key))?;
                        Ok::<_, Error>(())
                    })
                    .unwrap();
            }
        }
    }
}

/// The bytes of str value `name` in `d`, for an unlocked read (see `try_get`).
fn try_note(st: &Store, d: Container, name: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(w) = try_get(st, d, name)? else {
        return Ok(None);
    };
    match st.value(w)? {
        Value::Str(s) => Ok(Some(st.read_bytes(s.block + 8, s.len)?)),
        Value::ShortStr(w) => Ok(Some(w.to_le_bytes().to_vec())),
        _ => Ok(Some(Vec::new())), // not a str: damage a valid read never shows
    }
}

/// About 200 µs of work inside a change (a window for the kills).
fn pause() {
    pause_for(200)
}

fn pause_for(micros: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(micros) {
        std::hint::spin_loop();
    }
}

#[test]
fn bank_invariant_with_single_changes_and_kills() {
    if harness::role().is_some() {
        return;
    }
    const WORKERS: usize = 3;
    let dir = TempDir::new("parallel-bank");
    let path = dir.join("s.db");
    create(&path);
    harness::kill_loop(
        &dir,
        &path,
        "bank",
        WORKERS,
        KILLS,
        0xba4c,
        Duration::from_secs(240),
    );

    let mut st = Store::open(&path).unwrap();
    let t = thread_id();
    let acct = lookup(&st, "acct");
    let sum: i64 = (0..ACCOUNTS)
        .map(|i| int(st.list_get(acct, i).unwrap().unwrap()))
        .sum();
    assert_eq!(sum, START * ACCOUNTS as i64, "money appeared or vanished");
    let notes = lookup(&st, "notes");
    let note = |st: &Store, name: &str| {
        get(st, notes, name).map(|w| {
            let Value::Str(s) = st.value(w).unwrap() else {
                panic!("a note is not a str");
            };
            let s = String::from_utf8(st.read_bytes(s.block + 8, s.len).unwrap()).unwrap();
            let (len, body) = s.split_once(':').expect("a whole note");
            assert_eq!(body.len(), len.parse::<usize>().unwrap(), "a torn note");
            s
        })
    };
    for k in 0..8 {
        assert_eq!(
            note(&st, &format!("n{k}")),
            note(&st, &format!("m{k}")),
            "n{k} and m{k}, written in one single change, differ: a change cut short stayed"
        );
    }
    let hist = st.list_words(lookup(&st, "hist")).unwrap();
    assert!(!hist.is_empty());
    assert_eq!(hist.len() % 2, 0, "the history lost half a change");
    for p in hist.chunks(2) {
        assert_eq!(p[0], p[1], "the history holds half a change");
    }
    let report = st.check(t).expect("check after the kills");
    let freed = st.gc(t).unwrap();
    assert_eq!(
        freed.blocks, report.unreachable_blocks,
        "{report:?} {freed:?}"
    );
    let after = st.check(t).unwrap();
    assert_eq!(after.unreachable_blocks, 0, "{after:?}");
    st.lock_excl(t).expect("the lock after the kills");
    st.unlock(t).unwrap();
    eprintln!("bank with single changes: {KILLS} kills survived; check {report:?}; gc {freed:?}");
}
