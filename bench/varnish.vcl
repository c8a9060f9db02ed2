vcl 4.1;

# Varnish in front of an uncached OpenRisk (bench/hit-path.sh), the way an operator might put it
# there: every GET cached for five minutes under its URL alone. It checks no token, so it would
# serve any caller what another was given; it is here as the speed to match, not as a deployment.

backend openrisk {
    .host = "127.0.0.1";
    .port = "18301";
}

sub vcl_recv {
    if (req.method != "GET") {
        return (pass);
    }
    # Cached despite the Authorization header, which Varnish otherwise passes.
    return (hash);
}

sub vcl_hash {
    hash_data(req.url);
    return (lookup);
}

sub vcl_backend_response {
    # Cached despite `Cache-Control: private, no-cache` and `Vary: Authorization`.
    set beresp.ttl = 300s;
    set beresp.grace = 0s;
    unset beresp.http.Cache-Control;
    unset beresp.http.Vary;
    return (deliver);
}
