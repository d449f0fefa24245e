"""Crash safety (issue 9): a short run of scripts/crash_harness.py, so every CI run kills the server
with SIGKILL under a mixed write load a few times and checks that no acknowledged write is lost, no
object is torn, and the CloudTrail digest chain still validates with `aws cloudtrail validate-logs`.

The full run (100 kills, both backends) is `scripts/crash_harness.py --kills 100`; see its docstring.
"""

import json
import os
import subprocess
import sys

from conftest import REPO, citadel_binary

HARNESS = os.path.join(REPO, "scripts", "crash_harness.py")


def test_kill_nine_loses_no_acknowledged_write(tmp_path):
    report = tmp_path / "report.json"
    args = [sys.executable, HARNESS, "--kills", "5", "--seed", "9", "--binary", citadel_binary(),
            "--threads", "4", "--max-delay", "2.0", "--settle", "6", "--workdir", str(tmp_path / "run"),
            "--report", str(report)]
    store = os.environ.get("CITADEL_CRASH_STORE")
    if store:
        args += ["--store", store]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert report.exists(), proc.stdout + proc.stderr
    result = json.loads(report.read_text())
    detail = json.dumps(result, indent=1)[:6000] + "\n" + proc.stdout[-4000:] + proc.stderr[-2000:]
    assert result["kills"] == 5, detail
    assert result["acknowledged_total"] > 20, detail
    assert result["losses"] == 0, detail
    assert result["torn"] == 0, detail
    assert result["trail_records_lost"] == 0, detail
    assert result["validate_logs"]["valid"], detail
    assert result["ok"] and proc.returncode == 0, detail
