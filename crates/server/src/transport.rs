//! The peer transport: one outbound TCP connection per peer for what this
//! node sends, one inbound per peer for what it receives.
//!
//! Outbound: a bounded queue per peer (a full queue drops the newest
//! message and counts it — Raft retransmits what matters), a task that
//! connects with bounded exponential backoff, introduces itself with a
//! [`Hello`], then writes batches of frames with one syscall each.
//! Inbound: a listener that checks the [`Hello`] (magic, version, cluster
//! id, that the caller was never removed and meant to reach us), refuses
//! and logs strangers, then feeds frames to the node's actor with
//! backpressure (the reader waits while the actor's inbox is full).
//!
//! Membership is dynamic: the actor hands over the registry's member list
//! whenever it changes ([`Transport::set_members`]); senders start for new
//! members, restart for moved ones and stop for removed ones, and the
//! handshake checks the caller against the current list (a removed member
//! is told so, and stops). A member added at runtime first asks a peer who
//! it is ([`ask_to_join`]). Each outbound connection carries a probe every
//! [`PROBE_EVERY`], answered on the same connection, for the peer
//! round-trip-time histogram.
//!
//! TLS: a peer whose URL is `https://` is dialed over TLS with this
//! member's peer certificate ([`PeerTls`]), and an https peer listener
//! takes only connections that complete a TLS handshake (with a verified
//! client certificate under `--peer-client-cert-auth`) before any frame is
//! read. Plaintext connections take the plain path, with nothing added.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use synod_node::Member;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::tls::PeerTls;

use crate::inbox::{Input, Query};
use crate::shared::Shared;
use crate::wire::{
    encode_frame, read_frame, write_frame, Hello, HelloReply, PeerMsg, ProbeReply, JOIN_MAGIC,
    MAGIC, PROTOCOL_VERSION,
};

/// How often an outbound connection probes the round trip.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// What a refusal says to a removed member (it stops on hearing it).
pub const REMOVED: &str = "was removed from the cluster";
/// What a refusal says to a dialer that expected another member here.
pub const WRONG_MEMBER: &str = "expected member";

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 4096;
/// Most bytes written in one batch.
const BATCH_BYTES: usize = 1 << 20;
/// Most messages in one batch.
const BATCH_MSGS: usize = 512;
const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// Short, so a peer comes back soon after a partition heals (the cost is a
/// few failed dials a second to a peer that is down).
const BACKOFF_MAX: Duration = Duration::from_millis(500);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// A dial whose SYN is not answered within this is given up and retried
/// (TCP would wait 1 s, then 2 more, before its own retries).
const DIAL_TIMEOUT: Duration = Duration::from_millis(1000);
/// An outbound connection whose probes went unanswered this long is taken
/// for dead and redialled: through a silent partition, TCP alone would keep
/// it and back its retransmissions off, and the peer would be heard again
/// only seconds after the heal.
pub const PEER_SILENCE: Duration = Duration::from_secs(3);

struct PeerQueue {
    tx: mpsc::Sender<PeerMsg>,
    target: Target,
}

/// Where a peer is reached, and whether over TLS (its URL is https; then
/// with the name its certificate must carry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The address its peer URL resolves to.
    pub addr: SocketAddr,
    /// `Some` for an https peer URL: the name to verify.
    pub tls: Option<rustls::pki_types::ServerName<'static>>,
}

impl Target {
    /// The target of a peer URL (`None` when it does not parse).
    pub fn of(url: &str) -> Option<Target> {
        let addr = crate::config::parse_url("peer URL", url).ok()?;
        let tls = if crate::config::is_https(url) {
            Some(crate::tls::server_name(url)?)
        } else {
            None
        };
        Some(Target { addr, tls })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.addr)
    }
}

/// The sending side: a queue per peer.
#[derive(Clone)]
pub struct Transport {
    queues: Arc<Mutex<BTreeMap<u64, PeerQueue>>>,
    shared: Arc<Shared>,
    tls: Option<Arc<PeerTls>>,
}

impl Transport {
    /// Starts one sender task per peer of the published member list;
    /// `tls` dials the https ones.
    pub fn start(shared: Arc<Shared>, tls: Option<Arc<PeerTls>>) -> Transport {
        let t = Transport {
            queues: Arc::new(Mutex::new(BTreeMap::new())),
            shared: shared.clone(),
            tls,
        };
        t.set_members(&shared.peers.dial_list());
        t
    }

    /// Follows a new member list: starts senders for new members, restarts
    /// those whose address changed, stops those that left. A member whose
    /// peer URL does not parse is not dialed (it can still dial us).
    pub fn set_members(&self, members: &[Member]) {
        let me = self.shared.cfg.id;
        let want: BTreeMap<u64, Target> = members
            .iter()
            .filter(|m| m.id != me)
            .filter_map(|m| Some((m.id, Target::of(m.peer_urls.first()?)?)))
            .collect();
        let mut q = self.queues.lock().expect("transport lock");
        // Dropping a queue's sender ends its task.
        q.retain(|id, p| want.get(id) == Some(&p.target));
        for (id, target) in want {
            if q.contains_key(&id) {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            q.insert(
                id,
                PeerQueue {
                    tx,
                    target: target.clone(),
                },
            );
            tokio::spawn(sender(
                self.shared.clone(),
                self.tls.clone(),
                id,
                target,
                rx,
            ));
        }
    }

    /// Queues a message for `to`; drops it when the queue is full or `to` is unknown.
    pub fn send(&self, to: u64, msg: PeerMsg) {
        let q = self.queues.lock().expect("transport lock");
        match q.get(&to).map(|p| &p.tx) {
            Some(q) => {
                if q.try_send(msg).is_err() {
                    self.shared.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.shared.metrics.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn sender(
    shared: Arc<Shared>,
    tls: Option<Arc<PeerTls>>,
    to: u64,
    addr: Target,
    mut rx: mpsc::Receiver<PeerMsg>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        match connect(&shared, tls.as_deref(), to, &addr).await {
            Ok(stream) => {
                if failures > 0 {
                    shared.log(format_args!("connected to peer {to:x} at {addr}"));
                }
                failures = 0;
                backoff = BACKOFF_MIN;
                let end = match stream {
                    Dialed::Plain(s) => {
                        let (r, w) = s.into_split();
                        pump(r, w, &mut rx, &shared, to).await
                    }
                    Dialed::Tls(s) => {
                        let (r, w) = tokio::io::split(*s);
                        pump(r, w, &mut rx, &shared, to).await
                    }
                };
                match end {
                    PumpEnd::QueueClosed => return,
                    PumpEnd::Broken(e) => {
                        shared.log(format_args!("connection to peer {to:x} lost: {e}"));
                    }
                }
            }
            Err(e) => {
                failures += 1;
                if e.contains(REMOVED) {
                    shared.peers.self_removed.store(true, Ordering::Relaxed);
                }
                // Another member answers at its address: if we knew it only
                // by introduction, it was replaced, and is not ours to dial.
                if e.contains(WRONG_MEMBER) && !shared.peers.is_registry_member(to) {
                    shared.peers.forget_introduced(to);
                    shared.log(format_args!(
                        "peer {to:x} at {addr} is another member now; no longer dialled"
                    ));
                    return;
                }
                if failures == 1 || failures.is_multiple_of(50) {
                    shared.log(format_args!("cannot reach peer {to:x} at {addr}: {e}"));
                }
                // What queued up while the peer was unreachable is stale: Raft resends.
                loop {
                    match rx.try_recv() {
                        Ok(_) => {
                            shared.metrics.dropped.fetch_add(1, Ordering::Relaxed);
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

/// An outbound peer connection, after its handshake.
enum Dialed {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Opens a TCP connection (and TLS over it for an https target).
async fn dial(tls: Option<&PeerTls>, target: &Target) -> Result<Dialed, String> {
    let s = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(target.addr))
        .await
        .map_err(|_| "no answer to the dial".to_string())?
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let Some(name) = &target.tls else {
        return Ok(Dialed::Plain(s));
    };
    let tls = tls.ok_or_else(|| {
        "its peer URL is https, and this member has no peer certificate \
         (--peer-cert-file and --peer-key-file, or --peer-auto-tls)"
            .to_string()
    })?;
    let (connector, _) = tls.connector();
    let s = connector
        .connect(name.clone(), s)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(Dialed::Tls(Box::new(s)))
}

async fn connect(
    shared: &Shared,
    tls: Option<&PeerTls>,
    to: u64,
    target: &Target,
) -> Result<Dialed, String> {
    let fut = async {
        let mut d = dial(tls, target).await?;
        match &mut d {
            Dialed::Plain(s) => introduce(shared, to, s).await?,
            Dialed::Tls(s) => introduce(shared, to, s.as_mut()).await?,
        }
        Ok(d)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| "handshake timed out".to_string())?
}

/// Says who we are and whom we mean to reach; hears whether we are welcome.
async fn introduce<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    to: u64,
    s: &mut S,
) -> Result<(), String> {
    let hello = Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        cluster_id: shared.cfg.cluster_id,
        from: shared.cfg.id,
        to,
        name: shared.cfg.name.clone(),
        client_urls: shared.cfg.advertise_client_urls.clone(),
        peer_urls: shared.cfg.my_peer_urls(),
    };
    write_frame(s, &hello).await.map_err(|e| e.to_string())?;
    let reply: HelloReply = read_frame(s).await.map_err(|e| e.to_string())?;
    match reply {
        HelloReply::Welcome { name, client_urls } => {
            shared.peers.learn_peer(to, name, client_urls);
            Ok(())
        }
        HelloReply::Refused(why) => Err(format!("refused us: {why}")),
        HelloReply::Joined { .. } => Err("answered a hello with a join".into()),
    }
}

enum PumpEnd {
    QueueClosed,
    Broken(std::io::Error),
}

/// Reads the probe answers of one outbound connection into the histogram,
/// and notes in `heard` when the last one came.
async fn read_probes<R: AsyncRead + Unpin>(
    r: R,
    shared: Arc<Shared>,
    to: u64,
    heard: Arc<AtomicU64>,
) {
    let mut r = BufReader::new(r);
    while let Ok(p) = read_frame::<ProbeReply, _>(&mut r).await {
        let now = shared.peers.now_ns();
        heard.store(now, Ordering::Relaxed);
        if p.sent_ns <= now {
            shared
                .peers
                .observe_rtt(to, std::time::Duration::from_nanos(now - p.sent_ns));
        }
    }
}

async fn pump<R, W>(
    r: R,
    w: W,
    rx: &mut mpsc::Receiver<PeerMsg>,
    shared: &Arc<Shared>,
    to: u64,
) -> PumpEnd
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let heard = Arc::new(AtomicU64::new(shared.peers.now_ns()));
    let probes = tokio::spawn(read_probes(r, shared.clone(), to, heard.clone()));
    let end = pump_frames(w, rx, shared, &heard).await;
    probes.abort();
    end
}

async fn pump_frames<W: AsyncWrite + Unpin>(
    w: W,
    rx: &mut mpsc::Receiver<PeerMsg>,
    shared: &Shared,
    heard: &AtomicU64,
) -> PumpEnd {
    let silent = || {
        let since = shared
            .peers
            .now_ns()
            .saturating_sub(heard.load(Ordering::Relaxed));
        (since > PEER_SILENCE.as_nanos() as u64).then(|| {
            PumpEnd::Broken(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer to probes for {PEER_SILENCE:?}"),
            ))
        })
    };
    let mut w = BufWriter::new(w);
    let mut buf = Vec::new();
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return PumpEnd::QueueClosed,
            },
            _ = probe.tick() => {
                if let Some(end) = silent() {
                    return end;
                }
                PeerMsg::Probe { sent_ns: shared.peers.now_ns() }
            }
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
        // A write that cannot drain (the peer's window closed behind a
        // partition) counts as silence too.
        let wrote = tokio::time::timeout(PEER_SILENCE, async {
            w.write_all(&buf).await?;
            w.flush().await
        })
        .await;
        match wrote {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return PumpEnd::Broken(e),
            Err(_) => {
                return silent().unwrap_or(PumpEnd::Broken(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("a write did not drain for {PEER_SILENCE:?}"),
                )))
            }
        }
    }
}

/// Accepts peer connections until the process stops; with `tls`, each
/// must complete a TLS handshake first.
pub async fn listen(
    listener: TcpListener,
    shared: Arc<Shared>,
    inbox: mpsc::Sender<Input>,
    tls: Option<Arc<PeerTls>>,
) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(crate::tls::MAX_HANDSHAKES));
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
        let Some(tls) = &tls else {
            tokio::spawn(async move {
                if let Err(e) = serve_peer(stream, &shared, inbox).await {
                    shared.log(format_args!("peer connection from {addr}: {e}"));
                }
            });
            continue;
        };
        let (acceptor, reload_err) = tls.acceptor();
        if let Some(e) = reload_err {
            shared.log(format_args!(
                "peer TLS: a changed certificate file does not load, keeping the last good one: {e}"
            ));
        }
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let shake =
                tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(permit);
            let r = match shake {
                Ok(Ok(s)) => {
                    let (r, w) = tokio::io::split(s);
                    serve_peer_io(BufReader::new(r), w, &shared, inbox).await
                }
                Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                Err(_) => Err("TLS handshake timed out".into()),
            };
            if let Err(e) = r {
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
            "{WRONG_MEMBER} {:x}, this is {:x}",
            h.to, shared.cfg.id
        ));
    }
    if shared.peers.was_removed(h.from) {
        return Err(format!("member {:x} {REMOVED}", h.from));
    }
    if h.from == shared.cfg.id {
        return Err(format!("member {:x} is this member", h.from));
    }
    if !shared.peers.is_member(h.from) {
        // Not in our registry, but of our cluster and never removed: a
        // member added after the point our registry has reached (we are
        // replaying our log, or joined a moment ago), perhaps the leader
        // that is sending us that log. Refusing it would leave us behind
        // for good, as etcd's transport knows: take it in on its word,
        // until the registry catches up.
        if h.peer_urls.is_empty() {
            return Err(format!("member {:x} is not in this cluster", h.from));
        }
        shared
            .peers
            .introduce(h.from, h.name.clone(), h.peer_urls.clone());
    }
    Ok(h.from)
}

/// Answers a join request: the host decides who the joiner is, by the
/// member whose peer URL it has.
pub async fn answer_join(shared: &Shared, inbox: &mpsc::Sender<Input>, h: &Hello) -> HelloReply {
    if h.version != PROTOCOL_VERSION {
        return HelloReply::Refused(format!(
            "protocol version {} (we speak {PROTOCOL_VERSION})",
            h.version
        ));
    }
    let Some(url) = h.client_urls.first() else {
        return HelloReply::Refused("a join request names no peer URL".into());
    };
    if let Err(why) = membership_barrier(inbox).await {
        return HelloReply::Refused(why);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let q = Input::Query(Query::Join {
        url: url.clone(),
        tx,
    });
    if inbox.send(q).await.is_err() {
        return HelloReply::Refused("this member is stopping".into());
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, rx).await {
        Ok(Ok(Ok((member_id, members)))) => HelloReply::Joined {
            cluster_id: shared.cfg.cluster_id,
            member_id,
            members,
        },
        Ok(Ok(Err(why))) => HelloReply::Refused(why),
        _ => HelloReply::Refused("this member did not answer in time".into()),
    }
}

/// Reads the home group linearizably (a ReadIndex round, then waiting
/// until this member has applied that far), so that its member registry
/// holds every membership change committed before the joiner asked: the
/// `member add` that made room for the joiner among them. Without it a
/// lagging member still listing the removed member that had the same peer
/// URL would name the joiner after it, and the joiner would start as a
/// member the others refuse.
async fn membership_barrier(inbox: &mpsc::Sender<Input>) -> Result<(), String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Read sessions need only be distinct from one another and from the
    // gRPC services' (which are spread over 64 bits the same way).
    let seed = NEXT.fetch_add(1, Ordering::Relaxed)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let client = crate::ids::spread(seed).max(1);
    let req = synod_node::ClientRequest {
        client,
        seq: 1,
        op: synod_node::ClientOp::Range {
            // The lowest key: in the home group, whose registry is the cluster's.
            req: synod_kv::RangeRequest {
                key: vec![0],
                count_only: true,
                ..Default::default()
            },
            serializable: false,
            // The member's own read: no user's permissions apply.
            auth: None,
        },
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if inbox.send(Input::Call { req, tx }).await.is_err() {
        return Err("this member is stopping".into());
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, rx).await {
        Ok(Ok(reply)) => reply
            .result
            .map(|_| ())
            .map_err(|e| format!("cannot confirm the membership yet ({e}); try again")),
        _ => Err("this member could not confirm the membership in time".into()),
    }
}

/// Asks the member at `target` who the member with `peer_url` is: its id,
/// the cluster's id and every member.
pub async fn ask_to_join(
    tls: Option<&PeerTls>,
    target: &Target,
    name: &str,
    peer_url: &str,
) -> Result<(u64, u64, Vec<Member>), String> {
    let fut = async {
        match dial(tls, target).await? {
            Dialed::Plain(mut s) => join_request(&mut s, name, peer_url).await,
            Dialed::Tls(mut s) => join_request(s.as_mut(), name, peer_url).await,
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| "join request timed out".to_string())?
}

async fn join_request<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    name: &str,
    peer_url: &str,
) -> Result<(u64, u64, Vec<Member>), String> {
    {
        let hello = Hello {
            magic: JOIN_MAGIC,
            version: PROTOCOL_VERSION,
            cluster_id: 0,
            from: 0,
            to: 0,
            name: name.to_string(),
            client_urls: vec![peer_url.to_string()],
            peer_urls: vec![peer_url.to_string()],
        };
        write_frame(s, &hello).await.map_err(|e| e.to_string())?;
        match read_frame::<HelloReply, _>(s)
            .await
            .map_err(|e| e.to_string())?
        {
            HelloReply::Joined {
                cluster_id,
                member_id,
                members,
            } => Ok((member_id, cluster_id, members)),
            HelloReply::Refused(why) => Err(format!("refused: {why}")),
            HelloReply::Welcome { .. } => Err("answered a join with a welcome".into()),
        }
    }
}

async fn serve_peer(
    stream: TcpStream,
    shared: &Shared,
    inbox: mpsc::Sender<Input>,
) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, w) = stream.into_split();
    serve_peer_io(BufReader::new(r), w, shared, inbox).await
}

/// Serves one inbound peer connection: its handshake, then its frames.
async fn serve_peer_io<R, W>(
    mut r: R,
    mut w: W,
    shared: &Shared,
    inbox: mpsc::Sender<Input>,
) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello: Hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut r))
        .await
        .map_err(|_| "no handshake".to_string())?
        .map_err(|e| format!("bad handshake: {e}"))?;
    if hello.magic == JOIN_MAGIC {
        let reply = answer_join(shared, &inbox, &hello).await;
        let _ = write_frame(&mut w, &reply).await;
        return match reply {
            HelloReply::Refused(why) => Err(format!("join refused: {why}")),
            _ => Ok(()),
        };
    }
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
    shared.peers.learn_peer(from, hello.name, hello.client_urls);
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
        // A member removed while connected: hang up, so that it redials and
        // hears from the handshake that it was removed.
        if shared.peers.was_removed(from) {
            return Err(format!("member {from:x} {REMOVED}"));
        }
        if let PeerMsg::Probe { sent_ns } = msg {
            write_frame(&mut w, &ProbeReply { sent_ns })
                .await
                .map_err(|e| e.to_string())?;
            continue;
        }
        if let PeerMsg::Host(synod_node::HostMsg::Raft(env)) = &msg {
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
