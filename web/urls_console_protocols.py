"""The review console's protocols screens (issue 16)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
