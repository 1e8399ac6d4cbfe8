//! The Docker side, and the only module that talks to the engine.
//!
//! - [`spec`]: the one function that builds a job's hardened container.
//! - [`run`]: one container's lifecycle: create → attach → start → hand the
//!   monitor its task → read its frames (output, artifacts, report) → remove.
//! - [`sweep`]: finds and removes containers this service left behind.
//! - [`images`]: which languages' images this engine has, and their versions.
//!
//! **Invariant:** every container this service creates carries the
//! [`LABEL_MANAGED`] label, the id of the worker that created it, its queue,
//! its deployment (the Redis and queue it serves) and the id of its job, so
//! that a sweep can always find what a crash left behind, and never takes
//! another deployment's (another queue, or the same queue name on another
//! Redis) sharing the engine.

pub mod images;
pub mod overrides;
pub mod pool;
pub mod published;
pub mod recycle;
pub mod run;
pub mod session;
pub mod spec;
pub mod sweep;

use bollard::Docker;

/// A container's output as the engine's attach stream gives it.
pub(crate) type OutputStream = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
            > + Send,
    >,
>;

pub use run::{RunObserver, TaskOutcome, TaskOutput, TaskRequest, Unreported};
pub use session::CaseSession;
pub use spec::ContainerLimits;

/// Marks a container as created by code-runner.
pub const LABEL_MANAGED: &str = "code-runner.managed";
/// The id of the worker process that created the container.
pub const LABEL_WORKER: &str = "code-runner.worker";
/// The id of the job the container runs.
pub const LABEL_JOB: &str = "code-runner.job";
/// The queue (`<prefix>:<name>`) the job came from: workers of other queues
/// sharing the engine leave the container alone.
pub const LABEL_QUEUE: &str = "code-runner.queue";
/// The deployment the container belongs to: the Redis it serves (its
/// address, never its credentials) and the queue. Two services on one
/// engine with the same queue name but different Redis servers are two
/// deployments, and neither touches the other's containers.
pub const LABEL_DEPLOYMENT: &str = "code-runner.deployment";
/// Which step of its job the container runs: `compile`, or `run-<n>`.
pub const LABEL_STEP: &str = "code-runner.step";

/// Errors from the Docker side. None of them is the user's fault: a job that
/// meets one failed for an infrastructure reason.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("Docker engine unreachable: {0}")]
    Unreachable(String),
    #[error("image {image} is missing; build it with docker/build-images.sh")]
    ImageMissing { image: String },
    #[error("Docker refused to create the container safely: {0}")]
    UnsafeCreate(String),
    #[error("the sandbox monitor failed: {0}")]
    Monitor(String),
    #[error("Docker error: {0}")]
    Docker(#[from] bollard::errors::Error),
}

impl SandboxError {
    /// True when the engine could not be reached at all (as opposed to an
    /// error the engine answered with).
    /// A low-cardinality name of the error, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            _ if self.is_unreachable() => "unreachable",
            SandboxError::ImageMissing { .. } => "image_missing",
            SandboxError::UnsafeCreate(_) => "unsafe_create",
            SandboxError::Monitor(_) => "monitor",
            _ => "engine",
        }
    }

    pub fn is_unreachable(&self) -> bool {
        match self {
            SandboxError::Unreachable(_) => true,
            SandboxError::Docker(e) => is_connection_error(e),
            _ => false,
        }
    }
}

fn is_connection_error(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::IOError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
    )
}

/// Settings of the sandbox that do not change per job.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Images are `<image_prefix>/<language image>:latest`.
    pub image_prefix: String,
    /// OCI runtime for job containers (`runsc` for gVisor), or the engine's default.
    pub runtime: Option<String>,
    /// Id of this worker process, written on every container it creates.
    pub worker_id: String,
    /// The queue this worker serves (`<prefix>:<name>`), also written on them.
    pub queue: String,
    /// The deployment it belongs to ([`LABEL_DEPLOYMENT`]), also written on them.
    pub deployment: String,
    /// Operator overrides of host settings, already checked to be harmless
    /// ([`overrides::parse_overrides`]).
    pub overrides: serde_json::Map<String, serde_json::Value>,
}

/// A handle on the Docker engine plus the sandbox settings. Cheap to clone
/// (the client is reference-counted); one per worker process.
#[derive(Clone)]
pub struct Sandbox {
    docker: Docker,
    settings: SandboxSettings,
}

/// What the engine says about itself, for logs and `/readyz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
}

/// The engine's machine, for CPU claims.
#[derive(Debug, Clone, Default)]
pub struct EngineMachine {
    pub id: String,
    pub cpus: u32,
}

pub use crate::language::image_name;

impl Sandbox {
    /// Connects to the engine named by `DOCKER_HOST`, or the local socket,
    /// and agrees on an API version with it.
    pub async fn connect(settings: SandboxSettings) -> Result<Self, SandboxError> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| SandboxError::Unreachable(format!("{e} (is DOCKER_HOST right?)")))?;
        let docker = docker.negotiate_version().await.map_err(|e| {
            SandboxError::Unreachable(format!(
                "{e}; is the Docker engine running? (`make engine` starts it)"
            ))
        })?;
        Ok(Sandbox { docker, settings })
    }

    /// Whether a running container of `limits` can be given other limits
    /// (see [`spec::updatable`]).
    pub fn can_update(&self, limits: &spec::ContainerLimits) -> bool {
        spec::updatable(self.settings(), limits)
    }

    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    /// The engine's version; fails when it does not answer.
    pub async fn engine_info(&self) -> Result<EngineInfo, SandboxError> {
        let v = self.docker.version().await?;
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
        })
    }

    /// The engine's id (the same for every worker that shares it) and how
    /// many CPUs its machine has.
    pub async fn engine_machine(&self) -> Result<EngineMachine, SandboxError> {
        let info = self.docker.info().await?;
        Ok(EngineMachine {
            id: info.id.unwrap_or_default(),
            cpus: info.ncpu.unwrap_or(0).max(0) as u32,
        })
    }

    /// The full image name of a language image folder.
    pub fn image_name(&self, image: &str) -> String {
        image_name(&self.settings.image_prefix, image)
    }

    /// The versions a language image provides (its
    /// [`images::LABEL_VERSIONS`] label: language id → version), or `None`
    /// when the image is missing. An image without the label gives an
    /// empty map.
    pub async fn image_versions(
        &self,
        image: &str,
    ) -> Result<Option<std::collections::HashMap<String, String>>, SandboxError> {
        match self.docker.inspect_image(&self.image_name(image)).await {
            Ok(info) => Ok(Some(
                info.config
                    .and_then(|c| c.labels)
                    .and_then(|labels| labels.get(images::LABEL_VERSIONS).cloned())
                    .and_then(|json| serde_json::from_str(&json).ok())
                    .unwrap_or_default(),
            )),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn docker(&self) -> &Docker {
        &self.docker
    }
}
