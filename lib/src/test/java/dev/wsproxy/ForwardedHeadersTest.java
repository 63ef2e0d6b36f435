package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

import org.eclipse.jetty.websocket.api.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.RawHttp.Request;

/**
 * What the backend sees of a client's handshake (matrix rows H1, H8, H9): the client's end-to-end headers, the proxy's
 * own {@code X-Forwarded-*} and {@code X-Real-IP}, never a hop-by-hop header or the client's WebSocket key and
 * extensions; and the path the route maps the request to. The hop-by-hop cases run for a plain {@code GET} on the same
 * route too, which the proxy forwards on another path ({@link PlainHttp#PROXY_TO_BACKEND}).
 */
class ForwardedHeadersTest {

    private static final String CLIENT_IP = "127.0.0.1";

    private TestBackend backend;
    private TestBackend admin;
    /** Answers an upgrade with a {@code 101} (then echoes and answers a close), any other request with {@code 200}. */
    private RawBackend raw;
    private WebSocketProxy proxy;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        admin = new TestBackend("admin");
        RawBackend.Reply switching = RawBackend.switching(null);
        raw = RawBackend.answering(request -> request.header("Upgrade") != null ? switching.response(request)
                : "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain");
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", backend.backend())
                .route("/ws/admin/", admin.backend())
                .route("/raw/", raw.backend())
                .route("/nohost/", r -> r.backends(backend.backend()).preserveHost(false))
                .route("/mapped/", Backend.of(backend.uri() + "/base/"))
                .build();
        proxy.start();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, null, backend, admin, raw);
    }

    /** Upgrades the raw request, checks the 101, closes cleanly and returns what the backend saw. */
    private TestBackend.Upgrade upgradeAndClose(Request request, TestBackend expected) throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(request);
            assertThat(response.status()).as("%s\nfor\n%s", response, request).isEqualTo(101);
            assertThat(response.header("Sec-WebSocket-Accept")).isEqualTo(RawFrames.SAMPLE_ACCEPT);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(expected.nextClose().code()).isEqualTo(1000);
        return expected.nextUpgrade();
    }

    private TestBackend.Upgrade upgradeAndClose(Request request) throws Exception {
        return upgradeAndClose(request, backend);
    }

    /** The two ways a request on a route reaches its backend: relayed as an upgrade, or proxied as plain HTTP. */
    enum Kind {
        UPGRADE, PLAIN_GET
    }

    /**
     * Sends a request for {@code /raw/chat} to the raw backend, as an upgrade (completed and closed cleanly) or as a
     * plain {@code GET}, with {@code connection} in its {@code Connection} header (after {@code Upgrade} for an
     * upgrade) and the headers {@code headers} adds; returns the request head as the backend received it.
     */
    private RawBackend.Request forward(Kind kind, String host, String connection, UnaryOperator<Request> headers)
            throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            if (kind == Kind.UPGRADE) {
                Request request = headers.apply(Request.upgrade("/raw/chat", host)
                        .set("Connection", "Upgrade, " + connection));
                RawHttp.Response response = client.exchange(request);
                assertThat(response.status()).as("%s\nfor\n%s", response, request).isEqualTo(101);
                assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
            } else {
                Request request = headers.apply(Request.plain("GET", "/raw/chat", host).add("Connection", connection));
                RawHttp.Response response = client.exchange(request);
                assertThat(response.status()).as("%s\nfor\n%s", response, request).isEqualTo(200);
                assertThat(response.bodyText()).isEqualTo("plain");
            }
        }
        RawBackend.Request seen = raw.nextRequest();
        assertThat(seen.requestLine()).startsWith("GET /raw/chat ");
        return seen;
    }

    @Test
    void backendSeesTheClientIpAndTheHttpSchemeInForwardedHeaders() throws Exception {
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade("/ws/chat", "app.example:8443"));

        assertThat(seen.header("X-Forwarded-For")).isEqualTo(CLIENT_IP);
        assertThat(seen.header("X-Real-IP")).isEqualTo(CLIENT_IP);
        assertThat(seen.header("X-Forwarded-Proto")).isEqualTo("http");
        assertThat(seen.header("X-Forwarded-Host")).isEqualTo("app.example:8443");
        assertThat(seen.header("Host")).as("Host, preserved by default").isEqualTo("app.example:8443");
    }

    @Test
    void jettyClientsHandshakeCarriesTheForwardedHeadersToo() throws Exception {
        try (Clients clients = new Clients()) {
            WsRecorder client = clients.connect(Clients.ws(proxy, "/ws/chat"),
                    Map.of("X-Forwarded-For", "10.9.8.7", "Cookie", "session=abc"));
            TestBackend.Upgrade seen = backend.nextUpgrade();

            assertThat(seen.header("X-Forwarded-For")).as("an untrusted peer's chain is replaced").isEqualTo(CLIENT_IP);
            assertThat(seen.header("X-Forwarded-Proto")).isEqualTo("http");
            assertThat(seen.header("Host")).isEqualTo(RawHttp.host(proxy));
            assertThat(seen.header("Cookie")).isEqualTo("session=abc");
            client.session.close(1000, null, Callback.NOOP);
            client.nextClose();
            Clients.assertNoLeaks(proxy, clients, backend);
        }
    }

    @ParameterizedTest(name = "X-Forwarded-For: {0}")
    @CsvSource(delimiter = '|', value = {"1.2.3.4", "1.2.3.4, 5.6.7.8", "unknown"})
    void replacesTheForwardedForOfAnUntrustedPeer(String incoming) throws Exception {
        TestBackend.Upgrade seen = upgradeAndClose(
                Request.upgrade("/ws/chat", RawHttp.host(proxy)).add("X-Forwarded-For", incoming));

        assertThat(seen.header("X-Forwarded-For")).isEqualTo(CLIENT_IP);
        assertThat(seen.headers().get("x-forwarded-for")).as("one header line").hasSize(1);
    }

    @Test
    void dropsEveryForwardingHeaderOfAnUntrustedPeer() throws Exception {
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade("/ws/chat", RawHttp.host(proxy))
                .add("X-Forwarded-For", "1.2.3.4").add("X-Forwarded-For", "5.6.7.8")
                .add("Forwarded", "for=6.6.6.6;proto=https").add("X-Forwarded-Port", "443")
                .add("X-Forwarded-Prefix", "/evil"));

        assertThat(seen.header("X-Forwarded-For")).isEqualTo(CLIENT_IP);
        assertThat(seen.headers()).doesNotContainKeys("forwarded", "x-forwarded-port", "x-forwarded-prefix");
    }

    @Test
    void dropsForwardingAndProxyHeadersSpelledWithUnderscoresAndTheProxyHeader() throws Exception {
        // CGI-style backends read X_Forwarded_For as X-Forwarded-For (HTTP_X_FORWARDED_FOR), and Proxy as the
        // HTTP_PROXY of their own outgoing requests.
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade("/ws/chat", "app.example")
                .add("X_Forwarded_For", "6.6.6.6")
                .add("x_real_ip", "6.6.6.6")
                .add("X_Forwarded_Proto", "https")
                .add("X_Forwarded_Host", "evil.example")
                .add("X_Forwarded_Port", "443")
                .add("Proxy_Authorization", "Basic cHJveHk6c2VjcmV0")
                .add("Proxy", "http://evil.example:8080")
                .add("X_Trace_Id", "kept"));

        assertThat(seen.headers()).doesNotContainKeys("x_forwarded_for", "x_real_ip", "x_forwarded_proto",
                "x_forwarded_host", "x_forwarded_port", "proxy_authorization", "proxy");
        assertThat(seen.header("X-Forwarded-For")).isEqualTo(CLIENT_IP);
        assertThat(seen.header("X-Real-IP")).isEqualTo(CLIENT_IP);
        assertThat(seen.header("X_Trace_Id")).as("other names with underscores go on").isEqualTo("kept");
    }

    @Test
    void replacesSpoofedRealIpProtoAndForwardedHost() throws Exception {
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade("/ws/chat", "app.example")
                .add("X-Real-IP", "6.6.6.6")
                .add("X-Forwarded-Proto", "https")
                .add("X-Forwarded-Proto", "wss")
                .add("X-Forwarded-Host", "evil.example"));

        assertThat(seen.headers().get("x-real-ip")).containsExactly(CLIENT_IP);
        assertThat(seen.headers().get("x-forwarded-proto")).containsExactly("http");
        assertThat(seen.headers().get("x-forwarded-host")).containsExactly("app.example");
    }

    @Test
    void sendsTheBackendAuthorityAsHostWhenPreserveHostIsOff() throws Exception {
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade("/nohost/chat", "app.example:8443"));

        assertThat(seen.header("Host")).isEqualTo("127.0.0.1:" + backend.port());
        assertThat(seen.header("X-Forwarded-Host")).isEqualTo("app.example:8443");
    }

    @Test
    void forwardsEndToEndHeadersUnchanged() throws Exception {
        String traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade("/ws/chat", RawHttp.host(proxy))
                .add("Cookie", "session=abc; theme=dark")
                .add("Authorization", "Bearer token-123")
                .add("traceparent", traceparent)
                .add("tracestate", "vendor=value")
                .add("User-Agent", "raw-test/1.0")
                .add("Accept-Language", "fr-CH")
                .add("X-Custom", "custom value")
                .add("X-Multi", "a")
                .add("X-Multi", "b"));

        assertThat(seen.header("Cookie")).isEqualTo("session=abc; theme=dark");
        assertThat(seen.header("Authorization")).isEqualTo("Bearer token-123");
        assertThat(seen.header("traceparent")).isEqualTo(traceparent);
        assertThat(seen.header("tracestate")).isEqualTo("vendor=value");
        assertThat(seen.headers().get("user-agent")).as("the client's agent only").containsExactly("raw-test/1.0");
        assertThat(seen.header("Accept-Language")).isEqualTo("fr-CH");
        assertThat(seen.header("X-Custom")).isEqualTo("custom value");
        assertThat(seen.header("X-Multi")).isEqualTo("a, b");
    }

    @Test
    void addsNoContentNegotiationTheClientDidNotAskFor() throws Exception {
        TestBackend.Upgrade plain = upgradeAndClose(Request.upgrade("/ws/chat", RawHttp.host(proxy)));
        TestBackend.Upgrade brotli = upgradeAndClose(Request.upgrade("/ws/chat", RawHttp.host(proxy))
                .add("Accept-Encoding", "br"));

        assertThat(plain.headers()).as("backend headers for a client without Accept-Encoding")
                .doesNotContainKey("accept-encoding");
        assertThat(brotli.headers().get("accept-encoding")).containsExactly("br");
    }

    @ParameterizedTest(name = "{0}")
    @EnumSource(Kind.class)
    void stripsHopByHopHeaders(Kind kind) throws Exception {
        Map<String, List<String>> seen = forward(kind, RawHttp.host(proxy), "X-Hop, keep-alive", request -> request
                .add("X-Hop", "for the proxy only")
                .add("Keep-Alive", "timeout=5")
                .add("TE", "trailers")
                .add("Trailer", "X-Checksum")
                .add("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0")
                .add("Proxy-Connection", "keep-alive")
                .add("Proxy", "http://evil.example:8080")
                .add("X-Kept", "end to end")).headers();

        assertThat(seen).doesNotContainKeys(
                "x-hop", "keep-alive", "te", "trailer", "proxy-authorization", "proxy-connection", "proxy");
        assertThat(seen.get("x-kept")).as("an end-to-end header beside them").containsExactly("end to end");
        String connection = String.join(", ", seen.getOrDefault("connection", List.of()));
        assertThat(connection).as("the proxy's own Connection")
                .doesNotContainIgnoringCase("x-hop").doesNotContainIgnoringCase("keep-alive");
        if (kind == Kind.UPGRADE) {
            assertThat(connection).containsIgnoringCase("upgrade");
            assertThat(seen.get("upgrade")).singleElement().asString().isEqualToIgnoringCase("websocket");
        } else {
            assertThat(seen).as("nothing of an upgrade on a plain request").doesNotContainKey("upgrade");
        }
    }

    @ParameterizedTest(name = "{0}")
    @EnumSource(Kind.class)
    void readsAConnectionWithAQuoteLeftOpenAsTheTokensItLists(Kind kind) throws Exception {
        // Read as a list with quoted strings, the open quote made Jetty's parser throw: 502 and a WARN with its stack
        // trace for the upgrade, which Jetty accepts, and a bare 400 with no access line for the plain GET.
        Map<String, List<String>> seen = forward(kind, RawHttp.host(proxy), "X-Hop, \"X-Quoted\", \"x, X-After",
                request -> request
                        .add("X-Hop", "for the proxy only")
                        .add("X-Quoted", "named in quotes")
                        .add("X-After", "named after the open quote")
                        .add("X-Kept", "end to end")).headers();

        assertThat(seen).doesNotContainKeys("x-hop", "x-quoted", "x-after");
        assertThat(seen.get("x-kept")).as("an end-to-end header beside them").containsExactly("end to end");
    }

    @ParameterizedTest(name = "{0}")
    @EnumSource(Kind.class)
    void clientCannotStripTheProxysHeadersByNamingThemInConnection(Kind kind) throws Exception {
        Map<String, List<String>> seen = forward(kind, "app.example",
                "X-Forwarded-For, x-real-ip, X-Forwarded-Proto, X-Forwarded-Host, Cookie", request -> request
                        .add("X-Forwarded-For", "1.2.3.4")
                        .add("Cookie", "session=abc")).headers();

        assertThat(seen.get("x-forwarded-for")).as("X-Forwarded-For, the forged hop dropped")
                .containsExactly(CLIENT_IP);
        assertThat(seen.get("x-real-ip")).containsExactly(CLIENT_IP);
        assertThat(seen.get("x-forwarded-proto")).containsExactly("http");
        assertThat(seen.get("x-forwarded-host")).containsExactly("app.example");
        assertThat(seen).as("Cookie, named hop-by-hop by the client").doesNotContainKey("cookie");
    }

    @Test
    void sendsAFreshKeyAndNoExtensionsToTheBackend() throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(Request.upgrade("/ws/chat", RawHttp.host(proxy))
                    .add("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
                    .add("Sec-WebSocket-Extensions", "x-webkit-deflate-frame"));

            assertThat(response.status()).isEqualTo(101);
            assertThat(response.header("Sec-WebSocket-Extensions")).as("extensions on the client leg").isNull();
            client.sendText("uncompressed");
            assertThat(client.readFrame().text()).isEqualTo("uncompressed");
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        backend.nextClose();
        TestBackend.Upgrade seen = backend.nextUpgrade();
        String key = seen.header("Sec-WebSocket-Key");
        assertThat(key).isNotEqualTo(RawFrames.SAMPLE_KEY);
        assertThat(Base64.getDecoder().decode(key)).hasSize(16);
        assertThat(seen.headers()).doesNotContainKey("sec-websocket-extensions");
        assertThat(seen.header("Sec-WebSocket-Version")).isEqualTo("13");
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
        "/ws/chat?room=1, /ws/chat?room=1",
        "/ws/chat, /ws/chat",
        "/ws/a%20b?q=a%26b&x=%2F, /ws/a%20b?q=a%26b&x=%2F",
        "/mapped/chat?x=1, /base/chat?x=1",
        "/mapped/, /base/",
        "/mapped/deep/er/path, /base/deep/er/path",
        "/mapped/a%20b?q=%20, /base/a%20b?q=%20",
        "/mapped/what%3F, /base/what%3F",
        "/mapped/%C3%A9t%C3%A9, /base/%C3%A9t%C3%A9",
        "/ws/adminx, /ws/adminx"})
    void mapsTheRequestPathOntoTheBackend(String requested, String expected) throws Exception {
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade(requested, RawHttp.host(proxy)));

        assertThat(seen.pathQuery()).isEqualTo(expected);
    }

    @Test
    void longestRoutePrefixWins() throws Exception {
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade("/ws/admin/panel?x=1", RawHttp.host(proxy)), admin);

        assertThat(seen.pathQuery()).isEqualTo("/ws/admin/panel?x=1");
        assertThat(backend.upgrades).isEmpty();
    }

    @Test
    void percentEncodedLettersStillSelectTheLongerRoute() throws Exception {
        TestBackend.Upgrade seen = upgradeAndClose(Request.upgrade("/ws/%61dmin/panel", RawHttp.host(proxy)), admin);

        assertThat(seen.pathQuery()).isIn("/ws/%61dmin/panel", "/ws/admin/panel");
        assertThat(backend.upgrades).isEmpty();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/mapped/../secret", "/mapped/%2e%2e/secret", "/mapped/..%2Fsecret",
        "/mapped/%2E%2E%2Fsecret", "/mapped/a/../../secret"})
    void neverMapsAPathOutsideTheBackendBase(String requested) throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(Request.upgrade(requested, RawHttp.host(proxy)));

            if (response.status() == 101) {
                client.closeHandshake(1000, "");
                backend.nextClose();
                assertThat(backend.nextUpgrade().pathQuery()).startsWith("/base/");
            } else {
                assertThat(response.status()).as("%s", response).isIn(400, 404);
                assertThat(backend.upgrades).isEmpty();
            }
        }
    }
}
