//! Finding and removing the containers this service left behind: a runner
//! that panicked or was killed, a worker process that crashed.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptionsBuilder;

use super::pool::{POOL_JOB, POOL_NAME_PREFIX};
use super::{
    LABEL_DEPLOYMENT, LABEL_JOB, LABEL_MANAGED, LABEL_QUEUE, LABEL_WORKER, Sandbox, SandboxError,
};

/// A container carrying the service's labels.
#[derive(Debug, Clone)]
pub struct ManagedContainer {
    pub id: String,
    /// The worker process that created it.
    pub worker_id: String,
    /// The job it runs or ran; [`POOL_JOB`] for a container waiting in the
    /// warm pool (a taken one is known by its name, `code-runner-<job>-…`).
    pub job_id: String,
    /// Created for the warm pool.
    pub pooled: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Its queue (`<prefix>:<name>`, [`LABEL_QUEUE`]).
    pub queue: String,
    /// Its deployment ([`LABEL_DEPLOYMENT`]); `None` on a container made
    /// before deployments were labelled.
    pub deployment: Option<String>,
}

impl Sandbox {
    /// Every container with the service's labels, running or not; only
    /// those of `worker_id` when given.
    pub async fn list_managed(
        &self,
        worker_id: Option<&str>,
    ) -> Result<Vec<ManagedContainer>, SandboxError> {
        let mut label_filters = vec![format!("{LABEL_MANAGED}=1")];
        if let Some(worker_id) = worker_id {
            label_filters.push(format!("{LABEL_WORKER}={worker_id}"));
        }
        self.list_labelled(label_filters).await
    }

    /// Every container of this worker's deployment (any worker's): its
    /// queue on its Redis. A container of the same queue name on another
    /// Redis is another deployment's; one with no deployment label (made
    /// by an older version) counts by its queue.
    pub async fn list_queue_containers(&self) -> Result<Vec<ManagedContainer>, SandboxError> {
        let label_filters = vec![
            format!("{LABEL_MANAGED}=1"),
            format!("{LABEL_QUEUE}={}", self.settings().queue),
        ];
        let mut containers = self.list_labelled(label_filters).await?;
        containers.retain(|c| {
            c.deployment
                .as_deref()
                .is_none_or(|d| d == self.settings().deployment)
        });
        Ok(containers)
    }

    async fn list_labelled(
        &self,
        label_filters: Vec<String>,
    ) -> Result<Vec<ManagedContainer>, SandboxError> {
        let filters = HashMap::from([("label".to_string(), label_filters)]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker().list_containers(Some(options)).await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let label_job = labels.get(LABEL_JOB).cloned().unwrap_or_default();
                let pooled = label_job == POOL_JOB;
                let name = c.names.unwrap_or_default().into_iter().next();
                let job_id = match name.as_deref() {
                    Some(name) if pooled => job_of_pooled(name),
                    _ => label_job,
                };
                Some(ManagedContainer {
                    id: c.id?,
                    worker_id: labels.get(LABEL_WORKER).cloned().unwrap_or_default(),
                    job_id,
                    pooled,
                    created: c.created.unwrap_or(0),
                    queue: labels.get(LABEL_QUEUE).cloned().unwrap_or_default(),
                    deployment: labels.get(LABEL_DEPLOYMENT).cloned(),
                })
            })
            .collect())
    }

    /// Removes the given containers; returns how many are gone.
    pub async fn remove_all(&self, containers: &[ManagedContainer]) -> usize {
        let mut removed = 0;
        for c in containers {
            if self.remove(&c.id).await {
                tracing::info!(container = %c.id, job = %c.job_id, worker = %c.worker_id,
                    "removed orphaned container");
                removed += 1;
            }
        }
        removed
    }

    /// Removes the containers of one job (a runner that died mid-run).
    pub async fn remove_job_containers(&self, job_id: &str) -> Result<usize, SandboxError> {
        let own = self.settings().worker_id.clone();
        let mine: Vec<_> = self
            .list_managed(Some(&own))
            .await?
            .into_iter()
            .filter(|c| c.job_id == job_id)
            .collect();
        Ok(self.remove_all(&mine).await)
    }
}

/// The job of a pooled container from its name: [`POOL_JOB`] while it waits
/// (`/code-runner-pool-<id>`), its job's id once taken
/// (`/code-runner-<job>-<8 hex>`).
fn job_of_pooled(name: &str) -> String {
    let name = name.trim_start_matches('/');
    if name.starts_with(POOL_NAME_PREFIX) {
        return POOL_JOB.to_string();
    }
    match name.strip_prefix("code-runner-") {
        Some(rest) if rest.len() > 9 => rest[..rest.len() - 9].to_string(),
        _ => POOL_JOB.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pooled_container_is_known_by_its_name() {
        assert_eq!(job_of_pooled("/code-runner-pool-0123456789ab"), POOL_JOB);
        assert_eq!(
            job_of_pooled("/code-runner-3f1c-9a2e-77-abcdef12"),
            "3f1c-9a2e-77"
        );
        assert_eq!(job_of_pooled("/something-else"), POOL_JOB);
    }
}
