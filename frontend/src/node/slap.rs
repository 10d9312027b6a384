//! The HTTP protocol of a SlapOS master as slapgrid speaks it (`slapos.slap.slap` of
//! slapos.core 1.22): `GET getFullComputerInformation` for what the computer must install and
//! host, `POST loadComputerConfigurationFromXML` for its partitions (`slapos node format`), and
//! the reports: `buildingSoftwareRelease`, `availableSoftwareRelease`, `softwareReleaseError`,
//! `destroyedSoftwareRelease`, `startedComputerPartition`, `stoppedComputerPartition`,
//! `destroyedComputerPartition`, `softwareInstanceError`, `setComputerPartitionConnectionXml`;
//! and `requestComputerPartition`, which the `request` recipes of its instances send (as
//! `slap.ComputerPartition.request` does). Bodies are `xml_marshaller` documents
//! (`marshal.rs`), posts are HTML forms.
//!
//! Over `https://` the computer authenticates with its key and certificate (as slapgrid does
//! with `key_file`/`cert_file`); the master's certificate is checked against the web's roots
//! unless a CA file is given.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::marshal::{self, Value};
use crate::recipes::slap::Request;

/// Why talking to the master failed.
#[derive(Debug, thiserror::Error)]
pub enum SlapError {
    #[error("cannot reach the master at `{url}`: {reason}")]
    Connect { url: String, reason: String },
    #[error("the master answered {status} to `{path}`{}", excerpt(body))]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("the master's answer to `{path}` is not what slapgrid expects: {reason}")]
    Answer { path: String, reason: String },
    #[error("`{file}`: {reason}")]
    Credentials { file: String, reason: String },
}

/// What an error's body says, in a line: the first paragraph of an HTML page (a master's
/// error page: `<title>404 Not Found</title>` … `<p>why</p>`), else its first line.
fn excerpt(body: &str) -> String {
    let paragraph = body
        .split_once("<p>")
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map(|(p, _)| p.trim());
    let line = paragraph
        .or_else(|| body.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("");
    if line.is_empty() {
        String::new()
    } else {
        format!(": {}", line.chars().take(200).collect::<String>())
    }
}

type Result<T> = std::result::Result<T, SlapError>;

/// The key and certificate a computer authenticates with (PEM files).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub key_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    /// The master's CA (PEM); the web's roots when absent.
    pub ca_file: Option<std::path::PathBuf>,
}

/// A state a master asks software or an instance to be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Available,
    Started,
    Stopped,
    Destroyed,
}

impl State {
    fn parse(text: &str) -> Option<State> {
        Some(match text {
            "available" => State::Available,
            "started" => State::Started,
            "stopped" => State::Stopped,
            "destroyed" => State::Destroyed,
            _ => return None,
        })
    }
}

/// A software release supplied to the computer.
#[derive(Debug, Clone, PartialEq)]
pub struct Supplied {
    pub url: String,
    /// `Available` (install it) or `Destroyed` (remove it).
    pub state: State,
}

/// What the master says one partition must host.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hosted {
    pub partition: String,
    pub state: State,
    /// The release URL; `None` for a free partition.
    pub software: Option<String>,
    pub software_type: String,
    /// The instance's own parameters (the master's `_parameter_dict` without what slapgrid
    /// adds: addresses, titles, ids, timestamp).
    pub parameters: BTreeMap<String, String>,
    pub instance_title: String,
    pub root_instance_title: String,
    /// `(partition, address)` pairs (`ip_list`).
    pub addresses: Vec<(String, String)>,
    /// When the master last changed the request (`timestamp`, as text).
    pub timestamp: Option<String>,
    /// The connection parameters the master holds for it.
    pub connection: BTreeMap<String, String>,
}

/// What the master wants of this computer.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputerInfo {
    pub software: Vec<Supplied>,
    pub partitions: Vec<Hosted>,
}

/// Keys of `_parameter_dict` that slapproxy and the master add to an instance's parameters.
const SLAP_KEYS: &[&str] = &[
    "ip_list",
    "full_ip_list",
    "full_address_list",
    "instance_title",
    "root_instance_title",
    "slap_computer_id",
    "slap_computer_partition_id",
    "slap_software_release_url",
    "slap_software_type",
    "slave_instance_list",
    "timestamp",
];

/// A partition and its addresses, as `slapos node format` registers it.
#[derive(Debug, Clone)]
pub struct FormatPartition {
    pub reference: String,
    pub path: String,
    pub user: String,
    /// `(address, netmask)`.
    pub addresses: Vec<(String, String)>,
}

/// A connection to one master for one computer.
pub struct Master {
    base: String,
    computer: String,
    agent: ureq::Agent,
}

impl Master {
    /// A client of the master at `url` (`http(s)://`), as computer `computer`.
    pub fn new(url: &str, computer: &str, credentials: &Credentials) -> Result<Master> {
        let base = if url.ends_with('/') {
            url.to_owned()
        } else {
            format!("{url}/")
        };
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("slapstore/", env!("CARGO_PKG_VERSION")));
        if base.starts_with("https://") {
            builder = builder.tls_config(tls_config(credentials)?);
        }
        Ok(Master {
            base,
            computer: computer.to_owned(),
            agent: builder.build(),
        })
    }

    pub fn computer(&self) -> &str {
        &self.computer
    }

    fn answer(
        &self,
        path: &str,
        result: std::result::Result<ureq::Response, ureq::Error>,
    ) -> Result<String> {
        match result {
            Ok(r) => r.into_string().map_err(|e| SlapError::Answer {
                path: path.into(),
                reason: e.to_string(),
            }),
            Err(ureq::Error::Status(status, r)) => Err(SlapError::Status {
                path: path.into(),
                status,
                body: r.into_string().unwrap_or_default(),
            }),
            Err(ureq::Error::Transport(t)) => Err(SlapError::Connect {
                url: self.base.clone(),
                reason: t.to_string(),
            }),
        }
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<String> {
        let mut request = self.agent.get(&format!("{}{path}", self.base));
        for (k, v) in query {
            request = request.query(k, v);
        }
        self.answer(path, request.call())
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<String> {
        let request = self.agent.post(&format!("{}{path}", self.base));
        self.answer(path, request.send_form(form))
    }

    /// `getFullComputerInformation`: the software to install and the partitions to host.
    pub fn computer_information(&self) -> Result<ComputerInfo> {
        let path = "getFullComputerInformation";
        let text = self.get(path, &[("computer_id", &self.computer)])?;
        let value = marshal::loads(&text).map_err(|e| SlapError::Answer {
            path: path.into(),
            reason: e.to_string(),
        })?;
        parse_computer(&value).map_err(|reason| SlapError::Answer {
            path: path.into(),
            reason,
        })
    }

    /// `loadComputerConfigurationFromXML`: registers the partitions and their addresses.
    pub fn format(&self, address: (&str, &str), partitions: &[FormatPartition]) -> Result<()> {
        let s = |t: &str| Value::Str(t.to_owned());
        let list = partitions
            .iter()
            .map(|p| {
                Value::Dict(vec![
                    (
                        s("address_list"),
                        Value::List(
                            p.addresses
                                .iter()
                                .map(|(a, m)| {
                                    Value::string_dict([
                                        ("addr", a.as_str()),
                                        ("netmask", m.as_str()),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                    (s("external_storage_list"), Value::List(Vec::new())),
                    (s("ipv6_range"), Value::Dict(Vec::new())),
                    (s("path"), s(&p.path)),
                    (s("reference"), s(&p.reference)),
                    (
                        s("tap"),
                        Value::string_dict([("name", p.reference.as_str())]),
                    ),
                    (s("tun"), Value::None),
                    (s("user"), Value::string_dict([("name", p.user.as_str())])),
                ])
            })
            .collect();
        let computer = Value::Dict(vec![
            (s("address"), s(address.0)),
            (s("netmask"), s(address.1)),
            (s("partition_list"), Value::List(list)),
            (s("reference"), s(&self.computer)),
        ]);
        self.post(
            "loadComputerConfigurationFromXML",
            &[("xml", &marshal::dumps(&computer))],
        )
        .map(drop)
    }

    fn software_report(&self, path: &str, url: &str, log: Option<&str>) -> Result<()> {
        let mut form = vec![("url", url), ("computer_id", self.computer.as_str())];
        if let Some(log) = log {
            form.push(("error_log", log));
        }
        self.post(path, &form).map(drop)
    }

    pub fn building(&self, url: &str) -> Result<()> {
        self.software_report("buildingSoftwareRelease", url, None)
    }

    pub fn available(&self, url: &str) -> Result<()> {
        self.software_report("availableSoftwareRelease", url, None)
    }

    pub fn software_destroyed(&self, url: &str) -> Result<()> {
        self.software_report("destroyedSoftwareRelease", url, None)
    }

    pub fn software_error(&self, url: &str, log: &str) -> Result<()> {
        self.software_report("softwareReleaseError", url, Some(log))
    }

    fn partition_report(&self, path: &str, partition: &str, extra: &[(&str, &str)]) -> Result<()> {
        let mut form = vec![
            ("computer_id", self.computer.as_str()),
            ("computer_partition_id", partition),
        ];
        form.extend_from_slice(extra);
        self.post(path, &form).map(drop)
    }

    pub fn started(&self, partition: &str) -> Result<()> {
        self.partition_report("startedComputerPartition", partition, &[])
    }

    pub fn stopped(&self, partition: &str) -> Result<()> {
        self.partition_report("stoppedComputerPartition", partition, &[])
    }

    /// The partition is free again.
    pub fn destroyed(&self, partition: &str) -> Result<()> {
        self.partition_report("destroyedComputerPartition", partition, &[])
    }

    pub fn instance_error(&self, partition: &str, log: &str) -> Result<()> {
        self.partition_report("softwareInstanceError", partition, &[("error_log", log)])
    }

    /// `setComputerPartitionConnectionXml`: the instance's published connection parameters.
    pub fn set_connection(
        &self,
        partition: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<()> {
        let xml = marshal::dumps(&Value::string_dict(
            parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ));
        // slapgrid sends `slave_reference` as "None" for the instance itself
        self.partition_report(
            "setComputerPartitionConnectionXml",
            partition,
            &[("connection_xml", &xml), ("slave_reference", "None")],
        )
    }

    /// `requestComputerPartition`: asks, on behalf of the instance on `partition`, for the
    /// instance `request` describes (created, changed or destroyed as its state says); what it
    /// published, `None` when the master has not placed it yet (it answers 408, Request
    /// Timeout, which slap.py reads as `ResourceNotReady`).
    pub fn request(
        &self,
        partition: &str,
        request: &Request,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let path = "requestComputerPartition";
        let dict = |p: &BTreeMap<String, String>| {
            marshal::dumps(&Value::string_dict(
                p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ))
        };
        let form = [
            ("computer_id", self.computer.clone()),
            ("computer_partition_id", partition.to_owned()),
            ("software_release", request.software_url.clone()),
            ("software_type", request.software_type.clone()),
            ("partition_reference", request.title.clone()),
            ("shared_xml", marshal::dumps(&Value::Bool(false))),
            ("partition_parameter_xml", dict(&request.parameters)),
            ("filter_xml", dict(&request.filter)),
            ("state", marshal::dumps(&Value::Str(request.state.clone()))),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let text = match self.post(path, &form) {
            Ok(text) => text,
            Err(SlapError::Status { status: 408, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let answer = |reason: String| SlapError::Answer {
            path: path.into(),
            reason,
        };
        let value = marshal::loads(&text).map_err(|e| answer(e.to_string()))?;
        let mut connection = BTreeMap::new();
        match value.get("_connection_dict") {
            Some(Value::Dict(pairs)) => {
                for (k, v) in pairs {
                    let (Some(k), Some(v)) = (k.as_str(), v.scalar_text()) else {
                        return Err(answer(format!(
                            "the connection parameters of `{}` are not text",
                            request.title
                        )));
                    };
                    connection.insert(k.to_owned(), v);
                }
            }
            Some(Value::None) | None => {}
            Some(_) => return Err(answer("`_connection_dict` is not a dictionary".to_owned())),
        }
        Ok(Some(connection))
    }
}

/// A rustls configuration that presents the computer's certificate, if it has one.
fn tls_config(credentials: &Credentials) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cred = |file: &Path, e: &dyn std::fmt::Display| SlapError::Credentials {
        file: file.display().to_string(),
        reason: e.to_string(),
    };
    let mut roots = rustls::RootCertStore::empty();
    match &credentials.ca_file {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| cred(ca, &e))? {
                let cert = cert.map_err(|e| cred(ca, &e))?;
                roots.add(cert).map_err(|e| cred(ca, &e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| SlapError::Credentials {
        file: "TLS".into(),
        reason: e.to_string(),
    })?
    .with_root_certificates(roots);
    let config = match (&credentials.cert_file, &credentials.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .map_err(|e| cred(cert, &e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| cred(cert, &e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| cred(key, &e))?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| cred(cert, &e))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(f), None) | (None, Some(f)) => {
            return Err(SlapError::Credentials {
                file: f.display().to_string(),
                reason: "a key file and a certificate file go together: give both".into(),
            })
        }
    };
    Ok(Arc::new(config))
}

/// Reads `getFullComputerInformation`'s `Computer` object.
fn parse_computer(value: &Value) -> std::result::Result<ComputerInfo, String> {
    let list = |v: &Value, key: &str| -> std::result::Result<Vec<Value>, String> {
        match v.get(key) {
            Some(l) => l
                .items()
                .map(<[Value]>::to_vec)
                .ok_or_else(|| format!("`{key}` is not a list")),
            None => Ok(Vec::new()),
        }
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut software = Vec::new();
    for sr in list(value, "_software_release_list")? {
        let url = text(&sr, "_software_release").ok_or("a software release without a URL")?;
        let state = text(&sr, "_requested_state").unwrap_or_else(|| "available".into());
        let state = State::parse(&state)
            .filter(|s| matches!(s, State::Available | State::Destroyed))
            .ok_or_else(|| format!("software `{url}` is requested `{state}`"))?;
        software.push(Supplied { url, state });
    }
    let mut partitions = Vec::new();
    for p in list(value, "_computer_partition_list")? {
        let id = text(&p, "_partition_id").ok_or("a partition without `_partition_id`")?;
        let state_text = text(&p, "_requested_state").unwrap_or_else(|| "destroyed".into());
        let state = State::parse(&state_text)
            .filter(|s| *s != State::Available)
            .ok_or_else(|| format!("partition `{id}` is requested `{state_text}`"))?;
        let software_url = match p.get("_software_release_document") {
            Some(doc @ Value::Object { .. }) => text(doc, "_software_release"),
            _ => None,
        };
        let empty = Value::Dict(Vec::new());
        let dict = p.get("_parameter_dict").unwrap_or(&empty);
        let Value::Dict(pairs) = dict else {
            return Err(format!(
                "partition `{id}`: `_parameter_dict` is not a dictionary"
            ));
        };
        let mut parameters = BTreeMap::new();
        for (k, v) in pairs {
            let Some(k) = k.as_str() else { continue };
            if SLAP_KEYS.contains(&k) {
                continue;
            }
            let v = v
                .scalar_text()
                .ok_or_else(|| format!("partition `{id}`: parameter `{k}` is not text"))?;
            parameters.insert(k.to_owned(), v);
        }
        let addresses = dict
            .get("ip_list")
            .and_then(Value::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|pair| match pair.items() {
                Some([a, b]) => Some((a.as_str()?.to_owned(), b.as_str()?.to_owned())),
                _ => None,
            })
            .collect();
        let mut connection = BTreeMap::new();
        if let Some(Value::Dict(pairs)) = p.get("_connection_dict") {
            for (k, v) in pairs {
                if let (Some(k), Some(v)) = (k.as_str(), v.scalar_text()) {
                    connection.insert(k.to_owned(), v);
                }
            }
        }
        partitions.push(Hosted {
            software_type: text(dict, "slap_software_type").unwrap_or_else(|| "default".into()),
            instance_title: text(dict, "instance_title").unwrap_or_default(),
            root_instance_title: text(dict, "root_instance_title").unwrap_or_default(),
            timestamp: dict.get("timestamp").and_then(Value::scalar_text),
            partition: id,
            state,
            software: software_url,
            parameters,
            addresses,
            connection,
        });
    }
    Ok(ComputerInfo {
        software,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_slapproxy_sends() {
        let value = marshal::loads(include_str!("testdata/full-computer-information.xml")).unwrap();
        let info = parse_computer(&value).unwrap();
        assert_eq!(
            info.software,
            vec![Supplied {
                url: "/tmp/node-venv/p1/sr/software.cfg".into(),
                state: State::Available
            }]
        );
        let web = &info.partitions[0];
        assert_eq!(web.partition, "slappart0");
        assert_eq!(web.state, State::Started);
        assert_eq!(
            web.software.as_deref(),
            Some("/tmp/node-venv/p1/sr/software.cfg")
        );
        assert_eq!(web.software_type, "default");
        assert_eq!(web.instance_title, "web");
        assert_eq!(
            web.parameters,
            BTreeMap::from([("greeting".into(), "hi".into()), ("x".into(), "a b".into())])
        );
        assert_eq!(web.addresses[0], ("slappart0".into(), "127.0.0.1".into()));
        assert!(web.timestamp.is_some());
        let free = &info.partitions[1];
        assert_eq!(
            (free.state, free.software.as_deref()),
            (State::Destroyed, None)
        );
    }

    #[test]
    fn a_strange_state_is_refused() {
        let text = include_str!("testdata/full-computer-information.xml").replacen(
            "<string>started</string>",
            "<string>exploded</string>",
            1,
        );
        let value = marshal::loads(&text).unwrap();
        let e = parse_computer(&value).unwrap_err();
        assert_eq!(e, "partition `slappart0` is requested `exploded`");
    }

    /// A master on 127.0.0.1 that answers one request with `status` and `body`; the
    /// request's text, once answered.
    fn answer_once(status: &str, body: &str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let served = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0; 4096];
            // the headers, then as much body as they announce
            loop {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_owned)
                        })
                        .and_then(|l| l.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length || n == 0 {
                        break;
                    }
                }
            }
            s.write_all(reply.as_bytes()).unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (url, served)
    }

    fn child_request() -> Request {
        Request {
            part: "child".into(),
            title: "my child".into(),
            software_url: "/srv/sr/software.cfg".into(),
            software_type: "child".into(),
            parameters: BTreeMap::from([("greeting".into(), "a<b".into())]),
            state: "started".into(),
            filter: BTreeMap::from([("computer_guid".into(), "COMP-2".into())]),
            optional: false,
            missing: Vec::new(),
        }
    }

    /// The form field `key` of an HTML form post, decoded.
    fn field(request: &str, key: &str) -> String {
        let body = request.split_once("\r\n\r\n").unwrap().1;
        form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no `{key}` in {body}"))
    }

    #[test]
    fn a_request_is_what_slap_py_sends_and_408_is_not_ready() {
        let (url, served) = answer_once("408 Request Timeout", "Resource not ready");
        let master = Master::new(&url, "COMP-1", &Credentials::default()).unwrap();
        let answer = master.request("slappart3", &child_request()).unwrap();
        assert_eq!(answer, None);
        let sent = served.join().unwrap();
        assert!(
            sent.starts_with("POST /requestComputerPartition "),
            "{sent}"
        );
        assert_eq!(field(&sent, "computer_id"), "COMP-1");
        assert_eq!(field(&sent, "computer_partition_id"), "slappart3");
        assert_eq!(field(&sent, "software_release"), "/srv/sr/software.cfg");
        assert_eq!(field(&sent, "software_type"), "child");
        assert_eq!(field(&sent, "partition_reference"), "my child");
        let value = |k: &str| marshal::loads(&field(&sent, k)).unwrap();
        assert_eq!(value("shared_xml"), Value::Bool(false));
        assert_eq!(value("state"), Value::Str("started".into()));
        assert_eq!(
            value("partition_parameter_xml"),
            Value::string_dict([("greeting", "a<b")])
        );
        assert_eq!(
            value("filter_xml"),
            Value::string_dict([("computer_guid", "COMP-2")])
        );
    }

    #[test]
    fn a_request_reads_what_the_instance_published() {
        let instance = Value::Object {
            module: "slapos.slap.slap".into(),
            class: "SoftwareInstance".into(),
            args: Vec::new(),
            state: Box::new(Value::Dict(vec![
                (
                    Value::Str("_connection_dict".into()),
                    Value::Dict(vec![
                        (Value::Str("url".into()), Value::Str("http://x/".into())),
                        (Value::Str("port".into()), Value::Int(8080)),
                    ]),
                ),
                (
                    Value::Str("slap_computer_partition_id".into()),
                    Value::Str("slappart1".into()),
                ),
            ])),
        };
        let (url, served) = answer_once("200 OK", &marshal::dumps(&instance));
        let master = Master::new(&url, "COMP-1", &Credentials::default()).unwrap();
        let answer = master.request("slappart0", &child_request()).unwrap();
        served.join().unwrap();
        assert_eq!(
            answer,
            Some(BTreeMap::from([
                ("port".into(), "8080".into()),
                ("url".into(), "http://x/".into())
            ]))
        );
    }

    #[test]
    fn a_refusal_says_what_the_master_said() {
        let page = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n\
                    <h1>Not Found</h1>\n<p>No free computer partition found for: x</p>\n";
        let (url, served) = answer_once("404 NOT FOUND", page);
        let master = Master::new(&url, "COMP-1", &Credentials::default()).unwrap();
        let e = master.request("slappart0", &child_request()).unwrap_err();
        served.join().unwrap();
        assert_eq!(
            e.to_string(),
            "the master answered 404 to `requestComputerPartition`: No free computer \
             partition found for: x"
        );
    }

    #[test]
    fn a_key_without_a_certificate_is_refused() {
        let e = Master::new(
            "https://master.example/",
            "COMP-1",
            &Credentials {
                key_file: Some("/nonexistent/key.pem".into()),
                ..Credentials::default()
            },
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("give both"), "{e}");
    }
}
