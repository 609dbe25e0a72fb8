//! Writing values into the store (a `Tree` becomes blocks and a value word) and releasing
//! them (an owned value is freed, a container reference dropped, a container no one refers to
//! or holds freed with everything it owns). Both walk without recursion.

use super::key::hash_node;
use super::layout::undo::Entry;
use super::layout::{dict_header, list_header, owned};
use super::tree::{Node, Tree};
use super::value::{self, Kind};
use super::view::{Child, Value};
use super::{container, words, Error, Result, Store};
use crate::sync::{Ordering, WordStore};

/// Work deferred to commit.
#[derive(Clone, Copy, Debug)]
pub(super) enum Release {
    /// Drop one reference held by a value word.
    Value(u64),
    /// Free a block that nothing links (an old items array or dict table).
    Block(u64),
}

impl Store {
    /// Writes `t` into the store and returns its value word. Inside an op: every block is
    /// logged as allocated and every reference count change as a word change, so a rollback
    /// undoes all of it. Containers in the tree get the reference the returned word makes.
    pub fn encode(&mut self, t: &Tree) -> Result<u64> {
        if let Some(n) = t.as_scalar() {
            return self.encode_scalar(n);
        }
        Ok(self.encode_tree(t, false)?.0)
    }

    /// Encodes the items of `t`'s root (a list, tuple or dict node: for a dict, keys and
    /// values alternate) without storing the root itself, unless an item refers back to it
    /// (then the root becomes a container that only those items refer to).
    pub fn encode_items(&mut self, t: &Tree) -> Result<Vec<u64>> {
        Ok(self.encode_tree(t, true)?.1)
    }

    fn encode_tree(&mut self, t: &Tree, items_only: bool) -> Result<(u64, Vec<u64>)> {
        // A new container is new blocks that nothing links until the change does: it may be
        // written on the part of the container it goes into. A reference to a container
        // already stored is not: its reference count is changed store-wide only (two parts'
        // changes could otherwise both change one container's count).
        if t.nodes.iter().any(|x| matches!(x, Node::Ref(_))) {
            self.part_refuse()?;
        }
        self.encoded_objects.clear();
        let n = t.nodes.len();
        let root = t.root as usize;
        let root_shared = items_only
            && t.nodes
                .iter()
                .any(|x| matches!(x, Node::Shared(j) if *j as usize == root));
        let skip_root = items_only && !root_shared;
        let root_kids: Vec<u32> = match t.node(t.root) {
            Node::List(r) | Node::Tuple(r) | Node::Dict(r) | Node::Object(_, r) if items_only => {
                t.kids(r).to_vec()
            }
            _ if items_only => return Err(Error::Usage("value tree: items of a scalar".into())),
            _ => Vec::new(),
        };
        // Pass 1: a header for every container node, so that any node can refer to any
        // container (shared references, cycles) while pass 2 fills them.
        let mut word = self.container_headers(t, skip_root.then_some(root))?;
        let mut refs = vec![0u64; n];
        // Pass 2, children before parents (the tree builder numbers nodes so that children
        // come after their parent; `Shared` may point anywhere, but only at containers, whose
        // words pass 1 made).
        for i in (0..n).rev() {
            if skip_root && i == root {
                continue;
            }
            let w = match t.node(i as u32) {
                Node::Shared(j) => {
                    let j = *j as usize;
                    if j >= n || !t.nodes[j].is_container() {
                        return Err(Error::Usage(
                            "value tree: shared reference to a non-container".into(),
                        ));
                    }
                    refs[j] += 1;
                    word[j]
                }
                Node::Ref(c) => {
                    let off = c.get();
                    self.check_container(off, None)?;
                    let rc = self.get(off + container::REFCNT)?;
                    self.put(off + container::REFCNT, rc + 1)?;
                    off
                }
                Node::List(r) => {
                    let items: Vec<u64> = t.kids(r).iter().map(|&c| word[c as usize]).collect();
                    self.fill_list(word[i], &items)?;
                    refs[i] += 1;
                    word[i]
                }
                Node::Dict(r) | Node::Object(_, r) => {
                    self.fill_dict(t, i as u32, t.kids(r), &word)?;
                    refs[i] += 1;
                    word[i]
                }
                Node::Set(r) => {
                    self.fill_set(t, word[i], t.kids(r), &word)?;
                    refs[i] += 1;
                    word[i]
                }
                Node::Cache(_) => {
                    refs[i] += 1;
                    word[i]
                }
                Node::Tuple(r) => self.new_tuple(t.kids(r), &word)?,
                Node::FrozenSet(r) => self.new_frozenset(t, t.kids(r), &word)?,
                scalar => self.encode_scalar(scalar)?,
            };
            word[i] = w;
        }
        for (i, node) in t.nodes.iter().enumerate() {
            if skip_root && i == root {
                continue;
            }
            if node.is_container() {
                // The container's own node counts once (refs[i] includes it), Shared nodes once
                // each; a root encoded only for its items has no link of its own.
                let own = if items_only && i == root { 1 } else { 0 };
                self.init(word[i] + container::REFCNT, refs[i] - own)?;
            }
        }
        let items = root_kids.iter().map(|&c| word[c as usize]).collect();
        Ok((word[root], items))
    }

    /// A header for every container node of `t` but `skip` (pass 1 of `encode_tree`): the
    /// node's word, 0 for the other nodes.
    fn container_headers(&mut self, t: &Tree, skip: Option<usize>) -> Result<Vec<u64>> {
        let mut word = vec![0u64; t.nodes.len()];
        for (i, node) in t.nodes.iter().enumerate() {
            if skip == Some(i) {
                continue;
            }
            match node {
                Node::List(_) => word[i] = self.new_list_header()?,
                Node::Dict(_) => word[i] = self.new_dict_header(Kind::Dict)?,
                Node::Set(_) => word[i] = self.new_dict_header(Kind::Set)?,
                Node::Cache(o) => word[i] = self.new_cache_header(o)?,
                Node::Object(..) => {
                    word[i] = self.new_dict_header(Kind::Object)?;
                    self.encoded_objects.push((i as u32, word[i]));
                }
                _ => {}
            }
        }
        Ok(word)
    }

    /// Fills dict (or object) node `i`'s header, made by pass 1: its table of the entries
    /// `kids` (key, value, key, value...), whose words are in `word`, and an object's class.
    fn fill_dict(&mut self, t: &Tree, i: u32, kids: &[u32], word: &[u64]) -> Result<()> {
        let d = word[i as usize];
        let mut entries = Vec::with_capacity(kids.len() / 2);
        for pair in kids.chunks_exact(2) {
            let h = hash_node(t, pair[0])?;
            entries.push((h, word[pair[0] as usize], word[pair[1] as usize]));
        }
        let table = self.build_table(&entries)?;
        self.init(d + dict_header::TABLE, table)?;
        self.init(d + dict_header::USED, entries.len() as u64)?;
        self.init(d + dict_header::NENTRIES, entries.len() as u64)?;
        if let Node::Object(class, _) = t.node(i) {
            let cw = self.encode_scalar(&Node::Str(class.as_bytes().into()))?;
            self.init(d + dict_header::CLASS, cw)?;
        }
        Ok(())
    }

    /// Fills set header `s`, made by pass 1: a dict table of the members `kids` (distinct,
    /// as Python's set made them), whose words are in `word`, each with an empty value.
    fn fill_set(&mut self, t: &Tree, s: u64, kids: &[u32], word: &[u64]) -> Result<()> {
        let mut entries = Vec::with_capacity(kids.len());
        for &m in kids {
            entries.push((hash_node(t, m)?, word[m as usize], value::EMPTY));
        }
        let table = self.build_table(&entries)?;
        self.init(s + dict_header::TABLE, table)?;
        self.init(s + dict_header::USED, entries.len() as u64)?;
        self.init(s + dict_header::NENTRIES, entries.len() as u64)?;
        Ok(())
    }

    /// A tuple block of the items `kids`, whose words are in `word`.
    fn new_tuple(&mut self, kids: &[u32], word: &[u64]) -> Result<u64> {
        self.tuple_block(kids.iter().map(|&c| word[c as usize]))
    }

    /// A new tuple of the inline words `items` (None, bools, small ints, short strs): one
    /// block with no references, which a change of one list may append on the list's part
    /// alone, or a publication without a lock (parts.rs).
    pub fn encode_tuple_of(&mut self, items: &[u64]) -> Result<u64> {
        if !items.iter().all(|&w| value::is_inline(w)) {
            return Err(Error::Usage("a tuple of inline words only".into()));
        }
        self.tuple_block(items.iter().copied())
    }

    fn tuple_block(&mut self, items: impl ExactSizeIterator<Item = u64>) -> Result<u64> {
        let n = items.len() as u64;
        let b = self.alloc(owned::tuple_bytes(n))?;
        self.init(b, value::block_head(Kind::Tuple, n))?;
        for (k, w) in items.enumerate() {
            self.init(owned::tuple_item(b, k as u64), w)?;
        }
        Ok(b)
    }

    /// A frozenset block of the members `kids`, whose words are in `word`: each with its
    /// stable hash, in ascending order of hash (lookups of a frozenset key match members by
    /// hash).
    fn new_frozenset(&mut self, t: &Tree, kids: &[u32], word: &[u64]) -> Result<u64> {
        let mut members = Vec::with_capacity(kids.len());
        for &c in kids {
            members.push((hash_node(t, c)?, word[c as usize]));
        }
        members.sort_unstable();
        let b = self.alloc(owned::set_bytes(members.len() as u64))?;
        self.init(b, value::block_head(Kind::FrozenSet, members.len() as u64))?;
        for (k, &(h, w)) in members.iter().enumerate() {
            let at = owned::set_member(b, k as u64);
            self.init(at, h)?;
            self.init(at + 8, w)?;
        }
        Ok(b)
    }

    /// Writes container tree `t` as a container that no value refers to: it lives while a
    /// held set names it (the caller holds it in this op), on the orphan list like any
    /// container whose last reference went. For copies that are not linked anywhere yet.
    pub fn create_unlinked(&mut self, t: &Tree) -> Result<super::Container> {
        // The orphan list is the store's: store-wide.
        self.part_refuse()?;
        if !t.node(t.root).is_container() {
            return Err(Error::Usage(
                "value tree: an unlinked value must be a container".into(),
            ));
        }
        let c = self.encode(t)?;
        let rc = self.get(c + container::REFCNT)?;
        self.put(c + container::REFCNT, rc - 1)?;
        if rc == 1 {
            let first = self.get(words::ORPHANS)?;
            let head = self.get(c)?;
            self.put(c + container::ORPHAN_NEXT, first)?;
            self.put(c, head | container::ORPHAN_FLAG)?;
            self.put(words::ORPHANS, c)?;
        }
        Ok(super::Container::checked(c))
    }

    /// The word of a scalar node (allocating a block when it does not fit in the word).
    pub(super) fn encode_scalar(&mut self, node: &Node) -> Result<u64> {
        // None, bools, small ints and short strs: the word itself.
        if let Some(w) = value::inline_word(node) {
            return Ok(w);
        }
        Ok(match node {
            Node::Int(v) => self.owned_bytes(Kind::BigInt, &v.to_le_bytes())?,
            Node::BigInt(b) => match value::twos_to_i64(b).and_then(value::small_int) {
                Some(w) => w,
                None => {
                    let b = value::minimal_twos(b.clone());
                    self.owned_bytes(Kind::BigInt, &b)?
                }
            },
            Node::Float(f) => {
                let b = self.alloc(16)?;
                self.init(b, value::block_head(Kind::Float, 8))?;
                self.init(b + owned::PAYLOAD, f.to_bits())?;
                b
            }
            Node::Str(s) => self.owned_bytes(Kind::Str, s)?,
            Node::Bytes(b) => self.owned_bytes(Kind::Bytes, b)?,
            Node::Packed(k, b) => self.owned_bytes(*k, b)?,
            other => {
                return Err(Error::Usage(format!(
                    "value tree: {other:?} is not a scalar"
                )))
            }
        })
    }

    fn owned_bytes(&mut self, k: Kind, b: &[u8]) -> Result<u64> {
        let blk = self.alloc(8 + b.len() as u64)?;
        self.init(blk, value::block_head(k, b.len() as u64))?;
        self.write_bytes(blk + owned::PAYLOAD, b)?;
        Ok(blk)
    }

    fn new_list_header(&mut self) -> Result<u64> {
        let b = self.alloc(list_header::BYTES)?;
        self.init(b, value::block_head(Kind::List, 0))?;
        for off in (8..list_header::BYTES).step_by(8) {
            self.init(b + off, 0)?;
        }
        Ok(b)
    }

    fn new_dict_header(&mut self, k: Kind) -> Result<u64> {
        let b = self.alloc(dict_header::BYTES)?;
        self.init(b, value::block_head(k, 0))?;
        for off in (8..dict_header::BYTES).step_by(8) {
            self.init(b + off, 0)?;
        }
        Ok(b)
    }

    /// A new empty dict with reference count `rc`.
    pub(super) fn new_dict(&mut self, rc: u64) -> Result<u64> {
        let d = self.new_dict_header(Kind::Dict)?;
        self.init(d + container::REFCNT, rc)?;
        Ok(d)
    }
}

// ---- the store's hash of a key ---------------------------------------------------------

// ---- release --------------------------------------------------------------------------------

/// How a release writes: inside the change, before its commit point (reference counts and the
/// orphan list through the undo log, each block to free as a free-block entry, freed after the
/// commit point exactly once, by the writer or by the recoverer of a dead one), or at once
/// (past the commit point, or outside any change: a kill part-way leaks the rest to gc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    Logged,
    Now,
}

/// The most entries a commit's releases add to its undo log: a larger release (a long list
/// dropped whole) runs the rest past the commit point, as before (its log block stays small;
/// a kill there leaks the rest to gc).
pub(super) const LOGGED_RELEASES_MOST: u64 = 1024;

impl Store {
    /// Runs the change's release entries inside the change, before its commit point
    /// (`Way::Logged`), until they have added `LOGGED_RELEASES_MOST` entries to the log.
    /// Returns the work left (to run past the commit point with `release_all`).
    pub(super) fn release_in_change(&mut self) -> Result<Vec<Release>> {
        let mut work = Vec::new();
        if !self.log.has_releases() {
            return Ok(work);
        }
        self.forget_held_scan();
        let n = self.log.len();
        let stop = n + LOGGED_RELEASES_MOST;
        for i in 0..n {
            if let Some(Entry::Release { value }) = self.log.entry(&self.part, i)? {
                if let Value::Str(_)
                | Value::Bytes(_)
                | Value::BigInt(_)
                | Value::Float { .. }
                | Value::Packed { .. } = self.value(value)?
                {
                    // A value that owns nothing else: its entry becomes its free.
                    self.log.release_as_free(&self.part, i, value)?;
                    continue;
                }
                work.push(Release::Value(value));
                self.release_logged_until(&mut work, stop)?;
            }
        }
        Ok(work)
    }

    /// Runs releases from `work` through the undo log until it holds `stop` entries; what is
    /// left stays in `work`.
    pub(super) fn release_logged_until(
        &mut self,
        work: &mut Vec<Release>,
        stop: u64,
    ) -> Result<()> {
        while self.log.len() < stop {
            let Some(r) = work.pop() else { break };
            self.release_one(r, work, Way::Logged)?;
        }
        Ok(())
    }

    /// Performs deferred releases at once (past the commit point, or in a change that frees
    /// unreachable things: orphans, gc). Freed containers release what they own; the walk is
    /// a work list, never recursion.
    pub(super) fn release_all(&mut self, mut work: Vec<Release>) -> Result<()> {
        self.forget_held_scan();
        while let Some(r) = work.pop() {
            self.release_one(r, &mut work, Way::Now)?;
        }
        Ok(())
    }

    /// One release: frees an owned value or a block, or drops a container reference (and
    /// collects the container if it was the last), queueing what a freed value owns.
    fn release_one(&mut self, r: Release, work: &mut Vec<Release>, way: Way) -> Result<()> {
        let w = match r {
            Release::Block(b) => return self.free_block(b, way),
            Release::Value(w) => w,
        };
        match self.value(w)? {
            Value::Empty | Value::None | Value::Bool(_) | Value::Int(_) | Value::ShortStr(_) => {}
            Value::Str(_)
            | Value::Bytes(_)
            | Value::BigInt(_)
            | Value::Float { .. }
            | Value::Packed { .. } => self.free_block(w, way)?,
            v @ (Value::Tuple { .. } | Value::FrozenSet { .. }) => {
                self.for_each_child(v, |child| {
                    if let Child::Word(item) | Child::Member { word: item, .. } = child {
                        work.push(Release::Value(item));
                    }
                    Ok(())
                })?;
                self.free_block(w, way)?;
            }
            Value::List(c)
            | Value::Dict(c)
            | Value::Object(c)
            | Value::Set(c)
            | Value::Cache(c) => {
                let c = c.get();
                let rc = self.refcount(c)?;
                if rc == 0 {
                    return Err(Error::Corrupt {
                        what: "releasing a container whose reference count is 0".into(),
                        offset: c,
                    });
                }
                self.release_store(c + container::REFCNT, rc - 1, way)?;
                if rc == 1 {
                    self.collect_container(c, work, way)?;
                }
            }
        }
        Ok(())
    }

    /// Frees block `b` (`Way::Now`), or logs it to be freed past the commit point.
    fn free_block(&mut self, b: u64, way: Way) -> Result<()> {
        match way {
            Way::Logged => self.free_at_commit(b),
            Way::Now => Ok(self.part.heap().free(crate::heap::Block::from_word(b))?),
        }
    }

    /// A store of a release: logged (`put`) inside the change, else at once (`store_now`).
    fn release_store(&mut self, off: u64, v: u64, way: Way) -> Result<()> {
        match way {
            Way::Logged => self.put(off, v),
            Way::Now => self.store_now(off, v),
        }
    }

    /// A container with no references left: freed, unless a held set names it (then it goes
    /// on the orphan list until its last holder lets go).
    pub(super) fn collect_container(
        &mut self,
        c: u64,
        work: &mut Vec<Release>,
        way: Way,
    ) -> Result<()> {
        if self.part_change.is_some() {
            // Dropped on a part (`part_drop_check`), while the part is held. The held sets are
            // read after a SeqCst fence (`HeldScan::read`, the fence of
            // `Parts::before_reading_held_sets`): the writer's side of the held-set handshake,
            // model-checked by loom's `a_held_container_is_never_freed`. Either a reader that
            // found `c` under the part sees the part moved when it re-checks after its hold, or
            // this sees its hold. A held container goes on the orphan list, pushed by CAS.
            if self.held_now(c)? {
                // Held by this process too until the change has ended: a collector on the
                // list's part (which runs beside this change) must not free `c` before this
                // change commits, since a rollback links `c` again. The hold is seen by any
                // collector that sees `c` on the list (stored before the push's Release CAS).
                self.held.hold(&self.part, c)?;
                self.pushed_on_part.push(c);
                return self.push_orphan_on_part(c);
            }
            return self.free_container(c, work, way);
        }
        if self.held_now(c)? {
            let head = self.get(c)?;
            if head & container::ORPHAN_FLAG == 0 {
                let first = self.get(words::ORPHANS)?;
                self.release_store(c + container::ORPHAN_NEXT, first, way)?;
                self.release_store(c, head | container::ORPHAN_FLAG, way)?;
                self.release_store(words::ORPHANS, c, way)?;
            }
            return Ok(());
        }
        if self.get(c)? & container::ORPHAN_FLAG != 0 {
            // Still on the orphan list: the list walk frees it.
            return Ok(());
        }
        self.free_container(c, work, way)
    }

    /// Pushes container `c` (no reference left, held by a process; `part_drop_check` found it
    /// off the list) on the orphan list from a part change (FORMAT.md §10.5). Other part
    /// changes may push at once, and the holder of the list's own part may take orphans off
    /// (`orphans.rs`); every other writer of it runs store-wide, after the gate drains. Its
    /// stores are outside the undo log: a rollback (the count back to 1) leaves `c` on the
    /// list, flagged, and the list walk drops it, as any orphan linked again.
    fn push_orphan_on_part(&mut self, c: u64) -> Result<()> {
        let head = self.get(c)?;
        if head & container::ORPHAN_FLAG != 0 {
            return Ok(());
        }
        // The flag before the push: a container is never pushed twice. A kill between the two
        // leaves it flagged and off the list, which only gc then reclaims.
        self.store_now(c, head | container::ORPHAN_FLAG)?;
        Ok(super::orphans::push_flagged(self.mem(), c)?)
    }

    /// Frees a container's blocks, queueing the values it refers to.
    pub(super) fn free_container(
        &mut self,
        c: u64,
        work: &mut Vec<Release>,
        way: Way,
    ) -> Result<()> {
        let v = self.value(c)?;
        if v.container().map(|k| k.get()) != Some(c) {
            return Err(Error::Corrupt {
                what: format!("freeing a {} as a container", v.type_name()),
                offset: c,
            });
        }
        // A set's entries hold no value: a word there is damage (check reports it), never
        // released, so it cannot drop a reference that is not the set's.
        let set = matches!(v, Value::Set(_));
        self.for_each_child(v, |child| {
            match child {
                Child::Word(w) => work.push(Release::Value(w)),
                Child::Part(b) => work.push(Release::Block(b)),
                Child::Member { word, .. } => work.push(Release::Value(word)),
                Child::Entry { key, value, .. } => {
                    work.push(Release::Value(key));
                    if !set {
                        work.push(Release::Value(value));
                    }
                }
            }
            Ok(())
        })?;
        self.free_block(c, way)
    }

    /// A store outside the undo log (commit-time work: reference counts, the orphan list).
    /// A durable store puts every earlier write on disk first (a persist barrier), so that the
    /// disk holds only states a SIGKILL could leave (FORMAT.md §10.8).
    pub(super) fn store_now(&self, off: u64, v: u64) -> Result<()> {
        self.mem().barrier()?;
        self.mem().store(off, v, Ordering::Relaxed)?;
        Ok(())
    }

    /// Checks that `len` bytes at `off` lie in the store.
    pub(super) fn check_span(&self, off: u64, len: u64) -> Result<()> {
        self.bytes_ptr(off, len)?;
        Ok(())
    }

    /// Frees the orphans that no held set names any more, and drops from the list those that
    /// were linked again. Runs inside an op, before its commit point: the list's new words, the
    /// counts and the frees go through the undo log (up to `LOGGED_RELEASES_MOST` entries; a
    /// larger collection runs the rest at once), so a kill part-way undoes it, or its
    /// recoverer finishes the frees, and leaks nothing. (Run at once, a kill between freeing an
    /// orphan's header and releasing what it held left all of that to gc.)
    pub fn collect_orphans(&mut self) -> Result<u64> {
        self.collect_orphans_as(Way::Logged)
    }

    /// `collect_orphans` for gc, which runs under a writer word of its own with no undo log:
    /// every store at once.
    pub(super) fn collect_orphans_now(&mut self) -> Result<u64> {
        self.collect_orphans_as(Way::Now)
    }

    fn collect_orphans_as(&mut self, way: Way) -> Result<u64> {
        self.forget_held_scan();
        let mut c = self.get(words::ORPHANS)?;
        let mut keep = Vec::new();
        let mut free = Vec::new();
        let mut steps = 0u64;
        while c != 0 {
            self.check_container(c, None)?;
            let next = self.get(c + container::ORPHAN_NEXT)?;
            let rc = self.get(c + container::REFCNT)?;
            if rc == 0 && self.held_now(c)? {
                keep.push(c);
            } else {
                let head = self.get(c)?;
                self.release_store(c, head & !container::ORPHAN_FLAG, way)?;
                if rc == 0 {
                    free.push(c);
                }
            }
            c = next;
            super::orphans::orphan_walk_step(self.mem(), &mut steps)?;
        }
        let mut head = 0;
        for &k in keep.iter().rev() {
            self.release_store(k + container::ORPHAN_NEXT, head, way)?;
            head = k;
        }
        self.release_store(words::ORPHANS, head, way)?;
        let n = free.len() as u64;
        let stop = self.log.len() + LOGGED_RELEASES_MOST;
        let mut work = Vec::new();
        for c in free {
            self.free_container(c, &mut work, way)?;
        }
        self.maybe_die(super::store::AppendDeath::OrphansFreed);
        if way == Way::Logged {
            self.release_logged_until(&mut work, stop)?;
        }
        self.release_all(work)?;
        Ok(n)
    }

    /// Whether the orphan list is non-empty (cheap).
    pub fn has_orphans(&self) -> bool {
        self.mem()
            .load(words::ORPHANS, Ordering::Relaxed)
            .is_ok_and(|w| w != 0)
    }
}
