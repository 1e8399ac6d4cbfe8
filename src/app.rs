//! Wiring: builds the parts for one role and starts them.
//!
//! - `serve`: HTTP API + supervisor with registry and dispatcher (one machine).
//! - `api`: HTTP API + supervisor with the registry only (stateless).
//! - `worker`: supervisor with registry and dispatcher, no HTTP.
//!
//! [`App::start`] returns once everything is up and the HTTP listener is
//! bound, exposing its address (tests bind port 0).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;

use crate::actors::dispatcher::DispatcherMsg;
use crate::actors::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::actors::{RegistryHandle, WorkerServices};
use crate::callback::CallbackSender;
use crate::callback::policy::DestinationPolicy;
use crate::config::{Config, hostname};
use crate::execute::ExecutionSettings;
use crate::http::admin::admin_router;
use crate::http::auth::{AccessPolicy, ApiKeys, RequestLimiter};
use crate::http::origin::BrowserPolicy;
use crate::http::serve::{ListenerLimits, serve};
use crate::http::{AppState, Intake, LocalView, router};
use crate::language::LanguageTable;
use crate::queue::deliveries::{DeliverySettings, DeliveryWorker};
use crate::queue::embedded::{EmbeddedRedis, ensure_default_redis};
use crate::queue::events::JobEvents;
use crate::queue::sentinel::{SentinelProxy, SentinelUrl};
use crate::queue::worker::WorkerSettings;
use crate::queue::{EnqueueOptions, JobQueue, QueueSettings};
use crate::sandbox::overrides::parse_overrides;
use crate::sandbox::pool::{PoolSettings, WarmPool};
use crate::sandbox::{Sandbox, SandboxSettings};

/// Which parts a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Serve,
    Api,
    Worker,
}

impl Role {
    fn serves_http(self) -> bool {
        matches!(self, Role::Serve | Role::Api)
    }

    fn runs_jobs(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
}

/// The job API's guard from the configuration: keys when configured, and
/// never an open listener beyond loopback unless explicitly asked for.
fn access_policy(config: &Config) -> anyhow::Result<AccessPolicy> {
    let mut entries = config.api_keys.clone().unwrap_or_default();
    if let Some(path) = &config.api_keys_file {
        let file = std::fs::read_to_string(path)
            .with_context(|| format!("reading CODE_RUNNER_API_KEYS_FILE {}", path.display()))?;
        entries.push('\n');
        entries.push_str(&file);
    }
    let keys = ApiKeys::parse(&entries).map_err(anyhow::Error::msg)?;
    let keys = if config.auth == "off" {
        if !keys.is_empty() {
            tracing::warn!("CODE_RUNNER_AUTH=off: the configured API keys are not checked");
        }
        None
    } else if keys.is_empty() {
        if !config.listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing to serve the job API on {} without API keys: set \
                 CODE_RUNNER_API_KEYS (`code-runner new-key <name>` makes one), or \
                 CODE_RUNNER_AUTH=off behind a gateway that authenticates",
                config.listen
            );
        }
        None
    } else {
        Some(Arc::new(keys))
    };
    let (submit_per_minute, requests_per_minute) = (
        config.submit_rate_per_minute(),
        config.request_rate_per_minute(),
    );
    tracing::info!(
        submit_per_minute,
        requests_per_minute,
        "rate limits per caller (0: none)"
    );
    Ok(AccessPolicy {
        keys,
        submit_per_minute,
        requests: RequestLimiter::new(requests_per_minute).map(Arc::new),
        max_jobs_per_caller: config.jobs_per_caller(),
    })
}

/// This worker's id: the one recorded in the data directory, so that a
/// worker started again after a crash knows the containers it left as its
/// own (and removes them at once). A second worker on the same data
/// directory (the file is locked) gets a fresh id.
fn worker_identity(data_dir: &std::path::Path) -> (String, Option<std::fs::File>) {
    let fresh = || {
        format!(
            "{}-{}",
            hostname(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    };
    let recorded = || -> std::io::Result<(String, std::fs::File)> {
        std::fs::create_dir_all(data_dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("worker-id.lock"))?;
        lock.try_lock()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let path = data_dir.join("worker-id");
        let id = match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => {
                let id = fresh();
                std::fs::write(&path, &id)?;
                id
            }
        };
        Ok((id, lock))
    };
    match recorded() {
        Ok((id, lock)) => (id, Some(lock)),
        Err(e) => {
            tracing::warn!(error = %e, dir = %data_dir.display(),
                "cannot use the data directory's worker id; using a fresh one");
            (fresh(), None)
        }
    }
}

/// A started service.
pub struct App {
    /// Held while this process is the worker named in the data directory.
    _identity_lock: Option<std::fs::File>,
    /// Takes owed webhook deliveries (processes that run jobs).
    deliveries: Option<DeliveryWorker>,
    /// Keeps Redis within its memory budget (processes that run jobs).
    _retention: Option<crate::queue::memory::Retention>,
    addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: JoinHandle<()>,
    server: Option<(
        tokio::sync::watch::Sender<bool>,
        JoinHandle<std::io::Result<()>>,
    )>,
    embedded_redis: Option<EmbeddedRedis>,
    /// The forwarder to the primary, with a `redis+sentinel://` URL.
    _sentinel: Option<SentinelProxy>,
    registry: RegistryHandle,
    queue: JobQueue,
    sandbox: Option<Sandbox>,
    worker_id: Option<String>,
}

impl App {
    pub async fn start(role: Role, mut config: Config) -> anyhow::Result<App> {
        config.validate().map_err(anyhow::Error::msg)?;
        // A bad webhook allow-list refuses to start before anything else.
        DestinationPolicy::new(&config.callback_allow, &[]).map_err(anyhow::Error::msg)?;
        crate::metrics::install();
        let languages = Arc::new(
            LanguageTable::load(config.languages_file.as_deref())
                .context("loading the language table")?,
        );
        crate::metrics::known_languages(languages.ids().into_iter().map(str::to_string));

        let embedded_redis = if role == Role::Serve && config.redis_url.is_none() {
            let default =
                ensure_default_redis(&config.data_dir, config.embedded_redis_maxmemory_mb).await?;
            // The embedded server's password is in its URL from here on.
            config.redis_url = Some(default.url);
            default.embedded
        } else {
            None
        };
        let mut queue_settings = QueueSettings::from_config(&config).map_err(anyhow::Error::msg)?;
        // Sentinel: every connection goes through a forwarder to the
        // primary the sentinels name.
        let sentinel =
            match SentinelUrl::parse(&queue_settings.redis_url).map_err(anyhow::Error::msg)? {
                Some(target) => {
                    let proxy = SentinelProxy::start(target)
                        .await
                        .map_err(anyhow::Error::msg)?;
                    queue_settings.redis_url = proxy.url().to_string();
                    Some(proxy)
                }
                None => None,
            };
        let queue = JobQueue::connect(queue_settings.clone()).await?;
        // Where webhooks may go: never to this service's own listeners or
        // its Redis on this machine (the bound ports are added once known).
        let redis_port = reqwest::Url::parse(&config.redis_url_or_default())
            .ok()
            .and_then(|u| u.port())
            .unwrap_or(6379);
        let callback_policy = Arc::new(
            DestinationPolicy::new(
                &config.callback_allow,
                &[config.listen.port(), config.admin_listen.port(), redis_port],
            )
            .map_err(anyhow::Error::msg)?,
        );
        let default_limits = config.default_limits();
        let max_limits = config.max_limits();
        let registry = RegistryHandle::default();

        let mut identity_lock = None;
        let mut deliveries = None;
        let (worker, sandbox, worker_id) = if role.runs_jobs() {
            if let Some((asked, cpus)) = config.oversubscription() {
                tracing::warn!(
                    concurrency = config.concurrency,
                    cpus_per_job = config.cpus,
                    "jobs may ask for {asked} CPUs at once on a machine with {cpus}: \
                     CPU-bound programs will be slowed by their neighbours and may miss \
                     wall-clock limits they meet alone (CODE_RUNNER_CONCURRENCY defaults to \
                     the number of CPUs)"
                );
            }
            let (worker_id, lock) = worker_identity(&config.data_dir);
            identity_lock = lock;
            let sandbox = Sandbox::connect(SandboxSettings {
                image_prefix: config.image_prefix.clone(),
                runtime: config.runtime.clone(),
                worker_id: worker_id.clone(),
                queue: format!("{}:{}", queue_settings.prefix, queue_settings.queue_name),
                deployment: queue_settings.deployment(),
                overrides: match &config.container_overrides {
                    Some(json) => parse_overrides(json).map_err(anyhow::Error::msg)?,
                    None => serde_json::Map::new(),
                },
            })
            .await?;
            let engine = sandbox.engine_info().await?;
            tracing::info!(version = %engine.version, api = %engine.api_version, "Docker engine");
            // A CPU of its own per worker slot, where that is possible:
            // neighbours' processes then never run on a job's CPU.
            // Workers sharing the engine each claim CPUs no other holds.
            let engine = sandbox.engine_machine().await.unwrap_or_default();
            let slot_cpus = if config.cpus == 1.0
                && config.concurrency <= engine.cpus
                && !sandbox.settings().overrides.contains_key("CpusetCpus")
            {
                let claimed = queue
                    .claim_cpus(
                        &engine.id,
                        &worker_id,
                        config.concurrency,
                        engine.cpus,
                        crate::job::now_ms(),
                    )
                    .await?;
                if claimed.is_empty() {
                    tracing::warn!(
                        engine_cpus = engine.cpus,
                        concurrency = config.concurrency,
                        "other workers on this Docker engine hold its CPUs: this worker's \
                         jobs are not pinned to CPUs of their own (lower \
                         CODE_RUNNER_CONCURRENCY on the workers sharing it)"
                    );
                }
                claimed
            } else {
                Vec::new()
            };
            tracing::info!(
                cpus = ?slot_cpus,
                engine_cpus = engine.cpus,
                concurrency = config.concurrency,
                "CPU pinning (a CPU of its own per worker slot)"
            );
            let images = Arc::new(crate::sandbox::images::LanguageImages::default());
            match images.check(&sandbox, &languages).await {
                Ok(_) => {
                    let missing = images.missing().unwrap_or_default();
                    if !missing.is_empty() {
                        tracing::warn!(
                            languages = ?missing,
                            "runner images missing: their jobs wait (delayed) until the \
                             images are built (docker/build-images.sh)"
                        );
                    }
                    if let Err(e) = queue.publish_versions(&images.versions()).await {
                        tracing::warn!(error = %e, "cannot publish language versions");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot check runner images"),
            }
            let callback_secret = match &config.callback_secret {
                Some(secret) => secret.clone().into_bytes(),
                None => {
                    tracing::warn!(
                        "CODE_RUNNER_CALLBACK_SECRET is not set: webhooks are signed with a \
                         random secret of this process, which receivers cannot verify"
                    );
                    uuid::Uuid::new_v4().simple().to_string().into_bytes()
                }
            };
            let extra_roots = match &config.callback_ca_file {
                Some(path) => CallbackSender::read_roots(path).map_err(anyhow::Error::msg)?,
                None => Vec::new(),
            };
            let sender =
                CallbackSender::new(&callback_secret, callback_policy.clone(), extra_roots);
            deliveries = Some(
                DeliveryWorker::start(
                    &queue,
                    &DeliverySettings {
                        worker_id: worker_id.clone(),
                        concurrency: 16,
                        lock_duration: std::time::Duration::from_millis(config.lock_duration_ms),
                    },
                    move |delivery, _attempt| {
                        let sender = sender.clone();
                        async move { sender.attempt(&delivery).await }
                    },
                )
                .await?,
            );
            let services = Arc::new(WorkerServices {
                queue: queue.clone(),
                queue_settings: queue_settings.clone(),
                worker_settings: WorkerSettings::from_config(&config, worker_id.clone()),
                sandbox: sandbox.clone(),
                languages: languages.clone(),
                registry: registry.clone(),
                default_limits,
                max_limits,
                execution: ExecutionSettings {
                    cpus: config.cpus,
                    tmpfs_bytes: config.tmpfs_mb << 20,
                    uid: config.sandbox_uid_base,
                    max_result_bytes: config.max_result_bytes as usize,
                    cpuset: None,
                    idle_time_ms: config.idle_time_limit_ms,
                    cases_share_container: config.cases_share_container,
                },
                interactive_grace: std::time::Duration::from_millis(config.interactive_grace_ms),
                slot_cpus,
                images,
                pool: WarmPool::start(
                    sandbox.clone(),
                    PoolSettings {
                        size: config.pool_size as usize,
                        sizes: config.pool_sizes.clone(),
                        parallel: config.pool_refill_parallel as usize,
                        slots: config.concurrency as usize,
                        recycle: config.recycle,
                        recycle_jobs: config.recycle_max_jobs,
                        recycle_age: std::time::Duration::from_secs(config.recycle_max_seconds),
                    },
                ),
                shutdown_grace: config.shutdown_grace(),
                fault_injection: config.fault_injection,
            });
            (Some(services), Some(sandbox), Some(worker_id))
        } else {
            (None, None, None)
        };

        let pool = worker.as_ref().map(|w| w.pool.clone());
        let (supervisor, supervisor_done) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                registry: registry.clone(),
                worker,
            },
        )
        .await
        .context("starting the actor tree")?;

        let access = if role.serves_http() {
            access_policy(&config)?
        } else {
            AccessPolicy::open()
        };
        if role.serves_http()
            && !config.admin_listen.ip().is_loopback()
            && config.admin_token.is_none()
        {
            anyhow::bail!(
                "refusing to serve the admin listener on {} without CODE_RUNNER_ADMIN_TOKEN \
                 (or bind CODE_RUNNER_ADMIN_LISTEN to 127.0.0.1)",
                config.admin_listen
            );
        }

        let (addr, admin_addr, server) = if role.serves_http() {
            let browser = Arc::new(
                BrowserPolicy::api(
                    &config.api_hosts,
                    &config.cors_origins,
                    access.keys.is_some(),
                )
                .map_err(anyhow::Error::msg)?,
            );
            let state = AppState {
                queue: queue.clone(),
                registry: registry.clone(),
                languages,
                events: Arc::new(JobEvents::start(&queue_settings).await?),
                intake: Arc::new(Intake {
                    default_limits,
                    max_limits,
                    max_code_bytes: config.max_code_bytes as usize,
                    max_test_cases: config.max_test_cases as usize,
                    max_batch: config.max_batch as usize,
                    max_batch_bytes: config.max_batch_bytes as usize,
                    max_wait: std::time::Duration::from_millis(config.max_wait_ms),
                    access,
                    max_queue_depth: config.max_queue_depth,
                    depth: Default::default(),
                    unready: Default::default(),
                    redis_room: crate::http::admission::RedisRoom::new(
                        config.redis_memory_budget_mb.map(|mb| mb << 20),
                        crate::config::DEFAULT_REDIS_MEMORY_BUDGET,
                    ),
                    enqueue: EnqueueOptions {
                        attempts: config.attempts,
                    },
                    callback_policy: callback_policy.clone(),
                    bodies: crate::http::body::BodyReader::new(
                        (config.max_body_bytes_in_flight_mb as usize) << 20,
                        std::time::Duration::from_millis(config.body_read_timeout_ms),
                    ),
                    callback_attempts: config.callback_attempts,
                    browser,
                }),
                local: LocalView {
                    engine: match (&sandbox, &worker_id) {
                        (Some(sandbox), Some(worker)) => {
                            Some(Arc::new(crate::sandbox::published::Published::new(
                                sandbox.clone(),
                                pool.clone(),
                                worker.clone(),
                            ))
                                as Arc<dyn crate::status::EngineView>)
                        }
                        _ => None,
                    },
                    supervisor: Some(supervisor.clone()),
                    worker: worker_id.clone().map(|id| (id, config.concurrency)),
                    runtime: config.runtime.clone(),
                    image_prefix: config.image_prefix.clone(),
                },
            };
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
                .await
                .with_context(|| format!("binding the admin listener {}", config.admin_listen))?;
            let addr = listener.local_addr()?;
            let admin_addr = admin_listener.local_addr()?;
            callback_policy.add_own_ports(&[addr.port(), admin_addr.port()]);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let admin = admin_router(
                state.clone(),
                config.admin_token.as_deref(),
                &config.admin_hosts,
            );
            let limits = ListenerLimits {
                header_read_timeout: std::time::Duration::from_millis(
                    config.header_read_timeout_ms,
                ),
                body_read_timeout: std::time::Duration::from_millis(config.body_read_timeout_ms),
                max_connections: config.max_connections,
                max_connections_per_client: config.max_connections_per_client,
            };
            // Requests in progress (long-polls included) get this long to
            // finish once the service stops.
            let grace = std::time::Duration::from_secs(10);
            let server = tokio::spawn(async move {
                let public = serve(listener, router(state), limits, stopped.clone(), grace);
                let admin = serve(admin_listener, admin, limits, stopped, grace);
                let (public, admin) = tokio::join!(public, admin);
                public.and(admin)
            });
            tracing::info!(%addr, %admin_addr, ?role, "listening");
            (Some(addr), Some(admin_addr), Some((stop, server)))
        } else {
            (None, None, None)
        };

        let retention = role.runs_jobs().then(|| {
            crate::queue::memory::Retention::start(
                queue.clone(),
                config.redis_memory_budget_mb.map(|mb| mb << 20),
                crate::config::DEFAULT_REDIS_MEMORY_BUDGET,
            )
        });
        Ok(App {
            _identity_lock: identity_lock,
            deliveries,
            _retention: retention,
            addr,
            admin_addr,
            supervisor,
            supervisor_done,
            server,
            embedded_redis,
            _sentinel: sentinel,
            registry,
            queue,
            sandbox,
            worker_id,
        })
    }

    /// The HTTP listener's address (roles with HTTP).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The admin listener's address (roles with HTTP).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn registry(&self) -> &RegistryHandle {
        &self.registry
    }

    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// This process's worker id (roles that run jobs).
    pub fn worker_id(&self) -> Option<&str> {
        self.worker_id.as_deref()
    }

    pub fn supervisor(&self) -> &ActorRef<SupervisorMsg> {
        &self.supervisor
    }

    /// The current dispatcher (it changes when the supervisor restarts it).
    pub async fn dispatcher(&self) -> Option<ActorRef<DispatcherMsg>> {
        match self
            .supervisor
            .call(
                SupervisorMsg::Dispatcher,
                Some(std::time::Duration::from_secs(5)),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(d)) => d,
            _ => None,
        }
    }

    /// Runs until SIGINT or SIGTERM (or the actor tree stops), then shuts
    /// down gracefully.
    pub async fn run_until_signal(mut self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = &mut self.supervisor_done => {
                self.shutdown().await;
                anyhow::bail!("the actor tree stopped unexpectedly");
            }
        }
        self.shutdown().await;
        Ok(())
    }

    /// Stops taking requests and jobs; running jobs get the shutdown grace,
    /// then their containers are killed and removed and the jobs go back to
    /// the queue.
    pub async fn shutdown(self) {
        if let Some((stop, server)) = self.server {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        }
        let _ = self
            .supervisor
            .call(
                SupervisorMsg::Shutdown,
                Some(std::time::Duration::from_secs(120)),
            )
            .await;
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(30), self.supervisor_done).await;
        // Deliveries in flight get a moment; one cut short is taken over by
        // another worker once its lock expires.
        if let Some(deliveries) = &self.deliveries {
            deliveries.close(std::time::Duration::from_secs(5)).await;
        }
        if let Some(redis) = self.embedded_redis {
            redis.stop().await;
        }
        tracing::info!("stopped");
    }
}
