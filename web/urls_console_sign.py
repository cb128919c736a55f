"""The review console's sign screens (issue 16)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
