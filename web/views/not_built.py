"""Placeholder for pages whose area is being built on another branch; removed when they land."""

from django.http import Http404


def not_built(request, *args, **kwargs):
    raise Http404("This page is not built yet.")
