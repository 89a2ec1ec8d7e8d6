"""Template context shared by every page."""

from django.http import HttpRequest

NAVIGATION = [
    ("Catalog", "catalog:service-list", "catalog"),
    ("Teams", "teams:team-list", "teams"),
    ("Create", "scaffolder:list", "create"),
    ("Deployments", "deployments:board", "deployments"),
    ("Insights", "portal:insights", "insights"),
    ("Governance", "audit:event-list", "governance"),
]


def navigation(request: HttpRequest) -> dict[str, object]:
    """The main navigation, with the section of the current page marked."""
    match = getattr(request, "resolver_match", None)
    namespace = match.namespace if match else ""
    section = {
        "catalog": "catalog",
        "teams": "teams",
        "audit": "governance",
        "governance": "governance",
        "reviews": "governance",
        "scorecards": "governance",
        "scaffolder": "create",
        "techdocs": "catalog",
        "deployments": "deployments",
        "incidents": "insights",
    }.get(namespace, "")
    if match and namespace == "portal":
        section = match.url_name or ""
        if section.startswith("insights"):  # the organisation's page and its team, system and service pages
            section = "insights"
    if match and namespace == "scaffolder" and (match.url_name or "").startswith(("update", "repository")):
        section = "catalog"  # a service's repository and its golden path updates belong with the service
    return {"navigation": NAVIGATION, "nav_section": section}
