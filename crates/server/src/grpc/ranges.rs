//! synod's own `synodpb.Ranges` service: the ranges of the keyspace as the
//! member asked hosts them (`synod ranges`). etcd has no such call; a
//! client talking to etcd gets `Unimplemented` and knows it sees one range.

use std::time::Duration;

use synod_proto::synodpb as pb;
use synod_proto::synodpb::ranges_server::Ranges;
use tonic::{Request, Response, Status};

use super::Api;
use crate::inbox::Query;

/// How long writes are counted for a range's ops/s.
const SAMPLE: Duration = Duration::from_millis(250);

#[tonic::async_trait]
impl Ranges for Api {
    async fn list(
        &self,
        req: Request<pb::ListRangesRequest>,
    ) -> Result<Response<pb::ListRangesResponse>, Status> {
        // Operators' view, like member and maintenance calls.
        self.check_admin(&req).await?;
        let shared = self.shared();
        let applied = |shard| shared.groups.get(shard).map_or(0, |g| g.applied());
        let rows = self.query(Query::Ranges).await?;
        let before: Vec<u64> = rows.iter().map(|r| applied(r.shard)).collect();
        tokio::time::sleep(SAMPLE).await;
        let ranges = rows
            .into_iter()
            .zip(before)
            .map(|(r, before)| {
                let path = crate::layout::store_path(&shared.cfg.data_dir, r.shard);
                let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                let writes = applied(r.shard).saturating_sub(before);
                pb::RangeInfo {
                    id: r.shard,
                    start: r.range.start,
                    end: r.range.end,
                    replicas: r
                        .replicas
                        .into_iter()
                        .map(|(node, learner)| pb::Replica { node, learner })
                        .collect(),
                    leader: r.leader,
                    keys: r.keys,
                    bytes,
                    ops_per_sec: writes as f64 / SAMPLE.as_secs_f64(),
                    revision: r.revision,
                }
            })
            .collect();
        Ok(Response::new(pb::ListRangesResponse { ranges }))
    }
}
