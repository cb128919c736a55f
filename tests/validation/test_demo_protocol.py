"""`manage.py demo --protocol FILE`: a bad protocol is refused before anything is created."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from validation.models import Dataset, ModelPackage, Organisation, Protocol

pytestmark = pytest.mark.django_db


def test_an_invalid_protocol_is_refused_with_its_errors_and_nothing_created(tmp_path):
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps({"schema_version": "1.0", "min_cell_size": 0}))
    with pytest.raises(CommandError) as caught:
        call_command("demo", protocol=path)
    message = str(caught.value)
    assert "is invalid" in message and "min_cell_size" in message and "'task'" in message
    assert not Organisation.objects.exists() and not Dataset.objects.exists()
    assert not ModelPackage.objects.exists() and not Protocol.objects.exists()


def test_an_unreadable_protocol_is_refused(tmp_path):
    path = tmp_path / "protocol.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="Cannot read the protocol"):
        call_command("demo", protocol=path)
