//! The `request` recipes of a node's instances, through its SlapOS master: each request is a
//! `requestComputerPartition` on behalf of the requesting partition, and the master places the
//! instance requested where it chooses (this node deploys it when it shows up in
//! `getFullComputerInformation`). What renders went without, because an instance requested
//! with `requestoptional` had not published yet, is kept for the pass (`pass.rs`) to render
//! them again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::slap::Master;
use crate::instance::{Parameters, Requester};
use crate::recipes::slap::Request;

/// The requests of one pass.
pub struct MasterRequests<'a> {
    master: &'a Master,
    /// Partitions rendered without connection parameters of instances they requested: why.
    incomplete: Mutex<BTreeMap<String, String>>,
}

impl<'a> MasterRequests<'a> {
    pub fn new(master: &'a Master) -> MasterRequests<'a> {
        MasterRequests {
            master,
            incomplete: Mutex::new(BTreeMap::new()),
        }
    }

    /// Why the last render of `partition` went without connection parameters of instances
    /// it requested, if it did (forgotten once told).
    pub fn take_incomplete(&self, partition: &str) -> Option<String> {
        self.incomplete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(partition)
    }
}

impl Requester for MasterRequests<'_> {
    fn request(&self, requester: &str, request: &Request) -> Result<Option<Parameters>, String> {
        self.master
            .request(requester, request)
            .map_err(|e| e.to_string())
    }

    fn incomplete(&self, requester: &str, why: String) {
        self.incomplete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(requester.to_owned(), why);
    }
}
