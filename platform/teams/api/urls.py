from rest_framework.routers import SimpleRouter

from teams.api import views

router = SimpleRouter()
router.register("teams", views.TeamViewSet, basename="team")
router.register("memberships", views.MembershipViewSet, basename="membership")
urlpatterns = router.urls
