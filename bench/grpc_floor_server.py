"""A PredictionService whose Predict answers one fixed, pre-serialised PredictResponse without reading the request:
the Python gRPC floor (grpc.aio, one process, as `recsys serve`) that bench/serving_bench.py measures beside the
model servers. With --batch_thread every answer first goes through the batch queue of `recsys serve`
(serving/batcher.BatchQueue with the shipped BatchingParameters) on a one-element input that the "model" returns
unchanged: the hand-off a batched request makes, with no parsing and no model. Prints "Serving gRPC on port N" once
it listens; stops on SIGTERM.

  .venv/bin/python bench/grpc_floor_server.py --response predict_response.bin [--batch_thread]
"""
import argparse
import asyncio
import os
from pathlib import Path

import grpc
import numpy as np

from serving import batcher
from serving import config_files

SERVICE = "tensorflow.serving.PredictionService"
FLOOR_INPUT = {"x": np.zeros(1, np.float32)}


async def serve(response: bytes, batch_thread: bool) -> None:
  """Serves Predict with `response` on a free localhost port until the process is stopped."""
  queue = None
  if batch_thread:
    options = batcher.BatchingOptions.from_proto(
        config_files.read_batching_parameters(config_files.BATCHING_PARAMETERS_FILE), os.cpu_count() or 1)
    queue = batcher.BatchQueue(lambda inputs: inputs, options, "grpc-floor")

  async def predict(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    del request, context  # the floor: no parsing, no model, no serialisation
    if queue is not None:
      await queue.submit_async(FLOOR_INPUT)
    return response

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
                      help="Answer through the server's batch queue, as a batched request in `recsys serve`.")
  args = parser.parse_args()
  asyncio.run(serve(args.response.read_bytes(), args.batch_thread))


if __name__ == "__main__":
  main()
