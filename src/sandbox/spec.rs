//! The hardened container a job's run happens in, built in one place so
//! that every setting can be read (and audited) together.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use monitor_protocol::Task;

use super::{
    LABEL_DEPLOYMENT, LABEL_JOB, LABEL_MANAGED, LABEL_QUEUE, LABEL_STEP, LABEL_WORKER,
    SandboxSettings,
};

/// The monitor baked into every runner image: the container's PID 1.
pub const MONITOR: &str = "/usr/local/bin/code-runner-monitor";

/// The container starts as root so that its monitor can give the program a
/// uid of its own; the monitor then becomes its own unprivileged uid and
/// the program runs as another with no capability (see the monitor).
pub const CONTAINER_USER: &str = "0:0";

/// The only capabilities the container has (its monitor's, see
/// `monitor/src/main.rs`); the program has none: it runs under a uid that is
/// not root, with no file capabilities and `no-new-privileges`.
pub const MONITOR_CAPABILITIES: [&str; 5] =
    ["CHOWN", "DAC_READ_SEARCH", "KILL", "SETGID", "SETUID"];

/// Open files per process.
const NOFILE_LIMIT: i64 = 256;

/// The resources of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerLimits {
    /// Memory, in bytes; swap is off (memory+swap = memory).
    pub memory_bytes: u64,
    /// Processes and threads at once.
    pub processes: i64,
    /// CPUs (a CFS quota; fractions allowed).
    pub cpus: f64,
    /// Size of the writable tmpfs at /tmp, in bytes.
    pub tmpfs_bytes: u64,
    /// OCI runtime (`runsc` for gVisor), or the engine's default.
    pub runtime: Option<String>,
    /// The host CPUs it may run on (`"1"`): a job's worker slot's own CPU,
    /// so that no neighbour's processes share it. `None`: any.
    pub cpuset: Option<String>,
}

/// Files and directories on the tmpfs at most (a million small files end
/// here, not in kernel memory).
const TMPFS_INODES: u64 = 16_384;
/// Size of /dev/shm (counted in the memory limit).
const SHM_BYTES: i64 = 16 << 20;

/// Host processes and threads gVisor's own sandbox needs besides the
/// program's: under `runsc` the pids cgroup counts the sandbox's kernel
/// (its Go threads, one stub process per guest process), so the job's
/// processes limit is approximate there.
pub const GVISOR_PIDS_ALLOWANCE: i64 = 256;

/// Builds the container for one run.
///
/// Hardening, every item on and none optional: no network
/// (`network_mode: none`); memory limited with swap off; a pids limit (fork
/// and thread bombs); a CPU quota; a read-only root with a size-capped tmpfs
/// at /tmp as the only writable place; every capability dropped but the
/// monitor's five; `no-new-privileges` (setuid binaries gain nothing); the
/// program under a non-root uid of its own; the monitor as PID 1 (it reaps
/// zombies, and as init ignores every signal from inside); a private cgroup
/// namespace; ulimits on open files, file size and core dumps (none); a capped
/// json-file log; labels marking it as ours; no host mounts, ever; no
/// environment of the engine's (the monitor gives the program only what its
/// language needs).
pub fn container_spec(
    settings: &SandboxSettings,
    image: String,
    limits: &ContainerLimits,
    job_id: &str,
    step: &str,
) -> ContainerCreateBody {
    let labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "1".to_string()),
        (LABEL_WORKER.to_string(), settings.worker_id.clone()),
        (LABEL_JOB.to_string(), job_id.to_string()),
        (LABEL_QUEUE.to_string(), settings.queue.clone()),
        (LABEL_DEPLOYMENT.to_string(), settings.deployment.clone()),
        (LABEL_STEP.to_string(), step.to_string()),
    ]);
    let memory = limits.memory_bytes as i64;
    let runtime = runtime(settings, limits);
    let pids = pids_limit(runtime.as_deref(), limits);
    let tmpfs_bytes = limits.tmpfs_bytes;
    let ulimit = |name: &str, value: i64| ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(value),
        hard: Some(value),
    };
    let host_config = HostConfig {
        network_mode: Some("none".to_string()),
        memory: Some(memory),
        memory_swap: Some(memory),
        nano_cpus: Some((limits.cpus * 1e9) as i64),
        pids_limit: Some(pids),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_string(),
            format!("rw,exec,nosuid,nodev,size={tmpfs_bytes},nr_inodes={TMPFS_INODES},mode=1777"),
        )])),
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: Some(MONITOR_CAPABILITIES.map(String::from).to_vec()),
        cgroupns_mode: Some(bollard::models::HostConfigCgroupnsModeEnum::PRIVATE),
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        privileged: Some(false),
        // The monitor is the init: Docker's would stand between it and the
        // program and could be signalled by it.
        init: Some(false),
        ipc_mode: Some("private".to_string()),
        ulimits: Some(vec![
            ulimit("nofile", NOFILE_LIMIT),
            // One file may take half the tmpfs: a huge file meets SIGXFSZ.
            ulimit("fsize", (tmpfs_bytes / 2) as i64),
            ulimit("core", 0),
        ]),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".to_string()),
            config: Some(HashMap::from([
                ("max-size".to_string(), "1m".to_string()),
                ("max-file".to_string(), "1".to_string()),
            ])),
        }),
        oom_kill_disable: Some(false),
        shm_size: Some(SHM_BYTES),
        auto_remove: Some(false),
        binds: None,
        mounts: None,
        runtime,
        cpuset_cpus: limits.cpuset.clone(),
        ..Default::default()
    };
    let host_config = with_overrides(host_config, &settings.overrides);
    ContainerCreateBody {
        image: Some(image),
        entrypoint: Some(vec![MONITOR.to_string()]),
        cmd: Some(Vec::new()),
        user: Some(CONTAINER_USER.to_string()),
        working_dir: Some("/tmp".to_string()),
        env: Some(Vec::new()),
        network_disabled: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The OCI runtime of a container: the step's own, else the service's.
fn runtime(settings: &SandboxSettings, limits: &ContainerLimits) -> Option<String> {
    limits.runtime.clone().or_else(|| settings.runtime.clone())
}

/// The container's pids limit: the program's processes, plus gVisor's own
/// under `runsc`.
fn pids_limit(runtime: Option<&str>, limits: &ContainerLimits) -> i64 {
    match runtime {
        Some("runsc") => limits.processes + GVISOR_PIDS_ALLOWANCE,
        _ => limits.processes,
    }
}

/// The task as the monitor in a container of `limits` gets it: the
/// processes limit stays for the monitor to set as the program uid's
/// `RLIMIT_NPROC` only under `runsc`, whose kernel counts a uid's processes
/// in that sandbox alone (its pids cgroup also counts gVisor's own
/// threads, so without it a fork bomb stops the sandbox rather than meets a
/// limit). Under runc the host's kernel counts a uid's processes across the
/// host, where another service's program may hold the same uid and would
/// take this one's share: there the container's own pids cgroup is the
/// limit.
pub(super) fn monitor_task(settings: &SandboxSettings, limits: &ContainerLimits, task: &mut Task) {
    if runtime(settings, limits).as_deref() != Some("runsc") {
        task.processes = None;
    }
}

/// Whether the engine can change a running container's limits (`docker
/// update`): gVisor's `runsc` has no such command, so its containers keep
/// the limits they were created with.
pub fn updatable(settings: &SandboxSettings, limits: &ContainerLimits) -> bool {
    runtime(settings, limits).as_deref() != Some("runsc")
}

/// The update that gives a running container `limits`' memory (swap off)
/// and processes, exactly as [`container_spec`] would have created it: a
/// compilation's container becomes its program's run's. Every other
/// setting is the same for both steps.
pub fn limits_update(
    settings: &SandboxSettings,
    limits: &ContainerLimits,
) -> bollard::models::ContainerUpdateBody {
    let memory = limits.memory_bytes as i64;
    bollard::models::ContainerUpdateBody {
        memory: Some(memory),
        memory_swap: Some(memory),
        pids_limit: Some(pids_limit(runtime(settings, limits).as_deref(), limits)),
        ..Default::default()
    }
}

/// Applies the operator's (checked) overrides.
fn with_overrides(
    host_config: HostConfig,
    overrides: &serde_json::Map<String, serde_json::Value>,
) -> HostConfig {
    if overrides.is_empty() {
        return host_config;
    }
    let mut value = serde_json::to_value(&host_config).unwrap_or_default();
    if let serde_json::Value::Object(fields) = &mut value {
        for (key, setting) in overrides {
            fields.insert(key.clone(), setting.clone());
        }
    }
    serde_json::from_value(value).unwrap_or(host_config)
}

/// What makes two containers interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub image: String,
    pub memory_bytes: u64,
    pub processes: i64,
    pub millicpus: u64,
    pub tmpfs_bytes: u64,
    pub runtime: Option<String>,
    /// The CPUs a container is created pinned to (a worker slot's own CPU,
    /// when jobs are pinned): one key per CPU, so that taking one needs no
    /// update (see `Sandbox::hold`).
    pub cpuset: Option<String>,
}

impl PoolKey {
    /// The key of `limits`, with no CPU pin.
    pub fn new(image: &str, limits: &ContainerLimits) -> PoolKey {
        PoolKey {
            image: image.to_string(),
            memory_bytes: limits.memory_bytes,
            processes: limits.processes,
            millicpus: (limits.cpus * 1000.0).round() as u64,
            tmpfs_bytes: limits.tmpfs_bytes,
            runtime: limits.runtime.clone(),
            cpuset: None,
        }
    }

    /// The key of `limits` with its CPU pin: containers created pinned
    /// (what a run takes).
    pub fn pinned(image: &str, limits: &ContainerLimits) -> PoolKey {
        PoolKey {
            cpuset: limits.cpuset.clone(),
            ..PoolKey::new(image, limits)
        }
    }

    /// The limits its containers are created with.
    pub(super) fn limits(&self) -> ContainerLimits {
        ContainerLimits {
            cpuset: self.cpuset.clone(),
            memory_bytes: self.memory_bytes,
            processes: self.processes,
            cpus: self.millicpus as f64 / 1000.0,
            tmpfs_bytes: self.tmpfs_bytes,
            runtime: self.runtime.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_hardened() {
        let settings = SandboxSettings {
            image_prefix: "code-runner".into(),
            runtime: None,
            worker_id: "w1".into(),
            queue: "q".into(),
            deployment: "redis://r q".into(),
            overrides: serde_json::Map::new(),
        };
        let limits = ContainerLimits {
            memory_bytes: 128 << 20,
            processes: 32,
            cpus: 0.5,
            tmpfs_bytes: 8 << 20,
            runtime: None,
            cpuset: Some("1".into()),
        };
        let spec = container_spec(&settings, "img".into(), &limits, "job-1", "run-0");
        let host = spec.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.memory, host.memory_swap);
        assert_eq!(host.memory, Some(128 << 20));
        assert_eq!(host.pids_limit, Some(32));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cpuset_cpus.as_deref(), Some("1"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert!(host.binds.is_none() && host.mounts.is_none());
        assert_eq!(spec.user.as_deref(), Some(CONTAINER_USER));
        assert_eq!(
            host.cap_add,
            Some(MONITOR_CAPABILITIES.map(String::from).to_vec())
        );
        assert_eq!(
            host.cgroupns_mode,
            Some(bollard::models::HostConfigCgroupnsModeEnum::PRIVATE)
        );
        assert_eq!(spec.entrypoint, Some(vec![MONITOR.to_string()]));
        let labels = spec.labels.unwrap();
        assert_eq!(labels[LABEL_JOB], "job-1");
        assert_eq!(labels[LABEL_WORKER], "w1");
        assert_eq!(labels[LABEL_QUEUE], "q");
    }
}
