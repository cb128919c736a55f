"""The partner's datasets: the list and creating one, a dataset's versions and imports, a
version's profile (Merkle root, counts, unreadable files, distributions), uploading an archive
and following its import live. Reads through the selectors, writes through the same services
as the API (validation/api/datasets.py), so the same audit events."""

from django import forms
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from validation import selectors
from validation.errors import ApplicationError
from validation.models import Dataset, DatasetImport
from validation.services.dataset_imports import dataset_import_request
from validation.services.datasets import dataset_create, study_card_from_upload
from web.access import steward_required
from web.views.flow import PER_PAGE, HtmxRequest, form_failed, live, page_of, succeeded

IMPORT_BADGES = {
    DatasetImport.Status.QUEUED: "neutral",
    DatasetImport.Status.RUNNING: "info",
    DatasetImport.Status.DONE: "ok",
    DatasetImport.Status.REFUSED: "bad",
}
IMPORT_FINAL = {DatasetImport.Status.DONE, DatasetImport.Status.REFUSED}


class DatasetForm(forms.Form):
    partner: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None,
        empty_label=None,
        label="Partner",
    )
    name = forms.CharField(max_length=200, label="Name")
    description = forms.CharField(
        required=False, label="Description", widget=forms.Textarea(attrs={"rows": 3})
    )
    identity_policy = forms.ChoiceField(
        choices=[
            (Dataset.IdentityPolicy.DEIDENTIFY, "De-identify identifying files"),
            (Dataset.IdentityPolicy.REJECT, "Refuse identifying files"),
        ],
        label="Identity policy",
        help_text="What the import does with a file that still identifies a person.",
    )
    card_min_cell = forms.IntegerField(
        initial=5,
        min_value=2,
        max_value=1000,
        label="Dataset card minimum cell",
        help_text="Vendors' dataset cards hide any count smaller than this.",
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["partner"].queryset = selectors.partners_stewarded_by(user)  # type: ignore[attr-defined]


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Archive",
        help_text="A zip, tar or tar.gz holding manifest.csv and the DICOM files it lists.",
    )
    study_card = forms.FileField(
        required=False,
        label="Study card (optional)",
        help_text="A study_card.json for this version. Without one, a study_card.json beside "
        "the manifest is taken, else the dataset's draft study card.",
    )


@steward_required
def dataset_list(request: HtmxRequest) -> HttpResponse:
    form = DatasetForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST":
        if form.is_valid():
            data = dict(form.cleaned_data)
            try:
                dataset = dataset_create(actor=request.user, **data)
            except ApplicationError as exc:
                form_failed(form, exc)
            else:
                return succeeded(request, reverse("web:dataset", args=[dataset.pk]))
        if request.htmx:
            return render(request, "web/datasets/list.html#create-form", {"form": form}, status=422)
    datasets = selectors.datasets_with_counts(request.user)
    context = {
        "title": "Datasets",
        "section": "datasets",
        "form": form,
        "page_obj": page_of(request, datasets),
    }
    return render(request, "web/datasets/list.html", context, status=400 if form.errors else 200)


@steward_required
def dataset_detail(request: HtmxRequest, pk: int) -> HttpResponse:
    dataset = selectors.dataset_get_visible(user=request.user, pk=pk)
    imports = selectors.dataset_imports_visible_to(request.user).filter(dataset=dataset)
    context = {
        "title": dataset.name,
        "section": "datasets",
        "dataset": dataset,
        "versions": selectors.dataset_versions_summary(dataset),
        "page_obj": page_of(request, imports),
        "badges": IMPORT_BADGES,
        "study_card_rows": selectors.study_card_display(dataset.study_card_draft),
        "study_card_draft_written": dataset.study_card_draft is not None,
    }
    return render(request, "web/datasets/detail.html", context)


@steward_required
def version_detail(request: HtmxRequest, pk: int) -> HttpResponse:
    version = selectors.dataset_version_get_visible(user=request.user, pk=pk)
    profile = selectors.dataset_version_profile(version)
    unreadable = Paginator(selectors.dataset_version_unreadable(version), PER_PAGE)
    context = {
        "title": f"{version.dataset.name} version {version.version}",
        "section": "datasets",
        "version": version,
        "profile": profile,
        "page_obj": unreadable.get_page(request.GET.get("page")),
        "study_card": selectors.study_card_of(version),
        "study_card_rows": selectors.study_card_display(version.study_card),
    }
    return render(request, "web/datasets/version.html", context)


@steward_required
def dataset_import(request: HtmxRequest, pk: int) -> HttpResponse:
    dataset = selectors.dataset_get_visible(user=request.user, pk=pk)
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    if request.method == "POST":
        if form.is_valid():
            card = form.cleaned_data.get("study_card")
            try:
                job = dataset_import_request(
                    actor=request.user,
                    dataset=dataset,
                    upload=form.cleaned_data["file"],
                    study_card=None if card is None else study_card_from_upload(card),
                )
            except ApplicationError as exc:
                form_failed(form, exc)
            else:
                return succeeded(request, reverse("web:dataset-import", args=[job.pk]))
        if request.htmx:
            context = {"form": form, "dataset": dataset}
            return render(request, "web/datasets/import.html#upload-form", context, status=422)
    context = {
        "title": f"Import a version of {dataset.name}",
        "section": "datasets",
        "dataset": dataset,
        "form": form,
    }
    return render(request, "web/datasets/import.html", context, status=400 if form.errors else 200)


def _progress(job: DatasetImport) -> dict:
    """Files done of total, and the rate in files per second since a worker took the current
    attempt (`started_at`; queued time is not the import's speed)."""
    end = job.finished_at or timezone.now()
    seconds = max((end - (job.started_at or job.created_at)).total_seconds(), 0.001)
    return {
        "started": job.started_at is not None,
        "rate": job.files_done / seconds if job.files_done else None,
        "seconds": seconds,
        "percent": int(100 * job.files_done / job.files_total) if job.files_total else 0,
    }


@steward_required
def import_detail(request: HtmxRequest, pk: int) -> HttpResponse:
    job = selectors.dataset_import_get_visible(user=request.user, pk=pk)
    final = job.status in IMPORT_FINAL
    context = {
        "title": f"Import of {job.source_name}",
        "section": "datasets",
        "job": job,
        "final": final,
        "badge": IMPORT_BADGES[DatasetImport.Status(job.status)],
        "progress": _progress(job),
    }
    if request.htmx:
        return live(request, "web/datasets/import_detail.html#progress", context, final=final)
    return render(request, "web/datasets/import_detail.html", context)
