"""`recsys replay`: the pipeline run span after span under live traffic (loop.py), the bad data it can inject
(inject.py), the load generator and its trace (traffic.py), and the page that shows it (page.py)."""
