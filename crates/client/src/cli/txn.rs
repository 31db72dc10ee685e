//! The text form of a transaction, as `etcdctl txn` reads it:
//!
//! ```text
//! value("a") = "1"        <- compares, one per line, until an empty line
//! mod("b") > "0"
//!
//! put a 2                 <- operations if every compare holds
//! get a
//!
//! del b --prefix          <- operations otherwise
//! ```
//!
//! Compare targets: `value`/`val`, `mod`/`m`, `create`/`c`, `version`/`ver`,
//! `lease`; relations `=`, `!=`, `<`, `>`; operand always quoted. An
//! operation is a `put`, `get` or `del` line with the same flags as the
//! commands of those names.

use synod_proto::etcdserverpb::{compare, request_op, Compare, RequestOp};

use super::{DelCmd, GetCmd, PutCmd};
use crate::error::{Error, Result};

/// The operation lines of a transaction, parsed with the commands' own flags.
#[derive(clap::Parser, Debug)]
#[command(no_binary_name = false, disable_help_subcommand = true)]
pub(crate) enum OpLine {
    Put(PutCmd),
    Get(GetCmd),
    Del(DelCmd),
}

/// Splits a line into words; double quotes group words and `\"` escapes.
pub fn words(line: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err(bad(line, "dangling backslash")),
            },
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err(bad(line, "unterminated quote"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn bad(line: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("bad txn line {line:?}: {why}"))
}

/// Parses one compare line such as `value("a") = "1"`.
pub fn parse_compare(line: &str) -> Result<Compare> {
    let line = line.trim();
    let (target, rest) = line
        .split_once('(')
        .ok_or_else(|| bad(line, "expected TARGET(\"KEY\") OP \"VALUE\""))?;
    let target = match target.trim() {
        "value" | "val" => compare::CompareTarget::Value,
        "mod" | "m" => compare::CompareTarget::Mod,
        "create" | "c" => compare::CompareTarget::Create,
        "version" | "ver" => compare::CompareTarget::Version,
        "lease" => compare::CompareTarget::Lease,
        t => return Err(bad(line, &format!("unknown compare target {t:?}"))),
    };
    let (inside, rest) = rest
        .split_once(')')
        .ok_or_else(|| bad(line, "missing ')'"))?;
    let keys = words(inside.replace(',', " ").as_str())?;
    let (key, range_end) = match keys.as_slice() {
        [k] => (k.clone(), String::new()),
        [k, e] => (k.clone(), e.clone()),
        _ => return Err(bad(line, "expected one key (and an optional range end)")),
    };
    let rest = rest.trim();
    let (op, operand) = if let Some(r) = rest.strip_prefix("!=") {
        (compare::CompareResult::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (compare::CompareResult::Equal, r)
    } else if let Some(r) = rest.strip_prefix('<') {
        (compare::CompareResult::Less, r)
    } else if let Some(r) = rest.strip_prefix('>') {
        (compare::CompareResult::Greater, r)
    } else {
        return Err(bad(line, "expected one of = != < >"));
    };
    let operand = match words(operand)?.as_slice() {
        [v] => v.clone(),
        _ => return Err(bad(line, "expected one quoted operand")),
    };
    let num = || {
        operand
            .parse::<i64>()
            .map_err(|_| bad(line, "operand must be an integer for this target"))
    };
    let target_union = match target {
        compare::CompareTarget::Value => compare::TargetUnion::Value(operand.clone().into_bytes()),
        compare::CompareTarget::Mod => compare::TargetUnion::ModRevision(num()?),
        compare::CompareTarget::Create => compare::TargetUnion::CreateRevision(num()?),
        compare::CompareTarget::Version => compare::TargetUnion::Version(num()?),
        compare::CompareTarget::Lease => compare::TargetUnion::Lease(
            i64::from_str_radix(&operand, 16)
                .map_err(|_| bad(line, "lease operand must be a hex lease id"))?,
        ),
    };
    Ok(Compare {
        result: op as i32,
        target: target as i32,
        key: key.into_bytes(),
        target_union: Some(target_union),
        range_end: range_end.into_bytes(),
    })
}

/// Parses one operation line (`put K V [flags]`, `get K [flags]`, `del K [flags]`).
pub fn parse_op(line: &str) -> Result<RequestOp> {
    use clap::Parser;
    let w = words(line)?;
    let Some(cmd) = w.first() else {
        return Err(bad(line, "empty operation"));
    };
    let argv = std::iter::once("synod".to_string()).chain(w.iter().cloned());
    let clap_err = |e: clap::Error| bad(line, e.to_string().lines().next().unwrap_or(""));
    if !matches!(cmd.as_str(), "put" | "get" | "del") {
        return Err(bad(line, &format!("unknown operation {cmd:?}")));
    }
    let request = match OpLine::try_parse_from(argv).map_err(clap_err)? {
        OpLine::Put(p) => request_op::Request::RequestPut(p.request(None)?),
        OpLine::Get(g) => request_op::Request::RequestRange(g.request()?),
        OpLine::Del(d) => request_op::Request::RequestDeleteRange(d.request()?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// A transaction read from text: compares, success ops, failure ops.
pub fn parse_text(text: &str) -> Result<(Vec<Compare>, Vec<RequestOp>, Vec<RequestOp>)> {
    let mut section = 0;
    let mut cmps = Vec::new();
    let mut succ = Vec::new();
    let mut fail = Vec::new();
    for raw in text.lines() {
        let l = raw.trim();
        if l.is_empty() {
            section += 1;
            if section > 2 {
                break;
            }
            continue;
        }
        match section {
            0 => cmps.push(parse_compare(l)?),
            1 => succ.push(parse_op(l)?),
            _ => fail.push(parse_op(l)?),
        }
    }
    Ok((cmps, succ, fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_parse() {
        let c = parse_compare(r#"value("a") = "1""#).unwrap();
        assert_eq!(c.key, b"a");
        assert_eq!(c.result, compare::CompareResult::Equal as i32);
        assert_eq!(
            c.target_union,
            Some(compare::TargetUnion::Value(b"1".to_vec()))
        );
        let c = parse_compare(r#"mod("k y") > "10""#).unwrap();
        assert_eq!(c.key, b"k y");
        assert_eq!(c.target_union, Some(compare::TargetUnion::ModRevision(10)));
        let c = parse_compare(r#"c("k") != "0""#).unwrap();
        assert_eq!(c.result, compare::CompareResult::NotEqual as i32);
        assert!(parse_compare(r#"mod("k") > "x""#).is_err());
        assert!(parse_compare(r#"size("k") > "1""#).is_err());
        assert!(parse_compare(r#"value("k") ~ "1""#).is_err());
        assert!(parse_compare("nonsense").is_err());
    }

    #[test]
    fn sections_parse() {
        let (c, s, f) =
            parse_text("value(\"a\") = \"1\"\n\nput a 2\nget a --prefix\n\ndel b\n\n").unwrap();
        assert_eq!((c.len(), s.len(), f.len()), (1, 2, 1));
        assert!(matches!(
            s[1].request,
            Some(request_op::Request::RequestRange(ref r)) if r.range_end == b"b"
        ));
        assert!(parse_text("\n\nfly a\n").is_err());
        assert!(parse_text("\n\nput\n").is_err());
    }

    #[test]
    fn words_split_quotes() {
        assert_eq!(
            words(r#"put "a b" "c \"d\"""#).unwrap(),
            vec!["put", "a b", r#"c "d""#]
        );
        assert_eq!(words(r#"put a """#).unwrap(), vec!["put", "a", ""]);
        assert!(words(r#"put "a"#).is_err());
    }
}
