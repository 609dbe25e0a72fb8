//! Every offset of the object layer, in one place (FORMAT.md §10 gives the same layouts with
//! their meaning): the store header's object words, the object words of a participant slot and
//! of the lock file, and the layout of each block kind. As `region/layout.rs` is for the
//! allocator's header, this file is the only one that knows where a word lies; the rest of the
//! object layer names the words. The undo log's layout belongs to the store lock's protocol and
//! lives in `store_lock::undo`, re-exported here as [`undo`].
//!
//! Every block starts with a head word, `kind | length << 8` (value.rs [`super::value::Kind`]),
//! where the length is the kind's own: bytes of a str, items of a tuple, capacity of an items
//! block, flags of a container.

pub use crate::store_lock::undo;

/// Store header words of the object layer (inside `hdr::OBJECT_WORDS..OBJECT_WORDS_END`).
pub mod words {
    use crate::region::hdr;
    /// The root dict's offset (0 until the first opener creates it).
    pub const ROOT: u64 = hdr::OBJECT_WORDS;
    /// Head of the orphan list: containers no value refers to that a held set named when
    /// their last reference went (linked through their `container::ORPHAN_NEXT` words).
    pub const ORPHANS: u64 = hdr::OBJECT_WORDS + 8;
    /// The undo log of a durable change in flight (0: none). The lock file, where each
    /// participant names its own log, does not survive a reboot; this word does (it is on disk
    /// before the change's first in-place write), so the first open after a power cut finds
    /// the change and rolls it back.
    pub const ACTIVE_UNDO: u64 = hdr::OBJECT_WORDS + 16;
    /// The orphan list's part word (FORMAT.md §10.5, "Collection on a part"): even, free;
    /// odd, held by the single change that collects the list (`owner << 32 | 1`, as a
    /// container's version word when held). Zero in stores made before it.
    pub const ORPHANS_PART: u64 = hdr::OBJECT_WORDS + 24;
}

/// Participant slot words of the object layer (word indices inside the slot:
/// `table::W_OBJECT..W_OBJECT + 5`, and the read-only held entries).
pub mod slot_words {
    use crate::region::table::W_OBJECT;
    /// The offset of this participant's undo log block in the store file (0: none yet).
    pub const UNDO: u64 = W_OBJECT;
    /// The first block of this participant's held set (0: none yet).
    pub const HELD: u64 = W_OBJECT + 1;
    /// How many lockShared holds this participant has.
    pub const SHARED: u64 = W_OBJECT + 2;
    /// A read-only participant's holds beyond its inline entries (`RO_HELD`): while non-zero,
    /// every container counts as held (writers put released ones on the orphan list, gc frees
    /// none), because the store file has no room it could write their offsets into.
    pub const RO_PINNED: u64 = W_OBJECT + 3;
    /// 1 while a single change of this participant is past the gate (`part_lock`, FORMAT.md
    /// §10.9; `object/parts.rs`).
    pub const ACTIVE: u64 = W_OBJECT + 4;
    /// Words 16..32: a read-only participant's held set, one container offset (or 0) each.
    /// Writable participants' held sets are block chains in the store file (`HELD`).
    pub const RO_HELD: u64 = 16;
    pub const RO_HELD_ENTRIES: u64 = 16;
}

/// Which of the participant's block journals (FORMAT.md §6.4) the object layer allocates into,
/// and how the recovery of a dead participant tells whether the block a journal names as taken
/// is linked (FORMAT.md §10.7 step 0, `recovery.rs` `settle_journals`). Journals 0 and 5 are
/// never used for a block the object layer links: journal 0 is the heap recovery's own.
pub mod journals {
    /// A change's allocation (`Store::alloc`): linked once its alloc entry ends the undo log.
    /// Also an append publication's block, and a pop publication's block item from before
    /// its commit point until it is freed (`parts.rs`), which have no log entry: linked while
    /// the list its `active` word names holds it.
    pub const OP: u64 = 1;
    /// A new undo log block (the first, or a grown copy): linked once the slot word `undo`
    /// names it.
    pub const LOG: u64 = 2;
    /// A new held block: linked once the held chain reaches it.
    pub const HELD: u64 = 3;
    /// The old undo log block while the log grows: linked while the slot word `undo` still
    /// names it; freed by the grower after the slot word moved on.
    pub const OLD_LOG: u64 = 4;
    /// A value publication's old value block (`parts.rs`): named before the CAS that takes it
    /// out of a dict's entry, taken after it, freed before the publication ends; linked while
    /// a live entry of the dict its `active` word names holds it.
    pub const VALUE: u64 = 5;
}

/// The store lock's words in the lock file header (byte offsets), each on its own cache line.
pub mod lock_words {
    /// 0 = free, else the owner's id (`store_lock::owner_id`).
    pub const WRITER: u64 = 64;
    /// Odd while a store-wide change is in progress (a single change on the store-wide path,
    /// a lockExcl section, a walk while parts are on).
    pub const SEQ: u64 = 128;
    /// lockShared holds, all participants together.
    pub const SHARED: u64 = 192;
    /// Threads sleeping on one of the words above (so that releasers know to wake).
    pub const WAITERS: u64 = 256;
}

/// The header every container block starts with (byte offsets from the block).
pub mod container {
    /// kind | flags << 8.
    pub const HEAD: u64 = 0;
    /// References from value words (and from the header's root word).
    pub const REFCNT: u64 = 8;
    /// Bumped by every change: lets the layer above do check-then-act without a lock.
    pub const VERSION: u64 = 16;
    /// Next container on the orphan list.
    pub const ORPHAN_NEXT: u64 = 24;
    /// Flag in the head word: on the orphan list.
    pub const ORPHAN_FLAG: u64 = 1 << 8;
}

/// A list block: the container header, then its items block, length, capacity and the index
/// in the items block of its first item (items taken from the front step it on).
pub mod list_header {
    pub const ITEMS: u64 = 32;
    pub const LEN: u64 = 40;
    pub const CAP: u64 = 48;
    pub const START: u64 = 56;
    pub const BYTES: u64 = 64;
}

/// A dict, object or set block: the container header, then its table, the live entries, the
/// entries used in the table, and (objects only) the class name's value word. A set's table
/// is a dict table whose value words are all empty (set.rs).
pub mod dict_header {
    pub const TABLE: u64 = 32;
    pub const USED: u64 = 40;
    pub const NENTRIES: u64 = 48;
    pub const CLASS: u64 = 56;
    /// The insert claim (`part_lock::insert_claim`): 0, or the slot of the participant whose
    /// insert publication owns the dict's entries (FORMAT.md §10.9, "Inserts").
    pub const INSERT_CLAIM: u64 = 64;
    pub const BYTES: u64 = 72;
}

/// A cache block: the dict block's words (`dict_header`; its class word unused, 0), then the
/// cache's options and bookkeeping (cache.rs). Each entry's value word names a cache entry: a
/// tuple block of three words (the value, the expiry time, the entry's bytes).
pub mod cache_header {
    /// Default time to live of a new entry in nanoseconds (0: entries never expire unless
    /// set with a time to live).
    pub const TTL: u64 = 72;
    /// The most live and expired entries the table holds after a change (0: no limit).
    pub const MAX_ENTRIES: u64 = 80;
    /// The most entry bytes (`TOTAL_BYTES`) after a change (0: no limit).
    pub const MAX_BYTES: u64 = 88;
    /// The sum of the entries' bytes.
    pub const TOTAL_BYTES: u64 = 96;
    /// How many entries have an expiry time (0: no entry can expire; `len` is `used`).
    pub const EXPIRING: u64 = 104;
    /// A table position before which every entry is deleted (where eviction looks first;
    /// 0 after the table is rebuilt).
    pub const OLDEST: u64 = 112;
    /// The table position the next bounded sweep starts at.
    pub const SWEEP: u64 = 120;
    pub const BYTES: u64 = 128;
}

/// A list's items block: the head (capacity in its length field), then the item words.
pub mod list_items {
    pub const FIRST: u64 = 8;

    /// Item `i` of the items block at `block`.
    pub const fn item(block: u64, i: u64) -> u64 {
        block + FIRST + 8 * i
    }

    /// The bytes of an items block with room for `cap` items.
    pub const fn bytes(cap: u64) -> u64 {
        FIRST + 8 * cap
    }
}

/// A dict's table block: the head (buckets in its length field), the entry capacity, the
/// buckets, then the entries of three words (hash, key, value).
pub mod dict_table {
    pub const CAP: u64 = 8;
    pub const BUCKETS: u64 = 16;
    /// A bucket of a deleted entry (0 is an empty bucket; else the entry index + 1).
    pub const DUMMY: u64 = u64::MAX;
    /// An entry's words: the hash, then the key and the value at these byte offsets.
    pub const KEY: u64 = 8;
    pub const VALUE: u64 = 16;
    pub const ENTRY_BYTES: u64 = 24;

    /// The bytes of a table with `nbuckets` buckets and room for `cap` entries.
    pub const fn bytes(nbuckets: u64, cap: u64) -> u64 {
        BUCKETS + 8 * nbuckets + ENTRY_BYTES * cap
    }

    // The insert publication's word steps (`part_lock`) write entries and buckets themselves.
    const _: () = assert!(
        DUMMY == crate::part_lock::BUCKET_DELETED
            && ENTRY_BYTES == crate::part_lock::ENTRY_BYTES
            && KEY == 8
            && VALUE == 16
    );
}

/// Owned values: str, bytes, int and the packed values (datetime, date, time, timedelta,
/// Decimal, UUID: packed.rs) hold their bytes after the head (length: bytes); a float holds its
/// bits in one word; a tuple its item words (length: items); a frozenset its members, each a
/// stored hash and a value word, in ascending order of hash (length: members).
pub mod owned {
    pub const PAYLOAD: u64 = 8;
    pub const FLOAT_BYTES: u64 = 16;

    /// Item `i` of the tuple block at `block`.
    pub const fn tuple_item(block: u64, i: u64) -> u64 {
        block + PAYLOAD + 8 * i
    }

    /// The bytes of a tuple block of `n` items.
    pub const fn tuple_bytes(n: u64) -> u64 {
        PAYLOAD + 8 * n
    }

    /// The hash word of member `i` of the frozenset block at `block`; its value word follows.
    pub const fn set_member(block: u64, i: u64) -> u64 {
        block + PAYLOAD + 16 * i
    }

    /// The bytes of a frozenset block of `n` members.
    pub const fn set_bytes(n: u64) -> u64 {
        PAYLOAD + 16 * n
    }
}

/// A block of a writable participant's held set: the head, the next block, then the entries
/// (container offsets, 0 for a free entry).
pub mod held_block {
    pub const NEXT: u64 = 8;
    pub const ENTRIES: u64 = 16;
    pub const COUNT: u64 = 62;
    pub const BYTES: u64 = ENTRIES + 8 * COUNT;
}
