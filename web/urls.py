"""The web application's pages. Each area keeps its own list (web/urls_*.py); all share the
`web:` namespace."""

from django.urls import path

from web import (
    urls_console_cases,
    urls_console_compare,
    urls_console_protocols,
    urls_console_sign,
    urls_console_work,
    urls_partner,
    urls_reports,
    urls_vendor,
)
from web.views import accounts, home

app_name = "web"

urlpatterns = [
    path("", home.home, name="home"),
    path("accounts/login/", accounts.SignInView.as_view(), name="login"),
    path("accounts/logout/", accounts.auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", accounts.PasswordChangeView.as_view(), name="password-change"),
    path("accounts/second-factor/", accounts.second_factor, name="second-factor"),
    *urls_vendor.urlpatterns,
    *urls_reports.urlpatterns,
    *urls_partner.urlpatterns,
    *urls_console_work.urlpatterns,
    *urls_console_protocols.urlpatterns,
    *urls_console_cases.urlpatterns,
    *urls_console_sign.urlpatterns,
    *urls_console_compare.urlpatterns,
]
