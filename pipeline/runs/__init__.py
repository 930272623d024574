"""Reading pipeline runs back from ML Metadata: one reader of runs and artifacts, and the end-of-run summary."""
