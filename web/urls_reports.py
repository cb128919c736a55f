"""Reports, verification, dataset cards and API tokens."""

from django.urls import path

from web.views import cards, reports, tokens

urlpatterns = [
    path("reports/", reports.report_list, name="reports"),
    path("reports/<int:pk>/", reports.report_detail, name="report"),
    path("reports/<int:pk>/pdf/", reports.report_pdf, name="report-pdf"),
    path("reports/<int:pk>/dicom/", reports.report_dicom, name="report-dicom"),
    path("verify/", reports.verify, name="verify"),
    path("dataset-cards/", cards.card_list, name="dataset-cards"),
    path("dataset-cards/<int:pk>/", cards.card_detail, name="dataset-card"),
    path("tokens/", tokens.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", tokens.token_revoke, name="token-revoke"),
]
