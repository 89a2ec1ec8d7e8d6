from django.contrib import admin

from deployments.models import Environment

admin.site.register(Environment)
