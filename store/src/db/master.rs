//! The local master: slapstore's record of what a SlapOS master knows of a computer, in the
//! shape of SlapOS's (and of slapproxy's tables), so that the same model serves a node of a
//! real master (`slapstore node`).
//!
//! - The **computer** has an id and addresses ([`Computer`], from `etc/slapstore.toml`) and
//!   partitions `slappart0`, `slappart1`, ...: each instance is on one, each partition hosts at
//!   most one instance (a unique index), and a new instance takes the lowest free one.
//! - **Software releases** are the installed software (`software` table, `Db::installed`).
//! - Each **instance** has a software release (URL and store path), a software type,
//!   parameters, a requested state, the connection parameters it published, and, when
//!   another instance requested it, that parent and the title it was requested under.
//! - A **request** ([`Request`]): a release, software type or parameters asked of an instance
//!   that no generation deploys yet (what a SlapOS master holds between `slapos request` and
//!   the node's next pass), made against its current generation.
//! - **Shared (slave) instances** ([`Shared`]): no partition and no generation of their own;
//!   the instance hosting them is given each one's title, software type and parameters in its
//!   `slave-instance-list`, as SlapOS's master gives them (`slapos request --slave`).
//!
//! Release, software type, parameters and connection parameters belong to the instance's
//! generation (so a rollback restores them all, and a generation's published parameters are
//! committed with it); partition, requested state, parent and a pending request belong to the
//! instance.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};

use super::{db_error, Db};
use crate::error::{Result, StoreError};

/// `key = value` parameters (instance parameters, connection parameters).
pub type Parameters = BTreeMap<String, String>;

/// The software type of an instance nobody asked a type of.
pub const DEFAULT_SOFTWARE_TYPE: &str = "default";

/// The computer this root is: its id and addresses (SlapOS's `slapos.cfg`/`slapformat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computer {
    pub id: String,
    /// The IPv4 addresses each partition may use.
    pub ipv4: Vec<String>,
    /// The IPv6 addresses each partition may use.
    pub ipv6: Vec<String>,
    /// How many partitions the computer has; `None`: as many as its instances need.
    pub partition_count: Option<u32>,
    /// The master's URL, as an instance's `[slap-connection] server-url` gives it.
    pub server_url: String,
}

impl Default for Computer {
    /// The local computer: `slapstore`, on the loopback addresses.
    fn default() -> Computer {
        Computer {
            id: "slapstore".to_owned(),
            ipv4: vec!["127.0.0.1".to_owned()],
            ipv6: vec!["::1".to_owned()],
            partition_count: None,
            server_url: "slapstore:local".to_owned(),
        }
    }
}

/// The state the master asks of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Started,
    Stopped,
    Destroyed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Started => "started",
            State::Stopped => "stopped",
            State::Destroyed => "destroyed",
        }
    }

    /// `started`, `stopped` or `destroyed`.
    pub fn parse(text: &str) -> Option<State> {
        Some(match text {
            "started" => State::Started,
            "stopped" => State::Stopped,
            "destroyed" => State::Destroyed,
            _ => return None,
        })
    }
}

/// The name SlapOS gives partition `number`.
pub fn partition_id(number: i64) -> String {
    format!("slappart{number}")
}

/// One partition of the computer, and the instance it hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub number: i64,
    pub instance: Option<String>,
}

impl Partition {
    /// `slappartN`.
    pub fn id(&self) -> String {
        partition_id(self.number)
    }
}

/// An instance as the master sees it: its partition, what was requested of it (from its
/// current generation) and what it published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub partition: i64,
    /// The title it was requested under (its name when the user made it).
    pub title: String,
    /// The instance that requested it.
    pub parent: Option<String>,
    pub requested_state: State,
    /// The software release's URL, and its store path (base name).
    pub software_url: String,
    pub release: String,
    pub software_type: String,
    pub parameters: Parameters,
    pub connection: Parameters,
    /// Its current generation: number and output (base name).
    pub current: i64,
    pub generation: String,
    /// What was requested of it since, if anything (still to deploy).
    pub request: Option<Request>,
}

impl Instance {
    /// `slappartN`.
    pub fn partition_id(&self) -> String {
        partition_id(self.partition)
    }

    /// The request still to deploy: the pending one, unless a newer generation superseded it.
    pub fn pending(&self) -> Option<&Request> {
        self.request.as_ref().filter(|r| r.base == self.current)
    }
}

/// What is asked of an instance that its current generation does not deploy yet
/// (`instance request`; `instance reconcile` deploys it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub software_url: String,
    pub software_type: String,
    /// All of them (a request gives them all, as SlapOS's does).
    pub parameters: Parameters,
    /// The generation it was made against: once another is current (an upgrade or a rollback
    /// since), the request is superseded.
    pub base: i64,
}

/// A shared (slave) instance: hosted by an instance, to which its parameters are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub name: String,
    pub host: String,
    pub software_type: String,
    pub parameters: Parameters,
}

impl Shared {
    /// Its entry in its host's `slave_instance_list`, as slapproxy makes it: its parameters,
    /// with `slave_title`, `slave_reference` (both its name) and `slap_software_type`.
    pub fn entry(&self) -> serde_json::Value {
        let mut map: serde_json::Map<String, serde_json::Value> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        for (key, value) in [
            ("slave_title", &self.name),
            ("slave_reference", &self.name),
            ("slap_software_type", &self.software_type),
        ] {
            map.insert(key.to_owned(), serde_json::Value::String(value.clone()));
        }
        serde_json::Value::Object(map)
    }
}

fn shared_row(r: &rusqlite::Row) -> rusqlite::Result<Shared> {
    let parameters: String = r.get(3)?;
    Ok(Shared {
        name: r.get(0)?,
        host: r.get(1)?,
        software_type: r.get(2)?,
        parameters: serde_json::from_str(&parameters).unwrap_or_default(),
    })
}

const SHARED_SELECT: &str = "SELECT name, host, software_type, parameters FROM shared_instances";

/// Why no partition could be allocated.
pub(super) enum Allocation {
    /// All `count` partitions host an instance.
    Full(u32),
    Db(rusqlite::Error),
}

/// The lowest partition number no instance is on (within `count`).
pub(super) fn free_partition(
    conn: &rusqlite::Connection,
    count: Option<u32>,
) -> std::result::Result<i64, Allocation> {
    let number: i64 = conn
        .prepare_cached(
            "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM instances WHERE partition_number = 0)
             THEN 0 ELSE (SELECT MIN(p.partition_number + 1) FROM instances AS p
                          WHERE p.partition_number IS NOT NULL AND NOT EXISTS
                          (SELECT 1 FROM instances AS q
                           WHERE q.partition_number = p.partition_number + 1)) END",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(Allocation::Db)?;
    match count {
        Some(count) if number >= i64::from(count) => Err(Allocation::Full(count)),
        _ => Ok(number),
    }
}

const INSTANCE_SELECT: &str = "SELECT i.name, i.partition_number, i.title, i.parent,
        i.requested_state, g.software_url, g.release, g.software_type, g.parameters,
        g.connection, i.current, g.path, i.request
    FROM instances AS i JOIN generations AS g ON g.instance = i.name AND g.number = i.current";

fn instance_row(r: &rusqlite::Row) -> rusqlite::Result<Instance> {
    let name: String = r.get(0)?;
    let json = |i: usize| -> rusqlite::Result<Parameters> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    Ok(Instance {
        partition: r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
        title: r
            .get::<_, Option<String>>(2)?
            .unwrap_or_else(|| name.clone()),
        parent: r.get(3)?,
        requested_state: State::parse(&r.get::<_, String>(4)?).unwrap_or(State::Started),
        software_url: r.get(5)?,
        release: r.get(6)?,
        software_type: r.get(7)?,
        parameters: json(8)?,
        connection: json(9)?,
        current: r.get(10)?,
        generation: r.get(11)?,
        request: r
            .get::<_, Option<String>>(12)?
            .and_then(|text| serde_json::from_str(&text).ok()),
        name,
    })
}

impl Db {
    /// The computer's partitions: `partition_count` of them, or, when it has no count, one more
    /// than the highest in use (so the list always shows a free one).
    pub fn partitions(&self, computer: &Computer) -> Result<Vec<Partition>> {
        let used: BTreeMap<i64, String> = self
            .rows(
                "SELECT partition_number, name FROM instances WHERE partition_number IS NOT NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect();
        let count = match computer.partition_count {
            Some(n) => i64::from(n),
            None => used.keys().next_back().map_or(1, |n| n + 2),
        };
        Ok((0..count.max(used.keys().next_back().map_or(0, |n| n + 1)))
            .map(|number| Partition {
                number,
                instance: used.get(&number).cloned(),
            })
            .collect())
    }

    /// The `n` lowest partition numbers no instance is on, nor in `reserved` (for instances
    /// being made, not recorded yet), for instances about to be made
    /// (`NewGeneration::partition_number`; the unique index refuses a number taken since).
    pub fn free_partitions(
        &self,
        n: usize,
        computer: &Computer,
        reserved: &[i64],
    ) -> Result<Vec<i64>> {
        let used: std::collections::HashSet<i64> = self
            .rows(
                "SELECT partition_number FROM instances WHERE partition_number IS NOT NULL",
                [],
                |r| r.get(0),
            )?
            .into_iter()
            .collect();
        let free: Vec<i64> = (0..)
            .filter(|p| !used.contains(p) && !reserved.contains(p))
            .take(n)
            .collect();
        if let (Some(count), Some(last)) = (computer.partition_count, free.last()) {
            if *last >= i64::from(count) {
                return Err(StoreError::NoFreePartition {
                    instance: String::new(),
                    count,
                });
            }
        }
        Ok(free)
    }

    /// One instance as the master sees it.
    pub fn master_instance(&self, name: &str) -> Result<Option<Instance>> {
        self.conn
            .prepare_cached(&format!("{INSTANCE_SELECT} WHERE i.name = ?1"))
            .and_then(|mut s| s.query_row([name], instance_row).optional())
            .map_err(|e| self.err(e))
    }

    /// Every instance as the master sees it, by name.
    pub fn master_instances(&self) -> Result<Vec<Instance>> {
        self.rows(
            &format!("{INSTANCE_SELECT} ORDER BY i.name"),
            [],
            instance_row,
        )
    }

    /// The instances `parent` requested, by name.
    pub fn children(&self, parent: &str) -> Result<Vec<Instance>> {
        self.rows(
            &format!("{INSTANCE_SELECT} WHERE i.parent = ?1 ORDER BY i.name"),
            [parent],
            instance_row,
        )
    }

    /// The instance `parent` requested under `title`, if any.
    pub fn child(&self, parent: &str, title: &str) -> Result<Option<Instance>> {
        self.conn
            .prepare_cached(&format!(
                "{INSTANCE_SELECT} WHERE i.parent = ?1 AND i.title = ?2"
            ))
            .and_then(|mut s| s.query_row([parent, title], instance_row).optional())
            .map_err(|e| self.err(e))
    }

    /// The connection parameters of `name`'s current generation (`None`: no such instance).
    pub fn connection(&self, name: &str) -> Result<Option<Parameters>> {
        Ok(self.master_instance(name)?.map(|i| i.connection))
    }

    /// Records the state requested of `name`.
    pub fn set_requested_state(&mut self, name: &str, state: State) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE instances SET requested_state = ?2 WHERE name = ?1",
                params![name, state.as_str()],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(StoreError::NotValid(format!("instance `{name}`")));
        }
        Ok(())
    }

    /// Records what is requested of `name` (its release, software type, parameters), for
    /// `instance reconcile` to deploy; `None` forgets a pending request.
    pub fn set_request(&mut self, name: &str, request: Option<&Request>) -> Result<()> {
        let text = request.map(|r| serde_json::to_string(r).unwrap_or_default());
        let changed = self
            .conn
            .execute(
                "UPDATE instances SET request = ?2 WHERE name = ?1",
                params![name, text],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(StoreError::NotValid(format!("instance `{name}`")));
        }
        Ok(())
    }

    /// Records (or replaces) the shared instance `shared.name`, hosted by `shared.host`; an
    /// error when an instance (not shared) has that name or the host does not exist.
    pub fn set_shared(&mut self, shared: &Shared, now: i64) -> Result<()> {
        if self.instance(&shared.name)?.is_some() {
            return Err(StoreError::InstanceExists(shared.name.clone()));
        }
        if self.instance(&shared.host)?.is_none() {
            return Err(StoreError::NotValid(format!("instance `{}`", shared.host)));
        }
        let parameters = serde_json::to_string(&shared.parameters).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO shared_instances (name, host, software_type, parameters, created)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET
                 host = ?2, software_type = ?3, parameters = ?4",
                params![
                    shared.name,
                    shared.host,
                    shared.software_type,
                    parameters,
                    now
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The shared instance `name`, if any.
    pub fn shared(&self, name: &str) -> Result<Option<Shared>> {
        self.conn
            .prepare_cached(&format!("{SHARED_SELECT} WHERE name = ?1"))
            .and_then(|mut s| s.query_row([name], shared_row).optional())
            .map_err(|e| self.err(e))
    }

    /// The shared instances `host` hosts, by name.
    pub fn shared_by(&self, host: &str) -> Result<Vec<Shared>> {
        self.rows(
            &format!("{SHARED_SELECT} WHERE host = ?1 ORDER BY name"),
            [host],
            shared_row,
        )
    }

    /// Every shared instance, by name.
    pub fn all_shared(&self) -> Result<Vec<Shared>> {
        self.rows(&format!("{SHARED_SELECT} ORDER BY name"), [], shared_row)
    }

    /// Forgets the shared instance `name`; whether there was one.
    pub fn remove_shared(&mut self, name: &str) -> Result<bool> {
        let changed = self
            .conn
            .execute("DELETE FROM shared_instances WHERE name = ?1", [name])
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    /// Replaces the connection parameters of `name`'s current generation (what a node posts
    /// after the instance ran; rendering records them with the generation instead).
    pub fn publish(&mut self, name: &str, connection: &Parameters) -> Result<()> {
        let text = serde_json::to_string(connection).unwrap_or_default();
        let path = self.path.clone();
        let changed = self
            .conn
            .execute(
                "UPDATE generations SET connection = ?2 WHERE instance = ?1
                 AND number = (SELECT current FROM instances WHERE name = ?1)",
                params![name, text],
            )
            .map_err(|e| db_error(&path, e))?;
        if changed == 0 {
            return Err(StoreError::NotValid(format!("instance `{name}`")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GenerationRow, NewGeneration};
    use super::*;

    fn new(name: &str, requested_by: Option<(&str, &str)>) -> NewGeneration {
        NewGeneration {
            partition: format!("/p/{name}"),
            row: GenerationRow {
                instance: name.into(),
                number: 1,
                path: format!("{name}-instance"),
                release: "r".into(),
                parameters: r#"{"a":"1"}"#.into(),
                parent: None,
                created: 0,
                deleted: false,
                software_type: "front".into(),
                software_url: "/s/software.cfg".into(),
                connection: r#"{"url":"http://x"}"#.into(),
            },
            expect_new: true,
            requested_by: requested_by.map(|(p, t)| (p.into(), t.into())),
            partition_number: None,
        }
    }

    #[test]
    fn partitions_are_allocated_lowest_first_and_hold_one_instance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Db::open(&dir.path().join("db.sqlite")).expect("open");
        db.add_generations(&[new("a", None), new("b", None), new("c", None)], Some(3))
            .expect("record");
        let computer = Computer {
            partition_count: Some(3),
            ..Computer::default()
        };
        let parts = db.partitions(&computer).expect("partitions");
        assert_eq!(
            parts
                .iter()
                .map(|p| p.instance.as_deref())
                .collect::<Vec<_>>(),
            [Some("a"), Some("b"), Some("c")]
        );
        // full: the batch is refused, nothing recorded
        let err = db.add_generations(&[new("d", None)], Some(3));
        assert!(
            matches!(err, Err(StoreError::NoFreePartition { count: 3, .. })),
            "{err:?}"
        );
        assert!(db.instance("d").expect("query").is_none());
        // a freed partition is taken again
        db.delete_instance("b").expect("delete");
        db.add_generations(&[new("e", Some(("a", "E")))], Some(3))
            .expect("record");
        let e = db.master_instance("e").expect("query").expect("e");
        assert_eq!(e.partition_id(), "slappart1");
        assert_eq!((e.parent.as_deref(), e.title.as_str()), (Some("a"), "E"));
        assert_eq!(e.software_type, "front");
        assert_eq!(e.parameters["a"], "1");
        assert_eq!(e.requested_state, State::Started);
        assert_eq!(db.children("a").expect("children")[0].name, "e");
        assert_eq!(db.child("a", "E").expect("child").expect("e").name, "e");
        // unbounded: one more than the highest in use is listed free
        let parts = db.partitions(&Computer::default()).expect("partitions");
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[3].instance, None);

        let mut published = Parameters::new();
        published.insert("url".into(), "http://y".into());
        db.publish("e", &published).expect("publish");
        assert_eq!(db.connection("e").expect("query"), Some(published));
        db.set_requested_state("e", State::Stopped).expect("state");
        assert_eq!(
            db.master_instance("e")
                .expect("q")
                .expect("e")
                .requested_state,
            State::Stopped
        );
        assert!(db.set_requested_state("zz", State::Stopped).is_err());
        // a request is pending until a newer generation supersedes it
        let request = Request {
            software_url: "/s/v2.cfg".into(),
            software_type: "front".into(),
            parameters: [("a".to_owned(), "2".to_owned())].into(),
            base: 1,
        };
        db.set_request("e", Some(&request)).expect("request");
        let e = db.master_instance("e").expect("q").expect("e");
        assert_eq!((e.current, e.generation.as_str()), (1, "e-instance"));
        assert_eq!(e.pending(), Some(&request));
        let superseded = Request { base: 0, ..request };
        db.set_request("e", Some(&superseded)).expect("request");
        let e = db.master_instance("e").expect("q").expect("e");
        assert_eq!(e.request, Some(superseded));
        assert_eq!(e.pending(), None, "made against another generation");
        db.set_request("e", None).expect("forget");
        assert_eq!(
            db.master_instance("e").expect("q").expect("e").request,
            None
        );
        assert!(db.set_request("zz", None).is_err());
        assert_eq!(
            db.free_partitions(2, &Computer::default(), &[])
                .expect("free"),
            [3, 4]
        );
        assert_eq!(
            db.free_partitions(2, &Computer::default(), &[3])
                .expect("free"),
            [4, 5]
        );
        assert!(db.free_partitions(2, &computer, &[]).is_err());
        // shared instances: hosted, not partitions, gone with their host
        let shared = Shared {
            name: "s1".into(),
            host: "e".into(),
            software_type: "custom".into(),
            parameters: [("url".to_owned(), "http://s1".to_owned())].into(),
        };
        db.set_shared(&shared, 0).expect("shared");
        assert_eq!(db.shared_by("e").expect("q"), std::slice::from_ref(&shared));
        assert_eq!(
            shared.entry(),
            serde_json::json!({"url": "http://s1", "slave_title": "s1",
                               "slave_reference": "s1", "slap_software_type": "custom"})
        );
        let moved = Shared {
            host: "a".into(),
            ..shared.clone()
        };
        db.set_shared(&moved, 0).expect("replaced");
        assert_eq!(db.shared("s1").expect("q"), Some(moved));
        assert!(db.shared_by("e").expect("q").is_empty());
        let clash = Shared {
            name: "e".into(),
            ..shared.clone()
        };
        assert!(db.set_shared(&clash, 0).is_err(), "an instance's name");
        let orphan = Shared {
            host: "zz".into(),
            ..shared.clone()
        };
        assert!(db.set_shared(&orphan, 0).is_err(), "no such host");
        db.delete_instance("a").expect("delete");
        assert_eq!(db.all_shared().expect("q"), []);
        db.set_shared(&shared, 0).expect("shared");
        assert!(db.remove_shared("s1").expect("remove"));
        assert!(!db.remove_shared("s1").expect("remove"));
    }
}
