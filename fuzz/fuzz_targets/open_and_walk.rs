//! Fuzz target: open a mutated store, walk its whole graph, check it, change it, collect it.
//!
//! A valid base store is built once per process (deterministically: fixed content through the
//! crate's own API), and each input is a short list of patches applied to a copy of its bytes.
//! The engine must answer every patched file with `Ok` or an error value: a panic, a signal
//! (SIGSEGV, SIGBUS, SIGABRT from an allocation failure) or a hang (libFuzzer's `-timeout`) is
//! a finding. Inputs stay small because they describe patches, not files.
//!
//! Input format (little-endian), a sequence of records, each starting with an op byte:
//!
//! | op & 7 | bytes after the op | patch |
//! |---|---|---|
//! | 0 | sel: u16, bit: u8 | flip bit `bit & 63` of live word `sel` |
//! | 1 | sel: u16, value: u64 | live word `sel` := value |
//! | 2 | sel: u16, sel2: u16 | live word `sel` := offset of live word `sel2` (a swapped pointer) |
//! | 3 | sel: u16, delta: i16 | live word `sel` += delta * 8 |
//! | 4 | off: u32, n: u8, n bytes | raw bytes at `off % len` |
//! | 5 | at: u32 | truncate to `at % len`; op bit 3 also lowers file_size to match |
//! | 6 | - | keep the base's lock file beside the store (default: none, so open repairs) |
//! | 7 | sel: u16, bit: u8 | flip a bit in the header word `8 + sel % 95` (bytes 64..824) |
//!
//! A *live word* is a non-zero 8-byte word of the base file (header, meta block, blocks), so
//! most patches land on something the engine reads.
//!
//! Op bit 4 turns ops 0, 1, 3 and 4 on the lock file instead (and keeps it, as op 6 does): its
//! live words are its non-zero words and the store lock's own (writer, sequence, shared count,
//! waiters), which a closed store leaves at 0. Lock-file words are as untrusted as the store's:
//! a forged writer word, an odd sequence or a shared count nobody holds must give an error or be
//! repaired, never a hang.

#![no_main]

use libfuzzer_sys::fuzz_target;
use persist::object::dict::{Key, NO_HINT};
use persist::object::number::{Dec, Special};
use persist::object::packed::{self, Clock, Packed};
use persist::object::tree::{Node, Tree};
use persist::object::value::Kind;
use persist::object::view::Value;
use persist::object::{value, Container, Store};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const T: u64 = 1;

struct Base {
    dir: PathBuf,
    bytes: Vec<u8>,
    lock: Vec<u8>,
    live: Vec<u64>,
    lock_live: Vec<u64>,
}

static BASE: OnceLock<Base> = OnceLock::new();

/// A tree built from a small description (containers first, children filled in after).
enum V {
    Int(i64),
    Big(Vec<u8>),
    F(f64),
    S(String),
    B(Vec<u8>),
    Tup(Vec<V>),
    L(Vec<V>),
    D(Vec<(V, V)>),
    Obj(&'static str, Vec<(V, V)>),
    /// A packed value (datetime, date, time, timedelta, Decimal, UUID): its kind and payload.
    P(Kind, Vec<u8>),
    Set(Vec<V>),
    None,
}

fn build(v: &V) -> Tree<'static> {
    let mut t = Tree::default();
    add(&mut t, v);
    t
}

fn add(t: &mut Tree<'static>, v: &V) -> u32 {
    let kids = |t: &mut Tree<'static>, items: Vec<&V>, start: u32| {
        for (j, c) in items.into_iter().enumerate() {
            let i = add(t, c);
            t.children[start as usize + j] = i;
        }
    };
    match v {
        V::Int(i) => t.push(Node::Int(*i)),
        V::Big(b) => t.push(Node::BigInt(b.clone())),
        V::F(f) => t.push(Node::Float(*f)),
        V::S(s) => t.push(Node::Str(s.clone().into_bytes().into())),
        V::B(b) => t.push(Node::Bytes(b.clone().into())),
        V::None => t.push(Node::None),
        V::P(k, b) => t.push(Node::Packed(*k, b.clone())),
        V::Set(xs) => {
            let (n, start) = t.push_parent(xs.len() as u32, Node::FrozenSet);
            kids(t, xs.iter().collect(), start);
            n
        }
        V::Tup(xs) | V::L(xs) => {
            let is_list = matches!(v, V::L(_));
            let (n, start) = t.push_parent(xs.len() as u32, |r| {
                if is_list {
                    Node::List(r)
                } else {
                    Node::Tuple(r)
                }
            });
            kids(t, xs.iter().collect(), start);
            n
        }
        V::D(kv) | V::Obj(_, kv) => {
            let class = match v {
                V::Obj(c, _) => Some(c.to_string()),
                _ => None,
            };
            let (n, start) = t.push_parent(2 * kv.len() as u32, |r| match class {
                Some(c) => Node::Object(c, r),
                None => Node::Dict(r),
            });
            kids(t, kv.iter().flat_map(|(k, v)| [k, v]).collect(), start);
            n
        }
    }
}

fn s(x: &str) -> V {
    V::S(x.to_string())
}

/// The container that value word `w` (read from the store just built) names.
fn container_of(st: &Store, w: u64) -> Container {
    st.value(w).unwrap().container().expect("a container")
}

fn ref_tree(c: Container) -> Tree<'static> {
    let mut t = Tree::default();
    t.push(Node::Ref(c));
    t
}

fn key(x: &str) -> Tree<'static> {
    Tree::scalar(Node::Str(x.as_bytes().to_vec().into()))
}

/// Ends a change. Whatever happened, the change must be over: a store that still holds the
/// writer word after an error makes every later change (in every process) wait forever.
///
/// `PERSIST_FUZZ_XFAIL=writer-word-leak` turns this check off (it found a bug, since fixed:
/// `end_op` kept the writer word when the rollback failed).
fn end(st: &mut Store, ok: bool) {
    let _ = st.end_op(ok);
    static SKIP: OnceLock<bool> = OnceLock::new();
    let skip = *SKIP.get_or_init(|| {
        std::env::var("PERSIST_FUZZ_XFAIL").is_ok_and(|v| v.contains("writer-word-leak"))
    });
    assert!(
        skip || !st.is_writing(),
        "a change that ended with an error left the writer word held"
    );
}

fn set(st: &mut Store, d: Container, k: &str, v: &V) -> persist::object::Result<()> {
    st.begin_op(T)?;
    let r = (|| {
        let w = st.encode(&build(v))?;
        let kt = key(k);
        st.dict_set(d, &Key::new(&kt, kt.root)?, w, &mut NO_HINT.clone())?;
        Ok(())
    })();
    end(st, r.is_ok());
    r
}

fn del(st: &mut Store, d: Container, k: &str) -> persist::object::Result<()> {
    st.begin_op(T)?;
    let kt = key(k);
    let r = Key::new(&kt, kt.root).and_then(|key| st.dict_del(d, &key).map(|_| ()));
    end(st, r.is_ok());
    r
}

fn make_base() -> Base {
    // tmpfs when there is one: every input writes a whole store file.
    let tmp = match std::env::var_os("PERSIST_FUZZ_TMP") {
        Some(d) => PathBuf::from(d),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    let dir = tmp.join(format!("persist-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("base.db");
    {
        let mut st = Store::open(&path).unwrap();
        let root = st.root().unwrap();
        set(
            &mut st,
            root,
            "ints",
            &V::L(vec![
                V::Int(0),
                V::Int(-1),
                V::Int(1 << 61),
                V::Big(vec![0, 0, 0, 0, 0, 0, 0, 0, 1]),
            ]),
        )
        .unwrap();
        set(
            &mut st,
            root,
            "strs",
            &V::L(vec![
                s(""),
                s("short"),
                s("a longer string"),
                s(&"é".repeat(50)),
                s(&"x".repeat(700)),
            ]),
        )
        .unwrap();
        set(
            &mut st,
            root,
            "bytes",
            &V::L(vec![
                V::B(vec![0, 255]),
                V::B(vec![7; 300]),
                V::B(vec![9; 5000]),
            ]),
        )
        .unwrap();
        set(
            &mut st,
            root,
            "tuple",
            &V::Tup(vec![
                V::Int(1),
                s("two"),
                V::Tup(vec![V::F(3.5), V::None, V::Big(vec![0xff; 12])]),
            ]),
        )
        .unwrap();
        set(
            &mut st,
            root,
            "nested",
            &V::D(vec![
                (
                    s("a"),
                    V::D(vec![(s("b"), V::L(vec![V::Int(1), V::L(vec![V::Int(2)])]))]),
                ),
                (V::Tup(vec![V::Int(1), V::Int(2)]), s("tuple key")),
            ]),
        )
        .unwrap();
        set(
            &mut st,
            root,
            "obj",
            &V::Obj(
                "fuzz_mod:Person",
                vec![(s("name"), s("Joe")), (s("age"), V::Int(27))],
            ),
        )
        .unwrap();
        set(&mut st, root, "big", &V::B(vec![b'L'; 20_000])).unwrap();
        // The everyday value kinds (packed payloads) and a frozenset, also as a key.
        let clock = Clock {
            hour: 12,
            minute: 30,
            second: 5,
            micro: 7,
            fold: true,
            tz: Some((3_600_000_000, Some(&b"CET"[..]))),
        };
        let date = Packed::Date {
            year: 2024,
            month: 2,
            day: 29,
        };
        let dec = Packed::Decimal(Dec {
            neg: true,
            special: Special::Finite,
            exp: -2,
            digits: b"150",
        });
        let p = |k: Kind, v: &Packed| V::P(k, packed::encode(v));
        set(
            &mut st,
            root,
            "when",
            &V::L(vec![
                p(
                    Kind::DateTime,
                    &Packed::DateTime {
                        year: 2020,
                        month: 1,
                        day: 1,
                        clock,
                    },
                ),
                p(Kind::Date, &date),
                p(Kind::Time, &Packed::Time(Clock { tz: None, ..clock })),
                p(
                    Kind::TimeDelta,
                    &Packed::TimeDelta {
                        days: -5,
                        seconds: 3,
                        micros: 4,
                    },
                ),
                p(Kind::Decimal, &dec),
                p(Kind::Uuid, &Packed::Uuid([0xab; 16])),
                V::Set(vec![
                    V::Int(1),
                    s("two"),
                    V::Tup(vec![p(Kind::Date, &date)]),
                ]),
            ]),
        )
        .unwrap();
        let set_key = build(&V::Set(vec![p(Kind::Decimal, &dec), V::Int(3)]));
        st.begin_op(T).unwrap();
        let w = st.encode(&build(&s("frozenset key"))).unwrap();
        st.dict_set(
            root,
            &Key::new(&set_key, set_key.root).unwrap(),
            w,
            &mut NO_HINT.clone(),
        )
        .unwrap();
        st.end_op(true).unwrap();
        for i in 0..30 {
            set(&mut st, root, &format!("k{i}"), &s(&"v".repeat(i * 17))).unwrap();
        }
        for i in (0..30).step_by(3) {
            del(&mut st, root, &format!("k{i}")).unwrap();
        }
        // A shared reference and a cycle: the dict under "nested" also under "shared", and a
        // list that contains itself.
        let kt = key("nested");
        let nested = st
            .dict_get(root, &Key::new(&kt, kt.root).unwrap(), &mut NO_HINT.clone())
            .unwrap()
            .unwrap();
        let nested = container_of(&st, nested);
        st.begin_op(T).unwrap();
        let w = st.encode(&ref_tree(nested)).unwrap();
        let kt = key("shared");
        st.dict_set(
            root,
            &Key::new(&kt, kt.root).unwrap(),
            w,
            &mut NO_HINT.clone(),
        )
        .unwrap();
        st.end_op(true).unwrap();
        set(&mut st, root, "cycle", &V::L(vec![V::Int(1)])).unwrap();
        let kt = key("cycle");
        let cyc = st
            .dict_get(root, &Key::new(&kt, kt.root).unwrap(), &mut NO_HINT.clone())
            .unwrap()
            .unwrap();
        let cyc = container_of(&st, cyc);
        st.begin_op(T).unwrap();
        let w = st.encode(&ref_tree(cyc)).unwrap();
        st.list_append(cyc, w).unwrap();
        st.end_op(true).unwrap();
        // A cache (a dict table whose values are entry tuples) with entries that expire, one
        // that never does, and a container value.
        let mut ct = Tree::default();
        ct.push(Node::Cache(persist::object::cache::CacheOpts {
            ttl: 1 << 40,
            max_entries: 20,
            max_bytes: 0,
        }));
        st.begin_op(T).unwrap();
        let w = st.encode(&ct).unwrap();
        let kt = key("cache");
        st.dict_set(
            root,
            &Key::new(&kt, kt.root).unwrap(),
            w,
            &mut NO_HINT.clone(),
        )
        .unwrap();
        let cache = container_of(&st, w);
        for i in 0..25i64 {
            let kt = Tree::scalar(Node::Int(i));
            let vw = st.encode(&build(&s(&"c".repeat(i as usize * 9)))).unwrap();
            let expires = if i % 4 == 0 { 0 } else { 1 << 61 };
            st.cache_set(
                cache,
                &Key::new(&kt, kt.root).unwrap(),
                vw,
                expires,
                1,
                &mut NO_HINT.clone(),
            )
            .unwrap();
        }
        let kt = key("list value");
        let lw = st.encode(&ref_tree(cyc)).unwrap();
        st.cache_set(
            cache,
            &Key::new(&kt, kt.root).unwrap(),
            lw,
            0,
            1,
            &mut NO_HINT.clone(),
        )
        .unwrap();
        st.end_op(true).unwrap();
        st.check(T).unwrap();
        st.close().unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let lock = std::fs::read(dir.join("base.db.lock")).unwrap();
    let live = (64..bytes.len() as u64 - 7)
        .step_by(8)
        .filter(|&o| bytes[o as usize..o as usize + 8] != [0; 8])
        .collect();
    use persist::object::lock_words;
    let mut lock_live: Vec<u64> = (0..lock.len() as u64 - 7)
        .step_by(8)
        .filter(|&o| lock[o as usize..o as usize + 8] != [0; 8])
        .collect();
    lock_live.extend([
        lock_words::WRITER,
        lock_words::SEQ,
        lock_words::SHARED,
        lock_words::WAITERS,
    ]);
    Base {
        dir,
        bytes,
        lock,
        live,
        lock_live,
    }
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.0.len() < N {
            return None;
        }
        let (a, b) = self.0.split_at(N);
        self.0 = b;
        a.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

fn put(b: &mut [u8], off: u64, v: u64) {
    let o = off as usize;
    if o + 8 <= b.len() {
        b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
}

fn get(b: &[u8], off: u64) -> u64 {
    let o = off as usize;
    if o + 8 <= b.len() {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    } else {
        0
    }
}

/// Applies the patches; returns the store file and the lock file to put beside it (None: no
/// lock file, so the open makes one).
fn patch(base: &Base, data: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut store = base.bytes.clone();
    let mut lock = base.lock.clone();
    let mut keep_lock = false;
    let mut inp = Input(data);
    let mut n = 0;
    while let Some(op) = inp.u8() {
        n += 1;
        if n > 64 {
            break;
        }
        let on_lock = op & 0x10 != 0 && matches!(op & 7, 0 | 1 | 3 | 4);
        keep_lock |= on_lock;
        let (b, live) = if on_lock {
            (&mut lock, &base.lock_live)
        } else {
            (&mut store, &base.live)
        };
        let lw = |sel: u16| live[sel as usize % live.len()];
        let ok = (|| -> Option<()> {
            match op & 7 {
                0 => {
                    let w = lw(inp.u16()?);
                    let bit = inp.u8()? & 63;
                    let v = get(b, w) ^ (1 << bit);
                    put(b, w, v);
                }
                1 => {
                    let w = lw(inp.u16()?);
                    put(b, w, inp.u64()?);
                }
                2 => {
                    let w = lw(inp.u16()?);
                    let w2 = lw(inp.u16()?);
                    put(b, w, w2);
                }
                3 => {
                    let w = lw(inp.u16()?);
                    let d = inp.u16()? as i16 as i64;
                    let v = get(b, w).wrapping_add((d * 8) as u64);
                    put(b, w, v);
                }
                4 => {
                    let off = inp.u32()? as usize % b.len().max(1);
                    let k = inp.u8()? as usize % 16;
                    for i in 0..k {
                        let x = inp.u8()?;
                        if off + i < b.len() {
                            b[off + i] = x;
                        }
                    }
                }
                5 => {
                    let at = inp.u32()? as usize % b.len().max(1);
                    b.truncate(at);
                    if op & 8 != 0 && at >= 4096 {
                        put(b, 64, at as u64 / 4096 * 4096);
                    }
                }
                6 => keep_lock = true,
                _ => {
                    let w = 64 + 8 * (inp.u16()? as u64 % 95);
                    let bit = inp.u8()? & 63;
                    let v = get(b, w) ^ (1 << bit);
                    put(b, w, v);
                }
            }
            Some(())
        })();
        if ok.is_none() {
            break;
        }
    }
    (store, keep_lock.then_some(lock))
}

/// Reads everything reachable from the root, as the Python layer would: every dict's items,
/// every set's members, every list's words, every tuple's items, every owned value's bytes,
/// every object's class.
fn walk(st: &Store) -> persist::object::Result<(Container, Option<Container>)> {
    let root = st.root()?;
    let mut seen = HashSet::new();
    let mut stack = vec![root.get()];
    let mut a_list = None;
    let mut visits = 0u64;
    while let Some(w) = stack.pop() {
        visits += 1;
        if visits > 100_000 {
            break;
        }
        if value::is_block(w) && !seen.insert(w) {
            continue;
        }
        match st.value(w)? {
            Value::Empty | Value::None | Value::Bool(_) | Value::Int(_) => {}
            Value::ShortStr(sw) => {
                let (bytes, n) = value::short_str_bytes(sw);
                let _ = std::str::from_utf8(&bytes[..n]);
            }
            Value::Str(p) | Value::Bytes(p) | Value::BigInt(p) => {
                let bytes = st.payload_bytes(p)?;
                let _ = std::str::from_utf8(&bytes);
            }
            Value::Float { block } => {
                st.float_bits(block)?;
            }
            Value::Tuple { block, len } => {
                for i in 0..len {
                    stack.push(st.tuple_item(block, i)?);
                }
            }
            Value::Packed { kind, payload } => st.packed(kind, payload, |_| ())?,
            Value::FrozenSet { block, len } => {
                for i in 0..len {
                    stack.push(st.set_member(block, i)?.1);
                }
            }
            Value::Set(c) => {
                st.set_len(c)?;
                for kw in st.set_members(c)? {
                    stack.push(kw);
                    // Look every member up again: probing a damaged table must end.
                    if let Some(key) = Key::inline(kw) {
                        st.set_contains(c, &key, &mut NO_HINT.clone())?;
                    }
                }
            }
            Value::List(c) => {
                a_list.get_or_insert(c);
                stack.extend(st.list_words(c)?);
            }
            Value::Cache(c) => {
                st.cache_opts(c)?;
                st.cache_len(c, 1 << 60)?;
                for (kw, e) in st.cache_items(c, 1)? {
                    stack.push(kw);
                    stack.push(e.value);
                    if let Some(key) = Key::inline(kw) {
                        st.cache_get(c, &key, 1, &mut NO_HINT.clone())?;
                    }
                }
            }
            v @ (Value::Dict(c) | Value::Object(c)) => {
                st.dict_len(c)?;
                for (kw, vw) in st.dict_items(c)? {
                    stack.push(kw);
                    stack.push(vw);
                    // Look every key up again: probing a damaged table must end.
                    if let Some(key) = Key::inline(kw) {
                        st.dict_get(c, &key, &mut NO_HINT.clone())?;
                    }
                }
                if matches!(v, Value::Object(_)) {
                    stack.push(st.object_class(c)?);
                }
            }
        }
    }
    Ok((root, a_list))
}

fn exercise(path: &Path) {
    let mut st = match Store::open(path) {
        Ok(st) => st,
        Err(_) => return,
    };
    let walked = walk(&st);
    let _ = st.check(T);
    let _ = st.stats(T);
    if let Ok((root, a_list)) = walked {
        let _ = set(
            &mut st,
            root,
            "new",
            &V::L(vec![
                V::Int(1),
                s(&"n".repeat(300)),
                V::B(vec![1; 9000]),
                V::D(vec![(s("q"), V::F(1.5))]),
            ]),
        );
        if let Some(l) = a_list {
            if st.begin_op(T).is_ok() {
                let r = st.list_append(l, value::TRUE);
                end(&mut st, r.is_ok());
            }
        }
        for k in ["k1", "k2", "strs", "nested", "obj", "new", "cycle"] {
            let _ = del(&mut st, root, k);
        }
        if st.begin_op(T).is_ok() {
            let r = st.dict_clear(root);
            end(&mut st, r.is_ok());
        }
    }
    let _ = st.gc(T);
    let _ = st.check(T);
    let _ = st.close();
}

fuzz_target!(|data: &[u8]| {
    let base = BASE.get_or_init(make_base);
    let (bytes, lock_bytes) = patch(base, data);
    let path = base.dir.join("case.db");
    let lock = base.dir.join("case.db.lock");
    let _ = std::fs::remove_file(&lock);
    std::fs::write(&path, &bytes).unwrap();
    if let Some(lock_bytes) = lock_bytes {
        std::fs::write(&lock, &lock_bytes).unwrap();
    }
    exercise(&path);
});
