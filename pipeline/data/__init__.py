"""The data layer: MovieLens readers, the synthetic generator, download, split and example preparation."""
