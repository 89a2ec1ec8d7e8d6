"""Emails about approvals, through Django's email framework (console by default, SMTP by EMAIL_URL)."""

from django.conf import settings
from django.core.mail import send_mass_mail
from django.template.loader import render_to_string

from governance import approvals
from governance.models import ApprovalRequest


def approval_request_mail(*, request_id: int) -> int:
    """One email to each person who may answer the request (with an address); how many were sent. Nothing for a
    request already closed."""
    request = (
        ApprovalRequest.objects.select_related(
            "deployment__service", "deployment__release", "deployment__environment", "requested_by"
        )
        .filter(pk=request_id, status=ApprovalRequest.Status.OPEN)
        .first()
    )
    if request is None:
        return 0
    deployment = request.deployment
    kind = "Break-glass approval" if request.kind == ApprovalRequest.Kind.BREAK_GLASS else "Approval"
    subject = (
        f"[Runway] {kind} needed: {deployment.service.slug} {deployment.release.version} → "
        f"{deployment.environment.name}"
    )
    context = {
        "request": request,
        "deployment": deployment,
        "requirements": request.progress(),
        "url": f"{settings.PORTAL_URL}{request.get_absolute_url()}",
        "inbox_url": f"{settings.PORTAL_URL}/governance/approvals/",
    }
    body = render_to_string("governance/approval_email.txt", context)
    messages = [
        (subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
        for user in approvals.approvers_of(request)
        if user.email
    ]
    return send_mass_mail(messages, fail_silently=False) if messages else 0
