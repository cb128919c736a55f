from django.db import migrations

from audit.immutability import install_append_only


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [install_append_only("audit_auditevent")]
