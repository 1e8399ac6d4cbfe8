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
//! ```text
//! engine-cycles --image code-runner/python:latest --cycles 100 --parallel 4
//! engine-cycles --log-driver none      # one engine setting at a time
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{RemoveContainerOptionsBuilder, WaitContainerOptions};
use clap::Parser;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
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
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

async fn cycle(docker: &Docker, args: &Args) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let body = ContainerCreateBody {
        image: Some(args.image.clone()),
        entrypoint: Some(args.command[..1].to_vec()),
        cmd: Some(args.command[1..].to_vec()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            log_config: Some(HostConfigLogConfig {
                typ: Some(args.log_driver.clone()),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await?.id;
    let run = async {
        docker.start_container(&id, None).await?;
        let mut wait = docker.wait_container(&id, None::<WaitContainerOptions>);
        while let Some(status) = wait.next().await {
            status?;
        }
        anyhow::Ok(())
    }
    .await;
    let remove = RemoveContainerOptionsBuilder::new().force(true).build();
    docker.remove_container(&id, Some(remove)).await?;
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
    cycle(&docker, &args).await?;
    let latencies = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
    ));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let before = Counters::now();
    let started = Instant::now();
    let workers: Vec<_> = (0..args.parallel)
        .map(|_| {
            let (docker, args, next, latencies) = (
                docker.clone(),
                args.clone(),
                next.clone(),
                latencies.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < args.cycles {
                    let took = cycle(&docker, &args).await?;
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
                "log_driver": args.log_driver,
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
            "{} cycles, {} at a time, log driver {}: {seconds:.2} s, {rate:.2} containers/s; cycle p50 {:.1} ms, p90 {:.1} ms",
            args.cycles,
            args.parallel,
            args.log_driver,
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
