from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.pagination import ListQuerySerializer, list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query
from apps.core.api.views import MerchantApiView
from apps.routing import selectors, services
from apps.routing.api import serializers as s
from apps.routing.representations import profile_representation, version_representation

# GET and POST on one path share a view class (Django routes a path to one view); each method
# is one operation with its own serializers and schema, as in the other apps.


def _profile_body(profile) -> dict:
    return profile_representation(
        profile, selectors.routing_profile_latest_version(profile=profile)
    )


class RoutingProfileListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="routing_profiles_list",
        parameters=[ListQuerySerializer],
        responses=s.RoutingProfileListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(ListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.routing_profile_list(merchant_id=self.merchant.id, livemode=self.livemode),
            params,
            url=request.path,
        )
        return Response(
            list_envelope([_profile_body(p) for p in rows], has_more=has_more, url=request.path)
        )

    @extend_schema(
        operation_id="routing_profiles_create",
        request=s.RoutingProfileCreateInputSerializer,
        responses={200: s.RoutingProfileOutputSerializer},
    )
    def post(self, request):
        data = parse_input(s.RoutingProfileCreateInputSerializer, request.data)
        profile = services.routing_profile_create(
            merchant=self.merchant,
            livemode=self.livemode,
            actor=self.actor,
            name=data["name"],
            rules=data["rules"],
            fallback=data.get("fallback"),
            note=data.get("note", ""),
            activate=data["activate"],
        )
        return Response(_profile_body(profile))


class RoutingProfileRetrieveUpdateApi(MerchantApiView):
    @extend_schema(
        operation_id="routing_profiles_retrieve", responses=s.RoutingProfileOutputSerializer
    )
    def get(self, request, profile_id: str):
        profile = selectors.routing_profile_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=profile_id
        )
        return Response(_profile_body(profile))

    @extend_schema(
        operation_id="routing_profiles_update",
        request=s.RoutingProfileUpdateInputSerializer,
        responses=s.RoutingProfileOutputSerializer,
    )
    def post(self, request, profile_id: str):
        data = parse_input(s.RoutingProfileUpdateInputSerializer, request.data)
        profile = selectors.routing_profile_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=profile_id
        )
        profile = services.routing_profile_update(
            profile=profile,
            actor=self.actor,
            name=data.get("name"),
            rules=data.get("rules"),
            fallback=data.get("fallback"),
            note=data.get("note", ""),
            activate=data["activate"],
        )
        return Response(_profile_body(profile))


class RoutingProfileVersionListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="routing_profile_versions_list",
        parameters=[ListQuerySerializer],
        responses=s.RoutingProfileVersionListOutputSerializer,
    )
    def get(self, request, profile_id: str):
        params = parse_query(ListQuerySerializer, request.query_params)
        profile = selectors.routing_profile_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=profile_id
        )
        rows, has_more = paginate(
            selectors.routing_profile_version_list(profile=profile),
            params,
            url=request.path,
            id_field="number",
        )
        return Response(
            list_envelope(
                [version_representation(v, profile) for v in rows],
                has_more=has_more,
                url=request.path,
            )
        )

    @extend_schema(
        operation_id="routing_profile_versions_create",
        request=s.RoutingProfileVersionCreateInputSerializer,
        responses={200: s.RoutingProfileVersionOutputSerializer},
    )
    def post(self, request, profile_id: str):
        data = parse_input(s.RoutingProfileVersionCreateInputSerializer, request.data)
        profile = selectors.routing_profile_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=profile_id
        )
        version = services.routing_profile_version_create(
            profile=profile,
            actor=self.actor,
            rules=data["rules"],
            fallback=data.get("fallback"),
            note=data.get("note", ""),
        )
        return Response(version_representation(version, profile))


class RoutingProfileVersionRetrieveApi(MerchantApiView):
    @extend_schema(
        operation_id="routing_profile_versions_retrieve",
        responses=s.RoutingProfileVersionOutputSerializer,
    )
    def get(self, request, profile_id: str, number: int):
        profile = selectors.routing_profile_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=profile_id
        )
        version = selectors.routing_profile_version_get(profile=profile, number=number)
        return Response(version_representation(version, profile))


class RoutingProfileActivateApi(MerchantApiView):
    @extend_schema(
        operation_id="routing_profiles_activate",
        request=s.RoutingProfileActivateInputSerializer,
        responses=s.RoutingProfileOutputSerializer,
    )
    def post(self, request, profile_id: str):
        data = parse_input(s.RoutingProfileActivateInputSerializer, request.data)
        profile = selectors.routing_profile_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=profile_id
        )
        profile = services.routing_profile_activate(
            profile=profile, actor=self.actor, version_number=data.get("version")
        )
        return Response(_profile_body(profile))


class RoutingProfileDeactivateApi(MerchantApiView):
    @extend_schema(
        operation_id="routing_profiles_deactivate",
        request=s.RoutingProfileDeactivateInputSerializer,
        responses=s.RoutingProfileOutputSerializer,
    )
    def post(self, request, profile_id: str):
        parse_input(s.RoutingProfileDeactivateInputSerializer, request.data)
        profile = selectors.routing_profile_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=profile_id
        )
        profile = services.routing_profile_deactivate(profile=profile, actor=self.actor)
        return Response(_profile_body(profile))
