from django.db import migrations

from audit.immutability import install_append_only


class Migration(migrations.Migration):
    dependencies = [("validation", "0001_initial")]
    operations = [
        install_append_only("validation_protocol", frozen_when="OLD.locked_at IS NOT NULL"),
        install_append_only("validation_datasetversion", frozen_when="OLD.status = 'sealed'"),
    ]
