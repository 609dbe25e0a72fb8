//! Whole-graph walks: stats, check and gc. All iterative (a work list, never recursion), all
//! run holding the writer word (so no change happens meanwhile) without making the sequence
//! odd (readers keep going: nothing they can reach changes).

use super::layout::lock_words;
use super::value::{self, Kind};
use super::view::{Child, Value};
use super::{container, held, slot_words, words, Error, Result, Store};
use crate::region::table;
use crate::sync::{Ordering, WordStore};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Walks of the allocated blocks a gc makes before it takes a damaged-looking free stack for
/// real damage (`allocated`).
const WALK_TRIES: u32 = 3;

/// What `Store::stats` reports (Python: `persist.Store.stats()`).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub file_size: u64,
    pub pages_used: u64,
    pub pages_free: u64,
    pub live_bytes: u64,
    pub objects: BTreeMap<&'static str, u64>,
    pub processes: u64,
}

/// What `Store::check` found (problems are errors; these are facts).
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub objects: u64,
    pub live_blocks: u64,
    pub live_bytes: u64,
    /// Allocated blocks that nothing reaches (cycles, leftovers): `gc` frees them.
    pub unreachable_blocks: u64,
    pub unreachable_bytes: u64,
    /// Containers kept only by proxies.
    pub orphans: u64,
    /// References counted by live containers that come from no live value (a dead cycle's, or
    /// a release a killed process never ran): `gc` drops them.
    pub leaked_references: u64,
    pub held: u64,
}

/// What `Store::gc` freed.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub objects: u64,
    pub blocks: u64,
    pub bytes: u64,
}

/// Why a block is live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Container,
    Owned,
    Part,
    Internal,
}

#[derive(Default)]
struct Mark {
    blocks: HashMap<u64, Role>,
    /// References to each container found in live containers and tuples (and the root word).
    refs: HashMap<u64, u64>,
    objects: BTreeMap<&'static str, u64>,
    held: u64,
    orphans: u64,
    /// The bytes each live value block says it holds (its head's length), checked against
    /// the block the allocator gave it: a damaged length must not reach into a neighbour.
    spans: HashMap<u64, u64>,
}

impl Store {
    /// Runs `f` holding the writer word (or inside `thread`'s own lockExcl section).
    fn maintenance<T>(
        &mut self,
        thread: u64,
        f: impl FnOnce(&mut Store) -> Result<T>,
    ) -> Result<T> {
        if self.held_by(thread) == Some(super::LockKind::Excl) {
            return f(self);
        }
        if self.held_by(thread) == Some(super::LockKind::Shared) {
            return Err(Error::Usage(
                "check, gc and stats need the writer lock: unlock lockShared first".into(),
            ));
        }
        self.take_writer()?;
        if !self.parts_on() {
            return self.as_writer_unsequenced(f);
        }
        // Single changes may run beside us while the sequence is even: the walk closes the
        // gate as a section does (readers then wait for it) and lets those in flight end.
        self.locks.writing = true;
        self.part.lock().seq_begin()?;
        let r = self.drain_gate(true).and_then(|()| f(self));
        let ended = if r.is_ok() {
            self.commit_log()
        } else {
            self.rollback_to(0)
        };
        self.locks.writing = false;
        self.part.lock().end_change()?;
        ended?;
        r
    }

    /// The walk's starting points: the root dict, what held sets name, the orphan list; and
    /// every attached participant's undo log and held-set blocks, marked as internal.
    fn mark_roots(&self, m: &mut Mark) -> Result<Vec<u64>> {
        let mut stack: Vec<u64> = Vec::new();
        let root = self.get(words::ROOT)?;
        if root != 0 {
            self.check_container(root, Some(Kind::Dict))?;
            *m.refs.entry(root).or_default() += 1;
            stack.push(root);
        }
        // Held sets: entries may be in flux (a reader between `hold` and its re-check), so an
        // entry that is not an allocated container is skipped, not an error.
        let mut held = Vec::new();
        held::for_each_held(&self.part, u32::MAX, |c| {
            held.push(c);
            Ok(())
        })?;
        for c in held {
            if value::is_block(c)
                && self
                    .get(c)
                    .is_ok_and(|h| value::head_kind(h).is_some_and(Kind::is_container))
            {
                m.held += 1;
                stack.push(c);
            }
        }
        let mut o = self.get(words::ORPHANS)?;
        let mut steps = 0u64;
        while o != 0 {
            self.check_container(o, None)?;
            m.orphans += 1;
            stack.push(o);
            o = self.get(o + container::ORPHAN_NEXT)?;
            super::orphans::orphan_walk_step(self.mem(), &mut steps)?;
        }
        let t = self.part.table();
        for slot in 0..t.slots {
            if t.status(slot)? != table::STATUS_ATTACHED {
                continue;
            }
            let log = self
                .lock_mem()
                .load(t.word_offset(slot, slot_words::UNDO), Ordering::SeqCst)?;
            if log != 0 {
                m.blocks.insert(log, Role::Internal);
            }
            held::for_each_held_block(&self.part, slot, |b| {
                m.blocks.insert(b, Role::Internal);
                Ok(())
            })?;
        }

        Ok(stack)
    }

    /// Marks everything live: reachable from the root, named by a held set or the orphan list,
    /// and the internal blocks (undo logs, held chains).
    fn mark(&self, strict: bool) -> Result<Mark> {
        let mut m = Mark::default();
        let mut stack = self.mark_roots(&mut m)?;
        let mut budget = self.mem().size() / 8 + 16;
        while let Some(w) = stack.pop() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return Err(Error::Corrupt {
                    what: "the object graph has more references than the store has words".into(),
                    offset: w,
                });
            }
            let v = self.value(w)?;
            match v {
                Value::Empty
                | Value::None
                | Value::Bool(_)
                | Value::Int(_)
                | Value::ShortStr(_) => continue,
                Value::List(c)
                | Value::Dict(c)
                | Value::Object(c)
                | Value::Set(c)
                | Value::Cache(c) => {
                    let c = c.get();
                    if m.blocks.contains_key(&c) {
                        continue;
                    }
                    // The gate is drained (or parts never came on): no part is held, so an
                    // odd version is a part that no holder or recoverer released.
                    let version = self.get(c + container::VERSION)?;
                    if strict && version % 2 == 1 {
                        return Err(Error::Corrupt {
                            what: format!(
                                "a container's version word is odd ({version:#x}): a part                                  lock left held with no change in flight"
                            ),
                            offset: c,
                        });
                    }
                    m.blocks.insert(c, Role::Container);
                    if let Value::Cache(_) = v {
                        // Every entry a cache entry block, the counts its header keeps right.
                        self.cache_opts(super::Container::checked(c))?;
                        self.cache_check_entries(c)?;
                    }
                }
                Value::Str(_)
                | Value::Bytes(_)
                | Value::BigInt(_)
                | Value::Float { .. }
                | Value::Packed { .. }
                | Value::Tuple { .. }
                | Value::FrozenSet { .. } => {
                    if m.blocks.insert(w, Role::Owned).is_some() {
                        return Err(Error::Corrupt {
                            what: format!(
                                "a {} is referred to twice (cross-linked)",
                                v.type_name()
                            ),
                            offset: w,
                        });
                    }
                    m.spans.insert(w, v.owned_span().unwrap_or(0));
                }
            }
            if let Value::Packed { kind, payload } = v {
                // Every field in range: what Python would refuse to build is damage.
                self.packed(kind, payload, |_| ())?;
            }
            *m.objects.entry(v.type_name()).or_default() += 1;
            let mut children = Vec::new();
            let mut last_member_hash = None;
            self.for_each_child(v, |child| {
                match child {
                    Child::Part(b) => self.mark_part(&mut m, b, w)?,
                    Child::Word(c) => children.push(c),
                    Child::Member { hash, word } => {
                        // Members in ascending order of hash (lookups rely on it), none a
                        // container (a frozenset holds only hashable values).
                        if last_member_hash.is_some_and(|h| h > hash)
                            || self.names_container(word)?
                            || (strict && self.hash_word(word)? != hash)
                        {
                            return Err(Error::Corrupt {
                                what: "a frozenset member is out of order, a container, or has \
                                       a wrong hash"
                                    .into(),
                                offset: w,
                            });
                        }
                        last_member_hash = Some(hash);
                        children.push(word);
                    }
                    Child::Entry {
                        index,
                        hash,
                        key,
                        value,
                    } => {
                        if strict && self.hash_word(key)? != hash {
                            return Err(Error::Corrupt {
                                what: format!("dict entry {index} has a wrong hash"),
                                offset: w,
                            });
                        }
                        // A set's members have no value: anything else is damage (it would
                        // hold a reference that no release drops).
                        if matches!(v, Value::Set(_)) && value != value::EMPTY {
                            return Err(Error::Corrupt {
                                what: format!("set entry {index} has a value word"),
                                offset: w,
                            });
                        }
                        children.push(key);
                        children.push(value);
                    }
                }
                Ok(())
            })?;
            for c in children {
                if self.names_container(c)? {
                    *m.refs.entry(c).or_default() += 1;
                }
                stack.push(c);
            }
        }
        Ok(m)
    }

    fn mark_part(&self, m: &mut Mark, block: u64, owner: u64) -> Result<()> {
        if m.blocks.insert(block, Role::Part).is_some() {
            return Err(Error::Corrupt {
                what: "a container's items or table block is shared with another".into(),
                offset: owner,
            });
        }
        Ok(())
    }

    /// Allocated blocks (offset -> bytes) that no live participant holds unlinked.
    fn allocated(&self) -> Result<HashMap<u64, u64>> {
        let mut all = HashMap::new();
        // The walk reads the segments' free stacks unfrozen. A few takes still run outside
        // the gate, where this section does not keep them out (a read that grows its held
        // set, a first undo log block): one that pops a block from a stack as it is walked
        // makes the stack look damaged. Such a walk is made again; damage that is real is
        // still there on the last try. (A walk that is wrong without an error only makes a
        // free block a candidate, which the sweep, on a frozen stack, never frees, or misses
        // a garbage block until the next gc.)
        let mut tries = 0;
        loop {
            all.clear();
            match self.part.heap().for_each_allocated(|off, size| {
                all.insert(off.get(), size);
            }) {
                Ok(()) => break,
                Err(crate::heap::Error::Corrupt { .. }) if tries < WALK_TRIES => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
        for b in self.part.heap().journaled_blocks()? {
            all.remove(&b.get());
        }
        Ok(all)
    }

    /// For every live container whose reference count differs from the references the walk
    /// found to it from live words: the count minus those references. Above 0, references from
    /// dead blocks (an unreachable cycle, a release a killed process never ran): leaked, and
    /// gc's to drop. Below 0, damage: the container would be freed while still referred to.
    fn excess_references(&self, m: &Mark) -> Result<Vec<(u64, i64)>> {
        let mut v = Vec::new();
        for (&b, &role) in &m.blocks {
            if role != Role::Container {
                continue;
            }
            let rc = self.refcount(b)?;
            let found = m.refs.get(&b).copied().unwrap_or(0);
            if rc != found {
                let excess = i64::try_from(rc)
                    .ok()
                    .and_then(|rc| rc.checked_sub(i64::try_from(found).ok()?))
                    .ok_or_else(|| Error::Corrupt {
                        what: format!("a container has reference count {rc}"),
                        offset: b,
                    })?;
                v.push((b, excess));
            }
        }
        v.sort_unstable();
        Ok(v)
    }

    /// Full integrity check of allocator and graph (Python: `persist.Store.check()`).
    pub fn check(&mut self, thread: u64) -> Result<CheckReport> {
        // Killed processes are not damage: recover them first (unless this thread's own
        // section holds the writer word, when no other participant can be mid-change).
        if self.held_by(thread).is_none() {
            self.recover_dead()?;
        }
        if self.part.is_readonly() && self.dead_processes()? > 0 {
            return Err(Error::ReadOnly(
                "killed processes left work in flight that only a writable opener can recover: \
                 open the store without readonly=True to check it"
                    .into(),
            ));
        }
        self.maintenance(thread, |s| s.check_locked())
    }

    fn check_locked(&mut self) -> Result<CheckReport> {
        self.check_participants()?;
        self.part.heap().check()?;
        let m = self.mark(true)?;
        let all = self.allocated()?;
        let mut r = CheckReport {
            held: m.held,
            orphans: m.orphans,
            ..Default::default()
        };
        for (&b, &role) in &m.blocks {
            let Some(&size) = all.get(&b) else {
                return Err(Error::Corrupt {
                    what: format!("a live block ({role:?}) is not allocated"),
                    offset: b,
                });
            };
            if let Some(&span) = m.spans.get(&b) {
                if span > size {
                    return Err(Error::Corrupt {
                        what: format!(
                            "a {} says it holds {span} bytes but its block has {size}",
                            value::kind_name(self.get(b)?)
                        ),
                        offset: b,
                    });
                }
            }
            r.live_blocks += 1;
            r.live_bytes += size;
            if role == Role::Container {
                r.objects += 1;
            }
        }
        for (&b, &size) in &all {
            if !m.blocks.contains_key(&b) {
                r.unreachable_blocks += 1;
                r.unreachable_bytes += size;
            }
        }
        for (b, excess) in self.excess_references(&m)? {
            if excess < 0 {
                return Err(Error::Corrupt {
                    what: format!(
                        "a {} has reference count {} but {} references",
                        value::kind_name(self.get(b)?),
                        self.refcount(b)?,
                        m.refs.get(&b).copied().unwrap_or(0)
                    ),
                    offset: b,
                });
            }
            r.leaked_references += excess as u64;
        }
        Ok(r)
    }

    /// The store lock and every participant's undo log, as they must be while this process
    /// holds the writer word: the word names this participant, the sequence is even (no
    /// change in flight), the shared count is the sum of the participants' holds, and every
    /// other participant's undo log is well-formed and empty (only a writer has entries).
    fn check_participants(&self) -> Result<()> {
        let bad = |what: String, offset: u64| Error::Corrupt { what, offset };
        let lock = self.lock_mem();
        let writer = lock.load(lock_words::WRITER, Ordering::SeqCst)?;
        if writer != self.part.lock().me() {
            return Err(bad(
                format!("the writer word is {writer:#x} while this checker holds it"),
                lock_words::WRITER,
            ));
        }
        let seq = lock.load(lock_words::SEQ, Ordering::SeqCst)?;
        // While parts are on, the walk itself made the sequence odd to close the gate.
        let in_section = self.locks_excl_open() || self.parts_on();
        if seq % 2 == 1 && !in_section {
            return Err(bad(
                format!("the sequence word is odd ({seq}) with no change in flight"),
                lock_words::SEQ,
            ));
        }
        let t = self.part.table();
        let mut shared = 0u64;
        for slot in 0..t.slots {
            if t.status(slot)? != table::STATUS_ATTACHED {
                continue;
            }
            shared += lock.load(t.word_offset(slot, slot_words::SHARED), Ordering::SeqCst)?;
            let log = lock.load(t.word_offset(slot, slot_words::UNDO), Ordering::SeqCst)?;
            if log == 0 {
                continue;
            }
            let (_, len) =
                super::undo::open_log(self.mem(), log, &format!("participant {slot}'s"))?;
            if len != 0 && slot != self.part.slot() {
                return Err(bad(
                    format!(
                        "participant {slot}'s undo log has {len} entries while it is not the \
                         writer"
                    ),
                    log,
                ));
            }
        }
        let global = lock.load(lock_words::SHARED, Ordering::SeqCst)?;
        if global != shared {
            return Err(bad(
                format!("the shared count is {global}, the participants hold {shared}"),
                lock_words::SHARED,
            ));
        }
        Ok(())
    }

    /// Frees every allocated block that nothing reaches or holds (unreachable cycles).
    ///
    /// Never inside `thread`'s lockExcl section (`Error::Usage`): the section's undo log names
    /// blocks the walk does not reach but the section's end still needs (what it unlinked,
    /// freed at commit; what it allocated, freed by a rollback; what a rollback links again).
    /// gc would free them, and the commit or the rollback would then free them a second time
    /// or link them again (FORMAT.md §10.5).
    pub fn gc(&mut self, thread: u64) -> Result<GcReport> {
        self.part
            .refuse_if_readonly("gc writes the store: open it without readonly=True")?;
        if self.held_by(thread) == Some(super::LockKind::Excl) {
            return Err(Error::Usage(
                "gc cannot run inside a lockExcl section or transaction(): its commit or \
                 rollback still needs blocks that gc would free; call gc after unlock()"
                    .into(),
            ));
        }
        // Dead participants' blocks come back through their recovery, which knows which of
        // them are free (their caches) and which the dead still held (its held set, its log).
        if self.held_by(thread).is_none() {
            self.recover_dead()?;
        }
        self.maintenance(thread, |s| {
            if held::any_pinned(&s.part, u32::MAX)? {
                // A read-only process holds more containers than its slot can name: any of
                // them may be garbage now, so none is freed until it lets go.
                return Ok(GcReport::default());
            }
            s.gc_locked()
        })
    }

    fn gc_locked(&mut self) -> Result<GcReport> {
        // Orphans whose holders are gone first (cheap, and it shrinks the live set).
        let mut report = GcReport {
            objects: self.collect_orphans_now()?,
            ..Default::default()
        };
        let m = self.mark(false)?;
        // What attached slots name, read before the walk of allocated blocks: a recovery
        // running now (it needs no writer word) frees a dead participant's cached, held-set
        // and log blocks while a slot word names each, so each is named here, or already free
        // in the walk (`Heap::named_blocks`, FORMAT.md §7.10). A live participant's cache and
        // journals are spared by the sweep itself as well.
        let named: HashSet<u64> = self
            .part
            .heap()
            .named_blocks()?
            .into_iter()
            .map(|b| b.get())
            .collect();
        let all = self.allocated()?;
        let garbage: HashSet<u64> = all
            .keys()
            .copied()
            .filter(|b| !m.blocks.contains_key(b) && !named.contains(b))
            .collect();
        // The garbage is freed without reading it: an unreachable block may be one a killed
        // process took from the allocator and never wrote, holding the words of its last owner,
        // whose references were dropped when it was freed. What the dead containers among the
        // garbage really held is the excess of the live containers' counts over the references
        // the walk found: that is dropped instead (a count that falls to 0 leaves a held
        // container on the orphan list, as any release does).
        for &b in &garbage {
            if let Ok(h) = self.get(b) {
                if value::head_kind(h).is_some_and(Kind::is_container) {
                    report.objects += 1;
                }
            }
        }
        let mut work = Vec::new();
        self.forget_held_scan();
        for (c, excess) in self.excess_references(&m)? {
            if excess > 0 {
                // One store, whatever the excess (a damaged count may be huge).
                let found = m.refs.get(&c).copied().unwrap_or(0);
                self.store_now(c + container::REFCNT, found)?;
                if found == 0 {
                    self.collect_container(c, &mut work, super::encode::Way::Now)?;
                }
            }
        }
        self.release_all(work)?;
        let bytes: u64 = garbage.iter().map(|b| all[b]).sum();
        let freed = self.part.heap().sweep(|b| garbage.contains(&b.get()))?;
        report.blocks = freed;
        report.bytes = bytes;
        Ok(report)
    }

    /// Figures for `Store.stats()` (Python: `persist.Store.stats()`).
    pub fn stats(&mut self, thread: u64) -> Result<Stats> {
        self.maintenance(thread, |s| {
            let hs = s.part.heap().check()?;
            let m = s.mark(false)?;
            let mut live = 0;
            for (&b, role) in &m.blocks {
                if *role != Role::Internal {
                    live += s
                        .part
                        .heap()
                        .usable_size(crate::heap::Block::from_word(b))?;
                }
            }
            Ok(Stats {
                file_size: s.mem().size(),
                pages_used: hs.pages.pages_used,
                pages_free: hs.pages.pages_free,
                live_bytes: live,
                objects: m.objects,
                processes: s.processes()?,
            })
        })
    }
}
