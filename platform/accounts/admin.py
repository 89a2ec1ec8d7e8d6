from django.contrib import admin

from accounts.forms import AdminSigninForm
from accounts.models import ApiToken

admin.site.login_form = AdminSigninForm  # throttled as the portal's sign-in page is


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]
