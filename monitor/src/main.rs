//! `code-runner-monitor`: PID 1 of every job container.
//!
//! It reads one task from stdin (see the protocol in `lib.rs`), writes the
//! files into the work directory, runs the command as its child with pipes
//! for stdin, stdout and stderr, relays the output in frames while counting
//! it, enforces the wall-clock, CPU-time (from the cgroup) and output
//! limits, reaps every process (it is the container's init), and reports
//! exit status, signal, wall time, CPU time and the command's own peak
//! memory (not the page cache it read: see `run`) as the kernel counted
//! them.
//!
//! It starts as root with a handful of capabilities (the container's only
//! ones: CHOWN, DAC_READ_SEARCH, KILL, SETGID, SETUID), reads its task, then
//! becomes [`MONITOR_UID`] keeping just those; the command runs under the
//! task's own uid with no capability at all, and a seccomp filter of the
//! monitor's on top of the engine's (no io_uring). The monitor shares its uid
//! with no program, so the command can neither signal it, nor `prlimit`,
//! reschedule, trace or read it (each of those checks the caller's uid
//! against the target's); it is also non-dumpable (its /proc files belong to
//! root) and, as PID 1 of the container's PID namespace, ignores every
//! signal sent from inside. The command therefore cannot forge frames on
//! the container's stdout or stop the monitor from reporting.

use std::ffi::CString;
use std::io::{BufReader, Write};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use monitor_protocol::{
    FRAME_FILE, FRAME_REPORT, FRAME_STDERR, FRAME_STDOUT, Input, InputReader, LimitHit, MAX_CHUNK,
    MONITOR_UID, Report, Task, WORK_DIR, encode_file_payload, encode_frame,
};

/// The steps of starting the command, as the child reports a failure.
const STEP_EXEC: i32 = 0;
const STEP_OOM_SCORE: i32 = 1;
const STEP_UID: i32 = 2;
const STEP_SECCOMP: i32 = 3;
const STEP_CHDIR: i32 = 4;

/// Allocations at least this large get mappings of their own (see `main`).
const LARGE_ALLOCATION: usize = 128 * 1024;

/// Marks the whole pages of a large buffer not to be copied into a child
/// at fork (`MADV_DONTFORK`): the command's peak memory would otherwise
/// count them (the kernel keeps the larger of what a process held before
/// and after its exec). `bytes` must be a whole allocation (a `Vec`'s),
/// and only one that glibc made a mapping of its own is marked (its chunk
/// starts a page, 16 bytes before it, and says IS_MMAPPED): the mark then
/// goes with the mapping when it is freed, and never reaches memory reused
/// for something the child needs. The child must not touch such a buffer
/// before its exec.
fn keep_from_children(bytes: &[u8]) {
    if bytes.len() < LARGE_ALLOCATION {
        return;
    }
    const CHUNK_HEADER: usize = 16;
    const IS_MMAPPED: usize = 0x2;
    // SAFETY: sysconf reads a constant. The word read lies in the page
    // that holds the buffer's first byte (the chunk's header, when the
    // chunk starts that page). madvise only changes how fork treats whole
    // pages inside this live buffer.
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize;
        let start = bytes.as_ptr() as usize;
        if start < CHUNK_HEADER || !(start - CHUNK_HEADER).is_multiple_of(page) {
            return;
        }
        let size_word = std::ptr::read_volatile((start - 8) as *const usize);
        if size_word & IS_MMAPPED == 0 {
            return;
        }
        let first = start.div_ceil(page) * page;
        let end = (start + bytes.len()) / page * page;
        if end > first {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTFORK);
        }
    }
}

/// How often limits are checked while the command runs.
const TICK: Duration = Duration::from_millis(10);
/// How long output is still drained after the command exited.
const DRAIN: Duration = Duration::from_millis(200);
/// Most input bytes held for an interactive command that does not read
/// them: past it the monitor stops reading its own stdin, and the service's
/// writes wait.
const MAX_PENDING_INPUT: usize = 256 * 1024;

fn main() {
    // SAFETY: plain syscalls with constant arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::umask(0o022);
        // Allocations of LARGE_ALLOCATION or more become mappings of their
        // own, unmapped when freed (glibc would otherwise raise the
        // threshold as it goes), so `keep_from_children` finds them.
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_ALLOCATION as libc::c_int);
    }
    let mut out = Output {
        fd: 1,
        nonce: [0; 16],
    };
    // Read straight from fd 0 (no buffer of std's own): whatever follows
    // the task (an interactive command's input) is the monitor's to read.
    // SAFETY: fd 0 is open for the monitor's whole life; ManuallyDrop never
    // closes it.
    let stdin = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0)
    });
    let (task, after_task) = {
        let mut input = BufReader::with_capacity(1 << 16, &*stdin);
        let task = Task::decode(&mut input);
        (task, input.buffer().to_vec())
    };
    if let Ok(task) = &task {
        out.nonce = task.nonce;
    }
    let report = match task {
        Err(e) => failure(format!("bad task: {e}")),
        Ok(task) => match become_monitor(&task).and_then(|()| {
            write_files(&task).map_err(|e| format!("cannot write the job's files: {e}"))
        }) {
            Err(e) => failure(e),
            Ok(()) if task.cases => {
                serve_cases(&task, &mut out, &after_task);
                std::process::exit(0);
            }
            Ok(()) => {
                let mut report = run(&task, &task.stdin, &mut out, 0, &after_task);
                if let Some(max) = task.artifacts
                    && report.error.is_none()
                {
                    report.artifacts_truncated = send_artifacts(&mut out, max);
                }
                if task.then && report.error.is_none() {
                    match clear(task.uid).and_then(|()| nothing_left(&[])) {
                        Ok(()) => report.clean = true,
                        Err(e) => eprintln!("code-runner-monitor: cannot clear the container: {e}"),
                    }
                }
                if report.clean {
                    let json = serde_json::to_vec(&report).unwrap_or_default();
                    out.frame(FRAME_REPORT, &json);
                    serve_next(&task, &mut out, &stdin, after_task);
                    std::process::exit(0);
                }
                report
            }
        },
    };
    let json = serde_json::to_vec(&report).unwrap_or_default();
    out.frame(FRAME_REPORT, &json);
    std::process::exit(0);
}

/// After a task with `then` and a clear of the container: reads the next
/// task (after `read`, the bytes of stdin already read), which must carry
/// the first's nonce and uid and no `then`, writes its files and runs it
/// (case by case, if it has cases), every figure its own.
fn serve_next(first: &Task, out: &mut Output, stdin: &std::fs::File, read: Vec<u8>) {
    let mut input = BufReader::with_capacity(1 << 16, std::io::Read::chain(&read[..], stdin));
    let next = Task::decode(&mut input).and_then(|next| {
        if next.nonce != first.nonce || next.uid != first.uid || next.then {
            Err("the next task does not continue the first".into())
        } else {
            Ok(next)
        }
    });
    let mut after_task = input.buffer().to_vec();
    let (unread, _) = input.into_inner().into_inner();
    after_task.extend_from_slice(unread);
    let report = match next {
        Err(e) => failure(format!("bad next task: {e}")),
        Ok(next) => match write_files(&next) {
            Err(e) => failure(format!("cannot write the job's files: {e}")),
            Ok(()) if next.cases => return serve_cases(&next, out, &after_task),
            Ok(()) => {
                let mut report = run(&next, &next.stdin, out, 0, &after_task);
                if let Some(max) = next.artifacts
                    && report.error.is_none()
                {
                    report.artifacts_truncated = send_artifacts(out, max);
                }
                report
            }
        },
    };
    let json = serde_json::to_vec(&report).unwrap_or_default();
    out.frame(FRAME_REPORT, &json);
}

/// How long a restore between cases waits for the case's processes to die
/// (SIGKILL is not refused: only one stuck in the kernel outlives this).
const RESTORE_KILL: Duration = Duration::from_secs(2);

/// A task with `cases`: runs the command once per case sent on stdin, each
/// on a container restored to the task's start, and reports each case.
/// Returns at the end of stdin, on a frame that is not the service's, or
/// after a restore that failed.
fn serve_cases(task: &Task, out: &mut Output, after_task: &[u8]) {
    let mut inputs = InputReader::default();
    inputs.push(after_task);
    let mut buffer = vec![0u8; MAX_CHUNK];
    while let Some((stdin, last)) = next_case(0, &mut inputs, &mut buffer) {
        let mut report = run(task, &stdin, out, 0, &[]);
        if !last && report.error.is_none() {
            match restore(task) {
                Ok(()) => report.clean = true,
                Err(e) => eprintln!("code-runner-monitor: cannot restore the container: {e}"),
            }
        }
        let json = serde_json::to_vec(&report).unwrap_or_default();
        out.frame(FRAME_REPORT, &json);
        if !report.clean {
            return;
        }
    }
}

/// Reads the next case from `fd` (blocking): its [`Input::Case`] frame,
/// its stdin's data frames and their close. `None` at the end of input or
/// on anything else.
fn next_case(fd: RawFd, inputs: &mut InputReader, buffer: &mut [u8]) -> Option<(Vec<u8>, bool)> {
    let mut case: Option<(Vec<u8>, bool)> = None;
    loop {
        loop {
            match inputs.next_input() {
                Ok(None) => break,
                Ok(Some(Input::Case { last })) if case.is_none() => case = Some((Vec::new(), last)),
                Ok(Some(Input::Data(bytes))) if case.is_some() => {
                    case.as_mut()?.0.extend_from_slice(&bytes);
                }
                Ok(Some(Input::Close)) if case.is_some() => return case,
                Ok(Some(other)) => {
                    eprintln!("code-runner-monitor: unexpected input between cases: {other:?}");
                    return None;
                }
                Err(e) => {
                    eprintln!("code-runner-monitor: bad input between cases: {e}");
                    return None;
                }
            }
        }
        // SAFETY: reading into a live buffer from our own descriptor.
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n == 0 || (n < 0 && errno() != libc::EINTR) {
            return None;
        }
        if n > 0 {
            inputs.push(&buffer[..n as usize]);
        }
    }
}

/// Restores the container to the task's start after a case: every other
/// process killed and reaped; `/tmp` (the work directory with it),
/// `/dev/shm` and `/dev/mqueue` emptied and the command's System V IPC
/// objects removed (as the command's uid, which owns or created them: the
/// monitor may not delete another uid's files from the sticky `/tmp`); the
/// task's files written again; then [`nothing_left`] checks it. Nothing of
/// one case is then visible to, or counted against, the next.
fn restore(task: &Task) -> Result<(), String> {
    clear(task.uid)?;
    write_files(task).map_err(|e| format!("cannot write the job's files again: {e}"))?;
    nothing_left(&[std::path::Path::new(WORK_DIR)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .as_ref()])
}

/// Fails unless nothing a command could leave is there: `/tmp` holds
/// nothing but `names`; `/dev/shm` and `/dev/mqueue` are empty (files,
/// directories, FIFOs, sockets, POSIX shared memory and message queues
/// alike); and the container's IPC namespace holds no System V shared
/// memory segment, message queue or semaphore set of any owner or
/// creator (counted by the kernel's `*_INFO` calls, which need no
/// permission and which gVisor answers too, where `/proc/sysvipc` is
/// missing). Checked, never assumed: the caller ends the container when
/// anything is left.
fn nothing_left(names: &[&str]) -> Result<(), String> {
    let left: Vec<String> = std::fs::read_dir("/tmp")
        .map_err(|e| format!("cannot read /tmp: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !names.contains(&name.as_str()))
        .collect();
    if !left.is_empty() {
        return Err(format!("/tmp still holds {left:?}"));
    }
    for dir in ["/dev/shm", "/dev/mqueue"] {
        // Absent or unreadable (gVisor has no /dev/mqueue; its programs
        // may not open a queue, see `seccomp_filter`) holds nothing.
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let left: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !left.is_empty() {
            return Err(format!("{dir} still holds {left:?}"));
        }
    }
    let sysv = sysv_objects();
    for (kind, count) in [
        ("shared memory segments", sysv.shm),
        ("message queues", sysv.msg),
        ("semaphore sets", sysv.sem),
    ] {
        if count != 0 {
            return Err(format!("{count} System V {kind} left"));
        }
    }
    Ok(())
}

/// How many System V IPC objects of each kind the IPC namespace holds.
struct SysvCounts {
    shm: i64,
    msg: i64,
    sem: i64,
}

/// The kernel's own counts (`SHM_INFO`'s `used_ids`, `MSG_INFO`'s
/// `msgpool`, `SEM_INFO`'s `semusz`), whoever owns the objects; a call that
/// fails counts as one object left, so a count never read is never zero.
fn sysv_objects() -> SysvCounts {
    const SHM_INFO: i32 = 14;
    // Room for `struct shm_info`, `msginfo` and `seminfo` alike.
    let mut buffer = [0 as libc::c_int; 32];
    let pointer = buffer.as_mut_ptr();
    // SAFETY: each call writes its info struct (at most 48 bytes) into
    // `buffer` (128 bytes); `used_ids` and `msgpool` are their struct's
    // first int, `semusz` the eighth int of `seminfo`.
    unsafe {
        let shm = if libc::shmctl(0, SHM_INFO, pointer.cast()) < 0 {
            1
        } else {
            i64::from(buffer[0])
        };
        buffer = [0; 32];
        let msg = if libc::msgctl(0, libc::MSG_INFO, pointer.cast()) < 0 {
            1
        } else {
            i64::from(buffer[0])
        };
        buffer = [0; 32];
        let sem = if libc::semctl(0, 0, libc::SEM_INFO, pointer) < 0 {
            1
        } else {
            i64::from(buffer[7])
        };
        SysvCounts { shm, msg, sem }
    }
}

/// Clears the container: every process but the monitor killed and reaped;
/// `/tmp`, `/dev/shm` and `/dev/mqueue` emptied and the System V IPC
/// objects `uid` owns or created removed (as `uid`: the creator may remove
/// an object whatever owner it gave it).
fn clear(uid: Option<u32>) -> Result<(), String> {
    if std::process::id() != 1 {
        return Err("the monitor is not PID 1, so it cannot stop every process of a case".into());
    }
    let until = Instant::now() + RESTORE_KILL;
    loop {
        // SAFETY: as init, -1 signals every process in the container but
        // the monitor; then every exited child (all are ours) is reaped.
        unsafe {
            libc::kill(-1, libc::SIGKILL);
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        }
        let others = other_processes();
        if others == 0 {
            break;
        }
        if Instant::now() >= until {
            return Err(format!("{others} processes of the case did not die"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    match uid {
        Some(uid) => {
            // SAFETY: the monitor is single-threaded; the child drops to
            // the command's uid (no capability left) and only removes
            // files and IPC objects before it exits.
            let child = unsafe { libc::fork() };
            if child < 0 {
                return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
            }
            if child == 0 {
                // SAFETY: changing this (child) process's own ids and
                // capabilities.
                let dropped = unsafe {
                    libc::setgroups(0, std::ptr::null()) == 0
                        && libc::setresgid(uid, uid, uid) == 0
                        && libc::setresuid(uid, uid, uid) == 0
                        && capset(0)
                };
                let code = match dropped.then(|| empty_scratch(Some(uid))) {
                    Some(Ok(())) => 0,
                    Some(Err(e)) => {
                        eprintln!("code-runner-monitor: {e}");
                        1
                    }
                    None => 2,
                };
                // SAFETY: ends the cleaner.
                unsafe { libc::_exit(code) };
            }
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                return Err(format!(
                    "emptying the scratch space as the command's uid failed (status {status})"
                ));
            }
        }
        None => empty_scratch(None)?,
    }
    Ok(())
}

/// Processes in the container other than the monitor.
fn other_processes() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name != me.as_str() && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
            })
            .count()
    })
}

/// Empties the scratch file systems a case may write (`/tmp`, `/dev/shm`,
/// `/dev/mqueue`) and removes the System V IPC objects `uid` owns or
/// created (all of them when `None`). A creator may give an object to
/// another owner (`IPC_SET`), so the owner alone would miss it. Where
/// `/proc/sysvipc` is missing (gVisor) no object can be found by id; the
/// check after the clear then finds any left, and the container is ended.
fn empty_scratch(uid: Option<u32>) -> Result<(), String> {
    for dir in ["/tmp", "/dev/shm", "/dev/mqueue"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            remove_tree(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    for (table, id_column) in [("shm", "shmid"), ("msg", "msqid"), ("sem", "semid")] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{table}")) else {
            continue;
        };
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let column = |name: &str| header.iter().position(|c| *c == name);
        let (Some(id_at), Some(uid_at), Some(cuid_at)) =
            (column(id_column), column("uid"), column("cuid"))
        else {
            continue;
        };
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let uid_in = |at: usize| fields.get(at).and_then(|f| f.parse::<u32>().ok());
            let Some(id) = fields.get(id_at).and_then(|f| f.parse::<i32>().ok()) else {
                continue;
            };
            let ours =
                uid.is_none_or(|uid| uid_in(uid_at) == Some(uid) || uid_in(cuid_at) == Some(uid));
            if !ours {
                continue;
            }
            // SAFETY: removing an IPC object by id; no pointer is read.
            let removed = unsafe {
                match table {
                    "shm" => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
                    "msg" => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
                    _ => libc::semctl(id, 0, libc::IPC_RMID),
                }
            };
            if removed != 0 && errno() != libc::EINVAL && errno() != libc::EIDRM {
                return Err(format!(
                    "cannot remove System V {table} {id}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    Ok(())
}

/// Removes a file, or a directory and everything in it, never following a
/// symbolic link; a directory is first made the owner's to read and write
/// (a case may have taken those rights away from itself).
fn remove_tree(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(path)? {
        remove_tree(&entry?.path())?;
    }
    std::fs::remove_dir(path)
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

// ---- privileges ----

/// Capability numbers (linux/capability.h).
const CAP_CHOWN: u32 = 0;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// What the monitor keeps as [`MONITOR_UID`]: give the work directory and
/// the job's files to the command's uid (CHOWN), read back what a
/// compilation left whatever its modes (DAC_READ_SEARCH), stop every process
/// of the command's uid (KILL), and start the command under that uid
/// (SETGID, SETUID). The container has no other capability to keep.
const MONITOR_CAPS: u64 =
    1 << CAP_CHOWN | 1 << CAP_DAC_READ_SEARCH | 1 << CAP_KILL | 1 << CAP_SETGID | 1 << CAP_SETUID;

/// `capset(2)` of this thread: effective and permitted both `caps`,
/// nothing inheritable. A raw system call: async-signal-safe, so the child
/// may call it between `fork` and `execve`.
fn capset(caps: u64) -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: caps as u32,
            permitted: caps as u32,
            inheritable: 0,
        },
        Data {
            effective: (caps >> 32) as u32,
            permitted: (caps >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: both pointers are to live, correctly laid out locals.
    unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) == 0 }
}

/// When the task names the command's uid: from root to [`MONITOR_UID`],
/// keeping only [`MONITOR_CAPS`]. A monitor that is not root cannot keep
/// the command off its own uid, and refuses to run it.
fn become_monitor(task: &Task) -> Result<(), String> {
    let Some(_) = task.uid else {
        return Ok(());
    };
    let os_error = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain system calls on this process, with valid arguments.
    unsafe {
        if libc::geteuid() != 0 {
            return Err(
                "the monitor is not root: it cannot run the command under a uid of \
                 its own (the container must start as root with its capabilities)"
                    .into(),
            );
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(os_error("keeping capabilities"));
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os_error("dropping groups"));
        }
        if libc::setresgid(MONITOR_UID, MONITOR_UID, MONITOR_UID) != 0
            || libc::setresuid(MONITOR_UID, MONITOR_UID, MONITOR_UID) != 0
        {
            return Err(os_error("becoming the monitor's uid"));
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
        // The uid change was made with the capabilities kept in the
        // permitted set only; raise those the monitor uses, drop the rest.
        if !capset(MONITOR_CAPS) {
            return Err(os_error("keeping the monitor's capabilities"));
        }
        // Changing uid made it dumpable again.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    Ok(())
}

/// The monitor's own seccomp filter, stacked on the engine's profile (the
/// kernel applies both; the stricter answer wins). Refused with ENOSYS:
///
/// - `io_uring_setup`, `io_uring_enter` and `io_uring_register`, always. A
///   job never needs io_uring (every runtime falls back to plain system
///   calls), it is a large kernel attack surface, and the default profile
///   of the engines this runs on (Docker 20.10) allows it. Numbers 425–427
///   are io_uring's on every architecture.
/// - `mq_open` when `deny_mqueues`: where the monitor cannot see POSIX
///   message queues (gVisor mounts no `/dev/mqueue`), it could neither
///   remove nor find one a case left, so none may be made. gVisor does not
///   implement sending on a queue either, so no program loses a working
///   queue. (gVisor runs no 32-bit system calls, so the native number is
///   the only one.)
///
/// x32 sets bit 30 of the number, masked off here.
fn seccomp_filter(deny_mqueues: bool) -> Vec<libc::sock_filter> {
    const IO_URING: (u32, u32) = (425, 427);
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let mq_open = libc::SYS_mq_open as u32;
    let statement = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut denied = vec![IO_URING];
    if deny_mqueues {
        denied.push((mq_open, mq_open));
    }
    let mut program = vec![
        // A = the system call number (offset 0 of struct seccomp_data).
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        statement(
            libc::BPF_ALU | libc::BPF_AND | libc::BPF_K,
            !X32_SYSCALL_BIT,
        ),
    ];
    for (low, high) in denied {
        // A < low or A > high: on to the next range; else ENOSYS.
        program.extend([
            jump(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, low, 0, 2),
            jump(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K, high, 1, 0),
            statement(
                libc::BPF_RET | libc::BPF_K,
                SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            ),
        ]);
    }
    program.push(statement(libc::BPF_RET | libc::BPF_K, SECCOMP_RET_ALLOW));
    program
}

fn write_files(task: &Task) -> std::io::Result<()> {
    std::fs::create_dir_all(WORK_DIR)?;
    // The command's uid owns its work directory and files, as a user owns
    // what they write (the monitor's uid is not theirs).
    let give = |fd: RawFd| -> std::io::Result<()> {
        if let Some(uid) = task.uid {
            // SAFETY: fchown on a descriptor we own.
            if unsafe { libc::fchown(fd, uid, uid) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    for file in &task.files {
        use std::os::fd::AsRawFd;
        let path = std::path::Path::new(WORK_DIR).join(&file.name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        give(f.as_raw_fd())?;
        f.write_all(&file.content)?;
    }
    // The directory last: once it is the command's, the monitor may no
    // longer write into it.
    use std::os::fd::AsRawFd;
    give(std::fs::File::open(WORK_DIR)?.as_raw_fd())
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
        // A name no submitted file could have (an option, a response file,
        // a control character) is left behind: it is never carried into the
        // run's task.
        let Some(name) = entry
            .file_name()
            .to_str()
            .filter(|n| monitor_protocol::valid_file_name(n))
            .map(str::to_string)
        else {
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
    /// `memory.stat`, and the keys of its anonymous and its shared
    /// (tmpfs) memory (v1's `total_rss` and `total_shmem`, v2's `anon` and
    /// `shmem`).
    memory_stat: Option<(String, &'static str, &'static str)>,
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

    /// The container's memory that programs hold now, where the cgroup
    /// shows it: anonymous memory (what processes allocated) and shared
    /// memory (files in its tmpfs and `/dev/shm`, which count against its
    /// limit like any allocation), never page cache of files read.
    fn held_bytes(&self) -> Option<u64> {
        let (path, anon, shmem) = self.memory_stat.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        Some(keyed(&text, anon)? + keyed(&text, shmem).unwrap_or(0))
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

/// Runs the task's command on `stdin`. An interactive task's input frames
/// are read from `input_fd`, starting with `input_read` (bytes of it
/// already read).
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
fn run(task: &Task, stdin: &[u8], out: &mut Output, input_fd: RawFd, input_read: &[u8]) -> Report {
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
    let filter_program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    let program_uid = task.uid;
    let (stack_bytes, file_size_bytes) = (task.stack_bytes, task.file_size_bytes);
    let processes = task.processes.filter(|_| task.uid.is_some());
    let stderr_to_stdout = task.stderr_to_stdout;
    let cpu_seconds = (task.cpu_ms.div_ceil(1000) + 1) as libc::rlim_t;

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
    keep_from_children(input_read);

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
            // Tells the monitor which step failed, and why, then exits.
            let fail = |step: i32, e: i32| -> ! {
                let words = [step, e];
                libc::write(exec_w, words.as_ptr().cast(), 8);
                libc::_exit(127)
            };
            libc::setsid();
            libc::dup2(stdin_r, 0);
            libc::dup2(out_w, 1);
            libc::dup2(if stderr_to_stdout { out_w } else { err_w }, 2);
            // Every signal's disposition back to its default and none
            // blocked: a program starts as if from a clean shell, whatever
            // the monitor inherited (a service started with SIGINT ignored
            // would pass that on through the engine) or set itself (Rust
            // ignores SIGPIPE). Handlers are reset by execve anyway;
            // ignored and blocked signals would not be.
            // By the system calls themselves: the C library's wrappers
            // refuse the signals it keeps for its threads (32, 33), which an
            // inherited disposition may still ignore. A zeroed kernel
            // `sigaction` is SIG_DFL with no flags and an empty mask.
            let none = [0u64; 4];
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
            // The OOM killer picks the job, never the monitor. The child
            // inherited the monitor's non-dumpable flag, which makes its
            // /proc files root's: dumpable again, the file is its own.
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
            let fd = libc::open(oom_path.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"1000".as_ptr().cast(), 4) != 4 {
                fail(STEP_OOM_SCORE, errno());
            }
            libc::close(fd);
            let limit = libc::rlimit {
                rlim_cur: cpu_seconds,
                rlim_max: cpu_seconds + 1,
            };
            libc::setrlimit(libc::RLIMIT_CPU, &limit);
            // The job's own stack and file-size limits, never above what
            // the container allows (lowering a hard limit needs no privilege).
            for (resource, bytes) in [
                (libc::RLIMIT_STACK, stack_bytes),
                (libc::RLIMIT_FSIZE, file_size_bytes),
            ] {
                let Some(bytes) = bytes else { continue };
                let mut current = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(resource, &mut current);
                let value = (bytes as libc::rlim_t).min(current.rlim_max);
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                libc::setrlimit(resource, &limit);
            }
            // Processes and threads of the program's uid, as the pids cgroup
            // counts them: sent under gVisor only, whose kernel counts the
            // uid in this sandbox alone, and where the cgroup also counts
            // the sandbox's own threads: this is the limit a fork bomb
            // meets first.
            if let Some(processes) = processes {
                let limit = libc::rlimit {
                    rlim_cur: processes as libc::rlim_t,
                    rlim_max: processes as libc::rlim_t,
                };
                libc::setrlimit(libc::RLIMIT_NPROC, &limit);
            }
            if let Some(uid) = program_uid {
                // Its own uid and gid, no supplementary group, and no
                // capability left (the monitor's uid is not root, so the
                // change of uid does not drop them by itself).
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(uid, uid, uid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                    || !capset(0)
                {
                    fail(STEP_UID, errno());
                }
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &filter_program as *const libc::sock_fprog,
                ) != 0
            {
                fail(STEP_SECCOMP, errno());
            }
            if libc::chdir(work_dir.as_ptr()) != 0 {
                fail(STEP_CHDIR, errno());
            }
            libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
            fail(STEP_EXEC, errno());
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
    let mut stdin_open = true;
    if stdin.is_empty() && !interactive {
        close(stdin_w);
        stdin_open = false;
    }
    let mut input_open = interactive;
    let mut inputs = InputReader::default();
    inputs.push(input_read);
    if interactive {
        set_nonblocking(input_fd);
    }
    let mut last_activity = Instant::now();
    let mut exec_open = true;
    let mut exec_error: Option<(i32, i32)> = None;
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
        if stdin_open && stdin_pos < pending.len() {
            fds.push(libc::pollfd {
                fd: stdin_w,
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        if input_open && pending.len() - stdin_pos < MAX_PENDING_INPUT {
            fds.push(libc::pollfd {
                fd: input_fd,
                events: libc::POLLIN,
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
            let before = s.sent;
            if relay(s, &mut buffer, out, task.output_bytes) && limit.is_none() {
                limit = Some(LimitHit::Output);
            }
            if s.sent != before {
                last_activity = Instant::now();
            }
        }
        if input_open && pending.len() - stdin_pos < MAX_PENDING_INPUT {
            // SAFETY: reading into a live buffer from our own descriptor.
            let n = unsafe { libc::read(input_fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            if n > 0 {
                inputs.push(&buffer[..n as usize]);
            } else if n == 0 || errno() != libc::EAGAIN && errno() != libc::EINTR {
                // The service closed the command's input.
                input_open = false;
                stdin_ends = true;
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
                        // SAFETY: signalling the command's process group
                        // (it called setsid), with a signal the protocol
                        // allows.
                        Input::Signal(n) => unsafe {
                            libc::kill(-child, n);
                        },
                        Input::ClientLeft => {
                            if limit.is_none() {
                                limit = Some(LimitHit::NoClient);
                            }
                        }
                        // Cases come between runs, never during one: not
                        // the service's frames; take no more input.
                        Input::Case { .. } => {
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
        if stdin_open && stdin_pos < pending.len() {
            // SAFETY: writing from a live buffer to our own pipe.
            let n = unsafe {
                libc::write(
                    stdin_w,
                    pending[stdin_pos..].as_ptr().cast(),
                    (pending.len() - stdin_pos).min(MAX_CHUNK),
                )
            };
            if n > 0 {
                stdin_pos += n as usize;
            } else if n < 0 && errno() != libc::EAGAIN && errno() != libc::EINTR {
                // The command closed its stdin: nothing more reaches it.
                close(stdin_w);
                stdin_open = false;
            }
        }
        if stdin_open && stdin_ends && stdin_pos >= pending.len() {
            close(stdin_w);
            stdin_open = false;
        }
        if let Some(idle) = idle_limit
            && limit.is_none()
            && last_activity.elapsed() >= idle
        {
            limit = Some(LimitHit::Idle);
        }
        if exec_open {
            let mut words = [0i32; 2];
            // SAFETY: reading 8 bytes into two i32s.
            let n = unsafe { libc::read(exec_r, words.as_mut_ptr().cast(), 8) };
            if n == 8 {
                exec_error = Some((words[0], words[1]));
            }
            if n == 0 || n == 8 {
                close(exec_r);
                exec_open = false;
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
    let largest_process = status.map_or(0, |(_, r)| r.ru_maxrss as u64 * 1024);
    let memory_peak_bytes = largest_process.max(held_peak);
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

/// `run` as the monitor runs it, outside a container: each test's command
/// is forked, limited and reaped as a job's would be (its own process
/// group, since the test is not PID 1), its frames written to a file.
#[cfg(test)]
mod tests {
    use super::*;

    fn task(argv: &[&str], stdin: &str) -> Task {
        Task {
            wall_ms: 10_000,
            cpu_ms: 10_000,
            output_bytes: 1 << 20,
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            stdin: stdin.as_bytes().to_vec(),
            ..Task::default()
        }
    }

    fn run_task(task: &Task) -> Report {
        run_task_frames(task).0
    }

    /// What the command wrote, as the service reads it from the frames.
    #[derive(Default)]
    struct Streams {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    }

    /// One run at a time: `run` reaps every child of the process (as PID 1
    /// must), so two tests running at once would reap each other's.
    static ONE_RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn run_task_frames(task: &Task) -> (Report, Streams) {
        run_interactive(task, &[])
    }

    /// Runs `task`, its input frames written after each one's delay.
    fn run_interactive(task: &Task, input: &[(Duration, Vec<u8>)]) -> (Report, Streams) {
        let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(WORK_DIR).unwrap();
        let path = std::env::temp_dir().join(format!(
            "monitor-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let frames = std::fs::File::create(&path).unwrap();
        let mut out = Output {
            fd: std::os::fd::AsRawFd::as_raw_fd(&frames),
            nonce: [7; 16],
        };
        let (input_r, input_w) = pipe();
        let feeder = {
            let input = input.to_vec();
            std::thread::spawn(move || {
                for (delay, bytes) in input {
                    std::thread::sleep(delay);
                    // SAFETY: writing a live buffer to our own pipe.
                    unsafe { libc::write(input_w, bytes.as_ptr().cast(), bytes.len()) };
                }
                close(input_w);
            })
        };
        let report = run(task, &task.stdin, &mut out, input_r, &[]);
        feeder.join().unwrap();
        close(input_r);
        let bytes = std::fs::read(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        let mut reader = monitor_protocol::FrameReader::new([7; 16]);
        reader.push(&bytes);
        let mut streams = Streams::default();
        while let Ok(Some(frame)) = reader.next_frame() {
            match frame {
                monitor_protocol::Frame::Stdout(chunk) => streams.stdout.extend(chunk),
                monitor_protocol::Frame::Stderr(chunk) => streams.stderr.extend(chunk),
                _ => {}
            }
        }
        (report, streams)
    }

    /// A command starts with every signal's default disposition and none
    /// blocked, whatever the monitor inherited.
    #[test]
    fn a_command_starts_with_default_signal_dispositions() {
        let status_mask = |status: &str, field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                .unwrap_or_else(|| panic!("no {field} in {status}"))
        };
        // SAFETY: process-wide dispositions and this thread's mask, put
        // back below; no test here waits for SIGINT, SIGTERM or SIGUSR1.
        let (old_int, old_term) = unsafe {
            (
                libc::signal(libc::SIGINT, libc::SIG_IGN),
                libc::signal(libc::SIGTERM, libc::SIG_IGN),
            )
        };
        let mut blocked: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe {
            libc::sigemptyset(&mut blocked);
            libc::sigaddset(&mut blocked, libc::SIGUSR1);
            libc::pthread_sigmask(libc::SIG_BLOCK, &blocked, &mut old_mask);
        }
        let (report, streams) = run_task_frames(&task(&["cat", "/proc/self/status"], ""));
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
            libc::signal(libc::SIGINT, old_int);
            libc::signal(libc::SIGTERM, old_term);
        }
        assert_eq!(report.exit_code, Some(0), "{report:?}");
        let status = String::from_utf8_lossy(&streams.stdout).into_owned();
        assert_eq!(status_mask(&status, "SigIgn:"), 0, "{status}");
        assert_eq!(status_mask(&status, "SigBlk:"), 0, "{status}");
    }

    #[test]
    fn cases_are_read_whole_one_after_another() {
        let (r, w) = pipe();
        let frames: Vec<u8> = [
            Input::Case { last: false },
            Input::Data(b"first ".to_vec()),
            Input::Data(vec![b'x'; MAX_CHUNK + 3]),
            Input::Close,
            Input::Case { last: true },
            Input::Close,
        ]
        .iter()
        .flat_map(monitor_protocol::encode_input)
        .collect();
        let writer = std::thread::spawn(move || {
            for chunk in frames.chunks(1000) {
                // SAFETY: writing a live buffer to our own pipe.
                unsafe { libc::write(w, chunk.as_ptr().cast(), chunk.len()) };
            }
            close(w);
        });
        let mut inputs = InputReader::default();
        let mut buffer = vec![0u8; MAX_CHUNK];
        let (first, last) = next_case(r, &mut inputs, &mut buffer).unwrap();
        assert_eq!(
            (first.len(), &first[..6], last),
            (MAX_CHUNK + 9, &b"first "[..], false)
        );
        assert_eq!(
            next_case(r, &mut inputs, &mut buffer),
            Some((Vec::new(), true))
        );
        // The end of input: no more cases.
        assert_eq!(next_case(r, &mut inputs, &mut buffer), None);
        writer.join().unwrap();
        close(r);
        // Data before any case frame is not the service's.
        let mut stray = InputReader::default();
        stray.push(&monitor_protocol::encode_input(&Input::Data(b"x".to_vec())));
        assert_eq!(next_case(-1, &mut stray, &mut buffer), None);
    }

    #[test]
    fn the_exit_status_of_a_command_that_read_its_stdin() {
        let report = run_task(&task(&["sh", "-c", "read x; exit $x"], "3\n"));
        assert_eq!(report.exit_code, Some(3), "{report:?}");
        assert_eq!((report.signal, report.limit), (None, None));
        assert!(report.error.is_none() && !report.exec_failed);
    }

    #[test]
    fn the_wall_clock_limit_kills_the_command() {
        let mut sleeper = task(&["sleep", "30"], "");
        sleeper.wall_ms = 200;
        let report = run_task(&sleeper);
        assert_eq!(report.limit, Some(LimitHit::Wall), "{report:?}");
        assert_eq!(report.signal, Some(libc::SIGKILL));
        assert!(report.wall_ms < 10_000, "{report:?}");
    }

    #[test]
    fn output_past_its_cap_stops_the_command() {
        let mut talker = task(&["yes"], "");
        talker.output_bytes = 4096;
        let report = run_task(&talker);
        assert_eq!(report.limit, Some(LimitHit::Output), "{report:?}");
        assert!(report.stdout_truncated && !report.stderr_truncated);
    }

    #[test]
    fn cpu_time_is_limited() {
        let mut spinner = task(&["sh", "-c", "while :; do :; done"], "");
        spinner.cpu_ms = 300;
        let report = run_task(&spinner);
        // RLIMIT_CPU's SIGXCPU, or the cgroup's count, whichever is first.
        assert_eq!(report.limit, Some(LimitHit::Cpu), "{report:?}");
    }

    #[test]
    fn stderr_can_join_stdout_in_write_order() {
        let mut both = task(&["sh", "-c", "echo out; echo err >&2; echo out2"], "");
        both.stderr_to_stdout = true;
        let (report, frames) = run_task_frames(&both);
        assert_eq!(report.exit_code, Some(0), "{report:?}");
        assert_eq!(frames.stdout, b"out\nerr\nout2\n");
        assert!(frames.stderr.is_empty());
    }

    #[test]
    fn the_file_size_limit_stops_a_large_write_with_sigxfsz() {
        let mut writer = task(
            &[
                "sh",
                "-c",
                "head -c 100000 /dev/zero > /tmp/monitor-fsize-test",
            ],
            "",
        );
        writer.file_size_bytes = Some(4096);
        let (report, _) = run_task_frames(&writer);
        let _ = std::fs::remove_file("/tmp/monitor-fsize-test");
        // head is killed by SIGXFSZ; the shell reports it as 128 + 25.
        assert_eq!(report.exit_code, Some(128 + libc::SIGXFSZ), "{report:?}");
    }

    #[test]
    fn the_stack_limit_is_the_jobs() {
        let mut shell = task(&["sh", "-c", "ulimit -s"], "");
        shell.stack_bytes = Some(4 << 20);
        let (report, frames) = run_task_frames(&shell);
        assert_eq!(report.exit_code, Some(0), "{report:?}");
        assert_eq!(frames.stdout, b"4096\n");
    }

    #[test]
    fn a_program_that_cannot_be_executed_is_said_so() {
        let report = run_task(&task(&["/nonexistent/program"], ""));
        assert!(report.exec_failed, "{report:?}");
        assert!(
            report
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("cannot run /nonexistent/program")),
            "{report:?}"
        );
    }

    fn interactive(argv: &[&str], idle_ms: u64) -> Task {
        Task {
            interactive: Some(idle_ms),
            ..task(argv, "")
        }
    }

    fn after(ms: u64, input: Input) -> (Duration, Vec<u8>) {
        (
            Duration::from_millis(ms),
            monitor_protocol::encode_input(&input),
        )
    }

    #[test]
    fn an_interactive_command_reads_input_as_it_comes_until_its_end() {
        let (report, streams) = run_interactive(
            &interactive(
                &["sh", "-c", "while read l; do echo \"got $l\"; done; exit 4"],
                0,
            ),
            &[
                after(0, Input::Data(b"a\n".to_vec())),
                after(200, Input::Data(b"b\n".to_vec())),
                after(100, Input::Close),
            ],
        );
        assert_eq!(String::from_utf8_lossy(&streams.stdout), "got a\ngot b\n");
        assert_eq!(
            (report.exit_code, report.limit),
            (Some(4), None),
            "{report:?}"
        );
        assert!(report.wall_ms >= 250, "{report:?}");
    }

    #[test]
    fn an_interactive_command_without_input_or_output_stops_at_its_idle_limit() {
        let (report, _) = run_interactive(&interactive(&["sleep", "30"], 300), &[]);
        assert_eq!(report.limit, Some(LimitHit::Idle), "{report:?}");
        assert!(report.wall_ms < 5_000, "{report:?}");
        // Output is activity: a talkative command outlives its idle limit.
        let (report, streams) = run_interactive(
            &interactive(
                &[
                    "sh",
                    "-c",
                    "for i in 1 2 3 4 5 6; do echo $i; sleep 0.1; done",
                ],
                300,
            ),
            &[],
        );
        assert_eq!(
            (report.exit_code, report.limit),
            (Some(0), None),
            "{report:?}"
        );
        assert_eq!(streams.stdout, b"1\n2\n3\n4\n5\n6\n");
    }

    #[test]
    fn a_signal_reaches_the_interactive_commands_process_group() {
        let (report, streams) = run_interactive(
            &interactive(
                &[
                    "sh",
                    "-c",
                    "trap 'echo interrupted; exit 7' INT; echo ready; while :; do sleep 0.05; done",
                ],
                0,
            ),
            &[after(300, Input::Signal(libc::SIGINT))],
        );
        assert_eq!(report.exit_code, Some(7), "{report:?}");
        assert_eq!(streams.stdout, b"ready\ninterrupted\n");
    }

    #[test]
    fn an_interactive_command_stops_when_its_client_left() {
        let (report, _) = run_interactive(
            &interactive(&["sleep", "30"], 0),
            &[after(100, Input::ClientLeft)],
        );
        assert_eq!(report.limit, Some(LimitHit::NoClient), "{report:?}");
        assert!(report.wall_ms < 5_000, "{report:?}");
    }
}
