"""Form helpers shared by every app: inline validation as you type, through htmx."""

import json
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

VALIDATE_FLAG = "_validate"


class InlineValidationMixin:
    """Each field asks the server to validate the form as the user types and shows its own errors.

    The request posts the whole form (htmx includes the enclosing form's values) with `_validate=<field>`;
    the view answers with that field's errors only, so the input being typed into is never replaced.
    """

    fields: dict[str, forms.Field]

    def enable_inline_validation(self, url: str) -> None:
        for name, field in self.fields.items():
            field.widget.attrs.update(
                {
                    "hx-post": url,
                    "hx-trigger": "input changed delay:400ms, change",
                    "hx-target": f"#errors-{name}",
                    "hx-swap": "outerHTML",
                    "hx-vals": json.dumps({VALIDATE_FLAG: name}),
                    "hx-sync": "this:replace",
                    "aria-describedby": f"errors-{name}",
                }
            )


def validation_response(request: HttpRequest, form: forms.BaseForm) -> HttpResponse | None:
    """For an inline-validation request, the errors of the field being edited; otherwise None."""
    name = request.POST.get(VALIDATE_FLAG)
    if not (request.htmx and name and name in form.fields):  # type: ignore[attr-defined]
        return None
    form.is_valid()
    return render(request, "portal/_field_errors.html", {"field": form[name]})


def apply_errors(form: forms.BaseForm, error: Any) -> None:
    """Attach a service's ValidationError to the form: field errors on their fields, the rest on the form."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)
