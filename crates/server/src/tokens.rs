//! The server's side of authentication: what the deterministic core must
//! not do because it needs randomness, a clock or slow hashing.
//!
//! * `--auth-token`: `simple` (etcd's default) or
//!   `jwt,pub-key=FILE,priv-key=FILE,sign-method=ALG,ttl=DURATION`
//!   ([`TokenSpec`], parsed and its key files read when the flags are
//!   validated).
//! * Simple tokens: a random part drawn here (16 letters, as etcd's
//!   `GenTokenPrefix`), proposed with the user name; the state machine
//!   appends the revision and remembers the token on every member. Each
//!   member expires a token it has not seen used for `--auth-token-ttl`
//!   seconds (etcd's `simpleTokenTTLKeeper`, which also restarts a token's
//!   time on every use).
//! * JWT: signed here with the claims etcd uses (`username`, `revision`,
//!   `exp`) and checked here; nothing is replicated.
//! * Passwords: bcrypt at `--bcrypt-cost`, hashed before a proposal (the
//!   log never holds a password) and checked before a token is issued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use synod_kv::AuthInfo;
use tonic::Status;

/// etcd's message for a token it does not know or that expired.
pub const INVALID_TOKEN: &str = "etcdserver: invalid auth token";
/// etcd's default bcrypt cost.
pub const DEFAULT_BCRYPT_COST: u32 = 10;
/// etcd's default `--auth-token-ttl`, in seconds.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 300;
/// Longest password accepted, in bytes (bcrypt reads at most 72).
pub const MAX_PASSWORD_BYTES: usize = 72;
/// Longest token looked at, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Most simple tokens whose last use a member remembers.
const MAX_SEEN: usize = 2 * synod_kv::MAX_TOKENS;

/// Which tokens the server hands out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSpec {
    /// Random strings remembered by every member.
    Simple,
    /// Signed JSON web tokens.
    Jwt(JwtSpec),
}

/// `--auth-token jwt,…` with its key files read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSpec {
    /// `sign-method`.
    pub method: String,
    /// The public key (PEM), or the secret for the HS methods.
    pub pub_key: Vec<u8>,
    /// The private key (PEM), or the secret for the HS methods; without
    /// it tokens are checked but none is issued.
    pub priv_key: Option<Vec<u8>>,
    /// `ttl` (etcd's default 5 minutes).
    pub ttl: Duration,
}

/// The authentication settings of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// `--auth-token`.
    pub token: TokenSpec,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// `--auth-token-ttl`.
    pub token_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token: TokenSpec::Simple,
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            token_ttl: Duration::from_secs(DEFAULT_TOKEN_TTL_SECS),
        }
    }
}

impl AuthConfig {
    /// Reads `--auth-token`, `--bcrypt-cost` and `--auth-token-ttl` as etcd
    /// does; key files are read now, so a bad one stops the start.
    pub fn parse(token: &str, bcrypt_cost: u32, ttl_secs: u64) -> Result<AuthConfig, String> {
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(format!("--bcrypt-cost {bcrypt_cost} is not in 4..=31"));
        }
        if ttl_secs == 0 {
            return Err("--auth-token-ttl must be at least 1 second".into());
        }
        let mut parts = token.split(',');
        let spec = match parts.next().unwrap_or("") {
            "" | "simple" => {
                if parts.next().is_some() {
                    return Err("--auth-token simple takes no options".into());
                }
                TokenSpec::Simple
            }
            "jwt" => TokenSpec::Jwt(parse_jwt(parts)?),
            other => return Err(format!("--auth-token: unknown token type {other:?}")),
        };
        let cfg = AuthConfig {
            token: spec,
            bcrypt_cost,
            token_ttl: Duration::from_secs(ttl_secs),
        };
        // Keys that do not load are refused now rather than at the first login.
        Tokens::new(&cfg)?;
        Ok(cfg)
    }
}

fn parse_jwt<'a>(opts: impl Iterator<Item = &'a str>) -> Result<JwtSpec, String> {
    let mut method = None;
    let mut pub_path = None;
    let mut priv_path = None;
    let mut ttl = Duration::from_secs(300);
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| format!("--auth-token: option {o:?} is not key=value"))?;
        match k {
            "sign-method" => method = Some(v.to_string()),
            "pub-key" => pub_path = Some(v.to_string()),
            "priv-key" => priv_path = Some(v.to_string()),
            "ttl" => {
                ttl = crate::config::parse_duration(v)
                    .map_err(|e| format!("--auth-token ttl: {e}"))?
            }
            _ => return Err(format!("--auth-token: unknown jwt option {k:?}")),
        }
    }
    let method = method.ok_or("--auth-token jwt needs sign-method")?;
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("--auth-token: reading {p}: {e}"));
    let priv_key = priv_path.as_deref().map(read).transpose()?;
    let pub_key = match (&pub_path, &priv_key) {
        (Some(p), _) => read(p)?,
        // An HMAC secret is both.
        (None, Some(k)) if method.starts_with("HS") => k.clone(),
        _ => return Err("--auth-token jwt needs pub-key".into()),
    };
    if ttl.is_zero() {
        return Err("--auth-token jwt ttl must be positive".into());
    }
    Ok(JwtSpec {
        method,
        pub_key,
        priv_key,
        ttl,
    })
}

/// The claims etcd puts in its tokens.
#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

struct Jwt {
    alg: jsonwebtoken::Algorithm,
    enc: Option<jsonwebtoken::EncodingKey>,
    dec: jsonwebtoken::DecodingKey,
    ttl: Duration,
}

/// When a simple token was last used here.
struct Seen {
    last: Instant,
    expired: bool,
}

/// The token provider of one server.
pub struct Tokens {
    jwt: Option<Jwt>,
    ttl: Duration,
    seen: Mutex<HashMap<String, Seen>>,
}

impl Tokens {
    /// The provider `cfg` describes.
    pub fn new(cfg: &AuthConfig) -> Result<Tokens, String> {
        let jwt = match &cfg.token {
            TokenSpec::Simple => None,
            TokenSpec::Jwt(j) => Some(jwt_keys(j)?),
        };
        Ok(Tokens {
            jwt,
            ttl: cfg.token_ttl,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Whether tokens are JWTs (else simple).
    pub fn is_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// A signed token for `user` checked at auth revision `revision`.
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, Status> {
        let jwt = self.jwt.as_ref().expect("sign is for JWT providers");
        let enc = jwt.enc.as_ref().ok_or_else(|| {
            Status::internal("synod: --auth-token jwt has no priv-key: tokens cannot be issued")
        })?;
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(jwt.ttl)
            .as_secs();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jwt.alg), &claims, enc)
            .map_err(|e| Status::internal(format!("synod: signing a token: {e}")))
    }

    /// The user and auth revision a JWT names, if it is ours and unexpired.
    pub fn verify(&self, token: &str) -> Option<AuthInfo> {
        let jwt = self.jwt.as_ref()?;
        let mut v = jsonwebtoken::Validation::new(jwt.alg);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &jwt.dec, &v).ok()?;
        Some(AuthInfo {
            user: data.claims.username,
            revision: data.claims.revision,
        })
    }

    /// Whether simple token `token`, which the state machine knows, is
    /// still alive here at `now`; a live token's time starts again.
    pub fn touch(&self, token: &str, now: Instant) -> bool {
        let mut seen = self.seen.lock().expect("token table lock");
        if let Some(s) = seen.get_mut(token) {
            if s.expired || now.duration_since(s.last) > self.ttl {
                s.expired = true;
                return false;
            }
            s.last = now;
            return true;
        }
        if seen.len() >= MAX_SEEN {
            // Forget what expired by now, then (still full) everything
            // older than half a TTL: those tokens get a fresh TTL, never
            // a longer life than the table can hold.
            let ttl = self.ttl;
            seen.retain(|_, s| !s.expired && now.duration_since(s.last) <= ttl);
            if seen.len() >= MAX_SEEN {
                seen.retain(|_, s| now.duration_since(s.last) <= ttl / 2);
            }
        }
        seen.insert(
            token.to_string(),
            Seen {
                last: now,
                expired: false,
            },
        );
        true
    }
}

fn jwt_keys(j: &JwtSpec) -> Result<Jwt, String> {
    use jsonwebtoken::{Algorithm as A, DecodingKey, EncodingKey};
    let alg: A = j
        .method
        .parse()
        .map_err(|_| format!("--auth-token: unknown sign-method {:?}", j.method))?;
    let bad = |what: &str, e: jsonwebtoken::errors::Error| {
        format!("--auth-token: {what} key for {}: {e}", j.method)
    };
    let (dec, enc) = match alg {
        A::HS256 | A::HS384 | A::HS512 => (
            DecodingKey::from_secret(&j.pub_key),
            j.priv_key.as_deref().map(EncodingKey::from_secret),
        ),
        A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => (
            DecodingKey::from_rsa_pem(&j.pub_key).map_err(|e| bad("public", e))?,
            j.priv_key
                .as_deref()
                .map(EncodingKey::from_rsa_pem)
                .transpose()
                .map_err(|e| bad("private", e))?,
        ),
        A::ES256 | A::ES384 => (
            DecodingKey::from_ec_pem(&j.pub_key).map_err(|e| bad("public", e))?,
            j.priv_key
                .as_deref()
                .map(EncodingKey::from_ec_pem)
                .transpose()
                .map_err(|e| bad("private", e))?,
        ),
        A::EdDSA => (
            DecodingKey::from_ed_pem(&j.pub_key).map_err(|e| bad("public", e))?,
            j.priv_key
                .as_deref()
                .map(EncodingKey::from_ed_pem)
                .transpose()
                .map_err(|e| bad("private", e))?,
        ),
    };
    Ok(Jwt {
        alg,
        enc,
        dec,
        ttl: j.ttl,
    })
}

/// The random part of a simple token: 16 letters, as etcd draws them.
pub fn token_prefix() -> Result<String, Status> {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)
        .map_err(|e| Status::internal(format!("synod: no randomness for a token: {e}")))?;
    // 256 is not a multiple of 52: draw again past the last whole multiple.
    let mut out = String::with_capacity(16);
    let mut pool = raw.to_vec();
    while out.len() < 16 {
        let Some(b) = pool.pop() else {
            getrandom::fill(&mut raw)
                .map_err(|e| Status::internal(format!("synod: no randomness: {e}")))?;
            pool = raw.to_vec();
            continue;
        };
        if (b as usize) < 52 * 4 {
            out.push(LETTERS[b as usize % 52] as char);
        }
    }
    Ok(out)
}

/// The bcrypt hash of `password` at `cost`, off the async threads.
pub async fn hash_password(password: String, cost: u32) -> Result<Vec<u8>, Status> {
    check_password_len(&password)?;
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| Status::internal(format!("synod: hashing: {e}")))?
        .map(String::into_bytes)
        .map_err(|e| Status::internal(format!("synod: hashing: {e}")))
}

/// Whether `password` matches bcrypt `hash`, off the async threads.
pub async fn password_matches(password: String, hash: Vec<u8>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    tokio::task::spawn_blocking(move || {
        std::str::from_utf8(&hash)
            .ok()
            .is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false))
    })
    .await
    .unwrap_or(false)
}

/// Refuses a password bcrypt would cut short.
pub fn check_password_len(password: &str) -> Result<(), Status> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Status::invalid_argument(format!(
            "synod: a password is at most {MAX_PASSWORD_BYTES} bytes (bcrypt reads no more)"
        )));
    }
    Ok(())
}

/// Whether `h` has the shape of a bcrypt hash (`$2a$`, `$2b$` or `$2y$`,
/// a two-digit cost, 53 more characters), as a hash handed in by a client
/// (`hashedPassword`) must.
pub fn looks_like_bcrypt(h: &str) -> bool {
    let b = h.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && b[7..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_flags_are_read_as_etcd_reads_them() {
        let d = AuthConfig::parse("simple", 10, 300).unwrap();
        assert_eq!(d, AuthConfig::default());
        assert!(AuthConfig::parse("simple", 3, 300).is_err());
        assert!(AuthConfig::parse("simple", 32, 300).is_err());
        assert!(AuthConfig::parse("simple", 10, 0).is_err());
        assert!(AuthConfig::parse("kerberos", 10, 300).is_err());
        assert!(AuthConfig::parse("jwt,sign-method=RS256", 10, 300).is_err());
        assert!(AuthConfig::parse("jwt,pub-key=/nonexistent,sign-method=RS256", 10, 300).is_err());
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"a shared secret").unwrap();
        let spec = format!("jwt,priv-key={},sign-method=HS256,ttl=1m", secret.display());
        let cfg = AuthConfig::parse(&spec, 10, 300).unwrap();
        let TokenSpec::Jwt(j) = &cfg.token else {
            panic!("jwt expected")
        };
        assert_eq!(j.ttl, Duration::from_secs(60));
        let spec = format!("jwt,priv-key={},sign-method=XX999", secret.display());
        assert!(AuthConfig::parse(&spec, 10, 300).is_err());
    }

    #[test]
    fn a_jwt_names_its_user_and_revision_and_a_forged_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"s3cret").unwrap();
        let cfg = AuthConfig::parse(
            &format!("jwt,priv-key={},sign-method=HS256", secret.display()),
            10,
            300,
        )
        .unwrap();
        let t = Tokens::new(&cfg).unwrap();
        let tok = t.sign("alice", 7).unwrap();
        assert_eq!(
            t.verify(&tok),
            Some(AuthInfo {
                user: "alice".into(),
                revision: 7
            })
        );
        std::fs::write(&secret, b"other").unwrap();
        let other = Tokens::new(
            &AuthConfig::parse(
                &format!("jwt,priv-key={},sign-method=HS256", secret.display()),
                10,
                300,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(other.verify(&tok), None, "signed with another key");
        assert_eq!(t.verify("abc.def"), None);
    }

    #[test]
    fn a_simple_token_dies_after_its_ttl_unused_and_lives_while_used() {
        let cfg = AuthConfig {
            token_ttl: Duration::from_secs(10),
            ..AuthConfig::default()
        };
        let t = Tokens::new(&cfg).unwrap();
        let t0 = Instant::now();
        assert!(t.touch("a.1", t0));
        assert!(t.touch("a.1", t0 + Duration::from_secs(8)));
        assert!(
            t.touch("a.1", t0 + Duration::from_secs(16)),
            "use restarts it"
        );
        assert!(!t.touch("a.1", t0 + Duration::from_secs(27)));
        assert!(
            !t.touch("a.1", t0 + Duration::from_secs(28)),
            "dead stays dead"
        );
    }

    #[test]
    fn token_prefixes_are_sixteen_letters() {
        let a = token_prefix().unwrap();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_alphabetic()));
        assert_ne!(a, token_prefix().unwrap());
    }

    #[test]
    fn bcrypt_hash_shapes_are_recognised() {
        let h = bcrypt::hash("pw", 4).unwrap();
        assert!(looks_like_bcrypt(&h));
        assert!(!looks_like_bcrypt("plain text"));
        assert!(!looks_like_bcrypt(&h[..59]));
    }
}
