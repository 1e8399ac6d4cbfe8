//! Output, network, the engine, the environment, /proc, syscalls and privileges.

use super::*;

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
