"""The partner's pages: datasets, versions, imports, grants, the usage log."""

from django.urls import path

from web.views import datasets, grants, study_cards

urlpatterns = [
    path("datasets/", datasets.dataset_list, name="datasets"),
    path("datasets/<int:pk>/", datasets.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/import/", datasets.dataset_import, name="dataset-import-new"),
    path("datasets/<int:pk>/study-card/", study_cards.study_card_edit, name="dataset-study-card"),
    path("datasets/versions/<int:pk>/", datasets.version_detail, name="dataset-version"),
    path("datasets/imports/<int:pk>/", datasets.import_detail, name="dataset-import"),
    path("grants/", grants.grant_list, name="grants"),
    path("grants/new/", grants.grant_new, name="grant-new"),
    path("grants/<int:pk>/revoke/", grants.grant_revoke, name="grant-revoke"),
    path("usage/", grants.usage, name="usage"),
    path("usage.csv", grants.usage_csv, name="usage-csv"),
]
