#!/usr/bin/env python3
"""The benchmark: every figure of BENCHMARKS.md, measured in one run.

    loadtest/bench.sh            (builds the release binaries, then this)

Runs against its own Redis (port 6390, no persistence) and its own service
processes on 127.0.0.1:3100/3101, so a running `make run` is not disturbed.
Measures, on this machine, in this order:

  1. raw `docker run` of a Python hello world (median of several);
  2. the engine's own limit: bare create-start-wait-remove cycles through
     the Engine API (target/release/engine-cycles), 1 and 4 at a time; then
     one engine setting at a time (the network sandbox, the log driver, how
     the end is learnt, how the container is removed, each group of the
     sandbox's own settings), each with the CPU a lifecycle costs, and the
     lifecycle alone (`true` as the program);
  3. the service (`serve`, cap 4) with the warm pool off, then on: a lone
     job's latency, 100 jobs one at a time, 100 and 1,000 jobs at the cap;
     its RSS at idle and after the 1,000 jobs;
  4. `POST /run` with wrk against an `api` process (no workers: jobs only
     queue), and `GET /status/{id}` / `GET /v1/jobs/{id}` with an empty
     queue and with 50,000 jobs waiting;
  5. test cases (issue 19): a C++ job of 1 and of 20 test cases, one
     after another and 20-case jobs at the cap, with a container per case
     (CODE_RUNNER_CASES_SHARE_CONTAINER=false, as before) and with one
     container per job (the default);
  6. the ceiling (issue 19): from the CPU per lifecycle and the jobs' own
     CPU, the jobs per second the machine's cores allow; the cap raised
     (2, 3, 4, 5, 6, 8) until throughput stops rising, each as a share of the
     ceiling; the pool's refill parallelism (1, 2, 4); the proof of
     concept's own workload (100 jobs, 16 at a time, `GET /status` every
     200 ms);
  7. live runs: one `api` process and two `worker` processes (cap 25
     each), 50 interactive sessions at once over WebSockets, each echoing
     100 lines (`loadtest --interactive 50 --lines 100`): each line's round
     trip, next to batch jobs run meanwhile;
  8. recycled containers (issue 33): `serve` on its defaults with
     CODE_RUNNER_RECYCLE off and per-caller (the default), under runc and (when the engine has
     it) gVisor: a lone job, hello worlds at the cap and the CPU they cost
     against the job-CPU ceiling, the 20-case C++ job, an idle recycled
     container's memory, the RSS after 10,000 recycled jobs.
     BENCH_ONLY=recycle runs this step alone and prints it (no report).

Prints each figure and writes BENCHMARKS.md. Speed is reported, never
asserted; a lost or wrong job in any run fails the benchmark.
"""
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
REDIS_PORT = 6390
API = "127.0.0.1:3100"
ADMIN = "127.0.0.1:3101"
CAP = 4
QUICK = os.environ.get("BENCH_QUICK") == "1"  # smaller runs, for trying the script
N_SMALL = 20 if QUICK else 100
N_LARGE = 100 if QUICK else 1000
N_WAITING = 5000 if QUICK else 50000
WRK_SECONDS = 3 if QUICK else 10

figures = {}
work = Path(tempfile.mkdtemp(prefix="code-runner-bench-"))


def say(text):
    print(f"bench: {text}", flush=True)


def sh(command):
    return subprocess.run(command, shell=True, capture_output=True, text=True).stdout.strip()


def machine():
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "docker": sh("docker version --format '{{.Server.Version}}'"),
        "storage_driver": sh("docker info --format '{{.Driver}}'"),
        "cgroup": sh("docker info --format '{{.CgroupVersion}}'"),
        "runtime": sh("docker info --format '{{.DefaultRuntime}}'"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def raw_docker_run(runs):
    def once(network):
        started = time.monotonic()
        subprocess.run(
            ["docker", "run", "--rm", *network, "--entrypoint", "python3",
             "code-runner/python:latest", "-c", "print(1)"],
            check=True, capture_output=True,
        )
        return (time.monotonic() - started) * 1000

    once([])  # page cache
    result = {}
    for name, network in (("none", ["--network", "none"]), ("bridge", [])):
        times = [once(network) for _ in range(runs)]
        result[name] = {"median_ms": statistics.median(times), "min_ms": min(times), "runs": runs}
        say(f"raw docker run ({name} network): median {result[name]['median_ms']:.0f} ms")
    return result


def engine_cycles(parallel, cycles):
    out = subprocess.run(
        [BIN / "engine-cycles", "--cycles", str(cycles), "--parallel", str(parallel), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    figure = json.loads(out)
    say(f"engine: {cycles} bare cycles, {parallel} at a time: {figure['cycles_per_second']:.2f}/s")
    return figure


ENGINE_KNOBS = [
    ("default", "as the service's containers: no network sandbox; json-file log, `wait` call, forced remove", []),
    ("network_sandbox", "a network sandbox (`NetworkDisabled` off; Docker's default with `--network none`)",
     ["--network-disabled", "false"]),
    ("log_none", "log driver `none`", ["--log-driver", "none"]),
    ("end_attach", "the end read from the attach stream (no `wait` call)", ["--end", "attach"]),
    ("remove_kill", "kill, then remove (two calls)", ["--remove", "kill"]),
    ("remove_background", "forced remove off the cycle's path", ["--remove", "background"]),
    ("root", "+ the sandbox's read-only root and tmpfs /tmp", ["--with", "root"]),
    ("limits", "+ the sandbox's memory, processes, CPU quota, ulimits", ["--with", "limits"]),
    ("security", "+ the sandbox's capabilities, no-new-privileges, cgroup and IPC namespaces", ["--with", "security"]),
    ("stdin", "+ stdin held open (`OpenStdin`, `StdinOnce`, as the monitor's)", ["--with", "stdin"]),
    ("sandbox", "+ all of the sandbox's settings: the service's container", ["--with", "all"]),
    ("rename", "+ a rename after the create (a warm container taken: its job in its name)",
     ["--calls", "rename"]),
    ("pin", "+ an update of its CPU set after the start (a warm container taken, cap within the CPUs)",
     ["--calls", "pin"]),
    ("attach_stdin", "the end from the attach stream, stdin attached too (the service's way)",
     ["--end", "attach", "--attach-stdin", "--with", "stdin"]),
    ("bare_lifecycle", "the lifecycle alone, bare: `true` as the program", ["--command", "true"]),
    ("lifecycle", "the lifecycle alone, the service's container: `true`, all the sandbox's settings",
     ["--command", "true", "--with", "all"]),
    ("default_again", "default, again (the noise between runs)", []),
]


def engine_knobs(cycles):
    """One engine setting at a time, CAP cycles at once, each with the CPU
    a container lifecycle costs the machine."""
    result = {}
    for key, label, extra in ENGINE_KNOBS:
        out = subprocess.run(
            [BIN / "engine-cycles", "--cycles", str(cycles), "--parallel", str(CAP), "--json", *extra],
            check=True, capture_output=True, text=True,
        ).stdout
        figure = json.loads(out)
        figure["label"] = label
        result[key] = figure
        say(f"engine setting: {label}: {figure['cycles_per_second']:.2f}/s, "
            f"{figure['cpu_ms_per_cycle']['machine']:.1f} ms CPU per lifecycle")
    return result


def start_redis():
    redis_dir = work / "redis"
    redis_dir.mkdir()
    process = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(redis_dir)],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        if sh(f"redis-cli -p {REDIS_PORT} ping") == "PONG":
            return process
        time.sleep(0.1)
    raise SystemExit("bench: the benchmark's redis-server did not start")


RUNNING = []  # service processes, stopped however the benchmark ends


def port_free(address):
    host, port = address.split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def service(role, pool_size, name, listen=API, admin=ADMIN, cap=CAP, wait=True, extra_env=None):
    for address in (listen, admin):
        if not port_free(address):
            raise SystemExit(f"bench: {address} is taken (a service left running?)")
    env = dict(os.environ)
    env.update({
        "CODE_RUNNER_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}",
        "CODE_RUNNER_LISTEN": listen,
        "CODE_RUNNER_ADMIN_LISTEN": admin,
        "CODE_RUNNER_DATA_DIR": str(work / name),
        # No admission limits: the point is the service's own speed.
        "CODE_RUNNER_MAX_QUEUE_DEPTH": "10000000",
        "CODE_RUNNER_SUBMIT_RATE_LIMIT_PER_MINUTE": "0",
        "CODE_RUNNER_REQUEST_RATE_LIMIT_PER_MINUTE": "0",
        "RUST_LOG": "warn",
    })
    # None: the service's own default (one job per CPU, its pool's size).
    if cap is not None:
        env["CODE_RUNNER_CONCURRENCY"] = str(cap)
    if pool_size is not None:
        env["CODE_RUNNER_POOL_SIZE"] = str(pool_size)
    env.update(extra_env or {})
    log = open(work / f"{name}.log", "w")
    process = subprocess.Popen([BIN / "code-runner", role], env=env, stdout=log, stderr=log)
    RUNNING.append(process)
    if not wait:
        return process
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://{API}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"bench: the {name} service did not become ready; see {work}/{name}.log")


def stop(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    RUNNING.remove(process)


def stat_ticks(text):
    """utime + stime + cutime + cstime of one `/proc/<pid>/stat`."""
    return sum(int(f) for f in text.rsplit(")", 1)[1].split()[11:15])


def ticks(pid=None):
    """Busy CPU ticks of the machine (pid None) or of one process, its
    reaped children included."""
    if pid is None:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields) - fields[3] - fields[4]
    return stat_ticks(Path(f"/proc/{pid}/stat").read_text())


def named_ticks(name):
    """CPU ticks of every process called `name` (dockerd, containerd)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text.split("(", 1)[1].rsplit(")", 1)[0] == name:
            total += stat_ticks(text)
    return total


def client_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_per_job(run, jobs, service_process, redis_process):
    """Runs `run()`; the CPU milliseconds per job the machine spent
    meanwhile, and the shares of the service, Redis, the client (loadtest),
    dockerd and containerd; the rest is the shims, runc, the jobs' own
    processes and the kernel's work for them."""
    hz = os.sysconf("SC_CLK_TCK")

    def counters():
        return [ticks(), ticks(service_process.pid), ticks(redis_process.pid),
                named_ticks("dockerd"), named_ticks("containerd"), client_seconds() * hz]

    before = counters()
    summary = run()
    after = counters()
    machine, svc, red, dockerd, containerd, client = (
        (a - b) * 1000 / hz / jobs for a, b in zip(after, before))
    summary["cpu_ms_per_job"] = {
        "machine": machine, "service": svc, "redis": red, "client": client,
        "dockerd": dockerd, "containerd": containerd,
        "rest": machine - svc - red - client - dockerd - containerd,
    }
    return summary


def rss_mb(process):
    status = Path(f"/proc/{process.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def loadtest(*args):
    command = [BIN / "loadtest", "--url", f"http://{API}", "--json", *map(str, args)]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode not in (0, 1):
        raise SystemExit(f"bench: loadtest failed: {run.stderr}")
    summary = json.loads(run.stdout)
    if summary["wrong"] or summary["lost"]:
        raise SystemExit(f"bench: jobs wrong or lost: {summary['problems']}")
    return summary


def service_runs(pool_size, label):
    say(f"service, pool {label}")
    process = service("serve", pool_size, f"serve-pool-{label}")
    time.sleep(2)
    result = {"rss_idle_mb": rss_mb(process)}
    # Warm-up (the pool learns its demand; caches fill), not counted.
    loadtest("--jobs", 20, "--concurrency", 1)
    # A lone job: one at a time, half a second apart (nothing else running).
    lone = loadtest("--rate", 2, "--duration", 10 if QUICK else 15, "--concurrency", 1)
    result["lone"] = lone["end_to_end"]
    say(f"  lone job: p50 {lone['end_to_end']['p50_ms']:.1f} ms")
    serial = loadtest("--jobs", N_SMALL, "--concurrency", 1)
    result["serial"] = {"jobs_per_second": serial["jobs_per_second"], **serial["end_to_end"]}
    say(f"  {N_SMALL} jobs one after another: {serial['jobs_per_second']:.2f}/s, "
        f"p50 {serial['end_to_end']['p50_ms']:.1f} ms")
    # At the cap: the client keeps 4x the cap in flight, so the service
    # always has a job waiting when a slot frees.
    for n in (N_SMALL, N_LARGE):
        burst = loadtest("--jobs", n, "--concurrency", 4 * CAP)
        result[f"cap_{n}"] = {
            "jobs_per_second": burst["jobs_per_second"],
            "run_p50_ms": burst["run_time"]["p50_ms"],
            **burst["end_to_end"],
        }
        say(f"  {n} jobs at the cap ({CAP}): {burst['jobs_per_second']:.2f}/s")
    result["rss_after_mb"] = rss_mb(process)
    say(f"  RSS idle {result['rss_idle_mb']:.1f} MB, after {N_SMALL * 2 + N_LARGE + 50} jobs "
        f"{result['rss_after_mb']:.1f} MB")
    with urllib.request.urlopen(f"http://{ADMIN}/v1/stats") as answer:
        result["pool_stats"] = json.load(answer).get("pool")
    stop(process)
    return result


CASES = 20
N_CASES_SERIAL = 4 if QUICK else 10
N_CASES_CAP = 12 if QUICK else 40


def cases_runs():
    """A C++ job of 1 and of CASES test cases: each case in a container of
    its own (as before), then every case in one container per job."""
    result = {}
    for share, label in (("false", "container per case"), ("true", "container per job")):
        say(f"test cases, a {label}")
        process = service("serve", 4, f"cases-{share}",
                          extra_env={"CODE_RUNNER_CASES_SHARE_CONTAINER": share})
        # Warm-up (the pool learns the C++ demand), not counted.
        loadtest("--jobs", 8, "--concurrency", 4, "--language", "cpp", "--cases", 2)
        one = loadtest("--jobs", N_CASES_SERIAL, "--concurrency", 1, "--language", "cpp", "--cases", 1)
        many = loadtest("--jobs", N_CASES_SERIAL, "--concurrency", 1, "--language", "cpp", "--cases", CASES)
        cap = loadtest("--jobs", N_CASES_CAP, "--concurrency", 4 * CAP, "--language", "cpp", "--cases", CASES)
        result[share] = {
            "one_case": one["end_to_end"],
            "many_cases": many["end_to_end"],
            "cap_jobs_per_second": cap["jobs_per_second"],
            "cap_job_cpu_ms": cap["job_cpu_mean_ms"],
        }
        say(f"  1 case p50 {one['end_to_end']['p50_ms']:.0f} ms, {CASES} cases p50 "
            f"{many['end_to_end']['p50_ms']:.0f} ms, {CASES}-case jobs at the cap "
            f"{cap['jobs_per_second']:.2f}/s")
        stop(process)
    return result


N_SWEEP = 60 if QUICK else 300
SWEEP_CAPS = [2, 4] if QUICK else [2, 3, 4, 5, 6, 8]
REFILL_PARALLEL = [1, 2, 4]
POC_JOBS_PER_SECOND = 13.7  # the Node.js proof of concept on this workload (issue 19)
# The engine's bare cycle rate (4 at a time, with a network sandbox: the old
# engine-cycles) in the run of 2026-11-26 that matched the proof of
# concept's measurement: the machine has been slower since, so its figure is
# scaled by today's rate of the same cycle.
POC_ENGINE_RATE = 9.83


def hello_at_cap(redis_process, cap, name, extra_env=None):
    process = service("serve", cap, name, cap=cap, extra_env=extra_env)
    loadtest("--jobs", 4 * cap, "--concurrency", 4 * cap)  # warm-up, not counted
    burst = cpu_per_job(lambda: loadtest("--jobs", N_SWEEP, "--concurrency", 4 * cap),
                        N_SWEEP, process, redis_process)
    return process, burst


def ceiling_runs(redis_process):
    """The cap raised until throughput stops rising, the pool's refill
    parallelism, and the proof of concept's workload."""
    result = {"sweep": {}, "refill": {}, "poc": {}}
    for cap in SWEEP_CAPS:
        process, burst = hello_at_cap(redis_process, cap, f"sweep-{cap}")
        result["sweep"][cap] = burst
        say(f"cap {cap} (pool {cap}): {burst['jobs_per_second']:.2f} jobs/s, "
            f"{burst['cpu_ms_per_job']['machine']:.1f} ms CPU per job "
            f"(service {burst['cpu_ms_per_job']['service']:.1f}, redis {burst['cpu_ms_per_job']['redis']:.1f}), "
            f"job's own {burst['job_cpu_mean_ms']:.1f} ms")
        stop(process)
    best = max(SWEEP_CAPS, key=lambda c: result["sweep"][c]["jobs_per_second"])
    result["best_cap"] = best
    for parallel in REFILL_PARALLEL:
        process, burst = hello_at_cap(redis_process, CAP, f"refill-{parallel}",
                                      {"CODE_RUNNER_POOL_REFILL_PARALLEL": str(parallel)})
        result["refill"][parallel] = burst
        say(f"refill {parallel} at a time, cap {CAP}: {burst['jobs_per_second']:.2f} jobs/s")
        stop(process)
    for cap in sorted({CAP, best}):
        process = service("serve", cap, f"poc-{cap}", cap=cap)
        loadtest("--jobs", 16, "--concurrency", 16, "--poll-ms", 200)  # warm-up
        poc = loadtest("--jobs", 100, "--concurrency", 16, "--poll-ms", 200)
        result["poc"][cap] = poc
        say(f"proof of concept's workload, cap {cap}: {poc['jobs_per_second']:.2f} jobs/s "
            f"(its {POC_JOBS_PER_SECOND} then)")
        stop(process)
    return result


N_RECYCLE = 60 if QUICK else 300
N_RSS = 1000 if QUICK else 10000


def runsc_registered():
    """Whether the engine has gVisor (`scripts/setup.sh --gvisor`)."""
    out = subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}"],
                         capture_output=True, text=True).stdout
    return "runsc" in out


def raw_runtime_run(runtime, runs):
    """Median of a raw `docker run --rm --network none` of the Python
    hello world under `runtime`."""
    def once():
        started = time.monotonic()
        subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--runtime", runtime,
             "--entrypoint", "python3", "code-runner/python:latest", "-c", "print(1)"],
            check=True, capture_output=True,
        )
        return (time.monotonic() - started) * 1000

    once()
    times = [once() for _ in range(runs)]
    say(f"raw docker run ({runtime}): median {statistics.median(times):.0f} ms")
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": runs}


def memory_mb(text):
    """`docker stats`' `3.5MiB / 256MiB` → 3.5 (MB of 2^20 bytes)."""
    number, unit = re.match(r"([\d.]+)\s*([KMG]i?B|B)", text.split("/")[0].strip()).groups()
    scale = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1 / 1024, "MB": 1, "GB": 1024}
    return float(number) * scale.get(unit, 1)


def idle_recycled_mb():
    """The memory each recycled container waiting in the pool holds
    (`docker stats`: its cgroup's charge), and how many there were."""
    with urllib.request.urlopen(f"http://{ADMIN}/v1/stats") as answer:
        pool = json.load(answer).get("pool") or {}
    ids = [c["container"] for c in pool.get("recycledContainers", [])]
    if not ids:
        return None
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids],
                         check=True, capture_output=True, text=True).stdout
    sizes = [memory_mb(line) for line in out.splitlines() if line.strip()]
    return {"containers": len(sizes), "mean_mb": statistics.mean(sizes), "max_mb": max(sizes)}


def recycle_runs(redis_process, runtime=None):
    """Issue 33: the service on its defaults (cap = the CPUs, each job
    pinned; the pool's own size), a fresh container per job
    (`CODE_RUNNER_RECYCLE=off`) and recycled containers (`per-caller`,
    the default; the bench is one caller, so the same as `all`): a lone job, hello worlds at the cap with the CPU they cost,
    the 20-case C++ job; with recycling, the memory of an idle recycled
    container and (runc) the service's RSS after N_RSS jobs."""
    tag = runtime or "runc"
    result = {}
    for mode in ("off", "per-caller"):
        say(f"recycling {mode}, {tag}, the service's defaults")
        env = {"CODE_RUNNER_RECYCLE": mode}
        if runtime:
            env["CODE_RUNNER_RUNTIME"] = runtime
        process = service("serve", None, f"recycle-{mode}-{tag}", cap=None, extra_env=env)
        loadtest("--jobs", 32, "--concurrency", 16)  # warm-up, not counted
        lone = loadtest("--rate", 2, "--duration", 10 if QUICK else 15, "--concurrency", 1)
        say(f"  lone job: p50 {lone['end_to_end']['p50_ms']:.1f} ms")
        burst = cpu_per_job(lambda: loadtest("--jobs", N_RECYCLE, "--concurrency", 16),
                            N_RECYCLE, process, redis_process)
        say(f"  {N_RECYCLE} jobs, 16 at a time: {burst['jobs_per_second']:.2f}/s, "
            f"{burst['cpu_ms_per_job']['machine']:.1f} ms CPU per job, job's own {burst['job_cpu_mean_ms']:.1f} ms")
        entry = {"lone": lone["end_to_end"], "burst": burst}
        if mode == "per-caller":
            time.sleep(2)
            entry["idle_container"] = idle_recycled_mb()
            if entry["idle_container"]:
                say(f"  idle recycled container: {entry['idle_container']['mean_mb']:.1f} MB "
                    f"({entry['idle_container']['containers']} of them)")
        loadtest("--jobs", 4, "--concurrency", 4, "--language", "cpp", "--cases", 2)  # warm-up
        many = loadtest("--jobs", N_CASES_SERIAL, "--concurrency", 1, "--language", "cpp", "--cases", CASES)
        cap = loadtest("--jobs", N_CASES_CAP, "--concurrency", 16, "--language", "cpp", "--cases", CASES)
        entry["cases"] = {"serial": many["end_to_end"], "cap_jobs_per_second": cap["jobs_per_second"],
                          "cap_job_cpu_ms": cap["job_cpu_mean_ms"]}
        say(f"  {CASES}-case C++ job: p50 {many['end_to_end']['p50_ms']:.0f} ms, "
            f"at the cap {cap['jobs_per_second']:.2f} jobs/s")
        if mode == "per-caller" and runtime is None:
            rss = loadtest("--jobs", N_RSS, "--concurrency", 16)
            entry["rss"] = {"jobs": N_RSS, "jobs_per_second": rss["jobs_per_second"],
                            "rss_mb": rss_mb(process)}
            say(f"  RSS after {N_RSS} more jobs ({rss['jobs_per_second']:.2f}/s): {entry['rss']['rss_mb']:.1f} MB")
        with urllib.request.urlopen(f"http://{ADMIN}/v1/stats") as answer:
            entry["pool_stats"] = json.load(answer).get("pool")
        stop(process)
        result[mode] = entry
    if runtime:
        result["raw"] = raw_runtime_run(runtime, 5 if QUICK else 15)
        out = subprocess.run(
            [BIN / "engine-cycles", "--cycles", str(60 if QUICK else 200), "--parallel", str(CAP),
             "--runtime", runtime, "--json"],
            check=True, capture_output=True, text=True,
        ).stdout
        result["engine_4"] = json.loads(out)
        say(f"engine ({runtime}): {result['engine_4']['cycles_per_second']:.2f} cycles/s, {CAP} at a time")
    return result


WRK_POST = """wrk.method = "POST"
wrk.body = '{"language":"python","code":"print(\\'Hello world\\')"}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(path, seconds, script=None):
    command = ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run(command + [f"http://{API}{path}"], capture_output=True, text=True,
                         check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def millis(text):
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    p99 = millis(re.search(r"99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if errors:
        raise SystemExit(f"bench: {errors} answers to {path} were not 2xx: the figure would be wrong")
    return {"requests_per_second": rate, "p99_ms": p99, "non_2xx": errors,
            "command": " ".join(command[:5]) + (" -s post.lua" if script else "") + f" URL{path}"}


def post(path, body):
    request = urllib.request.Request(f"http://{API}{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def waiting():
    with urllib.request.urlopen(f"http://{ADMIN}/v1/stats") as answer:
        return json.load(answer)["queue"]["waiting"]


def api_runs():
    say("API only (no workers): wrk")
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "flushall"], check=True,
                   capture_output=True)
    process = service("api", 0, "api")
    result = {"rss_idle_mb": rss_mb(process)}
    job = post("/run", {"language": "python", "code": "print('Hello world')"})["jobId"]
    empty = {
        "status": wrk(f"/status/{job}", WRK_SECONDS // 2 or 1),
        "v1": wrk(f"/v1/jobs/{job}", WRK_SECONDS // 2 or 1),
        "waiting": waiting(),
    }
    say(f"  GET /status, {empty['waiting']} waiting: {empty['status']['requests_per_second']:.0f}/s; "
        f"GET /v1/jobs: {empty['v1']['requests_per_second']:.0f}/s")
    script = work / "post.lua"
    script.write_text(WRK_POST)
    result["post_run"] = wrk("/run", WRK_SECONDS, script)
    say(f"  POST /run: {result['post_run']['requests_per_second']:.0f}/s, "
        f"p99 {result['post_run']['p99_ms']:.2f} ms, non-2xx {result['post_run']['non_2xx']}")
    batch = [{"language": "python", "code": "print(1)"}] * 100
    while waiting() < N_WAITING:
        post("/v1/jobs/batch", {"jobs": batch})
    full = {
        "status": wrk(f"/status/{job}", WRK_SECONDS // 2 or 1),
        "v1": wrk(f"/v1/jobs/{job}", WRK_SECONDS // 2 or 1),
        "waiting": waiting(),
    }
    say(f"  GET /status, {full['waiting']} waiting: {full['status']['requests_per_second']:.0f}/s; "
        f"GET /v1/jobs: {full['v1']['requests_per_second']:.0f}/s")
    result["get_empty"], result["get_full"] = empty, full
    result["rss_after_mb"] = rss_mb(process)
    stop(process)
    return result


INTERACTIVE_SESSIONS = 10 if QUICK else 50
INTERACTIVE_LINES = 20 if QUICK else 100


def interactive_runs():
    say(f"live runs: {INTERACTIVE_SESSIONS} interactive sessions, one api and two workers")
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "flushall"], check=True,
                   capture_output=True)
    cap = (INTERACTIVE_SESSIONS + 1) // 2 + 1
    workers = [
        service("worker", 0, f"live-worker-{n}", listen=f"127.0.0.1:{3110 + 2 * n}",
                admin=f"127.0.0.1:{3111 + 2 * n}", cap=cap, wait=False)
        for n in (1, 2)
    ]
    api = service("api", 0, "live-api")
    time.sleep(3)  # the workers' first heartbeats
    command = [BIN / "loadtest", "--url", f"http://{API}", "--json",
               "--interactive", str(INTERACTIVE_SESSIONS), "--lines", str(INTERACTIVE_LINES)]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"bench: interactive sessions failed: {run.stdout} {run.stderr}")
    summary = json.loads(run.stdout)
    summary["worker_cap"] = cap
    trip = summary["line_round_trip"]
    say(f"  line round trip p50 {trip['p50_ms']:.1f} ms, p99 {trip['p99_ms']:.1f} ms "
        f"({trip['count']} lines); batch p50 {summary['batch_during']['p50_ms']:.0f} ms")
    for process in [api, *workers]:
        stop(process)
    return summary


def verdict(ok):
    return "met" if ok else "**not met**"


def write_report(f):
    raw = f["raw_docker_run"]["none"]["median_ms"]
    raw_bridge = f["raw_docker_run"]["bridge"]["median_ms"]
    off, on = f["pool_off"], f["pool_on"]
    eng1, eng4 = f["engine_1"]["cycles_per_second"], f["engine_4"]["cycles_per_second"]
    api = f["api"]
    lone_on, lone_off = on["lone"]["p50_ms"], off["lone"]["p50_ms"]
    m = f["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Measured in one run of `loadtest/bench.sh` (see it for each step), on:",
        "",
        f"- {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}",
        f"- Docker {m['docker']} ({m['storage_driver']}, cgroup v{m['cgroup']}, runtime {m['runtime']})",
        f"- {m['date']}; service cap {CAP} containers, Redis on the same machine, client on the same machine",
        "",
        "Every job printed a value of its own and was checked; no job was lost or wrong in any run.",
        "Latency is end to end at the client (`loadtest`, by long-poll), in milliseconds.",
        "",
        "## Reference points",
        "",
        "| | figure |",
        "|---|---|",
        f"| raw `docker run --rm --network none … python3 -c 'print(1)'`, median of {f['raw_docker_run']['none']['runs']} | {raw:.0f} ms |",
        f"| the same with Docker's default bridge network | {raw_bridge:.0f} ms |",
        f"| engine limit: bare create-start-wait-remove, 1 at a time (`engine-cycles`: no network sandbox, as the service's containers) | {eng1:.2f} containers/s (cycle p50 {f['engine_1']['p50_ms']:.0f} ms) |",
        f"| engine limit: the same, 4 at a time | {eng4:.2f} containers/s (cycle p50 {f['engine_4']['p50_ms']:.0f} ms) |",
        "",
        "## The service, Python hello world",
        "",
        "| | pool off | pool on |",
        "|---|---|---|",
        f"| lone job (one every 0.5 s), p50 | {lone_off:.1f} ms ({lone_off / raw:.2f}× raw) | {lone_on:.1f} ms ({lone_on / raw:.2f}× raw) |",
        f"| lone job, p90 / max | {off['lone']['p90_ms']:.1f} / {off['lone']['max_ms']:.1f} ms | {on['lone']['p90_ms']:.1f} / {on['lone']['max_ms']:.1f} ms |",
        f"| {N_SMALL} jobs one after another | {off['serial']['jobs_per_second']:.2f} jobs/s, p50 {off['serial']['p50_ms']:.1f} ms | {on['serial']['jobs_per_second']:.2f} jobs/s, p50 {on['serial']['p50_ms']:.1f} ms |",
    ]
    for n in (N_SMALL, N_LARGE):
        a, b = off[f"cap_{n}"], on[f"cap_{n}"]
        lines.append(
            f"| {n} jobs at the cap ({CAP}) | {a['jobs_per_second']:.2f} jobs/s ({a['jobs_per_second'] / eng4:.0%} of engine) | "
            f"{b['jobs_per_second']:.2f} jobs/s ({b['jobs_per_second'] / eng4:.0%} of engine) |")
    lines += [
        f"| RSS of `serve` at idle | {off['rss_idle_mb']:.1f} MB | {on['rss_idle_mb']:.1f} MB |",
        f"| RSS of `serve` after {2 * N_SMALL + N_LARGE + 50} jobs | {off['rss_after_mb']:.1f} MB | {on['rss_after_mb']:.1f} MB |",
        "",
        "## The API alone (an `api` process, no workers: jobs only queue)",
        "",
        "| | requests/s | p99 |",
        "|---|---|---|",
        f"| `POST /run` (`{api['post_run']['command']}`) | {api['post_run']['requests_per_second']:.0f} | {api['post_run']['p99_ms']:.2f} ms |",
        f"| `GET /status/{{id}}`, {api['get_empty']['waiting']} job waiting | {api['get_empty']['status']['requests_per_second']:.0f} | {api['get_empty']['status']['p99_ms']:.2f} ms |",
        f"| `GET /status/{{id}}`, {api['get_full']['waiting']} jobs waiting | {api['get_full']['status']['requests_per_second']:.0f} | {api['get_full']['status']['p99_ms']:.2f} ms |",
        f"| `GET /v1/jobs/{{id}}`, {api['get_empty']['waiting']} job waiting | {api['get_empty']['v1']['requests_per_second']:.0f} | {api['get_empty']['v1']['p99_ms']:.2f} ms |",
        f"| `GET /v1/jobs/{{id}}`, {api['get_full']['waiting']} jobs waiting | {api['get_full']['v1']['requests_per_second']:.0f} | {api['get_full']['v1']['p99_ms']:.2f} ms |",
        "",
        "wrk, Redis and the service share the machine's cores.",
        "",
    ]
    cases = f["cases"]
    each, one_job = cases["false"], cases["true"]
    lines += [
        f"## Test cases: one container per job (issue 19)",
        "",
        f"A C++ job (compiled once) of 1 and of {CASES} test cases, each case reading a number and printing it "
        f"after the job's tag (every case checked); {N_CASES_SERIAL} jobs one after another, then "
        f"{N_CASES_CAP} {CASES}-case jobs at the cap ({CAP}), pool on. Before: each case in a container of "
        "its own (`CODE_RUNNER_CASES_SHARE_CONTAINER=false`); after: every case in one container, the "
        "monitor restoring it between cases (the default).",
        "",
        "| | a container per case | a container per job |",
        "|---|---|---|",
        f"| 1 case, p50 | {each['one_case']['p50_ms']:.0f} ms | {one_job['one_case']['p50_ms']:.0f} ms |",
        f"| {CASES} cases, p50 | {each['many_cases']['p50_ms']:.0f} ms ({each['many_cases']['p50_ms'] / each['one_case']['p50_ms']:.2f}× 1 case) | "
        f"{one_job['many_cases']['p50_ms']:.0f} ms ({one_job['many_cases']['p50_ms'] / one_job['one_case']['p50_ms']:.2f}× 1 case) |",
        f"| {CASES}-case jobs at the cap | {each['cap_jobs_per_second']:.2f} jobs/s | {one_job['cap_jobs_per_second']:.2f} jobs/s "
        f"({one_job['cap_jobs_per_second'] / each['cap_jobs_per_second']:.1f}×) |",
        "",
    ]
    knobs, ceil = f["engine_knobs"], f["ceiling"]
    base = knobs["default"]["cpu_ms_per_cycle"]["machine"]
    lines += [
        "## Engine settings, one at a time (issue 19)",
        "",
        f"`engine-cycles --parallel {CAP}` ({knobs['default']['cycles']} cycles each, Python `print(1)` unless said), "
        "changing one setting from the default cycle at a time. CPU is the busy time of every core over the "
        "run (`/proc/stat`), less the client's, per lifecycle: dockerd and containerd from their processes' "
        "counters, the rest is the shims, runc, the container's program and the kernel's work for them.",
        "",
        "| setting | containers/s | cycle p50 | CPU per lifecycle | dockerd | containerd | rest | vs default |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label, _ in ENGINE_KNOBS:
        k = knobs[key]
        c = k["cpu_ms_per_cycle"]
        lines.append(
            f"| {label} | {k['cycles_per_second']:.2f} | {k['p50_ms']:.0f} ms | {c['engine']:.1f} ms | "
            f"{c['dockerd']:.1f} ms | {c['containerd']:.1f} ms | {c['rest']:.1f} ms | "
            f"{(c['machine'] - base) / base:+.0%} |")
    lifecycle_ms = knobs["lifecycle"]["cpu_ms_per_cycle"]["engine"]
    cores = m["cores"]
    sweep = ceil["sweep"]
    best = ceil["best_cap"]
    hello_cpu = statistics.median(v["job_cpu_mean_ms"] for v in sweep.values())
    hello_ceiling = cores * 1000 / (lifecycle_ms + hello_cpu)
    ceil["hello_ceiling"] = hello_ceiling

    def pct(rate):
        return f"{rate / hello_ceiling:.0%}"

    poc_engine_today = knobs["network_sandbox"]["cycles_per_second"]
    poc_today = POC_JOBS_PER_SECOND * poc_engine_today / POC_ENGINE_RATE

    lines += [
        "",
        "## The ceiling (issue 19)",
        "",
        f"A lifecycle of the service's container (every sandbox setting, `true` as the program: the row above "
        f"the last) costs the engine **{lifecycle_ms:.1f} ms** of CPU; the sandbox's settings are not for trading, "
        f"so that is the price of a job's container (a bare one costs {knobs['bare_lifecycle']['cpu_ms_per_cycle']['engine']:.1f} ms). A one-line Python job's own CPU, as the sandbox measures it (its cgroup: the "
        f"monitor and CPython), is **{hello_cpu:.1f} ms** (median of the runs below). A hello-world job needs "
        f"one lifecycle, so {cores} cores allow at most {cores} × 1000 / ({lifecycle_ms:.1f} + {hello_cpu:.1f}) = "
        f"**{hello_ceiling:.1f} jobs/s**: the ceiling, with nothing else (service, Redis, client) on the cores.",
        "",
        f"`serve` with the pool on (size = cap), {N_SWEEP} jobs at 4× the cap in flight; CPU per job is the "
        "machine's busy time over the run divided by the jobs, and the service's and Redis's share of it:",
        "",
        "| cap | jobs/s | of the ceiling | CPU per job | service | Redis | client | dockerd | containerd | shims, runc, jobs, kernel |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cap in SWEEP_CAPS:
        v = sweep[cap]
        c = v["cpu_ms_per_job"]
        lines.append(
            f"| {cap}{' (best)' if cap == best else ''} | {v['jobs_per_second']:.2f} | {pct(v['jobs_per_second'])} | "
            f"{c['machine']:.1f} ms | {c['service']:.1f} ms | {c['redis']:.1f} ms | {c['client']:.1f} ms | "
            f"{c['dockerd']:.1f} ms | {c['containerd']:.1f} ms | {c['rest']:.1f} ms |")
    lines += [
        "",
        f"The pool's refill parallelism at cap {CAP} (containers created at once while refilling, "
        "`CODE_RUNNER_POOL_REFILL_PARALLEL`):",
        "",
        "| refill parallelism | jobs/s | of the ceiling | CPU per job |",
        "|---|---|---|---|",
    ]
    for parallel in REFILL_PARALLEL:
        v = ceil["refill"][parallel]
        lines.append(f"| {parallel} | {v['jobs_per_second']:.2f} | {pct(v['jobs_per_second'])} | "
                     f"{v['cpu_ms_per_job']['machine']:.1f} ms |")
    lines += [
        "",
        "The other throughput figures, as shares of the ceiling:",
        "",
        "| | jobs/s | ceiling | of the ceiling |",
        "|---|---|---|---|",
    ]
    for label, key in (("pool off", "pool_off"), ("pool on", "pool_on")):
        rate = f[key][f"cap_{N_LARGE}"]["jobs_per_second"]
        lines.append(f"| {N_LARGE} hello worlds at the cap ({CAP}), {label} | {rate:.2f} | {hello_ceiling:.1f} | {pct(rate)} |")
    for share, label, lifecycles in (("false", "a container per case", CASES + 1), ("true", "a container per job (the compilation's)", 1)):
        v = cases[share]
        ceiling = cores * 1000 / (lifecycles * lifecycle_ms + v["cap_job_cpu_ms"])
        v["ceiling"] = ceiling
        lines.append(
            f"| {CASES}-case C++ jobs at the cap, {label} ({lifecycles} lifecycle{'s' if lifecycles != 1 else ''} and "
            f"{v['cap_job_cpu_ms']:.0f} ms of the jobs' CPU each) | {v['cap_jobs_per_second']:.2f} | {ceiling:.2f} | "
            f"{v['cap_jobs_per_second'] / ceiling:.0%} |")
    lines += [
        "",
        "## The proof of concept's workload (issue 19)",
        "",
        "100 one-line Python jobs submitted 16 at a time with `POST /run`, each polled with `GET /status` every "
        "200 ms, as the Node.js proof of concept's client does (`loadtest --jobs 100 --concurrency 16 --poll-ms 200`); "
        f"the proof of concept ran {POC_JOBS_PER_SECOND} jobs/s on it (cap 4) when issue 19 was filed, a day "
        f"when the engine's bare cycle with a network sandbox, 4 at a time, ran {POC_ENGINE_RATE}/s. Today the same "
        f"cycle runs {poc_engine_today:.2f}/s (the table above), so the proof of concept's figure for today's machine is "
        f"{POC_JOBS_PER_SECOND} × {poc_engine_today:.2f} / {POC_ENGINE_RATE} = **{poc_today:.2f} jobs/s** (it cannot be run "
        "again here: its source is not in this repository).",
        "",
        "| cap | jobs/s | × the proof of concept (scaled) | of the ceiling | polls |",
        "|---|---|---|---|---|",
    ]
    for cap, v in sorted(ceil["poc"].items()):
        lines.append(f"| {cap} | {v['jobs_per_second']:.2f} | {v['jobs_per_second'] / poc_today:.2f}× | "
                     f"{pct(v['jobs_per_second'])} | {v['polls']} |")
    lines.append("")
    live = f["interactive"]
    trip, start, batch = live["line_round_trip"], live["start"], live["batch_during"]
    lines += [
        f"## Live runs ({live['sessions']} interactive sessions at once)",
        "",
        f"One `api` process and two `worker` processes (cap {live['worker_cap']} each) on one Redis; "
        f"`loadtest --interactive {live['sessions']} --lines {live['lines_per_session']}`: each session is a "
        "WebSocket (`/v1/stream`) to a Python program echoing each line it reads; a line is typed when the "
        "previous one's echo came back. Every line came back, in order, and every job ended `accepted` "
        "with all of them in its stored output.",
        "",
        "| | p50 | p99 | max | count |",
        "|---|---|---|---|---|",
        f"| a line typed → its echo back (round trip through both processes and Redis) | {trip['p50_ms']:.1f} ms | {trip['p99_ms']:.1f} ms | {trip['max_ms']:.1f} ms | {trip['count']} |",
        f"| session submitted → its program ready (50 containers starting at once) | {start['p50_ms']:.0f} ms | {start['p99_ms']:.0f} ms | {start['max_ms']:.0f} ms | {start['count']} |",
        f"| batch hello world meanwhile, end to end | {batch['p50_ms']:.0f} ms | {batch['p99_ms']:.0f} ms | {batch['max_ms']:.0f} ms | {batch['count']} |",
        "",
        f"{live['complete']} of {live['sessions']} sessions complete in {live['seconds']:.1f} s; the 50 programs, "
        "both workers, the API, Redis and the client share the machine's cores.",
        "",
    ]
    status_ratio = api["get_full"]["status"]["requests_per_second"] / api["get_empty"]["status"]["requests_per_second"]
    v1_ratio = api["get_full"]["v1"]["requests_per_second"] / api["get_empty"]["v1"]["requests_per_second"]
    worst_cap = min(min(off[f"cap_{n}"]["jobs_per_second"], on[f"cap_{n}"]["jobs_per_second"]) for n in (N_SMALL, N_LARGE))
    targets = [
        ("Lone hello world, pool on: p50 ≤ 0.25× raw `docker run`",
         f"{lone_on:.1f} ms = {lone_on / raw:.2f}× {raw:.0f} ms", lone_on <= 0.25 * raw),
        ("Lone hello world, pool on: p50 ≤ 0.5× pool off",
         f"{lone_on:.1f} ms = {lone_on / lone_off:.2f}× {lone_off:.1f} ms", lone_on <= 0.5 * lone_off),
        (f"{N_SMALL} and {N_LARGE} jobs at concurrency {CAP}, pool on and off: ≥ 90% of the engine's limit",
         f"slowest {worst_cap:.2f} jobs/s = {worst_cap / eng4:.0%} of {eng4:.2f}/s", worst_cap >= 0.9 * eng4),
        ("`POST /run` ≥ 13,500 requests/s (3× 4,500) with p99 < 20 ms",
         f"{api['post_run']['requests_per_second']:.0f}/s, p99 {api['post_run']['p99_ms']:.2f} ms",
         api["post_run"]["requests_per_second"] >= 13500 and api["post_run"]["p99_ms"] < 20),
        (f"GET with {api['get_full']['waiting']} waiting ≥ 80% of an empty queue's rate",
         f"/status {status_ratio:.0%}, /v1/jobs {v1_ratio:.0%}", min(status_ratio, v1_ratio) >= 0.8),
        ("`serve` RSS < 60 MB at idle", f"{max(on['rss_idle_mb'], off['rss_idle_mb']):.1f} MB",
         max(on["rss_idle_mb"], off["rss_idle_mb"]) < 60),
        ("`serve` RSS < 100 MB after 1,000 jobs", f"{max(on['rss_after_mb'], off['rss_after_mb']):.1f} MB",
         max(on["rss_after_mb"], off["rss_after_mb"]) < 100),
        ("No job lost or wrong", "none in any run", True),
        (f"{live['sessions']} interactive sessions at once (one api, two workers), each echoing "
         f"{live['lines_per_session']} lines: all complete, every line in order (issue 17)",
         f"{live['complete']} of {live['sessions']}; line round trip p50 {trip['p50_ms']:.1f} ms, "
         f"p99 {trip['p99_ms']:.1f} ms", live["complete"] == live["sessions"]),
    ]
    many_ratio = one_job["many_cases"]["p50_ms"] / one_job["one_case"]["p50_ms"]
    cap_ratio = one_job["cap_jobs_per_second"] / each["cap_jobs_per_second"]
    targets += [
        (f"A C++ job of {CASES} test cases takes ≤ 2× the same job with 1 case (issue 19)",
         f"{many_ratio:.2f}×", many_ratio <= 2),
        (f"{CASES}-case jobs per second at the cap rise ≥ 5× (issue 19)",
         f"{cap_ratio:.2f}× ({each['cap_jobs_per_second']:.2f} → {one_job['cap_jobs_per_second']:.2f} jobs/s)",
         cap_ratio >= 5),
    ]
    best_rate = sweep[best]["jobs_per_second"]
    poc_best = max(v["jobs_per_second"] for v in ceil["poc"].values())
    targets += [
        (f"One-case hello world at the best cap: ≥ 85% of the ceiling (issue 19)",
         f"cap {best}: {best_rate:.2f} of {hello_ceiling:.1f} jobs/s = {best_rate / hello_ceiling:.1%}",
         best_rate >= 0.85 * hello_ceiling),
        (f"The proof of concept's workload: ≥ 1.3× the proof of concept (issue 19; its {POC_JOBS_PER_SECOND} jobs/s "
         f"scaled to today's engine: {poc_today:.2f})",
         f"{poc_best:.2f} jobs/s = {poc_best / poc_today:.2f}×",
         poc_best >= 1.3 * poc_today),
    ]
    rec_lines, rec_targets = recycle_report(f)
    lines += rec_lines
    targets += rec_targets
    lines += ["## Targets (issues 7, 17, 19 and 33)", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {t} | {m_} | {verdict(ok)} |" for t, m_, ok in targets]
    lines += ["", "## Why", "", "<!-- notes -->", ""]
    figures["targets"] = [{"target": t, "measured": m_, "met": ok} for t, m_, ok in targets]
    return "\n".join(lines)


def recycle_report(f):
    """The section of issue 33 and its targets."""
    cores = f["machine"]["cores"]
    lines = [
        "## Recycled containers (issue 33)",
        "",
        "`serve` on its defaults, as `make run` starts it: the cap is the machine's CPUs "
        f"({cores}), each job pinned to its slot's CPU, the pool at its own size; "
        "`CODE_RUNNER_RECYCLE=off` (a fresh container per job) against `per-caller`, the default "
        "(a container serves one caller's jobs one after another, restored and checked between "
        "them; the bench is one caller). Python hello worlds: a lone job (one "
        f"every 0.5 s), then {N_RECYCLE} jobs 16 at a time; the engine's own limit beside them is its "
        f"bare create-start-wait-remove cycle with no network sandbox, {CAP} at a time. The job-CPU "
        "ceiling is what the cores allow when a job costs only its own CPU (cores × 1000 ÷ the job's "
        f"CPU ms, as its sandbox measured it). The {CASES}-case C++ job: {N_CASES_SERIAL} one after "
        f"another, then {N_CASES_CAP} 16 at a time.",
        "",
        "| runtime | recycling | lone p50 | × raw `docker run` | jobs/s at the cap | × engine cycles/s | "
        "job's CPU | job-CPU ceiling | of it | CPU per job (service, Redis, client, dockerd, containerd, rest) | "
        f"{CASES}-case C++ p50 | {CASES}-case jobs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    targets = []
    for runtime, key in (("runc", "recycle_runc"), ("gVisor (runsc)", "recycle_runsc")):
        r = f.get(key)
        if not r:
            continue
        raw = r["raw"]["median_ms"] if "raw" in r else f["raw_docker_run"]["none"]["median_ms"]
        engine = r["engine_4"]["cycles_per_second"] if "engine_4" in r else f["engine_4"]["cycles_per_second"]
        for mode in ("off", "per-caller"):
            v = r[mode]
            b = v["burst"]
            c = b["cpu_ms_per_job"]
            ceiling = cores * 1000 / b["job_cpu_mean_ms"]
            v["ceiling"] = ceiling
            lines.append(
                f"| {runtime} | {mode} | {v['lone']['p50_ms']:.1f} ms | {v['lone']['p50_ms'] / raw:.3f}× {raw:.0f} ms | "
                f"{b['jobs_per_second']:.2f} | {b['jobs_per_second'] / engine:.2f}× {engine:.2f} | "
                f"{b['job_cpu_mean_ms']:.1f} ms | {ceiling:.0f} jobs/s | {b['jobs_per_second'] / ceiling:.0%} | "
                f"{c['machine']:.1f} ms ({c['service']:.1f}, {c['redis']:.1f}, {c['client']:.1f}, {c['dockerd']:.1f}, "
                f"{c['containerd']:.1f}, {c['rest']:.1f}) | {v['cases']['serial']['p50_ms']:.0f} ms | "
                f"{v['cases']['cap_jobs_per_second']:.2f} |")
        a = r["per-caller"]
        b = a["burst"]
        targets += [
            (f"{runtime}, recycled: hello worlds at the default cap ≥ 3× the engine's lifecycles/s (issue 33)",
             f"{b['jobs_per_second']:.2f} jobs/s = {b['jobs_per_second'] / engine:.2f}× {engine:.2f}",
             b["jobs_per_second"] >= 3 * engine),
            (f"{runtime}, recycled: a lone job's p50 ≤ 0.10× a raw `docker run --rm --network none` (issue 33)",
             f"{a['lone']['p50_ms']:.1f} ms = {a['lone']['p50_ms'] / raw:.3f}× {raw:.0f} ms",
             a["lone"]["p50_ms"] <= 0.10 * raw),
            (f"{runtime}, recycled: ≥ 60% of the job-CPU ceiling (issue 33)",
             f"{b['jobs_per_second']:.2f} of {a['ceiling']:.0f} jobs/s = {b['jobs_per_second'] / a['ceiling']:.0%}",
             b["jobs_per_second"] >= 0.6 * a["ceiling"]),
        ]
    r = f.get("recycle_runc", {}).get("per-caller", {})
    idle, rss = r.get("idle_container"), r.get("rss")
    lines.append("")
    if idle:
        lines.append(f"An idle recycled container (runc) holds {idle['mean_mb']:.1f} MB on average "
                     f"({idle['max_mb']:.1f} MB the most; {idle['containers']} waiting; `docker stats`, its cgroup's charge).")
    if rss:
        lines.append(f"The service's RSS after {rss['jobs']:,} more recycled jobs ({rss['jobs_per_second']:.2f} jobs/s): "
                     f"{rss['rss_mb']:.1f} MB.")
        targets.append((f"`serve` RSS < 100 MB after {rss['jobs']:,} recycled jobs (issue 33)",
                        f"{rss['rss_mb']:.1f} MB", rss["rss_mb"] < 100))
    lines.append("")
    return lines, targets


def main():
    for tool in ("docker", "redis-server", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is missing (loadtest/bench.sh installs it)")
    figures["machine"] = machine()
    figures["raw_docker_run"] = raw_docker_run(5 if QUICK else 15)
    figures["engine_4"] = engine_cycles(CAP, 60 if QUICK else 200)
    only = os.environ.get("BENCH_ONLY")  # "recycle": that section alone, printed, no report
    if only != "recycle":
        figures["engine_1"] = engine_cycles(1, 30 if QUICK else 60)
        figures["engine_knobs"] = engine_knobs(40 if QUICK else 150)
    redis = start_redis()
    try:
        if only != "recycle":
            figures["pool_off"] = service_runs(0, "off")
            figures["pool_on"] = service_runs(4, "on")
            figures["cases"] = cases_runs()
            figures["ceiling"] = ceiling_runs(redis)
            figures["api"] = api_runs()
            figures["interactive"] = interactive_runs()
        figures["recycle_runc"] = recycle_runs(redis)
        if runsc_registered():
            figures["recycle_runsc"] = recycle_runs(redis, "runsc")
    finally:
        for process in list(RUNNING):
            stop(process)
        redis.terminate()
        redis.wait()
    # The figures first: a report that fails to render loses no run.
    (work / "figures.json").write_text(json.dumps(figures, indent=2))
    if only == "recycle":
        lines, targets = recycle_report(figures)
        print("\n".join(lines))
        for t, m_, ok in targets:
            say(f"{'met    ' if ok else 'NOT MET'} {t}: {m_}")
        return
    report = write_report(figures)
    out = Path(os.environ.get("BENCH_OUT", ROOT / "BENCHMARKS.md"))
    notes = ""
    if out.exists():
        # Keep the hand-written explanations below the marker.
        old = out.read_text()
        if "<!-- notes -->" in old:
            notes = old.split("<!-- notes -->", 1)[1].strip()
    out.write_text(report.replace("<!-- notes -->", "<!-- notes -->\n\n" + notes) + "\n")
    (work / "figures.json").write_text(json.dumps(figures, indent=2))
    say(f"wrote {out} (raw figures: {work}/figures.json)")
    for t in figures["targets"]:
        say(f"{'met    ' if t['met'] else 'NOT MET'} {t['target']}: {t['measured']}")
    shutil.rmtree(work / "redis", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
