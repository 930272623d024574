"""The NCF recommender behind TF Serving: its client (`client`), load-test requests (`loadtest`) and the demo
at the end of `make run` (`demo`), on the signatures named in `components/signatures.py`."""
