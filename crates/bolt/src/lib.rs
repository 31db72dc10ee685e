//! bbolt's file format, the one etcd keeps its backend in and streams as a
//! snapshot, read and written whole in memory.
//!
//! A bbolt file is a sequence of fixed-size pages (the writer's OS page
//! size, 4096 bytes on every machine etcd runs on). Every page opens with a
//! 16-byte header: its id, a flags word saying what it is, an element count
//! and the number of overflow pages that follow it when its content is
//! larger than one page. Pages 0 and 1 are the two meta pages; the valid one
//! with the higher transaction id is current. A meta page holds the magic
//! number, the format version, the page size, the root bucket (its root page
//! and sequence), the page of the freelist, the high-water mark (pages in
//! use: the file's size in pages) and the transaction id, and is checked by
//! an FNV-1a 64 hash of everything before the hash.
//!
//! A bucket is a B+tree of branch and leaf pages. A leaf element is
//! `flags, pos, ksize, vsize` (four little-endian u32) and a branch element
//! `pos, ksize, pgid` (u32, u32, u64); `pos` counts from the element itself
//! to its key, which its value (leaf) follows. Keys ascend within a page and
//! across the tree; a branch element's key is its child's first key. A leaf
//! element flagged as a bucket holds a nested bucket: its root page and
//! sequence (u64, u64), and when the root is 0 the bucket is inline, a leaf
//! page written right after those 16 bytes. The root bucket (the meta's) has
//! the top-level buckets as its entries.
//!
//! [`read`] checks everything it walks and returns a [`Db`] (never panics on
//! what a file holds: a damaged file is a [`BoltError`]); [`Db::problems`]
//! then does what bbolt's `Tx.Check` (which `etcdctl snapshot status` runs)
//! does: every page below the high-water mark is reachable or free, and
//! none is both ([`read`] refuses a page referenced twice). [`write`] lays a tree of buckets out
//! as a fresh file that passes those checks: the meta pages, an empty
//! freelist, then each bucket's pages, leaves packed full, every bucket in
//! pages of its own (never inline, which bbolt reads alike).
//!
//! Integers are little-endian, as bbolt writes them on every platform etcd
//! is released for.

use std::collections::{BTreeMap, BTreeSet};

/// The magic number of a meta page.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The data file format version bbolt writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// The page size [`write`] is usually given (etcd's, on Linux).
pub const PAGE_SIZE: usize = 4096;
/// Longest key bbolt accepts.
pub const MAX_KEY_SIZE: usize = 32_768;
/// Longest value bbolt accepts.
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// Deepest nesting of buckets, and tallest B+tree, [`read`] follows.
pub const MAX_DEPTH: usize = 64;

const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
/// Bytes of a meta that its checksum covers (everything before it).
const META_SUMMED: usize = 56;
const META_BYTES: usize = META_SUMMED + 8;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
const BUCKET_LEAF: u32 = 0x01;
/// The freelist page id of a file whose freelist is not written (bbolt's
/// `NoFreelistSync`): readers rebuild it from the unreachable pages.
pub const NO_FREELIST: u64 = u64::MAX;
/// A freelist page's count saying the real count is its first u64.
const COUNT_OVERFLOW: u16 = 0xFFFF;
const MIN_PAGE_SIZE: usize = 512;
const MAX_PAGE_SIZE: usize = 1 << 24;

/// A bucket: its sequence number and its entries, keys ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's sequence (bbolt's `NextSequence` counter).
    pub sequence: u64,
    /// Key-value pairs and nested buckets, by key.
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

/// One entry of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A plain value.
    Value(Vec<u8>),
    /// A nested bucket.
    Bucket(Bucket),
}

impl Bucket {
    /// The nested bucket under `name`, if there is one.
    pub fn bucket(&self, name: &[u8]) -> Option<&Bucket> {
        match self.entries.get(name) {
            Some(Entry::Bucket(b)) => Some(b),
            _ => None,
        }
    }

    /// The value under `key`, if it is a plain value.
    pub fn value(&self, key: &[u8]) -> Option<&[u8]> {
        match self.entries.get(key) {
            Some(Entry::Value(v)) => Some(v),
            _ => None,
        }
    }

    /// Puts a plain value.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.entries.insert(key.into(), Entry::Value(value.into()));
    }

    /// The nested bucket under `name`, created empty if absent (a plain
    /// value under that key is replaced).
    pub fn bucket_mut(&mut self, name: &[u8]) -> &mut Bucket {
        let e = self
            .entries
            .entry(name.to_vec())
            .or_insert_with(|| Entry::Bucket(Bucket::default()));
        if let Entry::Value(_) = e {
            *e = Entry::Bucket(Bucket::default());
        }
        match e {
            Entry::Bucket(b) => b,
            Entry::Value(_) => unreachable!("replaced above"),
        }
    }
}

/// Why a file could not be read, or a tree not written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoltError {
    /// Neither meta page is valid: not a bbolt file (or both metas damaged).
    #[error("not a bbolt file: {0}")]
    NotBolt(String),
    /// A page the current meta leads to is damaged.
    #[error("bbolt page {page}: {what}")]
    Damaged {
        /// The page.
        page: u64,
        /// What is wrong with it.
        what: String,
    },
    /// The tree cannot be written as bbolt would (a key too long, …).
    #[error("cannot write as bbolt: {0}")]
    Unwritable(String),
}

/// A meta page's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Bytes per page.
    pub page_size: u32,
    /// Flags (unused by bbolt today).
    pub flags: u32,
    /// The root bucket's root page.
    pub root: u64,
    /// The root bucket's sequence.
    pub sequence: u64,
    /// The freelist's page, or [`NO_FREELIST`].
    pub freelist: u64,
    /// The high-water mark: pages in use, the file's size in pages.
    pub high_water: u64,
    /// The transaction that wrote this meta.
    pub txid: u64,
}

impl Meta {
    /// The meta as its 64 bytes, checksum included.
    fn encode(&self) -> [u8; META_BYTES] {
        let mut b = [0u8; META_BYTES];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.root.to_le_bytes());
        b[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        b[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        b[40..48].copy_from_slice(&self.high_water.to_le_bytes());
        b[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv64a(&b[..META_SUMMED]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Parses and validates the meta at the start of `b` (a meta page's
    /// content after its header) as bbolt does: magic, version, checksum
    /// (bbolt takes a zero checksum as unchecked).
    fn decode(b: &[u8]) -> Result<Meta, String> {
        if b.len() < META_BYTES {
            return Err("file too short for a meta page".into());
        }
        if u32_at(b, 0) != MAGIC {
            return Err("bad magic".into());
        }
        let version = u32_at(b, 4);
        if version != FORMAT_VERSION {
            return Err(format!("format version {version}, not {FORMAT_VERSION}"));
        }
        let sum = u64_at(b, 56);
        if sum != 0 && sum != fnv64a(&b[..META_SUMMED]) {
            return Err("meta checksum mismatch".into());
        }
        Ok(Meta {
            page_size: u32_at(b, 8),
            flags: u32_at(b, 12),
            root: u64_at(b, 16),
            sequence: u64_at(b, 24),
            freelist: u64_at(b, 32),
            high_water: u64_at(b, 40),
            txid: u64_at(b, 48),
        })
    }
}

/// A file as read: the meta in use, the tree, and the page accounting
/// [`Db::problems`] checks.
#[derive(Clone, Debug)]
pub struct Db {
    /// The current meta.
    pub meta: Meta,
    /// The root bucket: its entries are the top-level buckets.
    pub root: Bucket,
    /// Pages reached from the meta (meta pages, freelist, every bucket's
    /// pages with their overflow).
    reached: BTreeSet<u64>,
    /// The freelist's page ids, as stored (duplicates kept).
    free: Vec<u64>,
}

impl Db {
    /// What bbolt's `Tx.Check` would report, in its words: pages freed
    /// twice, reachable yet freed, or below the
    /// high-water mark and neither reachable nor free. Empty: consistent.
    /// (A file written without a freelist reports nothing free.)
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut freed = BTreeSet::new();
        for &id in &self.free {
            if !freed.insert(id) {
                out.push(format!("page {id}: already freed"));
            }
        }
        for id in self.reached.intersection(&freed) {
            out.push(format!("page {id}: reachable freed"));
        }
        if self.meta.freelist != NO_FREELIST {
            for id in 0..self.meta.high_water {
                if !self.reached.contains(&id) && !freed.contains(&id) {
                    out.push(format!("page {id}: unreachable unfreed"));
                }
            }
        }
        out
    }

    /// The file's size in bytes as bbolt reports it (`Tx.Size`).
    pub fn size(&self) -> u64 {
        self.meta.high_water * u64::from(self.meta.page_size)
    }
}

/// FNV-1a, 64 bits: the meta page checksum.
pub fn fnv64a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// Whether `file` starts like a bbolt file (a valid meta page 0, or a
/// valid meta page 1 at a usual page size).
pub fn is_bolt(file: &[u8]) -> bool {
    page_size_of(file).is_some()
}

/// The page size, from the first meta page that validates.
fn page_size_of(file: &[u8]) -> Option<usize> {
    let ok = |ps: usize| (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&ps) && ps.is_power_of_two();
    if let Some(m) = file.get(PAGE_HEADER..).and_then(|b| Meta::decode(b).ok()) {
        let ps = m.page_size as usize;
        if ok(ps) {
            return Some(ps);
        }
    }
    // Meta 0 damaged: look for meta 1 at the usual page size first.
    let mut sizes = vec![PAGE_SIZE];
    sizes.extend((9..=16).map(|s| 1usize << s).filter(|&s| s != PAGE_SIZE));
    sizes.into_iter().find(|&ps| {
        file.get(ps + PAGE_HEADER..)
            .and_then(|b| Meta::decode(b).ok())
            .is_some_and(|m| m.page_size as usize == ps)
    })
}

/// Reads a whole bbolt file (trailing bytes after the last page, such as
/// the SHA-256 etcd appends to a snapshot, are ignored).
pub fn read(file: &[u8]) -> Result<Db, BoltError> {
    let ps = page_size_of(file).ok_or_else(|| BoltError::NotBolt("no valid meta page".into()))?;
    if file.len() < 2 * ps {
        return Err(BoltError::NotBolt(format!(
            "{} bytes is less than two {ps}-byte pages",
            file.len()
        )));
    }
    let mut metas: Vec<(u64, Meta)> = (0..2u64)
        .filter_map(|i| {
            let at = i as usize * ps;
            let m = Meta::decode(&file[at + PAGE_HEADER..]).ok()?;
            (m.page_size as usize == ps).then_some((i, m))
        })
        .collect();
    // The newest valid meta first; the other if the newest leads nowhere.
    metas.sort_by_key(|(_, m)| std::cmp::Reverse(m.txid));
    let mut first_err = None;
    for (_, meta) in metas {
        match read_with(file, ps, meta) {
            Ok(db) => return Ok(db),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| BoltError::NotBolt("no valid meta page".into())))
}

fn read_with(file: &[u8], ps: usize, meta: Meta) -> Result<Db, BoltError> {
    let pages_in_file = (file.len() / ps) as u64;
    if meta.high_water < 3 || meta.high_water > pages_in_file {
        return Err(BoltError::NotBolt(format!(
            "high-water mark {} pages, the file holds {pages_in_file}",
            meta.high_water
        )));
    }
    let mut r = Reader {
        file,
        ps,
        high_water: meta.high_water,
        reached: BTreeSet::from([0, 1]),
    };
    let free = if meta.freelist == NO_FREELIST {
        Vec::new()
    } else {
        r.freelist(meta.freelist)?
    };
    let root = r.bucket(meta.root, meta.sequence, 0)?;
    Ok(Db {
        meta,
        root,
        reached: r.reached,
        free,
    })
}

/// One page as found in the file: its header and its whole span.
struct Page<'a> {
    id: u64,
    flags: u16,
    count: u16,
    /// Header and content, overflow pages included.
    bytes: &'a [u8],
}

/// One leaf element: flags, key, value.
type LeafElement<'a> = (u32, &'a [u8], &'a [u8]);

struct Reader<'a> {
    file: &'a [u8],
    ps: usize,
    high_water: u64,
    reached: BTreeSet<u64>,
}

impl<'a> Reader<'a> {
    fn damaged(page: u64, what: impl Into<String>) -> BoltError {
        BoltError::Damaged {
            page,
            what: what.into(),
        }
    }

    /// Page `id` (below the high-water mark, inside the file, its header
    /// naming it), marked reached with its overflow pages.
    fn page(&mut self, id: u64) -> Result<Page<'a>, BoltError> {
        if id < 2 || id >= self.high_water {
            return Err(Self::damaged(
                id,
                format!("out of bounds (high-water mark {})", self.high_water),
            ));
        }
        let start = id as usize * self.ps;
        let head = &self.file[start..start + PAGE_HEADER];
        if u64_at(head, 0) != id {
            return Err(Self::damaged(
                id,
                format!("header names page {}", u64_at(head, 0)),
            ));
        }
        let overflow = u64::from(u32_at(head, 12));
        if id + overflow >= self.high_water {
            return Err(Self::damaged(
                id,
                format!("{overflow} overflow pages run past the high-water mark"),
            ));
        }
        for p in id..=id + overflow {
            if !self.reached.insert(p) {
                return Err(Self::damaged(p, "referenced twice"));
            }
        }
        let end = start + (overflow as usize + 1) * self.ps;
        Ok(Page {
            id,
            flags: u16_at(head, 8),
            count: u16_at(head, 10),
            bytes: &self.file[start..end],
        })
    }

    fn freelist(&mut self, id: u64) -> Result<Vec<u64>, BoltError> {
        let p = self.page(id)?;
        if p.flags & FREELIST_PAGE == 0 {
            return Err(Self::damaged(
                id,
                format!("flags {:#x}, not a freelist", p.flags),
            ));
        }
        let (n, at) = if p.count == COUNT_OVERFLOW {
            let n = p
                .bytes
                .get(PAGE_HEADER..PAGE_HEADER + 8)
                .map(|b| u64_at(b, 0))
                .ok_or_else(|| Self::damaged(id, "freelist count cut short"))?;
            (n, PAGE_HEADER + 8)
        } else {
            (u64::from(p.count), PAGE_HEADER)
        };
        let room = ((p.bytes.len() - at) / 8) as u64;
        if n > room {
            return Err(Self::damaged(id, format!("{n} free ids do not fit")));
        }
        Ok((0..n as usize)
            .map(|i| u64_at(p.bytes, at + 8 * i))
            .collect())
    }

    /// The bucket whose tree starts at page `root`.
    fn bucket(&mut self, root: u64, sequence: u64, depth: usize) -> Result<Bucket, BoltError> {
        if depth > MAX_DEPTH {
            return Err(Self::damaged(root, "buckets nested too deep"));
        }
        let mut leaves = Vec::new();
        self.leaves(root, 0, &mut leaves)?;
        let mut b = Bucket {
            sequence,
            entries: BTreeMap::new(),
        };
        for (page, elements) in leaves {
            self.fill(&mut b, page, &elements, depth)?;
        }
        Ok(b)
    }

    /// The leaf elements under page `id`, in tree order, with their page.
    fn leaves(
        &mut self,
        id: u64,
        height: usize,
        out: &mut Vec<(u64, Vec<LeafElement<'a>>)>,
    ) -> Result<(), BoltError> {
        if height > MAX_DEPTH {
            return Err(Self::damaged(id, "tree too tall"));
        }
        let p = self.page(id)?;
        if p.flags & LEAF_PAGE != 0 {
            let els = leaf_elements(p.bytes, p.count).map_err(|w| Self::damaged(id, w))?;
            out.push((id, els));
            Ok(())
        } else if p.flags & BRANCH_PAGE != 0 {
            let kids = branch_elements(p.bytes, p.count).map_err(|w| Self::damaged(id, w))?;
            if kids.is_empty() {
                return Err(Self::damaged(id, "branch page with no children"));
            }
            for w in kids.windows(2) {
                if w[0].0 >= w[1].0 {
                    return Err(Self::damaged(id, "branch keys out of order"));
                }
            }
            for (_, child) in kids {
                self.leaves(child, height + 1, out)?;
            }
            Ok(())
        } else {
            Err(Self::damaged(
                p.id,
                format!("flags {:#x}, not a branch or leaf page", p.flags),
            ))
        }
    }

    /// Adds a leaf's elements to `b`: keys must keep ascending.
    fn fill(
        &mut self,
        b: &mut Bucket,
        page: u64,
        elements: &[LeafElement<'a>],
        depth: usize,
    ) -> Result<(), BoltError> {
        for &(flags, k, v) in elements {
            if k.is_empty() {
                return Err(Self::damaged(page, "empty key"));
            }
            if b.entries
                .keys()
                .next_back()
                .is_some_and(|last| last.as_slice() >= k)
            {
                return Err(Self::damaged(page, "keys out of order"));
            }
            let entry = if flags & BUCKET_LEAF != 0 {
                if v.len() < BUCKET_HEADER {
                    return Err(Self::damaged(page, "bucket value shorter than its header"));
                }
                let (root, seq) = (u64_at(v, 0), u64_at(v, 8));
                if root == 0 {
                    Entry::Bucket(self.inline(page, seq, &v[BUCKET_HEADER..], depth + 1)?)
                } else {
                    Entry::Bucket(self.bucket(root, seq, depth + 1)?)
                }
            } else {
                Entry::Value(v.to_vec())
            };
            b.entries.insert(k.to_vec(), entry);
        }
        Ok(())
    }

    /// An inline bucket: a leaf page inside its parent's value.
    fn inline(
        &mut self,
        parent: u64,
        sequence: u64,
        bytes: &'a [u8],
        depth: usize,
    ) -> Result<Bucket, BoltError> {
        if depth > MAX_DEPTH {
            return Err(Self::damaged(parent, "buckets nested too deep"));
        }
        if bytes.len() < PAGE_HEADER {
            return Err(Self::damaged(parent, "inline bucket cut short"));
        }
        let (flags, count) = (u16_at(bytes, 8), u16_at(bytes, 10));
        if flags & LEAF_PAGE == 0 {
            return Err(Self::damaged(parent, "inline bucket is not a leaf"));
        }
        let els = leaf_elements(bytes, count)
            .map_err(|w| Self::damaged(parent, format!("inline bucket: {w}")))?;
        let mut b = Bucket {
            sequence,
            entries: BTreeMap::new(),
        };
        self.fill(&mut b, parent, &els, depth)?;
        Ok(b)
    }
}

/// The elements of a leaf page (`bytes` from its header on).
fn leaf_elements(bytes: &[u8], count: u16) -> Result<Vec<LeafElement<'_>>, String> {
    let n = usize::from(count);
    if PAGE_HEADER + n * ELEMENT > bytes.len() {
        return Err(format!("{n} elements do not fit"));
    }
    (0..n)
        .map(|i| {
            let at = PAGE_HEADER + i * ELEMENT;
            let (flags, pos, ksize, vsize) = (
                u32_at(bytes, at),
                u32_at(bytes, at + 4) as usize,
                u32_at(bytes, at + 8) as usize,
                u32_at(bytes, at + 12) as usize,
            );
            let k0 = at.checked_add(pos);
            let k1 = k0.and_then(|s| s.checked_add(ksize));
            let v1 = k1.and_then(|s| s.checked_add(vsize));
            match (k0, k1, v1) {
                (Some(k0), Some(k1), Some(v1)) if v1 <= bytes.len() => {
                    Ok((flags, &bytes[k0..k1], &bytes[k1..v1]))
                }
                _ => Err(format!("element {i} runs past its page")),
            }
        })
        .collect()
}

/// The elements of a branch page: each child's first key and page.
fn branch_elements(bytes: &[u8], count: u16) -> Result<Vec<(&[u8], u64)>, String> {
    let n = usize::from(count);
    if PAGE_HEADER + n * ELEMENT > bytes.len() {
        return Err(format!("{n} elements do not fit"));
    }
    (0..n)
        .map(|i| {
            let at = PAGE_HEADER + i * ELEMENT;
            let (pos, ksize, child) = (
                u32_at(bytes, at) as usize,
                u32_at(bytes, at + 4) as usize,
                u64_at(bytes, at + 8),
            );
            let k0 = at.checked_add(pos);
            let k1 = k0.and_then(|s| s.checked_add(ksize));
            match (k0, k1) {
                (Some(k0), Some(k1)) if k1 <= bytes.len() => Ok((&bytes[k0..k1], child)),
                _ => Err(format!("element {i} runs past its page")),
            }
        })
        .collect()
}

/// Lays `root` out as a fresh bbolt file of `page_size`-byte pages: meta
/// pages 0 and 1 (transactions `txid` and `txid + 1`, both naming the same
/// tree), an empty freelist on page 2, then the buckets' pages. Keys must be
/// non-empty and at most [`MAX_KEY_SIZE`] bytes, values at most
/// [`MAX_VALUE_SIZE`], as bbolt requires.
pub fn write(root: &Bucket, page_size: usize, txid: u64) -> Result<Vec<u8>, BoltError> {
    if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(BoltError::Unwritable(format!("page size {page_size}")));
    }
    let mut w = Writer {
        ps: page_size,
        out: vec![0; 3 * page_size],
        next: 3,
    };
    let root_page = w.bucket(root, 0)?;
    let high_water = w.next;
    // The freelist: no free pages.
    let fl = 2 * page_size;
    w.out[fl..fl + 8].copy_from_slice(&2u64.to_le_bytes());
    w.out[fl + 8..fl + 10].copy_from_slice(&FREELIST_PAGE.to_le_bytes());
    for i in 0..2u64 {
        let at = i as usize * page_size;
        w.out[at..at + 8].copy_from_slice(&i.to_le_bytes());
        w.out[at + 8..at + 10].copy_from_slice(&META_PAGE.to_le_bytes());
        let meta = Meta {
            page_size: page_size as u32,
            flags: 0,
            root: root_page,
            sequence: root.sequence,
            freelist: 2,
            high_water,
            txid: txid + i,
        };
        w.out[at + PAGE_HEADER..at + PAGE_HEADER + META_BYTES].copy_from_slice(&meta.encode());
    }
    debug_assert_eq!(w.out.len() as u64, high_water * page_size as u64);
    Ok(w.out)
}

struct Writer {
    ps: usize,
    out: Vec<u8>,
    next: u64,
}

/// An element about to be written: flags, key, value (a branch's value is
/// its child's page id).
struct Item<'a> {
    flags: u32,
    key: &'a [u8],
    value: std::borrow::Cow<'a, [u8]>,
}

impl Writer {
    /// Writes bucket `b` (its nested buckets first); its root page.
    fn bucket(&mut self, b: &Bucket, depth: usize) -> Result<u64, BoltError> {
        if depth > MAX_DEPTH {
            return Err(BoltError::Unwritable("buckets nested too deep".into()));
        }
        let mut items = Vec::with_capacity(b.entries.len());
        for (k, e) in &b.entries {
            if k.is_empty() || k.len() > MAX_KEY_SIZE {
                return Err(BoltError::Unwritable(format!(
                    "a key of {} bytes (1 to {MAX_KEY_SIZE})",
                    k.len()
                )));
            }
            items.push(match e {
                Entry::Value(v) => {
                    if v.len() > MAX_VALUE_SIZE {
                        return Err(BoltError::Unwritable(format!(
                            "a value of {} bytes",
                            v.len()
                        )));
                    }
                    Item {
                        flags: 0,
                        key: k,
                        value: std::borrow::Cow::Borrowed(v),
                    }
                }
                Entry::Bucket(child) => {
                    let root = self.bucket(child, depth + 1)?;
                    let mut v = Vec::with_capacity(BUCKET_HEADER);
                    v.extend_from_slice(&root.to_le_bytes());
                    v.extend_from_slice(&child.sequence.to_le_bytes());
                    Item {
                        flags: BUCKET_LEAF,
                        key: k,
                        value: std::borrow::Cow::Owned(v),
                    }
                }
            });
        }
        // Leaves, then a level of branches at a time up to one root.
        let mut level: Vec<(Vec<u8>, u64)> = self.pack(&items, LEAF_PAGE);
        while level.len() > 1 {
            let keys: Vec<(Vec<u8>, u64)> = std::mem::take(&mut level);
            let items: Vec<Item<'_>> = keys
                .iter()
                .map(|(k, id)| Item {
                    flags: 0,
                    key: k,
                    value: std::borrow::Cow::Owned(id.to_le_bytes().to_vec()),
                })
                .collect();
            level = self.pack(&items, BRANCH_PAGE);
        }
        Ok(level[0].1)
    }

    /// Packs items into pages of the given kind, each as full as one page
    /// allows (an item too large for a page gets one with overflow pages);
    /// each page's first key and id. No items: one empty page.
    fn pack(&mut self, items: &[Item<'_>], kind: u16) -> Vec<(Vec<u8>, u64)> {
        let size = |it: &Item<'_>| match kind {
            LEAF_PAGE => ELEMENT + it.key.len() + it.value.len(),
            _ => ELEMENT + it.key.len(),
        };
        let mut pages = Vec::new();
        let mut start = 0;
        let mut used = PAGE_HEADER;
        for (i, it) in items.iter().enumerate() {
            let n = i - start;
            if n > 0 && (used + size(it) > self.ps || n == usize::from(u16::MAX - 1)) {
                pages.push(self.page(&items[start..i], kind));
                start = i;
                used = PAGE_HEADER;
            }
            used += size(it);
        }
        if start < items.len() || items.is_empty() {
            pages.push(self.page(&items[start..], kind));
        }
        pages
    }

    /// Writes one node as the next page(s); its first key and page id.
    fn page(&mut self, items: &[Item<'_>], kind: u16) -> (Vec<u8>, u64) {
        let data: usize = items
            .iter()
            .map(|it| match kind {
                LEAF_PAGE => it.key.len() + it.value.len(),
                _ => it.key.len(),
            })
            .sum();
        let len = PAGE_HEADER + items.len() * ELEMENT + data;
        let span = len.div_ceil(self.ps).max(1);
        let id = self.next;
        self.next += span as u64;
        let start = id as usize * self.ps;
        self.out.resize(start + span * self.ps, 0);
        let p = &mut self.out[start..start + span * self.ps];
        p[0..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&kind.to_le_bytes());
        p[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
        p[12..16].copy_from_slice(&((span - 1) as u32).to_le_bytes());
        let mut at = PAGE_HEADER + items.len() * ELEMENT;
        for (i, it) in items.iter().enumerate() {
            let el = PAGE_HEADER + i * ELEMENT;
            let pos = (at - el) as u32;
            let klen = it.key.len() as u32;
            if kind == LEAF_PAGE {
                p[el..el + 4].copy_from_slice(&it.flags.to_le_bytes());
                p[el + 4..el + 8].copy_from_slice(&pos.to_le_bytes());
                p[el + 8..el + 12].copy_from_slice(&klen.to_le_bytes());
                p[el + 12..el + 16].copy_from_slice(&(it.value.len() as u32).to_le_bytes());
                p[at..at + it.key.len()].copy_from_slice(it.key);
                at += it.key.len();
                p[at..at + it.value.len()].copy_from_slice(&it.value);
                at += it.value.len();
            } else {
                p[el..el + 4].copy_from_slice(&pos.to_le_bytes());
                p[el + 4..el + 8].copy_from_slice(&klen.to_le_bytes());
                p[el + 8..el + 16].copy_from_slice(&it.value);
                p[at..at + it.key.len()].copy_from_slice(it.key);
                at += it.key.len();
            }
        }
        let first = items.first().map_or_else(Vec::new, |it| it.key.to_vec());
        (first, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bucket {
        let mut root = Bucket::default();
        let key = root.bucket_mut(b"key");
        for i in 0..2000u32 {
            key.put(format!("k{i:06}"), vec![i as u8; (i % 50) as usize]);
        }
        root.bucket_mut(b"meta")
            .put("consistent_index", 7u64.to_be_bytes());
        root.bucket_mut(b"empty");
        let nested = root.bucket_mut(b"outer").bucket_mut(b"inner");
        nested.sequence = 9;
        nested.put("big", vec![0xab; 3 * PAGE_SIZE + 5]);
        root
    }

    #[test]
    fn a_written_tree_reads_back_and_passes_the_check() {
        let root = sample();
        let file = write(&root, PAGE_SIZE, 2).unwrap();
        assert_eq!(file.len() % PAGE_SIZE, 0);
        let db = read(&file).unwrap();
        assert_eq!(db.root, root);
        assert_eq!(db.problems(), Vec::<String>::new());
        assert_eq!(db.meta.txid, 3);
        assert_eq!(db.size(), file.len() as u64);
    }

    #[test]
    fn a_damaged_meta_falls_back_to_the_other_and_two_are_not_a_file() {
        let root = sample();
        let mut file = write(&root, PAGE_SIZE, 2).unwrap();
        // Meta 1 (the newer) damaged: meta 0 is used.
        file[PAGE_SIZE + PAGE_HEADER + 20] ^= 1;
        let db = read(&file).unwrap();
        assert_eq!((db.meta.txid, &db.root), (2, &root));
        // Meta 0 damaged too: not a bolt file.
        file[PAGE_HEADER + 20] ^= 1;
        assert!(matches!(read(&file), Err(BoltError::NotBolt(_))));
        assert!(!is_bolt(b"SYNODKV1 and more bytes"));
    }

    #[test]
    fn unwritable_trees_are_refused() {
        let mut root = Bucket::default();
        root.put(Vec::new(), b"v".to_vec());
        assert!(write(&root, PAGE_SIZE, 2).is_err());
        let mut root = Bucket::default();
        root.put(vec![1; MAX_KEY_SIZE + 1], b"v".to_vec());
        assert!(write(&root, PAGE_SIZE, 2).is_err());
        assert!(write(&Bucket::default(), 1000, 2).is_err());
    }

    #[test]
    fn fnv_matches_the_published_vectors() {
        assert_eq!(fnv64a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
