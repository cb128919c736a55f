"""Sign-in (password, then a TOTP code where one is required), sign-out, password change."""

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction
from validation.errors import ApplicationError
from validation.services.accounts import account_event, totp_device_confirm, totp_device_pending


class SignInView(auth_views.LoginView):
    template_name = "web/accounts/login.html"
    redirect_authenticated_user = True


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "web/accounts/password_change.html"
    success_url = reverse_lazy("web:home")

    def form_valid(self, form):
        response = super().form_valid(form)
        account_event(
            user=self.request.user,
            action=AuditAction.ACCOUNT_PASSWORD_CHANGED,
            request=self.request,
        )
        messages.success(self.request, "Your password was changed.")
        return response


def locked_out(request: HttpRequest, credentials: dict | None = None, *args, **kwargs):
    """django-axes' answer to a locked username: the sign-in page, saying why and for how long."""
    minutes = round(settings.AXES_COOLOFF_TIME * 60)
    return render(
        request,
        "web/accounts/login.html",
        {
            "locked_out": True,
            "lockout_minutes": minutes,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
        },
        status=429,
    )


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return str(settings.LOGIN_REDIRECT_URL)


@login_required
@require_http_methods(["GET", "POST"])
def second_factor(request: HttpRequest) -> HttpResponse:
    """Confirm a code from the user's authenticator; with none yet, set one up (QR code and
    secret shown on this page, confirmed by a first code)."""
    user = request.user
    if user.is_verified():  # type: ignore[union-attr]
        return redirect(_safe_next(request))
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    pending = None if device else totp_device_pending(user=user)
    error = ""
    if request.method == "POST":
        token = request.POST.get("token", "")
        try:
            if device is not None:
                if not device.verify_token(token.strip().replace(" ", "")):
                    raise ApplicationError("That code is not right. Codes change every 30 seconds.")
                verified = device
            else:
                assert pending is not None
                verified = totp_device_confirm(
                    user=user, device=pending, token=token, request=request
                )
            otp_login(request, verified)
            return redirect(_safe_next(request))
        except ApplicationError as exc:
            error = exc.message
    context = {"error": error, "next": _safe_next(request), "setting_up": device is None}
    if pending is not None:
        context["qr_data_uri"] = segno.make(pending.config_url, error="m").svg_data_uri(scale=4)
        context["secret"] = _base32(pending.bin_key)
    return render(request, "web/accounts/second_factor.html", context, status=400 if error else 200)


def _base32(key: bytes) -> str:
    import base64

    text = base64.b32encode(key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))
