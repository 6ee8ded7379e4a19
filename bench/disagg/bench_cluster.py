"""Starting and stopping a `strata serve` (embedded or --disaggregated) for the scripts in
bench/disagg/: its own session, so SIGTERM reaches every role the supervisor started."""
import os
import signal
import subprocess
import sys
import time


def start(cmd, log_path, ready, timeout_s=120):
    """Runs `cmd` with its output in `log_path` until `ready()` is true; exits naming the log
    when it dies or `timeout_s` passes first."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        if ready():
            return proc
        time.sleep(0.3)
    stop(proc)
    sys.exit(f"{' '.join(cmd[:3])}: not ready after {timeout_s} s (log: {log_path})")


def stop(proc):
    """SIGTERM to the whole session (the server drains), SIGKILL after 60 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
