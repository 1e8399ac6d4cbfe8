//! Running the command: its child set up (privileges, limits, seccomp,
//! signals), its pipes relayed in frames, its limits enforced, its figures
//! read, every process reaped.

use std::ffi::CString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Resource, Rlimit, Signal};

use crate::{
    DRAIN, MAX_PENDING_INPUT, Output, TICK,
    cgroup::Cgroup,
    failure,
    files::resolve,
    privileges::{become_uid, capset, seccomp_filter},
    sys::{exit_child, keep_from_children, kill_everyone_else, pipe, set_nonblocking, write_all},
};
use monitor_protocol::{
    FRAME_STDERR, FRAME_STDOUT, Input, InputReader, LimitHit, MAX_CHUNK, Report, Task, WORK_DIR,
};

/// The steps of starting the command, as the child reports a failure.
pub(super) const STEP_EXEC: i32 = 0;

pub(super) const STEP_OOM_SCORE: i32 = 1;

pub(super) const STEP_UID: i32 = 2;

pub(super) const STEP_SECCOMP: i32 = 3;

pub(super) const STEP_CHDIR: i32 = 4;

pub(super) struct Stream {
    /// The pipe's read end, until it is closed.
    pub(super) fd: Option<OwnedFd>,
    pub(super) kind: u8,
    pub(super) sent: u64,
    pub(super) truncated: bool,
}

/// Runs the task's command on `stdin`. An interactive task's input frames
/// are read from `input_fd` through `inputs` (which may hold bytes of it
/// already read, and holds what was read past the frames it took when the
/// command ended).
///
/// The memory figure is the command's own: the larger of its process
/// tree's peak resident set (`ru_maxrss` of the command, which counts the
/// descendants it waited for) and the memory the container's programs
/// hold (anonymous, and the files they write into the tmpfs, which count
/// against the limit) above its level before the command started, sampled
/// every tick (processes alive at once, orphans the monitor reaped, files
/// written). Never the cgroup's usage or high-water mark: those count page
/// cache the command (or a compilation before it in the same container)
/// merely read, so a figure would depend on what happened to be cached;
/// nor the task's own files, there before it started.
pub(super) fn run(
    task: &Task,
    stdin: &[u8],
    out: &mut Output,
    input_fd: BorrowedFd<'_>,
    inputs: &mut InputReader,
) -> Report {
    let cgroup = Cgroup::detect();
    let held_before = cgroup.held_bytes();
    let mut held_peak = 0u64;
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
    let filter = seccomp_filter(std::fs::read_dir("/dev/mqueue").is_err());
    let program_uid = task.uid;
    let (stack_bytes, file_size_bytes) = (task.stack_bytes, task.file_size_bytes);
    let processes = task.processes.filter(|_| task.uid.is_some());
    let stderr_to_stdout = task.stderr_to_stdout;
    let cpu_seconds = task.cpu_ms.div_ceil(1000) + 1;

    let (stdin_r, stdin_w) = pipe();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let (exec_r, exec_w) = pipe();

    // The command's peak counts what it inherited at fork until its exec
    // (the kernel keeps the larger): the monitor's large buffers, the
    // task's files (a compiled program of megabytes) and its input, stay
    // out of the child, which never touches them before exec.
    for file in &task.files {
        keep_from_children(&file.content);
    }
    keep_from_children(stdin);
    keep_from_children(inputs.pending());

    let started = Instant::now();
    // SAFETY: the monitor is single-threaded; the child makes only raw
    // system calls (async-signal-safe) before execve or _exit, and
    // allocates nothing.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return failure(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        // Tells the monitor which step failed, and why, then exits.
        let fail = |step: i32, e: Errno| -> ! {
            let mut words = [0u8; 8];
            words[..4].copy_from_slice(&step.to_ne_bytes());
            words[4..].copy_from_slice(&e.raw_os_error().to_ne_bytes());
            let _ = write_all(&exec_w, &words);
            exit_child(127)
        };
        let _ = rustix::process::setsid();
        let _ = rustix::stdio::dup2_stdin(&stdin_r);
        let _ = rustix::stdio::dup2_stdout(&out_w);
        let _ = rustix::stdio::dup2_stderr(if stderr_to_stdout { &out_w } else { &err_w });
        reset_signals();
        // The OOM killer picks the job, never the monitor. The child
        // inherited the monitor's non-dumpable flag, which makes its /proc
        // files root's: dumpable again, the file is its own.
        let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable);
        let oom_score = rustix::fs::open(
            oom_path.as_c_str(),
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .and_then(|fd| rustix::io::write(&fd, b"1000"));
        match oom_score {
            Ok(4) => {}
            Ok(_) => fail(STEP_OOM_SCORE, Errno::IO),
            Err(e) => fail(STEP_OOM_SCORE, e),
        }
        let _ = rustix::process::setrlimit(
            Resource::Cpu,
            Rlimit {
                current: Some(cpu_seconds),
                maximum: Some(cpu_seconds + 1),
            },
        );
        // The job's own stack and file-size limits, never above what the
        // container allows (lowering a hard limit needs no privilege).
        for (resource, bytes) in [
            (Resource::Stack, stack_bytes),
            (Resource::Fsize, file_size_bytes),
        ] {
            let Some(bytes) = bytes else { continue };
            let allowed = rustix::process::getrlimit(resource).maximum;
            let value = Some(allowed.map_or(bytes, |max| bytes.min(max)));
            let _ = rustix::process::setrlimit(
                resource,
                Rlimit {
                    current: value,
                    maximum: value,
                },
            );
        }
        // Processes and threads of the program's uid, as the pids cgroup
        // counts them: sent under gVisor only, whose kernel counts the uid
        // in this sandbox alone, and where the cgroup also counts the
        // sandbox's own threads: this is the limit a fork bomb meets first.
        if let Some(processes) = processes {
            let limit = Some(processes);
            let _ = rustix::process::setrlimit(
                Resource::Nproc,
                Rlimit {
                    current: limit,
                    maximum: limit,
                },
            );
        }
        if let Some(uid) = program_uid {
            // Its own uid and gid, no supplementary group, and no
            // capability left (the monitor's uid is not root, so the change
            // of uid does not drop them by itself).
            if let Err(e) = become_uid(uid).and_then(|()| capset(0)) {
                fail(STEP_UID, e);
            }
        }
        // No new privileges, then the filter.
        if let Err(e) = seccompiler::apply_filter(&filter) {
            let errno = match &e {
                seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e
                    .raw_os_error()
                    .map_or(Errno::INVAL, Errno::from_raw_os_error),
                _ => Errno::INVAL,
            };
            fail(STEP_SECCOMP, errno);
        }
        if let Err(e) = rustix::process::chdir(work_dir.as_c_str()) {
            fail(STEP_CHDIR, e);
        }
        // SAFETY: every pointer is to a live, NUL-terminated string, each
        // array ends with a null pointer.
        unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
        fail(STEP_EXEC, Errno::from_raw_os_error(crate::sys::errno()));
    }
    let child_group = Pid::from_raw(child).expect("a child's pid");
    drop((stdin_r, out_w, err_w, exec_w));
    set_nonblocking(&stdin_w);
    set_nonblocking(&out_r);
    set_nonblocking(&err_r);

    let kill_all = || {
        if is_init {
            kill_everyone_else();
        } else {
            let _ = rustix::process::kill_process_group(child_group, Signal::KILL);
        }
    };

    let mut streams = [
        Stream {
            fd: Some(out_r),
            kind: FRAME_STDOUT,
            sent: 0,
            truncated: false,
        },
        Stream {
            fd: Some(err_r),
            kind: FRAME_STDERR,
            sent: 0,
            truncated: false,
        },
    ];
    // The command's stdin: what is waiting for it, and whether it ends once
    // that is written (a batch task's does; an interactive one's when the
    // service says so).
    let interactive = task.interactive.is_some();
    let idle_limit = task
        .interactive
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    let mut pending: Vec<u8> = stdin.to_vec();
    let mut stdin_pos = 0usize;
    let mut stdin_ends = !interactive;
    // The command's stdin, until it is closed.
    let mut stdin_w = Some(stdin_w).filter(|_| !stdin.is_empty() || interactive);
    let mut input_open = interactive;
    if interactive {
        set_nonblocking(input_fd);
    }
    let mut last_activity = Instant::now();
    let mut exec_r = Some(exec_r);
    let mut exec_error: Option<(i32, i32)> = None;
    let mut status: Option<(i32, libc::rusage)> = None;
    let mut limit: Option<LimitHit> = None;
    let mut killed_at: Option<Instant> = None;
    let deadline = started + Duration::from_millis(task.wall_ms);
    let mut buffer = vec![0u8; MAX_CHUNK];

    loop {
        {
            use rustix::event::{PollFd, PollFlags};
            let mut fds = Vec::with_capacity(4);
            for fd in streams.iter().filter_map(|s| s.fd.as_ref()) {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let Some(fd) = &stdin_w
                && stdin_pos < pending.len()
            {
                fds.push(PollFd::new(fd, PollFlags::OUT));
            }
            if input_open && pending.len() - stdin_pos < MAX_PENDING_INPUT {
                fds.push(PollFd::new(&input_fd, PollFlags::IN));
            }
            if let Some(fd) = &exec_r {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            let tick = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: TICK.as_nanos() as i64,
            };
            let _ = rustix::event::poll(&mut fds, Some(&tick));
        }

        for s in streams.iter_mut().filter(|s| s.fd.is_some()) {
            let before = s.sent;
            if relay(s, &mut buffer, out, task.output_bytes) && limit.is_none() {
                limit = Some(LimitHit::Output);
            }
            if s.sent != before {
                last_activity = Instant::now();
            }
        }
        if input_open && pending.len() - stdin_pos < MAX_PENDING_INPUT {
            match rustix::io::read(input_fd, &mut buffer[..]) {
                Ok(0) => {
                    // The service closed the command's input.
                    input_open = false;
                    stdin_ends = true;
                }
                Ok(n) => inputs.push(&buffer[..n]),
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => {
                    input_open = false;
                    stdin_ends = true;
                }
            }
        }
        loop {
            match inputs.next_input() {
                Ok(None) => break,
                Ok(Some(input)) => {
                    last_activity = Instant::now();
                    match input {
                        Input::Data(bytes) => {
                            if stdin_pos > 0 && stdin_pos == pending.len() {
                                pending.clear();
                                stdin_pos = 0;
                            }
                            if !stdin_ends {
                                pending.extend_from_slice(&bytes);
                            }
                        }
                        Input::Close => stdin_ends = true,
                        // The command's process group (it called setsid),
                        // a signal the protocol allows.
                        Input::Signal(n) => {
                            if let Some(signal) = Signal::from_named_raw(n) {
                                let _ = rustix::process::kill_process_group(child_group, signal);
                            }
                        }
                        Input::ClientLeft => {
                            if limit.is_none() {
                                limit = Some(LimitHit::NoClient);
                            }
                        }
                        // Cases come between runs and an end after the
                        // report, never during one: not the service's
                        // frames; take no more input.
                        Input::Case { .. } | Input::End => {
                            input_open = false;
                            stdin_ends = true;
                        }
                    }
                }
                Err(_) => {
                    // Not the service's frames: take no more input.
                    input_open = false;
                    stdin_ends = true;
                    break;
                }
            }
        }
        if let Some(fd) = &stdin_w
            && stdin_pos < pending.len()
        {
            let end = pending.len().min(stdin_pos + MAX_CHUNK);
            match rustix::io::write(fd, &pending[stdin_pos..end]) {
                Ok(n) => stdin_pos += n,
                Err(Errno::AGAIN | Errno::INTR) => {}
                // The command closed its stdin: nothing more reaches it.
                Err(_) => stdin_w = None,
            }
        }
        if stdin_ends && stdin_pos >= pending.len() {
            stdin_w = None;
        }
        if let Some(idle) = idle_limit
            && limit.is_none()
            && last_activity.elapsed() >= idle
        {
            limit = Some(LimitHit::Idle);
        }
        if let Some(fd) = &exec_r {
            let mut words = [0u8; 8];
            match rustix::io::read(fd, &mut words) {
                Ok(8) => {
                    let word =
                        |at: usize| i32::from_ne_bytes(words[at..at + 4].try_into().unwrap());
                    exec_error = Some((word(0), word(4)));
                    exec_r = None;
                }
                // Closed at the command's exec.
                Ok(0) => exec_r = None,
                _ => {}
            }
        }
        if let (Some(before), Some(now)) = (held_before, cgroup.held_bytes()) {
            held_peak = held_peak.max(now.saturating_sub(before));
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
            kill_all();
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
    while streams.iter().any(|s| s.fd.is_some()) && Instant::now() < drain_until {
        let mut progressed = false;
        for s in streams.iter_mut().filter(|s| s.fd.is_some()) {
            let before = s.sent;
            if relay(s, &mut buffer, out, task.output_bytes) && limit.is_none() {
                limit = Some(LimitHit::Output);
            }
            progressed |= s.sent != before || s.fd.is_none();
        }
        if !progressed {
            kill_all();
            std::thread::sleep(Duration::from_millis(2));
        }
        reap(child, &mut status);
    }
    kill_all();
    reap(child, &mut status);
    for s in &mut streams {
        s.fd = None;
    }
    drop((stdin_w, exec_r));

    let cpu_ms = match (cpu_before, cgroup.cpu_ns()) {
        (Some(before), Some(after)) => after.saturating_sub(before) / 1_000_000,
        _ => status.map_or(0, |(_, r)| rusage_ms(&r)),
    };
    let largest_process = status.map_or(0, |(_, r)| r.ru_maxrss as u64 * 1024);
    let memory_peak_bytes = largest_process.max(held_peak);
    let oom_killed = cgroup.oom_kills().unwrap_or(0) > oom_before;
    let (exit_code, signal) = status.map_or((None, None), |(s, _)| {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(s);
        (status.code(), status.signal())
    });
    if limit.is_none() && oom_killed {
        limit = Some(LimitHit::Memory);
    }
    if limit.is_none() && signal == Some(libc::SIGXCPU) {
        limit = Some(LimitHit::Cpu);
    }
    let error = exec_error.map(|(step, e)| {
        let why = std::io::Error::from_raw_os_error(e);
        match step {
            STEP_EXEC => format!(
                "cannot run {}: {why}",
                String::from_utf8_lossy(&task.argv[0])
            ),
            STEP_OOM_SCORE => format!("cannot set the command's OOM score: {why}"),
            STEP_UID => format!("cannot start the command under its own uid: {why}"),
            STEP_SECCOMP => format!("cannot install the seccomp filter: {why}"),
            _ => format!("cannot enter the work directory: {why}"),
        }
    });
    let exec_failed = matches!(exec_error, Some((STEP_EXEC, _)));
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
        exec_failed,
        clean: false,
    }
}

pub(super) fn rusage_ms(r: &libc::rusage) -> u64 {
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(r.ru_utime) + ms(r.ru_stime)
}

/// Reaps every exited process (the monitor is init); records the command's.
pub(super) fn reap(child: libc::pid_t, status: &mut Option<(i32, libc::rusage)>) {
    loop {
        let mut s = 0;
        // SAFETY: rusage is plain data (zero is a value); wait4 writes it
        // and `s`. (Neither std nor rustix waits with the usage.)
        let (pid, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            (libc::wait4(-1, &mut s, libc::WNOHANG, &mut usage), usage)
        };
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
pub(super) fn relay(stream: &mut Stream, buffer: &mut [u8], out: &mut Output, cap: u64) -> bool {
    loop {
        let Some(fd) = &stream.fd else {
            return false;
        };
        let n = match rustix::io::read(fd, &mut *buffer) {
            Ok(0) => {
                stream.fd = None;
                return false;
            }
            Ok(n) => n as u64,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return false,
            Err(_) => {
                stream.fd = None;
                return false;
            }
        };
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

/// Every signal's disposition back to its default and none blocked: a
/// program starts as if from a clean shell, whatever the monitor inherited
/// (a service started with SIGINT ignored would pass that on through the
/// engine) or set itself (Rust ignores SIGPIPE). Handlers are reset by
/// execve anyway; ignored and blocked signals would not be. By the system
/// calls themselves (the child calls this between fork and execve): the C
/// library's wrappers refuse the signals it keeps for its threads (32, 33),
/// which an inherited disposition may still ignore, and rustix has no
/// public call for a signal's disposition. A zeroed kernel `sigaction` is
/// SIG_DFL with no flags and an empty mask.
fn reset_signals() {
    let none = [0u64; 4];
    // SAFETY: the kernel reads `none` (a live, zeroed sigset and
    // sigaction) and writes nothing back (null old values).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            none.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8,
        );
        for signal in 1..=64 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    none.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8,
                );
            }
        }
    }
}
