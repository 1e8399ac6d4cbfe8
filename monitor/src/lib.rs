//! The protocol between the service and the monitor inside a job container.
//!
//! **In** (the container's stdin, written once by the service):
//!
//! ```text
//! CODE-RUNNER/3\n
//! nonce <32 hex digits>\n    a secret of this task, in every frame out
//! wall_ms <n>\n               wall-clock limit of the command
//! cpu_ms <n>\n                CPU-time limit (all processes, from the cgroup)
//! output_bytes <n>\n          cap of stdout, and separately of stderr
//! artifacts <max bytes>\n     (optional) send back the work dir's files after
//! uid <n>\n                   (optional) the uid (and gid) the command runs as
//! stack_bytes <n>\n           (optional) the command's stack limit (RLIMIT_STACK)
//! processes <n>\n             (optional) processes and threads of its uid (RLIMIT_NPROC)
//! file_size_bytes <n>\n       (optional) largest file it may write (RLIMIT_FSIZE)
//! stderr_to_stdout\n          (optional) its stderr goes into its stdout stream
//! interactive <idle ms>\n     (optional) the command's stdin stays open and is fed
//!                             by input frames after `go` (see below); with no
//!                             input and no output for <idle ms> (0: never) it stops
//! cases\n                     (optional) the command runs once per test case, each
//!                             case sent after `go` as input frames (see below)
//! then\n                      (optional) another task follows this one (see below)
//! recycle\n                   (optional) the container serves another job after
//!                             this one's last report, once restored (see below)
//! env <NAME>=<value>\n        (repeated) the command's whole environment
//! file <size> <mode> <name length>\n<name><size bytes>   (repeated) written to the work dir
//! arg <len>\n<len bytes>      (repeated) the command, argv[0] first
//! stdin <size>\n<size bytes>  the command's standard input
//! go\n
//! ```
//!
//! **Input** (interactive tasks only; the container's stdin after `go`, written
//! only by the service): frames of `[kind: u8][length: u32 big-endian][payload]`,
//! [`Input`] encoded by [`encode_input`]: bytes for the command's stdin, its
//! end (EOF), a signal for the command's process group, or word that its
//! client left. The end of the container's stdin is the end of the command's.
//!
//! **Cases** (tasks with `cases` only): after `go`, each test case is a
//! [`Input::Case`] frame, then its stdin as data frames, then a close frame.
//! The monitor runs the command on that input (as a batch task: stdin whole,
//! then its end) and sends the case's output and [`Report`]; unless the case
//! was marked the last, it first restores the container to the task's start
//! (every process killed, `/tmp`, `/dev/shm` and `/dev/mqueue` emptied, the
//! command's System V IPC objects removed, the work directory written
//! afresh) and says in the report whether it could ([`Report::clean`]). The
//! next case is read only after a clean restore; otherwise, or at the end
//! of the container's stdin, the monitor exits.
//!
//! **Then** (tasks with `then` only; neither interactive nor with `cases`):
//! after the task's report, which says whether the container was cleared
//! ([`Report::clean`]: every process killed, `/tmp`, `/dev/shm` and
//! `/dev/mqueue` emptied, the command's System V IPC objects removed), the
//! monitor reads a second task on stdin, with the same nonce and uid and no
//! `then` of its own, writes its files and runs it (its cases, if it has
//! them). A compilation and its program's runs share a container this way:
//! the service sends the second task only once it has set the container's
//! limits to the run's. Every figure of the second task is its own (CPU
//! and OOM kills as counter deltas, the peak memory sampled). An unclear
//! container, or the end of stdin instead of a task, ends the monitor.
//!
//! **Recycle** (tasks with `recycle`): after the task's last report (the
//! command's, the last case's, or the second task's after `then`, which
//! carries `recycle` itself), and for an interactive task once the service
//! sent [`Input::End`] after the report (every input frame before it is
//! read and dropped, so none is taken for the next task), the monitor
//! restores the container for another job: every process killed and
//! reaped, `/tmp` (the work directory with it), `/dev/shm` and
//! `/dev/mqueue` emptied and the command's System V IPC objects removed;
//! then checks it, never assuming it: no process but the monitor, nothing
//! in any of those places, no System V object of any owner, no OOM kill
//! since the container started, and the memory the container's programs
//! hold (anonymous and shared, as the cgroup counts it) back within
//! [`RECYCLE_MEMORY_SLACK`] of what it held when the monitor started. It
//! then sends one [`FRAME_READY`] frame (still under the finished task's
//! nonce): an empty payload when the container is fit for another job,
//! else why not (the monitor then exits). A fit container waits for the
//! next task on stdin, with a nonce of its own and any uid, and serves it
//! as if it were the first; the end of stdin ends the monitor.
//!
//! **Out** (the container's stdout, written only by the monitor): frames of
//! `[nonce: 16 bytes][kind: u8][length: u32 big-endian][payload]`: [`FRAME_STDOUT`] and
//! [`FRAME_STDERR`] chunks of the command's output, [`FRAME_FILE`] artifacts,
//! and one final [`FRAME_REPORT`] (JSON [`Report`]) per run, then, for a task with
//! `recycle`, one [`FRAME_READY`]. The command never holds
//! the container's stdout (its output goes through pipes the monitor reads),
//! and the monitor is non-dumpable PID 1, so the command can neither forge a
//! frame nor kill the monitor. Where a runtime does not keep those promises
//! (gVisor lets a process write to PID 1's descriptors), the nonce, which the
//! command never sees, makes anything it injects a detectable error.

use serde::{Deserialize, Serialize};

pub const MAGIC: &str = "CODE-RUNNER/3";

/// The uid (and gid) the monitor itself runs as once it has read its task,
/// when started as root: shared by no program, so no program can signal,
/// `prlimit`, reschedule, trace or read the monitor (every such call checks
/// that the caller's uid matches the target's).
pub const MONITOR_UID: u32 = 59_999;
/// The work directory, on the container's tmpfs.
pub const WORK_DIR: &str = "/tmp/box";

pub const FRAME_STDOUT: u8 = b'O';
pub const FRAME_STDERR: u8 = b'E';
/// Payload: `[name length: u16][name][mode: u32][bytes]`.
pub const FRAME_FILE: u8 = b'F';
pub const FRAME_REPORT: u8 = b'R';
/// After a recyclable task's last report: empty when the container was
/// restored and checked fit for another job, else why it is not.
pub const FRAME_READY: u8 = b'Y';
/// How much more memory than at its start (anonymous and shared, as the
/// container's cgroup counts it) a recycled container may hold once
/// restored: the monitor's own allocator keeps some of what it freed; a
/// program's leftovers (a tmpfs file, a shared memory segment) are gone
/// by then or the restore fails.
pub const RECYCLE_MEMORY_SLACK: u64 = 8 << 20;
/// Largest frame payload the monitor writes.
pub const MAX_CHUNK: usize = 64 * 1024;

/// Which limit stopped the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitHit {
    Wall,
    Cpu,
    Memory,
    Output,
    /// An interactive command had no input and wrote nothing for its idle
    /// limit.
    Idle,
    /// An interactive command's client left (the service said so).
    NoClient,
}

/// What the monitor measured, sent last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Exit status, when the command exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the command, when one did.
    pub signal: Option<i32>,
    /// From fork to exit.
    pub wall_ms: u64,
    /// CPU time of every process of the run (the container's cgroup).
    pub cpu_ms: u64,
    /// The container's memory high-water mark (cgroup), or the largest
    /// resident set when the cgroup cannot be read.
    pub memory_peak_bytes: u64,
    /// The kernel's OOM killer killed a process of the run.
    pub oom_killed: bool,
    pub limit: Option<LimitHit>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The command could not be started, or the monitor failed.
    pub error: Option<String>,
    /// Artifacts were asked for but their total passed the cap.
    #[serde(default)]
    pub artifacts_truncated: bool,
    /// The command itself could not be executed (`execve` failed: no such
    /// program, or not an executable), as opposed to the sandbox failing.
    #[serde(default)]
    pub exec_failed: bool,
    /// A task with `then`: after it, the container was cleared and the
    /// monitor waits for the next task.
    ///
    /// A task with `cases`: after this case, the container was restored to
    /// the task's start (no process, file or IPC object of the case left)
    /// and waits for the next case. False after the last case, and when the
    /// restore failed (the monitor then exits).
    #[serde(default)]
    pub clean: bool,
}

/// A file to write into the work directory.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSpec {
    pub name: String,
    pub mode: u32,
    pub content: Vec<u8>,
}

/// Everything one container does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Task {
    /// Secret of this task, carried by every frame out.
    pub nonce: [u8; 16],
    pub wall_ms: u64,
    pub cpu_ms: u64,
    pub output_bytes: u64,
    /// Send back the work dir's regular files, up to this many bytes in all.
    pub artifacts: Option<u64>,
    pub env: Vec<(String, String)>,
    pub files: Vec<FileSpec>,
    pub argv: Vec<Vec<u8>>,
    pub stdin: Vec<u8>,
    /// The uid (and gid) the command runs as: one no other program running
    /// at the same time on this machine has (a uid per worker slot), so
    /// per-user kernel quotas (pending signals, inotify instances, message
    /// queues) are not shared with neighbours. `None`: the monitor's own.
    pub uid: Option<u32>,
    /// The command's stack limit (`RLIMIT_STACK`), when the job sets one.
    pub stack_bytes: Option<u64>,
    /// Processes and threads the command's uid may have at once
    /// (`RLIMIT_NPROC`, with [`Task::uid`]): the same limit as the
    /// container's pids cgroup, enforced by the kernel the program talks to.
    /// The service sends it only under gVisor, where the cgroup counts the
    /// sandbox's own threads and stub processes too (a program forking past
    /// it would stop the sandbox itself) and gVisor's kernel, which counts
    /// a uid's processes in its sandbox alone, refuses the fork (EAGAIN) at
    /// this limit first. Under runc the host's kernel counts a uid across
    /// the host, where another service's program may share it.
    pub processes: Option<u64>,
    /// The largest file the command may write (`RLIMIT_FSIZE`: past it the
    /// write fails with SIGXFSZ), when the job sets one.
    pub file_size_bytes: Option<u64>,
    /// The command's stderr is its stdout (one stream, in write order).
    pub stderr_to_stdout: bool,
    /// Interactive: stdin is fed by [`Input`] frames after the task, and the
    /// command stops after this many milliseconds without input or output
    /// (0: no idle limit).
    pub interactive: Option<u64>,
    /// Run the command once per test case, each case's input sent after
    /// the task ([`Input::Case`]), restoring the container between cases.
    pub cases: bool,
    /// Another task follows this one in the same container (a compilation
    /// and then its program's runs), the container cleared between them.
    pub then: bool,
    /// After this task's last report, the container is restored for
    /// another job (see the module's doc).
    pub recycle: bool,
}

/// Input frame kinds (interactive tasks).
pub const INPUT_DATA: u8 = b'D';
pub const INPUT_CLOSE: u8 = b'C';
pub const INPUT_SIGNAL: u8 = b'S';
pub const INPUT_LEFT: u8 = b'L';
pub const INPUT_CASE: u8 = b'K';
pub const INPUT_END: u8 = b'E';
/// Largest input frame payload.
pub const MAX_INPUT_CHUNK: usize = 64 * 1024;

/// What the service sends an interactive command while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes for its stdin.
    Data(Vec<u8>),
    /// The end of its stdin.
    Close,
    /// A signal for its process group (one of [`INPUT_SIGNALS`]).
    Signal(i32),
    /// Its client left: stop it.
    ClientLeft,
    /// A task with `cases`: the next test case begins (its stdin follows as
    /// data frames, ended by a close frame); `last` says no case follows it,
    /// so the container needs no restore after it.
    Case { last: bool },
    /// A recycled interactive task's last frame, sent after its report:
    /// the service sends nothing more for it (see **Recycle**).
    End,
}

/// The signals a client may send (as a terminal's keys and a supervisor
/// would); the monitor refuses any other.
pub const INPUT_SIGNALS: [i32; 7] = [1, 2, 3, 9, 10, 12, 15];

/// Encodes one input frame (the service's side). Data longer than
/// [`MAX_INPUT_CHUNK`] goes in several frames.
pub fn encode_input(input: &Input) -> Vec<u8> {
    let frame = |out: &mut Vec<u8>, kind: u8, payload: &[u8]| {
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
    };
    let mut out = Vec::new();
    match input {
        Input::Data(bytes) => {
            for chunk in bytes.chunks(MAX_INPUT_CHUNK) {
                frame(&mut out, INPUT_DATA, chunk);
            }
        }
        Input::Close => frame(&mut out, INPUT_CLOSE, &[]),
        Input::Signal(n) => frame(&mut out, INPUT_SIGNAL, &[*n as u8]),
        Input::ClientLeft => frame(&mut out, INPUT_LEFT, &[]),
        Input::Case { last } => frame(&mut out, INPUT_CASE, &[u8::from(*last)]),
        Input::End => frame(&mut out, INPUT_END, &[]),
    }
    out
}

/// Splits input frames off a byte stream (the monitor's side).
#[derive(Debug, Default)]
pub struct InputReader {
    buffer: Vec<u8>,
}

impl InputReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// What was received past the last frame read.
    pub fn into_rest(self) -> Vec<u8> {
        self.buffer
    }

    /// What was received past the last frame read, still held.
    pub fn pending(&self) -> &[u8] {
        &self.buffer
    }

    /// The next whole input frame, if one has arrived.
    pub fn next_input(&mut self) -> Result<Option<Input>, String> {
        if self.buffer.len() < 5 {
            return Ok(None);
        }
        let kind = self.buffer[0];
        let len = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if len > MAX_INPUT_CHUNK {
            return Err(format!("an input frame of {len} bytes"));
        }
        if self.buffer.len() < 5 + len {
            return Ok(None);
        }
        let payload: Vec<u8> = self.buffer.drain(..5 + len).skip(5).collect();
        let input = match kind {
            INPUT_DATA => Input::Data(payload),
            INPUT_CLOSE => Input::Close,
            INPUT_LEFT => Input::ClientLeft,
            INPUT_END => Input::End,
            INPUT_CASE => match payload[..] {
                [flag @ (0 | 1)] => Input::Case { last: flag == 1 },
                _ => return Err("a bad case frame".into()),
            },
            INPUT_SIGNAL => {
                let n = payload.first().map_or(0, |&n| i32::from(n));
                if payload.len() != 1 || !INPUT_SIGNALS.contains(&n) {
                    return Err(format!("a signal frame for signal {n}"));
                }
                Input::Signal(n)
            }
            other => return Err(format!("unknown input frame kind {other}")),
        };
        Ok(Some(input))
    }
}

/// True for a plain file name: no directory part, not `.` or `..`, no
/// control character, and nothing a command line would read as an option
/// (`-v.c` for gcc, `-toolexec=…` for go) or a response file (`@args` for
/// gcc and javac), since sources are passed to compilers as arguments.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with(['-', '@'])
        && !name.contains('/')
        && !name.chars().any(char::is_control)
        && name.len() <= 255
}

/// True for a POSIX environment variable name.
pub fn valid_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Task {
    /// The bytes the monitor reads on stdin.
    pub fn encode(&self) -> Vec<u8> {
        let size = self.files.iter().map(|f| f.content.len()).sum::<usize>()
            + self.stdin.len()
            + self.argv.iter().map(Vec::len).sum::<usize>()
            + 512;
        let mut out = Vec::with_capacity(size);
        let line = |out: &mut Vec<u8>, text: String| {
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        };
        line(&mut out, MAGIC.to_string());
        line(&mut out, format!("nonce {}", hex::encode(self.nonce)));
        line(&mut out, format!("wall_ms {}", self.wall_ms));
        line(&mut out, format!("cpu_ms {}", self.cpu_ms));
        line(&mut out, format!("output_bytes {}", self.output_bytes));
        if let Some(max) = self.artifacts {
            line(&mut out, format!("artifacts {max}"));
        }
        if let Some(uid) = self.uid {
            line(&mut out, format!("uid {uid}"));
        }
        // Optional lines are sent only when set, so a task that does not
        // use them is read by a monitor that predates them.
        if let Some(bytes) = self.stack_bytes {
            line(&mut out, format!("stack_bytes {bytes}"));
        }
        if let Some(processes) = self.processes {
            line(&mut out, format!("processes {processes}"));
        }
        if let Some(bytes) = self.file_size_bytes {
            line(&mut out, format!("file_size_bytes {bytes}"));
        }
        if self.stderr_to_stdout {
            line(&mut out, "stderr_to_stdout".to_string());
        }
        if let Some(idle_ms) = self.interactive {
            line(&mut out, format!("interactive {idle_ms}"));
        }
        if self.cases {
            line(&mut out, "cases".to_string());
        }
        if self.then {
            line(&mut out, "then".to_string());
        }
        if self.recycle {
            line(&mut out, "recycle".to_string());
        }
        for (name, value) in &self.env {
            line(&mut out, format!("env {name}={value}"));
        }
        for file in &self.files {
            // The name is length-prefixed, never a line of its own: no name
            // can add header lines (and the decoder refuses bad names).
            line(
                &mut out,
                format!(
                    "file {} {:o} {}",
                    file.content.len(),
                    file.mode,
                    file.name.len()
                ),
            );
            out.extend_from_slice(file.name.as_bytes());
            out.extend_from_slice(&file.content);
        }
        for arg in &self.argv {
            line(&mut out, format!("arg {}", arg.len()));
            out.extend_from_slice(arg);
        }
        line(&mut out, format!("stdin {}", self.stdin.len()));
        out.extend_from_slice(&self.stdin);
        line(&mut out, "go".to_string());
        out
    }

    /// Reads a task from `input` (the monitor's side).
    pub fn decode(input: &mut impl std::io::BufRead) -> Result<Task, String> {
        let mut task = Task::default();
        let magic = read_line(input)?;
        if magic != MAGIC {
            return Err(format!("bad header {magic:?}"));
        }
        loop {
            let line = read_line(input)?;
            let (key, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match key {
                "nonce" => {
                    hex::decode_to_slice(rest, &mut task.nonce)
                        .map_err(|_| "bad nonce".to_string())?;
                }
                "wall_ms" => task.wall_ms = number(rest)?,
                "cpu_ms" => task.cpu_ms = number(rest)?,
                "output_bytes" => task.output_bytes = number(rest)?,
                "artifacts" => task.artifacts = Some(number(rest)?),
                "uid" => {
                    let uid: u32 = number(rest)?;
                    // Never root, never the monitor's own.
                    if uid == 0 || uid == MONITOR_UID || uid == u32::MAX {
                        return Err(format!("bad uid {uid}"));
                    }
                    task.uid = Some(uid);
                }
                "stack_bytes" => task.stack_bytes = Some(number(rest)?),
                "processes" => task.processes = Some(number(rest)?),
                "file_size_bytes" => task.file_size_bytes = Some(number(rest)?),
                "stderr_to_stdout" => task.stderr_to_stdout = true,
                "interactive" => task.interactive = Some(number(rest)?),
                "cases" => task.cases = true,
                "then" => task.then = true,
                "recycle" => task.recycle = true,
                "env" => {
                    let (name, value) = rest.split_once('=').ok_or("bad env line")?;
                    if !valid_env_name(name) {
                        return Err(format!("bad env name {name:?}"));
                    }
                    task.env.push((name.to_string(), value.to_string()));
                }
                "file" => {
                    let mut parts = rest.splitn(3, ' ');
                    let size: usize = number(parts.next().unwrap_or(""))?;
                    let mode = u32::from_str_radix(parts.next().unwrap_or(""), 8)
                        .map_err(|_| "bad file mode")?;
                    let name_len: usize = number(parts.next().unwrap_or(""))?;
                    if name_len > 255 {
                        return Err("bad file name length".into());
                    }
                    let name = String::from_utf8(read_exact(input, name_len)?)
                        .map_err(|_| "a file name is not UTF-8")?;
                    if !valid_file_name(&name) {
                        return Err(format!("bad file name {name:?}"));
                    }
                    task.files.push(FileSpec {
                        name,
                        mode: mode & 0o777,
                        content: read_exact(input, size)?,
                    });
                }
                "arg" => {
                    let len: usize = number(rest)?;
                    task.argv.push(read_exact(input, len)?);
                }
                "stdin" => {
                    let size: usize = number(rest)?;
                    task.stdin = read_exact(input, size)?;
                }
                "go" => break,
                other => return Err(format!("unknown line {other:?}")),
            }
        }
        if task.argv.is_empty() {
            return Err("no command".into());
        }
        if task.cases && (task.interactive.is_some() || !task.stdin.is_empty()) {
            return Err("a task with cases takes its input per case".into());
        }
        if task.then && (task.cases || task.interactive.is_some()) {
            return Err("only a batch task can be followed by another".into());
        }
        Ok(task)
    }
}

fn read_line(input: &mut impl std::io::BufRead) -> Result<String, String> {
    let mut line = Vec::new();
    let n = input
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err("input ended early".into());
    }
    line.pop();
    String::from_utf8(line).map_err(|_| "a header line is not UTF-8".to_string())
}

fn read_exact(input: &mut impl std::io::BufRead, size: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0; size];
    input
        .read_exact(&mut buf)
        .map_err(|e| format!("input ended early: {e}"))?;
    Ok(buf)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("bad number {text:?}"))
}

/// One decoded output frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    File(FileSpec),
    Report(Report),
    /// After a recyclable task: `Ok` when the container is fit for another
    /// job, else why not.
    Ready(Result<(), String>),
}

/// Bytes before a frame's payload.
pub const FRAME_HEADER: usize = 16 + 1 + 4;

/// Encodes one frame (the monitor's side).
pub fn encode_frame(nonce: &[u8; 16], kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER);
    out.extend_from_slice(nonce);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Encodes a file frame's payload.
pub fn encode_file_payload(name: &str, mode: u32, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + name.len() + 6);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&mode.to_be_bytes());
    out.extend_from_slice(content);
    out
}

/// Splits frames off the front of a stream buffer (the service's side).
pub struct FrameReader {
    nonce: [u8; 16],
    buffer: Vec<u8>,
}

impl FrameReader {
    /// A reader accepting only frames that carry `nonce`.
    pub fn new(nonce: [u8; 16]) -> FrameReader {
        FrameReader {
            nonce,
            buffer: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// What was received past the last frame read.
    pub fn into_rest(self) -> Vec<u8> {
        self.buffer
    }

    /// Bytes received but not yet a whole frame.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// The bytes received but not yet a whole frame, taken.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer)
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        let seen = self.buffer.len().min(16);
        if self.buffer[..seen] != self.nonce[..seen] {
            return Err("a frame without this task's nonce (the stream was tampered with)".into());
        }
        if self.buffer.len() < FRAME_HEADER {
            return Ok(None);
        }
        let kind = self.buffer[16];
        let len = u32::from_be_bytes([
            self.buffer[17],
            self.buffer[18],
            self.buffer[19],
            self.buffer[20],
        ]) as usize;
        if self.buffer.len() < FRAME_HEADER + len {
            return Ok(None);
        }
        let payload: Vec<u8> = self.buffer[FRAME_HEADER..FRAME_HEADER + len].to_vec();
        self.buffer.drain(..FRAME_HEADER + len);
        let frame = match kind {
            FRAME_STDOUT => Frame::Stdout(payload),
            FRAME_STDERR => Frame::Stderr(payload),
            FRAME_READY if payload.is_empty() => Frame::Ready(Ok(())),
            FRAME_READY => Frame::Ready(Err(String::from_utf8_lossy(&payload).into_owned())),
            FRAME_REPORT => Frame::Report(
                serde_json::from_slice(&payload).map_err(|e| format!("bad report: {e}"))?,
            ),
            FRAME_FILE => {
                if payload.len() < 6 {
                    return Err("short file frame".into());
                }
                let name_len = u16::from_be_bytes([payload[0], payload[1]]) as usize;
                if payload.len() < 2 + name_len + 4 {
                    return Err("short file frame".into());
                }
                let name = String::from_utf8(payload[2..2 + name_len].to_vec())
                    .map_err(|_| "file name is not UTF-8")?;
                // Carried into the next task: the same rules as submitted names.
                if !valid_file_name(&name) {
                    return Err(format!("a file frame with a bad name {name:?}"));
                }
                let m = &payload[2 + name_len..6 + name_len];
                let mode = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
                Frame::File(FileSpec {
                    name,
                    mode,
                    content: payload[6 + name_len..].to_vec(),
                })
            }
            other => return Err(format!("unknown frame kind {other}")),
        };
        Ok(Some(frame))
    }
}

/// The number of a signal named as [`signal_name`] names it.
pub fn signal_number(name: &str) -> Option<i32> {
    (1..=64).find(|&n| signal_name(n) == name)
}

/// The name of a signal number (SIGSEGV, ...).
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS",
        n => return format!("SIG{n}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_round_trips() {
        let task = Task {
            nonce: [7; 16],
            wall_ms: 1000,
            cpu_ms: 500,
            output_bytes: 10,
            artifacts: Some(99),
            env: vec![("A".into(), "b c".into())],
            files: vec![FileSpec {
                name: "main.c".into(),
                mode: 0o644,
                content: b"int main(){}\n\x00\xff".to_vec(),
            }],
            argv: vec![b"gcc".to_vec(), b"a b\nc".to_vec()],
            stdin: b"line\nmore".to_vec(),
            uid: Some(60_001),
            stack_bytes: Some(64 << 20),
            processes: Some(32),
            file_size_bytes: Some(1 << 20),
            stderr_to_stdout: true,
            interactive: Some(5000),
            cases: false,
            then: false,
            recycle: false,
        };
        let bytes = task.encode();
        let decoded = Task::decode(&mut std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(decoded, task);
    }

    #[test]
    fn a_nonce_that_is_not_hex_is_refused_not_a_panic() {
        let encoded = String::from_utf8_lossy(&Task::default().encode()).into_owned();
        let good = format!("nonce {}", "00".repeat(16));
        assert!(encoded.contains(&good), "{encoded}");
        for bad in [
            // 32 bytes, with a character of two bytes across a digit pair.
            format!("nonce 0{}{}", "é", "0".repeat(29)),
            format!("nonce {}", "é".repeat(16)),
            format!("nonce {}", "g".repeat(32)),
            format!("nonce {}", "+1".repeat(16)),
            "nonce 00".to_string(),
        ] {
            let text = encoded.replacen(&good, &bad, 1);
            let decoded = Task::decode(&mut std::io::Cursor::new(text.into_bytes()));
            assert_eq!(decoded, Err("bad nonce".to_string()), "{bad}");
        }
    }

    #[test]
    fn a_task_with_cases_round_trips_and_takes_no_input_of_its_own() {
        let task = Task {
            nonce: [3; 16],
            wall_ms: 1000,
            cpu_ms: 500,
            output_bytes: 10,
            argv: vec![b"./main".to_vec()],
            uid: Some(60_001),
            cases: true,
            ..Task::default()
        };
        let decoded = Task::decode(&mut std::io::Cursor::new(task.encode())).unwrap();
        assert_eq!(decoded, task);
        for bad in [
            Task {
                stdin: b"x".to_vec(),
                ..task.clone()
            },
            Task {
                interactive: Some(0),
                ..task.clone()
            },
        ] {
            assert!(Task::decode(&mut std::io::Cursor::new(bad.encode())).is_err());
        }
    }

    #[test]
    fn a_task_followed_by_another_round_trips_and_is_a_batch_task() {
        let task = Task {
            nonce: [4; 16],
            wall_ms: 1000,
            cpu_ms: 1000,
            output_bytes: 10,
            artifacts: Some(1 << 20),
            argv: vec![b"gcc".to_vec()],
            uid: Some(60_001),
            then: true,
            recycle: false,
            ..Task::default()
        };
        let decoded = Task::decode(&mut std::io::Cursor::new(task.encode())).unwrap();
        assert_eq!(decoded, task);
        for bad in [
            Task {
                cases: true,
                ..task.clone()
            },
            Task {
                interactive: Some(0),
                ..task.clone()
            },
        ] {
            assert!(Task::decode(&mut std::io::Cursor::new(bad.encode())).is_err());
        }
    }

    #[test]
    fn a_recyclable_task_round_trips_interactive_or_not_and_ends_with_a_ready_frame() {
        let task = Task {
            nonce: [5; 16],
            wall_ms: 1000,
            cpu_ms: 1000,
            output_bytes: 10,
            argv: vec![b"python3".to_vec()],
            uid: Some(60_001),
            cases: true,
            recycle: true,
            ..Task::default()
        };
        let decoded = Task::decode(&mut std::io::Cursor::new(task.encode())).unwrap();
        assert_eq!(decoded, task);
        // An interactive task may be recycled too: its input after the
        // report is drained up to the service's `Input::End`.
        let interactive = Task {
            cases: false,
            interactive: Some(0),
            ..task.clone()
        };
        let decoded = Task::decode(&mut std::io::Cursor::new(interactive.encode())).unwrap();
        assert_eq!(decoded, interactive);

        let mut reader = FrameReader::new([5; 16]);
        reader.push(&encode_frame(&[5; 16], FRAME_READY, b""));
        reader.push(&encode_frame(
            &[5; 16],
            FRAME_READY,
            b"/tmp still holds [\"x\"]",
        ));
        assert!(matches!(
            reader.next_frame(),
            Ok(Some(Frame::Ready(Ok(()))))
        ));
        match reader.next_frame() {
            Ok(Some(Frame::Ready(Err(why)))) => assert!(why.contains("/tmp"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn input_frames_round_trip_in_any_split() {
        let inputs = [
            Input::Data(b"hello\n".to_vec()),
            Input::Data(vec![7; MAX_INPUT_CHUNK]),
            Input::Signal(2),
            Input::Close,
            Input::ClientLeft,
            Input::Case { last: false },
            Input::Case { last: true },
            Input::End,
        ];
        let bytes: Vec<u8> = inputs.iter().flat_map(encode_input).collect();
        for split in [1, 3, 5, 4096, bytes.len()] {
            let mut reader = InputReader::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(split) {
                reader.push(chunk);
                while let Some(input) = reader.next_input().unwrap() {
                    got.push(input);
                }
            }
            assert_eq!(got, inputs, "split {split}");
        }
        // Data longer than a frame goes in several.
        let long = encode_input(&Input::Data(vec![1; MAX_INPUT_CHUNK + 1]));
        assert_eq!(long.len(), MAX_INPUT_CHUNK + 1 + 10);
    }

    #[test]
    fn bad_input_frames_are_refused() {
        for bytes in [
            encode_input(&Input::Signal(11)),
            vec![b'X', 0, 0, 0, 0],
            vec![INPUT_DATA, 0xff, 0xff, 0xff, 0xff],
            vec![INPUT_CASE, 0, 0, 0, 1, 2],
            vec![INPUT_CASE, 0, 0, 0, 0],
        ] {
            let mut reader = InputReader::default();
            reader.push(&bytes);
            assert!(reader.next_input().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "/etc/passwd",
            "-v.c",
            "-toolexec=x",
            "@args",
            "a\ncpu_ms 1",
            "tab\there",
            "nul\0",
        ] {
            assert!(!valid_file_name(name), "{name:?}");
        }
        for name in ["Main.java", "a-b.c", "x@y.py", "with space.txt", "ünï.py"] {
            assert!(valid_file_name(name), "{name:?}");
        }
    }

    #[test]
    fn no_file_name_adds_header_lines() {
        // What a compilation could create, if a name were written raw.
        let task = Task {
            argv: vec![b"run".to_vec()],
            files: vec![FileSpec {
                name: "a\ncpu_ms 99999999\nenv ZZ=injected".into(),
                mode: 0o644,
                content: b"x".to_vec(),
            }],
            ..Task::default()
        };
        let decoded = Task::decode(&mut std::io::Cursor::new(task.encode()));
        assert!(decoded.unwrap_err().contains("bad file name"));
    }

    #[test]
    fn frames_round_trip_across_split_reads() {
        let nonce = [9; 16];
        let mut stream = encode_frame(&nonce, FRAME_STDOUT, b"hello");
        stream.extend(encode_frame(
            &nonce,
            FRAME_FILE,
            &encode_file_payload("main", 0o755, b"\x7fELF"),
        ));
        let report = Report {
            exit_code: Some(0),
            ..Report::default()
        };
        stream.extend(encode_frame(
            &nonce,
            FRAME_REPORT,
            &serde_json::to_vec(&report).unwrap(),
        ));
        let mut reader = FrameReader::new(nonce);
        let mut frames = Vec::new();
        for byte in stream {
            reader.push(&[byte]);
            while let Some(frame) = reader.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames[0], Frame::Stdout(b"hello".to_vec()));
        assert!(matches!(&frames[1], Frame::File(f) if f.name == "main" && f.mode == 0o755));
        assert_eq!(frames[2], Frame::Report(report));
    }

    #[test]
    fn injected_bytes_are_caught() {
        let nonce = [9; 16];
        let mut reader = FrameReader::new(nonce);
        reader.push(&encode_frame(&nonce, FRAME_STDOUT, b"real"));
        reader.push(b"forged bytes");
        assert!(matches!(reader.next_frame(), Ok(Some(Frame::Stdout(_)))));
        assert!(reader.next_frame().is_err());
        // Even a whole frame is caught without the nonce.
        let mut reader = FrameReader::new(nonce);
        reader.push(&encode_frame(&[0; 16], FRAME_REPORT, b"{}"));
        assert!(reader.next_frame().is_err());
    }
}
