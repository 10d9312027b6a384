//! The cookbook's check recipes: promise scripts at `path` that `instance status` runs.
//! `slapos.cookbook:check_parameter` compares `value` with `expected-value` /
//! `expected-not-value` (or checks it is an IPv4 / IPv6 address, `expected-type`);
//! `slapos.cookbook:check_url_available` asks `curl` for `url` and checks the HTTP code. The
//! scripts are the cookbook's templates with its substitutions, except that the values from
//! the profile are quoted (Python `repr`, shell `shlex.quote`) or checked to be numbers, so
//! none of them is code; the Python ones are written for `python3`, as promise.rs's.

use crate::error::Result;
use crate::pystr::repr;
use crate::recipes::instance::{add_file, FileSpec};
use crate::recipes::wrapper::quote;
use crate::recipes::Part;

/// The head of each Python script (the cookbook's, for its Python).
const PY_HEAD: &str = "#!/usr/bin/env python3\n\
    # BEWARE: This file is operated by slapos node\n\
    # BEWARE: It will be overwritten automatically\n";

/// `check_parameter`.
pub fn check_parameter(part: &mut Part) -> Result<()> {
    let path = part.require("path")?;
    let value = part.require("value")?;
    let body = match part.get("expected-type")?.as_deref() {
        Some(kind @ ("ipv4" | "ipv6")) => {
            let family = if kind == "ipv4" {
                "AF_INET"
            } else {
                "AF_INET6"
            };
            format!(
                "import socket\n\
                 import sys\n\
                 \n\
                 address = {value}\n\
                 \n\
                 try:\n\
                 \x20 socket.inet_pton(socket.{family}, address)\n\
                 except socket.error:  # not a valid address\n\
                 \x20 sys.exit(127)\n",
                value = repr(&value),
            )
        }
        _ => {
            let expected = part.get("expected-value")?.unwrap_or_default();
            let not_expected = part.get("expected-not-value")?.unwrap_or_default();
            format!(
                "from __future__ import print_function\n\
                 import socket\n\
                 import sys\n\
                 \n\
                 value = {value}\n\
                 expected = {expected}\n\
                 not_expected = {not_expected}\n\
                 \n\
                 if expected != \"\" and value != expected:\n\
                 \x20 print(\"FAIL: %s != %s\" % (value, expected))\n\
                 \x20 sys.exit(127)\n\
                 \n\
                 if not_expected != \"\" and value == not_expected:\n\
                 \x20 print(\"FAIL: %s == %s\" % (value, not_expected))\n\
                 \x20 sys.exit(127)\n",
                value = repr(&value),
                expected = repr(&expected),
                not_expected = repr(&not_expected),
            )
        }
    };
    let text = format!("{PY_HEAD}{body}");
    add_file(part, "path", &path, FileSpec::Text { text, mode: 0o755 })
}

/// An option that the script compares as a number: its value, checked to be an integer.
fn integer(part: &mut Part, key: &str, default: &str) -> Result<String> {
    let v = part.get(key)?.unwrap_or_else(|| default.to_owned());
    let t = v.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(part.option_error(key, format!("`{v}` is not an integer")));
    }
    Ok(t.to_owned())
}

/// `check_url_available`: the cookbook's `check_url.in` for `dash_path` (its interpreter) and
/// `curl_path`; the timeout is read from `timeout-file-path` (`etc/promise_timeout` of the
/// partition by default) when that file holds a number.
pub fn check_url_available(part: &mut Part) -> Result<()> {
    let path = part.require("path")?;
    let url = part.require("url")?;
    let shell = part.require("dash_path")?;
    if shell.is_empty() || shell.chars().any(char::is_whitespace) {
        return Err(part.option_error(
            "dash_path",
            format!("`{shell}` cannot be a script's interpreter"),
        ));
    }
    let curl = quote(&part.require("curl_path")?);
    let check_secure = integer(part, "check-secure", "0")?;
    let http_code = integer(part, "http_code", "200")?;
    let timeout = match part.get("timeout-file-path")? {
        Some(t) => t,
        None => crate::pystr::path_join(&part.buildout("directory")?, "etc/promise_timeout"),
    };
    let ca = quote(&part.get("ca-cert-file")?.unwrap_or_default());
    let cert = quote(&part.get("cert-file")?.unwrap_or_default());
    let key = quote(&part.get("key-file")?.unwrap_or_default());
    let text = format!(
        "#!{shell}\n\
         # BEWARE: This file is operated by slapos node\n\
         # BEWARE: It will be overwritten automatically\n\
         \n\
         URL={url}\n\
         F_TIMEOUT={timeout}\n\
         TIMEOUT=20\n\
         CA_CERT={ca}\n\
         CERT={cert}\n\
         KEY={key}\n\
         \n\
         if [ -z \"$URL\" ]; then\n\
         \x20 echo \"No URL specified.\" >&2\n\
         \x20 exit 3\n\
         fi\n\
         \n\
         if [ -s \"$F_TIMEOUT\" ]; then\n\
         \x20 TIMEOUT=$(cat \"$F_TIMEOUT\")\n\
         \x20 result=$(echo $TIMEOUT | grep -E '^[0-9]+$')\n\
         \x20 if [ -z \"$result\" ]; then\n\
         \x20   # Not an integer\n\
         \x20   TIMEOUT=20\n\
         \x20 fi\n\
         fi\n\
         \n\
         if [ -z \"$CA_CERT\" ] || [ -z \"$CERT\" ] || [ -z \"$KEY\" ]; then\n\
         \x20 CODE=$({curl} -g -k -sL \"$URL\" -w %{{http_code}} --max-time $TIMEOUT -o /dev/null)\n\
         else\n\
         \x20 CODE=$({curl} -g -k -sL \"$URL\" -w %{{http_code}} --max-time $TIMEOUT -o /dev/null --cacert \"$CA_CERT\" --cert \"$CERT\" --key \"$KEY\")\n\
         fi\n\
         \n\
         if [ $? -eq 3 ]; then\n\
         \x20 echo \"URL malformed: $URL.\" >&2\n\
         \x20 exit 1\n\
         fi\n\
         \n\
         if [ $? -eq 7 ]; then\n\
         \x20 echo \"Failed to connect to host: $URL.\" >&2\n\
         \x20 exit 1\n\
         fi\n\
         \n\
         if [ ! $CODE ]; then\n\
         \x20 echo \"$URL is not available (server not reachable).\" >&2\n\
         \x20 exit 1\n\
         fi\n\
         \n\
         if [ $CODE -eq 000 ]; then\n\
         \x20 echo \"$URL is not available (server not reachable).\" >&2\n\
         \x20 exit 1\n\
         fi\n\
         \n\
         if [ {check_secure} -eq 1 ]; then\n\
         \x20 if [ $CODE -eq 401 ]; then\n\
         \x20   echo \"$URL is protected (returned $CODE).\" >&2\n\
         \x20   exit 0\n\
         \x20 fi\n\
         fi\n\
         \n\
         if ! [ $CODE -eq {http_code} ]; then\n\
         \x20 echo \"$URL is not available (returned $CODE, expected {http_code}).\" >&2\n\
         \x20 exit 2\n\
         fi\n",
        url = quote(&url),
        timeout = quote(&timeout),
    );
    add_file(part, "path", &path, FileSpec::Text { text, mode: 0o755 })
}
