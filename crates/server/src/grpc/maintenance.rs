//! The Maintenance service: Status, Hash/HashKV, Snapshot, MoveLeader, and
//! Defragment, and the no-op Alarm etcd clients call.

use std::pin::Pin;
use std::time::{Duration, Instant};

use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::maintenance_server::Maintenance;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::Api;
use crate::etcd_backup::EtcdMember;
use crate::inbox::Query;

/// The etcd version synod reports, so version-checking clients accept it.
pub const ETCD_VERSION: &str = "3.5.0";
/// Longest a defragment waits for the store to carry it out.
const DEFRAG_WAIT: Duration = Duration::from_secs(60);
/// Bytes per snapshot stream message.
const SNAPSHOT_CHUNK: usize = 32 << 10;

type SnapOut = Result<pb::SnapshotResponse, Status>;

impl Api {
    /// Makes the home store commit durably (an empty transaction: no
    /// revision, no event, but an applied entry) and waits until it has
    /// carried out the defragmentation asked for when it had done `before`.
    async fn defragment_wait(&self, before: u64) -> Result<(), Status> {
        self.write(synod_kv::Command::Txn(synod_kv::TxnRequest::default()))
            .await?;
        let t0 = Instant::now();
        while self
            .query(|tx| Query::Defragment { request: false, tx })
            .await?
            == Some(before)
        {
            if t0.elapsed() > DEFRAG_WAIT {
                return Err(Status::deadline_exceeded(
                    "synod: defragment did not finish in time",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Maintenance for Api {
    async fn alarm(
        &self,
        req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        self.check_leader(&req)?;
        // synod raises no alarms (no space quota, no corruption alarm yet).
        Ok(Response::new(pb::AlarmResponse {
            header: Some(self.header_now()),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.check_leader(&req)?;
        let st = self.query(Query::Status).await?;
        let (leader, term, commit, applied, rev, learner) = (
            st.leader,
            st.term,
            st.commit,
            st.applied,
            st.revision,
            st.learner,
        );
        // etcd reports its bolt file; synod the WAL and snapshot files it
        // keeps (never 0, so the fields are present as etcd's are).
        let dir = self.shared().cfg.data_dir.clone();
        let size = tokio::task::spawn_blocking(move || crate::layout::store_bytes(&dir))
            .await
            .unwrap_or(0);
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.header(rev)),
            version: ETCD_VERSION.into(),
            db_size: size,
            leader,
            raft_index: commit,
            raft_term: term,
            raft_applied_index: applied,
            errors: Vec::new(),
            db_size_in_use: size,
            is_learner: learner,
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.check_leader(&req)?;
        self.check_admin(&req).await?;
        // The store gives the space of compacted writes back at its next
        // durable commit, after an entry is applied: an empty transaction
        // (no revision, no event) makes one. Answered once it is done, as
        // etcd answers once its file is rewritten.
        if let Some(before) = self
            .query(|tx| Query::Defragment { request: true, tx })
            .await?
        {
            self.defragment_wait(before).await?;
        }
        Ok(Response::new(pb::DefragmentResponse {
            header: Some(self.header_now()),
        }))
    }

    async fn hash(
        &self,
        req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        self.check_leader(&req)?;
        self.check_admin(&req).await?;
        let (h, rev, _) = self.query(Query::Hash).await?;
        Ok(Response::new(pb::HashResponse {
            header: Some(self.header(rev)),
            hash: (h ^ (h >> 32)) as u32,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        self.check_leader(&req)?;
        self.check_admin(&req).await?;
        let (h, rev, compact) = self.query(Query::Hash).await?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(self.header(rev)),
            hash: (h ^ (h >> 32)) as u32,
            compact_revision: compact,
            hash_revision: rev,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = SnapOut> + Send + 'static>>;

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.check_leader(&req)?;
        self.check_admin(&req).await?;
        let (parts, rev, applied) = self.query(Query::Snapshot).await??;
        let members: Vec<EtcdMember> = self
            .members()
            .into_iter()
            .map(|m| EtcdMember {
                id: m.id,
                name: m.name,
                peer_urls: m.peer_ur_ls,
                client_urls: m.client_ur_ls,
                learner: m.is_learner,
            })
            .collect();
        // etcd's backend file (bbolt, whose size is a whole number of
        // pages), followed by its SHA-256, as etcd streams it: etcd's tools
        // read it and restore etcd from it.
        let image = tokio::task::spawn_blocking(move || {
            let mut file = crate::etcd_backup::export(&parts, &members, applied)?;
            let digest = <sha2::Sha256 as sha2::Digest>::digest(&file);
            file.extend_from_slice(&digest);
            Ok::<_, crate::etcd_backup::BackupError>(file)
        })
        .await
        .map_err(|e| Status::internal(format!("synod: snapshot: {e}")))?
        .map_err(|e| Status::internal(format!("synod: snapshot: {e}")))?;
        let (tx, rx) = mpsc::channel::<SnapOut>(4);
        let header = self.header(rev);
        tokio::spawn(async move {
            let total = image.len();
            let mut sent = 0;
            loop {
                let end = (sent + SNAPSHOT_CHUNK).min(total);
                let msg = pb::SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: (total - end) as u64,
                    blob: image[sent..end].to_vec(),
                    version: ETCD_VERSION.into(),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
                sent = end;
                if sent >= total {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn move_leader(
        &self,
        req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.check_leader(&req)?;
        self.check_admin(&req).await?;
        let target = req.into_inner().target_id;
        if !self.shared().peers.is_member(target) {
            return Err(Status::failed_precondition(
                "etcdserver: bad leader transferee",
            ));
        }
        let started = self
            .query(|tx| Query::TransferLeader { target, tx })
            .await?;
        if !started {
            return Err(Status::failed_precondition("etcdserver: not leader"));
        }
        let c = &self.shared().cfg;
        let limit = c.tick * c.election_ticks * 3;
        let t0 = Instant::now();
        while self.shared().groups.home().leader() != target {
            if t0.elapsed() > limit {
                return Err(Status::deadline_exceeded(
                    "etcdserver: leader transfer timeout",
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Response::new(pb::MoveLeaderResponse {
            header: Some(self.header_now()),
        }))
    }

    async fn downgrade(
        &self,
        _req: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(Status::unimplemented("synod: downgrade is not supported"))
    }
}
