//! The object layer on a real store file: values, lists, dicts, undo, reclamation, check, gc.

use persist::object::dict::{Key, NO_HINT};
use persist::object::tree::{Node, Tree};
use persist::object::{value, Container, Store};

const T: u64 = 1;

fn key(s: &str) -> Tree<'_> {
    Tree::scalar(Node::Str(s.as_bytes().into()))
}

fn k<'t, 'a>(t: &'t Tree<'a>) -> Key<'t, 'a> {
    Key::new(t, t.root).unwrap()
}

fn set(st: &mut Store, d: Container, k: &str, v: &Tree) {
    st.begin_op(T).unwrap();
    let w = st.encode(v).unwrap();
    let kt = key(k);
    st.dict_set(d, &self::k(&kt), w, &mut NO_HINT.clone())
        .unwrap();
    st.end_op(true).unwrap();
}

fn get(st: &Store, d: Container, k: &str) -> Option<u64> {
    let kt = key(k);
    st.dict_get(d, &self::k(&kt), &mut NO_HINT.clone()).unwrap()
}

/// The container stored under `k` in `d`.
fn get_container(st: &Store, d: Container, k: &str) -> Container {
    let w = get(st, d, k).unwrap();
    st.value(w).unwrap().container().expect("a container")
}

fn list_of_ints(n: i64) -> Tree<'static> {
    let mut t = Tree::default();
    t.push(Node::List(0..n as u32));
    for i in 0..n {
        let c = t.push(Node::Int(i));
        t.children.push(c);
    }
    t
}

#[test]
fn dict_set_get_overwrite_delete_and_check() {
    let dir = tempdir();
    let mut st = Store::open(&dir.join("s.db")).unwrap();
    let root = st.root().unwrap();
    for i in 0..1000 {
        set(
            &mut st,
            root,
            &format!("key{i:06}"),
            &Tree::scalar(Node::Int(i)),
        );
    }
    assert_eq!(st.dict_len(root).unwrap(), 1000);
    for i in 0..1000 {
        let w = get(&st, root, &format!("key{i:06}")).unwrap();
        assert_eq!(value::small_int_value(w), i);
    }
    // 1, 1.0 and True are one key.
    st.begin_op(T).unwrap();
    let one = Tree::scalar(Node::Int(1));
    st.dict_set(root, &k(&one), value::NONE, &mut NO_HINT.clone())
        .unwrap();
    let f = Tree::scalar(Node::Float(1.0));
    assert_eq!(k(&one).hash, k(&f).hash);
    assert!(!st
        .dict_set(root, &k(&f), value::TRUE, &mut NO_HINT.clone())
        .unwrap());
    st.end_op(true).unwrap();
    assert_eq!(st.dict_len(root).unwrap(), 1001);
    st.check(T).unwrap();
    // Delete half.
    st.begin_op(T).unwrap();
    for i in (0..1000).step_by(2) {
        let name = format!("key{i:06}");
        let kt = key(&name);
        assert!(st.dict_del(root, &k(&kt)).unwrap().is_some());
    }
    st.end_op(true).unwrap();
    assert_eq!(st.dict_len(root).unwrap(), 501);
    let r = st.check(T).unwrap();
    assert_eq!(r.unreachable_blocks, 0, "{r:?}");
}

#[test]
fn overwriting_a_big_list_reuses_space() {
    let dir = tempdir();
    let path = dir.join("s.db");
    let mut st = Store::open(&path).unwrap();
    let root = st.root().unwrap();
    let big = list_of_ints(20_000);
    set(&mut st, root, "l", &big);
    let size0 = std::fs::metadata(&path).unwrap().len();
    for _ in 0..200 {
        set(&mut st, root, "l", &big);
    }
    let size1 = std::fs::metadata(&path).unwrap().len();
    assert!(size1 <= size0 * 2 + (1 << 20), "{size0} -> {size1}");
    let r = st.check(T).unwrap();
    assert_eq!(r.unreachable_blocks, 0, "{r:?}");
}

#[test]
fn rollback_restores_everything_and_frees_new_blocks() {
    let dir = tempdir();
    let mut st = Store::open(&dir.join("s.db")).unwrap();
    let root = st.root().unwrap();
    set(&mut st, root, "a", &list_of_ints(10));
    let before = st.check(T).unwrap();
    st.lock_excl(T).unwrap();
    let mark = st.savepoint();
    for i in 0..100 {
        set(&mut st, root, &format!("k{i}"), &list_of_ints(5));
    }
    let a = get_container(&st, root, "a");
    st.begin_op(T).unwrap();
    for i in 0..100 {
        st.list_append(a, value::small_int(i).unwrap()).unwrap();
    }
    st.list_splice(a, 0, 3, &[]).unwrap();
    st.end_op(true).unwrap();
    assert_eq!(st.list_len(a).unwrap(), 107);
    st.rollback_savepoint(mark).unwrap();
    st.unlock(T).unwrap();
    assert_eq!(st.list_len(a).unwrap(), 10);
    assert_eq!(st.dict_len(root).unwrap(), 1);
    let after = st.check(T).unwrap();
    assert_eq!(after.live_blocks, before.live_blocks);
    assert_eq!(after.unreachable_blocks, 0, "{after:?}");
}

#[test]
fn gc_frees_an_unreachable_cycle() {
    let dir = tempdir();
    let mut st = Store::open(&dir.join("s.db")).unwrap();
    let root = st.root().unwrap();
    // l = [1, 2, l]
    let mut t = Tree::default();
    t.push(Node::List(0..3));
    let a = t.push(Node::Int(1));
    let b = t.push(Node::Str(b"a string longer than seven bytes"[..].into()));
    let c = t.push(Node::Shared(0));
    t.children.extend([a, b, c]);
    set(&mut st, root, "cyc", &t);
    st.check(T).unwrap();
    st.begin_op(T).unwrap();
    let kt = key("cyc");
    st.dict_del(root, &k(&kt)).unwrap();
    st.end_op(true).unwrap();
    let r = st.check(T).unwrap();
    assert!(r.unreachable_blocks >= 3, "{r:?}");
    let g = st.gc(T).unwrap();
    assert_eq!(g.objects, 1);
    assert!(g.blocks >= 3);
    let r = st.check(T).unwrap();
    assert_eq!(r.unreachable_blocks, 0, "{r:?}");
}

#[test]
fn a_held_container_outlives_its_last_reference() {
    let dir = tempdir();
    let mut st = Store::open(&dir.join("s.db")).unwrap();
    let root = st.root().unwrap();
    set(&mut st, root, "l", &list_of_ints(3));
    let l = get_container(&st, root, "l");
    st.hold(l).unwrap();
    st.begin_op(T).unwrap();
    let kt = key("l");
    st.dict_del(root, &k(&kt)).unwrap();
    st.end_op(true).unwrap();
    // Still readable through the hold.
    assert_eq!(st.list_len(l).unwrap(), 3);
    let r = st.check(T).unwrap();
    assert_eq!(r.orphans, 1);
    assert!(st.unhold(l).unwrap());
    st.begin_op(T).unwrap();
    assert_eq!(st.collect_orphans().unwrap(), 1);
    st.end_op(true).unwrap();
    let r = st.check(T).unwrap();
    assert_eq!((r.orphans, r.unreachable_blocks), (0, 0), "{r:?}");
}

#[test]
fn a_set_is_a_dict_table_without_values() {
    let dir = tempdir();
    let mut st = Store::open(&dir.join("s.db")).unwrap();
    let root = st.root().unwrap();
    let mut t = Tree::default();
    t.push(Node::Set(0..0));
    set(&mut st, root, "s", &t);
    let s = get_container(&st, root, "s");
    assert_eq!(st.set_len(s).unwrap(), 0);
    // Ints (in the word) and tuples (a block each), through a resize or two.
    let tuple = |i: i64| {
        let mut t = Tree::default();
        t.push(Node::Tuple(0..2));
        let a = t.push(Node::Int(i));
        let b = t.push(Node::Str(b"member".as_slice().into()));
        t.children.extend([a, b]);
        t
    };
    st.begin_op(T).unwrap();
    for i in 0..100 {
        let it = Tree::scalar(Node::Int(i));
        assert!(st.set_add(s, &k(&it), &mut NO_HINT.clone()).unwrap());
        let tt = tuple(i);
        assert!(st.set_add(s, &k(&tt), &mut NO_HINT.clone()).unwrap());
    }
    st.end_op(true).unwrap();
    assert_eq!(st.set_len(s).unwrap(), 200);
    // 1.0 is the member 1: not added again.
    st.begin_op(T).unwrap();
    let f = Tree::scalar(Node::Float(1.0));
    assert!(!st.set_add(s, &k(&f), &mut NO_HINT.clone()).unwrap());
    assert!(st.set_contains(s, &k(&f), &mut NO_HINT.clone()).unwrap());
    // Removals roll back whole.
    for i in 0..50 {
        assert!(st.set_discard(s, &k(&tuple(i))).unwrap().is_some());
    }
    assert!(st.set_pop(s).unwrap().is_some());
    st.set_clear(s).unwrap();
    assert_eq!(st.set_len(s).unwrap(), 0);
    st.end_op(false).unwrap();
    assert_eq!(st.set_len(s).unwrap(), 200);
    assert_eq!(st.set_members(s).unwrap().len(), 200);
    // Every entry's value word is empty; check walks them.
    let r = st.check(T).unwrap();
    assert_eq!((r.objects, r.unreachable_blocks), (2, 0), "{r:?}");
    st.begin_op(T).unwrap();
    for i in 0..100 {
        assert!(st.set_discard(s, &k(&tuple(i))).unwrap().is_some());
        assert!(st.set_discard(s, &k(&tuple(i))).unwrap().is_none());
    }
    st.end_op(true).unwrap();
    assert_eq!(st.set_len(s).unwrap(), 100);
    let r = st.check(T).unwrap();
    assert_eq!(r.unreachable_blocks, 0, "{r:?}");
    // A set is no dict, and a dict no set.
    assert!(st.dict_len(s).is_err());
    assert!(st.set_len(root).is_err());
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "persist-object-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn dict_modify_reads_and_writes_one_value_in_one_change() {
    let dir = tempdir();
    let mut st = Store::open(&dir.join("s.db")).unwrap();
    let root = st.root().unwrap();
    let kt = key("n");
    let plus = |st: &mut Store, by: i64| {
        st.begin_op(T).unwrap();
        let r = st.dict_modify(
            root,
            &k(&kt),
            &mut NO_HINT.clone(),
            |_, old| -> Result<(u64, Option<u64>), persist::object::Error> {
                let v = old.map_or(0, value::small_int_value) + by;
                Ok((value::small_int(v).unwrap(), old))
            },
        );
        st.end_op(true).unwrap();
        r.unwrap()
    };
    assert_eq!(plus(&mut st, 5), None); // missing: inserted
    assert_eq!(plus(&mut st, 2), value::small_int(5));
    assert_eq!(get(&st, root, "n"), value::small_int(7));
    // A big value in place of a small one and back: the old block goes at commit.
    st.begin_op(T).unwrap();
    st.dict_modify(root, &k(&kt), &mut NO_HINT.clone(), |st, _| {
        let w = st.encode(&Tree::scalar(Node::Str("x".repeat(100).as_bytes().into())))?;
        Ok::<_, persist::object::Error>((w, ()))
    })
    .unwrap();
    st.end_op(true).unwrap();
    let block = get(&st, root, "n").unwrap();
    assert!(value::is_block(block));
    st.begin_op(T).unwrap();
    st.dict_modify(root, &k(&kt), &mut NO_HINT.clone(), |_, old| {
        assert_eq!(old, Some(block));
        Ok::<_, persist::object::Error>((value::small_int(1).unwrap(), ()))
    })
    .unwrap();
    st.end_op(true).unwrap();
    assert_eq!(get(&st, root, "n"), value::small_int(1));
    // f fails: the change is rolled back, nothing written.
    st.begin_op(T).unwrap();
    let r = st.dict_modify(root, &k(&kt), &mut NO_HINT.clone(), |_, _| {
        Err::<(u64, ()), _>(persist::object::Error::Timeout)
    });
    assert!(r.is_err());
    st.end_op(false).unwrap();
    assert_eq!(get(&st, root, "n"), value::small_int(1));
    assert_eq!(st.dict_len(root).unwrap(), 1);
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
}

#[test]
fn a_cache_expires_by_the_callers_clock_and_evicts_the_least_recent() {
    use persist::object::cache::{CacheOpts, CacheSet};
    let dir = tempdir();
    let mut st = Store::open(&dir.join("s.db")).unwrap();
    let root = st.root().unwrap();
    let mut t = Tree::default();
    t.push(Node::Cache(CacheOpts {
        ttl: 0,
        max_entries: 40,
        max_bytes: 0,
    }));
    set(&mut st, root, "c", &t);
    let c = get_container(&st, root, "c");
    let now = 1_000_000_000u64;
    let int = |i: i64| value::small_int(i).unwrap();
    // Keys 0..50 at times now + i, each expiring 100 ns later; the limit keeps the last 40.
    st.begin_op(T).unwrap();
    for i in 0..50u64 {
        let kt = Tree::scalar(Node::Int(i as i64));
        let r = st.cache_set(
            c,
            &k(&kt),
            int(i as i64),
            now + i + 100,
            now + i,
            &mut NO_HINT.clone(),
        );
        assert_eq!(r.unwrap(), CacheSet::Done);
    }
    st.end_op(true).unwrap();
    let at = |st: &Store, i: i64, when: u64| {
        let kt = Tree::scalar(Node::Int(i));
        st.cache_get(c, &k(&kt), when, &mut NO_HINT.clone())
            .unwrap()
            .map(|e| e.value)
    };
    assert_eq!(at(&st, 9, now), None, "evicted");
    assert_eq!(at(&st, 10, now), Some(int(10)));
    // Expired exactly at its expiry time, by the reader's clock.
    assert_eq!(at(&st, 10, now + 109), Some(int(10)));
    assert_eq!(at(&st, 10, now + 110), None);
    assert_eq!(st.cache_len(c, now + 120).unwrap(), 29);
    assert_eq!(st.cache_len(c, now + 150).unwrap(), 0);
    // A touch refreshes: 10 becomes the most recent, so the next set evicts 11.
    st.begin_op(T).unwrap();
    let ten = Tree::scalar(Node::Int(10));
    assert!(st
        .cache_touch(c, &k(&ten), None, now, &mut NO_HINT.clone())
        .unwrap()
        .is_some());
    let kt = Tree::scalar(Node::Int(100));
    st.cache_set(c, &k(&kt), int(100), 0, now, &mut NO_HINT.clone())
        .unwrap();
    st.end_op(true).unwrap();
    assert_eq!(at(&st, 11, now), None);
    assert_eq!(at(&st, 10, now), Some(int(10)));
    // Rolled back: the counts and the entries come back whole.
    let bytes = st.cache_bytes(c).unwrap();
    st.begin_op(T).unwrap();
    assert_eq!(st.cache_expire(c, now + 1000).unwrap(), 39);
    st.cache_clear(c).unwrap();
    st.end_op(false).unwrap();
    assert_eq!(st.cache_bytes(c).unwrap(), bytes);
    assert_eq!(st.cache_len(c, now).unwrap(), 40);
    // Long after every expiry, each set reclaims a few expired entries, never the table.
    st.begin_op(T).unwrap();
    let kt = Tree::scalar(Node::Int(200));
    st.cache_set(c, &k(&kt), int(200), 0, now + 1000, &mut NO_HINT.clone())
        .unwrap();
    st.end_op(true).unwrap();
    let left = st.cache_items(c, 0).unwrap().len();
    assert!((30..40).contains(&left), "{left}");
    let r = st.check(T).unwrap();
    assert_eq!(r.unreachable_blocks, 0, "{r:?}");
    // A cache is no dict, and a dict no cache.
    assert!(st.dict_len(c).is_err());
    assert!(st.cache_len(root, now).is_err());
}
