from django.db import migrations

from audit.immutability import install_append_only


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial")]
    operations = [
        install_append_only("reports_signature"),
        install_append_only("reports_report", frozen_when="OLD.issued_at IS NOT NULL"),
    ]
