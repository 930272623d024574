"""A PredictionService whose Predict answers one fixed, pre-serialised PredictResponse without reading the request:
the Python gRPC floor (grpc.aio, one process, as `recsys serve`) that bench/serving_bench.py measures beside the
model servers. With --batch_thread every answer first goes through the hand-off a batched request makes in
`recsys serve` (serving/batcher.py): queued under a lock for one batch thread, which takes every waiting request
as one batch and wakes the event loop once per batch; still no parsing and no model. Prints "Serving gRPC on
port N" once it listens; stops on SIGTERM.

  .venv/bin/python bench/grpc_floor_server.py --response predict_response.bin [--batch_thread]
"""
import argparse
import asyncio
import threading
from pathlib import Path
from typing import List

import grpc

SERVICE = "tensorflow.serving.PredictionService"


class _BatchThread:
  """Answers queued futures in batches from one thread, one event loop wake-up per batch."""

  def __init__(self, loop: asyncio.AbstractEventLoop, response: bytes):
    self._loop, self._response = loop, response
    self._waiting: List[asyncio.Future] = []
    self._cond = threading.Condition()
    threading.Thread(target=self._work, daemon=True).start()

  def submit(self) -> asyncio.Future:
    future = self._loop.create_future()
    with self._cond:
      self._waiting.append(future)
      self._cond.notify()
    return future

  def _work(self) -> None:
    while True:
      with self._cond:
        while not self._waiting:
          self._cond.wait()
        batch, self._waiting = self._waiting, []
      self._loop.call_soon_threadsafe(self._resolve, batch)

  def _resolve(self, batch: List[asyncio.Future]) -> None:
    for future in batch:
      if not future.done():
        future.set_result(self._response)


async def serve(response: bytes, batch_thread: bool) -> None:
  """Serves Predict with `response` on a free localhost port until the process is stopped."""
  batches = _BatchThread(asyncio.get_running_loop(), response) if batch_thread else None

  async def predict(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    del request, context  # the floor: no parsing, no model, no serialisation
    return response if batches is None else await batches.submit()

  server = grpc.aio.server()
  # No (de)serialisers: the handler gets and returns the wire bytes.
  server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
      SERVICE, {"Predict": grpc.unary_unary_rpc_method_handler(predict)}),))
  port = server.add_insecure_port("localhost:0")
  await server.start()
  print(f"Serving gRPC on port {port}", flush=True)
  await server.wait_for_termination()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--response", type=Path, required=True, help="A serialised PredictResponse.")
  parser.add_argument("--batch_thread", action="store_true",
                      help="Answer through a batch thread's hand-off, as a batched request in `recsys serve`.")
  args = parser.parse_args()
  asyncio.run(serve(args.response.read_bytes(), args.batch_thread))


if __name__ == "__main__":
  main()
