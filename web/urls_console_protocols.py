"""The review console's protocols screens (issue 16)."""

from django.urls import URLPattern, path

from web.views import console_protocols as views

urlpatterns: list[URLPattern] = [
    path("console/protocols/", views.protocol_list, name="console-protocols"),
    path("console/protocols/new/", views.protocol_new, name="console-protocol-new"),
    path("console/protocols/validate/", views.protocol_validate, name="console-protocol-validate"),
    path("console/protocols/<int:pk>/", views.protocol_detail, name="console-protocol"),
    path(
        "console/protocols/<int:pk>/new-version/",
        views.protocol_new_version,
        name="console-protocol-new-version",
    ),
    path(
        "console/protocols/<int:pk>/lock/", views.protocol_lock_view, name="console-protocol-lock"
    ),
]
