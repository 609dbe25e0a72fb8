//! Dict keys: the key a lookup carries ([`Key`]), the store's stable hash of a key (of a value
//! tree on the way in, of a stored word for check and rebuilding), and key equality with
//! Python's rules (1, 1.0 and True are one key; str and bytes never equal; tuples item by item).

use super::layout::owned;
use super::list::corrupt;
use super::number::{self, Num};
use super::packed::{self, KeyForm, Packed};
use super::tree::{Node, Tree};
use super::value::{self, hash, Kind};
use super::view::Value;
use super::{Error, Result, Store};

fn node_num(n: &Node) -> Result<Option<Num>> {
    Ok(Some(match n {
        Node::Bool(b) => Num::I(*b as i64),
        Node::Int(v) => Num::I(*v),
        Node::BigInt(b) => number::int_bytes_num(b),
        Node::Float(f) => number::float_num(*f),
        Node::Packed(Kind::Decimal, b) => match packed::decode(Kind::Decimal, b) {
            Ok(Packed::Decimal(d)) => number::dec_num(&d),
            _ => return Err(Error::Usage("value tree: a bad Decimal payload".into())),
        },
        _ => return Ok(None),
    }))
}

/// A dict key as lookups use it: its stable hash, its value word when it is stored inline (a
/// short str, a small int, None or a bool: the one form such a key is ever stored in), and
/// otherwise its node in a tree.
pub struct Key<'t, 'a> {
    pub hash: u64,
    pub(super) inline: Option<u64>,
    pub(super) tree: Option<(&'t Tree<'a>, u32)>,
}

impl<'t, 'a> Key<'t, 'a> {
    /// Key node `node` of `tree`.
    pub fn new(tree: &'t Tree<'a>, node: u32) -> Result<Self> {
        Ok(Key {
            hash: hash_node(tree, node)?,
            inline: value::inline_word(tree.node(node)),
            tree: Some((tree, node)),
        })
    }

    /// The key whose inline value word is `w` (checked: None if `w` is not an inline word),
    /// without building a tree (the fast path for str and int keys).
    pub fn inline(w: u64) -> Option<Self> {
        Some(Key {
            hash: value::inline_hash(w)?,
            inline: Some(w),
            tree: None,
        })
    }
}

impl Store {
    /// Writes a new key (or set member) from its tree and returns its word: a stored key keeps
    /// this first form, as dict keeps the first key object.
    pub(super) fn encode_key(&mut self, key: &Key) -> Result<u64> {
        match (key.inline, key.tree) {
            (Some(w), _) => Ok(w),
            (None, Some((kt, node)))
                if matches!(kt.node(node), Node::Tuple(_) | Node::FrozenSet(_)) =>
            {
                let sub = Tree {
                    nodes: kt.nodes.clone(),
                    children: kt.children.clone(),
                    root: node,
                    one: None,
                };
                self.encode(&sub)
            }
            (None, Some((kt, node))) => self.encode_scalar(kt.node(node)),
            (None, None) => unreachable!("a key is inline or has a tree"),
        }
    }
}

/// The stable hash of tree node `i` (a key). Tuples and frozensets nest; their depth is
/// bounded by the tree builder (a key is hashable in Python, so it has no cycles).
pub(super) fn hash_node(t: &Tree, i: u32) -> Result<u64> {
    if !matches!(t.node(i), Node::Tuple(_) | Node::FrozenSet(_)) {
        return hash_scalar(t.node(i));
    }
    // Iterative: post-order over tuple items and frozenset members.
    enum Step {
        Visit(u32),
        Combine(usize, usize, bool),
    }
    let mut out: Vec<u64> = Vec::new();
    let mut stack = vec![Step::Visit(i)];
    while let Some(s) = stack.pop() {
        match s {
            Step::Visit(i) => match t.node(i) {
                Node::Tuple(r) | Node::FrozenSet(r) => {
                    let kids = t.kids(r);
                    let set = matches!(t.node(i), Node::FrozenSet(_));
                    stack.push(Step::Combine(out.len(), kids.len(), set));
                    for &c in kids.iter().rev() {
                        stack.push(Step::Visit(c));
                    }
                }
                n => out.push(hash_scalar(n)?),
            },
            Step::Combine(start, len, set) => {
                combine(&mut out, start, len, set);
            }
        }
    }
    Ok(out.pop().unwrap_or(0))
}

pub(super) fn hash_int_bytes(b: &[u8]) -> u64 {
    hash::num(number::residue_twos(b))
}

pub(super) fn hash_float(f: f64) -> u64 {
    if f.is_finite() {
        // Integral or not: the residue of its exact value, as the equal int's.
        hash::num(number::residue_float(f))
    } else {
        hash::float_bits(f.to_bits())
    }
}

fn hash_packed(k: Kind, b: &[u8]) -> Result<u64> {
    let p = packed::decode(k, b).map_err(|e| Error::Usage(format!("value tree: {e}")))?;
    Ok(packed::key_hash(&p))
}

fn hash_scalar(n: &Node) -> Result<u64> {
    Ok(match n {
        Node::None => hash::none(),
        Node::Bool(b) => hash::int(*b as i64),
        Node::Int(v) => hash::int(*v),
        Node::BigInt(b) => hash_int_bytes(b),
        Node::Float(f) => hash_float(*f),
        Node::Str(s) => hash::bytes(hash::DOMAIN_STR, s),
        Node::Bytes(b) => hash::bytes(hash::DOMAIN_BYTES, b),
        Node::Packed(k, b) => hash_packed(*k, b)?,
        _ => return Err(Error::Usage("value tree: a container used as a key".into())),
    })
}

impl Store {
    // ---- key equality ------------------------------------------------------------------

    /// Whether stored key word `kw` equals `key` (`key_eq`'s rules).
    pub(super) fn key_matches(&self, kw: u64, key: &Key) -> Result<bool> {
        if let Some(iw) = key.inline {
            if kw == iw {
                return Ok(true);
            }
            // Only numbers have other stored forms equal to them (1 == 1.0 == True); a short
            // str and None are always stored as this very word.
            return Ok(match self.word_num(iw)? {
                Some(n) => self.word_num(kw)?.is_some_and(|m| number::num_eq(&n, &m)),
                None => false,
            });
        }
        match key.tree {
            Some((t, node)) => self.key_eq(kw, t, node),
            None => Ok(false),
        }
    }

    /// Whether stored key word `kw` equals key node `key` of `t`, with Python's rules: numbers
    /// by value across bool, int and float; str and bytes never equal each other; tuples item
    /// by item; frozensets member by member (`set_eq`).
    fn key_eq(&self, kw: u64, t: &Tree, key: u32) -> Result<bool> {
        // Scalars (nearly every key) compare without the work list.
        if !matches!(t.node(key), Node::Tuple(_) | Node::FrozenSet(_)) {
            return self.scalar_key_eq(kw, t.node(key));
        }
        let mut stack = vec![(kw, key)];
        while let Some((w, n)) = stack.pop() {
            let eq = match t.node(n) {
                Node::Tuple(r) => {
                    let kids = t.kids(r);
                    if !value::is_block(w) {
                        false
                    } else {
                        let head = self.get(w)?;
                        if value::head_kind(head) != Some(Kind::Tuple)
                            || value::head_len(head) != kids.len() as u64
                        {
                            false
                        } else {
                            for (i, &k) in kids.iter().enumerate() {
                                stack.push((self.get(owned::tuple_item(w, i as u64))?, k));
                            }
                            true
                        }
                    }
                }
                Node::FrozenSet(r) => self.set_eq(w, t, t.kids(r))?,
                node => self.scalar_key_eq(w, node)?,
            };
            if !eq {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether stored word `w` is a frozenset equal to the members `kids` of `t`: as many
    /// members, and each of `kids` equal to a stored member of its hash (members are stored
    /// in ascending order of hash, and are pairwise unequal, so this is set equality). Recurses
    /// once per level of frozensets nested in the key, a depth the tree builder bounds.
    fn set_eq(&self, w: u64, t: &Tree, kids: &[u32]) -> Result<bool> {
        if !value::is_block(w) {
            return Ok(false);
        }
        let head = self.get(w)?;
        if value::head_kind(head) != Some(Kind::FrozenSet)
            || value::head_len(head) != kids.len() as u64
        {
            return Ok(false);
        }
        let Value::FrozenSet { block, len } = self.value(w)? else {
            return Ok(false);
        };
        for &k in kids {
            let h = hash_node(t, k)?;
            // The first member whose hash is not below h.
            let (mut lo, mut hi) = (0, len);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.set_member(block, mid)?.0 < h {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            let mut found = false;
            while lo < len {
                let (mh, mw) = self.set_member(block, lo)?;
                if mh != h {
                    break;
                }
                if self.key_eq(mw, t, k)? {
                    found = true;
                    break;
                }
                lo += 1;
            }
            if !found {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `key_eq` for a key node that is not a tuple.
    fn scalar_key_eq(&self, w: u64, node: &Node) -> Result<bool> {
        // A float against a stored float: numeric equality is the floats' own (the common
        // case, without building the exact numbers below).
        if let (Node::Float(f), true) = (node, value::is_block(w)) {
            if let Value::Float { block } = self.value(w)? {
                return Ok(f64::from_bits(self.float_bits(block)?) == *f);
            }
        }
        Ok(match node {
            Node::None => w == value::NONE,
            Node::Str(s) => match value::short_str(s) {
                Some(sw) => w == sw,
                None => self.block_bytes_eq(w, Kind::Str, s)?,
            },
            Node::Bytes(b) => self.block_bytes_eq(w, Kind::Bytes, b)?,
            Node::Int(v) if value::is_small_int(w) => value::small_int_value(w) == *v,
            Node::Packed(k, b) if *k != Kind::Decimal => {
                let Value::Packed { kind, payload } = self.value(w)? else {
                    return Ok(false);
                };
                if kind != *k {
                    return Ok(false);
                }
                let want =
                    packed::decode(*k, b).map_err(|e| Error::Usage(format!("value tree: {e}")))?;
                let want = packed::key_form(&want);
                self.packed(kind, payload, |have| {
                    match (packed::key_form(&have), &want) {
                        (KeyForm::Bytes(d1, b1), KeyForm::Bytes(d2, b2)) => d1 == *d2 && b1 == *b2,
                        _ => false,
                    }
                })?
            }
            n => match (node_num(n)?, self.word_num(w)?) {
                (Some(a), Some(b)) => number::num_eq(&a, &b),
                _ => false,
            },
        })
    }

    fn block_bytes_eq(&self, w: u64, k: Kind, b: &[u8]) -> Result<bool> {
        if !value::is_block(w) {
            return Ok(false);
        }
        let head = self.get(w)?;
        if value::head_kind(head) != Some(k) || value::head_len(head) != b.len() as u64 {
            return Ok(false);
        }
        let p = self.raw_bytes(w + owned::PAYLOAD, b.len() as u64)?;
        // SAFETY: the range is inside the mapping (checked by raw_bytes); the bytes may be
        // changing under a racing writer, in which case the caller's read validation fails
        // and this answer is discarded. Read as a raw slice for the comparison only.
        let stored = unsafe { std::slice::from_raw_parts(p, b.len()) };
        Ok(stored == b)
    }

    /// A stored word as a number, if it is one.
    fn word_num(&self, w: u64) -> Result<Option<Num>> {
        Ok(Some(match self.value(w)? {
            Value::Bool(b) => Num::I(b as i64),
            Value::Int(v) => Num::I(v),
            Value::Float { block } => number::float_num(f64::from_bits(self.float_bits(block)?)),
            Value::BigInt(p) => {
                if p.len == 0 || p.len > 1 << 20 {
                    return Err(corrupt("int of unreasonable size", w));
                }
                let b = self.payload_bytes(p)?;
                match value::twos_to_i64(&b) {
                    Some(v) => Num::I(v),
                    None => Num::B(b),
                }
            }
            Value::Packed {
                kind: Kind::Decimal,
                payload,
            } => {
                let b = self.payload_bytes(payload)?;
                match packed::decode(Kind::Decimal, &b) {
                    Ok(Packed::Decimal(d)) => number::dec_num(&d),
                    Ok(_) | Err(_) => return Err(corrupt("a damaged Decimal", w)),
                }
            }
            Value::Empty
            | Value::None
            | Value::ShortStr(_)
            | Value::Str(_)
            | Value::Bytes(_)
            | Value::Tuple { .. }
            | Value::Packed { .. }
            | Value::FrozenSet { .. }
            | Value::List(_)
            | Value::Dict(_)
            | Value::Object(_)
            | Value::Set(_)
            | Value::Cache(_) => return Ok(None),
        }))
    }

    /// The stable hash of a stored key word (for check and rebuilding): as `hash_node` gives
    /// for the value it stands for. Tuples and frozensets through a work list (no recursion).
    pub fn hash_word(&self, w: u64) -> Result<u64> {
        enum Step {
            Visit(u64),
            Combine(usize, usize, bool),
        }
        let mut out = Vec::new();
        let mut stack = vec![Step::Visit(w)];
        let mut steps = 0u64;
        while let Some(s) = stack.pop() {
            steps += 1;
            if steps > 1 << 24 {
                return Err(corrupt("key nests too deeply", w));
            }
            let w = match s {
                Step::Combine(start, len, set) => {
                    combine(&mut out, start, len, set);
                    continue;
                }
                Step::Visit(w) => w,
            };
            let h = match self.value(w)? {
                Value::None => hash::none(),
                Value::Bool(b) => hash::int(b as i64),
                Value::Int(v) => hash::int(v),
                Value::ShortStr(sw) => {
                    let (b, n) = value::short_str_bytes(sw);
                    hash::bytes(hash::DOMAIN_STR, &b[..n])
                }
                Value::Str(p) => hash::bytes(hash::DOMAIN_STR, &self.payload_bytes(p)?),
                Value::Bytes(p) => hash::bytes(hash::DOMAIN_BYTES, &self.payload_bytes(p)?),
                Value::BigInt(p) => hash_int_bytes(&self.payload_bytes(p)?),
                Value::Float { block } => hash_float(f64::from_bits(self.float_bits(block)?)),
                Value::Tuple { block, len } => {
                    stack.push(Step::Combine(out.len(), len as usize, false));
                    for i in (0..len).rev() {
                        stack.push(Step::Visit(self.tuple_item(block, i)?));
                    }
                    continue;
                }
                Value::FrozenSet { block, len } => {
                    stack.push(Step::Combine(out.len(), len as usize, true));
                    for i in (0..len).rev() {
                        stack.push(Step::Visit(self.set_member(block, i)?.1));
                    }
                    continue;
                }
                Value::Packed { kind, payload } => {
                    self.packed(kind, payload, |p| packed::key_hash(&p))?
                }
                v @ (Value::Empty
                | Value::List(_)
                | Value::Dict(_)
                | Value::Object(_)
                | Value::Set(_)
                | Value::Cache(_)) => {
                    return Err(corrupt(
                        &format!("a dict key is a {}, which no key can be", v.type_name()),
                        w,
                    ))
                }
            };
            out.push(h);
        }
        Ok(out.pop().unwrap_or(0))
    }
}

/// Replaces the `len` hashes from `start` on at the end of `out` (a tuple's items or a
/// frozenset's members, in order) by the hash of the whole.
fn combine(out: &mut Vec<u64>, start: usize, len: usize, set: bool) {
    let items = out[start..start + len].iter().copied();
    let h = if set {
        hash::set(items)
    } else {
        hash::tuple(items)
    };
    out.truncate(start);
    out.push(h);
}
