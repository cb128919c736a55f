"""The vendor portal: packages, runs and their results. (Placeholders until the area lands.)"""

from django.urls import path

from web.views.not_built import not_built

urlpatterns = [
    path("packages/", not_built, name="packages"),
    path("packages/upload/", not_built, name="package-upload"),
    path("runs/", not_built, name="runs"),
]
