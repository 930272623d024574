"""A TF-Serving-compatible model server, its configs, a gRPC client and a load tester."""
