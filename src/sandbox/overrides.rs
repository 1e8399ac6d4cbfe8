//! Operator overrides of the job containers' host settings
//! (`CODE_RUNNER_CONTAINER_OVERRIDES`, JSON in the Docker Engine API's
//! names). Only settings that cannot weaken the sandbox are accepted; any
//! other is refused at start-up with the reason, so a service never starts
//! with a weakened sandbox.

use serde_json::{Map, Value};

/// Settings an operator may set, and why each is harmless.
const ALLOWED: &[&str] = &[
    "CpusetCpus",        // pin jobs to some CPUs
    "CpusetMems",        // and memory nodes
    "CpuShares",         // relative CPU weight
    "BlkioWeight",       // relative I/O weight
    "CgroupParent",      // where the job's cgroup lives
    "OomScoreAdj",       // only upwards (0..1000): jobs die first
    "MemoryReservation", // a soft memory floor below the limit
    "ShmSize",           // /dev/shm size (counted in the memory limit)
];

/// Why a setting is refused.
fn refusal(key: &str, value: &Value) -> Option<String> {
    let reason = match key {
        "Privileged" if value == &Value::Bool(false) => return None,
        "Privileged" => "privileged containers get every capability and every host device",
        "NetworkMode" => "jobs have no network: the network mode stays none",
        "Binds" | "Mounts" | "VolumesFrom" => {
            if value.to_string().contains("docker.sock") {
                "mounting the Docker socket hands the job the engine, and with it the host"
            } else {
                "jobs never see a host path: no mounts or volumes"
            }
        }
        "Devices" | "DeviceRequests" | "DeviceCgroupRules" => "jobs get no host devices",
        "CapAdd" => "every capability stays dropped",
        "SecurityOpt" => {
            "security options stay as set (no-new-privileges, default seccomp and AppArmor)"
        }
        "PidMode" | "IpcMode" | "UTSMode" | "UsernsMode" | "CgroupnsMode" => {
            "the job's namespaces stay private"
        }
        "Sysctls" => "kernel parameters stay the engine's",
        "ReadonlyRootfs" | "Tmpfs" | "Memory" | "MemorySwap" | "NanoCpus" | "CpuQuota"
        | "CpuPeriod" | "PidsLimit" | "Ulimits" | "Runtime" | "Init" | "OomKillDisable"
        | "MemorySwappiness" | "AutoRemove" | "LogConfig" => {
            "the service sets this per job (use the CODE_RUNNER_* limits)"
        }
        _ => "not an allowed override",
    };
    Some(format!(
        "CODE_RUNNER_CONTAINER_OVERRIDES: {key} refused: {reason}; allowed: {}",
        ALLOWED.join(", ")
    ))
}

/// Parses and checks the overrides; the error says what was refused and why.
pub fn parse_overrides(json: &str) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| format!("CODE_RUNNER_CONTAINER_OVERRIDES is not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("CODE_RUNNER_CONTAINER_OVERRIDES must be a JSON object".into());
    };
    let mut accepted = Map::new();
    for (key, value) in map {
        if ALLOWED.contains(&key.as_str()) {
            if key == "OomScoreAdj" && !value.as_i64().is_some_and(|v| (0..=1000).contains(&v)) {
                return Err(
                    "CODE_RUNNER_CONTAINER_OVERRIDES: OomScoreAdj must be 0 to 1000 \
                     (below 0 would protect jobs from the OOM killer at the host's expense)"
                        .into(),
                );
            }
            accepted.insert(key, value);
        } else if let Some(reason) = refusal(&key, &value) {
            return Err(reason);
        }
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakening_settings_are_refused_with_a_reason() {
        for (json, words) in [
            (r#"{"Privileged": true}"#, "every capability"),
            (r#"{"NetworkMode": "host"}"#, "no network"),
            (
                r#"{"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}"#,
                "Docker socket",
            ),
            (
                r#"{"Mounts": [{"Source": "/", "Target": "/host"}]}"#,
                "host path",
            ),
            (r#"{"CapAdd": ["SYS_ADMIN"]}"#, "capability"),
            (r#"{"SecurityOpt": ["seccomp=unconfined"]}"#, "seccomp"),
            (r#"{"PidMode": "host"}"#, "namespaces"),
            (r#"{"Memory": 0}"#, "per job"),
            (r#"{"OomScoreAdj": -500}"#, "OOM killer"),
            (r#"{"Whatever": 1}"#, "not an allowed override"),
        ] {
            let error = parse_overrides(json).unwrap_err();
            assert!(error.contains(words), "{json}: {error}");
        }
    }

    #[test]
    fn harmless_settings_pass() {
        let map =
            parse_overrides(r#"{"CpusetCpus": "0", "BlkioWeight": 300, "Privileged": false}"#)
                .unwrap();
        assert_eq!(map.len(), 2);
    }
}
