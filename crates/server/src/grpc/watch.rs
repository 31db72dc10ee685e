//! The Watch service: one bidirectional stream carries creates, cancels and
//! progress requests in, and every watcher's responses out (through one
//! bounded queue; see [`crate::watch`]).

use std::collections::BTreeSet;
use std::pin::Pin;

use synod_proto::etcdserverpb as pb;
use synod_proto::etcdserverpb::watch_server::Watch;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::Api;
use crate::convert::client_status;
use crate::inbox::Query;
use crate::watch::{plain, WatchOut, Watcher};

/// Responses queued per watch stream.
const STREAM_QUEUE: usize = 256;
/// Most watchers on one stream.
const MAX_PER_STREAM: usize = 10_000;

struct StreamState {
    api: Api,
    /// Who opened the stream: each create is checked as that sender.
    creds: super::Credentials,
    stream: u64,
    tx: mpsc::Sender<WatchOut>,
    ids: BTreeSet<i64>,
    next_id: i64,
}

impl StreamState {
    async fn create(&mut self, c: pb::WatchCreateRequest) -> Result<(), ()> {
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.ids.contains(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        // A watcher lives beside one group's store: a range over several
        // groups is refused, as the node refuses such requests.
        let groups = &self.api.shared().groups;
        let group = match groups.for_span(&c.key, &c.range_end) {
            Ok(g) => g.shard,
            Err(e) => {
                let mut r = plain(self.api.header_now(), id);
                r.created = true;
                r.canceled = true;
                r.cancel_reason = client_status(&e).message().to_string();
                return self.tx.send(Ok(r)).await.map_err(|_| ());
            }
        };
        let header_now = || {
            let g = self.api.shared().groups.get(group);
            g.map_or_else(|| self.api.header_now(), |g| self.api.header_now_in(&g))
        };
        if self.ids.contains(&id) || self.ids.len() >= MAX_PER_STREAM || id < 0 {
            let mut r = plain(header_now(), id);
            r.created = true;
            r.canceled = true;
            r.cancel_reason = if id < 0 || self.ids.contains(&id) {
                "etcdserver: duplicate watch ID".into()
            } else {
                "etcdserver: too many watchers on this stream".into()
            };
            return self.tx.send(Ok(r)).await.map_err(|_| ());
        }
        // etcd's `isWatchPermitted`: the sender may read every key watched
        // (an unknown token may read nothing).
        let allowed = match self.api.resolve(self.creds.clone()).await {
            Ok(info) => {
                self.api
                    .may_read(info, c.key.clone(), c.range_end.clone())
                    .await
            }
            Err(_) => false,
        };
        if !allowed {
            let mut r = plain(header_now(), id);
            r.created = true;
            r.canceled = true;
            r.cancel_reason = "etcdserver: permission denied".into();
            return self.tx.send(Ok(r)).await.map_err(|_| ());
        }
        self.ids.insert(id);
        let mut created = plain(header_now(), id);
        created.created = true;
        self.tx.send(Ok(created)).await.map_err(|_| ())?;
        let no_put = c
            .filters
            .contains(&(pb::watch_create_request::FilterType::Noput as i32));
        let no_delete = c
            .filters
            .contains(&(pb::watch_create_request::FilterType::Nodelete as i32));
        let fragment = if c.fragment {
            self.api.shared().cfg.max_request_bytes
        } else {
            0
        };
        let mut w = Watcher::new(
            c.key,
            c.range_end,
            c.start_revision,
            c.prev_kv,
            no_put,
            no_delete,
            fragment,
            self.tx.clone(),
        );
        if c.progress_notify {
            w.progress_every = Some(self.api.shared().cfg.watch_progress_notify_interval);
        }
        let stream = self.stream;
        let added = self
            .api
            .query(move |tx| Query::AddWatch {
                shard: group,
                stream,
                id,
                watcher: Box::new(w),
                tx,
            })
            .await
            .unwrap_or(false);
        if !added {
            self.ids.remove(&id);
            let mut r = plain(header_now(), id);
            r.canceled = true;
            r.cancel_reason = "etcdserver: too many watchers".into();
            return self.tx.send(Ok(r)).await.map_err(|_| ());
        }
        Ok(())
    }

    async fn cancel(&mut self, id: i64) -> Result<(), ()> {
        let stream = self.stream;
        let existed = self
            .api
            .query(move |tx| Query::CancelWatch { stream, id, tx })
            .await
            .unwrap_or(false);
        self.ids.remove(&id);
        if existed {
            let mut r = plain(self.api.header_now(), id);
            r.canceled = true;
            return self.tx.send(Ok(r)).await.map_err(|_| ());
        }
        Ok(())
    }

    async fn progress(&mut self) -> Result<(), ()> {
        let stream = self.stream;
        let rev = self
            .api
            .query(move |tx| Query::WatchProgress { stream, tx })
            .await
            .ok()
            .flatten();
        if let Some((shard, rev)) = rev {
            let groups = &self.api.shared().groups;
            let header = groups
                .get(shard)
                .map_or_else(|| self.api.header(rev), |g| self.api.header_in(&g, rev));
            // Not tied to one watcher: etcd's "invalid watch id" (-1).
            return self.tx.send(Ok(plain(header, -1))).await.map_err(|_| ());
        }
        Ok(())
    }
}

impl Api {
    /// Serves one watch stream: requests from `inbound`, responses on the
    /// returned queue. With `hold_open` (the JSON gateway, whose request body
    /// ends long before the client stops listening) the end of `inbound`
    /// keeps the watchers running until the reader goes away, and a request
    /// that cannot be read is reported on the queue before it closes.
    pub fn watch_stream<S>(
        &self,
        mut inbound: S,
        hold_open: bool,
        creds: super::Credentials,
    ) -> mpsc::Receiver<WatchOut>
    where
        S: Stream<Item = Result<pb::WatchRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let mut st = StreamState {
            api: self.clone(),
            creds,
            stream: self.next_stream(),
            tx,
            ids: BTreeSet::new(),
            next_id: 0,
        };
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = inbound.next() => m,
                    _ = st.tx.closed() => break,
                };
                let r = match msg {
                    Some(Ok(pb::WatchRequest {
                        request_union: Some(u),
                    })) => match u {
                        pb::watch_request::RequestUnion::CreateRequest(c) => st.create(c).await,
                        pb::watch_request::RequestUnion::CancelRequest(c) => {
                            st.cancel(c.watch_id).await
                        }
                        pb::watch_request::RequestUnion::ProgressRequest(_) => st.progress().await,
                    },
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) if hold_open => {
                        let _ = st.tx.send(Err(e)).await;
                        break;
                    }
                    None if hold_open => {
                        st.tx.closed().await;
                        break;
                    }
                    Some(Err(_)) | None => break,
                };
                if r.is_err() {
                    break;
                }
            }
            let stream = st.stream;
            let _ = st
                .api
                .query(move |tx| Query::CancelStream { stream, tx })
                .await;
        });
        rx
    }
}

#[tonic::async_trait]
impl Watch for Api {
    type WatchStream = Pin<Box<dyn Stream<Item = WatchOut> + Send + 'static>>;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.check_leader(&req)?;
        let creds = super::Credentials::of(&req);
        let rx = self.watch_stream(req.into_inner(), false, creds);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use synod_node::KeyRange;

    use super::*;
    use crate::shared::Shared;

    #[tokio::test]
    async fn a_watch_over_two_groups_is_created_and_cancelled_with_the_cross_shard_message() {
        let cfg = crate::config::RawConfig::default().validate().unwrap();
        let ranges = [(KeyRange::new("", "m"), 1), (KeyRange::new("m", ""), 2)];
        let shared = Arc::new(Shared::new(cfg, false, &ranges));
        shared.groups.get(1).unwrap().publish(0, 3, 11);
        // No actor: the refusal comes before anything is asked of it.
        let (inbox, _actor) = mpsc::channel(16);
        let api = Api::new(inbox, shared);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: b"a".to_vec(),
                    range_end: b"z".to_vec(),
                    watch_id: 5,
                    ..Default::default()
                },
            )),
        };
        let mut rx = api.watch_stream(
            tokio_stream::iter(vec![Ok(create)]),
            true,
            super::super::Credentials::default(),
        );
        let r = rx.recv().await.unwrap().unwrap();
        assert!(r.created && r.canceled, "{r:?}");
        assert_eq!(r.watch_id, 5);
        assert_eq!(
            r.cancel_reason,
            "synod: the request spans several key ranges"
        );
        let h = r.header.unwrap();
        assert_eq!(
            (h.revision, h.raft_term),
            (11, 3),
            "the home group's header"
        );
    }
}
