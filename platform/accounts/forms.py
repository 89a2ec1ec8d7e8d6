"""The sign-in forms (the portal's and the admin's, throttled alike) and the API token form."""

import math
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import services, throttling
from accounts.services import MAX_LIFETIME_DAYS


class SigninThrottleMixin:
    """Refuses a sign-in, before any password is checked, while its client address is locked out of the account (or
    of every account); counts each wrong password, and forgets the account's count from that address on success."""

    request: Any
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        address = throttling.client_address(self.request) if self.request is not None else ""
        if wait := throttling.signin_wait(username=username, address=address):
            raise self._locked_error(wait)
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except ValidationError as error:
            # A wrong password leaves no user_cache; the admin's refusal of a right password for a non-staff account
            # (the same error code) is not a failed sign-in.
            wrong = getattr(self, "user_cache", None) is None and error.code == "invalid_login"
            if username and self.cleaned_data.get("password") and wrong:
                if services.signin_failure_record(username=username, address=address):
                    raise self._locked_error(throttling.signin_wait(username=username, address=address)) from None
            raise
        throttling.signin_success(username=username, address=address)
        return cleaned

    @staticmethod
    def _locked_error(wait: int) -> ValidationError:
        minutes = max(1, math.ceil(wait / 60))
        return ValidationError(
            "Too many failed sign-ins from your network address. For your account's safety, signing in from it is "
            f"paused: try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            code="throttled",
        )


class SigninForm(SigninThrottleMixin, AuthenticationForm):
    """The portal's sign-in page."""


class AdminSigninForm(SigninThrottleMixin, AdminAuthenticationForm):
    """The admin site's sign-in page: the same counts and locks as the portal's, or it would be the way around them."""


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, for example 'deploy script'.")
    lifetime_days = forms.TypedChoiceField(
        label="Expires after",
        coerce=int,
        initial=90,
        choices=[(7, "7 days"), (30, "30 days"), (90, "90 days"), (MAX_LIFETIME_DAYS, "1 year")],
    )
