//! Mends the HTTP/2 `:authority` that etcd's own Go clients send.
//!
//! etcdctl and clientv3 3.4 given an endpoint as a URL (`--endpoints
//! http://HOST:PORT`, or the members' client URLs that `--cluster` reads
//! from `member list`) send the whole URL as the request's `:authority`,
//! and clientv3 3.5.0 to 3.5.4 send `#initially=[URL;…]`. Neither is an
//! authority; Go's HTTP/2 server takes it all the same, but h2 (under hyper
//! and tonic) resets every such stream with `PROTOCOL_ERROR` before any
//! handler runs, and h2's maintainers keep it so.
//!
//! [`Mend`] sits between the socket and h2 and reads the client's side of
//! the connection. A connection that is not HTTP/2, or whose first header
//! block carries a valid authority (every other client), is passed through
//! untouched from then on, at no cost. A connection whose first block
//! carries a broken one has every header block decoded (HPACK, with the
//! client's dynamic table) and written again as literals that h2's table
//! never keeps, with the authority cut down to `HOST:PORT` (dropped if
//! nothing valid is left); every other frame passes as it came.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::uri::Authority;
use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What an HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer must accept (h2 announces no larger
/// one for its decoder's sake, and this is always allowed).
const MAX_FRAME: usize = 16_384;
/// The dynamic table a client's encoder may use: HTTP/2's default, which
/// the server side (hyper's h2) never changes.
const TABLE: usize = 4096;
/// A header block larger than this is not mended (h2 refuses it anyway).
const MAX_BLOCK: usize = 1 << 20;
/// Bytes read from the socket at a time while frames are looked at.
const READ: usize = 16_384;

/// Whether `v` is a valid `:authority`.
pub fn valid(v: &[u8]) -> bool {
    Authority::try_from(v).is_ok()
}

/// The `HOST:PORT` inside what an etcd client sent as its authority: the
/// first endpoint of `#initially=[…]`, a URL's authority.
pub fn mended(v: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(v).ok()?;
    let s = match s.strip_prefix("#initially=[") {
        Some(rest) => rest.split([';', ']']).next().unwrap_or(""),
        None => s,
    };
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split(['/', '?', '#']).next().unwrap_or("");
    Authority::try_from(s)
        .ok()
        .map(|a| a.as_str().as_bytes().to_vec())
}

enum State {
    /// Reading the client's preface.
    Preface,
    /// Looking at frames.
    Frames(Box<Frames>),
    /// Passing bytes on untouched.
    Through,
}

/// A header block being gathered from HEADERS and CONTINUATION frames.
struct Block {
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as they came, while the connection is undecided.
    raw: Vec<u8>,
}

struct Frames {
    decoder: loona_hpack::Decoder<'static>,
    /// Whether this connection's header blocks are written again (decided
    /// by its first block).
    rewriting: bool,
    block: Option<Block>,
}

/// What became of a frame.
enum Next {
    Frames,
    Through,
}

impl Frames {
    fn new() -> Frames {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE);
        Frames {
            decoder,
            rewriting: false,
            block: None,
        }
    }

    /// Takes one whole frame, puts what h2 is to read on `out`.
    fn frame(&mut self, frame: BytesMut, out: &mut BytesMut) -> Next {
        let kind = frame[3];
        let flags = frame[4];
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER..];
        match (kind, self.block.take()) {
            (HEADERS, None) => {
                let Some((priority, fragment)) = headers_fragment(flags, payload) else {
                    out.extend_from_slice(&frame);
                    return Next::Through;
                };
                let block = Block {
                    stream,
                    flags,
                    priority,
                    fragment: fragment.to_vec(),
                    raw: if self.rewriting {
                        Vec::new()
                    } else {
                        frame.to_vec()
                    },
                };
                self.gathered(block, flags, out)
            }
            (CONTINUATION, Some(mut block)) if stream == block.stream => {
                block.fragment.extend_from_slice(payload);
                if !self.rewriting {
                    block.raw.extend_from_slice(&frame);
                }
                self.gathered(block, flags, out)
            }
            (_, Some(block)) => {
                // Not what HTTP/2 allows: h2 will say so.
                out.extend_from_slice(&block.raw);
                out.extend_from_slice(&frame);
                Next::Through
            }
            (_, None) => {
                out.extend_from_slice(&frame);
                Next::Frames
            }
        }
    }

    fn gathered(&mut self, block: Block, flags: u8, out: &mut BytesMut) -> Next {
        if block.fragment.len() > MAX_BLOCK {
            out.extend_from_slice(&block.raw);
            return Next::Through;
        }
        if flags & END_HEADERS == 0 {
            self.block = Some(block);
            return Next::Frames;
        }
        let decoder = &mut self.decoder;
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder.decode(&block.fragment)
        }));
        let Ok(Ok(headers)) = decoded else {
            // h2 will find the block as broken as we did.
            out.extend_from_slice(&block.raw);
            return Next::Through;
        };
        if !self.rewriting {
            let broken = headers
                .iter()
                .any(|(n, v)| n.as_slice() == b":authority" && !valid(v));
            if !broken {
                out.extend_from_slice(&block.raw);
                return Next::Through;
            }
            self.rewriting = true;
        }
        let encoded = encode(&headers);
        write_block(&block, &encoded, out);
        Next::Frames
    }
}

/// The priority fields and header block fragment of a HEADERS frame's
/// payload; `None` when its padding does not fit.
fn headers_fragment(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let fields: [u8; 5] = p.get(..5)?.try_into().ok()?;
        priority = Some(fields);
        p = &p[5..];
    }
    let end = p.len().checked_sub(pad)?;
    Some((priority, &p[..end]))
}

/// HPACK's integer with an `n`-bit prefix, `first` holding the bits above it.
fn put_int(out: &mut Vec<u8>, first: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// The headers as literals without indexing (h2's table stays empty), the
/// authority mended.
fn encode(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let value = if name.as_slice() == b":authority" && !valid(value) {
            match mended(value) {
                Some(v) => v,
                None => continue,
            }
        } else {
            value.clone()
        };
        out.push(0);
        put_str(&mut out, name);
        put_str(&mut out, &value);
    }
    out
}

fn frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// `block` again, its fragment now `encoded`, unpadded, in frames of at
/// most [`MAX_FRAME`] bytes.
fn write_block(block: &Block, encoded: &[u8], out: &mut BytesMut) {
    let prio = block.priority.map_or(0, |_| 5);
    let first = encoded.len().min(MAX_FRAME - prio);
    let (head, mut rest) = encoded.split_at(first);
    let mut flags = block.flags & (END_STREAM | PRIORITY);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(out, prio + head.len(), HEADERS, flags, block.stream);
    if let Some(p) = block.priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(head);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = tail;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        frame_header(out, chunk.len(), CONTINUATION, flags, block.stream);
        out.extend_from_slice(chunk);
    }
}

/// A client connection whose HTTP/2 `:authority` is mended on the way in.
pub struct Mend<S> {
    io: S,
    state: State,
    /// Read from the socket, not yet looked at.
    raw: BytesMut,
    /// Ready for h2.
    ready: BytesMut,
    eof: bool,
}

impl<S> Mend<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(io: S) -> Mend<S> {
        Mend {
            io,
            state: State::Preface,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            eof: false,
        }
    }

    /// Moves what can be decided from `raw` to `ready`.
    fn look(&mut self) {
        loop {
            match &mut self.state {
                State::Through => {
                    let all = self.raw.split();
                    self.ready.unsplit(all);
                    return;
                }
                State::Preface => {
                    let k = self.raw.len().min(PREFACE.len());
                    if self.raw[..k] != PREFACE[..k] {
                        self.state = State::Through;
                        continue;
                    }
                    if k < PREFACE.len() {
                        return;
                    }
                    let p = self.raw.split_to(k);
                    self.ready.unsplit(p);
                    self.state = State::Frames(Box::new(Frames::new()));
                }
                State::Frames(frames) => {
                    if self.raw.len() < FRAME_HEADER {
                        return;
                    }
                    let len = (usize::from(self.raw[0]) << 16)
                        | (usize::from(self.raw[1]) << 8)
                        | usize::from(self.raw[2]);
                    if self.raw.len() < FRAME_HEADER + len {
                        return;
                    }
                    let frame = self.raw.split_to(FRAME_HEADER + len);
                    if let Next::Through = frames.frame(frame, &mut self.ready) {
                        self.state = State::Through;
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Mend<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            if !me.ready.is_empty() {
                let n = me.ready.len().min(buf.remaining());
                buf.put_slice(&me.ready[..n]);
                me.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if matches!(me.state, State::Through) && me.raw.is_empty() {
                return Pin::new(&mut me.io).poll_read(cx, buf);
            }
            if me.eof {
                // A frame cut short by the end: h2 sees it as it is.
                let rest = me.raw.split();
                me.ready.unsplit(rest);
                if me.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let mut chunk = [0u8; READ];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut me.io).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                me.eof = true;
            } else {
                me.raw.extend_from_slice(rb.filled());
                me.look();
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Mend<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Mend<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn etcd_clients_authorities_are_mended() {
        assert!(!valid(b"http://127.0.0.1:2379"));
        assert!(valid(b"127.0.0.1:2379"));
        assert_eq!(
            mended(b"http://127.0.0.1:2379").as_deref(),
            Some(&b"127.0.0.1:2379"[..])
        );
        assert_eq!(
            mended(b"#initially=[http://h1:2379;http://h2:2379]").as_deref(),
            Some(&b"h1:2379"[..])
        );
        assert_eq!(
            mended(b"https://[::1]:2379/").as_deref(),
            Some(&b"[::1]:2379"[..])
        );
        assert_eq!(mended(b"http://a b"), None);
    }

    #[test]
    fn integers_take_hpacks_prefix_form() {
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        let mut v = Vec::new();
        put_int(&mut v, 0, 5, 1337);
        assert_eq!(v, [31, 154, 10]);
        let mut v = Vec::new();
        put_int(&mut v, 0x80, 7, 10);
        assert_eq!(v, [0x8a]);
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        frame_header(&mut b, payload.len(), kind, flags, stream);
        b.extend_from_slice(payload);
        b.to_vec()
    }

    /// Sends `input` through a [`Mend`] and returns what comes out.
    fn through(input: &[u8]) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut a, b) = tokio::io::duplex(1 << 16);
            let input = input.to_vec();
            let w = tokio::spawn(async move {
                // Dribbled, so frames arrive split at odd places.
                for c in input.chunks(7) {
                    a.write_all(c).await.unwrap();
                }
            });
            let mut m = Mend::new(b);
            w.await.unwrap();
            // The writer is gone: reads end at EOF.
            let mut out = Vec::new();
            m.read_to_end(&mut out).await.unwrap();
            out
        })
    }

    /// A header block's frames, as (type, flags), and its decoded headers.
    type HeaderBlock = (Vec<(u8, u8)>, Vec<(Vec<u8>, Vec<u8>)>);

    /// The headers of every header block in `bytes` (after the preface),
    /// decoded with a fresh decoder, with each frame's type and flags.
    fn blocks(bytes: &[u8]) -> Vec<HeaderBlock> {
        let mut d = loona_hpack::Decoder::new();
        let mut rest = &bytes[PREFACE.len()..];
        let mut out = Vec::new();
        let mut kinds = Vec::new();
        let mut frag = Vec::new();
        while !rest.is_empty() {
            let len =
                (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
            let (kind, flags) = (rest[3], rest[4]);
            let payload = &rest[9..9 + len];
            rest = &rest[9 + len..];
            if kind == HEADERS || kind == CONTINUATION {
                kinds.push((kind, flags));
                let (_, f) = if kind == HEADERS {
                    headers_fragment(flags, payload).unwrap()
                } else {
                    (None, payload)
                };
                frag.extend_from_slice(f);
                if flags & END_HEADERS != 0 {
                    out.push((std::mem::take(&mut kinds), d.decode(&frag).unwrap()));
                    frag.clear();
                }
            }
        }
        out
    }

    fn request(authority: &str, path: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            // A name in no static table: the client's encoder indexes it,
            // and its second block refers to its dynamic table.
            ("te", "trailers"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
    }

    /// A client whose encoder indexes everything (as grpc-go's does) and
    /// splits its first block over a CONTINUATION, padded, with priority.
    fn client_bytes(authority: &str) -> Vec<u8> {
        let mut enc = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        let first = request(authority, "/etcdserverpb.KV/Range");
        let b1 = enc.encode(first.iter().map(|(n, v)| (&n[..], &v[..])));
        let (h, c) = b1.split_at(b1.len() / 2);
        let mut p = vec![3u8];
        p.extend_from_slice(&[0, 0, 0, 0, 15]);
        p.extend_from_slice(h);
        p.extend_from_slice(&[0, 0, 0]);
        input.extend(frame(HEADERS, PADDED | PRIORITY, 1, &p));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, c));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\x02hi"));
        let second = request(authority, "/etcdserverpb.Maintenance/Status");
        let b2 = enc.encode(second.iter().map(|(n, v)| (&n[..], &v[..])));
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &b2));
        input
    }

    #[test]
    fn a_client_with_a_valid_authority_passes_untouched() {
        let input = client_bytes("127.0.0.1:2379");
        assert_eq!(through(&input), input);
        let http1 = b"GET /health HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
        assert_eq!(through(&http1), http1);
    }

    #[test]
    fn a_url_as_authority_is_cut_to_its_host_and_port_in_every_block() {
        let input = client_bytes("http://127.0.0.1:2379");
        let out = through(&input);
        assert_ne!(out, input);
        let bs = blocks(&out);
        assert_eq!(bs.len(), 2, "two header blocks");
        assert_eq!(bs[0].1, request("127.0.0.1:2379", "/etcdserverpb.KV/Range"));
        assert_eq!(
            bs[1].1,
            request("127.0.0.1:2379", "/etcdserverpb.Maintenance/Status")
        );
        // One unpadded HEADERS frame keeping the priority, no END_STREAM;
        // then END_STREAM kept.
        assert_eq!(bs[0].0, vec![(HEADERS, PRIORITY | END_HEADERS)]);
        assert_eq!(bs[1].0, vec![(HEADERS, END_STREAM | END_HEADERS)]);
        // The DATA frame passed as it was.
        let data = frame(0x0, END_STREAM, 1, b"\0\0\0\0\x02hi");
        assert!(out.windows(data.len()).any(|w| w == data));
    }

    #[test]
    fn a_large_block_is_split_into_continuations() {
        let mut hs = request("http://h:1", "/p");
        hs.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
        let block = Block {
            stream: 5,
            flags: END_STREAM | END_HEADERS,
            priority: None,
            fragment: Vec::new(),
            raw: Vec::new(),
        };
        let mut out = BytesMut::from(PREFACE);
        write_block(&block, &encode(&hs), &mut out);
        let bs = blocks(&out);
        assert_eq!(
            bs[0].0,
            vec![
                (HEADERS, END_STREAM),
                (CONTINUATION, 0),
                (CONTINUATION, END_HEADERS)
            ]
        );
        assert_eq!(bs[0].1[3], (b":authority".to_vec(), b"h:1".to_vec()));
        assert_eq!(bs[0].1[6].1.len(), 40_000);
    }
}
