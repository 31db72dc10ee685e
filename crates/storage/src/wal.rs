//! The write-ahead log: opaque typed records in preallocated, checksummed
//! segment files, with group commit and crash recovery, over any [`Vfs`].
//!
//! Invariants:
//! - a record is acknowledged (its LSN is below [`Wal::durable_lsn`]) only after
//!   the bytes holding it were written and fdatasynced;
//! - a segment is complete and synced before the next one is created, so only
//!   the newest segment can end in a torn write;
//! - recovery truncates a torn tail of the newest segment and nothing else:
//!   damage anywhere before it is a [`WalError::Corrupt`] naming file and offset;
//! - after any failed write or sync the WAL is poisoned: the caller must reopen
//!   it, which recovers from what is durable (a kernel may drop dirty pages
//!   after a failed fsync, so retrying the sync proves nothing).

use crate::record::{
    encode_record, scan_segment, Corruption, ScanError, SegmentEnd, SegmentHeader, FRAME_HEADER,
    MAX_SEQ, SEGMENT_HEADER,
};
use crate::vfs::{Vfs, VfsError, VfsFile};
use std::path::{Path, PathBuf};

/// A log sequence number: the position of a record in the WAL, from 0.
pub type Lsn = u64;

/// Sizes and limits of a WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalConfig {
    /// Size each segment file is preallocated to; a segment is rotated when
    /// the next record does not fit.
    pub segment_size: u64,
    /// Largest record payload accepted.
    pub max_record_size: usize,
    /// Largest amount of encoded, not yet synced data held in memory.
    pub max_buffer_bytes: usize,
    /// Preallocate segments by writing zeros (true: later fdatasyncs need no
    /// block allocation) or only by setting the length (sparse file).
    pub zero_fill: bool,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size: 64 << 20,
            max_record_size: 4 << 20,
            max_buffer_bytes: 16 << 20,
            zero_fill: true,
        }
    }
}

impl WalConfig {
    /// A configuration sized for the simulator: small sparse segments (256
    /// KiB), records up to 64 KiB, so a simulated disk stays small in memory.
    pub fn for_simulation() -> Self {
        WalConfig {
            segment_size: 256 << 10,
            max_record_size: 64 << 10,
            max_buffer_bytes: 1 << 20,
            zero_fill: false,
        }
    }

    fn validate(&self) -> Result<(), WalError> {
        let need = (SEGMENT_HEADER + FRAME_HEADER + self.max_record_size) as u64;
        if self.segment_size < need {
            return Err(WalError::Config(format!(
                "segment_size {} cannot hold one record of max_record_size {} (needs {need})",
                self.segment_size, self.max_record_size
            )));
        }
        if self.max_record_size > u32::MAX as usize {
            return Err(WalError::Config("max_record_size must fit in u32".into()));
        }
        if self.max_buffer_bytes < FRAME_HEADER + self.max_record_size {
            return Err(WalError::Config(
                "max_buffer_bytes must hold at least one largest record".into(),
            ));
        }
        Ok(())
    }
}

/// An error from the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The file system failed.
    #[error(transparent)]
    Vfs(#[from] VfsError),
    /// Durable data is damaged: recovery stops rather than serve or drop it.
    #[error("corrupt WAL segment {}: at byte offset {offset}: {what}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A record larger than [`WalConfig::max_record_size`].
    #[error("record of {len} bytes exceeds the limit of {max}")]
    RecordTooLarge {
        /// The payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The unsynced buffer is full: call [`Wal::sync`] first.
    #[error("WAL buffer full: {pending} bytes pending, {adding} more would exceed {max}")]
    BufferFull {
        /// Bytes already pending.
        pending: usize,
        /// Bytes the refused append would add.
        adding: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write or sync failed; the WAL must be reopened.
    #[error("WAL unusable after an earlier I/O failure; reopen it to recover")]
    Poisoned,
    /// Invalid configuration.
    #[error("invalid WAL configuration: {0}")]
    Config(String),
}

/// A record read back during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its log sequence number.
    pub lsn: Lsn,
    /// Its type, opaque to the WAL.
    pub kind: u8,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Facts about one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number.
    pub seq: u64,
    /// LSN of its first record.
    pub first_lsn: Lsn,
    /// Its path.
    pub path: PathBuf,
}

/// What recovery did besides reading records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: usize,
    /// Bytes of torn tail discarded (zeroed) in the newest segment.
    pub torn_bytes: u64,
    /// Whether a newest segment with a torn header was removed.
    pub removed_torn_segment: bool,
}

/// The file name of a segment.
pub fn segment_name(seq: u64, first_lsn: Lsn) -> String {
    format!("wal-{seq:016x}-{first_lsn:016x}.log")
}

/// Parses a segment file name into (seq, first_lsn).
pub fn parse_segment_name(name: &str) -> Option<(u64, Lsn)> {
    let rest = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    let (a, b) = rest.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    let seq = u64::from_str_radix(a, 16).ok()?;
    let lsn = u64::from_str_radix(b, 16).ok()?;
    (seq < MAX_SEQ && lsn < MAX_SEQ).then_some((seq, lsn))
}

/// The write-ahead log.
#[derive(Debug)]
pub struct Wal<V: Vfs> {
    vfs: V,
    dir: PathBuf,
    cfg: WalConfig,
    segments: Vec<SegmentInfo>,
    active: V::File,
    write_pos: u64,
    pending: Vec<u8>,
    /// End offset (in `pending`) of each buffered frame.
    pending_ends: Vec<usize>,
    durable_lsn: Lsn,
    poisoned: bool,
}

fn corrupt(path: &Path, offset: u64, what: impl ToString) -> WalError {
    WalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        what: what.to_string(),
    }
}

impl<V: Vfs> Wal<V> {
    /// Opens (or creates) the WAL in `dir`, returning it with every record it
    /// holds, in order.
    pub fn open(vfs: V, dir: &Path, cfg: WalConfig) -> Result<(Self, Vec<Record>), WalError> {
        let mut out = Vec::new();
        let (wal, _) = Self::open_with(vfs, dir, cfg, |r| {
            out.push(r);
            Ok::<(), WalError>(())
        })?;
        Ok((wal, out))
    }

    /// Opens (or creates) the WAL in `dir`, handing every record, in order, to
    /// `visit` (which may stop recovery with its own error).
    pub fn open_with<E>(
        vfs: V,
        dir: &Path,
        cfg: WalConfig,
        mut visit: impl FnMut(Record) -> Result<(), E>,
    ) -> Result<(Self, RecoveryReport), E>
    where
        E: From<WalError>,
    {
        cfg.validate()?;
        vfs.create_dir_all(dir).map_err(WalError::from)?;
        let mut found: Vec<SegmentInfo> = Vec::new();
        for name in vfs.list(dir).map_err(WalError::from)? {
            if let Some((seq, first_lsn)) = parse_segment_name(&name) {
                found.push(SegmentInfo {
                    seq,
                    first_lsn,
                    path: dir.join(&name),
                });
            }
        }
        found.sort_by_key(|s| s.seq);
        for w in found.windows(2) {
            if w[1].seq != w[0].seq + 1 {
                return Err(corrupt(
                    &w[1].path,
                    0,
                    format!("segment {} is missing before this one", w[0].seq + 1),
                )
                .into());
            }
            if w[1].first_lsn < w[0].first_lsn {
                return Err(corrupt(&w[1].path, 0, "first LSN goes backwards").into());
            }
        }

        let mut report = RecoveryReport::default();
        let mut segments = Vec::new();
        let mut next_lsn: Option<Lsn> = None;
        let mut resume: Option<(V::File, u64)> = None;
        let count = found.len();
        for (i, seg) in found.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let mut file = vfs.open(&seg.path).map_err(WalError::from)?;
            let buf = file.read_all().map_err(WalError::from)?;
            let scan = match scan_segment(&buf, is_last, cfg.max_record_size) {
                Ok(s) => s,
                Err(ScanError::TornHeader) => {
                    // Being created when the node stopped: holds no record.
                    drop(file);
                    vfs.remove(&seg.path).map_err(WalError::from)?;
                    vfs.sync_dir(dir).map_err(WalError::from)?;
                    report.removed_torn_segment = true;
                    break;
                }
                Err(ScanError::Corrupt { offset, what }) => {
                    return Err(corrupt(&seg.path, offset as u64, what).into());
                }
            };
            report.segments += 1;
            let header = scan.header;
            if header.seq != seg.seq || header.first_lsn != seg.first_lsn {
                return Err(corrupt(
                    &seg.path,
                    0,
                    Corruption::BadHeader("header does not match file name"),
                )
                .into());
            }
            if let Some(expected) = next_lsn {
                if header.first_lsn != expected {
                    return Err(corrupt(
                        &seg.path,
                        0,
                        format!(
                            "first LSN {} but the previous segment ends at {expected}",
                            header.first_lsn
                        ),
                    )
                    .into());
                }
            }
            let mut lsn = header.first_lsn;
            for r in &scan.records {
                visit(Record {
                    lsn,
                    kind: r.kind,
                    payload: r.payload.to_vec(),
                })?;
                lsn += 1;
            }
            next_lsn = Some(lsn);
            let end = scan.end as u64;
            if let SegmentEnd::Torn(range) = &scan.tail {
                assert!(is_last, "only the newest segment may be torn");
                let zeros = vec![0u8; range.len()];
                file.write_at(range.start as u64, &zeros)
                    .map_err(WalError::from)?;
                report.torn_bytes += range.len() as u64;
            }
            if is_last {
                resume = Some((file, end));
            }
            segments.push(seg);
        }

        let wal = match resume {
            Some((mut file, end)) => {
                // Whatever we read may have come from the page cache of a
                // process that died before syncing: make it durable before
                // anyone acts on it.
                file.sync_data().map_err(WalError::from)?;
                vfs.sync_dir(dir).map_err(WalError::from)?;
                Wal {
                    vfs,
                    dir: dir.to_path_buf(),
                    cfg,
                    active: file,
                    write_pos: end,
                    pending: Vec::new(),
                    pending_ends: Vec::new(),
                    durable_lsn: next_lsn.expect("a segment was read"),
                    poisoned: false,
                    segments,
                }
            }
            None => {
                // Empty directory, or only a torn new segment: start one.
                let (seq, lsn) = match segments.last() {
                    Some(s) => (s.seq + 1, next_lsn.expect("a segment was read")),
                    None => (0, 0),
                };
                assert!(segments.is_empty() || count > segments.len());
                let (file, info) = create_segment(&vfs, dir, &cfg, seq, lsn)?;
                segments.push(info);
                Wal {
                    vfs,
                    dir: dir.to_path_buf(),
                    cfg,
                    active: file,
                    write_pos: SEGMENT_HEADER as u64,
                    pending: Vec::new(),
                    pending_ends: Vec::new(),
                    durable_lsn: lsn,
                    poisoned: false,
                    segments,
                }
            }
        };
        wal.check();
        Ok((wal, report))
    }

    fn check(&self) {
        let active = self
            .segments
            .last()
            .expect("there is always an active segment");
        assert_eq!(active.path.as_path(), self.active.path());
        assert!(self.write_pos >= SEGMENT_HEADER as u64);
        assert_eq!(
            self.pending_ends.last().copied().unwrap_or(0),
            self.pending.len()
        );
        assert!(self.pending.len() <= self.cfg.max_buffer_bytes);
    }

    /// Buffers records; they are written and made durable by the next
    /// [`Wal::sync`]. All or none are buffered. Returns the LSN the first of
    /// them will have.
    pub fn append(&mut self, records: &[(u8, &[u8])]) -> Result<Lsn, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        let mut adding = 0;
        for (_, payload) in records {
            if payload.len() > self.cfg.max_record_size {
                return Err(WalError::RecordTooLarge {
                    len: payload.len(),
                    max: self.cfg.max_record_size,
                });
            }
            adding += FRAME_HEADER + payload.len();
        }
        if self.pending.len() + adding > self.cfg.max_buffer_bytes {
            return Err(WalError::BufferFull {
                pending: self.pending.len(),
                adding,
                max: self.cfg.max_buffer_bytes,
            });
        }
        let first = self.next_lsn();
        for (kind, payload) in records {
            encode_record(*kind, payload, &mut self.pending);
            self.pending_ends.push(self.pending.len());
        }
        Ok(first)
    }

    /// Buffers one record; see [`Wal::append`].
    pub fn append_one(&mut self, kind: u8, payload: &[u8]) -> Result<Lsn, WalError> {
        self.append(&[(kind, payload)])
    }

    /// Writes every buffered record and fdatasyncs once (group commit),
    /// rotating segments as needed. On success every appended record is
    /// durable; returns [`Wal::durable_lsn`]. On failure the WAL is poisoned.
    pub fn sync(&mut self) -> Result<Lsn, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        if self.pending.is_empty() {
            return Ok(self.durable_lsn);
        }
        match self.write_pending() {
            Ok(()) => {
                self.durable_lsn += self.pending_ends.len() as u64;
                self.pending.clear();
                self.pending_ends.clear();
                self.check();
                Ok(self.durable_lsn)
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    fn write_pending(&mut self) -> Result<(), WalError> {
        let mut start = 0usize; // offset in pending of the first unwritten frame
        let mut frame = 0usize; // index of that frame
        let total = self.pending_ends.len();
        while frame < total {
            let room = self.cfg.segment_size.saturating_sub(self.write_pos);
            // The longest run of whole frames that fits.
            let mut end_frame = frame;
            while end_frame < total && (self.pending_ends[end_frame] - start) as u64 <= room {
                end_frame += 1;
            }
            if end_frame == frame {
                // Not even one fits: seal this segment and start the next.
                self.active.sync_data()?;
                self.rotate(self.durable_lsn + frame as u64)?;
                continue;
            }
            let end = self.pending_ends[end_frame - 1];
            self.active
                .write_at(self.write_pos, &self.pending[start..end])?;
            self.write_pos += (end - start) as u64;
            start = end;
            frame = end_frame;
        }
        self.active.sync_data()?;
        Ok(())
    }

    fn rotate(&mut self, first_lsn: Lsn) -> Result<(), WalError> {
        let seq = self.segments.last().expect("active segment").seq + 1;
        let (file, info) = create_segment(&self.vfs, &self.dir, &self.cfg, seq, first_lsn)?;
        self.active = file;
        self.write_pos = SEGMENT_HEADER as u64;
        self.segments.push(info);
        Ok(())
    }

    /// Removes, oldest first, every segment all of whose records have an LSN
    /// below `lsn` (never the active segment). Each removal is made durable
    /// before the next, so a crash leaves a contiguous run of segments.
    /// Returns how many were removed.
    pub fn truncate_prefix(&mut self, lsn: Lsn) -> Result<usize, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].first_lsn <= lsn {
            let seg = self.segments.remove(0);
            let r = self
                .vfs
                .remove(&seg.path)
                .and_then(|()| self.vfs.sync_dir(&self.dir));
            if let Err(e) = r {
                self.poisoned = true;
                return Err(e.into());
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> Lsn {
        self.durable_lsn + self.pending_ends.len() as u64
    }

    /// Every record below this LSN is durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable_lsn
    }

    /// Encoded bytes waiting for [`Wal::sync`].
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Encoded bytes [`Wal::append`] can still buffer before a
    /// [`Wal::sync`] (each record takes its payload plus a frame header of
    /// [`FRAME_HEADER`] bytes).
    pub fn room(&self) -> usize {
        self.cfg.max_buffer_bytes - self.pending.len()
    }

    /// The segment files, oldest first; the last is the active one.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// The configuration in force.
    pub fn config(&self) -> &WalConfig {
        &self.cfg
    }

    /// Whether an earlier failure has made this WAL unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

fn create_segment<V: Vfs>(
    vfs: &V,
    dir: &Path,
    cfg: &WalConfig,
    seq: u64,
    first_lsn: Lsn,
) -> Result<(V::File, SegmentInfo), WalError> {
    let path = dir.join(segment_name(seq, first_lsn));
    let mut file = vfs.create(&path)?;
    if cfg.zero_fill {
        const CHUNK: u64 = 1 << 20;
        let zeros = vec![0u8; CHUNK as usize];
        let mut pos = 0;
        while pos < cfg.segment_size {
            let n = CHUNK.min(cfg.segment_size - pos);
            file.write_at(pos, &zeros[..n as usize])?;
            pos += n;
        }
    } else {
        file.set_len(cfg.segment_size)?;
    }
    file.write_at(0, &SegmentHeader { seq, first_lsn }.encode())?;
    file.sync_data()?;
    vfs.sync_dir(dir)?;
    Ok((
        file,
        SegmentInfo {
            seq,
            first_lsn,
            path,
        },
    ))
}

/// When to sync: a group-commit policy bounded in bytes and in time. The
/// driver tells it about appends and passes `now` (any monotonic unit it
/// likes, e.g. nanoseconds or ticks); it never reads a clock itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommit {
    max_bytes: usize,
    max_delay: u64,
    bytes: usize,
    oldest: Option<u64>,
}

impl GroupCommit {
    /// Sync once `max_bytes` are pending or the oldest pending append is
    /// `max_delay` old, whichever comes first.
    pub fn new(max_bytes: usize, max_delay: u64) -> Self {
        GroupCommit {
            max_bytes,
            max_delay,
            bytes: 0,
            oldest: None,
        }
    }

    /// Records an append of `bytes` at time `now`.
    pub fn on_append(&mut self, bytes: usize, now: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.oldest.get_or_insert(now);
    }

    /// Whether the driver should sync now.
    pub fn should_sync(&self, now: u64) -> bool {
        match self.oldest {
            None => false,
            Some(t) => self.bytes >= self.max_bytes || now.saturating_sub(t) >= self.max_delay,
        }
    }

    /// The time by which a sync is due, if anything is pending.
    pub fn deadline(&self) -> Option<u64> {
        self.oldest.map(|t| t.saturating_add(self.max_delay))
    }

    /// Records that a sync made everything durable.
    pub fn on_sync(&mut self) {
        self.bytes = 0;
        self.oldest = None;
    }
}

#[cfg(test)]
mod tests;
