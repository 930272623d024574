"""Metrics the pipeline computes beside TFMA: ranking (HR@K, NDCG@K) and the popularity baseline."""
