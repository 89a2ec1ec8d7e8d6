"""Template helpers for governance pages."""

from django import template

from governance.models import ApprovalRequest

register = template.Library()


@register.simple_tag
def approval_question(approval: ApprovalRequest, verdict: str) -> str:
    """The confirmation question for approving or rejecting (the words the no-JavaScript page asks too)."""
    from governance.views import approval_question as question

    return question(approval, verdict)
