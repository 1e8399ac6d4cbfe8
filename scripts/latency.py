#!/usr/bin/env python3
"""Sequential end-to-end latency of one kind of job, until the loadtest lands.

    scripts/latency.py URL COUNT LANGUAGE CODE

Submits COUNT jobs one after another with POST /v1/jobs?wait=true and prints
the median, p90 and minimum latency. Used for the gVisor cost in the README.
"""
import json
import statistics
import sys
import time
import urllib.request

url, count, language, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
latencies = []
for _ in range(count):
    started = time.time()
    request = urllib.request.Request(
        url + "/v1/jobs?wait=true",
        data=json.dumps({"language": language, "code": code}).encode(),
        headers={"content-type": "application/json"},
    )
    body = json.load(urllib.request.urlopen(request))
    assert body["result"]["verdict"] == "accepted", body
    latencies.append((time.time() - started) * 1000)
latencies.sort()
print(
    f"{language}: n={count} median={statistics.median(latencies):.0f}ms "
    f"p90={latencies[int(count * 0.9) - 1]:.0f}ms min={latencies[0]:.0f}ms"
)
