from django.urls import path

from reviews import views

app_name = "reviews"
urlpatterns = [
    path("", views.campaign_list, name="campaign-list"),
    path("new/", views.campaign_new, name="campaign-new"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="campaign-detail"),
    path("campaigns/<int:pk>/close/", views.campaign_close, name="campaign-close"),
    path("campaigns/<int:pk>/confirm/", views.items_confirm, name="items-confirm"),
    path("items/<int:pk>/", views.item_detail, name="item-detail"),
    path("handovers/<int:pk>/", views.handover_detail, name="handover-detail"),
    path("orphans/", views.orphan_list, name="orphan-list"),
    path("teams/<slug:slug>/", views.team_review, name="team-review"),
    path("teams/<slug:slug>/confirm/", views.team_confirm, name="team-confirm"),
    path("reorganise/", views.reorganise, name="reorganise"),
]
