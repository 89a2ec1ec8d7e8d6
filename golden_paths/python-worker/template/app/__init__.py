"""A background worker that runs a job on a fixed interval. Start it with `python -m app`."""
