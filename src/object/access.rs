//! Checked access to the store's words and bytes, and the allocations of a change.
//!
//! Every offset is bounds- and alignment-checked by the mapping before use (a damaged or hostile
//! file gives `Error::Corrupt`, never a stray access). Reads are Relaxed: a reader validates
//! the store's sequence afterwards, a writer holds the writer word. A change writes a word
//! that others may see only through `put`, which logs the old value first; words of a block the
//! change allocated and has not linked are written with `init` (a rollback frees the block).

use super::layout::container;
use super::layout::undo::Entry;
use super::value::{self, Kind};
use super::{Error, Result, Store};
use crate::region::Mapping;
use crate::sync::{AtomicU64, Ordering, WordStore};

impl Store {
    // ---- word access -------------------------------------------------------------------

    /// A data word. Under the seqlock a Relaxed load suffices: the reader's Acquire load of
    /// the sequence comes before and its Acquire fence before the re-check comes after;
    /// writers hold the writer word.
    #[inline]
    pub(super) fn get(&self, off: u64) -> Result<u64> {
        Ok(self.mem().load(off, Ordering::Relaxed)?)
    }

    /// `N` consecutive data words from `off`, with one bounds check.
    pub(super) fn get_words<const N: usize>(&self, off: u64) -> Result<[u64; N]> {
        if off % 8 != 0 {
            return Err(Error::Corrupt {
                what: "misaligned word offset".into(),
                offset: off,
            });
        }
        let p = self.bytes_ptr(off, 8 * N as u64)? as *const AtomicU64;
        // SAFETY: `p` is 8-aligned (the mapping is page-aligned, `off` 8-aligned) and the N
        // words lie inside the mapping (checked); shared words are only accessed atomically.
        // Relaxed, as `get`.
        Ok(std::array::from_fn(|i| unsafe {
            (*p.add(i)).load(Ordering::Relaxed)
        }))
    }

    /// Writes a data word inside an op, logging its old value first.
    pub(super) fn put(&mut self, off: u64, new: u64) -> Result<()> {
        debug_assert!(self.locks.writing || self.part_change.is_some());
        let old = self.get(off)?;
        if old == new {
            return Ok(());
        }
        self.log.log_word(&self.part, off, old)?;
        // Relaxed: readers validate the sequence (Release-stored at the end of the op), or
        // the container's version (a part change: ordered after its CAS by the Release fence
        // that follows it, and before the Release store that releases the part).
        self.mem().store(off, new, Ordering::Relaxed)?;
        Ok(())
    }

    /// Writes a word of a block allocated in this op and not yet linked: no undo needed (a
    /// rollback frees the whole block).
    pub(super) fn init(&self, off: u64, v: u64) -> Result<()> {
        self.mem().store(off, v, Ordering::Relaxed)?;
        Ok(())
    }

    /// Copies `n` words from `src` to `dst`, a block allocated in this op and not linked yet
    /// (growing a list: one copy instead of a checked load and store per word).
    pub(super) fn copy_words(&self, src: u64, dst: u64, n: u64) -> Result<()> {
        copy_words(self.mem(), src, dst, n)
    }

    /// Raw bytes of the store, checked.
    pub(super) fn bytes_ptr(&self, off: u64, len: u64) -> Result<*mut u8> {
        Ok(self.mem().bytes(off, len)?)
    }

    /// Copies `len` bytes at `off` out of the store.
    pub fn read_bytes(&self, off: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.bytes_ptr(off, len)?;
        let mut v = vec![0u8; len as usize];
        // SAFETY: `p..p+len` lies inside the mapping (checked); other processes may write these
        // bytes at the same time (a racing reader validates the sequence afterwards and drops
        // the copy), which is why this is a raw copy and never a Rust reference to the bytes.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), len as usize) };
        Ok(v)
    }

    /// A raw pointer to `len` bytes at `off` (checked), for the layer above to copy from
    /// straight into its own objects. Valid until the store is closed; the bytes are only
    /// meaningful if the read is validated afterwards.
    pub fn raw_bytes(&self, off: u64, len: u64) -> Result<*const u8> {
        Ok(self.bytes_ptr(off, len)? as *const u8)
    }

    pub(super) fn write_bytes(&self, off: u64, b: &[u8]) -> Result<()> {
        let p = self.bytes_ptr(off, b.len() as u64)?;
        // SAFETY: the range is inside the mapping (checked) and belongs to a block this op
        // allocated and has not linked yet, so no other process writes it.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len()) };
        Ok(())
    }

    /// Checks that `off` is a container block (of kind `want`, if given) and returns its kind.
    pub fn check_container(&self, off: u64, want: Option<Kind>) -> Result<Kind> {
        if !value::is_block(off) {
            return Err(Error::Corrupt {
                what: format!("expected a container, found word {off:#x}"),
                offset: off,
            });
        }
        let head = self.get(off)?;
        let found = value::head_kind(head);
        match (found, want) {
            (Some(k), Some(w)) if k == w || (w == Kind::Dict && k == Kind::Object) => Ok(k),
            (Some(k), None) if k.is_container() => Ok(k),
            _ => Err(Error::Corrupt {
                what: format!(
                    "expected a {}, found a block of kind {} ({})",
                    want.map_or("container", Kind::name),
                    head & 0xff,
                    value::kind_name(head)
                ),
                offset: off,
            }),
        }
    }

    /// The user objects the last `encode` wrote: (tree node, container).
    pub fn encoded_objects(&self) -> impl Iterator<Item = (u32, super::Container)> + '_ {
        self.encoded_objects
            .iter()
            .map(|&(i, c)| (i, super::Container::checked(c)))
    }

    /// The kind in container `c`'s block head now (None: a byte no kind has, as in a block
    /// freed since `c` was read).
    pub fn block_kind(&self, c: super::Container) -> Result<Option<Kind>> {
        Ok(value::head_kind(self.get(c.get())?))
    }

    /// A container's version (bumped by every change). Inside a single change on `obj`'s
    /// part, the version it had when the change took it (the word itself is then held: odd,
    /// naming us), so a check-then-act change (`if version == seen`) reads the same value on a
    /// part as store-wide. Inside the store-wide rerun of a single change that `obj`'s part
    /// refused, the version the first try saw, if only that try's rollback has moved it since
    /// (by 2; every other change moves it too): else such a change, whose try on the part
    /// always refuses (it drops a shared container), would find it moved every time.
    pub fn version(&self, obj: super::Container) -> Result<u64> {
        let offset = obj.get() + container::VERSION;
        match (self.part_change, self.rolled_back_part) {
            (Some(held), _) if held.offset == offset => Ok(held.seen),
            (None, Some(tried)) if tried.offset == offset && self.locks.writing => {
                let v = self.get(offset)?;
                Ok(if v == tried.seen.wrapping_add(2) {
                    tried.seen
                } else {
                    v
                })
            }
            _ => self.get(offset),
        }
    }

    /// A container's version for an unlocked read (`SharedStore::read`): recorded as a read of
    /// its header, so a version found odd (a single change holds the container) makes the read
    /// wait for that change and start again, and the value returned is always even.
    pub fn read_version(&self, obj: super::Container) -> Result<u64> {
        self.observe(obj.get());
        self.version(obj)
    }

    /// Not logged: a version only has to change when the contents do. After a rollback it
    /// has moved on anyway, which costs a check-then-act caller one retry at most. By 2: the
    /// version is the container's part word (FORMAT.md §10.9), even while free. A part change
    /// holds the word (odd) and moves it when it releases the part, so it bumps nothing here.
    /// Every change of a container's contents comes through here, so it also marks the change
    /// as one whose commit wakes the waiters (`list_event`, `SharedStore::wait_versions`).
    pub(super) fn bump_version(&mut self, obj: u64) -> Result<()> {
        self.changed = true;
        if self.part_change.is_some() {
            return Ok(());
        }
        let v = self.get(obj + container::VERSION)?;
        // Relaxed and no persist barrier: any value on disk is as good as another.
        self.mem().store(
            obj + container::VERSION,
            v.wrapping_add(2),
            Ordering::Relaxed,
        )?;
        Ok(())
    }

    // ---- allocation --------------------------------------------------------------------

    /// Allocates a block for this op: logged, so a rollback frees it.
    ///
    /// The block is logged right after it is taken, before anything else: a recovery of this
    /// participant tells by the log's last entry whether the journal's block is the
    /// rollback's to free or its own (FORMAT.md §10.7 step 0).
    pub(super) fn alloc(&mut self, size: u64) -> Result<u64> {
        const J: u64 = super::journals::OP;
        let heap = self.part.heap();
        if let Some(taken) = self.unlogged_alloc {
            // A publication's one block: named by the journal alone until it is linked (the
            // recovery of a dead publisher finds it linked, or frees it: FORMAT.md §10.9).
            if taken != 0 {
                // An insert's second block (its key's and its value's): journal `VALUE`, with
                // the same rule (linked iff a live entry of the dict holds it).
                if self.unlogged_second == Some(0) {
                    let b = heap.alloc_into(size.max(16), super::journals::VALUE)?.get();
                    self.unlogged_second = Some(b);
                    return Ok(b);
                }
                return Err(Error::Usage("a publication allocates one block".into()));
            }
            let b = heap.alloc_into(size.max(16), J)?.get();
            self.unlogged_alloc = Some(b);
            return Ok(b);
        }
        let b = heap.alloc_into(size.max(16), J)?.get();
        let logged = self.log.append(&self.part, Entry::Alloc { block: b });
        // Settled before the free below: a journal that names a freed block as taken would
        // have a recovery free it again.
        heap.settle(J)?;
        if let Err(e) = logged {
            // The block is ours and unlinked: give it back before reporting.
            let _ = heap.free(crate::heap::Block::from_word(b));
            return Err(e);
        }
        Ok(b)
    }

    /// Frees a block this op no longer links, at commit (a rollback keeps it).
    pub(super) fn free_at_commit(&mut self, block: u64) -> Result<()> {
        self.log_entry(Entry::FreeBlock { block })
    }

    /// Releases a value word at commit: frees an owned value, drops a container reference.
    pub(super) fn release_at_commit(&mut self, w: u64) -> Result<()> {
        if value::is_block(w) {
            self.part_release_check(w)?;
            self.log_entry(Entry::Release { value: w })?;
        }
        Ok(())
    }
}

/// Copies `n` words from `src` to `dst` in `mem`, where `dst` is a block the caller allocated
/// and has not linked yet, and `src` is written only by the caller (the writer).
pub(super) fn copy_words(mem: &Mapping, src: u64, dst: u64, n: u64) -> Result<()> {
    let len = n
        .checked_mul(8)
        .ok_or_else(|| Error::TooLarge("copy too large".into()))?;
    let from = mem.bytes(src, len)?;
    let to = mem.bytes(dst, len)?;
    if src.max(dst) < src.min(dst) + len {
        return Err(Error::Corrupt {
            what: "overlapping blocks".into(),
            offset: dst,
        });
    }
    // SAFETY: both ranges lie inside the mapping (checked) and do not overlap (checked).
    // `dst` belongs to a block the caller allocated and has not linked, so no one else
    // writes it; `src` is only changed by the writer, which is the caller.
    unsafe { std::ptr::copy_nonoverlapping(from, to, len as usize) };
    Ok(())
}
