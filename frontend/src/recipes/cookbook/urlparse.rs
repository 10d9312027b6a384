//! `slapos.cookbook:urlparse`: the parts of `url` as options (`scheme`, `username`,
//! `password`, `host`, `port`, `path` without its outer slashes, `params`, `query`,
//! `fragment`; `''` for what the URL lacks), as Python's `urllib.parse.urlparse` splits it:
//! its rules are reproduced here, the errors it raises included. Writes nothing.

use crate::error::Result;
use crate::recipes::Part;

/// The schemes whose path may carry `;params` (`urllib.parse.uses_params`).
const USES_PARAMS: &[&str] = &[
    "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtspu", "sip", "sips",
    "mms", "sftp", "tel",
];

/// A URL split as `urlparse` does, its attributes computed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    scheme: String,
    username: String,
    password: String,
    host: String,
    port: String,
    path: String,
    params: String,
    query: String,
    fragment: String,
}

/// `urlparse` and the `username`, `password`, `hostname` and `port` attributes; the message
/// of the `ValueError` Python raises.
fn parse(url: &str) -> std::result::Result<Parsed, String> {
    // urlsplit: leading C0 controls and spaces go, and tabs and newlines anywhere
    let mut url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut p = Parsed::default();
    if let Some(i) = url.find(':') {
        let head = &url[..i];
        let first_ok = head.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if first_ok
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            p.scheme = head.to_ascii_lowercase();
            url = url[i + 1..].to_owned();
        }
    }
    let mut netloc = String::new();
    if let Some(rest) = url.strip_prefix("//") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        netloc = rest[..end].to_owned();
        url = rest[end..].to_owned();
        if netloc.contains('[') != netloc.contains(']') {
            return Err("Invalid IPv6 URL".into());
        }
        if netloc.contains('[') {
            check_bracketed(&netloc)?;
        }
    }
    if let Some((u, f)) = url.split_once('#') {
        p.fragment = f.to_owned();
        url = u.to_owned();
    }
    if let Some((u, q)) = url.split_once('?') {
        p.query = q.to_owned();
        url = u.to_owned();
    }
    if USES_PARAMS.contains(&p.scheme.as_str()) && url.contains(';') {
        // `_splitparams`: the `;` after the last `/`, or the first one
        let from = url.rfind('/').unwrap_or(0);
        if let Some(i) = url[from..].find(';').map(|i| i + from) {
            p.params = url[i + 1..].to_owned();
            url.truncate(i);
        }
    }
    p.path = url.trim_matches('/').to_owned();
    let (userinfo, hostinfo) = match netloc.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, netloc.as_str()),
    };
    if let Some(u) = userinfo {
        let (user, password) = u.split_once(':').unwrap_or((u, ""));
        p.username = user.to_owned();
        p.password = password.to_owned();
    }
    let (hostname, port) = match hostinfo.split_once('[') {
        Some((_, bracketed)) => {
            let (h, rest) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            (h, rest.split_once(':').map_or("", |(_, p)| p))
        }
        None => hostinfo.split_once(':').unwrap_or((hostinfo, "")),
    };
    p.host = match hostname.split_once('%') {
        Some((h, zone)) => format!("{}%{zone}", h.to_lowercase()),
        None => hostname.to_lowercase(),
    };
    if !port.is_empty() {
        if !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "Port could not be cast to integer value as {}",
                crate::pystr::repr(port)
            ));
        }
        // all digits: only too many of them fail to parse
        let n: u64 = port.parse().unwrap_or(u64::MAX);
        if n > 65535 {
            return Err("Port out of range 0-65535".into());
        }
        p.port = n.to_string();
    }
    Ok(p)
}

/// `_check_bracketed_netloc` (Python 3.11's): what is between `[` and `]` must be an IPv6
/// address (or an `IPvFuture` one, `v<hex>.<text>`).
fn check_bracketed(netloc: &str) -> std::result::Result<(), String> {
    let hostinfo = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let Some((_, bracketed)) = hostinfo.split_once('[') else {
        return Ok(());
    };
    let host = bracketed.split_once(']').map_or(bracketed, |(h, _)| h);
    if let Some(future) = host.strip_prefix('v') {
        let ok = future.split_once('.').is_some_and(|(hex, rest)| {
            !hex.is_empty()
                && hex.chars().all(|c| c.is_ascii_hexdigit())
                && !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._~-!$&'()*+,;=:".contains(c))
        });
        return if ok {
            Ok(())
        } else {
            Err("IPvFuture address is invalid".into())
        };
    }
    let address = host.split_once('%').map_or(host, |(a, _)| a);
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => Ok(()),
        Ok(std::net::IpAddr::V4(_)) => Err("An IPv4 address cannot be in brackets".into()),
        Err(_) => Err(format!(
            "{} does not appear to be an IPv4 or IPv6 address",
            crate::pystr::repr(host)
        )),
    }
}

/// `urlparse`.
pub fn urlparse(part: &mut Part) -> Result<()> {
    let url = part.require("url")?;
    let p = parse(&url).map_err(|e| part.option_error("url", e))?;
    for (key, value) in [
        ("scheme", p.scheme),
        ("username", p.username),
        ("password", p.password),
        ("host", p.host),
        ("port", p.port),
        ("path", p.path),
        ("params", p.params),
        ("query", p.query),
        ("fragment", p.fragment),
    ] {
        part.set(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    /// `(scheme, username, password, host, port, path, params, query, fragment)`.
    fn parts(url: &str) -> [String; 9] {
        let p = parse(url).expect("parses");
        [
            p.scheme, p.username, p.password, p.host, p.port, p.path, p.params, p.query, p.fragment,
        ]
    }

    // the expected values are Python 3's `urllib.parse.urlparse` ones
    #[test]
    fn splits_as_python() {
        assert_eq!(
            parts("HTTPS://Bob:s3cr:et@Git.Example.COM:0443/a/b/;p?q=1&r#frag"),
            [
                "https",
                "Bob",
                "s3cr:et",
                "git.example.com",
                "443",
                "a/b",
                "p",
                "q=1&r",
                "frag"
            ]
        );
        assert_eq!(
            parts("http://[2001:DB8::1]:8080/x;y/z;w"),
            ["http", "", "", "2001:db8::1", "8080", "x;y/z", "w", "", ""]
        );
        assert_eq!(
            parts("  example.com/path"),
            ["", "", "", "", "", "example.com/path", "", "", ""]
        );
        assert_eq!(
            parts("git+ssh://u@h/r;x"),
            ["git+ssh", "u", "", "h", "", "r;x", "", "", ""]
        );
        assert_eq!(
            parts("mailto:a@b"),
            ["mailto", "", "", "", "", "a@b", "", "", ""]
        );
        assert_eq!(
            parts("https://h:/p"),
            ["https", "", "", "h", "", "p", "", "", ""]
        );
        assert_eq!(parts(""), ["", "", "", "", "", "", "", "", ""]);
    }

    #[test]
    fn refuses_as_python() {
        assert_eq!(
            parse("http://h:8x/").expect_err("port"),
            "Port could not be cast to integer value as '8x'"
        );
        assert_eq!(
            parse("http://h:70000/").expect_err("range"),
            "Port out of range 0-65535"
        );
        assert_eq!(
            parse("http://[::1/").expect_err("bracket"),
            "Invalid IPv6 URL"
        );
        assert_eq!(
            parse("http://[127.0.0.1]/").expect_err("v4"),
            "An IPv4 address cannot be in brackets"
        );
        assert_eq!(
            parse("http://[zz]/").expect_err("address"),
            "'zz' does not appear to be an IPv4 or IPv6 address"
        );
    }
}
