package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Subdomain patterns, the missing-Origin policy and the syntax of origins; pure, no network. */
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

    /** {@code java.net.URI} has no host for {@code chat_app} (a docker-compose service name): both threw at build. */
    @Test
    void allowListAndPatternsTakeHostNamesWithAnUnderscore() {
        OriginValidator list = OriginValidator.allowList("http://chat_app:8080");
        assertThat(list.isAllowed("http://chat_app:8080", request)).isTrue();
        assertThat(list.isAllowed("ws://Chat_App:8080/", request)).isTrue();
        assertThat(list.isAllowed("http://chat_app:8081", request)).isFalse();
        assertThat(list.isAllowed("http://chat-app:8080", request)).isFalse();

        OriginValidator patterns = OriginValidator.allowPattern("http://*.my_stack.internal", "http://chat_app:8080");
        assertThat(patterns.isAllowed("http://web_1.my_stack.internal", request)).isTrue();
        assertThat(patterns.isAllowed("http://a.b_c.my_stack.internal", request)).isTrue();
        assertThat(patterns.isAllowed("http://chat_app:8080", request)).isTrue();
        assertThat(patterns.isAllowed("http://my_stack.internal", request)).isFalse();
        assertThat(patterns.isAllowed("http://evil_my_stack.internal", request)).isFalse();
        assertThat(patterns.isAllowed("http://chat_app", request)).isFalse();
    }

    /**
     * What is no {@code scheme://host[:port]} is refused when the validator is built. Ports 0 and above 65535 were
     * taken before, as {@code java.net.URI} reads them; no browser sends them.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"http://a.example:0", "http://a.example:65536", "http://a.example:99999",
            "http://a.example:+80", "http://a b.example", "http://a.example/x", "http://a.example//",
            "http://user@a.example", "http://a.example?x", "http://a.example#x", "http://a..example",
            "http://-a.example", "http://a%41.example", "http://\u212a.example", "http://b\u00fccher.example",
            "http://1.2.3", "http://256.1.1.1", "http://[::1", "http://[1:2:3:4:5:6:7:8:9]", "http://[::1]x", "http://",
            "http://:80", "file://server:99", "a.example", "null", "http://[fe80::1%25eth0]", "http://[fe80::1%eth0]:80",
            "http://127.000.000.001", "http://010.0.0.1", "http://2130706433", "http://0x7f000001"})
    void refusesWhatIsNoOriginAtBuild(String origin) {
        assertThatThrownBy(() -> OriginValidator.allowList(origin))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("expected: scheme://host[:port]");
    }

    /**
     * An IPv6 host is its address, however it is written: browsers send the RFC 5952 form, people and other clients
     * write others. Compared as written before, {@code http://[0:0:0:0:0:0:0:1]:8080} in a list refused the
     * {@code http://[::1]:8080} of every browser.
     */
    @ParameterizedTest(name = "{0} allows {1}")
    @CsvSource({
            "http://[0:0:0:0:0:0:0:1]:8080, http://[::1]:8080",
            "http://[::1]:8080, ws://[0::0:1]:8080/",
            "https://[2001:DB8::A], https://[2001:db8:0:0:0:0:0:a]:443",
            "http://[2001:db8:0:0:1:0:0:1], http://[2001:db8::1:0:0:1]",
            "http://[::ffff:127.0.0.1]:3000, http://[::ffff:7f00:1]:3000",
            "http://[::FFFF:7F00:1]:3000, http://[::ffff:127.0.0.1]:3000"})
    void comparesIpv6HostsByAddress(String listed, String origin) {
        assertThat(OriginValidator.allowList(listed).isAllowed(origin, request)).isTrue();
        assertThat(OriginValidator.allowPattern(listed).isAllowed(origin, request)).isTrue();
    }

    /** Compared by address, and on scheme and port still; an IPv4-mapped address is not its IPv4 origin. */
    @Test
    void tellsIpv6OriginsApartByAddressSchemeAndPort() {
        OriginValidator list = OriginValidator.allowList("http://[0:0:0:0:0:0:0:1]:8080", "http://[::ffff:7f00:1]");
        assertThat(list.isAllowed("http://[::1]:8080", request)).isTrue();
        assertThat(list.isAllowed("http://[::2]:8080", request)).isFalse();
        assertThat(list.isAllowed("http://[::1]:8081", request)).isFalse();
        assertThat(list.isAllowed("https://[::1]:8080", request)).isFalse();
        assertThat(list.isAllowed("http://[::ffff:127.0.0.1]", request)).isTrue();
        assertThat(list.isAllowed("http://127.0.0.1", request)).isFalse();
        assertThat(list.isAllowed("http://[::127.0.0.1]", request)).isFalse();
        assertThat(list.isAllowed("http://[::1%25lo]:8080", request)).as("a zone").isFalse();
    }

    /**
     * Browser extensions and apps that serve their pages from a scheme of their own (Capacitor, Electron, Tauri) send
     * {@code scheme://host} as their origin, with no port: such an entry threw at build, and those origins could not
     * be listed. A scheme other than {@code http(s)}, {@code ws(s)} and {@code ftp} has no default port.
     */
    @ParameterizedTest(name = "{0} allows {1}")
    @CsvSource({
            "capacitor://localhost, capacitor://localhost",
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop, chrome-extension://abcdefghijklmnopabcdefghijklmnop",
            "moz-extension://0b3e5c1a-7d2f-4c8e-9a61-2f4b8d9e1c30, moz-extension://0b3e5c1a-7d2f-4c8e-9a61-2f4b8d9e1c30/",
            "app://main, APP://Main",
            "ftp://a.example, ftp://a.example:21"})
    void allowListsTheOriginsOfExtensionsAndAppsWithoutAPort(String listed, String origin) {
        assertThat(OriginValidator.allowList(listed).isAllowed(origin, request)).isTrue();
        assertThat(OriginValidator.allowPattern(listed).isAllowed(origin, request)).isTrue();
    }

    @Test
    void comparesTheOriginsOfOtherSchemesOnSchemeHostAndPortWithNoDefaultPort() {
        OriginValidator list = OriginValidator.allowList("app://main", "app://tools:99");
        assertThat(list.isAllowed("app://main", request)).isTrue();
        assertThat(list.isAllowed("app://tools:99", request)).isTrue();
        assertThat(list.isAllowed("app://main:80", request)).isFalse();
        assertThat(list.isAllowed("app://tools", request)).isFalse();
        assertThat(list.isAllowed("http://main", request)).isFalse();
        assertThat(list.isAllowed("tauri://main", request)).isFalse();
        assertThat(list.isAllowed("app://other", request)).isFalse();

        OriginValidator patterns = OriginValidator.allowPattern("app://*.example");
        assertThat(patterns.isAllowed("app://a.example", request)).isTrue();
        assertThat(patterns.isAllowed("app://example", request)).isFalse();
        assertThat(patterns.isAllowed("app://a.example:1", request)).isFalse();
        assertThat(patterns.isAllowed("https://a.example", request)).isFalse();
    }

    /** The forms java.net.URI parsed compare as before the parser was replaced (green before and after). */
    @ParameterizedTest(name = "{0} allows {1}: {2}")
    @CsvSource({
            "http://a.example, HTTP://A.Example:080/, true",
            "http://a.example, http://a.example:, true",
            "http://a.example, http://a.example., false",
            "http://1.2.3.4:8080, ws://1.2.3.4:8080, true",
            "http://[::1]:8080, http://[::1]:8080/, true",
            "http://[::FFFF:1.2.3.4], http://[::ffff:1.2.3.4]:80, true",
            "http://localhost:3000, http://localhost:3000?, false"})
    void comparesTheFormsItTookBeforeAsBefore(String listed, String origin, boolean allowed) {
        assertThat(OriginValidator.allowList(listed).isAllowed(origin, request)).isEqualTo(allowed);
    }
}
