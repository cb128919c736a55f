"""Django's and django-axes' sign-in signals, written into the record through the services."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.models import AuditAction
from validation.services.accounts import (
    account_event,
    account_locked_out,
    account_sign_in_failed,
)


@receiver(user_logged_in, dispatch_uid="blindspot-signed-in")
def _signed_in(sender, request, user, **kwargs) -> None:
    account_event(user=user, action=AuditAction.ACCOUNT_SIGNED_IN, request=request)


@receiver(user_logged_out, dispatch_uid="blindspot-signed-out")
def _signed_out(sender, request, user, **kwargs) -> None:
    if user is not None and not getattr(request, "_blindspot_session_expired", False):
        account_event(user=user, action=AuditAction.ACCOUNT_SIGNED_OUT, request=request)


@receiver(user_login_failed, dispatch_uid="blindspot-sign-in-failed")
def _sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    account_sign_in_failed(username=str(credentials.get("username", ""))[:150], request=request)


@receiver(user_locked_out, dispatch_uid="blindspot-locked-out")
def _locked_out(sender, request, username, ip_address, **kwargs) -> None:
    account_locked_out(username=str(username or "")[:150], request=request)
