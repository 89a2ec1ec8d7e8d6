from rest_framework.routers import SimpleRouter

from scorecards.api import views

router = SimpleRouter()
router.register("scorecards", views.ScorecardViewSet, basename="scorecard")
router.register("scores", views.ScoreViewSet, basename="score")
router.register("score-history", views.ScoreDayViewSet, basename="score-day")
router.register("initiatives", views.InitiativeViewSet, basename="initiative")
urlpatterns = router.urls
