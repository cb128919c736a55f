import pytest

from reports.canonical import UNHASHED_KEYS, content_sha256
from reports.models import Report
from tests.factories import RunFactory
from tests.support.sample_document import sample_document
from validation.models import ValidationRun


@pytest.fixture
def report(world):
    """A drafted report of a run awaiting signature: the sample document, review then approval."""
    run = RunFactory.create(status=ValidationRun.Status.AWAITING_SIGNATURE)
    document = {k: v for k, v in sample_document().items() if k not in UNHASHED_KEYS}
    return Report.objects.create(
        run=run,
        document=document,
        content_sha256=content_sha256(document),
        required_signatures=["reviewed", "approved"],
    )
