//! A claim on a list's tail (an append without a lock in flight, FORMAT.md §10.9 "Appends")
//! found in a store file when no appender is at work: the claimant died and its lock file is
//! gone, or the file is hostile. Nothing reads the claim as a length: every read of the list
//! sees the length in its low bits; an append without a lock leaves the list to the append on
//! the list's part, which writes a plain length over the claim; a claim whose length breaks the
//! list's bounds is damage, reported and never followed.

mod harness;

use harness::dying::{child_dies_at, forge_word, int, store_with_empty, word, T};
use persist::object::layout::list_header;
use persist::object::tree::{Node, Tree};
use persist::object::view::Value;
use persist::object::{value, AppendDeath, Container, Error, Store};
use persist::part_lock::{tail_claim, tail_claimant};

/// A store whose root holds `'l'`: a list of 1, 2, 3 with room after its last item.
fn store_with_a_list(name: &str) -> (std::path::PathBuf, Store, Container) {
    let (path, mut st, l) = store_with_empty(&format!("tail-{name}"), "l", Node::List(0..0));
    for i in 1..=3 {
        st.begin_op(T).unwrap();
        st.list_append(l, int(i)).unwrap();
        st.end_op(true).unwrap();
    }
    let items = word(&path, l.get() + list_header::ITEMS);
    assert!(
        word(&path, l.get() + list_header::CAP) > 3,
        "no room after the last item"
    );
    assert_ne!(items, 0);
    (path, st, l)
}

#[test]
fn a_claim_left_behind_changes_no_read_and_the_next_append_writes_over_it() {
    let (path, mut st, l) = store_with_a_list("stale");
    let len_at = l.get() + list_header::LEN;
    // A claim of slot 7 at length 3, with an item stored past the end (what an appender killed
    // after its item store leaves, once its lock file is gone).
    forge_word(&path, len_at, tail_claim(7, 3));
    assert_eq!(tail_claimant(word(&path, len_at)), Some(7));
    assert_eq!(st.list_len(l).unwrap(), 3);
    assert_eq!(st.list_words(l).unwrap(), vec![int(1), int(2), int(3)]);
    assert_eq!(st.list_get(l, 3).unwrap(), None);

    // An append without a lock does not take the claimed tail (it waits a little for the
    // claim to end, then leaves the append to the list's part) ...
    assert!(!st.publish_list_append(l, int(4)).unwrap());
    assert_eq!(
        word(&path, len_at),
        tail_claim(7, 3),
        "the claim was taken over"
    );
    // ... whose append writes a plain length over it.
    st.begin_op(T).unwrap();
    st.list_append(l, int(4)).unwrap();
    st.end_op(true).unwrap();
    assert_eq!(word(&path, len_at), 4);
    assert_eq!(
        st.list_words(l).unwrap(),
        vec![int(1), int(2), int(3), int(4)]
    );

    // With the claim gone, appends without a lock run again where there is room (the items
    // block is full now: this append grows it, on the part).
    assert!(!st.publish_list_append(l, int(5)).unwrap());
    st.begin_op(T).unwrap();
    st.list_append(l, int(5)).unwrap();
    st.end_op(true).unwrap();
    assert!(st.publish_list_append(l, int(6)).unwrap());
    assert_eq!(word(&path, len_at), 6);
    assert_eq!(
        st.list_words(l).unwrap(),
        (1..=6).map(int).collect::<Vec<_>>()
    );
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(report.leaked_references, 0, "{report:?}");
}

#[test]
fn a_claim_beyond_the_items_block_is_damage_and_never_followed() {
    let (path, mut st, l) = store_with_a_list("hostile");
    let len_at = l.get() + list_header::LEN;
    let cap = word(&path, l.get() + list_header::CAP);
    for forged in [tail_claim(3, cap + 1), tail_claim(1023, (1 << 48) - 1)] {
        forge_word(&path, len_at, forged);
        assert!(
            matches!(st.list_len(l), Err(Error::Corrupt { .. })),
            "{forged:#x}"
        );
        assert!(matches!(st.list_words(l), Err(Error::Corrupt { .. })));
        // An append neither follows it nor writes anything.
        assert!(matches!(
            st.publish_list_append(l, int(9)),
            Ok(false) | Err(Error::Corrupt { .. })
        ));
        assert_eq!(word(&path, len_at), forged);
    }
    // A claim at a length the list can hold reads as that length.
    forge_word(&path, len_at, tail_claim(3, 2));
    assert_eq!(st.list_words(l).unwrap(), vec![int(1), int(2)]);
}

/// The item words of the tuple (1, None, "short") (inline words: one block with no references).
fn flat_tuple() -> [u64; 3] {
    [int(1), value::NONE, value::short_str(b"short").unwrap()]
}

/// An appender of a str (a block) that dies at `at` inside its append, in a child process;
/// the parent recovers it. Whole or absent, as the point says, and no block left behind.
fn appender_dies_at(at: AppendDeath, appended: bool) {
    let value = Node::Str(b"a str longer than seven bytes".as_slice().into());
    one_block_appender_dies_at(at, appended, "str", |child, l| {
        let _ = child.publish_list_append_scalar(l, &value);
    });
    // The same for a tuple of inline words: one block, appended the same way.
    one_block_appender_dies_at(at, appended, "tuple", |child, l| {
        let _ = child.publish_list_append_tuple(l, &flat_tuple());
    });
}

/// An appender of one block (`append`) that dies at `at` inside its append, as
/// [`appender_dies_at`] says.
fn one_block_appender_dies_at(
    at: AppendDeath,
    appended: bool,
    name: &str,
    append: impl FnOnce(&mut Store, Container),
) {
    let (path, mut st, l) = store_with_a_list(&format!("{at:?}-{name}"));
    child_dies_at(&path, at, |child| append(child, l));
    assert_eq!(st.recover_dead().unwrap(), 1);
    let len_at = l.get() + list_header::LEN;
    assert_eq!(tail_claimant(word(&path, len_at)), None, "{at:?}");
    let words = st.list_words(l).unwrap();
    assert_eq!(words.len(), if appended { 4 } else { 3 }, "{at:?} {name}");
    if appended {
        // The value's block: linked, so its recovery kept it (check below finds it allocated).
        assert!(value::is_block(words[3]), "{at:?} {name}");
    }
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{at:?}: {report:?}");
    assert_eq!(report.leaked_references, 0, "{at:?}: {report:?}");
    // The list takes appends again, with no lock or on its part.
    st.begin_op(T).unwrap();
    st.list_append(l, int(9)).unwrap();
    st.end_op(true).unwrap();
    assert_eq!(st.list_len(l).unwrap(), if appended { 5 } else { 4 });
}

#[test]
fn an_appender_killed_after_taking_its_block_leaves_nothing() {
    appender_dies_at(AppendDeath::Taken, false);
}

#[test]
fn an_appender_killed_holding_the_claim_leaves_nothing() {
    appender_dies_at(AppendDeath::Claimed, false);
}

#[test]
fn an_appender_killed_after_linking_its_item_leaves_it_whole() {
    appender_dies_at(AppendDeath::Linked, true);
}

/// Every state a front pop passes through, as a popper killed there leaves it (claim of slot
/// 7, lock file gone): each stands for the list before the pop or after it, never a mix, for
/// readers and for the next change, which writes that list out plain.
#[test]
fn each_state_of_a_front_pop_left_behind_reads_as_the_list_before_or_after_it() {
    use persist::object::layout::list_items;
    use persist::part_lock::tail_claim_popped;
    // (what the state is, the words to forge, whether the pop committed)
    type Forge = fn(u64, u64) -> Vec<(u64, u64)>;
    let states: [(&str, Forge, bool); 4] = [
        ("claimed", |_s, _i| vec![], false),
        ("item emptied", |s, i| vec![(i + 8 * s, 0)], true),
        ("claim marked popped", |s, i| vec![(i + 8 * s, 0)], true),
        ("start moved", |s, i| vec![(i + 8 * s, 0)], true),
    ];
    for (k, (what, forge, popped)) in states.into_iter().enumerate() {
        let (path, mut st, l) = store_with_a_list(&format!("pop{k}"));
        let c = l.get();
        let items = word(&path, c + list_header::ITEMS);
        let item0 = list_items::item(items, 0);
        let s = word(&path, c + list_header::START);
        for (at, v) in forge(s, item0) {
            forge_word(&path, at, v);
        }
        let len_word = match k {
            0 | 1 => tail_claim(7, 3),
            _ => tail_claim_popped(7, 2),
        };
        forge_word(&path, c + list_header::LEN, len_word);
        if k == 3 {
            forge_word(&path, c + list_header::START, s + 1);
        }
        let want: Vec<u64> = if popped {
            vec![int(2), int(3)]
        } else {
            vec![int(1), int(2), int(3)]
        };
        assert_eq!(st.list_words(l).unwrap(), want, "{what}");
        assert_eq!(st.list_len(l).unwrap(), want.len() as u64, "{what}");
        // The next change writes the list out plain, then changes it.
        st.begin_op(T).unwrap();
        st.list_append(l, int(4)).unwrap();
        st.end_op(true).unwrap();
        assert_eq!(
            tail_claimant(word(&path, c + list_header::LEN)),
            None,
            "{what}"
        );
        let mut after = want.clone();
        after.push(int(4));
        assert_eq!(st.list_words(l).unwrap(), after, "{what}");
        let report = st.check(T).unwrap();
        assert_eq!(report.unreachable_blocks, 0, "{what}: {report:?}");
    }
}

/// A popper that dies at `at` inside a front pop, in a child process; the parent recovers it.
fn popper_dies_at(at: AppendDeath, popped: bool) {
    let (path, mut st, l) = store_with_a_list(&format!("{at:?}-pop"));
    child_dies_at(&path, at, |child| {
        let _ = child.publish_list_pop(l, true, |_, w| w);
    });
    assert_eq!(st.recover_dead().unwrap(), 1);
    let c = l.get();
    assert_eq!(
        tail_claimant(word(&path, c + list_header::LEN)),
        None,
        "{at:?}"
    );
    let want: Vec<u64> = if popped {
        vec![int(2), int(3)]
    } else {
        vec![int(1), int(2), int(3)]
    };
    assert_eq!(st.list_words(l).unwrap(), want, "{at:?}");
    // Written out plain by the recovery: `len` and `start` alone say the list.
    assert_eq!(
        word(&path, c + list_header::LEN),
        want.len() as u64,
        "{at:?}"
    );
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{at:?}: {report:?}");
    // Pops without a lock run again.
    assert_eq!(
        st.publish_list_pop(l, true, |_, w| w).unwrap(),
        Some(want[0]),
        "{at:?}"
    );
    assert_eq!(
        st.publish_list_pop(l, false, |_, w| w).unwrap(),
        Some(int(3)),
        "{at:?}"
    );
}

#[test]
fn a_popper_killed_holding_the_claim_leaves_the_list_whole() {
    popper_dies_at(AppendDeath::Claimed, false);
}

#[test]
fn a_popper_killed_after_its_commit_point_is_finished_by_its_recovery() {
    popper_dies_at(AppendDeath::PopCommitted, true);
}

#[test]
fn a_popper_killed_after_marking_its_claim_is_finished_by_its_recovery() {
    popper_dies_at(AppendDeath::PopMarked, true);
}

/// The strs a block popper's list holds (each more than 7 bytes: a block).
const STRS: [&str; 3] = ["first str item", "second str item", "third str item"];

/// A store whose root holds `'l'`: a list of three one-block items with room after the last:
/// the three `STRS`, or (`tuples`) the tuples (i, None, "short") of inline words for i = 1..3.
fn store_with_a_list_of_blocks(name: &str, tuples: bool) -> (std::path::PathBuf, Store, Container) {
    let (path, mut st, l) = store_with_a_list(name);
    st.begin_op(T).unwrap();
    st.list_splice(l, 0, 3, &[]).unwrap();
    for (i, s) in STRS.iter().enumerate() {
        let w = if tuples {
            let mut items = flat_tuple();
            items[0] = int(i as i64 + 1);
            st.encode_tuple_of(&items).unwrap()
        } else {
            st.encode(&Tree::scalar(Node::Str(s.as_bytes().into())))
                .unwrap()
        };
        st.list_append(l, w).unwrap();
    }
    st.end_op(true).unwrap();
    (path, st, l)
}

/// What the items of `store_with_a_list_of_blocks` read as: the str, or the tuple's first item.
fn expected_items(tuples: bool) -> Vec<String> {
    (0..STRS.len())
        .map(|i| match tuples {
            true => format!("tuple {}", i + 1),
            false => STRS[i].to_string(),
        })
        .collect()
}

/// The str item word `w` stands for, or for a tuple "tuple N", N its first item.
fn str_of(st: &mut Store, w: u64) -> String {
    match st.value(w).unwrap() {
        Value::Str(p) => String::from_utf8(st.payload_bytes(p).unwrap()).unwrap(),
        Value::Tuple { block, len: 3 } => {
            let first = st.tuple_item(block, 0).unwrap();
            assert_eq!(st.tuple_item(block, 1).unwrap(), value::NONE);
            let n = (1..=3)
                .find(|&n| int(n) == first)
                .expect("a tuple's first item");
            format!("tuple {n}")
        }
        v => panic!("not a str: {v:?}"),
    }
}

fn strs_of(st: &mut Store, l: Container) -> Vec<String> {
    let words = st.list_words(l).unwrap();
    words.into_iter().map(|w| str_of(st, w)).collect()
}

/// A popper of a str (a block item) that dies at `at` inside a pop publication from the
/// `front` or the back, in a child process; the parent recovers it. The list is whole or
/// popped, as the point says; the popped block is freed by the recovery, a kept one is not
/// (check finds neither a block left behind nor damage), and pops without a lock run again.
/// The same for a tuple of inline words, which is one block too.
fn block_popper_dies_at(at: AppendDeath, front: bool, popped: bool) {
    for tuples in [false, true] {
        one_block_popper_dies_at(at, front, popped, tuples);
    }
}

fn one_block_popper_dies_at(at: AppendDeath, front: bool, popped: bool, tuples: bool) {
    let name = format!("{at:?}-{front}-{tuples}-bpop");
    let (path, mut st, l) = store_with_a_list_of_blocks(&name, tuples);
    child_dies_at(&path, at, |child| {
        let _ = child.publish_list_pop(l, front, |_, w| w);
    });
    assert_eq!(st.recover_dead().unwrap(), 1);
    let len_at = l.get() + list_header::LEN;
    assert_eq!(tail_claimant(word(&path, len_at)), None, "{at:?}");
    let mut want = expected_items(tuples);
    if popped {
        if front {
            want.remove(0);
        } else {
            want.pop();
        }
    }
    assert_eq!(strs_of(&mut st, l), want, "{at:?} front={front}");
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{at:?}: {report:?}");
    // Pops without a lock run again, and give the items back whole.
    let first = st.publish_list_pop(l, true, str_of).unwrap();
    assert_eq!(first.as_deref(), Some(want[0].as_str()), "{at:?}");
    let last = st.publish_list_pop(l, false, str_of).unwrap();
    assert_eq!(last.as_deref(), want.last().map(|s| s.as_str()), "{at:?}");
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{at:?}: {report:?}");
}

#[test]
fn a_block_popper_killed_before_its_journal_leaves_the_list_whole() {
    block_popper_dies_at(AppendDeath::Claimed, true, false);
    block_popper_dies_at(AppendDeath::Claimed, false, false);
}

#[test]
fn a_block_popper_killed_after_naming_its_block_leaves_the_list_whole_and_the_block_kept() {
    block_popper_dies_at(AppendDeath::PopJournaled, true, false);
    block_popper_dies_at(AppendDeath::PopJournaled, false, false);
}

#[test]
fn a_block_popper_killed_past_its_commit_point_has_its_block_freed_by_the_recovery() {
    block_popper_dies_at(AppendDeath::PopCommitted, true, true);
    block_popper_dies_at(AppendDeath::PopMarked, true, true);
}

#[test]
fn a_block_popper_killed_before_freeing_its_block_has_it_freed_by_the_recovery() {
    block_popper_dies_at(AppendDeath::PopTaken, true, true);
    block_popper_dies_at(AppendDeath::PopTaken, false, true);
}

#[test]
fn pops_without_a_lock_take_str_items_and_free_their_blocks() {
    pops_without_a_lock_take_one_block_items(false);
}

#[test]
fn pops_without_a_lock_take_tuples_of_inline_words_and_free_their_blocks() {
    pops_without_a_lock_take_one_block_items(true);
}

fn pops_without_a_lock_take_one_block_items(tuples: bool) {
    let (_path, mut st, l) = store_with_a_list_of_blocks(&format!("bpops-{tuples}"), tuples);
    let want = expected_items(tuples);
    let words = st.list_words(l).unwrap();
    assert!(words.iter().all(|&w| value::is_block(w)));
    let before = st.check(T).unwrap().live_blocks;
    let got = st.publish_list_pop(l, false, str_of).unwrap();
    assert_eq!(got.as_ref(), Some(&want[2]));
    let got = st.publish_list_pop(l, true, str_of).unwrap();
    assert_eq!(got.as_ref(), Some(&want[0]));
    assert_eq!(strs_of(&mut st, l), vec![want[1].clone()]);
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    // Both popped blocks were freed.
    assert_eq!(report.live_blocks, before - 2, "{report:?}");
}

/// An appender of a str killed right after linking it, before settling its journal: its claim
/// still stands (for the list with the item), so a pop without a lock does not take the item
/// (and free its block) before the appender's recovery has settled that journal. Taken first,
/// the block would be freed twice: by the pop, then by the recovery, which finds the journal
/// naming it and the list without it.
#[test]
fn a_str_appended_by_a_killed_appender_is_not_popped_without_a_lock_before_its_recovery() {
    let (path, mut st, l) = store_with_a_list("linked-then-popped");
    let value = Node::Str(b"a str longer than seven bytes".as_slice().into());
    child_dies_at(&path, AppendDeath::Linked, |child| {
        let _ = child.publish_list_append_scalar(l, &value);
    });
    // No recovery yet: the dead appender's claim keeps pops without a lock away.
    assert_eq!(st.publish_list_pop(l, false, str_of).unwrap(), None);
    assert_eq!(st.list_len(l).unwrap(), 4);
    assert_eq!(st.recover_dead().unwrap(), 1);
    assert_eq!(tail_claimant(word(&path, l.get() + list_header::LEN)), None);
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    let got = st.publish_list_pop(l, false, str_of).unwrap();
    assert_eq!(got.as_deref(), Some("a str longer than seven bytes"));
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(st.list_words(l).unwrap(), vec![int(1), int(2), int(3)]);
}

/// A str append turned away at its announcement (here by a part taker holding the list) has
/// taken no block: the block is taken past the gate, where no gc walks the allocator or sweeps
/// (a gc is a section, and waits for the publication). Appends without a lock run again once
/// the part is free.
#[test]
fn a_str_append_turned_away_takes_no_block() {
    let (path, mut st, l) = store_with_a_list("turned-away");
    let mut other = Store::open(&path).unwrap();
    let value = Node::Str(b"a str longer than seven bytes".as_slice().into());
    let before = st.check(T).unwrap().live_blocks;
    // The list's part taken by `st`: the publication is turned away, with nothing taken.
    assert!(st.begin_part(l).unwrap());
    assert!(!other.publish_list_append_scalar(l, &value).unwrap());
    st.end_part(true).unwrap();
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(report.live_blocks, before, "{report:?}");
    // With the part free, the append publishes (the items block has room for one more).
    assert!(other.publish_list_append_scalar(l, &value).unwrap());
    assert_eq!(st.list_len(l).unwrap(), 4);
    let report = st.check(T).unwrap();
    assert_eq!(report.unreachable_blocks, 0, "{report:?}");
    assert_eq!(report.live_blocks, before + 1, "{report:?}");
    other.close().unwrap();
}
