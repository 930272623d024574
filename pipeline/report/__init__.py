"""The HTML evaluation report of a pipeline run: its data, its figures and its page."""
