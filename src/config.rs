//! The one configuration type, read once at start-up from command-line flags
//! and `CODE_RUNNER_*` environment variables (a flag wins over its variable).
//!
//! Every default here is documented in the README's configuration table; keep
//! the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Settings shared by every role (`serve`, `api`, `worker`).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "CODE_RUNNER_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Address of the admin listener (stats, dashboard).
    #[arg(
        long,
        env = "CODE_RUNNER_ADMIN_LISTEN",
        default_value = "127.0.0.1:3001"
    )]
    pub admin_listen: SocketAddr,

    /// Longest a client may take to send a request's head (and longest a
    /// kept-alive connection waits for its next request), in milliseconds.
    #[arg(long, env = "CODE_RUNNER_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_read_timeout_ms: u64,

    /// Longest a client may take to send a request's body, in milliseconds.
    #[arg(long, env = "CODE_RUNNER_BODY_READ_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub body_read_timeout_ms: u64,

    /// Connections open at once on each listener, all clients together.
    #[arg(long, env = "CODE_RUNNER_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections: usize,

    /// Bytes of request bodies one API process reads at once, in MiB,
    /// beyond the first 64 KiB of each (small requests never count): a
    /// body that does not fit is refused with 503, so many large bodies at
    /// once cannot take the process's memory.
    #[arg(long, env = "CODE_RUNNER_MAX_BODY_BYTES_IN_FLIGHT_MB", default_value_t = 64,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=65_536))]
    pub max_body_bytes_in_flight_mb: u64,

    /// The most memory the service lets Redis hold, in MiB: from 60% of it
    /// on, ended jobs' live streams and then finished jobs are removed
    /// oldest first, and submissions are refused with 507 at it. Unset: nine
    /// tenths of Redis's own `maxmemory`, or 2048 when it has none.
    #[arg(long, env = "CODE_RUNNER_REDIS_MEMORY_BUDGET_MB",
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=16_777_216))]
    pub redis_memory_budget_mb: Option<u64>,

    /// Connections open at once on each listener from one client address.
    #[arg(long, env = "CODE_RUNNER_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections_per_client: usize,

    /// Bearer token the admin listener requires; it must be set when the
    /// admin listener is not on loopback.
    #[arg(long, env = "CODE_RUNNER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Host names the admin listener may be reached by (besides addresses
    /// and `localhost`), comma-separated: a request naming any other host
    /// in `Host` is refused (DNS rebinding).
    #[arg(long, env = "CODE_RUNNER_ADMIN_HOSTS", value_delimiter = ',')]
    pub admin_hosts: Vec<String>,

    /// Host names the job API may be reached by when no API keys are
    /// configured (besides addresses and `localhost`), comma-separated: a
    /// request naming any other host in `Host` is refused (DNS rebinding).
    #[arg(long, env = "CODE_RUNNER_API_HOSTS", value_delimiter = ',')]
    pub api_hosts: Vec<String>,

    /// Origins of web pages elsewhere that may call the job API from a
    /// browser (CORS), comma-separated (`https://app.example.com`); `*`
    /// only with API keys. The service's own pages are always allowed;
    /// a browser request from any other origin is refused.
    #[arg(long, env = "CODE_RUNNER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// API keys, `name:sha256:<hex>` separated by commas (the SHA-256 of
    /// each key; `code-runner new-key <name>` makes one).
    #[arg(long, env = "CODE_RUNNER_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,

    /// A file of API keys, one `name:sha256:<hex>` per line.
    #[arg(long, env = "CODE_RUNNER_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// `auto`: keys are required when configured, and a listener beyond
    /// loopback needs them; `off`: no keys even beyond loopback (say so only
    /// behind a gateway that authenticates).
    #[arg(long, env = "CODE_RUNNER_AUTH", default_value = "auto", value_parser = ["auto", "off"])]
    pub auth: String,

    /// Jobs a caller (an API key; without keys, a client address) may
    /// submit a minute, counted across every API process in Redis; a batch
    /// counts as its jobs. 0: no limit. Unset: 600 when API keys are
    /// configured or the API listens beyond loopback, else no limit.
    #[arg(long, env = "CODE_RUNNER_SUBMIT_RATE_LIMIT_PER_MINUTE")]
    pub submit_rate_limit_per_minute: Option<u64>,

    /// Requests (reads, polls, cancels, submissions) a caller may make a
    /// minute to one API process, with bursts of a sixth of it. 0: no
    /// limit. Unset: 60000 when API keys are configured or the API listens
    /// beyond loopback, else no limit.
    #[arg(long, env = "CODE_RUNNER_REQUEST_RATE_LIMIT_PER_MINUTE")]
    pub request_rate_limit_per_minute: Option<u64>,

    /// Jobs a caller may have waiting or running at once (past it,
    /// submissions get 429); each caller's unfinished jobs also push its
    /// own next ones back in the queue's order, so that a flood never delays
    /// another caller's first job by more than what is already running.
    /// 0: no cap and no such ordering. Unset: 1000 where keys are configured
    /// or the API listens beyond loopback, else 0. A key's entry may set its
    /// own (`:max_jobs=N`, and `:weight=W` for its place in the order).
    #[arg(long, env = "CODE_RUNNER_MAX_JOBS_PER_CALLER")]
    pub max_jobs_per_caller: Option<u64>,

    /// The old single budget: sets the submission limit (and, when 0, the
    /// request limit too) where the two settings above are unset.
    #[arg(long, env = "CODE_RUNNER_RATE_LIMIT_PER_MINUTE", hide = true)]
    pub rate_limit_per_minute: Option<u64>,

    /// Most jobs waiting in the queue; past it submissions get 429.
    #[arg(long, env = "CODE_RUNNER_MAX_QUEUE_DEPTH", default_value_t = 10_000)]
    pub max_queue_depth: u64,

    /// Redis URL. When unset, `redis://127.0.0.1:6379` is used, and `serve`
    /// starts a private `redis-server` there if nothing answers.
    #[arg(long, env = "CODE_RUNNER_REDIS_URL")]
    pub redis_url: Option<String>,

    /// A PEM file of certificate authorities a `rediss://` connection trusts
    /// besides the platform's roots (a managed Redis's private CA).
    #[arg(long, env = "CODE_RUNNER_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// The client certificate (PEM chain) a `rediss://` connection shows,
    /// for Redis servers that require mutual TLS (`tls-auth-clients yes`).
    #[arg(long, env = "CODE_RUNNER_REDIS_CLIENT_CERT")]
    pub redis_client_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(long, env = "CODE_RUNNER_REDIS_CLIENT_KEY")]
    pub redis_client_key: Option<PathBuf>,

    /// Replicas that must hold a submitted job before it is acknowledged
    /// (Redis `WAIT`, up to 1 s; past that the job is acknowledged anyway,
    /// a warning logged, and submissions skip the wait for 5 s): with
    /// replicas and Sentinel, a failover then cannot lose a job a client
    /// was told about. 0: no wait.
    #[arg(long, env = "CODE_RUNNER_REDIS_WAIT_REPLICAS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=16))]
    pub redis_wait_replicas: u32,

    /// Key prefix of every Redis key. The braces are a Redis Cluster hash tag
    /// that keeps all of the queue's keys in one slot.
    #[arg(
        long,
        env = "CODE_RUNNER_REDIS_PREFIX",
        default_value = "{code-runner}"
    )]
    pub redis_prefix: String,

    /// Memory of the embedded `redis-server` (`serve` with no Redis
    /// configured), in MiB. Past it Redis refuses writes (`noeviction`):
    /// submissions answer 507 and no queued job is ever dropped.
    #[arg(long, env = "CODE_RUNNER_EMBEDDED_REDIS_MAXMEMORY_MB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub embedded_redis_maxmemory_mb: u64,

    /// Name of the BullMQ queue the jobs go through.
    #[arg(long, env = "CODE_RUNNER_QUEUE", default_value = "jobs")]
    pub queue_name: String,

    /// Where the embedded `redis-server` keeps its data (append-only file).
    #[arg(long, env = "CODE_RUNNER_DATA_DIR", default_value = ".code-runner")]
    pub data_dir: PathBuf,

    /// Jobs run at once by one worker process (one container each). By
    /// default as many as the machine has CPUs, so that jobs of one CPU each
    /// never oversubscribe it: a CPU-bound program's verdict must not
    /// depend on its neighbours.
    #[arg(long, env = "CODE_RUNNER_CONCURRENCY", default_value_t = machine_cpus(),
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// Default wall-clock limit of one run, in milliseconds.
    #[arg(long, env = "CODE_RUNNER_WALL_TIME_LIMIT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub wall_time_limit_ms: u64,

    /// Most a job may ask for as its wall-clock limit, in milliseconds.
    #[arg(long, env = "CODE_RUNNER_MAX_WALL_TIME_LIMIT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub max_wall_time_limit_ms: u64,

    /// A job's test cases run one after another in one container, restored
    /// between cases (`false`: a fresh container for each case, as before
    /// the monitor could restore one; the benchmark compares the two).
    #[arg(long, env = "CODE_RUNNER_CASES_SHARE_CONTAINER", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub cases_share_container: bool,

    /// An interactive run stops after this long without input or output
    /// (unless the job sets its own `limits.idle_time_ms`), in milliseconds.
    #[arg(long, env = "CODE_RUNNER_IDLE_TIME_LIMIT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub idle_time_limit_ms: u64,

    /// An interactive job with no client connected (none yet, or its last
    /// one gone) for this long ends, in milliseconds.
    #[arg(long, env = "CODE_RUNNER_INTERACTIVE_GRACE_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub interactive_grace_ms: u64,

    /// Default CPU-time limit of one run (all its processes), in milliseconds.
    #[arg(long, env = "CODE_RUNNER_CPU_TIME_LIMIT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub cpu_time_limit_ms: u64,

    /// Most a job may ask for as its CPU-time limit, in milliseconds.
    #[arg(long, env = "CODE_RUNNER_MAX_CPU_TIME_LIMIT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub max_cpu_time_limit_ms: u64,

    /// Default memory of one run in MiB (swap is disabled: memory+swap = memory).
    #[arg(long, env = "CODE_RUNNER_MEMORY_LIMIT_MB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(16..=65_536))]
    pub memory_limit_mb: u64,

    /// Most memory a job may ask for, in MiB.
    #[arg(long, env = "CODE_RUNNER_MAX_MEMORY_LIMIT_MB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(16..=65_536))]
    pub max_memory_limit_mb: u64,

    /// Default processes and threads of one run.
    #[arg(long, env = "CODE_RUNNER_PIDS_LIMIT", default_value_t = 64,
          value_parser = clap::value_parser!(i64).range(8..=32_768))]
    pub pids_limit: i64,

    /// Most processes and threads a job may ask for.
    #[arg(long, env = "CODE_RUNNER_MAX_PIDS_LIMIT", default_value_t = 256,
          value_parser = clap::value_parser!(i64).range(8..=32_768))]
    pub max_pids_limit: i64,

    /// Default wall-clock limit of a compilation, in milliseconds.
    #[arg(long, env = "CODE_RUNNER_COMPILE_WALL_TIME_LIMIT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub compile_wall_time_limit_ms: u64,

    /// Most a job may ask for as its compilation's wall-clock limit, in ms.
    #[arg(long, env = "CODE_RUNNER_MAX_COMPILE_WALL_TIME_LIMIT_MS", default_value_t = 120_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub max_compile_wall_time_limit_ms: u64,

    /// CPUs one container may use (a CFS quota, fractions allowed).
    #[arg(long, env = "CODE_RUNNER_CPUS", default_value_t = 1.0)]
    pub cpus: f64,

    /// Warm containers kept per language (and limits) in use: created and
    /// started ahead of need, each used by one run and removed. The pool of
    /// a language grows by one each time a run finds it empty, up to this,
    /// and empties after five minutes unused. 0 disables the pool.
    #[arg(long, env = "CODE_RUNNER_POOL_SIZE", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(0..=256))]
    pub pool_size: u64,

    /// Warm containers the pool creates at once while refilling (each a
    /// create, attach and start in the engine, beside the jobs running).
    #[arg(long, env = "CODE_RUNNER_POOL_REFILL_PARALLEL", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub pool_refill_parallel: u64,

    /// Per-language overrides of the pool size, `python=8,c=0` (by image).
    #[arg(long, env = "CODE_RUNNER_POOL_SIZES", default_value = "",
          value_parser = parse_pool_sizes)]
    pub pool_sizes: std::collections::HashMap<String, usize>,

    /// Who may run in a container another job ran in before them, once
    /// its monitor restored it and checked it fit: `off` (a fresh container
    /// per job), `per-caller` (consecutive jobs of one API key, or of one
    /// client address when keys are off) or `all`. `per-caller` by default:
    /// callers never share a container, and the restore between one
    /// caller's jobs is the one the hostile suite proves (README, "Security
    /// model").
    #[arg(long, env = "CODE_RUNNER_RECYCLE", default_value = "per-caller")]
    pub recycle: crate::sandbox::pool::Recycle,

    /// Most jobs one recycled container serves before it is replaced.
    #[arg(long, env = "CODE_RUNNER_RECYCLE_MAX_JOBS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub recycle_max_jobs: u32,

    /// Oldest a recycled container may be, in seconds, and still take a job.
    #[arg(long, env = "CODE_RUNNER_RECYCLE_MAX_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub recycle_max_seconds: u64,

    /// First uid of this worker's jobs: the job in worker slot N runs its
    /// programs as this + N (and the same gid), so jobs running at once never
    /// share a uid (nor its kernel quotas) and none shares the monitor's
    /// (59999). Several workers on one machine need ranges that do not
    /// overlap (e.g. 60000 and 61000).
    #[arg(long, env = "CODE_RUNNER_SANDBOX_UID_BASE", default_value_t = 60_000,
          value_parser = clap::value_parser!(u32).range(1_000..=2_000_000_000))]
    pub sandbox_uid_base: u32,

    /// Size of the writable tmpfs at /tmp in each container, in MiB.
    #[arg(long, env = "CODE_RUNNER_TMPFS_MB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub tmpfs_mb: u64,

    /// Default bytes kept of stdout, and separately of stderr; past this the
    /// run is stopped with `output_limit_exceeded`.
    #[arg(long, env = "CODE_RUNNER_OUTPUT_LIMIT_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub output_limit_bytes: u64,

    /// Most output bytes (per stream) a job may ask for.
    #[arg(long, env = "CODE_RUNNER_MAX_OUTPUT_LIMIT_BYTES", default_value_t = 1_048_576,
          value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub max_output_limit_bytes: u64,

    /// Most bytes of output one job's result keeps in all (every case's
    /// stdout and stderr and the compiler's output), shared fairly between
    /// them; each stream's own cap applies first.
    #[arg(long, env = "CODE_RUNNER_MAX_RESULT_BYTES", default_value_t = 4 << 20,
          value_parser = clap::value_parser!(u64).range(1024..=268_435_456))]
    pub max_result_bytes: u64,

    /// Most test cases in one job.
    #[arg(long, env = "CODE_RUNNER_MAX_TEST_CASES", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_test_cases: u64,

    /// Most jobs in one `POST /v1/jobs/batch`.
    #[arg(long, env = "CODE_RUNNER_MAX_BATCH", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_batch: u64,

    /// Largest `POST /v1/jobs/batch` body, in bytes: a batch carries at
    /// most this much in all, whatever each of its jobs could carry alone.
    #[arg(long, env = "CODE_RUNNER_MAX_BATCH_BYTES", default_value_t = 16 << 20,
          value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824))]
    pub max_batch_bytes: u64,

    /// Longest `?wait=true` holds a request before answering 202, in ms.
    #[arg(long, env = "CODE_RUNNER_MAX_WAIT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub max_wait_ms: u64,

    /// Secret of the HMAC-SHA256 signature on webhook calls
    /// (`X-Code-Runner-Signature`). Unset: a random one per process, logged
    /// at start-up.
    #[arg(long, env = "CODE_RUNNER_CALLBACK_SECRET", hide_env_values = true)]
    pub callback_secret: Option<String>,

    /// Attempts to deliver a webhook (with exponential backoff from 1 s).
    #[arg(long, env = "CODE_RUNNER_CALLBACK_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub callback_attempts: u32,

    /// Destinations webhooks may reach although they are not public
    /// addresses: networks (`10.0.0.0/8`), addresses and host names
    /// (`hooks.internal`, `*.internal`), comma-separated. By default only
    /// public unicast addresses are reached; the service's own listener
    /// ports on this machine never are.
    #[arg(long, env = "CODE_RUNNER_CALLBACK_ALLOW", default_value = "")]
    pub callback_allow: String,

    /// A PEM file of certificate authorities webhooks over https trust
    /// besides the public ones (the webpki roots): a private deployment's CA.
    #[arg(long, env = "CODE_RUNNER_CALLBACK_CA_FILE")]
    pub callback_ca_file: Option<PathBuf>,

    /// Largest accepted source code, in bytes.
    #[arg(long, env = "CODE_RUNNER_MAX_CODE_BYTES", default_value_t = 1_048_576,
          value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub max_code_bytes: u64,

    /// Prefix of the runner images' names (`<prefix>/<language>:latest`).
    #[arg(long, env = "CODE_RUNNER_IMAGE_PREFIX", default_value = "code-runner")]
    pub image_prefix: String,

    /// A language table to use instead of the built-in `docker/languages.toml`.
    #[arg(long, env = "CODE_RUNNER_LANGUAGES_FILE")]
    pub languages_file: Option<PathBuf>,

    /// OCI runtime for job containers (e.g. `runsc` for gVisor); the engine's
    /// default when unset. A language may set its own in the table.
    #[arg(long, env = "CODE_RUNNER_RUNTIME")]
    pub runtime: Option<String>,

    /// Host settings of job containers an operator adds, as a JSON object in
    /// the Engine API's names (`{"CpusetCpus": "1"}`). Only settings that
    /// cannot weaken the sandbox are accepted; the service refuses to start
    /// with any other and says why.
    #[arg(long, env = "CODE_RUNNER_CONTAINER_OVERRIDES")]
    pub container_overrides: Option<String>,

    /// Attempts per job when a run fails for an infrastructure reason (the
    /// engine unreachable, a worker stopped mid-job); user code is never retried.
    #[arg(long, env = "CODE_RUNNER_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,

    /// Age in seconds after which completed jobs are removed from Redis.
    #[arg(
        long,
        env = "CODE_RUNNER_KEEP_COMPLETED_SECS",
        default_value_t = 86_400
    )]
    pub keep_completed_secs: u64,

    /// Most completed jobs kept in Redis.
    #[arg(
        long,
        env = "CODE_RUNNER_KEEP_COMPLETED_COUNT",
        default_value_t = 10_000
    )]
    pub keep_completed_count: usize,

    /// Age in seconds after which failed jobs are removed from Redis.
    #[arg(long, env = "CODE_RUNNER_KEEP_FAILED_SECS", default_value_t = 604_800)]
    pub keep_failed_secs: u64,

    /// Most failed jobs kept in Redis.
    #[arg(long, env = "CODE_RUNNER_KEEP_FAILED_COUNT", default_value_t = 10_000)]
    pub keep_failed_count: usize,

    /// How long a worker's claim on a job lasts without renewal, in
    /// milliseconds; a job whose worker died is taken over after this.
    #[arg(long, env = "CODE_RUNNER_LOCK_DURATION_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1_000..=600_000))]
    pub lock_duration_ms: u64,

    /// Times a job may be taken over from a worker that died while running
    /// it; past that it fails with "job stalled more than allowable limit".
    #[arg(long, env = "CODE_RUNNER_MAX_STALLS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_stalls: u32,

    /// How long a stopping worker lets running jobs finish before killing
    /// their containers and putting the jobs back in the queue, in milliseconds.
    #[arg(long, env = "CODE_RUNNER_SHUTDOWN_GRACE_MS", default_value_t = 0)]
    pub shutdown_grace_ms: u64,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "CODE_RUNNER_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,

    /// Test-only fault hooks (a runner that panics on request, a dispatcher
    /// that fails on request). Never enable in production.
    #[arg(
        long,
        env = "CODE_RUNNER_FAULT_INJECTION",
        hide = true,
        default_value_t = false
    )]
    pub fault_injection: bool,
}

/// Jobs a caller may submit a minute, by default where limits are on: above
/// what one worker of the default cap runs (about 15 a second here is the
/// most, for one-line programs), so one caller cannot fill the queue faster
/// than a few workers drain it.
/// Redis's memory budget when neither the setting nor Redis's own
/// `maxmemory` gives one, in bytes.
pub const DEFAULT_REDIS_MEMORY_BUDGET: u64 = 2048 << 20;
pub const DEFAULT_SUBMIT_RATE_PER_MINUTE: u64 = 600;

/// Requests a caller may make a minute to one API process, by default where
/// limits are on: 1,000 a second sustained. The proof of concept's client
/// polls each of its jobs every 200 ms (5 a second a job): a caller may poll
/// 200 jobs at once at that pace and never see a 429.
pub const DEFAULT_REQUEST_RATE_PER_MINUTE: u64 = 60_000;

/// Where Redis is expected when none is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// This machine's name, for the worker list.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// An installed program: in `PATH`, or in `/usr/sbin` or `/usr/bin`.
pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([
            std::path::PathBuf::from("/usr/sbin"),
            std::path::PathBuf::from("/usr/bin"),
        ])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The log filter (`RUST_LOG`, `tracing`'s directives), when set.
pub fn log_filter() -> Option<String> {
    std::env::var("RUST_LOG").ok().filter(|f| !f.is_empty())
}

/// CPUs this process may use (its affinity and cgroup quota counted).
pub fn machine_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The machine's architecture (`x86_64`, `aarch64`), as this binary was built for it.
pub fn machine_arch() -> &'static str {
    std::env::consts::ARCH
}

/// Jobs a caller may have waiting or running at once, by default where
/// callers are told apart: a tenth of the default queue depth, so that no
/// one caller fills the queue.
pub const DEFAULT_MAX_JOBS_PER_CALLER: u64 = 1_000;

/// Parses only a [`Config`], for building one without a subcommand.
#[derive(Parser)]
struct ConfigOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The defaults, overridden by `CODE_RUNNER_*` variables that are set.
    pub fn from_env() -> Result<Self, clap::Error> {
        ConfigOnly::try_parse_from(["code-runner"]).map(|c| c.config)
    }

    /// Checks what clap's per-field parsers cannot (relations between fields).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.cpus.is_finite() && self.cpus >= 0.01 && self.cpus <= 256.0) {
            return Err(format!(
                "CODE_RUNNER_CPUS must be between 0.01 and 256, got {}",
                self.cpus
            ));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(':') {
            return Err("CODE_RUNNER_REDIS_PREFIX must be non-empty and without ':'".into());
        }
        if self.queue_name.is_empty() || self.queue_name.contains(':') {
            return Err("CODE_RUNNER_QUEUE must be non-empty and without ':'".into());
        }
        if self.image_prefix.is_empty() {
            return Err("CODE_RUNNER_IMAGE_PREFIX must be non-empty".into());
        }
        if let Some(secret) = &self.callback_secret
            && (secret.len() < 16 || secret.contains("replace-me"))
        {
            return Err(
                "CODE_RUNNER_CALLBACK_SECRET must be a secret of your own, at least 16 \
                 characters (not the example's): e.g. `openssl rand -hex 32`"
                    .into(),
            );
        }
        let uids = self.sandbox_uid_base..self.sandbox_uid_base + self.concurrency;
        if uids.contains(&monitor_protocol::MONITOR_UID) {
            return Err(format!(
                "CODE_RUNNER_SANDBOX_UID_BASE: the uids {}..{} of the jobs would include the \
                 monitor's ({})",
                uids.start,
                uids.end,
                monitor_protocol::MONITOR_UID
            ));
        }
        if let Some(json) = &self.container_overrides {
            crate::sandbox::overrides::parse_overrides(json)?;
        }
        let pairs = [
            (
                "WALL_TIME_LIMIT_MS",
                self.wall_time_limit_ms,
                self.max_wall_time_limit_ms,
            ),
            (
                "CPU_TIME_LIMIT_MS",
                self.cpu_time_limit_ms,
                self.max_cpu_time_limit_ms,
            ),
            (
                "MEMORY_LIMIT_MB",
                self.memory_limit_mb,
                self.max_memory_limit_mb,
            ),
            (
                "PIDS_LIMIT",
                self.pids_limit as u64,
                self.max_pids_limit as u64,
            ),
            (
                "OUTPUT_LIMIT_BYTES",
                self.output_limit_bytes,
                self.max_output_limit_bytes,
            ),
            (
                "COMPILE_WALL_TIME_LIMIT_MS",
                self.compile_wall_time_limit_ms,
                self.max_compile_wall_time_limit_ms,
            ),
        ];
        for (name, default, max) in pairs {
            if default > max {
                return Err(format!(
                    "CODE_RUNNER_{name} ({default}) is above CODE_RUNNER_MAX_{name} ({max})"
                ));
            }
        }
        Ok(())
    }

    /// The Redis URL to use, explicit or the default.
    pub fn redis_url_or_default(&self) -> String {
        self.redis_url
            .clone()
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_string())
    }

    /// Limits a job gets when it asks for none (before its language's
    /// overrides).
    pub fn default_limits(&self) -> crate::limits::Limits {
        crate::limits::Limits {
            wall_time_ms: self.wall_time_limit_ms,
            cpu_time_ms: self.cpu_time_limit_ms,
            memory_bytes: self.memory_limit_mb << 20,
            processes: self.pids_limit,
            output_bytes: self.output_limit_bytes,
            compile_wall_time_ms: self.compile_wall_time_limit_ms,
        }
    }

    /// The most a job may ask for.
    pub fn max_limits(&self) -> crate::limits::Limits {
        crate::limits::Limits {
            wall_time_ms: self.max_wall_time_limit_ms,
            cpu_time_ms: self.max_cpu_time_limit_ms,
            memory_bytes: self.max_memory_limit_mb << 20,
            processes: self.max_pids_limit,
            output_bytes: self.max_output_limit_bytes,
            compile_wall_time_ms: self.max_compile_wall_time_limit_ms,
        }
    }

    /// Whether the rate limits are on when not set explicitly: whenever
    /// callers can be told apart or come from beyond this machine. On
    /// loopback without keys every caller is this machine's own user at one
    /// address; a limit there would only throttle that user (the queue
    /// depth cap still bounds what waits).
    fn rate_limits_by_default(&self) -> bool {
        let has_keys = self
            .api_keys
            .as_deref()
            .is_some_and(|k| !k.trim().is_empty())
            || self.api_keys_file.is_some();
        (has_keys && self.auth != "off") || !self.listen.ip().is_loopback()
    }

    /// Jobs a minute per caller (0: no limit), with the defaults resolved.
    pub fn submit_rate_per_minute(&self) -> u64 {
        self.submit_rate_limit_per_minute
            .or(self.rate_limit_per_minute)
            .unwrap_or(if self.rate_limits_by_default() {
                DEFAULT_SUBMIT_RATE_PER_MINUTE
            } else {
                0
            })
    }

    /// Unfinished jobs per caller (0: no cap), with the default resolved.
    pub fn jobs_per_caller(&self) -> u64 {
        self.max_jobs_per_caller
            .unwrap_or(if self.rate_limits_by_default() {
                DEFAULT_MAX_JOBS_PER_CALLER
            } else {
                0
            })
    }

    /// Requests a minute per caller and API process (0: no limit), with the
    /// defaults resolved.
    pub fn request_rate_per_minute(&self) -> u64 {
        match (
            self.request_rate_limit_per_minute,
            self.rate_limit_per_minute,
        ) {
            (Some(limit), _) => limit,
            (None, Some(0)) => 0,
            _ if self.rate_limits_by_default() => DEFAULT_REQUEST_RATE_PER_MINUTE,
            _ => 0,
        }
    }

    /// How far jobs may oversubscribe the machine's CPUs: `Some((asked,
    /// cpus))` when the cap times each job's CPUs is more than it has (the
    /// operator's choice; verdicts of CPU-bound programs then depend on
    /// their neighbours, and the start-up log says so).
    pub fn oversubscription(&self) -> Option<(f64, u32)> {
        let asked = f64::from(self.concurrency) * self.cpus;
        let cpus = machine_cpus();
        (asked > f64::from(cpus) + 1e-9).then_some((asked, cpus))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

fn parse_pool_sizes(text: &str) -> Result<std::collections::HashMap<String, usize>, String> {
    crate::sandbox::pool::PoolSettings::parse_sizes(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["code-runner"];
        argv.extend_from_slice(args);
        ConfigOnly::try_parse_from(argv).unwrap().config
    }

    #[test]
    fn validate_names_the_setting_that_cannot_work() {
        let refused = |change: &dyn Fn(&mut Config)| {
            let mut c = config(&[]);
            change(&mut c);
            c.validate().unwrap_err()
        };
        assert!(config(&[]).validate().is_ok());
        assert!(refused(&|c| c.cpus = 0.0).starts_with("CODE_RUNNER_CPUS"));
        assert!(refused(&|c| c.cpus = f64::NAN).starts_with("CODE_RUNNER_CPUS"));
        assert!(
            refused(&|c| c.redis_prefix = "a:b".into()).starts_with("CODE_RUNNER_REDIS_PREFIX")
        );
        assert!(refused(&|c| c.queue_name = String::new()).starts_with("CODE_RUNNER_QUEUE"));
        assert!(
            refused(&|c| c.image_prefix = String::new()).starts_with("CODE_RUNNER_IMAGE_PREFIX")
        );
        assert!(
            refused(&|c| c.callback_secret = Some("short".into()))
                .starts_with("CODE_RUNNER_CALLBACK_SECRET")
        );
        assert!(
            refused(&|c| c.callback_secret = Some("replace-me-with-a-secret".into()))
                .starts_with("CODE_RUNNER_CALLBACK_SECRET")
        );
        let monitor = monitor_protocol::MONITOR_UID;
        assert!(
            refused(&|c| c.sandbox_uid_base = monitor - 1)
                .starts_with("CODE_RUNNER_SANDBOX_UID_BASE")
        );
        assert_eq!(
            refused(&|c| c.wall_time_limit_ms = c.max_wall_time_limit_ms + 1),
            format!(
                "CODE_RUNNER_WALL_TIME_LIMIT_MS ({}) is above CODE_RUNNER_MAX_WALL_TIME_LIMIT_MS ({})",
                config(&[]).max_wall_time_limit_ms + 1,
                config(&[]).max_wall_time_limit_ms
            )
        );
        assert!(
            !refused(&|c| c.container_overrides = Some("{\"Privileged\": true}".into())).is_empty()
        );
    }

    #[test]
    fn rate_limits_are_on_by_default_only_where_callers_can_be_told_apart() {
        // Loopback without keys: this machine's own user, no limit.
        let local = config(&["--listen", "127.0.0.1:3000"]);
        assert_eq!(
            (
                local.submit_rate_per_minute(),
                local.request_rate_per_minute()
            ),
            (0, 0)
        );
        let keyed = config(&["--listen", "127.0.0.1:3000", "--api-keys", "a:sha256:00"]);
        assert_eq!(
            (
                keyed.submit_rate_per_minute(),
                keyed.request_rate_per_minute()
            ),
            (
                DEFAULT_SUBMIT_RATE_PER_MINUTE,
                DEFAULT_REQUEST_RATE_PER_MINUTE
            )
        );
        let open = config(&["--listen", "0.0.0.0:3000", "--auth", "off"]);
        assert_eq!(
            open.submit_rate_per_minute(),
            DEFAULT_SUBMIT_RATE_PER_MINUTE
        );
        // Explicit numbers win; the old single setting still works.
        let set = config(&[
            "--submit-rate-limit-per-minute",
            "5",
            "--request-rate-limit-per-minute",
            "7",
        ]);
        assert_eq!(
            (set.submit_rate_per_minute(), set.request_rate_per_minute()),
            (5, 7)
        );
        let old = config(&["--listen", "0.0.0.0:3000", "--rate-limit-per-minute", "0"]);
        assert_eq!(
            (old.submit_rate_per_minute(), old.request_rate_per_minute()),
            (0, 0)
        );
        let old = config(&["--rate-limit-per-minute", "9", "--api-keys", "a:sha256:00"]);
        assert_eq!(
            (old.submit_rate_per_minute(), old.request_rate_per_minute()),
            (9, DEFAULT_REQUEST_RATE_PER_MINUTE)
        );
    }
}
