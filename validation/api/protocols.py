"""Protocols through the API: those who may name a protocol read it
(`selectors.protocols_visible_to`: a vendor the protocols it may be validated under); the
validation team writes a protocol, the next version of one, and locks it, through
`validation.services.protocols` (the console's services, with the same audit events). Every
other role's write is refused with 403 before any id is looked up, so a write reveals nothing
about which ids exist."""

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from validation import selectors
from validation.models import Protocol
from validation.services.protocols import (
    protocol_create,
    protocol_lock,
    protocol_version_create,
)

DOCUMENT_HELP = (
    "The protocol document: the pre-registered analysis plan, a JSON object that satisfies the "
    "JSON Schema published at `/api/v1/schemas/protocol/` (task, primary and secondary "
    "endpoints, acceptance criteria, subgroups, minimum reportable cell size, bootstrap, "
    "fairness criteria, signatures). Keys left out take their defaults when it is stored."
)

# --- shapes -------------------------------------------------------------------------------------


@extend_schema_field({"type": "object", "additionalProperties": True, "description": DOCUMENT_HELP})
class ProtocolDocumentField(serializers.JSONField):
    """A protocol document; its problems are the service's to find, each at its path."""


class ProtocolSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField(
        help_text="`draft` (may still be replaced by a new version) or `locked` (hashed and "
        "frozen; runs use locked protocols only, a draft is locked when its first run starts)."
    )
    sha256 = serializers.SerializerMethodField(
        help_text="SHA-256 of the canonical document, set when it is locked (null for a draft)."
    )
    document = ProtocolDocumentField(help_text=DOCUMENT_HELP)

    class Meta:
        model = Protocol
        fields = [
            "id",
            "name",
            "version",
            "status",
            "sha256",
            "locked_at",
            "created_at",
            "document",
        ]

    @extend_schema_field({"type": "string", "enum": ["draft", "locked"]})
    def get_status(self, protocol: Protocol) -> str:
        return "locked" if protocol.is_locked else "draft"

    def get_sha256(self, protocol: Protocol) -> str | None:
        return protocol.sha256 or None


class ProtocolCreateSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=200,
        help_text="A new name starts at version 1; an existing name gets its next version.",
    )
    document = ProtocolDocumentField(help_text=DOCUMENT_HELP)


class ProtocolVersionSerializer(serializers.Serializer):
    document = ProtocolDocumentField(help_text=DOCUMENT_HELP)


class ValidationTeamWrites(permissions.BasePermission):
    """Anyone signed in reads (the queryset scopes what); only the validation team writes."""

    message = "Only the validation team writes protocols."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return selectors.is_validation_team(request.user)


# --- views --------------------------------------------------------------------------------------

INVALID_DOCUMENT = (
    " A document with problems is refused with 400, every problem in `errors` at its path "
    "(`document.acceptance_criteria[0].metric`, `document.min_cell_size`)."
)


@extend_schema_view(
    list=extend_schema(
        summary="Protocols you may name",
        description="Oldest first. The validation team, auditors and partner stewards (who "
        "grant datasets per protocol) see every protocol; a vendor member those of its runs, "
        "those its grants name, and every locked one where a grant to it names no protocol: "
        "the ids a run of its package may use.",
    ),
    retrieve=extend_schema(
        summary="A protocol",
        description="One protocol you may name, with its document; any other id answers 404, "
        "whether it exists or not.",
    ),
)
class ProtocolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ProtocolSerializer
    permission_classes = [permissions.IsAuthenticated, ValidationTeamWrites]
    parser_classes = [JSONParser]  # a document is a JSON object; a form cannot carry one

    def get_queryset(self):
        return selectors.protocols_visible_to(self.request.user)

    def get_object(self):
        return selectors.protocol_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(
        summary="Write a protocol (validation team)",
        description="A draft protocol from a name and a document: version 1 of a new name, or "
        "the next version of an existing one. Audited (`protocol.created`)." + INVALID_DOCUMENT,
        request=ProtocolCreateSerializer,
        responses={201: ProtocolSerializer},
    )
    def create(self, request: Request) -> Response:
        body = ProtocolCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        protocol = protocol_create(actor=request.user, **body.validated_data)
        return Response(ProtocolSerializer(protocol).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Write the next version of a protocol (validation team)",
        description="A new draft version of this protocol's name with a new document, whether "
        "this version is locked or a draft; its number follows the newest version of the name. "
        "Audited (`protocol.created`)." + INVALID_DOCUMENT,
        request=ProtocolVersionSerializer,
        responses={201: ProtocolSerializer},
    )
    @action(detail=True, methods=["post"])
    def versions(self, request: Request, pk=None) -> Response:
        body = ProtocolVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        protocol = protocol_version_create(
            actor=request.user, base=self.get_object(), document=body.validated_data["document"]
        )
        return Response(ProtocolSerializer(protocol).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Lock a protocol (validation team)",
        description="Hash the document and record the lock time: the protocol can never "
        "change again (a change is a new version). Locking a locked protocol changes nothing. "
        "Audited (`protocol.locked`). No request body.",
        request=None,
        responses={200: ProtocolSerializer},
    )
    @action(detail=True, methods=["post"])
    def lock(self, request: Request, pk=None) -> Response:
        protocol = protocol_lock(actor=request.user, protocol=self.get_object())
        return Response(ProtocolSerializer(protocol).data)
