//! The hostile-program suite: programs that attack the sandbox, each with
//! its expected safe outcome asserted: the verdict, then that the host and
//! the next job are unaffected (the engine answers, the next job on the same
//! worker finds nothing of this one in /tmp or /dev/shm, a host file the
//! attack aimed at is untouched, no container is left).
//!
//! `make test` runs it under the engine's default runtime (runc);
//! `make test-gvisor` runs it again under gVisor (`runsc`). Where the two
//! differ in how a program is stopped, the expectation says so.
//!
//! No test sends a packet anywhere but the container's own loopback.

use code_runner_testkit as helpers;

use std::time::Duration;

use serde_json::{Value, json};

use helpers::{TestService, under_gvisor};

/// The uid a lone job's programs run as: the worker's first slot
/// (`CODE_RUNNER_SANDBOX_UID_BASE`, 60000 by default).
const JOB_UID: &str = "60000";

/// A host file that symlink attacks aim at; it must never change.
const SENTINEL: &str = "/tmp/code-runner-hostile-sentinel";
const SENTINEL_TEXT: &str = "untouched by any job\n";

/// Runs the next job on the same worker: it must find nothing of the
/// previous one.
const CANARY: &str = "import os\nleft = [f for f in os.listdir('/tmp') if f != 'box']\nleft += [f for f in os.listdir('/tmp/box') if f != 'main.py']\nleft += os.listdir('/dev/shm')\nprint('clean' if not left else left)";

/// Runs one hostile job, in a warm pool container, and checks that nothing
/// outlived it.
async fn contained(language: &str, code: &str, extra: Value) -> Value {
    std::fs::write(SENTINEL, SENTINEL_TEXT).ok();
    let service = TestService::start_with(|c| {
        c.wall_time_limit_ms = 3_000;
        c.cpu_time_limit_ms = 2_000;
    })
    .await;
    // The warm pool is on, as in production: a harmless job of the same
    // language warms it, and the hostile job runs in a warm container.
    let harmless = match language {
        "c" => "int main(void) { return 0; }",
        "bash" => "true",
        _ => "pass",
    };
    let mut warm_up = json!({ "language": language, "code": harmless });
    let mut body = json!({ "language": language, "code": code });
    if let Value::Object(fields) = extra {
        for (k, v) in fields {
            warm_up[&k] = v.clone();
            body[k] = v;
        }
    }
    let warmed = service.run_v1(warm_up).await;
    assert_eq!(warmed["result"]["verdict"], "accepted", "warm-up: {warmed}");
    service.wait_pool_warm(language).await;
    let hits = service.pool_stats().await["hits"].as_u64().unwrap();
    let view = service.run_v1(body).await;
    assert_eq!(view["state"], "completed", "{view}");
    let now = service.pool_stats().await["hits"].as_u64().unwrap();
    assert!(
        now > hits,
        "the hostile job did not run in a warm container"
    );

    // The host: the engine answers, the sentinel is intact.
    service
        .app()
        .sandbox()
        .unwrap()
        .engine_info()
        .await
        .expect("the Docker engine still answers");
    assert_eq!(
        std::fs::read_to_string(SENTINEL).unwrap_or_default(),
        SENTINEL_TEXT,
        "a host file changed"
    );
    // The next job on the same worker.
    let next = service
        .run_v1(json!({ "language": "python", "code": CANARY }))
        .await;
    assert_eq!(next["result"]["verdict"], "accepted", "next job: {next}");
    assert_eq!(next["result"]["stdout"], "clean\n", "next job: {next}");
    service.stop().await;
    view
}

fn verdict(view: &Value) -> &str {
    view["result"]["verdict"].as_str().unwrap_or("")
}

fn stdout(view: &Value) -> &str {
    view["result"]["stdout"].as_str().unwrap_or("")
}

/// How a hostile job may end.
#[derive(Debug, Clone, Copy)]
enum End {
    Verdict(&'static str),
    /// gVisor only: the program exhausted or stopped the sandbox itself
    /// (its pids limit counts gVisor's own threads; a write to the monitor's
    /// stream lands in it): the job ends as `runtime_error` saying so, which
    /// is also safe. Never accepted under runc.
    SandboxStopped,
}

use End::{SandboxStopped, Verdict};

fn sandbox_stopped(view: &Value) -> bool {
    verdict(view) == "runtime_error"
        && view["result"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("monitor stopped") || m.contains("report stream"))
}

/// The job ended as one of `runc`'s under runc, one of `gvisor`'s under
/// gVisor.
fn assert_ends_as(view: &Value, runc: &[End], gvisor: &[End]) {
    let allowed = if under_gvisor() { gvisor } else { runc };
    let matches = |end: &End| match end {
        Verdict(v) => verdict(view) == *v,
        SandboxStopped => under_gvisor() && sandbox_stopped(view),
    };
    assert!(
        allowed.iter().any(matches),
        "verdict {} not in {allowed:?}{}: {view}",
        verdict(view),
        if under_gvisor() { " (gVisor)" } else { "" }
    );
}

const TLE: End = Verdict("time_limit_exceeded");
const MLE: End = Verdict("memory_limit_exceeded");
const ACCEPTED: End = Verdict("accepted");

/// A C program that prints what a syscall answered.
fn c_syscall(body: &str) -> String {
    format!(
        "#define _GNU_SOURCE\n#include <errno.h>\n#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n#include <sched.h>\n#include <sys/mount.h>\n#include <sys/ptrace.h>\n#include <sys/syscall.h>\nint main(void) {{\n{body}\nreturn 0;\n}}\n"
    )
}

// ---- processes and threads ----

#[tokio::test]
async fn python_fork_bomb() {
    let view = contained(
        "python",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        json!({}),
    )
    .await;
    assert_ends_as(&view, &[TLE, MLE], &[TLE, MLE, SandboxStopped]);
}

#[tokio::test]
async fn bash_fork_bomb() {
    let view = contained("bash", ":(){ :|:& };:\nsleep 30", json!({})).await;
    assert_ends_as(&view, &[TLE, MLE], &[TLE, MLE, SandboxStopped]);
}

#[tokio::test]
async fn python_thread_bomb() {
    let view = contained(
        "python",
        "import threading, time\nn = 0\ntry:\n    while True:\n        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n        n += 1\nexcept RuntimeError:\n    print('stopped at', n)",
        json!({}),
    )
    .await;
    if under_gvisor() {
        // gVisor counts the sandbox's host threads, not the guest's: the
        // bomb ends at the memory or time limit, or stops the sandbox.
        assert_ends_as(&view, &[], &[ACCEPTED, TLE, MLE, SandboxStopped]);
    } else {
        assert_eq!(verdict(&view), "accepted", "{view}");
        let n: u32 = stdout(&view)
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(n < 64, "{n} threads with a limit of 64 processes");
    }
}

#[tokio::test]
async fn c_thread_bomb() {
    let code = "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\nstatic void *sleeper(void *a) { sleep(60); return a; }\nint main(void) { int n = 0; pthread_t t; while (pthread_create(&t, 0, sleeper, 0) == 0) n++; printf(\"stopped at %d\\n\", n); return 0; }";
    let view = contained("c", code, json!({})).await;
    if under_gvisor() {
        assert_ends_as(&view, &[], &[ACCEPTED, TLE, MLE, SandboxStopped]);
    } else {
        assert_eq!(verdict(&view), "accepted", "{view}");
        assert!(stdout(&view).starts_with("stopped at "), "{view}");
    }
}

/// Two services on one host give their first slot's programs the same uid
/// (`CODE_RUNNER_SANDBOX_UID_BASE`): one program's threads must not take
/// the other's processes limit, which is its own container's (the host's
/// kernel counts a uid's processes across every container; RLIMIT_NPROC
/// would share them).
#[tokio::test]
async fn a_programs_processes_limit_is_its_own_not_its_uids_on_the_host() {
    let adjust = |c: &mut code_runner::config::Config| {
        c.wall_time_limit_ms = 10_000;
        c.cpu_time_limit_ms = 5_000;
    };
    let holder = TestService::start_with(adjust).await;
    let other = TestService::start_with(adjust).await;
    assert_eq!(
        holder.config.sandbox_uid_base,
        other.config.sandbox_uid_base
    );
    // 50 threads of 64 held for 6 s under the shared uid.
    let held = holder
        .submit_v1(json!({
            "language": "python",
            "code": "import threading, time\nts = [threading.Thread(target=time.sleep, args=(6,)) for _ in range(50)]\nfor t in ts: t.start()\nfor t in ts: t.join()\nprint('held', len(ts))",
        }))
        .await;
    holder
        .wait_v1(&held, &["active"], Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Meanwhile 30 threads of 64 in the other service's container.
    let code = "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\nstatic void *sleeper(void *a) { sleep(1); return a; }\nint main(void) { pthread_t t[30]; int n = 0; while (n < 30 && pthread_create(&t[n], 0, sleeper, 0) == 0) n++; printf(\"started %d\\n\", n); for (int i = 0; i < n; i++) pthread_join(t[i], 0); return 0; }";
    let view = other.run_v1(json!({ "language": "c", "code": code })).await;
    let holding = holder
        .wait_v1(&held, &["completed", "failed"], Duration::from_secs(60))
        .await;
    assert_eq!(verdict(&holding), "accepted", "{holding}");
    assert_eq!(stdout(&holding), "held 50\n", "{holding}");
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), "started 30\n", "{view}");
    holder.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn killing_every_visible_process_and_the_parent() {
    let view = contained(
        "bash",
        "sleep 100 &\nkill -9 -1 2>/dev/null\nkill -9 1 2>/dev/null\nkill -9 $PPID 2>/dev/null\nkill -STOP 1 2>/dev/null\necho still here",
        json!({}),
    )
    .await;
    // The monitor (PID 1, the parent) survived and reported: under runc
    // and gVisor alike, since it runs under a uid the program's signals
    // cannot reach.
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), "still here\n");
}

#[tokio::test]
async fn other_jobs_processes_and_files_are_invisible() {
    let view = contained(
        "python",
        "import os\npids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\nprint(len(pids), pids[0], os.getpid() in pids)\nprint(sorted(os.listdir('/tmp')), sorted(os.listdir('/tmp/box')))",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    // The monitor (1) and the program itself: nothing of any other job.
    assert_eq!(stdout(&view), "2 1 True\n['box'] ['main.py']\n", "{view}");
}

// ---- memory, CPU, time ----

#[tokio::test]
async fn python_memory_bomb() {
    let view = contained(
        "python",
        "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "memory_limit_exceeded", "{view}");
}

#[tokio::test]
async fn c_memory_bomb() {
    let view = contained(
        "c",
        "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(1 << 22); if (p) memset(p, 7, 1 << 22); } }",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "memory_limit_exceeded", "{view}");
}

#[tokio::test]
async fn cpu_burn() {
    let view = contained("python", "x = 0\nwhile True:\n    x += 1", json!({})).await;
    assert_eq!(verdict(&view), "time_limit_exceeded", "{view}");
    assert_eq!(view["result"]["time_limit"], "cpu", "{view}");
}

#[tokio::test]
async fn sleep_forever() {
    let view = contained(
        "c",
        "#include <unistd.h>\nint main(void) { for (;;) pause(); }",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "time_limit_exceeded", "{view}");
    assert_eq!(view["result"]["time_limit"], "wall", "{view}");
}

#[tokio::test]
async fn busy_wait_on_the_clock() {
    let view = contained(
        "python",
        "import time\nstart = time.monotonic()\nwhile time.monotonic() - start < 100:\n    pass",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "time_limit_exceeded", "{view}");
}

// ---- disk and files ----

#[tokio::test]
async fn filling_the_tmpfs_stops_at_its_size() {
    let view = contained(
        "python",
        "import errno, os\nchunk = b'x' * (1 << 20)\ni = 0\ntry:\n    while True:\n        with open(f'/tmp/fill{i}', 'wb') as f:\n            for _ in range(8):\n                f.write(chunk)\n        i += 1\nexcept OSError as e:\n    print(errno.errorcode[e.errno], i * 8 < 80)",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), "ENOSPC True\n", "{view}");
}

#[tokio::test]
async fn one_huge_file_meets_the_file_size_limit() {
    let view = contained(
        "c",
        "#include <stdio.h>\nint main(void) { static char block[1 << 20]; FILE *f = fopen(\"/tmp/huge\", \"w\"); for (;;) { if (fwrite(block, 1, sizeof block, f) != sizeof block) return 3; fflush(f); } }",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "runtime_error", "{view}");
    assert_eq!(view["result"]["signal"], "SIGXFSZ", "{view}");
}

#[tokio::test]
async fn a_million_small_files_run_out_of_inodes() {
    let view = contained(
        "python",
        "import errno, os\nn = 0\ntry:\n    while n < 1_000_000:\n        open(f'/tmp/f{n}', 'w').close()\n        n += 1\nexcept OSError as e:\n    print(errno.errorcode[e.errno], n <= 16384)",
        json!({}),
    )
    .await;
    if under_gvisor() {
        // gVisor's own tmpfs has no inode limit: the files cost memory and
        // time, which end the job.
        assert_ends_as(&view, &[], &[TLE, MLE]);
        return;
    }
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), "ENOSPC True\n", "{view}");
}

#[tokio::test]
async fn file_descriptor_exhaustion() {
    let view = contained(
        "python",
        "import errno\nfiles = []\ntry:\n    while True:\n        files.append(open('/dev/null'))\nexcept OSError as e:\n    print(errno.errorcode[e.errno], len(files) < 256)",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), "EMFILE True\n", "{view}");
}

#[tokio::test]
async fn files_left_in_tmp_and_dev_shm_are_gone_for_the_next_job() {
    let view = contained(
        "bash",
        "echo secret > /tmp/left-behind\necho secret > /tmp/box/left-behind\necho secret > /dev/shm/left-behind\necho /tmp/* /dev/shm/*",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert!(stdout(&view).contains("left-behind"), "{view}");
    // `contained` ran the next job: it found /tmp and /dev/shm clean.
}

#[tokio::test]
async fn a_segfault_leaves_no_core_file() {
    let code = "#include <stdio.h>\n#include <dirent.h>\n#include <string.h>\n#include <sys/wait.h>\n#include <unistd.h>\nint main(void) {\n  pid_t p = fork();\n  if (p == 0) { volatile int *x = 0; return *x; }\n  int s; waitpid(p, &s, 0);\n  int cores = 0; DIR *d = opendir(\".\"); struct dirent *e;\n  while ((e = readdir(d))) if (strncmp(e->d_name, \"core\", 4) == 0) cores++;\n  printf(\"signal %d dumped %d cores %d\\n\", WTERMSIG(s), WCOREDUMP(s) ? 1 : 0, cores);\n  fflush(stdout);\n  volatile int *y = 0; return *y;\n}";
    let view = contained("c", code, json!({})).await;
    assert_eq!(verdict(&view), "runtime_error", "{view}");
    assert_eq!(view["result"]["signal"], "SIGSEGV", "{view}");
    assert_eq!(stdout(&view), "signal 11 dumped 0 cores 0\n", "{view}");
}

// ---- one container, many test cases: nothing of one case reaches the next ----

/// A C program with two roles, chosen by its input: `leave` leaves every
/// trace a case can (a process that outlives it and burns CPU, files in
/// /tmp, in the work directory and in /dev/shm, System V shared memory and
/// a message queue, 150 MB touched just before it exits); `look` counts
/// what it finds of them.
const LEAVE_AND_LOOK: &str = r#"#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <unistd.h>
static int entries(const char *dir, const char *except) {
  int n = 0; DIR *d = opendir(dir); struct dirent *e;
  if (!d) return 0;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && (!except || strcmp(e->d_name, except))) n++;
  closedir(d);
  return n;
}
static int ipc_rows(const char *path) {
  FILE *f = fopen(path, "r"); char line[512]; int n = -1;
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) n++;
  fclose(f);
  return n < 0 ? 0 : n;
}
int main(void) {
  char role[16] = {0};
  if (scanf("%15s", role) != 1) return 3;
  if (!strcmp(role, "leave")) {
    if (fork() == 0) { setsid(); if (fork() == 0) { for (;;) {} } _exit(0); }
    const char *paths[] = {"/tmp/left", "left", "/dev/shm/left"};
    for (int i = 0; i < 3; i++) { FILE *f = fopen(paths[i], "w"); fputs("secret", f); fclose(f); }
    int shm = shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0600);
    int msg = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    size_t n = 150u << 20; volatile char *p = malloc(n);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    printf("left %d %d %d\n", shm >= 0, msg >= 0, p[n - 4096]);
    return 0;
  }
  int processes = 0; DIR *d = opendir("/proc"); struct dirent *e;
  while ((e = readdir(d))) { int pid = atoi(e->d_name); if (pid > 1 && pid != getpid()) processes++; }
  closedir(d);
  int files = entries("/tmp", "box") + entries("/dev/shm", NULL) + (access("left", F_OK) == 0);
  int ipc = ipc_rows("/proc/sysvipc/shm") + ipc_rows("/proc/sysvipc/msg");
  printf("processes %d files %d ipc %d\n", processes, files, ipc);
  return 0;
}
"#;

#[tokio::test]
async fn a_case_leaves_nothing_for_the_next_case_of_its_job() {
    let cases = json!({ "test_cases": [
        { "stdin": "look" }, { "stdin": "leave" }, { "stdin": "look" },
        { "stdin": "leave" }, { "stdin": "look" },
    ]});
    let view = contained("c", LEAVE_AND_LOOK, cases).await;
    let cases = view["result"]["test_cases"].as_array().expect("test cases");
    assert_eq!(cases.len(), 5, "{view}");
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(case["verdict"], "accepted", "case {i}: {view}");
        if i % 2 == 1 {
            assert_eq!(case["stdout"], "left 1 1 1\n", "case {i}: {view}");
            assert!(
                case["memory_peak_bytes"].as_u64().unwrap() >= 150 << 20,
                "case {i} touched 150 MB: {view}"
            );
        } else {
            // Nothing of the case before: no process (its CPU burner
            // would count in this case's CPU time), no file, no IPC object.
            assert_eq!(
                case["stdout"], "processes 0 files 0 ipc 0\n",
                "case {i}: {view}"
            );
            // Its peak is its own, not the 150 MB of the case before.
            assert!(
                case["memory_peak_bytes"].as_u64().unwrap() < 100 << 20,
                "case {i}'s peak counts the case before: {view}"
            );
        }
    }
}

/// A compiled job's cases run in the container its compilation ran in,
/// once the monitor cleared it and the service set the run's memory and
/// processes limits (the compiler's are larger). `eat` touches 200 MB,
/// `fork` starts up to 40 sleeping children; `look` is as above.
const COMPILED_THEN_RUN: &str = r#"#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/wait.h>
int main(void) {
  char role[16] = {0};
  if (scanf("%15s", role) != 1) return 3;
  if (!strcmp(role, "eat")) {
    size_t n = 200u << 20; volatile char *p = malloc(n);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    printf("ate %d\n", p[n - 4096]);
    return 0;
  }
  if (!strcmp(role, "fork")) {
    int forked = 0; pid_t children[40];
    for (int i = 0; i < 40; i++) { pid_t c = fork(); if (c == 0) { pause(); _exit(0); } if (c > 0) children[forked++] = c; }
    for (int i = 0; i < forked; i++) { kill(children[i], SIGKILL); waitpid(children[i], NULL, 0); }
    printf("forked %d\n", forked);
    return 0;
  }
  int processes = 0, files = 0; DIR *d = opendir("/proc"); struct dirent *e;
  while ((e = readdir(d))) { int pid = atoi(e->d_name); if (pid > 1 && pid != getpid()) processes++; }
  closedir(d);
  d = opendir("/tmp");
  while ((e = readdir(d))) if (e->d_name[0] != '.' && strcmp(e->d_name, "box")) files++;
  closedir(d);
  printf("processes %d files %d\n", processes, files);
  return 0;
}
"#;

#[tokio::test]
async fn a_compiled_jobs_cases_get_the_runs_limits_and_figures_not_the_compilers() {
    // The compiler may use 512 MB and 128 processes; the run 64 MB and 16.
    let limits = json!({ "memory_mb": 64, "processes": 16 });
    let view = contained(
        "c",
        COMPILED_THEN_RUN,
        json!({ "limits": limits, "test_cases": [{ "stdin": "look" }, { "stdin": "fork" }] }),
    )
    .await;
    let result = &view["result"];
    let cases = result["test_cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"));
    // Right after the compilation: nothing of it left, and figures of its
    // own (the compiler's CPU time and peak are the compilation's).
    assert_eq!(cases[0]["verdict"], "accepted", "{view}");
    assert_eq!(
        cases[0]["stdout"],
        "processes 0 files 0
",
        "{view}"
    );
    let compile = &result["compile"];
    let (compile_cpu, compile_peak) = (
        compile["cpu_time_ms"].as_u64().unwrap(),
        compile["memory_peak_bytes"].as_u64().unwrap(),
    );
    assert!(
        cases[0]["cpu_time_ms"].as_u64().unwrap() * 2 < compile_cpu.max(20),
        "the first case's CPU time counts the compiler's: {view}"
    );
    assert!(
        cases[0]["memory_peak_bytes"].as_u64().unwrap() * 2 < compile_peak,
        "the first case's peak counts the compiler's: {view}"
    );
    // The run's processes limit, not the compiler's, met as a failed fork
    // (a count), never as a stopped sandbox: under gVisor, whose pids
    // cgroup also counts the sandbox's own threads, the program uid's
    // RLIMIT_NPROC is what it meets (gVisor cannot update a container, so
    // there the run has a container of its own).
    assert_eq!(cases[1]["verdict"], "accepted", "{view}");
    let forked: u32 = cases[1]["stdout"]
        .as_str()
        .and_then(|s| s.trim().strip_prefix("forked "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {view}"));
    // (gVisor's kernel counts the uid's processes without the one
    // forking: one more child there.)
    let most = if under_gvisor() { 16 } else { 15 };
    assert!(
        forked <= most,
        "{forked} children with a limit of 16 processes: {view}"
    );

    // The run's memory limit, not the compiler's, from the first case on.
    let view = contained(
        "c",
        COMPILED_THEN_RUN,
        json!({ "limits": limits, "test_cases": [{ "stdin": "eat" }, { "stdin": "look" }] }),
    )
    .await;
    let cases = view["result"]["test_cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"));
    assert_ends_as(
        &json!({ "result": cases[0] }),
        &[MLE],
        &[MLE, SandboxStopped],
    );
    assert_eq!(
        cases[1]["stdout"],
        "processes 0 files 0
",
        "{view}"
    );
}

/// `leave <secret>` leaves one object of every kind a program can make
/// outside its processes, each with the secret in it, and gives each System
/// V object away to another owner (`IPC_SET`, which its creator may do; an
/// owner-only clean-up skips it): a 64 MiB shared memory segment (touched,
/// so charged to the container), a message queue, a semaphore set, a POSIX
/// message queue (refused under gVisor, which cannot show or remove one),
/// POSIX shared memory, FIFOs and a socket in every writable place.
/// `look` says what it finds of them: a line that must read
/// `shm none msg none sem none mq none shm_open none files 0 counts 0 0 0`.
const IPC_LEAVE_AND_LOOK: &str = r#"#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#define SHM_KEY 0x5151
#define MSG_KEY 0x5252
#define SEM_KEY 0x5353
#define SIZE (64 << 20)
struct message { long type; char text[64]; };
static int entries(const char *dir, const char *except) {
  int n = 0; DIR *d = opendir(dir); struct dirent *e;
  if (!d) return 0;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && (!except || strcmp(e->d_name, except))) n++;
  closedir(d);
  return n;
}
static void bind_at(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0); struct sockaddr_un a = { .sun_family = AF_UNIX };
  strncpy(a.sun_path, path, sizeof a.sun_path - 1); bind(fd, (struct sockaddr *)&a, sizeof a);
}
int main(void) {
  char role[16] = {0}, secret[48] = {0};
  if (scanf("%15s %47s", role, secret) < 1) return 3;
  if (!strcmp(role, "leave")) {
    int shm = shmget(SHM_KEY, SIZE, IPC_CREAT | 0600);
    char *p = shmat(shm, NULL, 0);
    memset(p, 1, SIZE); strcpy(p, secret); shmdt(p);
    struct shmid_ds sd; shmctl(shm, IPC_STAT, &sd); sd.shm_perm.uid = 12345; sd.shm_perm.gid = 12345;
    int shm_given = shmctl(shm, IPC_SET, &sd);
    int msg = msgget(MSG_KEY, IPC_CREAT | 0600);
    struct message m = { .type = 1 }; strcpy(m.text, secret); msgsnd(msg, &m, sizeof m.text, 0);
    struct msqid_ds md; msgctl(msg, IPC_STAT, &md); md.msg_perm.uid = 12345;
    int msg_given = msgctl(msg, IPC_SET, &md);
    int sem = semget(SEM_KEY, 1, IPC_CREAT | 0600);
    semctl(sem, 0, SETVAL, 42);
    struct semid_ds sm; semctl(sem, 0, IPC_STAT, &sm); sm.sem_perm.uid = 12345;
    int sem_given = semctl(sem, 0, IPC_SET, &sm);
    struct mq_attr attr = { .mq_maxmsg = 4, .mq_msgsize = 64 };
    mqd_t q = mq_open("/left", O_CREAT | O_RDWR, 0600, &attr);
    if (q >= 0) mq_send(q, secret, strlen(secret), 0);
    int posix = shm_open("/left", O_CREAT | O_RDWR, 0600);
    if (posix >= 0) { write(posix, secret, strlen(secret)); close(posix); }
    mkfifo("/tmp/fifo", 0600); mkfifo("/dev/shm/fifo", 0600);
    bind_at("/tmp/socket"); bind_at("/dev/shm/socket");
    printf("given %d %d %d\n", shm_given, msg_given, sem_given);
    return 0;
  }
  char found[4][64] = {"none", "none", "none", "none"};
  char shm_open_found[64] = "none";
  int shm = shmget(SHM_KEY, 0, 0);
  if (shm >= 0) { char *p = shmat(shm, NULL, SHM_RDONLY); snprintf(found[0], 64, "%s", p == (void *)-1 ? "there" : p); }
  int msg = msgget(MSG_KEY, 0);
  if (msg >= 0) { struct message m = {0}; strcpy(found[1], "there"); if (msgrcv(msg, &m, sizeof m.text, 0, IPC_NOWAIT) >= 0) snprintf(found[1], 64, "%s", m.text); }
  int sem = semget(SEM_KEY, 0, 0);
  if (sem >= 0) snprintf(found[2], 64, "value-%d", semctl(sem, 0, GETVAL));
  mqd_t q = mq_open("/left", O_RDONLY | O_NONBLOCK);
  if (q >= 0) { char text[64] = {0}; strcpy(found[3], "there"); if (mq_receive(q, text, 64, NULL) >= 0) snprintf(found[3], 64, "%s", text); }
  int posix = shm_open("/left", O_RDONLY, 0);
  if (posix >= 0) { char text[64] = {0}; read(posix, text, 63); snprintf(shm_open_found, 64, "%s", text); }
  int files = entries("/tmp", "box") + entries("/dev/shm", NULL) + entries("/dev/mqueue", NULL);
  struct shm_info si = {0}; struct msginfo mi = {0}; struct seminfo smi = {0};
  shmctl(0, SHM_INFO, (struct shmid_ds *)&si);
  msgctl(0, MSG_INFO, (struct msqid_ds *)&mi);
  semctl(0, 0, SEM_INFO, &smi);
  printf("shm %s msg %s sem %s mq %s shm_open %s files %d counts %d %d %d\n", found[0], found[1],
         found[2], found[3], shm_open_found, files, si.used_ids, mi.msgpool, smi.semusz);
  return 0;
}
"#;

/// What `look` prints when nothing of an earlier run is left.
const NOTHING_LEFT: &str =
    "shm none msg none sem none mq none shm_open none files 0 counts 0 0 0\n";

#[tokio::test]
async fn no_ipc_object_or_file_outlives_its_test_case_whatever_its_owner() {
    let cases = json!({ "test_cases": [
        { "stdin": "leave CASE-ONE-INPUT" }, { "stdin": "look" },
        { "stdin": "leave CASE-THREE-INPUT" }, { "stdin": "look" },
    ]});
    let view = contained("c", IPC_LEAVE_AND_LOOK, cases).await;
    let cases = view["result"]["test_cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"));
    assert_eq!(cases.len(), 4, "{view}");
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(case["verdict"], "accepted", "case {i}: {view}");
        if i % 2 == 0 {
            // Each object was made, and each System V one given away.
            assert_eq!(case["stdout"], "given 0 0 0\n", "case {i}: {view}");
        } else {
            assert_eq!(case["stdout"], NOTHING_LEFT, "case {i}: {view}");
            // The 64 MiB segment is no longer charged to the container.
            assert!(
                case["memory_peak_bytes"].as_u64().unwrap() < 48 << 20,
                "case {i}'s peak counts the segment left before it: {view}"
            );
        }
    }
}

/// The same objects left by a compilation (a multi-file program's
/// `compile` script) are gone before its run, which under runc runs in the
/// compilation's own container once it was cleared.
#[tokio::test]
async fn no_ipc_object_or_file_outlives_a_compilation_into_its_run() {
    use base64::Engine;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let compile = "gcc -O1 -o ipc ipc.c -lrt && echo 'leave FROM-THE-COMPILER' | ./ipc";
    let run = "echo look | ./ipc";
    let service = TestService::start().await;
    let view = service
        .run_v1(json!({
            "language": "multi-file",
            "files": [
                { "name": "ipc.c", "content": b64(IPC_LEAVE_AND_LOOK) },
                { "name": "compile", "content": b64(compile) },
                { "name": "run", "content": b64(run) },
            ],
            "base64": true,
            "test_cases": [{ "stdin": "" }, { "stdin": "" }],
        }))
        .await;
    let result = &view["result"];
    assert_eq!(result["compile"]["exit_code"], 0, "{view}");
    for case in result["test_cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"))
    {
        assert_eq!(case["verdict"], "accepted", "{view}");
        let stdout = base64::engine::general_purpose::STANDARD
            .decode(case["stdout"].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&stdout), NOTHING_LEFT, "{view}");
    }
    service.stop().await;
}

/// A program that prints its own peak resident set as the kernel it talks
/// to counts it (`getrusage`'s `ru_maxrss`, in KiB) after it touched `mb`
/// megabytes.
fn own_peak_program(mb: u32) -> String {
    format!(
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <sys/resource.h>\nint main(void) {{ size_t n = {mb}u << 20; char *p = n ? malloc(n) : 0; if (n) memset(p, 1, n); struct rusage u; getrusage(RUSAGE_SELF, &u); printf(\"maxrss %ld\\n\", u.ru_maxrss); return n ? p[n - 1] - 1 : 0; }}"
    )
}

/// The memory figure is the program's own under either runtime: after a
/// compilation (whose peak and page cache are the compiler's) and from
/// case to case, a hello world reports its own peak resident set (as its
/// `getrusage` says), within 2 MiB, and a program that touches 150 MB
/// reports that. (Under gVisor the
/// cgroup's anonymous memory is not visible; the figure is the process
/// tree's peak alone.)
#[tokio::test]
async fn the_memory_figure_is_the_programs_own_peak() {
    let service = TestService::start().await;
    for mb in [0, 150] {
        let view = service
            .run_v1(json!({
                "language": "c",
                "code": own_peak_program(mb),
                "test_cases": [{ "stdin": "" }, { "stdin": "" }],
            }))
            .await;
        let cases = view["result"]["test_cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{view}"));
        for case in cases {
            assert_eq!(case["verdict"], "accepted", "{view}");
            let own: u64 = case["stdout"]
                .as_str()
                .and_then(|s| s.trim().strip_prefix("maxrss "))
                .and_then(|v| v.parse::<u64>().ok())
                .map(|kb| kb << 10)
                .unwrap_or_else(|| panic!("no maxrss: {view}"));
            let reported = case["memory_peak_bytes"].as_u64().unwrap();
            assert!(
                reported.abs_diff(own) <= 2 << 20,
                "{mb} MB: reported {} KiB, its own peak {} KiB: {view}",
                reported >> 10,
                own >> 10
            );
            if mb > 0 {
                assert!(reported >= (mb as u64) << 20, "{view}");
            }
        }
    }
    service.stop().await;
}

#[tokio::test]
async fn a_case_that_hits_its_limits_leaves_the_next_case_its_own() {
    // Case 0 burns CPU past its limit, case 1 runs out of memory, case 2
    // must run as if alone, within its limits and figures of its own.
    let code = "import sys\nrole = sys.stdin.read().strip()\nif role == 'burn':\n    while True: pass\nif role == 'eat':\n    b = []\n    while True: b.append(bytearray(1 << 20))\nprint('alone')";
    let cases = json!({ "test_cases": [
        { "stdin": "burn" }, { "stdin": "eat" }, { "stdin": "quiet" },
    ]});
    let view = contained("python", code, cases).await;
    let cases = view["result"]["test_cases"].as_array().expect("test cases");
    assert_eq!(cases[0]["verdict"], "time_limit_exceeded", "{view}");
    assert_ends_as(
        &json!({ "result": cases[1] }),
        &[MLE],
        &[MLE, SandboxStopped],
    );
    assert_eq!(cases[2]["verdict"], "accepted", "{view}");
    assert_eq!(cases[2]["stdout"], "alone\n", "{view}");
    assert!(
        cases[2]["cpu_time_ms"].as_u64().unwrap() < 1_000,
        "case 2's CPU time counts another case's: {view}"
    );
}

// ---- output ----

#[tokio::test]
async fn a_stdout_flood_is_cut_at_the_cap() {
    let view = contained(
        "c",
        "#include <stdio.h>\nint main(void) { for (;;) fputs(\"flood flood flood flood\\n\", stdout); }",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "output_limit_exceeded", "{view}");
    assert_eq!(stdout(&view).len(), 65_536);
}

#[tokio::test]
async fn invalid_utf8_on_stdout_and_stderr() {
    let view = contained(
        "python",
        "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe \\xc3\\x28 end')\nsys.stderr.buffer.write(b'\\x80\\x81')",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), "ok \u{fffd}\u{fffd} \u{fffd}( end");
    assert_eq!(view["result"]["stderr"], "\u{fffd}\u{fffd}");
}

// ---- network, engine, environment, /proc ----

#[tokio::test]
async fn no_network_but_loopback() {
    // Only the container's own interfaces are looked at; the one connection
    // tried is to the container's own loopback.
    let view = contained(
        "python",
        "import socket\nnames = sorted(n for _, n in socket.if_nameindex())\nroutes = open('/proc/net/route').read().splitlines()[1:]\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', 9))\n    loop = 'open'\nexcept OSError:\n    loop = 'refused'\nprint(names, len(routes), loop)",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), "['lo'] 0 refused\n", "{view}");
}

#[tokio::test]
async fn the_docker_socket_and_engine_state_are_absent() {
    let view = contained(
        "python",
        "import os\npaths = ['/var/run/docker.sock', '/run/docker.sock', '/var/lib/docker', '/run/containerd', '/var/run/docker', '/var/lib/containerd', '/etc/docker']\nprint([p for p in paths if os.path.exists(p)])",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert_eq!(stdout(&view), "[]\n", "{view}");
}

#[tokio::test]
async fn the_environment_holds_nothing_of_the_service() {
    let view = contained("python", "import os\nprint(sorted(os.environ))", json!({})).await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    // PATH, HOME, LANG, TMPDIR and the language's own variables, nothing else.
    let table = code_runner::language::LanguageTable::built_in();
    let mut names: Vec<String> = table
        .find("python")
        .unwrap()
        .environment()
        .into_iter()
        .map(|(name, _)| format!("'{name}'"))
        .collect();
    names.sort();
    assert!(names.len() >= 4);
    assert_eq!(stdout(&view), format!("[{}]\n", names.join(", ")), "{view}");
}

#[tokio::test]
async fn proc_1_environ_and_the_monitors_memory_are_closed() {
    let view = contained(
        "python",
        "out = []\nfor path in ['/proc/1/mem', '/proc/1/fd/1']:\n    try:\n        open(path, 'rb').read(1)\n        out.append('read')\n    except OSError as e:\n        out.append('refused')\ntry:\n    env = open('/proc/1/environ', 'rb').read().split(b'\\0')\n    out.append(sorted(v.split(b'=')[0].decode() for v in env if v))\nexcept OSError:\n    out.append('refused')\nprint(out)",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    let out = stdout(&view);
    // The monitor's memory and descriptors are closed to the program.
    assert!(out.starts_with("['refused', 'refused', "), "{view}");
    if under_gvisor() {
        // gVisor shows PID 1's environment: the engine's, with no secret.
        assert!(
            !out.contains("CODE_RUNNER") && !out.contains("SECRET"),
            "{view}"
        );
    } else {
        // runc: the non-dumpable monitor's environment is closed too.
        assert_eq!(out, "['refused', 'refused', 'refused']\n", "{view}");
    }
}

#[tokio::test]
async fn proc_kcore_and_proc_keys_give_nothing() {
    let view = contained(
        "python",
        "out = []\nfor path in ['/proc/kcore', '/proc/keys', '/proc/sysrq-trigger', '/proc/timer_list']:\n    try:\n        data = open(path, 'rb').read(4096)\n        out.append(len(data))\n    except OSError as e:\n        out.append(type(e).__name__)\nprint(out)",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    let out = stdout(&view);
    // Each is masked (empty), absent or refused; never kernel memory or keys.
    for part in out.trim().trim_matches(['[', ']']).split(", ") {
        assert!(
            part == "0" || part.ends_with("Error'") || part.ends_with("Error"),
            "{part} in {out}"
        );
    }
}

// ---- syscalls and privileges ----

#[tokio::test]
async fn mount_is_refused() {
    let code = c_syscall(
        "mkdir(\"/tmp/m\", 0700);\nint r = mount(\"none\", \"/tmp/m\", \"tmpfs\", 0, 0);\nprintf(\"%d %s\\n\", r, strerror(errno));",
    )
    .replace("#include <sched.h>", "#include <sched.h>\n#include <sys/stat.h>");
    let view = contained("c", &code, json!({})).await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert!(stdout(&view).starts_with("-1 "), "{view}");
}

#[tokio::test]
async fn unshare_gains_nothing() {
    let code = c_syscall(
        "int r = unshare(CLONE_NEWNS);\nprintf(\"ns %d %s\\n\", r, r ? strerror(errno) : \"\");\nint u = unshare(CLONE_NEWUSER);\nprintf(\"user %d uid %d\\n\", u, (int)getuid());",
    );
    let view = contained("c", &code, json!({})).await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    let out = stdout(&view);
    if under_gvisor() {
        // gVisor's own kernel allows new namespaces; they live inside the
        // sandbox and grant nothing outside it. In a new user namespace
        // with no mapping the job's uid reads as the overflow uid.
        assert!(out.ends_with("uid 65534\n"), "{view}");
    } else {
        // Docker's seccomp profile refuses both.
        assert!(
            out.starts_with("ns -1 ") && out.contains("user -1"),
            "{view}"
        );
    }
}

#[tokio::test]
async fn ptrace_of_the_monitor_is_refused() {
    let code = c_syscall(
        "long r = ptrace(PTRACE_ATTACH, 1, 0, 0);\nprintf(\"%ld %s\\n\", r, strerror(errno));",
    );
    let view = contained("c", &code, json!({})).await;
    assert_eq!(verdict(&view), "accepted", "{view}");
    assert!(stdout(&view).starts_with("-1 "), "{view}");
}

// ---- the monitor is out of reach: another uid ----

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

// ---- symlinks (the Judge0 escapes) ----

#[tokio::test]
async fn symlinks_planted_in_the_work_dir_lead_nowhere_on_the_host() {
    let view = contained(
        "bash",
        &format!(
            "cd /tmp/box\nln -s /etc/shadow shadow\nln -s {SENTINEL} sentinel\nln -s /var/run/docker.sock docker.sock\nln -s / root\nln -s /proc/1/fd/1 monitor-stdout\necho overwritten > sentinel 2>/dev/null\necho forged > monitor-stdout 2>/dev/null\ncat shadow 2>/dev/null || echo no-shadow"
        ),
        json!({}),
    )
    .await;
    // The host sentinel is untouched (checked in `contained`). Under runc
    // the write to the monitor's stdout is refused; under gVisor it lands
    // in the stream, where it cannot carry the task's nonce: the service
    // sees the tampering and the job ends as a runtime error.
    assert_ends_as(&view, &[ACCEPTED], &[ACCEPTED, SandboxStopped]);
    if verdict(&view) == "accepted" {
        assert_eq!(stdout(&view), "no-shadow\n", "{view}");
    }
}

#[tokio::test]
async fn symlinks_left_by_a_compilation_are_not_carried_into_the_run() {
    // A language whose "compiler" is a shell script the job controls: the
    // files it leaves are what the monitor sends back for the runs.
    let table = std::env::temp_dir().join(format!("hostile-languages-{}.toml", std::process::id()));
    std::fs::write(
        &table,
        format!(
            "{}\n[[language]]\nid = \"bash-build\"\nname = \"Bash, compiled\"\nversion = \"5\"\nimage = \"bash\"\nsource_file = \"build.sh\"\nextensions = [\"sh\"]\ncompile = [\"bash\", \"build.sh\"]\nrun = [\"bash\", \"run.sh\"]\n",
            include_str!("../../docker/languages.toml")
        ),
    )
    .unwrap();
    let service = TestService::start_with(|c| c.languages_file = Some(table.clone())).await;
    let view = service
        .run_v1(json!({
            "language": "bash-build",
            "files": [
                { "name": "build.sh", "content": format!("ln -s /etc/shadow shadow\nln -s {SENTINEL} sentinel\nln -s / root\necho built > artifact") },
                { "name": "run.sh", "content": "cd /tmp/box\necho *\nfind . -type l | wc -l" },
            ],
        }))
        .await;
    assert_eq!(view["result"]["verdict"], "accepted", "{view}");
    assert_eq!(
        view["result"]["stdout"], "artifact build.sh run.sh\n0\n",
        "{view}"
    );
    service.stop().await;
    let _ = std::fs::remove_file(table);
}

// ---- compile-time attacks ----

#[tokio::test]
async fn including_etc_shadow_is_a_compilation_error_that_leaks_nothing() {
    let view = contained(
        "c",
        "#include \"/etc/shadow\"\nint main(void) { return 0; }",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&view), "compilation_error", "{view}");
    let output = view["result"]["compile_output"].as_str().unwrap();
    assert!(!output.contains("root:"), "{output}");
}

#[tokio::test]
async fn including_dev_urandom_ends_as_a_compilation_error() {
    let view = contained(
        "c",
        "#include </dev/urandom>\nint main(void) { return 0; }",
        json!({ "limits": { "compile_wall_time_ms": 3000 } }),
    )
    .await;
    assert_eq!(verdict(&view), "compilation_error", "{view}");
}

#[tokio::test]
async fn a_compilation_that_never_ends_is_stopped() {
    let bomb = "#define A x x x x x x x x x x\n#define B A A A A A A A A A A\n#define C B B B B B B B B B B\n#define D C C C C C C C C C C\n#define E D D D D D D D D D D\n#define F E E E E E E E E E E\n#define G F F F F F F F F F F\n#define H G G G G G G G G G G\nint main(void) { H H H H H H H H H H; return 0; }";
    let started = std::time::Instant::now();
    let view = contained(
        "c",
        bomb,
        json!({ "limits": { "compile_wall_time_ms": 3000 } }),
    )
    .await;
    assert_eq!(verdict(&view), "compilation_error", "{view}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

// ---- the service itself ----

#[tokio::test]
async fn a_job_outliving_a_killed_service_has_its_container_reaped_on_restart() {
    let queue = helpers::unique_queue();
    let client = reqwest::Client::new();
    let port = helpers::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [("CODE_RUNNER_LOCK_DURATION_MS", "3000".to_string())];
    let mut first = helpers::start_service(&queue, port, &env);
    helpers::wait_ready(&client, &url).await;
    let id = helpers::submit_to(
        &client,
        &url,
        json!({ "language": "python", "code": "import time\ntime.sleep(4)\nprint('ran to the end')" }),
    )
    .await;
    let sandbox = code_runner::sandbox::Sandbox::connect(code_runner::sandbox::SandboxSettings {
        image_prefix: "code-runner".into(),
        runtime: None,
        worker_id: "observer".into(),
        queue: "none".into(),
        deployment: "none".into(),
        overrides: serde_json::Map::new(),
    })
    .await
    .unwrap();
    let job_containers = || async {
        sandbox
            .list_managed(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.job_id == id)
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while job_containers().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL: the service gets no chance to clean up.
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        job_containers().await,
        1,
        "the job's container outlived the service"
    );

    let second = helpers::start_service(&queue, port, &env);
    helpers::wait_ready(&client, &url).await;
    // The restarted worker (same data directory, same id) removed it at start.
    assert_eq!(
        job_containers().await,
        0,
        "the orphan was not reaped on restart"
    );
    // The job itself is taken over once its lock expires, and completes.
    let view = helpers::wait_done(&client, &url, &id, Duration::from_secs(90)).await;
    assert_eq!(view["state"], "completed", "{view}");
    assert_eq!(view["result"]["stdout"], "ran to the end");
    let status = helpers::terminate(second);
    assert!(status.success());
}
