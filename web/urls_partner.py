"""The partner's pages: datasets, imports, grants, the usage log. (Placeholders until the area
lands.)"""

from django.urls import path

from web.views.not_built import not_built

urlpatterns = [
    path("datasets/", not_built, name="datasets"),
    path("grants/", not_built, name="grants"),
    path("usage/", not_built, name="usage"),
]
