package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;

import org.junit.jupiter.api.Test;

class BackendHandshakeHostTest {

    private static String host(String uri, boolean secure) {
        return BackendHandshake.hostHeader(URI.create(uri), secure);
    }

    @Test
    void writesHostWithoutTheSchemesDefaultPortAsJettysClientDid() {
        assertThat(host("ws://backend.internal:80/chat", false)).isEqualTo("backend.internal");
        assertThat(host("wss://backend.internal:443/chat", true)).isEqualTo("backend.internal");
        assertThat(host("ws://[::1]:80/", false)).isEqualTo("[::1]");
        assertThat(host("ws://backend.internal:443/", false)).isEqualTo("backend.internal:443");
        assertThat(host("wss://backend.internal:80/", true)).isEqualTo("backend.internal:80");
        assertThat(host("ws://10.0.0.1:8080/", false)).isEqualTo("10.0.0.1:8080");
        assertThat(host("ws://backend.internal/", false)).isEqualTo("backend.internal");
    }
}
