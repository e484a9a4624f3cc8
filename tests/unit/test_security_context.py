from auth.security_context import SecurityContext, client_ip

PROXY = frozenset({"10.0.0.5"})


def test_payload_leaves_out_unknown_fields():
    context = SecurityContext(application_name="Entra Chat", source_ip="203.0.113.7")
    assert context.as_payload() == {"application_name": "Entra Chat", "source_ip": "203.0.113.7"}


def test_forwarded_for_is_used_only_behind_a_trusted_proxy():
    assert client_ip("10.0.0.5", "203.0.113.7", PROXY) == "203.0.113.7"
    # Read from the right: the hop the trusted proxy saw is the person unless it is a trusted proxy too.
    assert client_ip("10.0.0.5", "203.0.113.7, 10.0.0.9", PROXY) == "10.0.0.9"
    assert client_ip("10.0.0.5", "203.0.113.7, 10.0.0.9", frozenset({"10.0.0.0/24"})) == "203.0.113.7"
    # A client that writes its own X-Forwarded-For through an appending proxy cannot choose its address.
    assert client_ip("10.0.0.5", "1.2.3.4, 198.51.100.4", PROXY) == "198.51.100.4"
    # A proxy on this host (Streamlit reports that peer as None; the page passes LOOPBACK) when it is trusted.
    assert client_ip("127.0.0.1", "203.0.113.7", frozenset({"127.0.0.1"})) == "203.0.113.7"
    assert client_ip("127.0.0.1", "203.0.113.7", PROXY) == "127.0.0.1"
    assert client_ip("10.0.0.5", "203.0.113.7, 10.0.0.5", PROXY) == "203.0.113.7"
    # A client that is not the proxy cannot spoof its address with the header.
    assert client_ip("198.51.100.4", "203.0.113.7", PROXY) == "198.51.100.4"
    assert client_ip("10.0.0.5", None, PROXY) == "10.0.0.5"


def test_addresses_are_normalised_and_garbage_is_dropped():
    assert client_ip("::ffff:127.0.0.1", None) == "127.0.0.1"
    assert client_ip("not-an-ip", None) is None
    assert client_ip("10.0.0.5", "garbage", PROXY) == "10.0.0.5"
    assert client_ip(None, "203.0.113.7", PROXY) is None
