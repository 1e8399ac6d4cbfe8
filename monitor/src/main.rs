//! `code-runner-monitor`: PID 1 of every job container.
//!
//! It reads one task from stdin (see the protocol in `lib.rs`), writes the
//! files into the work directory, runs the command as its child with pipes
//! for stdin, stdout and stderr, relays the output in frames while counting
//! it, enforces the wall-clock, CPU-time (from the cgroup) and output
//! limits, reaps every process (it is the container's init), and reports
//! exit status, signal, wall time, CPU time and peak memory as the kernel
//! counted them.
//!
//! It makes itself non-dumpable, so a process of the same user cannot open
//! its file descriptors through /proc or ptrace it; as PID 1 of the
//! container's PID namespace it ignores every signal sent from inside. The
//! command therefore cannot forge frames on the container's stdout or stop
//! the monitor from reporting.

use std::ffi::CString;
use std::io::{BufReader, Write};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use monitor_protocol::{
    FRAME_FILE, FRAME_REPORT, FRAME_STDERR, FRAME_STDOUT, LimitHit, MAX_CHUNK, Report, Task,
    WORK_DIR, encode_file_payload, encode_frame,
};

/// How often limits are checked while the command runs.
const TICK: Duration = Duration::from_millis(10);
/// How long output is still drained after the command exited.
const DRAIN: Duration = Duration::from_millis(200);

fn main() {
    // SAFETY: plain syscalls with constant arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::umask(0o022);
    }
    let mut out = Output {
        fd: 1,
        nonce: [0; 16],
    };
    let task = {
        let stdin = std::io::stdin();
        let mut input = BufReader::with_capacity(1 << 16, stdin.lock());
        Task::decode(&mut input)
    };
    if let Ok(task) = &task {
        out.nonce = task.nonce;
    }
    let report = match task {
        Err(e) => failure(format!("bad task: {e}")),
        Ok(task) => match write_files(&task) {
            Err(e) => failure(format!("cannot write the job's files: {e}")),
            Ok(()) => {
                let mut report = run(&task, &mut out);
                if let Some(max) = task.artifacts
                    && report.error.is_none()
                {
                    report.artifacts_truncated = send_artifacts(&mut out, max);
                }
                report
            }
        },
    };
    let json = serde_json::to_vec(&report).unwrap_or_default();
    out.frame(FRAME_REPORT, &json);
    std::process::exit(0);
}

fn failure(error: String) -> Report {
    Report {
        error: Some(error),
        ..Report::default()
    }
}

/// The container's stdout, written only by the monitor.
struct Output {
    fd: RawFd,
    nonce: [u8; 16],
}

impl Output {
    fn frame(&mut self, kind: u8, payload: &[u8]) {
        let bytes = encode_frame(&self.nonce, kind, payload);
        let mut written = 0;
        while written < bytes.len() {
            // SAFETY: writing from a live buffer to our own descriptor.
            let n = unsafe {
                libc::write(
                    self.fd,
                    bytes[written..].as_ptr().cast(),
                    bytes.len() - written,
                )
            };
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                // Nobody is reading: the service gave up on this container.
                std::process::exit(1);
            }
            written += n as usize;
        }
    }
}

fn write_files(task: &Task) -> std::io::Result<()> {
    std::fs::create_dir_all(WORK_DIR)?;
    for file in &task.files {
        let path = std::path::Path::new(WORK_DIR).join(&file.name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        f.write_all(&file.content)?;
    }
    Ok(())
}

/// Sends the work dir's regular files; true when some did not fit in `max`.
fn send_artifacts(out: &mut Output, max: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(WORK_DIR) else {
        return false;
    };
    let mut names: Vec<_> = entries.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    let mut total = 0u64;
    let mut truncated = false;
    for entry in names {
        // symlink_metadata: a planted symlink is skipped, never followed.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if total + meta.len() > max {
            truncated = true;
            continue;
        }
        let Ok(content) = std::fs::read(entry.path()) else {
            continue;
        };
        total += content.len() as u64;
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        out.frame(FRAME_FILE, &encode_file_payload(&name, mode, &content));
    }
    truncated
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A pipe whose ends close on exec.
fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        panic!("pipe2 failed: {}", std::io::Error::last_os_error());
    }
    (fds[0], fds[1])
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

fn close(fd: RawFd) {
    // SAFETY: closing a descriptor we own, once.
    unsafe {
        libc::close(fd);
    }
}

/// The container's cgroup, as seen from inside (v1 or v2).
struct Cgroup {
    cpu_usage: Option<(String, CpuFormat)>,
    memory_peak: Option<String>,
    oom: Option<(String, &'static str)>,
}

enum CpuFormat {
    /// cgroup v1 `cpuacct.usage`: nanoseconds.
    Nanos,
    /// cgroup v2 `cpu.stat`: `usage_usec <n>`.
    StatMicros,
}

impl Cgroup {
    fn detect() -> Cgroup {
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
        let memory_peak = [
            "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",
            "/sys/fs/cgroup/memory.peak",
        ]
        .iter()
        .find(|p| exists(p))
        .map(|p| p.to_string());
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
            memory_peak,
            oom,
        }
    }

    /// CPU time used by the whole container so far, in nanoseconds: from
    /// the cgroup, or (where no cgroup is visible, as under gVisor) the sum
    /// over every live process and every process reaped so far.
    fn cpu_ns(&self) -> Option<u64> {
        let Some((path, format)) = self.cpu_usage.as_ref() else {
            return Some(processes_cpu_ns());
        };
        let text = std::fs::read_to_string(path).ok()?;
        match format {
            CpuFormat::Nanos => text.trim().parse().ok(),
            CpuFormat::StatMicros => keyed(&text, "usage_usec").map(|us| us * 1000),
        }
    }

    fn memory_peak(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.memory_peak.as_ref()?).ok()?;
        text.trim().parse().ok()
    }

    fn oom_kills(&self) -> Option<u64> {
        let (path, key) = self.oom.as_ref()?;
        keyed(&std::fs::read_to_string(path).ok()?, key)
    }
}

/// CPU time of every other process, live (from /proc) or reaped by the
/// monitor (its children's rusage), in nanoseconds.
fn processes_cpu_ns() -> u64 {
    // SAFETY: sysconf and getrusage write only to locals.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
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

fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// argv[0] resolved against the task's PATH, as execve needs it.
fn resolve(program: &[u8], env: &[(String, String)]) -> Vec<u8> {
    if program.contains(&b'/') {
        return program.to_vec();
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = std::path::Path::new(dir).join(std::ffi::OsStr::from_bytes(program));
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return candidate.as_os_str().as_bytes().to_vec();
            }
        }
    }
    program.to_vec()
}

struct Stream {
    fd: RawFd,
    open: bool,
    kind: u8,
    sent: u64,
    truncated: bool,
}

fn run(task: &Task, out: &mut Output) -> Report {
    let cgroup = Cgroup::detect();
    let cpu_before = cgroup.cpu_ns();
    let oom_before = cgroup.oom_kills().unwrap_or(0);
    let is_init = std::process::id() == 1;

    // Everything the child needs, allocated before fork.
    let to_cstring = |bytes: &[u8]| CString::new(bytes.to_vec()).ok();
    let Some(path) = to_cstring(&resolve(&task.argv[0], &task.env)) else {
        return failure("the command contains a NUL byte".into());
    };
    let Some(argv) = task
        .argv
        .iter()
        .map(|a| to_cstring(a))
        .collect::<Option<Vec<_>>>()
    else {
        return failure("an argument contains a NUL byte".into());
    };
    let Some(envp) = task
        .env
        .iter()
        .map(|(k, v)| to_cstring(format!("{k}={v}").as_bytes()))
        .collect::<Option<Vec<_>>>()
    else {
        return failure("an environment variable contains a NUL byte".into());
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let work_dir = CString::new(WORK_DIR).unwrap();
    let oom_path = CString::new("/proc/self/oom_score_adj").unwrap();
    let cpu_seconds = (task.cpu_ms.div_ceil(1000) + 1) as libc::rlim_t;

    let (stdin_r, stdin_w) = pipe();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let (exec_r, exec_w) = pipe();

    let started = Instant::now();
    // SAFETY: the monitor is single-threaded; the child only makes
    // async-signal-safe calls before execve or _exit.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return failure(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        // SAFETY: see above; every pointer outlives the call.
        unsafe {
            libc::setsid();
            libc::dup2(stdin_r, 0);
            libc::dup2(out_w, 1);
            libc::dup2(err_w, 2);
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if libc::chdir(work_dir.as_ptr()) != 0 {
                let e = errno();
                libc::write(exec_w, (&e as *const i32).cast(), 4);
                libc::_exit(127);
            }
            // The OOM killer picks the job, never the monitor.
            let fd = libc::open(oom_path.as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, b"1000".as_ptr().cast(), 4);
                libc::close(fd);
            }
            let limit = libc::rlimit {
                rlim_cur: cpu_seconds,
                rlim_max: cpu_seconds + 1,
            };
            libc::setrlimit(libc::RLIMIT_CPU, &limit);
            libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
            let e = errno();
            libc::write(exec_w, (&e as *const i32).cast(), 4);
            libc::_exit(127);
        }
    }
    close(stdin_r);
    close(out_w);
    close(err_w);
    close(exec_w);
    set_nonblocking(stdin_w);
    set_nonblocking(out_r);
    set_nonblocking(err_r);

    let kill_all = |child: libc::pid_t| {
        // SAFETY: signalling processes; as init, -1 means every process in
        // the container but the monitor.
        unsafe {
            if is_init {
                libc::kill(-1, libc::SIGKILL);
            } else {
                libc::kill(-child, libc::SIGKILL);
            }
        }
    };

    let mut streams = [
        Stream {
            fd: out_r,
            open: true,
            kind: FRAME_STDOUT,
            sent: 0,
            truncated: false,
        },
        Stream {
            fd: err_r,
            open: true,
            kind: FRAME_STDERR,
            sent: 0,
            truncated: false,
        },
    ];
    let mut stdin_open = true;
    let mut stdin_pos = 0usize;
    if task.stdin.is_empty() {
        close(stdin_w);
        stdin_open = false;
    }
    let mut exec_open = true;
    let mut exec_error: Option<i32> = None;
    let mut status: Option<(i32, libc::rusage)> = None;
    let mut limit: Option<LimitHit> = None;
    let mut killed_at: Option<Instant> = None;
    let deadline = started + Duration::from_millis(task.wall_ms);
    let mut buffer = vec![0u8; MAX_CHUNK];

    loop {
        let mut fds = Vec::with_capacity(4);
        for s in streams.iter().filter(|s| s.open) {
            fds.push(libc::pollfd {
                fd: s.fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if stdin_open {
            fds.push(libc::pollfd {
                fd: stdin_w,
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        if exec_open {
            fds.push(libc::pollfd {
                fd: exec_r,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = TICK.as_millis() as libc::c_int;
        // SAFETY: fds is a valid array of pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };

        for s in streams.iter_mut().filter(|s| s.open) {
            if relay(s, &mut buffer, out, task.output_bytes) && limit.is_none() {
                limit = Some(LimitHit::Output);
            }
        }
        if stdin_open {
            // SAFETY: writing from a live buffer to our own pipe.
            let n = unsafe {
                libc::write(
                    stdin_w,
                    task.stdin[stdin_pos..].as_ptr().cast(),
                    (task.stdin.len() - stdin_pos).min(MAX_CHUNK),
                )
            };
            if n > 0 {
                stdin_pos += n as usize;
            }
            if stdin_pos >= task.stdin.len() || (n < 0 && errno() != libc::EAGAIN) {
                close(stdin_w);
                stdin_open = false;
            }
        }
        if exec_open {
            let mut e = 0i32;
            // SAFETY: reading 4 bytes into an i32.
            let n = unsafe { libc::read(exec_r, (&mut e as *mut i32).cast(), 4) };
            if n == 4 {
                exec_error = Some(e);
            }
            if n == 0 || n == 4 {
                close(exec_r);
                exec_open = false;
            }
        }
        reap(child, &mut status);
        if status.is_some() {
            break;
        }
        if limit.is_none() {
            if Instant::now() >= deadline {
                limit = Some(LimitHit::Wall);
            } else if let (Some(before), Some(now)) = (cpu_before, cgroup.cpu_ns())
                && now.saturating_sub(before) >= task.cpu_ms * 1_000_000
            {
                limit = Some(LimitHit::Cpu);
            }
        }
        if limit.is_some() && killed_at.is_none() {
            kill_all(child);
            killed_at = Some(Instant::now());
        }
        if let Some(at) = killed_at
            && at.elapsed() > Duration::from_secs(5)
        {
            // SIGKILL is not refused; a child still here is stuck in the
            // kernel. Report what is known.
            break;
        }
    }
    let wall_ms = started.elapsed().as_millis() as u64;

    // The command exited: take what it wrote, then stop whatever it left.
    let drain_until = Instant::now() + DRAIN;
    while streams.iter().any(|s| s.open) && Instant::now() < drain_until {
        let mut progressed = false;
        for s in streams.iter_mut().filter(|s| s.open) {
            let before = s.sent;
            if relay(s, &mut buffer, out, task.output_bytes) && limit.is_none() {
                limit = Some(LimitHit::Output);
            }
            progressed |= s.sent != before || !s.open;
        }
        if !progressed {
            kill_all(child);
            std::thread::sleep(Duration::from_millis(2));
        }
        reap(child, &mut status);
    }
    kill_all(child);
    reap(child, &mut status);
    for s in streams.iter().filter(|s| s.open) {
        close(s.fd);
    }
    if stdin_open {
        close(stdin_w);
    }
    if exec_open {
        close(exec_r);
    }

    let cpu_ms = match (cpu_before, cgroup.cpu_ns()) {
        (Some(before), Some(after)) => after.saturating_sub(before) / 1_000_000,
        _ => status.map_or(0, |(_, r)| rusage_ms(&r)),
    };
    let memory_peak_bytes = cgroup
        .memory_peak()
        .or_else(|| status.map(|(_, r)| r.ru_maxrss as u64 * 1024))
        .unwrap_or(0);
    let oom_killed = cgroup.oom_kills().unwrap_or(0) > oom_before;
    let (exit_code, signal) = match status {
        Some((s, _)) if libc::WIFEXITED(s) => (Some(libc::WEXITSTATUS(s)), None),
        Some((s, _)) if libc::WIFSIGNALED(s) => (None, Some(libc::WTERMSIG(s))),
        _ => (None, None),
    };
    if limit.is_none() && oom_killed {
        limit = Some(LimitHit::Memory);
    }
    if limit.is_none() && signal == Some(libc::SIGXCPU) {
        limit = Some(LimitHit::Cpu);
    }
    let error = exec_error.map(|e| {
        format!(
            "cannot run {}: {}",
            String::from_utf8_lossy(&task.argv[0]),
            std::io::Error::from_raw_os_error(e)
        )
    });
    Report {
        exit_code,
        signal,
        wall_ms,
        cpu_ms,
        memory_peak_bytes,
        oom_killed,
        limit,
        stdout_truncated: streams[0].truncated,
        stderr_truncated: streams[1].truncated,
        error,
        artifacts_truncated: false,
    }
}

fn rusage_ms(r: &libc::rusage) -> u64 {
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(r.ru_utime) + ms(r.ru_stime)
}

/// Reaps every exited process (the monitor is init); records the command's.
fn reap(child: libc::pid_t, status: &mut Option<(i32, libc::rusage)>) {
    loop {
        let mut s = 0;
        // SAFETY: rusage is plain data, zero is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals.
        let pid = unsafe { libc::wait4(-1, &mut s, libc::WNOHANG, &mut usage) };
        if pid <= 0 {
            return;
        }
        if pid == child {
            *status = Some((s, usage));
        }
    }
}

/// Moves what is readable from one output pipe into frames, up to the cap.
/// Returns true when the stream passed its cap.
fn relay(stream: &mut Stream, buffer: &mut [u8], out: &mut Output, cap: u64) -> bool {
    loop {
        // SAFETY: reading into a live buffer from our own pipe.
        let n = unsafe { libc::read(stream.fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n == 0 {
            close(stream.fd);
            stream.open = false;
            return false;
        }
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            if errno() != libc::EAGAIN {
                close(stream.fd);
                stream.open = false;
            }
            return false;
        }
        let n = n as u64;
        let room = cap.saturating_sub(stream.sent);
        let keep = n.min(room);
        if keep > 0 {
            out.frame(stream.kind, &buffer[..keep as usize]);
            stream.sent += keep;
        }
        if n > room {
            stream.truncated = true;
            return true;
        }
    }
}
