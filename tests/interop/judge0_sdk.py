"""Judge0's official Python SDK (PyPI `judge0`), pointed at code-runner.

Usage: python judge0_sdk.py <base URL>. Prints one JSON line with what the
SDK saw; exits non-zero if the SDK fails.
"""

import json
import sys

import judge0

url = sys.argv[1]
client = judge0.Client(url)  # reads /languages and /config_info

seen = {"version": client.version}

# One submission, as the SDK's README runs one (base64, polling fields=*).
one = judge0.run(
    client=client,
    source_code="print(input()[::-1])",
    stdin="olleh",
    language=judge0.PYTHON,
)
seen["one"] = {
    "stdout": one.stdout,
    "status": one.status.value,
    "time": one.time,
    "memory": one.memory,
    "token": str(one.token),
}

# Several at once (POST and GET /submissions/batch), in two languages.
many = judge0.run(
    client=client,
    submissions=[
        judge0.Submission(source_code="echo bash", language=judge0.BASH),
        judge0.Submission(
            source_code="#include <stdio.h>\nint main(void) { puts(\"c\"); return 3; }",
            language=judge0.C,
        ),
        judge0.Submission(source_code="print(", language=judge0.PYTHON),
    ],
)
seen["many"] = [
    {"stdout": s.stdout, "status": s.status.value, "exit_code": s.exit_code}
    for s in many
]

# Test cases: one submission per case, each judged against its output.
cases = judge0.run(
    client=client,
    source_code="print(int(input()) * 2)",
    language=judge0.PYTHON,
    test_cases=[("1", "2"), ("2", "5")],
)
seen["cases"] = [s.status.value for s in cases]

print(json.dumps(seen))
