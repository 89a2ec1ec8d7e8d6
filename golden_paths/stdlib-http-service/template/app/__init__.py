"""A small HTTP service on the Python standard library. Start it with `python -m app`."""
