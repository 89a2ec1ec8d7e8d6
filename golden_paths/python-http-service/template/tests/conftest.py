import pytest

from app import create_app


@pytest.fixture
def app():
    return create_app({"TESTING": True, "VERSION": "1.2.3"})


@pytest.fixture
def client(app):
    return app.test_client()
