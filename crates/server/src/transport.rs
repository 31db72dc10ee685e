//! The peer transport: one outbound TCP connection per peer for what this
//! node sends, one inbound per peer for what it receives.
//!
//! Outbound: a bounded queue per peer (a full queue drops the newest
//! message and counts it — Raft retransmits what matters), a task that
//! connects with bounded exponential backoff, introduces itself with a
//! [`Hello`], then writes batches of frames with one syscall each.
//! Inbound: a listener that checks the [`Hello`] (magic, version, cluster
//! id, that the caller is a member and that it meant to reach us), refuses
//! and logs strangers, then feeds frames to the node's actor with
//! backpressure (the reader waits while the actor's inbox is full).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::runtime::Input;
use crate::shared::Shared;
use crate::wire::{
    encode_frame, read_frame, write_frame, Hello, HelloReply, PeerMsg, MAGIC, PROTOCOL_VERSION,
};

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 4096;
/// Most bytes written in one batch.
const BATCH_BYTES: usize = 1 << 20;
/// Most messages in one batch.
const BATCH_MSGS: usize = 512;
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// The sending side: a queue per peer.
#[derive(Clone)]
pub struct Transport {
    queues: Arc<BTreeMap<u64, mpsc::Sender<PeerMsg>>>,
    shared: Arc<Shared>,
}

impl Transport {
    /// Starts one sender task per peer.
    pub fn start(shared: Arc<Shared>) -> Transport {
        let mut queues = BTreeMap::new();
        for m in &shared.cfg.members {
            if m.id == shared.cfg.id {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            queues.insert(m.id, tx);
            tokio::spawn(sender(shared.clone(), m.id, m.peer_addr, rx));
        }
        Transport {
            queues: Arc::new(queues),
            shared,
        }
    }

    /// Queues a message for `to`; drops it when the queue is full or `to` is unknown.
    pub fn send(&self, to: u64, msg: PeerMsg) {
        match self.queues.get(&to) {
            Some(q) => {
                if q.try_send(msg).is_err() {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn sender(
    shared: Arc<Shared>,
    to: u64,
    addr: std::net::SocketAddr,
    mut rx: mpsc::Receiver<PeerMsg>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        match connect(&shared, to, addr).await {
            Ok(stream) => {
                if failures > 0 {
                    shared.log(format_args!("connected to peer {to:x} at {addr}"));
                }
                failures = 0;
                backoff = BACKOFF_MIN;
                match pump(stream, &mut rx).await {
                    PumpEnd::QueueClosed => return,
                    PumpEnd::Broken(e) => {
                        shared.log(format_args!("connection to peer {to:x} lost: {e}"));
                    }
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(50) {
                    shared.log(format_args!("cannot reach peer {to:x} at {addr}: {e}"));
                }
                // What queued up while the peer was unreachable is stale: Raft resends.
                loop {
                    match rx.try_recv() {
                        Ok(_) => {
                            shared.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn connect(
    shared: &Shared,
    to: u64,
    addr: std::net::SocketAddr,
) -> Result<TcpStream, String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let hello = Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster_id: shared.cfg.cluster_id,
            from: shared.cfg.id,
            to,
            name: shared.cfg.name.clone(),
            client_urls: shared.cfg.advertise_client_urls.clone(),
        };
        write_frame(&mut s, &hello)
            .await
            .map_err(|e| e.to_string())?;
        let reply: HelloReply = read_frame(&mut s).await.map_err(|e| e.to_string())?;
        match reply {
            HelloReply::Welcome { name, client_urls } => {
                shared.learn_peer(to, name, client_urls);
                Ok(s)
            }
            HelloReply::Refused(why) => Err(format!("refused us: {why}")),
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| "handshake timed out".to_string())?
}

enum PumpEnd {
    QueueClosed,
    Broken(std::io::Error),
}

async fn pump(stream: TcpStream, rx: &mut mpsc::Receiver<PeerMsg>) -> PumpEnd {
    let (_r, w) = stream.into_split();
    let mut w = BufWriter::new(w);
    let mut buf = Vec::new();
    loop {
        let Some(first) = rx.recv().await else {
            return PumpEnd::QueueClosed;
        };
        buf.clear();
        encode_frame(&first, &mut buf);
        let mut n = 1;
        while n < BATCH_MSGS && buf.len() < BATCH_BYTES {
            match rx.try_recv() {
                Ok(m) => {
                    encode_frame(&m, &mut buf);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = w.write_all(&buf).await {
            return PumpEnd::Broken(e);
        }
        if let Err(e) = w.flush().await {
            return PumpEnd::Broken(e);
        }
    }
}

/// Accepts peer connections until the process stops.
pub async fn listen(listener: TcpListener, shared: Arc<Shared>, inbox: mpsc::Sender<Input>) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                shared.log(format_args!("peer accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_peer(stream, &shared, inbox).await {
                shared.log(format_args!("peer connection from {addr}: {e}"));
            }
        });
    }
}

/// Checks a [`Hello`]: `Ok` with the peer's id, or why it is refused.
pub fn check_hello(shared: &Shared, h: &Hello) -> Result<u64, String> {
    if h.magic != MAGIC {
        return Err("not a synod peer".into());
    }
    if h.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} (we speak {PROTOCOL_VERSION})",
            h.version
        ));
    }
    if h.cluster_id != shared.cfg.cluster_id {
        return Err(format!(
            "cluster id {:x} is not ours ({:x})",
            h.cluster_id, shared.cfg.cluster_id
        ));
    }
    if h.to != shared.cfg.id {
        return Err(format!(
            "expected member {:x}, this is {:x}",
            h.to, shared.cfg.id
        ));
    }
    if h.from == shared.cfg.id || !shared.cfg.members.iter().any(|m| m.id == h.from) {
        return Err(format!("member {:x} is not in this cluster", h.from));
    }
    Ok(h.from)
}

async fn serve_peer(
    stream: TcpStream,
    shared: &Shared,
    inbox: mpsc::Sender<Input>,
) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let hello: Hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut r))
        .await
        .map_err(|_| "no handshake".to_string())?
        .map_err(|e| format!("bad handshake: {e}"))?;
    let from = match check_hello(shared, &hello) {
        Ok(id) => id,
        Err(why) => {
            shared.log(format_args!(
                "refused peer {:?} (id {:x}): {why}",
                hello.name, hello.from
            ));
            let _ = write_frame(&mut w, &HelloReply::Refused(why.clone())).await;
            return Err(format!("refused: {why}"));
        }
    };
    shared.learn_peer(from, hello.name, hello.client_urls);
    write_frame(
        &mut w,
        &HelloReply::Welcome {
            name: shared.cfg.name.clone(),
            client_urls: shared.cfg.advertise_client_urls.clone(),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    loop {
        let msg: PeerMsg = read_frame(&mut r).await.map_err(|e| e.to_string())?;
        if let PeerMsg::Raft(env) = &msg {
            if env.msg.from != from {
                return Err(format!(
                    "peer {from:x} sent a message claiming to be from {:x}",
                    env.msg.from
                ));
            }
        }
        if inbox.send(Input::Peer { from, msg }).await.is_err() {
            return Ok(());
        }
    }
}
