from django.conf import settings
from django.http import HttpRequest

from web.navigation import navigation_for


def navigation(request: HttpRequest) -> dict:
    if not request.user.is_authenticated:
        return {"navigation": [], "session_idle_minutes": settings.SESSION_IDLE_SECONDS // 60}
    return {
        "navigation": navigation_for(request),
        "session_idle_minutes": settings.SESSION_IDLE_SECONDS // 60,
    }
