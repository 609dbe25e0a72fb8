//! The value to be stored, as the layer above hands it over: a flat tree of nodes.
//!
//! Flat (nodes in a vector, children as index ranges) so that a 100,000-deep nesting is built,
//! written and dropped without recursion. A container may appear more than once (shared
//! references, cycles): its first appearance is a `List`/`Dict`/`Object` node, later ones are
//! `Shared(node index)`. `Ref` names a container already in the store.

use std::borrow::Cow;
use std::ops::Range;

#[derive(Debug, Clone)]
pub enum Node<'a> {
    None,
    Bool(bool),
    Int(i64),
    /// An int outside i64: minimal two's-complement little-endian bytes.
    BigInt(Vec<u8>),
    Float(f64),
    /// UTF-8 bytes; lone surrogates are encoded as UTF-8 would encode them ("surrogatepass").
    Str(Cow<'a, [u8]>),
    Bytes(Cow<'a, [u8]>),
    /// A datetime, date, time, timedelta, Decimal or UUID: its kind and its payload
    /// (packed.rs, already encoded).
    Packed(super::value::Kind, Vec<u8>),
    /// Children: `tree.children[range]`.
    Tuple(Range<u32>),
    /// Members (hashable: scalars, tuples and frozensets of them): `tree.children[range]`.
    FrozenSet(Range<u32>),
    List(Range<u32>),
    /// Children in pairs: key, value.
    Dict(Range<u32>),
    /// A user object: its class (`module:qualname`) and attributes in pairs, as `Dict`.
    Object(String, Range<u32>),
    /// A set: its members (hashable, as frozenset members): `tree.children[range]`.
    Set(Range<u32>),
    /// An empty cache with these options (cache.rs).
    Cache(super::cache::CacheOpts),
    /// A container of this store.
    Ref(super::Container),
    /// Another reference to a container node of this tree.
    Shared(u32),
}

impl Node<'_> {
    pub fn is_container(&self) -> bool {
        matches!(
            self,
            Node::List(_) | Node::Dict(_) | Node::Object(..) | Node::Set(_) | Node::Cache(_)
        )
    }
}

/// Nodes plus the child index lists; the value is node `root`.
///
/// A single scalar (the common case: a key, an int, a str) is kept in `one` with no vector at
/// all, so building it allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct Tree<'a> {
    pub nodes: Vec<Node<'a>>,
    pub children: Vec<u32>,
    pub root: u32,
    pub one: Option<Node<'a>>,
}

impl<'a> Tree<'a> {
    pub fn scalar(node: Node<'a>) -> Tree<'a> {
        Tree {
            nodes: Vec::new(),
            children: Vec::new(),
            root: 0,
            one: Some(node),
        }
    }

    /// The scalar, if this tree is a single scalar.
    pub fn as_scalar(&self) -> Option<&Node<'a>> {
        self.one.as_ref()
    }

    pub fn node(&self, i: u32) -> &Node<'a> {
        match &self.one {
            Some(n) => n,
            None => &self.nodes[i as usize],
        }
    }

    pub fn kids(&self, r: &Range<u32>) -> &[u32] {
        &self.children[r.start as usize..r.end as usize]
    }

    /// Pushes a node with `k` children slots (filled in later through `children[start + j]`):
    /// returns the node's index and `start`.
    pub fn push_parent(&mut self, k: u32, make: impl FnOnce(Range<u32>) -> Node<'a>) -> (u32, u32) {
        let start = self.children.len() as u32;
        self.children.extend(std::iter::repeat_n(0, k as usize));
        (self.push(make(start..start + k)), start)
    }

    pub fn push(&mut self, n: Node<'a>) -> u32 {
        self.nodes.push(n);
        (self.nodes.len() - 1) as u32
    }
}
