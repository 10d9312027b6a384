//! Where the `request` recipes of a render go. Without a [`Requester`] in the context they go
//! to the local master: the instances requested are this root's, created, upgraded or
//! destroyed by the same operation (`Context::deploy_requests`). With one (`slapstore node`)
//! they go to a SlapOS master, which places the instances requested where it chooses (on this
//! node or another, deployed by a later pass there): the render only gets back what they
//! published, from the master's answers.

use std::collections::BTreeMap;

use slapstore_store::master;

use super::{Context, InstanceError, Parameters, Rendered, Result};
use crate::recipes::slap::Request;

/// A master that takes the requests of the instances a context deploys.
pub trait Requester: Sync {
    /// Asks for `request` on behalf of the instance on partition `requester` (`slappartN`);
    /// what the requested instance published so far, `None` when the master has not placed it
    /// yet. An error is the master's refusal, in words.
    fn request(
        &self,
        requester: &str,
        request: &Request,
    ) -> std::result::Result<Option<Parameters>, String>;

    /// The final render of the instance on partition `requester` went without connection
    /// parameters of instances it requested with `requestoptional`, not published yet (`why`
    /// says which): a later render completes it.
    fn incomplete(&self, requester: &str, why: String);
}

impl Context<'_> {
    /// Asks `requester` for each of `requests` on behalf of the instance on partition
    /// `partition`; what each instance that published something published, by requested
    /// title (one that published nothing yet is absent, as a child not deployed yet is for the
    /// local master).
    pub(super) fn request_remotely(
        &self,
        requester: &dyn Requester,
        partition: i64,
        requests: &[Request],
    ) -> Result<BTreeMap<String, Parameters>> {
        let id = master::partition_id(partition);
        let mut published = BTreeMap::new();
        for request in requests {
            let answer = requester.request(&id, request).map_err(|e| {
                InstanceError::Usage(format!(
                    "part `{}` requests `{}` (software type `{}`, {}) from the master: {e}",
                    request.part, request.title, request.software_type, request.state
                ))
            })?;
            if let Some(connection) = answer.filter(|c| !c.is_empty()) {
                published.insert(request.title.clone(), connection);
            }
        }
        Ok(published)
    }

    /// After the final render of the instance on partition `partition`: a `request` whose
    /// instance has not published what its `return` names is an instance waiting for it
    /// ([`InstanceError::Waiting`]); a `requestoptional` one is told to `requester`.
    pub(super) fn check_published(
        &self,
        requester: &dyn Requester,
        partition: i64,
        rendered: &Rendered,
    ) -> Result<()> {
        let unpublished = |optional: bool| {
            rendered
                .output
                .requests
                .iter()
                .filter(|r| {
                    r.optional == optional
                        && !r.missing.is_empty()
                        && r.state != master::State::Destroyed.as_str()
                })
                .map(|r| {
                    let keys: Vec<String> = r.missing.iter().map(|k| format!("`{k}`")).collect();
                    format!(
                        "`{}` (part `{}`) has not published {} yet",
                        r.title,
                        r.part,
                        keys.join(", ")
                    )
                })
                .collect::<Vec<_>>()
        };
        let waiting = unpublished(false);
        if !waiting.is_empty() {
            return Err(InstanceError::Waiting(format!(
                "waiting for the instances it requested: {}",
                waiting.join("; ")
            )));
        }
        let incomplete = unpublished(true);
        if !incomplete.is_empty() {
            requester.incomplete(&master::partition_id(partition), incomplete.join("; "));
        }
        Ok(())
    }
}
