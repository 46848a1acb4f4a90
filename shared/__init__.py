"""Ferry: move a location timeline out of and into a service, as background jobs."""

__version__ = "0.1.0"
