from django.urls import path

from scorecards import views

app_name = "scorecards"
urlpatterns = [
    path("", views.scorecard_list, name="scorecard-list"),
    path("new/", views.scorecard_edit, name="scorecard-new"),
    path("initiatives/", views.initiative_list, name="initiative-list"),
    path("initiatives/new/", views.initiative_new, name="initiative-new"),
    path("initiatives/<slug:name>/", views.initiative_detail, name="initiative-detail"),
    path("initiatives/<slug:name>/end/", views.initiative_end, name="initiative-end"),
    path("<slug:name>/", views.scorecard_detail, name="scorecard-detail"),
    path("<slug:name>/edit/", views.scorecard_edit, name="scorecard-edit"),
    path("<slug:name>/rescore/", views.scorecard_rescore, name="scorecard-rescore"),
]
