"""Signals the deployments app sends for higher apps to act on, so that deployments never imports them."""

from django.dispatch import Signal

# Sent when a release is recorded or named again, inside the transaction that records it, with `release`, `created`
# (False when the release already existed) and `commits`: the commits a CD system reported with it (a list of
# {"sha", "committed_at"}), or None. Insights records the release's change set from it (insights.changes).
release_recorded = Signal()

# Sent when a deployment has succeeded and its release is what runs in its environment, inside that transaction, with
# `deployment`. Monitoring starts watching the deployed replicas from it (monitoring.services.deployment_watch).
deployment_placed = Signal()

# Sent when decommissioning has stopped a service everywhere, with `service`. A receiver returns a sentence for the
# decommission's timeline, or "" (monitoring pauses the service's health checks, which would only ever fail now).
service_stopped = Signal()
