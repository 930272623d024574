"""Where the pipeline runs: orchestrators (local.py, kubeflow.py; each only chooses one and hands it
`create_pipeline(config)`) and where its Beam work runs (beam.py: the Beam arguments, beam_cluster.py: a local
job service and worker pool)."""
