"""Orchestrators: each module only chooses one and hands it `create_pipeline(config)`."""
