"""Two app servers behind a real nginx with sticky sessions (deploy/nginx.conf, deploy/serve.py):
sessions opened at once spread over both servers, every upload reaches the server that holds its
session, and every session gets its own answer. Needs nginx and Chromium (`make test` installs
both); skipped without them, unless VH_REQUIRE_BROWSER=1 (CI)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import browser as B

REPO = Path(__file__).resolve().parent.parent
import serve  # deploy/serve.py (pytest.ini's pythonpath)

pytestmark = pytest.mark.proxy

missing = [n for n, p in (("chromium", B.CHROMIUM), ("nginx", serve.NGINX)) if not Path(p).exists()]
if missing:
    if os.environ.get("VH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"VH_REQUIRE_BROWSER=1 but no {', '.join(missing)}: apt-get install -y chromium nginx-light",
                    pytrace=False)
    pytest.skip(f"no {', '.join(missing)} on this machine", allow_module_level=True)


def test_two_servers_behind_nginx_keep_each_session_on_its_server(tmp_path):
    samples = sorted((REPO / "samples").glob("*.jpg"))
    files = []
    for i, p in enumerate(samples[::3][:6]):
        f = tmp_path / f"pupil{i}_{p.stem}.jpg"
        f.write_bytes(p.read_bytes())
        files.append(f)
    with serve.cluster(2, checkpoints=REPO / "checkpoints") as (url, procs, tmp):
        results = B.classroom(url, files)
        log = (tmp / "access.log").read_text().splitlines()
    names = {f.name for f in files}
    for f, r in zip(files, results):
        assert r["error"] is None, r["error"]
        assert r["exceptions"] == 0
        assert f.name in r["text"] and not [o for o in names - {f.name} if o in r["text"]]
        assert len(B.HEADLINE.findall(r["text"])) == 1
    # '127.0.0.1 "GET /_stcore/stream HTTP/1.1" 101 127.0.0.1:PORT STICKY'
    entries = [m.groups() for line in log if (m := re.match(r'\S+ "(\S+) (\S+)[^"]*" (\d+) (\S+) (\S+)', line))]
    streams = {sticky: upstream for method, path, status, upstream, sticky in entries if path.startswith("/_stcore/stream")}
    uploads = [(sticky, upstream) for method, path, status, upstream, sticky in entries
               if path.startswith("/_stcore/upload_file") and method in ("PUT", "POST")]
    assert len(streams) >= len(files), "every browser holds one session"
    assert len(set(streams.values())) == 2, f"all sessions went to one server: {streams}"
    assert len(uploads) >= len(files)
    for sticky, upstream in uploads:
        assert streams.get(sticky) == upstream, "an upload went to a server that does not hold its session"
