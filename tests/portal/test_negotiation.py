"""portal.api.ContentNegotiation answers as DRF's own negotiation does, for every Accept header and format."""

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from portal.api import ContentNegotiation

ACCEPTS = [None, "*/*", "application/json", "text/html", "application/json; indent=4", "", "text/html, */*;q=0.8",
           "application/xml", "*/*;q=0.1, application/json"]  # fmt: skip
RENDERERS = [
    [JSONRenderer(), BrowsableAPIRenderer()],
    [BrowsableAPIRenderer(), JSONRenderer()],
    [TemplateHTMLRenderer(), JSONRenderer()],
]


def _answer(negotiation, request, renderers, suffix):  # type: ignore[no-untyped-def]
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except NotAcceptable as error:
        return ("406", str(error.detail))
    except Http404:  # a format no renderer has
        return ("404", "")
    return (type(renderer).__name__, media_type)


@pytest.mark.smoke
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api"])
@pytest.mark.parametrize("suffix", [None, "json"])
def test_it_answers_as_drf_does(accept, query, suffix):  # type: ignore[no-untyped-def]
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/v1/services/{query}", **headers))
    for renderers in RENDERERS:
        expected = _answer(DefaultContentNegotiation(), request, renderers, suffix)
        assert _answer(ContentNegotiation(), request, renderers, suffix) == expected, (accept, query, renderers)
