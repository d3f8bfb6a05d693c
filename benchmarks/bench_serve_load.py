"""`affectgpt serve-llm` under load: throughput and latency with 32 concurrent clients.

Starts the packaged SmolLM2-135M-Instruct behind ``affectgpt serve-llm`` on loopback (or
measures ``--base-url``) and drives it with :func:`affectgpt.llm.loadtest.run_load`: a
fixed number of requests from a bounded pool of clients, among them slow, disconnecting,
oversized and over-limit ones (``--mix normal`` sends only well-behaved ones). Prints the
CPU model, the server's settings, replies/s, completion tokens/s, latency percentiles of
the replies, the answers by kind and status, and the server's peak resident memory.

    python benchmarks/bench_serve_load.py                        # 32 clients, 96 requests
    python benchmarks/bench_serve_load.py --clients 8 --requests 32 --max-batch 8 --mix normal
    python benchmarks/bench_serve_load.py --base-url http://127.0.0.1:8000/v1 --model NAME
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import httpx

from affectgpt.llm.loadtest import DEFAULT_MIX, run_load
from affectgpt.machine import cpu_info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=96, help="requests in all")
    parser.add_argument("--max-tokens", type=int, default=16, help="reply tokens per request")
    parser.add_argument("--max-batch", type=int, default=8, help="started server's --max-batch")
    parser.add_argument("--max-queue", type=int, default=16, help="started server's --max-queue")
    parser.add_argument("--time-limit", type=float, default=300.0,
                        help="socket timeout of every client, seconds")
    parser.add_argument("--mix", choices=("mixed", "normal"), default="mixed",
                        help="mixed: with slow, disconnecting, oversized and over-limit "
                             "clients; normal: well-behaved ones only")
    parser.add_argument("--base-url", help="measure this running server instead")
    parser.add_argument("--model", default="", help="model name for --base-url")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()

    limits = {"max_body_bytes": 65536, "max_tokens_limit": 256}
    server = None
    if args.base_url:
        base_url, model, pid = args.base_url, args.model, None
        try:  # take the limits the server reports, so over-limit requests are exactly over
            stats = httpx.get(f"{base_url}/stats", trust_env=False, timeout=10).json()
            limits = {k: int(stats[k]) for k in limits}
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        where = f"server {base_url} ({model})"
    else:
        from affectgpt.llm.server import LocalModelServer, export_smollm2

        server = LocalModelServer(export_smollm2(), engine="affectgpt", extra_args=[
            "--max-batch", str(args.max_batch), "--max-queue", str(args.max_queue),
            "--max-body-bytes", str(limits["max_body_bytes"]),
            "--max-tokens-limit", str(limits["max_tokens_limit"])]).start()
        base_url, model, pid = server.base_url, server.model, server.process.pid
        where = (f"affectgpt serve-llm, SmolLM2-135M-Instruct, cpu, --max-batch "
                 f"{args.max_batch} --max-queue {args.max_queue}")
    mix = DEFAULT_MIX if args.mix == "mixed" else ("normal",)
    try:
        started = time.time()
        result = run_load(base_url, model, clients=args.clients, requests=args.requests,
                          max_tokens=args.max_tokens, mix=mix, time_limit=args.time_limit,
                          server_pid=pid, **limits)
        after = httpx.get(f"{base_url}/stats", trust_env=False, timeout=10).json()
    finally:
        if server is not None:
            server.stop()
    summary = result.summary()

    def sec(value):
        return "-" if value is None else f"{value:.2f} s"

    print(f"CPU: {cpu_info()['cpu']} ({os.cpu_count()} logical CPUs)")
    print(f"server: {where}")
    print(f"load: {args.clients} clients, {args.requests} requests ({args.mix}), "
          f"max_tokens {args.max_tokens}")
    print(f"wall {result.wall_seconds:.1f} s: {summary['replies']} replies, "
          f"{summary['replies_per_second']:.2f} replies/s, "
          f"{summary['completion_tokens_per_second']:.1f} completion tokens/s")
    print(f"latency of replies: p50 {sec(summary['latency_p50'])}, p90 "
          f"{sec(summary['latency_p90'])}, p99 {sec(summary['latency_p99'])}, mean "
          f"{sec(summary['latency_mean'])} ({summary['retries_429']} retries after 429)")
    for kind, counts in summary["by_kind"].items():
        print(f"  {kind:16s} " + ", ".join(f"{status}: {n}" for status, n in counts.items()))
    print(f"undocumented answers: {summary['undocumented']}")
    if result.peak_rss_bytes:
        print(f"server peak resident memory: {result.peak_rss_bytes / 2**20:.0f} MiB")
    print(f"server: {after.get('decode_steps')} decoding steps, "
          f"{after.get('seconds_per_step') or 0:.3f} s/step, cancelled {after.get('cancelled')}, "
          f"refused {after.get('refused')}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"cpu": cpu_info()["cpu"], "server": where, "time": started, "args": vars(args),
             "summary": summary, "server_stats": after}, indent=2) + "\n", encoding="utf-8")
    return 1 if summary["undocumented"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
