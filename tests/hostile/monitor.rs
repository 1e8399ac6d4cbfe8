//! The monitor is out of reach: it runs under another uid than the program.

use super::*;

/// Every handle a program could have on PID 1 through a shared uid:
/// resource limits, scheduling, I/O priority, signals, memory. Each is
/// refused (the monitor runs under a uid of its own).
#[tokio::test]
async fn the_monitor_cannot_be_limited_rescheduled_signalled_or_read() {
    let code = r#"
import ctypes, errno, os, resource, signal
libc = ctypes.CDLL(None, use_errno=True)
out = []
def attempt(name, call):
    try:
        call()
        out.append(name + ' allowed')
    except OSError as e:
        out.append(name + ' ' + errno.errorcode.get(e.errno, str(e.errno)))
def raw(nr, *args):
    def call():
        if libc.syscall(nr, *args) != 0:
            raise OSError(ctypes.get_errno(), 'raw')
    return call
attempt('prlimit_nofile', lambda: resource.prlimit(1, resource.RLIMIT_NOFILE, (3, 3)))
attempt('prlimit_cpu', lambda: resource.prlimit(1, resource.RLIMIT_CPU, (0, 0)))
attempt('prlimit_as', lambda: resource.prlimit(1, resource.RLIMIT_AS, (1 << 20, 1 << 20)))
attempt('sched_idle', lambda: os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0)))
attempt('affinity', lambda: os.sched_setaffinity(1, {0}))
attempt('nice', lambda: os.setpriority(os.PRIO_PROCESS, 1, 19))
attempt('ioprio', raw(251, 1, 1, (3 << 13) | 7))
attempt('kill', lambda: os.kill(1, signal.SIGSTOP))
buf = ctypes.create_string_buffer(16)
class iovec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 16)
remote = iovec(0x400000, 16)
def vm_read():
    if libc.process_vm_readv(1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0:
        raise OSError(ctypes.get_errno(), 'process_vm_readv')
attempt('vm_read', vm_read)
print(' '.join(out))
"#;
    let view = contained("python", code, json!({})).await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    let out = stdout(&view);
    let answer = |call: &str| {
        out.split_whitespace()
            .skip_while(|w| *w != call)
            .nth(1)
            .unwrap_or("missing")
            .to_string()
    };
    let refused = |answer: &str| matches!(answer, "EPERM" | "EACCES" | "ESRCH");
    for call in [
        "prlimit_nofile",
        "prlimit_cpu",
        "prlimit_as",
        "ioprio",
        "kill",
    ] {
        assert!(refused(&answer(call)), "{call}: {} ({view})", answer(call));
    }
    if under_gvisor() {
        // gVisor's kernel has no SCHED_IDLE nor process_vm_readv, and keeps
        // a task's affinity and nice value without applying them to the
        // host's scheduler (its tasks are the sandbox's own threads): they
        // change nothing, as the starvation test below shows.
        assert_eq!(answer("sched_idle"), "EINVAL", "{view}");
        assert_eq!(answer("vm_read"), "ENOSYS", "{view}");
    } else {
        for call in ["sched_idle", "affinity", "nice", "vm_read"] {
            assert!(refused(&answer(call)), "{call}: {} ({view})", answer(call));
        }
    }
}

/// The attack that used to work: lower the monitor's open-files limit so
/// that it cannot read the cgroup, then burn CPU in orphaned grandchildren.
/// The CPU-time limit still stops the job, and counts every process.
#[tokio::test]
async fn a_program_cannot_blind_the_monitor_to_escape_its_cpu_limit() {
    let code = r#"
import os, resource, time
try:
    resource.prlimit(1, resource.RLIMIT_NOFILE, (3, 3))
except OSError:
    pass
for _ in range(4):
    if os.fork() == 0:
        if os.fork() == 0:
            end = time.process_time() + 2
            while time.process_time() < end:
                pass
        os._exit(0)
time.sleep(10)
print('escaped')
"#;
    let view = contained(
        "python",
        code,
        json!({ "limits": { "cpu_time_ms": 1000, "wall_time_ms": 12000 } }),
    )
    .await;
    assert_eq!(verdict(&view), "time_limit_exceeded", "{view}");
    assert_eq!(view["result"]["time_limit"], "cpu", "{view}");
    assert!(
        view["result"]["cpu_time_ms"].as_u64().unwrap() >= 1000,
        "{view}"
    );
}

/// Rescheduling the monitor onto the program's CPU at idle priority used to
/// starve its checks while 60 busy children ran far past the CPU limit.
#[tokio::test]
async fn a_program_cannot_starve_the_monitor_to_escape_its_cpu_limit() {
    let code = r#"
import os
for call in (lambda: os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0)),
             lambda: os.sched_setaffinity(1, {0}),
             lambda: os.setpriority(os.PRIO_PROCESS, 1, 19)):
    try:
        call()
    except OSError:
        pass
os.sched_setaffinity(0, {0})
for _ in range(40):
    if os.fork() == 0:
        while True:
            pass
os.wait()
"#;
    let view = contained(
        "python",
        code,
        json!({ "limits": { "cpu_time_ms": 1000, "wall_time_ms": 8000, "processes": 64 } }),
    )
    .await;
    assert_eq!(verdict(&view), "time_limit_exceeded", "{view}");
    assert_eq!(view["result"]["time_limit"], "cpu", "{view}");
    // Stopped soon after the limit, not seconds of CPU past it. (gVisor
    // counts its tasks' CPU time coarsely, so there the bound is on the
    // wall-clock time it took to stop them.)
    let figure = if under_gvisor() {
        "wall_time_ms"
    } else {
        "cpu_time_ms"
    };
    assert!(view["result"][figure].as_u64().unwrap() < 2500, "{view}");
}

/// A program that fills /tmp (counted in its memory) until the memory
/// limit: the kernel kills the program, never the monitor, whose report
/// arrives with the figures.
#[tokio::test]
async fn filling_memory_through_tmp_kills_the_program_not_the_monitor() {
    let code = r#"
chunk = b'x' * (1 << 20)
n = 0
while True:
    with open('/tmp/fill-%d' % (n // 16), 'ab') as f:
        f.write(chunk)
    n += 1
"#;
    let view = contained("python", code, json!({ "limits": { "memory_mb": 48 } })).await;
    if under_gvisor() {
        // To the host, gVisor's kernel (with its tmpfs) and the program are
        // one process: the OOM killer stops the whole sandbox, and the
        // service reports the OOM kill the engine saw, or the sandbox
        // stopping, without figures; never a forged result.
        let message = view["result"]["message"].as_str().unwrap_or("");
        match verdict(&view) {
            "memory_limit_exceeded" => assert!(message.contains("OOM"), "{view}"),
            "runtime_error" => assert!(message.contains("stopped before reporting"), "{view}"),
            other => panic!("{other}: {view}"),
        }
    } else {
        assert_eq!(verdict(&view), "memory_limit_exceeded", "{view}");
        assert!(
            view["result"]["memory_peak_bytes"].as_u64().unwrap() > 40 << 20,
            "{view}"
        );
        assert!(
            view["result"]["wall_time_ms"].as_u64().unwrap() > 0,
            "{view}"
        );
    }
}

#[tokio::test]
async fn io_uring_is_refused() {
    let code = c_syscall(
        "char params[120] = {0};\nlong r = syscall(425, 8, params);\nprintf(\"%ld %s\\n\", r, strerror(errno));",
    );
    let view = contained("c", &code, json!({})).await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert!(
        stdout(&view).starts_with("-1 Function not implemented"),
        "{view}"
    );
}

/// Each job's programs run under a uid of their own: a neighbour that
/// exhausts its per-user quotas (queued signals, inotify instances,
/// message queues) leaves another job's untouched.
#[tokio::test]
async fn a_neighbour_exhausting_its_user_quotas_leaves_others_untouched() {
    let probe = r#"
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL('librt.so.1', use_errno=True)
out = []
timer = ctypes.c_long()
out.append('timer ' + ('ok' if rt.timer_create(1, None, ctypes.byref(timer)) == 0 else str(ctypes.get_errno())))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
try:
    os.kill(os.getpid(), signal.SIGRTMIN)
    out.append('signal ok')
except OSError as e:
    out.append('signal %d' % e.errno)
fd = libc.inotify_init1(0)
out.append('inotify ' + ('ok' if fd >= 0 else str(ctypes.get_errno())))
mq = rt.mq_open(b'/probe', os.O_CREAT | os.O_RDWR, 0o600, None)
out.append('mq ' + ('ok' if mq >= 0 else str(ctypes.get_errno())))
print(', '.join(out))
"#;
    let hog = r#"
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL('librt.so.1', use_errno=True)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
queued = 0
try:
    while queued < 1000000:
        os.kill(os.getpid(), signal.SIGRTMIN)
        queued += 1
except OSError:
    pass
inotify = 0
while libc.inotify_init1(0) >= 0:
    inotify += 1
queues = 0
while rt.mq_open(b'/hog%d' % queues, os.O_CREAT | os.O_RDWR, 0o600, None) >= 0:
    queues += 1
print(queued, inotify, queues, flush=True)
time.sleep(6)
"#;
    let service = TestService::start_with(|c| {
        c.concurrency = 2;
        c.wall_time_limit_ms = 10_000;
    })
    .await;
    let alone = service
        .run_v1(json!({ "language": "python", "code": probe }))
        .await;
    assert_eq!(verdict(&alone), "accepted", "{alone}");
    let hogging = service
        .submit_v1(json!({ "language": "python", "code": hog }))
        .await;
    service
        .wait_v1(&hogging, &["active"], Duration::from_secs(30))
        .await;
    // Let the hog take what it can before the neighbour starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let beside = service
        .run_v1(json!({ "language": "python", "code": probe }))
        .await;
    let hog_view = service
        .wait_v1(&hogging, &["completed"], Duration::from_secs(30))
        .await;
    assert_eq!(verdict(&beside), "accepted", "{beside}");
    assert_eq!(stdout(&beside), stdout(&alone), "beside {hog_view}");
    if !under_gvisor() {
        assert_eq!(stdout(&alone), "timer ok, signal ok, inotify ok, mq ok\n");
    }
    service.stop().await;
}

#[tokio::test]
async fn keyctl_and_bpf_are_refused() {
    let code = c_syscall(
        "long k = syscall(SYS_keyctl, 0, 0, 0, 0, 0);\nint ek = errno;\nlong b = syscall(SYS_bpf, 0, 0, 0);\nint eb = errno;\nprintf(\"%ld %s / %ld %s\\n\", k, strerror(ek), b, strerror(eb));",
    );
    let view = contained("c", &code, json!({})).await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    let out = stdout(&view);
    assert!(out.starts_with("-1 ") && out.contains("/ -1 "), "{view}");
}

#[tokio::test]
async fn setuid_gains_nothing() {
    let code = c_syscall(
        "int r = setuid(0);\nprintf(\"setuid %d uid %d euid %d\\n\", r, (int)getuid(), (int)geteuid());",
    );
    let view = contained("c", &code, json!({})).await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(
        stdout(&view),
        format!("setuid -1 uid {JOB_UID} euid {JOB_UID}\n"),
        "{view}"
    );
}

#[tokio::test]
async fn setuid_binaries_gain_nothing() {
    // no-new-privileges: a setuid-root binary runs as the job's user.
    let view = contained(
        "bash",
        "for b in $(find / -xdev -perm -4000 -type f 2>/dev/null); do\n  \"$b\" --version >/dev/null 2>&1 < /dev/null\ndone\nmount -t tmpfs none /tmp 2>/dev/null && echo mounted\nsu -c 'id -u' root < /dev/null 2>/dev/null && echo became-root\nid -u",
        // Walking the whole file system is slow under gVisor: room for it
        // (a CI run on a loaded machine saw it pass 3 s).
        json!({ "limits": { "wall_time_ms": 15_000 } }),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), format!("{JOB_UID}\n"), "{view}");
}
