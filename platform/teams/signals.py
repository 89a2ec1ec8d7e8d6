"""Signals for the apps above teams (ownership reviews listen), so that teams never import them."""

from django.dispatch import Signal

# Sent inside the transaction of a membership change that may leave a team unable to answer for what it owns: a
# member removed, or a lead's role changed. Arguments: team, actor, lost_lead (a lead left or stopped being one).
membership_lost = Signal()
