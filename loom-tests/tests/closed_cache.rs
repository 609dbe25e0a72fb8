//! A block cache left in a free slot by a clean close (lock file version 10, FORMAT.md §6.5): its
//! blocks count free, a gc spares them, and the next participant to attach to the slot takes
//! them over, none handed out twice, none lost.
//!
//! What is modelled. Participant 0 takes three blocks of a cached class (`CACHED_SIZE`), keeps
//! one (linked by the model), frees two into its block cache, and closes cleanly: the slot is
//! released (`Table::release`, what `Attachment::detach` does; since 802ee5a nothing flushes
//! the cache first). Then a new participant attaches to slot 0 (`Table::activate`, which keeps
//! the cache counts) and allocates from the cache it inherits. Real code: `alloc`, `free`,
//! `Table::release`, `Table::activate`, `alloc_into`, `named_blocks`, `sweep_segment`, `check`,
//! `for_each_allocated`, `conserve_sized`.
//!
//! 1. `a_closed_cache_is_spared_and_adopted` (one thread): after the close, `check` passes and
//!    counts the two cached blocks free (`cached_blocks` reads free slots' caches), the gc's
//!    `named_blocks` names them, and a sweep of every segment that calls everything but the
//!    kept block garbage frees nothing; the next attacher's two allocations are the two cached
//!    blocks (last freed first), its third is carved; `conserve_sized` then hands nothing out
//!    twice and loses nothing.
//! 2. `a_gc_racing_the_next_attacher_frees_no_adopted_block` (two loom threads): the attach
//!    and a cache pop into block journal 1 (the block taken, not linked yet, as an allocation
//!    outside the writer lock leaves it: a held block grown by a read) race a sweep of the
//!    segment whose mark calls everything but the kept block garbage. The popped block must be
//!    spared (its journal names it), the other cached block too (the cache names it), and
//!    afterwards nothing is lost or handed out twice. It passes, but loom does not reach the
//!    schedule of model 3 (47 executions at 2 preemptions, none failing at 4 either), most
//!    likely because it tracks one last access per atomic: the attacher's own loads of the
//!    state word (the generation) and of the count (in the pop), just before its stores there,
//!    hide the sweeper's earlier loads of them.
//! 3. `a_sweep_that_read_the_slot_free_spares_what_the_next_attacher_popped` (the schedule
//!    written out, `Paused`): the sweep (after its freeze) reads slot 0's status, free; the
//!    next participant attaches there and pops a block of the cache it took over into journal
//!    1; the sweep reads the slot's cache, one block fewer, and, the slot being free for it,
//!    not its journals (`blocks_named_by_slots`, src/heap/sweep.rs). It failed on 802ee5a: the
//!    sweep freed the popped block (Block(0xa40), "1 freed"), which the attacher holds, and
//!    the next allocation handed it out a second time. Fixed in d7373fb: a sweep reads a free
//!    slot's journals after its cache, as it reads an attached slot's (a cache pop writes the
//!    journal before it lowers the count, so a block on its way is seen in one place or the
//!    other); the model passes since.
//!
//! Planted bug (`CLOSED_CACHE_BROKEN=<variant>`; run, and failed as said):
//! - `zero-at-attach`: the attach as it was before 802ee5a (the counts zeroed, as `clear_words`
//!   did): the closed participant's cached blocks are then named by no one, allocated in their
//!   segment's eyes: model 1 fails with "block 0x840 is allocated but nobody holds it", model 2
//!   with "the attacher pops the cache it took over" (it carves instead).
//!
//! What loom cannot see: the close and the attach are word stores here (the model's table),
//! not the OFD lock hand-over between processes; a kill inside them is the business of the
//! kill models (a killed closer is a dead participant, whose cache its recovery gives back,
//! `dead_cache.rs`).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{
    alloc_sized_or_full, allocated_blocks, check, conserve_sized, model, Planted, World,
    CACHED_PER_SEGMENT, CACHED_SIZE, GEO,
};
use persist::heap::{Block, Heap};
use persist::region::{table, Table};
use persist::sync::{AccessError, AtomicU64, MemWords, WordStore};
use std::collections::BTreeSet;

/// The slot that closes and is attached to again.
const SLOT: u32 = 0;
/// A participant that gcs (slot 1).
const GC: u32 = 1;
/// The block journal the next attacher takes its block into.
const J: u64 = 1;

static BROKEN: Planted = Planted::new("CLOSED_CACHE_BROKEN", &["zero-at-attach"]);

/// Participant 0 takes three blocks of a cached class, keeps the first, frees the other two
/// into its cache and closes. Returns the kept block, the two cached ones (in the order they
/// were freed) and the segment.
fn closed(world: &World) -> (Block, [Block; 2], u64) {
    let h = world.heap(SLOT);
    let kept = h.alloc(CACHED_SIZE).unwrap();
    let a = h.alloc(CACHED_SIZE).unwrap();
    let b = h.alloc(CACHED_SIZE).unwrap();
    h.settle(0).unwrap();
    h.free(a).unwrap();
    h.free(b).unwrap();
    world.table().release(SLOT).unwrap();
    let seg = h.pages.run_at(kept.get()).unwrap().offset.get();
    (kept, [a, b], seg)
}

/// The next participant attaches to the closed slot (or, planted, attaches as before 802ee5a).
fn attach(world: &World) {
    let t = world.table();
    t.activate(SLOT, 2000, 0).unwrap();
    if BROKEN.is("zero-at-attach") {
        for k in 0..table::CACHED_CLASSES {
            t.store(SLOT, table::W_CACHE + k * table::CACHE_GROUP, 0)
                .unwrap();
        }
    }
}

/// Sweeps every segment, calling every block but `keep`'s garbage; returns how many it freed.
fn sweep_all(world: &World, keep: &BTreeSet<Block>) -> u64 {
    let h = world.heap(GC);
    let mut segs = Vec::new();
    h.for_each_segment(|info| {
        segs.push(info.offset);
        Ok(())
    })
    .unwrap();
    segs.into_iter()
        .map(|seg| h.sweep_segment(seg, |x| !keep.contains(&x)).unwrap())
        .sum()
}

#[test]
fn a_closed_cache_is_spared_and_adopted() {
    model(|| {
        let world = World::new(1, 2);
        let (kept, cached, _) = closed(&world);
        assert_eq!(
            world.table().status(SLOT).unwrap(),
            table::STATUS_FREE,
            "the close frees the slot"
        );
        let g = world.heap(GC);
        check(&g);
        assert_eq!(
            allocated_blocks(&g),
            BTreeSet::from([kept]),
            "a closed cache's blocks count free"
        );
        let named: BTreeSet<Block> = g.named_blocks().unwrap().into_iter().collect();
        assert!(
            cached.iter().all(|x| named.contains(x)),
            "named_blocks misses the closed cache: {named:?}"
        );
        let keep = BTreeSet::from([kept]);
        assert_eq!(sweep_all(&world, &keep), 0, "a sweep freed a cached block");
        attach(&world);
        let h = world.heap(SLOT);
        let first = h.alloc(CACHED_SIZE).unwrap();
        let second = h.alloc(CACHED_SIZE).unwrap();
        let third = h.alloc(CACHED_SIZE).unwrap();
        h.settle(0).unwrap();
        let held = BTreeSet::from([kept, first, second, third]);
        assert_eq!(held.len(), 4, "a block handed out twice");
        conserve_sized(
            &world,
            GC,
            CACHED_SIZE,
            CACHED_PER_SEGMENT,
            &held,
            &BTreeSet::new(),
        );
        assert_eq!(
            [first, second],
            [cached[1], cached[0]],
            "the next attacher's first allocations come from the cache it took over"
        );
    });
}

#[test]
fn a_gc_racing_the_next_attacher_frees_no_adopted_block() {
    model(|| {
        let world = Arc::new(World::new(1, 2));
        let (kept, cached, seg) = closed(&world);
        let attacher = {
            let world = world.clone();
            thread::spawn(move || {
                attach(&world);
                world.heap(SLOT).alloc_into(CACHED_SIZE, J).unwrap()
            })
        };
        let gc = {
            let world = world.clone();
            thread::spawn(move || world.heap(GC).sweep_segment(seg, |x| x != kept).unwrap())
        };
        let got = attacher.join().unwrap();
        let freed = gc.join().unwrap();
        assert_eq!(got, cached[1], "the attacher pops the cache it took over");
        assert_eq!(freed, 0, "the sweep freed a block of the closed cache");
        let h = world.heap(GC);
        check(&h);
        assert_eq!(allocated_blocks(&h), BTreeSet::from([kept, got]));
        // The attacher links its block, and takes the other cached block too (out of reach of
        // the allocations of `conserve_sized`, by another slot, as long as it stays cached).
        let mine = world.heap(SLOT);
        mine.settle(J).unwrap();
        let other = mine.alloc(CACHED_SIZE).unwrap();
        mine.settle(0).unwrap();
        assert_eq!(other, cached[0], "the attacher pops the rest of its cache");
        let held = BTreeSet::from([kept, got, other]);
        conserve_sized(
            &world,
            GC,
            CACHED_SIZE,
            CACHED_PER_SEGMENT,
            &held,
            &BTreeSet::new(),
        );
    });
}

/// A word store that runs `hook` once, just before the first access to word `at`: another
/// participant's steps landing between two of this one's reads (a schedule written out).
struct Paused<'a> {
    inner: &'a MemWords,
    at: u64,
    hook: std::sync::Mutex<Option<Box<dyn FnOnce() + 'a>>>,
}

impl WordStore for Paused<'_> {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn word(&self, offset: u64) -> Result<&AtomicU64, AccessError> {
        if offset == self.at {
            let hook = self.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        self.inner.word(offset)
    }

    fn grow_to(&self, min_size: u64) -> Result<(), AccessError> {
        self.inner.grow_to(min_size)
    }

    fn max_size(&self) -> u64 {
        self.inner.max_size()
    }
}

/// Model 3 (module doc): the sweep reads the slot free, the next attacher pops a block of the
/// cache it took over into a journal, the sweep reads the cache.
#[test]
fn a_sweep_that_read_the_slot_free_spares_what_the_next_attacher_popped() {
    model(|| {
        let world = World::new(1, 2);
        let (kept, cached, seg) = closed(&world);
        let got = std::sync::Mutex::new(None);
        let at = world.table().word_offset(SLOT, table::W_CACHE);
        let lock = Paused {
            inner: &world.lock,
            at,
            hook: std::sync::Mutex::new(Some(Box::new(|| {
                attach(&world);
                let b = world.heap(SLOT).alloc_into(CACHED_SIZE, J).unwrap();
                *got.lock().unwrap() = Some(b);
            }))),
        };
        let store = Paused {
            inner: &world.store,
            at: u64::MAX,
            hook: std::sync::Mutex::new(None),
        };
        let t = Table {
            words: &lock,
            live: &world.live,
            base: 0,
            slots: world.slots,
        };
        let freed = Heap::new(&store, GEO, t, GC)
            .sweep_segment(seg, |x| x != kept)
            .unwrap();
        let got = got
            .lock()
            .unwrap()
            .expect("the attacher ran inside the sweep");
        assert_eq!(got, cached[1], "the attacher pops the cache it took over");
        // The attacher still holds its block (journal `J`): nobody else may be handed it.
        let g = world.heap(GC);
        let mut drained = BTreeSet::new();
        while let Some(x) = alloc_sized_or_full(&g, CACHED_SIZE) {
            assert_ne!(
                x, got,
                "block {got:?}, popped by the next attacher from the closed cache and named by \
                 its journal, was freed by a sweep ({freed} freed) and handed out twice"
            );
            drained.insert(x);
        }
        assert_eq!(freed, 0, "the sweep freed a block of the closed cache");
    });
}
