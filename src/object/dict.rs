//! Persistent dicts (and the attribute dicts of user objects).
//!
//! A dict is a container header (`dict_header::BYTES`: head, refcnt, version, orphan link, table, used,
//! entries, class word for objects) and a table block, laid out as CPython's compact dict:
//!
//! ```text
//! | head: DICT_TABLE, nbuckets | cap (entries) | buckets[nbuckets] | entries[cap] (hash, key, value) |
//! ```
//!
//! A bucket holds 0 (empty), `dict_table::DUMMY` (deleted), or entry index + 1. Entries are in insertion
//! order; a deleted entry keeps its place with key word 0. Probing is CPython's perturbation
//! sequence over the store's own stable hash (value.rs). A table is rebuilt (compacted) when
//! its entries are used up; every probe sequence stops after `probe_limit(nbuckets)` probes,
//! which visit every bucket, so a damaged table cannot loop.

pub use super::key::Key;
use super::layout::{dict_header, dict_table};
use super::list::corrupt;
use super::value::{self, Kind};
use super::{Container, Error, Result, Store};
use crate::sync::{AtomicU64, Ordering};

const PERTURB_SHIFT: u32 = 5;

/// Probes after which a sequence has visited every bucket of a table of `nbuckets` (a power
/// of two). While `perturb` is not 0 the step mixes in more hash bits, and it is 0 after at
/// most 64 / PERTURB_SHIFT + 1 shifts; from then on `i -> 5i + 1 (mod nbuckets)` is a full
/// cycle. So an insertion can place an entry more than `nbuckets` probes along its sequence
/// (the hash's high bits can lead it around occupied buckets), and a lookup that stopped at
/// `nbuckets` probes would miss it.
fn probe_limit(nbuckets: u64) -> u64 {
    nbuckets + u64::from(64 / PERTURB_SHIFT) + 1
}

/// A dict's table, checked.
#[derive(Clone, Copy, Debug)]
pub struct DictParts {
    pub table: u64,
    pub nbuckets: u64,
    pub cap: u64,
    pub used: u64,
    pub nentries: u64,
    /// The store offset of the dict's `nentries` word (read again by `find`).
    nentries_at: u64,
    /// The table's words in the mapping (null for no table), `nwords` of them.
    words: *const AtomicU64,
    nwords: u64,
}

impl DictParts {
    /// Word `i` of the table. Bounds were checked once, when the parts were read.
    #[inline]
    fn w(&self, i: u64) -> Result<u64> {
        if i >= self.nwords {
            return Err(corrupt("dict table index out of range", self.table));
        }
        // SAFETY: `words` points at `nwords` 8-aligned words inside the mapping (checked by
        // `dict_parts`), and the mapping stays mapped at the same address while the store is
        // open. The words are atomics shared with other processes: read them only as such.
        // Relaxed: dict reads are validated by the store's sequence (seqlock, lock.rs).
        Ok(unsafe { (*self.words.add(i as usize)).load(Ordering::Relaxed) })
    }

    fn bucket_at(&self, i: u64) -> Result<u64> {
        self.w(dict_table::BUCKETS / 8 + i)
    }

    fn entry_at(&self, e: u64) -> Result<(u64, u64, u64)> {
        let base = dict_table::BUCKETS / 8 + self.nbuckets + 3 * e;
        if base + 2 >= self.nwords {
            return Err(corrupt("dict entry out of range", self.table));
        }
        // SAFETY: as in `w`, for words `base..base + 3`, checked above.
        let at = |i: u64| unsafe { (*self.words.add(i as usize)).load(Ordering::Relaxed) };
        Ok((at(base), at(base + 1), at(base + 2)))
    }

    fn bucket(&self, i: u64) -> u64 {
        self.table + dict_table::BUCKETS + 8 * i
    }

    /// The words an insert publication and the settling of its claim write, for dict `c`
    /// (with a table).
    pub(super) fn words(&self, c: u64) -> crate::part_lock::DictWords {
        crate::part_lock::DictWords {
            claim: c + dict_header::INSERT_CLAIM,
            used: c + dict_header::USED,
            nentries: c + dict_header::NENTRIES,
            bucket0: self.bucket(0),
            nbuckets: self.nbuckets,
            entry0: self.entry_off(0),
            cap: self.cap,
        }
    }
    fn entry_off(&self, e: u64) -> u64 {
        self.table + dict_table::BUCKETS + 8 * self.nbuckets + dict_table::ENTRY_BYTES * e
    }
}

/// No lookup hint: `find_entry` probes.
pub const NO_HINT: u64 = u64::MAX;

impl Store {
    pub(super) fn dict_parts(&self, c: u64) -> Result<DictParts> {
        self.observe(c);
        const _: () = assert!(
            dict_header::USED == dict_header::TABLE + 8
                && dict_header::NENTRIES == dict_header::TABLE + 16
        );
        let [table, used, nentries] = self.get_words(c + dict_header::TABLE)?;
        if table == 0 {
            if used != 0 || nentries != 0 {
                return Err(corrupt("dict without table has entries", c));
            }
            return Ok(DictParts {
                table: 0,
                nbuckets: 0,
                cap: 0,
                used: 0,
                nentries: 0,
                nentries_at: c + dict_header::NENTRIES,
                words: std::ptr::null(),
                nwords: 0,
            });
        }
        const _: () = assert!(dict_table::CAP == 8);
        let [head, cap] = self.get_words(table)?;
        let nbuckets = value::head_len(head);
        if value::head_kind(head) != Some(Kind::DictTable)
            || table % 16 != 0
            || !nbuckets.is_power_of_two()
            || cap >= nbuckets
            || nentries > cap
            || used > nentries
        {
            return Err(corrupt("dict table does not match its dict", c));
        }
        let bytes = dict_table::BUCKETS
            .checked_add(nbuckets.saturating_mul(8))
            .and_then(|b| b.checked_add(cap.checked_mul(24)?))
            .ok_or_else(|| corrupt("dict table size overflows", c))?;
        let words = self.bytes_ptr(table, bytes)? as *const AtomicU64;
        Ok(DictParts {
            table,
            nbuckets,
            cap,
            used,
            nentries,
            nentries_at: c + dict_header::NENTRIES,
            words,
            nwords: bytes / 8,
        })
    }

    pub fn dict_len(&self, c: Container) -> Result<u64> {
        let c = c.get();
        self.check_container(c, Some(Kind::Dict))?;
        self.get(c + dict_header::USED)
    }

    /// Entry `e` (< nentries): (hash, key word, value word); key word 0 = deleted.
    pub(super) fn entry(&self, t: &DictParts, e: u64) -> Result<(u64, u64, u64)> {
        t.entry_at(e)
    }

    /// A live entry's key word, checked not to name a container (no key can be one: only a
    /// damaged file has one, and Python could not even hash its proxy).
    fn key_word(&self, c: u64, k: u64) -> Result<u64> {
        if self.names_container(k)? {
            return Err(corrupt("a dict key is a container", c));
        }
        Ok(k)
    }

    /// The next live entry at or after position `pos`: (its position, key word, value word).
    pub fn dict_next(&self, c: Container, pos: u64) -> Result<Option<(u64, u64, u64)>> {
        let c = c.get();
        let t = self.dict_parts(c)?;
        let mut e = pos;
        while e < t.nentries {
            let (_, k, v) = self.entry(&t, e)?;
            if k != value::EMPTY {
                return Ok(Some((e, self.key_word(c, k)?, v)));
            }
            e += 1;
        }
        Ok(None)
    }

    /// The last live entry (for popitem).
    pub fn dict_last(&self, c: Container) -> Result<Option<(u64, u64, u64)>> {
        let c = c.get();
        let t = self.dict_parts(c)?;
        let mut e = t.nentries;
        while e > 0 {
            e -= 1;
            let (_, k, v) = self.entry(&t, e)?;
            if k != value::EMPTY {
                return Ok(Some((e, self.key_word(c, k)?, v)));
            }
        }
        Ok(None)
    }

    /// All live (key, value) words in order.
    pub fn dict_items(&self, c: Container) -> Result<Vec<(u64, u64)>> {
        let c = c.get();
        let t = self.dict_parts(c)?;
        let mut v = Vec::with_capacity(t.used as usize);
        for e in 0..t.nentries {
            let (_, k, val) = self.entry(&t, e)?;
            if k != value::EMPTY {
                v.push((self.key_word(c, k)?, val));
            }
        }
        Ok(v)
    }

    /// Finds `key`: (bucket index, entry index).
    pub(super) fn find(&self, d: &DictParts, key: &Key) -> Result<Option<(u64, u64)>> {
        if d.table == 0 {
            return Ok(None);
        }
        let h = key.hash;
        let mask = d.nbuckets - 1;
        let mut i = h & mask;
        let mut perturb = h;
        for _ in 0..probe_limit(d.nbuckets) {
            let b = d.bucket_at(i)?;
            if b == 0 {
                return Ok(None);
            }
            if b != dict_table::DUMMY {
                let e = b - 1;
                // An insert publication counts its entry before it names it from a bucket
                // (FORMAT.md §10.9, "Inserts"), but a look without the dict's part (a value
                // publication's, an unlocked read's) may have read `nentries` before the count
                // and the bucket after it: `nentries` is read again before this is damage.
                if e >= d.nentries && e >= self.get(d.nentries_at)?.min(d.cap) {
                    return Err(corrupt(
                        "dict bucket names an entry beyond the table",
                        d.table,
                    ));
                }
                let (eh, kw, _) = d.entry_at(e)?;
                if eh == h && kw != value::EMPTY && self.key_matches(kw, key)? {
                    return Ok(Some((i, e)));
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(perturb).wrapping_add(1)) & mask;
        }
        Ok(None)
    }

    /// The entry index of `key`, trying entry `hint` first (the caller's last answer for
    /// this dict: a repeated key skips the probe). `hint` becomes the answer.
    fn find_entry(&self, d: &DictParts, key: &Key, hint: &mut u64) -> Result<Option<u64>> {
        if *hint < d.nentries {
            let (eh, kw, _) = d.entry_at(*hint)?;
            if eh == key.hash && kw != value::EMPTY && self.key_matches(kw, key)? {
                return Ok(Some(*hint));
            }
        }
        let found = self.find(d, key)?.map(|(_, e)| e);
        *hint = found.unwrap_or(NO_HINT);
        Ok(found)
    }

    /// The value word of `key` in dict `c` (`hint` as for `find_entry`).
    pub fn dict_get(&self, c: Container, key: &Key, hint: &mut u64) -> Result<Option<u64>> {
        let c = c.get();
        let d = self.dict_parts(c)?;
        Ok(match self.find_entry(&d, key, hint)? {
            Some(e) => Some(d.entry_at(e)?.2),
            None => None,
        })
    }

    /// The store offset of the value word of `key` in dict `c`, if present (`hint` as for
    /// `find_entry`): where a publication writes (parts.rs).
    pub(super) fn dict_value_at(&self, c: u64, key: &Key, hint: &mut u64) -> Result<Option<u64>> {
        let d = self.dict_parts(c)?;
        Ok(self
            .find_entry(&d, key, hint)?
            .map(|e| d.entry_off(e) + dict_table::VALUE))
    }

    /// Sets `key` to value word `w` (already encoded). A new key is encoded from its tree;
    /// an existing key keeps its stored form (as dict keeps the first key object). The old
    /// value is released at commit. Returns whether the key was new. `hint` as for
    /// `find_entry`.
    pub fn dict_set(&mut self, c: Container, key: &Key, w: u64, hint: &mut u64) -> Result<bool> {
        let c = c.get();
        let d = self.dict_parts(c)?;
        if let Some(e) = self.find_entry(&d, key, hint)? {
            let o = d.entry_off(e) + dict_table::VALUE;
            let old = self.get(o)?;
            self.put(o, w)?;
            self.release_at_commit(old)?;
            self.bump_version(c)?;
            return Ok(false);
        }
        let kw = self.encode_key(key)?;
        *hint = self.dict_insert_new(c, key.hash, kw, w)?;
        Ok(true)
    }

    /// `dict_set` of the word `encode` writes (a value tree), the key looked up once. On a part,
    /// an old value the part cannot release (`part_release_check`: a container another
    /// reference reaches) refuses before anything is encoded: the change goes store-wide
    /// having written nothing.
    pub fn dict_set_encoded<E: From<Error>>(
        &mut self,
        c: Container,
        key: &Key,
        hint: &mut u64,
        encode: impl FnOnce(&mut Store) -> std::result::Result<u64, E>,
    ) -> std::result::Result<(), E> {
        self.dict_modify(c, key, hint, |st, old| {
            if let Some(old) = old {
                st.part_release_check(old)?;
            }
            Ok((encode(st)?, ()))
        })
    }

    /// Sets `key` in dict `c` to the value word `f` makes of its old one (`None`: `key` is
    /// missing, and the word is inserted), as `dict_set` does: a read-modify-write of one value
    /// (`Dict.incr`) that looks the key up once. `f` may encode values (allocate) but not
    /// change the dict; should the table have moved all the same, the key is looked up again.
    /// Returns what `f` returned beside the word; nothing is written if `f` fails.
    pub fn dict_modify<T, E: From<Error>>(
        &mut self,
        c: Container,
        key: &Key,
        hint: &mut u64,
        f: impl FnOnce(&mut Store, Option<u64>) -> std::result::Result<(u64, T), E>,
    ) -> std::result::Result<T, E> {
        let d = self.dict_parts(c.get())?;
        let found = match self.find_entry(&d, key, hint)? {
            Some(e) => {
                let o = d.entry_off(e) + dict_table::VALUE;
                Some((o, self.get(o)?))
            }
            None => None,
        };
        let (w, t) = f(self, found.map(|(_, old)| old))?;
        match found {
            Some((o, old)) if self.get(c.get() + dict_header::TABLE)? == d.table => {
                self.put(o, w)?;
                self.release_at_commit(old)?;
                self.bump_version(c.get())?;
            }
            _ => {
                self.dict_set(c, key, w, hint)?;
            }
        }
        Ok(t)
    }

    /// Dict `c`'s parts, after settling its insert claim if one is left: an insert's or a
    /// delete's claim that nobody holds any more (publications under the dict have all ended:
    /// our part waited for them, or the gate is closed), because its claimant died and its
    /// lock file is gone.
    fn dict_parts_settled(&mut self, c: u64) -> Result<DictParts> {
        let d = self.dict_parts(c)?;
        if self.get(c + dict_header::INSERT_CLAIM)? == 0 {
            return Ok(d);
        }
        if d.table == 0 {
            // No table, no entry: only the word.
            self.put(c + dict_header::INSERT_CLAIM, 0)?;
            return Ok(d);
        }
        crate::part_lock::settle_insert_claim(self.mem(), d.words(c), None)?;
        self.dict_parts(c)
    }

    /// Inserts an entry for a key known to be absent; returns its entry index.
    pub(super) fn dict_insert_new(&mut self, c: u64, h: u64, kw: u64, w: u64) -> Result<u64> {
        let mut d = self.dict_parts_settled(c)?;
        if d.table == 0 || d.nentries == d.cap {
            d = self.resize(c, &d, d.used + 1)?;
        }
        let e = d.nentries;
        let o = d.entry_off(e);
        self.put(o, h)?;
        self.put(o + dict_table::KEY, kw)?;
        self.put(o + dict_table::VALUE, w)?;
        let i = self.free_bucket(&d, h)?;
        self.put(d.bucket(i), e + 1)?;
        self.put(c + dict_header::NENTRIES, e + 1)?;
        self.put(c + dict_header::USED, d.used + 1)?;
        self.bump_version(c)?;
        Ok(e)
    }

    /// The first bucket on the probe sequence of hash `h` that names no live entry (empty, or
    /// deleted): where a new entry goes.
    pub(super) fn free_bucket(&self, d: &DictParts, h: u64) -> Result<u64> {
        let mask = d.nbuckets - 1;
        let mut i = h & mask;
        let mut perturb = h;
        let mut probes = 0;
        loop {
            let b = d.bucket_at(i)?;
            if b == 0 || b == dict_table::DUMMY {
                return Ok(i);
            }
            probes += 1;
            if probes >= probe_limit(d.nbuckets) {
                return Err(corrupt("dict table has no free bucket", d.table));
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(perturb).wrapping_add(1)) & mask;
        }
    }

    /// A new table sized for `want` live entries, holding the live entries of `d` in order.
    fn resize(&mut self, c: u64, d: &DictParts, want: u64) -> Result<DictParts> {
        let mut entries = Vec::with_capacity(d.used as usize);
        for e in 0..d.nentries {
            let (h, k, v) = self.entry(d, e)?;
            if k != value::EMPTY {
                entries.push((h, k, v));
            }
        }
        let table = self.build_table_for(&entries, want.max(entries.len() as u64 * 2))?;
        if d.table != 0 {
            self.free_at_commit(d.table)?;
        }
        self.put(c + dict_header::TABLE, table)?;
        self.put(c + dict_header::NENTRIES, entries.len() as u64)?;
        self.put(c + dict_header::USED, entries.len() as u64)?;
        self.dict_parts(c)
    }

    /// A table holding `entries` (hash, key, value), with room to grow.
    pub(super) fn build_table(&mut self, entries: &[(u64, u64, u64)]) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        self.build_table_for(entries, entries.len() as u64)
    }

    fn build_table_for(&mut self, entries: &[(u64, u64, u64)], want: u64) -> Result<u64> {
        // Load factor at most 2/3, as CPython: cap = nbuckets * 2 / 3.
        let mut nbuckets = 8u64;
        while nbuckets * 2 / 3 < want.max(entries.len() as u64) {
            nbuckets = nbuckets
                .checked_mul(2)
                .ok_or_else(|| Error::TooLarge("dict too large".into()))?;
        }
        let cap = nbuckets * 2 / 3;
        let bytes = dict_table::bytes(nbuckets, cap);
        let t = self.alloc(bytes)?;
        self.init(t, value::block_head(Kind::DictTable, nbuckets))?;
        self.init(t + dict_table::CAP, cap)?;
        let parts = DictParts {
            table: t,
            nbuckets,
            cap,
            used: entries.len() as u64,
            nentries: entries.len() as u64,
            // No dict names the table yet: only its buckets are written through these parts.
            nentries_at: 0,
            words: self.bytes_ptr(t, bytes)? as *const AtomicU64,
            nwords: bytes / 8,
        };
        for i in 0..nbuckets {
            self.init(parts.bucket(i), 0)?;
        }
        let mask = nbuckets - 1;
        for (e, &(h, k, v)) in entries.iter().enumerate() {
            let o = parts.entry_off(e as u64);
            self.init(o, h)?;
            self.init(o + dict_table::KEY, k)?;
            self.init(o + dict_table::VALUE, v)?;
            let mut i = h & mask;
            let mut perturb = h;
            while self.get(parts.bucket(i))? != 0 {
                perturb >>= PERTURB_SHIFT;
                i = (i.wrapping_mul(5).wrapping_add(perturb).wrapping_add(1)) & mask;
            }
            self.init(parts.bucket(i), e as u64 + 1)?;
        }
        Ok(t)
    }

    /// Deletes key node `key`; returns the (key, value) words, released at commit.
    pub fn dict_del(&mut self, c: Container, key: &Key) -> Result<Option<(u64, u64)>> {
        let c = c.get();
        let d = self.dict_parts_settled(c)?;
        let Some((b, e)) = self.find(&d, key)? else {
            return Ok(None);
        };
        Ok(Some(self.delete_entry(c, &d, b, e)?))
    }

    fn delete_entry(&mut self, c: u64, d: &DictParts, b: u64, e: u64) -> Result<(u64, u64)> {
        let o = d.entry_off(e);
        let kw = self.get(o + dict_table::KEY)?;
        let vw = self.get(o + dict_table::VALUE)?;
        self.put(d.bucket(b), dict_table::DUMMY)?;
        self.put(o + dict_table::KEY, value::EMPTY)?;
        self.put(o + dict_table::VALUE, value::EMPTY)?;
        self.put(c + dict_header::USED, d.used - 1)?;
        self.release_at_commit(kw)?;
        self.release_at_commit(vw)?;
        self.bump_version(c)?;
        Ok((kw, vw))
    }

    /// Removes and returns the last entry's (key, value) words (released at commit).
    pub fn dict_popitem(&mut self, c: Container) -> Result<Option<(u64, u64)>> {
        let Some((e, _, _)) = self.dict_last(c)? else {
            return Ok(None);
        };
        Ok(Some(self.dict_delete_at(c.get(), e)?))
    }

    /// The bucket naming live entry `e`, found by walking its probe sequence.
    fn bucket_of(&self, c: u64, d: &DictParts, e: u64) -> Result<u64> {
        let (h, _, _) = self.entry(d, e)?;
        let mask = d.nbuckets - 1;
        let mut i = h & mask;
        let mut perturb = h;
        for _ in 0..probe_limit(d.nbuckets) {
            if self.get(d.bucket(i))? == e + 1 {
                return Ok(i);
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(perturb).wrapping_add(1)) & mask;
        }
        Err(corrupt("dict entry not reachable from its bucket", c))
    }

    /// Deletes live entry `e` of dict `c`; returns its (key, value) words, released at commit.
    pub(super) fn dict_delete_at(&mut self, c: u64, e: u64) -> Result<(u64, u64)> {
        let d = self.dict_parts_settled(c)?;
        if e >= d.nentries || self.entry(&d, e)?.1 == value::EMPTY {
            return Err(corrupt("deleting a dict entry that is not live", c));
        }
        let b = self.bucket_of(c, &d, e)?;
        self.delete_entry(c, &d, b, e)
    }

    /// The entry of `key` in dict `c`: (entry index, key word, value word); `hint` as for
    /// `find_entry`.
    pub(super) fn dict_find(
        &self,
        c: u64,
        key: &Key,
        hint: &mut u64,
    ) -> Result<Option<(u64, u64, u64)>> {
        let d = self.dict_parts(c)?;
        match self.find_entry(&d, key, hint)? {
            Some(e) => {
                let (_, k, v) = d.entry_at(e)?;
                Ok(Some((e, k, v)))
            }
            None => Ok(None),
        }
    }

    /// Entry `e` of dict `c` if it is live: (e, key word, value word).
    pub(super) fn dict_entry_at(&self, c: u64, e: u64) -> Result<Option<(u64, u64, u64)>> {
        let d = self.dict_parts(c)?;
        if e >= d.nentries {
            return Ok(None);
        }
        let (_, k, v) = d.entry_at(e)?;
        Ok((k != value::EMPTY).then_some((e, k, v)))
    }

    /// Writes the value word of live entry `e` of dict `c` (the old word is the caller's to
    /// release or keep).
    pub(super) fn dict_put_value(&mut self, c: u64, e: u64, w: u64) -> Result<()> {
        let d = self.dict_parts(c)?;
        if e >= d.nentries {
            return Err(corrupt("dict entry out of range", c));
        }
        self.put(d.entry_off(e) + dict_table::VALUE, w)?;
        self.bump_version(c)
    }

    /// Moves live entry `e` of dict `c` to the end of the insertion order (its words kept,
    /// nothing released: the table may be rebuilt); returns its new index.
    pub(super) fn dict_move_last(&mut self, c: u64, e: u64) -> Result<u64> {
        let d = self.dict_parts(c)?;
        if e + 1 == d.nentries {
            return Ok(e);
        }
        let b = self.bucket_of(c, &d, e)?;
        let (h, kw, vw) = self.entry(&d, e)?;
        let o = d.entry_off(e);
        self.put(d.bucket(b), dict_table::DUMMY)?;
        self.put(o + dict_table::KEY, value::EMPTY)?;
        self.put(o + dict_table::VALUE, value::EMPTY)?;
        self.put(c + dict_header::USED, d.used - 1)?;
        self.dict_insert_new(c, h, kw, vw)
    }

    /// Removes every entry (released at commit).
    pub fn dict_clear(&mut self, c: Container) -> Result<()> {
        let c = c.get();
        // Settled first: a dead claimant's entry is then whole or gone, not half released.
        let d = self.dict_parts_settled(c)?;
        for e in 0..d.nentries {
            let (_, k, v) = self.entry(&d, e)?;
            if k != value::EMPTY {
                self.release_at_commit(k)?;
                self.release_at_commit(v)?;
            }
        }
        if d.table != 0 {
            self.free_at_commit(d.table)?;
        }
        self.put(c + dict_header::TABLE, 0)?;
        self.put(c + dict_header::USED, 0)?;
        self.put(c + dict_header::NENTRIES, 0)?;
        self.bump_version(c)
    }

    /// The class word of object `c`.
    pub fn object_class(&self, c: Container) -> Result<u64> {
        let c = c.get();
        self.check_container(c, Some(Kind::Object))?;
        self.get(c + dict_header::CLASS)
    }
}
