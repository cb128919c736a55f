"""Who the signed-in user is (`me/`) and the organisations they may name by id
(`organisations/`): a steward grants datasets to vendors by id, a vendor reads which partners'
datasets it may be validated on. Read-only; scoped by `selectors.organisations_visible_to`."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from validation import selectors
from validation.models import Organisation, OrganisationKind, Role

# --- shapes -------------------------------------------------------------------------------------


class OrganisationSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(
        choices=OrganisationKind.choices,
        help_text="`vendor` (submits models), `partner` (a hospital that holds datasets) or "
        "`validator` (the validation team).",
    )

    class Meta:
        model = Organisation
        fields = ["id", "name", "kind"]


class MembershipSerializer(OrganisationSerializer):
    """One of the user's own organisations, with the user's roles in it."""

    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices),
        help_text="The user's roles in this organisation.",
    )
    require_second_factor = serializers.BooleanField(
        help_text="Whether members confirm a TOTP code after their password to sign in to the "
        "web app (API tokens are unaffected)."
    )

    class Meta(OrganisationSerializer.Meta):
        fields = [*OrganisationSerializer.Meta.fields, "roles", "require_second_factor"]


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField(help_text="The full name, or the username where none is set.")
    email = serializers.CharField(allow_blank=True)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices),
        help_text="Every role the user holds, in any organisation: `vendor_member`, "
        "`partner_steward`, `reviewer` and `qa_approver` (the validation team), `auditor`.",
    )
    validation_team = serializers.BooleanField(
        help_text="Whether the user is a reviewer or QA approver of a validator organisation: "
        "the team that writes protocols, starts runs and reads case-level results."
    )
    organisations = MembershipSerializer(many=True)


def me_of(user) -> dict:
    """The `me/` answer: the user, their roles and their organisations (each with its roles)."""
    organisations: dict[int, dict] = {}
    for membership in selectors.memberships_of(user):
        org = membership.organisation
        entry = organisations.setdefault(
            org.pk,
            {
                "id": org.pk,
                "name": org.name,
                "kind": org.kind,
                "roles": [],
                "require_second_factor": org.require_second_factor,
            },
        )
        entry["roles"].append(membership.role)
    return {
        "id": user.pk,
        "username": user.get_username(),
        "name": user.get_full_name() or user.get_username(),
        "email": user.email,
        "roles": sorted({role for entry in organisations.values() for role in entry["roles"]}),
        "validation_team": selectors.is_validation_team(user),
        "organisations": list(organisations.values()),
    }


# --- views --------------------------------------------------------------------------------------


class MeView(APIView):
    @extend_schema(
        operation_id="me_retrieve",
        summary="Who am I",
        description="The signed-in user: name, every role they hold and their organisations "
        "(id, name, kind, their roles there). Use it to check a token and to learn your own "
        "organisation's id.",
        responses=MeSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(me_of(request.user)).data)


@extend_schema_view(
    list=extend_schema(
        summary="Organisations you may name",
        description="The organisations you may name by id, newest first: your own; for a "
        "partner steward every vendor (the `vendor` of a grant); for a vendor member the "
        "partners whose datasets are granted to it or that its runs used; for the validation "
        "team and auditors every organisation.",
    ),
    retrieve=extend_schema(
        summary="An organisation",
        description="One organisation you may name (see the list); any other id answers 404, "
        "whether it exists or not.",
    ),
)
class OrganisationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = OrganisationSerializer

    def get_queryset(self):
        return selectors.organisations_visible_to(self.request.user)

    def get_object(self):
        return selectors.organisation_get_visible(user=self.request.user, pk=self.kwargs["pk"])
