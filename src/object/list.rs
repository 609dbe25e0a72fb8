//! Persistent lists.
//!
//! A list is a container header (`list_header::BYTES`: head, refcnt, version, orphan link, items, len,
//! cap, start) and an items block (`LIST_ITEMS`: head with its capacity, then `cap` value words).
//! The live items are the `len` words from word `start` of the items block on, so taking the
//! first item (`popleft`, `pop(0)`) moves nothing: it only steps `start` on. Appends and small
//! changes happen in place (each word logged); a change that would move many words (an insert
//! near the front of a long list, a sort, a slice assignment) or an append that finds no room
//! after the last item writes a new items block (its items from word 0: `start` back to 0) and
//! swaps it in, logging one word, and frees the old block at commit.

use super::layout::{list_header, list_items};
use super::value::{self, Kind};
use super::{Container, Error, Result, Store};
use crate::part_lock::{effective_list, tail_claimant, tail_len};

/// Above this many words to move, a change copies into a new items block instead.
const IN_PLACE_MOVES: u64 = 32;

/// One item of a rebuilt list: an item of the old contents (by index) or a new value word.
#[derive(Clone, Copy, Debug)]
pub enum Item {
    Old(u64),
    New(u64),
}

/// A list's words, checked by [`Store::list_parts`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Parts {
    /// The items block (0: none).
    pub items: u64,
    /// The index in the items block of the first item.
    pub start: u64,
    pub len: u64,
    pub cap: u64,
}

impl Parts {
    /// The word of item `i` (< len).
    pub fn slot(&self, i: u64) -> u64 {
        list_items::item(self.items, self.start + i)
    }
}

impl Store {
    /// The list's words, checked: the items block is an items block of at least `cap` words
    /// and `start + len <= cap` (a hostile `start` or `len` is refused, never followed). A
    /// claim on the list's tail in its `len` word (an append or a pop in flight, or left by a
    /// dead claimant: FORMAT.md §10.9, "Appends" and "Pops") gives the list it stands for
    /// (`part_lock::effective_list`): `start` and `len` here are that list's.
    pub(super) fn list_parts(&self, c: u64) -> Result<Parts> {
        self.observe(c);
        let items = self.get(c + list_header::ITEMS)?;
        let word = self.get(c + list_header::LEN)?;
        let len = tail_len(word);
        let cap = self.get(c + list_header::CAP)?;
        let start = self.get(c + list_header::START)?;
        if items == 0 {
            if len != 0 || cap != 0 || start != 0 {
                return Err(corrupt("list without items block has items", c));
            }
            return Ok(Parts {
                items: 0,
                start: 0,
                len: 0,
                cap: 0,
            });
        }
        let head = self.get(items)?;
        if value::head_kind(head) != Some(Kind::ListItems)
            || value::head_len(head) < cap
            || start > cap
            || len > cap - start
            || items % 16 != 0
        {
            return Err(corrupt("list items block does not match its list", c));
        }
        self.check_span(items, list_items::bytes(cap))?;
        let (start, len) = if tail_claimant(word).is_some() {
            // `start < cap` whenever the claim's length is at least 1 (checked above).
            let first = if len >= 1 {
                self.get(list_items::item(items, start))?
            } else {
                value::EMPTY
            };
            let (s, l) = effective_list(word, start, first);
            if s > cap || l > cap - s {
                return Err(corrupt("list items block does not match its list", c));
            }
            (s, l)
        } else {
            (start, len)
        };
        Ok(Parts {
            items,
            start,
            len,
            cap,
        })
    }

    /// [`Store::list_parts`] for a change of the list (on its part, or store-wide): a claim on
    /// the list's tail found now is no claimant's in flight (part takers wait for publications,
    /// sections drain them), so the list it stands for is written out first, logged: a plain
    /// `len` and the `start` that goes with it.
    fn list_parts_mut(&mut self, c: u64) -> Result<Parts> {
        let p = self.list_parts(c)?;
        if tail_claimant(self.get(c + list_header::LEN)?).is_some() {
            if self.get(c + list_header::START)? != p.start {
                self.put(c + list_header::START, p.start)?;
            }
            self.put(c + list_header::LEN, p.len)?;
        }
        Ok(p)
    }

    pub fn list_len(&self, c: Container) -> Result<u64> {
        let c = c.get();
        Ok(self.list_parts(c)?.len)
    }

    /// Item `i` (< len) of list `c`; `None` when out of range.
    pub fn list_get(&self, c: Container, i: u64) -> Result<Option<u64>> {
        let c = c.get();
        let p = self.list_parts(c)?;
        if i >= p.len {
            return Ok(None);
        }
        Ok(Some(self.get(p.slot(i))?))
    }

    /// All item words of list `c`.
    pub fn list_words(&self, c: Container) -> Result<Vec<u64>> {
        let c = c.get();
        let p = self.list_parts(c)?;
        (0..p.len).map(|i| self.get(p.slot(i))).collect()
    }

    /// Items `start..stop` (clamped).
    pub fn list_range(&self, c: Container, start: u64, stop: u64) -> Result<Vec<u64>> {
        let c = c.get();
        let p = self.list_parts(c)?;
        let stop = stop.min(p.len);
        (start.min(stop)..stop)
            .map(|i| self.get(p.slot(i)))
            .collect()
    }

    fn new_items(&mut self, cap: u64) -> Result<u64> {
        let b = self.alloc(list_items::bytes(cap))?;
        self.init(b, value::block_head(Kind::ListItems, cap))?;
        Ok(b)
    }

    /// Fills a list header made in this op with `items` (its items block sized to fit).
    pub(super) fn fill_list(&mut self, c: u64, items: &[u64]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let cap = items.len() as u64;
        let b = self.new_items(cap)?;
        for (i, &w) in items.iter().enumerate() {
            self.init(list_items::item(b, i as u64), w)?;
        }
        self.init(c + list_header::ITEMS, b)?;
        self.init(c + list_header::CAP, cap)?;
        self.init(c + list_header::LEN, cap)?;
        Ok(())
    }

    /// Replaces item `i` with `w` (already encoded); the old value is released at commit.
    pub fn list_set(&mut self, c: Container, i: u64, w: u64) -> Result<()> {
        let c = c.get();
        let p = self.list_parts_mut(c)?;
        if i >= p.len {
            return Err(corrupt("list index out of range in list_set", c));
        }
        let slot = p.slot(i);
        let old = self.get(slot)?;
        self.put(slot, w)?;
        self.release_at_commit(old)?;
        self.bump_version(c)
    }

    /// `list_set` of the word `encode` writes (a value tree). On a part, an old item the part
    /// cannot release refuses before anything is encoded, as in `dict_set_encoded`.
    pub fn list_set_encoded<E: From<Error>>(
        &mut self,
        c: Container,
        i: u64,
        encode: impl FnOnce(&mut Store) -> std::result::Result<u64, E>,
    ) -> std::result::Result<(), E> {
        let p = self.list_parts_mut(c.get())?;
        if i >= p.len {
            return Err(corrupt("list index out of range in list_set", c.get()).into());
        }
        let old = self.get(p.slot(i))?;
        self.part_release_check(old)?;
        let w = encode(self)?;
        Ok(self.list_set(c, i, w)?)
    }

    /// Appends `w`.
    pub fn list_append(&mut self, c: Container, w: u64) -> Result<()> {
        self.list_extend(c, &[w])
    }

    /// Appends `ws`, growing the items block geometrically so that appends stay O(1). An
    /// items block with no room after its last item (items taken from the front leave room
    /// before the first) is replaced by a new one that holds the items from word 0, sized for
    /// the items it will hold: a queue that stays short keeps a short block.
    pub fn list_extend(&mut self, c: Container, ws: &[u64]) -> Result<()> {
        let c = c.get();
        if ws.is_empty() {
            return Ok(());
        }
        let p = self.list_parts_mut(c)?;
        let len = p.len;
        let n = ws.len() as u64;
        let need = len
            .checked_add(n)
            .ok_or_else(|| Error::TooLarge("list too long".into()))?;
        if need > p.cap - p.start {
            let new_cap = need.max(len + len / 2 + 4).max(4);
            let b = self.new_items(new_cap)?;
            if len > 0 {
                self.copy_words(p.slot(0), list_items::item(b, 0), len)?;
            }
            for (k, &w) in ws.iter().enumerate() {
                self.init(list_items::item(b, len + k as u64), w)?;
            }
            if p.items != 0 {
                self.free_at_commit(p.items)?;
            }
            self.put(c + list_header::ITEMS, b)?;
            self.put(c + list_header::CAP, new_cap)?;
            if p.start != 0 {
                self.put(c + list_header::START, 0)?;
            }
        } else {
            for (k, &w) in ws.iter().enumerate() {
                self.put(p.slot(len + k as u64), w)?;
            }
        }
        self.put(c + list_header::LEN, need)?;
        self.list_grew = true;
        self.bump_version(c)
    }

    /// Removes item `i` (< len) and returns its word, moving no other item when `i` is the
    /// first or the last (O(1): `popleft` and `pop()`). With `release`, the word is released
    /// at commit (decode it before the op ends); without, the caller owns its reference (it
    /// stores the word elsewhere in the same change: `move_to`). `None` when out of range.
    pub fn list_take(&mut self, c: Container, i: u64, release: bool) -> Result<Option<u64>> {
        let cg = c.get();
        let p = self.list_parts_mut(cg)?;
        if i >= p.len {
            return Ok(None);
        }
        let w = self.get(p.slot(i))?;
        if i == 0 {
            // The first item: the live items start one word later. An emptied list starts
            // at word 0 again, so its block is reused from the front.
            let start = if p.len == 1 { 0 } else { p.start + 1 };
            self.put(cg + list_header::START, start)?;
            self.put(cg + list_header::LEN, p.len - 1)?;
        } else if i == p.len - 1 {
            self.put(cg + list_header::LEN, p.len - 1)?;
        } else {
            let removed = self.list_splice_inner(cg, p, i, i + 1, &[])?;
            debug_assert_eq!(removed, [w]);
        }
        if release {
            self.release_at_commit(w)?;
        }
        self.bump_version(cg)?;
        Ok(Some(w))
    }

    /// Replaces items `start..stop` with `ws` (already encoded) and returns the removed words
    /// (released at commit: decode them before the op ends if you need them).
    pub fn list_splice(
        &mut self,
        c: Container,
        start: u64,
        stop: u64,
        ws: &[u64],
    ) -> Result<Vec<u64>> {
        let c = c.get();
        let p = self.list_parts_mut(c)?;
        let len = p.len;
        let stop = stop.min(len);
        let start = start.min(stop);
        if start == len && stop == len {
            self.list_extend(Container::checked(c), ws)?;
            return Ok(Vec::new());
        }
        let removed = self.list_splice_inner(c, p, start, stop, ws)?;
        if !ws.is_empty() {
            self.list_grew = true;
        }
        for &w in &removed {
            self.release_at_commit(w)?;
        }
        self.bump_version(c)?;
        Ok(removed)
    }

    /// The splice itself (`start <= stop <= len`): returns the removed words, releases none.
    fn list_splice_inner(
        &mut self,
        c: u64,
        p: Parts,
        start: u64,
        stop: u64,
        ws: &[u64],
    ) -> Result<Vec<u64>> {
        let len = p.len;
        let removed: Vec<u64> = (start..stop)
            .map(|i| self.get(p.slot(i)))
            .collect::<Result<_>>()?;
        let k = ws.len() as u64;
        let new_len = len - (stop - start) + k;
        let tail = len - stop;
        if start == 0 && stop == 0 && k <= p.start {
            // An insert at the front with room before the first item: no item moves.
            let first = p.start - k;
            for (j, &w) in ws.iter().enumerate() {
                self.put(list_items::item(p.items, first + j as u64), w)?;
            }
            self.put(c + list_header::START, first)?;
            self.put(c + list_header::LEN, new_len)?;
        } else if new_len <= p.cap - p.start && tail <= IN_PLACE_MOVES {
            let dst = start + k;
            if dst < stop {
                for i in 0..tail {
                    let w = self.get(p.slot(stop + i))?;
                    self.put(p.slot(dst + i), w)?;
                }
            } else if dst > stop {
                for i in (0..tail).rev() {
                    let w = self.get(p.slot(stop + i))?;
                    self.put(p.slot(dst + i), w)?;
                }
            }
            for (j, &w) in ws.iter().enumerate() {
                self.put(p.slot(start + j as u64), w)?;
            }
            self.put(c + list_header::LEN, new_len)?;
        } else {
            let mut plan = Vec::with_capacity(new_len as usize);
            plan.extend((0..start).map(Item::Old));
            plan.extend(ws.iter().map(|&w| Item::New(w)));
            plan.extend((stop..len).map(Item::Old));
            self.rebuild_unchecked(c, p, &plan)?;
        }
        Ok(removed)
    }

    /// Rebuilds list `c` from `plan`: old items by index (each at most once; those left out
    /// are released at commit) and new words. One new items block, swapped in.
    pub fn list_rebuild(&mut self, c: Container, plan: &[Item]) -> Result<()> {
        let c = c.get();
        let p = self.list_parts_mut(c)?;
        let len = p.len;
        let mut used = vec![false; len as usize];
        for it in plan {
            if let Item::Old(i) = *it {
                if i >= len || std::mem::replace(&mut used[i as usize], true) {
                    return Err(Error::Usage(
                        "list changed during the operation (stale plan)".into(),
                    ));
                }
            }
        }
        for (i, u) in used.iter().enumerate() {
            if !u {
                let w = self.get(p.slot(i as u64))?;
                self.release_at_commit(w)?;
            }
        }
        self.rebuild_unchecked(c, p, plan)?;
        if plan.iter().any(|it| matches!(it, Item::New(_))) {
            self.list_grew = true;
        }
        self.bump_version(c)
    }

    fn rebuild_unchecked(&mut self, c: u64, p: Parts, plan: &[Item]) -> Result<()> {
        let new_len = plan.len() as u64;
        if p.start != 0 {
            self.put(c + list_header::START, 0)?;
        }
        if new_len == 0 {
            if p.items != 0 {
                self.free_at_commit(p.items)?;
            }
            self.put(c + list_header::ITEMS, 0)?;
            self.put(c + list_header::CAP, 0)?;
            self.put(c + list_header::LEN, 0)?;
            return Ok(());
        }
        let new_cap = new_len.max(4);
        let b = self.new_items(new_cap)?;
        for (j, it) in plan.iter().enumerate() {
            let w = match *it {
                Item::Old(i) => {
                    debug_assert!(i < p.len);
                    self.get(p.slot(i))?
                }
                Item::New(w) => w,
            };
            self.init(list_items::item(b, j as u64), w)?;
        }
        if p.items != 0 {
            self.free_at_commit(p.items)?;
        }
        self.put(c + list_header::ITEMS, b)?;
        self.put(c + list_header::CAP, new_cap)?;
        self.put(c + list_header::LEN, new_len)?;
        Ok(())
    }

    /// Reverses list `c` in place.
    pub fn list_reverse(&mut self, c: Container) -> Result<()> {
        let len = self.list_len(c)?;
        let plan: Vec<Item> = (0..len).rev().map(Item::Old).collect();
        self.list_rebuild(c, &plan)
    }
}

pub(super) fn corrupt(what: &str, offset: u64) -> Error {
    Error::Corrupt {
        what: what.into(),
        offset,
    }
}
