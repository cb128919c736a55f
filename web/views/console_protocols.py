"""The review console's protocol editor (issue 16, screen 3): the list of protocols, writing a
protocol or a new version of one with validation as you type (the JSON Schema and the
consistency checks of validation/protocol_document.py, every problem at its path; JSON syntax
errors at their line and column), the diff against the previous version, and locking.

Writes go through validation/services/protocols.py (protocol_create, protocol_lock: the same
audit events as every other caller). Reviewers and QA approvers act; auditors read every page
that shows a protocol and get 403 on the editor and on every POST."""

import difflib
import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from validation import selectors
from validation.errors import PROBLEM_CHARS, ApplicationError, bounded
from validation.models import Protocol, Role
from validation.protocol_document import protocol_problems, with_defaults
from validation.services.protocols import protocol_create, protocol_lock
from web.access import role_required, roles
from web.views.flow import HtmxRequest, form_failed, page_of, succeeded

TEAM = {Role.REVIEWER, Role.QA_APPROVER}
console_read = role_required(Role.REVIEWER, Role.QA_APPROVER, Role.AUDITOR)
# Auditors read the console; only the validation team writes (a local helper, see the brief).
team_required = role_required(Role.REVIEWER, Role.QA_APPROVER)

DOCUMENT_MAX_CHARS = 100_000
DIFF_CONTEXT = 3

# What a new protocol's editor starts from: the required keys, valid as it stands; every
# optional key takes its default (validation/protocol_document.py DEFAULTS) when saved.
STARTER = {
    "schema_version": "1.0",
    "task": "binary-classification",
    "primary_endpoint": "auc",
    "operating_point": {"source": "vendor-declared"},
    "acceptance_criteria": [{"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.8}],
    "subgroups": [],
    "min_cell_size": 10,
}


def can_act(request: HtmxRequest) -> bool:
    return bool(roles(request) & TEAM)


def canonical_text(document: Any) -> str:
    """The document pretty-printed with sorted keys: what is shown, edited and compared."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


# --- reading what was typed ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    where: str  # a path in the document ("acceptance_criteria/0/metric") or a line and column
    message: str


class _Refused(ValueError):
    pass


def parse_document(text: str) -> tuple[bool, Any, list[Problem]]:
    """Whether the typed text is JSON, what it holds, and why not. A key given twice is a
    problem too: JSON parsers keep the last silently, and the author meant one of them."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        seen: set[str] = set()
        for key, _value in items:
            if key in seen:
                repeated.append(key)
            seen.add(key)
        return dict(items)

    def constant(name: str) -> None:
        raise _Refused(f"{name} is not a JSON number")

    try:
        document = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        return False, None, [Problem(f"line {exc.lineno}, column {exc.colno}", exc.msg)]
    except _Refused as exc:
        return False, None, [Problem("(document)", str(exc))]
    problems = [
        Problem("(document)", f"the key {bounded(key)!r} appears more than once")
        for key in dict.fromkeys(repeated)
    ]
    return True, document, problems


def document_problems(document: Any) -> list[Problem]:
    """The protocol JSON Schema's and the consistency checks' problems, each at its path."""
    return [
        Problem(p.slashed(), bounded(p.message, PROBLEM_CHARS)) for p in protocol_problems(document)
    ]


@dataclass(frozen=True)
class DiffRow:
    kind: str  # "added", "removed", "same", or "skipped" (a run of unchanged lines left out)
    old: int | None
    new: int | None
    text: str


def document_diff(old: Any, new: Any) -> list[DiffRow]:
    """A unified diff of the two documents' canonical texts, as table rows with line numbers;
    empty when they are the same."""
    a, b = canonical_text(old).splitlines(), canonical_text(new).splitlines()
    rows: list[DiffRow] = []
    shown_to = 0  # old lines covered so far
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(DIFF_CONTEXT):
        if group[0][1] > shown_to:
            rows.append(DiffRow("skipped", None, None, f"{group[0][1] - shown_to} unchanged lines"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [DiffRow("same", i1 + k + 1, j1 + k + 1, a[i1 + k]) for k in range(i2 - i1)]
            else:
                rows += [DiffRow("removed", i + 1, None, a[i]) for i in range(i1, i2)]
                rows += [DiffRow("added", None, j + 1, b[j]) for j in range(j1, j2)]
        shown_to = group[-1][2]
    if rows and shown_to < len(a):
        rows.append(DiffRow("skipped", None, None, f"{len(a) - shown_to} unchanged lines"))
    return rows


def diff_context(previous: Protocol | None, document: Any) -> dict:
    rows = document_diff(previous.document, document) if previous else []
    return {
        "previous": previous,
        "diff": rows,
        "added": sum(r.kind == "added" for r in rows),
        "removed": sum(r.kind == "removed" for r in rows),
    }


def check_context(name: str, text: str) -> dict:
    """What the check panel and the diff show for the text as typed: problems, or the summary
    of the valid document, the version it saves as and its changes against the latest one."""
    parsed, document, problems = parse_document(text)
    if parsed:
        problems += document_problems(document)
    previous = selectors.protocol_latest(name) if name else None
    context = {
        "name": name,
        "parsed": parsed,
        "problems": problems,
        "next_version": previous.version + 1 if previous else 1,
        "summary": with_defaults(document) if parsed and not problems else None,
    }
    complete = with_defaults(document) if isinstance(document, dict) else document
    context |= diff_context(previous, complete) if parsed else {"previous": previous, "diff": []}
    return context


# --- forms --------------------------------------------------------------------------------------


class ProtocolForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        label="Name",
        help_text="A new name starts at version 1; an existing name gets its next version.",
    )
    document = forms.CharField(
        strip=False,
        max_length=DOCUMENT_MAX_CHARS,
        label="Protocol document (JSON)",
        widget=forms.Textarea(attrs={"rows": 30, "cols": 80, "spellcheck": "false"}),
    )

    def __init__(self, *args, fixed_name: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        live = {
            "hx-post": reverse("web:console-protocol-validate"),
            "hx-trigger": "input changed delay:400ms",
            "hx-target": "#protocol-check",
            "hx-swap": "outerHTML",
            "hx-sync": "this:replace",
        }
        self.fields["document"].widget.attrs.update(
            live, **{"class": "code-editor", "aria-describedby": "protocol-check"}
        )
        if fixed_name is not None:
            # The name of a new version is its base's; what is posted for it is ignored.
            self.fields["name"].widget = forms.HiddenInput()
            self.fields["name"].initial = fixed_name
            self.fields["name"].required = False
        else:
            self.fields["name"].widget.attrs.update(live)


class LockForm(forms.Form):
    confirm = forms.BooleanField(
        label="I confirm: lock this version. Its document is hashed and can never change again.",
        error_messages={"required": "Tick the confirmation to lock the protocol."},
    )


# --- pages --------------------------------------------------------------------------------------


def status_badge(protocol: Protocol) -> dict:
    if protocol.is_locked:
        return {"css": "badge--ok", "words": "Locked"}
    return {"css": "badge--warn", "words": "Draft"}


@console_read
def protocol_list(request: HtmxRequest) -> HttpResponse:
    page = page_of(request, selectors.protocols_for_console(request.user))
    context = {
        "title": "Protocols",
        "section": "protocols",
        "page_obj": page,
        "rows": [{"protocol": p, "badge": status_badge(p)} for p in page.object_list],
        "can_act": can_act(request),
    }
    return render(request, "web/console/protocols/list.html", context)


@team_required
def protocol_new(request: HtmxRequest) -> HttpResponse:
    return _editor(request, base=None)


@team_required
def protocol_new_version(request: HtmxRequest, pk: int) -> HttpResponse:
    return _editor(request, base=selectors.protocol_get_visible(user=request.user, pk=pk))


def _editor(request: HtmxRequest, *, base: Protocol | None) -> HttpResponse:
    """Write a protocol (base None) or the next version of base's, starting from its document."""
    fixed_name = base.name if base else None
    initial = {"document": canonical_text(base.document if base else STARTER)}
    data = request.POST if request.method == "POST" else None
    form = ProtocolForm(data, initial=initial, fixed_name=fixed_name)
    if data is not None and form.is_valid():
        name = fixed_name or form.cleaned_data["name"]
        parsed, document, problems = parse_document(form.cleaned_data["document"])
        if parsed:  # what the check panel showed, at the same paths
            problems += document_problems(document)
        if problems:
            form.add_error(None, "The protocol document is invalid.")
            for problem in problems:
                form.add_error(None, f"{problem.where}: {problem.message}")
        else:
            try:
                protocol = protocol_create(actor=request.user, name=name, document=document)
            except ApplicationError as exc:
                form_failed(form, exc)
            else:
                return succeeded(request, reverse("web:console-protocol", args=[protocol.pk]))
    name = fixed_name or (form["name"].value() or "")
    text = form["document"].value() or ""
    context = {
        "title": f"New version of {base.name}" if base else "New protocol",
        "section": "protocols",
        "base": base,
        "form": form,
        **check_context(name, text),
    }
    if data is not None and request.htmx:
        return render(request, "web/console/protocols/editor.html#save-failed", context, status=422)
    return render(
        request, "web/console/protocols/editor.html", context, status=400 if data else 200
    )


@require_POST
@team_required
def protocol_validate(request: HtmxRequest) -> HttpResponse:
    """The check panel (and, out of band, the diff) for the text as typed; nothing is stored."""
    name = request.POST.get("name", "")[:200].strip()
    text = request.POST.get("document", "")
    if len(text) > DOCUMENT_MAX_CHARS:
        context = {
            "name": name,
            "parsed": False,
            "problems": [Problem("(document)", f"longer than {DOCUMENT_MAX_CHARS} characters")],
        }
    else:
        context = check_context(name, text)
    return render(request, "web/console/protocols/editor.html#live", context)


@console_read
def protocol_detail(request: HtmxRequest, pk: int) -> HttpResponse:
    return _detail(request, selectors.protocol_get_visible(user=request.user, pk=pk), LockForm())


def _detail(request: HtmxRequest, protocol: Protocol, lock_form: LockForm, status=200):
    context = {
        "title": str(protocol),
        "section": "protocols",
        "protocol": protocol,
        "badge": status_badge(protocol),
        "document_text": canonical_text(protocol.document),
        "versions": [
            {"protocol": p, "badge": status_badge(p)} for p in selectors.protocol_versions(protocol)
        ],
        "can_act": can_act(request),
        "lock_form": lock_form,
        **diff_context(selectors.protocol_previous(protocol), protocol.document),
    }
    return render(request, "web/console/protocols/detail.html", context, status=status)


@require_POST
@team_required
def protocol_lock_view(request: HtmxRequest, pk: int) -> HttpResponse:
    protocol = selectors.protocol_get_visible(user=request.user, pk=pk)
    form = LockForm(request.POST)
    if form.is_valid():
        try:
            protocol_lock(actor=request.user, protocol=protocol)
        except ApplicationError as exc:
            form_failed(form, exc)
        else:
            return succeeded(request, reverse("web:console-protocol", args=[protocol.pk]))
    if request.htmx:
        context = {"protocol": protocol, "lock_form": form}
        return render(request, "web/console/protocols/detail.html#lock-form", context, status=422)
    return _detail(request, protocol, form, status=400)
