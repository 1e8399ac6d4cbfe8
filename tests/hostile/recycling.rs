//! Recycled containers (`CODE_RUNNER_RECYCLE`): a job's container serves
//! the next job only once its monitor restored it and checked it fit, and
//! then nothing of the job before reaches the next. Each test runs pairs
//! of jobs and asserts that the second ran in the first's container (by the
//! container ids in their timelines) and found nothing, whatever the first
//! left or hit; or, where the first made its container unfit (the OOM
//! killer), that the container is gone and the next job got another.

use super::cases::{IPC_LEAVE_AND_LOOK, LEAVE_AND_LOOK, NOTHING_LEFT};
use super::*;

use helpers::run_containers_of;

use code_runner::http::auth::new_key;
use code_runner::sandbox::pool::Recycle;

async fn recycling_service(
    mode: Recycle,
    adjust: impl FnOnce(&mut code_runner::config::Config),
) -> TestService {
    TestService::start_with(|c| {
        c.recycle = mode;
        c.wall_time_limit_ms = 3_000;
        c.cpu_time_limit_ms = 2_000;
        adjust(c);
    })
    .await
}

/// Runs `body`, then waits until its container is back in the pool
/// (`true`) or removed (`false`).
async fn run_and_let_go(service: &TestService, body: Value) -> (Value, String, bool) {
    let view = service.run_v1(body).await;
    assert_eq!(view["state"], "completed", "{view}");
    let used = containers_of(&view)
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no container: {view}"));
    let recycled = service.recycled_or_gone(&used).await;
    (view, used, recycled)
}

/// The second of a pair ran its program in the first's container.
fn assert_same_container(used: &str, next: &Value) {
    assert_eq!(
        run_containers_of(next).first().map(String::as_str),
        Some(used),
        "the next job did not run in the recycled container: {next}"
    );
}

/// The canary of `language` (see `recycled_canary`), with `limits`, runs
/// in `used` and finds nothing.
async fn assert_next_finds_nothing(
    service: &TestService,
    language: &str,
    limits: &Value,
    used: &str,
) {
    let mut canary = json!({ "language": language, "code": recycled_canary(language) });
    if !limits.is_null() {
        canary["limits"] = limits.clone();
    }
    let next = service.run_v1(canary).await;
    assert_eq!(next["result"]["verdict"], "accepted", "next job: {next}");
    assert_eq!(next["result"]["stdout"], "clean\n", "next job: {next}");
    assert_same_container(used, &next);
}

#[tokio::test]
async fn no_object_a_job_leaves_reaches_the_next_job_in_its_container() {
    let service = recycling_service(Recycle::All, |_| {}).await;
    // Every kind of object outside a process, System V ones given away.
    let (left, used, recycled) = run_and_let_go(
        &service,
        json!({ "language": "c", "code": IPC_LEAVE_AND_LOOK, "stdin": "leave JOB-ONE-SECRET" }),
    )
    .await;
    assert_eq!(left["result"]["stdout"], "given 0 0 0\n", "{left}");
    // gVisor shows no `/proc/sysvipc`: the monitor cannot find the objects
    // given away to remove them, its check counts them, and the container
    // is removed rather than recycled.
    assert!(
        recycled || under_gvisor(),
        "the container was not recycled: {left}"
    );
    let look = service
        .run_v1(json!({ "language": "c", "code": IPC_LEAVE_AND_LOOK, "stdin": "look" }))
        .await;
    if recycled {
        assert_same_container(&used, &look);
    } else {
        assert_ne!(run_containers_of(&look).first(), Some(&used), "{look}");
    }
    assert_eq!(look["result"]["stdout"], NOTHING_LEFT, "{look}");
    // The 64 MiB segment is no longer charged to the container.
    assert!(
        look["result"]["memory_peak_bytes"].as_u64().unwrap() < 48 << 20,
        "the next job's peak counts the segment left before it: {look}"
    );

    // A process that outlives the job and burns CPU, files everywhere,
    // 150 MB touched.
    let (left, used, recycled) = run_and_let_go(
        &service,
        json!({ "language": "c", "code": LEAVE_AND_LOOK, "stdin": "leave" }),
    )
    .await;
    assert_eq!(left["result"]["stdout"], "left 1 1 1\n", "{left}");
    // (Its System V objects, under gVisor, as above.)
    assert!(
        recycled || under_gvisor(),
        "the container was not recycled: {left}"
    );
    let look = service
        .run_v1(json!({ "language": "c", "code": LEAVE_AND_LOOK, "stdin": "look" }))
        .await;
    if recycled {
        assert_same_container(&used, &look);
    } else {
        assert_ne!(run_containers_of(&look).first(), Some(&used), "{look}");
    }
    assert_eq!(
        look["result"]["stdout"], "processes 0 files 0 ipc 0\n",
        "{look}"
    );
    let result = &look["result"];
    assert!(
        result["memory_peak_bytes"].as_u64().unwrap() < 100 << 20,
        "the next job's peak counts the 150 MB before it: {look}"
    );
    assert!(
        result["cpu_time_ms"].as_u64().unwrap() < 1_000,
        "the next job's CPU time counts the burner left before it: {look}"
    );
    service.stop().await;
}

#[tokio::test]
async fn a_job_that_met_a_limit_leaves_a_container_fit_for_the_next() {
    let service = recycling_service(Recycle::All, |_| {}).await;
    let limits = json!({ "processes": 16, "output_bytes": 65_536 });
    let programs = [
        ("cpu", "while True: pass"),
        ("wall", "import time\ntime.sleep(60)"),
        (
            "output",
            "import sys\nwhile True: sys.stdout.write('x' * 4096)",
        ),
        (
            "processes",
            "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    print('forked', n)",
        ),
        (
            "tmpfs and shm",
            "for path in ('/tmp/fill', '/dev/shm/fill'):\n    with open(path, 'wb') as f: f.write(b'x' * (24 << 20))\nprint('filled')",
        ),
    ];
    for (what, code) in programs {
        let (view, used, recycled) = run_and_let_go(
            &service,
            json!({ "language": "python", "code": code, "limits": limits }),
        )
        .await;
        assert!(recycled, "{what}: the container was not recycled: {view}");
        assert_next_finds_nothing(&service, "python", &limits, &used).await;
    }
    service.stop().await;
}

#[tokio::test]
async fn a_container_whose_job_met_the_oom_killer_serves_no_other() {
    let service = recycling_service(Recycle::All, |_| {}).await;
    let limits = json!({ "memory_mb": 64 });
    let (view, used, recycled) = run_and_let_go(
        &service,
        json!({ "language": "python", "code": "x = []\nwhile True: x.append(bytearray(1 << 20))", "limits": limits }),
    )
    .await;
    assert_ends_as(
        &view,
        &[Verdict("memory_limit_exceeded")],
        &[Verdict("memory_limit_exceeded"), SandboxStopped],
    );
    assert!(!recycled, "an OOM-killed job's container was kept: {view}");
    let next = service
        .run_v1(
            json!({ "language": "python", "code": recycled_canary("python"), "limits": limits }),
        )
        .await;
    assert_eq!(next["result"]["stdout"], "clean\n", "{next}");
    assert_ne!(run_containers_of(&next).first(), Some(&used), "{next}");
    service.stop().await;
}

#[tokio::test]
async fn what_a_job_sets_for_itself_or_plants_does_not_reach_the_next() {
    let service = recycling_service(Recycle::All, |_| {}).await;
    // What a job's process sees of its own settings, as a fresh container
    // gives them.
    let settings = "ulimit -n; ulimit -s; ulimit -u; ulimit -f; umask; pwd; ls -A; env | sort";
    let (fresh, _, recycled) =
        run_and_let_go(&service, json!({ "language": "bash", "code": settings })).await;
    assert!(recycled, "{fresh}");
    // A job that changes its own limits, umask and directory, plants files
    // named like the next job's source where it may, and leaves its work
    // directory unwritable.
    let meddle = "ulimit -n 64; ulimit -s 1024; ulimit -f 100; umask 077; cd /; \
        echo 'echo planted' > /tmp/box/main.sh; echo 'echo planted' > /tmp/main.sh; \
        echo 'echo planted' > /dev/shm/main.sh; mkdir /tmp/box/sub; chmod 500 /tmp/box; \
        ln -s /etc/passwd /tmp/link; echo meddled";
    let (meddled, used, recycled) =
        run_and_let_go(&service, json!({ "language": "bash", "code": meddle })).await;
    assert_eq!(meddled["result"]["stdout"], "meddled\n", "{meddled}");
    assert!(recycled, "{meddled}");
    let next = service
        .run_v1(json!({ "language": "bash", "code": settings }))
        .await;
    assert_same_container(&used, &next);
    assert_eq!(
        next["result"]["stdout"], fresh["result"]["stdout"],
        "the next job's own settings differ from a fresh container's: {next}"
    );
    service.stop().await;
}

#[tokio::test]
async fn processes_racing_the_restore_do_not_outlive_it() {
    let service = recycling_service(Recycle::All, |_| {}).await;
    // Session leaders that ignore SIGTERM and fork without end, a stopped
    // process, a zombie, each left behind as the job exits.
    let race = "import os, signal\n\
        for i in range(3):\n\
        \x20   if os.fork() == 0:\n\
        \x20       os.setsid()\n\
        \x20       signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
        \x20       signal.signal(signal.SIGHUP, signal.SIG_IGN)\n\
        \x20       while True:\n\
        \x20           try:\n\
        \x20               if os.fork() == 0:\n\
        \x20                   os._exit(0)\n\
        \x20           except OSError:\n\
        \x20               pass\n\
        if os.fork() == 0:\n\
        \x20   os.kill(os.getpid(), signal.SIGSTOP)\n\
        if os.fork() == 0:\n\
        \x20   os._exit(0)\n\
        print('raced')";
    let limits = json!({ "processes": 32 });
    let (view, used, recycled) = run_and_let_go(
        &service,
        json!({ "language": "python", "code": race, "limits": limits }),
    )
    .await;
    assert_eq!(view["result"]["stdout"], "raced\n", "{view}");
    assert!(recycled, "the container was not recycled: {view}");
    assert_next_finds_nothing(&service, "python", &limits, &used).await;
    service.stop().await;
}

#[tokio::test]
async fn per_caller_recycling_never_hands_one_callers_container_to_another() {
    let ((alice, alice_entry), (bob, bob_entry)) = (new_key("alice"), new_key("bob"));
    let mut service = recycling_service(Recycle::PerCaller, |c| {
        c.api_keys = Some(format!("{alice_entry},{bob_entry}"));
    })
    .await;
    let job = json!({ "language": "python", "code": "print('hi')" });
    service.bearer = Some(alice.clone());
    let (first, alices, recycled) = run_and_let_go(&service, job.clone()).await;
    assert!(recycled, "{first}");
    service.bearer = Some(bob.clone());
    let (bobs_job, bobs, _) = run_and_let_go(&service, job.clone()).await;
    assert_eq!(bobs_job["result"]["stdout"], "hi\n", "{bobs_job}");
    assert_ne!(alices, bobs, "Bob's job ran in Alice's container");
    service.bearer = Some(alice);
    let again = service.run_v1(job.clone()).await;
    assert_same_container(&alices, &again);
    service.bearer = Some(bob);
    let again = service.run_v1(job).await;
    assert_same_container(&bobs, &again);
    service.stop().await;
}

/// The containers a job's steps in `phase` ran in (from its timeline).
fn phase_containers(view: &Value, phase: &str) -> Vec<String> {
    view["result"]["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event["phase"] == phase)
        .filter_map(|event| event["container_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_checkers_container_is_recycled_and_the_next_job_finds_nothing_of_it() {
    let service = recycling_service(Recycle::All, |_| {}).await;
    let canary = recycled_canary("python");
    // The checker plants files everywhere it may write and leaves a
    // process of its own session behind, then accepts.
    let planting = "import os, subprocess\n\
        for p in ('/tmp/planted', '/tmp/box/planted', '/dev/shm/planted'):\n\
        \x20   open(p, 'w').write('x')\n\
        subprocess.Popen(['sleep', '1000'], start_new_session=True)\n";
    let first = service
        .run_v1(json!({ "language": "python", "code": canary,
            "checker": { "language": "python", "code": planting },
            "test_cases": [{ "stdin": "" }] }))
        .await;
    assert_eq!(first["result"]["verdict"], "accepted", "{first}");
    let checked = phase_containers(&first, "checking");
    let checker = checked
        .last()
        .unwrap_or_else(|| panic!("no checking container: {first}"));
    assert!(
        service.recycled_or_gone(checker).await,
        "the checker's container was not recycled: {first}"
    );
    // The next job's program and checker both look (whichever of them
    // gets the checker's container); the checker also reads what the
    // program saw.
    let looking = "import os, sys\nme = os.getpid()\n\
        left = [f for f in os.listdir('/tmp') if f != 'box']\n\
        left += [f for f in os.listdir('/tmp/box') if 'planted' in f]\n\
        left += os.listdir('/dev/shm')\n\
        left += ['pid ' + p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, me)]\n\
        seen = open(sys.argv[2]).read().strip()\n\
        if left or seen != 'clean':\n\
        \x20   print(f'checker found {left}, program found {seen}', file=sys.stderr)\n\
        \x20   sys.exit(1)\n";
    let next = service
        .run_v1(json!({ "language": "python", "code": canary,
            "checker": { "language": "python", "code": looking },
            "test_cases": [{ "stdin": "" }] }))
        .await;
    assert_eq!(next["result"]["verdict"], "accepted", "{next}");
    assert!(
        containers_of(&next).contains(checker),
        "the next job did not run in the checker's recycled container: {next}"
    );
    service.stop().await;
}

#[tokio::test]
async fn an_interactions_containers_are_recycled_and_the_next_jobs_find_nothing_of_them() {
    // One slot: both containers of an interaction are pinned to its CPU, so
    // that the next interaction may take both.
    let service = recycling_service(Recycle::All, |c| {
        c.wall_time_limit_ms = 10_000;
        c.concurrency = 1;
    })
    .await;
    // Both sides plant files and leave a process behind; the interactor
    // sends more than the solution reads, and the solution writes lines
    // after the interactor stopped reading: input still in flight when
    // the interaction ends must not reach a later job.
    let plant = "import os, subprocess\n\
        for p in ('/tmp/planted', '/dev/shm/planted'):\n\
        \x20   open(p, 'w').write('x')\n\
        subprocess.Popen(['sleep', '1000'], start_new_session=True)\n";
    let interactor = format!(
        "{plant}import sys\n\
         for i in range(3):\n\
         \x20   print(f'ping {{i}}', flush=True)\n\
         \x20   assert sys.stdin.readline().strip() == f'pong {{i}}'\n\
         print('spare line ' * 1000, flush=True)\n\
         print('ok three round trips', file=sys.stderr)\n"
    );
    let solution = format!(
        "{plant}import sys\n\
         for i in range(3):\n\
         \x20   assert input() == f'ping {{i}}'\n\
         \x20   print(f'pong {{i}}', flush=True)\n\
         for _ in range(100):\n\
         \x20   try: print('late line', flush=True)\n\
         \x20   except BrokenPipeError: break\n"
    );
    let first = service
        .run_v1(json!({ "language": "python", "code": solution,
            "interactor": { "language": "python", "code": interactor },
            "test_cases": [{ "stdin": "" }] }))
        .await;
    assert_eq!(first["result"]["verdict"], "accepted", "{first}");
    // Both containers (the interactor's is not in the job's timeline) wait
    // in the pool, restored.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let recycled: Vec<String> = loop {
        let stats = service.pool_stats().await;
        let waiting: Vec<String> = stats["recycledContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["container"].as_str().map(str::to_string))
            .collect();
        if waiting.len() >= 2 {
            break waiting;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the interaction's containers were not both recycled: {stats} ({first})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The next interaction takes both (its solution the newest, its
    // interactor the other), and each side finds nothing.
    let look = "import os\n\
        def look():\n\
        \x20   me = os.getpid()\n\
        \x20   left = [f for f in os.listdir('/tmp') if f != 'box'] + os.listdir('/dev/shm')\n\
        \x20   left += ['pid ' + p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, me)]\n\
        \x20   return 'clean' if not left else ' '.join(left)\n";
    let judging = format!(
        "{look}import sys\n\
         mine = look()\n\
         print('ping', flush=True)\n\
         theirs = sys.stdin.readline().strip()\n\
         if mine != 'clean' or theirs != 'clean':\n\
         \x20   print(f'interactor found {{mine}}, solution found {{theirs}}', file=sys.stderr)\n\
         \x20   sys.exit(1)\n\
         print('ok both clean', file=sys.stderr)\n"
    );
    let next = service
        .run_v1(json!({ "language": "python", "code": format!("{look}input()\nprint(look(), flush=True)\n"),
            "interactor": { "language": "python", "code": judging },
            "test_cases": [{ "stdin": "" }] }))
        .await;
    assert_eq!(next["result"]["verdict"], "accepted", "next job: {next}");
    // Both served their second job, and went back again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = service.pool_stats().await;
        let twice: Vec<&str> = stats["recycledContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["jobsServed"] == 2)
            .filter_map(|c| c["container"].as_str())
            .collect();
        if recycled.iter().all(|short| twice.contains(&short.as_str())) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the next interaction did not run in both recycled containers: {stats} ({next})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service.stop().await;
}
