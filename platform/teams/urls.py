from django.urls import path

from teams import views

app_name = "teams"
urlpatterns = [
    path("", views.team_list, name="team-list"),
    path("new/", views.team_create, name="team-create"),
    path("<slug:slug>/", views.team_detail, name="team-detail"),
    path("<slug:slug>/edit/", views.team_edit, name="team-edit"),
    path("<slug:slug>/members/", views.membership_add, name="membership-add"),
    path("<slug:slug>/members/<int:pk>/remove/", views.membership_remove, name="membership-remove"),
]
