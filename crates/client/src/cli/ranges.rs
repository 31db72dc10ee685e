//! `synod ranges`: every range of the keyspace, with its replicas, leader,
//! keys, bytes and writes per second. Against etcd (one Raft group, no
//! such call) it shows the one range etcd has, from Status and the member
//! list.

use clap::Args;
use synod_proto::etcdserverpb::RangeRequest;
use synod_proto::synodpb::{RangeInfo, Replica};

use super::{emit, OutArgs, Sink};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output::{self, Format, Json};

/// `ranges`.
#[derive(Args, Debug)]
pub struct RangesCmd {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

const HEADERS: [&str; 8] = [
    "ID", "START", "END", "REPLICAS", "LEADER", "KEYS", "BYTES", "OPS/S",
];

/// Runs `ranges`.
pub(crate) async fn ranges(client: &Client, fmt: Format, sink: Sink<'_>) -> Result<u8> {
    let list = match client.ranges().await {
        Ok(r) => r.ranges,
        Err(Error::Status(s)) if s.code() == tonic::Code::Unimplemented => {
            vec![one_range(client).await?]
        }
        Err(e) => return Err(e),
    };
    emit(sink, &render(&list, fmt))?;
    Ok(0)
}

/// The one range of a server without ranges (etcd).
async fn one_range(client: &Client) -> Result<RangeInfo> {
    let status = client
        .status_of(0, std::time::Duration::from_secs(5))
        .await?;
    let members = client.member_list().await?.members;
    let name = |id: u64| {
        members
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| format!("{id:x}"), |m| m.name.clone())
    };
    let count = client
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            count_only: true,
            ..Default::default()
        })
        .await?;
    Ok(RangeInfo {
        id: 1,
        start: Vec::new(),
        end: Vec::new(),
        replicas: members
            .iter()
            .map(|m| Replica {
                node: m.name.clone(),
                learner: m.is_learner,
            })
            .collect(),
        leader: if status.leader == 0 {
            String::new()
        } else {
            name(status.leader)
        },
        keys: u64::try_from(count.count).unwrap_or(0),
        bytes: u64::try_from(status.db_size).unwrap_or(0),
        ops_per_sec: 0.0,
        revision: status.header.map_or(0, |h| h.revision),
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn replicas(r: &RangeInfo) -> String {
    r.replicas
        .iter()
        .map(|x| {
            if x.learner {
                format!("{} (learner)", x.node)
            } else {
                x.node.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The output of `ranges` in format `fmt` (INTERFACES.md's JSON shape).
pub(crate) fn render(list: &[RangeInfo], fmt: Format) -> Vec<u8> {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                format!("{:x}", r.id),
                text(&r.start),
                text(&r.end),
                replicas(r),
                r.leader.clone(),
                r.keys.to_string(),
                r.bytes.to_string(),
                format!("{:.0}", r.ops_per_sec),
            ]
        })
        .collect();
    match fmt {
        Format::Table => output::table(&HEADERS, &rows).into_bytes(),
        Format::Simple => rows
            .iter()
            .map(|r| r.join(", ") + "\n")
            .collect::<String>()
            .into_bytes(),
        Format::Json => {
            let ranges = list
                .iter()
                .map(|r| {
                    let mut o = Json::obj();
                    o.insert("id", r.id);
                    o.insert("start", text(&r.start));
                    o.insert("end", text(&r.end));
                    o.insert("start_b64", output::b64(&r.start));
                    o.insert("end_b64", output::b64(&r.end));
                    let reps: Vec<Json> = r
                        .replicas
                        .iter()
                        .map(|x| {
                            let mut j = Json::obj();
                            j.insert("node", x.node.as_str());
                            j.insert("role", if x.learner { "learner" } else { "voter" });
                            j
                        })
                        .collect();
                    o.insert("replicas", reps);
                    o.insert(
                        "leader",
                        if r.leader.is_empty() {
                            Json::Null
                        } else {
                            Json::Str(r.leader.clone())
                        },
                    );
                    o.insert("keys", r.keys);
                    o.insert("bytes", r.bytes);
                    o.insert("ops_per_sec", r.ops_per_sec.round() as u64);
                    o
                })
                .collect();
            let mut top = Json::obj();
            top.insert("ranges", Json::Arr(ranges));
            output::json_line(&top)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Vec<RangeInfo> {
        vec![
            RangeInfo {
                id: 1,
                end: b"m".to_vec(),
                replicas: vec![
                    Replica {
                        node: "n1".into(),
                        learner: false,
                    },
                    Replica {
                        node: "n2".into(),
                        learner: true,
                    },
                ],
                leader: "n1".into(),
                keys: 3,
                bytes: 4096,
                ops_per_sec: 12.4,
                ..Default::default()
            },
            RangeInfo {
                id: 0xab,
                start: b"m".to_vec(),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn json_takes_the_documented_shape() {
        let out = String::from_utf8(render(&two(), Format::Json)).unwrap();
        assert_eq!(
            out.trim_end(),
            r#"{"ranges":[{"id":1,"start":"","end":"m","start_b64":"","end_b64":"bQ==","replicas":[{"node":"n1","role":"voter"},{"node":"n2","role":"learner"}],"leader":"n1","keys":3,"bytes":4096,"ops_per_sec":12},{"id":171,"start":"m","end":"","start_b64":"bQ==","end_b64":"","replicas":[],"leader":null,"keys":0,"bytes":0,"ops_per_sec":0}]}"#
        );
    }

    #[test]
    fn simple_and_table_list_one_row_per_range() {
        let simple = String::from_utf8(render(&two(), Format::Simple)).unwrap();
        assert_eq!(
            simple,
            "1, , m, n1 n2 (learner), n1, 3, 4096, 12\nab, m, , , , 0, 0, 0\n"
        );
        let table = String::from_utf8(render(&two(), Format::Table)).unwrap();
        assert!(
            table.contains("OPS/S") && table.contains("n1 n2 (learner)"),
            "{table}"
        );
    }
}
