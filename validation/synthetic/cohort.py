"""Synthetic chest-radiograph cohorts for demos, tests and benchmarks (brief, section 3).

The point is not photo-realism but a cohort on which the platform's findings are real: several
sites whose acquisition differs (bit depth, contrast, noise, resolution, MONOCHROME1 vs 2), a
lesion a small CNN can learn but not trivially, and a controllable noise shift on one
manufacturer so a model trained mostly on the others is measurably worse there. Site populations
differ in race mix, as real catchment areas do, so a site shift also surfaces as a subgroup gap.

Everything is deterministic for a seed: each case draws from its own generator seeded by
(seed, stream, case index), so one case does not depend on how many others were generated.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from scipy.ndimage import gaussian_filter

from validation.dicom.pixels import DicomImage, InputSpec, resize, to_model_input

# Quantum-noise std per site (fraction of full range, at noise_scale 1): Acme, Borealis, Cobalt.
NOISE = (0.035, 0.045, 0.04)

DX_SOP_CLASS = UID("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray Image Storage - For Presentation
CR_SOP_CLASS = UID("1.2.840.10008.5.1.4.1.1.1")  # Computed Radiography Image Storage
MANIFEST_COLUMNS = [
    "case_id",
    "file",
    "label",
    "roi_x0",
    "roi_y0",
    "roi_x1",
    "roi_y1",
    "race",
    "site",
]
RACES = ("White", "Black", "Asian", "Other")

# Per-case generator streams, so a training set and a cohort made with the same seed differ.
_STREAM_COHORT, _STREAM_IMAGE, _STREAM_TRAINING = 1, 2, 3


@dataclass(frozen=True)
class SiteProfile:
    """One acquisition site: scanner, physics knobs and who it serves."""

    code: str
    manufacturer: str
    model: str
    institution: str
    modality: str  # "DX" or "CR"
    photometric: str  # how pixels are stored; MONOCHROME1 means bright = less dense
    pixel_spacing: float  # mm
    kvp: float
    bits_stored: int
    noise: float  # quantum-noise std as a fraction of the full range, at noise_scale 1
    contrast: float  # gain on anatomy around mid-grey
    size: int  # native square resolution, small so 200 cases take seconds
    share: float  # default share of cases in a cohort
    race_mix: tuple[float, float, float, float]  # proportions for RACES


SITES: tuple[SiteProfile, ...] = (
    SiteProfile(
        code="NORTHFIELD",
        manufacturer="Acme Medical",
        model="Acme DR-500",
        institution="Northfield General Hospital",
        modality="DX",
        photometric="MONOCHROME2",
        pixel_spacing=0.139,
        kvp=120.0,
        bits_stored=12,
        noise=NOISE[0],
        contrast=1.0,
        size=192,
        share=0.40,
        race_mix=(0.72, 0.10, 0.10, 0.08),
    ),
    SiteProfile(
        code="LAKESIDE",
        manufacturer="Borealis Imaging",
        model="Aurora CR-2",
        institution="Lakeside University Clinic",
        modality="CR",
        photometric="MONOCHROME1",
        pixel_spacing=0.2,
        kvp=110.0,
        bits_stored=14,
        noise=NOISE[1],
        contrast=0.85,
        size=160,
        share=0.35,
        race_mix=(0.55, 0.12, 0.25, 0.08),
    ),
    SiteProfile(
        code="HARBOR",
        manufacturer="Cobalt Systems",
        model="Cobalt XR-9",
        institution="Harbor Community Medical Center",
        modality="DX",
        photometric="MONOCHROME2",
        pixel_spacing=0.125,
        kvp=125.0,
        bits_stored=16,
        noise=NOISE[2],
        contrast=1.1,
        size=224,
        share=0.25,
        race_mix=(0.35, 0.45, 0.08, 0.12),
    ),
)

TRAINING_INPUT_SPEC = {
    "channels": 1,
    "height": 64,
    "width": 64,
    "scaling": {"method": "percentile", "low": 0.5, "high": 99.5},
    "resize": "area",
    "mean": [0.5],
    "std": [0.25],
}

Roi = tuple[int, int, int, int]

# Anatomy layout in patient coordinates ([-1, 1] across the image before jitter).
LUNG_U, LUNG_V = 0.42, -0.05
HEART_U, HEART_V = 0.1, 0.32
# Noise grain (px), lesion radius (fraction of the image) and peak contrast (fraction of range).
# Tuned so that a small CNN trained on 2,000 images reaches AUC ~0.9-0.95 on clean scanners, and
# a 2.5x noisier scanner measurably less: hard enough to rank, easy enough to learn.
NOISE_CORRELATION_PX = 1.0
LESION_SIGMA = (0.05, 0.09)
LESION_AMP = (0.15, 0.30)


def site_by(key: str) -> SiteProfile:
    """Look a site up by code or manufacturer name (callers and shifts use either)."""
    for site in SITES:
        if key in (site.code, site.manufacturer):
            return site
    names = ", ".join(f"{s.code}/{s.manufacturer}" for s in SITES)
    raise ValueError(f"unknown site or manufacturer {key!r}; known: {names}")


# --- images -------------------------------------------------------------------------------------


def _ellipse(u: np.ndarray, v: np.ndarray, cx, cy, a, b, edge) -> np.ndarray:
    """Soft-edged ellipse mask in [0, 1]; soft edges avoid aliasing the CNN could latch onto."""
    r = np.sqrt(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2)
    return 1.0 / (1.0 + np.exp((r - 1.0) / edge))


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-std Gaussian random field; wide ones are drawn coarse and upsampled, for speed."""
    step = max(1, int(sigma // 3))
    coarse = -(-n // step)
    field = gaussian_filter(rng.standard_normal((coarse, coarse)), sigma=sigma / step, mode="wrap")
    if step > 1:
        field = resize(field, n, n, "bilinear")
    return field / (field.std() + 1e-12)


def synth_image(
    rng: np.random.Generator, *, label: int, site: SiteProfile, noise_scale: float = 1.0
) -> tuple[np.ndarray, Roi | None]:
    """One PA chest-like radiograph as stored values (uint16, bright = dense) and its lesion ROI.

    The ROI is (x0, y0, x1, y1), half-open: ``img[y0:y1, x0:x1]`` holds the lesion out to two
    standard deviations. Every random draw happens whatever the label, so the same generator state
    with label 0 and 1 gives the same patient with and without the lesion (a paired counterfactual
    that tests and demos use). `noise_scale` multiplies the quantum noise only.
    """
    n = site.size
    coords = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    u, v = np.meshgrid(coords, coords)  # u: left-right, v: top-bottom, both in [-1, 1]

    # Patient: position, size and build vary; the lungs breathe a little.
    dx, dy = rng.uniform(-0.05, 0.05, size=2)
    scale = rng.uniform(0.9, 1.04)
    pu, pv = (u - dx) / scale, (v - dy) / scale
    lung_w, lung_h = rng.uniform(0.28, 0.33), rng.uniform(0.55, 0.65)
    heart_w = rng.uniform(0.26, 0.34)
    rib_period, rib_phase = rng.uniform(0.16, 0.2), rng.uniform(0, 1)
    tilt = rng.normal(0.0, 0.03, size=2)
    vessels = _smooth_noise(rng, n, sigma=n * 0.012)
    haze = _smooth_noise(rng, n, sigma=n * 0.06)

    body = _ellipse(pu, pv, 0.0, 0.35, 0.98, 1.25, 0.03)
    lungs = np.maximum(
        _ellipse(pu, pv, -LUNG_U, LUNG_V, lung_w, lung_h, 0.05),
        _ellipse(pu, pv, LUNG_U, LUNG_V + 0.02, lung_w * 1.04, lung_h * 0.95, 0.05),
    )
    heart = _ellipse(pu, pv, HEART_U, HEART_V, heart_w, 0.24, 0.06)
    spine = body / (1.0 + np.exp((np.abs(pu) - 0.09) / 0.02))
    ribs = (0.5 + 0.5 * np.cos(2 * np.pi * ((pv + 0.35 * pu**2) / rib_period + rib_phase))) ** 4

    density = 0.06 + 0.40 * body + 0.12 * spine + tilt[0] * u + tilt[1] * v
    density -= 0.24 * lungs * (1 - heart)
    density += 0.03 * heart + 0.05 * ribs * lungs * body
    density += lungs * (0.018 * vessels + 0.02 * haze)

    # Lesion: a soft round opacity in a lung field, away from the heart shadow.
    (lu, lv), sigma_frac, amplitude = _lesion_params(rng, lung_w, lung_h, heart_w)
    cu, cv = lu * scale + dx, lv * scale + dy  # back to image coordinates
    sigma = sigma_frac * scale
    if label:
        density += amplitude * np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * sigma**2))

    # Detector: site contrast, then Poisson-like noise whose variance grows with the signal.
    signal = np.clip(0.1 + 0.75 * (0.5 + site.contrast * (density - 0.5)), 0.0, 1.0)
    grain = _smooth_noise(rng, n, sigma=NOISE_CORRELATION_PX)
    noise = grain * site.noise * noise_scale * np.sqrt(0.3 + signal)
    full = 2**site.bits_stored - 1
    stored = np.clip(np.rint((signal + noise) * full), 0, full).astype(np.uint16)

    if not label:
        return stored, None
    to_px = n / 2.0
    half = 2 * sigma * to_px
    px, py = (cu + 1) * to_px, (cv + 1) * to_px
    box = (
        max(0, int(np.floor(px - half))),
        max(0, int(np.floor(py - half))),
        min(n, int(np.ceil(px + half))),
        min(n, int(np.ceil(py + half))),
    )
    return stored, box


def _lesion_params(rng, lung_w, lung_h, heart_w):
    """Lesion centre (patient coordinates), size and strength; retries stay deterministic."""
    side = rng.choice([-1.0, 1.0])
    for _ in range(100):
        r, theta = np.sqrt(rng.uniform(0, 1)) * 0.7, rng.uniform(0, 2 * np.pi)
        lu = side * LUNG_U + r * lung_w * np.cos(theta)
        lv = LUNG_V + r * lung_h * np.sin(theta)
        outside_heart = ((lu - HEART_U) / (heart_w + 0.08)) ** 2 + ((lv - HEART_V) / 0.32) ** 2 > 1
        if outside_heart:
            break
    sigma = rng.uniform(LESION_SIGMA[0], LESION_SIGMA[1])
    amplitude = rng.uniform(LESION_AMP[0], LESION_AMP[1])
    return (lu, lv), sigma, amplitude


def as_stored(image: np.ndarray, site: SiteProfile) -> np.ndarray:
    """Bright-dense values to how the site stores them (inverted for MONOCHROME1)."""
    if site.photometric == "MONOCHROME1":
        return (2**site.bits_stored - 1 - image.astype(np.int32)).astype(np.uint16)
    return image


def _window(stored: np.ndarray) -> tuple[int, int]:
    """The window a modality would put in the header: 1st..99th percentile of stored values."""
    lo, hi = np.percentile(stored, [1, 99])
    return int(round((lo + hi) / 2)), max(2, int(round(hi - lo)))


# --- files --------------------------------------------------------------------------------------


def _dicom_dataset(
    *, stored: np.ndarray, site: SiteProfile, case_id: str, seed: int, demographics: dict
) -> Dataset:
    def uid(kind: str) -> UID:
        return generate_uid(entropy_srcs=["blindspot-cohort", str(seed), case_id, kind])

    sop_class = DX_SOP_CLASS if site.modality == "DX" else CR_SOP_CLASS
    sop_instance = uid("sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.FrameOfReferenceUID = uid("frame")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = demographics["study_date"]
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = demographics["study_time"]
    ds.AccessionNumber = ""
    ds.StudyID = case_id
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Modality = site.modality
    ds.Manufacturer = site.manufacturer
    ds.ManufacturerModelName = site.model
    ds.InstitutionName = site.institution
    ds.ReferringPhysicianName = ""
    # Already pseudonymised, as a partner export would be (PS3.15 basic profile).
    ds.PatientName = f"ANON-{case_id}"
    ds.PatientID = f"ANON-{case_id}"
    ds.PatientBirthDate = ""
    ds.PatientSex = demographics["sex"]
    ds.PatientAge = f"{demographics['age']:03d}Y"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic data; PS3.15 basic profile"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.KVP = site.kvp
    ds.PixelSpacing = [site.pixel_spacing, site.pixel_spacing]
    ds.ImagerPixelSpacing = [site.pixel_spacing, site.pixel_spacing]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = site.photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = site.bits_stored
    ds.HighBit = site.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if site.photometric == "MONOCHROME1" else 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter, ds.WindowWidth = _window(stored)
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


# Study dates fall on FIRST_STUDY_DAY and the STUDY_DAYS - 1 days after it; ages are clipped.
FIRST_STUDY_DAY = dt.date(2023, 1, 2)
STUDY_DAYS = 730
MIN_AGE, MAX_AGE = 18, 90


def _demographics(rng: np.random.Generator, site: SiteProfile) -> dict:
    day = FIRST_STUDY_DAY + dt.timedelta(days=int(rng.integers(0, STUDY_DAYS)))
    seconds = int(rng.integers(7 * 3600, 19 * 3600))
    return {
        "sex": "F" if rng.random() < 0.5 else "M",
        "age": int(np.clip(np.rint(rng.normal(56, 16)), MIN_AGE, MAX_AGE)),
        "race": RACES[rng.choice(len(RACES), p=site.race_mix)],
        "study_date": day.strftime("%Y%m%d"),
        "study_time": f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
    }


def _parse_shift(shift: Mapping | None) -> tuple[SiteProfile | None, float]:
    if not shift:
        return None, 1.0
    unknown = sorted(set(shift) - {"manufacturer", "site", "noise_scale"})
    if unknown:
        raise ValueError(f"shift has unknown keys: {', '.join(unknown)}")
    key = shift.get("manufacturer") or shift.get("site")
    if not key:
        raise ValueError("shift needs a 'manufacturer' or 'site'")
    noise_scale = float(shift.get("noise_scale", 1.0))
    if not noise_scale > 0:
        raise ValueError("shift noise_scale must be > 0")
    return site_by(key), noise_scale


def cohort_study_card(*, seed: int, prevalence: float, shift: Mapping | None = None) -> dict:
    """The study card (validation/study_card.py) of a cohort `generate_cohort` writes with the
    same arguments: what the generator does, said as a data partner would say it, and that the
    cohort is synthetic."""
    last_day = FIRST_STUDY_DAY + dt.timedelta(days=STUDY_DAYS - 1)
    shifted_site, noise_scale = _parse_shift(shift)
    shifted = (
        f" Images from {shifted_site.manufacturer} scanners carry {noise_scale:g} times their "
        "usual noise (a deliberate scanner shift)."
        if shifted_site is not None and noise_scale != 1.0
        else ""
    )
    return {
        "schema_version": "1.0",
        "collection_period": {
            "start": FIRST_STUDY_DAY.isoformat(),
            "end": last_day.isoformat(),
        },
        "sites": [site.institution for site in SITES],
        "inclusion_criteria": [
            f"Adults aged {MIN_AGE} to {MAX_AGE}",
            "Single frontal (PA) chest radiograph, DX or CR",
        ],
        "exclusion_criteria": [
            "None applied: every generated image is in the dataset; unreadable or identifying "
            "files are kept as cases with their reason and excluded from scoring"
        ],
        "sampling": {
            "method": "enriched",
            "note": f"SYNTHETIC cohort, no real patients: generated by Blindspot's cohort "
            f"generator (validation/synthetic/cohort.py, seed {seed}); sites drawn by their "
            f"shares ({', '.join(f'{s.institution} {s.share:.0%}' for s in SITES)})." + shifted,
        },
        "prevalence": f"Enriched to a target of {prevalence:.0%} positive cases: exactly "
        f"round(cases x {prevalence:g}) cases carry a lesion, chosen at random.",
        "reference_standard": {
            "method": "Known by construction: the generator inserted each lesion and recorded "
            "its bounding box (synthetic ground truth, no clinical truthing)",
            "readers": 1,
            "reader_qualification": "No human reader: the one source of truth is the "
            "deterministic generator itself",
            "adjudication": "Not needed: a single deterministic source, no disagreement possible",
        },
    }


def generate_cohort(
    out_dir: Path,
    *,
    cases: int,
    seed: int,
    prevalence: float = 0.3,
    shift: dict | None = None,
) -> Path:
    """Write `cases` DICOM files under out_dir/dicom and a manifest; return the manifest path.

    Exactly round(cases * prevalence) cases are positive. `shift`, e.g.
    ``{"manufacturer": "Cobalt Systems", "noise_scale": 3.0}``, multiplies that site's noise; the
    same seed with and without a shift gives the same patients, labels and lesions.
    """
    if cases < 1:
        raise ValueError("cases must be >= 1")
    if not 0 <= prevalence <= 1:
        raise ValueError("prevalence must be between 0 and 1")
    shifted_site, shifted_noise = _parse_shift(shift)

    out_dir = Path(out_dir)
    (out_dir / "dicom").mkdir(parents=True, exist_ok=True)
    cohort_rng = np.random.default_rng([seed, _STREAM_COHORT])
    labels = np.zeros(cases, dtype=int)
    labels[cohort_rng.permutation(cases)[: int(round(cases * prevalence))]] = 1
    shares = np.array([s.share for s in SITES])
    site_idx = cohort_rng.choice(len(SITES), size=cases, p=shares / shares.sum())

    rows = []
    for i in range(cases):
        case_id = f"C{i + 1:05d}"
        site = SITES[site_idx[i]]
        rng = np.random.default_rng([seed, _STREAM_IMAGE, i])
        demographics = _demographics(rng, site)
        noise_scale = shifted_noise if site == shifted_site else 1.0
        image, roi = synth_image(rng, label=int(labels[i]), site=site, noise_scale=noise_scale)
        ds = _dicom_dataset(
            stored=as_stored(image, site),
            site=site,
            case_id=case_id,
            seed=seed,
            demographics=demographics,
        )
        rel = f"dicom/{case_id}.dcm"
        ds.save_as(out_dir / rel, enforce_file_format=True)
        rows.append([case_id, rel, int(labels[i]), *(roi or ("", "", "", ""))])
        rows[-1] += [demographics["race"], site.code]

    manifest = out_dir / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    return manifest


# --- training data ------------------------------------------------------------------------------


def training_arrays(
    n: int, seed: int, *, size: int = 64, site_weights: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """In-memory training set for the demo vendor's model: (n, 1, size, size) float32, labels.

    Images go through the same `to_model_input` as partner files (TRAINING_INPUT_SPEC at `size`),
    so train and validation differ only where the data really differ. `site_weights` (keys: site
    code or manufacturer; unlisted sites get 0) skews training toward some scanners, e.g.
    ``{"Acme Medical": 0.5, "Borealis Imaging": 0.45, "Cobalt Systems": 0.05}``.
    Labels are exactly balanced (n // 2 positives), in random order.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if site_weights:
        weights = np.zeros(len(SITES))
        for key, w in site_weights.items():
            if not w >= 0:
                raise ValueError(f"site weight for {key!r} must be >= 0")
            weights[SITES.index(site_by(key))] += w
    else:
        weights = np.array([s.share for s in SITES])
    if weights.sum() <= 0:
        raise ValueError("site_weights must have a positive total")

    spec = InputSpec.from_dict({**TRAINING_INPUT_SPEC, "height": size, "width": size})
    rng = np.random.default_rng([seed, _STREAM_TRAINING])
    labels = np.zeros(n, dtype=np.int64)
    labels[rng.permutation(n)[: n // 2]] = 1
    site_idx = rng.choice(len(SITES), size=n, p=weights / weights.sum())

    x = np.empty((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        site = SITES[site_idx[i]]
        case_rng = np.random.default_rng([seed, _STREAM_TRAINING, i])
        image, _ = synth_image(case_rng, label=int(labels[i]), site=site)
        stored = as_stored(image, site)
        x[i] = to_model_input(DicomImage(stored.astype(np.float32), site.photometric), spec)
    return x, labels
