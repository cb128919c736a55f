"""Dataset cards: what a vendor may know of the dataset versions granted to it (counts and
distributions with small cells suppressed; never case level), as the API's card gives it."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from validation.selectors import (
    dataset_card,
    dataset_card_get_visible,
    dataset_cards_listed,
    study_card_display,
)
from web.access import vendor_required
from web.views.flow import page_of

ATTRIBUTE_LABELS = {
    "site": "Site",
    "manufacturer": "Scanner manufacturer",
    "sex": "Sex",
    "age_band": "Age band",
    "race": "Race",
    "ethnicity": "Ethnicity",
}


@vendor_required
@require_GET
def card_list(request: HttpRequest) -> HttpResponse:
    page = page_of(request, dataset_cards_listed(request.user))
    return render(
        request,
        "web/cards/list.html",
        {"title": "Dataset cards", "section": "dataset-cards", "page_obj": page},
    )


@vendor_required
@require_GET
def card_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = dataset_card_get_visible(user=request.user, pk=pk)
    card = dataset_card(version)
    total = card["readable_cases"]
    distributions = [
        {
            "id": name,
            "label": ATTRIBUTE_LABELS[name],
            "rows": card["demographics"][name],
        }
        for name in ATTRIBUTE_LABELS
        if card["demographics"].get(name)
    ]
    return render(
        request,
        "web/cards/detail.html",
        {
            "title": f"{card['dataset']} version {card['version']}",
            "section": "dataset-cards",
            "card": card,
            "version": version,
            "total": total,
            "distributions": distributions,
            "labels": card["labels"],
            "study_card_rows": study_card_display(card["study_card"]["card"]),
        },
    )
