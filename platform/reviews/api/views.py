"""Ownership reviews API: campaigns, their items and answers, and handovers. Reads are open to signed-in users;
writes are checked by the service functions (platform admins open and close campaigns; the owning team's leads and
maintainers answer; a lead of the receiving team accepts a handover)."""

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.models import Service
from portal.api import JSONParser
from reviews import permissions, selectors, services
from reviews.api.serializers import (
    AnswerSerializer,
    BulkConfirmResultSerializer,
    BulkConfirmSerializer,
    CampaignCreateSerializer,
    CampaignSerializer,
    DecisionSerializer,
    HandoverCreateSerializer,
    HandoverSerializer,
    ItemSerializer,
)
from reviews.models import Campaign, Handover, Item

REFUSED = {
    400: OpenApiResponse(description="A field is wrong; the body says which."),
    403: OpenApiResponse(description="You may not do this (the body says who may)."),
    409: OpenApiResponse(description="Already answered, closed or decided."),
}


class CampaignFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")

    class Meta:
        model = Campaign
        fields = ["status", "kind", "team"]


class CampaignViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Review campaigns, newest first, with how many items they have and how many are answered."""

    # JSON bodies only: a form-encoded list of a thousand items would pass Django's field limit (a 500).
    parser_classes = [JSONParser]

    serializer_class = CampaignSerializer
    filterset_class = CampaignFilterSet

    def get_queryset(self) -> QuerySet[Campaign]:
        return selectors.campaign_list_visible(user=self.request.user).order_by("-created_at", "-pk")

    @extend_schema(request=CampaignCreateSerializer, responses={201: CampaignSerializer, **REFUSED})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Open a campaign (platform admins): one item per service the scope selects."""
        payload = CampaignCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        campaign = services.campaign_open(
            opened_by=request.user,  # type: ignore[arg-type]
            title=data["title"],
            scope=data["scope"],
            due_on=data["due_on"],
            message=data["message"],
            questions=data.get("questions"),
        )
        fresh = self.get_queryset().get(pk=campaign.pk)
        return Response(CampaignSerializer(fresh, context=self.get_serializer_context()).data, status=201)

    @extend_schema(request=None, responses={200: CampaignSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str | None = None) -> Response:
        """Close the campaign (platform admins): it accepts no more answers."""
        services.campaign_close(campaign=self.get_object(), closed_by=request.user)  # type: ignore[arg-type]
        return Response(CampaignSerializer(self.get_object(), context=self.get_serializer_context()).data)


class ItemFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    team = django_filters.CharFilter(field_name="team__slug")
    mine = django_filters.BooleanFilter(method="filter_mine", label="Only the open items I may answer")

    class Meta:
        model = Item
        fields = ["campaign", "status", "audience", "service", "team", "mine"]

    def filter_mine(self, queryset: QuerySet[Item], name: str, value: bool) -> QuerySet[Item]:
        if not value:
            return queryset
        user = self.request.user  # type: ignore[union-attr]
        mine = selectors.items_open_for(user=user, team_ids=permissions.answering_team_ids(user))
        return queryset.filter(pk__in=mine.values("pk"))


class ItemViewSet(viewsets.ReadOnlyModelViewSet):
    """Review items: one service in one campaign, with its answer once given."""

    # JSON bodies only: a form-encoded list of a thousand items would pass Django's field limit (a 500).
    parser_classes = [JSONParser]

    serializer_class = ItemSerializer
    filterset_class = ItemFilterSet

    def get_queryset(self) -> QuerySet[Item]:
        return selectors.item_list_visible(user=self.request.user).order_by("due_on", "pk")

    @extend_schema(request=AnswerSerializer, responses={200: ItemSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def answer(self, request: Request, pk: str | None = None) -> Response:
        """Answer the item (the owning team's leads and maintainers, or platform admins)."""
        item = self.get_object()
        payload = AnswerSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        answer = services.Answer(details=dict(data.pop("details", {}) or {}), **data)
        services.item_answer(item=item, answered_by=request.user, answer=answer)  # type: ignore[arg-type]
        return Response(ItemSerializer(self.get_object(), context=self.get_serializer_context()).data)

    @extend_schema(request=BulkConfirmSerializer, responses={200: BulkConfirmResultSerializer, 400: REFUSED[400]})
    @action(detail=False, methods=["post"])
    def confirm(self, request: Request) -> Response:
        """ "All of these are still ours": confirm ownership of many items; each refused item says why."""
        payload = BulkConfirmSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        ids = payload.validated_data["items"]
        items = list(Item.objects.select_related("service", "campaign").filter(pk__in=ids))
        done, refused = services.items_confirm(
            items=items,
            answered_by=request.user,  # type: ignore[arg-type]
            comment=payload.validated_data["comment"],
        )
        found = {item.pk for item in items}
        refused.update({pk: "No such item." for pk in ids if pk not in found})
        return Response({"answered": [item.pk for item in done], "refused": {str(k): v for k, v in refused.items()}})


class HandoverFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    to_team = django_filters.CharFilter(field_name="to_team__slug")
    from_team = django_filters.CharFilter(field_name="from_team__slug")

    class Meta:
        model = Handover
        fields = ["status", "service", "to_team", "from_team"]


class HandoverViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Handovers: a service proposed to another team, accepted or declined by a lead there."""

    # JSON bodies only: a form-encoded list of a thousand items would pass Django's field limit (a 500).
    parser_classes = [JSONParser]

    serializer_class = HandoverSerializer
    filterset_class = HandoverFilterSet

    def get_queryset(self) -> QuerySet[Handover]:
        return selectors.handover_list_visible(user=self.request.user).order_by("-created_at", "-pk")

    @extend_schema(request=HandoverCreateSerializer, responses={201: HandoverSerializer, **REFUSED})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Propose a handover (whoever may change the service); a platform admin's is carried out at once."""
        payload = HandoverCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        service: Service = payload.validated_data["service"]
        from catalog.permissions import user_can

        if not user_can(request.user, "catalog.change_service", service):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied(f"Only {service.owner} (or a platform admin) may hand {service} over.")
        handover = services.handover_propose(
            service=service,
            to_team=payload.validated_data["to_team"],
            proposed_by=request.user,  # type: ignore[arg-type]
            note=payload.validated_data["note"],
        )
        fresh = get_object_or_404(self.get_queryset(), pk=handover.pk)
        return Response(HandoverSerializer(fresh, context=self.get_serializer_context()).data, status=201)

    def _decide(self, request: Request, verb: str) -> Response:
        handover = self.get_object()
        payload = DecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        note = payload.validated_data["note"]
        if verb == "accept":
            services.handover_accept(handover=handover, decided_by=request.user, note=note)  # type: ignore[arg-type]
        elif verb == "decline":
            services.handover_decline(handover=handover, decided_by=request.user, note=note)  # type: ignore[arg-type]
        else:
            services.handover_withdraw(handover=handover, withdrawn_by=request.user)  # type: ignore[arg-type]
        return Response(HandoverSerializer(self.get_object(), context=self.get_serializer_context()).data)

    @extend_schema(request=DecisionSerializer, responses={200: HandoverSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        """Accept (a lead of the receiving team, or a platform admin): the service moves and is verified."""
        return self._decide(request, "accept")

    @extend_schema(request=DecisionSerializer, responses={200: HandoverSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str | None = None) -> Response:
        """Decline (a lead of the receiving team, or a platform admin): the service stays."""
        return self._decide(request, "decline")

    @extend_schema(request=DecisionSerializer, responses={200: HandoverSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        """Withdraw (the proposer, the giving team's leads and maintainers, or a platform admin)."""
        return self._decide(request, "withdraw")
