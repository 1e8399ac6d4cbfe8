//! The engine's own limit: bare create → start → wait → remove cycles
//! through the Engine API, `--parallel` at a time, with no service
//! involved. `loadtest/bench.py` compares the service's throughput to it.
//!
//! It also says what a lifecycle costs the machine in CPU time: the busy
//! time of every core (`/proc/stat`) before and after the timed cycles,
//! per cycle, with the share of `dockerd` and `containerd` (their own and
//! their reaped children's CPU time, from `/proc/<pid>/stat`) and of this
//! client; the rest is the shims, the OCI runtime, the containers' own
//! processes and the kernel's work for them. Nothing else should run
//! meanwhile.
//!
//! One engine setting at a time can be changed from the default cycle
//! (json-file log, `wait` for the end, one forced remove), so that `make
//! bench` says what each costs:
//!
//! ```text
//! engine-cycles --image code-runner/python:latest --cycles 100 --parallel 4
//! engine-cycles --log-driver none      # no log file for the engine to write
//! engine-cycles --end attach           # the end read from the attach stream, no wait call
//! engine-cycles --remove kill          # kill, then remove: two calls
//! engine-cycles --remove background    # the remove off the cycle's path
//! engine-cycles --command true         # the lifecycle alone, next to no program
//! engine-cycles --with root,limits      # settings of the service's own sandbox spec
//! engine-cycles --with all              # every one of them: the service's container
//! engine-cycles --calls rename,pin      # the calls the service makes on a warm container
//! engine-cycles --end attach --attach-stdin  # stdin attached too, as the service's
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerUpdateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    RenameContainerOptionsBuilder, WaitContainerOptions,
};
use clap::Parser;
use code_runner::sandbox::SandboxSettings;
use code_runner::sandbox::spec::{ContainerLimits, container_spec};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Parser)]
#[command(about = "Bare container cycles through the Docker Engine API")]
struct Args {
    #[arg(long, default_value = "code-runner/python:latest")]
    image: String,
    /// The command each container runs.
    #[arg(long, num_args = 1.., default_values = ["python3", "-c", "print(1)"])]
    command: Vec<String>,
    #[arg(long, default_value_t = 100)]
    cycles: u64,
    #[arg(long, default_value_t = 4)]
    parallel: u64,
    /// The containers' log driver (`json-file`, the engine's default, or
    /// `none`): what the engine does with a container's output besides
    /// the attach stream.
    #[arg(long, default_value = "json-file")]
    log_driver: String,
    /// How the client learns that the container ended: `wait` (the Engine
    /// API's wait call, after the start) or `attach` (attached before the
    /// start, the end of its output stream; the service's way).
    #[arg(long, value_enum, default_value_t = End::Wait)]
    end: End,
    /// How the container is removed: `force` (one call that kills and
    /// removes), `kill` (a kill call, then a remove) or `background` (the
    /// forced remove in a task of its own: the cycle ends without waiting
    /// for it, the service's way; the timing still waits for every one).
    #[arg(long, value_enum, default_value_t = Remove::Force)]
    remove: Remove,
    /// Docker's `NetworkDisabled` besides the `none` network mode, as the
    /// service's containers have: no network sandbox for the engine to set
    /// up and tear down (`false` measures what that costs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    network_disabled: bool,
    /// Settings taken from the service's own container spec
    /// (`code_runner::sandbox::spec::container_spec`, default limits) onto
    /// the bare cycle, to say what each costs the engine.
    #[arg(long, value_enum, value_delimiter = ',')]
    with: Vec<Setting>,
    /// Engine calls the service makes on each warm container it takes,
    /// added to each cycle: `rename` (after the create; the container
    /// carries its job in its name) and `pin` (an update of its CPU set
    /// after the start, as when the cap is within the CPUs).
    #[arg(long, value_enum, value_delimiter = ',')]
    calls: Vec<Call>,
    /// With `--end attach`: attach to stdin too, as the service does to
    /// send the monitor its task (closed at once here).
    #[arg(long)]
    attach_stdin: bool,
    /// The OCI runtime (`runsc` for gVisor); the engine's default if unset.
    #[arg(long)]
    runtime: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum End {
    Wait,
    Attach,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Remove {
    Force,
    Kill,
    Background,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Setting {
    /// A read-only root, a size-capped tmpfs at /tmp, /dev/shm's size.
    Root,
    /// Memory (swap off), processes, a CPU quota, ulimits.
    Limits,
    /// Every capability dropped but the monitor's, no-new-privileges,
    /// private cgroup and IPC namespaces.
    Security,
    /// stdin held open (`OpenStdin`, `StdinOnce`), as for the monitor,
    /// which reads its task there (nothing attaches to it here).
    Stdin,
    /// All of the above: the service's container (the monitor aside).
    All,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Call {
    Rename,
    Pin,
}

/// The bare cycle's container with `settings` from the service's spec.
fn with_settings(mut body: ContainerCreateBody, settings: &[Setting]) -> ContainerCreateBody {
    let has = |s: Setting| settings.contains(&s) || settings.contains(&Setting::All);
    let sandbox = SandboxSettings {
        image_prefix: "code-runner".into(),
        runtime: None,
        worker_id: "engine-cycles".into(),
        queue: "engine-cycles".into(),
        deployment: "engine-cycles".into(),
        overrides: serde_json::Map::new(),
    };
    let limits = ContainerLimits {
        memory_bytes: 256 << 20,
        processes: 64,
        cpus: 1.0,
        tmpfs_bytes: 64 << 20,
        runtime: None,
        cpuset: None,
    };
    let service = container_spec(&sandbox, String::new(), &limits, "engine-cycles", "run");
    let theirs = service.host_config.unwrap_or_default();
    let ours = body.host_config.get_or_insert_with(HostConfig::default);
    if has(Setting::Root) {
        ours.readonly_rootfs = theirs.readonly_rootfs;
        ours.tmpfs = theirs.tmpfs.clone();
        ours.shm_size = theirs.shm_size;
    }
    if has(Setting::Limits) {
        ours.memory = theirs.memory;
        ours.memory_swap = theirs.memory_swap;
        ours.pids_limit = theirs.pids_limit;
        ours.nano_cpus = theirs.nano_cpus;
        ours.ulimits = theirs.ulimits.clone();
    }
    if has(Setting::Security) {
        ours.cap_drop = theirs.cap_drop.clone();
        ours.cap_add = theirs.cap_add.clone();
        ours.security_opt = theirs.security_opt.clone();
        ours.cgroupns_mode = theirs.cgroupns_mode;
        ours.ipc_mode = theirs.ipc_mode.clone();
    }
    if has(Setting::Stdin) {
        body.attach_stdin = service.attach_stdin;
        body.open_stdin = service.open_stdin;
        body.stdin_once = service.stdin_once;
    }
    body
}

/// Removals still running in the background (`--remove background`).
type Removals = Arc<Mutex<Vec<tokio::task::JoinHandle<anyhow::Result<()>>>>>;

async fn remove(docker: &Docker, id: &str) -> anyhow::Result<()> {
    let remove = RemoveContainerOptionsBuilder::new().force(true).build();
    docker.remove_container(id, Some(remove)).await?;
    Ok(())
}

async fn cycle(docker: &Docker, args: &Args, removals: &Removals) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let body = ContainerCreateBody {
        image: Some(args.image.clone()),
        entrypoint: Some(args.command[..1].to_vec()),
        cmd: Some(args.command[1..].to_vec()),
        network_disabled: Some(args.network_disabled),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            log_config: Some(HostConfigLogConfig {
                typ: Some(args.log_driver.clone()),
                config: None,
            }),
            runtime: args.runtime.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let body = with_settings(body, &args.with);
    let id = docker.create_container(None, body).await?.id;
    if args.calls.contains(&Call::Rename) {
        static RENAMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RENAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("engine-cycles-{}-{n}", std::process::id());
        let options = RenameContainerOptionsBuilder::new().name(&name).build();
        docker.rename_container(&id, options).await?;
    }
    let pin = async {
        if args.calls.contains(&Call::Pin) {
            let update = ContainerUpdateBody {
                cpuset_cpus: Some("0".into()),
                ..Default::default()
            };
            // A container that already ended cannot be updated: fine.
            let _ = docker.update_container(&id, update).await;
        }
    };
    let run = async {
        match args.end {
            End::Wait => {
                docker.start_container(&id, None).await?;
                pin.await;
                let mut wait = docker.wait_container(&id, None::<WaitContainerOptions>);
                while let Some(status) = wait.next().await {
                    status?;
                }
            }
            End::Attach => {
                let options = AttachContainerOptionsBuilder::new()
                    .stdin(args.attach_stdin)
                    .stdout(true)
                    .stderr(true)
                    .stream(true)
                    .build();
                let mut io = docker.attach_container(&id, Some(options)).await?;
                docker.start_container(&id, None).await?;
                pin.await;
                io.input.shutdown().await?;
                while let Some(frame) = io.output.next().await {
                    frame?;
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    match args.remove {
        Remove::Force => remove(docker, &id).await?,
        Remove::Kill => {
            let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
            // A container that already stopped answers 409: fine.
            let _ = docker.kill_container(&id, Some(kill)).await;
            let plain = RemoveContainerOptionsBuilder::new().build();
            docker.remove_container(&id, Some(plain)).await?;
        }
        Remove::Background => {
            let docker = docker.clone();
            let removal = tokio::spawn(async move { remove(&docker, &id).await });
            removals.lock().await.push(removal);
        }
    }
    run?;
    Ok(started.elapsed())
}

/// Clock ticks of CPU time (`/proc/stat`'s and `/proc/<pid>/stat`'s unit).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// Busy ticks of all cores (everything but idle and I/O wait).
fn busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    total - idle
}

/// CPU ticks of every process named `name`, its reaped children's included.
fn process_ticks(name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .map(|e| stat_ticks(&e.path().join("stat")))
        .sum()
}

/// utime + stime + cutime + cstime of one `/proc/<pid>/stat`.
fn stat_ticks(path: &std::path::Path) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    rest.split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum()
}

/// CPU counters at one moment: the whole machine, the daemons, this client.
#[derive(Clone, Copy)]
struct Counters {
    busy: u64,
    dockerd: u64,
    containerd: u64,
    client: u64,
}

impl Counters {
    fn now() -> Counters {
        Counters {
            busy: busy_ticks(),
            dockerd: process_ticks("dockerd"),
            containerd: process_ticks("containerd"),
            client: stat_ticks(std::path::Path::new("/proc/self/stat")),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    // One untimed cycle first: the image's layers into the page cache.
    let removals: Removals = Arc::default();
    cycle(&docker, &args, &removals).await?;
    for removal in std::mem::take(&mut *removals.lock().await) {
        removal.await??;
    }
    let latencies = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
    ));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let before = Counters::now();
    let started = Instant::now();
    let workers: Vec<_> = (0..args.parallel)
        .map(|_| {
            let (docker, args, next, latencies, removals) = (
                docker.clone(),
                args.clone(),
                next.clone(),
                latencies.clone(),
                removals.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < args.cycles {
                    let took = cycle(&docker, &args, &removals).await?;
                    latencies
                        .lock()
                        .await
                        .saturating_record(took.as_micros() as u64);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    for removal in std::mem::take(&mut *removals.lock().await) {
        removal.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = Counters::now();
    let per_cycle = |from: u64, to: u64| {
        to.saturating_sub(from) as f64 * 1000.0 / ticks_per_second() / args.cycles as f64
    };
    let busy_ms = per_cycle(before.busy, after.busy);
    let dockerd_ms = per_cycle(before.dockerd, after.dockerd);
    let containerd_ms = per_cycle(before.containerd, after.containerd);
    let client_ms = per_cycle(before.client, after.client);
    let engine_ms = busy_ms - client_ms;
    let h = latencies.lock().await;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let rate = args.cycles as f64 / seconds;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "cycles": args.cycles, "parallel": args.parallel, "seconds": seconds,
                "log_driver": args.log_driver, "network_disabled": args.network_disabled, "with": args.with, "calls": args.calls, "attach_stdin": args.attach_stdin, "end": args.end, "remove": args.remove,
                "command": args.command,
                "cycles_per_second": rate, "p50_ms": ms(0.5), "p90_ms": ms(0.9),
                "max_ms": h.max() as f64 / 1000.0,
                "cpu_ms_per_cycle": {
                    "machine": busy_ms, "engine": engine_ms, "dockerd": dockerd_ms,
                    "containerd": containerd_ms, "client": client_ms,
                    "rest": engine_ms - dockerd_ms - containerd_ms,
                },
            })
        );
    } else {
        println!(
            "{} cycles, {} at a time, log driver {}, end by {}, remove {}: {seconds:.2} s, {rate:.2} containers/s; cycle p50 {:.1} ms, p90 {:.1} ms",
            args.cycles,
            args.parallel,
            args.log_driver,
            serde_json::to_value(args.end)?.as_str().unwrap_or("?"),
            serde_json::to_value(args.remove)?.as_str().unwrap_or("?"),
            ms(0.5),
            ms(0.9)
        );
        println!(
            "CPU per cycle: {busy_ms:.1} ms busy on the machine; engine {engine_ms:.1} ms \
             (dockerd {dockerd_ms:.1}, containerd {containerd_ms:.1}, shims, runtime, container and \
             kernel {:.1}); this client {client_ms:.1} ms",
            engine_ms - dockerd_ms - containerd_ms
        );
    }
    Ok(())
}
