"""A TF-Serving-compatible model server, one file per TF Serving role, and a generic gRPC client and load tester.

  source.py        file-system source: version folders on disk, version policy, change detection
  loader.py        loads a version (servable.py) and replays its warmup requests
  manager.py       version states, handles, in-flight counts and labels
  server_core.py   owns loader and manager, the polls and the config reload; runs requests with metrics
  inference.py     request semantics: Predict, Classify, Regress, MultiInference, GetModelMetadata
  grpc_service.py  gRPC front end: PredictionService and ModelService
  rest.py          REST front end and the Prometheus metrics page
  server.py        ModelServer: the core wired to its front ends
  batcher.py, tensors.py, errors.py, metrics.py: batching, request checks, status errors, Prometheus
  flags.py, config_files.py, launcher.py: tensorflow_model_server's flags, its config files, `recsys serve`
  client.py, loadtest.py: a client and a load tester for any model (the recommender's: pipeline/recommender/);
    they import no TensorFlow: tensor_codec.py converts TensorProto <-> numpy, client_protos/ holds the TF
    Serving protos that generate_client_protos.py generates at build time (`make setup`)

It imports no other layer of the project.
"""
