"""MovieLens data layer, pipeline configuration and the TFX pipeline definition."""
