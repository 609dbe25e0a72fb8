//! gc and check never read meaning into a block that was freed.
//!
//! A process killed inside a free, or in the instant between its allocator's step that took a
//! block and the store that marks its journal taken, leaves that block to gc: allocated,
//! unreachable, and still holding whatever its last owner wrote before freeing it. (A block its
//! journal names as taken is freed by its recovery: `a_dead_participants_taken_blocks_are_freed`
//! below.) If that was a container, the stale words still look
//! like one, down to references to live containers whose counts were dropped when it was freed.
//! A gc that released the "references of dead containers" dropped those counts a second time:
//! here the live list under `'l'` went to reference count 0 and was freed while the root still
//! named it. gc now frees unreachable blocks without reading them, and brings the count of every
//! live container down to the references the walk finds; check reports counts above that as
//! leaked references (gc's work), and below it as damage.

use persist::object::dict::{Key, NO_HINT};
use persist::object::layout::{list_header, list_items};
use persist::object::tree::{Node, Tree};
use persist::object::{Container, Store};
use std::os::unix::fs::FileExt;

const T: u64 = 1;

fn key(s: &str) -> Tree<'_> {
    Tree::scalar(Node::Str(s.as_bytes().into()))
}

fn set(st: &mut Store, d: Container, k: &str, v: &Tree) {
    st.begin_op(T).unwrap();
    let w = st.encode(v).unwrap();
    let kt = key(k);
    st.dict_set(d, &Key::new(&kt, kt.root).unwrap(), w, &mut NO_HINT.clone())
        .unwrap();
    st.end_op(true).unwrap();
}

fn del(st: &mut Store, d: Container, k: &str) {
    st.begin_op(T).unwrap();
    let kt = key(k);
    assert!(st
        .dict_del(d, &Key::new(&kt, kt.root).unwrap())
        .unwrap()
        .is_some());
    st.end_op(true).unwrap();
}

fn get_container(st: &Store, d: Container, k: &str) -> Container {
    let kt = key(k);
    let w = st
        .dict_get(d, &Key::new(&kt, kt.root).unwrap(), &mut NO_HINT.clone())
        .unwrap()
        .unwrap();
    st.value(w).unwrap().container().expect("a container")
}

/// A word of the store file, read through the file (the mapping is shared, so this is what
/// every process sees).
fn word(path: &std::path::Path, off: u64) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

/// In a child process: a list `[l]` is stored and deleted (its header and items block go to
/// the child's block cache, their words intact), then both blocks are taken again as a change's
/// allocations would take them, and the child dies without closing, its journals cleared (what
/// a kill inside a free leaves: blocks allocated, unreachable and named nowhere).
fn child_leaves_a_stale_list(path: &std::path::Path) -> ! {
    let code = std::panic::catch_unwind(|| {
        let mut st = Store::open(path).unwrap();
        let root = st.root().unwrap();
        let l = get_container(&st, root, "l");
        let mut t = Tree::default();
        t.push(Node::List(0..1));
        let c = t.push(Node::Ref(l));
        t.children.push(c);
        set(&mut st, root, "stale", &t);
        let stale = get_container(&st, root, "stale").get();
        let items = word(path, stale + list_header::ITEMS);
        let cap = word(path, items) >> 8;
        del(&mut st, root, "stale");
        // The cache hands back the last block freed of a class first.
        let a = st.take_block_unlinked(list_header::BYTES, 4).unwrap();
        let b = st.take_block_unlinked(list_items::bytes(cap), 5).unwrap();
        // Named nowhere, as a kill inside a free leaves a block (a journal naming them as
        // taken would have the recovery free them, and gc would find nothing).
        st.forget_block_journal(4).unwrap();
        st.forget_block_journal(5).unwrap();
        assert_eq!((a, b), (stale, items), "the cache gave other blocks back");
        // The stale header still reads as a list of one item: `l`.
        assert_eq!(word(path, items + list_items::FIRST), l.get());
        std::mem::forget(st);
        0
    })
    .unwrap_or(1);
    // SAFETY: _exit ends the process at once (no destructors, no detach): a death.
    unsafe { libc::_exit(code) }
}

#[test]
fn gc_does_not_release_the_references_of_a_freed_block() {
    let dir = std::env::temp_dir().join(format!("persist-gc-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.db");
    let mut st = Store::open(&path).unwrap();
    let root = st.root().unwrap();
    set(&mut st, root, "l", &{
        let mut t = Tree::default();
        t.push(Node::List(0..0));
        t
    });
    let l = get_container(&st, root, "l");

    // SAFETY: the child runs only `child_leaves_a_stale_list` and leaves through _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        child_leaves_a_stale_list(&path);
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed"
    );

    let report = st.check(T).unwrap();
    assert!(report.unreachable_blocks >= 2, "{report:?}");
    let freed = st.gc(T).unwrap();
    assert!(freed.blocks >= 2, "{freed:?}");
    // `l` is still the root's, with its one reference, and the store checks clean.
    assert_eq!(get_container(&st, root, "l"), l);
    assert_eq!(st.list_len(l).unwrap(), 0);
    let after = st.check(T).unwrap();
    assert_eq!(after.unreachable_blocks, 0, "{after:?}");
    assert_eq!(after.leaked_references, 0, "{after:?}");
    st.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a child process: a block taken into each of the six block journals and linked nowhere,
/// as a process killed right after each allocation leaves them (FORMAT.md §6.4): from the
/// block cache (a small class freed just before), from a segment, a large run and a huge run.
/// Then the child dies without closing.
fn child_dies_holding_taken_blocks(path: &std::path::Path) -> ! {
    let code = std::panic::catch_unwind(|| {
        let mut st = Store::open(path).unwrap();
        let root = st.root().unwrap();
        // A list freed into this child's cache: the first two takes pop it.
        set(&mut st, root, "tmp", &{
            let mut t = Tree::default();
            t.push(Node::List(0..0));
            t
        });
        del(&mut st, root, "tmp");
        let sizes = [list_header::BYTES, 16, 2000, 100_000, 5 << 20, 64];
        for (j, &size) in sizes.iter().enumerate() {
            st.take_block_unlinked(size, j as u64).unwrap();
        }
        std::mem::forget(st);
        0
    })
    .unwrap_or(1);
    // SAFETY: _exit ends the process at once (no destructors, no detach): a death.
    unsafe { libc::_exit(code) }
}

#[test]
fn a_dead_participants_taken_blocks_are_freed() {
    let dir = std::env::temp_dir().join(format!("persist-taken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.db");
    let mut st = Store::open(&path).unwrap();
    let before = st.check(T).unwrap();
    assert_eq!(before.unreachable_blocks, 0, "{before:?}");
    for _ in 0..3 {
        // SAFETY: the child runs only `child_dies_holding_taken_blocks` and leaves through _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            child_dies_holding_taken_blocks(&path);
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed"
        );
        // check() recovers the dead child first: its six blocks come back with it.
        let report = st.check(T).unwrap();
        assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    }
    let freed = st.gc(T).unwrap();
    assert_eq!(freed.blocks, 0, "{freed:?}");
    st.heap_check().unwrap();
    st.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
