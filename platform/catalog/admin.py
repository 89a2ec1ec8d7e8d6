from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from catalog.models import Dependency, Service, System, Tag


@admin.register(Service)
class ServiceAdmin(GuardedModelAdmin):
    list_display = ["name", "slug", "owner", "system", "lifecycle", "tier"]
    list_filter = ["lifecycle", "tier"]
    search_fields = ["name", "slug"]
    readonly_fields = ["owner"]  # ownership moves through the transfer flow, which moves permissions too


@admin.register(System)
class SystemAdmin(GuardedModelAdmin):
    list_display = ["name", "slug", "owner"]
    readonly_fields = ["owner"]


admin.site.register(Dependency)
admin.site.register(Tag)
