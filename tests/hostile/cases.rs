//! One container, many test cases: nothing of one case (or of a compilation) reaches the next.

use super::*;

/// A C program with two roles, chosen by its input: `leave` leaves every
/// trace a case can (a process that outlives it and burns CPU, files in
/// /tmp, in the work directory and in /dev/shm, System V shared memory and
/// a message queue, 150 MB touched just before it exits); `look` counts
/// what it finds of them.
pub(crate) const LEAVE_AND_LOOK: &str = r#"#define _GNU_SOURCE
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
    // CPU time is not what this test is about, and gVisor charges a task
    // for the ticks it is in a running state, whether or not the host runs
    // it: on a busy host sixteen
    // forks were once charged 2.2 s in 446 ms of wall time.
    let limits = json!({ "memory_mb": 64, "processes": 16, "cpu_time_ms": 10_000 });
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
pub(crate) const IPC_LEAVE_AND_LOOK: &str = r#"#define _GNU_SOURCE
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
pub(crate) const NOTHING_LEFT: &str =
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
