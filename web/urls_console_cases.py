"""The review console's cases screens (issue 16)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
