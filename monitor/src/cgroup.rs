//! The container's cgroup, read for CPU time and memory.

use crate::command::rusage_ms;

/// The container's cgroup, as seen from inside (v1 or v2).
pub(super) struct Cgroup {
    pub(super) cpu_usage: Option<(String, CpuFormat)>,
    /// `memory.stat`, and the keys of its anonymous and its shared
    /// (tmpfs) memory (v1's `total_rss` and `total_shmem`, v2's `anon` and
    /// `shmem`).
    pub(super) memory_stat: Option<(String, &'static str, &'static str)>,
    pub(super) oom: Option<(String, &'static str)>,
}

pub(super) enum CpuFormat {
    /// cgroup v1 `cpuacct.usage`: nanoseconds.
    Nanos,
    /// cgroup v2 `cpu.stat`: `usage_usec <n>`.
    StatMicros,
}

impl Cgroup {
    pub(super) fn detect() -> Cgroup {
        // Readable, not just present: gVisor shows paths it cannot read.
        let exists = |p: &str| std::fs::read_to_string(p).is_ok_and(|text| !text.trim().is_empty());
        let cpu_usage = [
            "/sys/fs/cgroup/cpuacct/cpuacct.usage",
            "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage",
        ]
        .iter()
        .find(|p| exists(p))
        .map(|p| (p.to_string(), CpuFormat::Nanos))
        .or_else(|| {
            exists("/sys/fs/cgroup/cpu.stat")
                .then(|| ("/sys/fs/cgroup/cpu.stat".to_string(), CpuFormat::StatMicros))
        });
        let memory_stat = [
            (
                "/sys/fs/cgroup/memory/memory.stat",
                "total_rss",
                "total_shmem",
            ),
            ("/sys/fs/cgroup/memory.stat", "anon", "shmem"),
        ]
        .into_iter()
        .find(|(p, anon, _)| {
            std::fs::read_to_string(p).is_ok_and(|text| keyed(&text, anon).is_some())
        })
        .map(|(p, anon, shmem)| (p.to_string(), anon, shmem));
        let oom = if exists("/sys/fs/cgroup/memory/memory.oom_control") {
            Some((
                "/sys/fs/cgroup/memory/memory.oom_control".to_string(),
                "oom_kill",
            ))
        } else if exists("/sys/fs/cgroup/memory.events") {
            Some(("/sys/fs/cgroup/memory.events".to_string(), "oom_kill"))
        } else {
            None
        };
        Cgroup {
            cpu_usage,
            memory_stat,
            oom,
        }
    }

    /// CPU time used by the whole container so far, in nanoseconds: from
    /// the cgroup, or (where no cgroup is visible, as under gVisor) the sum
    /// over every live process and every process reaped so far.
    pub(super) fn cpu_ns(&self) -> Option<u64> {
        let Some((path, format)) = self.cpu_usage.as_ref() else {
            return Some(processes_cpu_ns());
        };
        let text = std::fs::read_to_string(path).ok()?;
        match format {
            CpuFormat::Nanos => text.trim().parse().ok(),
            CpuFormat::StatMicros => keyed(&text, "usage_usec").map(|us| us * 1000),
        }
    }

    /// The container's memory that programs hold now, where the cgroup
    /// shows it: anonymous memory (what processes allocated) and shared
    /// memory (files in its tmpfs and `/dev/shm`, which count against its
    /// limit like any allocation), never page cache of files read.
    pub(super) fn held_bytes(&self) -> Option<u64> {
        let (path, anon, shmem) = self.memory_stat.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        Some(keyed(&text, anon)? + keyed(&text, shmem).unwrap_or(0))
    }

    pub(super) fn oom_kills(&self) -> Option<u64> {
        let (path, key) = self.oom.as_ref()?;
        keyed(&std::fs::read_to_string(path).ok()?, key)
    }
}

/// CPU time of every other process, live (from /proc) or reaped by the
/// monitor (its children's rusage), in nanoseconds.
pub(super) fn processes_cpu_ns() -> u64 {
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    // SAFETY: rusage is plain data (zero is a value); getrusage writes it.
    // (Neither std nor rustix reads the children's usage.)
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let mut total = rusage_ms(&usage) * 1_000_000;
    let me = std::process::id().to_string();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str() else { continue };
            if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the command name, which may hold spaces.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let time = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            total += (time(11) + time(12)) * 1_000_000_000 / ticks;
        }
    }
    total
}

pub(super) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}
