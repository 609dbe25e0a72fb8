//! Children that die at a named point inside a publication (`Store::die_inside_appends`), and
//! the store file's words read and forged through the file, for the tests of claims left
//! behind (`tail_claim.rs`, `insert_claim.rs`).

use persist::object::dict::{Key, NO_HINT};
use persist::object::tree::{Node, Tree};
use persist::object::{value, AppendDeath, Container, Store};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The store file's word at `off`, read through the file.
pub fn word(path: &Path, off: u64) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

/// Writes a word of the store file through the file (the mapping is shared: every process,
/// this one's open store included, sees it at once), as another process or a hostile user would.
pub fn forge_word(path: &Path, off: u64, v: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_le_bytes(), off).unwrap();
}

/// The value word of the small int `v`.
pub fn int(v: i64) -> u64 {
    value::small_int(v).unwrap()
}

/// Runs `op` on a store of its own in a forked child that is to die at `at` inside it (exit
/// status 0 from the hook; 2 if `op` returned without reaching the point), and waits for it.
pub fn child_dies_at(path: &Path, at: AppendDeath, op: impl FnOnce(&mut Store)) {
    // SAFETY: the child only runs `op` and leaves through _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut child = Store::open(path).unwrap();
            child.die_inside_appends(Some(at));
            op(&mut child);
            2
        }))
        .unwrap_or(1);
        // SAFETY: _exit ends the child at once.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child did not die at {at:?} (status {status:#x})"
    );
}

/// A new store, in a temporary directory of its own named by `tag`, whose root holds the empty
/// container `node` (a list, dict or set node with no children) under the str key `name`.
pub fn store_with_empty(tag: &str, name: &str, node: Node<'static>) -> (PathBuf, Store, Container) {
    let dir = std::env::temp_dir().join(format!("persist-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.db");
    let mut st = Store::open(&path).unwrap();
    let root = st.root().unwrap();
    let mut t = Tree::default();
    t.push(node);
    let kt = Tree::scalar(Node::Str(name.as_bytes().into()));
    let key = Key::new(&kt, kt.root).unwrap();
    st.begin_op(T).unwrap();
    let w = st.encode(&t).unwrap();
    st.dict_set(root, &key, w, &mut NO_HINT.clone()).unwrap();
    st.end_op(true).unwrap();
    let cw = st
        .dict_get(root, &key, &mut NO_HINT.clone())
        .unwrap()
        .unwrap();
    let c = st.value(cw).unwrap().container().unwrap();
    (path, st, c)
}

/// The thread id the tests' changes run under.
pub const T: u64 = 1;
