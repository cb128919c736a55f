"""`manage.py require_second_factor ORGANISATION on|off`

Require (or stop requiring) a TOTP second factor of every member of an organisation: after their
password, members set up an authenticator app (a QR code on the page) at their next sign-in and
confirm a code at every sign-in after. Recorded (organisation.second_factor_required) with the
operator as the system actor."""

from django.core.management.base import BaseCommand, CommandError

from validation.models import Organisation
from validation.services.accounts import organisation_require_second_factor


class Command(BaseCommand):
    help = "Require (on) or stop requiring (off) a TOTP second factor of an organisation."

    def add_arguments(self, parser):
        parser.add_argument("organisation", help="the organisation's exact name")
        parser.add_argument("state", choices=["on", "off"])

    def handle(self, *args, **options):
        organisation = Organisation.objects.filter(name=options["organisation"]).first()
        if organisation is None:
            names = ", ".join(Organisation.objects.order_by("name").values_list("name", flat=True))
            raise CommandError(f"No organisation named {options['organisation']!r}. Known: {names}")
        required = options["state"] == "on"
        organisation_require_second_factor(actor=None, organisation=organisation, required=required)
        self.stdout.write(
            f"{organisation.name}: second factor {'required' if required else 'not required'}."
        )
