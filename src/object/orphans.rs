//! The orphan list collected on a part of its own (FORMAT.md §10.5, "Collection on a part").
//!
//! Problem. A container dropped while a process holds a proxy of it (a popped record, a
//! replaced one) goes on the orphan list, and the first change after its last proxy goes
//! collected the list store-wide: every record a worker popped cost a store-wide change, and
//! two poppers of records made 0.6x the pops of one.
//!
//! Mechanism. The list has a part word of its own (`words::ORPHANS_PART`). A collector takes
//! it as a single change takes a container's part ([`Store::begin_part_at`]: past the gate,
//! named in its held-parts record), so collectors take turns, and sections and store-wide
//! changes wait for it as for any part change. Under it, it walks the list; each orphan that
//! no held set names is taken off the list (an `OrphanUnlinked` entry logged first, then one
//! store) and freed through the undo log as a store-wide collection frees it. Part changes
//! that push orphans (a CAS of the head, `push_orphan_on_part`) run beside it: only the holder
//! of the part removes, so the list changes under it only at the head. An orphan at the head is
//! taken off by a CAS of the head, or, once something was pushed in front of it, by a store
//! to its new predecessor.
//!
//! Recovery. A rollback, by the collector or by the recoverer of a dead one (before its part
//! is released), puts each orphan it took off back on the list unless it is there
//! ([`relist`]). What the part does not cover makes the collection run store-wide, as before:
//! an orphan linked again (its count above 0, which only store-wide changes raise), a tree
//! that a part drop could not release (a container another reference reaches, a cache, more
//! than the drop limits), more releases than a part change logs before its commit point.

use super::encode::{Way, LOGGED_RELEASES_MOST};
use super::layout::{container, undo::Entry, words};
use super::view::Value;
use super::{Error, Result, Store};
use crate::heap;
use crate::region::Mapping;
use crate::sync::{AccessError, Ordering, WordStore};

impl Store {
    /// Collects the orphan list on its part where it can: `Ok(true)` when it did (or the list
    /// is empty), `Ok(false)` when it must run store-wide instead (parts off, a durable or
    /// read-only store, a lock held here, or something the part does not cover; nothing is
    /// changed then). `Busy` as [`Store::begin_part`].
    pub fn collect_orphans_on_part(&mut self) -> Result<bool> {
        if !self.has_orphans() {
            return Ok(true);
        }
        if !self.begin_part_at(words::ORPHANS_PART, None)? {
            return Ok(false);
        }
        if let Err(e) = self.unlink_collectable_orphans() {
            let fallback = self.take_part_fallback();
            // The rollback puts back every orphan this change took off the list.
            self.end_part(false)?;
            return if fallback { Ok(false) } else { Err(e) };
        }
        match self.end_part(true) {
            Ok(()) => Ok(true),
            // More releases than a part change runs before its commit point: undone.
            Err(_) if self.take_part_fallback() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Under the orphan list's part: takes each orphan that no held set names off the list and
    /// releases it through the undo log (its blocks freed at commit). Refuses (the part
    /// fallback) what the part does not cover.
    fn unlink_collectable_orphans(&mut self) -> Result<()> {
        self.forget_held_scan();
        let stop = self.log.len() + LOGGED_RELEASES_MOST;
        let mut work = Vec::new();
        // The last orphan walked that stays on the list (None: none yet, the head word).
        let mut kept = None;
        // Acquire: pairs with a pusher's Release CAS (its `orphan next` and flag are seen).
        let mut c = self.mem().load(words::ORPHANS, Ordering::Acquire)?;
        // The held sets read once the list is seen, before any count is: a pusher's hold that
        // this read misses was let go of after that pusher's change ended (committed, or
        // rolled back and the orphan linked again), and the counts read below see that end.
        // Read at the first orphan's count instead, a rolled-back push could be freed
        // (loom's `orphan_collect.rs`, models 6 and 7, `count-before-scan`).
        if c != 0 {
            self.held_now(c)?;
        }
        let mut steps = 0u64;
        while c != 0 {
            self.check_container(c, None)?;
            let next = self.get(c + container::ORPHAN_NEXT)?;
            if self.refcount(c)? != 0 {
                // Linked again (store-wide): the store-wide walk takes it off and unflags it.
                return self.part_refuse();
            }
            // Seen on the list, then the held sets read after a SeqCst fence (`HeldScan`):
            // a read that reached `c` before it was dropped and holds it now fails its
            // re-check (the drop moved the part it read), and no other way leads to `c`.
            if self.held_now(c)? {
                kept = Some(c);
            } else {
                self.orphan_releases_on_part(c)?;
                // Logged before the store that takes it off: a rollback from anywhere after
                // finds the entry and puts it back if it is off the list.
                self.log_entry(Entry::OrphanUnlinked { container: c })?;
                self.unlink_orphan(kept, c, next)?;
                self.free_container(c, &mut work, Way::Logged)?;
            }
            c = next;
            orphan_walk_step(self.mem(), &mut steps)?;
        }
        self.release_logged_until(&mut work, stop)?;
        if !work.is_empty() {
            return self.part_refuse();
        }
        self.maybe_die(super::store::AppendDeath::OrphansUnlinked);
        Ok(())
    }

    /// Refuses the part unless every value orphan `c` refers to can be released on a part
    /// (`part_release_check`: an owned leaf, or a tree that only this reference reaches). A
    /// cache is refused whole, as a part drop refuses one.
    fn orphan_releases_on_part(&mut self, c: u64) -> Result<()> {
        let v = self.value(c)?;
        if matches!(v, Value::Cache(_)) {
            return self.part_refuse();
        }
        let mut refs = Vec::new();
        self.child_words(v, &mut refs)?;
        for w in refs {
            self.part_release_check(w)?;
        }
        Ok(())
    }

    /// Takes orphan `c` (followed by `next`) off the list. `kept`: the last orphan walked before
    /// it that stays, whose link only the part's holder writes; None: every orphan walked
    /// before `c` was taken off, so `c` is first unless something was pushed in front of it
    /// since.
    fn unlink_orphan(&self, kept: Option<u64>, c: u64, next: u64) -> Result<()> {
        let before = match kept {
            Some(p) => p,
            None => {
                let list = self.mem().word(words::ORPHANS)?;
                // Relaxed on success: this store publishes nothing (pushers read the head only
                // to link in front of it). Acquire on failure: the head seen was stored by a
                // push's Release CAS (a release sequence covers every push up to it), so the
                // walk below reads the links of the orphans pushed since as their pushers
                // stored them (loom's `orphan_collect.rs`, `relaxed-cas-failure`).
                match list.compare_exchange(c, next, Ordering::Relaxed, Ordering::Acquire) {
                    Ok(_) => return Ok(()),
                    // Pushed in front of `c` since the walk read the head.
                    Err(first) => self.orphan_before(first, c)?,
                }
            }
        };
        self.store_now(before + container::ORPHAN_NEXT, next)
    }

    /// The orphan whose link names `c`, walking from `from` (pushed since `c` was first).
    fn orphan_before(&self, from: u64, c: u64) -> Result<u64> {
        let mut at = from;
        for _ in 0..=self.mem().size() / 16 {
            if at == 0 {
                break;
            }
            let after = self.get(at + container::ORPHAN_NEXT)?;
            if after == c {
                return Ok(at);
            }
            at = after;
        }
        Err(Error::Corrupt {
            what: "an orphan being collected is not on the orphan list".into(),
            offset: c,
        })
    }
}

/// One more step of a walk of the orphan list: `Corrupt` once it has taken more steps than the
/// store could hold containers (16 bytes each at least), since then the list loops.
pub(super) fn orphan_walk_step(mem: &Mapping, steps: &mut u64) -> Result<()> {
    *steps += 1;
    if *steps > mem.size() / 16 {
        return Err(Error::Corrupt {
            what: "the orphan list loops".into(),
            offset: words::ORPHANS,
        });
    }
    Ok(())
}

/// Puts orphan `c` (flagged, taken off the list by a collection that is being rolled back)
/// back on the orphan list, unless it is there. Only the holder of the list's part (or the
/// recoverer of a dead one, before it releases the part) calls this, so nothing else takes `c`
/// off or puts it on meanwhile: pushers skip a flagged container.
pub(super) fn relist(mem: &Mapping, c: u64) -> std::result::Result<(), heap::Error> {
    let corrupt = |what: &str| heap::Error::Corrupt {
        what: what.into(),
        offset: c,
    };
    let head = mem.load(c, Ordering::Acquire)?;
    let is_container = super::value::head_kind(head).is_some_and(|k| k.is_container());
    if c % 16 != 0 || !is_container || head & container::ORPHAN_FLAG == 0 {
        return Err(corrupt("an unlinked orphan names no flagged container"));
    }
    let list = mem.word(words::ORPHANS)?;
    // Acquire: pairs with the pushers' Release CAS, so the links walked are those the pushers
    // stored (with a stale link the walk could miss `c` and list it twice: loom's
    // `orphan_collect.rs`, `relaxed-relist-walk`). The Acquire of each link is not needed.
    let mut n = list.load(Ordering::Acquire);
    let mut steps = 0u64;
    while n != 0 {
        if n == c {
            return Ok(());
        }
        n = mem.load(n + container::ORPHAN_NEXT, Ordering::Acquire)?;
        steps += 1;
        if steps > mem.size() / 16 {
            return Err(corrupt("the orphan list loops"));
        }
    }
    Ok(push_flagged(mem, c)?)
}

/// Links container `c`, already flagged, in front of the orphan list by CAS, beside other
/// pushes: its `orphan next` first, then the head (Release), again from the head seen until the
/// CAS takes. The push of a part change (`push_orphan_on_part`) and of a rollback (`relist`).
/// Plain stores: durable stores, whose stores need a persist barrier, never take parts.
pub(super) fn push_flagged(mem: &Mapping, c: u64) -> std::result::Result<(), AccessError> {
    let list = mem.word(words::ORPHANS)?;
    // Relaxed: only the CAS below publishes; its Release orders the link before it.
    let mut first = list.load(Ordering::Relaxed);
    loop {
        mem.store(c + container::ORPHAN_NEXT, first, Ordering::Relaxed)?;
        // Release: `c`'s link and flag before `c` is on the list, for any reader of the head
        // (loom's `orphan_push.rs`, model 4): a collector on the list's part walks it beside
        // pushes (its Acquire of the head pairs with this).
        match list.compare_exchange(first, c, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(now) => first = now,
        }
    }
}
