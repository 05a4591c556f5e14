//! `milvus://HOST:PORT[/COLLECTION-PREFIX][?option=value&…]` store addresses.

use crate::{Error, Result};

/// Read consistency of searches, gets and queries (see `docs/SCALE.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Every read waits until the server has applied every write acknowledged before it
    /// started, by any client (read-your-writes across processes and replicas).
    Strong,
    /// Every read sees at least this process's acknowledged writes and every write any client
    /// had acknowledged before this engine connected (the guarantee timestamp is the newest of
    /// a timestamp taken at connect and the write timestamps this client got back); the
    /// default.
    Session,
    /// Reads may lag writes by the server's graceful time (Milvus default, 5 s in 2.3).
    Bounded,
    /// No guarantee.
    Eventually,
}

impl std::str::FromStr for Consistency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Consistency> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "strong" => Consistency::Strong,
            "session" => Consistency::Session,
            "bounded" => Consistency::Bounded,
            "eventually" => Consistency::Eventually,
            _ => return Err(Error::Invalid(format!("unknown consistency level {s:?}"))),
        })
    }
}

/// Index of the thermometer codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeIndex {
    /// Exact scan (lossless candidate generation).
    BinFlat,
    /// Inverted lists (approximate: only `nprobe` of `nlist` lists are scanned).
    BinIvfFlat {
        /// Number of lists.
        nlist: u32,
    },
}

/// A parsed `milvus://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilvusUrl {
    /// Host name or address.
    pub host: String,
    /// gRPC port.
    pub port: u16,
    /// Prefix of every Milvus collection name (default `apksift`).
    pub prefix: String,
    /// Milvus database (default `default`).
    pub db: String,
    /// Read consistency.
    pub consistency: Consistency,
    /// Index of new collections.
    pub index: CodeIndex,
    /// IVF lists probed per search (default 16).
    pub nprobe: u32,
    /// Candidates fetched per Milvus range-search window (default 2048).
    pub window: usize,
    /// Per-request timeout in seconds (default 60).
    pub timeout_s: u64,
}

impl MilvusUrl {
    /// True for strings that look like a Milvus address.
    pub fn is_milvus(s: &str) -> bool {
        s.starts_with("milvus://")
    }

    /// Parses `milvus://HOST[:PORT][/PREFIX][?consistency=strong|session|bounded|eventually
    /// &index=bin_flat|bin_ivf_flat&nlist=N&nprobe=N&window=N&db=NAME&timeout=SECONDS]`.
    pub fn parse(s: &str) -> Result<MilvusUrl> {
        let rest = s
            .strip_prefix("milvus://")
            .ok_or_else(|| Error::Invalid(format!("not a milvus:// address: {s:?}")))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| Error::Invalid(format!("bad port in {s:?}")))?,
            ),
            None => (hostport.to_string(), 19530),
        };
        if host.is_empty() {
            return Err(Error::Invalid(format!("no host in {s:?}")));
        }
        let prefix = path.trim_matches('/');
        let prefix = if prefix.is_empty() { "apksift" } else { prefix };
        if !prefix.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || prefix.len() > 64
        {
            return Err(Error::Invalid(format!(
                "collection prefix {prefix:?}: letters, digits and '_' only, at most 64, not starting with a digit"
            )));
        }
        let mut u = MilvusUrl {
            host,
            port,
            prefix: prefix.to_string(),
            db: "default".into(),
            consistency: Consistency::Session,
            index: CodeIndex::BinFlat,
            nprobe: 16,
            window: 2048,
            timeout_s: 60,
        };
        let mut nlist = 1024;
        let mut ivf = false;
        for kv in query.split('&').filter(|x| !x.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let num = |v: &str| -> Result<u64> {
                v.parse()
                    .map_err(|_| Error::Invalid(format!("{k}={v}: not a number")))
            };
            match k {
                "consistency" => u.consistency = v.parse()?,
                "index" => match v.to_ascii_lowercase().as_str() {
                    "bin_flat" | "flat" => ivf = false,
                    "bin_ivf_flat" | "ivf" | "ivf_flat" => ivf = true,
                    _ => return Err(Error::Invalid(format!("unknown index {v:?}"))),
                },
                "nlist" => nlist = num(v)?.clamp(1, 65536) as u32,
                "nprobe" => u.nprobe = num(v)?.clamp(1, 65536) as u32,
                "window" => u.window = num(v)?.clamp(16, 16384) as usize,
                "timeout" => u.timeout_s = num(v)?.max(1),
                "db" => u.db = v.to_string(),
                _ => return Err(Error::Invalid(format!("unknown option {k:?} in {s:?}"))),
            }
        }
        if ivf {
            u.index = CodeIndex::BinIvfFlat { nlist };
        }
        Ok(u)
    }

    /// `http://HOST:PORT` for the gRPC channel.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

impl std::fmt::Display for MilvusUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "milvus://{}:{}/{}", self.host, self.port, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        let u = MilvusUrl::parse(
            "milvus://localhost:19530/apk?consistency=strong&index=bin_ivf_flat&nlist=64&nprobe=8",
        )
        .unwrap();
        assert_eq!(u.host, "localhost");
        assert_eq!(u.port, 19530);
        assert_eq!(u.prefix, "apk");
        assert_eq!(u.consistency, Consistency::Strong);
        assert_eq!(u.index, CodeIndex::BinIvfFlat { nlist: 64 });
        assert_eq!(u.nprobe, 8);
        let u = MilvusUrl::parse("milvus://milvus.db.svc").unwrap();
        assert_eq!((u.port, u.prefix.as_str()), (19530, "apksift"));
        assert_eq!(u.consistency, Consistency::Session);
        assert!(MilvusUrl::parse("milvus://h:1/bad-name").is_err());
        assert!(MilvusUrl::parse("milvus://h:x").is_err());
        assert!(MilvusUrl::parse("milvus://h/p?what=1").is_err());
        assert!(MilvusUrl::parse("/var/lib/apksift").is_err());
    }
}
