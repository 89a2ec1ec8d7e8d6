def test_hello_greets_by_name(client):
    response = client.get("/api/v1/hello", query_string={"name": "Ada"})

    assert response.status_code == 200
    assert response.get_json()["message"] == "Hello, Ada!"


def test_hello_defaults_to_world(client):
    assert client.get("/api/v1/hello").get_json()["message"] == "Hello, world!"


def test_hello_refuses_a_name_too_long(client):
    response = client.get("/api/v1/hello", query_string={"name": "x" * 101})

    assert response.status_code == 400
    assert response.get_json()["error"] == "Bad Request"


def test_unknown_path_is_a_json_404_and_a_request_id_is_returned(client):
    response = client.get("/nope", headers={"X-Request-ID": "abc123"})

    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"
    assert response.headers["X-Request-ID"] == "abc123"


def test_unexpected_errors_are_json_500s(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    response = app.test_client().get("/boom")

    assert response.status_code == 500
    assert response.get_json() == {"error": "Internal Server Error"}
