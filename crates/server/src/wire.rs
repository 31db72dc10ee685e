//! What travels between peers: a handshake, then length-framed postcard
//! messages (Raft envelopes and forwarded client requests).
//!
//! Frame: a 4-byte little-endian length, then that many bytes of postcard.
//! A frame over [`MAX_FRAME`] is refused and the connection dropped.

use serde::{Deserialize, Serialize};
use synod_node::{HostMsg, Member};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Identifies a synod peer connection ("SYND").
pub const MAGIC: u32 = 0x5359_4e44;
/// A [`Hello`] with this magic asks to join: it comes from a member added
/// at runtime that does not know its own id or the cluster's yet; its
/// `client_urls` carry the joiner's peer URLs, `from`, `to` and `cluster_id` are 0.
pub const JOIN_MAGIC: u32 = 0x5359_4e4a;
/// The peer protocol's version; both ends must speak the same one.
pub const PROTOCOL_VERSION: u16 = 3;
/// Largest frame accepted (a Raft append is bounded by 1 MiB of payload,
/// a snapshot chunk by 256 KiB, a forwarded request by the request limit).
pub const MAX_FRAME: usize = 16 << 20;

/// The first frame on a connection, from the dialing side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The dialer's cluster.
    pub cluster_id: u64,
    /// The dialer's member id.
    pub from: u64,
    /// The member id the dialer expects to reach.
    pub to: u64,
    /// The dialer's name.
    pub name: String,
    /// The dialer's client URLs (for member lists).
    pub client_urls: Vec<String>,
    /// The dialer's peer URLs: a member whose registry lags (it is
    /// replaying its log, or joined a moment ago) learns from them how to
    /// answer a newer member it does not know yet.
    pub peer_urls: Vec<String>,
}

/// The answer to a [`Hello`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum HelloReply {
    /// Accepted.
    Welcome {
        /// The acceptor's name.
        name: String,
        /// The acceptor's client URLs.
        client_urls: Vec<String>,
    },
    /// Refused, and why.
    Refused(String),
    /// The answer to a join request ([`JOIN_MAGIC`]): who the joiner is.
    Joined {
        /// The cluster's id.
        cluster_id: u64,
        /// The joiner's member id.
        member_id: u64,
        /// Every member, as the answering member knows them.
        members: Vec<Member>,
    },
}

/// The answer to a [`PeerMsg::Probe`], written back on the same connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReply {
    /// The probe's `sent_ns`, echoed.
    pub sent_ns: u64,
}

pub use synod_node::{Answer, Ask, LeaseTtl};

/// A message between peers after the handshake: the hosts' own, or the
/// transport's round-trip probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// From host to host (Raft, forwarded requests and their replies,
    /// questions for the leader).
    Host(HostMsg),
    /// A round-trip probe: the receiving transport answers with a
    /// [`ProbeReply`] on the same connection (never reaches the node).
    Probe {
        /// When it left, in the sender's clock (nanoseconds).
        sent_ns: u64,
    },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer announced a frame over [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The bytes do not decode.
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
}

/// Appends one frame holding `msg` to `out`.
pub fn encode_frame<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let body =
        postcard::to_extend(msg, std::mem::take(out)).expect("encoding into a Vec cannot fail");
    *out = body;
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// A frame's announced body length, refused over [`MAX_FRAME`].
fn body_len(head: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(head) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Reads one frame and decodes it.
pub async fn read_frame<T, R>(r: &mut R) -> Result<T, FrameError>
where
    T: for<'de> Deserialize<'de>,
    R: AsyncReadExt + Unpin,
{
    let mut head = [0; 4];
    r.read_exact(&mut head).await?;
    let mut buf = vec![0; body_len(head)?];
    r.read_exact(&mut buf).await?;
    Ok(postcard::from_bytes(&buf)?)
}

/// Decodes the first frame of `buf` as [`read_frame`] reads it from a
/// stream: the message and the bytes it took, or `None` while the frame is
/// not all there.
pub fn decode_frame<T>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError>
where
    T: for<'de> Deserialize<'de>,
{
    let Some(head) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = body_len(*head)?;
    let Some(body) = buf[4..].get(..len) else {
        return Ok(None);
    };
    Ok(Some((postcard::from_bytes(body)?, 4 + len)))
}

/// Encodes and writes one frame.
pub async fn write_frame<T: Serialize, W: AsyncWriteExt + Unpin>(
    w: &mut W,
    msg: &T,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    encode_frame(msg, &mut buf);
    w.write_all(&buf).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        let a = PeerMsg::Host(HostMsg::Ask {
            id: 3,
            ask: Ask::LeaseTtl { id: 9, keys: true },
        });
        encode_frame(&a, &mut buf);
        encode_frame(&a, &mut buf);
        let mut r = &buf[..];
        assert_eq!(read_frame::<PeerMsg, _>(&mut r).await.unwrap(), a);
        assert_eq!(read_frame::<PeerMsg, _>(&mut r).await.unwrap(), a);
        let big = ((MAX_FRAME + 1) as u32).to_le_bytes();
        let mut r = &big[..];
        assert!(matches!(
            read_frame::<PeerMsg, _>(&mut r).await,
            Err(FrameError::TooLarge(_))
        ));
        let junk = [3u8, 0, 0, 0, 0xff, 0xff, 0xff];
        let mut r = &junk[..];
        assert!(matches!(
            read_frame::<PeerMsg, _>(&mut r).await,
            Err(FrameError::Decode(_))
        ));
    }
}
