//! The key-value commands: `put`, `get`, `del` and `txn` — their flags,
//! the etcd requests those flags describe (with etcdctl's rules for key
//! ranges, which `watch` shares), and running them against a cluster and
//! printing the responses. The text form `txn` reads lives in [`super::txn`].

use std::io::Read;

use clap::Args;
use synod_proto::etcdserverpb::{
    range_request, request_op, response_op, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};

use super::lease::parse_lease;
use super::txn::{parse_compare, parse_op, parse_text};
use super::{emit, OutArgs, Sink};
use crate::client::{prefix_end, Client};
use crate::error::{Error, Result};
use crate::output::{self, Format};

/// `put`.
#[derive(Args, Debug, Clone)]
pub struct PutCmd {
    /// The key.
    pub key: String,
    /// The value (read from stdin when omitted).
    pub value: Option<String>,
    /// Attach the key to this lease (hex id, as lease grant prints it).
    #[arg(long)]
    pub lease: Option<String>,
    /// Print the previous key-value pair.
    #[arg(long)]
    pub prev_kv: bool,
    /// Keep the current value (update the lease only).
    #[arg(long)]
    pub ignore_value: bool,
    /// Keep the current lease.
    #[arg(long)]
    pub ignore_lease: bool,
    /// Fenced write: apply it only while the lock held by this key is still
    /// held under --fence-token (its create revision); refused otherwise.
    #[arg(long, requires = "fence_token")]
    pub fence_key: Option<String>,
    /// The fencing token (`synod lock --fenced` exports it as SYNOD_FENCING_TOKEN).
    #[arg(long, requires = "fence_key")]
    pub fence_token: Option<i64>,
    /// Fenced write with the lock key and token from the environment
    /// (SYNOD_LOCK_KEY, SYNOD_FENCING_TOKEN), as inside `synod lock --fenced`.
    #[arg(long, conflicts_with_all = ["fence_key", "fence_token"])]
    pub fenced: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

impl PutCmd {
    /// The request; `stdin_value` is used when no value was given.
    pub fn request(&self, stdin_value: Option<Vec<u8>>) -> Result<PutRequest> {
        let value = match (&self.value, stdin_value) {
            (Some(v), _) => v.clone().into_bytes(),
            (None, Some(v)) => v,
            (None, None) if self.ignore_value => Vec::new(),
            (None, None) => {
                return Err(Error::InvalidArgument("put needs a key and a value".into()))
            }
        };
        if self.key.is_empty() {
            return Err(Error::InvalidArgument("put needs a non-empty key".into()));
        }
        Ok(PutRequest {
            key: self.key.clone().into_bytes(),
            value,
            lease: self
                .lease
                .as_deref()
                .map(parse_lease)
                .transpose()?
                .unwrap_or(0),
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        })
    }
}

/// Sort target names accepted by `--sort-by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[allow(missing_docs)]
#[clap(rename_all = "UPPER")]
pub enum SortBy {
    Create,
    Key,
    Modify,
    Value,
    Version,
}

/// Sort order names accepted by `--order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[allow(missing_docs)]
#[clap(rename_all = "UPPER")]
pub enum Order {
    Ascend,
    Descend,
}

/// `get`.
#[derive(Args, Debug, Clone)]
pub struct GetCmd {
    /// The key (or the start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    pub range_end: Option<String>,
    /// Every key starting with KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Every key from KEY on (byte order).
    #[arg(long)]
    pub from_key: bool,
    /// Read at this revision (0: latest).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// At most this many keys (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Sort by this field.
    #[arg(long, value_enum, ignore_case = true)]
    pub sort_by: Option<SortBy>,
    /// Sort order (ASCEND by default when sorting).
    #[arg(long, value_enum, ignore_case = true)]
    pub order: Option<Order>,
    /// Keys only.
    #[arg(long)]
    pub keys_only: bool,
    /// The number of keys only.
    #[arg(long)]
    pub count_only: bool,
    /// Values only (simple output).
    #[arg(long)]
    pub print_value_only: bool,
    /// Linearizable (l) or serializable (s).
    #[arg(long, default_value = "l", value_parser = ["l", "s"])]
    pub consistency: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// The key and range end selected by a key, an optional end and the
/// `--prefix`/`--from-key` flags (etcdctl's rules).
pub(crate) fn key_range(
    key: &str,
    end: &Option<String>,
    prefix: bool,
    from_key: bool,
) -> Result<(Vec<u8>, Vec<u8>)> {
    if prefix && from_key {
        return Err(Error::InvalidArgument(
            "--prefix and --from-key cannot be used together".into(),
        ));
    }
    if (prefix || from_key) && end.is_some() {
        return Err(Error::InvalidArgument(
            "a range end cannot be given with --prefix or --from-key".into(),
        ));
    }
    let mut k = key.as_bytes().to_vec();
    let e = if prefix {
        if k.is_empty() {
            k = vec![0];
            vec![0]
        } else {
            prefix_end(&k)
        }
    } else if from_key {
        if k.is_empty() {
            k = vec![0];
        }
        vec![0]
    } else {
        end.clone().unwrap_or_default().into_bytes()
    };
    if k.is_empty() {
        return Err(Error::InvalidArgument("a key is required".into()));
    }
    Ok((k, e))
}

impl GetCmd {
    /// The Range request these flags describe.
    pub fn request(&self) -> Result<RangeRequest> {
        let (key, range_end) = key_range(&self.key, &self.range_end, self.prefix, self.from_key)?;
        let sort_target = match self.sort_by {
            None | Some(SortBy::Key) => range_request::SortTarget::Key,
            Some(SortBy::Create) => range_request::SortTarget::Create,
            Some(SortBy::Modify) => range_request::SortTarget::Mod,
            Some(SortBy::Value) => range_request::SortTarget::Value,
            Some(SortBy::Version) => range_request::SortTarget::Version,
        };
        let sort_order = match (self.order, self.sort_by) {
            (Some(Order::Descend), _) => range_request::SortOrder::Descend,
            (Some(Order::Ascend), _) | (None, Some(_)) => range_request::SortOrder::Ascend,
            (None, None) => range_request::SortOrder::None,
        };
        if self.limit < 0 || self.rev < 0 {
            return Err(Error::InvalidArgument(
                "--limit and --rev must not be negative".into(),
            ));
        }
        Ok(RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.rev,
            sort_order: sort_order as i32,
            sort_target: sort_target as i32,
            serializable: self.consistency == "s",
            keys_only: self.keys_only,
            count_only: self.count_only,
            ..Default::default()
        })
    }
}

/// `del`.
#[derive(Args, Debug, Clone)]
pub struct DelCmd {
    /// The key (or the start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    pub range_end: Option<String>,
    /// Every key starting with KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Every key from KEY on.
    #[arg(long)]
    pub from_key: bool,
    /// Print the deleted pairs.
    #[arg(long)]
    pub prev_kv: bool,
    /// Fenced write: apply it only while the lock held by this key is still
    /// held under --fence-token (its create revision); refused otherwise.
    #[arg(long, requires = "fence_token")]
    pub fence_key: Option<String>,
    /// The fencing token (`synod lock --fenced` exports it as SYNOD_FENCING_TOKEN).
    #[arg(long, requires = "fence_key")]
    pub fence_token: Option<i64>,
    /// Fenced write with the lock key and token from the environment
    /// (SYNOD_LOCK_KEY, SYNOD_FENCING_TOKEN), as inside `synod lock --fenced`.
    #[arg(long, conflicts_with_all = ["fence_key", "fence_token"])]
    pub fenced: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

impl DelCmd {
    /// The DeleteRange request these flags describe.
    pub fn request(&self) -> Result<DeleteRangeRequest> {
        let (key, range_end) = key_range(&self.key, &self.range_end, self.prefix, self.from_key)?;
        Ok(DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        })
    }
}

/// `txn`.
#[derive(Args, Debug)]
pub struct TxnCmd {
    /// Prompt for each section on stderr (reading from stdin as usual).
    #[arg(short, long)]
    pub interactive: bool,
    /// A compare, e.g. 'value("k") = "v"' (repeatable; flag form instead of stdin).
    #[arg(long = "compare")]
    pub compares: Vec<String>,
    /// An operation run when every compare holds, e.g. 'put k v' (repeatable).
    #[arg(long = "success")]
    pub success: Vec<String>,
    /// An operation run otherwise, e.g. 'get k' (repeatable).
    #[arg(long = "failure")]
    pub failure: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: OutArgs,
}

/// Runs `put` (the value read from stdin when none was given).
pub(crate) async fn put(client: &Client, c: PutCmd, fmt: Format, sink: Sink<'_>) -> Result<u8> {
    let stdin_value = if c.value.is_none() && !c.ignore_value {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Some(v)
    } else {
        None
    };
    let req = c.request(stdin_value)?;
    let r = match fence(&c.fence_key, c.fence_token, c.fenced)? {
        None => client.put(req).await?,
        Some(f) => {
            fenced_op(
                client,
                f,
                request_op::Request::RequestPut(req),
                |r| match r {
                    response_op::Response::ResponsePut(r) => Some(r),
                    _ => None,
                },
            )
            .await?
        }
    };
    emit(
        sink,
        &match fmt {
            Format::Json => output::json_line(&output::put_json(&r)),
            _ => output::put_simple(&r),
        },
    )?;
    Ok(0)
}

/// Runs `get`.
pub(crate) async fn get(client: &Client, c: GetCmd, fmt: Format, sink: Sink<'_>) -> Result<u8> {
    let r = client.range(c.request()?).await?;
    emit(
        sink,
        &match fmt {
            Format::Json => output::json_line(&output::range_json(&r)),
            Format::Table => {
                let rows: Vec<Vec<String>> = r
                    .kvs
                    .iter()
                    .map(|kv| {
                        vec![
                            output::text(&kv.key),
                            output::text(&kv.value),
                            kv.create_revision.to_string(),
                            kv.mod_revision.to_string(),
                            kv.version.to_string(),
                            if kv.lease == 0 {
                                String::new()
                            } else {
                                output::lease_hex(kv.lease)
                            },
                        ]
                    })
                    .collect();
                output::table(
                    &["KEY", "VALUE", "CREATE", "MOD", "VERSION", "LEASE"],
                    &rows,
                )
                .into_bytes()
            }
            Format::Simple if c.count_only => format!("{}\n", r.count).into_bytes(),
            Format::Simple if c.print_value_only => {
                let mut o = Vec::new();
                for kv in &r.kvs {
                    o.extend_from_slice(&kv.value);
                    o.push(b'\n');
                }
                o
            }
            Format::Simple => {
                let mut o = Vec::new();
                output::kvs_simple(&mut o, &r.kvs, c.keys_only);
                o
            }
        },
    )?;
    Ok(0)
}

/// Runs `del`.
pub(crate) async fn del(client: &Client, c: DelCmd, fmt: Format, sink: Sink<'_>) -> Result<u8> {
    let req = c.request()?;
    let r = match fence(&c.fence_key, c.fence_token, c.fenced)? {
        None => client.delete_range(req).await?,
        Some(f) => {
            fenced_op(
                client,
                f,
                request_op::Request::RequestDeleteRange(req),
                |r| match r {
                    response_op::Response::ResponseDeleteRange(r) => Some(r),
                    _ => None,
                },
            )
            .await?
        }
    };
    emit(
        sink,
        &match fmt {
            Format::Json => output::json_line(&output::delete_json(&r)),
            _ => output::delete_simple(&r),
        },
    )?;
    Ok(0)
}

/// The lock key and token a write is fenced by, from its flags or (with
/// `--fenced`) from the environment `synod lock --fenced` sets.
fn fence(
    key: &Option<String>,
    token: Option<i64>,
    from_env: bool,
) -> Result<Option<(Vec<u8>, i64)>> {
    if from_env {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                Error::InvalidArgument(format!(
                    "--fenced takes the lock from {name}, which is not set (run inside `synod lock --fenced NAME -- CMD`)"
                ))
            })
        };
        let key = var("SYNOD_LOCK_KEY")?;
        let token = var("SYNOD_FENCING_TOKEN")?;
        let token = token.parse().map_err(|_| {
            Error::InvalidArgument(format!("SYNOD_FENCING_TOKEN is not a revision: {token:?}"))
        })?;
        return Ok(Some((key.into_bytes(), token)));
    }
    Ok(match (key, token) {
        (Some(k), Some(t)) => Some((k.clone().into_bytes(), t)),
        _ => None,
    })
}

/// Runs `request` fenced by `f` and hands back its response, as `pick`
/// takes it out of the Txn's.
async fn fenced_op<R>(
    client: &Client,
    f: (Vec<u8>, i64),
    request: request_op::Request,
    pick: fn(response_op::Response) -> Option<R>,
) -> Result<R> {
    let op = RequestOp {
        request: Some(request),
    };
    let resp = crate::concurrency::fenced(client, &f.0, f.1, vec![op]).await?;
    resp.responses
        .into_iter()
        .next()
        .and_then(|r| r.response)
        .and_then(pick)
        .ok_or_else(|| Error::StreamClosed("a fenced txn answered without its response".into()))
}

/// Runs `txn`, from its flags or from etcdctl's text form on stdin.
pub(crate) async fn txn(client: &Client, c: TxnCmd, fmt: Format, sink: Sink<'_>) -> Result<u8> {
    let (compare, success, failure) = if c.compares.is_empty()
        && c.success.is_empty()
        && c.failure.is_empty()
    {
        if c.interactive {
            eprintln!("compares (one per line, empty line to finish), then success operations, then failure operations:");
        }
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        parse_text(&text)?
    } else {
        (
            c.compares
                .iter()
                .map(|l| parse_compare(l))
                .collect::<Result<_>>()?,
            c.success
                .iter()
                .map(|l| parse_op(l))
                .collect::<Result<_>>()?,
            c.failure
                .iter()
                .map(|l| parse_op(l))
                .collect::<Result<_>>()?,
        )
    };
    let r = client
        .txn(TxnRequest {
            compare,
            success,
            failure,
        })
        .await?;
    emit(
        sink,
        &match fmt {
            Format::Json => output::json_line(&output::txn_json(&r)),
            _ => output::txn_simple(&r),
        },
    )?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_etcdctl() {
        assert_eq!(
            key_range("foo", &None, true, false).unwrap(),
            (b"foo".to_vec(), b"fop".to_vec())
        );
        assert_eq!(
            key_range("", &None, true, false).unwrap(),
            (vec![0], vec![0])
        );
        assert_eq!(
            key_range("a", &None, false, true).unwrap(),
            (b"a".to_vec(), vec![0])
        );
        assert_eq!(
            key_range("a", &Some("c".into()), false, false).unwrap(),
            (b"a".to_vec(), b"c".to_vec())
        );
        assert!(key_range("a", &None, true, true).is_err());
        assert!(key_range("", &None, false, false).is_err());
        assert!(key_range("a", &Some("c".into()), true, false).is_err());
    }
}
