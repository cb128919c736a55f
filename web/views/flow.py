"""What every page's views share: htmx's request type, server-side pages of a list, a service's
refusal shown on the form, the answer after a write, and live fragments that stop polling."""

from django import forms
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from validation.errors import ApplicationError

PER_PAGE = 25
# htmx stops polling on this status (and still swaps the answer in).
STOP_POLLING = 286


class HtmxRequest(HttpRequest):
    """A request as django-htmx's middleware leaves it (for the type checker)."""

    htmx: HtmxDetails


def page_of(request: HttpRequest, items) -> Page:
    """One server-side page (25 rows) of a list, from ?page=."""
    return Paginator(items, PER_PAGE).get_page(request.GET.get("page"))


def state_filter(request: HttpRequest, states, choices) -> dict:
    """A list's ?status= filter for web/partials/state_filter.html: the chosen state (one of
    `states`, else none), the choices, and the query the page links keep."""
    status = request.GET.get("status", "")
    if status not in states:
        status = ""
    return {"status": status, "choices": choices, "query": f"status={status}" if status else ""}


def form_failed(form: forms.Form, exc: ApplicationError) -> None:
    """A service's refusal on the form: its message, then every problem, one per line."""
    form.add_error(None, exc.message)
    for problem in exc.errors:
        form.add_error(None, problem_text(problem))


def refusal_of(exc: ApplicationError) -> dict:
    """A service's refusal for a template: its message and every problem, one per line."""
    return {"message": exc.message, "errors": [problem_text(e) for e in exc.errors]}


def problem_text(problem: str | dict) -> str:
    """One problem of a refusal as a line: a sentence, or `path: detail` for one with a path."""
    if isinstance(problem, dict):
        return f"{problem.get('path', '')}: {problem.get('detail', '')}"
    return str(problem)


def succeeded(request: HtmxRequest, url: str) -> HttpResponse:
    """After a write: htmx follows HX-Redirect; a plain form post gets a 303."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url, status=303)


def refused(request: HtmxRequest, template: str, partial: str, context: dict) -> HttpResponse:
    """A refused form: to htmx its fragment with 422 (swapped in), else the page with 400."""
    if request.htmx:
        return render(request, f"{template}#{partial}", context, status=422)
    return render(request, template, context, status=400)


def live(request: HttpRequest, fragment: str, context: dict, *, final: bool) -> HttpResponse:
    """A polled fragment: 200 while its object changes, STOP_POLLING once it is final."""
    return render(request, fragment, context, status=STOP_POLLING if final else 200)
