"""Several app servers behind nginx with sticky sessions (deploy/nginx.conf), for a class larger
than one server process serves well:

    python deploy/serve.py --servers 2 --port 8080        # then open http://localhost:8080

Starts `streamlit run app.py` on --servers free ports of this machine and nginx (Debian's
`nginx`, not as a system service: its files go to a temporary folder) in front of them, waits
until all answer, and stops them all on Ctrl-C. On several machines, run the servers there
and list them in deploy/nginx.conf by hand. Used by tests/test_proxy.py and
bench/bench_serve.py --servers.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def config(ports: list[int], listen: int, tmp: Path) -> str:
    text = (REPO / "deploy" / "nginx.conf").read_text()
    return (text.replace("@PORTS@", "\n".join(f"        server 127.0.0.1:{p};" for p in ports))
                .replace("@LISTEN@", f"127.0.0.1:{listen}").replace("@TMP@", str(tmp)))


@contextlib.contextmanager
def cluster(servers: int = 2, port: int = 0, checkpoints: Path | None = None, env: dict | None = None):
    """Yields (proxy URL, [server processes], nginx temp folder with access.log)."""
    if not Path(NGINX).exists():
        raise FileNotFoundError("no nginx: apt-get install -y nginx-light")
    tmp = Path(tempfile.mkdtemp(prefix="vh-nginx-"))
    # started as root, nginx's workers run as `nobody`: they need to read and write its folders
    tmp.chmod(0o755)
    for sub in ("cache", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(mode=0o777)
        (tmp / sub).chmod(0o777)
    full_env = {k: v for k, v in os.environ.items() if k not in ("VH_DATA", "VH_CHECKPOINTS")}
    full_env.update(env or {})
    if checkpoints is not None:
        full_env["VH_CHECKPOINTS"] = str(checkpoints)
    ports = [free_port() for _ in range(servers)]
    procs = [subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port",
                               str(p), "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=REPO, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for p in ports]
    listen = port or free_port()
    (tmp / "nginx.conf").write_text(config(ports, listen, tmp))
    nginx = None
    try:
        for p in ports:
            wait_healthy(f"http://127.0.0.1:{p}")
        nginx = subprocess.Popen([NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{listen}"
        try:
            wait_healthy(url, timeout=20)
        except RuntimeError:
            nginx.kill()
            raise RuntimeError("nginx did not start: " + nginx.stderr.read().decode()[-1000:]) from None
        yield url, procs, tmp
    finally:
        for p in ([nginx] if nginx else []) + procs:
            p.terminate()
        for p in ([nginx] if nginx else []) + procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--checkpoints", type=Path, default=None)
    args = ap.parse_args()
    with cluster(args.servers, args.port, args.checkpoints) as (url, procs, _):
        print(f"{len(procs)} servers behind nginx at {url} (Ctrl-C stops them)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
