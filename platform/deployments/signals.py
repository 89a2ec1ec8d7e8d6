"""Signals the deployments app sends for higher apps to act on, so that deployments never imports them."""

from django.dispatch import Signal

# Sent when a release is recorded or named again, inside the transaction that records it, with `release`, `created`
# (False when the release already existed) and `commits`: the commits a CD system reported with it (a list of
# {"sha", "committed_at"}), or None. Insights records the release's change set from it (insights.changes).
release_recorded = Signal()
