package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** Subdomain patterns and the missing-Origin policy; pure, no network. */
class OriginPatternsTest {

    private final HandshakeRequest request = new StubSelectionContext(Backend.of("ws://127.0.0.1:9"));
    private final OriginValidator validator =
            OriginValidator.allowPattern("https://*.example.com", "http://localhost:3000");

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
            "https://app.example.com, true",
            "https://a.b.example.com, true",
            "https://APP.Example.COM, true",
            "https://app.example.com:443, true",
            "wss://app.example.com, true",
            "http://localhost:3000, true",
            "https://example.com, false",
            "https://evil-example.com, false",
            "https://example.com.evil.net, false",
            "https://app.example.com.evil.net, false",
            "http://app.example.com, false",
            "https://app.example.com:8443, false",
            "https://.example.com, false",
            "null, false",
            "http://localhost:3001, false"})
    void matchesOnlyRealSubdomainsAndExactOrigins(String origin, boolean allowed) {
        assertThat(validator.isAllowed(origin, request)).isEqualTo(allowed);
    }

    @Test
    void allowsOrRefusesRequestsWithoutOriginByPolicy() {
        assertThat(validator.isAllowed(null, request)).as("non-browser clients by default").isTrue();
        assertThat(validator.requireOrigin().isAllowed(null, request)).isFalse();
        assertThat(validator.requireOrigin().isAllowed("https://app.example.com", request)).isTrue();
        assertThat(OriginValidator.allowAny().requireOrigin().isAllowed(null, request)).isFalse();
    }

    @Test
    void refusesMalformedPatterns() {
        assertThatThrownBy(() -> OriginValidator.allowPattern()).hasMessageContaining("at least one pattern");
        assertThatThrownBy(() -> OriginValidator.allowPattern("https://*.*.example.com"))
                .hasMessageContaining("expected: scheme://host[:port] or scheme://*.domain[:port]");
        assertThatThrownBy(() -> OriginValidator.allowPattern("example.com"))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
