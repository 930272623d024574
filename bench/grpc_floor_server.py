"""A PredictionService whose Predict answers one fixed, pre-serialised PredictResponse without reading the request:
the Python gRPC floor (grpc.aio, one process, as `recsys serve`) that bench/serving_bench.py measures beside the
model servers. Prints "Serving gRPC on port N" once it listens; stops on SIGTERM.

  .venv/bin/python bench/grpc_floor_server.py --response predict_response.bin
"""
import argparse
import asyncio
from pathlib import Path

import grpc

SERVICE = "tensorflow.serving.PredictionService"


async def serve(response: bytes) -> None:
  """Serves Predict with `response` on a free localhost port until the process is stopped."""

  async def predict(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    del request, context  # the floor: no parsing, no model, no serialisation
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
  asyncio.run(serve(parser.parse_args().response.read_bytes()))


if __name__ == "__main__":
  main()
