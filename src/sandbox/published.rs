//! The engine as a worker publishes it to the API of its process
//! ([`EngineView`]): versions, images present, its job containers and its
//! warm pool's figures, answered by this worker's sandbox.

use std::sync::Arc;

use super::Sandbox;
use super::pool::{POOL_JOB, WarmPool};
use crate::status::{BoxFuture, EngineSummary, EngineView, PoolStats};

/// A worker's engine and warm pool, as its API reads them.
pub struct Published {
    sandbox: Sandbox,
    pool: Option<Arc<WarmPool>>,
    worker_id: String,
}

impl Published {
    pub fn new(sandbox: Sandbox, pool: Option<Arc<WarmPool>>, worker_id: String) -> Self {
        Published {
            sandbox,
            pool,
            worker_id,
        }
    }
}

impl EngineView for Published {
    fn probe(&self) -> BoxFuture<'_, Result<EngineSummary, String>> {
        Box::pin(async move {
            let info = self
                .sandbox
                .engine_info()
                .await
                .map_err(|e| e.to_string())?;
            Ok(EngineSummary {
                version: info.version,
                api_version: info.api_version,
            })
        })
    }

    fn has_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.sandbox
                .image_versions(image)
                .await
                .ok()
                .flatten()
                .is_some()
        })
    }

    fn job_containers(&self) -> BoxFuture<'_, Result<usize, &'static str>> {
        Box::pin(async move {
            match self.sandbox.list_managed(Some(&self.worker_id)).await {
                Ok(containers) => Ok(containers.iter().filter(|c| c.job_id != POOL_JOB).count()),
                Err(e) => Err(e.kind()),
            }
        })
    }

    fn pool(&self) -> Option<PoolStats> {
        self.pool.as_ref().map(|p| p.stats())
    }
}
