//! `code-runner-monitor`: PID 1 of every job container.
//!
//! It reads a task from stdin (see the protocol in `lib.rs`), writes the
//! files into the work directory, runs the command as its child with pipes
//! for stdin, stdout and stderr, relays the output in frames while counting
//! it, enforces the wall-clock, CPU-time (from the cgroup) and output
//! limits, reaps every process (it is the container's init), and reports
//! exit status, signal, wall time, CPU time and the command's own peak
//! memory (not the page cache it read: see `run`) as the kernel counted
//! them. A task with `recycle` is followed, once the monitor restored the
//! container and checked it fit, by another job's task (see `recycle`).
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

mod cgroup;
mod command;
mod files;
mod privileges;
mod restore;
mod sys;

use std::io::BufReader;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use monitor_protocol::{
    FRAME_READY, FRAME_REPORT, Input, InputReader, MAX_CHUNK, RECYCLE_MEMORY_SLACK, Report, Task,
    encode_frame,
};

use cgroup::Cgroup;
use command::run;
use files::{send_artifacts, write_files};
use privileges::become_monitor;
use restore::{clear, nothing_left, restore};
use sys::{LARGE_ALLOCATION, set_blocking, write_all};

/// How often limits are checked while the command runs.
const TICK: Duration = Duration::from_millis(10);

/// How long output is still drained after the command exited.
const DRAIN: Duration = Duration::from_millis(200);

/// Most input bytes held for an interactive command that does not read
/// them: past it the monitor stops reading its own stdin, and the service's
/// writes wait.
const MAX_PENDING_INPUT: usize = 256 * 1024;

fn main() {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    // Allocations of LARGE_ALLOCATION or more become mappings of their
    // own, unmapped when freed (glibc would otherwise raise the threshold
    // as it goes), so `keep_from_children` finds them.
    // SAFETY: sets an allocator parameter, with constant arguments.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_ALLOCATION as libc::c_int) };
    let mut out = Output {
        fd: std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .expect("the container's stdout"),
        nonce: [0; 16],
    };
    // Read straight from fd 0 (no buffer of std's own): whatever follows
    // the task (an interactive command's input) is the monitor's to read.
    let stdin = std::fs::File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .expect("the container's stdin"),
    );
    let cgroup = Cgroup::detect();
    let idle = Idle {
        held_bytes: cgroup.held_bytes(),
        oom_kills: cgroup.oom_kills(),
    };
    // Bytes of stdin read past the last task (none before the first).
    let mut read: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let (task, after_task) = {
            let mut input =
                BufReader::with_capacity(1 << 16, std::io::Read::chain(&read[..], &stdin));
            // A recycled container's stdin ends when the service lets it
            // go: that is not a bad task.
            if !first && std::io::BufRead::fill_buf(&mut input).is_ok_and(<[u8]>::is_empty) {
                std::process::exit(0);
            }
            let task = Task::decode(&mut input);
            let mut after_task = input.buffer().to_vec();
            let (unread, _) = input.into_inner().into_inner();
            after_task.extend_from_slice(unread);
            (task, after_task)
        };
        if let Ok(task) = &task {
            out.nonce = task.nonce;
        }
        let prepared = task.map_err(|e| format!("bad task: {e}")).and_then(|task| {
            if first {
                become_monitor(&task)?;
            }
            write_files(&task).map_err(|e| format!("cannot write the job's files: {e}"))?;
            Ok(task)
        });
        let task = match prepared {
            Ok(task) => task,
            Err(e) => {
                let json = serde_json::to_vec(&failure(e)).unwrap_or_default();
                out.frame(FRAME_REPORT, &json);
                std::process::exit(0);
            }
        };
        let Some((done, rest)) = serve(task, &mut out, &stdin, after_task) else {
            std::process::exit(0);
        };
        if !done.recycle {
            std::process::exit(0);
        }
        let fit = recycle(&done, &cgroup, &idle);
        drop(done);
        out.frame(
            FRAME_READY,
            fit.as_ref().err().map_or(&[][..], |e| e.as_bytes()),
        );
        if let Err(e) = fit {
            eprintln!("code-runner-monitor: the container cannot serve another job: {e}");
            std::process::exit(0);
        }
        read = rest;
        first = false;
    }
}

/// What the container held when the monitor started, before any job.
struct Idle {
    held_bytes: Option<u64>,
    oom_kills: Option<u64>,
}

/// Restores the container for another job after `task`'s last report
/// (see the protocol's **Recycle**), then checks it: no process but the
/// monitor, nothing in `/tmp`, `/dev/shm` or `/dev/mqueue`, no System V
/// object of any owner, no OOM kill since the monitor started, and the
/// memory its programs hold back within [`RECYCLE_MEMORY_SLACK`] of its
/// idle level.
fn recycle(task: &Task, cgroup: &Cgroup, idle: &Idle) -> Result<(), String> {
    clear(task.uid)?;
    nothing_left(&[])?;
    if let (Some(before), Some(now)) = (idle.oom_kills, cgroup.oom_kills())
        && now > before
    {
        return Err(format!(
            "the OOM killer killed {} processes in it",
            now - before
        ));
    }
    if let (Some(before), Some(now)) = (idle.held_bytes, cgroup.held_bytes())
        && now > before + RECYCLE_MEMORY_SLACK
    {
        return Err(format!(
            "its programs' memory is {now} bytes, {before} when it started"
        ));
    }
    Ok(())
}

/// Runs `task` (case by case, or once and then the task that follows a
/// `then`) and sends its reports. Returns the task that ran last and the
/// bytes of stdin read past it when it ended as a job may (its last report
/// sent, no monitor error), so that its container may be recycled; `None`
/// when the monitor should exit.
fn serve(
    task: Task,
    out: &mut Output,
    stdin: &std::fs::File,
    after_task: Vec<u8>,
) -> Option<(Task, Vec<u8>)> {
    if task.cases {
        let rest = serve_cases(&task, out, stdin.as_fd(), &after_task)?;
        return Some((task, rest));
    }
    let mut inputs = InputReader::default();
    inputs.push(&after_task);
    let mut report = run(&task, &task.stdin, out, stdin.as_fd(), &mut inputs);
    if let Some(max) = task.artifacts
        && report.error.is_none()
    {
        report.artifacts_truncated = send_artifacts(out, max);
    }
    if task.then && report.error.is_none() {
        match clear(task.uid).and_then(|()| nothing_left(&[])) {
            Ok(()) => report.clean = true,
            Err(e) => eprintln!("code-runner-monitor: cannot clear the container: {e}"),
        }
    }
    let json = serde_json::to_vec(&report).unwrap_or_default();
    out.frame(FRAME_REPORT, &json);
    if task.then {
        return if report.clean {
            serve_next(&task, out, stdin, after_task)
        } else {
            None
        };
    }
    if report.error.is_some() {
        return None;
    }
    if task.interactive.is_none() {
        return Some((task, inputs.into_rest()));
    }
    // An interactive task's input goes on past its report until the
    // service's end frame; the next task follows that.
    if !task.recycle {
        return None;
    }
    set_blocking(stdin);
    let rest = input_end(stdin.as_fd(), &mut inputs)?;
    Some((task, rest))
}

/// Reads input frames (blocking) and drops them until [`Input::End`]; the
/// bytes read past it. `None` at the end of input or on a frame that is
/// not the service's.
fn input_end(fd: BorrowedFd<'_>, inputs: &mut InputReader) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; MAX_CHUNK];
    loop {
        loop {
            match inputs.next_input() {
                Ok(None) => break,
                Ok(Some(Input::End)) => return Some(std::mem::take(inputs).into_rest()),
                Ok(Some(_)) => {}
                Err(e) => {
                    eprintln!("code-runner-monitor: bad input after an interactive task: {e}");
                    return None;
                }
            }
        }
        match rustix::io::read(fd, &mut buffer) {
            Ok(0) => return None,
            Ok(n) => inputs.push(&buffer[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
}

/// After a task with `then` and a clear of the container: reads the next
/// task (after `read`, the bytes of stdin already read), which must carry
/// the first's nonce and uid and no `then`, writes its files and runs it
/// (case by case, if it has cases), every figure its own. Returns as
/// [`serve`] does.
fn serve_next(
    first: &Task,
    out: &mut Output,
    stdin: &std::fs::File,
    read: Vec<u8>,
) -> Option<(Task, Vec<u8>)> {
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
    let next = match next.and_then(|next| {
        write_files(&next).map_err(|e| format!("cannot write the job's files: {e}"))?;
        Ok(next)
    }) {
        Ok(next) => next,
        Err(e) => {
            let json =
                serde_json::to_vec(&failure(format!("bad next task: {e}"))).unwrap_or_default();
            out.frame(FRAME_REPORT, &json);
            return None;
        }
    };
    serve(next, out, stdin, after_task)
}

/// How long a restore between cases waits for the case's processes to die
/// (SIGKILL is not refused: only one stuck in the kernel outlives this).
const RESTORE_KILL: Duration = Duration::from_secs(2);

/// A task with `cases`: runs the command once per case sent on stdin, each
/// on a container restored to the task's start, and reports each case.
/// Returns what was read of stdin past the last case once a case marked
/// the last ran without a monitor error; `None` at the end of stdin, on a
/// frame that is not the service's, or after a restore that failed.
fn serve_cases(
    task: &Task,
    out: &mut Output,
    input: BorrowedFd<'_>,
    after_task: &[u8],
) -> Option<Vec<u8>> {
    let mut inputs = InputReader::default();
    inputs.push(after_task);
    let mut buffer = vec![0u8; MAX_CHUNK];
    while let Some((stdin, last)) = next_case(input, &mut inputs, &mut buffer) {
        let mut report = run(task, &stdin, out, input, &mut InputReader::default());
        if !last && report.error.is_none() {
            match restore(task) {
                Ok(()) => report.clean = true,
                Err(e) => eprintln!("code-runner-monitor: cannot restore the container: {e}"),
            }
        }
        let json = serde_json::to_vec(&report).unwrap_or_default();
        out.frame(FRAME_REPORT, &json);
        if last {
            return report.error.is_none().then(|| inputs.into_rest());
        }
        if !report.clean {
            return None;
        }
    }
    None
}

/// Reads the next case from `fd` (blocking): its [`Input::Case`] frame,
/// its stdin's data frames and their close. `None` at the end of input or
/// on anything else.
fn next_case(
    fd: BorrowedFd<'_>,
    inputs: &mut InputReader,
    buffer: &mut [u8],
) -> Option<(Vec<u8>, bool)> {
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
        match rustix::io::read(fd, &mut *buffer) {
            Ok(0) => return None,
            Ok(n) => inputs.push(&buffer[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
}

fn failure(error: String) -> Report {
    Report {
        error: Some(error),
        ..Report::default()
    }
}

/// The container's stdout, written only by the monitor.
struct Output {
    fd: OwnedFd,
    nonce: [u8; 16],
}

impl Output {
    fn frame(&mut self, kind: u8, payload: &[u8]) {
        let bytes = encode_frame(&self.nonce, kind, payload);
        if write_all(&self.fd, &bytes).is_err() {
            // Nobody is reading: the service gave up on this container.
            std::process::exit(1);
        }
    }
}

/// `run` as the monitor runs it, outside a container: each test's command
/// is forked, limited and reaped as a job's would be (its own process
/// group, since the test is not PID 1), its frames written to a file.
#[cfg(test)]
mod tests {
    use monitor_protocol::{LimitHit, WORK_DIR};

    use super::*;
    use crate::sys::pipe;

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
            fd: frames.try_clone().unwrap().into(),
            nonce: [7; 16],
        };
        let (input_r, input_w) = pipe();
        let feeder = {
            let input = input.to_vec();
            std::thread::spawn(move || {
                for (delay, bytes) in input {
                    std::thread::sleep(delay);
                    write_all(&input_w, &bytes).unwrap();
                }
                drop(input_w);
            })
        };
        let report = run(
            task,
            &task.stdin,
            &mut out,
            input_r.as_fd(),
            &mut InputReader::default(),
        );
        feeder.join().unwrap();
        drop(input_r);
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
                write_all(&w, chunk).unwrap();
            }
            drop(w);
        });
        let mut inputs = InputReader::default();
        let mut buffer = vec![0u8; MAX_CHUNK];
        let (first, last) = next_case(r.as_fd(), &mut inputs, &mut buffer).unwrap();
        assert_eq!(
            (first.len(), &first[..6], last),
            (MAX_CHUNK + 9, &b"first "[..], false)
        );
        assert_eq!(
            next_case(r.as_fd(), &mut inputs, &mut buffer),
            Some((Vec::new(), true))
        );
        // The end of input: no more cases.
        assert_eq!(next_case(r.as_fd(), &mut inputs, &mut buffer), None);
        writer.join().unwrap();
        // Data before any case frame is not the service's.
        let mut stray = InputReader::default();
        stray.push(&monitor_protocol::encode_input(&Input::Data(b"x".to_vec())));
        assert_eq!(next_case(r.as_fd(), &mut stray, &mut buffer), None);
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
