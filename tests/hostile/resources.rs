//! Memory, CPU, time, disk and files: every limit stops the program, never the host.

use super::*;

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
