from django.contrib import admin
from django.urls import include, path, re_path
from django.views import defaults

from validation.api.errors import (
    api_bad_request,
    api_not_found,
    api_server_error,
    is_api_request,
)

urlpatterns = [
    path("", include("web.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("validation.api.urls")),
    # Last: any other /api/v1/ path answers a problem document, whatever DEBUG says.
    re_path(r"^api/v1/", api_not_found),
]


# Errors outside DRF's views: /api/v1/ answers problem documents, the web app its pages.
def handler400(request, exception=None):
    if is_api_request(request):
        return api_bad_request(request, exception)
    return defaults.bad_request(request, exception)


def handler404(request, exception=None):
    if is_api_request(request):
        return api_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if is_api_request(request):
        return api_server_error(request)
    return defaults.server_error(request)
