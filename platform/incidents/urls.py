from django.urls import path

from incidents import postmortem_views, views

app_name = "incidents"
urlpatterns = [
    path("", views.incident_list, name="list"),
    path("new/", views.incident_new, name="new"),
    path("receivers/", views.receivers, name="receivers"),
    path("receivers/<int:pk>/revoke/", views.receiver_revoke, name="receiver-revoke"),
    path("<int:pk>/", views.incident_detail, name="detail"),
    path("<int:pk>/edit/", views.incident_edit, name="edit"),
    path("<int:pk>/updates/", views.incident_post_update, name="update"),
    path("<int:pk>/links/", views.incident_link, name="link"),
    path("<int:pk>/links/<int:deployment_pk>/delete/", views.incident_unlink, name="unlink"),
    path("<int:pk>/rollback/<int:deployment_pk>/", views.incident_rollback, name="rollback"),
    path("postmortems/", postmortem_views.postmortem_list, name="postmortems"),
    path("<int:pk>/postmortem/", postmortem_views.postmortem_page, name="postmortem"),
    path("<int:pk>/postmortem/state/<str:state>/", postmortem_views.postmortem_state, name="postmortem-state"),
    path("<int:pk>/postmortem/lessons/", postmortem_views.lesson_add, name="lesson-add"),
    path(
        "<int:pk>/postmortem/lessons/<int:lesson_pk>/<str:kind>/",
        postmortem_views.lesson_document,
        name="lesson-document",
    ),
    path("<int:pk>/postmortem/actions/", postmortem_views.action_add, name="action-add"),
    path("<int:pk>/postmortem/actions/<int:action_pk>/", postmortem_views.action_status, name="action-status"),
]
