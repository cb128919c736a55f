"""The review console's work screens (issue 16)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
