"""What the OpenAPI document says beyond the views' own serializers: the problem details every
operation can answer, summaries and descriptions, and the shapes of the aggregate results and
dataset cards (which the views build as dicts)."""

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.drainage import warn
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_doc
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from validation.api.errors import PROBLEM_CONTENT_TYPE
from validation.study_card import SAMPLING_METHODS

F = TypeVar("F", bound=Callable[..., Any])
SUMMARY_CHARS = 80
# drf_spectacular.views cannot be imported here: it builds its schema at import time.
_SCHEMA_VIEWS_MODULE = "drf_spectacular.views"


class FieldProblemSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text='The dotted path of the field at fault ("" for the request as a whole).'
    )
    detail = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details: the shape of every 4xx and 5xx answer of the API."""

    type = serializers.CharField(help_text='A URI naming the problem type; "about:blank" here.')
    title = serializers.CharField(help_text="The HTTP status phrase.")
    status = serializers.IntegerField(min_value=400, max_value=599)
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")

    class Meta:
        ref_name = "Problem"

    def get_fields(self):
        # `errors` would shadow Serializer.errors as a class attribute.
        fields = super().get_fields()
        fields["errors"] = FieldProblemSerializer(
            many=True, help_text="Field problems, possibly none."
        )
        return fields


def problems(*statuses: int) -> Callable[[F], F]:
    """Declares the problem statuses an action answers beyond those the schema adds by itself
    (400, 401, 403, 404, 415, 429, 500 where they apply), e.g. `@problems(409)`."""

    def mark(view_function: F) -> F:
        view_function.problem_statuses = statuses  # type: ignore[attr-defined]
        return view_function

    return mark


class ProblemAutoSchema(AutoSchema):
    """Adds to each operation the problem responses it can give, and a summary (the first
    sentence of its description). An operation without a description is a schema warning, so
    `manage.py spectacular --fail-on-warn` refuses it."""

    def get_summary(self) -> str | None:
        summary = super().get_summary()
        if summary:
            return summary
        first = (self.get_description() or "").strip().split("\n\n")[0].replace("\n", " ")
        for stop in (". ", ": ", "; ", " (", "? "):
            first = first.split(stop)[0]
        first = first.rstrip(".")
        if len(first) > SUMMARY_CHARS:
            first = first[:SUMMARY_CHARS].rsplit(" ", 1)[0] + "…"
        return first or None

    def get_description(self) -> str:  # type: ignore[override]  # as drf-spectacular's own
        """A viewset action's own docstring (not the class's, which every action would share);
        a plain view's or a function view's docstring."""
        if hasattr(self.view, "action"):
            description = get_doc(getattr(self.view, self.view.action or "", None))
        else:
            description = super().get_description()
        if not description.strip():
            warn(f"{self.method} {self.path} has no description")
        return description

    def _get_response_bodies(self, direction="response") -> dict:
        responses = super()._get_response_bodies(direction)
        for status in sorted(self._problem_statuses()):
            code = str(status)
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    ProblemSerializer, code, [PROBLEM_CONTENT_TYPE], direction
                )
        return responses

    def _problem_statuses(self) -> set[int]:
        statuses = {500}
        has_body = self.method in ("POST", "PUT", "PATCH") and bool(self.get_request_serializer())
        if has_body or self._is_list_view() or self._has_query_parameters():
            statuses.add(400)
        if has_body:
            statuses.add(415)
        if self.view.get_authenticators():
            statuses.add(401)  # a wrong, revoked or expired token, whatever the permissions
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            statuses.update({401, 403})
        if "{" in self.path:
            statuses.add(404)
        if self.view.get_throttles():
            statuses.add(429)
        action = getattr(self.view, getattr(self.view, "action", None) or "", None)
        handler = action or getattr(self.view, self.method.lower(), None)
        statuses.update(getattr(handler, "problem_statuses", ()))
        return statuses

    def _has_query_parameters(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters())


def exclude_schema_views(endpoints: list, **kwargs) -> list:
    """Preprocessing hook: the schema and its documentation page are not operations of the API
    they describe."""
    return [e for e in endpoints if getattr(e[3], "__module__", "") != _SCHEMA_VIEWS_MODULE]


# --- dict-built answers ------------------------------------------------------------------------


def _float(**kwargs) -> serializers.FloatField:
    return serializers.FloatField(required=False, allow_null=True, **kwargs)


def _int(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(required=False, allow_null=True, **kwargs)


class IntervalSerializer(serializers.Serializer):
    estimate = _float()
    lower = _float()
    upper = _float()
    method = serializers.CharField(required=False, allow_null=True)
    level = _float()


def _interval(**kwargs) -> IntervalSerializer:
    return IntervalSerializer(required=False, allow_null=True, **kwargs)


def _notes() -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(), required=False)


class CountsSerializer(serializers.Serializer):
    tp = _int()
    fp = _int()
    tn = _int()
    fn = _int()
    n = _int()
    n_pos = _int()
    n_neg = _int()


class RocSerializer(serializers.Serializer):
    fpr = serializers.ListField(child=serializers.FloatField(allow_null=True))
    tpr = serializers.ListField(child=serializers.FloatField(allow_null=True))


class PrimaryResultsSerializer(serializers.Serializer):
    """The operating point's 2x2 table, metrics with intervals, and the ROC curve."""

    counts = CountsSerializer(required=False)
    threshold = _float()
    auc = _interval()
    sensitivity = _interval()
    specificity = _interval()
    ppv = _interval()
    npv = _interval()
    accuracy = _interval()
    prevalence = _interval()
    positive_likelihood_ratio = _interval()
    negative_likelihood_ratio = _interval()
    roc = RocSerializer(required=False, help_text="Coarsened for vendors and partners.")
    notes = _notes()


class SubgroupRowSerializer(serializers.Serializer):
    """One group of one attribute; a suppressed cell keeps only its label."""

    attribute = serializers.CharField()
    group = serializers.CharField()
    suppressed = serializers.BooleanField()
    n = _int()
    n_pos = _int()
    n_neg = _int()
    prevalence = _float()
    selection_rate = _float()
    sensitivity = _interval()
    specificity = _interval()
    ppv = _interval()
    npv = _interval()
    accuracy = _interval()
    auc = _interval()
    notes = _notes()


class BootstrapSerializer(serializers.Serializer):
    replicates = _int()
    seed = _int()
    method = serializers.CharField(required=False)
    stratified_by = serializers.CharField(required=False)
    overall = serializers.DictField(child=IntervalSerializer(), required=False)
    subgroups = SubgroupRowSerializer(many=True, required=False)
    note = serializers.CharField(required=False)


class CalibrationBinSerializer(serializers.Serializer):
    lower = serializers.FloatField()
    upper = serializers.FloatField()
    suppressed = serializers.BooleanField(required=False)
    n = _int()
    n_pos = _int()
    mean_predicted = _float()
    observed_fraction = _float()
    observed_interval = _interval()


class CalibrationSerializer(serializers.Serializer):
    n = _int()
    n_pos = _int()
    brier = _float()
    ece = _float()
    n_bins = _int()
    intercept = _interval()
    slope = _interval()
    bins = CalibrationBinSerializer(many=True, required=False)
    notes = _notes()
    note = serializers.CharField(required=False)


class FairnessRowSerializer(serializers.Serializer):
    """Disparities between the groups of one attribute, with intervals and adjusted p-values."""

    attribute = serializers.CharField()
    groups_compared = serializers.ListField(child=serializers.CharField(), required=False)
    groups_excluded = serializers.ListField(child=serializers.JSONField(), required=False)
    exploratory = serializers.BooleanField(required=False)
    multiplicity = serializers.CharField(required=False, allow_null=True)
    equalized_odds_difference = _float()
    equalized_odds_difference_interval = _interval()
    demographic_parity_difference = _float()
    demographic_parity_difference_interval = _interval()
    tpr_difference = _interval()
    tpr_p_value = _float()
    tpr_max_group = serializers.CharField(required=False, allow_null=True)
    tpr_min_group = serializers.CharField(required=False, allow_null=True)
    fpr_difference = _interval()
    fpr_p_value = _float()
    fpr_max_group = serializers.CharField(required=False, allow_null=True)
    fpr_min_group = serializers.CharField(required=False, allow_null=True)
    notes = _notes()


class FailuresSerializer(serializers.Serializer):
    """Cases the model failed on or could not read: counted, never dropped."""

    n_failed = _int()
    n_failed_positive = _int()
    n_failed_negative = _int()
    label_split_suppressed = serializers.BooleanField(required=False)


class CriterionSerializer(serializers.Serializer):
    metric = serializers.CharField(required=False)
    name = serializers.CharField(required=False)
    bound = serializers.CharField(required=False)
    comparator = serializers.CharField(required=False)
    value = _float()
    observed = _float()
    passed = serializers.BooleanField(
        required=False, allow_null=True, help_text="Null when the criterion cannot be judged."
    )
    judgeable = serializers.BooleanField(
        required=False,
        help_text="False when the data cannot decide the criterion (absent in results scored "
        "before the field existed).",
    )
    reason = serializers.CharField(
        required=False, allow_blank=True, help_text="Why the criterion cannot be judged."
    )
    method = serializers.CharField(required=False, allow_null=True)
    interval = _interval(help_text="The interval the criterion was judged on.")
    note = serializers.CharField(required=False, allow_null=True)


class AcceptanceSerializer(serializers.Serializer):
    verdict = serializers.CharField(
        required=False,
        help_text="pass, fail, or not judgeable (nothing failed, something could not be decided).",
    )
    criteria = CriterionSerializer(many=True, required=False)
    degenerate = _notes()


class IndependenceRowSerializer(serializers.Serializer):
    """The primary metrics on the cases from a declared training source, or on the others; a
    suppressed group keeps only its label."""

    attribute = serializers.CharField()
    group = serializers.CharField()
    suppressed = serializers.BooleanField()
    n = _int()
    n_pos = _int()
    n_neg = _int()
    auc = _interval()
    sensitivity = _interval()
    specificity = _interval()
    notes = _notes()


class IndependenceSerializer(serializers.Serializer):
    """Test cases from the sites and scanners the vendor declared it trained on (issue 18);
    counts withheld when either side is a small cell."""

    declared_sites = serializers.ListField(child=serializers.CharField(), required=False)
    declared_scanners = serializers.ListField(child=serializers.CharField(), required=False)
    overlapping_sites = serializers.ListField(child=serializers.CharField(), required=False)
    overlapping_scanners = serializers.ListField(child=serializers.CharField(), required=False)
    n_cases = _int()
    n_overlap = _int()
    n_overlap_site = _int()
    n_overlap_scanner = _int()
    share = _float()
    independent = serializers.BooleanField(required=False, allow_null=True)
    counts_suppressed = serializers.BooleanField(required=False)
    min_cell = _int()
    rule = serializers.CharField(required=False)
    split = IndependenceRowSerializer(many=True, required=False)


class RunResultsSerializer(serializers.Serializer):
    """A run's aggregate results. Vendors and partners read small cells suppressed and numbers
    rounded to the report's precision; nothing here is case level."""

    primary = PrimaryResultsSerializer()
    subgroups = SubgroupRowSerializer(many=True)
    bootstrap = BootstrapSerializer()
    calibration = CalibrationSerializer()
    fairness = FairnessRowSerializer(many=True)
    failures = FailuresSerializer()
    acceptance = AcceptanceSerializer()
    independence = IndependenceSerializer(
        allow_null=True, help_text="Null for a run scored before the section existed."
    )


class CountCellSerializer(serializers.Serializer):
    """One cell of a distribution; a small one keeps its label and loses its count."""

    group = serializers.CharField()
    n = serializers.IntegerField(required=False)
    suppressed = serializers.BooleanField(required=False)


class StudyCollectionPeriodSerializer(serializers.Serializer):
    start = serializers.CharField(required=False, help_text="YYYY-MM-DD")
    end = serializers.CharField(required=False, help_text="YYYY-MM-DD")


class StudySamplingSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=SAMPLING_METHODS, required=False)
    note = serializers.CharField(required=False)


class StudyReferenceStandardSerializer(serializers.Serializer):
    method = serializers.CharField(required=False)
    readers = serializers.IntegerField(required=False, min_value=1)
    reader_qualification = serializers.CharField(required=False)
    adjudication = serializers.CharField(required=False)


class StudyCardDocumentSerializer(serializers.Serializer):
    """The partner's study card (validation/study_card.py): every entry optional."""

    schema_version = serializers.CharField(required=False)
    collection_period = StudyCollectionPeriodSerializer(required=False)
    sites = serializers.ListField(child=serializers.CharField(), required=False)
    inclusion_criteria = serializers.ListField(child=serializers.CharField(), required=False)
    exclusion_criteria = serializers.ListField(child=serializers.CharField(), required=False)
    sampling = StudySamplingSerializer(required=False)
    prevalence = serializers.CharField(required=False, help_text="how the prevalence arose")
    reference_standard = StudyReferenceStandardSerializer(required=False)


class StudyCardSerializer(serializers.Serializer):
    """A dataset version's study card, frozen with its seal."""

    recorded = serializers.BooleanField(
        help_text="false for a version sealed before study cards were recorded"
    )
    card = StudyCardDocumentSerializer()
    sha256 = serializers.CharField(help_text="SHA-256 of the card's canonical JSON")
    missing = serializers.ListField(
        child=serializers.CharField(), help_text="the labels of the entries the card lacks"
    )


class DatasetCardSerializer(serializers.Serializer):
    """What a vendor may know of a dataset version: sizes and distributions, never cases."""

    id = serializers.IntegerField()
    dataset = serializers.CharField()
    partner = serializers.CharField()
    version = serializers.IntegerField()
    merkle_root = serializers.CharField()
    sealed_at = serializers.DateTimeField(allow_null=True)
    modality = serializers.CharField()
    identity_policy = serializers.CharField()
    cases = serializers.IntegerField()
    readable_cases = serializers.IntegerField()
    unreadable_cases = serializers.IntegerField()
    sites = serializers.IntegerField()
    min_cell = serializers.IntegerField()
    labels = CountCellSerializer(many=True)
    demographics = serializers.DictField(child=CountCellSerializer(many=True))
    study_card = StudyCardSerializer()
