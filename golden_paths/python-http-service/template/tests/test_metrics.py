def test_metrics_count_requests_by_method_route_and_status(client):
    client.get("/api/v1/hello", query_string={"name": "Ada"})
    client.get("/api/v1/hello", query_string={"name": "Bob"})
    client.get("/does-not-exist")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert "# TYPE http_requests_total counter" in text
    assert 'http_requests_total{method="GET",path="/api/v1/hello",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",path="<unmatched>",status="404"} 1.0' in text


def test_metrics_have_a_latency_histogram_and_process_metrics(client):
    client.get("/api/v1/hello")

    text = client.get("/metrics").get_data(as_text=True)

    assert "# TYPE http_request_duration_seconds histogram" in text
    assert 'http_request_duration_seconds_count{method="GET",path="/api/v1/hello",status="200"} 1.0' in text
    assert 'app_info{version="1.2.3"} 1.0' in text
    assert "process_start_time_seconds" in text
