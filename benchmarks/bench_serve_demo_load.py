"""`affectgpt serve-demo` under load: throughput and latency with 24 concurrent clients.

Starts ``affectgpt serve-demo`` on loopback (default: the tiny preset, untrained, on the
real CPU encoders -- face CNN and Whisper-base -- as in ``tests/report/test_report_web_load.py``)
or measures ``--url``, and drives it with :func:`affectgpt.report.web_load.run_demo_load`:
a fixed number of requests from a bounded pool of clients, taking in turn a page, a good
clip, a broken clip, oversized, oversized chunked, slow, half-sent, foreign-host and
negative-length requests (``--mix describe`` sends only good clips). Prints the CPU model,
the server's settings, requests/s, described clips/s, latency percentiles overall and per
kind, answers by kind and status, and the server's resident memory before and at its peak
during the load; writes the same as JSON (``--json``).

    python benchmarks/bench_serve_demo_load.py                 # 24 clients, 240 requests
    python benchmarks/bench_serve_demo_load.py --mix describe --clients 4 --requests 24
    python benchmarks/bench_serve_demo_load.py --url http://127.0.0.1:7860/ --max-upload-mb 64
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from affectgpt.machine import cpu_info, machine_info
from affectgpt.report.web_load import KINDS, DemoProcess, describe_clip, run_demo_load

TINY_ON_REAL_ENCODERS = ["video.encoder=face-cnn", "video.feature_dim=128",
                         "video.tokens_per_frame=1", "video.frames=2",
                         "audio.encoder=whisper-base-clip", "audio.feature_dim=512",
                         "audio.clips=1", "audio.max_positions=2"]
RESULTS = Path(__file__).parent / "results" / "serve-demo-load-cpu.json"


def make_clips(folder: Path) -> tuple[bytes, bytes]:
    """A synthetic clip (face, espeak-ng speech) and its first 3 kB (a broken mp4)."""
    from affectgpt.data.synthetic import make_synthetic

    sample = make_synthetic(folder, 1, seed=3, cue="all", workers=1, progress=False)[0]
    clip = Path(sample.video).read_bytes()
    return clip, clip[:3000]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=24, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=240, help="requests in all")
    parser.add_argument("--mix", choices=("mixed", "describe"), default="mixed",
                        help="mixed: every request kind in turn; describe: good clips only")
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds for the whole load")
    parser.add_argument("--request-timeout", type=float, default=60.0,
                        help="socket timeout of every client, seconds")
    parser.add_argument("--max-upload-mb", type=float, default=1.0,
                        help="the server's --max-upload-mb (started server: set to this)")
    parser.add_argument("--max-active", type=int, default=6, help="started server's --max-active")
    parser.add_argument("--upload-seconds", type=float, default=2.0,
                        help="started server's --upload-seconds")
    parser.add_argument("--request-seconds", type=float, default=8.0,
                        help="started server's --request-seconds")
    parser.add_argument("--server-args", default="",
                        help="started server's model options instead of the tiny preset on "
                             "the real encoders (e.g. '--model runs/x/model'; '' keeps it)")
    parser.add_argument("--url", help="measure this running serve-demo instead")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid (memory)")
    parser.add_argument("--note", default="", help="a remark stored with the results "
                        "(e.g. that the machine was shared)")
    parser.add_argument("--json", default=str(RESULTS), help="write the results here "
                        "(default: %(default)s; '' writes nothing)")
    args = parser.parse_args()

    upload_bytes = int(args.max_upload_mb * 2**20)
    with tempfile.TemporaryDirectory(prefix="bench-demo-load-") as tmp:
        clip, broken = make_clips(Path(tmp) / "clips")
        demo = None
        if args.url:
            url, pid, where = args.url, args.pid, f"serve-demo at {args.url}"
        else:
            model = (args.server_args.split() if args.server_args else
                     ["--untrained-preset", "tiny",
                      *(x for o in TINY_ON_REAL_ENCODERS for x in ("--set", o))])
            server_args = [*model, "--device", "cpu", "--max-new-tokens", "8", "--frames", "2",
                           "--max-upload-mb", str(args.max_upload_mb), "--max-active",
                           str(args.max_active), "--upload-seconds", str(args.upload_seconds),
                           "--request-seconds", str(args.request_seconds)]
            demo = DemoProcess(server_args, Path(tmp) / "server").start()
            url, pid = demo.url, demo.pid
            where = "affectgpt serve-demo " + " ".join(server_args)
        try:
            warm_started = time.monotonic()
            status, _, _ = describe_clip(url, clip, timeout=300)  # loads the encoders
            warm_up = time.monotonic() - warm_started
            if status != 200:
                raise SystemExit(f"the warm-up describe got {status}"
                                 + (f"\n{demo.log_tail()}" if demo else ""))
            started = time.time()
            result = run_demo_load(url, clip, broken, clients=args.clients,
                                   requests=args.requests,
                                   mix=KINDS if args.mix == "mixed" else ("describe",),
                                   max_upload_bytes=upload_bytes,
                                   request_timeout=args.request_timeout,
                                   time_limit=args.time_limit, server_pid=pid)
            alive = demo.alive() if demo else None
        finally:
            if demo is not None:
                demo.stop()
    summary = result.summary()

    def sec(value):
        return "-" if value is None else f"{value:.2f} s"

    def mib(value):
        return "-" if value is None else f"{value / 2**20:.0f} MiB"

    cpu = cpu_info()
    print(f"CPU: {cpu['cpu']} ({cpu['cores']} cores usable, {os.cpu_count()} logical CPUs)"
          + (f"; {args.note}" if args.note else ""))
    print(f"server: {where}")
    print(f"load: {args.clients} clients, {args.requests} requests ({args.mix}: "
          f"{', '.join(result.settings['mix'])}); warm-up describe {warm_up:.1f} s")
    print(f"wall {result.wall_seconds:.1f} s: {summary['requests_per_second']:.2f} requests/s, "
          f"{result.described} clips described ({summary['described_per_second']:.2f}/s)")
    print(f"latency of answers: p50 {sec(summary['latency_p50'])}, p90 "
          f"{sec(summary['latency_p90'])}, p99 {sec(summary['latency_p99'])}")
    for kind, stats in summary["by_kind"].items():
        counts = ", ".join(f"{status}: {n}" for status, n in stats["statuses"].items())
        print(f"  {kind:18s} p50 {sec(stats['latency_p50']):>7s}  p90 "
              f"{sec(stats['latency_p90']):>7s}  p99 {sec(stats['latency_p99']):>7s}   {counts}")
    print(f"undocumented answers: {summary['undocumented']}"
          + (f" {summary['undocumented_examples']}" if summary["undocumented"] else ""))
    print(f"server resident memory: {mib(result.rss_start_bytes)} before, peak "
          f"{mib(result.peak_rss_bytes)} during the load (+{mib(result.rss_growth_bytes)})"
          + ("" if alive is None else f"; server {'up' if alive else 'DOWN'} after the load"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"machine": machine_info(), "note": args.note, "server": where, "time": started,
             "args": vars(args), "warm_up_seconds": warm_up, "server_up_after": alive,
             "summary": summary}, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 1 if summary["undocumented"] or alive is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
