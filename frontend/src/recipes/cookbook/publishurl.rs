//! `slapos.cookbook:publishurl`: publishes one connection parameter, `url`: the `url` option as
//! it is when given, else the URL joined from `scheme`, `host` and the optional `port`, `path`,
//! `params`, `query`, `fragment`, `username` and `password`, as the cookbook's `unparseUrl`
//! joins them (Python's `urlunparse`; the login and password percent-encoded as
//! `urllib.parse.quote` does, an IPv6 host put in brackets).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::Result;
use crate::recipes::Part;

/// What Python's `urllib.parse.quote` leaves as it is: letters, digits, `_.-~` and `/`.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// The schemes Python's `urlunsplit` writes a `//` for even with no host (`uses_netloc`).
const USES_NETLOC: &[&str] = &[
    "", "ftp", "http", "gopher", "nntp", "telnet", "imap", "wais", "file", "mms", "https", "shttp",
    "snews", "prospero", "rtsp", "rtspu", "rsync", "svn", "svn+ssh", "sftp", "nfs", "git",
    "git+ssh", "ws", "wss",
];

/// `publishurl`.
pub fn publishurl(part: &mut Part) -> Result<()> {
    let url = match part.get("url")? {
        Some(url) => url,
        None => {
            let scheme = part
                .get("scheme")?
                .ok_or_else(|| part.error("No scheme specified."))?;
            let host = part
                .get("host")?
                .ok_or_else(|| part.error("No host specified."))?;
            let mut parts = Parts {
                scheme,
                host,
                ..Parts::default()
            };
            parts.port = part.get("port")?;
            parts.path = part.get("path")?.unwrap_or_default();
            parts.params = part.get("params")?.unwrap_or_default();
            parts.query = part.get("query")?.unwrap_or_default();
            parts.fragment = part.get("fragment")?.unwrap_or_default();
            if let Some(user) = part.get("username")? {
                parts.auth = Some((user, part.get("password")?));
            }
            parts.unparse()
        }
    };
    part.r.instance_output.connection.insert("url".into(), url);
    Ok(())
}

/// The arguments of the cookbook's `unparseUrl`.
#[derive(Debug, Default)]
struct Parts {
    scheme: String,
    host: String,
    path: String,
    params: String,
    query: String,
    fragment: String,
    port: Option<String>,
    auth: Option<(String, Option<String>)>,
}

impl Parts {
    fn unparse(&self) -> String {
        let mut netloc = String::new();
        if let Some((user, password)) = &self.auth {
            netloc.extend(utf8_percent_encode(user, QUOTE));
            if let Some(password) = password {
                netloc.push(':');
                netloc.extend(utf8_percent_encode(password, QUOTE));
            }
            netloc.push('@');
        }
        let bracketed =
            self.host.starts_with('[') && self.host.ends_with(']') && !self.host.contains('\n');
        if self.host.contains(':') && !bracketed {
            netloc.push_str(&format!("[{}]", self.host));
        } else {
            netloc.push_str(&self.host);
        }
        if let Some(port) = &self.port {
            netloc.push(':');
            netloc.push_str(port);
        }
        // Python's urlunparse, then urlunsplit
        let mut url = self.path.clone();
        if !self.params.is_empty() {
            url = format!("{url};{}", self.params);
        }
        let scheme = self.scheme.as_str();
        if !netloc.is_empty() || (USES_NETLOC.contains(&scheme) && !url.starts_with("//")) {
            if !url.is_empty() && !url.starts_with('/') {
                url.insert(0, '/');
            }
            url = format!("//{netloc}{url}");
        }
        if !scheme.is_empty() {
            url = format!("{scheme}:{url}");
        }
        if !self.query.is_empty() {
            url = format!("{url}?{}", self.query);
        }
        if !self.fragment.is_empty() {
            url = format!("{url}#{}", self.fragment);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_as_the_cookbooks_unparse_url_joins_them() {
        // expected: the cookbook's unparseUrl (Python 3.11) on the same arguments
        let url = |f: &dyn Fn(&mut Parts)| {
            let mut p = Parts {
                scheme: "https".into(),
                host: "2001:db8::1".into(),
                ..Parts::default()
            };
            f(&mut p);
            p.unparse()
        };
        assert_eq!(url(&|_| {}), "https://[2001:db8::1]");
        assert_eq!(
            url(&|p| {
                p.port = Some("8080".into());
                p.path = "a/b".into();
                p.params = "x".into();
                p.query = "q=1".into();
                p.fragment = "f".into();
                p.auth = Some(("us er".into(), Some("p@ss/:w".into())));
            }),
            "https://us%20er:p%40ss/%3Aw@[2001:db8::1]:8080/a/b;x?q=1#f"
        );
        assert_eq!(
            url(&|p| {
                p.host = "[::1]".into();
                p.auth = Some(("u".into(), None));
            }),
            "https://u@[::1]"
        );
        assert_eq!(
            url(&|p| {
                p.scheme = "mailto".into();
                p.host = String::new();
                p.path = "x@example.com".into();
            }),
            "mailto:x@example.com"
        );
    }
}
