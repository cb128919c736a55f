"""Reports, verification, dataset cards and API tokens. (Placeholders until the area lands.)"""

from django.urls import path

from web.views.not_built import not_built

urlpatterns = [
    path("reports/", not_built, name="reports"),
    path("verify/", not_built, name="verify"),
    path("dataset-cards/", not_built, name="dataset-cards"),
    path("tokens/", not_built, name="tokens"),
]
