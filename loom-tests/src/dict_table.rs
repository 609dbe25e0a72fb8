//! A dict table on the publication scaffolding ([`publication`](crate::publication)), shared by
//! the models of publications into a dict's or a set's entries (`tests/dict_insert.rs`,
//! `tests/set_delete.rs`, `tests/dict_delete.rs`): its layout (8 buckets, room for 5 entries
//! of three words, its `used`, `nentries` and claim words under the version word P), the probe
//! rule, a snapshot of its words and the consistency check ([`Table`]), the world ([`World`]:
//! the scaffolding's words, who is inside a publication, and the file's own recovery), and a
//! participant ([`Participant`]: its lookup under the claim or the part, the bounded claim, a
//! part taken with the wait for publishers, a publication under P). What each model adds (the
//! steps it plants bugs in, the recovery, the inserts, deletes and updates themselves) stays
//! in its file.

use crate::publication::{
    owner, slot_of, Objects, Spin, View, GATE_END, OTHER, P, RECORDS, SLOTS, STORE_BYTES, THIRD,
    VICTIM,
};
use crate::{Budget, KillableWords};
use loom::sync::{Arc, Mutex};
use loom::thread;
use persist::part_lock::{holder, insert_claimant, published_part, publishing, DictWords, Held};
use persist::part_lock::{BUCKET_DELETED, ENTRY_BYTES};
use persist::sync::{AccessError, Liveness, MemLiveness, MemWords, Ordering, WordStore};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

// ---- the table ----------------------------------------------------------------------------------

/// Store file (`publication`): the table's version word P (its part word), then its insert
/// claim, `used` and `nentries` words; per slot its held-parts record and its undo log block;
/// then, past the scaffolding's words (a store longer than `Objects::new` makes), the table:
/// NBUCKETS buckets and CAP entries of three words (hash, key, value).
pub const CLAIM: u64 = 24;
pub const USED: u64 = 32;
pub const NENTRIES: u64 = 40;
const _: () = assert!(NENTRIES + 8 <= RECORDS);
pub const BUCKET0: u64 = STORE_BYTES.next_multiple_of(8);
pub const NBUCKETS: u64 = 8;
pub const ENTRY0: u64 = BUCKET0 + 8 * NBUCKETS;
pub const CAP: u64 = 5;
pub const TABLE_END: u64 = ENTRY0 + ENTRY_BYTES * CAP;
const _: () = assert!(CAP < NBUCKETS);
/// An entry's key and value words (`dict_table::KEY`, `dict_table::VALUE`).
pub const KEY: u64 = 8;
pub const VALUE: u64 = 16;

pub const WORDS: DictWords = DictWords {
    claim: CLAIM,
    used: USED,
    nentries: NENTRIES,
    bucket0: BUCKET0,
    nbuckets: NBUCKETS,
    entry0: ENTRY0,
    cap: CAP,
};

pub fn bucket(i: u64) -> u64 {
    BUCKET0 + 8 * i
}

pub fn entry(e: u64) -> u64 {
    ENTRY0 + ENTRY_BYTES * e
}

/// The keys (inline words, never 0: an empty key word is a deleted entry). Their hashes are
/// the keys themselves, all on bucket 1 (and below 32: the perturbation is 0 after the first
/// probe, and the sequence is 1, 6, 7, 4, 5, 2, 3, 0): every key after the first probes on.
pub const B: u64 = 1;
pub const A: u64 = 9;
pub const X: u64 = 17;
pub const Y: u64 = 25;

pub fn hash(key: u64) -> u64 {
    key
}

/// The probe sequence of hash `h`, as `object/dict.rs` walks it (`find`, `free_bucket`):
/// `h & mask`, then CPython's perturbation, for `probe_limit` buckets.
pub fn probe(h: u64) -> impl Iterator<Item = u64> {
    const PERTURB_SHIFT: u32 = 5;
    let limit = NBUCKETS + u64::from(64 / PERTURB_SHIFT) + 1;
    let mask = NBUCKETS - 1;
    let mut i = h & mask;
    let mut perturb = h;
    (0..limit).map(move |_| {
        let at = i;
        perturb >>= PERTURB_SHIFT;
        i = (i.wrapping_mul(5).wrapping_add(perturb).wrapping_add(1)) & mask;
        at
    })
}

/// Whether value word `w` is an inline word (`object/value.rs` `is_inline`): neither the empty
/// word 0 nor a block (an offset, its low four bits 0). The models' dict values are all
/// inline words, so a live dict entry with any other value word is damage here.
pub fn is_inline(w: u64) -> bool {
    w != 0 && w & 0xf != 0
}

/// How many more times a publisher looks at a claim word held by another before it gives up
/// on the publication (the object layer's bounded `spin_until_changed`; then the part path).
pub const SPIN_LOOKS: u32 = 1;

/// What the table is: a dict's (values are any words, a deleted entry's value is emptied) or
/// a set's (every value word 0, a deleted entry's included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dict,
    Set,
}

impl Kind {
    /// What its keys are called in the checker's messages.
    fn key(self) -> &'static str {
        match self {
            Kind::Dict => "key",
            Kind::Set => "member",
        }
    }
}

/// A table's words as one read saw them: `nentries`, `used`, the entries below `nentries`
/// (at most CAP) and the buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub nentries: u64,
    pub used: u64,
    pub entries: Vec<[u64; 3]>,
    pub buckets: Vec<u64>,
}

impl Table {
    /// The words through `load`, in the order an unlocked read takes them (`dict_parts`:
    /// `used` and `nentries`; then the entries, then the buckets).
    pub fn read(load: impl Fn(u64) -> u64) -> Table {
        let used = load(USED);
        let nentries = load(NENTRIES);
        let entries = (0..nentries.min(CAP))
            .map(|e| [load(entry(e)), load(entry(e) + KEY), load(entry(e) + VALUE)])
            .collect();
        let buckets = (0..NBUCKETS).map(|i| load(bucket(i))).collect();
        Table {
            nentries,
            used,
            entries,
            buckets,
        }
    }

    /// The live entries, key -> (entry index, value word), if the words are a consistent
    /// table of `kind`: `nentries` within the table; a set's every value word 0 (so a deleted
    /// entry's too), a dict's deleted entries (key 0) with their value word emptied and its
    /// live entries with an inline value word ([`is_inline`]: never the empty word 0); each
    /// live entry of its key's hash, its key found once, by a lookup along its probe sequence;
    /// `used` the number of live entries; every bucket empty, deleted, or naming a live entry
    /// below `nentries` (never a key-0 one), and no entry named twice.
    pub fn live(&self, kind: Kind) -> Result<BTreeMap<u64, (u64, u64)>, String> {
        self.live_with(kind, is_inline)
    }

    /// [`Table::live`], with a dict's live value words checked by `value_ok` in place of
    /// [`is_inline`] (`tests/value_swap.rs`: a value word may name a block there).
    pub fn live_with(
        &self,
        kind: Kind,
        value_ok: impl Fn(u64) -> bool,
    ) -> Result<BTreeMap<u64, (u64, u64)>, String> {
        let key = kind.key();
        if self.nentries > CAP {
            return Err(format!("nentries {} past the table's {CAP}", self.nentries));
        }
        let mut live = BTreeMap::new();
        for (e, &[h, k, v]) in self.entries.iter().enumerate() {
            if kind == Kind::Set && v != 0 {
                return Err(format!("entry {e} has value {v} ({self:?})"));
            }
            if k == 0 {
                if v != 0 {
                    return Err(format!("deleted entry {e} keeps value {v} ({self:?})"));
                }
                continue;
            }
            if kind == Kind::Dict && !value_ok(v) {
                return Err(format!(
                    "live entry {e} ({key} {k}) has value {v:#x}, not an inline word ({self:?})"
                ));
            }
            if h != hash(k) {
                return Err(format!("entry {e}: {key} {k} with hash {h} ({self:?})"));
            }
            if live.insert(k, (e as u64, v)).is_some() {
                return Err(format!("{key} {k} in two live entries ({self:?})"));
            }
        }
        if self.used != live.len() as u64 {
            return Err(format!(
                "used {} with {} live entries ({self:?})",
                self.used,
                live.len()
            ));
        }
        let mut named = vec![false; self.entries.len()];
        for (i, &b) in self.buckets.iter().enumerate() {
            if b == 0 || b == BUCKET_DELETED {
                continue;
            }
            let e = b - 1;
            if e >= self.nentries {
                return Err(format!(
                    "bucket {i} names entry {e}, past nentries {} ({self:?})",
                    self.nentries
                ));
            }
            if self.entries[e as usize][1] == 0 {
                return Err(format!("bucket {i} names deleted entry {e} ({self:?})"));
            }
            if std::mem::replace(&mut named[e as usize], true) {
                return Err(format!("entry {e} named by two buckets ({self:?})"));
            }
        }
        for (&k, &(e, _)) in &live {
            if self.find(k) != Some(e) {
                return Err(format!(
                    "{key} {k} (entry {e}) is not found by a lookup ({self:?})"
                ));
            }
        }
        Ok(live)
    }

    /// A lookup of `key` (`dict.rs`'s `find`: a key-0 entry matches nothing): the entry it
    /// finds.
    pub fn find(&self, key: u64) -> Option<u64> {
        for i in probe(hash(key)) {
            let b = self.buckets[i as usize];
            if b == 0 {
                return None;
            }
            if b != BUCKET_DELETED {
                let e = (b - 1) as usize;
                if e < self.entries.len() && self.entries[e][1] == key {
                    return Some(e as u64);
                }
            }
        }
        None
    }
}

// ---- the world ----------------------------------------------------------------------------------

/// Which participants are inside a publication: kept outside loom (a plain mutex; loom runs
/// one thread at a time, so it adds no interleavings).
#[derive(Default)]
pub struct Inside {
    changes: std::sync::Mutex<u32>,
}

impl Inside {
    pub fn enter_change(&self, slot: u32) {
        *self.changes.lock().unwrap() |= 1 << slot;
    }

    pub fn leave_change(&self, slot: u32) {
        *self.changes.lock().unwrap() &= !(1 << slot);
    }

    /// Whether a slot other than `slot` is inside a publication.
    pub fn other_change(&self, slot: u32) -> bool {
        *self.changes.lock().unwrap() & !(1 << slot) != 0
    }
}

/// How a model file recovers dead slot `dead` as slot `by` (its own copy of
/// `object/recovery.rs`'s order, with its planted bugs): the lock file, the store, `by`, `dead`.
pub type Recover = fn(&MemWords, &MemWords, u32, u32) -> Result<(), AccessError>;

/// The words (`Objects`, which a `World` derefs to), who is inside, what the table is, and
/// how the model recovers the dead.
pub struct World {
    pub objects: Objects,
    pub inside: Inside,
    pub kind: Kind,
    pub recover: Recover,
}

impl Deref for World {
    type Target = Objects;

    fn deref(&self) -> &Objects {
        &self.objects
    }
}

impl World {
    /// A table of `kind` that held `entries` (key, value), in entries 0.. in that order, each
    /// in the first free bucket of its probe sequence, of which the keys `deleted` were
    /// deleted since (as `dict.rs`'s `delete_entry`: the bucket deleted, the key and value
    /// words emptied, `used` one less; the entry keeps its place).
    pub fn new(kind: Kind, recover: Recover, entries: &[(u64, u64)], deleted: &[u64]) -> World {
        assert!(entries.len() as u64 <= CAP);
        // `Objects::new`, with room for the table past the scaffolding's words.
        let objects = Objects {
            lock_file: MemWords::new(GATE_END, GATE_END),
            store: MemWords::new(TABLE_END, TABLE_END),
            live: MemLiveness::new(SLOTS as usize),
            recovery: Mutex::new(()),
        };
        for s in 0..SLOTS {
            objects.live.set_alive(s, true);
        }
        let w = World {
            objects,
            inside: Inside::default(),
            kind,
            recover,
        };
        let put = |at: u64, v: u64| w.store.store(at, v, Ordering::Relaxed).unwrap();
        for (e, &(k, v)) in entries.iter().enumerate() {
            let e = e as u64;
            put(entry(e), hash(k));
            put(entry(e) + KEY, k);
            if v != 0 {
                put(entry(e) + VALUE, v);
            }
            let i = probe(hash(k))
                .find(|&i| w.word(bucket(i)) == 0)
                .expect("a free bucket");
            put(bucket(i), e + 1);
        }
        put(NENTRIES, entries.len() as u64);
        put(USED, entries.len() as u64);
        for &k in deleted {
            let e = entries
                .iter()
                .position(|&(x, _)| x == k)
                .expect("a key of the table") as u64;
            let i = probe(hash(k))
                .find(|&i| w.word(bucket(i)) == e + 1)
                .expect("its bucket");
            put(bucket(i), BUCKET_DELETED);
            put(entry(e) + KEY, 0);
            put(entry(e) + VALUE, 0);
            put(USED, w.word(USED) - 1);
        }
        w
    }

    /// The table as its words are now.
    pub fn table(&self) -> Table {
        Table::read(|at| self.word(at))
    }

    /// The live entries once nothing is in flight, key -> (entry, value), the table checked
    /// (`Table::live`).
    pub fn live(&self) -> BTreeMap<u64, (u64, u64)> {
        self.table()
            .live(self.kind)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// What must hold once nothing is in flight and the dead are recovered: the table
    /// consistent and unclaimed, and `Objects::assert_quiet` (the part free, every record, log
    /// and `active` empty, the store lock free).
    pub fn assert_quiet(&self) {
        self.live();
        let what = match self.kind {
            Kind::Dict => "dict",
            Kind::Set => "set",
        };
        assert_eq!(
            self.word(CLAIM),
            0,
            "the {what} is left claimed: {:#x}",
            self.word(CLAIM)
        );
        self.objects.assert_quiet();
    }

    /// A live participant recovers dead slot `dead` (the model's `recover`), one recoverer at
    /// a time. (The dead is no longer inside from its death on: it writes nothing more.)
    pub fn recover_live(&self, by: u32, dead: u32) {
        self.inside.leave_change(dead);
        let _one_at_a_time = self.recovery.lock().unwrap();
        (self.recover)(&self.lock_file, &self.store, by, dead).unwrap();
    }

    /// The recovery of the victim repeated (by the other participant), if it died.
    pub fn recover_again(&self) {
        if !self.live.is_alive(VICTIM) {
            self.recover_live(OTHER, VICTIM);
        }
    }

    /// The first recovery of the dead victim by a third participant killed after `k` accesses
    /// (`recover`: the model's recovery, through killable words); then, as its death left
    /// things: a claim naming the victim exists only while the victim's `active` still names
    /// P (else nobody would settle it), and once that `active` is clear the table is settled
    /// (consistent, unclaimed) and, if `changed` (the victim's change committed), P moved.
    /// Then a second recovery, by the other participant. The first recoverer's accesses.
    pub fn recover_killed(
        &self,
        k: u64,
        recover: impl Fn(&KillableWords<'_>, &KillableWords<'_>, u32, u32) -> Result<(), AccessError>,
        changed: bool,
    ) -> u64 {
        let budget = Budget::new(k);
        let (lock_file, store) = self.killable(&budget);
        if let Err(e) = recover(&lock_file, &store, THIRD, VICTIM) {
            assert!(budget.killed(), "the recoverer failed unkilled: {e}");
        }
        let spent = budget.spent();
        let active = self.active(VICTIM);
        if insert_claimant(self.word(CLAIM)) == Some(VICTIM) {
            assert_eq!(
                active,
                publishing(P),
                "the dead publisher's claim outlived the active word that leads to it"
            );
        }
        if active == 0 {
            assert_eq!(
                self.word(CLAIM),
                0,
                "a recovered publication left its claim"
            );
            self.live();
            if changed {
                assert_ne!(
                    self.word(P),
                    0,
                    "a recovered publication left the version unmoved"
                );
            }
        }
        self.recover_live(OTHER, VICTIM);
        spent
    }
}

/// The victim's thread: `op` (the victim, killed), then, if it died, its recovery at once by a
/// third participant.
pub fn spawn_victim<T: Send + 'static>(
    world: &Arc<World>,
    op: impl FnOnce(&World) -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let world = world.clone();
    thread::spawn(move || {
        let out = op(&world);
        if !world.live.is_alive(VICTIM) {
            world.recover_live(THIRD, VICTIM);
        }
        out
    })
}

// ---- participants -------------------------------------------------------------------------------

/// What an insert (a set's add) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The key was missing and is now in the table.
    Inserted,
    /// The key was there already: nothing changed.
    Present,
}

/// What a lookup found, under the claim or the part: `nentries`, `used`, the key's bucket and
/// entry, and (the key missing and the table with room) the first free bucket on its probe
/// sequence.
pub struct Lookup {
    pub n: u64,
    pub used: u64,
    pub found: Option<(u64, u64)>,
    pub free: Option<u64>,
}

/// A participant's view through `W` (killable for a victim): its parts, store lock and undo
/// log (`View`, which it derefs to: `put`, `commit`, `enter`), and the world.
pub struct Participant<'a, W: WordStore> {
    pub world: &'a World,
    pub view: View<'a, W>,
}

impl<'a, W: WordStore> Deref for Participant<'a, W> {
    type Target = View<'a, W>;

    fn deref(&self) -> &View<'a, W> {
        &self.view
    }
}

impl<W: WordStore> DerefMut for Participant<'_, W> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.view
    }
}

impl<'a, W: WordStore> Participant<'a, W> {
    pub fn new(
        world: &'a World,
        lock_file: &'a W,
        store: &'a W,
        slot: u32,
    ) -> Result<Self, AccessError> {
        Ok(Participant {
            world,
            view: View::new(lock_file, store, slot)?,
        })
    }

    pub fn load(&self, at: u64) -> Result<u64, AccessError> {
        // Relaxed: under the claim (its Acquire CAS) or the part (its AcqRel CAS), nobody
        // else changes the table's words.
        self.store.load(at, Ordering::Relaxed)
    }

    /// One word stored as the part_lock steps store them (a `step`, then the store).
    pub fn set(&self, at: u64, w: u64, o: Ordering) -> Result<(), AccessError> {
        self.store.step()?;
        self.store.store(at, w, o)
    }

    /// Takes `part` in record entry 0, waiting while another holds it; then, if `wait` (a
    /// model may plant a taker that skips it), waits until no publication under it is in
    /// flight (`publisher_of`), recovering a dead publisher (and a dead holder).
    pub fn take(&self, part: u64, wait: bool) -> Result<Held, AccessError> {
        let held = loop {
            match self.parts.try_take(0, part)? {
                Ok(h) => break h,
                Err(word) => match holder(word) {
                    Some(h) if !self.world.live.is_alive(slot_of(h)) => {
                        self.world.recover_live(self.slot, slot_of(h));
                    }
                    Some(h) => {
                        assert_ne!(h, owner(self.slot), "a part taken twice by its holder");
                        thread::yield_now();
                    }
                    // Moved under us: try again at once.
                    None => {}
                },
            }
        };
        if wait {
            while let Some((s, seen)) = self.parts.publisher_of(part)? {
                assert_eq!(published_part(seen), Some(part));
                if self.world.live.is_alive(s) {
                    thread::yield_now();
                } else {
                    self.world.recover_live(self.slot, s);
                }
            }
            assert!(
                !self.world.inside.other_change(self.slot),
                "a part taker went on beside a publication"
            );
        }
        Ok(held)
    }

    /// The table read as a claimant (or a part change) reads it, nobody else changing it:
    /// `used` and `nentries` (`dict_parts`); the key looked up (`find`: its bucket and entry;
    /// an inserter skips it in a table without room, `full_stops`) and, missing in a table
    /// with room, the first free bucket (empty or deleted) on its probe sequence
    /// (`free_bucket`). A bucket past `nentries` is damage here (`find` raises).
    pub fn lookup(&self, key: u64, full_stops: bool) -> Result<Lookup, AccessError> {
        let used = self.load(USED)?;
        let n = self.load(NENTRIES)?;
        assert!(
            n <= CAP && used <= n,
            "slot {} read used {used}, nentries {n}",
            self.slot
        );
        let mut l = Lookup {
            n,
            used,
            found: None,
            free: None,
        };
        if n >= CAP && full_stops {
            return Ok(l);
        }
        let h = hash(key);
        for i in probe(h) {
            let b = self.load(bucket(i))?;
            if b == 0 {
                break;
            }
            if b != BUCKET_DELETED {
                let e = b - 1;
                assert!(
                    e < n,
                    "slot {} found bucket {i} naming entry {e} past nentries {n} under its claim \
                     or part",
                    self.slot
                );
                if self.load(entry(e))? == h && self.load(entry(e) + KEY)? == key {
                    l.found = Some((i, e));
                    return Ok(l);
                }
            }
        }
        if n >= CAP {
            return Ok(l);
        }
        for i in probe(h) {
            let b = self.load(bucket(i))?;
            if b == 0 || b == BUCKET_DELETED {
                l.free = Some(i);
                return Ok(l);
            }
        }
        panic!("a table with room has no free bucket");
    }

    /// `Store::claim_entries`: the claim taken by `claim` (`Parts::claim_insert`, a CAS, or a
    /// model's broken copy; held by another, `SPIN_LOOKS` more looks at it, then give up).
    /// False: not taken.
    pub fn claim_entries(
        &self,
        claim: impl Fn() -> Result<Result<(), u64>, AccessError>,
    ) -> Result<bool, AccessError> {
        let mut looks = 0;
        loop {
            match claim()? {
                Ok(()) => return Ok(true),
                Err(now) => {
                    assert_ne!(
                        insert_claimant(now),
                        Some(self.slot),
                        "a claim of our own in our way"
                    );
                    // `spin_until_changed`, bounded.
                    loop {
                        if looks == SPIN_LOOKS {
                            return Ok(false);
                        }
                        looks += 1;
                        thread::yield_now();
                        if self.load(CLAIM)? != now {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// A publication under P: announced (`enter_publish`; withdrawn: None, the part path's
    /// turn), `body` run inside it (None: it gave up, nothing changed), its end (P moved by 2
    /// if `changed` says so).
    pub fn publish<T>(
        &self,
        body: impl FnOnce() -> Result<Option<T>, AccessError>,
        changed: impl FnOnce(&Option<T>) -> bool,
    ) -> Result<Option<T>, AccessError> {
        if self.parts.enter_publish(P, &Spin)?.is_err() {
            return Ok(None);
        }
        self.world.inside.enter_change(self.slot);
        let out = body()?;
        self.world.inside.leave_change(self.slot);
        self.parts.end_publish(P, changed(&out), &Spin)?;
        Ok(out)
    }
}

/// Runs `f` as victim slot `slot` through killable words with budget `k`; a victim that is
/// killed dies (its liveness flag drops, as the kernel's lock does). Returns the accesses it
/// made.
pub fn as_victim<T>(
    world: &World,
    slot: u32,
    k: u64,
    f: impl FnOnce(&mut Participant<'_, KillableWords<'_>>) -> Result<T, AccessError>,
) -> (Option<T>, u64) {
    let budget = Budget::new(k);
    let (lock_file, store) = world.killable(&budget);
    let r = Participant::new(world, &lock_file, &store, slot).and_then(|mut p| f(&mut p));
    let out = match r {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                budget.killed(),
                "the victim failed without being killed: {e}"
            );
            world.live.set_alive(slot, false);
            None
        }
    };
    (out, budget.spent())
}
