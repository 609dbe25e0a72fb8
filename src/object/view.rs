//! The typed view of a value word: what it stands for, where its block's parts lie, and which
//! value words and blocks it refers to.
//!
//! Problem: every walk of the graph (mark in check and gc, the stable hash of a key, the
//! release of dropped values at commit, the conversion to Python) needs the same decoding of
//! value words and block heads, and the same checks of what a hostile file may hold there.
//! Written once per walker, the copies drift (each with its own messages and bounds), and a new
//! value kind is silently ignored by the walkers nobody updated.
//!
//! Mechanism: [`Store::value`] decodes a word once, checks the block's kind and that its
//! payload lies inside the store, and returns a [`Value`]; `Store::for_each_child` lists what
//! a value refers to (value words, dict entries, internal blocks). Walkers match on `Value`
//! without a wildcard arm, so adding a variant is a compile error until each one handles it.
//! Nothing outside the object layer computes a block layout: the accessors below
//! ([`Store::payload`], [`Store::float_bits`], [`Store::tuple_item`]) do.
//!
//! A container crosses the boundary to the layer above as a [`Container`]: the typed offset of
//! a list, dict or object block, which only this layer makes (from a decoded value, the root
//! word, or a container it just created), so the layer above cannot hand a value word, an
//! owned value's block or a count where a container is meant.

use super::layout::{container, dict_header, owned};
use super::list::corrupt;
use super::value::{self, Kind};
use super::{Result, Store};

/// The offset of a container block (a list, dict, object or set), as the layer above holds it: in
/// its proxies, in the held set, and in the calls that read or change the container.
///
/// Only the object layer makes one, from an offset it has checked to name a container block
/// ([`Store::value`], [`Store::root`], [`Store::create_unlinked`], ...). The block may be
/// freed afterwards (a proxy that is not held keeps a stale one), so every call that takes a
/// `Container` checks its block again before use.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Container(u64);

impl Container {
    /// A container offset that this layer has just checked (the kind in its block's head).
    pub(super) const fn checked(off: u64) -> Container {
        Container(off)
    }

    /// The byte offset of its block in the store file: also the value word that refers to it.
    #[inline]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Container({:#x})", self.0)
    }
}

impl std::fmt::LowerHex for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.0, f)
    }
}

/// The bytes of a str, bytes or int: `len` bytes after the block's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    pub block: u64,
    pub len: u64,
}

/// What a value word stands for. Inline values carry their value; blocks their offset (and,
/// for owned values, their length, checked against the store's size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// No value: an unused slot (a deleted dict entry's key and value).
    Empty,
    None,
    Bool(bool),
    /// A small int (the inline range).
    Int(i64),
    /// A str of at most 7 UTF-8 bytes, in the word itself.
    ShortStr(u64),
    Str(Payload),
    Bytes(Payload),
    /// An int outside the small range: two's-complement little-endian bytes.
    BigInt(Payload),
    Float {
        block: u64,
    },
    Tuple {
        block: u64,
        len: u64,
    },
    /// A datetime, date, time, timedelta, Decimal or UUID (packed.rs): its kind and payload.
    Packed {
        kind: Kind,
        payload: Payload,
    },
    /// A frozenset of `len` members.
    FrozenSet {
        block: u64,
        len: u64,
    },
    List(Container),
    Dict(Container),
    Object(Container),
    /// A set: a dict whose entries' value words are all empty.
    Set(Container),
    /// A cache: a dict whose entries' values are cache entries (cache.rs).
    Cache(Container),
}

impl Value {
    /// The container this value is (shared, reference counted), if it is one.
    pub fn container(self) -> Option<Container> {
        match self {
            Value::List(c)
            | Value::Dict(c)
            | Value::Object(c)
            | Value::Set(c)
            | Value::Cache(c) => Some(c),
            _ => None,
        }
    }

    /// The bytes an owned value's block spans (its head included); None for inline values and
    /// containers.
    pub fn owned_span(self) -> Option<u64> {
        match self {
            Value::Str(p) | Value::Bytes(p) | Value::BigInt(p) => Some(owned::PAYLOAD + p.len),
            Value::Float { .. } => Some(owned::FLOAT_BYTES),
            Value::Tuple { len, .. } => Some(owned::tuple_bytes(len)),
            Value::Packed { payload, .. } => Some(owned::PAYLOAD + payload.len),
            Value::FrozenSet { len, .. } => Some(owned::set_bytes(len)),
            _ => None,
        }
    }

    /// The type's name, for messages and statistics.
    pub fn type_name(self) -> &'static str {
        match self {
            Value::Empty => "empty",
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::ShortStr(_) | Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Float { .. } => "float",
            Value::Tuple { .. } => "tuple",
            Value::Packed { kind, .. } => kind.name(),
            Value::FrozenSet { .. } => "frozenset",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Object(_) => "object",
            Value::Set(_) => "set",
            Value::Cache(_) => "cache",
        }
    }
}

/// What a value refers to, as `Store::for_each_child` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Child {
    /// A value word: a tuple's or list's item, an object's class name.
    Word(u64),
    /// A live dict entry: the stored hash, the key word and the value word (a set's: empty).
    Entry {
        index: u64,
        hash: u64,
        key: u64,
        value: u64,
    },
    /// An internal block the container owns (its items block or table).
    Part(u64),
    /// A frozenset member: its stored hash and its value word.
    Member { hash: u64, word: u64 },
}

impl Store {
    /// Decodes value word `w` (read from the store): an inline value, or a block whose kind is
    /// a value's and whose payload lies inside the store. A damaged word or block is an error.
    pub fn value(&self, w: u64) -> Result<Value> {
        Ok(match w {
            value::EMPTY => Value::Empty,
            value::NONE => Value::None,
            value::FALSE => Value::Bool(false),
            value::TRUE => Value::Bool(true),
            w if value::is_small_int(w) => Value::Int(value::small_int_value(w)),
            w if value::is_block(w) => self.block_value(w)?,
            w => {
                // A short str (length checked) or a word with no valid tag.
                value::check_word(w)?;
                Value::ShortStr(w)
            }
        })
    }

    fn block_value(&self, w: u64) -> Result<Value> {
        let head = self.get(w)?;
        let len = value::head_len(head);
        let payload = |bytes: Option<u64>| -> Result<()> {
            let span = bytes
                .and_then(|b| b.checked_add(owned::PAYLOAD))
                .ok_or_else(|| corrupt("a value's length overflows", w))?;
            self.check_span(w, span)
        };
        let bytes = |len: u64| -> Result<Payload> {
            payload(Some(len))?;
            Ok(Payload { block: w, len })
        };
        Ok(match value::head_kind(head) {
            Some(Kind::Str) => Value::Str(bytes(len)?),
            Some(Kind::Bytes) => Value::Bytes(bytes(len)?),
            Some(Kind::BigInt) => Value::BigInt(bytes(len)?),
            Some(Kind::Float) => {
                payload(Some(8))?;
                Value::Float { block: w }
            }
            Some(Kind::Tuple) => {
                payload(len.checked_mul(8))?;
                Value::Tuple { block: w, len }
            }
            Some(
                kind @ (Kind::DateTime
                | Kind::Date
                | Kind::Time
                | Kind::TimeDelta
                | Kind::Decimal
                | Kind::Uuid),
            ) => Value::Packed {
                kind,
                payload: bytes(len)?,
            },
            Some(Kind::FrozenSet) => {
                payload(len.checked_mul(16))?;
                Value::FrozenSet { block: w, len }
            }
            Some(Kind::List) => Value::List(Container(w)),
            Some(Kind::Dict) => Value::Dict(Container(w)),
            Some(Kind::Object) => Value::Object(Container(w)),
            Some(Kind::Set) => Value::Set(Container(w)),
            Some(Kind::Cache) => Value::Cache(Container(w)),
            Some(Kind::ListItems | Kind::DictTable | Kind::UndoLog | Kind::Held) | None => {
                return Err(corrupt(
                    &format!(
                        "a value word names a block of kind {} ({})",
                        head & 0xff,
                        value::kind_name(head)
                    ),
                    w,
                ))
            }
        })
    }

    /// Whether value word `w` names a container (a cheap test: no payload checks).
    pub(super) fn names_container(&self, w: u64) -> Result<bool> {
        Ok(value::is_block(w) && value::head_kind(self.get(w)?).is_some_and(Kind::is_container))
    }

    /// A raw pointer to a payload's bytes (checked by [`Store::value`]). The bytes are only
    /// meaningful if the read they belong to is validated afterwards.
    pub fn payload(&self, p: Payload) -> Result<*const u8> {
        self.raw_bytes(p.block + owned::PAYLOAD, p.len)
    }

    /// A copy of a payload's bytes.
    pub fn payload_bytes(&self, p: Payload) -> Result<Vec<u8>> {
        self.read_bytes(p.block + owned::PAYLOAD, p.len)
    }

    /// A float's bits.
    pub fn float_bits(&self, block: u64) -> Result<u64> {
        self.get(block + owned::PAYLOAD)
    }

    /// Item `i` of a tuple (`i` below its length; the span was checked by [`Store::value`]).
    pub fn tuple_item(&self, block: u64, i: u64) -> Result<u64> {
        self.get(owned::tuple_item(block, i))
    }

    /// Member `i` of a frozenset (`i` below its length): its stored hash and value word.
    pub fn set_member(&self, block: u64, i: u64) -> Result<(u64, u64)> {
        let at = owned::set_member(block, i);
        Ok((self.get(at)?, self.get(at + 8)?))
    }

    /// The decoded and checked payload of a packed value (a damaged one is an error).
    pub fn packed<T>(
        &self,
        kind: Kind,
        p: Payload,
        f: impl FnOnce(super::packed::Packed) -> T,
    ) -> Result<T> {
        let b = self.payload_bytes(p)?;
        let v = super::packed::decode(kind, &b).map_err(|what| corrupt(&what, p.block))?;
        Ok(f(v))
    }

    /// Appends to `out` the value words `v` refers to: items, members, each entry's key and
    /// value (what `for_each_child` finds, less the blocks `v` owns).
    pub(super) fn child_words(&self, v: Value, out: &mut Vec<u64>) -> Result<()> {
        self.for_each_child(v, |child| {
            match child {
                Child::Word(x) | Child::Member { word: x, .. } => out.push(x),
                Child::Entry { key, value, .. } => out.extend([key, value]),
                Child::Part(_) => {}
            }
            Ok(())
        })
    }

    /// Calls `f` for everything `v` refers to: a tuple's items; a frozenset's members; a list's items block and items;
    /// a dict's or set's table and live entries (checking their count against the dict's); an object's
    /// table, entries and class name. Inline values and str, bytes, int and float refer to
    /// nothing.
    pub(super) fn for_each_child(
        &self,
        v: Value,
        mut f: impl FnMut(Child) -> Result<()>,
    ) -> Result<()> {
        match v {
            Value::Empty
            | Value::None
            | Value::Bool(_)
            | Value::Int(_)
            | Value::ShortStr(_)
            | Value::Str(_)
            | Value::Bytes(_)
            | Value::BigInt(_)
            | Value::Float { .. }
            | Value::Packed { .. } => Ok(()),
            Value::Tuple { block, len } => {
                for i in 0..len {
                    f(Child::Word(self.tuple_item(block, i)?))?;
                }
                Ok(())
            }
            Value::FrozenSet { block, len } => {
                for i in 0..len {
                    let (hash, word) = self.set_member(block, i)?;
                    f(Child::Member { hash, word })?;
                }
                Ok(())
            }
            Value::List(c) => {
                let p = self.list_parts(c.get())?;
                if p.items != 0 {
                    f(Child::Part(p.items))?;
                }
                for i in 0..p.len {
                    f(Child::Word(self.get(p.slot(i))?))?;
                }
                Ok(())
            }
            Value::Dict(c) | Value::Object(c) | Value::Set(c) | Value::Cache(c) => {
                let c = c.get();
                let d = self.dict_parts(c)?;
                if d.table != 0 {
                    f(Child::Part(d.table))?;
                }
                let mut live = 0;
                for index in 0..d.nentries {
                    let (hash, key, value) = self.entry(&d, index)?;
                    if key != value::EMPTY {
                        live += 1;
                        f(Child::Entry {
                            index,
                            hash,
                            key,
                            value,
                        })?;
                    }
                }
                // An insert claim left standing after its claimant's lock file went (nobody
                // to recover it: the next insert or removal on the dict's part settles it) may
                // stand between an insert's or a delete's commit, the store of its key word,
                // and the move of `used` (FORMAT.md §10.9, "Inserts", "Deletes").
                let claimed = self.get(c + dict_header::INSERT_CLAIM)? != 0;
                if live != d.used && !(claimed && (live == d.used + 1 || live + 1 == d.used)) {
                    return Err(corrupt(
                        &format!(
                            "dict says it holds {} entries, its table holds {live}",
                            d.used
                        ),
                        c,
                    ));
                }
                if matches!(v, Value::Object(_)) {
                    f(Child::Word(self.get(c + dict_header::CLASS)?))?;
                }
                Ok(())
            }
        }
    }

    /// A container's reference count.
    pub(super) fn refcount(&self, c: u64) -> Result<u64> {
        self.get(c + container::REFCNT)
    }
}
