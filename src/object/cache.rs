//! Persistent caches: a dict whose entries may expire, and which may hold at most so many
//! entries or bytes, evicting the least recently used.
//!
//! A cache block (kind `Cache`) is a dict block (`dict_header`) with more words
//! (`cache_header`): its options (default time to live, entry and byte limits) and its
//! bookkeeping (bytes held, entries that expire, two scan hints). Its table is a dict table
//! (dict.rs owns hashing, probing, resizing and deletion); each entry's value word names a
//! *cache entry*, a tuple block of three words: the value's word, the expiry time (a small
//! int: nanoseconds since the Unix epoch on `CLOCK_REALTIME`, 0 for never) and the entry's
//! bytes (a small int, `entry_bytes`). Release, check, gc and recovery see a tuple and need
//! nothing of their own.
//!
//! Expiry: a read that meets an entry whose expiry time is at or before its clock reading
//! treats the entry as absent (every reader, whichever process, at once: nothing is written).
//! Expired entries are reclaimed by the changes that meet them (a set, delete or pop of their
//! key) and by a bounded sweep at every set (`SWEEP_STEPS` entries from the sweep cursor), so
//! no change ever walks the whole table, and no reader waits for one.
//!
//! Recency: in a cache with a limit, the table's order is the recency order. A set, and a
//! read through [`Store::cache_touch`], moves the entry to the end (`dict_move_last`); in a
//! cache without one, the order stays the insertion order, as dict's. Eviction removes
//! the first live entry, found from the `OLDEST` hint (every entry before it is deleted).
//! Limits are enforced inside the change that sets an entry, so no change returns with the
//! cache over its limit.

use super::dict::Key;
use super::layout::{cache_header, dict_header, owned};
use super::list::corrupt;
use super::value::{self, Kind};
use super::view::Value;
use super::{Container, Result, Store};

/// Entries looked at by the sweep of one set.
const SWEEP_STEPS: u64 = 8;

/// The items of a cache entry's tuple block.
const ENTRY_ITEMS: u64 = 3;

/// Nanoseconds since the Unix epoch on `CLOCK_REALTIME`, the clock every process shares and
/// that survives a reboot (as the store file does). Clamped to the small-int range.
pub fn now_ns() -> u64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_nanos().min(value::SMALL_INT_MAX as u128)) as u64,
        Err(_) => 1,
    }
}

/// A cache's options (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheOpts {
    /// Default time to live of an entry, in nanoseconds.
    pub ttl: u64,
    pub max_entries: u64,
    pub max_bytes: u64,
}

/// A cache entry, read from its tuple block.
#[derive(Clone, Copy, Debug)]
pub struct CacheEntry {
    /// The value word.
    pub value: u64,
    /// Expiry time (ns since the epoch), 0 for never.
    pub expires: u64,
    /// The bytes it counts against the byte limit.
    pub bytes: u64,
}

impl CacheOpts {
    /// Whether the cache has a limit: then its table order is the recency order (a set or a
    /// touch moves the entry to the end); without one, it is the insertion order, as dict's.
    pub fn limited(&self) -> bool {
        self.max_entries != 0 || self.max_bytes != 0
    }
}

impl CacheEntry {
    pub fn live(&self, now: u64) -> bool {
        self.expires == 0 || now < self.expires
    }
}

/// What a set did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheSet {
    Done,
    /// The entry alone is over the byte limit: the caller fails the change.
    TooLarge(u64),
}

impl Store {
    /// A new empty cache header (pass 1 of an encode).
    pub(super) fn new_cache_header(&mut self, o: &CacheOpts) -> Result<u64> {
        let b = self.alloc(cache_header::BYTES)?;
        self.init(b, value::block_head(Kind::Cache, 0))?;
        for off in (8..cache_header::BYTES).step_by(8) {
            self.init(b + off, 0)?;
        }
        self.init(b + cache_header::TTL, o.ttl)?;
        self.init(b + cache_header::MAX_ENTRIES, o.max_entries)?;
        self.init(b + cache_header::MAX_BYTES, o.max_bytes)?;
        Ok(b)
    }

    fn cache_check(&self, c: Container) -> Result<u64> {
        let c = c.get();
        self.check_container(c, Some(Kind::Cache))?;
        self.observe(c);
        Ok(c)
    }

    /// `cache_check` for a change: also that the block is as long as a cache header, so that
    /// a damaged head (a dict's block that says cache) never gets words written past it.
    fn cache_check_mut(&self, c: Container) -> Result<u64> {
        let cc = self.cache_check(c)?;
        let size = self
            .part
            .heap()
            .usable_size(crate::heap::Block::from_word(cc))?;
        if size < cache_header::BYTES {
            return Err(corrupt("a cache block is shorter than a cache header", cc));
        }
        Ok(cc)
    }

    /// The options of cache `c`.
    pub fn cache_opts(&self, c: Container) -> Result<CacheOpts> {
        let c = self.cache_check(c)?;
        const _: () = assert!(
            cache_header::MAX_ENTRIES == cache_header::TTL + 8
                && cache_header::MAX_BYTES == cache_header::TTL + 16
        );
        let [ttl, max_entries, max_bytes] = self.get_words(c + cache_header::TTL)?;
        if ttl > value::SMALL_INT_MAX as u64 {
            return Err(corrupt("a cache's time to live is out of range", c));
        }
        Ok(CacheOpts {
            ttl,
            max_entries,
            max_bytes,
        })
    }

    /// The entry named by value word `w` of cache `c`'s table, checked.
    pub fn cache_entry(&self, c: u64, w: u64) -> Result<CacheEntry> {
        let bad = || corrupt("a cache entry is not a cache entry block", c);
        if !value::is_block(w) {
            return Err(bad());
        }
        match self.value(w)? {
            Value::Tuple { block, len } if len == ENTRY_ITEMS => {
                let v = self.tuple_item(block, 0)?;
                let e = self.tuple_item(block, 1)?;
                let b = self.tuple_item(block, 2)?;
                if v == value::EMPTY || !value::is_small_int(e) || !value::is_small_int(b) {
                    return Err(bad());
                }
                let (expires, bytes) = (value::small_int_value(e), value::small_int_value(b));
                if expires < 0 || bytes < 0 {
                    return Err(bad());
                }
                Ok(CacheEntry {
                    value: v,
                    expires: expires as u64,
                    bytes: bytes as u64,
                })
            }
            _ => Err(bad()),
        }
    }

    /// The live entry of `key` (an expired one is absent), `hint` as for `dict_get`.
    pub fn cache_get(
        &self,
        c: Container,
        key: &Key,
        now: u64,
        hint: &mut u64,
    ) -> Result<Option<CacheEntry>> {
        let cc = self.cache_check(c)?;
        match self.dict_get(c, key, hint)? {
            Some(w) => {
                let e = self.cache_entry(cc, w)?;
                Ok(e.live(now).then_some(e))
            }
            None => Ok(None),
        }
    }

    /// The number of live entries.
    pub fn cache_len(&self, c: Container, now: u64) -> Result<u64> {
        let cc = self.cache_check(c)?;
        let used = self.get(cc + dict_header::USED)?;
        if self.get(cc + cache_header::EXPIRING)? == 0 {
            return Ok(used);
        }
        let mut n = 0;
        let mut pos = 0;
        while let Some((e, _, w)) = self.dict_next(c, pos)? {
            if self.cache_entry(cc, w)?.live(now) {
                n += 1;
            }
            pos = e + 1;
        }
        Ok(n)
    }

    /// The next live entry at or after table position `pos`: (its position, key word, entry).
    pub fn cache_next(
        &self,
        c: Container,
        pos: u64,
        now: u64,
    ) -> Result<Option<(u64, u64, CacheEntry)>> {
        let cc = self.cache_check(c)?;
        let mut pos = pos;
        while let Some((e, kw, w)) = self.dict_next(c, pos)? {
            let entry = self.cache_entry(cc, w)?;
            if entry.live(now) {
                return Ok(Some((e, kw, entry)));
            }
            pos = e + 1;
        }
        Ok(None)
    }

    /// Every live entry, in recency order (least recent first): (key word, entry).
    pub fn cache_items(&self, c: Container, now: u64) -> Result<Vec<(u64, CacheEntry)>> {
        let mut v = Vec::new();
        let mut pos = 0;
        while let Some((e, kw, entry)) = self.cache_next(c, pos, now)? {
            v.push((kw, entry));
            pos = e + 1;
        }
        Ok(v)
    }

    /// The bytes the blocks of owned value `w` span (nested tuples and frozensets included;
    /// an inline value or a container: 0).
    fn value_bytes(&self, w: u64) -> Result<u64> {
        let mut total = 0u64;
        let mut work = vec![w];
        let mut budget = 1u64 << 20;
        while let Some(w) = work.pop() {
            budget -= 1;
            if budget == 0 {
                return Err(corrupt("a cache value nests too deeply", w));
            }
            if !value::is_block(w) {
                continue;
            }
            let v = self.value(w)?;
            if v.container().is_some() {
                continue;
            }
            total = total.saturating_add(v.owned_span().unwrap_or(0));
            match v {
                Value::Tuple { block, len } => {
                    for i in 0..len {
                        work.push(self.tuple_item(block, i)?);
                    }
                }
                Value::FrozenSet { block, len } => {
                    for i in 0..len {
                        work.push(self.set_member(block, i)?.1);
                    }
                }
                _ => {}
            }
        }
        Ok(total)
    }

    /// A new entry block for value word `w` (already encoded), its key word `kw`.
    fn new_cache_entry(&mut self, kw: u64, w: u64, expires: u64) -> Result<(u64, u64)> {
        let bytes = self
            .value_bytes(kw)?
            .saturating_add(self.value_bytes(w)?)
            .saturating_add(owned::tuple_bytes(ENTRY_ITEMS))
            .min(value::SMALL_INT_MAX as u64);
        let b = self.alloc(owned::tuple_bytes(ENTRY_ITEMS))?;
        self.init(b, value::block_head(Kind::Tuple, ENTRY_ITEMS))?;
        self.init(owned::tuple_item(b, 0), w)?;
        self.init(
            owned::tuple_item(b, 1),
            value::small_int(expires as i64)
                .ok_or_else(|| corrupt("an expiry time out of range", kw))?,
        )?;
        self.init(
            owned::tuple_item(b, 2),
            value::small_int(bytes as i64)
                .ok_or_else(|| corrupt("an entry size out of range", kw))?,
        )?;
        Ok((b, bytes))
    }

    /// Adds `d` (signed) to header word `at` of cache `c`.
    fn cache_add(&mut self, c: u64, at: u64, d: i64) -> Result<()> {
        let old = self.get(c + at)?;
        self.put(c + at, old.wrapping_add_signed(d))
    }

    /// Accounts for an entry coming in (`sign` 1) or going (-1).
    fn cache_account(&mut self, c: u64, e: &CacheEntry, sign: i64) -> Result<()> {
        self.cache_add(c, cache_header::TOTAL_BYTES, sign * e.bytes as i64)?;
        if e.expires != 0 {
            self.cache_add(c, cache_header::EXPIRING, sign)?;
        }
        Ok(())
    }

    /// After a change that may have rebuilt the table (`before`: the table then): the scan
    /// hints start over (entry indices changed).
    fn cache_table_moved(&mut self, c: u64, before: u64) -> Result<()> {
        if self.get(c + dict_header::TABLE)? != before {
            self.put(c + cache_header::OLDEST, 0)?;
            self.put(c + cache_header::SWEEP, 0)?;
        }
        Ok(())
    }

    /// Removes entry `e` (live at the caller's look): its key and entry released at commit.
    fn cache_remove_at(&mut self, c: u64, e: u64) -> Result<(u64, CacheEntry)> {
        let (kw, w) = self.dict_delete_at(c, e)?;
        let entry = self.cache_entry(c, w)?;
        self.cache_account(c, &entry, -1)?;
        Ok((kw, entry))
    }

    /// Sets `key` to value word `w` (already encoded) with expiry `expires` (0: never): a new
    /// key is stored at the end of the recency order, an existing one gets the new value and
    /// expiry and moves to the end. Then the sweep, then evictions (least recent first) until
    /// the cache is within its limits.
    pub fn cache_set(
        &mut self,
        c: Container,
        key: &Key,
        w: u64,
        expires: u64,
        now: u64,
        hint: &mut u64,
    ) -> Result<CacheSet> {
        let cc = self.cache_check_mut(c)?;
        let opts = self.cache_opts(c)?;
        let table = self.get(cc + dict_header::TABLE)?;
        let found = self.dict_find(cc, key, hint)?;
        let kw = match found {
            Some((_, kw, _)) => kw,
            None => self.encode_key(key)?,
        };
        let (tw, bytes) = self.new_cache_entry(kw, w, expires)?;
        if opts.max_bytes != 0 && bytes > opts.max_bytes {
            return Ok(CacheSet::TooLarge(bytes));
        }
        let entry = self.cache_entry(cc, tw)?;
        match found {
            Some((e, _, old)) => {
                let old_entry = self.cache_entry(cc, old)?;
                self.dict_put_value(cc, e, tw)?;
                self.release_at_commit(old)?;
                self.cache_account(cc, &old_entry, -1)?;
                self.cache_account(cc, &entry, 1)?;
                *hint = if opts.limited() {
                    self.dict_move_last(cc, e)?
                } else {
                    e
                };
            }
            None => {
                *hint = self.dict_insert_new(cc, key.hash, kw, tw)?;
                self.cache_account(cc, &entry, 1)?;
            }
        }
        self.cache_table_moved(cc, table)?;
        self.cache_sweep(cc, now, SWEEP_STEPS)?;
        self.cache_evict(cc, &opts)?;
        Ok(CacheSet::Done)
    }

    /// Marks `key` used (moves it to the end of the recency order) and, if `expires` is
    /// given, sets its expiry. Returns its entry, None if it is absent or expired (an expired
    /// entry is reclaimed).
    pub fn cache_touch(
        &mut self,
        c: Container,
        key: &Key,
        expires: Option<u64>,
        now: u64,
        hint: &mut u64,
    ) -> Result<Option<CacheEntry>> {
        let cc = self.cache_check_mut(c)?;
        let table = self.get(cc + dict_header::TABLE)?;
        let Some((e, kw, w)) = self.dict_find(cc, key, hint)? else {
            return Ok(None);
        };
        let entry = self.cache_entry(cc, w)?;
        if !entry.live(now) {
            self.cache_remove_at(cc, e)?;
            *hint = super::dict::NO_HINT;
            return Ok(None);
        }
        let mut e = e;
        let mut entry = entry;
        if let Some(x) = expires {
            if x != entry.expires {
                // The value moves to a new entry block; the old one goes without its value.
                let (tw, _) = self.new_cache_entry(kw, entry.value, x)?;
                let new = self.cache_entry(cc, tw)?;
                self.dict_put_value(cc, e, tw)?;
                self.put(owned::tuple_item(w, 0), value::NONE)?;
                self.release_at_commit(w)?;
                self.cache_account(cc, &entry, -1)?;
                self.cache_account(cc, &new, 1)?;
                entry = new;
            }
        }
        if self.cache_opts(c)?.limited() {
            e = self.dict_move_last(cc, e)?;
        }
        *hint = e;
        self.cache_table_moved(cc, table)?;
        Ok(Some(entry))
    }

    /// Removes `key`: its key word and entry (released at commit), None if it is absent or
    /// expired (an expired entry is removed all the same).
    pub fn cache_del(
        &mut self,
        c: Container,
        key: &Key,
        now: u64,
    ) -> Result<Option<(u64, CacheEntry)>> {
        let cc = self.cache_check_mut(c)?;
        let Some((e, _, _)) = self.dict_find(cc, key, &mut super::dict::NO_HINT.clone())? else {
            return Ok(None);
        };
        let (kw, entry) = self.cache_remove_at(cc, e)?;
        Ok(entry.live(now).then_some((kw, entry)))
    }

    /// Removes and returns the most recent live entry (expired ones met on the way are
    /// removed too).
    pub fn cache_popitem(&mut self, c: Container, now: u64) -> Result<Option<(u64, CacheEntry)>> {
        let cc = self.cache_check_mut(c)?;
        while let Some((e, _, _)) = self.dict_last(c)? {
            let (kw, entry) = self.cache_remove_at(cc, e)?;
            if entry.live(now) {
                return Ok(Some((kw, entry)));
            }
        }
        Ok(None)
    }

    /// Removes every entry (released at commit).
    pub fn cache_clear(&mut self, c: Container) -> Result<()> {
        let cc = self.cache_check_mut(c)?;
        self.dict_clear(c)?;
        for at in [
            cache_header::TOTAL_BYTES,
            cache_header::EXPIRING,
            cache_header::OLDEST,
            cache_header::SWEEP,
        ] {
            self.put(cc + at, 0)?;
        }
        Ok(())
    }

    /// Removes every expired entry now (a whole-table walk, asked for); returns how many.
    pub fn cache_expire(&mut self, c: Container, now: u64) -> Result<u64> {
        let cc = self.cache_check_mut(c)?;
        let mut n = 0;
        let mut pos = 0;
        while let Some((e, _, w)) = self.dict_next(c, pos)? {
            if !self.cache_entry(cc, w)?.live(now) {
                self.cache_remove_at(cc, e)?;
                n += 1;
            }
            pos = e + 1;
        }
        Ok(n)
    }

    /// Looks at up to `steps` entries from the sweep cursor and removes the expired ones.
    fn cache_sweep(&mut self, c: u64, now: u64, steps: u64) -> Result<()> {
        if self.get(c + cache_header::EXPIRING)? == 0 {
            return Ok(());
        }
        let nentries = self.get(c + dict_header::NENTRIES)?;
        if nentries == 0 {
            return Ok(());
        }
        let mut pos = self.get(c + cache_header::SWEEP)?;
        for _ in 0..steps.min(nentries) {
            if pos >= nentries {
                pos = 0;
            }
            if let Some((e, _, w)) = self.dict_entry_at(c, pos)? {
                if !self.cache_entry(c, w)?.live(now) {
                    self.cache_remove_at(c, e)?;
                }
            }
            pos += 1;
        }
        self.put(c + cache_header::SWEEP, pos)
    }

    /// Evicts the least recent entries until the cache is within its limits.
    fn cache_evict(&mut self, c: u64, o: &CacheOpts) -> Result<()> {
        if o.max_entries == 0 && o.max_bytes == 0 {
            return Ok(());
        }
        loop {
            let used = self.get(c + dict_header::USED)?;
            let bytes = self.get(c + cache_header::TOTAL_BYTES)?;
            let over = (o.max_entries != 0 && used > o.max_entries)
                || (o.max_bytes != 0 && bytes > o.max_bytes);
            if !over || used == 0 {
                return Ok(());
            }
            let nentries = self.get(c + dict_header::NENTRIES)?;
            let mut pos = self.get(c + cache_header::OLDEST)?;
            if pos > nentries {
                pos = 0;
            }
            let Some((e, _, _)) = self.dict_next(Container::checked(c), pos)? else {
                return Err(corrupt("a cache counts entries its table lacks", c));
            };
            self.cache_remove_at(c, e)?;
            self.put(c + cache_header::OLDEST, e + 1)?;
        }
    }

    /// Bytes held by cache `c`'s entries (as counted against its byte limit).
    pub fn cache_bytes(&self, c: Container) -> Result<u64> {
        let cc = self.cache_check(c)?;
        self.get(cc + cache_header::TOTAL_BYTES)
    }

    /// For check: cache `c`'s block is long enough, and the entry words of every table entry
    /// agree with its header (entries that expire, bytes held).
    pub(super) fn cache_check_entries(&self, c: u64) -> Result<()> {
        self.cache_check_mut(Container::checked(c))?;
        let mut bytes = 0u64;
        let mut expiring = 0u64;
        let mut pos = 0;
        while let Some((e, _, w)) = self.dict_next(Container::checked(c), pos)? {
            let entry = self.cache_entry(c, w)?;
            bytes = bytes.saturating_add(entry.bytes);
            expiring += u64::from(entry.expires != 0);
            pos = e + 1;
        }
        if self.get(c + cache_header::TOTAL_BYTES)? != bytes
            || self.get(c + cache_header::EXPIRING)? != expiring
        {
            return Err(corrupt("a cache's counts do not match its entries", c));
        }
        Ok(())
    }
}
