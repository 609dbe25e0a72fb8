//! Persistent sets: a set is a dict whose entries have no value.
//!
//! A set block (kind `Set`) has the dict block's layout (`dict_header`) and a dict table
//! (`DictTable`) whose entries' value words are all empty (0): hashing, probing, resizing, the
//! undo log, part locks, check and release are the dict's (dict.rs), so a set adds no table
//! code of its own. Members are what a dict key may be; equal members (1, 1.0, True) are one.

use super::dict::Key;
use super::list::corrupt;
use super::value::{self, Kind};
use super::{Container, Result, Store};

impl Store {
    /// A member word read from a set's table, checked to be one a set may hold: never a
    /// container (only a damaged file has one; Python could not even hash its proxy).
    fn member(&self, c: Container, w: u64) -> Result<u64> {
        if w == value::EMPTY || self.names_container(w)? {
            return Err(corrupt("a set member is a container or empty", c.get()));
        }
        Ok(w)
    }

    /// The number of members of set `c`.
    pub fn set_len(&self, c: Container) -> Result<u64> {
        let c = c.get();
        self.check_container(c, Some(Kind::Set))?;
        self.get(c + super::layout::dict_header::USED)
    }

    /// Whether `key` is a member (`hint` as for `dict_get`).
    pub fn set_contains(&self, c: Container, key: &Key, hint: &mut u64) -> Result<bool> {
        self.check_container(c.get(), Some(Kind::Set))?;
        Ok(self.dict_get(c, key, hint)?.is_some())
    }

    /// Adds `key`; returns whether it was new (a member already there keeps its stored form,
    /// as set.add keeps the first object).
    pub fn set_add(&mut self, c: Container, key: &Key, hint: &mut u64) -> Result<bool> {
        if self.set_contains(c, key, hint)? {
            return Ok(false);
        }
        let kw = self.encode_key(key)?;
        *hint = self.dict_insert_new(c.get(), key.hash, kw, value::EMPTY)?;
        Ok(true)
    }

    /// A removed entry's words, checked: a value word in a set entry is damage, and its
    /// release (at commit) would drop a reference nothing holds. The error fails the change,
    /// whose rollback drops the releases it logged.
    fn removed(&self, c: Container, entry: Option<(u64, u64)>) -> Result<Option<u64>> {
        match entry {
            Some((_, vw)) if vw != value::EMPTY => Err(corrupt("a set entry has a value", c.get())),
            Some((kw, _)) => Ok(Some(self.member(c, kw)?)),
            None => Ok(None),
        }
    }

    /// Removes `key`; returns its stored word (released at commit), None if it was no member.
    pub fn set_discard(&mut self, c: Container, key: &Key) -> Result<Option<u64>> {
        self.check_container(c.get(), Some(Kind::Set))?;
        let entry = self.dict_del(c, key)?;
        self.removed(c, entry)
    }

    /// Removes and returns a member's word (released at commit): the last inserted one.
    pub fn set_pop(&mut self, c: Container) -> Result<Option<u64>> {
        self.check_container(c.get(), Some(Kind::Set))?;
        let entry = self.dict_popitem(c)?;
        self.removed(c, entry)
    }

    /// Removes every member (released at commit).
    pub fn set_clear(&mut self, c: Container) -> Result<()> {
        self.check_container(c.get(), Some(Kind::Set))?;
        for (kw, vw) in self.dict_items(c)? {
            self.removed(c, Some((kw, vw)))?;
        }
        self.dict_clear(c)
    }

    /// Every member's word, in table order.
    pub fn set_members(&self, c: Container) -> Result<Vec<u64>> {
        self.check_container(c.get(), Some(Kind::Set))?;
        let items = self.dict_items(c)?;
        items.into_iter().map(|(k, _)| self.member(c, k)).collect()
    }

    /// The next member at or after table position `pos`: (its position, its word).
    pub fn set_next(&self, c: Container, pos: u64) -> Result<Option<(u64, u64)>> {
        self.check_container(c.get(), Some(Kind::Set))?;
        match self.dict_next(c, pos)? {
            Some((e, k, _)) => Ok(Some((e, self.member(c, k)?))),
            None => Ok(None),
        }
    }
}
