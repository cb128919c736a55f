"""`{{ someone|person }}`: a person's printed name, their username without one, or who acted when
no person did (a row written by the system, e.g. the demo or a management command)."""

from django import template

register = template.Library()


@register.filter
def person(user) -> str:
    if user is None:
        return "the system"
    return user.get_full_name() or user.get_username()
