"""What `recsys` prints: the project's own progress lines on the terminal, everything the libraries print in a
log file.

The project's modules log their progress (data preparation, Trainer epochs) on the `pipeline` and `components`
loggers; `show_progress` prints those records as plain lines. During a pipeline run, `RunConsole` also

- prints one line as each component starts and one as it ends (state, seconds, its figure), from TFX's own
  "Component <id> is running/is finished" log records: LocalDagRunner runs components in this process and logs
  both, so a logging handler sees them without wrapping or patching any TFX class (if TFX rewords them, the
  run still works and the CLI test that counts those lines fails);
- prints a heartbeat while a component has been running for a while (the Evaluator runs for minutes);
- sends file descriptors 1 and 2 to `<pipeline root>/logs/run-<time>.log`, so TensorFlow's C++ logs, absl, Beam
  and Python warnings land there, while `sys.stdout` (the project's `print`) stays on the terminal.
  `verbose` copies that stream to the terminal as well.
"""
import contextlib
import datetime
import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, TextIO, Tuple

PROGRESS_LOGGERS = ("pipeline", "components")
COMPONENT_RUNNING = "Component %s is running."  # tfx/orchestration/local/local_dag_runner.py
COMPONENT_FINISHED = "Component %s is finished."
HEARTBEAT_SECONDS = 30.0
# Warnings the project cannot fix at their source: library deprecation notices about the pinned stack. They are
# dropped by category and module so that anything else (and every error) still reaches the log.
UNFIXABLE_WARNINGS = (
    (FutureWarning, r"google\.api_core\._python_version_support"),  # Python 3.10 is the pinned interpreter
    (FutureWarning, r"google\.auth\.transport\.grpc"),  # grpcio is pinned by TensorFlow Serving's APIs
)

# node id -> (MLMD state, the figure that matters once it finished, e.g. "train 90,000 rows"; "" when none).
Describe = Callable[[str], Tuple[str, str]]
Write = Callable[[str], None]


def to_stderr(text: str) -> None:
  print(text, file=sys.stderr, flush=True)


class _PlainLines(logging.Handler):
  """Hands each record's message to `write`, which can change (stderr, then the console of a run)."""

  def __init__(self, write: Write):
    super().__init__(logging.INFO)
    self.write = write

  def emit(self, record: logging.LogRecord) -> None:
    self.write(record.getMessage())


_progress_handler: Optional[_PlainLines] = None


def show_progress(write: Write = to_stderr) -> None:
  """Hands the INFO records of PROGRESS_LOGGERS, message only, to `write` (stderr until a run takes them)."""
  global _progress_handler  # pylint: disable=global-statement  # one process, one set of logger handlers
  if _progress_handler is None:
    _progress_handler = _PlainLines(write)
    for name in PROGRESS_LOGGERS:
      logger = logging.getLogger(name)
      logger.setLevel(logging.INFO)
      logger.addHandler(_progress_handler)
      logger.propagate = False  # absl's root handler would print them a second time
  _progress_handler.write = write


def filter_unfixable_warnings() -> None:
  """Drops UNFIXABLE_WARNINGS; call before the libraries that raise them are imported."""
  for category, module in UNFIXABLE_WARNINGS:
    warnings.filterwarnings("ignore", category=category, module=module)


class _ComponentEvents(logging.Handler):
  """Turns TFX's component running/finished records into RunConsole.started/finished calls."""

  def __init__(self, console: "RunConsole"):
    super().__init__(logging.INFO)
    self.console = console

  def emit(self, record: logging.LogRecord) -> None:
    if record.msg == COMPONENT_RUNNING and record.args:
      self.console.started(str(record.args[0]))
    elif record.msg == COMPONENT_FINISHED and record.args:
      self.console.finished(str(record.args[0]))


class RunConsole:
  """Component start/end lines, heartbeats and the library log file of one pipeline run (a context manager).

  Args:
    log_dir: where the run's log file is written.
    describe: node id -> its figure, read once the node finished.
    verbose: also show the library output live.
    heartbeat_s: seconds between "still running" lines of a long component.
  """

  def __init__(self, log_dir: Path, describe: Describe, verbose: bool = False,
               heartbeat_s: float = HEARTBEAT_SECONDS):
    self.log_path = Path(log_dir) / f"run-{datetime.datetime.now():%Y%m%d-%H%M%S}.log"
    self.describe = describe
    self.verbose = verbose
    self.heartbeat_s = heartbeat_s
    self.terminal: Optional[TextIO] = None
    self.started_at: Dict[str, float] = {}
    self._running: Optional[str] = None
    self._lock = threading.Lock()
    self._stop = threading.Event()

  def line(self, text: str) -> None:
    """One line on the terminal and in the log file (with --verbose the log's copy reaches the terminal)."""
    with self._lock:
      if not self.verbose:
        print(text, file=self.terminal, flush=True)
      os.write(2, (text + "\n").encode())  # fd 2 is the log file (or, with verbose, its copier)

  def started(self, node: str) -> None:
    self.started_at[node] = time.monotonic()
    self._running = node
    self.line(f"{node:<30} running")

  def finished(self, node: str) -> None:
    seconds = time.monotonic() - self.started_at.get(node, time.monotonic())
    self._running = None
    state, figure = self.describe(node)
    self.line(f"{node:<30} {state:<9} {seconds:6.1f} s" + (f"  {figure}" if figure else ""))

  def _heartbeat(self) -> None:
    while not self._stop.wait(self.heartbeat_s):
      node = self._running
      if node is not None and time.monotonic() - self.started_at[node] >= self.heartbeat_s:
        self.line(f"{node:<30} still running, {time.monotonic() - self.started_at[node]:.0f} s")

  @contextlib.contextmanager
  def _library_output_to_log(self) -> Iterator[None]:
    """Points fds 1 and 2 at the log file (through a pipe copied to the terminal too when verbose)."""
    self.log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log = open(self.log_path, "ab", buffering=0)  # pylint: disable=consider-using-with
    copier = None
    if self.verbose:
      read_end, write_end = os.pipe()
      copier = threading.Thread(target=_copy, args=(read_end, (log.fileno(), saved[1])), daemon=True)
      copier.start()
      target = write_end
    else:
      target = log.fileno()
    try:
      for fd in (1, 2):
        os.dup2(target, fd)
      yield
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      for fd, copy in saved.items():
        os.dup2(copy, fd)
        os.close(copy)
      if copier is not None:
        os.close(target)
        copier.join(timeout=5)
      log.close()

  def __enter__(self) -> "RunConsole":
    self._stack = contextlib.ExitStack()  # pylint: disable=attribute-defined-outside-init
    # The terminal: a copy of stdout as it was, so the project's lines survive the redirection below.
    self.terminal = self._stack.enter_context(os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1))
    self._stack.enter_context(self._library_output_to_log())
    self._stack.enter_context(contextlib.redirect_stdout(self.terminal))
    show_progress(self.line)
    self._stack.callback(show_progress, to_stderr)
    self.line(f"what TensorFlow, TFX and Beam print goes to {self.log_path}")
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
    absl_logging.set_verbosity(absl_logging.INFO)  # everything to the log file; the console filters
    events = _ComponentEvents(self)
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(events)
    self._stack.callback(absl_logger.removeHandler, events)
    heartbeat = threading.Thread(target=self._heartbeat, daemon=True)
    heartbeat.start()
    self._stack.callback(heartbeat.join)
    self._stack.callback(self._stop.set)
    return self

  def __exit__(self, error_type, error, traceback) -> None:
    if error is not None and self._running is not None:
      self.line(f"{self._running:<30} FAILED    {time.monotonic() - self.started_at[self._running]:6.1f} s  "
                f"(details in {self.log_path})")
      logging.getLogger("absl").error("the run failed", exc_info=(error_type, error, traceback))
    self._stack.close()


def _copy(read_end: int, targets) -> None:
  """Copies what arrives on `read_end` to each fd of `targets` until the pipe closes."""
  with os.fdopen(read_end, "rb", buffering=0) as source:
    for chunk in iter(lambda: source.read(65536), b""):
      for fd in targets:
        os.write(fd, chunk)
