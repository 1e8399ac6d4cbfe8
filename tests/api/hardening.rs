//! The hardening, verified on the engine rather than assumed: every setting
//! of a job's container as Docker reports it; a create warning fails the
//! job; settings that would weaken the sandbox stop the service at start.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use serde_json::json;

use crate::helpers::{TestService, unique_queue};

/// A container created for its job (no warm pool, nothing recycled): its
/// labels name the job and its step.
#[tokio::test]
async fn a_running_jobs_container_has_every_hardening_setting() {
    let service = TestService::start_with(|c| {
        c.wall_time_limit_ms = 20_000;
        c.pool_size = 0;
        c.recycle = code_runner::sandbox::pool::Recycle::Off;
    })
    .await;
    let id = service
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(8)" }))
        .await;
    let (container, info) = running_container(&service, &id).await;
    assert!(!container.pooled);
    assert_hardened(&service, info, &id, "run-0").await;
    service.stop().await;
}

/// A warm container, taken by a job, is the same container a fresh one
/// would be: every setting is checked again. Its labels were written before
/// it had a job (they say `pool`); its name carries the job.
#[tokio::test]
async fn a_warm_pool_container_taken_by_a_job_has_every_hardening_setting() {
    let service = TestService::start_with(|c| {
        c.wall_time_limit_ms = 20_000;
        c.pool_size = 2;
    })
    .await;
    let warm_up = service
        .run_v1(json!({ "language": "python", "code": "print(1)" }))
        .await;
    assert_eq!(warm_up["result"]["verdict"], "accepted", "{warm_up}");
    service.wait_pool_warm("python").await;
    let hits = service.pool_stats().await["hits"].as_u64().unwrap();

    let id = service
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(8)" }))
        .await;
    let (container, info) = running_container(&service, &id).await;
    assert!(container.pooled, "the job did not take a warm container");
    assert_eq!(service.pool_stats().await["hits"], hits + 1);
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let name = docker
        .inspect_container(&container.id, None)
        .await
        .unwrap()
        .name
        .unwrap();
    assert!(name.contains(&id), "{name}");
    assert_hardened(&service, info, "pool", "pool").await;
    service.stop().await;
}

/// The container of a running job, once the job names it (after its
/// create, or after a warm one was renamed and pinned) and it runs. A
/// container that goes away meanwhile (an attempt the engine failed, which
/// BullMQ retries) is followed to the job's next one, and said.
async fn running_container(
    service: &TestService,
    id: &str,
) -> (
    code_runner::sandbox::sweep::ManagedContainer,
    bollard::models::ContainerInspectResponse,
) {
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the job's container never ran: {}",
            service.admin_get(&format!("/admin/api/jobs/{id}")).await.1
        );
        let (_, job) = service.admin_get(&format!("/admin/api/jobs/{id}")).await;
        let named = job["live"]["containerId"].as_str().map(str::to_string);
        let container = service
            .containers()
            .await
            .into_iter()
            .find(|c| c.job_id == id && named.as_deref() == Some(c.id.as_str()));
        let Some(container) = container else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        match docker.inspect_container(&container.id, None).await {
            Ok(info) if info.state.as_ref().and_then(|s| s.running) == Some(true) => {
                return (container, info);
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (_, later) = service.admin_get(&format!("/admin/api/jobs/{id}")).await;
                eprintln!(
                    "the job's container {} went away ({e}); the job: {later}",
                    container.id
                );
            }
        }
    }
}

/// Every hardening setting, as the engine reports it.
async fn assert_hardened(
    service: &TestService,
    info: bollard::models::ContainerInspectResponse,
    job_label: &str,
    step: &str,
) {
    let config = info.config.unwrap();
    let host = info.host_config.unwrap();

    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(config.network_disabled, Some(true));
    let networks = info.network_settings.unwrap().networks.unwrap_or_default();
    assert!(
        networks.keys().all(|n| n == "none"),
        "attached to a network: {networks:?}"
    );
    assert_eq!(host.memory, Some(256 << 20));
    assert_eq!(host.memory_swap, host.memory, "swap must be off");
    assert_eq!(host.pids_limit, Some(64));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.readonly_rootfs, Some(true));
    // A CPU of its own (its worker slot's): one CPU a job, no more jobs
    // than CPUs, as the defaults are.
    let cpus = host.cpuset_cpus.clone().unwrap_or_default();
    assert!(
        cpus.parse::<u32>().is_ok(),
        "not pinned to one CPU: {cpus:?}"
    );
    let tmpfs = host.tmpfs.unwrap();
    let tmp = &tmpfs["/tmp"];
    for option in ["size=67108864", "nr_inodes=", "nosuid", "nodev"] {
        assert!(tmp.contains(option), "/tmp tmpfs lacks {option}: {tmp}");
    }
    assert_eq!(tmpfs.len(), 1, "only /tmp is writable: {tmpfs:?}");
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    // Only the monitor's: the program runs with none (tests/hostile).
    let mut added = host.cap_add.unwrap_or_default();
    added.sort();
    assert_eq!(
        added,
        ["CHOWN", "DAC_READ_SEARCH", "KILL", "SETGID", "SETUID"],
        "capabilities beyond the monitor's"
    );
    assert_eq!(
        host.cgroupns_mode,
        Some(bollard::models::HostConfigCgroupnsModeEnum::PRIVATE)
    );
    assert!(
        host.security_opt
            .unwrap_or_default()
            .iter()
            .any(|o| o == "no-new-privileges")
    );
    assert_ne!(host.privileged, Some(true));
    // Root only until the monitor has read its task (see the monitor).
    assert_eq!(config.user.as_deref(), Some("0:0"));
    assert_eq!(
        config.entrypoint,
        Some(vec!["/usr/local/bin/code-runner-monitor".to_string()])
    );
    let ulimits: HashMap<String, (i64, i64)> = host
        .ulimits
        .unwrap()
        .into_iter()
        .map(|u| (u.name.unwrap(), (u.soft.unwrap(), u.hard.unwrap())))
        .collect();
    assert_eq!(ulimits["core"], (0, 0));
    assert_eq!(ulimits["nofile"], (256, 256));
    assert_eq!(ulimits["fsize"], (32 << 20, 32 << 20));
    let log = host.log_config.unwrap();
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    assert!(log.config.unwrap().contains_key("max-size"));
    assert_eq!(host.ipc_mode.as_deref(), Some("private"));
    assert!(
        host.pid_mode.unwrap_or_default().is_empty(),
        "own PID namespace"
    );
    assert!(host.binds.unwrap_or_default().is_empty(), "no host mounts");
    assert!(
        info.mounts.unwrap_or_default().is_empty(),
        "no mounts at all"
    );
    assert!(
        host.devices.unwrap_or_default().is_empty(),
        "no host devices"
    );
    let labels = config.labels.unwrap();
    assert_eq!(labels["code-runner.managed"], "1");
    assert_eq!(labels["code-runner.job"], job_label);
    assert_eq!(labels["code-runner.worker"], service.worker_id());
    assert_eq!(labels["code-runner.queue"], service.queue_label());
    assert_eq!(labels["code-runner.step"], step);
}

#[tokio::test]
async fn a_create_warning_fails_the_job_instead_of_running_it() {
    // The engine warns (and drops the setting) when the kernel cannot
    // enforce a block I/O weight, as on this machine kind's kernel.
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let probe = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().build()),
            ContainerCreateBody {
                image: Some("code-runner/bash:latest".into()),
                host_config: Some(bollard::models::HostConfig {
                    blkio_weight: Some(500),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker
        .remove_container(
            &probe.id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    assert!(
        !probe.warnings.is_empty(),
        "this kernel enforces block I/O weights, so this test has no warning to provoke"
    );

    let service = TestService::start_with(|c| {
        c.container_overrides = Some(r#"{"BlkioWeight": 500}"#.into());
        c.attempts = 1;
    })
    .await;
    let view = service
        .run_v1(json!({ "language": "python", "code": "print('must not run')" }))
        .await;
    assert_eq!(view["state"], "failed", "{view}");
    let error = view["error"].as_str().unwrap();
    assert!(
        error.contains("refused to create the container safely"),
        "{error}"
    );
    service.assert_containers_gone(None).await;
    service.stop().await;
}

#[test]
fn settings_that_weaken_the_sandbox_stop_the_service_at_start() {
    for (overrides, reason) in [
        (r#"{"Privileged": true}"#, "every capability"),
        (r#"{"NetworkMode": "host"}"#, "no network"),
        (
            r#"{"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}"#,
            "Docker socket",
        ),
        (r#"{"CapAdd": ["SYS_ADMIN"]}"#, "capability"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_code-runner"))
            .arg("serve")
            .env("CODE_RUNNER_CONTAINER_OVERRIDES", overrides)
            .env("CODE_RUNNER_QUEUE", unique_queue())
            .env("CODE_RUNNER_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{overrides}: {stderr}");
        assert!(stderr.contains(reason), "{overrides}: {stderr}");
    }
}
