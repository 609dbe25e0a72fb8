//! Inserts of a missing key into a dict without a lock (FORMAT.md §10.9, "Inserts"): a claim on
//! the dict's entries, the entry written, counted and named by a bucket, then its key stored
//! (the commit point), `used` moved and the claim ended. An inserter killed at each point is
//! recovered to the dict without the key (before the commit) or with it (after), `used` right
//! either way, and `check` finds nothing wrong; a claim left behind in the file with no
//! participant to recover it (its lock file gone, or a hostile file) is settled by the next
//! insert on the dict's part.

mod harness;

use harness::dying::{child_dies_at, forge_word, int, store_with_empty, word, T};
use persist::object::dict::{Key, NO_HINT};
use persist::object::layout::dict_header;
use persist::object::tree::{Node, Tree};
use persist::object::view::Value;
use persist::object::{value, AppendDeath, Container, Inserted, Store};
use persist::part_lock::{delete_claim, insert_claim, insert_claimant};

fn int_key(v: i64) -> Tree<'static> {
    Tree::scalar(Node::Int(v))
}

/// A store whose root holds `'d'`: a dict of the int keys 1..=3 (each to itself), with room in
/// its table for at least 5 more entries.
fn store_with_a_dict(name: &str) -> (std::path::PathBuf, Store, Container) {
    let (path, mut st, d) = store_with_empty(&format!("insert-{name}"), "d", Node::Dict(0..0));
    // Keys 100..=110 too, deleted again: the table grows to room for more entries than
    // the tests insert.
    for i in (1..=3).chain(100..=110) {
        let kt = int_key(i);
        let key = Key::new(&kt, kt.root).unwrap();
        st.begin_op(T).unwrap();
        st.dict_set(d, &key, int(i), &mut NO_HINT.clone()).unwrap();
        st.end_op(true).unwrap();
    }
    for i in 100..=110 {
        let kt = int_key(i);
        let key = Key::new(&kt, kt.root).unwrap();
        st.begin_op(T).unwrap();
        st.dict_del(d, &key).unwrap().unwrap();
        st.end_op(true).unwrap();
    }
    (path, st, d)
}

/// The dict's (key, value) words, in order.
fn items(st: &Store, d: Container) -> Vec<(u64, u64)> {
    st.dict_items(d).unwrap()
}

fn get(st: &Store, d: Container, k: i64) -> Option<u64> {
    let kt = int_key(k);
    let key = Key::new(&kt, kt.root).unwrap();
    st.dict_get(d, &key, &mut NO_HINT.clone()).unwrap()
}

/// What an inserter inserts: small ints only, or a str key (a block), or a str value (a
/// block) under an int key.
#[derive(Clone, Copy, Debug)]
enum Insert {
    Ints,
    StrKey,
    StrValue,
    /// A str key and a str value: two blocks, the value's named by journal `VALUE`.
    StrBoth,
}

const LONG_KEY: &[u8] = b"a key longer than seven bytes";
const LONG_VALUE: &[u8] = b"a value longer than seven bytes";

impl Insert {
    fn key(self) -> Tree<'static> {
        match self {
            Insert::StrKey | Insert::StrBoth => Tree::scalar(Node::Str(LONG_KEY.into())),
            _ => int_key(7),
        }
    }

    /// Runs the insert publication; whether it inserted.
    fn publish(self, st: &mut Store, d: Container) -> bool {
        let kt = self.key();
        let key = Key::new(&kt, kt.root).unwrap();
        let long = Node::Str(LONG_VALUE.into());
        let value = match self {
            Insert::StrValue | Insert::StrBoth => Inserted::Scalar(&long),
            _ => Inserted::Word(int(70)),
        };
        st.publish_dict_insert(d, &key, &mut NO_HINT.clone(), value)
            .unwrap()
    }

    /// Whether the dict holds the key, with the value inserted.
    fn present(self, st: &Store, d: Container) -> bool {
        let kt = self.key();
        let key = Key::new(&kt, kt.root).unwrap();
        let Some(w) = st.dict_get(d, &key, &mut NO_HINT.clone()).unwrap() else {
            return false;
        };
        match self {
            Insert::StrValue | Insert::StrBoth => match st.value(w).unwrap() {
                Value::Str(p) => st.payload_bytes(p).unwrap() == LONG_VALUE,
                v => panic!("not the str inserted: {v:?}"),
            },
            _ => w == int(70),
        }
    }
}

/// An inserter that dies at `at` inside its insert publication (`what`), in a child process;
/// the parent recovers it. The key is in the dict iff `inserted`, the count says so, the claim
/// is gone, a block taken for the key or value is in the dict or freed (`check` finds none
/// left), and the next inserts (without a lock, and on the dict's part) run.
fn inserter_dies_at(at: AppendDeath, inserted: bool, what: Insert) {
    let (path, mut st, d) = store_with_a_dict(&format!("{at:?}-{what:?}"));
    child_dies_at(&path, at, |child| {
        what.publish(child, d);
    });
    // Not yet recovered: the claim is the dead child's (unless it died before claiming).
    let claim_at = d.get() + dict_header::INSERT_CLAIM;
    if at != AppendDeath::Taken {
        assert!(insert_claimant(word(&path, claim_at)).is_some(), "{at:?}");
    }
    assert_eq!(st.recover_dead().unwrap(), 1);
    assert_eq!(word(&path, claim_at), 0, "{at:?}: the claim is left");
    let n = items(&st, d).len();
    assert_eq!(n, if inserted { 4 } else { 3 }, "{at:?} {what:?}");
    assert_eq!(st.dict_len(d).unwrap(), n as u64, "{at:?} {what:?}");
    assert_eq!(what.present(&st, d), inserted, "{at:?} {what:?}");
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{at:?} {what:?}: {report:?}");
    // An insert without a lock runs again, and so does one on the dict's part.
    let kt = int_key(8);
    let key = Key::new(&kt, kt.root).unwrap();
    assert!(st
        .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(80)))
        .unwrap());
    let kt = int_key(9);
    let key = Key::new(&kt, kt.root).unwrap();
    st.begin_op(T).unwrap();
    assert!(st.dict_set(d, &key, int(90), &mut NO_HINT.clone()).unwrap());
    st.end_op(true).unwrap();
    assert_eq!(st.dict_len(d).unwrap(), n as u64 + 2, "{at:?}");
    assert_eq!(get(&st, d, 8), Some(int(80)));
    assert_eq!(get(&st, d, 9), Some(int(90)));
    st.check(T).unwrap();
}

#[test]
fn an_inserter_killed_after_taking_its_block_leaves_nothing() {
    inserter_dies_at(AppendDeath::Taken, false, Insert::StrKey);
    inserter_dies_at(AppendDeath::Taken, false, Insert::StrValue);
    inserter_dies_at(AppendDeath::Taken, false, Insert::StrBoth);
}

#[test]
fn an_inserter_killed_holding_the_claim_leaves_the_dict_without_its_key() {
    for what in [
        Insert::Ints,
        Insert::StrKey,
        Insert::StrValue,
        Insert::StrBoth,
    ] {
        inserter_dies_at(AppendDeath::Claimed, false, what);
    }
}

#[test]
fn an_inserter_killed_before_storing_its_key_leaves_the_dict_without_it() {
    for what in [
        Insert::Ints,
        Insert::StrKey,
        Insert::StrValue,
        Insert::StrBoth,
    ] {
        inserter_dies_at(AppendDeath::InsertStaged, false, what);
    }
}

#[test]
fn an_inserter_killed_after_storing_its_key_leaves_the_key_in_and_counted() {
    for what in [
        Insert::Ints,
        Insert::StrKey,
        Insert::StrValue,
        Insert::StrBoth,
    ] {
        inserter_dies_at(AppendDeath::InsertCommitted, true, what);
    }
}

#[test]
fn inserts_without_a_lock_are_read_back_and_counted() {
    let (path, mut st, d) = store_with_a_dict("plain");
    for k in 10..14 {
        let kt = int_key(k);
        let key = Key::new(&kt, kt.root).unwrap();
        assert!(st
            .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(k * 10)))
            .unwrap());
    }
    // Until the table has no room: then the insert is left to the dict's part, which grows it.
    let mut k = 14;
    loop {
        let kt = int_key(k);
        let key = Key::new(&kt, kt.root).unwrap();
        let nentries = word(&path, d.get() + dict_header::NENTRIES);
        let table = word(&path, d.get() + dict_header::TABLE);
        let room = nentries < word(&path, table + 8);
        let published = st
            .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(k * 10)))
            .unwrap();
        assert_eq!(published, room, "key {k}");
        if !published {
            st.begin_op(T).unwrap();
            st.dict_set(d, &key, int(k * 10), &mut NO_HINT.clone())
                .unwrap();
            st.end_op(true).unwrap();
            break;
        }
        k += 1;
    }
    assert_ne!(word(&path, d.get() + dict_header::TABLE), 0);
    for j in 14..=k {
        assert_eq!(get(&st, d, j), Some(int(j * 10)));
    }
    let kt = int_key(k + 1);
    let key = Key::new(&kt, kt.root).unwrap();
    assert!(st
        .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(1)))
        .unwrap());
    assert_eq!(st.dict_len(d).unwrap(), 3 + 4 + (k - 14 + 1) as u64 + 1);
    st.check(T).unwrap();
    // A key that is there is not inserted again.
    let kt = int_key(2);
    let key = Key::new(&kt, kt.root).unwrap();
    assert!(!st
        .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(5)))
        .unwrap());
    assert_eq!(get(&st, d, 2), Some(int(2)));
    for k in 10..14 {
        assert_eq!(get(&st, d, k), Some(int(k * 10)));
    }
}

/// A claim found with nobody to recover it (the claimant's lock file is gone), in each state an
/// insert passes through: the next insert waits for it a moment, then runs on the dict's part,
/// which settles the dict first: the half-written entry is not in it, a committed one is, and
/// `used` agrees with the entries.
#[test]
fn a_claim_left_behind_is_settled_by_the_next_insert_on_the_dict_part() {
    for committed in [false, true] {
        let (path, mut st, d) = store_with_a_dict(&format!("left-{committed}"));
        // Leave an insert of key 7 half done: the entry written, counted and named by its
        // bucket (and, if `committed`, its key stored), `used` not moved, the claim standing
        // for slot 9, which nobody holds.
        let kt = int_key(7);
        let key = Key::new(&kt, kt.root).unwrap();
        assert!(st
            .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(70)))
            .unwrap());
        let used_at = d.get() + dict_header::USED;
        forge_word(&path, used_at, word(&path, used_at) - 1);
        forge_word(&path, d.get() + dict_header::INSERT_CLAIM, insert_claim(9));
        if !committed {
            // The key word of the last entry back to empty: the insert had not committed.
            let key_at = last_entry_key(&path, d);
            forge_word(&path, key_at, 0);
        }
        // Until then the dict reads as its words say, and `check` finds nothing wrong with it:
        // the key is in as its key word says, and `used` may be one short.
        assert_eq!(get(&st, d, 7), committed.then(|| int(70)));
        let report = st.check(T).unwrap();
        assert_eq!(report.unreachable_blocks, 0, "{report:?}");
        // An insert without a lock finds the claim and leaves the key to the part path.
        let kt = int_key(8);
        let key = Key::new(&kt, kt.root).unwrap();
        assert!(!st
            .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(80)))
            .unwrap());
        st.begin_op(T).unwrap();
        assert!(st.dict_set(d, &key, int(80), &mut NO_HINT.clone()).unwrap());
        st.end_op(true).unwrap();
        assert_eq!(word(&path, d.get() + dict_header::INSERT_CLAIM), 0);
        let mut want = vec![(int(1), int(1)), (int(2), int(2)), (int(3), int(3))];
        if committed {
            want.push((int(7), int(70)));
        }
        want.push((int(8), int(80)));
        assert_eq!(items(&st, d), want, "committed={committed}");
        assert_eq!(st.dict_len(d).unwrap(), want.len() as u64);
        assert_eq!(get(&st, d, 7), committed.then(|| int(70)));
        let report = st.check(T).unwrap();
        assert_eq!(report.unreachable_blocks, 0, "{report:?}");
        // And inserts without a lock run again.
        let kt = int_key(11);
        let key = Key::new(&kt, kt.root).unwrap();
        assert!(st
            .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(110)))
            .unwrap());
    }
}

/// The store offset of the key word of dict `d`'s last entry.
fn last_entry_key(path: &std::path::Path, d: Container) -> u64 {
    let table = word(path, d.get() + dict_header::TABLE);
    let nbuckets = value::head_len(word(path, table));
    let n = word(path, d.get() + dict_header::NENTRIES);
    table + 16 + 8 * nbuckets + 24 * (n - 1) + 8
}

/// A store whose root holds `'s'`: a set of the int members 1..=3, with room in its table for
/// more (as `store_with_a_dict`).
fn store_with_a_set(name: &str) -> (std::path::PathBuf, Store, Container) {
    let (path, mut st, s) = store_with_empty(&format!("insert-set-{name}"), "s", Node::Set(0..0));
    for i in (1..=3).chain(100..=110) {
        let kt = int_key(i);
        let key = Key::new(&kt, kt.root).unwrap();
        st.begin_op(T).unwrap();
        assert!(st.set_add(s, &key, &mut NO_HINT.clone()).unwrap());
        st.end_op(true).unwrap();
    }
    for i in 100..=110 {
        let kt = int_key(i);
        let key = Key::new(&kt, kt.root).unwrap();
        st.begin_op(T).unwrap();
        st.set_discard(s, &key).unwrap().unwrap();
        st.end_op(true).unwrap();
    }
    (path, st, s)
}

/// A set's add is an insert publication with an empty value: an adder of member `member`
/// killed at `at` is recovered to the set without it (before the commit) or with it (after),
/// its length right, nothing left for `check`; adds without a lock run again.
fn adder_dies_at(at: AppendDeath, added: bool, member: &Tree<'static>) {
    let (path, mut st, s) = store_with_a_set(&format!("{at:?}-{}", member.nodes.len()));
    child_dies_at(&path, at, |child| {
        let key = Key::new(member, member.root).unwrap();
        let _ = child.publish_set_add(s, &key, &mut NO_HINT.clone());
    });
    assert_eq!(st.recover_dead().unwrap(), 1);
    assert_eq!(
        word(&path, s.get() + dict_header::INSERT_CLAIM),
        0,
        "{at:?}"
    );
    let key = Key::new(member, member.root).unwrap();
    assert_eq!(
        st.set_contains(s, &key, &mut NO_HINT.clone()).unwrap(),
        added,
        "{at:?}"
    );
    let n = if added { 4 } else { 3 };
    assert_eq!(st.set_len(s).unwrap(), n, "{at:?}");
    assert_eq!(st.set_members(s).unwrap().len() as u64, n, "{at:?}");
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{at:?}: {report:?}");
    // Adds without a lock run again; a member already there is reported so.
    let kt = int_key(8);
    let key = Key::new(&kt, kt.root).unwrap();
    assert_eq!(
        st.publish_set_add(s, &key, &mut NO_HINT.clone()).unwrap(),
        Some(true)
    );
    assert_eq!(
        st.publish_set_add(s, &key, &mut NO_HINT.clone()).unwrap(),
        Some(false)
    );
    assert_eq!(st.set_len(s).unwrap(), n + 1);
    // A str member (a block): added, then found there without a block taken for it.
    let kt = Tree::scalar(Node::Str(LONG_VALUE.into()));
    let key = Key::new(&kt, kt.root).unwrap();
    assert_eq!(
        st.publish_set_add(s, &key, &mut NO_HINT.clone()).unwrap(),
        Some(true)
    );
    let blocks = st.check(T).unwrap().live_blocks;
    assert_eq!(
        st.publish_set_add(s, &key, &mut NO_HINT.clone()).unwrap(),
        Some(false)
    );
    let report = st.check(T).unwrap();
    assert_eq!(report.live_blocks, blocks, "{report:?}");
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(st.set_len(s).unwrap(), n + 2);
}

#[test]
fn a_set_adder_killed_anywhere_leaves_the_member_whole_or_absent() {
    let long = Tree::scalar(Node::Str(LONG_KEY.into()));
    for member in [int_key(7), long] {
        if member
            .as_scalar()
            .is_some_and(|n| matches!(n, Node::Str(_)))
        {
            adder_dies_at(AppendDeath::Taken, false, &member);
        }
        adder_dies_at(AppendDeath::Claimed, false, &member);
        adder_dies_at(AppendDeath::InsertStaged, false, &member);
        adder_dies_at(AppendDeath::InsertCommitted, true, &member);
    }
}

/// A set's discard of an inline member is a delete publication: a discarder of member 2 killed
/// holding the claim is recovered to the set with the member, and one killed after emptying
/// its key word (the commit point) to the set without it, its bucket marked deleted and its
/// length right; nothing is left for `check`, and discards without a lock run again.
#[test]
fn a_set_discarder_killed_anywhere_leaves_the_member_whole_or_absent() {
    for (at, removed) in [
        (AppendDeath::Claimed, false),
        (AppendDeath::DeleteCommitted, true),
    ] {
        let (path, mut st, s) = store_with_a_set(&format!("discard-{at:?}"));
        let kt = int_key(2);
        child_dies_at(&path, at, |child| {
            let key = Key::new(&kt, kt.root).unwrap();
            let _ = child.publish_set_discard(s, &key);
        });
        assert_ne!(word(&path, s.get() + dict_header::INSERT_CLAIM), 0);
        assert_eq!(st.recover_dead().unwrap(), 1);
        assert_eq!(word(&path, s.get() + dict_header::INSERT_CLAIM), 0);
        let key = Key::new(&kt, kt.root).unwrap();
        assert_eq!(
            st.set_contains(s, &key, &mut NO_HINT.clone()).unwrap(),
            !removed,
            "{at:?}"
        );
        let n = if removed { 2 } else { 3 };
        assert_eq!(st.set_len(s).unwrap(), n, "{at:?}");
        assert_eq!(st.set_members(s).unwrap().len() as u64, n, "{at:?}");
        let report = st.check(T).unwrap();
        assert_eq!(report.unreachable_blocks, 0, "{at:?}: {report:?}");
        // Discards without a lock run again (a member not there is left to the part path,
        // which answers for sure), and add the member back without a lock too.
        let first = st.publish_set_discard(s, &key).unwrap();
        assert_eq!(first, (!removed).then_some(true), "{at:?}");
        assert_eq!(st.publish_set_discard(s, &key).unwrap(), None);
        assert_eq!(st.set_len(s).unwrap(), 2);
        assert_eq!(
            st.publish_set_add(s, &key, &mut NO_HINT.clone()).unwrap(),
            Some(true)
        );
        assert_eq!(st.set_len(s).unwrap(), 3);
        // A member that is a block is the part path's.
        let long = Tree::scalar(Node::Str(LONG_KEY.into()));
        let key = Key::new(&long, long.root).unwrap();
        assert_eq!(st.publish_set_discard(s, &key).unwrap(), None);
        st.check(T).unwrap();
    }
}

/// A delete's claim left behind after its commit point (its lock file gone: nobody recovers
/// it), with `used` one more than the members: `check` takes the set for that state, and the
/// next removal on the set's part settles it first, so `len` is right again.
#[test]
fn a_delete_claim_left_behind_is_settled_by_the_next_removal_on_the_set_part() {
    let (path, mut st, s) = store_with_a_set("delete-left");
    let kt = int_key(2);
    let key = Key::new(&kt, kt.root).unwrap();
    assert_eq!(st.publish_set_discard(s, &key).unwrap(), Some(true));
    let used_at = s.get() + dict_header::USED;
    forge_word(&path, used_at, word(&path, used_at) + 1);
    forge_word(&path, s.get() + dict_header::INSERT_CLAIM, insert_claim(9));
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(st.set_len(s).unwrap(), 3, "used as the words say");
    let kt = int_key(3);
    let key = Key::new(&kt, kt.root).unwrap();
    st.begin_op(T).unwrap();
    assert!(st.set_discard(s, &key).unwrap().is_some());
    st.end_op(true).unwrap();
    assert_eq!(word(&path, s.get() + dict_header::INSERT_CLAIM), 0);
    assert_eq!(st.set_len(s).unwrap(), 1);
    assert_eq!(st.set_members(s).unwrap().len(), 1);
    st.check(T).unwrap();
}

/// A dict's delete of an inline key with an inline value is a delete publication whose commit
/// point is the entry's value word emptied: a deleter of key 2 killed holding the claim is
/// recovered to the dict with the key and its value, and one killed after emptying the value
/// word (before or after emptying the key word) to the dict without it, `len` right either
/// way; nothing is left for `check`, and deletes without a lock run again. A key whose value
/// is a block, and a key that is not there, are the part path's.
#[test]
fn a_dict_deleter_killed_anywhere_leaves_the_key_whole_or_absent() {
    for (at, removed) in [
        (AppendDeath::Claimed, false),
        (AppendDeath::DeleteSealed, true),
        (AppendDeath::DeleteCommitted, true),
    ] {
        let (path, mut st, d) = store_with_a_dict(&format!("delete-{at:?}"));
        let kt = int_key(2);
        child_dies_at(&path, at, |child| {
            let key = Key::new(&kt, kt.root).unwrap();
            let _ = child.publish_dict_delete(d, &key);
        });
        assert_ne!(word(&path, d.get() + dict_header::INSERT_CLAIM), 0);
        assert_eq!(st.recover_dead().unwrap(), 1);
        assert_eq!(word(&path, d.get() + dict_header::INSERT_CLAIM), 0);
        assert_eq!(get(&st, d, 2), (!removed).then(|| int(2)), "{at:?}");
        let mut want = vec![(int(1), int(1)), (int(2), int(2)), (int(3), int(3))];
        if removed {
            want.remove(1);
        }
        assert_eq!(items(&st, d), want, "{at:?}");
        assert_eq!(st.dict_len(d).unwrap(), want.len() as u64, "{at:?}");
        let report = st.check(T).unwrap();
        assert_eq!(report.unreachable_blocks, 0, "{at:?}: {report:?}");
        // Deletes without a lock run again: the value comes back (a key not there is left to
        // the part path, which answers for sure).
        let key = Key::new(&kt, kt.root).unwrap();
        let first = st.publish_dict_delete(d, &key).unwrap();
        assert_eq!(first, (!removed).then_some(Some(int(2))), "{at:?}");
        assert_eq!(st.publish_dict_delete(d, &key).unwrap(), None);
        assert_eq!(st.dict_len(d).unwrap(), 2);
        assert!(st
            .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Word(int(20)))
            .unwrap());
        assert_eq!(get(&st, d, 2), Some(int(20)));
        assert_eq!(st.dict_len(d).unwrap(), 3);
        // A value that is a block is the part path's to free.
        assert_eq!(
            st.publish_dict_delete(d, &key).unwrap(),
            Some(Some(int(20)))
        );
        let long = Node::Str(LONG_VALUE.into());
        assert!(st
            .publish_dict_insert(d, &key, &mut NO_HINT.clone(), Inserted::Scalar(&long))
            .unwrap());
        assert_eq!(st.publish_dict_delete(d, &key).unwrap(), None);
        assert_eq!(st.dict_len(d).unwrap(), 3);
        st.check(T).unwrap();
    }
}

/// A dict delete's claim left behind after its commit point (its lock file gone: nobody
/// recovers it), the entry's value emptied and its key not: `check` takes the dict for the
/// dict without the key, and the next removal on the dict's part settles it first.
#[test]
fn a_dict_delete_claim_left_behind_is_settled_by_the_next_removal_on_the_dict_part() {
    let (path, mut st, d) = store_with_a_dict("dict-delete-left");
    // Entry 1 holds key 2 (entries 0..=2 are keys 1..=3).
    let key_at = entry_key(&path, d, 1);
    assert_eq!(word(&path, key_at), int(2));
    forge_word(
        &path,
        d.get() + dict_header::INSERT_CLAIM,
        delete_claim(9, 1),
    );
    forge_word(&path, key_at + 8, 0);
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    let kt = int_key(3);
    let key = Key::new(&kt, kt.root).unwrap();
    st.begin_op(T).unwrap();
    assert!(st.dict_del(d, &key).unwrap().is_some());
    st.end_op(true).unwrap();
    assert_eq!(word(&path, d.get() + dict_header::INSERT_CLAIM), 0);
    assert_eq!(items(&st, d), vec![(int(1), int(1))]);
    assert_eq!(st.dict_len(d).unwrap(), 1);
    st.check(T).unwrap();
}

/// The store offset of the key word of dict `d`'s entry `e`.
fn entry_key(path: &std::path::Path, d: Container, e: u64) -> u64 {
    let table = word(path, d.get() + dict_header::TABLE);
    let nbuckets = value::head_len(word(path, table));
    table + 16 + 8 * nbuckets + 24 * e + 8
}

/// What a value publication replaces and with what: small ints, a str's block, a float's.
#[derive(Clone, Copy, Debug)]
enum Swap {
    /// An int for a str's block (`publish_dict_value`: the old block freed).
    BlockForInt,
    /// A str's block for an int (`publish_dict_replace`: the new block taken).
    IntForBlock,
    /// A float's block for a str's block (both).
    BlockForBlock,
}

impl Swap {
    /// Sets key 2 to its old value (on the dict's part), then runs the publication.
    fn old(self, st: &mut Store, d: Container) {
        let kt = int_key(2);
        let key = Key::new(&kt, kt.root).unwrap();
        if !matches!(self, Swap::IntForBlock) {
            let long = Node::Str(LONG_VALUE.into());
            assert!(st
                .publish_dict_replace(d, &key, &mut NO_HINT.clone(), &long)
                .unwrap());
        }
    }

    fn publish(self, st: &mut Store, d: Container) -> bool {
        let kt = int_key(2);
        let key = Key::new(&kt, kt.root).unwrap();
        match self {
            Swap::BlockForInt => st
                .publish_dict_value(d, &key, &mut NO_HINT.clone(), |_| Some((int(20), ())))
                .unwrap()
                .is_some(),
            Swap::IntForBlock => st
                .publish_dict_replace(d, &key, &mut NO_HINT.clone(), &Node::Str(LONG_KEY.into()))
                .unwrap(),
            Swap::BlockForBlock => st
                .publish_dict_replace(d, &key, &mut NO_HINT.clone(), &Node::Float(2.5))
                .unwrap(),
        }
    }

    /// Whether key 2 holds the new value (else it must hold the old one).
    fn is_new(self, st: &Store, d: Container) -> bool {
        let w = get(st, d, 2).expect("key 2 is there");
        let v = st.value(w).unwrap();
        let (new, old) = match (self, &v) {
            (Swap::BlockForInt, _) => (
                w == int(20),
                matches!(v, Value::Str(p) if st.payload_bytes(p).unwrap() == LONG_VALUE),
            ),
            (Swap::IntForBlock, Value::Str(p)) => {
                (st.payload_bytes(*p).unwrap() == LONG_KEY, false)
            }
            (Swap::IntForBlock, _) => (false, w == int(2)),
            (Swap::BlockForBlock, Value::Float { .. }) => (true, false),
            (Swap::BlockForBlock, Value::Str(p)) => {
                (false, st.payload_bytes(*p).unwrap() == LONG_VALUE)
            }
            _ => (false, false),
        };
        assert!(new || old, "{self:?}: key 2 holds neither value: {v:?}");
        new
    }
}

/// A value publication killed anywhere leaves the old value or the new one: before its CAS the
/// old (a new block it took is freed by its recovery, and an old block that journal `VALUE`
/// names under the dict's claim is kept), after it the new (the new block kept, the old block
/// freed by the recovery): nothing is left for gc, and the claim is cleared. Publications run
/// again after.
#[test]
fn a_value_replacer_killed_anywhere_leaves_the_old_value_or_the_new() {
    for what in [Swap::BlockForInt, Swap::IntForBlock, Swap::BlockForBlock] {
        let mut deaths = vec![(AppendDeath::ValueSwapped, true)];
        if !matches!(what, Swap::BlockForInt) {
            deaths.push((AppendDeath::Taken, false));
        }
        if !matches!(what, Swap::IntForBlock) {
            deaths.push((AppendDeath::OldJournaled, false));
        }
        for (at, swapped) in deaths {
            let (path, mut st, d) = store_with_a_dict(&format!("swap-{what:?}-{at:?}"));
            what.old(&mut st, d);
            let before = st.check(T).unwrap();
            child_dies_at(&path, at, |child| {
                what.publish(child, d);
            });
            assert_eq!(st.recover_dead().unwrap(), 1);
            assert_eq!(word(&path, d.get() + dict_header::INSERT_CLAIM), 0);
            assert_eq!(what.is_new(&st, d), swapped, "{what:?} {at:?}");
            assert_eq!(st.dict_len(d).unwrap(), 3);
            let report = st.check(T).unwrap();
            assert_eq!(report.unreachable_blocks, 0, "{what:?} {at:?}: {report:?}");
            // The dict holds as many blocks as before, give or take the swap's own.
            let blocks = |r: &persist::object::CheckReport| r.live_blocks as i64;
            let delta = match what {
                Swap::BlockForInt => -1,
                Swap::IntForBlock => 1,
                Swap::BlockForBlock => 0,
            };
            assert_eq!(
                blocks(&report) - blocks(&before),
                if swapped { delta } else { 0 },
                "{what:?} {at:?}"
            );
            // Publications run again.
            assert!(what.publish(&mut st, d) || matches!(what, Swap::BlockForInt));
            let report = st.check(T).unwrap();
            assert_eq!(report.unreachable_blocks, 0, "{what:?} {at:?}: {report:?}");
        }
    }
}

/// An object's attributes are a dict's entries: a new attribute, a new value that is a block,
/// and a removal publish without a lock as on a dict, and a deleter killed after its commit
/// is recovered the same way.
#[test]
fn an_objects_attributes_are_published_as_a_dicts_entries() {
    let (path, mut st, o) =
        store_with_empty("object-attrs", "o", Node::Object("m:Job".into(), 0..0));
    // Room in the table first: attributes added and removed on the object's part.
    for i in 100..=110 {
        let kt = int_key(i);
        let key = Key::new(&kt, kt.root).unwrap();
        st.begin_op(T).unwrap();
        st.dict_set(o, &key, int(i), &mut NO_HINT.clone()).unwrap();
        st.dict_del(o, &key).unwrap().unwrap();
        st.end_op(true).unwrap();
    }
    let kt = Tree::scalar(Node::Str(b"state".as_slice().into()));
    let key = Key::new(&kt, kt.root).unwrap();
    assert!(st
        .publish_dict_insert(o, &key, &mut NO_HINT.clone(), Inserted::Word(int(1)))
        .unwrap());
    let long = Node::Str(LONG_VALUE.into());
    assert!(st
        .publish_dict_replace(o, &key, &mut NO_HINT.clone(), &long)
        .unwrap());
    assert_eq!(
        st.publish_dict_value(o, &key, &mut NO_HINT.clone(), |_| Some((int(2), ())))
            .unwrap(),
        Some(())
    );
    st.check(T).unwrap();
    child_dies_at(&path, AppendDeath::DeleteSealed, |child| {
        let _ = child.publish_dict_delete(o, &key);
    });
    assert_eq!(st.recover_dead().unwrap(), 1);
    assert_eq!(st.dict_get(o, &key, &mut NO_HINT.clone()).unwrap(), None);
    assert_eq!(st.dict_len(o).unwrap(), 0);
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
}
