//! Orphans (containers whose last reference went while a process held them) collected through
//! the undo log (FORMAT.md §10.5): a process killed in the middle of a collection, after it
//! freed an orphan's header and before it released what the orphan held, leaves the store
//! whole and nothing to gc once it is recovered. (This test also passes with the collection run
//! at once, as it was before, for a reason not found; `test_dead_leaks.py`'s 200 kills of
//! record poppers are what tell the two apart.)

mod harness;

use harness::dying::{child_dies_at, store_with_empty, T};
use persist::object::dict::{Key, NO_HINT};
use persist::object::tree::{Node, Tree};
use persist::object::AppendDeath;

#[test]
fn a_collector_killed_after_freeing_an_orphans_header_leaks_nothing() {
    let (path, mut st, d) = store_with_empty("orphans", "d", Node::Dict(0..0));
    // A second participant: the child's collection runs while this one is attached.
    let kt = Tree::scalar(Node::Str(b"record".as_slice().into()));
    let key = Key::new(&kt, kt.root).unwrap();
    // {"items": [1, "a str longer than a word"], "note": "another long str"}
    let mut t = Tree::default();
    let (_, at) = t.push_parent(4, Node::Dict);
    let k1 = t.push(Node::Str(b"items".as_slice().into()));
    let (v1, at1) = t.push_parent(2, Node::List);
    let i1 = t.push(Node::Int(1));
    let i2 = t.push(Node::Str(b"a str longer than a word".as_slice().into()));
    t.children[at1 as usize..at1 as usize + 2].copy_from_slice(&[i1, i2]);
    let k2 = t.push(Node::Str(b"note".as_slice().into()));
    let v2 = t.push(Node::Str(b"another long str".as_slice().into()));
    t.children[at as usize..at as usize + 4].copy_from_slice(&[k1, v1, k2, v2]);
    st.begin_op(T).unwrap();
    let w = st.encode(&t).unwrap();
    st.dict_set(d, &key, w, &mut NO_HINT.clone()).unwrap();
    st.end_op(true).unwrap();
    let record = st.value(w).unwrap().container().unwrap();
    // Held here, then unlinked: an orphan. Let go: the next collection frees it.
    st.hold(record).unwrap();
    st.begin_op(T).unwrap();
    st.dict_del(d, &key).unwrap().unwrap();
    st.end_op(true).unwrap();
    assert!(
        st.unhold(record).unwrap(),
        "the record should be left to collect"
    );
    assert_eq!(st.check(T).unwrap().orphans, 1);
    child_dies_at(&path, AppendDeath::OrphansFreed, |child| {
        child.begin_op(T).unwrap();
        child.collect_orphans().unwrap();
    });
    // The dead collector's change is undone and the orphan collected again.
    st.recover_dead().unwrap();
    let report = st.check(T).unwrap();
    assert_eq!(report.orphans, 0, "{report:?}");
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(report.leaked_references, 0, "{report:?}");
}

#[test]
fn a_collector_on_the_lists_part_killed_before_its_commit_puts_the_orphan_back() {
    let (path, mut st, d) = store_with_empty("orphans-part", "d", Node::Dict(0..0));
    let kt = Tree::scalar(Node::Str(b"record".as_slice().into()));
    let key = Key::new(&kt, kt.root).unwrap();
    // {"items": [1, "a str longer than a word"]}
    let mut t = Tree::default();
    let (_, at) = t.push_parent(2, Node::Dict);
    let k1 = t.push(Node::Str(b"items".as_slice().into()));
    let (v1, at1) = t.push_parent(2, Node::List);
    let i1 = t.push(Node::Int(1));
    let i2 = t.push(Node::Str(b"a str longer than a word".as_slice().into()));
    t.children[at1 as usize..at1 as usize + 2].copy_from_slice(&[i1, i2]);
    t.children[at as usize..at as usize + 2].copy_from_slice(&[k1, v1]);
    st.begin_op(T).unwrap();
    let w = st.encode(&t).unwrap();
    st.dict_set(d, &key, w, &mut NO_HINT.clone()).unwrap();
    st.end_op(true).unwrap();
    let record = st.value(w).unwrap().container().unwrap();
    // The child, a second participant (parts on), makes the record an orphan itself (an open
    // collects the orphans nobody holds), then collects it on the list's part and dies with
    // it taken off the list and its release logged, not committed.
    child_dies_at(&path, AppendDeath::OrphansUnlinked, |child| {
        child.hold(record).unwrap();
        child.begin_op(T).unwrap();
        child.dict_del(d, &key).unwrap().unwrap();
        child.end_op(true).unwrap();
        assert!(child.unhold(record).unwrap());
        child.collect_orphans_on_part().unwrap();
    });
    // `check` recovers the dead collector first: its change is rolled back, which puts the
    // record back on the list (else nothing would lead to it: gc's to reclaim), and the
    // recovery's collection then frees it whole.
    let report = st.check(T).unwrap();
    assert_eq!(report.objects, 2, "{report:?}"); // the root and "d"
    assert_eq!(report.orphans, 0, "{report:?}");
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(report.leaked_references, 0, "{report:?}");
}
