//! The hardened container a job runs in, built in one place so that every
//! setting can be read (and audited) together.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};

use super::{LABEL_JOB, LABEL_MANAGED, LABEL_QUEUE, LABEL_WORKER, SandboxSettings};
use crate::job::Limits;
use crate::language::Language;

/// The entry shim baked into every runner image (docker/shim/code-runner-entry).
pub const ENTRY_SHIM: &str = "/usr/local/bin/code-runner-entry";

/// The unprivileged user (nobody:nogroup) programs run as.
pub const RUN_AS_USER: &str = "65534:65534";

/// Open files per process.
const NOFILE_LIMIT: i64 = 256;

/// Builds the container for one job.
///
/// Hardening, every item on by default and none optional:
/// no network (`network_mode: none`); memory limited with swap off
/// (memory+swap = memory); a pids limit (fork and thread bombs); a CPU quota;
/// a read-only root with a size-capped tmpfs at /tmp as the only writable
/// place; every capability dropped; `no-new-privileges` (setuid binaries
/// gain nothing); a non-root user; an init process that reaps zombies and
/// forwards signals; ulimits on open files, file size and core dumps (none);
/// a capped json-file log; labels marking it as ours; no host mounts, ever;
/// an environment that the entry shim reduces to what the language needs.
pub fn container_spec(
    settings: &SandboxSettings,
    image: String,
    language: &Language,
    limits: &Limits,
    job_id: &str,
) -> ContainerCreateBody {
    let labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "1".to_string()),
        (LABEL_WORKER.to_string(), settings.worker_id.clone()),
        (LABEL_JOB.to_string(), job_id.to_string()),
        (LABEL_QUEUE.to_string(), settings.queue.clone()),
    ]);
    let memory = limits.memory_bytes as i64;
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
        pids_limit: Some(limits.pids),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_string(),
            format!("rw,nosuid,nodev,size={tmpfs_bytes},mode=1777"),
        )])),
        cap_drop: Some(vec!["ALL".to_string()]),
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        privileged: Some(false),
        init: Some(true),
        ipc_mode: Some("private".to_string()),
        ulimits: Some(vec![
            ulimit("nofile", NOFILE_LIMIT),
            ulimit("fsize", tmpfs_bytes as i64),
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
        auto_remove: Some(false),
        binds: None,
        mounts: None,
        runtime: settings.runtime.clone(),
        ..Default::default()
    };
    let mut cmd = Vec::with_capacity(language.run.len());
    cmd.extend(language.run.iter().cloned());
    ContainerCreateBody {
        image: Some(image),
        entrypoint: Some(vec![ENTRY_SHIM.to_string()]),
        cmd: Some(cmd),
        user: Some(RUN_AS_USER.to_string()),
        working_dir: Some("/tmp".to_string()),
        // The shim replaces this with PATH, HOME, LANG, TMPDIR and the
        // language's own variables before the program starts.
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

/// The frame the entry shim reads on stdin: the language's environment, the
/// source file, then the program's stdin.
pub fn stdin_frame(language: &Language, code: &[u8], stdin: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(code.len() + stdin.len() + 128);
    frame.extend_from_slice(b"CODE-RUNNER/1\n");
    for (name, value) in &language.env {
        frame.extend_from_slice(format!("env {name}={value}\n").as_bytes());
    }
    frame.extend_from_slice(format!("file {} {}\n", code.len(), language.source_file).as_bytes());
    frame.extend_from_slice(code);
    frame.extend_from_slice(b"run\n");
    frame.extend_from_slice(stdin);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::LanguageTable;

    fn limits() -> Limits {
        Limits {
            wall_time_ms: 1000,
            memory_bytes: 128 << 20,
            pids: 32,
            cpus: 0.5,
            output_bytes: 1024,
            tmpfs_bytes: 8 << 20,
        }
    }

    #[test]
    fn the_spec_is_hardened() {
        let table = LanguageTable::built_in();
        let python = table.find("python").unwrap();
        let settings = SandboxSettings {
            image_prefix: "code-runner".into(),
            runtime: None,
            worker_id: "w1".into(),
            queue: "q".into(),
        };
        let spec = container_spec(&settings, "img".into(), python, &limits(), "job-1");
        let host = spec.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.memory, host.memory_swap);
        assert_eq!(host.memory, Some(128 << 20));
        assert_eq!(host.pids_limit, Some(32));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert!(host.binds.is_none() && host.mounts.is_none());
        assert_eq!(spec.user.as_deref(), Some(RUN_AS_USER));
        let labels = spec.labels.unwrap();
        assert_eq!(labels[LABEL_JOB], "job-1");
        assert_eq!(labels[LABEL_WORKER], "w1");
        // The code is not on the command line.
        assert_eq!(spec.cmd.unwrap(), python.run);
    }

    #[test]
    fn the_frame_carries_code_then_stdin() {
        let table = LanguageTable::built_in();
        let python = table.find("python").unwrap();
        let frame = stdin_frame(python, b"print(1)\n", b"in");
        let text = String::from_utf8(frame).unwrap();
        assert!(text.starts_with("CODE-RUNNER/1\n"));
        assert!(text.ends_with("file 9 main.py\nprint(1)\nrun\nin"));
    }
}
