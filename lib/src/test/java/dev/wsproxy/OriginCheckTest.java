package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.RawHttp.Request;

/**
 * The Origin check, the defence against cross-site WebSocket hijacking (matrix rows H2, H3): a refused origin gets
 * {@code 403} before any backend connection. One proxy serves a route per built-in validator: {@code /any/}
 * ({@link OriginValidator#allowAny()}, the proxy-wide default), {@code /same/} ({@link OriginValidator#sameOrigin()})
 * and {@code /list/} ({@link OriginValidator#allowList(String...)} of {@code https://a.example}).
 */
class OriginCheckTest {

    private TestBackend backend;
    private RecordingListener listener;
    private final List<HandshakeRequest> seenByCustomValidator = new CopyOnWriteArrayList<>();
    private WebSocketProxy proxy;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        listener = new RecordingListener();
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/any/", backend.backend())
                .route("/same/", r -> r.backends(backend.backend()).originValidator(OriginValidator.sameOrigin()))
                .route("/list/", r -> r.backends(backend.backend())
                        .originValidator(OriginValidator.allowList("https://a.example")))
                .route("/required/", r -> r.backends(backend.backend())
                        .originValidator(OriginValidator.allowList("https://a.example").requireOrigin()))
                .route("/either/", r -> r.backends(backend.backend()).originValidator(
                        OriginValidator.allowList("https://a.example").or(OriginValidator.allowList("https://b.example"))))
                .route("/custom/", r -> r.backends(backend.backend()).originValidator((origin, request) -> {
                    seenByCustomValidator.add(request);
                    return "https://custom.example".equals(origin);
                }))
                .route("/throwing/", r -> r.backends(backend.backend()).originValidator((origin, request) -> {
                    throw new IllegalStateException("validator exploded at java.lang.Secret");
                }))
                .listener(listener)
                .build();
        proxy.start();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, null, backend);
    }

    private String host() {
        return RawHttp.host(proxy);
    }

    private int port() {
        return proxy.uri().getPort();
    }

    /** Replaces {@code {host}}, {@code {port}} and {@code {otherPort}} with the proxy's values. */
    private String expand(String template) {
        return template.replace("{host}", host())
                .replace("{port}", String.valueOf(port()))
                .replace("{otherPort}", String.valueOf(port() == 65535 ? 65534 : port() + 1));
    }

    @ParameterizedTest(name = "Origin: {0}")
    @ValueSource(strings = {"https://evil.example", "null", "http://127.0.0.1:{otherPort}", "file://"})
    void allowAnyUpgradesEveryOriginIncludingNull(String origin) throws Exception {
        assertUpgrades(Request.upgrade("/any/chat", host()).add("Origin", expand(origin)));
    }

    @ParameterizedTest(name = "Origin: {0}")
    @ValueSource(strings = {"http://{host}", "ws://{host}", "HTTP://{host}", "http://{host}/"})
    void sameOriginUpgradesTheProxysOwnOrigin(String origin) throws Exception {
        assertUpgrades(Request.upgrade("/same/chat", host()).add("Origin", expand(origin)));
    }

    @ParameterizedTest(name = "Host: {0}, Origin: {1}")
    @CsvSource({
        "app.example:8443, http://app.example:8443",
        "APP.example:8443, http://app.EXAMPLE:8443",
        "app.example, http://app.example",
        "app.example, http://app.example:80",
        "app.example:80, http://app.example"})
    void sameOriginComparesWithTheHostTheClientAsked(String hostHeader, String origin) throws Exception {
        assertUpgrades(Request.upgrade("/same/chat", hostHeader).add("Origin", origin));
    }

    /**
     * The {@code Host} and the {@code Origin} name an IPv6 host by its address: browsers send the origin in RFC 5952
     * form, other clients write the {@code Host} as they like. Compared as written before, the proxy's own origin was
     * refused.
     */
    @ParameterizedTest(name = "Host: {0}, Origin: {1}")
    @CsvSource({
        "'[0:0:0:0:0:0:0:1]:8080', http://[::1]:8080",
        "'[::1]:8080', http://[0:0:0:0:0:0:0:1]:8080",
        "'[2001:DB8:0:0:0:0:0:A]', http://[2001:db8::a]",
        "'[::FFFF:127.0.0.1]:8080', http://[::ffff:7f00:1]:8080"})
    void sameOriginComparesAnIpv6HostByAddress(String hostHeader, String origin) throws Exception {
        assertUpgrades(Request.upgrade("/same/chat", hostHeader).add("Origin", origin));
    }

    /**
     * A host name with {@code _} in a label (a docker-compose service name) is one {@code java.net.URI} cannot parse as
     * a host: {@code sameOrigin} refused every origin of such a site, its own included.
     */
    @Test
    void sameOriginAllowsAHostNameWithAnUnderscore() throws Exception {
        assertUpgrades(Request.upgrade("/same/chat", expand("chat_app:{port}"))
                .add("Origin", expand("http://chat_app:{port}")));
        assertUpgrades(Request.upgrade("/same/chat", "Chat_App").add("Origin", "ws://chat_app"));
        assertRejectedBeforeConnecting(Request.upgrade("/same/chat", expand("chat_app:{port}"))
                .add("Origin", expand("http://chat_app:{otherPort}")));
        assertRejectedBeforeConnecting(Request.upgrade("/same/chat", expand("chat_app:{port}"))
                .add("Origin", expand("http://other_app:{port}")));
        assertRejectedBeforeConnecting(Request.upgrade("/same/chat", expand("chat_app:{port}"))
                .add("Origin", expand("https://chat_app:{port}")));
    }

    @ParameterizedTest(name = "Origin: {0}")
    @ValueSource(strings = {
        "https://{host}",
        "wss://{host}",
        "http://127.0.0.1:{otherPort}",
        "http://127.0.0.1",
        "http://localhost:{port}",
        "null",
        "http://127.0.0.1.evil.net:{port}",
        "http://evil.example",
        "http://user@{host}",
        "http://evil.example#@{host}",
        "not a url"})
    void sameOriginRejectsForeignOriginWith403BeforeConnecting(String origin) throws Exception {
        assertRejectedBeforeConnecting(Request.upgrade("/same/chat", host()).add("Origin", expand(origin)));
    }

    @ParameterizedTest(name = "Host: {0}, Origin: {1}")
    @CsvSource({
        "app.example:8443, https://app.example:8443",
        "app.example:8443, http://app.example",
        "app.example, http://app.example:8080",
        "app.example, http://app.example.evil.net"})
    void sameOriginRejectsAnOriginThatDiffersFromTheHostInSchemeOrPort(String hostHeader, String origin)
            throws Exception {
        assertRejectedBeforeConnecting(Request.upgrade("/same/chat", hostHeader).add("Origin", origin));
    }

    @ParameterizedTest(name = "Origin: {0}")
    @ValueSource(strings = {"https://a.example", "https://a.example:443", "HTTPS://A.Example", "wss://a.example"})
    void allowListUpgradesListedOriginWithDefaultPortAndAnyCase(String origin) throws Exception {
        assertUpgrades(Request.upgrade("/list/chat", host()).add("Origin", origin));
    }

    @ParameterizedTest(name = "Origin: {0}")
    @ValueSource(strings = {
        "http://a.example",
        "https://a.example:8443",
        "https://a.example:80",
        "https://a.example.evil.net",
        "https://evil.a.example",
        "https://xa.example",
        "https://a.example@evil.net",
        "https://a.exampl",
        "null",
        ""})
    void allowListRejectsLookalikeOriginWith403BeforeConnecting(String origin) throws Exception {
        assertRejectedBeforeConnecting(Request.upgrade("/list/chat", host()).add("Origin", origin));
    }

    @ParameterizedTest(name = "route {0}")
    @ValueSource(strings = {"/any/", "/same/", "/list/", "/either/"})
    void builtInsUpgradeARequestWithoutOrigin(String route) throws Exception {
        assertUpgrades(Request.upgrade(route + "chat", host()));
    }

    /** Non-browser clients send no Origin; {@code requireOrigin()} refuses them like a foreign origin (matrix H3). */
    @Test
    void requireOriginRejectsARequestWithoutOriginWith403BeforeConnecting() throws Exception {
        assertRejectedBeforeConnecting(Request.upgrade("/required/chat", host()));
        assertRejectedBeforeConnecting(Request.upgrade("/required/chat", host()).add("Origin", "https://b.example"));
        assertUpgrades(Request.upgrade("/required/chat", host()).add("Origin", "https://a.example"));
    }

    @Test
    void orCombinationAllowsWhatEitherSideAllows() throws Exception {
        assertUpgrades(Request.upgrade("/either/chat", host()).add("Origin", "https://a.example"));
        assertUpgrades(Request.upgrade("/either/chat", host()).add("Origin", "https://b.example"));
        assertRejectedBeforeConnecting(Request.upgrade("/either/chat", host()).add("Origin", "https://c.example"));
    }

    @Test
    void routeValidatorOverridesTheProxyWideOne() throws Exception {
        // The same foreign origin passes the proxy-wide allowAny on /any/ and is refused on /same/.
        assertUpgrades(Request.upgrade("/any/chat", host()).add("Origin", "https://evil.example"));
        assertRejectedBeforeConnecting(Request.upgrade("/same/chat", host()).add("Origin", "https://evil.example"));
    }

    @Test
    void customValidatorSeesTheRequestAndItsDecisionIsFollowed() throws Exception {
        assertRejectedBeforeConnecting(Request.upgrade("/custom/chat?room=1", host())
                .add("Origin", "https://other.example").add("X-Tenant", "t1"));
        assertThat(seenByCustomValidator).hasSize(1);
        HandshakeRequest seen = seenByCustomValidator.get(0);
        assertThat(seen.route()).isEqualTo("/custom/");
        assertThat(seen.uri().getRawPath()).isEqualTo("/custom/chat");
        assertThat(seen.uri().getRawQuery()).isEqualTo("room=1");
        assertThat(seen.header("x-tenant")).isEqualTo("t1");
        assertThat(seen.secure()).isFalse();
        assertThat(seen.clientAddress().getAddress().isLoopbackAddress()).isTrue();

        assertUpgrades(Request.upgrade("/custom/chat", host()).add("Origin", "https://custom.example"));
    }

    @Test
    void theRequestsUriKeepsItsHostAndPathWhenTheQueryHasWhatBrowsersSendUnencoded() throws Exception {
        // java.net.URI refuses { } | ^ in a query, which browsers send and Jetty takes: the URI fell back to
        // http://invalid/, so sameOrigin refused the proxy's own origin and HashKeys.path() hashed every such path as /.
        assertRejectedBeforeConnecting(Request.upgrade("/custom/rooms/42?f={a}|b^c%zz", host())
                .add("Origin", "https://other.example"));
        URI seen = seenByCustomValidator.get(0).uri();
        assertThat(seen.getHost()).isEqualTo("127.0.0.1");
        assertThat(seen.getPort()).isEqualTo(port());
        assertThat(seen.getRawPath()).isEqualTo("/custom/rooms/42");
        assertThat(seen.getRawQuery()).isEqualTo("f=%7Ba%7D%7Cb%5Ec%25zz");

        assertUpgrades(Request.upgrade("/same/chat?f={a}|b", host()).add("Origin", expand("http://{host}")));
    }

    /**
     * Jetty lets header bytes 0x80 to 0xFF through (obs-text, read as ISO-8859-1): the reason, documented as "a short
     * explanation, for logs", carried the client's whole Origin, U+0085 (NEL, a line break to some log pipelines) and
     * U+009B (the 8-bit CSI escape) included, 4 KiB of it.
     */
    @Test
    void refusedOriginReasonIsShortAndPrintable() throws Exception {
        String origin = "https://evil\u0085\u009B31m FAKE LINE" + "B".repeat(4096);
        assertRejectedBeforeConnecting(Request.upgrade("/list/chat", host()).add("Origin", origin));

        String reason = listener.all(RecordingListener.Rejected.class).get(0).reason();
        assertThat(reason).doesNotContainPattern("[\\u0000-\\u001F\\u007F-\\u009F]").hasSizeLessThanOrEqualTo(150)
                .startsWith("origin not allowed: https://evil\\u0085\\u009b31m FAKE LINEBBB").endsWith("...");
    }

    @Test
    void validatorThatThrowsGivesA500WithoutDetailBeforeConnecting() throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(
                    Request.upgrade("/throwing/chat", host()).add("Origin", "https://a.example"));

            assertThat(response.status()).as("%s", response).isEqualTo(500);
            assertThat(response.header("Connection")).containsIgnoringCase("close");
            assertThat(response.bodyText()).doesNotContain("Exception").doesNotContain("java.")
                    .doesNotContain("exploded");
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(backend.httpConnections).hasValue(0);
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(500);
    }

    private void assertRejectedBeforeConnecting(Request request) throws Exception {
        int before = listener.all(RecordingListener.Rejected.class).size();
        int connectionsBefore = backend.httpConnections.get();
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(request);

            assertThat(response.status()).as("%s\nfor\n%s", response, request).isEqualTo(403);
            assertThat(response.header("Connection")).containsIgnoringCase("close");
            assertThat(response.header("Sec-WebSocket-Accept")).isNull();
            assertThat(response.bodyText()).doesNotContain("Exception").doesNotContain("java.");
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(backend.httpConnections).as("backend connections").hasValue(connectionsBefore);
        assertThat(backend.upgrades).as("backend upgrades").isEmpty();
        List<RecordingListener.Rejected> rejected = listener.all(RecordingListener.Rejected.class);
        assertThat(rejected).hasSize(before + 1);
        assertThat(rejected.get(before).status()).isEqualTo(403);
    }

    private void assertUpgrades(Request request) throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(request);

            assertThat(response.status()).as("%s\nfor\n%s", response, request).isEqualTo(101);
            assertThat(response.header("Sec-WebSocket-Accept")).isEqualTo(RawFrames.SAMPLE_ACCEPT);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextClose().code()).isEqualTo(1000);
        backend.nextUpgrade();
        Clients.assertNoLeaks(proxy, null, backend);
    }
}
