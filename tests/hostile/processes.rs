//! Processes and threads: fork and thread bombs, a processes limit of the container's own, signals at the monitor.

use super::*;

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
