//! The simulated store the models run on, and the word store that kills a participant.

use persist::heap::{Block, Error, Heap, HeapStats};
use persist::region::{table::SLOT_WORDS, Geometry, Table};
use persist::sync::{
    AccessError, AtomicU64, IoFailure, Liveness, MemLiveness, MemWords, WordStore,
};
use std::cell::Cell;
use std::collections::BTreeSet;

/// Every model uses the tiny geometry: 256-byte pages, 32-page chunks, one bitmap word a chunk.
pub const GEO: Geometry = Geometry::TINY;

/// Bytes a store needs to hold its first `chunks` chunks (their meta blocks and data), in
/// whichever areas.
pub fn capacity_for(chunks: u64) -> u64 {
    assert!(chunks >= 1);
    GEO.area_start(chunks)
}

/// Runs `f` under every interleaving loom explores.
///
/// Like `loom::model`, this reads `LOOM_MAX_PREEMPTIONS` and the other `LOOM_*` variables, but
/// raises the default branch limit: a model's set-up and final `check()` touch a few hundred
/// words, and every touch of a loom atomic is a branch.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        b.max_branches = 50_000;
    }
    b.check(f);
}

/// One simulated store: its words, the lock file's participant table, and liveness flags.
pub struct World {
    pub store: MemWords,
    pub lock: MemWords,
    pub live: MemLiveness,
    pub slots: u32,
}

impl World {
    /// A fresh store that can hold `chunks` chunks and no more (growing beyond is `Full`), with
    /// participants attached and alive in slots `0..slots`. Its area table already holds one
    /// area of `chunks` chunks (none is opened yet), so that the models of pages and blocks
    /// are not also models of the area table (`bare` is, for `tests/areas.rs`).
    pub fn new(chunks: u64, slots: u32) -> World {
        World::with_areas(&[chunks], slots)
    }

    /// A fresh store as `new` makes it, with areas ending at `ends` (increasing; the last is
    /// the store's capacity in chunks).
    pub fn with_areas(ends: &[u64], slots: u32) -> World {
        let w = World::bare(*ends.last().expect("at least one area"), slots);
        for (k, &end) in ends.iter().enumerate() {
            let word = GEO.area_word(k as u64);
            w.store
                .store(word, end, std::sync::atomic::Ordering::SeqCst)
                .unwrap();
        }
        w
    }

    /// A fresh store as `new` makes it, but with an empty area table, as a real new store has.
    pub fn bare(chunks: u64, slots: u32) -> World {
        let table_bytes = slots as u64 * SLOT_WORDS * 8;
        let w = World {
            store: MemWords::new(GEO.header_bytes, capacity_for(chunks)),
            lock: MemWords::new(table_bytes, table_bytes),
            live: MemLiveness::new(slots as usize),
            slots,
        };
        for s in 0..slots {
            w.live.set_alive(s, true);
            w.table().activate(s, 1000 + s as u64, 0).unwrap();
        }
        w
    }

    pub fn table(&self) -> Table<'_, MemWords, MemLiveness> {
        Table {
            words: &self.lock,
            live: &self.live,
            base: 0,
            slots: self.slots,
        }
    }

    /// The heap as participant `me` sees it, reaching the store directly.
    pub fn heap(&self, me: u32) -> Heap<'_, MemWords, MemLiveness> {
        Heap::new(&self.store, GEO, self.table(), me)
    }

    /// The participant in `slot` dies (its OFD lock is dropped by the kernel).
    pub fn kill(&self, slot: u32) {
        self.live.set_alive(slot, false);
    }

    pub fn is_alive(&self, slot: u32) -> bool {
        self.live.is_alive(slot)
    }
}

/// The block size most models allocate: 2560 bytes, three blocks to a tiny-geometry segment
/// (a segment is a whole 32-page chunk there), so a segment is exhausted in a few steps.
pub const SIZE: u64 = 2560;
pub const BLOCKS_PER_SEGMENT: u64 = 3;

/// 512-byte blocks: fifteen to a segment, and of a class that goes through the participants'
/// block caches (`SIZE` is above the cached classes).
pub const CACHED_SIZE: u64 = 512;
pub const CACHED_PER_SEGMENT: u64 = 15;

/// Allocates `SIZE`; `None` when the store is full.
pub fn alloc_or_full<W: WordStore, L: Liveness>(h: &Heap<'_, W, L>) -> Option<Block> {
    alloc_sized_or_full(h, SIZE)
}

/// Allocates `size` bytes; `None` when the store is full.
pub fn alloc_sized_or_full<W: WordStore, L: Liveness>(
    h: &Heap<'_, W, L>,
    size: u64,
) -> Option<Block> {
    match h.alloc(size) {
        Ok(b) => Some(b),
        Err(Error::Access(AccessError::Full { .. })) => None,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// The conservation law after every participant but `by` is dead and recovered: every block in
/// `held` is allocated, and whatever else is allocated is one of `victims` (what the dead may
/// have held unlinked). Allocating until the store is full then hands out only blocks that are
/// not allocated (none held, none the dead left behind, none twice); a sweep of every segment
/// (as the object layer's gc would run it) frees exactly what the dead left behind, and
/// allocating again returns exactly those blocks, once each, after which every block of every
/// segment is accounted for.
pub fn conserve(world: &World, by: u32, held: &BTreeSet<Block>, victims: &BTreeSet<Block>) {
    conserve_sized(world, by, SIZE, BLOCKS_PER_SEGMENT, held, victims)
}

/// [`conserve`] for blocks of `size` bytes, `per_segment` to a segment.
pub fn conserve_sized(
    world: &World,
    by: u32,
    size: u64,
    per_segment: u64,
    held: &BTreeSet<Block>,
    victims: &BTreeSet<Block>,
) {
    let h = world.heap(by);
    check(&h);
    let allocated = allocated_blocks(&h);
    assert!(
        allocated.is_superset(held),
        "a held block is no longer allocated"
    );
    for b in allocated.difference(held) {
        assert!(
            victims.contains(b),
            "block {b:#x} is allocated but nobody holds it"
        );
    }
    // Recovery alone must not have put an allocated block back on a free stack: draining the
    // store now hands out only blocks that are neither held nor left allocated by the dead.
    let mut drained = BTreeSet::new();
    while let Some(b) = alloc_sized_or_full(&h, size) {
        assert!(!held.contains(&b), "held block {b:#x} handed out again");
        assert!(
            !allocated.contains(&b),
            "block {b:#x}, left allocated by the dead, handed out before a sweep freed it"
        );
        assert!(drained.insert(b), "block {b:#x} handed out twice");
    }
    h.settle(0).unwrap();
    let keep: BTreeSet<Block> = held.union(&drained).copied().collect();
    let mut segs = Vec::new();
    h.for_each_segment(|info| {
        segs.push(info.offset);
        Ok(())
    })
    .unwrap();
    for &seg in &segs {
        h.sweep_segment(seg, |b| !keep.contains(&b)).unwrap();
    }
    let st = check(&h);
    assert_eq!(
        allocated_blocks(&h),
        keep,
        "the sweep freed exactly the dead's leftovers"
    );
    assert_eq!(st.blocks_allocated, keep.len() as u64);
    // What the sweep freed comes back once, and it is exactly what the dead left allocated.
    let mut got = BTreeSet::new();
    while let Some(b) = alloc_sized_or_full(&h, size) {
        assert!(!keep.contains(&b), "block {b:#x} handed out again");
        assert!(got.insert(b), "block {b:#x} handed out twice");
    }
    // Exactly what the dead left allocated, plus free blocks that drained could not reach: a
    // free that found the segment frozen and reached its deferred stack after the thaw had
    // emptied it waits there for the next sweep (`thaw` documents this), out of reach of
    // allocation until then.
    let leftovers: BTreeSet<Block> = allocated.difference(held).copied().collect();
    assert!(
        got.is_superset(&leftovers),
        "blocks the dead left behind were lost"
    );
    for b in got.difference(&leftovers) {
        assert!(
            !allocated.contains(b),
            "block {b:#x} was allocated, yet neither held nor the dead's"
        );
    }
    let st = check(&h);
    assert_eq!(
        st.blocks_allocated,
        per_segment * st.segments,
        "blocks lost"
    );
}

/// Every allocated small block (`for_each_allocated`), quiescent use only.
pub fn allocated_blocks<W: WordStore, L: Liveness>(h: &Heap<'_, W, L>) -> BTreeSet<Block> {
    let mut s = BTreeSet::new();
    h.for_each_allocated(|b, _| {
        assert!(s.insert(b), "block {b:#x} is listed allocated twice");
    })
    .unwrap();
    s
}

/// `check()`, panicking with the allocator's own message when it fails.
pub fn check<W: WordStore, L: Liveness>(h: &Heap<'_, W, L>) -> HeapStats {
    match h.check() {
        Ok(st) => st,
        Err(e) => panic!("heap check failed: {e}"),
    }
}

/// How many more word accesses the participant being killed may make. Shared by the two
/// [`KillableWords`] (store and lock file) of one participant, and used by its thread only.
pub struct Budget {
    left: Cell<u64>,
    spent: Cell<u64>,
    refused: Cell<bool>,
}

impl Budget {
    /// A participant that dies after `k` accesses.
    pub fn new(k: u64) -> Budget {
        Budget {
            left: Cell::new(k),
            spent: Cell::new(0),
            refused: Cell::new(false),
        }
    }

    /// A participant that never dies (used to measure how many accesses an operation takes).
    pub fn unlimited() -> Budget {
        Budget::new(u64::MAX)
    }

    /// Accesses made so far.
    pub fn spent(&self) -> u64 {
        self.spent.get()
    }

    /// True once an access was refused: the participant is dead from then on.
    pub fn killed(&self) -> bool {
        self.refused.get()
    }

    /// Runs `f` without counting or refusing its accesses: what the participant's process did
    /// before the operation under test (a lookup that fills a process-local index, say), so
    /// that the kill points are the operation's own. `f` must not be what the model kills.
    pub fn uncounted<T>(&self, f: impl FnOnce() -> T) -> T {
        let (left, spent) = (self.left.get(), self.spent.get());
        assert!(!self.refused.get(), "uncounted after the kill");
        self.left.set(u64::MAX);
        let r = f();
        self.left.set(left);
        self.spent.set(spent);
        r
    }

    fn take(&self) -> Result<(), AccessError> {
        if self.left.get() == 0 {
            self.refused.set(true);
            return Err(AccessError::Io(Box::new(IoFailure {
                op: "a step",
                path: None,
                source: std::io::Error::other("killed (loom model)"),
            })));
        }
        self.left.set(self.left.get() - 1);
        self.spent.set(self.spent.get() + 1);
        Ok(())
    }
}

/// Runs `scenario(k)` as a loom model for every kill point k: first with no limit, which tells
/// how many accesses the victim's operation takes at most (n), then for every k in 0..n.
/// `scenario` returns the accesses its victim made.
pub fn every_kill_point(scenario: fn(u64) -> u64) {
    let most = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let m = most.clone();
    model(move || {
        m.fetch_max(scenario(u64::MAX), std::sync::atomic::Ordering::Relaxed);
    });
    let n = most.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n > 0);
    if std::env::var_os("LOOM_TESTS_VERBOSE").is_some() {
        eprintln!("{} kill points", n);
    }
    for k in 0..n {
        model(move || {
            scenario(k);
        });
    }
}

/// The value of an operation that a victim ran under `budget`, or `None` where the budget
/// killed it; an error without a kill fails the model.
pub fn survived<T>(r: Result<T, Error>, budget: &Budget) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(budget.killed(), "failed without being killed: {e}");
            None
        }
    }
}

/// Runs `scenario(k1, k2)` as a loom model for every kill point k1 of a victim (including none:
/// its operation completes) and every kill point k2 of the first recoverer that follows it.
/// `scenario` returns the accesses the victim and the first recoverer made.
pub fn every_kill_pair<F>(scenario: F)
where
    F: Fn(u64, u64) -> (u64, u64) + Copy + Send + Sync + 'static,
{
    let run = move |k1: u64, k2: u64| {
        let out = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
        let o = out.clone();
        model(move || {
            *o.lock().unwrap() = scenario(k1, k2);
        });
        let r = *out.lock().unwrap();
        r
    };
    let (n1, _) = run(u64::MAX, u64::MAX);
    let mut pairs = 0;
    for k1 in 0..=n1 {
        let (_, n2) = run(k1, u64::MAX);
        for k2 in 0..n2 {
            run(k1, k2);
        }
        pairs += n2 + 1;
    }
    if std::env::var_os("LOOM_TESTS_VERBOSE").is_some() {
        eprintln!("{n1} victim kill points, {pairs} (victim, recoverer) kill-point pairs");
    }
}

/// A word store over a [`MemWords`] that refuses every access once its [`Budget`] is spent, so
/// the participant using it stops right there (the allocator propagates every access error with
/// `?` and writes nothing more): a SIGKILL between two steps.
///
/// What is counted: each `word()` (every `load`/`store`/`cas` goes through it) and each
/// `grow_to`. An atomic operation that the allocator makes on a `&AtomicU64` it got from an
/// earlier `word()` is not seen here, so a kill lands before the `word()` call, never between
/// two operations on one held reference.
pub struct KillableWords<'a> {
    pub inner: &'a MemWords,
    pub budget: &'a Budget,
}

impl WordStore for KillableWords<'_> {
    fn size(&self) -> u64 {
        // Not counted: it reads no word of the store.
        self.inner.size()
    }

    fn word(&self, offset: u64) -> Result<&AtomicU64, AccessError> {
        self.budget.take()?;
        self.inner.word(offset)
    }

    fn grow_to(&self, min_size: u64) -> Result<(), AccessError> {
        self.budget.take()?;
        self.inner.grow_to(min_size)
    }

    fn max_size(&self) -> u64 {
        self.inner.max_size()
    }

    // Steps on word references the heap resolved earlier count as kill points too.
    fn step(&self) -> Result<(), AccessError> {
        self.budget.take()
    }
}

/// A participant that will be killed: its store and lock-file views share one budget.
pub struct Victim<'a> {
    pub world: &'a World,
    pub store: KillableWords<'a>,
    pub lock: KillableWords<'a>,
}

impl<'a> Victim<'a> {
    pub fn new(world: &'a World, budget: &'a Budget) -> Victim<'a> {
        Victim {
            world,
            store: KillableWords {
                inner: &world.store,
                budget,
            },
            lock: KillableWords {
                inner: &world.lock,
                budget,
            },
        }
    }

    /// The heap as participant `me` sees it through the killable words.
    pub fn heap(&self, me: u32) -> Heap<'_, KillableWords<'a>, MemLiveness> {
        let table = Table {
            words: &self.lock,
            live: &self.world.live,
            base: 0,
            slots: self.world.slots,
        };
        Heap::new(&self.store, GEO, table, me)
    }
}

/// Blocks held by the threads of a model, kept outside loom (a plain `std` mutex: loom runs one
/// thread at a time, so it never blocks and adds no interleavings). A block is entered only after
/// the allocation that returned it, and removed before the free that gives it back, so two
/// entries for one block mean it was handed out twice.
#[derive(Default)]
pub struct Held {
    set: std::sync::Mutex<BTreeSet<Block>>,
}

impl Held {
    pub fn take(&self, b: Block) {
        let fresh = self.set.lock().unwrap().insert(b);
        assert!(fresh, "block {b:#x} handed out while already held");
    }

    pub fn give(&self, b: Block) {
        let was = self.set.lock().unwrap().remove(&b);
        assert!(was, "block {b:#x} given back but not held");
    }

    pub fn snapshot(&self) -> BTreeSet<Block> {
        self.set.lock().unwrap().clone()
    }

    pub fn contains(&self, b: Block) -> bool {
        self.set.lock().unwrap().contains(&b)
    }
}
