from django.urls import path

from flags import ofrep

app_name = "ofrep"

urlpatterns = [
    path("v1/evaluate/flags", ofrep.evaluate_flags, name="evaluate-flags"),
    path("v1/evaluate/flags/<str:key>", ofrep.evaluate_flag, name="evaluate-flag"),
]
