"""A scored run whose cases carry real stored DICOM (pydicom's own test images, stored through
the sequestered store with their hash) and real Grad-CAM maps, for the console's case pages."""

import hashlib
import io

import numpy as np
import pydicom
from django.utils import timezone
from pydicom.data import get_testdata_file

from tests.factories import (
    CaseFactory,
    DatasetVersionFactory,
    ProtocolFactory,
    RunFactory,
    protocol_document,
)
from tests.web.vendor_helpers import package_of
from validation.dicom.ingest import mask_bbox
from validation.dicom.pixels import dicom_attributes
from validation.models import Case, Explanation, Prediction, ValidationRun
from validation.protocol_document import protocol_hash, with_defaults
from validation.services.scoring import run_compute_metrics
from validation.stats.localisation import cam_to_uint8, localisation_agreement
from validation.storage import sequestered_put


def disc_mask(rows: int, columns: int) -> np.ndarray:
    """A reference mask as import stores one (uint8, the image's size): a disc with a hole."""
    y, x = np.mgrid[0:rows, 0:columns]
    r = np.hypot(y - rows * 0.4, x - columns * 0.4)
    return ((r < rows * 0.2) & (r >= rows * 0.06)).astype(np.uint8)


def dicom_fields(name: str = "MR_small.dcm", site: str = "North", masked: bool = False) -> dict:
    """The fields of a case whose real DICOM file is stored (with its hash) in the sequestered
    store, and the attributes ingest reads from it. Cases are append-only: set at creation.
    `masked`: with a reference mask stored as import stores one (a uint8 .npy with its hash,
    validation.services.datasets._stage_mask) and its bounding box as the ROI."""
    path = get_testdata_file(name)
    assert isinstance(path, str)
    with open(path, "rb") as fh:
        data = fh.read()
    sha = hashlib.sha256(data).hexdigest()
    relative = f"cases/{sha[:2]}/{sha}.dcm"
    sequestered_put(relative, data)
    ds = pydicom.dcmread(io.BytesIO(data))
    rows, columns = int(ds.Rows), int(ds.Columns)
    fields: dict[str, object] = {
        "file_path": relative,
        "file_sha256": sha,
        "attributes": {**dicom_attributes(ds), "site": site},
        "roi": [columns // 4, rows // 4, columns // 2, rows // 2],
    }
    if masked:
        mask = disc_mask(rows, columns)
        buffer = io.BytesIO()
        np.save(buffer, mask, allow_pickle=False)
        npy = buffer.getvalue()
        mask_sha = hashlib.sha256(npy).hexdigest()
        mask_path = f"packs/test/masks/{mask_sha[:2]}/{mask_sha}.npy"
        sequestered_put(mask_path, npy)
        fields.update(mask_path=mask_path, mask_sha256=mask_sha, roi=mask_bbox(mask))
    return fields


def explain(run, case: Case) -> Explanation:
    """A Grad-CAM map peaking inside the case's ROI, with its localisation agreement."""
    cam = np.zeros((16, 16))
    cam[5:7, 5:7] = 1.0
    rows, columns = case.attributes["rows"], case.attributes["columns"]
    hit, energy = localisation_agreement(cam, case.roi, source_shape=(rows, columns))
    buf = io.BytesIO()
    np.save(buf, cam_to_uint8(cam), allow_pickle=False)
    return Explanation.objects.create(
        run=run, case=case, cam_npy=buf.getvalue(), pointing_hit=hit, energy_in_roi=energy
    )


def imaged_run(world, *, n=24, with_images=6, other=False, masked=False):
    """A run scored by the real scoring service (as tests.web.vendor_helpers.scored_run: sex
    F/M evenly plus one 'X'); its first `with_images` cases carry stored DICOM, a ROI and a
    Grad-CAM map; sites North and South alternate. `other`: vendor B and partner B's. `masked`:
    those cases' ROI is a stored mask (dicom_fields)."""
    document = with_defaults(
        protocol_document(
            min_cell_size=5,
            acceptance_criteria=[
                {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.5}
            ],
        )
    )
    protocol = ProtocolFactory.create(
        document=document, sha256=protocol_hash(document), locked_at=timezone.now()
    )
    version = DatasetVersionFactory.create()
    version.dataset.partner = world.partner_b if other else world.partner_a
    version.dataset.save()
    run = RunFactory.create(
        package=package_of(world.vendor_b if other else world.vendor_a),
        dataset_version=version,
        protocol=protocol,
        status=ValidationRun.Status.AWAITING_SIGNATURE,
        cases_total=n,
        cases_done=n,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    rng = np.random.default_rng(5)
    for i in range(n):
        label = i % 2
        sex = "X" if i == n - 1 else ("F" if i % 4 < 2 else "M")
        site = "North" if i % 3 else "South"
        fields = (
            dicom_fields(site=site, masked=masked)
            if i < with_images
            else {"attributes": {"site": site}}
        )
        fields["attributes"]["sex"] = sex
        case = CaseFactory.create(
            dataset_version=version, case_id=f"case-{i:03d}", label=label, **fields
        )
        score = float(np.clip(0.3 + 0.4 * label + rng.normal(0, 0.2), 0.01, 0.99))
        Prediction.objects.create(run=run, case=case, score=score)
        if i < with_images:
            explain(run, case)
    run_compute_metrics(run)
    return run
