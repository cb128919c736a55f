"""The partner's draft study card of a dataset: a form whose entries become the card
(validation/study_card.py); the service checks it against the card's schema and keeps it as
the dataset's draft, which the next version sealed without a card of its own takes and
freezes. A sealed version's card is shown read-only on its page; nothing here changes it."""

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from validation import selectors
from validation.errors import ApplicationError
from validation.services.datasets import dataset_study_card_draft_save
from validation.study_card import SAMPLING_METHODS, study_card_value
from web.access import steward_required
from web.views.flow import HtmxRequest, problem_text, succeeded

LINES_HELP = "One per line."

# Each form field and the card's entry it writes (lists: one item per line).
FIELD_PATHS = {
    "collection_start": ("collection_period", "start"),
    "collection_end": ("collection_period", "end"),
    "sites": ("sites",),
    "inclusion_criteria": ("inclusion_criteria",),
    "exclusion_criteria": ("exclusion_criteria",),
    "sampling_method": ("sampling", "method"),
    "sampling_note": ("sampling", "note"),
    "prevalence": ("prevalence",),
    "reference_method": ("reference_standard", "method"),
    "readers": ("reference_standard", "readers"),
    "reader_qualification": ("reference_standard", "reader_qualification"),
    "adjudication": ("reference_standard", "adjudication"),
}
LIST_FIELDS = {"sites", "inclusion_criteria", "exclusion_criteria"}


def _lines(rows: int = 3) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows})


class StudyCardForm(forms.Form):
    """Every entry is optional; an entry left empty is printed as missing wherever the card is
    shown. Lengths and values are the card schema's, checked by the service."""

    collection_start = forms.DateField(
        required=False,
        label="Collection period start",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    collection_end = forms.DateField(
        required=False,
        label="Collection period end",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    sites = forms.CharField(required=False, label="Sites", widget=_lines(), help_text=LINES_HELP)
    inclusion_criteria = forms.CharField(
        required=False, label="Inclusion criteria", widget=_lines(4), help_text=LINES_HELP
    )
    exclusion_criteria = forms.CharField(
        required=False, label="Exclusion criteria", widget=_lines(4), help_text=LINES_HELP
    )
    sampling_method = forms.ChoiceField(
        required=False,
        label="Sampling method",
        choices=[("", "Not stated")] + [(m, m.capitalize()) for m in SAMPLING_METHODS],
    )
    sampling_note = forms.CharField(required=False, label="Sampling note", widget=_lines())
    prevalence = forms.CharField(
        required=False,
        label="How prevalence arose",
        widget=_lines(),
        help_text="For example: natural, as collected; or enriched to a target of 30%.",
    )
    reference_method = forms.CharField(
        required=False,
        label="Reference standard method",
        help_text="For example: histopathology; consensus of three radiologists.",
    )
    readers = forms.IntegerField(required=False, min_value=1, label="Number of readers")
    reader_qualification = forms.CharField(
        required=False, label="Qualification of the readers", widget=_lines(2)
    )
    adjudication = forms.CharField(required=False, label="Adjudication method", widget=_lines(2))

    def card(self) -> dict:
        """The card the cleaned form says: entries left empty are left out."""
        card: dict = {}
        for name, path in FIELD_PATHS.items():
            value = self.cleaned_data.get(name)
            if name in LIST_FIELDS:
                value = [line.strip() for line in (value or "").splitlines() if line.strip()]
            elif isinstance(value, str):
                value = value.strip()
            elif value is not None and name.startswith("collection_"):
                value = value.isoformat()
            if value in (None, "", []):
                continue
            target = card
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
        return card

    @classmethod
    def initial_from(cls, card: dict | None) -> dict:
        initial = {}
        for name, path in FIELD_PATHS.items():
            value = study_card_value(card or {}, path)
            if value is not None:
                initial[name] = "\n".join(value) if name in LIST_FIELDS else value
        return initial

    def refusal(self, exc: ApplicationError) -> None:
        """The service's problems on the fields they are about (`study_card.sites.2` on the
        sites); any other on the form."""
        self.add_error(None, exc.message)
        by_path = {".".join(path): name for name, path in FIELD_PATHS.items()}
        for problem in exc.errors:
            path = problem.get("path", "") if isinstance(problem, dict) else ""
            parts = path.removeprefix("study_card.").split(".")
            name = by_path.get(".".join(parts[:2])) or by_path.get(parts[0])
            if name is not None and isinstance(problem, dict):
                self.add_error(name, problem["detail"])
            else:
                self.add_error(None, problem_text(problem))


@steward_required
def study_card_edit(request: HtmxRequest, pk: int) -> HttpResponse:
    dataset = selectors.dataset_get_visible(user=request.user, pk=pk)
    if request.method == "POST":
        form = StudyCardForm(request.POST)
        if form.is_valid():
            try:
                dataset_study_card_draft_save(actor=request.user, dataset=dataset, card=form.card())
            except ApplicationError as exc:
                form.refusal(exc)
            else:
                return succeeded(request, reverse("web:dataset", args=[dataset.pk]))
    else:
        form = StudyCardForm(initial=StudyCardForm.initial_from(dataset.study_card_draft))
    context = {
        "title": f"Study card of {dataset.name}",
        "section": "datasets",
        "dataset": dataset,
        "form": form,
    }
    return render(
        request, "web/datasets/study_card.html", context, status=400 if form.errors else 200
    )
