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

use helpers::{TestService, containers_of, recycling, run_containers_of, under_gvisor};

mod cases;
mod escapes;
mod isolation;
mod monitor;
mod processes;
mod recycling;
mod resources;

/// The uid a lone job's programs run as: the worker's first slot
/// (`CODE_RUNNER_SANDBOX_UID_BASE`, 60000 by default).
const JOB_UID: &str = "60000";

/// A host file that symlink attacks aim at; it must never change.
const SENTINEL: &str = "/tmp/code-runner-hostile-sentinel";
const SENTINEL_TEXT: &str = "untouched by any job\n";

/// Runs the next job on the same worker: it must find nothing of the
/// previous one.
const CANARY: &str = "import os\nleft = [f for f in os.listdir('/tmp') if f != 'box']\nleft += [f for f in os.listdir('/tmp/box') if f != 'main.py']\nleft += os.listdir('/dev/shm')\nprint('clean' if not left else left)";

/// With recycling on, the next job of the hostile job's own language and
/// limits, which runs in its container when its monitor restored it: no
/// process but itself and the monitor, nothing in `/tmp` but the work
/// directory, nothing in `/dev/shm` or `/dev/mqueue`, no System V object
/// (where `/proc/sysvipc` shows them; the monitor checks the kernel's
/// counts itself). Each prints `clean`, or what it found.
fn recycled_canary(language: &str) -> &'static str {
    match language {
        "python" => {
            "import os\nme = os.getpid()\nleft = [f for f in os.listdir('/tmp') if f != 'box']\n\
             left += [f for f in os.listdir('/tmp/box') if f != 'main.py']\n\
             left += os.listdir('/dev/shm')\n\
             left += os.listdir('/dev/mqueue') if os.path.isdir('/dev/mqueue') else []\n\
             left += ['pid ' + p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, me)]\n\
             for t in ('shm', 'msg', 'sem'):\n\
             \x20   try: left += [t + ' ' + l.split()[1] for l in open('/proc/sysvipc/' + t).read().splitlines()[1:]]\n\
             \x20   except OSError: pass\n\
             print('clean' if not left else left)"
        }
        "bash" => {
            "left=$(ls -A /tmp | grep -vx box; ls -A /tmp/box | grep -vx main.sh; ls -A /dev/shm; \
             ls -A /dev/mqueue 2>/dev/null; for p in /proc/[0-9]*; do p=${p#/proc/}; \
             [ \"$p\" = 1 ] || [ \"$p\" = $$ ] || [ \"$p\" = \"$BASHPID\" ] || echo \"pid $p\"; done)\n\
             if [ -z \"$left\" ]; then echo clean; else echo $left; fi"
        }
        _ => {
            "#include <dirent.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n\
             static int left = 0;\n\
             static void look(const char *dir, const char *keep) {\n\
               DIR *d = opendir(dir); struct dirent *e; if (!d) return;\n\
               while ((e = readdir(d))) if (e->d_name[0] != '.' && (!keep || strcmp(e->d_name, keep))) { printf(\"%s/%s \", dir, e->d_name); left++; }\n\
               closedir(d);\n\
             }\n\
             int main(void) {\n\
               look(\"/tmp\", \"box\"); look(\"/dev/shm\", 0); look(\"/dev/mqueue\", 0);\n\
               DIR *d = opendir(\"/proc\"); struct dirent *e;\n\
               while ((e = readdir(d))) { int pid = atoi(e->d_name); if (pid > 1 && pid != getpid()) { printf(\"pid %d \", pid); left++; } }\n\
               closedir(d);\n\
               puts(left ? \"\" : \"clean\");\n\
               return 0;\n\
             }\n"
        }
    }
}

/// Runs one hostile job, in a warm pool container (with recycling on, in
/// the container a harmless job of its language just left), and checks
/// that nothing outlived it.
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
    if recycling() {
        service.wait_recycled(language).await;
    } else {
        service.wait_pool_warm(language).await;
    }
    let hits = service.pool_stats().await["hits"].as_u64().unwrap();
    let view = service.run_v1(body.clone()).await;
    assert_eq!(view["state"], "completed", "{view}");
    let now = service.pool_stats().await["hits"].as_u64().unwrap();
    assert!(
        now > hits,
        "the hostile job did not run in a warm container"
    );
    if recycling() {
        // The warm-up's container, recycled, took the hostile job's
        // program (or under runc its compilation, which shares it); under
        // gVisor a compilation has a container of its own, never recycled.
        let warm = containers_of(&warmed).last().cloned();
        let ran = run_containers_of(&view);
        if !(under_gvisor() && ran.is_empty()) {
            let took = if under_gvisor() {
                ran.first().cloned()
            } else {
                containers_of(&view).first().cloned()
            };
            assert_eq!(
                took, warm,
                "the hostile job did not run in the warm-up's recycled container: {view}"
            );
        }
    }

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
    if recycling() {
        // In the hostile job's own container, unless its monitor could not
        // restore it (then the container is gone).
        let used = containers_of(&view).last().cloned().expect("a container");
        let recycled = service.recycled_or_gone(&used).await;
        let mut canary = json!({ "language": language, "code": recycled_canary(language) });
        if let Some(limits) = body.get("limits") {
            canary["limits"] = limits.clone();
        }
        let next = service.run_v1(canary).await;
        assert_eq!(next["result"]["verdict"], "accepted", "next job: {next}");
        assert_eq!(next["result"]["stdout"], "clean\n", "next job: {next}");
        if recycled {
            // Its run, or its compilation when the hostile job's last
            // container was a compilation's own (under gVisor).
            assert!(
                containers_of(&next).contains(&used),
                "the next job did not get the recycled container: {next}"
            );
        } else {
            eprintln!(
                "hostile: the container of {} was not recycled (verdict {})",
                view["id"],
                verdict(&view)
            );
        }
    } else {
        let next = service
            .run_v1(json!({ "language": "python", "code": CANARY }))
            .await;
        assert_eq!(next["result"]["verdict"], "accepted", "next job: {next}");
        assert_eq!(next["result"]["stdout"], "clean\n", "next job: {next}");
    }
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
